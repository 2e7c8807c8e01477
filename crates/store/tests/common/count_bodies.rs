//! The bodies of count records, for every backend: a body is kept while its id is remembered,
//! whatever the ingest clock did in between.

use revloop_core::Timestamp;
use revloop_store::{CountBody, IngestGroup, IngestItem, Store, StoreError};

use super::config;

/// 2026-11-27T00:00:00Z.
const START_MS: i64 = 1_795_737_600_000;

fn item(key: i64, body_key: Option<i64>) -> IngestItem {
    IngestItem {
        dedup_key: key,
        cells: Vec::new(),
        late: false,
        ignored_name: None,
        count_body: body_key.map(|body_key| CountBody {
            id: format!("count-{key}"),
            body_key,
        }),
    }
}

fn commit(store: &dyn Store, at_ms: i64, items: Vec<IngestItem>) -> Result<Vec<bool>, StoreError> {
    let group = IngestGroup {
        now: Timestamp::from_millis(START_MS + at_ms),
        items,
        problems: Vec::new(),
    };
    store.commit_ingest(&group).map(|receipt| receipt.is_new)
}

/// A count record received while the clock had stepped back, before the start of the dedup
/// generation its id joins, is still refused with another body once a later generation
/// change prunes the bodies older than that start: its id is still remembered.
pub fn count_body_outlives_a_clock_step_back(store: &dyn Store) {
    let window = config().ingest.dedup_window.millis();
    let quarter = window / 4;
    let count_key = 7;
    assert_eq!(commit(store, 0, vec![item(1, None)]).unwrap(), [true]);
    assert_eq!(commit(store, quarter, vec![item(2, None)]).unwrap(), [true]);
    // The clock steps back before the start of every generation so far.
    let stepped_back = commit(store, -1_000, vec![item(count_key, Some(10))]);
    assert_eq!(stepped_back.unwrap(), [true]);
    // Far enough on that the oldest generation is forgotten (the id's is not).
    assert_eq!(
        commit(store, window + quarter, vec![item(3, None)]).unwrap(),
        [true]
    );
    let resent = commit(store, window + quarter, vec![item(count_key, Some(10))]);
    assert_eq!(resent.unwrap(), [false], "the same body is a duplicate");
    match commit(store, window + quarter, vec![item(count_key, Some(20))]) {
        Err(StoreError::CountConflict { items }) => assert_eq!(items, [0]),
        other => panic!("another body must conflict, not pass as a duplicate: {other:?}"),
    }
}
