//! The checks every [`Store`] must pass, whatever database is behind it. They take the store
//! (or a way to open it) and know nothing of SQL: each backend's test file opens a fresh,
//! private database per test, with [`config`], and calls one check.
//!
//! The `two_nodes_*` checks are for stores that several nodes share; they take two stores
//! opened on the same database.

// Each backend's test binary compiles this module and calls the checks that apply to it.
#![allow(dead_code)]

mod count_bodies;
mod ledger;
mod problems;
mod retention;
mod signals;
mod snapshots;
pub use count_bodies::*;
pub use ledger::*;
pub use problems::*;
pub use retention::*;
pub use signals::*;
pub use snapshots::*;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Barrier;

use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestCaseError, TestRunner};

use revloop_core::change::ChangeKind;
use revloop_core::funnel::{DimensionValues, StageHit, VALUE_NONE, VALUE_OTHER};
use revloop_core::incident::{IncidentSeverity, IncidentState};
use revloop_core::ingest::{Cell, StageCount};
use revloop_core::metrics::{MinuteCount, rollup};
use revloop_core::time::{MS_PER_MINUTE, Minute};
use revloop_core::{Config, DurationMs, Timestamp};
use revloop_store::{
    ChangeRow, CountsQuery, IncidentCommit, IncidentQuery, IncidentRow, IncidentSnapshot,
    IngestGroup, IngestItem, LateCount, OutboxKind, OutboxRow, Role, SegmentMinuteCount, Store,
    StoreError, TimelineKind, TimelineRow, TokenRecord,
};

/// One `#[test]` per check that every backend runs alike, each run through the calling
/// file's `check` on a fresh database, so that the list is written once for all backends.
macro_rules! store_checks {
    () => {
        common::store_checks!(
            exactly_once,
            unknown_names_are_errors,
            counts_match_a_recount,
            tokens,
            dedup_window,
            incidents_round_trip,
            incidents_stale_version_conflicts,
            incidents_resolved_max,
            incidents_list,
            incidents_duplicate_timeline_entry_fails,
            incidents_outbox,
            changes,
            problem_log_order_and_pages,
            problem_log_keeps_the_newest,
            problem_log_without_items,
            ignored_names_count_only_new,
            ignored_names_are_bounded,
            count_body_outlives_a_clock_step_back,
            rollup_keeps_hourly_totals,
            outbox_stats,
            detector_snapshots_round_trip,
            ledger_posts_once_per_id,
            ledger_refusals_write_nothing,
            ledger_revision_in_one_call,
            ledger_reads_page,
            ledger_sums_do_not_overflow,
            ledger_random_histories_balance,
            signals_upsert_by_key,
            signals_overlap_reads,
        );
    };
    ($($name:ident),+ $(,)?) => {
        $(
            #[test]
            fn $name() {
                check(common::$name);
            }
        )+
    };
}
pub(crate) use store_checks;

/// The bundled example config: one funnel of five stages, five dimensions.
pub fn config() -> Config {
    Config::parse(Config::example_toml()).expect("the example config parses")
}

/// 2026-11-27T00:00:00Z, the start of every check's traffic.
const START_MS: i64 = 1_795_737_600_000;
const FUNNEL: &str = "checkout";
const N_STAGES: usize = 5;
const N_DIMENSIONS: usize = 5;

fn start_minute() -> Minute {
    Timestamp::from_millis(START_MS).minute()
}

fn minute(offset: i64) -> Minute {
    start_minute().plus(offset)
}

/// One message counted once at `stage` of the checkout funnel.
fn message(key: i64, stage: usize, minute: Minute, device: &str) -> IngestItem {
    IngestItem {
        dedup_key: key,
        cells: vec![cell(stage, minute, [device, VALUE_NONE, VALUE_NONE], 1)],
        late: false,
        ignored_name: None,
        count_body: None,
    }
}

/// A cell of the checkout funnel with the given device, country and source; the other
/// dimensions are missing.
fn cell(
    stage: usize,
    minute: Minute,
    [device, country, source]: [&str; 3],
    n_events: i64,
) -> (Cell, StageCount) {
    let mut values = vec![device, country, source];
    values.resize(N_DIMENSIONS, VALUE_NONE);
    let cell = Cell {
        hit: StageHit { funnel: 0, stage },
        minute,
        dimension_values: DimensionValues::new(values),
    };
    let count = StageCount {
        n_events,
        ..StageCount::default()
    };
    (cell, count)
}

fn group(now_ms: i64, items: Vec<IngestItem>) -> IngestGroup {
    IngestGroup {
        now: Timestamp::from_millis(now_ms),
        items,
        problems: Vec::new(),
    }
}

fn query(from: Minute, to: Minute, filter: &[(&str, &str)]) -> CountsQuery {
    CountsQuery {
        funnel: FUNNEL.to_owned(),
        from,
        to,
        filter: filter
            .iter()
            .map(|(d, v)| ((*d).to_owned(), (*v).to_owned()))
            .collect(),
    }
}

fn counts(
    store: &dyn Store,
    from: Minute,
    to: Minute,
    filter: &[(&str, &str)],
) -> Vec<MinuteCount> {
    store
        .minute_counts(&query(from, to, filter))
        .expect("minute_counts")
}

fn n_events(counts: &[MinuteCount]) -> i64 {
    counts.iter().map(|c| c.count.n_events).sum()
}

/// Items whose key was seen before (in an earlier group, or earlier in the same group) add
/// nothing and are reported as not new, whatever they carry; items with no cells and late items
/// are remembered like any other.
pub fn exactly_once(store: &dyn Store) {
    // (keys of a group, which are new). Every item is one event at stage 0 in a minute of its
    // own, so the minutes counted show exactly which items were counted.
    let cases: &[(&[i64], &[bool])] = &[
        (&[1, 2, 1, 3], &[true, true, false, true]),
        (&[2, 4, 4, 5, 1], &[false, true, false, true, false]),
        (&[], &[]),
        (&[7, 7, 7], &[true, false, false]),
        (&[3], &[false]),
    ];
    let mut minute_of_item = 0;
    let mut want_minutes = Vec::new();
    for (index, (keys, want_new)) in cases.iter().enumerate() {
        let mut items = Vec::new();
        for key in keys.iter() {
            items.push(message(*key, 0, minute(minute_of_item), "mobile"));
            minute_of_item += 1;
        }
        let first_minute = minute_of_item - keys.len() as i64;
        want_minutes.extend(
            want_new
                .iter()
                .enumerate()
                .filter(|(_, new)| **new)
                .map(|(position, _)| minute(first_minute + position as i64)),
        );
        let receipt = store
            .commit_ingest(&group(START_MS + index as i64, items))
            .expect("commit_ingest");
        assert_eq!(receipt.is_new, *want_new, "group {index}: keys {keys:?}");
    }
    let got = counts(store, minute(0), minute(minute_of_item), &[]);
    let got_minutes: Vec<Minute> = got.iter().map(|c| c.minute).collect();
    assert_eq!(got_minutes, want_minutes, "the minutes counted");
    assert!(got.iter().all(|c| c.stage == 0 && c.count.n_events == 1));

    // An item no funnel listens to is remembered all the same.
    let bare = |key| IngestItem {
        dedup_key: key,
        cells: Vec::new(),
        late: false,
        ignored_name: None,
        count_body: None,
    };
    let receipt = store
        .commit_ingest(&group(START_MS + 10, vec![bare(20), bare(20)]))
        .expect("commit_ingest");
    assert_eq!(receipt.is_new, [true, false]);
    let receipt = store
        .commit_ingest(&group(
            START_MS + 11,
            vec![message(20, 0, minute(100), "mobile")],
        ))
        .expect("commit_ingest");
    assert_eq!(receipt.is_new, [false], "a key first seen without cells");

    // So is a late item: its duplicate is neither late nor counted.
    let mut late = message(21, 1, minute(200), "mobile");
    late.late = true;
    let on_time = message(21, 1, minute(200), "mobile");
    let receipt = store
        .commit_ingest(&group(START_MS + 12, vec![late]))
        .expect("commit_ingest");
    assert_eq!(receipt.is_new, [true]);
    let receipt = store
        .commit_ingest(&group(START_MS + 13, vec![on_time]))
        .expect("commit_ingest");
    assert_eq!(receipt.is_new, [false]);
    assert_eq!(counts(store, minute(100), minute(300), &[]), []);
    let late = store
        .late_counts(&query(minute(100), minute(300), &[]))
        .expect("late_counts");
    assert_eq!(
        late,
        [LateCount {
            stage: 1,
            minute: minute(200),
            n_events: 1
        }]
    );
}

