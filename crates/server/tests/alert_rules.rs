//! The example alerting rules (deploy/prometheus/revloop-rules.yml) name only metrics that
//! `/metrics` exports: a server with seeded data is scraped, and every `revloop_*` name in an
//! `expr:` must be there. `promtool check rules` (in .ci/run) checks the file's syntax.

mod common;

use std::collections::BTreeSet;

use common::{MINUTE, T0, TestServer, track};
use serde_json::json;

const RULES: &str = include_str!("../../../deploy/prometheus/revloop-rules.yml");

/// The `revloop_*` names in the rules' `expr:` values, single-line or block.
fn metrics_in_exprs(rules: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut block_indent: Option<usize> = None;
    for line in rules.lines() {
        let indent = line.len() - line.trim_start().len();
        let text = match block_indent {
            Some(expr_indent) if line.trim().is_empty() || indent > expr_indent => line,
            // A commented-out rule is not loaded.
            _ if line.trim_start().starts_with('#') => continue,
            _ => {
                block_indent = None;
                let Some(at) = line.find("expr:") else {
                    continue;
                };
                let value = line[at + "expr:".len()..].trim();
                if value == "|" || value == ">" {
                    block_indent = Some(indent);
                    continue;
                }
                value
            }
        };
        let bytes = text.as_bytes();
        let mut start = 0;
        while let Some(found) = text[start..].find("revloop_") {
            let begin = start + found;
            let mut end = begin;
            while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
                end += 1;
            }
            names.insert(text[begin..end].to_owned());
            start = end;
        }
    }
    names
}

#[test]
fn the_rule_parser_reads_single_line_and_block_exprs() {
    let rules = "      - alert: A\n        expr: rate(revloop_a_total[5m]) > 0\n        for: 1m\n      - alert: B\n        expr: |\n          sum(revloop_b)\n            / sum(revloop_c_seconds) > 1\n        for: 2m\n        annotations:\n          description: \"revloop_not_an_expr\"\n";
    let names: Vec<String> = metrics_in_exprs(rules).into_iter().collect();
    assert_eq!(names, ["revloop_a_total", "revloop_b", "revloop_c_seconds"]);
}

#[test]
fn every_metric_the_alerting_rules_name_is_exported() {
    let names = metrics_in_exprs(RULES);
    assert!(names.len() >= 10, "{names:?}");
    let server = TestServer::start();
    // Seeded: messages counted, a duplicate, a rejected request, and a minute judged.
    let batch = json!({"batch": [
        track("Product Viewed", "m1", T0 - 5 * MINUTE),
        track("Product Added", "m2", T0 - 4 * MINUTE),
        track("Product Added", "m2", T0 - 4 * MINUTE),
    ]});
    assert_eq!(server.ingest("/v1/batch", &batch).status, 200);
    let refused = server.post("/v1/batch", &[("Authorization", "Basic bm9wZTo=")], b"{}");
    assert_eq!(refused.status, 401);
    server.set_clock(T0 + 3 * MINUTE);
    server.wait_until_judged(T0);
    // The maintenance service runs once at start.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let scrape = loop {
        let reply = server.get("/metrics", &server.viewer);
        assert_eq!(reply.status, 200);
        let text = reply.body.as_str().unwrap().to_owned();
        if text.contains("revloop_maintenance_runs_total{outcome=\"ok\"} 1") {
            break text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "maintenance did not run within 30 s:\n{text}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let exported = |name: &str| {
        scrape.lines().any(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
                || line.starts_with(&format!("# TYPE {name} "))
        })
    };
    let missing: Vec<&String> = names.iter().filter(|name| !exported(name)).collect();
    assert!(missing.is_empty(), "not in /metrics: {missing:?}\n{scrape}");
    // The gauges the rules compare with a number have a sample, not only a declaration.
    for line in [
        "revloop_store_up 1",
        "revloop_outbox_entries 0",
        "revloop_outbox_oldest_entry_age_seconds 0",
        "revloop_alerts_open{severity=\"P1\",kind=\"conversion\"} 0",
        "revloop_detector_live{funnel=\"checkout\"} 1",
        "revloop_detector_failing_seconds{funnel=\"checkout\"} 0",
        "revloop_detector_stalled 0",
        "revloop_incident_timer_lag_seconds 0",
    ] {
        assert!(scrape.lines().any(|l| l == line), "{line} not in\n{scrape}");
    }
    assert!(
        scrape
            .lines()
            .any(|l| l.starts_with("revloop_detector_lag_seconds{funnel=\"checkout\"} ")),
        "no lag sample for checkout in\n{scrape}"
    );
}

/// A maintenance run that fails is counted as failed, and the server keeps serving; a store
/// that fails the scrape's read says so in `revloop_store_up` rather than failing the scrape.
#[test]
fn failed_maintenance_and_an_unreadable_store_show_in_the_metrics() {
    use revloop_store::faults::{Call, Failure, Fault, FaultyStore};
    use std::sync::Arc;

    let dir = tempfile::tempdir().unwrap();
    let config = revloop_core::Config::parse(revloop_core::Config::example_toml()).unwrap();
    let inner =
        Arc::new(revloop_store::SqliteStore::open(&dir.path().join("f.db"), &config).unwrap());
    let store = FaultyStore::new(inner);
    store.inject(Fault::new(Call::RollUpCounts, Failure::DiskFull));
    store.inject(Fault::new(Call::OutboxStats, Failure::Busy));
    let server = TestServer::start_with(config, store.clone(), dir);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let scrape = loop {
        let reply = server.get("/metrics", &server.viewer);
        assert_eq!(reply.status, 200, "{}", reply.body);
        let text = reply.body.as_str().unwrap().to_owned();
        if text.contains("revloop_maintenance_runs_total{outcome=\"failed\"} 1") {
            break text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no failed run within 30 s:\n{text}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    for line in [
        "revloop_maintenance_runs_total{outcome=\"ok\"} 0",
        "revloop_maintenance_last_success_timestamp_seconds 0",
        "revloop_store_up 0",
    ] {
        assert!(scrape.lines().any(|l| l == line), "{line} not in\n{scrape}");
    }
    assert!(!scrape.contains("revloop_outbox_entries "), "{scrape}");
    assert!(store.failures(Call::RollUpCounts) >= 1);
    // Healed, the scrape reads the store again.
    store.heal();
    let reply = server.get("/metrics", &server.viewer);
    let text = reply.body.as_str().unwrap();
    assert!(text.lines().any(|l| l == "revloop_store_up 1"), "{text}");
    // The server waits, as it stops, until nothing holds its store.
    drop(store);
}
