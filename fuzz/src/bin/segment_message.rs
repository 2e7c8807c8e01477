//! AFL++ target: see `revloop_fuzz::segment_message` and docs/fuzzing.md.

fn main() {
    afl::fuzz!(|data: &[u8]| revloop_fuzz::segment_message(data));
}