/// Reads name what exists, and the database answers.
pub fn unknown_names_are_errors(store: &dyn Store) {
    store.ping().expect("ping");
    let query = |funnel: &str, filter: &[(&str, &str)]| CountsQuery {
        funnel: funnel.to_owned(),
        from: minute(0),
        to: minute(60),
        filter: filter
            .iter()
            .map(|(d, v)| ((*d).to_owned(), (*v).to_owned()))
            .collect(),
    };
    assert!(matches!(
        store.minute_counts(&query("nope", &[])),
        Err(StoreError::UnknownFunnel(name)) if name == "nope"
    ));
    assert!(matches!(
        store.minute_counts(&query(FUNNEL, &[("device", "mobile"), ("nope", "x")])),
        Err(StoreError::UnknownDimension(name)) if name == "nope"
    ));
    assert_eq!(
        store
            .minute_counts(&query(FUNNEL, &[]))
            .expect("minute_counts"),
        []
    );
    let names: Vec<String> = store
        .dimension_values()
        .expect("dimension_values")
        .into_iter()
        .map(|(name, values)| {
            assert_eq!(values, Vec::<String>::new(), "{name}");
            name
        })
        .collect();
    assert_eq!(
        names,
        ["device", "country", "source", "payment_method", "variant"]
    );
}

const DEVICES: &[&str] = &["mobile", "desktop", "tablet", VALUE_NONE];
const COUNTRIES: &[&str] = &["US", "DE", "FR", VALUE_NONE];
const SOURCES: &[&str] = &["google", "newsletter", VALUE_NONE];
/// How far apart in time the items of one stream fall.
const STREAM_MINUTES: i64 = 4 * 60;

/// An item of a random stream; indexes pick from the value lists above.
#[derive(Debug, Clone)]
struct StreamItem {
    key: i64,
    late: bool,
    minute_offset: i64,
    device: usize,
    country: usize,
    source: usize,
    /// `(stage, n_events, revenue_minor)`; empty for a call no funnel listens to.
    hits: Vec<(usize, i64, i64)>,
}

#[derive(Debug, Clone)]
struct Stream {
    items: Vec<StreamItem>,
    /// Sizes of the groups the items are committed in; the last group takes what is left.
    group_sizes: Vec<usize>,
    step_minutes: i64,
    device: usize,
    country: usize,
}

fn stream_strategy() -> impl Strategy<Value = Stream> {
    let hit = (0..N_STAGES, 1..=3i64, 0..10_000i64);
    let item = (
        0..60i64,
        prop::bool::weighted(0.15),
        0..STREAM_MINUTES,
        0..DEVICES.len(),
        0..COUNTRIES.len(),
        0..SOURCES.len(),
        prop::collection::vec(hit, 0..=3),
    )
        .prop_map(
            |(key, late, minute_offset, device, country, source, hits)| StreamItem {
                key,
                late,
                minute_offset,
                device,
                country,
                source,
                hits,
            },
        );
    (
        prop::collection::vec(item, 0..150),
        prop::collection::vec(1..50usize, 1..10),
        1..=90i64,
        0..DEVICES.len(),
        0..COUNTRIES.len(),
    )
        .prop_map(
            |(items, group_sizes, step_minutes, device, country)| Stream {
                items,
                group_sizes,
                step_minutes,
                device,
                country,
            },
        )
}

