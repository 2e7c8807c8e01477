//! The store checks (see `common`) against PostgreSQL, and what only a shared database has:
//! several nodes, nodes starting at once, schemas, lost connections.
//!
//! The server is named by `REVLOOP_TEST_DATABASE_URL`, e.g.
//! `postgres://postgres@127.0.0.1:5432/test`; without it every test says it was skipped and
//! passes. Each test works in a schema of its own, dropped at the end, so that tests can run in
//! parallel threads and processes.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};

use postgres::{Client, NoTls};

use revloop_core::funnel::{DimensionValues, StageHit, VALUE_NONE};
use revloop_core::ingest::{Cell, StageCount};
use revloop_core::{Config, Timestamp};
use revloop_store::{
    CountsQuery, IngestGroup, IngestItem, PostgresOptions, PostgresStore, Role, Store, StoreError,
};

/// A schema for one test, dropped (with everything in it) when the test ends.
struct TestSchema {
    url: String,
    name: String,
}

static N_SCHEMAS: AtomicU64 = AtomicU64::new(0);

impl TestSchema {
    /// `None` when no test database is configured.
    fn new() -> Option<TestSchema> {
        TestSchema::named("revloop_test")
    }

    /// A schema whose name starts with `prefix` and is unique across threads and processes.
    fn named(prefix: &str) -> Option<TestSchema> {
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
            name: format!("{prefix}_{}_{n}", std::process::id()),
        };
        // A run killed before it cleaned up may have left a schema of this name behind, from a
        // process with the same id.
        schema
            .client()
            .batch_execute(&schema.drop_sql())
            .expect("drop a leftover test schema");
        Some(schema)
    }

    fn open(&self, config: &Config) -> PostgresStore {
        PostgresStore::open_in_schema(&self.url, &self.name, config)
            .expect("open the PostgreSQL store")
    }

    /// A plain connection whose search path is the test schema.
    fn client(&self) -> Client {
        let mut client = Client::connect(&self.url, NoTls).expect("connect to the test database");
        client
            .batch_execute(&format!("SET search_path TO {}", self.quoted()))
            .expect("set the search path");
        client
    }

    /// Opens the store with the schema's name as the connections' `application_name`, so that
    /// the test can find them in `pg_stat_activity`.
    fn open_named(&self, config: &Config) -> PostgresStore {
        let separator = if self.url.contains('?') { '&' } else { '?' };
        let url = format!("{}{separator}application_name={}", self.url, self.name);
        PostgresStore::open_in_schema(&url, &self.name, config).expect("open the PostgreSQL store")
    }

    /// The store's connections open on the server, by `application_name`.
    fn n_connections(&self) -> i64 {
        self.client()
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
                &[&self.name],
            )
            .expect("count the connections")
            .get(0)
    }

    fn quoted(&self) -> String {
        format!("\"{}\"", self.name.replace('"', "\"\""))
    }

    fn drop_sql(&self) -> String {
        format!("DROP SCHEMA IF EXISTS {} CASCADE", self.quoted())
    }
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        // Never panic here: the test may be unwinding already.
        let dropped = Client::connect(&self.url, NoTls)
            .and_then(|mut client| client.batch_execute(&self.drop_sql()));
        if let Err(err) = dropped {
            eprintln!("could not drop test schema {}: {err}", self.name);
        }
    }
}

fn check(run: impl FnOnce(&dyn Store)) {
    let Some(schema) = TestSchema::new() else {
        return;
    };
    let store = schema.open(&common::config());
    run(&store);
}

// The checks every backend runs alike, one test each.
common::store_checks!();

fn check_two_nodes(run: impl FnOnce(&dyn Store, &dyn Store)) {
    let Some(schema) = TestSchema::new() else {
        return;
    };
    let a = schema.open(&common::config());
    let b = schema.open(&common::config());
    run(&a, &b);
}

#[test]
fn folding_is_stable_across_reopen() {
    let Some(schema) = TestSchema::new() else {
        return;
    };
    common::folding_is_stable_across_reopen(&|config| Box::new(schema.open(config)));
}

#[test]
fn segment_minute_counts() {
    let Some(schema) = TestSchema::new() else {
        return;
    };
    common::segment_minute_counts(&|config| Box::new(schema.open(config)));
}

#[test]
fn segment_minute_counts_one_dimension() {
    let Some(schema) = TestSchema::new() else {
        return;
    };
    common::segment_minute_counts_one_dimension(&|config| Box::new(schema.open(config)));
}

