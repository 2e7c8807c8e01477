//! Store faults injected under the real server (`revloop_store::faults::FaultyStore`): a failed
//! group commit, a full disk, a panicking read, and incident steps whose commits fail. Each
//! test checks what the client is told (a JSON error without the database's words, Retry-After
//! where a retry helps), that the server keeps serving, and that nothing acknowledged is lost
//! or counted twice.

mod common;

use std::sync::{Arc, Weak};

use serde_json::{Value, json};

use common::*;
use revloop_core::alert::{AlertEvent, AlertEventKind, AlertKind, Direction, Severity};
use revloop_core::{Config, Timestamp};
use revloop_server::incidents::Incidents;
use revloop_store::faults::{Call, Failure, Fault, FaultyStore};
use revloop_store::{SqliteStore, Store};

/// Words of the database's own error texts (and of the injected ones) that no reply may carry.
const DATABASE_WORDS: [&str; 6] = [
    "sqlite",
    "database or disk",
    "injected",
    "full",
    "locked",
    "postgres",
];

/// A server on a SQLite file behind a [`FaultyStore`], and a weak handle to inject faults with
/// (a strong one would keep the store alive past the server's stop, which waits for it).
fn faulty_server(seed: impl FnOnce(&Arc<dyn Store>)) -> (TestServer, Weak<FaultyStore>) {
    let config = Config::parse(Config::example_toml()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sqlite = Arc::new(SqliteStore::open(&dir.path().join("faults.db"), &config).unwrap());
    let faulty = FaultyStore::new(sqlite);
    let store: Arc<dyn Store> = faulty.clone();
    seed(&store);
    let handle = Arc::downgrade(&faulty);
    drop(faulty);
    (TestServer::start_with(config, store, dir), handle)
}

fn inject(faults: &Weak<FaultyStore>, fault: Fault) {
    faults
        .upgrade()
        .expect("the server holds the store")
        .inject(fault);
}

fn count(faults: &Weak<FaultyStore>, call: Call) -> (u64, u64) {
    let store = faults.upgrade().expect("the server holds the store");
    (store.calls(call), store.failures(call))
}

/// A reply with its Retry-After header.
struct Answer {
    status: u16,
    retry_after: Option<String>,
    text: String,
}

fn track_raw(server: &TestServer, id: &str) -> Answer {
    let body = json!({"userId": "u1", "event": "Product Viewed", "messageId": id});
    let mut response = server
        .agent
        .post(&format!("{}/v1/track", server.base))
        .header("Authorization", &server.basic())
        .header("Content-Type", "application/json")
        .send(body.to_string().as_bytes())
        .unwrap();
    Answer {
        status: response.status().as_u16(),
        retry_after: response
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_owned()),
        text: response.body_mut().read_to_string().unwrap(),
    }
}

/// A 5xx with the usual JSON error body and none of the database's words.
fn assert_clean_5xx(status: u16, text: &str) -> Value {
    assert!((500..600).contains(&status), "{status} {text}");
    let body: Value = serde_json::from_str(text).unwrap_or_else(|_| panic!("not JSON: {text}"));
    assert!(body["error"]["code"].is_string(), "{text}");
    assert!(body["error"]["message"].is_string(), "{text}");
    let lower = text.to_lowercase();
    for word in DATABASE_WORDS {
        assert!(!lower.contains(word), "`{word}` in {text}");
    }
    body
}

fn product_views(server: &TestServer) -> i64 {
    server.stage_counts(T0 - 60 * MINUTE, T0 + 60 * MINUTE, "")[0]
}

