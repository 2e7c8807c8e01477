//! A restart at scale: the live detector saves each funnel's state in the store, and a new
//! node on the same store restores it and reads only the counts after it (counted in minutes
//! read through a `FaultyStore`), judging exactly as the node that kept running. A rebuild, a
//! changed config or a snapshot older than the history each mean the full warm-up instead.

use std::sync::Arc;

use revloop_api::detector::JudgingState;
use revloop_core::detect::first_unjudged;
use revloop_core::funnel::{DimensionValues, StageHit};
use revloop_core::ingest::{Cell, StageCount};
use revloop_core::time::{MS_PER_DAY, MS_PER_MINUTE, Minute};
use revloop_core::{Config, Timestamp};
use revloop_server::detection::{Detection, SNAPSHOT_EVERY_MINUTES};
use revloop_store::faults::{Call, Failure, Fault, FaultyStore};
use revloop_store::{IngestGroup, IngestItem, SqliteStore, Store};

/// 2026-11-27T10:00:00Z, as the other server tests.
const T0: i64 = 1_795_773_600_000;

/// One funnel, one dimension, and a short history: two weeks of baselines (the least that
/// makes every slot ready) and a day of learning.
const CONFIG: &str = r#"
[shop]
time_zone = "America/New_York"

[detection]
baseline_weeks = 2
learning = "1d"

[[dimensions]]
name = "device"
path = "context.device.type"

[[funnels]]
id = "shop"
[[funnels.stages]]
id = "viewed"
event = "Product Viewed"
[[funnels.stages]]
id = "cart"
event = "Product Added"
[[funnels.stages]]
id = "order"
event = "Order Completed"
"#;

/// Minutes from `T0` when half the cart's shoppers stop ordering.
const OUTAGE_FROM_MINUTES: i64 = 35;

/// Counts from sixteen and a half days before `T0` to an hour after it: a daily rhythm, two
/// devices, and from [`OUTAGE_FROM_MINUTES`] an outage of the order step.
fn store_with_history(config: &Config, dir: &tempfile::TempDir) -> Arc<FaultyStore> {
    let sqlite = SqliteStore::open(&dir.path().join("test.db"), config).unwrap();
    let first = Timestamp::from_millis(T0 - 16 * MS_PER_DAY - MS_PER_DAY / 2).minute();
    let last = Timestamp::from_millis(T0 + 60 * MS_PER_MINUTE).minute();
    let mut key = 0;
    let mut items = Vec::new();
    for minute in first.until(last) {
        let hour = (minute.index() / 60) % 24;
        let rhythm = 1.0 + 0.6 * ((hour as f64) / 24.0 * std::f64::consts::TAU).sin();
        let outage =
            minute.index() >= Timestamp::from_millis(T0).minute().index() + OUTAGE_FROM_MINUTES;
        for (device, share) in [("mobile", 0.6), ("desktop", 0.4)] {
            // Deterministic, with a little wobble so that the variance is not zero.
            let wobble = ((minute.index() * 7 + key) % 5) as f64 - 2.0;
            let viewed = (60.0 * share * rhythm + wobble).round().max(1.0);
            let cart = (viewed * 0.35).round();
            let order = (cart * if outage { 0.3 } else { 0.75 }).round();
            for (stage, n_events) in [viewed, cart, order].into_iter().enumerate() {
                key += 1;
                items.push(item(key, stage, minute, device, n_events as i64));
            }
        }
        if items.len() >= 6_000 {
            commit(&sqlite, std::mem::take(&mut items));
        }
    }
    commit(&sqlite, items);
    FaultyStore::new(Arc::new(sqlite))
}

fn item(key: i64, stage: usize, minute: Minute, device: &str, n_events: i64) -> IngestItem {
    let cell = Cell {
        hit: StageHit { funnel: 0, stage },
        minute,
        dimension_values: DimensionValues::new(vec![device]),
    };
    let count = StageCount {
        n_events,
        ..StageCount::default()
    };
    IngestItem {
        dedup_key: key,
        cells: vec![(cell, count)],
        late: false,
        ignored_name: None,
        count_body: None,
    }
}

fn commit(store: &SqliteStore, items: Vec<IngestItem>) {
    store
        .commit_ingest(&IngestGroup {
            now: Timestamp::from_millis(T0 + 2 * 60 * MS_PER_MINUTE),
            items,
            problems: Vec::new(),
        })
        .unwrap();
}

fn minutes(n: i64) -> i64 {
    T0 + n * MS_PER_MINUTE
}

/// Ticks `detection` at `at` and returns its events and the minutes of counts it read.
fn tick(
    detection: &Detection,
    store: &FaultyStore,
    at: i64,
) -> (Vec<revloop_core::alert::AlertEvent>, u64) {
    let before = store.minutes_read();
    let now = Timestamp::from_millis(at);
    let tick = detection.tick(store, now, &|| now);
    assert!(tick.failures.is_empty(), "{:?}", tick.failures);
    (tick.events, store.minutes_read() - before)
}

/// What a full warm-up at `at` reads: the whole history up to the minute due.
fn history_minutes(detection: &Detection, at: i64) -> u64 {
    let now = Timestamp::from_millis(at);
    let until = first_unjudged(now, Config::parse(CONFIG).unwrap().detection.settle);
    let from = Timestamp::from_millis(at - detection.history_ms()).minute();
    (until.index() - from.index()) as u64
}

