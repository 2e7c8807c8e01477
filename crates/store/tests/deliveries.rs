//! The delivery queue, against both dialects: planning once, claiming due deliveries under a
//! lease in outbox order, attempts fenced by the lease's owner, the reads and stats, the
//! append-only attempt log, and (PostgreSQL) two nodes draining one queue at once.
//!
//! Each check runs on a fresh SQLite file and, when `REVLOOP_TEST_DATABASE_URL` names a
//! server (e.g. `postgres://postgres@127.0.0.1:5432/test`), in a PostgreSQL schema of its own;
//! without it the PostgreSQL tests say they were skipped and pass.

use std::collections::BTreeSet;
use std::sync::Barrier;
use std::sync::atomic::{AtomicU64, Ordering};

use postgres::{Client, NoTls};

use revloop_core::time::DurationMs;
use revloop_core::{Config, Timestamp};
use revloop_store::{
    AttemptRecord, ChannelDeliveryStats, DELIVERY_PAGE_MAX, DELIVERY_PLAN_MAX, DeliveryQuery,
    DeliveryRow, DeliveryState, NewDelivery, PostgresStore, SqliteStore, Store, StoreError,
};

/// 2026-11-27T10:00:00Z.
const T0_MS: i64 = 1_795_773_600_000;

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_millis(T0_MS + seconds * 1_000)
}

fn secs(seconds: i64) -> DurationMs {
    DurationMs::from_secs(seconds)
}

fn config() -> Config {
    Config::parse(Config::example_toml()).expect("the example config parses")
}

/// A delivery of outbox entry `outbox_id` to `target` by `channel`, planned at `created_s`.
fn new_delivery(
    outbox_id: i64,
    incident: i64,
    target: &str,
    channel: &str,
    created_s: i64,
) -> NewDelivery {
    NewDelivery {
        outbox_id,
        incident,
        target: target.into(),
        channel: channel.into(),
        address: String::new(),
        level: "L1".into(),
        created_at: at(created_s),
    }
}

fn record(
    row: &DeliveryRow,
    node: &str,
    at_s: i64,
    state: DeliveryState,
    next_s: Option<i64>,
) -> AttemptRecord {
    AttemptRecord {
        delivery: row.id,
        node: node.into(),
        at: at(at_s),
        state,
        next_at: next_s.map(at),
        status: match state {
            DeliveryState::Delivered => "200".into(),
            _ => "503".into(),
        },
        response: "receiver said so".into(),
    }
}

fn claim(store: &dyn Store, channel: &str, node: &str, now_s: i64) -> Vec<DeliveryRow> {
    store
        .claim_deliveries(channel, node, at(now_s), secs(30), 100)
        .expect("claim")
}

fn outbox_ids(rows: &[DeliveryRow]) -> Vec<i64> {
    rows.iter().map(|row| row.outbox_id).collect()
}

fn all(store: &dyn Store) -> Vec<DeliveryRow> {
    store
        .deliveries(&DeliveryQuery {
            incident: None,
            outbox_ids: None,
            limit: DELIVERY_PAGE_MAX,
        })
        .expect("read the deliveries")
}

fn by_id(store: &dyn Store, id: i64) -> DeliveryRow {
    all(store)
        .into_iter()
        .find(|row| row.id == id)
        .expect("the delivery exists")
}

// --- the checks, each on a fresh store ---------------------------------------------------

