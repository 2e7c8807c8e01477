//! Per-message acceptance on the batch endpoints, against the real server: a batch with bad
//! messages still counts every valid one exactly once, answers 200, and lists each bad one
//! with its place, field and code. Dimension values that cannot be kept as sent are counted
//! under a marker, with a notice.

mod common;

use serde_json::{Value, json};

use common::*;
use revloop_core::Timestamp;

const DAY: i64 = 24 * 60 * MINUTE;

/// A track call at `at` with `extra` fields merged in, as JSON text.
fn message(event: &str, id: &str, at: i64, extra: Value) -> String {
    let mut message = track(event, id, at);
    for (key, value) in extra.as_object().unwrap() {
        message[key] = value.clone();
    }
    message.to_string()
}

/// The bad messages of each kind, as JSON text, with the place, field and code each must be
/// rejected with. Some are written by hand: a lone surrogate cannot live in a `Value`.
fn bad_messages() -> Vec<(String, &'static str, &'static str)> {
    let at = |ms: i64| Timestamp::from_millis(ms).to_string();
    vec![
        (
            message("Product Viewed", "bad-1970", T0, json!({"timestamp": at(0)})),
            "timestamp",
            "timestamp_out_of_range",
        ),
        (
            message("Product Viewed", "bad-ahead", T0 + 2 * DAY, json!({})),
            "timestamp",
            "timestamp_out_of_range",
        ),
        (
            message("Product Viewed", "bad-old", T0 - 31 * DAY, json!({})),
            "timestamp",
            "timestamp_out_of_range",
        ),
        (
            message(
                "Order Completed",
                "bad-revenue",
                T0,
                json!({"properties": {"revenue": 90_000_000_000_000_000_i64}}),
            ),
            "properties.revenue",
            "out_of_range",
        ),
        (
            json!({"type": "track", "event": "Product Viewed", "messageId": "bad-anon"})
                .to_string(),
            "userId",
            "missing_identity",
        ),
        (
            r#"{"type":"track","event":"Product \ud800Viewed","userId":"u","messageId":"bad-name"}"#
                .to_owned(),
            "event",
            "invalid_json",
        ),
    ]
}

/// Nine valid messages: four views, three adds, two checkouts.
fn valid_messages() -> Vec<String> {
    let events = [
        ("Product Viewed", 4),
        ("Product Added", 3),
        ("Checkout Started", 2),
    ];
    events
        .iter()
        .flat_map(|(event, n)| {
            (0..*n).map(move |i| message(event, &format!("{event}-{i}"), T0, json!({})))
        })
        .collect()
}

/// A valid view whose device type is a lone surrogate: counted under `(invalid)`.
fn surrogate_message() -> String {
    let at = Timestamp::from_millis(T0).to_string();
    format!(
        r#"{{"type":"track","event":"Product Viewed","userId":"u","messageId":"sur","timestamp":"{at}","context":{{"device":{{"type":"\ud800"}}}}}}"#
    )
}

fn post(server: &TestServer, path: &str, content_type: &str, body: &str) -> Reply {
    let basic = server.basic();
    let headers = [
        ("Authorization", basic.as_str()),
        ("Content-Type", content_type),
    ];
    server.post(path, &headers, body.as_bytes())
}

