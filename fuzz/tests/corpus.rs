//! Replays every seed and every saved regression through its target without AFL++, so that a
//! harness that cannot run its own seeds, or a fixed crash that came back, fails as a plain
//! test: `cargo test --manifest-path fuzz/Cargo.toml`.

use std::path::Path;

#[test]
fn every_seed_and_regression_runs_through_its_target() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (target, run) in revloop_fuzz::TARGETS {
        let mut n_inputs = 0;
        for folder in ["corpus", "regressions"] {
            let Ok(entries) = std::fs::read_dir(root.join(folder).join(target)) else {
                continue;
            };
            for entry in entries {
                let path = entry.expect("a readable folder").path();
                let input = std::fs::read(&path).expect("a readable input");
                eprintln!("{}", path.display());
                run(&input);
                n_inputs += 1;
            }
        }
        assert!(
            n_inputs > 0,
            "target {target} has no seeds in fuzz/corpus/{target}"
        );
    }
}
