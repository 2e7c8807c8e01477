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
    assert!(
        String::from_utf8_lossy(&ok.stdout)
            .contains("ok (1 funnels, 5 stages, 5 dimensions; surges page nobody)")
    );
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

/// What a demanding user gets wrong in a config that parses: a currency that is not ISO 4217
/// (or not in upper case) and two stages bound to one event. Exit code 2, every problem with
/// its file and line.
#[test]
fn check_config_rejects_a_made_up_currency_and_a_shared_event() {
    let dir = setup();
    for (currency, want) in [
        ("XYZ", "`XYZ` is not an ISO 4217 currency code"),
        (
            "usd",
            "`usd` is not an ISO 4217 currency code; did you mean USD?",
        ),
    ] {
        let broken = revloop_core::Config::example_toml()
            .replace("currency = \"USD\"", &format!("currency = \"{currency}\""))
            .replace("event = \"Checkout Started\"", "event = \"Product Added\"");
        std::fs::write(dir.path().join("broken.toml"), &broken).unwrap();
        let bad = run(&["check-config", "broken.toml"], dir.path());
        assert_eq!(bad.status.code(), Some(2));
        let stderr = String::from_utf8_lossy(&bad.stderr);
        let line_of =
            |needle: &str| broken.lines().position(|l| l.starts_with(needle)).unwrap() + 1;
        let currency_line = line_of("currency = ");
        assert!(
            stderr.contains(&format!("broken.toml:{currency_line}: {want}")),
            "{stderr}"
        );
        // The stage lines: each `[[funnels.stages]]` header just before its event.
        let event_lines: Vec<usize> = broken
            .lines()
            .enumerate()
            .filter(|(_, l)| *l == "event = \"Product Added\"")
            .map(|(i, _)| i + 1)
            .collect();
        let header_before = |line: usize| {
            (1..line)
                .rev()
                .find(|l| broken.lines().nth(l - 1) == Some("[[funnels.stages]]"))
                .unwrap()
        };
        assert!(
            stderr.contains(&format!(
                "broken.toml:{}: stages `cart` (line {}) and `checkout` of funnel `checkout` are \
                 bound to the same event (track `Product Added` with no filters)",
                header_before(event_lines[1]),
                header_before(event_lines[0]),
            )),
            "{stderr}"
        );
        assert!(stderr.contains("2 problem(s) found"), "{stderr}");
    }
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
        // The older segment form still works, with a note that shows the one syntax.
        assert!(
            String::from_utf8_lossy(&output.stderr).contains(
                "note: `segment=device:mobile` is deprecated; write `segment=device=mobile`"
            ),
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

/// Two weeks of pre-aggregated counts with a one-hour outage at the cart step on the last day,
/// replayed with `--alerts-out`: one alert opens at P1 within minutes of the outage, names the
/// stage, and closes after recovery; nothing else pages.
#[test]
fn replay_of_counts_writes_the_alerts_of_an_outage() {
    use revloop_core::rng::Rng;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("revloop.toml"),
        r#"
[shop]
time_zone = "Europe/Berlin"
average_order_value = "85.00"

[[funnels]]
id = "checkout"
[[funnels.stages]]
id = "viewed"
event = "Product Viewed"
[[funnels.stages]]
id = "cart"
event = "Product Added"
[[funnels.stages]]
id = "order"
event = "Order Completed"

[detection]
false_p1_every = "3650d"
false_p2_every = "365d"
"#,
    )
    .unwrap();
    // Monday 2026-11-02 00:00 UTC, 5-minute windows.
    let start_s: i64 = 1_793_577_600;
    let windows = 15 * 24 * 12;
    let outage = (
        start_s + 14 * 86_400 + 12 * 3_600,
        start_s + 14 * 86_400 + 13 * 3_600,
    );
    let mut rng = Rng::new(3);
    let mut lines = String::new();
    for window in 0..windows {
        let at = start_s + window * 300;
        let hour = (at / 3_600) % 24;
        let rhythm = 1.0 + 0.6 * (((hour as f64) - 8.0) / 24.0 * std::f64::consts::TAU).sin();
        let viewed = rng.poisson(300.0 * rhythm);
        let keep = if (outage.0..outage.1).contains(&at) {
            0.2
        } else {
            1.0
        };
        let cart = (0..viewed).filter(|_| rng.bernoulli(0.3)).count() as u64;
        let order = (0..cart).filter(|_| rng.bernoulli(0.7 * keep)).count() as u64;
        for (stage, count) in [("viewed", viewed), ("cart", cart), ("order", order)] {
            let stamp = jiff::Timestamp::from_second(at).unwrap();
            lines.push_str(&format!(
                "{{\"funnel\":\"checkout\",\"stage\":\"{stage}\",\"window_start\":\"{stamp}\",\"window_s\":300,\"count\":{count}}}\n"
            ));
        }
    }
    std::fs::write(dir.path().join("counts.ndjson"), lines).unwrap();
    let out = run(
        &[
            "replay",
            "--config",
            "revloop.toml",
            "--counts",
            "counts.ndjson",
            "--db",
            "replay.db",
            "--alerts-out",
            "alerts.ndjson",
            "--incidents-out",
            "incidents.ndjson",
        ],
        dir.path(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(dir.path().join("alerts.ndjson")).unwrap();
    let alerts: Vec<serde_json::Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let whole: Vec<&serde_json::Value> = alerts.iter().filter(|a| a["segment"].is_null()).collect();
    assert_eq!(whole.len(), 2, "{text}");
    let (opened, closed) = (whole[0], whole[1]);
    for key in [
        "funnel",
        "stage",
        "kind",
        "severity",
        "event",
        "at",
        "baseline_rate",
        "observed_rate",
        "sigma",
        "n",
        "top_segments",
    ] {
        assert!(!opened[key].is_null(), "`{key}` missing from {opened}");
    }
    assert_eq!(opened["funnel"], "checkout");
    assert_eq!(opened["stage"], "cart");
    assert_eq!(opened["kind"], "conversion");
    assert_eq!(opened["severity"], "P1");
    assert_eq!(opened["event"], "opened");
    let at = |alert: &serde_json::Value| {
        alert["at"]
            .as_str()
            .unwrap()
            .parse::<jiff::Timestamp>()
            .unwrap()
            .as_second()
    };
    let delay_minutes = (at(opened) - outage.0) / 60;
    assert!(
        (1..=6).contains(&delay_minutes),
        "opened {delay_minutes} minutes in: {opened}"
    );
    assert!(opened["observed_rate"].as_f64().unwrap() > 0.6, "{opened}");
    assert!(
        (opened["baseline_rate"].as_f64().unwrap() - 0.3).abs() < 0.05,
        "{opened}"
    );
    assert_eq!(closed["event"], "closed");
    assert_eq!(closed["alert_id"], opened["alert_id"]);
    assert!(at(closed) > outage.1, "{closed}");

    // The incident, run in event time with nobody answering: opened with the alert, each
    // level paged in turn while the outage lasts, both SLAs breached, back within 2σ after
    // the outage and recovered (the executive, due after that, is never paged), and still
    // open at the end because a P1 needs a root cause.
    let text = std::fs::read_to_string(dir.path().join("incidents.ndjson")).unwrap();
    let incidents: Vec<serde_json::Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(incidents.len(), 1, "{text}");
    let incident = &incidents[0];
    assert_eq!(
        (
            incident["severity"].as_str().unwrap(),
            incident["stage"].as_str().unwrap(),
            incident["state"].as_str().unwrap()
        ),
        ("P1", "cart", "triggered")
    );
    let timeline = incident["timeline"].as_array().unwrap();
    let kinds: Vec<&str> = timeline
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    let first_of = |kind: &str| {
        kinds
            .iter()
            .position(|k| *k == kind)
            .unwrap_or_else(|| panic!("no {kind} in {kinds:?}"))
    };
    assert_eq!(&kinds[..2], ["opened", "escalated"]);
    let paged: Vec<&str> = timeline
        .iter()
        .filter(|e| e["kind"] == "escalated")
        .map(|e| {
            e["text"]
                .as_str()
                .unwrap()
                .split_whitespace()
                .nth(1)
                .unwrap()
        })
        .collect();
    assert_eq!(paged, ["L1", "L2", "L3"]);
    assert!(
        first_of("sla_breached") < first_of("alert_closed"),
        "{kinds:?}"
    );
    // Recovered after its alert closed, and nothing paged since.
    assert!(
        first_of("alert_closed") < first_of("recovered"),
        "{kinds:?}"
    );
    assert!(
        !kinds[first_of("recovered")..].contains(&"escalated"),
        "{kinds:?}"
    );
    assert!(incident["recovered_at"].is_string(), "{incident}");
    let stamps: Vec<i64> = timeline.iter().map(&at).collect();
    assert!(stamps.windows(2).all(|w| w[0] <= w[1]), "{stamps:?}");
    assert_eq!(
        stamps[0],
        at(opened) + 60,
        "opened when the minute was judged"
    );
    assert!(stamps[first_of("alert_closed")] > outage.1);

    // Its revenue impact: the cart → order step kept a fifth of its 70 %, so each cart
    // shopper lost 0.7 × 0.8 orders, on about 0.3 × 300 × rhythm cart shoppers per 5 minutes,
    // at 85.00, from the minute it opened to the outage's end (docs/impact.md).
    let impact = &incident["impact"];
    assert_eq!(impact["aov"]["minor"], 8_500, "{impact}");
    assert_eq!(impact["aov_source"], "config");
    let lost_by_hand: f64 = (at(opened)..outage.1)
        .step_by(60)
        .map(|minute| {
            let hour = (minute / 3_600) % 24;
            let rhythm = 1.0 + 0.6 * (((hour as f64) - 8.0) / 24.0 * std::f64::consts::TAU).sin();
            300.0 * rhythm / 5.0 * 0.3 * 0.7 * 0.8
        })
        .sum();
    let orders_lost = impact["orders_lost"].as_f64().unwrap();
    assert!(
        (0.7..1.3).contains(&(orders_lost / lost_by_hand)),
        "{orders_lost} orders lost, by hand {lost_by_hand}: {impact}"
    );
    let loss_minor = impact["loss"]["minor"].as_i64().unwrap();
    let by_hand_minor = lost_by_hand * 8_500.0;
    assert!(
        (0.7..1.3).contains(&(loss_minor as f64 / by_hand_minor)),
        "{loss_minor} vs {by_hand_minor}: {impact}"
    );
    assert_eq!(impact["within_noise"], false, "{impact}");
    assert_eq!(impact["loss"]["currency"], "USD");
    // Once recovered it books nothing more: the loss is the outage's, not grown by the
    // hours the incident stays open waiting for its root cause.
    let n_windows = impact["n_windows"].as_u64().unwrap();
    assert!(n_windows <= 24, "{n_windows} windows booked: {impact}");
    let criteria: Vec<(&str, bool)> = incident["criteria"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), c["holds"].as_bool().unwrap()))
        .collect();
    assert_eq!(
        criteria,
        [
            ("within_2_sigma", true),
            ("quiet", true),
            ("root_cause", false)
        ]
    );

    // The baseline the detector learned: 30% of shoppers leave after the cart, every hour.
    let end = jiff::Timestamp::from_second(start_s + windows * 300)
        .unwrap()
        .to_string();
    let shown = run(
        &[
            "baseline",
            "show",
            "--db",
            "replay.db",
            "--stage",
            "cart",
            "--at",
            &end,
        ],
        dir.path(),
    );
    assert!(
        shown.status.success(),
        "{}",
        String::from_utf8_lossy(&shown.stderr)
    );
    let grid = String::from_utf8_lossy(&shown.stdout);
    let rows: Vec<&str> = grid
        .lines()
        .filter(|l| l.starts_with("Mon") || l.starts_with("Sun"))
        .collect();
    assert_eq!(rows.len(), 2, "{grid}");
    for row in rows {
        let rates: Vec<f64> = row
            .split_whitespace()
            .skip(1)
            .map(|v| v.parse().unwrap())
            .collect();
        assert_eq!(rates.len(), 24, "{grid}");
        assert!(rates.iter().all(|r| (r - 30.0).abs() < 3.0), "{grid}");
    }
    let bad = run(
        &["baseline", "show", "--db", "replay.db", "--stage", "order"],
        dir.path(),
    );
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("last stage"));
}

/// A config that does not validate is bad usage: exit code 2, as `main.rs` documents, for every
/// command that reads one.
#[test]
fn an_invalid_config_exits_with_2() {
    let dir = setup();
    let broken =
        revloop_core::Config::example_toml().replace("currency = \"USD\"", "currency = \"US\"");
    std::fs::write(dir.path().join("broken.toml"), broken).unwrap();
    std::fs::write(dir.path().join("empty.ndjson"), "").unwrap();
    for args in [
        &[
            "serve",
            "--config",
            "broken.toml",
            "--listen",
            "127.0.0.1:0",
        ][..],
        &[
            "replay",
            "--config",
            "broken.toml",
            "--events",
            "empty.ndjson",
        ][..],
    ] {
        let out = run(args, dir.path());
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("invalid config:"), "{stderr}");
        assert!(stderr.contains("`US` is not a currency code"), "{stderr}");
    }
    // A config that cannot be read is a failure to run, not bad usage.
    let missing = run(&["serve", "--config", "nope.toml"], dir.path());
    assert_eq!(missing.status.code(), Some(1));
}
