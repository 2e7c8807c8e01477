//! Inbound signals through the real server: Alertmanager webhooks (the documented version 4
//! payload, and a real `prometheus-alertmanager` fed by `amtool`) and PagerDuty-style events
//! are stored once per fingerprint or dedup key, attach to the open incident they overlap in
//! time and stage (and not to another stage's), show as suspects and under the technical
//! checklist items, and malformed payloads are refused naming the field.

mod common;

use serde_json::{Value, json};

use common::*;
use revloop_api as wire;
use revloop_core::Timestamp;
use revloop_core::rng::Rng;

/// The documented Alertmanager webhook payload (version 4), with times around [`T0`]: one
/// payment alert firing since 5 minutes before T0, one resolved two hours before, and one for
/// the cart stage.
const ALERTMANAGER_V4: &str = include_str!("fixtures/alertmanager-v4.json");

const DAYS_OF_HISTORY: i64 = 15;

/// Count records of the example checkout funnel, as `common::count_records`, but with the
/// payment stage's shoppers ordering at 10% instead of 85% where `broken(at)`.
fn payment_records(
    rng: &mut Rng,
    from: i64,
    windows: i64,
    window_s: i64,
    broken: impl Fn(i64) -> bool,
) -> Vec<String> {
    let mut records = Vec::new();
    for window in 0..windows {
        let at = from + window * window_s * 1_000;
        let mut n = rng.poisson(200.0 * (window_s as f64 / 60.0));
        for (stage, conversion) in [
            ("product_viewed", 0.3),
            ("cart", 0.55),
            ("checkout", 0.75),
            ("payment", if broken(at) { 0.1 } else { 0.85 }),
            ("order", 1.0),
        ] {
            records.push(json!({"funnel": "checkout", "stage": stage, "window_start": Timestamp::from_millis(at).to_string(), "window_s": window_s, "count": n}).to_string());
            n = (0..n).filter(|_| rng.bernoulli(conversion)).count() as u64;
        }
    }
    records
}

/// Fifteen clean days up to T0, then live minutes from T0 with payment broken, judged one by
/// one on the manual clock until an incident opens at the payment stage. Returns it.
fn open_a_payment_incident(server: &TestServer) -> Value {
    let mut rng = Rng::new(14);
    let windows = DAYS_OF_HISTORY * 24 * 12;
    server.post_counts(&payment_records(
        &mut rng,
        T0 - windows * 5 * MINUTE,
        windows,
        300,
        |_| false,
    ));
    let reply = server.post_json("/api/v1/detector/rebuild", &server.admin, &json!({}));
    assert_eq!(reply.status, 200, "{}", reply.body);
    server.set_clock(T0 + MINUTE);
    server.wait_until_judged(T0);
    for minute in 0..10 {
        let start = T0 + minute * MINUTE;
        server.set_clock(start + 30_000);
        server.post_counts(&payment_records(&mut rng, start, 1, 60, |_| true));
        server.set_clock(start + 2 * MINUTE);
        server.wait_until_judged(start + MINUTE);
        let open = server.get("/api/v1/incidents?state=open", &server.viewer);
        if let Some(incident) = open.body["incidents"].as_array().and_then(|a| a.first()) {
            assert_eq!(incident["stage"], "payment", "{incident}");
            return incident.clone();
        }
    }
    panic!("no incident after ten broken minutes");
}

/// Reads a reply into its wire type and checks that writing it back gives the same JSON.
fn typed<T: serde::Serialize + serde::de::DeserializeOwned>(body: &Value) -> T {
    let typed: T = serde_json::from_value(body.clone()).unwrap();
    assert_eq!(&serde_json::to_value(&typed).unwrap(), body);
    typed
}

fn incident(server: &TestServer, id: u64) -> wire::incidents::Incident {
    let reply = server.get(&format!("/api/v1/incidents/{id}"), &server.viewer);
    assert_eq!(reply.status, 200, "{}", reply.body);
    typed(&reply.body)
}