/// A random stream of items, with repeated keys, committed in random groups, reads back as a
/// plain recount of the first item of each key: per minute with no filter, one dimension and two
/// dimensions, rolled up at a random step; its late items only in the late counts.
///
/// The cases share the store: each runs a week after the previous one, with keys of its own.
/// The values drawn stay under every dimension's cap, so no case folds into "other".
pub fn counts_match_a_recount(store: &dyn Store) {
    let mut runner = TestRunner::new(ProptestConfig {
        cases: 48,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let n_runs = std::cell::Cell::new(0i64);
    let result = runner.run(&stream_strategy(), |stream| {
        let run = n_runs.get();
        n_runs.set(run + 1);
        check_stream(store, run, &stream)
    });
    if let Err(err) = result {
        panic!("{err}");
    }
}

fn check_stream(store: &dyn Store, run: i64, stream: &Stream) -> Result<(), TestCaseError> {
    let week_minutes = 7 * 24 * 60;
    let from = minute(run * week_minutes);
    let to = from.plus(STREAM_MINUTES);
    let key_base = (run + 1) << 32;

    let item_of = |item: &StreamItem| IngestItem {
        dedup_key: key_base + item.key,
        cells: item
            .hits
            .iter()
            .map(|(stage, n_events, revenue_minor)| {
                let values = [
                    DEVICES[item.device],
                    COUNTRIES[item.country],
                    SOURCES[item.source],
                ];
                let (cell, mut count) =
                    cell(*stage, from.plus(item.minute_offset), values, *n_events);
                if *stage == N_STAGES - 1 {
                    count.revenue_minor = *revenue_minor;
                    count.n_revenue_events = 1;
                }
                (cell, count)
            })
            .collect(),
        late: item.late,
        ignored_name: None,
        count_body: None,
    };

    // The recount: the first item of each key, in stream order.
    let mut seen = HashSet::new();
    let first: Vec<bool> = stream.items.iter().map(|i| seen.insert(i.key)).collect();
    let device = DEVICES[stream.device];
    let country = COUNTRIES[stream.country];
    let filters: [&[(&str, &str)]; 3] = [
        &[],
        &[("device", device)],
        &[("country", country), ("device", device)],
    ];
    let mut want: [BTreeMap<(Minute, usize), StageCount>; 3] = Default::default();
    let mut want_late: [BTreeMap<(Minute, usize), i64>; 3] = Default::default();
    for (item, _) in stream.items.iter().zip(&first).filter(|(_, f)| **f) {
        for (cell, count) in item_of(item).cells {
            let at = (cell.minute, cell.hit.stage);
            let matches = [
                true,
                DEVICES[item.device] == device,
                DEVICES[item.device] == device && COUNTRIES[item.country] == country,
            ];
            if item.late {
                for (late, _) in want_late.iter_mut().zip(matches).filter(|(_, m)| *m) {
                    *late.entry(at).or_default() += count.n_events;
                }
                continue;
            }
            for (sums, _) in want.iter_mut().zip(matches).filter(|(_, m)| *m) {
                sums.entry(at).or_default().add(count);
            }
        }
    }

    // The commits, in the stream's groups.
    let mut rest = &stream.items[..];
    let mut first_rest = &first[..];
    let mut sizes = stream.group_sizes.iter();
    let mut n_groups = 0;
    while !rest.is_empty() || n_groups == 0 {
        let size = sizes.next().copied().unwrap_or(rest.len()).min(rest.len());
        let (items, later) = rest.split_at(size);
        let (want_new, first_later) = first_rest.split_at(size);
        let now_ms = from.start().millis() + n_groups * MS_PER_MINUTE;
        let receipt = store
            .commit_ingest(&group(now_ms, items.iter().map(item_of).collect()))
            .expect("commit_ingest");
        prop_assert_eq!(&receipt.is_new, &want_new.to_vec(), "group {}", n_groups);
        rest = later;
        first_rest = first_later;
        n_groups += 1;
    }

    for (filter, sums) in filters.iter().zip(&want) {
        let want: Vec<MinuteCount> = sums
            .iter()
            .map(|((minute, stage), count)| MinuteCount {
                stage: *stage,
                minute: *minute,
                count: *count,
            })
            .collect();
        let got = counts(store, from, to, filter);
        prop_assert_eq!(&got, &want, "filter {:?}", filter);
        let step = stream.step_minutes;
        prop_assert_eq!(
            rollup(N_STAGES, &got, from, to, step),
            rollup(N_STAGES, &want, from, to, step),
            "filter {:?}, step {}",
            filter,
            step
        );
    }
    for (filter, late) in filters.iter().zip(want_late) {
        let got_late = store
            .late_counts(&query(from, to, filter))
            .expect("late_counts");
        let want_late: Vec<LateCount> = late
            .into_iter()
            .map(|((minute, stage), n_events)| LateCount {
                stage,
                minute,
                n_events,
            })
            .collect();
        prop_assert_eq!(got_late, want_late, "late, filter {:?}", filter);
    }
    Ok(())
}

/// Values past a dimension's cap fold into "other"; which values were admitted survives a
/// reopen, so a value folds the same way before and after. `open` opens the same database each
/// time.
pub fn folding_is_stable_across_reopen(open: &dyn Fn(&Config) -> Box<dyn Store>) {
    let mut config = config();
    config.dimensions[0].values_max = 3;
    let device = |store: &dyn Store, at: Minute, value: &str| {
        n_events(&counts(store, at, at.plus(1), &[("device", value)]))
    };
    let admitted = |store: &dyn Store| {
        let values = store.dimension_values().expect("dimension_values");
        assert_eq!(values[0].0, "device");
        values[0].1.clone()
    };
    let commit = |store: &dyn Store, first_key: i64, at: Minute, values: &[&str]| {
        let items = values
            .iter()
            .zip(first_key..)
            .map(|(value, key)| message(key, 0, at, value))
            .collect();
        store
            .commit_ingest(&group(at.start().millis(), items))
            .expect("commit_ingest");
    };

    let before = minute(0);
    {
        let store = open(&config);
        // The sentinels never take a slot of the cap.
        commit(&*store, 0, before, &[VALUE_NONE, "a", "b", VALUE_OTHER]);
        commit(&*store, 10, before, &["c", "d", "a", "e"]);
        assert_eq!(admitted(&*store), ["a", "b", "c"]);
        let cases = [
            ("a", 2),
            ("b", 1),
            ("c", 1),
            ("d", 0),
            ("e", 0),
            (VALUE_OTHER, 3),
        ];
        for (value, n) in cases {
            assert_eq!(device(&*store, before, value), n, "before reopen: {value}");
        }
    }

    let after = minute(10);
    let store = open(&config);
    assert_eq!(admitted(&*store), ["a", "b", "c"]);
    commit(&*store, 20, after, &["e", "a", "f", "c"]);
    assert_eq!(admitted(&*store), ["a", "b", "c"]);
    let cases = [("a", 1), ("c", 1), ("e", 0), ("f", 0), (VALUE_OTHER, 2)];
    for (value, n) in cases {
        assert_eq!(device(&*store, after, value), n, "after reopen: {value}");
    }
    let other_nowhere = counts(
        &*store,
        after,
        after.plus(1),
        &[("device", VALUE_OTHER), ("country", VALUE_NONE)],
    );
    assert_eq!(n_events(&other_nowhere), 2, "two-dimension filter on other");
}

/// The example config with only its first `n` dimensions (device, then country).
fn config_with_dimensions(n: usize) -> Config {
    let mut config = config();
    config.dimensions.truncate(n);
    config
}

/// An item of the checkout funnel with one cell per `(stage, minute offset, n_events)`, all with
/// the given device and country.
fn segment_item(key: i64, [device, country]: [&str; 2], cells: &[(usize, i64, i64)]) -> IngestItem {
    IngestItem {
        dedup_key: key,
        cells: cells
            .iter()
            .map(|(stage, at, n_events)| {
                let (cell, _) = cell(*stage, minute(*at), [device, country, "x"], *n_events);
                (cell, segment_item_count(*stage, *n_events))
            })
            .collect(),
        late: false,
        ignored_name: None,
        count_body: None,
    }
}

/// What `segment_item` adds for `n_events` at `stage`: the last stage carries 15.00 per event.
fn segment_item_count(stage: usize, n_events: i64) -> StageCount {
    let revenue = stage == N_STAGES - 1;
    StageCount {
        n_events,
        revenue_minor: if revenue { 1_500 * n_events } else { 0 },
        n_revenue_events: if revenue { n_events } else { 0 },
    }
}

/// An expected row of `segment_minute_counts`: events only, since the detector's read leaves
/// the revenue columns alone (the filtered reads below still check the revenue, through
/// [`segment_item_count`]).
fn segment_row(
    at: i64,
    segment: Option<(&str, &str)>,
    stage: usize,
    n_events: i64,
) -> SegmentMinuteCount {
    SegmentMinuteCount {
        segment: segment.map(|(d, v)| (d.to_owned(), v.to_owned())),
        stage,
        minute: minute(at),
        n_events,
    }
}

fn segment_counts(store: &dyn Store, from: i64, to: i64) -> Vec<SegmentMinuteCount> {
    store
        .segment_minute_counts(FUNNEL, minute(from), minute(to))
        .expect("segment_minute_counts")
}

/// With two dimensions, the detector's read returns all segments together and each
/// single-dimension segment, never the full combination, per minute in `[from, to)`, ordered by
/// minute, segment (all first, then by dimension in config order and value) and stage. Counts of
/// one minute committed before and after the SQLite store rolled that minute up are summed.
pub fn segment_minute_counts(open: &dyn Fn(&Config) -> Box<dyn Store>) {
    let store = open(&config_with_dimensions(2));
    let at = |offset: i64| minute(offset).start().millis();
    // Minutes 0 and 1 are recent when written; the commit at minute 3 rolls them up.
    let first = vec![
        segment_item(1, ["mobile", "US"], &[(0, 0, 1)]),
        segment_item(2, ["desktop", "US"], &[(0, 0, 1), (2, 0, 1)]),
        segment_item(3, ["mobile", "DE"], &[(1, 1, 2)]),
    ];
    let rolling = vec![
        segment_item(4, ["mobile", "US"], &[(0, 2, 1)]),
        segment_item(5, ["desktop", "DE"], &[(N_STAGES - 1, 3, 1)]),
    ];
    // Minute 1 again, now in the recent table beside its rolled-up counts; a duplicate and a
    // late item add nothing.
    let mut late = segment_item(7, ["mobile", "US"], &[(0, 2, 5)]);
    late.late = true;
    let after_roll = vec![
        segment_item(6, ["mobile", "US"], &[(1, 1, 1)]),
        segment_item(1, ["mobile", "US"], &[(0, 1, 9)]),
        late,
    ];
    for (now, items) in [(at(0), first), (at(3), rolling), (at(3), after_roll)] {
        store
            .commit_ingest(&group(now, items))
            .expect("commit_ingest");
    }

    let all = None;
    let device = |value| Some(("device", value));
    let country = |value| Some(("country", value));
    let want = [
        segment_row(0, all, 0, 2),
        segment_row(0, all, 2, 1),
        segment_row(0, device("desktop"), 0, 1),
        segment_row(0, device("desktop"), 2, 1),
        segment_row(0, device("mobile"), 0, 1),
        segment_row(0, country("US"), 0, 2),
        segment_row(0, country("US"), 2, 1),
        segment_row(1, all, 1, 3),
        segment_row(1, device("mobile"), 1, 3),
        segment_row(1, country("DE"), 1, 2),
        segment_row(1, country("US"), 1, 1),
        segment_row(2, all, 0, 1),
        segment_row(2, device("mobile"), 0, 1),
        segment_row(2, country("US"), 0, 1),
        segment_row(3, all, N_STAGES - 1, 1),
        segment_row(3, device("desktop"), N_STAGES - 1, 1),
        segment_row(3, country("DE"), N_STAGES - 1, 1),
    ];
    assert_eq!(segment_counts(&*store, 0, 4), want);
    assert_eq!(segment_counts(&*store, -60, 60), want, "a wider range");
    let in_range = |from: i64, to: i64| -> Vec<SegmentMinuteCount> {
        want.iter()
            .filter(|row| minute(from) <= row.minute && row.minute < minute(to))
            .cloned()
            .collect()
    };
    for (from, to) in [(1, 3), (1, 2), (3, 4), (0, 1)] {
        assert_eq!(
            segment_counts(&*store, from, to),
            in_range(from, to),
            "[{from}, {to})"
        );
    }
    assert_eq!(segment_counts(&*store, 2, 2), [], "an empty range");
    assert_eq!(segment_counts(&*store, 4, 60), [], "no events");

    // They agree with the filtered reads.
    for (filter, segment) in [
        (&[][..], None),
        (&[("device", "mobile")][..], device("mobile")),
        (&[("country", "DE")][..], country("DE")),
    ] {
        let want: Vec<MinuteCount> = segment_counts(&*store, 0, 4)
            .into_iter()
            .filter(|row| row.segment.as_ref().map(|(d, v)| (d.as_str(), v.as_str())) == segment)
            .map(|row| MinuteCount {
                stage: row.stage,
                minute: row.minute,
                count: segment_item_count(row.stage, row.n_events),
            })
            .collect();
        assert_eq!(
            counts(&*store, minute(0), minute(4), filter),
            want,
            "{filter:?}"
        );
    }

    assert!(matches!(
        store.segment_minute_counts("nope", minute(0), minute(4)),
        Err(StoreError::UnknownFunnel(name)) if name == "nope"
    ));
}

/// With one dimension, its full combination is its single-dimension segment: each series comes
/// once. Segments of a dimension no longer configured are left out.
pub fn segment_minute_counts_one_dimension(open: &dyn Fn(&Config) -> Box<dyn Store>) {
    let at = |offset: i64| minute(offset).start().millis();
    {
        // Before: device and country.
        let store = open(&config_with_dimensions(2));
        store
            .commit_ingest(&group(
                at(0),
                vec![segment_item(1, ["mobile", "US"], &[(0, 0, 1)])],
            ))
            .expect("commit_ingest");
    }
    let store = open(&config_with_dimensions(1));
    let items = vec![
        segment_item(2, ["mobile", "DE"], &[(0, 1, 1), (1, 1, 1)]),
        segment_item(3, ["tablet", "DE"], &[(0, 1, 2)]),
        segment_item(4, ["mobile", "DE"], &[(0, 3, 1)]),
    ];
    store
        .commit_ingest(&group(at(3), items))
        .expect("commit_ingest");

    let device = |value| Some(("device", value));
    let want = [
        segment_row(0, None, 0, 1),
        segment_row(0, device("mobile"), 0, 1),
        segment_row(1, None, 0, 3),
        segment_row(1, None, 1, 1),
        segment_row(1, device("mobile"), 0, 1),
        segment_row(1, device("mobile"), 1, 1),
        segment_row(1, device("tablet"), 0, 2),
        segment_row(3, None, 0, 1),
        segment_row(3, device("mobile"), 0, 1),
    ];
    assert_eq!(segment_counts(&*store, 0, 4), want);
}

/// Tokens are found by the hash of their secret until revoked, and listed in creation order.
pub fn tokens(store: &dyn Store) {
    let created = Timestamp::from_millis(START_MS);
    let revoked = Timestamp::from_millis(START_MS + 60_000);
    let admin = store
        .create_token("ops", Role::Admin, [1; 32], created)
        .expect("create_token");
    let ingest = store
        .create_token("shop backend", Role::Ingest, [2; 32], created)
        .expect("create_token");
    assert_ne!(admin.id, ingest.id);
    assert_eq!(
        (admin.name.as_str(), admin.role, admin.revoked_at),
        ("ops", Role::Admin, None)
    );
    assert!(
        store
            .create_token("same secret", Role::Viewer, [1; 32], created)
            .is_err(),
        "two tokens with one secret"
    );

    assert_eq!(
        store.find_token(&[1; 32]).expect("find_token"),
        Some(admin.clone())
    );
    assert_eq!(
        store.find_token(&[2; 32]).expect("find_token"),
        Some(ingest.clone())
    );
    assert_eq!(store.find_token(&[3; 32]).expect("find_token"), None);

    assert!(store.revoke_token(admin.id, revoked).expect("revoke_token"));
    assert!(
        !store.revoke_token(admin.id, revoked).expect("revoke_token"),
        "twice"
    );
    assert!(
        !store.revoke_token(-1, revoked).expect("revoke_token"),
        "unknown id"
    );
    assert_eq!(store.find_token(&[1; 32]).expect("find_token"), None);
    assert_eq!(
        store.find_token(&[2; 32]).expect("find_token"),
        Some(ingest.clone())
    );

    let listed = store.list_tokens().expect("list_tokens");
    let want = [
        TokenRecord {
            revoked_at: Some(revoked),
            ..admin
        },
        ingest,
    ];
    assert_eq!(listed, want);
}

/// A key is remembered for at least the dedup window, and forgotten once traffic has rotated
/// the generations twice, two windows later.
pub fn dedup_window(store: &dyn Store) {
    let window = config().ingest.dedup_window.millis();
    let (a, b) = (1, 2);
    // (time since the start, key, whether it is new).
    let probes = [
        (0, a, true),
        (window - 1, a, false),
        (window - 1, b, true),
        (2 * window - 2, b, false),
        (2 * window, a, true),
    ];
    // Traffic every quarter window, so that the generations rotate as soon as they are due.
    let mut times: Vec<i64> = (0..=8).map(|quarter| quarter * window / 4).collect();
    times.extend(probes.iter().map(|(at, _, _)| *at));
    times.sort_unstable();
    times.dedup();
    for (at, filler_key) in times.into_iter().zip(1_000..) {
        let mut keys = vec![filler_key];
        let mut want_new = vec![true];
        for (_, key, new) in probes.iter().filter(|(probe_at, _, _)| *probe_at == at) {
            keys.push(*key);
            want_new.push(*new);
        }
        let items = keys
            .iter()
            .map(|key| message(*key, 0, minute(0), "mobile"))
            .collect();
        let receipt = store
            .commit_ingest(&group(START_MS + at, items))
            .expect("commit_ingest");
        assert_eq!(
            receipt.is_new,
            want_new,
            "{} after the start, keys {keys:?}",
            DurationMs::from_millis(at)
        );
    }
}

/// A deterministic generator for the two-node checks (SplitMix64).
struct SplitMix(u64);

impl SplitMix {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) % n
    }
}