#[test]
fn a_failing_group_commit_answers_503_and_loses_nothing_it_acknowledged() {
    let (server, faults) = faulty_server(|_| ());
    assert_eq!(track_raw(&server, "a").status, 200);
    // The next commit fails for good (not a transient error: the writer does not retry it).
    inject(
        &faults,
        Fault::new(Call::CommitIngest, Failure::Io("the disk went away".into())).times(1),
    );
    let failed = track_raw(&server, "b");
    assert_eq!(failed.status, 503, "{}", failed.text);
    assert_eq!(failed.retry_after.as_deref(), Some("1"));
    let body = assert_clean_5xx(failed.status, &failed.text);
    assert_eq!(body["error"]["code"], "commit_failed");
    assert!(!failed.text.contains("went away"), "{}", failed.text);
    // The next commit succeeds; the client's retry of the failed request is counted once, and
    // a retry of an acknowledged one not again.
    assert_eq!(track_raw(&server, "c").status, 200);
    for id in ["b", "a", "b"] {
        let again = track_raw(&server, id);
        assert_eq!(again.status, 200, "{}", again.text);
    }
    assert_eq!(product_views(&server), 3);
    // A transient failure (a busy database) is tried again inside the request: the client
    // sees a 200, and the event is counted once.
    inject(
        &faults,
        Fault::new(Call::CommitIngest, Failure::Busy).times(2),
    );
    let before = count(&faults, Call::CommitIngest);
    let absorbed = track_raw(&server, "d");
    assert_eq!(absorbed.status, 200, "{}", absorbed.text);
    let after = count(&faults, Call::CommitIngest);
    assert_eq!((after.0 - before.0, after.1 - before.1), (3, 2));
    assert_eq!(product_views(&server), 4);
}

#[test]
fn a_full_disk_answers_a_clear_json_error_and_the_server_keeps_serving() {
    let (server, faults) = faulty_server(|_| ());
    inject(&faults, Fault::new(Call::CommitIngest, Failure::DiskFull));
    for id in ["a", "b"] {
        let failed = track_raw(&server, id);
        assert_clean_5xx(failed.status, &failed.text);
    }
    // Reads and health go on while writes fail.
    assert_eq!(server.get("/healthz", &server.viewer).status, 200);
    assert_eq!(server.get("/api/v1/changes", &server.viewer).status, 200);
    assert_eq!(product_views(&server), 0);
    // Room again: the same requests are taken.
    faults.upgrade().unwrap().heal();
    for id in ["a", "b"] {
        assert_eq!(track_raw(&server, id).status, 200);
    }
    assert_eq!(product_views(&server), 2);
}

#[test]
fn a_panicking_handler_answers_500_and_the_server_keeps_serving() {
    let (server, faults) = faulty_server(|_| ());
    for call in [Call::Changes, Call::ListIncidents, Call::Outbox] {
        inject(&faults, Fault::new(call, Failure::Panic).times(1));
    }
    for path in ["/api/v1/changes", "/api/v1/incidents", "/api/v1/outbox"] {
        let reply = server.get(path, &server.viewer);
        let text = reply.body.to_string();
        let body = assert_clean_5xx(reply.status, &text);
        assert_eq!(reply.status, 500, "{text}");
        assert_eq!(body["error"]["code"], "internal");
        // The same request again, and the others, are answered.
        assert_eq!(server.get(path, &server.viewer).status, 200, "{path}");
        assert_eq!(server.get("/healthz", &server.viewer).status, 200);
        assert_eq!(track_raw(&server, path).status, 200);
    }
}

fn alert(at: Timestamp) -> AlertEvent {
    AlertEvent {
        alert_id: 1,
        funnel: "checkout".into(),
        stage: "payment".into(),
        kind: AlertKind::Conversion,
        severity: Severity::P1,
        event: AlertEventKind::Opened,
        direction: Direction::Worse,
        at,
        onset: at,
        segment: None,
        baseline_rate: 0.15,
        observed_rate: 0.6,
        sigma: 9.0,
        n: 200,
        top_segments: Vec::new(),
    }
}

/// A request answered 5xx is sent again, up to ten times, as a client would.
fn with_retries(send: impl Fn() -> Reply) -> Reply {
    for _ in 0..10 {
        let reply = send();
        if reply.status < 500 {
            return reply;
        }
        assert_clean_5xx(reply.status, &reply.body.to_string());
    }
    panic!("still failing after ten tries");
}