#[test]
fn two_nodes_count_once() {
    check_two_nodes(common::two_nodes_count_once);
}

#[test]
fn two_nodes_fold_alike() {
    check_two_nodes(common::two_nodes_fold_alike);
}

#[test]
fn incidents_survive_reopen() {
    let Some(schema) = TestSchema::new() else {
        return;
    };
    common::incidents_survive_reopen(&|config| Box::new(schema.open(config)));
}

#[test]
fn two_nodes_log_problems() {
    check_two_nodes(common::two_nodes_log_problems);
}

#[test]
fn problem_log_survives_reopen() {
    let Some(schema) = TestSchema::new() else {
        return;
    };
    common::problem_log_survives_reopen(&|config| Box::new(schema.open(config)));
}

#[test]
fn two_nodes_commit_incidents_once() {
    check_two_nodes(common::two_nodes_commit_incidents_once);
}

#[test]
fn two_nodes_keep_the_newest_detector_snapshot() {
    check_two_nodes(common::two_nodes_keep_the_newest_detector_snapshot);
}

#[test]
fn two_nodes_post_a_ledger_entry_once() {
    check_two_nodes(common::two_nodes_post_an_id_once);
}

#[test]
fn two_nodes_upsert_a_signal_once() {
    check_two_nodes(common::two_nodes_upsert_a_signal_once);
}

#[test]
fn ledger_entries_are_append_only() {
    let Some(schema) = TestSchema::new() else {
        return;
    };
    let store = schema.open(&common::config());
    let entry = common::estimate("e1", 1, 100);
    store
        .post_ledger_entries(&common::chart(), &[entry], Timestamp::from_millis(0))
        .expect("post");
    let mut client = schema.client();
    for sql in [
        "UPDATE ledger_entries SET description = 'rewritten'",
        "DELETE FROM ledger_entries",
        "TRUNCATE ledger_entries CASCADE",
        "UPDATE ledger_lines SET amount_minor = 1",
        "DELETE FROM ledger_lines",
        "TRUNCATE ledger_lines",
    ] {
        let err = client
            .batch_execute(sql)
            .expect_err("the ledger refuses it");
        assert!(
            err.as_db_error()
                .is_some_and(|db| db.message().contains("ledger entries are append-only")),
            "{sql}: {err:?}"
        );
    }
    assert_eq!(store.trial_balance().expect("trial balance").len(), 2);
}

#[test]
fn two_nodes_insert_a_change_once() {
    use revloop_store::ChangeRow;
    let Some(schema) = TestSchema::new() else {
        return;
    };
    let config = common::config();
    let nodes = [schema.open(&config), schema.open(&config)];
    let change = |node: &str| ChangeRow {
        id: 0,
        at: revloop_core::Timestamp::from_millis(0),
        kind: revloop_core::change::ChangeKind::Deploy,
        summary: format!("sent to node {node}"),
        detail: String::new(),
        funnel: None,
        stage: None,
        segment: None,
        author: "ci".to_owned(),
        external_id: Some("deploy-1".to_owned()),
        recorded_at: revloop_core::Timestamp::from_millis(0),
    };
    let barrier = std::sync::Barrier::new(2);
    let results: Vec<(ChangeRow, bool)> = std::thread::scope(|scope| {
        let inserting: Vec<_> = nodes
            .iter()
            .zip(["a", "b"])
            .map(|(node, name)| {
                let (barrier, change) = (&barrier, change(name));
                scope.spawn(move || {
                    barrier.wait();
                    node.insert_change(&change).expect("insert_change")
                })
            })
            .collect();
        inserting
            .into_iter()
            .map(|node| node.join().expect("a node inserted"))
            .collect()
    });
    assert_eq!(
        results.iter().filter(|(_, is_new)| *is_new).count(),
        1,
        "{results:?}"
    );
    assert_eq!(results[0].0, results[1].0, "both return the stored row");
    let n_changes: i64 = schema
        .client()
        .query_one("SELECT count(*) FROM changes", &[])
        .expect("count the changes")
        .get(0);
    assert_eq!(n_changes, 1);
}

#[test]
fn unknown_stored_texts() {
    let Some(schema) = TestSchema::new() else {
        return;
    };
    let store = schema.open(&common::config());
    let client = std::sync::Mutex::new(schema.client());
    common::unknown_stored_texts(&store, &|sql| {
        client.lock().unwrap().batch_execute(sql).expect(sql);
    });
}

