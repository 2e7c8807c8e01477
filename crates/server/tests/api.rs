//! The HTTP API against the real server, started in-process on port 0 with a temporary SQLite
//! database and a manual clock. Each test reads as a table of requests and what must come back.

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde_json::{Value, json};

use common::*;
use revloop_core::{Config, Timestamp};
use revloop_server::http::auth::base64_encode;

#[test]
fn a_tracked_event_is_counted_in_its_stage() {
    let server = TestServer::start();
    let reply = server.ingest(
        "/v1/track",
        &json!({"userId": "u1", "event": "Product Viewed", "messageId": "m1"}),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["success"], true);
    assert_eq!(reply.body["counted"], 1);
    assert_eq!(
        server.stage_counts(T0 - 60 * MINUTE, T0 + 60 * MINUTE, ""),
        [1, 0, 0, 0, 0]
    );
}

/// One bad input: where it goes, what it sends, and the status, code and place that must come back.
struct BadCase {
    name: &'static str,
    path: &'static str,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    status: u16,
    code: &'static str,
    place: Option<(&'static str, Value)>,
}

#[test]
fn bad_input_gets_a_clear_4xx_and_stores_nothing() {
    // Bad messages inside a batch are refused one by one: see `ingest_batches.rs`.
    let server = TestServer::start();
    let auth = || {
        vec![
            ("Authorization", server.basic()),
            ("Content-Type", "application/json".to_owned()),
        ]
    };
    let body = |value: Value| value.to_string().into_bytes();
    let long_ago = Timestamp::from_millis(T0 - 400 * 24 * 60 * MINUTE).to_string();
    let far_ahead = Timestamp::from_millis(T0 + 3 * 24 * 60 * MINUTE).to_string();
    let many: Vec<Value> = (0..2_501)
        .map(|i| json!({"type": "identify", "userId": format!("u{i}")}))
        .collect();
    let big_property = "x".repeat(40 * 1024);
    let cases = vec![
        BadCase {
            name: "malformed JSON",
            path: "/v1/track",
            headers: auth(),
            body: b"{\"userId\": \"u1\", \"event\": ".to_vec(),
            status: 400,
            code: "invalid_json",
            place: None,
        },
        BadCase {
            name: "wrong type",
            path: "/v1/track",
            headers: auth(),
            body: body(json!({"userId": "u1", "event": 5})),
            status: 400,
            code: "wrong_type",
            place: Some(("field", json!("event"))),
        },
        BadCase {
            name: "wrong type deep",
            path: "/v1/track",
            headers: auth(),
            body: body(
                json!({"userId": "u", "event": "E", "context": {"device": {"type": []}}, "properties": 7}),
            ),
            status: 400,
            code: "wrong_type",
            place: Some(("field", json!("properties"))),
        },
        BadCase {
            name: "missing identity",
            path: "/v1/track",
            headers: auth(),
            body: body(json!({"event": "Product Viewed"})),
            status: 400,
            code: "missing_identity",
            place: Some(("field", json!("userId"))),
        },
        BadCase {
            name: "missing event",
            path: "/v1/track",
            headers: auth(),
            body: body(json!({"userId": "u1"})),
            status: 400,
            code: "invalid_message",
            place: Some(("field", json!("event"))),
        },
        BadCase {
            name: "no write key",
            path: "/v1/track",
            headers: vec![],
            body: body(json!({"userId": "u1", "event": "E"})),
            status: 401,
            code: "unauthorized",
            place: None,
        },
        BadCase {
            name: "unknown write key",
            path: "/v1/track",
            headers: vec![(
                "Authorization",
                format!("Basic {}", base64_encode(b"rl_nope:")),
            )],
            body: body(json!({"userId": "u1", "event": "E"})),
            status: 401,
            code: "unauthorized",
            place: None,
        },
        BadCase {
            name: "unknown write key in body",
            path: "/v1/track",
            headers: vec![],
            body: body(json!({"userId": "u1", "event": "E", "writeKey": "rl_nope"})),
            status: 401,
            code: "unauthorized",
            place: None,
        },
        BadCase {
            name: "viewer token cannot ingest",
            path: "/v1/track",
            headers: vec![("Authorization", format!("Bearer {}", server.viewer))],
            body: body(json!({"userId": "u1", "event": "E"})),
            status: 403,
            code: "forbidden",
            place: None,
        },
        BadCase {
            name: "message too large",
            path: "/v1/track",
            headers: auth(),
            body: body(json!({"userId": "u1", "event": "E", "properties": {"x": big_property}})),
            status: 413,
            code: "too_large",
            place: None,
        },
        BadCase {
            name: "batch too large",
            path: "/v1/batch",
            headers: auth(),
            body: body(
                json!({"batch": (0..20).map(|_| json!({"type": "track", "userId": "u1", "event": "E", "properties": {"x": "y".repeat(30_000)}})).collect::<Vec<_>>()}),
            ),
            status: 413,
            code: "too_large",
            place: None,
        },
        BadCase {
            name: "too many messages",
            path: "/v1/batch",
            headers: auth(),
            body: body(json!({"batch": many})),
            status: 400,
            code: "too_many_messages",
            place: None,
        },
        BadCase {
            name: "timestamp long ago",
            path: "/v1/track",
            headers: auth(),
            body: body(json!({"userId": "u1", "event": "E", "timestamp": long_ago})),
            status: 400,
            code: "timestamp_out_of_range",
            place: Some(("field", json!("timestamp"))),
        },
        BadCase {
            name: "timestamp far ahead",
            path: "/v1/track",
            headers: auth(),
            body: body(json!({"userId": "u1", "event": "E", "timestamp": far_ahead})),
            status: 400,
            code: "timestamp_out_of_range",
            place: Some(("field", json!("timestamp"))),
        },
        BadCase {
            name: "timestamp not RFC 3339",
            path: "/v1/track",
            headers: auth(),
            body: body(json!({"userId": "u1", "event": "E", "timestamp": "yesterday"})),
            status: 400,
            code: "wrong_type",
            place: Some(("field", json!("timestamp"))),
        },
        BadCase {
            name: "invalid UTF-8",
            path: "/v1/track",
            headers: auth(),
            body: b"{\"userId\": \"u\xff1\", \"event\": \"E\"}".to_vec(),
            status: 400,
            code: "invalid_utf8",
            place: None,
        },
        BadCase {
            name: "truncated gzip",
            path: "/v1/batch",
            headers: {
                let mut h = auth();
                h.push(("Content-Encoding", "gzip".into()));
                h
            },
            body: {
                let g = gzip(body(json!({"batch": [track("E", "a", T0)]})).as_slice());
                g[..g.len() / 2].to_vec()
            },
            status: 400,
            code: "bad_gzip",
            place: None,
        },
        BadCase {
            name: "batch is not an array",
            path: "/v1/batch",
            headers: auth(),
            body: body(json!({"batch": "nope"})),
            status: 400,
            code: "wrong_type",
            place: None,
        },
        BadCase {
            name: "unknown funnel in counts",
            path: "/api/v1/counts",
            headers: auth(),
            body: body(
                json!({"counts": [{"funnel": "nope", "stage": "cart", "window_start": Timestamp::from_millis(T0).to_string(), "count": 3}]}),
            ),
            status: 400,
            code: "invalid_message",
            place: Some(("field", json!("funnel"))),
        },
        BadCase {
            name: "unaligned counts window",
            path: "/api/v1/counts",
            headers: auth(),
            body: body(
                json!({"counts": [{"funnel": "checkout", "stage": "cart", "window_start": Timestamp::from_millis(T0 + 1_000).to_string(), "count": 3}]}),
            ),
            status: 400,
            code: "invalid_message",
            place: Some(("field", json!("window_start"))),
        },
    ];
    for case in cases {
        let headers: Vec<(&str, &str)> =
            case.headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let reply = server.post(case.path, &headers, &case.body);
        assert_eq!(reply.status, case.status, "{}: {}", case.name, reply.body);
        let error = &reply.body["error"];
        assert_eq!(error["code"], case.code, "{}: {}", case.name, reply.body);
        assert!(
            !error["message"].as_str().unwrap_or("").is_empty(),
            "{}: no message",
            case.name
        );
        if let Some((key, want)) = case.place {
            let details = error["details"]
                .as_array()
                .unwrap_or_else(|| panic!("{}: no details in {}", case.name, reply.body));
            assert!(
                details.iter().any(|d| d[key] == want),
                "{}: no detail with {key} = {want} in {}",
                case.name,
                reply.body
            );
        }
    }
    // Every refused request was refused whole: its good messages were not stored either.
    assert_eq!(
        server.stage_counts(T0 - 60 * MINUTE, T0 + 60 * MINUTE, ""),
        [0, 0, 0, 0, 0]
    );
    let metrics = server.get("/metrics", &server.viewer);
    let text = metrics.body.as_str().unwrap();
    assert!(
        text.contains("revloop_ingest_rejected_total{reason=\"invalid_json\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("revloop_ingest_rejected_total{reason=\"unauthorized\"} 3"),
        "{text}"
    );
}

#[test]
fn a_batch_keeps_its_good_messages_when_one_is_bad_and_a_corrected_resend_adds_the_rest() {
    let server = TestServer::start();
    let batch = json!({"batch": [
        track("Product Viewed", "ok-1", T0),
        {"type": "track", "event": "Product Added", "messageId": "bad-1"},
        track("Product Viewed", "ok-2", T0),
        {"type": "track", "userId": "u", "event": 12, "messageId": "bad-2"},
        {"userId": "u1", "event": "E"},
    ]});
    let reply = server.ingest("/v1/batch", &batch);
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        (
            reply.body["counted"].as_i64(),
            reply.body["rejected"].as_i64()
        ),
        (Some(2), Some(3))
    );
    let places: Vec<(i64, &str, &str)> = reply.body["rejections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let text = |key: &str| d[key].as_str().unwrap();
            (d["index"].as_i64().unwrap(), text("field"), text("code"))
        })
        .collect();
    assert_eq!(
        places,
        [
            (1, "userId", "missing_identity"),
            (3, "event", "wrong_type"),
            (4, "type", "invalid_message")
        ]
    );
    assert_eq!(
        server.stage_counts(T0 - 60 * MINUTE, T0 + 60 * MINUTE, ""),
        [2, 0, 0, 0, 0]
    );
    // Corrected and resent, only the corrected message is new.
    let fixed = json!({"batch": [track("Product Viewed", "ok-1", T0), track("Product Viewed", "ok-2", T0), track("Product Added", "bad-1", T0)]});
    let again = server.ingest("/v1/batch", &fixed);
    assert_eq!(
        (
            again.body["counted"].as_i64(),
            again.body["duplicates"].as_i64()
        ),
        (Some(1), Some(2))
    );
    assert_eq!(
        server.stage_counts(T0 - 60 * MINUTE, T0 + 60 * MINUTE, ""),
        [2, 1, 0, 0, 0]
    );
}

