//! Declaring an incident by hand through the real server (`POST /api/v1/incidents`): it pages
//! L1 at once and escalates, an acknowledgement and the resolution are told to everyone paged
//! (outbox entries `acknowledged` and `resolved`), and bad input is refused naming the field.

mod common;

use serde_json::{Value, json};

use common::*;
use revloop_api as wire;

fn declaration() -> Value {
    json!({
        "funnel": "checkout",
        "stage": "payment",
        "severity": "P1",
        "summary": "customers say the card form hangs",
    })
}

fn declare(server: &TestServer, body: &Value) -> Reply {
    server.post_json("/api/v1/incidents", &server.responder, body)
}

/// Every outbox entry of one incident, each read into the type the CLI reads it with.
fn outbox_of(server: &TestServer, incident: u64) -> Vec<wire::outbox::OutboxEntry> {
    let reply = server.get("/api/v1/outbox?limit=1000", &server.viewer);
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.body["outbox"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["incident"] == incident)
        .map(|e| serde_json::from_value(e.clone()).unwrap_or_else(|err| panic!("{err}: {e}")))
        .collect()
}

/// Waits until the incident's outbox holds `n` entries, and returns them.
fn wait_for_entries(
    server: &TestServer,
    incident: u64,
    n: usize,
) -> Vec<wire::outbox::OutboxEntry> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let entries = outbox_of(server, incident);
        if entries.len() >= n {
            return entries;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} entries, waiting for {n}: {entries:?}",
            entries.len()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// An entry in one line: `notify L1 [on-call engineer]`, `acknowledged responder [..]`.
fn line(entry: &wire::outbox::OutboxEntry) -> String {
    use wire::outbox::OutboxEntry::*;
    let targets = entry.targets().join(", ");
    match entry {
        Notify { level, .. } => format!("notify {level} [{targets}]"),
        Remind { .. } => format!("remind [{targets}]"),
        SlaBreached { sla, .. } => format!("sla_breached {sla} [{targets}]"),
        Acknowledged { by, .. } => format!("acknowledged {by} [{targets}]"),
        Resolved {
            by, false_alarm, ..
        } => format!("resolved {by} false_alarm={false_alarm} [{targets}]"),
    }
}

#[test]
fn a_declared_incident_pages_escalates_and_tells_those_paged_of_its_ack_and_end() {
    let server = TestServer::start();
    let reply = declare(&server, &declaration());
    assert_eq!(reply.status, 201, "{}", reply.body);
    let incident: wire::incidents::Incident = serde_json::from_value(reply.body.clone()).unwrap();
    let id = incident.summary.id;
    assert_eq!(reply.body["kind"], "declared", "{}", reply.body);
    assert_eq!(reply.body["severity"], "P1");
    assert_eq!(reply.body["state"], "triggered");
    // The same view as GET /api/v1/incidents/{id}.
    let got = server.get(&format!("/api/v1/incidents/{id}"), &server.viewer);
    assert_eq!(got.body, reply.body);
    let opened = &reply.body["timeline"][0];
    assert_eq!(opened["actor"], "responder", "{opened}");
    assert!(
        opened["text"]
            .as_str()
            .unwrap()
            .contains("customers say the card form hangs"),
        "{opened}"
    );

    let entries = wait_for_entries(&server, id, 1);
    assert_eq!(line(&entries[0]), "notify L1 [on-call engineer]");
    let brief = entries[0].brief().expect("a page carries its brief");
    assert_eq!(
        (
            brief.title.as_str(),
            brief.kind.as_str(),
            brief.stage.as_str()
        ),
        (
            "P1 declared: checkout/payment: customers say the card form hangs",
            "declared",
            "payment"
        )
    );

    // Unacknowledged for 15 minutes: L2 is paged, and the response SLA breached is told to
    // both.
    server.set_clock(T0 + 16 * MINUTE);
    wait_for_entries(&server, id, 3);
    let act = |action: &str, body: Value| {
        let reply = server.post_json(
            &format!("/api/v1/incidents/{id}/{action}"),
            &server.responder,
            &body,
        );
        assert_eq!(reply.status, 200, "{action}: {}", reply.body);
    };
    act("acknowledge", json!({}));
    act(
        "resolve",
        json!({"reason": "the card form's CDN recovered"}),
    );
    let lines: Vec<String> = wait_for_entries(&server, id, 5).iter().map(line).collect();
    assert_eq!(
        lines,
        [
            "notify L1 [on-call engineer]",
            "notify L2 [engineering manager]",
            "sla_breached response [on-call engineer, engineering manager]",
            "acknowledged responder [on-call engineer, engineering manager]",
            "resolved responder false_alarm=false [on-call engineer, engineering manager]",
        ]
    );
    // Nothing more is owed once it is over.
    server.set_clock(T0 + 600 * MINUTE);
    std::thread::sleep(std::time::Duration::from_millis(1_500));
    assert_eq!(outbox_of(&server, id).len(), 5);
}