fn planning_twice_plans_once(store: &dyn Store) {
    assert_eq!(store.delivery_cursor().unwrap(), 0);
    let plan = [
        new_delivery(1, 7, "cto", "email", 0),
        new_delivery(1, 7, "on-call", "webhook", 0),
        NewDelivery {
            address: "b@example.com".into(),
            ..new_delivery(1, 7, "cto", "email", 0)
        },
    ];
    assert_eq!(store.plan_deliveries(5, &plan).unwrap(), 3);
    assert_eq!(store.plan_deliveries(5, &plan).unwrap(), 0);
    assert_eq!(store.delivery_cursor().unwrap(), 5);
    // A plan through a lower id (a slower node) adds what is new but leaves the cursor.
    let late = [new_delivery(2, 7, "cto", "email", 1)];
    assert_eq!(store.plan_deliveries(3, &late).unwrap(), 1);
    assert_eq!(store.delivery_cursor().unwrap(), 5);
    assert_eq!(store.plan_deliveries(9, &[]).unwrap(), 0);
    assert_eq!(store.delivery_cursor().unwrap(), 9);

    let rows = all(store);
    assert_eq!(outbox_ids(&rows), [1, 1, 1, 2]);
    let first = &rows[0];
    assert_eq!(first.state, DeliveryState::Pending);
    assert_eq!(first.attempts, 0);
    assert_eq!(first.next_at, first.created_at);
    assert_eq!((first.first_attempt_at, first.lease.clone()), (None, None));
    assert_eq!((first.last_status.clone(), first.finished_at), (None, None));

    let too_many = vec![new_delivery(3, 7, "cto", "email", 0); DELIVERY_PLAN_MAX + 1];
    assert!(matches!(
        store.plan_deliveries(10, &too_many),
        Err(StoreError::Settings(_))
    ));
    assert_eq!(
        store.delivery_cursor().unwrap(),
        9,
        "a refused plan writes nothing"
    );
    assert_eq!(all(store).len(), 4);
}

fn claims_due_deliveries_oldest_first(store: &dyn Store) {
    let plan = [
        new_delivery(1, 1, "cto", "email", 0),
        new_delivery(2, 2, "cto", "email", -10),
        new_delivery(3, 3, "cto", "email", 20),
        new_delivery(4, 4, "cto", "webhook", -20),
    ];
    store.plan_deliveries(4, &plan).unwrap();
    let one = store
        .claim_deliveries("email", "a", at(0), secs(30), 1)
        .unwrap();
    assert_eq!(outbox_ids(&one), [2], "the oldest due first");
    assert_eq!(one[0].lease, Some(("a".to_owned(), at(30))));
    let rest = claim(store, "email", "a", 0);
    assert_eq!(
        outbox_ids(&rest),
        [1],
        "not the future one, nor another channel's"
    );
    assert_eq!(outbox_ids(&claim(store, "webhook", "a", 0)), [4]);
    assert!(claim(store, "email", "a", 19).is_empty());
    assert_eq!(
        outbox_ids(&claim(store, "email", "b", 20)),
        [3],
        "due, the others leased"
    );
    assert!(claim(store, "sms", "a", 20).is_empty());
}

fn a_lease_holds_until_it_expires(store: &dyn Store) {
    store
        .plan_deliveries(1, &[new_delivery(1, 1, "cto", "email", 0)])
        .unwrap();
    let held = claim(store, "email", "a", 0);
    assert_eq!(outbox_ids(&held), [1]);
    assert!(claim(store, "email", "b", 10).is_empty(), "leased to a");
    assert!(
        claim(store, "email", "a", 29).is_empty(),
        "leased, even to a"
    );
    let taken = claim(store, "email", "b", 30);
    assert_eq!(outbox_ids(&taken), [1], "the lease expired");
    assert_eq!(taken[0].lease, Some(("b".to_owned(), at(60))));

    // a comes back late: it no longer holds the delivery, and writes nothing.
    let late = record(&held[0], "a", 31, DeliveryState::Delivered, None);
    assert!(!store.record_attempt(&late).unwrap());
    let row = by_id(store, held[0].id);
    assert_eq!((row.state, row.attempts), (DeliveryState::Pending, 0));
    assert_eq!(row.lease, Some(("b".to_owned(), at(60))));
    assert!(store.delivery_attempts(1, 100).unwrap().is_empty());

    // The holder records even after its lease ran out, while nobody else has claimed it.
    let done = record(&taken[0], "b", 70, DeliveryState::Delivered, None);
    assert!(store.record_attempt(&done).unwrap());
    assert_eq!(by_id(store, held[0].id).state, DeliveryState::Delivered);
}