/// Two nodes ingesting overlapping keys at once, in lockstep through three windows of time so
/// that both try to rotate the generations together: a key is new at most once per step, new
/// the first time it shows up, and never new again within a window of being new; the counts
/// hold exactly the new items.
pub fn two_nodes_count_once(a: &dyn Store, b: &dyn Store) {
    const N_STEPS: i64 = 12;
    const N_GROUPS_PER_STEP: usize = 3;
    const N_ITEMS_PER_GROUP: usize = 40;
    const N_KEYS: u64 = 300;
    let window = config().ingest.dedup_window.millis();
    let step_ms = window / 4;
    let barrier = Barrier::new(2);
    // (step, key, new) for every item either node committed.
    let run = |store: &dyn Store, seed: u64| {
        let mut rng = SplitMix(seed);
        let mut seen = Vec::new();
        for step in 0..N_STEPS {
            barrier.wait();
            for _ in 0..N_GROUPS_PER_STEP {
                let keys: Vec<i64> = (0..N_ITEMS_PER_GROUP)
                    .map(|_| rng.below(N_KEYS) as i64)
                    .collect();
                let items = keys
                    .iter()
                    .map(|key| message(*key, 0, minute(step), "mobile"))
                    .collect();
                let receipt = store
                    .commit_ingest(&group(START_MS + step * step_ms, items))
                    .expect("commit_ingest");
                seen.extend(
                    keys.iter()
                        .zip(receipt.is_new)
                        .map(|(k, new)| (step, *k, new)),
                );
            }
        }
        seen
    };
    let (seen_a, seen_b) = std::thread::scope(|scope| {
        let node_a = scope.spawn(|| run(a, 1));
        let node_b = scope.spawn(|| run(b, 2));
        (
            node_a.join().expect("node a"),
            node_b.join().expect("node b"),
        )
    });

    // Per key: how many of its items were new, per step it showed up in.
    let mut by_key: HashMap<i64, BTreeMap<i64, usize>> = HashMap::new();
    let mut n_new_by_step: BTreeMap<i64, i64> = BTreeMap::new();
    for (step, key, new) in seen_a.into_iter().chain(seen_b) {
        *by_key.entry(key).or_default().entry(step).or_default() += usize::from(new);
        if new {
            *n_new_by_step.entry(step).or_default() += 1;
        }
    }
    for (key, steps) in &by_key {
        let (first_step, n_new_first) = steps.iter().next().expect("seen at least once");
        assert_eq!(*n_new_first, 1, "key {key} first seen at step {first_step}");
        let new_steps: Vec<i64> = steps
            .iter()
            .filter(|(_, n_new)| **n_new > 0)
            .map(|(step, n_new)| {
                assert_eq!(*n_new, 1, "key {key} new twice at step {step}");
                *step
            })
            .collect();
        for pair in new_steps.windows(2) {
            assert!(
                (pair[1] - pair[0]) * step_ms >= window,
                "key {key} new at steps {} and {}, less than a window apart",
                pair[0],
                pair[1]
            );
        }
    }
    let got = counts(a, minute(0), minute(N_STEPS), &[]);
    let got_by_step: BTreeMap<i64, i64> = got
        .iter()
        .map(|c| (c.minute.minutes_since(start_minute()), c.count.n_events))
        .collect();
    assert_eq!(got_by_step, n_new_by_step, "counted events per step");
}

