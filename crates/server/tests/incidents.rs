//! Incidents through the real server: a payment outage in live traffic opens one, it escalates
//! on the (manual) clock, survives restarts without losing or doubling a page, and every
//! action and its bad input answers as documented.

mod common;

use std::collections::BTreeMap;

use serde_json::{Value, json};

use common::*;
use revloop_api as wire;
use revloop_core::rng::Rng;
use revloop_core::{Config, Timestamp};

/// The request was refused as invalid (400), and the first detail names `field`.
fn assert_refused_field(reply: &Reply, field: &str) {
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert_eq!(
        reply.body["error"]["details"][0]["field"], field,
        "{}",
        reply.body
    );
}

const DAYS_OF_HISTORY: i64 = 15;

/// Fifteen clean days up to T0, then live minutes from T0 with checkout broken, judged one
/// by one on the manual clock until the incident opens. Returns the incident.
fn open_an_incident(server: &TestServer) -> Value {
    open_an_incident_on(&[server])
}

/// As [`open_an_incident`], for nodes sharing one database: the first takes the traffic, and
/// all their clocks move together.
fn open_an_incident_on(servers: &[&TestServer]) -> Value {
    let first = servers[0];
    let mut rng = Rng::new(11);
    let windows = DAYS_OF_HISTORY * 24 * 12;
    let history = count_records(
        &mut rng,
        T0 - windows * 5 * MINUTE,
        windows,
        300,
        80.0,
        |_| false,
    );
    first.post_counts(&history);
    for server in servers {
        rebuild(server);
        server.set_clock(T0 + MINUTE);
        server.wait_until_judged(T0);
    }
    for minute in 0..10 {
        let start = T0 + minute * MINUTE;
        for server in servers {
            server.set_clock(start + 30_000);
        }
        first.post_counts(&count_records(&mut rng, start, 1, 60, 80.0, |_| true));
        // Minute `m` is judged once it has ended and settled (1 minute).
        for server in servers {
            server.set_clock(start + 2 * MINUTE);
            server.wait_until_judged(start + MINUTE);
        }
        let open = first.get("/api/v1/incidents?state=open", &first.viewer);
        if let Some(incident) = open.body["incidents"].as_array().and_then(|a| a.first()) {
            return incident.clone();
        }
    }
    panic!("no incident after ten broken minutes");
}

/// Makes the detector judge the history posted after it started.
fn rebuild(server: &TestServer) {
    let reply = server.post_json("/api/v1/detector/rebuild", &server.admin, &json!({}));
    assert_eq!(reply.status, 200, "{}", reply.body);
}

/// Reads a real reply into its `revloop_api` type, as the CLI does, and checks that writing
/// it back gives the very same JSON: no field the server sends is lost, renamed or retyped.
fn typed<T: serde::Serialize + serde::de::DeserializeOwned>(body: &Value) -> T {
    let typed: T =
        serde_json::from_value(body.clone()).unwrap_or_else(|err| panic!("{err}: {body}"));
    assert_eq!(&serde_json::to_value(&typed).unwrap(), body);
    typed
}

fn at(value: &Value) -> i64 {
    Timestamp::parse_rfc3339(value.as_str().unwrap())
        .unwrap()
        .millis()
}

/// Every effect in the outbox for one incident.
fn outbox_of(server: &TestServer, incident: u64) -> Vec<Value> {
    let reply = server.get("/api/v1/outbox?limit=1000", &server.viewer);
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.body["outbox"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["incident"] == incident)
        .cloned()
        .collect()
}

/// Pages per level, with the time of each.
fn pages_of(server: &TestServer, incident: u64) -> BTreeMap<String, Vec<i64>> {
    let mut pages: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for effect in outbox_of(server, incident) {
        if effect["kind"] == "notify" {
            pages
                .entry(effect["level"].as_str().unwrap().to_owned())
                .or_default()
                .push(at(&effect["at"]));
        }
    }
    pages
}