fn attempts_are_recorded_by_the_holder_only(store: &dyn Store) {
    store
        .plan_deliveries(1, &[new_delivery(1, 5, "cto", "email", 0)])
        .unwrap();
    let row = all(store).remove(0);
    let unleased = record(&row, "a", 1, DeliveryState::Delivered, None);
    assert!(!store.record_attempt(&unleased).unwrap(), "nobody holds it");
    let row = claim(store, "email", "a", 1).remove(0);
    let stranger = record(&row, "b", 2, DeliveryState::Delivered, None);
    assert!(
        !store.record_attempt(&stranger).unwrap(),
        "b does not hold it"
    );
    assert!(store.delivery_attempts(5, 100).unwrap().is_empty());

    let retry = record(&row, "a", 2, DeliveryState::Pending, Some(12));
    assert!(store.record_attempt(&retry).unwrap());
    let after_first = by_id(store, row.id);
    assert_eq!(after_first.state, DeliveryState::Pending);
    assert_eq!(after_first.attempts, 1);
    assert_eq!(after_first.first_attempt_at, Some(at(2)));
    assert_eq!(after_first.next_at, at(12));
    assert_eq!(after_first.lease, None, "recording releases the lease");
    assert_eq!(after_first.last_status.as_deref(), Some("503"));
    assert_eq!(
        after_first.last_response.as_deref(),
        Some("receiver said so")
    );
    assert_eq!(after_first.finished_at, None);
    assert!(
        !store.record_attempt(&retry).unwrap(),
        "released: recorded once"
    );

    assert!(claim(store, "email", "b", 11).is_empty(), "not due yet");
    let row = claim(store, "email", "b", 12).remove(0);
    let delivered = record(&row, "b", 13, DeliveryState::Delivered, None);
    assert!(store.record_attempt(&delivered).unwrap());
    let done = by_id(store, row.id);
    assert_eq!((done.state, done.attempts), (DeliveryState::Delivered, 2));
    assert_eq!(
        done.first_attempt_at,
        Some(at(2)),
        "kept from the first attempt"
    );
    assert_eq!((done.finished_at, done.next_at), (Some(at(13)), at(12)));
    assert!(claim(store, "email", "b", 100).is_empty(), "final");

    let log = store.delivery_attempts(5, 100).unwrap();
    let summary: Vec<_> = log
        .iter()
        .map(|a| (a.delivery, a.attempt, a.node.as_str(), a.at, a.state))
        .collect();
    assert_eq!(
        summary,
        [
            (row.id, 1, "a", at(2), DeliveryState::Pending),
            (row.id, 2, "b", at(13), DeliveryState::Delivered),
        ]
    );
    assert!(store.delivery_attempts(6, 100).unwrap().is_empty());
    // A bounded read keeps the newest.
    let newest = store.delivery_attempts(5, 1).unwrap();
    assert_eq!(
        newest.iter().map(|a| a.attempt).collect::<Vec<_>>(),
        [2],
        "the newest attempt"
    );
    assert_eq!(log[0].response, "receiver said so");

    // What a receiver answers is kept as text both databases take, and cut.
    store
        .plan_deliveries(2, &[new_delivery(2, 6, "cto", "email", 0)])
        .unwrap();
    let other = claim(store, "email", "a", 20).remove(0);
    assert_eq!(other.outbox_id, 2);
    let odd = AttemptRecord {
        status: "5\u{0}3".into(),
        response: format!("bad\u{0}{}", "é".repeat(1_000)),
        ..record(&other, "a", 21, DeliveryState::Failed, None)
    };
    assert!(store.record_attempt(&odd).unwrap());
    let kept = by_id(store, other.id);
    assert_eq!(kept.last_status.as_deref(), Some("5\u{FFFD}3"));
    let response = kept.last_response.expect("a response");
    assert!(response.starts_with("bad\u{FFFD}éé"), "{response}");
    // "bad" and U+FFFD are 6 bytes, then 509 two-byte chars fit in 1,024 (1,018 bytes left).
    assert_eq!(response.len(), 1_024);
    assert_eq!(
        store.delivery_attempts(6, 100).unwrap()[0].status,
        "5\u{FFFD}3"
    );
}

