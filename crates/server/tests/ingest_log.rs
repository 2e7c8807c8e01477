//! The ingest problem log over HTTP: a batch's rejected message and ignored name shown by
//! `GET /api/v1/ingest/rejected` and `/ignored` and counted in `/metrics`, who may read them,
//! their pages and filters, and that they outlive a restart.

mod common;

use serde_json::{Value, json};

use revloop_core::{Config, Timestamp};

use common::{MINUTE, T0, TestServer, track};

/// A batch of one counted event, one no stage listens to, and one from 1970.
fn mixed_batch(suffix: &str) -> Value {
    json!({"batch": [
        track("Order Completed", &format!("counted-{suffix}"), T0),
        track("Odrer Completed", &format!("typo-{suffix}"), T0),
        track("Order Completed", &format!("clock-{suffix}"), 0),
    ]})
}

fn rejected(server: &TestServer, query: &str) -> Value {
    let reply = server.get(&format!("/api/v1/ingest/rejected{query}"), &server.viewer);
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.body
}

fn ignored(server: &TestServer) -> Value {
    let reply = server.get("/api/v1/ingest/ignored", &server.viewer);
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.body
}

/// The value of one line of the Prometheus text, or 0 if it is absent.
fn metric(server: &TestServer, line_start: &str) -> u64 {
    let text = server.get("/metrics", &server.viewer).body;
    let text = text.as_str().expect("metrics are text");
    text.lines()
        .find_map(|line| line.strip_prefix(line_start))
        .map_or(0, |value| value.trim().parse().expect("a counter"))
}

#[test]
fn a_batch_shows_its_rejected_message_and_its_ignored_name() {
    check_a_batch(&TestServer::start());
}

/// The same on PostgreSQL (skipped when `REVLOOP_TEST_DATABASE_URL` is not set).
#[test]
fn a_batch_shows_its_rejected_message_and_its_ignored_name_on_postgresql() {
    common::on_postgresql("ingest_log", "batch", check_a_batch);
}

fn check_a_batch(server: &TestServer) {
    let reply = server.ingest("/v1/batch", &mixed_batch("a"));
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        (
            &reply.body["counted"],
            &reply.body["ignored"],
            &reply.body["rejected"]
        ),
        (&json!(1), &json!(1), &json!(1))
    );

    let log = rejected(server, "");
    assert_eq!((&log["total"], &log["dropped"]), (&json!(1), &json!(0)));
    let entry = &log["entries"][0];
    assert_eq!(entry["outcome"], "rejected");
    assert_eq!(entry["code"], "timestamp_out_of_range");
    assert_eq!(entry["field"], "timestamp");
    assert_eq!(entry["key_name"], "ingest", "the write key's name");
    assert_eq!(entry["at"], "2026-11-27T10:00:00Z");
    assert!(
        entry["body"].as_str().unwrap().contains("clock-a"),
        "the message itself: {entry}"
    );

    let names = ignored(server);
    assert_eq!(names["unlisted"], 0);
    assert_eq!(names["names"].as_array().unwrap().len(), 1, "{names}");
    let name = &names["names"][0];
    assert_eq!(
        (&name["kind"], &name["name"], &name["count"]),
        (&json!("track"), &json!("Odrer Completed"), &json!(1))
    );

    // The same batch again: the ignored message is a duplicate and counts no more, while the
    // rejected one is refused (and logged) again.
    let again = server.ingest("/v1/batch", &mixed_batch("a"));
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(ignored(server)["names"][0]["count"], 1);
    assert_eq!(rejected(server, "")["total"], 2);

    let reason = "revloop_ingest_messages_rejected_total{reason=\"timestamp_out_of_range\"} ";
    assert_eq!(metric(server, reason), 2);
    let outcome = "revloop_ingest_messages_total{outcome=\"rejected\"} ";
    assert_eq!(metric(server, outcome), 2);
    let ignored_total = "revloop_ingest_messages_total{outcome=\"ignored\"} ";
    assert_eq!(metric(server, ignored_total), 1);
}

#[test]
fn ignored_names_count_new_messages_of_every_endpoint() {
    let server = TestServer::start();
    let single = server.ingest("/v1/track", &track("Odrer Completed", "one", T0));
    assert_eq!(single.status, 200, "{}", single.body);
    let page = json!({"type": "page", "name": "Home", "messageId": "two", "userId": "u1",
                      "timestamp": "2026-11-27T10:00:00Z"});
    assert_eq!(server.ingest("/v1/page", &page).status, 200);
    let identify = json!({"type": "identify", "messageId": "three", "userId": "u1"});
    assert_eq!(server.ingest("/v1/identify", &identify).status, 200);
    let names = ignored(&server);
    let listed: Vec<(&str, &str, u64)> = names["names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|name| {
            (
                name["kind"].as_str().unwrap(),
                name["name"].as_str().unwrap(),
                name["count"].as_u64().unwrap(),
            )
        })
        .collect();
    // An identify call has no event name to list.
    assert_eq!(
        listed,
        [("page", "Home", 1), ("track", "Odrer Completed", 1)]
    );
}

