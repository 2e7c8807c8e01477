//! AFL++ target: see `revloop_fuzz::counts` and docs/fuzzing.md.

fn main() {
    afl::fuzz!(|data: &[u8]| revloop_fuzz::counts(data));
}