fn a_later_delivery_waits_for_the_earlier(store: &dyn Store) {
    let plan = [
        new_delivery(1, 7, "cto", "email", 0), // the trigger
        new_delivery(2, 7, "cto", "email", 1), // its resolve
        NewDelivery {
            address: "other@example.com".into(), // another receiver: not held back
            ..new_delivery(2, 7, "other", "email", 1)
        },
        new_delivery(2, 7, "ceo", "email", 1), // another target, the same receiver: held back
        new_delivery(2, 7, "cto", "webhook", 1), // another channel: not held back
        new_delivery(3, 8, "cto", "email", 2), // another incident: not held back
        new_delivery(4, 9, "cto", "email", 0), // the trigger of a second incident
        new_delivery(5, 9, "cto", "email", 1), // its resolve
    ];
    store.plan_deliveries(5, &plan).unwrap();
    let first = claim(store, "email", "a", 5);
    let ids: Vec<_> = first
        .iter()
        .map(|r| (r.outbox_id, r.target.as_str()))
        .collect();
    assert_eq!(ids, [(1, "cto"), (4, "cto"), (2, "other"), (3, "cto")]);
    assert_eq!(outbox_ids(&claim(store, "webhook", "a", 5)), [2]);
    for unrelated in &first[2..] {
        let delivered = record(unrelated, "a", 6, DeliveryState::Delivered, None);
        assert!(store.record_attempt(&delivered).unwrap());
    }

    // The first incident's trigger fails for now; the second's fails for good.
    let retry = record(&first[0], "a", 6, DeliveryState::Pending, Some(60));
    assert!(store.record_attempt(&retry).unwrap());
    let gave_up = record(&first[1], "a", 6, DeliveryState::Failed, None);
    assert!(store.record_attempt(&gave_up).unwrap());
    // The second's resolve goes; the first's still waits, though its trigger is not leased
    // and not due.
    let at_59 = claim(store, "email", "a", 59);
    assert_eq!(outbox_ids(&at_59), [5]);

    let trigger = claim(store, "email", "a", 60);
    assert_eq!(outbox_ids(&trigger), [1], "the trigger first");
    let delivered = record(&trigger[0], "a", 61, DeliveryState::Delivered, None);
    assert!(store.record_attempt(&delivered).unwrap());
    let resolve = claim(store, "email", "a", 61);
    let ids: Vec<_> = resolve
        .iter()
        .map(|r| (r.outbox_id, r.target.as_str()))
        .collect();
    assert_eq!(
        ids,
        [(2, "cto"), (2, "ceo")],
        "then its resolve, to each target on that receiver"
    );
}

fn stats_count_by_channel(store: &dyn Store) {
    assert!(store.delivery_stats().unwrap().is_empty());
    let plan = [
        new_delivery(1, 1, "cto", "email", 0),
        new_delivery(2, 2, "cto", "email", 3),
        new_delivery(3, 3, "cto", "email", 5),
        new_delivery(4, 4, "cto", "webhook", 1),
    ];
    store.plan_deliveries(4, &plan).unwrap();
    let email = claim(store, "email", "a", 10);
    let webhook = claim(store, "webhook", "a", 10);
    let outcomes = [
        record(&email[0], "a", 11, DeliveryState::Pending, Some(11)),
        record(&email[1], "a", 11, DeliveryState::Failed, None),
        record(&webhook[0], "a", 11, DeliveryState::Delivered, None),
    ];
    for outcome in &outcomes {
        assert!(store.record_attempt(outcome).unwrap());
    }
    let retried = claim(store, "email", "a", 11);
    assert_eq!(outbox_ids(&retried), [1]);
    let delivered = record(&retried[0], "a", 12, DeliveryState::Delivered, None);
    assert!(store.record_attempt(&delivered).unwrap());
    // email: 1 delivered (after a failed attempt), 2 failed for good, 3 still pending.
    assert_eq!(
        store.delivery_stats().unwrap(),
        [
            ChannelDeliveryStats {
                channel: "email".into(),
                delivered: 1,
                failed: 1,
                pending: 1,
                failed_attempts: 2,
                oldest_pending_at: Some(at(5)),
            },
            ChannelDeliveryStats {
                channel: "webhook".into(),
                delivered: 1,
                failed: 0,
                pending: 0,
                failed_attempts: 0,
                oldest_pending_at: None,
            },
        ]
    );
}