#[test]
fn incident_steps_commit_exactly_once_across_injected_failures() {
    // A P1 opened a minute before the server starts (its L1 page is in the outbox).
    let (server, faults) = faulty_server(|store| {
        let config = Arc::new(Config::parse(Config::example_toml()).unwrap());
        let incidents = Incidents::new(config, store.clone());
        let opened = Timestamp::from_millis(T0 - MINUTE);
        incidents
            .tick(Timestamp::from_millis(T0 - 2 * MINUTE))
            .unwrap();
        incidents.feed(&[alert(opened)], &|_| None, opened).unwrap();
    });
    let listed = server.get("/api/v1/incidents?state=open", &server.viewer);
    assert_eq!(listed.status, 200, "{}", listed.body);
    let id = listed.body["incidents"][0]["id"].as_u64().unwrap();
    let act = |action: &str, body: Value| {
        server.post_json(
            &format!("/api/v1/incidents/{id}/{action}"),
            &server.responder,
            &body,
        )
    };
    // Every other commit of an incident step fails, for good (an IO error), four times.
    inject(
        &faults,
        Fault::new(
            Call::CommitIncidents,
            Failure::Io("the disk went away".into()),
        )
        .times(4),
    );
    let notes = ["first look", "payment provider paged", "rolling back"];
    for text in notes {
        let reply = with_retries(|| act("note", json!({"text": text})));
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    // A transient failure is tried again inside the request: the first answer is a 200.
    inject(
        &faults,
        Fault::new(Call::CommitIncidents, Failure::Busy).times(1),
    );
    let acknowledged = act("acknowledge", json!({}));
    assert_eq!(acknowledged.status, 200, "{}", acknowledged.body);
    let (_, failed) = count(&faults, Call::CommitIncidents);
    assert_eq!(failed, 5);
    // The timers' steps too: L2 falls due 15 minutes after the opening, but the incident was
    // acknowledged, so nothing more pages; the timer loop's commits fail twice on the way.
    inject(
        &faults,
        Fault::new(
            Call::CommitIncidents,
            Failure::Io("the disk went away".into()),
        )
        .times(2),
    );
    server.set_clock(T0 + 20 * MINUTE);
    let reply = with_retries(|| act("note", json!({"text": "after the due time"})));
    assert_eq!(reply.status, 200, "{}", reply.body);

    let incident = server.get(&format!("/api/v1/incidents/{id}"), &server.viewer);
    assert_eq!(incident.status, 200, "{}", incident.body);
    let timeline = incident.body["timeline"].as_array().unwrap();
    let texts: Vec<&str> = timeline
        .iter()
        .map(|e| e["text"].as_str().unwrap())
        .collect();
    for text in notes.iter().chain(&["after the due time"]) {
        let n = texts.iter().filter(|t| t.contains(text)).count();
        assert_eq!(n, 1, "`{text}` {n} times in {texts:?}");
    }
    let kinds = |kind: &str| timeline.iter().filter(|e| e["kind"] == kind).count();
    assert_eq!(kinds("acknowledged"), 1, "{texts:?}");
    // Each outbox row once: the opening's page at L1, the ack told to those paged, and
    // nothing else.
    let outbox = server.get("/api/v1/outbox?limit=1000", &server.viewer);
    assert_eq!(outbox.status, 200, "{}", outbox.body);
    let rows = outbox.body["outbox"].as_array().unwrap();
    let entries: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| {
            (
                r["kind"].as_str().unwrap(),
                r["level"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        entries,
        [("notify", "L1"), ("acknowledged", "")],
        "{}",
        outbox.body
    );
    // The failures are counted, and the timers are not behind.
    let metrics = server.get("/metrics", &server.viewer);
    let text = metrics.body.as_str().unwrap_or_default().to_owned();
    let failures: f64 = metric(&text, "revloop_incident_step_failures_total");
    assert!(failures >= 6.0, "{text}");
    let lag = metric(&text, "revloop_incident_timer_lag_seconds");
    assert!(lag < 60.0, "a timer waits {lag} s: {text}");
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no {name} in {text}"))
        .parse()
        .unwrap()
}