#[test]
fn the_incident_timeline_is_append_only() {
    let Some(schema) = TestSchema::new() else {
        return;
    };
    let store = schema.open(&common::config());
    let entry = common::commit_one_timeline_entry(&store);
    let mut client = schema.client();
    for sql in [
        "UPDATE incident_timeline SET text = 'rewritten'",
        "DELETE FROM incident_timeline",
        "DELETE FROM incident_timeline WHERE incident = 1 AND seq = 0",
        "TRUNCATE incident_timeline",
    ] {
        let err = client
            .batch_execute(sql)
            .expect_err("the timeline refuses it");
        let message = err.as_db_error().map(|db| db.message().to_owned());
        assert_eq!(
            message.as_deref(),
            Some("the incident timeline is append-only"),
            "{sql}: {err}"
        );
    }
    let (_, timeline) = store.incident(1).expect("incident").expect("incident 1");
    assert_eq!(timeline, [entry]);
}

#[test]
fn nodes_starting_at_once_all_open() {
    let Some(schema) = TestSchema::new() else {
        return;
    };
    let config = common::config();
    let nodes: Vec<PostgresStore> = std::thread::scope(|scope| {
        let opening: Vec<_> = (0..4)
            .map(|_| scope.spawn(|| schema.open(&config)))
            .collect();
        opening
            .into_iter()
            .map(|node| node.join().expect("a node opened"))
            .collect()
    });
    for node in &nodes {
        node.ping().expect("ping");
    }
    let rows = schema
        .client()
        .query("SELECT id, version FROM revloop_schema_version", &[])
        .expect("read the schema version");
    let versions: Vec<(i32, i64)> = rows.iter().map(|row| (row.get(0), row.get(1))).collect();
    assert_eq!(versions, [(1, 9)]);
}

#[test]
fn a_newer_schema_is_refused() {
    let Some(schema) = TestSchema::new() else {
        return;
    };
    drop(schema.open(&common::config()));
    schema
        .client()
        .execute(
            "UPDATE revloop_schema_version SET version = version + 1",
            &[],
        )
        .expect("pretend a newer revloop migrated");
    match PostgresStore::open_in_schema(&schema.url, &schema.name, &common::config()) {
        Err(StoreError::SchemaTooNew {
            found: 10,
            known: 9,
        }) => {}
        Err(err) => panic!("unexpected error: {err}"),
        Ok(_) => panic!("opened a schema newer than this build"),
    }
}

/// Two deployments in one database, each in a schema of its own, share nothing: not the counts,
/// not the dedup keys, not the tokens.
#[test]
fn schemas_keep_deployments_apart() {
    let (Some(a), Some(b)) = (
        TestSchema::named("revloop_a"),
        TestSchema::named("revloop_b"),
    ) else {
        return;
    };
    let config = common::config();
    let (store_a, store_b) = (a.open(&config), b.open(&config));
    let receipt = store_a
        .commit_ingest(&one_event_group(&[1, 2]))
        .expect("commit in a");
    assert_eq!(receipt.is_new, [true, true]);
    store_a
        .create_token("ops", Role::Admin, [9; 32], Timestamp::from_millis(0))
        .expect("create a token in a");

    assert_eq!(n_events_counted(&store_a), 2);
    assert_eq!(n_events_counted(&store_b), 0, "b sees none of a's counts");
    assert_eq!(store_b.find_token(&[9; 32]).expect("find_token"), None);
    assert_eq!(store_b.list_tokens().expect("list_tokens"), []);
    let receipt = store_b
        .commit_ingest(&one_event_group(&[1]))
        .expect("commit in b");
    assert_eq!(receipt.is_new, [true], "b remembers its own keys");
    assert_eq!(n_events_counted(&store_a), 2, "and a is untouched");
    let n_tables = |schema: &TestSchema| -> i64 {
        schema
            .client()
            .query_one(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = $1",
                &[&schema.name],
            )
            .expect("count the tables")
            .get(0)
    };
    // The eight tables of the first migration, the five of the second, the two of the third
    // (count bodies, late events per segment), the three of the fourth (the problem log), the
    // one of the fifth (the rollup's progress), the two of the sixth (detector snapshots), the
    // two of the seventh (ledger entries and lines), the three of the eighth (the delivery
    // queue: deliveries, their attempts, the planning cursor), the one of the ninth (signals),
    // and the schema version, in each schema.
    assert_eq!((n_tables(&a), n_tables(&b)), (28, 28));
}