/// `(index or line, field, code)` of every listed rejection.
fn rejections(reply: &Reply, place: &str) -> Vec<(i64, String, String)> {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    reply.body["rejections"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|r| {
                    (
                        r[place].as_i64().unwrap(),
                        text(&r["field"]),
                        text(&r["code"]),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn counts_of(reply: &Reply) -> [i64; 5] {
    ["counted", "duplicates", "late", "ignored", "rejected"]
        .map(|key| reply.body[key].as_i64().unwrap_or(-1))
}

/// The valid messages first, then the surrogate one, then one bad message of each kind.
fn mixed_messages() -> (Vec<String>, Vec<(i64, String, String)>) {
    let mut messages = valid_messages();
    messages.push(surrogate_message());
    let mut want = Vec::new();
    for (json, field, code) in bad_messages() {
        want.push((messages.len() as i64, field.to_owned(), code.to_owned()));
        messages.push(json);
    }
    (messages, want)
}

#[test]
fn a_batch_counts_its_valid_messages_and_lists_each_bad_one() {
    let server = TestServer::start();
    let (messages, want) = mixed_messages();
    let body = format!(r#"{{"batch":[{}]}}"#, messages.join(","));
    let reply = post(&server, "/v1/batch", "application/json", &body);
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(counts_of(&reply), [10, 0, 0, 0, 6], "{}", reply.body);
    assert_eq!(rejections(&reply, "index"), want, "{}", reply.body);
    let notices = &reply.body["notices"];
    assert_eq!(notices[0]["index"], 9, "{}", reply.body);
    assert_eq!(notices[0]["field"], "context.device.type");
    assert_eq!(notices[0]["code"], "invalid_value");
    let window = (T0 - 60 * MINUTE, T0 + 60 * MINUTE);
    assert_eq!(server.stage_counts(window.0, window.1, ""), [5, 3, 2, 0, 0]);
    assert_eq!(
        server.stage_counts(window.0, window.1, "&device=%28invalid%29"),
        [1, 0, 0, 0, 0]
    );

    // Resent whole, as an SDK might: every valid message is a duplicate, every bad one is
    // rejected again, and nothing is counted twice.
    let again = post(&server, "/v1/batch", "application/json", &body);
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(counts_of(&again), [0, 10, 0, 0, 6], "{}", again.body);
    assert_eq!(rejections(&again, "index"), want);
    assert_eq!(server.stage_counts(window.0, window.1, ""), [5, 3, 2, 0, 0]);

    let metrics = server.get("/metrics", &server.viewer);
    let text = metrics.body.as_str().unwrap();
    assert!(
        text.contains(
            "revloop_ingest_messages_rejected_total{reason=\"timestamp_out_of_range\"} 6"
        ),
        "{text}"
    );
}

#[test]
fn an_ndjson_body_counts_its_valid_lines_and_lists_each_bad_one_by_line() {
    let server = TestServer::start();
    let (mut messages, _) = mixed_messages();
    messages.insert(3, "not json at all".to_owned());
    messages.insert(5, String::new());
    let body = messages.join("\n");
    let want: Vec<(i64, String, String)> = messages
        .iter()
        .enumerate()
        .filter(|(_, line)| line.contains("bad-") || line.starts_with("not json"))
        .map(|(i, line)| {
            let (field, code) = bad_messages()
                .into_iter()
                .find(|(json, _, _)| json == line)
                .map_or(("", "invalid_json"), |(_, field, code)| (field, code));
            (i as i64 + 1, field.to_owned(), code.to_owned())
        })
        .collect();
    for round in 0..2 {
        let reply = post(
            &server,
            "/api/v1/events/bulk",
            "application/x-ndjson",
            &body,
        );
        assert_eq!(reply.status, 200, "{}", reply.body);
        let (counted, duplicates) = if round == 0 { (10, 0) } else { (0, 10) };
        assert_eq!(
            counts_of(&reply),
            [counted, duplicates, 0, 0, 7],
            "{}",
            reply.body
        );
        assert_eq!(rejections(&reply, "line"), want, "{}", reply.body);
    }
    assert_eq!(
        server.stage_counts(T0 - 60 * MINUTE, T0 + 60 * MINUTE, ""),
        [5, 3, 2, 0, 0]
    );
}

#[test]
fn a_full_batch_lists_every_rejection() {
    let server = TestServer::start();
    let batch: Vec<Value> = (0..2_500)
        .map(|i| match i % 2 {
            0 => track("Product Viewed", &format!("ok-{i}"), T0),
            _ => {
                json!({"type": "track", "event": "Product Viewed", "messageId": format!("bad-{i}")})
            }
        })
        .collect();
    let reply = server.ingest("/v1/batch", &json!({ "batch": batch }));
    assert_eq!(reply.status, 200);
    assert_eq!(counts_of(&reply), [1_250, 0, 0, 0, 1_250]);
    let listed = rejections(&reply, "index");
    assert_eq!(listed.len(), 1_250);
    assert!(
        listed
            .iter()
            .all(|(i, _, code)| i % 2 == 1 && code == "missing_identity")
    );
    assert_eq!(reply.body.get("unlisted"), None, "{}", reply.body);
}

#[test]
fn dimension_values_that_read_like_markers_or_run_long_are_marked_with_a_notice() {
    let server = TestServer::start();
    let long = "é".repeat(100);
    let device = |id: &str, value: &str| {
        let mut message = track("Product Viewed", id, T0);
        message["context"] = json!({"device": {"type": value}});
        message
    };
    let cases = [
        ("other", "value_escaped", "%5Cother"),
        ("(none)", "value_escaped", "%5C%28none%29"),
        ("\\x", "value_escaped", "%5C%5Cx"),
        (long.as_str(), "value_cut", ""),
        ("mobile", "", "mobile"),
    ];
    for (i, (value, code, query)) in cases.iter().enumerate() {
        let reply = server.ingest(
            "/v1/batch",
            &json!({"batch": [device(&format!("d{i}"), value)]}),
        );
        assert_eq!(reply.body["counted"], 1, "{value}: {}", reply.body);
        let notice = &reply.body["notices"][0];
        assert_eq!(
            notice["code"].as_str().unwrap_or_default(),
            *code,
            "{value}: {}",
            reply.body
        );
        if !code.is_empty() {
            assert_eq!(notice["field"], "context.device.type");
        }
        if !query.is_empty() {
            let filter = format!("&device={query}");
            let counts = server.stage_counts(T0 - 60 * MINUTE, T0 + 60 * MINUTE, &filter);
            assert_eq!(counts, [1, 0, 0, 0, 0], "{value}");
        }
    }
    // The fold buckets themselves stay apart from the literal values.
    for marker in ["other", "%28none%29"] {
        let filter = format!("&device={marker}");
        let counts = server.stage_counts(T0 - 60 * MINUTE, T0 + 60 * MINUTE, &filter);
        assert_eq!(counts[0], 0, "{marker}");
    }
}

#[test]
fn a_single_call_still_refuses_its_one_bad_message() {
    let server = TestServer::start();
    let reply = server.ingest(
        "/v1/track",
        &json!({"userId": "u1", "event": "E", "timestamp": "1970-01-01T00:00:00Z"}),
    );
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert_eq!(reply.body["error"]["code"], "timestamp_out_of_range");
    // Its 200 reply is the batch's reply, notices included.
    let reply = post(
        &server,
        "/v1/track",
        "application/json",
        &surrogate_message(),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["counted"], 1);
    assert_eq!(reply.body["rejected"], 0);
    assert_eq!(reply.body["notices"][0]["code"], "invalid_value");
}

#[test]
fn an_unusable_revenue_or_a_nul_in_a_dimension_costs_only_that_part() {
    let server = TestServer::start();
    let order = |id: &str, properties: Value| {
        let mut message = track("Order Completed", id, T0);
        message["properties"] = properties;
        message
    };
    let mut nul_device = track("Product Viewed", "nul-device", T0);
    nul_device["context"] = json!({"device": {"type": "mo\u{0}bile"}});
    let batch = json!({"batch": [
        order("rev-text", json!({"revenue": "abc"})),
        order("rev-object", json!({"revenue": {"amount": 5}, "total": "5.00"})),
        order("rev-currency", json!({"revenue": "10.00", "currency": ["USD"]})),
        order("rev-good", json!({"revenue": "12.34"})),
        // An unusable `total` is never read when `revenue` is there.
        order("rev-total-unread", json!({"revenue": "1.00", "total": {}})),
        nul_device,
    ]});
    let reply = server.ingest("/v1/batch", &batch);
    assert_eq!(counts_of(&reply), [6, 0, 0, 0, 0], "{}", reply.body);
    let notices: Vec<(i64, String, String)> = reply.body["notices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
            (
                n["index"].as_i64().unwrap(),
                text(&n["field"]),
                text(&n["code"]),
            )
        })
        .collect();
    let want = [
        (0, "properties.revenue", "revenue_dropped"),
        (1, "properties.revenue", "revenue_dropped"),
        (2, "properties.currency", "revenue_dropped"),
        (5, "context.device.type", "invalid_value"),
    ]
    .map(|(i, f, c)| (i, f.to_owned(), c.to_owned()));
    assert_eq!(notices, want, "{}", reply.body);

    // The metrics of the two hours around T0 in one window, with `filter` appended.
    let metrics_around_t0 = |filter: &str| {
        let path = format!(
            "/api/v1/funnels/checkout/metrics?from={}&to={}&step=1d{filter}",
            Timestamp::from_millis(T0 - 60 * MINUTE),
            Timestamp::from_millis(T0 + 60 * MINUTE)
        );
        server.get(&path, &server.viewer)
    };
    // Only the two usable revenues were booked; every order counted.
    let metrics = metrics_around_t0("");
    let revenue: i64 = metrics.body["windows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["stages"][4]["revenue"]["minor"].as_i64().unwrap())
        .sum();
    assert_eq!(revenue, 1234 + 100, "{}", metrics.body);

    // The NUL value is counted under `(invalid)`, which the metrics API calls tracked.
    let counts = server.stage_counts(T0 - 60 * MINUTE, T0 + 60 * MINUTE, "&device=%28invalid%29");
    assert_eq!(counts, [1, 0, 0, 0, 0]);
    let filtered = metrics_around_t0("&device=%28invalid%29");
    assert_eq!(
        filtered.body["segment"]["status"], "tracked",
        "{}",
        filtered.body
    );
}
