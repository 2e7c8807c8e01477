//! The dead man's switch through the real server: with one funnel's reads failing (an
//! injected store fault) and the manual clock past `detection.cannot_judge_after`, exactly one
//! guard incident opens with its reason, pages once, escalates and is acknowledged like any
//! other, and resolves by itself once the store heals; later checks page nothing more. And two
//! nodes sharing a database (SQLite, PostgreSQL) page once between them.

mod common;

use std::sync::Arc;

use serde_json::{Value, json};

use common::*;
use revloop_api as wire;
use revloop_core::incident::{GuardEvent, GuardStatus};
use revloop_core::time::DurationMs;
use revloop_core::{Config, Timestamp};
use revloop_server::incidents::Incidents;
use revloop_store::faults::{Call, Failure, Fault, FaultyStore};
use revloop_store::{PostgresStore, SqliteStore, Store};

const INJECTED: &str = "injected read failure";

fn guard_incidents(server: &TestServer) -> Vec<Value> {
    let reply = server.get("/api/v1/incidents?state=all&limit=200", &server.viewer);
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.body["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["kind"] == "guard")
        .cloned()
        .collect()
}

/// Every page in the outbox, as (incident, level, reason).
fn pages(server: &TestServer) -> Vec<(u64, String, String)> {
    let reply = server.get("/api/v1/outbox?limit=1000", &server.viewer);
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.body["outbox"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "notify")
        .map(|e| {
            (
                e["incident"].as_u64().unwrap(),
                e["level"].as_str().unwrap().to_owned(),
                e["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Waits until `done` holds for the pages: at most 40 s, as the watchdog confirms blindness
/// over `CONFIRM_BLIND_MS` of real time first.
fn wait_for_pages(
    server: &TestServer,
    done: impl Fn(&[(u64, String, String)]) -> bool,
) -> Vec<(u64, String, String)> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(40);
    loop {
        let pages = pages(server);
        if done(&pages) {
            return pages;
        }
        assert!(std::time::Instant::now() < deadline, "pages: {pages:?}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Lets the watchdog look a few more times (it looks every `CHECK_EVERY_MS`).
fn let_the_watchdog_look_again() {
    let every = revloop_server::watchdog::CHECK_EVERY_MS;
    std::thread::sleep(std::time::Duration::from_millis(2 * every + 500));
}

/// Long enough for the watchdog to open an incident if it found a funnel blind: a funnel must
/// look blind for `CONFIRM_BLIND_MS` before it counts. Where a test says "nothing opens".
fn let_the_watchdog_confirm() {
    let every = revloop_server::watchdog::CHECK_EVERY_MS;
    let confirm = revloop_server::watchdog::CONFIRM_BLIND_MS;
    std::thread::sleep(std::time::Duration::from_millis(confirm + 2 * every + 500));
}

#[test]
fn the_dead_mans_switch_opens_an_incident_pages_once_and_resolves() {
    let config = Config::parse(Config::example_toml()).unwrap();
    let limit = config.detection.cannot_judge_after.millis();
    assert_eq!(limit, 10 * MINUTE, "the default");
    let dir = tempfile::tempdir().unwrap();
    let inner: Arc<dyn Store> =
        Arc::new(SqliteStore::open(&dir.path().join("test.db"), &config).unwrap());
    let faulty = FaultyStore::new(inner);
    let server = TestServer::start_with(config, faulty.clone(), dir);

    // Live and judging: the minute before T0 is judged at T0 + 1 minute (settle).
    server.set_clock(T0 + MINUTE);
    server.wait_until_judged(T0);
    faulty.inject(
        Fault::new(Call::SegmentMinuteCounts, Failure::Io(INJECTED.into())).funnel("checkout"),
    );
    // Within the limit nothing opens, however often the watchdog looks.
    server.set_clock(T0 + MINUTE + limit - MINUTE);
    let_the_watchdog_confirm();
    assert!(guard_incidents(&server).is_empty());
    assert!(
        faulty.failures(Call::SegmentMinuteCounts) > 0,
        "the fault bit"
    );

    // Past it: one guard incident, P1, with its reason, and one page.
    let opened_at = T0 + MINUTE + limit + MINUTE;
    server.set_clock(opened_at);
    let pages_now = wait_for_pages(&server, |pages| !pages.is_empty());
    let incidents = guard_incidents(&server);
    assert_eq!(incidents.len(), 1, "{incidents:?}");
    let id = incidents[0]["id"].as_u64().unwrap();
    let reply = server.get(&format!("/api/v1/incidents/{id}"), &server.viewer);
    let incident: wire::incidents::Incident = serde_json::from_value(reply.body.clone()).unwrap();
    let summary = &incident.summary;
    assert_eq!(
        (
            &summary.kind,
            summary.severity,
            summary.funnel.as_str(),
            summary.stage.as_str()
        ),
        (
            &wire::incidents::IncidentKind::Guard,
            wire::incidents::Severity::P1,
            "checkout",
            "*"
        )
    );
    // The reason is the failure's class and since when: the database's own text (here the
    // injected one) stays in the log.
    let reason = summary
        .reason
        .clone()
        .expect("a guard incident has a reason");
    assert!(
        reason.starts_with("its reads fail since ") && reason.contains("IO error"),
        "{reason}"
    );
    assert!(!reason.contains(INJECTED), "{reason}");
    assert_eq!(
        pages_now,
        [(
            id,
            "L1".to_owned(),
            format!("P1 revloop cannot judge checkout: {reason}")
        )]
    );
    assert_eq!(incident.criteria.len(), 1);
    assert_eq!(incident.criteria[0].name, "judging");
    assert!(!incident.criteria[0].holds);

    // Later checks while it is still blind: nothing more.
    let_the_watchdog_look_again();
    assert_eq!(pages(&server).len(), 1);
    assert_eq!(guard_incidents(&server).len(), 1);

    // Escalation as for any P1: L2 after L1's 15 minutes; an ack stops it.
    let l2_due = opened_at + 15 * MINUTE;
    server.set_clock(l2_due);
    let escalated = wait_for_pages(&server, |pages| pages.len() == 2);
    assert_eq!(escalated[1].0, id);
    assert_eq!(escalated[1].1, "L2");
    let ack = server.post_json(
        &format!("/api/v1/incidents/{id}/acknowledge"),
        &server.responder,
        &json!({"reason": "looking at the database"}),
    );
    assert_eq!(ack.status, 200, "{}", ack.body);
    server.set_clock(l2_due + 40 * MINUTE);
    let_the_watchdog_look_again();
    assert_eq!(pages(&server).len(), 2, "nothing pages after the ack");

    // Healed: judging resumes at the detector's next retry (its backoff is capped at 5
    // minutes) and the incident resolves by itself.
    faulty.heal();
    server.set_clock(l2_due + 46 * MINUTE);
    server.wait_for("/api/v1/detector", |body| {
        body["funnels"][0]["state"] == "live"
    });
    // The cause closes once revloop has not been blind for `GUARD_CLEAR_AFTER` (2 minutes).
    server.set_clock(l2_due + 50 * MINUTE);
    let resolved = server.wait_for(&format!("/api/v1/incidents/{id}"), |body| {
        body["state"] == "resolved"
    });
    let timeline: Vec<&str> = resolved["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["text"].as_str().unwrap())
        .collect();
    assert!(
        timeline.contains(&"revloop judges checkout again"),
        "{timeline:?}"
    );
    assert_eq!(resolved["criteria"][0]["holds"], true);

    // And stays so: no other guard incident, no other page.
    let_the_watchdog_confirm();
    assert_eq!(guard_incidents(&server).len(), 1);
    assert_eq!(pages(&server).len(), 2);
    // The server waits on its way out until nobody holds the store.
    drop(faulty);
}

/// A writer thread that died (here: a commit that panics) blinds every funnel: past the limit,
/// one guard incident for `*`, paged once, while the funnel itself is still judged.
#[test]
fn a_dead_writer_opens_one_guard_incident_for_every_funnel() {
    let config = Config::parse(Config::example_toml()).unwrap();
    let limit = config.detection.cannot_judge_after.millis();
    let dir = tempfile::tempdir().unwrap();
    let inner: Arc<dyn Store> =
        Arc::new(SqliteStore::open(&dir.path().join("test.db"), &config).unwrap());
    let faulty = FaultyStore::new(inner);
    let server = TestServer::start_with(config, faulty.clone(), dir);
    faulty.inject(Fault::new(Call::CommitIngest, Failure::Panic));
    let reply = server.ingest("/v1/track", &track("Product Viewed", "m1", T0));
    assert_ne!(reply.status, 200, "{}", reply.body);
    server.set_clock(T0 + limit + MINUTE);
    let paged = wait_for_pages(&server, |pages| !pages.is_empty());
    let incidents = guard_incidents(&server);
    assert_eq!(incidents.len(), 1, "{incidents:?}");
    assert_eq!(incidents[0]["funnel"], "*");
    assert_eq!(
        incidents[0]["reason"],
        "the group-commit writer has stopped"
    );
    assert_eq!(
        paged,
        [(
            incidents[0]["id"].as_u64().unwrap(),
            "L1".to_owned(),
            "P1 revloop cannot judge any funnel: the group-commit writer has stopped".to_owned()
        )]
    );
    let_the_watchdog_look_again();
    assert_eq!(pages(&server).len(), 1);
    drop(faulty);
}

/// `seconds` after T0.
fn at(seconds: i64) -> Timestamp {
    Timestamp::from_millis(T0).saturating_add(DurationMs::from_secs(seconds))
}

/// What a node's watchdog says of checkout.
fn event(status: GuardStatus) -> Vec<GuardEvent> {
    vec![GuardEvent {
        funnel: Some("checkout".into()),
        status,
    }]
}

/// A node's guard incidents: id and whether open.
fn guards(node: &Incidents) -> Vec<(u64, bool)> {
    node.with_engine(|engine| {
        engine
            .incidents()
            .filter(|i| i.is_guard())
            .map(|i| (i.id, i.is_open()))
            .collect()
    })
    .unwrap()
}

/// Two nodes sharing a database, each with its own watchdog, both see checkout blind and then
/// judging again, over and over: one guard incident between them, one page, one resolution.
fn two_nodes_page_once(first: Arc<dyn Store>, second: Arc<dyn Store>) {
    let config = Arc::new(Config::parse(Config::example_toml()).unwrap());
    let nodes = [
        Incidents::new(config.clone(), first.clone()),
        Incidents::new(config, second),
    ];
    let blind = event(GuardStatus::Blind {
        since: at(0),
        reason: "its reads fail: database is locked".into(),
    });
    for look in 0..5 {
        for node in &nodes {
            node.feed_guard(&blind, at(look * 2)).unwrap();
        }
    }
    // Judging again, past the 2 quiet minutes a cause waits before it closes.
    for look in 5..8 {
        for node in &nodes {
            node.feed_guard(&event(GuardStatus::Judging), at(180 + look * 2))
                .unwrap();
        }
    }
    let rows = first.outbox(0, 100).unwrap();
    let pages: Vec<(i64, String)> = rows
        .iter()
        .filter(|row| row.kind.as_str() == "notify")
        .map(|row| (row.incident, row.body.clone()))
        .collect();
    assert_eq!(pages.len(), 1, "{pages:?}");
    assert!(
        pages[0].1.contains("P1 revloop cannot judge checkout"),
        "{pages:?}"
    );
    // Its end is told once to those it paged, by whichever node resolved it.
    let kinds: Vec<&str> = rows.iter().map(|row| row.kind.as_str()).collect();
    assert_eq!(kinds, ["notify", "resolved"], "{kinds:?}");
    for node in &nodes {
        assert_eq!(guards(node), [(1, false)]);
    }
}

#[test]
fn two_nodes_on_sqlite_page_once() {
    let config = Config::parse(Config::example_toml()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("test.db");
    let open = || -> Arc<dyn Store> { Arc::new(SqliteStore::open(&path, &config).unwrap()) };
    two_nodes_page_once(open(), open());
}

#[test]
fn two_nodes_on_postgresql_page_once() {
    let Ok(url) = std::env::var("REVLOOP_TEST_DATABASE_URL") else {
        eprintln!("skipped: REVLOOP_TEST_DATABASE_URL is not set");
        return;
    };
    let config = Config::parse(Config::example_toml()).unwrap();
    let schema = format!("revloop_watchdog_test_two_nodes_{}", std::process::id());
    let open = || -> Arc<dyn Store> {
        Arc::new(PostgresStore::open_in_schema(&url, &schema, &config).unwrap())
    };
    let (first, second) = (open(), open());
    two_nodes_page_once(first, second);
    PostgresStore::drop_schema(&url, &schema).unwrap();
}

/// Two nodes that disagree: one is blind (its own connection broke), the other judges fine,
/// and both say so every two seconds for ten minutes. One guard incident, open throughout,
/// paged once: the healthy node's "judging" does not resolve it for the blind one to reopen.
#[test]
fn two_nodes_that_disagree_page_once_and_keep_it_open() {
    let config = Arc::new(Config::parse(Config::example_toml()).unwrap());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("test.db");
    let open = || -> Arc<dyn Store> { Arc::new(SqliteStore::open(&path, &config).unwrap()) };
    let (blind_node, judging_node) = (
        Incidents::new(config.clone(), open()),
        Incidents::new(config.clone(), open()),
    );
    let blind = event(GuardStatus::Blind {
        since: at(0),
        reason: "its reads fail: the store met an IO error while reading counts".into(),
    });
    for look in 0..300 {
        blind_node.feed_guard(&blind, at(look * 2)).unwrap();
        judging_node
            .feed_guard(&event(GuardStatus::Judging), at(look * 2 + 1))
            .unwrap();
    }
    let store = open();
    let pages = store.outbox(0, 100).unwrap();
    assert_eq!(pages.len(), 1, "{pages:?}");
    assert_eq!(guards(&judging_node), [(1, true)]);
}