#[test]
fn a_schema_name_outside_the_identifier_rules_is_refused() {
    let Some(schema) = TestSchema::new() else {
        return;
    };
    for bad in ["Revloop", "a\"; DROP SCHEMA public; --", "pg_revloop", ""] {
        match PostgresStore::open_in_schema(&schema.url, bad, &common::config()) {
            Err(StoreError::Settings(message)) => {
                assert!(message.starts_with("invalid schema name"), "{message}");
            }
            Err(err) => panic!("{bad:?}: unexpected error {err}"),
            Ok(_) => panic!("{bad:?}: opened"),
        }
    }
}

#[test]
fn open_follows_the_search_path_of_the_url() {
    let Some(schema) = TestSchema::new() else {
        return;
    };
    schema
        .client()
        .batch_execute(&format!("CREATE SCHEMA {}", schema.quoted()))
        .expect("create the schema");
    let separator = if schema.url.contains('?') { '&' } else { '?' };
    let url = format!(
        "{}{separator}options=-csearch_path%3D{}",
        schema.url, schema.name
    );
    let store = PostgresStore::open(&url, &common::config()).expect("open");
    common::tokens(&store);
    let n_tokens: i64 = schema
        .client()
        .query_one("SELECT count(*) FROM api_tokens", &[])
        .expect("count the tokens")
        .get(0);
    assert_eq!(n_tokens, 2);
}

#[test]
fn recovers_when_the_server_drops_its_connections() {
    let Some(schema) = TestSchema::new() else {
        return;
    };
    let store = schema.open_named(&common::config());
    let commit = |key: i64| {
        store.commit_ingest(&IngestGroup {
            now: revloop_core::Timestamp::from_millis(0),
            items: vec![IngestItem {
                dedup_key: key,
                cells: Vec::new(),
                late: false,
                ignored_name: None,
                count_body: None,
            }],
            problems: Vec::new(),
        })
    };
    commit(1).expect("commit before");
    store.ping().expect("ping before");

    let n_terminated: i64 = schema
        .client()
        .query_one(
            "SELECT count(*) FROM (
                 SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                 WHERE application_name = $1
             ) AS terminated",
            &[&schema.name],
        )
        .expect("terminate the store's connections")
        .get(0);
    assert_eq!(n_terminated, 2, "the writer and one pooled connection");

    // Each connection may fail the one call that finds it closed; the next call reconnects.
    let _ = commit(2);
    assert_eq!(commit(1).expect("commit after").is_new, [false]);
    let _ = store.ping();
    store.ping().expect("ping after");
}

#[test]
fn reads_share_a_bounded_pool() {
    let Some(schema) = TestSchema::new() else {
        return;
    };
    let store = schema.open_named(&common::config());
    std::thread::scope(|scope| {
        for _ in 0..32 {
            scope.spawn(|| {
                for _ in 0..20 {
                    store.dimension_values().expect("dimension_values");
                }
            });
        }
    });
    let n_connections = schema.n_connections();
    // The writer and at most eight pooled connections, kept for reuse.
    assert!(
        (2..=9).contains(&n_connections),
        "{n_connections} connections"
    );
}

/// A connection the server dropped is transient (the API answers 503 and the caller retries);
/// a statement the server refuses is not.
#[test]
fn a_dropped_connection_is_transient_and_a_bad_statement_is_not() {
    let Some(schema) = TestSchema::new() else {
        return;
    };
    let mut victim = Client::connect(&schema.url, NoTls).unwrap();
    let pid: i32 = victim
        .query_one("SELECT pg_backend_pid()", &[])
        .unwrap()
        .get(0);
    let mut other = Client::connect(&schema.url, NoTls).unwrap();
    other
        .execute("SELECT pg_terminate_backend($1)", &[&pid])
        .unwrap();
    let lost = victim.simple_query("SELECT 1").unwrap_err();
    assert!(StoreError::Postgres(lost).is_transient());
    let refused = other.simple_query("SELEC 1").unwrap_err();
    assert!(!StoreError::Postgres(refused).is_transient());
}

/// 2026-11-27T00:00:00Z: the minute every event below is counted in.
const EVENTS_AT_MS: i64 = 1_795_737_600_000;