fn reads_are_bounded_and_filtered(store: &dyn Store) {
    let plan: Vec<_> = (1..=DELIVERY_PAGE_MAX as i64 + 5)
        .map(|n| NewDelivery {
            // Each its own receiver, so that none waits for another.
            address: format!("t{n}@example.com"),
            ..new_delivery(n, n % 3, &format!("target-{n}"), "email", 0)
        })
        .collect();
    store.plan_deliveries(plan.len() as i64, &plan).unwrap();
    let query = |incident, outbox_ids, limit| {
        store
            .deliveries(&DeliveryQuery {
                incident,
                outbox_ids,
                limit,
            })
            .unwrap()
    };
    assert_eq!(query(None, None, usize::MAX).len(), DELIVERY_PAGE_MAX);
    assert_eq!(outbox_ids(&query(None, Some((10, 12)), 100)), [10, 11, 12]);
    assert_eq!(
        outbox_ids(&query(Some(1), Some((1, 10)), 100)),
        [1, 4, 7, 10]
    );
    assert_eq!(outbox_ids(&query(Some(2), None, 2)), [2, 5]);
    let claimed = store
        .claim_deliveries("email", "a", at(0), secs(30), usize::MAX)
        .unwrap();
    assert_eq!(
        claimed.len(),
        DELIVERY_PAGE_MAX,
        "a claim is a page at most"
    );
}

fn a_channel_back_is_due_at_once(store: &dyn Store) {
    let plan = [
        new_delivery(1, 7, "cto", "hook", 0),
        new_delivery(2, 8, "cto", "hook", 0),
        new_delivery(3, 9, "cto", "hook", 0),
        new_delivery(4, 9, "cto", "mail", 0),
    ];
    store.plan_deliveries(4, &plan).unwrap();
    let claimed = claim(store, "hook", "a", 0);
    assert_eq!(outbox_ids(&claimed), [1, 2, 3]);
    // Two back off for ten minutes, the third was told to wait (429).
    for row in &claimed[..2] {
        assert!(
            store
                .record_attempt(&record(row, "a", 1, DeliveryState::Pending, Some(600)))
                .unwrap()
        );
    }
    let mut told_to_wait = record(&claimed[2], "a", 1, DeliveryState::Pending, Some(600));
    told_to_wait.status = "429".into();
    assert!(store.record_attempt(&told_to_wait).unwrap());
    assert!(claim(store, "hook", "a", 5).is_empty());
    assert_eq!(store.expedite_deliveries("hook", at(5)).unwrap(), 2);
    assert_eq!(outbox_ids(&claim(store, "hook", "a", 5)), [1, 2]);
    // The other channel's delivery and the one told to wait keep their times.
    assert_eq!(by_id(store, claimed[2].id).next_at, at(600));
    assert_eq!(store.expedite_deliveries("hook", at(5)).unwrap(), 0);
}

/// Registers one test per check and dialect.
macro_rules! checks {
    ($($check:ident),+ $(,)?) => {
        mod sqlite_store {
            $(
                #[test]
                fn $check() {
                    super::on_sqlite(|store, _| super::$check(store));
                }
            )+
        }
        mod postgres_store {
            $(
                #[test]
                fn $check() {
                    super::on_postgres(|store, _| super::$check(store));
                }
            )+
        }
    };
}

checks!(
    planning_twice_plans_once,
    claims_due_deliveries_oldest_first,
    a_lease_holds_until_it_expires,
    attempts_are_recorded_by_the_holder_only,
    a_later_delivery_waits_for_the_earlier,
    stats_count_by_channel,
    reads_are_bounded_and_filtered,
    a_channel_back_is_due_at_once,
);

// --- the databases -----------------------------------------------------------------------

/// Runs `run` on a fresh SQLite store, with a plain connection to its file.
fn on_sqlite(run: impl FnOnce(&dyn Store, &mut dyn FnMut(&str) -> Result<(), String>)) {
    let dir = tempfile::TempDir::new().expect("temporary directory");
    let path = dir.path().join("revloop.db");
    let store = SqliteStore::open(&path, &config()).expect("open the SQLite store");
    let connection = rusqlite::Connection::open(&path).expect("open the database");
    let mut execute = |sql: &str| connection.execute_batch(sql).map_err(|err| err.to_string());
    run(&store, &mut execute);
}

