//! AFL++ target: see `revloop_fuzz::batch` and docs/fuzzing.md.

fn main() {
    afl::fuzz!(|data: &[u8]| revloop_fuzz::batch(data));
}
