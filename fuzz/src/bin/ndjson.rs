//! AFL++ target: see `revloop_fuzz::ndjson` and docs/fuzzing.md.

fn main() {
    afl::fuzz!(|data: &[u8]| revloop_fuzz::ndjson(data));
}