/// The keys and statuses of an incident's signals, latest start first.
fn signals_of(server: &TestServer, id: u64) -> Vec<(String, String, i64)> {
    incident(server, id)
        .signals
        .iter()
        .map(|s| (s.key.clone(), s.status.clone(), s.n_received))
        .collect()
}

fn alertmanager(server: &TestServer, body: &Value) -> Reply {
    server.post_json("/api/v1/signals/alertmanager", &server.responder, body)
}

fn event(server: &TestServer, body: &Value) -> Reply {
    server.post_json("/api/v1/signals/events", &server.responder, body)
}

#[test]
fn the_documented_payload_is_the_wire_type() {
    let fixture: Value = serde_json::from_str(ALERTMANAGER_V4).unwrap();
    let parsed: wire::signals::AlertmanagerWebhook = serde_json::from_value(fixture).unwrap();
    assert_eq!(parsed.version, "4");
    assert_eq!(parsed.alerts.len(), 3);
    assert_eq!(parsed.external_url, "http://alertmanager.example:9093");
    assert_eq!(parsed.alerts[0].fingerprint, "a1b2c3d4e5f60718");
}

#[test]
fn signals_attach_to_the_open_incident_in_time_and_stage() {
    let server = TestServer::start();
    let opened = open_a_payment_incident(&server);
    let id = opened["id"].as_u64().unwrap();
    let fixture: Value = serde_json::from_str(ALERTMANAGER_V4).unwrap();

    // Accepted: every alert stored, and the open incident named.
    let reply = alertmanager(&server, &fixture);
    assert_eq!(reply.status, 200, "{}", reply.body);
    let accepted: wire::signals::AlertmanagerReply = typed(&reply.body);
    assert_eq!(accepted.status, "success");
    assert_eq!(accepted.incidents, [id]);
    assert_eq!(accepted.signals.len(), 3);
    let payment = &accepted.signals[0];
    assert_eq!(
        (
            payment.key.as_str(),
            payment.status.as_str(),
            payment.ends_at.as_deref()
        ),
        ("a1b2c3d4e5f60718", "firing", None)
    );
    assert_eq!(payment.starts_at, "2026-11-27T09:55:00.123Z");
    assert_eq!(
        (payment.funnel.as_deref(), payment.stage.as_deref()),
        (Some("checkout"), Some("payment"))
    );
    assert_eq!(
        payment.summary,
        "Payment gateway 5xx above 5% for 5 minutes"
    );
    assert_eq!(payment.labels["gateway"], "stripe");
    // `revloop_stage` names the stage too; `description` is a summary when there is none.
    assert_eq!(accepted.signals[1].stage.as_deref(), Some("payment"));
    assert_eq!(
        accepted.signals[1].ends_at.as_deref(),
        Some("2026-11-27T08:30:00Z")
    );
    assert_eq!(
        accepted.signals[2].summary,
        "p99 latency of the cart API above 2 s"
    );

    // Only the payment alert that overlaps the incident attaches: not the one resolved two
    // hours before, not the cart stage's.
    assert_eq!(
        signals_of(&server, id),
        [("a1b2c3d4e5f60718".into(), "firing".into(), 1)]
    );

    // Resent: the same signals, counted, not new ones.
    let reply = alertmanager(&server, &fixture);
    let again: wire::signals::AlertmanagerReply = typed(&reply.body);
    assert_eq!(
        again
            .signals
            .iter()
            .map(|s| (s.id, s.n_received))
            .collect::<Vec<_>>(),
        accepted
            .signals
            .iter()
            .map(|s| (s.id, 2))
            .collect::<Vec<_>>()
    );
    assert_eq!(signals_of(&server, id).len(), 1);

    // Shown under the technical checklist item it speaks to, and only there.
    let view = incident(&server, id);
    let signal_id = view.signals[0].id;
    let under: Vec<(&str, &str)> = view
        .checklist
        .iter()
        .filter(|item| item.signals.contains(&signal_id))
        .map(|item| (item.category.as_str(), item.item.as_str()))
        .collect();
    assert_eq!(
        under,
        [
            ("technical", "API response times and error rates"),
            ("technical", "Payment processor integration status"),
        ]
    );

    // Resolved: still attached (it overlapped), now with its end.
    let mut resolved = fixture.clone();
    resolved["status"] = json!("resolved");
    resolved["alerts"] = json!([fixture["alerts"][0].clone()]);
    resolved["alerts"][0]["status"] = json!("resolved");
    resolved["alerts"][0]["endsAt"] = json!("2026-11-27T10:01:00Z");
    let reply = alertmanager(&server, &resolved);
    assert_eq!(reply.status, 200, "{}", reply.body);
    let view = incident(&server, id);
    assert_eq!(view.signals.len(), 1);
    assert_eq!(view.signals[0].status, "resolved");
    assert_eq!(
        view.signals[0].ends_at.as_deref(),
        Some("2026-11-27T10:01:00Z")
    );

    check_events(&server, id);
}