#[test]
fn a_restart_restores_the_snapshot_and_reads_only_the_tail() {
    let config = Config::parse(CONFIG).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_history(&config, &dir);
    let settle = config.detection.settle;

    // The node that keeps running: a full warm-up, saved once live, then every 15 minutes.
    let running = Detection::new(Arc::new(config.clone()));
    let (_, read) = tick(&running, &store, T0);
    assert_eq!(read, history_minutes(&running, T0));
    assert_eq!(store.calls(Call::SaveDetectorSnapshot), 1);
    tick(&running, &store, minutes(SNAPSHOT_EVERY_MINUTES - 1));
    assert_eq!(store.calls(Call::SaveDetectorSnapshot), 1, "not due yet");
    tick(&running, &store, minutes(20));
    assert_eq!(store.calls(Call::SaveDetectorSnapshot), 2);
    let saved = store.load_detector_snapshot("shop").unwrap().unwrap();
    assert_eq!(
        saved.next_minute,
        first_unjudged(Timestamp::from_millis(minutes(20)), settle)
    );
    tick(&running, &store, minutes(30));

    // A new node (a restart) reads from the snapshot's minute on: ten minutes, not sixteen days.
    let restarted = Detection::new(Arc::new(config.clone()));
    let (_, read) = tick(&restarted, &store, minutes(30));
    assert_eq!(read, 10);
    let status = &restarted.status()[0];
    assert_eq!(status.state(), JudgingState::Live);
    assert_eq!(status.restored_from, Some(saved.next_minute));
    assert_eq!(status.judged_until, running.status()[0].judged_until);
    assert_eq!(restarted.report(0), running.report(0));
    assert!(running.status()[0].restored_from.is_none());

    // Both judge the outage alike, event for event.
    let (events_running, _) = tick(&running, &store, minutes(60));
    let (events_restarted, _) = tick(&restarted, &store, minutes(60));
    assert!(!events_running.is_empty(), "the outage is alerted");
    assert_eq!(events_restarted, events_running);
    assert_eq!(restarted.report(0), running.report(0));

    // A rebuild discards the stored snapshot and warms up from the whole history.
    restarted.rebuild();
    let (_, read) = tick(&restarted, &store, minutes(61));
    assert_eq!(store.calls(Call::DiscardDetectorSnapshot), 1);
    assert_eq!(read, history_minutes(&restarted, minutes(61)));
    assert_eq!(restarted.status()[0].restored_from, None);
    // And saves its own once live.
    let saved = store.load_detector_snapshot("shop").unwrap().unwrap();
    assert_eq!(
        saved.next_minute,
        first_unjudged(Timestamp::from_millis(minutes(61)), settle)
    );
}

#[test]
fn a_snapshot_that_does_not_fit_means_the_full_warm_up() {
    let config = Config::parse(CONFIG).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_history(&config, &dir);
    let first = Detection::new(Arc::new(config.clone()));
    tick(&first, &store, T0);
    assert!(store.load_detector_snapshot("shop").unwrap().is_some());

    // Another window: another fingerprint.
    let changed =
        Config::parse(&CONFIG.replace("[detection]\n", "[detection]\nwindow = \"10m\"\n")).unwrap();
    let other = Detection::new(Arc::new(changed));
    let (_, read) = tick(&other, &store, minutes(5));
    assert_eq!(read, history_minutes(&other, minutes(5)));
    assert_eq!(other.status()[0].restored_from, None);
    assert_eq!(other.status()[0].state(), JudgingState::Live);

    // Older than the history a warm-up reads: ignored. (The changed node saved its own at
    // minute 5; a node starting seventeen days later finds it too old.)
    let late = Detection::new(Arc::new(config.clone()));
    let at = T0 + 17 * MS_PER_DAY;
    let (_, read) = tick(&late, &store, at);
    assert_eq!(read, history_minutes(&late, at));
    assert_eq!(late.status()[0].restored_from, None);
}

/// A busy store at the load fails the tick like a failed read (retried after the backoff),
/// and the retry restores; damaged bytes stored in the snapshot's place mean the full warm-up.
#[test]
fn a_busy_load_is_retried_and_damaged_bytes_mean_the_full_warm_up() {
    let config = Config::parse(CONFIG).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_history(&config, &dir);
    tick(&Detection::new(Arc::new(config.clone())), &store, T0);
    let saved = store.load_detector_snapshot("shop").unwrap().unwrap();

    store.inject(Fault::new(Call::LoadDetectorSnapshot, Failure::Busy).times(1));
    let restarted = Detection::new(Arc::new(config.clone()));
    let now = Timestamp::from_millis(minutes(5));
    let failed = restarted.tick(store.as_ref(), now, &|| now);
    assert_eq!(failed.failures.len(), 1);
    assert_eq!(restarted.status()[0].state(), JudgingState::Failing);
    let (_, read) = tick(&restarted, &store, minutes(5) + 1_000);
    assert_eq!(read, 5);
    assert_eq!(restarted.status()[0].restored_from, Some(saved.next_minute));
    assert_eq!(restarted.status()[0].state(), JudgingState::Live);

    let mut damaged = saved.clone();
    damaged.next_minute = saved.next_minute.plus(30);
    damaged.bytes.truncate(damaged.bytes.len() / 2);
    assert!(store.save_detector_snapshot(&damaged).unwrap());
    let late = Detection::new(Arc::new(config));
    let (_, read) = tick(&late, &store, minutes(40));
    assert_eq!(read, history_minutes(&late, minutes(40)));
    assert_eq!(late.status()[0].restored_from, None);
    assert_eq!(late.status()[0].state(), JudgingState::Live);
}