/// One event per key at the checkout funnel's first stage, all in one minute.
fn one_event_group(keys: &[i64]) -> IngestGroup {
    let minute = Timestamp::from_millis(EVENTS_AT_MS).minute();
    let items = keys
        .iter()
        .map(|&key| {
            let mut values = vec!["mobile"];
            values.resize(5, VALUE_NONE);
            let cell = Cell {
                hit: StageHit {
                    funnel: 0,
                    stage: 0,
                },
                minute,
                dimension_values: DimensionValues::new(values),
            };
            let count = StageCount {
                n_events: 1,
                ..StageCount::default()
            };
            IngestItem {
                dedup_key: key,
                cells: vec![(cell, count)],
                late: false,
                ignored_name: None,
                count_body: None,
            }
        })
        .collect();
    IngestGroup {
        now: Timestamp::from_millis(EVENTS_AT_MS),
        items,
        problems: Vec::new(),
    }
}

/// The events counted in the minute [`one_event_group`] counts in.
fn n_events_counted(store: &dyn Store) -> i64 {
    let minute = Timestamp::from_millis(EVENTS_AT_MS).minute();
    store
        .minute_counts(&CountsQuery {
            funnel: "checkout".to_owned(),
            from: minute,
            to: minute.plus(1),
            filter: Vec::new(),
        })
        .expect("minute_counts")
        .iter()
        .map(|count| count.count.n_events)
        .sum()
}

impl TestSchema {
    /// The store's backends, oldest first (the writer opens before any pooled connection).
    fn backend_pids(&self) -> Vec<i32> {
        self.client()
            .query(
                "SELECT pid FROM pg_stat_activity WHERE application_name = $1
                 ORDER BY backend_start, pid",
                &[&self.name],
            )
            .expect("list the store's backends")
            .iter()
            .map(|row| row.get(0))
            .collect()
    }

    fn terminate(&self, pid: i32) {
        let terminated: bool = self
            .client()
            .query_one("SELECT pg_terminate_backend($1)", &[&pid])
            .expect("terminate a backend")
            .get(0);
        assert!(terminated, "backend {pid}");
    }

