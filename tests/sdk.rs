//! The real Segment SDKs against the real binary: `segment-analytics-python` and
//! `@segment/analytics-node` each send one mixed batch (valid funnel events plus one bad message
//! of each kind found in trials: a 1970 timestamp, one two days ahead, one 31 days old, a revenue
//! over the cap, and a lone-surrogate dimension value). Every valid event must be counted
//! exactly once, each bad one listed in the problem log, and neither SDK may see an error,
//! because both drop a batch that gets a 4xx.
//!
//! The SDKs come from PyPI and npm. `.ci/run` installs them (tests/sdk/install) and points
//! `REVLOOP_SDK_PYTHON` at a Python that has `segment-analytics-python`, and
//! `REVLOOP_SDK_NODE_PATH` at a `node_modules` that has `@segment/analytics-node`. Where a
//! variable is unset, that SDK's test says it was skipped.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

mod support;

use support::{Server, agent, free_port, setup};

/// What tests/sdk/mixed_batch.{py,js} send, per run.
const VALID: u64 = 10;
const REJECTED: u64 = 4;
/// Stage counts of one run: product views (4 plus the one with a folded device), carts, orders.
const STAGE_COUNTS: [(&str, i64); 3] = [("product_viewed", 5), ("cart", 3), ("order", 2)];

#[test]
fn python_sdk_mixed_batch_loses_no_valid_event() {
    let Some(python) = std::env::var_os("REVLOOP_SDK_PYTHON") else {
        eprintln!("skipped: REVLOOP_SDK_PYTHON is unset (tests/sdk/install sets it up)");
        return;
    };
    mixed_batches(|url, key, run| {
        let mut command = Command::new(&python);
        command.arg(script("mixed_batch.py")).args([url, key, run]);
        command
    });
}

#[test]
fn node_sdk_mixed_batch_loses_no_valid_event() {
    let Some(node_path) = std::env::var_os("REVLOOP_SDK_NODE_PATH") else {
        eprintln!("skipped: REVLOOP_SDK_NODE_PATH is unset (tests/sdk/install sets it up)");
        return;
    };
    mixed_batches(|url, key, run| {
        let mut command = Command::new("node");
        command
            .env("NODE_PATH", &node_path)
            .arg(script("mixed_batch.js"))
            .args([url, key, run]);
        command
    });
}

fn script(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/sdk")
        .join(name)
}

/// Sends the mixed batch twice with the same message ids: the first time every valid event
/// counts, the second time each is a duplicate; the bad ones are rejected both times.
fn mixed_batches(sdk: impl Fn(&str, &str, &str) -> Command) {
    let (dir, secrets) = setup(&["ingest", "admin"]);
    let (write_key, admin) = (&secrets[0], &secrets[1]);
    let server = Server::start(dir.path(), free_port());
    for attempt in 1..=2 {
        let output = sdk(&server.base, write_key, "sdk-run").output().unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "attempt {attempt}: {stdout}\n{stderr}"
        );
        let reply: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
            .unwrap_or_else(|err| panic!("attempt {attempt}: {err}: {stdout}\n{stderr}"));
        assert_eq!(
            reply["errors"],
            serde_json::json!([]),
            "the SDK saw an error"
        );

        let counters = prometheus(&server.base, admin);
        let outcome = |name: &str| {
            counters(&format!(
                "revloop_ingest_messages_total{{outcome=\"{name}\"}}"
            ))
        };
        assert_eq!(outcome("counted"), VALID, "attempt {attempt}");
        assert_eq!(
            outcome("duplicate"),
            VALID * (attempt - 1),
            "attempt {attempt}"
        );
        assert_eq!(outcome("rejected"), REJECTED * attempt, "attempt {attempt}");
    }
    assert_eq!(
        stage_counts(&server.base, admin),
        STAGE_COUNTS.map(|(s, n)| (s.to_owned(), n))
    );

    let log = get(&server.base, admin, "/api/v1/ingest/rejected?limit=100");
    let entries = log["entries"].as_array().unwrap();
    let rejected: Vec<&Value> = entries
        .iter()
        .filter(|e| e["outcome"] == "rejected")
        .collect();
    assert_eq!(rejected.len() as u64, REJECTED * 2, "{log:#}");
    let fields = |code: &str| {
        rejected
            .iter()
            .filter(|e| e["code"] == code)
            .map(|e| e["field"].as_str().unwrap_or_default().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(fields("timestamp_out_of_range").len(), 6, "{log:#}");
    assert_eq!(fields("out_of_range"), ["properties.revenue"; 2], "{log:#}");
    for entry in &rejected {
        assert!(
            entry["body"].as_str().unwrap().contains("sdk-run-10"),
            "{entry}"
        );
    }
    let notices: Vec<&Value> = entries
        .iter()
        .filter(|e| e["outcome"] == "notice")
        .collect();
    assert!(
        notices.iter().any(|e| e["field"] == "context.device.type"),
        "the undecodable device value is reported: {log:#}"
    );
}

/// A reader of the Prometheus text: the value of one sample line, 0 when absent.
fn prometheus(base: &str, token: &str) -> impl Fn(&str) -> u64 {
    let text = agent()
        .get(&format!("{base}/metrics"))
        .header("Authorization", &format!("Bearer {token}"))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    move |sample: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(sample)?.trim().parse().ok())
            .unwrap_or(0)
    }
}

fn get(base: &str, token: &str, path: &str) -> Value {
    let mut response = agent()
        .get(&format!("{base}{path}"))
        .header("Authorization", &format!("Bearer {token}"))
        .call()
        .unwrap();
    let body = response.body_mut().read_to_string().unwrap();
    assert_eq!(response.status(), 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// Each stage's count over the last two hours, all segments.
fn stage_counts(base: &str, token: &str) -> Vec<(String, i64)> {
    let reply = get(base, token, "/api/v1/funnels/checkout/metrics?step=2h");
    let mut totals: Vec<(String, i64)> = Vec::new();
    for window in reply["windows"].as_array().unwrap() {
        for stage in window["stages"].as_array().unwrap() {
            let id = stage["stage"].as_str().unwrap().to_owned();
            let n = stage["count"].as_i64().unwrap();
            match totals.iter_mut().find(|(s, _)| *s == id) {
                Some((_, total)) => *total += n,
                None => totals.push((id, n)),
            }
        }
    }
    totals.retain(|(_, n)| *n > 0);
    totals
}