/// Runs `run` on a fresh PostgreSQL store in a schema of its own, with a plain connection to
/// it; says "skipped" and returns when no test database is configured.
fn on_postgres(run: impl FnOnce(&dyn Store, &mut dyn FnMut(&str) -> Result<(), String>)) {
    let Some(schema) = TestSchema::new() else {
        return;
    };
    let store = schema.open();
    let mut client = schema.client();
    let mut execute = |sql: &str| {
        client
            .batch_execute(sql)
            .map_err(|err| match err.as_db_error() {
                Some(db) => db.message().to_owned(),
                None => err.to_string(),
            })
    };
    run(&store, &mut execute);
}

/// A schema for one test, dropped (with everything in it) when the test ends.
struct TestSchema {
    url: String,
    name: String,
}

static N_SCHEMAS: AtomicU64 = AtomicU64::new(0);

impl TestSchema {
    fn new() -> Option<TestSchema> {
        let url = match std::env::var("REVLOOP_TEST_DATABASE_URL") {
            Ok(url) if !url.is_empty() => url,
            _ => {
                eprintln!("skipped: REVLOOP_TEST_DATABASE_URL is not set");
                return None;
            }
        };
        let n = N_SCHEMAS.fetch_add(1, Ordering::Relaxed);
        let schema = TestSchema {
            url,
            name: format!("revloop_deliveries_{}_{n}", std::process::id()),
        };
        // A run killed before it cleaned up may have left a schema of this name behind.
        PostgresStore::drop_schema(&schema.url, &schema.name).expect("drop a leftover schema");
        Some(schema)
    }

    fn open(&self) -> PostgresStore {
        PostgresStore::open_in_schema(&self.url, &self.name, &config())
            .expect("open the PostgreSQL store")
    }

    fn client(&self) -> Client {
        let mut client = Client::connect(&self.url, NoTls).expect("connect to the test database");
        client
            .batch_execute(&format!("SET search_path TO \"{}\"", self.name))
            .expect("set the search path");
        client
    }
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        // Never panic here: the test may be unwinding already.
        if let Err(err) = PostgresStore::drop_schema(&self.url, &self.name) {
            eprintln!("could not drop test schema {}: {err}", self.name);
        }
    }
}

// --- what the schema refuses -------------------------------------------------------------

/// Plans, claims and records one attempt, then tries to rewrite the log with each of `sqls`.
fn attempt_log_is_append_only(
    store: &dyn Store,
    execute: &mut dyn FnMut(&str) -> Result<(), String>,
    sqls: &[&str],
) {
    store
        .plan_deliveries(1, &[new_delivery(1, 1, "cto", "email", 0)])
        .unwrap();
    let row = claim(store, "email", "a", 0).remove(0);
    let failed = record(&row, "a", 1, DeliveryState::Pending, Some(5));
    assert!(store.record_attempt(&failed).unwrap());
    for sql in sqls {
        let err = execute(sql).expect_err("the attempt log refuses it");
        assert!(
            err.contains("the delivery attempt log is append-only"),
            "{sql}: {err}"
        );
    }
    let log = store.delivery_attempts(1, 100).unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].status, "503");
}

#[test]
fn sqlite_attempt_log_is_append_only() {
    on_sqlite(|store, execute| {
        attempt_log_is_append_only(
            store,
            execute,
            &[
                "UPDATE delivery_attempts SET status = '200'",
                "DELETE FROM delivery_attempts",
            ],
        )
    });
}

#[test]
fn postgres_attempt_log_is_append_only() {
    on_postgres(|store, execute| {
        attempt_log_is_append_only(
            store,
            execute,
            &[
                "UPDATE delivery_attempts SET status = '200'",
                "DELETE FROM delivery_attempts",
                "TRUNCATE delivery_attempts",
                "TRUNCATE deliveries CASCADE",
            ],
        )
    });
}

#[test]
fn sqlite_unknown_state_is_an_error() {
    on_sqlite(|store, execute| {
        store
            .plan_deliveries(1, &[new_delivery(1, 1, "cto", "email", 0)])
            .unwrap();
        execute("UPDATE deliveries SET state = 'sent'").unwrap();
        let err = store
            .deliveries(&DeliveryQuery {
                incident: None,
                outbox_ids: None,
                limit: 10,
            })
            .expect_err("an unknown state is not read as anything");
        assert!(err.to_string().contains("deliveries.state"), "{err}");
    });
}

