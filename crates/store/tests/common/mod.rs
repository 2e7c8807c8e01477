//! The checks every [`Store`] must pass, whatever database is behind it. They take the store
//! (or a way to open it) and know nothing of SQL: each backend's test file opens a fresh,
//! private database per test, with [`config`], and calls one check.
//!
//! The `two_nodes_*` checks are for stores that several nodes share; they take two stores
//! opened on the same database.

// Each backend's test binary compiles this module and calls the checks that apply to it.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Barrier;

use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestCaseError, TestRunner};

use revloop_core::funnel::{DimensionValues, StageHit, VALUE_NONE, VALUE_OTHER};
use revloop_core::ingest::{Cell, StageCount};
use revloop_core::metrics::{MinuteCount, rollup};
use revloop_core::time::{MS_PER_MINUTE, Minute};
use revloop_core::{Config, DurationMs, Timestamp};
use revloop_store::{
    CountsQuery, IngestGroup, IngestItem, LateCount, Role, SegmentMinuteCount, Store, StoreError,
    TokenRecord,
};

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
    Timestamp(START_MS).minute()
}

fn minute(offset: i64) -> Minute {
    Minute(start_minute().0 + offset)
}

/// One message counted once at `stage` of the checkout funnel.
fn message(key: i64, stage: usize, minute: Minute, device: &str) -> IngestItem {
    IngestItem {
        dedup_key: key,
        cells: vec![cell(stage, minute, [device, VALUE_NONE, VALUE_NONE], 1)],
        late: false,
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
        now: Timestamp(now_ms),
        items,
    }
}

fn counts(
    store: &dyn Store,
    from: Minute,
    to: Minute,
    filter: &[(&str, &str)],
) -> Vec<MinuteCount> {
    let query = CountsQuery {
        funnel: FUNNEL.to_owned(),
        from,
        to,
        filter: filter
            .iter()
            .map(|(d, v)| ((*d).to_owned(), (*v).to_owned()))
            .collect(),
    };
    store.minute_counts(&query).expect("minute_counts")
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
        .late_counts(FUNNEL, minute(100), minute(300))
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
    let to = Minute(from.0 + STREAM_MINUTES);
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
                let (cell, mut count) = cell(
                    *stage,
                    Minute(from.0 + item.minute_offset),
                    values,
                    *n_events,
                );
                if *stage == N_STAGES - 1 {
                    count.revenue_minor = *revenue_minor;
                    count.n_revenue_events = 1;
                }
                (cell, count)
            })
            .collect(),
        late: item.late,
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
    let mut want_late: BTreeMap<(Minute, usize), i64> = BTreeMap::new();
    for (item, _) in stream.items.iter().zip(&first).filter(|(_, f)| **f) {
        for (cell, count) in item_of(item).cells {
            let at = (cell.minute, cell.hit.stage);
            if item.late {
                *want_late.entry(at).or_default() += count.n_events;
                continue;
            }
            let matches = [
                true,
                DEVICES[item.device] == device,
                DEVICES[item.device] == device && COUNTRIES[item.country] == country,
            ];
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
    let mut got_late = store.late_counts(FUNNEL, from, to).expect("late_counts");
    // The trait promises no order for late counts.
    got_late.sort_by_key(|l| (l.minute, l.stage));
    let want_late: Vec<LateCount> = want_late
        .into_iter()
        .map(|((minute, stage), n_events)| LateCount {
            stage,
            minute,
            n_events,
        })
        .collect();
    prop_assert_eq!(got_late, want_late);
    Ok(())
}

/// Values past a dimension's cap fold into "other"; which values were admitted survives a
/// reopen, so a value folds the same way before and after. `open` opens the same database each
/// time.
pub fn folding_is_stable_across_reopen(open: &dyn Fn(&Config) -> Box<dyn Store>) {
    let mut config = config();
    config.dimensions[0].values_max = 3;
    let device = |store: &dyn Store, at: Minute, value: &str| {
        n_events(&counts(store, at, Minute(at.0 + 1), &[("device", value)]))
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
        Minute(after.0 + 1),
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
                let (cell, mut count) =
                    cell(*stage, minute(*at), [device, country, "x"], *n_events);
                if *stage == N_STAGES - 1 {
                    count.revenue_minor = 1_500 * n_events;
                    count.n_revenue_events = *n_events;
                }
                (cell, count)
            })
            .collect(),
        late: false,
    }
}

/// An expected row of `segment_minute_counts`; the last stage carries 15.00 per event.
fn segment_row(
    at: i64,
    segment: Option<(&str, &str)>,
    stage: usize,
    n_events: i64,
) -> SegmentMinuteCount {
    let revenue = stage == N_STAGES - 1;
    SegmentMinuteCount {
        segment: segment.map(|(d, v)| (d.to_owned(), v.to_owned())),
        stage,
        minute: minute(at),
        count: StageCount {
            n_events,
            revenue_minor: if revenue { 1_500 * n_events } else { 0 },
            n_revenue_events: if revenue { n_events } else { 0 },
        },
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
                count: row.count,
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
    let created = Timestamp(START_MS);
    let revoked = Timestamp(START_MS + 60_000);
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
            DurationMs(at)
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
        .map(|c| (c.minute.0 - start_minute().0, c.count.n_events))
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