/// PagerDuty-style events on the same incident: trigger, re-trigger, acknowledge, resolve
/// update one signal; an event for another stage attaches to nothing.
fn check_events(server: &TestServer, id: u64) {
    let trigger = json!({
        "routing_key": "ignored",
        "event_action": "trigger",
        "dedup_key": "psp-timeouts",
        "payload": {
            "summary": "PSP timeouts on card authorisation",
            "source": "payments-gateway-1",
            "severity": "critical",
            "timestamp": "2026-11-27T09:58:00Z",
            "component": "card-auth",
            "group": "payments",
            "class": "timeout",
            "custom_details": {"funnel": "checkout", "stage": "payment", "error_rate": 0.31}
        }
    });
    for _ in 0..2 {
        let reply = event(server, &trigger);
        assert_eq!(reply.status, 202, "{}", reply.body);
        let answer: wire::signals::EventReply = typed(&reply.body);
        assert_eq!(
            (
                answer.status.as_str(),
                answer.message.as_str(),
                answer.dedup_key.as_str()
            ),
            ("success", "Event processed", "psp-timeouts")
        );
        assert_eq!(answer.incidents, [id]);
    }
    let of_event = |server: &TestServer| {
        signals_of(server, id)
            .into_iter()
            .find(|(key, ..)| key == "psp-timeouts")
            .unwrap()
    };
    assert_eq!(
        of_event(server),
        ("psp-timeouts".into(), "firing".into(), 2)
    );
    let reply = event(
        server,
        &json!({"event_action": "acknowledge", "dedup_key": "psp-timeouts"}),
    );
    assert_eq!(reply.status, 202, "{}", reply.body);
    assert_eq!(of_event(server).1, "firing");
    let reply = event(
        server,
        &json!({"event_action": "resolve", "dedup_key": "psp-timeouts"}),
    );
    assert_eq!(reply.status, 202, "{}", reply.body);
    assert_eq!(
        of_event(server),
        ("psp-timeouts".into(), "resolved".into(), 4)
    );
    // The resolve kept what the trigger said.
    let view = incident(server, id);
    let stored = view
        .signals
        .iter()
        .find(|s| s.key == "psp-timeouts")
        .unwrap();
    assert_eq!(stored.summary, "PSP timeouts on card authorisation");
    assert_eq!(stored.starts_at, "2026-11-27T09:58:00Z");
    assert_eq!(stored.labels["custom_details"]["error_rate"], 0.31);

    // Another stage's event attaches to nothing; one without a dedup key gets a stable one.
    let mut elsewhere = trigger.clone();
    elsewhere.as_object_mut().unwrap().remove("dedup_key");
    elsewhere["payload"]["custom_details"] = json!({"revloop_stage": "cart"});
    let first: wire::signals::EventReply = typed(&event(server, &elsewhere).body);
    let second: wire::signals::EventReply = typed(&event(server, &elsewhere).body);
    assert_eq!(first.incidents, Vec::<u64>::new());
    assert_eq!(first.dedup_key, second.dedup_key);
    assert!(
        !signals_of(server, id)
            .iter()
            .any(|(key, ..)| *key == first.dedup_key)
    );
}

