//! The store checks (see `common`) against SQLite, each in a database file of its own.

mod common;

use std::path::Path;

use revloop_core::Config;
use revloop_store::{SqliteStore, Store};

fn open(path: &Path, config: &Config) -> SqliteStore {
    SqliteStore::open(path, config).expect("open the SQLite store")
}

fn check(run: impl FnOnce(&dyn Store)) {
    let dir = tempfile::TempDir::new().expect("temporary directory");
    let store = open(&dir.path().join("revloop.db"), &common::config());
    run(&store);
}

// The checks every backend runs alike, one test each.
common::store_checks!();

#[test]
fn folding_is_stable_across_reopen() {
    let dir = tempfile::TempDir::new().expect("temporary directory");
    let path = dir.path().join("revloop.db");
    common::folding_is_stable_across_reopen(&|config| Box::new(open(&path, config)));
}

#[test]
fn segment_minute_counts() {
    let dir = tempfile::TempDir::new().expect("temporary directory");
    let path = dir.path().join("revloop.db");
    common::segment_minute_counts(&|config| Box::new(open(&path, config)));
    // The check read a minute that was in both count tables.
    let connection = rusqlite::Connection::open(&path).expect("open the database");
    let n_split: i64 = connection
        .query_row(
            "SELECT count(*) FROM stage_counts_recent
             WHERE minute IN (SELECT minute FROM stage_counts)",
            [],
            |row| row.get(0),
        )
        .expect("count the minutes in both tables");
    assert!(n_split > 0, "no minute was in both tables");
}

#[test]
fn segment_minute_counts_one_dimension() {
    let dir = tempfile::TempDir::new().expect("temporary directory");
    let path = dir.path().join("revloop.db");
    common::segment_minute_counts_one_dimension(&|config| Box::new(open(&path, config)));
}

#[test]
fn one_process_ingests_into_a_file_at_a_time() {
    let dir = tempfile::TempDir::new().expect("temporary directory");
    let path = dir.path().join("revloop.db");
    let config = common::config();
    let first = open(&path, &config);
    let second = open(&path, &config);
    first.claim_ingest().expect("the first store claims ingest");
    let err = second
        .claim_ingest()
        .expect_err("the second store must not ingest");
    assert!(
        err.to_string()
            .contains("another revloop process is ingesting"),
        "{err}"
    );
    // Reading and managing tokens need no claim.
    second.list_tokens().expect("a second store can still read");
    drop(first);
    second
        .claim_ingest()
        .expect("the lock is released with the store");
}

#[test]
fn the_dedup_index_survives_a_reopen() {
    use revloop_store::{IngestGroup, IngestItem};
    let dir = tempfile::TempDir::new().expect("temporary directory");
    let path = dir.path().join("revloop.db");
    let config = common::config();
    let item = |key| IngestItem {
        dedup_key: key,
        cells: Vec::new(),
        late: false,
        ignored_name: None,
        count_body: None,
    };
    let group = |keys: &[i64]| IngestGroup {
        now: revloop_core::Timestamp::from_millis(1_000),
        items: keys.iter().map(|k| item(*k)).collect(),
        problems: Vec::new(),
    };
    {
        let store = open(&path, &config);
        assert_eq!(
            store.commit_ingest(&group(&[1, 2])).unwrap().is_new,
            [true, true]
        );
    }
    let store = open(&path, &config);
    assert_eq!(
        store.commit_ingest(&group(&[2, 3])).unwrap().is_new,
        [false, true]
    );
    assert_eq!(store.dedup_stats().map(|s| s.n_keys), Some(3));
}

#[test]
fn incidents_survive_reopen() {
    let dir = tempfile::TempDir::new().expect("temporary directory");
    let path = dir.path().join("revloop.db");
    common::incidents_survive_reopen(&|config| Box::new(open(&path, config)));
}

#[test]
fn two_stores_commit_incidents_once() {
    let dir = tempfile::TempDir::new().expect("temporary directory");
    let path = dir.path().join("revloop.db");
    let config = common::config();
    common::two_nodes_commit_incidents_once(&open(&path, &config), &open(&path, &config));
}

#[test]
fn two_stores_keep_the_newest_detector_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("revloop.db");
    let config = common::config();
    common::two_nodes_keep_the_newest_detector_snapshot(
        &open(&path, &config),
        &open(&path, &config),
    );
}

