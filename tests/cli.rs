//! The command line as a user meets it: check-config, simulate and replay.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_revloop");

fn run(args: &[&str], dir: &std::path::Path) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env("REVLOOP_LOG", "warn")
        .output()
        .unwrap()
}

fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("revloop.toml"),
        revloop_core::Config::example_toml(),
    )
    .unwrap();
    dir
}

#[test]
fn check_config_prints_every_problem_with_its_line() {
    let dir = setup();
    let ok = run(&["check-config", "revloop.toml"], dir.path());
    assert!(ok.status.success());
    assert!(String::from_utf8_lossy(&ok.stdout).contains("ok (1 funnels, 5 stages, 5 dimensions)"));
    let broken = revloop_core::Config::example_toml()
        .replace("currency = \"USD\"", "currency = \"US\"")
        .replace("max_values = 10\n", "max_values = 0\n");
    std::fs::write(dir.path().join("broken.toml"), &broken).unwrap();
    let bad = run(&["check-config", "broken.toml"], dir.path());
    assert_eq!(bad.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&bad.stderr);
    let lines_of = |needle: &str| -> Vec<usize> {
        broken
            .lines()
            .enumerate()
            .filter(|(_, l)| l.starts_with(needle))
            .map(|(i, _)| i + 1)
            .collect()
    };
    let currency_line = lines_of("currency = \"US\"")[0];
    assert!(
        stderr.contains(&format!(
            "broken.toml:{currency_line}: `US` is not a currency code"
        )),
        "{stderr}"
    );
    let cap_lines = lines_of("max_values = 0");
    assert_eq!(cap_lines.len(), 2);
    for line in cap_lines {
        assert!(
            stderr.contains(&format!(
                "broken.toml:{line}: max_values must be between 1 and 1000"
            )),
            "{stderr}"
        );
    }
    assert!(stderr.contains("3 problem(s) found"), "{stderr}");
    let missing = run(&["check-config", "nope.toml"], dir.path());
    assert_eq!(missing.status.code(), Some(1));
}

#[test]
fn simulate_is_byte_identical_per_seed_and_replays_exactly_once() {
    let dir = setup();
    let simulate = |seed: &str| {
        let output = run(
            &[
                "simulate",
                "--config",
                "revloop.toml",
                "--from",
                "2026-11-20T00:00:00Z",
                "--to",
                "2026-11-20T06:00:00Z",
                "--seed",
                seed,
                "--peak-sessions-per-minute",
                "20",
                "--incident",
                "stage=checkout,drop=0.5,from=2026-11-20T02:00:00Z,to=2026-11-20T03:00:00Z,segment=device:mobile",
            ],
            dir.path(),
        );
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        output.stdout
    };
    let first = simulate("7");
    assert!(!first.is_empty());
    assert_eq!(
        first,
        simulate("7"),
        "the same seed must give the same bytes"
    );
    assert_ne!(first, simulate("8"));
    let n_lines = first
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .count();
    std::fs::write(dir.path().join("events.ndjson"), &first).unwrap();

    let replay = |db: &str| {
        let output = run(
            &[
                "replay",
                "--config",
                "revloop.toml",
                "--events",
                "events.ndjson",
                "--db",
                db,
            ],
            dir.path(),
        );
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let summary = replay("replay.db");
    assert!(
        summary.contains(&format!("replayed {n_lines} lines")),
        "{summary}"
    );
    assert!(
        summary.contains(&format!("counted {n_lines}, duplicates 0")),
        "{summary}"
    );
    let again = replay("replay.db");
    assert!(
        again.contains(&format!("counted 0, duplicates {n_lines}")),
        "{again}"
    );

    std::fs::write(
        dir.path().join("bad.ndjson"),
        "{\"type\":\"track\"}\nnot json\n",
    )
    .unwrap();
    let bad = run(
        &[
            "replay",
            "--config",
            "revloop.toml",
            "--events",
            "bad.ndjson",
            "--db",
            "bad.db",
        ],
        dir.path(),
    );
    assert_eq!(bad.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(stderr.contains("bad.ndjson:1: userId"), "{stderr}");
    assert!(stderr.contains("bad.ndjson:2:"), "{stderr}");
    assert!(stderr.contains("rejected 2"), "{stderr}");
}