/// Two nodes admitting different new values of one dimension at once admit no more than its
/// cap between them, and then fold every value the same way.
pub fn two_nodes_fold_alike(a: &dyn Store, b: &dyn Store) {
    let cap = config().dimensions[0].values_max as usize;
    let values_a: Vec<String> = (0..cap).map(|i| format!("a{i}")).collect();
    let values_b: Vec<String> = (0..cap).map(|i| format!("b{i}")).collect();
    let barrier = Barrier::new(2);
    let run = |store: &dyn Store, first_key: i64, values: &[String], at: Minute| {
        for (value, key) in values.iter().zip(first_key..) {
            store
                .commit_ingest(&group(START_MS, vec![message(key, 0, at, value)]))
                .expect("commit_ingest");
        }
    };
    std::thread::scope(|scope| {
        scope.spawn(|| {
            barrier.wait();
            run(a, 0, &values_a, minute(0));
        });
        scope.spawn(|| {
            barrier.wait();
            run(b, 1_000, &values_b, minute(0));
        });
    });

    let admitted: HashSet<String> = a.dimension_values().expect("dimension_values")[0]
        .1
        .iter()
        .cloned()
        .collect();
    assert_eq!(admitted.len(), cap, "admitted {admitted:?}");
    // Now each node counts every value once more.
    let all_values: Vec<String> = values_a.iter().chain(&values_b).cloned().collect();
    run(a, 2_000, &all_values, minute(1));
    run(b, 3_000, &all_values, minute(1));
    let device = |value: &str| n_events(&counts(a, minute(1), minute(2), &[("device", value)]));
    for value in &all_values {
        let want = if admitted.contains(value) { 2 } else { 0 };
        assert_eq!(device(value), want, "{value}");
    }
    assert_eq!(device(VALUE_OTHER), 2 * (all_values.len() - cap) as i64);
}