#[test]
fn the_log_is_read_by_viewers_with_checked_parameters() {
    let server = TestServer::start();
    for path in ["/api/v1/ingest/rejected", "/api/v1/ingest/ignored"] {
        assert_eq!(server.get(path, &server.write_key).status, 403, "{path}");
        assert_eq!(server.get(path, "nonsense").status, 401, "{path}");
        assert_eq!(server.get(path, &server.admin).status, 200, "{path}");
    }
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("before=x", "before"),
        ("outcome=maybe", "outcome"),
        ("code=", "code"),
        ("colour=red", "colour"),
    ] {
        let reply = server.get(&format!("/api/v1/ingest/rejected?{query}"), &server.viewer);
        assert_eq!(reply.status, 400, "{query}: {}", reply.body);
        assert_eq!(reply.body["error"]["details"][0]["field"], field, "{query}");
    }
    let reply = server.get("/api/v1/ingest/ignored?limit=1001", &server.viewer);
    assert_eq!(reply.status, 400, "{}", reply.body);
}

#[test]
fn the_log_pages_filters_and_outlives_a_restart() {
    let mut server = TestServer::start_on_file(Config::parse(Config::example_toml()).unwrap());
    for suffix in ["a", "b", "c"] {
        let reply = server.ingest("/v1/batch", &mixed_batch(suffix));
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    server.restart();
    let first = rejected(&server, "?limit=2");
    let bodies = |page: &Value| -> Vec<String> {
        page["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|entry| {
                let body: Value = serde_json::from_str(entry["body"].as_str().unwrap()).unwrap();
                body["messageId"].as_str().unwrap().to_owned()
            })
            .collect()
    };
    assert_eq!(bodies(&first), ["clock-c", "clock-b"]);
    let before = first["next_before"].as_i64().expect("a next page");
    let second = rejected(&server, &format!("?limit=2&before={before}"));
    assert_eq!(bodies(&second), ["clock-a"]);
    assert!(second.get("next_before").is_none(), "{second}");
    let by_code = rejected(&server, "?code=invalid_json");
    assert_eq!(by_code["entries"], json!([]));
    assert_eq!(by_code["total"], 3);
    let by_outcome = rejected(&server, "?outcome=rejected&code=timestamp_out_of_range");
    assert_eq!(by_outcome["entries"].as_array().unwrap().len(), 3);
    assert_eq!(ignored(&server)["names"][0]["count"], 3);
}

#[test]
fn a_notice_is_logged_beside_the_counted_message() {
    let server = TestServer::start();
    let mut message = track("Order Completed", "marker", T0);
    message["context"] = json!({"device": {"type": "other"}});
    let reply = server.ingest("/v1/batch", &json!({"batch": [message]}));
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["counted"], 1, "{}", reply.body);

    let log = rejected(&server, "?outcome=notice");
    assert_eq!(log["entries"].as_array().unwrap().len(), 1, "{log}");
    let entry = &log["entries"][0];
    assert_eq!(
        (&entry["outcome"], &entry["code"], &entry["field"]),
        (
            &json!("notice"),
            &json!("value_escaped"),
            &json!("context.device.type")
        )
    );
    assert!(
        entry["body"].as_str().unwrap().contains("\"marker\""),
        "{entry}"
    );
    assert_eq!(rejected(&server, "?outcome=rejected")["entries"], json!([]));
    let reason = "revloop_ingest_notices_total{reason=\"value_escaped\"} ";
    assert_eq!(metric(&server, reason), 1);
}

#[test]
fn a_long_message_is_logged_cut() {
    let server = TestServer::start();
    let mut message = track("Order Completed", "long", 0);
    message["properties"] = json!({"note": "x".repeat(10_000)});
    let reply = server.ingest("/v1/batch", &json!({"batch": [message]}));
    assert_eq!(reply.status, 200, "{}", reply.body);
    let entry = &rejected(&server, "")["entries"][0];
    assert_eq!(entry["body_cut"], true, "{entry}");
    let body = entry["body"].as_str().unwrap();
    assert_eq!(body.len(), 4 * 1024);
    assert!(body.starts_with('{'), "{body}");
}

#[test]
fn a_nul_in_client_text_is_logged_replaced() {
    check_a_nul(&TestServer::start());
}