#[test]
fn a_message_id_is_counted_once() {
    let server = TestServer::start();
    let batch = json!({"batch": [track("Product Viewed", "dup", T0), track("Product Viewed", "dup", T0), track("Product Viewed", "other", T0)]});
    let reply = server.ingest("/v1/batch", &batch);
    assert_eq!(
        (
            reply.body["counted"].as_i64(),
            reply.body["duplicates"].as_i64()
        ),
        (Some(2), Some(1))
    );
    let again = server.ingest("/v1/batch", &batch);
    assert_eq!(
        (
            again.body["counted"].as_i64(),
            again.body["duplicates"].as_i64()
        ),
        (Some(0), Some(3))
    );
    // Without a messageId, an identical retry is recognised by its content.
    let anonymous = json!({"userId": "u1", "event": "Product Viewed", "timestamp": Timestamp::from_millis(T0).to_string()});
    assert_eq!(server.ingest("/v1/track", &anonymous).body["counted"], 1);
    assert_eq!(server.ingest("/v1/track", &anonymous).body["duplicates"], 1);
    // The same body as another call type is another message.
    assert_eq!(server.ingest("/v1/identify", &anonymous).body["counted"], 0);
    assert_eq!(
        server.ingest("/v1/identify", &anonymous).body["duplicates"],
        1
    );
    assert_eq!(
        server
            .ingest("/v1/page", &json!({"userId": "u1", "name": "Home"}))
            .body["ignored"],
        1
    );
    assert_eq!(
        server
            .ingest("/v1/screen", &json!({"userId": "u1", "name": "Home"}))
            .body["ignored"],
        1
    );
    assert_eq!(
        server.stage_counts(T0 - 60 * MINUTE, T0 + 60 * MINUTE, ""),
        [3, 0, 0, 0, 0]
    );
}

