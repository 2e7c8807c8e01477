//! The maintenance service's run (`revloop_server::maintenance::run_once`) on a real store:
//! old per-minute counts roll up to hourly with every hour's totals kept, and what the
//! detector reads at start is never touched. SQLite and PostgreSQL.

use std::collections::BTreeMap;

use revloop_core::funnel::{DimensionValues, StageHit, VALUE_NONE};
use revloop_core::ingest::{Cell, StageCount};
use revloop_core::time::{MS_PER_DAY, Minute};
use revloop_core::{Config, Timestamp};
use revloop_store::{CountsQuery, IngestGroup, IngestItem, Store};

/// 2026-11-27T10:00:00Z.
const NOW_MS: i64 = 1_795_773_600_000;

/// The example, with a week of baselines and a day of learning: the detector reads 9 days at
/// start, and minutes are kept 16 days.
fn config() -> Config {
    let text = Config::example_toml()
        .replace("baseline_weeks = 4", "baseline_weeks = 1")
        .replace("learning = \"7d\"", "learning = \"1d\"");
    Config::parse(&text).unwrap()
}

/// Twenty days of counts before `NOW_MS`, a minute every 13, on two devices.
fn seed(store: &dyn Store) {
    let start = Timestamp::from_millis(NOW_MS - 20 * MS_PER_DAY).minute();
    let end = Timestamp::from_millis(NOW_MS).minute();
    let mut items = Vec::new();
    let mut at = start;
    let mut key = 0;
    while at < end {
        key += 1;
        let device = if key % 2 == 0 { "mobile" } else { "desktop" };
        let mut values = vec![device];
        values.resize(5, VALUE_NONE);
        let cell = Cell {
            hit: StageHit {
                funnel: 0,
                stage: (key % 3) as usize,
            },
            minute: at,
            dimension_values: DimensionValues::new(values),
        };
        let count = StageCount {
            n_events: 1 + key % 4,
            revenue_minor: 500 * (key % 7),
            n_revenue_events: key % 2,
        };
        items.push(IngestItem {
            dedup_key: key,
            cells: vec![(cell, count)],
            late: false,
            ignored_name: None,
            count_body: None,
        });
        at = at.plus(13);
    }
    store
        .commit_ingest(&IngestGroup {
            now: Timestamp::from_millis(NOW_MS),
            items,
            problems: Vec::new(),
        })
        .unwrap();
}

fn per_hour(store: &dyn Store, filter: &[(&str, &str)]) -> BTreeMap<(i64, usize), StageCount> {
    let query = CountsQuery {
        funnel: "checkout".into(),
        from: Timestamp::from_millis(NOW_MS - 21 * MS_PER_DAY).minute(),
        to: Timestamp::from_millis(NOW_MS).minute(),
        filter: filter
            .iter()
            .map(|(d, v)| ((*d).to_owned(), (*v).to_owned()))
            .collect(),
    };
    let mut hours: BTreeMap<(i64, usize), StageCount> = BTreeMap::new();
    for count in store.minute_counts(&query).unwrap() {
        hours
            .entry((count.minute.index().div_euclid(60), count.stage))
            .or_default()
            .add(count.count);
    }
    hours
}

fn check(store: &dyn Store) {
    let config = config();
    seed(store);
    let now = Timestamp::from_millis(NOW_MS);
    // What a (re)start of the detector reads (see `Detection::history_ms`).
    let history = revloop_core::config::detector_history(&config.detection);
    let warm_up_from = now.saturating_sub(history).minute();
    let warm_up = || {
        store
            .segment_minute_counts("checkout", warm_up_from, now.minute())
            .unwrap()
    };
    let warm_up_before = warm_up();
    let all_before = per_hour(store, &[]);
    let mobile_before = per_hour(store, &[("device", "mobile")]);

    let report = revloop_server::maintenance::run_once(store, &config, now).unwrap();
    let hourly_before = config.retention.hourly_before(now);
    assert_eq!(report.hourly_before, Some(hourly_before));
    assert!(hourly_before < warm_up_from);
    // About 4 days of minutes, every 13th, 11 of 12 in an hour not at its first minute.
    assert!(report.rows_deleted > 300, "{report:?}");

    assert_eq!(warm_up(), warm_up_before, "the detector's warm-up changed");
    assert_eq!(per_hour(store, &[]), all_before);
    assert_eq!(per_hour(store, &[("device", "mobile")]), mobile_before);
    let old = store
        .minute_counts(&CountsQuery {
            funnel: "checkout".into(),
            from: Minute::new(0),
            to: hourly_before,
            filter: Vec::new(),
        })
        .unwrap();
    assert!(!old.is_empty());
    assert!(old.iter().all(|c| c.minute.index() % 60 == 0));

    // The next run has nothing to do until an hour more has passed.
    let again = revloop_server::maintenance::run_once(store, &config, now).unwrap();
    assert_eq!(again.rows_deleted, 0);
    assert_eq!(per_hour(store, &[]), all_before);
}

#[test]
fn maintenance_rolls_up_old_minutes_and_never_the_warm_up_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = revloop_store::SqliteStore::open(&dir.path().join("m.db"), &config()).unwrap();
    check(&store);
}

#[test]
fn maintenance_rolls_up_old_minutes_and_never_the_warm_up_postgresql() {
    let Ok(url) = std::env::var("REVLOOP_TEST_DATABASE_URL") else {
        eprintln!("skipped: REVLOOP_TEST_DATABASE_URL is not set");
        return;
    };
    let schema = format!("revloop_maintenance_test_{}", std::process::id());
    let store = revloop_store::PostgresStore::open_in_schema(&url, &schema, &config()).unwrap();
    check(&store);
    drop(store);
    revloop_store::PostgresStore::drop_schema(&url, &schema).unwrap();
}