/// PostgreSQL `text` refuses NUL: one such row would fail the whole group commit.
#[test]
fn a_nul_in_client_text_is_logged_replaced_on_postgresql() {
    common::on_postgresql("ingest_log", "nul", check_a_nul);
}

/// A NUL in an ignored event name, in a field a problem message quotes and as a raw byte of an
/// NDJSON line: each group commits, its valid neighbour is counted, and both stores read back
/// U+FFFD in its place.
fn check_a_nul(server: &TestServer) {
    let mut bad_time = track("Order Completed", "nul-time", T0);
    bad_time["timestamp"] = json!("\u{0}");
    let batch = json!({"batch": [
        track("Order Completed", "nul-neighbour", T0),
        track("a\u{0}", "nul-name", T0),
        bad_time,
    ]});
    let reply = server.ingest("/v1/batch", &batch);
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        (
            &reply.body["counted"],
            &reply.body["ignored"],
            &reply.body["rejected"]
        ),
        (&json!(1), &json!(1), &json!(1)),
        "{}",
        reply.body
    );

    let line = track("Order Completed", "nul-line-neighbour", T0).to_string();
    let ndjson = format!("{line}\n{{\"type\":\"track\",\u{0}}}\n");
    let headers = [
        ("Authorization", server.basic()),
        ("Content-Type", "application/x-ndjson".to_owned()),
    ];
    let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let reply = server.post("/api/v1/events/bulk", &headers, ndjson.as_bytes());
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["counted"], 1, "{}", reply.body);

    let counts = server.stage_counts(T0 - 60 * MINUTE, T0 + 60 * MINUTE, "");
    assert_eq!(counts.iter().sum::<i64>(), 2, "{counts:?}");
    let names = ignored(server);
    assert_eq!(names["names"][0]["name"], "a\u{fffd}", "{names}");

    let log = rejected(server, "");
    let entries = log["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{log}");
    let text = |entry: &Value| format!("{} {} {}", entry["field"], entry["message"], entry["body"]);
    for entry in entries {
        assert!(!text(entry).contains('\0'), "{entry}");
    }
    let (line_entry, time_entry) = (&entries[0], &entries[1]);
    assert_eq!(line_entry["code"], "invalid_json", "{line_entry}");
    assert_eq!(
        line_entry["body"], "{\"type\":\"track\",\u{fffd}}",
        "{line_entry}"
    );
    assert_eq!(time_entry["field"], "timestamp", "{time_entry}");
    assert!(
        time_entry["message"].as_str().unwrap().contains('\u{fffd}'),
        "the message quotes the field: {time_entry}"
    );
}

/// The counters an operator reads beside the problem log: count records counted, and the SQLite
/// dedup index's keys, generations and early evictions (the example config names the last).
#[test]
fn metrics_show_count_records_and_the_dedup_index() {
    let server = TestServer::start();
    let records: Vec<String> = ["product_viewed", "cart"]
        .iter()
        .map(|stage| {
            json!({"funnel": "checkout", "stage": stage, "window_start": Timestamp::from_millis(T0).to_string(), "window_s": 60, "count": 3}).to_string()
        })
        .collect();
    server.post_counts(&records);
    // A re-send is a duplicate: counted once.
    server.post_counts(&records);
    assert_eq!(
        server
            .ingest("/v1/track", &track("Product Viewed", "m1", T0))
            .status,
        200
    );
    let text = server.get("/metrics", &server.viewer).body;
    let text = text.as_str().unwrap();
    let sample = |name: &str| {
        text.lines()
            .find_map(|line| {
                line.strip_prefix(name)?
                    .strip_prefix(' ')?
                    .parse::<u64>()
                    .ok()
            })
            .unwrap_or_else(|| panic!("{name} is not in /metrics:\n{text}"))
    };
    assert_eq!(sample("revloop_ingest_count_records_total"), 2);
    // Two count records and one message, each remembered by one key.
    assert_eq!(sample("revloop_dedup_keys"), 3);
    assert_eq!(sample("revloop_dedup_generations"), 1);
    assert_eq!(sample("revloop_dedup_evicted_early_total"), 0);
    let last_commit = text
        .lines()
        .find_map(|line| line.strip_prefix("revloop_last_commit_timestamp_seconds "))
        .and_then(|value| value.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no last commit time in /metrics:\n{text}"));
    // On the wall clock (the operator's), which the test server's manual clock is not.
    assert!(last_commit > 1.7e9, "{last_commit}");
    // The detector's gauges are per funnel.
    assert!(
        text.lines()
            .any(|line| line.starts_with("revloop_detector_live{funnel=\"checkout\"} ")),
        "{text}"
    );
}