// --- several nodes -----------------------------------------------------------------------

/// Two nodes (two stores, two pools) on two threads claim the same 200 deliveries in small
/// batches until none is left, recording each as delivered: each gets a disjoint set, and
/// together they cover all 200, each delivered with one attempt.
#[test]
fn postgres_two_nodes_claim_disjoint_sets() {
    const N_DELIVERIES: i64 = 200;
    const BATCH: usize = 7;
    let Some(schema) = TestSchema::new() else {
        return;
    };
    let nodes = [schema.open(), schema.open()];
    let plan: Vec<_> = (1..=N_DELIVERIES)
        .map(|n| new_delivery(n, n, "cto", "webhook", 0))
        .collect();
    assert_eq!(
        nodes[0].plan_deliveries(N_DELIVERIES, &plan).unwrap(),
        plan.len()
    );
    let barrier = Barrier::new(2);
    let claimed: Vec<BTreeSet<i64>> = std::thread::scope(|scope| {
        let workers: Vec<_> = nodes
            .iter()
            .zip(["a", "b"])
            .map(|(store, node)| {
                let barrier = &barrier;
                scope.spawn(move || {
                    let mut mine = BTreeSet::new();
                    // Connected before the race starts, so that both claim from the start.
                    store.delivery_cursor().expect("connect");
                    barrier.wait();
                    loop {
                        let batch = store
                            .claim_deliveries("webhook", node, at(1), secs(600), BATCH)
                            .expect("claim");
                        assert!(batch.len() <= BATCH, "{} in one claim", batch.len());
                        if batch.is_empty() {
                            return mine;
                        }
                        for row in batch {
                            assert_eq!(row.lease.as_ref().map(|l| l.0.as_str()), Some(node));
                            let done = record(&row, node, 2, DeliveryState::Delivered, None);
                            assert!(store.record_attempt(&done).expect("record"));
                            assert!(mine.insert(row.outbox_id), "claimed twice by {node}");
                        }
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|worker| worker.join().expect("the node's thread"))
            .collect()
    });
    assert!(
        claimed[0].is_disjoint(&claimed[1]),
        "both nodes claimed {:?}",
        claimed[0].intersection(&claimed[1]).collect::<Vec<_>>()
    );
    let union: BTreeSet<i64> = claimed[0].union(&claimed[1]).copied().collect();
    assert_eq!(union, (1..=N_DELIVERIES).collect());
    let rows = all(&nodes[1]);
    assert_eq!(rows.len(), N_DELIVERIES as usize);
    assert!(
        rows.iter()
            .all(|row| row.state == DeliveryState::Delivered && row.attempts == 1)
    );
    // Both took part: with batches of 7 and a transaction per record, one node finishing
    // all 29 batches before the other's first claim would mean claims wait for each other.
    assert!(
        claimed.iter().all(|set| !set.is_empty()),
        "node a claimed {}, node b {}",
        claimed[0].len(),
        claimed[1].len()
    );
}

/// Two nodes planning the same outbox rows at once insert each delivery once.
#[test]
fn postgres_two_nodes_plan_once() {
    let Some(schema) = TestSchema::new() else {
        return;
    };
    let nodes = [schema.open(), schema.open()];
    let plan: Vec<_> = (1..=100)
        .map(|n| new_delivery(n, n, "cto", "email", 0))
        .collect();
    let barrier = Barrier::new(2);
    let n_new: usize = std::thread::scope(|scope| {
        let workers: Vec<_> = nodes
            .iter()
            .map(|store| {
                let (barrier, plan) = (&barrier, &plan);
                scope.spawn(move || {
                    barrier.wait();
                    store.plan_deliveries(100, plan).expect("plan")
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().expect("thread")).sum()
    });
    assert_eq!(n_new, 100);
    assert_eq!(all(&nodes[0]).len(), 100);
    assert_eq!(nodes[1].delivery_cursor().unwrap(), 100);
}
