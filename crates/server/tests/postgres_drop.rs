//! A PostgreSQL store may be dropped on a thread that runs async tasks: the last `Arc` of the
//! server's store can go in an axum connection task that outlives `serve`, or in a task dropped
//! when the runtime shuts down. The synchronous client it holds runs a runtime of its own, and
//! closing it there once aborted a test run with "Cannot start a runtime from within a runtime".
//! These tests drop a store that holds open connections in exactly those places.

use std::sync::Arc;

use revloop_core::Config;
use revloop_store::{PostgresStore, Store};

/// Opens a store in a schema of its own, with its writer and one pooled connection open, and
/// hands it to `drop_store`; then drops the schema, which the store's connections would block
/// if they were still open. Skips when `REVLOOP_TEST_DATABASE_URL` is not set.
fn check(test: &str, drop_store: impl FnOnce(Arc<dyn Store>)) {
    let Ok(url) = std::env::var("REVLOOP_TEST_DATABASE_URL") else {
        eprintln!("skipped: REVLOOP_TEST_DATABASE_URL is not set");
        return;
    };
    let schema = format!("revloop_drop_test_{test}_{}", std::process::id());
    let config = Config::parse(Config::example_toml()).unwrap();
    let store = PostgresStore::open_in_schema(&url, &schema, &config).unwrap();
    store.ping().unwrap();
    drop_store(Arc::new(store));
    PostgresStore::drop_schema(&url, &schema).unwrap();
}

#[test]
fn a_postgresql_store_dropped_in_an_async_task_closes_its_connections() {
    check("task", |store| {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let task = runtime.spawn(async move { drop(store) });
        runtime
            .block_on(task)
            .expect("the store closes on an async worker without panicking");
    });
}

#[test]
fn a_postgresql_store_dropped_in_block_on_closes_its_connections() {
    check("block_on", |store| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(async move { drop(store) });
    });
}

#[test]
fn a_postgresql_store_held_by_a_task_at_runtime_shutdown_closes_its_connections() {
    check("shutdown", |store| {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let (started, is_started) = std::sync::mpsc::channel();
        runtime.spawn(async move {
            let _store = store;
            started.send(()).unwrap();
            std::future::pending::<()>().await;
        });
        is_started.recv().unwrap();
        // The task, and the store with it, is dropped on a worker as the runtime shuts down.
        runtime.shutdown_timeout(std::time::Duration::from_secs(10));
    });
}
