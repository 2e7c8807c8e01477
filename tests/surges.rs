//! Surges are information, not incidents, through the command line a user runs: `revloop
//! simulate` a shop with a campaign spike and a sale day, or with its traffic gone, then
//! `revloop replay --incidents-out`. Good news is recorded as alerts and pages nobody (unless
//! `page_on_surge` asks for it); a collapse of entries still pages P1.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_revloop");

/// A small shop, so that ten simulated days replay in seconds: one funnel, no dimensions. The
/// volume baselines are per hour of the week, so the detector judges from the second week on.
const CONFIG: &str = r#"
[shop]
time_zone = "America/New_York"

[[funnels]]
id = "checkout"
[[funnels.stages]]
id = "product_viewed"
event = "Product Viewed"
[[funnels.stages]]
id = "cart"
event = "Product Added"
[[funnels.stages]]
id = "order"
event = "Order Completed"

[detection]
learning = "2d"
baseline_weeks = 1
segments = false
"#;

/// Monday 2026-11-16, midnight in New York.
const FROM: &str = "2026-11-16T05:00:00Z";
/// A Tuesday afternoon campaign spike, day 9: three times the traffic for two hours.
const SPIKE: (&str, &str) = ("2026-11-24T15:00:00Z", "2026-11-24T17:00:00Z");
/// A sale day, day 10, a whole local day: 2.5 times the traffic, more in its first hour.
const SALE_DAY: (&str, &str) = ("2026-11-25T05:00:00Z", "2026-11-26T05:00:00Z");
/// The traffic gone for an hour, day 9.
const COLLAPSE: (&str, &str) = ("2026-11-24T15:00:00Z", "2026-11-24T16:00:00Z");

fn revloop(args: &[&str], dir: &Path) -> std::process::Output {
    let out = Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env("REVLOOP_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "revloop {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Simulates the shop from [`FROM`] to `to` with the injected `incidents` into `events.ndjson`.
fn simulate(dir: &Path, to: &str, incidents: &[String]) {
    std::fs::write(dir.join("revloop.toml"), CONFIG).unwrap();
    let mut args = vec![
        "simulate",
        "--from",
        FROM,
        "--to",
        to,
        "--seed",
        "3",
        "--peak-sessions-per-minute",
        "20",
    ];
    for incident in incidents {
        args.extend(["--incident", incident]);
    }
    let out = revloop(&args, dir);
    std::fs::write(dir.join("events.ndjson"), out.stdout).unwrap();
}

/// Replays `events.ndjson` under `config` (a file in `dir`) into a fresh database: the alerts
/// and the incidents.
fn replay(dir: &Path, config: &str) -> (Vec<Value>, Vec<Value>) {
    let db = format!("{config}.db");
    revloop(
        &[
            "replay",
            "--config",
            config,
            "--events",
            "events.ndjson",
            "--db",
            &db,
            "--alerts-out",
            "alerts.ndjson",
            "--incidents-out",
            "incidents.ndjson",
        ],
        dir,
    );
    let read = |name: &str| -> Vec<Value> {
        std::fs::read_to_string(dir.join(name))
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    };
    (read("alerts.ndjson"), read("incidents.ndjson"))
}

fn at(value: &Value) -> jiff::Timestamp {
    value.as_str().unwrap().parse().unwrap()
}

fn within(value: &Value, (from, to): (&str, &str)) -> bool {
    let t = at(value);
    t >= from.parse().unwrap() && t <= to.parse().unwrap()
}

/// The pages an incident's timeline records: its `escalated` entries.
fn pages(incident: &Value) -> usize {
    incident["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "escalated")
        .count()
}

#[test]
fn a_campaign_spike_and_a_sale_day_page_nobody_unless_surges_page() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    simulate(
        dir,
        SALE_DAY.1,
        &[
            format!("kind=surge,factor=3,from={},to={}", SPIKE.0, SPIKE.1),
            format!(
                "kind=sale_day,factor=2.5,from={},to={}",
                SALE_DAY.0, SALE_DAY.1
            ),
        ],
    );
    let (alerts, incidents) = replay(dir, "revloop.toml");
    // Both are seen and recorded, as surges of entries...
    let surges: Vec<&Value> = alerts
        .iter()
        .filter(|a| a["event"] == "opened" && a["direction"] == "surge")
        .collect();
    for (name, window) in [("spike", SPIKE), ("sale day", SALE_DAY)] {
        assert!(
            surges.iter().any(|a| within(&a["at"], window)
                && a["kind"] == "volume"
                && a["stage"] == "product_viewed"),
            "no surge alert for the {name}: {alerts:#?}"
        );
    }
    // ...and nothing else alarmed: the sale day's new shoppers convert a little worse, which
    // is not an outage.
    let worse: Vec<&Value> = alerts
        .iter()
        .filter(|a| a["direction"] != "surge")
        .collect();
    assert!(worse.is_empty(), "{worse:#?}");
    // No incident, so no page.
    assert!(incidents.is_empty(), "{incidents:#?}");

    // A shop that wants surges to page says so; then the same traffic opens P2 incidents that
    // page.
    let paging = CONFIG.replace(
        "[detection]",
        "[incidents]\npage_on_surge = true\n\n[detection]",
    );
    std::fs::write(dir.join("paging.toml"), paging).unwrap();
    let (paging_alerts, incidents) = replay(dir, "paging.toml");
    assert_eq!(
        paging_alerts, alerts,
        "the option changes the pages, not the alerts"
    );
    assert!(!incidents.is_empty());
    for incident in &incidents {
        assert_eq!(
            (incident["severity"].as_str(), incident["stage"].as_str()),
            (Some("P2"), Some("product_viewed")),
            "{incident:#}"
        );
        assert!(pages(incident) >= 1, "{incident:#}");
    }
}

#[test]
fn a_collapse_of_entries_still_pages_p1() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    simulate(
        dir,
        "2026-11-25T05:00:00Z",
        &[format!(
            "kind=surge,factor=0,from={},to={}",
            COLLAPSE.0, COLLAPSE.1
        )],
    );
    let (alerts, incidents) = replay(dir, "revloop.toml");
    assert_eq!(incidents.len(), 1, "{incidents:#?}");
    let incident = &incidents[0];
    assert_eq!(
        (
            incident["severity"].as_str(),
            incident["kind"].as_str(),
            incident["stage"].as_str()
        ),
        (Some("P1"), Some("volume"), Some("product_viewed")),
        "{incident:#}"
    );
    assert!(within(&incident["opened_at"], COLLAPSE), "{incident:#}");
    assert!(pages(incident) >= 1, "{incident:#}");
    let opened: Vec<&Value> = alerts.iter().filter(|a| a["event"] == "opened").collect();
    assert_eq!(opened.len(), 1, "{alerts:#?}");
    assert_eq!(opened[0]["direction"], "worse");
}