#[test]
fn a_declaration_names_what_is_wrong_with_it_and_changes_nothing() {
    let server = TestServer::start();
    let with = |field: &str, value: Value| {
        let mut body = declaration();
        body[field] = value;
        body
    };
    let without = |field: &str| {
        let mut body = declaration();
        body.as_object_mut().unwrap().remove(field);
        body
    };
    // (body, status, code, field)
    let cases: Vec<(Value, u16, &str, &str)> = vec![
        (without("funnel"), 400, "missing_field", "funnel"),
        (without("stage"), 400, "missing_field", "stage"),
        (without("severity"), 400, "missing_field", "severity"),
        (without("summary"), 400, "missing_field", "summary"),
        (
            with("funnel", json!("returns")),
            400,
            "invalid_field",
            "funnel",
        ),
        (
            with("stage", json!("wishlist")),
            400,
            "invalid_field",
            "stage",
        ),
        (
            with("severity", json!("P0")),
            400,
            "invalid_field",
            "severity",
        ),
        (with("summary", json!("   ")), 400, "empty_field", "summary"),
        (
            with("summary", json!("x".repeat(1_025))),
            400,
            "too_long",
            "summary",
        ),
        (with("summary", json!(7)), 400, "invalid_field", "summary"),
        (
            with("summary", json!("card\u{0}errors")),
            400,
            "invalid_field",
            "summary",
        ),
        (with("owner", json!("ana")), 400, "invalid_field", "owner"),
        (
            with("segment", json!({"dimension": "planet", "value": "mars"})),
            400,
            "invalid_field",
            "segment.dimension",
        ),
    ];
    for (body, status, code, field) in cases {
        let reply = declare(&server, &body);
        assert_eq!(reply.status, status, "{body}: {}", reply.body);
        assert_eq!(reply.body["error"]["code"], code, "{body}: {}", reply.body);
        assert_eq!(
            reply.body["error"]["details"][0]["field"], field,
            "{body}: {}",
            reply.body
        );
    }
    // A viewer may not declare.
    let viewer = server.post_json("/api/v1/incidents", &server.viewer, &declaration());
    assert_eq!(viewer.status, 403, "{}", viewer.body);
    let open = server.get("/api/v1/incidents?state=all", &server.viewer);
    assert_eq!(open.body["incidents"], json!([]), "{}", open.body);

    // One open incident per stage: the second is refused naming the first.
    let first = declare(&server, &declaration());
    assert_eq!(first.status, 201, "{}", first.body);
    let id = first.body["id"].as_u64().unwrap();
    let segment = with("segment", json!({"dimension": "device", "value": "mobile"}));
    let second = declare(&server, &segment);
    assert_eq!(second.status, 409, "{}", second.body);
    assert_eq!(second.body["error"]["code"], "another_is_open");
    let message = second.body["error"]["message"].as_str().unwrap();
    assert!(message.contains(&format!("incident {id}")), "{message}");
    // Another stage is free.
    let cart = declare(&server, &with("stage", json!("cart")));
    assert_eq!(cart.status, 201, "{}", cart.body);
}
