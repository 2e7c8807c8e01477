//! The delivery tests' local receiver (tests/common/receiver.rs) does what they rely on:
//! scripts, Retry-After, hanging, HMAC verification, the PagerDuty check, idempotent mode.

mod common;

use std::time::Duration;

use common::receiver::{PAGERDUTY_PATH, Receiver, Reply};
use hmac::{KeyInit, Mac};
use serde_json::json;

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(5)))
        .build()
        .into()
}

fn post(url: &str, headers: &[(&str, &str)], body: &str) -> (u16, String) {
    let mut request = agent().post(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    match request.send(body) {
        Ok(mut response) => (
            response.status().as_u16(),
            response.body_mut().read_to_string().unwrap(),
        ),
        Err(e) => (0, e.to_string()),
    }
}

fn signature(secret: &str, t: i64, body: &str) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.{body}").as_bytes());
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("t={t},v1={hex}")
}

#[test]
fn scripts_fail_then_succeed_and_record_every_request() {
    let receiver = Receiver::start();
    receiver.fail_times("/hook", 2, 500);
    receiver.script("/hook", vec![Reply::retry_after(429, "7")]);
    let statuses: Vec<u16> = (0..4)
        .map(|i| post(&receiver.url("/hook"), &[], &format!("{{\"n\":{i}}}")).0)
        .collect();
    assert_eq!(statuses, [500, 500, 429, 200]);
    let requests = receiver.requests_to("/hook");
    assert_eq!(requests.len(), 4);
    assert_eq!(requests[3].json(), json!({"n": 3}));
    assert_eq!(requests[0].method, "POST");
    assert_eq!(receiver.processed(), 1);
    // The 429 carried its Retry-After.
    let response = agent().post(&receiver.url("/other")).send("x").unwrap();
    assert_eq!(response.status().as_u16(), 200);
    receiver.script("/r", vec![Reply::retry_after(429, "7")]);
    let response = agent().post(&receiver.url("/r")).send("x").unwrap();
    assert_eq!(response.headers().get("retry-after").unwrap(), "7");
}

#[test]
fn a_hanging_reply_answers_only_after_its_delay() {
    let receiver = Receiver::start();
    receiver.set_default("/slow", Reply::hang(Duration::from_secs(30)));
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_millis(300)))
        .build()
        .into();
    let started = std::time::Instant::now();
    assert!(agent.post(&receiver.url("/slow")).send("x").is_err());
    assert!(started.elapsed() < Duration::from_secs(5));
    // Dropping the receiver does not wait for the hanging request.
    let started = std::time::Instant::now();
    drop(receiver);
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn signatures_are_verified_with_the_secret() {
    let receiver = Receiver::start();
    receiver.set_secret("s3cret");
    let body = r#"{"id":"msg-1"}"#;
    let good = signature("s3cret", 1_795_773_600, body);
    let bad = signature("other", 1_795_773_600, body);
    // The same signature under another timestamp (a replay with `t` moved forward).
    let tampered = good.replace("t=1795773600", "t=1795773601");
    assert_eq!(
        post(&receiver.url("/h"), &[("revloop-signature", &good)], body).0,
        200
    );
    assert_eq!(
        post(&receiver.url("/h"), &[("revloop-signature", &bad)], body).0,
        401
    );
    assert_eq!(
        post(
            &receiver.url("/h"),
            &[("revloop-signature", &tampered)],
            body
        )
        .0,
        401
    );
    assert_eq!(post(&receiver.url("/h"), &[], body).0, 401);
    let verified: Vec<Option<bool>> = receiver
        .requests()
        .iter()
        .map(|r| r.signature_verified)
        .collect();
    assert_eq!(
        verified,
        [Some(true), Some(false), Some(false), Some(false)]
    );
    assert_eq!(receiver.requests()[0].signed_at, Some(1_795_773_600));
}

#[test]
fn the_pagerduty_path_checks_events_v2() {
    let receiver = Receiver::start();
    let url = receiver.url(PAGERDUTY_PATH);
    let trigger = json!({
        "routing_key": "R0UTING", "event_action": "trigger", "dedup_key": "revloop-incident-1",
        "payload": {"summary": "P1", "source": "revloop", "severity": "critical"},
    });
    let (status, body) = post(&url, &[], &trigger.to_string());
    assert_eq!(status, 202, "{body}");
    assert!(body.contains("revloop-incident-1"));
    let resolve = json!({"routing_key": "R", "event_action": "resolve", "dedup_key": "k"});
    assert_eq!(post(&url, &[], &resolve.to_string()).0, 202);
    let cases = [
        (json!({"event_action": "trigger"}), "routing_key"),
        (
            json!({"routing_key": "R", "event_action": "page", "dedup_key": "k"}),
            "event_action",
        ),
        (
            json!({"routing_key": "R", "event_action": "acknowledge"}),
            "dedup_key",
        ),
        (
            json!({"routing_key": "R", "event_action": "trigger", "dedup_key": "k",
                   "payload": {"summary": "s", "source": "x", "severity": "P1"}}),
            "payload.severity",
        ),
        (
            json!({"routing_key": "R", "event_action": "trigger", "dedup_key": "k",
                   "payload": {"summary": "x".repeat(1025), "source": "x", "severity": "info"}}),
            "payload.summary",
        ),
    ];
    for (event, field) in cases {
        let (status, body) = post(&url, &[], &event.to_string());
        assert_eq!(status, 400, "{event}");
        assert!(body.contains(field), "{body} should name {field}");
    }
    assert_eq!(post(&url, &[], "not json").0, 400);
}

#[test]
fn idempotent_mode_processes_each_key_once() {
    let receiver = Receiver::start();
    receiver.set_idempotent(true);
    receiver.fail_times("/h", 1, 503);
    for key in ["a", "a", "a", "b"] {
        post(&receiver.url("/h"), &[("idempotency-key", key)], "{}");
    }
    assert_eq!(receiver.received(), 4);
    assert_eq!(receiver.processed(), 2);
    // "a": a 503, then processed, then a repeat answered 200 but not processed again.
    assert_eq!(receiver.key_counts("a"), (3, 1));
    assert_eq!(receiver.key_counts("b"), (1, 1));
    let answered: Vec<u16> = receiver.requests().iter().map(|r| r.answered).collect();
    assert_eq!(answered, [503, 200, 200, 200]);
}
