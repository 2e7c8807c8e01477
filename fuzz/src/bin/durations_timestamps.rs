//! AFL++ target: see `revloop_fuzz::durations_timestamps` and docs/fuzzing.md.

fn main() {
    afl::fuzz!(|data: &[u8]| revloop_fuzz::durations_timestamps(data));
}