/// `body` with the field at `path` (a JSON pointer, or a top-level name) set to `value`, or
/// removed where `value` is null.
fn edited(body: &Value, path: &str, value: Value) -> Value {
    let mut body = body.clone();
    let (parent, leaf) = path.rsplit_once('/').unwrap_or(("", path));
    let target = if parent.is_empty() {
        &mut body
    } else {
        body.pointer_mut(parent).unwrap()
    };
    match value {
        Value::Null => {
            target.as_object_mut().unwrap().remove(leaf);
        }
        value => target[leaf] = value,
    }
    body
}

/// A refusal: `status`, and the first detail names `field`.
fn assert_refused(reply: &Reply, status: u16, field: &str) {
    assert_eq!(reply.status, status, "{}", reply.body);
    assert_eq!(
        reply.body["error"]["details"][0]["field"], field,
        "{}",
        reply.body
    );
}

#[test]
fn malformed_payloads_are_refused_naming_the_field() {
    let server = TestServer::start();
    let fixture: Value = serde_json::from_str(ALERTMANAGER_V4).unwrap();
    let with = |path: &str, value: Value| edited(&fixture, path, value);
    let many: Vec<Value> = (0..1_001).map(|_| fixture["alerts"][0].clone()).collect();
    let labels: serde_json::Map<String, Value> =
        (0..65).map(|i| (format!("l{i}"), json!("v"))).collect();
    for (body, field) in [
        (with("alerts", Value::Null), "alerts"),
        (with("alerts", json!({})), "alerts"),
        (with("version", json!("3")), "version"),
        (with("version", Value::Null), "version"),
        (
            with("/alerts/1/startsAt", json!("yesterday")),
            "alerts[1].startsAt",
        ),
        (
            with("/alerts/0/startsAt", Value::Null),
            "alerts[0].startsAt",
        ),
        (with("/alerts/2/endsAt", json!(17)), "alerts[2].endsAt"),
        (
            with("/alerts/0/status", json!("pending")),
            "alerts[0].status",
        ),
        (
            with("/alerts/0/fingerprint", json!("")),
            "alerts[0].fingerprint",
        ),
        (with("/alerts/0/labels", Value::Null), "alerts[0].labels"),
        (
            with("/alerts/0/labels/severity", json!(3)),
            "alerts[0].labels.severity",
        ),
        (
            with("/alerts/0/labels", Value::Object(labels)),
            "alerts[0].labels",
        ),
        (
            with("/alerts/0/labels/big", json!("x".repeat(17_000))),
            "alerts[0].labels",
        ),
        (with("alerts", json!([7])), "alerts[0]"),
        (with("truncatedAlerts", json!(-1)), "truncatedAlerts"),
        (with("commonLabels", json!({"a": 1})), "commonLabels.a"),
        (with("groupKey", json!(5)), "groupKey"),
        (with("alerts", Value::Array(many)), "alerts"),
    ] {
        assert_refused(&alertmanager(&server, &body), 400, field);
    }
    let trigger = json!({
        "event_action": "trigger",
        "payload": {"summary": "s", "source": "src", "severity": "error"}
    });
    let event_with = |path: &str, value: Value| edited(&trigger, path, value);
    for (body, field) in [
        (
            event_with("event_action", json!("escalate")),
            "event_action",
        ),
        (event_with("event_action", Value::Null), "event_action"),
        (event_with("payload", Value::Null), "payload"),
        (
            event_with("/payload/summary", Value::Null),
            "payload.summary",
        ),
        (event_with("/payload/source", json!(1)), "payload.source"),
        (
            event_with("/payload/severity", json!("fatal")),
            "payload.severity",
        ),
        (
            event_with("/payload/timestamp", json!("soon")),
            "payload.timestamp",
        ),
        (event_with("dedup_key", json!("k".repeat(256))), "dedup_key"),
        (json!({"event_action": "resolve"}), "dedup_key"),
        (
            event_with("/payload/custom_details", json!({"x": "y".repeat(17_000)})),
            "payload.custom_details",
        ),
    ] {
        assert_refused(&event(&server, &body), 400, field);
    }
    // Not JSON, not an object: 400 without a field.
    for path in ["/api/v1/signals/alertmanager", "/api/v1/signals/events"] {
        let auth = format!("Bearer {}", server.responder);
        for bad in [&b"{"[..], b"[1]", b"\xff\xfe"] {
            let reply = server.post(
                path,
                &[
                    ("Authorization", &auth),
                    ("Content-Type", "application/json"),
                ],
                bad,
            );
            assert_eq!(reply.status, 400, "{}", reply.body);
        }
        // Over the body limit: 413.
        let big = vec![b' '; 1024 * 1024 + 1];
        let reply = server.post(path, &[("Authorization", &auth)], &big);
        assert_eq!(reply.status, 413, "{}", reply.body);
    }
    // Nothing of those was stored: a valid send is new (received once).
    let reply = alertmanager(&server, &fixture);
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(
        reply.body["signals"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["n_received"] == 1)
    );
}