/// Waits for the incident's pages to be exactly `expected` levels.
fn wait_for_levels(
    server: &TestServer,
    incident: u64,
    expected: &[&str],
) -> BTreeMap<String, Vec<i64>> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let pages = pages_of(server, incident);
        let levels: Vec<&str> = pages.keys().map(String::as_str).collect();
        let mut wanted = expected.to_vec();
        wanted.sort();
        if levels == wanted {
            return pages;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "pages {pages:?}, expected {expected:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// The runbook's P1 path: L1 at once, L2 after 15 min, L3 after 30 more, the executive after
/// an hour more. The server restarts between every step (once across a due time, with the
/// clock jumping while it is down); every level is paged exactly once, at its time (or, for
/// the one due while the server was down, as soon as it is back), and nothing pages after the
/// acknowledgement.
#[test]
fn escalation_survives_restarts_with_every_page_exactly_once() {
    let mut server = TestServer::start();
    let incident = open_an_incident(&server);
    let id = incident["id"].as_u64().unwrap();
    assert_eq!(incident["severity"], "P1", "{incident}");
    let opened = at(&incident["opened_at"]);

    let pages = wait_for_levels(&server, id, &["L1"]);
    assert_eq!(pages["L1"], [opened]);

    server.restart();
    let l2_due = opened + 15 * MINUTE;
    server.set_clock(l2_due);
    let pages = wait_for_levels(&server, id, &["L1", "L2"]);
    assert_eq!(pages["L2"], [l2_due]);

    // Down across L3's due time: L3 is paged as soon as the server is back.
    server.restart();
    let l3_due = l2_due + 30 * MINUTE;
    server.restart_at(l3_due + 10 * MINUTE);
    let pages = wait_for_levels(&server, id, &["L1", "L2", "L3"]);
    assert_eq!(pages["L3"], [l3_due + 10 * MINUTE]);
    let full = server
        .get(&format!("/api/v1/incidents/{id}"), &server.viewer)
        .body;
    let late = full["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "escalated" && e["text"].as_str().unwrap().contains("L3"))
        .unwrap();
    assert!(
        late["text"].as_str().unwrap().contains("10m late"),
        "{late}"
    );

    let executive_due = l3_due + 60 * MINUTE;
    server.set_clock(executive_due);
    let pages = wait_for_levels(&server, id, &["L1", "L2", "L3", "executive"]);
    assert_eq!(pages["executive"], [executive_due]);
    server.restart();
    server.set_clock(executive_due + MINUTE);
    let ack = server.post_json(
        &format!("/api/v1/incidents/{id}/acknowledge"),
        &server.responder,
        &json!({"reason": "on it"}),
    );
    assert_eq!(ack.status, 200, "{}", ack.body);
    // A second ack (another responder answering the same page) succeeds and changes nothing.
    let before = fingerprint(&server, id);
    let again = server.post_json(
        &format!("/api/v1/incidents/{id}/acknowledge"),
        &server.responder,
        &json!({"reason": "me too"}),
    );
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.body["state"], "acknowledged");
    assert_eq!(fingerprint(&server, id), before);
    // The executive level would be paged again two hours on; after the ack nobody is.
    server.set_clock(executive_due + 5 * 60 * MINUTE);
    server.restart();
    server.wait_for(&format!("/api/v1/incidents/{id}"), |body| {
        body["sla"]["resolution"]["state"] == "breached"
    });
    let pages = pages_of(&server, id);
    assert!(pages.values().all(|times| times.len() == 1), "{pages:?}");
    let breaches: Vec<String> = outbox_of(&server, id)
        .iter()
        .filter(|e| e["kind"] == "sla_breached")
        .map(|e| e["sla"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(breaches, ["response", "resolution"]);
    let timeline = server
        .get(&format!("/api/v1/incidents/{id}"), &server.viewer)
        .body;
    let kinds: Vec<&str> = timeline["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "escalated").count(),
        4,
        "{kinds:?}"
    );
    assert_eq!(kinds[0], "opened");
    assert!(kinds.contains(&"acknowledged"));
}

/// What a failed action must leave alone.
fn fingerprint(server: &TestServer, id: u64) -> (Value, usize) {
    let body = server
        .get(&format!("/api/v1/incidents/{id}"), &server.viewer)
        .body;
    (
        body["state"].clone(),
        body["timeline"].as_array().unwrap().len(),
    )
}

#[test]
fn every_action_works_and_bad_input_is_refused_without_change() {
    let server = TestServer::start();
    let incident = open_an_incident(&server);
    let id = incident["id"].as_u64().unwrap();
    // An operator sees it in /metrics, with the detector live and judging.
    let metrics = server.get("/metrics", &server.viewer).body;
    let metrics = metrics.as_str().unwrap();
    let severity = incident["severity"].as_str().unwrap();
    let open = format!("revloop_incidents_open{{severity=\"{severity}\",state=\"triggered\"}} 1");
    assert!(
        metrics.lines().any(|line| line == open),
        "{open}\n{metrics}"
    );
    assert!(
        metrics
            .lines()
            .any(|line| line == "revloop_detector_live{funnel=\"checkout\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("revloop_detector_lag_seconds{funnel=\"checkout\"} "),
        "{metrics}"
    );
    let onset = at(&incident["onset"]);
    let path = |action: &str| format!("/api/v1/incidents/{id}/{action}");
    let act = |action: &str, body: Value| server.post_json(&path(action), &server.responder, &body);

    // Bad input: each a clear 4xx, and the incident unchanged.
    let before = fingerprint(&server, id);
    let long = "x".repeat(5_000);
    let refused = [
        (
            server.post_json(&path("acknowledge"), &server.viewer, &json!({})),
            403,
            "forbidden",
        ),
        (
            server.post_json(
                "/api/v1/incidents/999/acknowledge",
                &server.responder,
                &json!({}),
            ),
            404,
            "not_found",
        ),
        (
            server.post_json(
                "/api/v1/incidents/abc/acknowledge",
                &server.responder,
                &json!({}),
            ),
            404,
            "not_found",
        ),
        (act("dance", json!({})), 404, "not_found"),
        (act("note", json!({"text": long})), 400, "too_long"),
        (
            act("note", json!({"text": "x".repeat(20_000)})),
            413,
            "too_large",
        ),
        (act("note", json!({})), 400, "missing_field"),
        (act("note", json!({"text": "  "})), 400, "empty_field"),
        (
            act("note", json!({"text": "hi", "colour": "red"})),
            400,
            "invalid_field",
        ),
        (act("note", json!({"text": 5})), 400, "invalid_field"),
        (
            act("note", json!({"text": "hi", "reason": "why"})),
            400,
            "invalid_field",
        ),
        (act("severity", json!({"severity": "P1"})), 409, "unchanged"),
        (
            server.post(
                &path("note"),
                &[("Authorization", &format!("Bearer {}", server.responder))],
                b"{\"text\":",
            ),
            400,
            "invalid_json",
        ),
        (act("scope", json!({"stage": "moon"})), 400, "invalid_field"),
        (
            act(
                "scope",
                json!({"stage": "payment", "segment": {"dimension": "planet", "value": "mars"}}),
            ),
            400,
            "invalid_field",
        ),
        (
            act("severity", json!({"severity": "P0"})),
            400,
            "invalid_field",
        ),
        (
            act("severity", json!({"severity": "P2"})),
            400,
            "missing_field",
        ),
        (
            act("mitigate", json!({"mitigation": "prayer"})),
            400,
            "invalid_field",
        ),
        (
            act(
                "action-items",
                json!({"text": "fix", "owner": "ana", "due": "tomorrow"}),
            ),
            400,
            "invalid_field",
        ),
        (act("checklist", json!({"index": 99})), 400, "invalid_field"),
        (act("reopen", json!({})), 409, "illegal_transition"),
        (
            act("note", json!({"text": "hi", "severity": "P1"})),
            400,
            "invalid_field",
        ),
        (
            act("acknowledge", json!({"text": "hi"})),
            400,
            "invalid_field",
        ),
        (act("resolve", json!({})), 400, "missing_field"),
        (
            server.post(
                &path("note"),
                &[
                    ("Authorization", &format!("Bearer {}", server.responder)),
                    ("Content-Encoding", "br"),
                ],
                b"{}",
            ),
            415,
            "unsupported_encoding",
        ),
    ];
    for (reply, status, code) in &refused {
        assert_eq!(
            (reply.status, reply.body["error"]["code"].as_str()),
            (*status, Some(*code)),
            "{}",
            reply.body
        );
        assert!(!reply.body["error"]["message"].as_str().unwrap().is_empty());
    }
    assert_eq!(fingerprint(&server, id), before);
    let gzipped = server.post(
        &path("note"),
        &[
            ("Authorization", &format!("Bearer {}", server.responder)),
            ("Content-Encoding", "gzip"),
        ],
        &gzip(json!({"text": "sent gzipped"}).to_string().as_bytes()),
    );
    assert_eq!(gzipped.status, 200, "{}", gzipped.body);

    // Every action, each on the timeline with who and why.
    let due = Timestamp::from_millis(T0 + 24 * 60 * MINUTE).to_string();
    let steps = [
        ("acknowledge", json!({"reason": "looking"}), "acknowledged"),
        (
            "note",
            json!({"text": "payment errors in the gateway log"}),
            "note",
        ),
        (
            "scope",
            json!({"stage": "checkout", "segment": {"dimension": "device", "value": "mobile"}}),
            "scope_set",
        ),
        (
            "severity",
            json!({"severity": "P2", "reason": "only card payments"}),
            "severity_set",
        ),
        ("severity", json!({"severity": "P1"}), "severity_set"),
        (
            "mitigate",
            json!({"mitigation": "backup_payment_processor", "detail": "switched to the backup"}),
            "mitigated",
        ),
        (
            "root-cause",
            json!({"text": "expired gateway certificate"}),
            "root_cause",
        ),
        (
            "action-items",
            json!({"text": "alert on certificate expiry", "owner": "ana", "due": due}),
            "action_item",
        ),
        (
            "checklist",
            json!({"index": 2, "finding": "gateway rejecting TLS"}),
            "checklist",
        ),
        ("resolve", json!({"reason": "payments flowing"}), "resolved"),
    ];
    for (action, body, kind) in steps {
        let reply = act(action, body);
        assert_eq!(reply.status, 200, "{action}: {}", reply.body);
        let last = reply.body["timeline"]
            .as_array()
            .unwrap()
            .last()
            .unwrap()
            .clone();
        let entry = reply.body["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .rev()
            .find(|e| e["kind"] == kind)
            .unwrap_or(&last)
            .clone();
        assert_eq!(entry["kind"], kind, "{action}: {}", reply.body);
        assert_eq!(entry["actor"], "responder");
    }
    let resolved = server
        .get(&format!("/api/v1/incidents/{id}"), &server.viewer)
        .body;
    assert_eq!(resolved["state"], "resolved");
    assert_eq!(resolved["checklist"][2]["checked_by"], "responder");
    assert_eq!(
        resolved["mitigations"][0]["mitigation"],
        "backup_payment_processor"
    );
    assert_eq!(resolved["action_items"][0]["owner"], "ana");
    assert_eq!(
        resolved["scope"],
        json!({"stage": "checkout", "segment": {"dimension": "device", "value": "mobile"}})
    );
    assert!(resolved["times"]["to_resolve_ms"].as_i64().unwrap() >= 0);

    // Resolving a resolved incident is illegal and changes nothing.
    let before = fingerprint(&server, id);
    let again = act("resolve", json!({}));
    assert_eq!(
        (again.status, again.body["error"]["code"].as_str()),
        (409, Some("illegal_transition"))
    );
    assert_eq!(fingerprint(&server, id), before);
    let reopened = act("reopen", json!({"reason": "errors again"}));
    assert_eq!(reopened.status, 200, "{}", reopened.body);
    assert_eq!(reopened.body["state"], "triggered");

    // Changes: recorded once per external id, refused when malformed, ranked as suspects.
    let change = json!({
        "at": Timestamp::from_millis(onset - 20 * MINUTE).to_string(),
        "kind": "deploy",
        "summary": "payments service v2.3.1",
        "stage": "checkout",
        "external_id": "deploy-4711",
    });
    let first = server.post_json("/api/v1/changes", &server.responder, &change);
    assert_eq!(first.status, 201, "{}", first.body);
    let second = server.post_json("/api/v1/changes", &server.responder, &change);
    assert_eq!(
        (second.status, &second.body["id"]),
        (200, &first.body["id"])
    );
    let mut altered = change.clone();
    altered["summary"] = json!("payments service v2.3.2");
    let conflict = server.post_json("/api/v1/changes", &server.responder, &altered);
    assert_eq!(
        (conflict.status, conflict.body["error"]["code"].as_str()),
        (409, Some("external_id_conflict"))
    );
    let unrelated = json!({"at": Timestamp::from_millis(onset - 23 * 60 * MINUTE).to_string(), "kind": "pricing", "summary": "winter prices", "stage": "cart"});
    assert_eq!(
        server
            .post_json("/api/v1/changes", &server.responder, &unrelated)
            .status,
        201
    );
    for (body, field) in [
        (json!({"kind": "magic", "summary": "x"}), "kind"),
        (json!({"kind": "deploy"}), "summary"),
        (
            json!({"kind": "deploy", "summary": "x", "at": "yesterday"}),
            "at",
        ),
        (
            json!({"kind": "deploy", "summary": "x", "stage": "moon"}),
            "stage",
        ),
        (
            json!({"kind": "deploy", "summary": "x".repeat(300)}),
            "summary",
        ),
        (
            json!({"kind": "deploy", "summary": "x", "at": "1990-01-01T00:00:00Z"}),
            "at",
        ),
    ] {
        let reply = server.post_json("/api/v1/changes", &server.responder, &body);
        assert_refused_field(&reply, field);
    }
    assert_eq!(
        server
            .post_json("/api/v1/changes", &server.viewer, &change)
            .status,
        403
    );
    let listed = server.get("/api/v1/changes", &server.viewer);
    assert_eq!(
        listed.body["changes"].as_array().unwrap().len(),
        2,
        "{}",
        listed.body
    );
    let with_suspects = server
        .get(&format!("/api/v1/incidents/{id}"), &server.viewer)
        .body;
    let suspects = with_suspects["suspects"].as_array().unwrap();
    assert_eq!(suspects.len(), 2, "{with_suspects}");
    assert_eq!(suspects[0]["change"]["external_id"], "deploy-4711");
    assert!(
        suspects[0]["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r == "at stage checkout")
    );

    // Lists, the report, and their bad queries.
    let open = server.get(
        "/api/v1/incidents?state=open&funnel=checkout",
        &server.viewer,
    );
    assert!(
        open.body["incidents"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["id"] == id)
    );
    for bad in [
        "/api/v1/incidents?state=sleeping",
        "/api/v1/incidents?limit=0",
        "/api/v1/incidents?colour=red",
        "/api/v1/incidents/report?from=yesterday",
        "/api/v1/outbox?after=x",
        "/api/v1/outbox?after=-1",
        "/api/v1/changes?limit=100000",
    ] {
        let reply = server.get(bad, &server.viewer);
        assert_eq!(reply.status, 400, "{bad}: {}", reply.body);
    }
    assert_eq!(
        server
            .get("/api/v1/incidents?funnel=nope", &server.viewer)
            .status,
        404
    );
    let report = server.get(
        &format!(
            "/api/v1/incidents/report?from={}&to={}",
            Timestamp::from_millis(T0 - 60 * MINUTE),
            Timestamp::from_millis(T0 + 24 * 60 * MINUTE)
        ),
        &server.viewer,
    );
    assert_eq!(report.status, 200, "{}", report.body);
    // The open incident is counted: apart, and as waiting (censored) for resolution.
    assert!(
        report.body["open_incidents"].as_u64().unwrap() >= 1,
        "{}",
        report.body
    );
    let rows: Vec<&Value> = ["P1", "P2", "P3"]
        .iter()
        .map(|s| &report.body["severities"][*s])
        .collect();
    let open_total: u64 = rows.iter().map(|r| r["open"].as_u64().unwrap()).sum();
    assert_eq!(open_total, report.body["open_incidents"].as_u64().unwrap());
    for row in rows.iter().filter(|r| r["open"].as_u64().unwrap() > 0) {
        assert_eq!(
            row["at_least"]["to_resolve"]["waiting"], row["open"],
            "{row}"
        );
        assert!(row["incidents"].as_u64() >= row["open"].as_u64());
    }

    // Every area's real reply reads into the type the CLI reads it with.
    typed::<wire::report::IncidentReport>(&report.body);
    typed::<wire::incidents::IncidentList>(&open.body);
    let full: wire::incidents::Incident = typed(
        &server
            .get(&format!("/api/v1/incidents/{id}"), &server.viewer)
            .body,
    );
    assert!(!full.timeline.is_empty() && !full.suspects.is_empty());
    let outbox: wire::outbox::OutboxPage =
        typed(&server.get("/api/v1/outbox", &server.viewer).body);
    assert!(!outbox.outbox.is_empty());
    let changes: wire::changes::ChangeList =
        typed(&server.get("/api/v1/changes", &server.viewer).body);
    assert!(!changes.changes.is_empty());
}

/// Two nodes share one PostgreSQL database: both judge the same traffic and run the same
/// timers, and still there is one incident and one page per level.
#[test]
fn two_nodes_on_postgresql_page_once() {
    let Ok(url) = std::env::var("REVLOOP_TEST_DATABASE_URL") else {
        eprintln!("skipped: REVLOOP_TEST_DATABASE_URL is not set");
        return;
    };
    let schema = format!("revloop_incidents_test_{}", std::process::id());
    let config = Config::parse(Config::example_toml()).unwrap();
    let open = || {
        std::sync::Arc::new(
            revloop_store::PostgresStore::open_in_schema(&url, &schema, &config).unwrap(),
        )
    };
    let first = TestServer::start_with(config.clone(), open(), tempfile::tempdir().unwrap());
    let second = TestServer::start_with(config.clone(), open(), tempfile::tempdir().unwrap());
    let incident = open_an_incident_on(&[&first, &second]);
    let id = incident["id"].as_u64().unwrap();
    let opened = at(&incident["opened_at"]);
    for server in [&first, &second] {
        server.set_clock(opened + 15 * MINUTE);
    }
    wait_for_levels(&first, id, &["L1", "L2"]);
    std::thread::sleep(std::time::Duration::from_millis(1_500));
    let pages = pages_of(&second, id);
    assert!(pages.values().all(|times| times.len() == 1), "{pages:?}");
    let all = first.get("/api/v1/incidents?state=all", &first.viewer);
    let on_checkout = all.body["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["stage"] == "checkout")
        .count();
    assert_eq!(on_checkout, 1, "{}", all.body);
    drop((first, second));
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    client
        .batch_execute(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .unwrap();
}

/// A maintenance window added through the API holds an incident's pages until it ends,
/// across a restart; bad silences are refused with the field named.
#[test]
fn a_silence_added_through_the_api_holds_pages_until_it_ends() {
    let mut server = TestServer::start();
    let until = T0 + 30 * MINUTE;
    let silence = json!({
        "funnel": "checkout",
        "stage": "checkout",
        "from": Timestamp::from_millis(T0).to_string(),
        "to": Timestamp::from_millis(until).to_string(),
        "reason": "checkout release",
    });
    assert_eq!(
        server
            .post_json("/api/v1/silences", &server.viewer, &silence)
            .status,
        403
    );
    let bad = |change: Value, field: &str| {
        let mut body = silence.clone();
        for (key, value) in change.as_object().unwrap() {
            body[key] = value.clone();
        }
        let reply = server.post_json("/api/v1/silences", &server.responder, &body);
        assert_refused_field(&reply, field);
    };
    bad(
        json!({"to": Timestamp::from_millis(T0 - MINUTE).to_string()}),
        "from",
    );
    bad(json!({"to": null}), "to");
    // Starting now (no `from`), an end in the past is refused on `to`.
    bad(
        json!({"from": null, "to": Timestamp::from_millis(T0 - MINUTE).to_string()}),
        "to",
    );
    bad(
        json!({"to": Timestamp::from_millis(T0 + 8 * 24 * 60 * MINUTE).to_string()}),
        "to",
    );
    bad(json!({"stage": "moon"}), "stage");
    bad(json!({"reason": ""}), "reason");
    let added = server.post_json("/api/v1/silences", &server.responder, &silence);
    assert_eq!(added.status, 201, "{}", added.body);
    let silence_id = added.body["id"].as_u64().unwrap();
    typed::<wire::silences::Silence>(&added.body);

    let incident = open_an_incident(&server);
    let id = incident["id"].as_u64().unwrap();
    assert_eq!(incident["silenced"], true, "{incident}");
    assert!(pages_of(&server, id).is_empty());
    server.restart();
    let listed = server.get("/api/v1/silences", &server.viewer);
    typed::<wire::silences::SilenceList>(&listed.body);
    assert_eq!(
        listed.body["silences"][0]["state"], "active",
        "{}",
        listed.body
    );
    server.set_clock(until);
    let pages = wait_for_levels(&server, id, &["L1"]);
    assert_eq!(pages["L1"], [until]);
    let page = outbox_of(&server, id)
        .into_iter()
        .find(|e| e["kind"] == "notify")
        .unwrap();
    assert!(
        page["reason"].as_str().unwrap().contains("silence ended"),
        "{page}"
    );
    let delete = |path: &str| {
        let mut response = server
            .agent
            .delete(&format!("{}{path}", server.base))
            .header("Authorization", &format!("Bearer {}", server.responder))
            .call()
            .unwrap();
        let status = response.status().as_u16();
        (status, response.body_mut().read_to_string().unwrap())
    };
    assert_eq!(delete("/api/v1/silences/999").0, 404);
    let (status, body) = delete(&format!("/api/v1/silences/{silence_id}"));
    assert_eq!(status, 200, "{body}");
    let ended: wire::silences::Silence = typed(&serde_json::from_str(&body).unwrap());
    assert!(ended.ended_at.is_some());
}
