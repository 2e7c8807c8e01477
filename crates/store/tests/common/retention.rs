//! Bounded disk: the hourly rollup of old per-minute counts keeps every hour's totals, and the
//! outbox's size.

use std::collections::BTreeMap;

use revloop_core::ingest::StageCount;
use revloop_core::time::Minute;
use revloop_store::{IngestItem, Store};

use super::{START_MS, cell, counts, group, minute, segment_counts};

/// Per hour (as a minute offset from the start) and stage: the summed counts.
fn by_hour(
    rows: impl Iterator<Item = (Minute, usize, StageCount)>,
) -> BTreeMap<(i64, usize), StageCount> {
    let mut hours: BTreeMap<(i64, usize), StageCount> = BTreeMap::new();
    for (at, stage, count) in rows {
        let offset = at.index() - minute(0).index();
        hours
            .entry((offset.div_euclid(60) * 60, stage))
            .or_default()
            .add(count);
    }
    hours
}

fn totals(store: &dyn Store, filter: &[(&str, &str)]) -> BTreeMap<(i64, usize), StageCount> {
    by_hour(
        counts(store, minute(0), minute(240), filter)
            .into_iter()
            .map(|c| (c.minute, c.stage, c.count)),
    )
}

fn segment_totals(store: &dyn Store) -> BTreeMap<(i64, usize), StageCount> {
    by_hour(segment_counts(store, 0, 240).into_iter().map(|c| {
        let count = StageCount {
            n_events: c.n_events,
            ..StageCount::default()
        };
        (c.minute, c.stage, count)
    }))
}

/// Rolling minutes up to hourly keeps every hour's totals (all segments, a filter, and the
/// detector's per-segment read), moves each rolled hour into its first minute, leaves the
/// minutes at and after the horizon as they were, and does nothing when repeated.
pub fn rollup_keeps_hourly_totals(store: &dyn Store) {
    let devices = ["mobile", "desktop", "tablet"];
    let mut key = 0;
    // Four hours of traffic, a commit every 7 minutes, with revenue on the last stage.
    for at in (0..240).step_by(7) {
        let mut items = Vec::new();
        for (d, device) in devices.iter().enumerate() {
            for stage in 0..3 {
                key += 1;
                let (c, mut count) = cell(
                    if stage == 2 { 4 } else { stage },
                    minute(at + d as i64),
                    [device, "DE", "ads"],
                    1 + (key % 5),
                );
                if stage == 2 {
                    count.revenue_minor = 1_999 * count.n_events;
                    count.n_revenue_events = count.n_events;
                }
                items.push(IngestItem {
                    dedup_key: key,
                    cells: vec![(c, count)],
                    late: false,
                    ignored_name: None,
                    count_body: None,
                });
            }
        }
        let now = START_MS + (at + 3) * 60_000;
        store.commit_ingest(&group(now, items)).expect("commit");
    }
    // Past the last minute, so that SQLite has moved every minute out of its recent table.
    store
        .commit_ingest(&group(START_MS + 300 * 60_000, Vec::new()))
        .expect("commit");

    let all_before = totals(store, &[]);
    let mobile_before = totals(store, &[("device", "mobile")]);
    let segments_before = segment_totals(store);
    let last_hour_before = counts(store, minute(150), minute(240), &[]);
    assert!(!last_hour_before.is_empty());

    // The horizon falls inside the third hour: the first two hours are rolled up.
    let rollup = store.roll_up_counts(minute(150)).expect("roll up");
    assert!(rollup.rows_deleted > 0, "{rollup:?}");
    assert_eq!(rollup.hourly_before, Some(minute(120)));

    assert_eq!(totals(store, &[]), all_before);
    assert_eq!(totals(store, &[("device", "mobile")]), mobile_before);
    assert_eq!(segment_totals(store), segments_before);
    let rolled = counts(store, minute(0), minute(120), &[]);
    assert!(
        rolled
            .iter()
            .all(|c| (c.minute.index() - minute(0).index()) % 60 == 0),
        "a rolled-up hour still has minutes: {rolled:?}"
    );
    // The minutes at and after the horizon's hour are untouched.
    assert_eq!(
        counts(store, minute(150), minute(240), &[]),
        last_hour_before
    );
    assert!(
        counts(store, minute(120), minute(150), &[])
            .iter()
            .any(|c| (c.minute.index() - minute(0).index()) % 60 != 0)
    );

    let again = store.roll_up_counts(minute(150)).expect("roll up again");
    assert_eq!(again.rows_deleted, 0);
    assert_eq!(totals(store, &[]), all_before);

    // Later traffic and a later horizon roll up only the newly old hour.
    let later = store.roll_up_counts(minute(200)).expect("roll up later");
    assert!(later.rows_deleted > 0);
    assert_eq!(later.hourly_before, Some(minute(180)));
    assert_eq!(totals(store, &[]), all_before);
    assert_eq!(segment_totals(store), segments_before);
}

/// An empty outbox has no oldest entry; committed effects are counted, the oldest first.
pub fn outbox_stats(store: &dyn Store) {
    let empty = store.outbox_stats().expect("outbox stats");
    assert_eq!((empty.entries, empty.oldest_at), (0, None));
    let (_, rows) = super::commit_one_open_incident(store);
    let stats = store.outbox_stats().expect("outbox stats");
    assert_eq!(stats.entries, rows.len() as u64);
    assert!(stats.entries > 0);
    assert_eq!(stats.oldest_at, rows.iter().map(|r| r.at).min());
}

/// Expired dedup keys are deleted from the database, not only forgotten: after two dedup
/// windows of traffic, the keys of the first commit are gone (`stored_keys` counts the keys
/// the database holds), while a key re-sent within its window is still a duplicate.
pub fn expired_dedup_keys_are_deleted(store: &dyn Store, stored_keys: &dyn Fn() -> i64) {
    let window = super::config().ingest.dedup_window.millis();
    let message = |key: i64| IngestItem {
        dedup_key: key,
        cells: Vec::new(),
        late: false,
        ignored_name: None,
        count_body: None,
    };
    let first: Vec<IngestItem> = (1..=500).map(message).collect();
    let receipt = store
        .commit_ingest(&group(START_MS, first))
        .expect("commit");
    assert!(receipt.is_new.iter().all(|new| *new));
    assert!(stored_keys() >= 500, "{}", stored_keys());
    // Within the window, a re-send is a duplicate.
    let again = store
        .commit_ingest(&group(
            START_MS + window / 2,
            vec![message(1), message(10_001)],
        ))
        .expect("commit");
    assert_eq!(again.is_new, [false, true]);
    // Traffic every quarter window for two more windows.
    for (quarter, key) in (3..=10).zip(20_000..) {
        store
            .commit_ingest(&group(START_MS + quarter * window / 4, vec![message(key)]))
            .expect("commit");
    }
    assert!(
        stored_keys() < 20,
        "{} keys stored after two windows",
        stored_keys()
    );
    let late = store
        .commit_ingest(&group(START_MS + 10 * window / 4 + 1, vec![message(1)]))
        .expect("commit");
    assert_eq!(late.is_new, [true], "a key two windows old is new again");
}