#[test]
fn signals_need_a_responder_token() {
    let server = TestServer::start();
    let fixture: Value = serde_json::from_str(ALERTMANAGER_V4).unwrap();
    let trigger = json!({"event_action": "trigger", "payload": {"summary": "s", "source": "x", "severity": "info"}});
    for (path, body) in [
        ("/api/v1/signals/alertmanager", &fixture),
        ("/api/v1/signals/events", &trigger),
    ] {
        let reply = server.post(
            path,
            &[("Content-Type", "application/json")],
            body.to_string().as_bytes(),
        );
        assert_eq!(reply.status, 401, "{}", reply.body);
        let reply = server.post_json(path, "not-a-token", body);
        assert_eq!(reply.status, 401, "{}", reply.body);
        let reply = server.post_json(path, &server.viewer, body);
        assert_eq!(reply.status, 403, "{}", reply.body);
        let reply = server.post_json(path, &server.responder, body);
        assert!(matches!(reply.status, 200 | 202), "{}", reply.body);
    }
}

/// The same upserts on PostgreSQL: a re-sent payload updates its signals, a resolve ends one.
#[test]
fn signals_upsert_on_postgresql() {
    on_postgresql("signals", "upsert", |server| {
        let fixture: Value = serde_json::from_str(ALERTMANAGER_V4).unwrap();
        let sent: Vec<wire::signals::AlertmanagerReply> = (0..2)
            .map(|_| {
                let reply = alertmanager(server, &fixture);
                assert_eq!(reply.status, 200, "{}", reply.body);
                typed(&reply.body)
            })
            .collect();
        let ids = |reply: &wire::signals::AlertmanagerReply| -> Vec<(i64, i64)> {
            reply.signals.iter().map(|s| (s.id, s.n_received)).collect()
        };
        assert_eq!(
            ids(&sent[1]),
            ids(&sent[0])
                .iter()
                .map(|(id, _)| (*id, 2))
                .collect::<Vec<_>>()
        );
        assert!(ids(&sent[0]).iter().all(|(_, n)| *n == 1));
        let trigger = json!({"event_action": "trigger", "dedup_key": "k", "payload": {"summary": "s", "source": "a", "severity": "warning"}});
        for body in [
            trigger,
            json!({"event_action": "resolve", "dedup_key": "k"}),
        ] {
            let reply = event(server, &body);
            assert_eq!(reply.status, 202, "{}", reply.body);
        }
    });
}

/// `name` on the `PATH`, if it is there.
fn on_path(name: &str) -> Option<std::path::PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
}