/// An incident of `funnel` opened `id` minutes after the start; a resolved one was resolved
/// half an hour later.
fn incident_row(id: i64, funnel: &str, resolved: bool) -> IncidentRow {
    let opened_ms = START_MS + id * MS_PER_MINUTE;
    IncidentRow {
        id,
        funnel: funnel.to_owned(),
        stage: "payment".to_owned(),
        severity: IncidentSeverity::P2,
        state: if resolved {
            IncidentState::Resolved
        } else {
            IncidentState::Triggered
        },
        opened_at: Timestamp::from_millis(opened_ms),
        acknowledged_at: None,
        mitigated_at: None,
        resolved_at: resolved.then_some(Timestamp::from_millis(opened_ms + 30 * MS_PER_MINUTE)),
        body: format!(r#"{{"id":{id}}}"#),
    }
}

fn timeline_entry(incident: i64, seq: i64) -> TimelineRow {
    TimelineRow {
        incident,
        seq,
        at: Timestamp::from_millis(START_MS + incident * MS_PER_MINUTE + seq),
        actor: "revloop".to_owned(),
        kind: TimelineKind::Note,
        text: format!("entry {seq} of incident {incident}"),
    }
}

fn effect(incident: i64, kind: OutboxKind) -> OutboxRow {
    OutboxRow {
        id: 0,
        incident,
        at: Timestamp::from_millis(START_MS + incident * MS_PER_MINUTE),
        kind,
        body: format!(r#"{{"incident":{incident},"kind":"{}"}}"#, kind.as_str()),
    }
}

/// A step of the engine computed from `expected_version`; its meta names the version it makes.
fn incident_commit(
    expected_version: i64,
    incidents: Vec<IncidentRow>,
    timeline: Vec<TimelineRow>,
    outbox: Vec<OutboxRow>,
) -> IncidentCommit {
    IncidentCommit {
        expected_version,
        meta: format!(r#"{{"version":{}}}"#, expected_version + 1),
        incidents,
        timeline,
        outbox,
    }
}

/// What became of a commit, comparable in a table.
#[derive(Debug, PartialEq, Eq)]
enum CommitOutcome {
    /// The new version.
    Committed(i64),
    Conflict {
        expected: i64,
        found: i64,
    },
    /// Any other error, as text. Not a panic: a node's thread that panicked would leave the
    /// other waiting at a barrier for ever.
    Failed(String),
}

use CommitOutcome::{Committed, Conflict, Failed};

fn commit(store: &dyn Store, commit: &IncidentCommit) -> CommitOutcome {
    match store.commit_incidents(commit) {
        Ok(version) => Committed(version),
        Err(StoreError::Conflict { expected, found }) => Conflict { expected, found },
        Err(err) => Failed(err.to_string()),
    }
}

fn load_incidents(store: &dyn Store) -> IncidentSnapshot {
    store.load_incidents(100).expect("load_incidents")
}

fn all_outbox(store: &dyn Store) -> Vec<OutboxRow> {
    store.outbox(0, 1_000).expect("outbox")
}

/// Commits incident 1, open, with its first timeline entry and one notification, as version 1,
/// and returns what the store then holds: what a failed commit after it must leave alone.
fn commit_one_open_incident(store: &dyn Store) -> (IncidentSnapshot, Vec<OutboxRow>) {
    let first = incident_commit(
        0,
        vec![incident_row(1, FUNNEL, false)],
        vec![timeline_entry(1, 0)],
        vec![effect(1, OutboxKind::Notify)],
    );
    assert_eq!(commit(store, &first), Committed(1));
    (load_incidents(store), all_outbox(store))
}

/// Commits incident 1 with one timeline entry, for the backends' own checks of the schema;
/// returns the entry.
pub fn commit_one_timeline_entry(store: &dyn Store) -> TimelineRow {
    let entry = timeline_entry(1, 0);
    let commit = incident_commit(
        0,
        vec![incident_row(1, FUNNEL, false)],
        vec![entry.clone()],
        Vec::new(),
    );
    store.commit_incidents(&commit).expect("commit_incidents");
    entry
}

/// A stored enum text that no enum knows (written by a newer revloop, or by hand) is an error
/// naming the column, never a panic nor a default. `execute` runs one SQL statement on the
/// store's database behind its back.
pub fn unknown_stored_texts(store: &dyn Store, execute: &dyn Fn(&str)) {
    let mut commit = incident_commit(
        0,
        vec![incident_row(1, FUNNEL, false)],
        Vec::new(),
        vec![effect(1, OutboxKind::Notify)],
    );
    commit.meta = "{}".to_owned();
    store.commit_incidents(&commit).expect("commit_incidents");
    store
        .insert_change(&change(1, None))
        .expect("insert_change");
    let everything = (Timestamp::from_millis(0), Timestamp::from_millis(i64::MAX));

    execute("UPDATE incidents SET severity = 'P9'");
    let err = store.incident(1).expect_err("an unknown severity");
    assert!(
        error_chain(&err).contains("incidents.severity holds an unknown value `P9`"),
        "{err:?}"
    );
    execute("UPDATE incidents SET severity = 'P1', state = 'snoozed'");
    let err = store.list_incidents(&IncidentQuery {
        open: None,
        funnel: None,
        before_id: None,
        limit: 10,
    });
    let err = err.expect_err("an unknown state");
    assert!(
        error_chain(&err).contains("incidents.state holds an unknown value `snoozed`"),
        "{err:?}"
    );

    execute("UPDATE incident_outbox SET kind = 'page'");
    let err = store.outbox(0, 10).expect_err("an unknown outbox kind");
    assert!(
        error_chain(&err).contains("incident_outbox.kind holds an unknown value `page`"),
        "{err:?}"
    );

    // A change kind this build does not know (a newer node's) reads as `other`, as it always
    // has: a change is context, and must not stop every incident's suspects.
    execute("UPDATE changes SET kind = 'teleport'");
    let changes = store
        .changes(everything.0, everything.1, 10)
        .expect("an unknown change kind reads");
    assert_eq!(changes[0].kind, revloop_core::change::ChangeKind::Other);
}

/// An error and its sources, as one line.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(err) = source {
        text.push_str(": ");
        text.push_str(&err.to_string());
        source = err.source();
    }
    text
}

/// What a commit writes, a load reads back: rows replaced by id, timelines appended, the meta
/// and version moved on.
pub fn incidents_round_trip(store: &dyn Store) {
    assert_eq!(load_incidents(store), IncidentSnapshot::default());
    assert_eq!(store.incidents_version().expect("incidents_version"), 0);

    let opened = incident_row(1, FUNNEL, false);
    let resolved = incident_row(2, "signup", true);
    let first = incident_commit(
        0,
        vec![opened.clone(), resolved.clone()],
        vec![
            timeline_entry(1, 0),
            timeline_entry(2, 0),
            timeline_entry(1, 1),
        ],
        vec![effect(1, OutboxKind::Notify)],
    );
    assert_eq!(commit(store, &first), Committed(1));
    assert_eq!(
        load_incidents(store),
        IncidentSnapshot {
            version: 1,
            meta: Some(first.meta.clone()),
            incidents: vec![opened.clone(), resolved.clone()],
            timeline: vec![
                timeline_entry(1, 0),
                timeline_entry(1, 1),
                timeline_entry(2, 0)
            ],
        }
    );

    // Every column of a replaced row is replaced, to a value or to NULL.
    let mitigated = IncidentRow {
        funnel: "signup".to_owned(),
        stage: "confirm".to_owned(),
        severity: IncidentSeverity::P1,
        state: IncidentState::Mitigated,
        opened_at: Timestamp::from_millis(START_MS),
        acknowledged_at: Some(Timestamp::from_millis(START_MS + 1)),
        mitigated_at: Some(Timestamp::from_millis(START_MS + 2)),
        body: r#"{"id":1,"mitigated":true}"#.to_owned(),
        ..opened
    };
    let reopened = IncidentRow {
        state: IncidentState::Triggered,
        resolved_at: None,
        ..resolved
    };
    let second = incident_commit(
        1,
        vec![mitigated.clone(), reopened.clone()],
        vec![timeline_entry(1, 2)],
        Vec::new(),
    );
    assert_eq!(commit(store, &second), Committed(2));
    assert_eq!(store.incidents_version().expect("incidents_version"), 2);
    let want_timeline_1 = vec![
        timeline_entry(1, 0),
        timeline_entry(1, 1),
        timeline_entry(1, 2),
    ];
    assert_eq!(
        load_incidents(store),
        IncidentSnapshot {
            version: 2,
            meta: Some(second.meta.clone()),
            incidents: vec![mitigated.clone(), reopened],
            timeline: [want_timeline_1.clone(), vec![timeline_entry(2, 0)]].concat(),
        }
    );
    assert_eq!(
        store.incident(1).expect("incident"),
        Some((mitigated, want_timeline_1))
    );
    assert_eq!(store.incident(3).expect("incident"), None);
}

/// A commit computed from a version that has moved on fails and writes nothing at all.
pub fn incidents_stale_version_conflicts(store: &dyn Store) {
    let (before, outbox_before) = commit_one_open_incident(store);

    let stale = |expected_version| {
        let mut changed = incident_row(1, FUNNEL, true);
        changed.body = "changed".to_owned();
        incident_commit(
            expected_version,
            vec![changed, incident_row(2, FUNNEL, false)],
            vec![timeline_entry(1, 1), timeline_entry(2, 0)],
            vec![effect(2, OutboxKind::Notify)],
        )
    };
    // (expected version, outcome).
    let cases = [
        (
            0,
            Conflict {
                expected: 0,
                found: 1,
            },
        ),
        (
            2,
            Conflict {
                expected: 2,
                found: 1,
            },
        ),
        (
            -1,
            Conflict {
                expected: -1,
                found: 1,
            },
        ),
    ];
    for (expected_version, want) in cases {
        assert_eq!(commit(store, &stale(expected_version)), want);
        assert_eq!(load_incidents(store), before, "expected {expected_version}");
        assert_eq!(
            all_outbox(store),
            outbox_before,
            "expected {expected_version}"
        );
        assert_eq!(store.incident(2).expect("incident"), None);
        assert_eq!(store.incidents_version().expect("incidents_version"), 1);
    }
    // The same step computed from the right version goes through.
    assert_eq!(commit(store, &stale(1)), Committed(2));
}

/// A load holds every open incident and the `resolved_max` resolved ones with the highest ids,
/// with their timelines and no others.
pub fn incidents_resolved_max(store: &dyn Store) {
    let open_ids = [2, 5];
    let incidents: Vec<IncidentRow> = (1..=6)
        .map(|id| incident_row(id, FUNNEL, !open_ids.contains(&id)))
        .collect();
    let timeline: Vec<TimelineRow> = (1..=6)
        .flat_map(|id| [timeline_entry(id, 0), timeline_entry(id, 1)])
        .collect();
    assert_eq!(
        commit(store, &incident_commit(0, incidents, timeline, Vec::new())),
        Committed(1)
    );
    // (resolved_max, ids loaded).
    let cases: &[(usize, &[i64])] = &[
        (0, &[2, 5]),
        (1, &[2, 5, 6]),
        (2, &[2, 4, 5, 6]),
        (4, &[1, 2, 3, 4, 5, 6]),
        (100, &[1, 2, 3, 4, 5, 6]),
    ];
    for (resolved_max, want_ids) in cases {
        let snapshot = store.load_incidents(*resolved_max).expect("load_incidents");
        let ids: Vec<i64> = snapshot.incidents.iter().map(|i| i.id).collect();
        assert_eq!(ids, *want_ids, "resolved_max {resolved_max}");
        let want_timeline: Vec<TimelineRow> = want_ids
            .iter()
            .flat_map(|id| [timeline_entry(*id, 0), timeline_entry(*id, 1)])
            .collect();
        assert_eq!(
            snapshot.timeline, want_timeline,
            "resolved_max {resolved_max}"
        );
        assert_eq!(snapshot.version, 1);
    }
}

/// Lists filter on open or resolved, funnel and id, newest first, and page without gaps;
/// the response-time report reads resolved incidents by when they opened.
pub fn incidents_list(store: &dyn Store) {
    // Ids 1..=8; even ids are open; ids 1, 2, 5, 6 are of the signup funnel.
    let signup = [1, 2, 5, 6];
    let incidents: Vec<IncidentRow> = (1..=8)
        .map(|id| {
            let funnel = if signup.contains(&id) {
                "signup"
            } else {
                FUNNEL
            };
            incident_row(id, funnel, id % 2 == 1)
        })
        .collect();
    assert_eq!(
        commit(
            store,
            &incident_commit(0, incidents, Vec::new(), Vec::new())
        ),
        Committed(1)
    );
    let list = |open, funnel: Option<&str>, before_id, limit| {
        let query = IncidentQuery {
            open,
            funnel: funnel.map(str::to_owned),
            before_id,
            limit,
        };
        let listed = store.list_incidents(&query).expect("list_incidents");
        listed.iter().map(|i| i.id).collect::<Vec<i64>>()
    };
    /// (open, funnel, before id, limit, ids).
    type Case<'a> = (Option<bool>, Option<&'a str>, Option<i64>, usize, &'a [i64]);
    let cases: &[Case] = &[
        (None, None, None, 100, &[8, 7, 6, 5, 4, 3, 2, 1]),
        (None, None, None, 3, &[8, 7, 6]),
        (None, None, None, 0, &[]),
        (Some(true), None, None, 100, &[8, 6, 4, 2]),
        (Some(false), None, None, 100, &[7, 5, 3, 1]),
        (None, Some("signup"), None, 100, &[6, 5, 2, 1]),
        (Some(true), Some("signup"), None, 100, &[6, 2]),
        (Some(false), Some(FUNNEL), None, 100, &[7, 3]),
        (None, Some("nope"), None, 100, &[]),
        (None, None, Some(5), 100, &[4, 3, 2, 1]),
        (Some(true), None, Some(6), 1, &[4]),
        (Some(false), Some("signup"), Some(5), 100, &[1]),
        (None, None, Some(1), 100, &[]),
    ];
    for (open, funnel, before_id, limit, want) in cases {
        assert_eq!(
            list(*open, *funnel, *before_id, *limit),
            *want,
            "open {open:?}, funnel {funnel:?}, before {before_id:?}, limit {limit}"
        );
    }
    // Paging three at a time visits every incident once.
    let mut paged = Vec::new();
    let mut before_id = None;
    loop {
        let page = list(None, None, before_id, 3);
        let Some(last) = page.last() else { break };
        before_id = Some(*last);
        paged.extend(page);
    }
    assert_eq!(paged, [8, 7, 6, 5, 4, 3, 2, 1]);

    // Incident `id` opened `id` minutes after the start. (from, to, ids), in minutes.
    let resolved_cases: &[(i64, i64, &[i64])] = &[
        (0, 100, &[1, 3, 5, 7]),
        (3, 7, &[3, 5]),
        (3, 8, &[3, 5, 7]),
        (4, 5, &[]),
        (9, 100, &[]),
    ];
    for (from, to, want) in resolved_cases {
        let at = |offset: i64| Timestamp::from_millis(START_MS + offset * MS_PER_MINUTE);
        let resolved = store
            .resolved_incidents(at(*from), at(*to))
            .expect("resolved_incidents");
        let ids: Vec<i64> = resolved.iter().map(|i| i.id).collect();
        assert_eq!(ids, *want, "opened in minutes [{from}, {to})");
    }
}

/// An `(incident, seq)` stored already, or twice in one commit, fails the whole commit: no
/// incident, entry, effect or version of it is kept.
pub fn incidents_duplicate_timeline_entry_fails(store: &dyn Store) {
    let (before, outbox_before) = commit_one_open_incident(store);

    let step = |timeline| {
        incident_commit(
            1,
            vec![
                incident_row(1, FUNNEL, true),
                incident_row(2, FUNNEL, false),
            ],
            timeline,
            vec![effect(2, OutboxKind::Notify)],
        )
    };
    let cases = [
        (
            "stored already",
            vec![timeline_entry(2, 0), timeline_entry(1, 0)],
        ),
        (
            "twice in the commit",
            vec![timeline_entry(2, 0), timeline_entry(2, 0)],
        ),
    ];
    for (what, timeline) in cases {
        let outcome = commit(store, &step(timeline));
        assert!(matches!(outcome, Failed(_)), "{what}: {outcome:?}");
        assert_eq!(load_incidents(store), before, "{what}");
        assert_eq!(all_outbox(store), outbox_before, "{what}");
    }
    let good = step(vec![timeline_entry(1, 1), timeline_entry(2, 0)]);
    assert_eq!(commit(store, &good), Committed(2));
}

/// Outbox ids increase across commits in the order of the effects, and `outbox` pages by them.
pub fn incidents_outbox(store: &dyn Store) {
    // Effects per commit; the second commits none.
    let steps = [
        vec![effect(1, OutboxKind::Notify), effect(2, OutboxKind::Notify)],
        vec![],
        vec![
            effect(1, OutboxKind::SlaBreached),
            effect(3, OutboxKind::Notify),
            effect(2, OutboxKind::SlaBreached),
        ],
    ];
    for (version, outbox) in (0..).zip(&steps) {
        let step = incident_commit(version, Vec::new(), Vec::new(), outbox.clone());
        assert_eq!(commit(store, &step), Committed(version + 1));
    }
    let stored = all_outbox(store);
    let without_ids: Vec<OutboxRow> = stored
        .iter()
        .map(|row| OutboxRow {
            id: 0,
            ..row.clone()
        })
        .collect();
    assert_eq!(without_ids, steps.concat());
    assert!(
        stored.windows(2).all(|pair| pair[0].id < pair[1].id),
        "ids {:?}",
        stored.iter().map(|row| row.id).collect::<Vec<_>>()
    );

    // Paging two at a time from the start visits every row once, in order.
    let mut paged = Vec::new();
    let mut after_id = 0;
    loop {
        let page = store.outbox(after_id, 2).expect("outbox");
        assert!(page.len() <= 2);
        let Some(last) = page.last() else { break };
        after_id = last.id;
        paged.extend(page);
    }
    assert_eq!(paged, stored);
    assert_eq!(
        store.outbox(stored[2].id, 1).expect("outbox"),
        [stored[3].clone()]
    );
    assert_eq!(store.outbox(stored[4].id, 10).expect("outbox"), []);
}

/// The incident state, the outbox ids and the changes outlive the store: a reopened one loads
/// what was committed and goes on from its version. `open` opens the same database each time.
pub fn incidents_survive_reopen(open: &dyn Fn(&Config) -> Box<dyn Store>) {
    let config = config();
    let (before, outbox_before) = {
        let store = open(&config);
        let first = incident_commit(
            0,
            vec![
                incident_row(1, FUNNEL, false),
                incident_row(2, FUNNEL, true),
            ],
            vec![timeline_entry(1, 0), timeline_entry(2, 0)],
            vec![effect(1, OutboxKind::Notify)],
        );
        assert_eq!(commit(&*store, &first), Committed(1));
        store
            .insert_change(&change(1, Some("deploy-1")))
            .expect("insert_change");
        (load_incidents(&*store), all_outbox(&*store))
    };
    let store = open(&config);
    assert_eq!(load_incidents(&*store), before);
    assert_eq!(all_outbox(&*store), outbox_before);
    let (_, is_new) = store
        .insert_change(&change(1, Some("deploy-1")))
        .expect("insert_change");
    assert!(!is_new, "the external id is remembered");

    let next = incident_commit(
        1,
        vec![incident_row(1, FUNNEL, true)],
        vec![timeline_entry(1, 1)],
        vec![effect(1, OutboxKind::Notify)],
    );
    assert_eq!(commit(&*store, &next), Committed(2));
    let outbox = all_outbox(&*store);
    assert_eq!(outbox.len(), 2);
    assert!(
        outbox[1].id > outbox[0].id,
        "ids {} {}",
        outbox[0].id,
        outbox[1].id
    );
}

/// A change at `minute` minutes after the start.
fn change(minute: i64, external_id: Option<&str>) -> ChangeRow {
    ChangeRow {
        id: 0,
        at: Timestamp::from_millis(START_MS + minute * MS_PER_MINUTE),
        kind: ChangeKind::Deploy,
        summary: format!("deploy at minute {minute}"),
        detail: String::new(),
        funnel: None,
        stage: None,
        segment: None,
        author: "ci".to_owned(),
        external_id: external_id.map(str::to_owned),
        recorded_at: Timestamp::from_millis(START_MS + minute * MS_PER_MINUTE + 5),
    }
}

/// A change is stored once per external id, as often as it is sent without one, and read back
/// by when it took effect, newest first.
pub fn changes(store: &dyn Store) {
    let insert = |change: &ChangeRow| store.insert_change(change).expect("insert_change");

    let targeted = ChangeRow {
        kind: ChangeKind::ExperimentStart,
        detail: "variant b gets the new button".to_owned(),
        funnel: Some(FUNNEL.to_owned()),
        stage: Some("payment".to_owned()),
        segment: Some(("variant".to_owned(), "b".to_owned())),
        ..change(2, Some("exp-7"))
    };
    let (stored_targeted, is_new) = insert(&targeted);
    assert!(is_new);
    assert_eq!(
        stored_targeted,
        ChangeRow {
            id: stored_targeted.id,
            ..targeted.clone()
        }
    );

    // Sent again, even with other contents: the first row, and nothing stored.
    let retried = ChangeRow {
        summary: "something else".to_owned(),
        ..change(9, Some("exp-7"))
    };
    assert_eq!(insert(&retried), (stored_targeted.clone(), false));
    assert_eq!(insert(&targeted), (stored_targeted.clone(), false));

    // Without an external id, every insert is new.
    let (anonymous_a, is_new_a) = insert(&change(2, None));
    let (anonymous_b, is_new_b) = insert(&change(2, None));
    assert!(is_new_a && is_new_b);
    assert_ne!(anonymous_a.id, anonymous_b.id);

    let (at_0, _) = insert(&change(0, Some("deploy-0")));
    let (at_5, _) = insert(&change(5, Some("deploy-5")));
    let ids = |from: i64, to: i64, limit: usize| {
        let at = |offset: i64| Timestamp::from_millis(START_MS + offset * MS_PER_MINUTE);
        store
            .changes(at(from), at(to), limit)
            .expect("changes")
            .iter()
            .map(|c| c.id)
            .collect::<Vec<i64>>()
    };
    // Three changes at minute 2: by id, newest first.
    let mut at_2 = [stored_targeted.id, anonymous_a.id, anonymous_b.id];
    at_2.sort_unstable_by(|a, b| b.cmp(a));
    // (from, to, limit, ids), in minutes.
    let cases: Vec<(i64, i64, usize, Vec<i64>)> = vec![
        (
            0,
            10,
            100,
            [vec![at_5.id], at_2.to_vec(), vec![at_0.id]].concat(),
        ),
        (0, 10, 2, vec![at_5.id, at_2[0]]),
        (0, 5, 100, [at_2.to_vec(), vec![at_0.id]].concat()),
        (2, 3, 100, at_2.to_vec()),
        (3, 5, 100, vec![]),
        (5, 6, 100, vec![at_5.id]),
        (0, 10, 0, vec![]),
    ];
    for (from, to, limit, want) in cases {
        assert_eq!(ids(from, to, limit), want, "[{from}, {to}) limit {limit}");
    }
    let read_back = store
        .changes(
            Timestamp::from_millis(START_MS),
            Timestamp::from_millis(START_MS + 10 * MS_PER_MINUTE),
            100,
        )
        .expect("changes");
    assert!(read_back.contains(&stored_targeted), "{read_back:?}");
}

/// Two nodes committing steps from the same version at once: in every round exactly one wins,
/// and the other gets a conflict and writes nothing.
pub fn two_nodes_commit_incidents_once(a: &dyn Store, b: &dyn Store) {
    const N_ROUNDS: i64 = 20;
    let barrier = Barrier::new(2);
    // Each node's step of round `r` writes incident `r` under its own name.
    let run = |store: &dyn Store, node: &str| {
        (0..N_ROUNDS)
            .map(|round| {
                let mut incident = incident_row(round, FUNNEL, false);
                incident.body = node.to_owned();
                let mut entry = timeline_entry(round, 0);
                entry.actor = node.to_owned();
                let step = incident_commit(
                    round,
                    vec![incident],
                    vec![entry],
                    // The outbox has no kind per node: the body says which node wrote it.
                    vec![OutboxRow {
                        body: node.to_owned(),
                        ..effect(round, OutboxKind::Notify)
                    }],
                );
                barrier.wait();
                let outcome = commit(store, &step);
                // Neither node starts the next round before both have finished this one.
                barrier.wait();
                outcome
            })
            .collect::<Vec<CommitOutcome>>()
    };
    let (outcomes_a, outcomes_b) = std::thread::scope(|scope| {
        let node_a = scope.spawn(|| run(a, "a"));
        let node_b = scope.spawn(|| run(b, "b"));
        (
            node_a.join().expect("node a"),
            node_b.join().expect("node b"),
        )
    });

    let mut winners = Vec::new();
    for (round, (outcome_a, outcome_b)) in (0..).zip(outcomes_a.iter().zip(&outcomes_b)) {
        let won = Committed(round + 1);
        let lost = Conflict {
            expected: round,
            found: round + 1,
        };
        let winner = match (outcome_a, outcome_b) {
            (a, b) if *a == won && *b == lost => "a",
            (a, b) if *a == lost && *b == won => "b",
            _ => panic!("round {round}: {outcome_a:?} and {outcome_b:?}"),
        };
        winners.push(winner);
    }
    let snapshot = load_incidents(a);
    assert_eq!(snapshot.version, N_ROUNDS);
    let bodies: Vec<&str> = snapshot.incidents.iter().map(|i| i.body.as_str()).collect();
    assert_eq!(
        bodies, winners,
        "each incident as its round's winner wrote it"
    );
    let actors: Vec<&str> = snapshot.timeline.iter().map(|e| e.actor.as_str()).collect();
    assert_eq!(actors, winners);
    let effects: Vec<String> = all_outbox(b).into_iter().map(|row| row.body).collect();
    assert_eq!(effects, winners);
}
