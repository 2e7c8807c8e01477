//! AFL++ target: see `revloop_fuzz::config` and docs/fuzzing.md.

fn main() {
    afl::fuzz!(|data: &[u8]| revloop_fuzz::config(data));
}