#[test]
fn incident_commits_need_no_ingest_claim() {
    let dir = tempfile::TempDir::new().expect("temporary directory");
    let path = dir.path().join("revloop.db");
    let config = common::config();
    let ingesting = open(&path, &config);
    ingesting.claim_ingest().expect("claim ingest");
    // Both the ingesting store and another one on the same file commit incidents, and the other
    // one still may not ingest.
    let other = open(&path, &config);
    common::commit_one_timeline_entry(&other);
    assert_eq!(ingesting.incidents_version().expect("incidents_version"), 1);
    assert!(other.claim_ingest().is_err(), "the ingest lock still holds");
}

#[test]
fn unknown_stored_texts() {
    let dir = tempfile::TempDir::new().expect("temporary directory");
    let path = dir.path().join("revloop.db");
    let store = open(&path, &common::config());
    let connection = rusqlite::Connection::open(&path).expect("open the database");
    common::unknown_stored_texts(&store, &|sql| {
        connection.execute(sql, []).expect(sql);
    });
}

#[test]
fn the_incident_timeline_is_append_only() {
    let dir = tempfile::TempDir::new().expect("temporary directory");
    let path = dir.path().join("revloop.db");
    let store = open(&path, &common::config());
    let entry = common::commit_one_timeline_entry(&store);
    let connection = rusqlite::Connection::open(&path).expect("open the database");
    for sql in [
        "UPDATE incident_timeline SET text = 'rewritten'",
        "DELETE FROM incident_timeline",
        "DELETE FROM incident_timeline WHERE incident = 1 AND seq = 0",
    ] {
        let err = connection
            .execute(sql, [])
            .expect_err("the timeline refuses it");
        assert!(
            err.to_string()
                .contains("the incident timeline is append-only"),
            "{sql}: {err}"
        );
    }
    let (_, timeline) = store.incident(1).expect("incident").expect("incident 1");
    assert_eq!(timeline, [entry]);
}

#[test]
fn ledger_entries_are_append_only() {
    let dir = tempfile::TempDir::new().expect("temporary directory");
    let path = dir.path().join("revloop.db");
    let store = open(&path, &common::config());
    let entry = common::estimate("e1", 1, 100);
    store
        .post_ledger_entries(
            &common::chart(),
            &[entry],
            revloop_core::Timestamp::from_millis(0),
        )
        .expect("post");
    let connection = rusqlite::Connection::open(&path).expect("open the database");
    for sql in [
        "UPDATE ledger_entries SET description = 'rewritten'",
        "DELETE FROM ledger_entries",
        "UPDATE ledger_lines SET amount_minor = 1",
        "DELETE FROM ledger_lines",
    ] {
        let err = connection
            .execute(sql, [])
            .expect_err("the ledger refuses it");
        assert!(
            err.to_string().contains("ledger entries are append-only"),
            "{sql}: {err}"
        );
    }
    assert_eq!(store.trial_balance().expect("trial balance").len(), 2);
}

#[test]
fn problem_log_survives_reopen() {
    let dir = tempfile::TempDir::new().expect("temporary directory");
    let path = dir.path().join("revloop.db");
    common::problem_log_survives_reopen(&|config| Box::new(open(&path, config)));
}

/// A checkpoint leaves no write-ahead log behind: a stopped revloop is one file of its size.
#[test]
fn a_checkpoint_empties_the_write_ahead_log() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("revloop.db");
    let store = open(&path, &common::config());
    store
        .create_token(
            "ops",
            revloop_store::Role::Admin,
            [7; 32],
            revloop_core::Timestamp::from_millis(0),
        )
        .unwrap();
    let wal = path.with_extension("db-wal");
    assert!(std::fs::metadata(&wal).unwrap().len() > 0);
    store.checkpoint().unwrap();
    assert_eq!(std::fs::metadata(&wal).unwrap().len(), 0);
}

#[test]
fn expired_dedup_keys_are_deleted() {
    let dir = tempfile::TempDir::new().expect("temporary directory");
    let path = dir.path().join("revloop.db");
    let store = open(&path, &common::config());
    let reader = rusqlite::Connection::open(&path).expect("open the database");
    common::expired_dedup_keys_are_deleted(&store, &|| {
        reader
            .query_row(
                "SELECT COALESCE(SUM(length(keys)), 0) / 8 FROM dedup_log",
                [],
                |row| row.get(0),
            )
            .expect("count the dedup log's keys")
    });
}