/// A child process this test started, killed and reaped when dropped.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A loopback port free a moment ago (Alertmanager takes its address as a flag).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A real Alertmanager on a free loopback port, its files in `dir`, with one webhook receiver
/// that posts every alert to `server` with its responder token (grouped within a second);
/// returned once it is ready, with its `host:port`.
fn start_alertmanager(
    binary: &std::path::Path,
    dir: &std::path::Path,
    server: &TestServer,
) -> (Child, String) {
    let config = dir.join("alertmanager.yml");
    std::fs::write(
        &config,
        format!(
            "route:
  receiver: revloop
  group_by: [alertname]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: revloop
    webhook_configs:
      - url: {}/api/v1/signals/alertmanager
        send_resolved: true
        http_config:
          authorization:
            type: Bearer
            credentials: {}
",
            server.base, server.responder
        ),
    )
    .unwrap();
    let web = format!("127.0.0.1:{}", free_port());
    let log = std::fs::File::create(dir.join("alertmanager.log")).unwrap();
    let alertmanager = Child(
        std::process::Command::new(binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address={web}"))
            // No high-availability peers: nothing listens or gossips beyond this address.
            .arg("--cluster.listen-address=")
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !server
        .agent
        .get(&format!("http://{web}/-/ready"))
        .call()
        .is_ok_and(|r| r.status() == 200)
    {
        let said = std::fs::read_to_string(dir.join("alertmanager.log")).unwrap_or_default();
        assert!(
            std::time::Instant::now() < deadline,
            "Alertmanager never got ready:\n{said}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    (alertmanager, web)
}

/// Debian's `prometheus-alertmanager`, with a webhook receiver that posts to revloop with a
/// responder token, fed one alert by `amtool alert add`: the signal reaches revloop and
/// attaches to the open payment incident. Skipped (and said so) when the binaries are not
/// installed, unless `REVLOOP_REQUIRE_ALERTMANAGER=1`.
#[test]
fn a_real_alertmanager_alert_attaches_to_the_open_incident() {
    let binaries = on_path("prometheus-alertmanager")
        .or_else(|| on_path("alertmanager"))
        .zip(on_path("amtool"));
    let Some((alertmanager_binary, amtool)) = binaries else {
        assert_ne!(
            std::env::var("REVLOOP_REQUIRE_ALERTMANAGER").as_deref(),
            Ok("1"),
            "prometheus-alertmanager and amtool are required (apt-get install prometheus-alertmanager)"
        );
        eprintln!("skipped: prometheus-alertmanager or amtool is not installed");
        return;
    };
    let server = TestServer::start();
    let opened = open_a_payment_incident(&server);
    let id = opened["id"].as_u64().unwrap();
    let onset = Timestamp::parse_rfc3339(opened["onset"].as_str().unwrap()).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let (_alertmanager, web) = start_alertmanager(&alertmanager_binary, dir.path(), &server);

    // Fired two minutes before the incident's onset (the test's clock is not the wall clock).
    let starts = onset.saturating_sub(revloop_core::DurationMs::from_minutes(2));
    let added = std::process::Command::new(&amtool)
        .args([
            "alert",
            "add",
            "PaymentGatewayErrors",
            "funnel=checkout",
            "stage=payment",
            "severity=critical",
            "--annotation=summary=Card payments failing at the gateway",
        ])
        .arg(format!("--start={starts}"))
        .arg(format!("--alertmanager.url=http://{web}"))
        .output()
        .unwrap();
    assert!(
        added.status.success(),
        "amtool: {}",
        String::from_utf8_lossy(&added.stderr)
    );

    let body = server.wait_for(&format!("/api/v1/incidents/{id}"), |body| {
        body["signals"]
            .as_array()
            .is_some_and(|signals| signals.iter().any(|s| s["source"] == "alertmanager"))
    });
    let view: wire::incidents::Incident = typed(&body);
    let signal = &view.signals[0];
    assert_eq!(
        (
            signal.source.as_str(),
            signal.status.as_str(),
            signal.stage.as_deref()
        ),
        ("alertmanager", "firing", Some("payment"))
    );
    assert_eq!(signal.starts_at, starts.to_string());
    assert_eq!(signal.summary, "Card payments failing at the gateway");
    assert_eq!(signal.labels["alertname"], "PaymentGatewayErrors");
    // Alertmanager's fingerprint: sixteen hex digits.
    assert!(
        signal.key.len() == 16 && signal.key.chars().all(|c| c.is_ascii_hexdigit()),
        "{}",
        signal.key
    );
    assert!(
        view.checklist
            .iter()
            .any(|item| item.item == "Payment processor integration status"
                && item.signals == [signal.id])
    );
}