    /// Waits (at most 10 s) until one of the store's backends waits on a lock.
    fn wait_for_a_blocked_backend(&self) -> i32 {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let blocked = self
                .client()
                .query_opt(
                    "SELECT pid FROM pg_stat_activity
                     WHERE application_name = $1 AND wait_event_type = 'Lock'",
                    &[&self.name],
                )
                .expect("read pg_stat_activity");
            if let Some(row) = blocked {
                return row.get(0);
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no backend blocked within 10 s"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    fn url_named(&self) -> String {
        let separator = if self.url.contains('?') { '&' } else { '?' };
        format!("{}{separator}application_name={}", self.url, self.name)
    }
}

/// A pooled connection whose backend the server ended: the next call either succeeds (the pool
/// saw the connection closed) or fails as transient; the call after it succeeds on a fresh
/// connection, and the broken one is gone from the pool.
#[test]
fn a_killed_pooled_connection_is_replaced() {
    let Some(schema) = TestSchema::new() else {
        return;
    };
    let store = schema.open_named(&common::config());
    store.ping().expect("ping opens a pooled connection");
    let pids = schema.backend_pids();
    let [writer, pooled] = pids[..] else {
        panic!("expected the writer and one pooled connection: {pids:?}");
    };
    schema.terminate(pooled);

    match store.ping() {
        Ok(()) => {}
        Err(err) => assert!(err.is_transient(), "not transient: {err}"),
    }
    store.ping().expect("the call after succeeds");
    let pids = schema.backend_pids();
    assert_eq!(
        pids.len(),
        2,
        "the broken connection was discarded: {pids:?}"
    );
    assert_eq!(pids[0], writer);
    assert_ne!(pids[1], pooled, "a fresh connection");
}

/// The writer's backend ended in the middle of a group commit (after its dedup keys, while it
/// waits for a lock on the counts): the commit fails as transient and writes nothing; the retry
/// commits the group once, on a fresh connection.
#[test]
fn a_commit_on_a_killed_connection_fails_whole_and_the_retry_commits_once() {
    let Some(schema) = TestSchema::new() else {
        return;
    };
    let store = schema.open_named(&common::config());
    let receipt = store
        .commit_ingest(&one_event_group(&[1]))
        .expect("warm up");
    assert_eq!(receipt.is_new, [true]);

    let group = one_event_group(&[2, 3, 4]);
    let mut locker = schema.client();
    let mut lock = locker.transaction().expect("begin");
    lock.batch_execute("LOCK TABLE stage_counts IN EXCLUSIVE MODE")
        .expect("lock the counts");
    let failed = std::thread::scope(|scope| {
        let committing = scope.spawn(|| store.commit_ingest(&group));
        let writer = schema.wait_for_a_blocked_backend();
        schema.terminate(writer);
        committing.join().expect("the commit returned")
    });
    lock.rollback().expect("release the lock");
    let err = failed.expect_err("a commit whose connection was killed");
    assert!(err.is_transient(), "not transient: {err}");
    assert_eq!(
        n_events_counted(&store),
        1,
        "nothing of the group was written"
    );

    let receipt = store.commit_ingest(&group).expect("the retry");
    assert_eq!(receipt.is_new, [true, true, true], "no key was remembered");
    let receipt = store.commit_ingest(&group).expect("once more");
    assert_eq!(receipt.is_new, [false, false, false]);
    assert_eq!(n_events_counted(&store), 4, "the group counted once");
}

/// A read stuck behind a lock is cancelled at the statement limit (transient, the connection
/// kept), and while it holds the only pooled connection another call waits at most the pool's
/// limit and gets `PoolTimeout`.
#[test]
fn a_stuck_read_is_cancelled_and_a_full_pool_times_out() {
    let Some(schema) = TestSchema::new() else {
        return;
    };
    let options = PostgresOptions {
        pool_connections_max: 1,
        pool_wait_max: std::time::Duration::from_millis(200),
        statement_max: std::time::Duration::from_secs(2),
        ..PostgresOptions::in_schema(&schema.name)
    };
    let store = PostgresStore::open_with(&schema.url_named(), &options, &common::config())
        .expect("open the PostgreSQL store");
    store.ping().expect("ping");

    let mut locker = schema.client();
    let mut lock = locker.transaction().expect("begin");
    lock.batch_execute("LOCK TABLE dimension_values IN ACCESS EXCLUSIVE MODE")
        .expect("lock a table reads use");
    let (stuck, busy) = std::thread::scope(|scope| {
        let reading = scope.spawn(|| store.dimension_values());
        schema.wait_for_a_blocked_backend();
        let busy = store.ping();
        (reading.join().expect("the read returned"), busy)
    });
    lock.rollback().expect("release the lock");

    match busy {
        Err(StoreError::PoolTimeout {
            size_max: 1,
            waited_ms: 200,
        }) => {}
        other => panic!("expected a pool timeout, got {other:?}"),
    }
    let err = stuck.expect_err("cancelled at the statement limit");
    match &err {
        StoreError::Postgres(pg) => assert_eq!(
            pg.code(),
            Some(&postgres::error::SqlState::QUERY_CANCELED),
            "{err}"
        ),
        other => panic!("unexpected error {other}"),
    }
    assert!(err.is_transient());
    let pids = schema.backend_pids();
    store
        .dimension_values()
        .expect("the connection is usable again");
    assert_eq!(schema.backend_pids(), pids, "and was kept");
}

/// A server that accepts the connection and then never answers: opening gives up within the
/// connect limit, with a transient error, rather than waiting forever. Needs no database.
#[test]
fn a_silent_server_fails_the_connect_in_time() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("port").port();
    // Accept and hold every connection, never answering; the thread ends with the process.
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            held.push(stream);
        }
    });
    let options = PostgresOptions {
        connect_total_max: std::time::Duration::from_millis(300),
        ..PostgresOptions::default()
    };
    let url = format!("postgres://revloop@127.0.0.1:{port}/db?connect_timeout=1");
    let started = std::time::Instant::now();
    match PostgresStore::open_with(&url, &options, &common::config()) {
        Err(err @ StoreError::ConnectTimeout { waited_ms: 1000 }) => {
            assert!(err.is_transient());
        }
        Err(err) => panic!("unexpected error {err}"),
        Ok(_) => panic!("connected to a silent server"),
    }
    // Liveness only: the limit is a second; anything near "forever" fails.
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
}

#[test]
fn expired_dedup_keys_are_deleted() {
    let Some(schema) = TestSchema::new() else {
        return;
    };
    let store = schema.open(&common::config());
    let client = std::cell::RefCell::new(schema.client());
    common::expired_dedup_keys_are_deleted(&store, &|| {
        client
            .borrow_mut()
            .query_one(
                "SELECT (SELECT count(*) FROM dedup_0) + (SELECT count(*) FROM dedup_1)",
                &[],
            )
            .expect("count the dedup tables' keys")
            .get(0)
    });
}
