//! A pre-aggregated count record re-sent with the same `id`, through the real server on both
//! stores: an identical re-send is a duplicate, a different body is a 409 naming the id with
//! nothing of its request stored, two different bodies racing for one id land once, and the
//! rule holds across a restart.

mod common;

use std::sync::Arc;

use serde_json::{Value, json};

use common::{MINUTE, T0, TestServer, on_postgresql};
use revloop_core::{Config, Timestamp};
use revloop_store::PostgresStore;

const START: i64 = T0 - 60 * MINUTE;

fn record(stage: &str, count: i64, id: Option<&str>) -> Value {
    let mut record = json!({
        "funnel": "checkout", "stage": stage, "count": count,
        "window_start": Timestamp::from_millis(START).to_string(),
    });
    if let Some(id) = id {
        record["id"] = json!(id);
    }
    record
}

fn counts(records: &[Value]) -> Value {
    json!({ "counts": records })
}

/// `(status, counted, duplicates)` of one counts request.
fn send(server: &TestServer, records: &[Value]) -> (u16, Value, Value) {
    let reply = server.ingest("/api/v1/counts", &counts(records));
    (
        reply.status,
        reply.body["counted"].clone(),
        reply.body["duplicates"].clone(),
    )
}

/// The checkout funnel's stage counts over the records' minute.
fn stored(server: &TestServer) -> Vec<i64> {
    server.stage_counts(START, START + MINUTE, "")
}

fn check_corrections(server: &TestServer) {
    let load = record("cart", 7, Some("load-1"));
    assert_eq!(
        send(server, std::slice::from_ref(&load)),
        (200, json!(1), json!(0))
    );
    // The same body again: a plain duplicate.
    assert_eq!(send(server, &[load]), (200, json!(0), json!(1)));

    // A new count under the same id, next to a valid new record: 409 naming the id by its
    // index, and neither record stored.
    let reply = server.ingest(
        "/api/v1/counts",
        &counts(&[
            record("order", 2, Some("load-2")),
            record("cart", 9, Some("load-1")),
        ]),
    );
    assert_eq!(reply.status, 409, "{}", reply.body);
    assert_eq!(reply.body["error"]["code"], "count_conflict");
    let detail = &reply.body["error"]["details"][0];
    assert_eq!(
        (&detail["index"], &detail["field"]),
        (&json!(1), &json!("id"))
    );
    assert!(
        reply.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("load-1"),
        "{}",
        reply.body
    );
    assert_eq!(stored(server), [0, 7, 0, 0, 0]);

    // Any other part of the body counts as different too: the stage, the window, the revenue.
    for changed in [record("checkout", 7, Some("load-1")), {
        let mut r = record("cart", 7, Some("load-1"));
        r["revenue"] = json!("1.00");
        r
    }] {
        assert_eq!(send(server, &[changed]).0, 409);
    }

    // Two different bodies for one new id in one request: the second is the conflict.
    let reply = server.ingest(
        "/api/v1/counts",
        &counts(&[
            record("order", 1, Some("load-3")),
            record("order", 4, Some("load-3")),
        ]),
    );
    assert_eq!(reply.status, 409, "{}", reply.body);
    assert_eq!(reply.body["error"]["details"][0]["index"], 1);
    assert_eq!(stored(server), [0, 7, 0, 0, 0]);

    // Without an id, dedup stays by content (funnel, stage, window, dimensions): a second
    // record for the same window is a duplicate, whatever its count.
    assert_eq!(
        send(server, &[record("payment", 3, None)]),
        (200, json!(1), json!(0))
    );
    assert_eq!(
        send(server, &[record("payment", 5, None)]),
        (200, json!(0), json!(1))
    );
    assert_eq!(stored(server), [0, 7, 0, 3, 0]);
}

/// Eight clients send eight different bodies for one new id at once: exactly one lands, the
/// other seven get a 409, and the stored count is the winner's.
fn check_racing_bodies(server: &TestServer) {
    let n_clients = 8;
    let statuses: Vec<(i64, u16)> = std::thread::scope(|scope| {
        let clients: Vec<_> = (1..=n_clients)
            .map(|count| {
                scope.spawn(move || {
                    let reply = send(server, &[record("product_viewed", count, Some("race"))]);
                    (count, reply.0)
                })
            })
            .collect();
        clients.into_iter().map(|c| c.join().unwrap()).collect()
    });
    let winners: Vec<i64> = statuses
        .iter()
        .filter(|(_, status)| *status == 200)
        .map(|(count, _)| *count)
        .collect();
    assert_eq!(winners.len(), 1, "{statuses:?}");
    assert!(
        statuses
            .iter()
            .all(|(_, status)| *status == 200 || *status == 409),
        "{statuses:?}"
    );
    assert_eq!(stored(server)[0], winners[0]);
}

#[test]
fn a_count_correction_is_refused_on_sqlite() {
    let server = TestServer::start();
    check_corrections(&server);
    check_racing_bodies(&server);
}

#[test]
fn a_count_correction_is_refused_after_a_restart_on_sqlite() {
    let mut server = TestServer::start_on_file(Config::parse(Config::example_toml()).unwrap());
    assert_eq!(send(&server, &[record("cart", 7, Some("load-1"))]).0, 200);
    server.restart();
    assert_eq!(
        send(&server, &[record("cart", 7, Some("load-1"))]),
        (200, json!(0), json!(1))
    );
    assert_eq!(send(&server, &[record("cart", 8, Some("load-1"))]).0, 409);
    assert_eq!(stored(&server), [0, 7, 0, 0, 0]);
}

#[test]
fn a_count_correction_is_refused_on_postgresql() {
    on_postgresql("corrections", "refused", |server| {
        check_corrections(server);
        check_racing_bodies(server);
    });
}

/// Two nodes on one database, racing different bodies for one id: one lands, the other is
/// refused once the first has committed.
#[test]
fn racing_nodes_land_one_body_on_postgresql() {
    let Ok(url) = std::env::var("REVLOOP_TEST_DATABASE_URL") else {
        eprintln!("skipped: REVLOOP_TEST_DATABASE_URL is not set");
        return;
    };
    let schema = format!("revloop_corrections_test_nodes_{}", std::process::id());
    let config = Config::parse(Config::example_toml()).unwrap();
    let node = || {
        let store = Arc::new(PostgresStore::open_in_schema(&url, &schema, &config).unwrap());
        TestServer::start_with(config.clone(), store, tempfile::tempdir().unwrap())
    };
    let (a, b) = (node(), node());
    for round in 0..10 {
        let id = format!("nodes-{round}");
        let (status_a, status_b) = std::thread::scope(|scope| {
            let from_a = scope.spawn(|| send(&a, &[record("order", 1, Some(&id))]).0);
            let from_b = scope.spawn(|| send(&b, &[record("order", 2, Some(&id))]).0);
            (from_a.join().unwrap(), from_b.join().unwrap())
        });
        let mut statuses = [status_a, status_b];
        statuses.sort_unstable();
        assert_eq!(statuses, [200, 409], "round {round}");
    }
    let orders = stored(&a)[4];
    assert!((10..=20).contains(&orders), "{orders}");
    drop((a, b));
    PostgresStore::drop_schema(&url, &schema).unwrap();
}