#[test]
fn gzip_bodies_and_body_write_keys_are_accepted() {
    let server = TestServer::start();
    let batch =
        json!({"batch": [track("Product Viewed", "g1", T0), track("Product Added", "g2", T0)]});
    let reply = server.post(
        "/v1/batch",
        &[
            ("Authorization", &server.basic()),
            ("Content-Encoding", "gzip"),
            ("Content-Type", "application/json"),
        ],
        &gzip(batch.to_string().as_bytes()),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    let with_key =
        json!({"writeKey": server.write_key, "batch": [track("Checkout Started", "g3", T0)]});
    assert_eq!(
        server
            .post("/v1/batch", &[], with_key.to_string().as_bytes())
            .status,
        200
    );
    assert_eq!(
        server.stage_counts(T0 - 60 * MINUTE, T0 + 60 * MINUTE, ""),
        [1, 1, 1, 0, 0]
    );
}

#[test]
fn late_events_update_their_window_until_the_allowed_lateness() {
    let server = TestServer::start();
    let within = track("Product Viewed", "within", T0 - 50 * MINUTE);
    let beyond = track("Product Viewed", "beyond", T0 - 90 * MINUTE);
    let reply = server.ingest("/v1/batch", &json!({"batch": [within, beyond]}));
    assert_eq!(
        (reply.body["counted"].as_i64(), reply.body["late"].as_i64()),
        (Some(1), Some(1))
    );
    let metrics = server.get(
        &format!(
            "/api/v1/funnels/checkout/metrics?from={}&to={}&step=1h",
            Timestamp::from_millis(T0 - 120 * MINUTE),
            Timestamp::from_millis(T0)
        ),
        &server.viewer,
    );
    // Two hours back is well within the minutes kept (43 days by default).
    assert_eq!(metrics.body["resolution"]["hourly"], json!(false));
    assert_eq!(
        metrics.body["resolution"]["hourly_before"],
        json!("2026-10-15T10:00:00Z")
    );
    let windows = metrics.body["windows"].as_array().unwrap();
    let first_stage = |w: &Value| {
        (
            w["stages"][0]["count"].as_i64().unwrap(),
            w["stages"][0]["late"].as_i64().unwrap(),
        )
    };
    // 08:00-09:00 holds the late one (tallied, not counted); 09:00-10:00 the one within lateness.
    assert_eq!(
        windows.iter().map(first_stage).collect::<Vec<_>>(),
        [(0, 1), (1, 0)]
    );
    let text = server.get("/metrics", &server.viewer).body;
    assert!(
        text.as_str()
            .unwrap()
            .contains("revloop_ingest_late_total 1")
    );
}

#[test]
fn client_clock_skew_is_corrected_with_sent_at() {
    let server = TestServer::start();
    // The client's clock is two hours fast: it stamped and sent the event "at 12:00".
    let ahead = Timestamp::from_millis(T0 + 120 * MINUTE).to_string();
    let message = json!({"userId": "u1", "event": "Product Viewed", "messageId": "skew", "timestamp": ahead, "sentAt": ahead});
    assert_eq!(server.ingest("/v1/track", &message).body["counted"], 1);
    assert_eq!(server.stage_counts(T0, T0 + MINUTE, ""), [1, 0, 0, 0, 0]);
}

#[test]
fn rollups_sum_minutes_into_aligned_windows_with_conversion() {
    let server = TestServer::start();
    let stages = [
        "Product Viewed",
        "Product Added",
        "Checkout Started",
        "Payment Info Entered",
        "Order Completed",
    ];
    let mut batch = Vec::new();
    // Minute m gets 10 views, then 5, 2, 2, 1 down the funnel; minutes 0..10 before T0.
    for minute in 0..10 {
        let at = T0 - (10 - minute) * MINUTE;
        for (stage, n) in stages.iter().zip([10, 5, 2, 2, 1]) {
            for i in 0..n {
                let mut event = track(stage, &format!("{minute}-{stage}-{i}"), at + i64::from(i));
                event["context"] =
                    json!({"device": {"type": if i % 2 == 0 { "mobile" } else { "desktop" }}});
                batch.push(event);
            }
        }
    }
    assert_eq!(
        server
            .ingest("/v1/batch", &json!({ "batch": batch }))
            .status,
        200
    );
    let query = |step: &str, filter: &str| {
        let reply = server.get(
            &format!(
                "/api/v1/funnels/checkout/metrics?from={}&to={}&step={step}{filter}",
                Timestamp::from_millis(T0 - 10 * MINUTE),
                Timestamp::from_millis(T0)
            ),
            &server.viewer,
        );
        assert_eq!(reply.status, 200, "{}", reply.body);
        reply.body
    };
    let by_minute = query("1m", "");
    assert_eq!(by_minute["windows"].as_array().unwrap().len(), 10);
    let five = query("5m", "");
    let windows = five["windows"].as_array().unwrap();
    assert_eq!(windows.len(), 2);
    let first = &windows[0]["stages"];
    assert_eq!(first[0]["count"], 50);
    assert_eq!(first[0]["step_conversion"], 0.5);
    assert_eq!(first[0]["drop_off_rate"], 0.5);
    assert_eq!(first[2]["step_conversion"], 1.0);
    assert_eq!(first[4]["overall_conversion"], 0.1);
    assert_eq!(first[4]["step_conversion"], Value::Null);
    let hourly = query("1h", "");
    let total: i64 = hourly["windows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["stages"][0]["count"].as_i64().unwrap())
        .sum();
    assert_eq!(total, 100);
    let mobile = query("1h", "&device=mobile");
    let mobile_views: i64 = mobile["windows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["stages"][0]["count"].as_i64().unwrap())
        .sum();
    assert_eq!(mobile_views, 50);
    let bad = server.get(
        "/api/v1/funnels/checkout/metrics?colour=red",
        &server.viewer,
    );
    assert_eq!(
        (
            bad.status,
            bad.body["error"]["details"][0]["field"].as_str()
        ),
        (400, Some("colour"))
    );
    let bad_step = server.get("/api/v1/funnels/checkout/metrics?step=90s", &server.viewer);
    assert_eq!(bad_step.status, 400);
    assert_eq!(
        server
            .get("/api/v1/funnels/nope/metrics", &server.viewer)
            .status,
        404
    );
    assert_eq!(
        server
            .get("/api/v1/funnels/checkout/metrics", &server.write_key)
            .status,
        403
    );
}

#[test]
fn pre_aggregated_counts_spread_over_their_window_and_are_idempotent() {
    let server = TestServer::start();
    let start = T0 - 60 * MINUTE;
    let records = json!({"counts": [
        {"funnel": "checkout", "stage": "product_viewed", "window_start": Timestamp::from_millis(start).to_string(), "window_s": 300, "count": 103, "dimensions": {"device": "mobile"}},
        {"funnel": "checkout", "stage": "order", "window_start": Timestamp::from_millis(start).to_string(), "window_s": 300, "count": 4, "revenue": "340.00"},
    ]});
    let reply = server.ingest("/api/v1/counts", &records);
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["counted"], 2);
    assert_eq!(
        server.ingest("/api/v1/counts", &records).body["duplicates"],
        2
    );
    let per_minute = server.get(
        &format!(
            "/api/v1/funnels/checkout/metrics?from={}&to={}&step=1m",
            Timestamp::from_millis(start),
            Timestamp::from_millis(start + 5 * MINUTE)
        ),
        &server.viewer,
    );
    let views: Vec<i64> = per_minute.body["windows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["stages"][0]["count"].as_i64().unwrap())
        .collect();
    assert_eq!(views, [21, 21, 21, 20, 20]);
    assert_eq!(
        server.stage_counts(start, start + 5 * MINUTE, "&device=mobile"),
        [103, 0, 0, 0, 0]
    );
    let ndjson = format!(
        "{}\n",
        json!({"funnel": "checkout", "stage": "cart", "window_start": Timestamp::from_millis(start).to_string(), "count": 7, "id": "warehouse-load-1"})
    );
    let reply = server.post(
        "/api/v1/counts",
        &[
            ("Authorization", &server.basic()),
            ("Content-Type", "application/x-ndjson"),
        ],
        ndjson.as_bytes(),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        server.stage_counts(start, start + 5 * MINUTE, ""),
        [103, 7, 0, 0, 4]
    );
}

#[test]
fn the_read_api_lists_funnels_and_checks_roles() {
    let server = TestServer::start();
    let order = json!({"userId": "u", "event": "Order Completed", "messageId": "o1",
        "properties": {"revenue": 120.5, "payment_method": "paypal"}, "context": {"device": {"type": "mobile"}}});
    assert_eq!(server.ingest("/v1/track", &order).status, 200);
    let funnels = server.get("/api/v1/funnels", &server.viewer);
    assert_eq!(funnels.status, 200);
    let funnel = &funnels.body["funnels"][0];
    assert_eq!(funnel["id"], "checkout");
    assert_eq!(funnel["stages"][4]["event"], "Order Completed");
    assert_eq!(funnel["average_order_value"]["minor"], 8500);
    let device = funnels.body["dimensions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "device")
        .unwrap();
    assert_eq!(device["values"], json!(["mobile"]));
    assert_eq!(server.get("/api/v1/funnels", "rl_wrong").status, 401);
    assert_eq!(server.get("/api/v1/funnels", &server.admin).status, 200);
    let health = server.get("/healthz", "");
    assert_eq!(
        (health.status, health.body["status"].as_str()),
        (200, Some("ok"))
    );
    // Ready once the detector has read its (empty) history and judges live.
    let ready = server.wait_for("/readyz", |body| body["detector"] == "live");
    assert_eq!(
        (ready["store"].as_bool(), ready["writer"].as_bool()),
        (Some(true), Some(true))
    );
    assert_eq!(server.get("/metrics", "").status, 401);
    server.clock.0.fetch_add(MINUTE, Ordering::SeqCst);
    assert_eq!(server.get("/nowhere", "").status, 404);
    let wrong_method = server.get("/v1/track", "");
    assert_eq!(
        (
            wrong_method.status,
            wrong_method.body["error"]["code"].as_str()
        ),
        (405, Some("method_not_allowed"))
    );
}

/// The same server on the real PostgreSQL named by `REVLOOP_TEST_DATABASE_URL`, in a schema of
/// its own: ingest, dedup, rejection and the read API end to end.
#[test]
fn the_api_works_end_to_end_on_postgresql() {
    let Ok(url) = std::env::var("REVLOOP_TEST_DATABASE_URL") else {
        eprintln!("skipped: REVLOOP_TEST_DATABASE_URL is not set");
        return;
    };
    let schema = format!("revloop_api_test_{}", std::process::id());
    let config = Config::parse(Config::example_toml()).unwrap();
    let store = revloop_store::PostgresStore::open_in_schema(&url, &schema, &config).unwrap();
    let server = TestServer::start_with(config, Arc::new(store), tempfile::tempdir().unwrap());
    let batch = json!({"batch": [
        track("Product Viewed", "pg-1", T0),
        track("Product Viewed", "pg-1", T0),
        track("Product Added", "pg-2", T0 - 10 * MINUTE),
    ]});
    let reply = server.ingest("/v1/batch", &batch);
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        (
            reply.body["counted"].as_i64(),
            reply.body["duplicates"].as_i64()
        ),
        (Some(2), Some(1))
    );
    assert_eq!(server.ingest("/v1/batch", &batch).body["duplicates"], 3);
    let bad = server.ingest(
        "/v1/batch",
        &json!({"batch": [track("Product Viewed", "pg-3", T0), {"type": "track", "event": "E"}]}),
    );
    assert_eq!(
        (
            bad.status,
            bad.body["counted"].as_i64(),
            bad.body["rejected"].as_i64()
        ),
        (200, Some(1), Some(1)),
        "{}",
        bad.body
    );
    assert_eq!(
        server.stage_counts(T0 - 60 * MINUTE, T0 + 60 * MINUTE, ""),
        [2, 1, 0, 0, 0]
    );
    drop(server);
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    client
        .batch_execute(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .unwrap();
}

/// Two weeks of pre-aggregated counts end with a payment outage at the checkout step; the
/// detector, rebuilt from that history through the API, raises one P1 conversion alert for
/// the whole funnel (its segments are covered by it), and every detector endpoint answers
/// bad input with a clear 4xx.
#[test]
fn the_detector_finds_an_outage_in_the_history_and_its_api_checks_input() {
    use revloop_core::rng::Rng;
    let server = TestServer::start();
    let outage = (T0 - 60 * MINUTE, T0 - 30 * MINUTE);
    let mut rng = Rng::new(5);
    let windows = 15 * 24 * 12;
    let records = count_records(
        &mut rng,
        T0 - windows * 5 * MINUTE,
        windows,
        300,
        80.0,
        |at| (outage.0..outage.1).contains(&at),
    );
    server.post_counts(&records);
    let rebuild = |token: &str| {
        let mut response = server
            .agent
            .post(&format!("{}/api/v1/detector/rebuild", server.base))
            .header("Authorization", &format!("Bearer {token}"))
            .send_empty()
            .unwrap();
        let status = response.status().as_u16();
        (status, response.body_mut().read_to_string().unwrap())
    };
    assert_eq!(rebuild(&server.viewer).0, 403);
    let (status, body) = rebuild(&server.admin);
    assert_eq!(status, 200, "{body}");
    // The real reply reads into the wire type the CLI reads, and writes back the same JSON.
    let rebuilt: revloop_api::detector::Rebuilt = serde_json::from_str(&body).unwrap();
    assert_eq!(
        serde_json::to_value(&rebuilt).unwrap(),
        serde_json::from_str::<Value>(&body).unwrap()
    );

    let alerts = server.get("/api/v1/alerts?funnel=checkout", &server.viewer);
    assert_eq!(alerts.status, 200, "{}", alerts.body);
    let events = alerts.body["alerts"].as_array().unwrap();
    let opened: Vec<&Value> = events.iter().filter(|e| e["event"] == "opened").collect();
    assert_eq!(opened.len(), 1, "{events:#?}");
    let alert = opened[0];
    assert_eq!(
        (
            &alert["stage"],
            &alert["kind"],
            &alert["severity"],
            &alert["segment"]
        ),
        (
            &json!("checkout"),
            &json!("conversion"),
            &json!("P1"),
            &Value::Null
        )
    );
    let at = Timestamp::parse_rfc3339(alert["at"].as_str().unwrap()).unwrap();
    assert!(
        (outage.0 + MINUTE..=outage.0 + 6 * MINUTE).contains(&at.millis()),
        "opened at {at}"
    );
    assert!(events.iter().any(|e| e["event"] == "closed"), "{events:#?}");
    let open_now = server.get("/api/v1/alerts?open=true", &server.viewer);
    assert_eq!(open_now.body["alerts"].as_array().unwrap().len(), 0);

    let state = server.get("/api/v1/funnels/checkout/detector", &server.viewer);
    assert_eq!(state.status, 200, "{}", state.body);
    let series = state.body["series"].as_array().unwrap();
    assert_eq!(series.len(), 4);
    assert!(
        series.iter().all(|s| s["status"] == "normal"),
        "{series:#?}"
    );
    let baseline = server.get(
        "/api/v1/funnels/checkout/baseline?stage=checkout",
        &server.viewer,
    );
    assert_eq!(baseline.status, 200, "{}", baseline.body);
    let typed: revloop_api::detector::Baseline =
        serde_json::from_value(baseline.body.clone()).unwrap();
    assert_eq!(serde_json::to_value(&typed).unwrap(), baseline.body);
    let slots = baseline.body["slots"].as_array().unwrap();
    assert_eq!(slots.len(), 168);
    let learned = slots
        .iter()
        .filter_map(|s| s["drop_off_rate"].as_f64())
        .collect::<Vec<_>>();
    assert_eq!(learned.len(), 168);
    assert!(
        learned.iter().all(|d| (d - 0.25).abs() < 0.05),
        "{learned:?}"
    );

    for (path, token, status, field) in [
        ("/api/v1/alerts", &server.write_key, 403, None),
        ("/api/v1/alerts?limit=0", &server.viewer, 400, Some("limit")),
        (
            "/api/v1/alerts?open=maybe",
            &server.viewer,
            400,
            Some("open"),
        ),
        ("/api/v1/alerts?funnel=nope", &server.viewer, 404, None),
        (
            "/api/v1/alerts?colour=red",
            &server.viewer,
            400,
            Some("colour"),
        ),
        ("/api/v1/funnels/nope/detector", &server.viewer, 404, None),
        (
            "/api/v1/funnels/checkout/detector?segments=2",
            &server.viewer,
            400,
            Some("segments"),
        ),
        (
            "/api/v1/funnels/checkout/baseline?stage=order",
            &server.viewer,
            400,
            Some("stage"),
        ),
        (
            "/api/v1/funnels/checkout/baseline?segment=mobile",
            &server.viewer,
            400,
            Some("segment"),
        ),
        (
            "/api/v1/funnels/checkout/baseline?segment=device:tv",
            &server.viewer,
            404,
            None,
        ),
        (
            "/api/v1/funnels/checkout/baseline?segment=colour:red",
            &server.viewer,
            400,
            Some("segment"),
        ),
        // `dimension=value`, the CLI's form, reads the same as the older `dimension:value`.
        (
            "/api/v1/funnels/checkout/baseline?segment=device=tv",
            &server.viewer,
            404,
            None,
        ),
        (
            "/api/v1/funnels/checkout/baseline?segment=colour=red",
            &server.viewer,
            400,
            Some("segment"),
        ),
        (
            "/api/v1/funnels/checkout/baseline?stage=nope",
            &server.viewer,
            400,
            Some("stage"),
        ),
    ] {
        let reply = server.get(path, token);
        assert_eq!(reply.status, status, "{path}: {}", reply.body);
        assert!(
            reply.body["error"]["message"].is_string(),
            "{path}: {}",
            reply.body
        );
        if let Some(field) = field {
            assert_eq!(
                reply.body["error"]["details"][0]["field"], field,
                "{path}: {}",
                reply.body
            );
        }
    }
}

/// Each unknown funnel, stage or field is refused with the valid choices named: the stages
/// of a change, the funnels of a list, and only the fields the action itself takes.
#[test]
fn unknown_names_are_refused_with_the_valid_choices() {
    let server = TestServer::start();
    let message = |reply: &Reply| reply.body["error"]["message"].as_str().unwrap().to_owned();
    let change = server.post_json(
        "/api/v1/changes",
        &server.responder,
        &json!({"kind": "deploy", "summary": "v2", "stage": "paymnt"}),
    );
    assert_eq!(change.status, 400, "{}", change.body);
    assert_eq!(
        message(&change),
        "stage: no stage `paymnt` in any funnel; stages are: product_viewed, cart, checkout, payment, order"
    );
    let list = server.get("/api/v1/incidents?funnel=chekout", &server.viewer);
    assert_eq!(list.status, 404, "{}", list.body);
    assert_eq!(message(&list), "no funnel `chekout`; funnels are: checkout");
    let ack = server.post_json(
        "/api/v1/incidents/1/acknowledge",
        &server.responder,
        &json!({"colour": "red"}),
    );
    assert_eq!(ack.status, 400, "{}", ack.body);
    assert_eq!(
        message(&ack),
        "colour: does not apply to `acknowledge`, which takes `reason`"
    );
    let window_start = Timestamp::from_millis(T0).to_string();
    for (record, want) in [
        (
            json!({"funnel": "chekout", "stage": "cart", "window_start": window_start, "count": 3}),
            "no funnel `chekout` in the config; funnels are: checkout",
        ),
        (
            json!({"funnel": "checkout", "stage": "paymnt", "window_start": window_start, "count": 3}),
            "funnel `checkout` has no stage `paymnt`; stages are: product_viewed, cart, checkout, payment, order",
        ),
    ] {
        let counts = server.post(
            "/api/v1/counts",
            &[
                ("Authorization", &server.basic()),
                ("Content-Type", "application/json"),
            ],
            json!({"counts": [record]}).to_string().as_bytes(),
        );
        assert_eq!(counts.status, 400, "{}", counts.body);
        let detail = counts.body["error"]["details"][0]["message"]
            .as_str()
            .unwrap();
        assert_eq!(detail, want, "{}", counts.body);
        // Without credentials the body is not read: the names stay private.
        let anonymous = server.post(
            "/api/v1/counts",
            &[("Content-Type", "application/json")],
            json!({"counts": [record]}).to_string().as_bytes(),
        );
        assert_eq!(anonymous.status, 401, "{}", anonymous.body);
        assert!(
            !anonymous.body.to_string().contains("checkout"),
            "{}",
            anonymous.body
        );
    }
    let record = json!({"funnel": "checkout", "stage": "cart", "window_start": window_start,
        "count": 3, "dimensions": {"colour": "red"}});
    let counts = server.post(
        "/api/v1/counts",
        &[
            ("Authorization", &server.basic()),
            ("Content-Type", "application/json"),
        ],
        json!({"counts": [record]}).to_string().as_bytes(),
    );
    assert_eq!(counts.status, 400, "{}", counts.body);
    let detail = &counts.body["error"]["details"][0];
    assert_eq!(detail["field"], "dimensions.colour", "{}", counts.body);
    assert!(
        detail["message"]
            .as_str()
            .unwrap()
            .starts_with("no such dimension in the config; dimensions are: "),
        "{}",
        counts.body
    );
}

/// The metrics of one `device` value over the minute of T0: the filtered reply.
fn device_metrics(server: &TestServer, filter: &str) -> Value {
    let reply = server.get(
        &format!(
            "/api/v1/funnels/checkout/metrics?from={}&to={}&step=1m{filter}",
            Timestamp::from_millis(T0 - 120 * MINUTE),
            Timestamp::from_millis(T0 + MINUTE)
        ),
        &server.viewer,
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.body
}

/// Sum over windows of the first stage's `field`.
fn first_stage_sum(body: &Value, field: &str) -> i64 {
    body["windows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["stages"][0][field].as_i64().unwrap())
        .sum()
}

/// A `device` cap of 2: `mobile` and `desktop` are tracked, `tablet` (third) folds into
/// `other`. A query for `tablet` answers 200 with zero and says it was folded and why; one for
/// a value of a dimension below its cap says unseen; the fold bucket and tracked values say
/// tracked; the reply shows each dimension's fill against its cap.
fn check_folded_values_are_named(server: &TestServer) {
    for (i, device) in ["mobile", "desktop", "tablet", "mobile"].iter().enumerate() {
        let mut event = track("Product Viewed", &format!("fold-{i}"), T0);
        event["context"] = json!({"device": {"type": device}});
        let reply = server.ingest("/v1/track", &event);
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    let cases = [
        ("&device=mobile", "tracked", 2),
        ("&device=other", "tracked", 1),
        ("&device=tablet", "folded", 0),
        ("&device=watch", "folded", 0),
        ("&country=DE", "unseen", 0),
        ("", "tracked", 4),
    ];
    for (filter, status, count) in cases {
        let body = device_metrics(server, filter);
        assert_eq!(body["segment"]["status"], status, "{filter}: {body}");
        assert_eq!(first_stage_sum(&body, "count"), count, "{filter}");
    }
    let folded = device_metrics(server, "&device=tablet");
    let message = folded["segment"]["message"].as_str().unwrap();
    assert!(
        message.contains("reached its cap of 2 values") && message.contains("under `other`"),
        "{message}"
    );
    let value = &folded["segment"]["values"][0];
    assert_eq!(
        (&value["dimension"], &value["value"], &value["status"]),
        (&json!("device"), &json!("tablet"), &json!("folded"))
    );
    // A folded value next to a tracked one: the worst status is the segment's.
    let mixed = device_metrics(server, "&device=tablet&country=(none)");
    assert_eq!(mixed["segment"]["status"], "folded", "{mixed}");
    let dimensions = folded["dimensions"].as_array().unwrap();
    assert_eq!(
        dimensions[0],
        json!({"name": "device", "values_tracked": 2, "values_max": 2, "full": true})
    );
    assert_eq!(
        dimensions[1],
        json!({"name": "country", "values_tracked": 0, "values_max": 50, "full": false})
    );
}

/// The example config with a `device` cap of 2.
fn device_cap_of_two() -> Config {
    let toml = Config::example_toml().replacen("max_values = 10", "max_values = 2", 1);
    Config::parse(&toml).unwrap()
}

#[test]
fn metrics_say_when_a_filtered_value_was_folded_on_sqlite() {
    check_folded_values_are_named(&TestServer::start_on_file(device_cap_of_two()));
}

#[test]
fn metrics_say_when_a_filtered_value_was_folded_on_postgresql() {
    on_postgresql_with(
        "api",
        "folded",
        device_cap_of_two(),
        check_folded_values_are_named,
    );
}

/// Late events follow the dimension filter: a late `mobile` view shows under `device=mobile`
/// and unfiltered, not under `device=desktop`.
fn check_late_events_follow_the_filter(server: &TestServer) {
    let at = T0 - 90 * MINUTE;
    for (i, device) in ["mobile", "mobile", "desktop"].iter().enumerate() {
        let mut event = track("Product Viewed", &format!("late-{i}"), at);
        event["context"] = json!({"device": {"type": device}});
        let reply = server.ingest("/v1/track", &event);
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(reply.body["late"], 1, "{}", reply.body);
    }
    for (filter, late) in [
        ("", 3),
        ("&device=mobile", 2),
        ("&device=desktop", 1),
        ("&device=tablet", 0),
        ("&device=mobile&country=(none)", 2),
    ] {
        let body = device_metrics(server, filter);
        assert_eq!(first_stage_sum(&body, "late"), late, "{filter}: {body}");
        assert_eq!(first_stage_sum(&body, "count"), 0, "{filter}");
    }
}

#[test]
fn late_events_follow_the_dimension_filter_on_sqlite() {
    check_late_events_follow_the_filter(&TestServer::start());
}

#[test]
fn late_events_follow_the_dimension_filter_on_postgresql() {
    on_postgresql("api", "late", check_late_events_follow_the_filter);
}
