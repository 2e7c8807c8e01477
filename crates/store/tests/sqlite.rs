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

#[test]
fn exactly_once() {
    check(common::exactly_once);
}

#[test]
fn unknown_names_are_errors() {
    check(common::unknown_names_are_errors);
}

#[test]
fn counts_match_a_recount() {
    check(common::counts_match_a_recount);
}

#[test]
fn folding_is_stable_across_reopen() {
    let dir = tempfile::TempDir::new().expect("temporary directory");
    let path = dir.path().join("revloop.db");
    common::folding_is_stable_across_reopen(&|config| Box::new(open(&path, config)));
}

#[test]
fn tokens() {
    check(common::tokens);
}

#[test]
fn dedup_window() {
    check(common::dedup_window);
}
