//! The checks of the ingest problem log and the ignored names, for every backend: order and
//! pages, the bounds, a group of problems alone, counting only new messages, and reopening.

use revloop_core::funnel::CallKind;
use revloop_core::{Config, Timestamp};
use revloop_store::{
    IGNORED_NAMES_MAX, IgnoredNamesPage, IngestGroup, IngestItem, PROBLEM_LOG_ENTRIES_MAX,
    PROBLEM_PAGE_MAX, ProblemOutcome, ProblemPage, ProblemQuery, ProblemRow, Store,
};

const START_MS: i64 = 1_795_737_600_000;

fn problem(n: usize, outcome: ProblemOutcome, code: &str) -> ProblemRow {
    ProblemRow {
        id: 0,
        at: Timestamp::from_millis(START_MS + n as i64),
        key_name: "web".to_owned(),
        outcome,
        code: code.to_owned(),
        field: n.is_multiple_of(2).then(|| "timestamp".to_owned()),
        message: format!("problem {n}"),
        body: format!("{{\"n\":{n}}}"),
        body_cut: n.is_multiple_of(3),
    }
}

fn ignored(key: i64, kind: CallKind, name: &str) -> IngestItem {
    IngestItem {
        dedup_key: key,
        cells: Vec::new(),
        late: false,
        ignored_name: Some((kind, name.to_owned())),
        count_body: None,
    }
}

fn commit(store: &dyn Store, now_ms: i64, items: Vec<IngestItem>, problems: Vec<ProblemRow>) {
    store
        .commit_ingest(&IngestGroup {
            now: Timestamp::from_millis(now_ms),
            items,
            problems,
        })
        .expect("commit the group");
}

fn page(store: &dyn Store, query: ProblemQuery) -> ProblemPage {
    store.problem_log(&query).expect("read the problem log")
}

fn newest(limit: usize) -> ProblemQuery {
    ProblemQuery {
        before_id: None,
        code: None,
        outcome: None,
        limit,
    }
}

fn messages(page: &ProblemPage) -> Vec<&str> {
    page.rows.iter().map(|row| row.message.as_str()).collect()
}

fn ignored_names(store: &dyn Store, limit: usize) -> IgnoredNamesPage {
    store.ignored_names(limit).expect("read the ignored names")
}

fn names(page: &IgnoredNamesPage) -> Vec<(CallKind, &str, u64)> {
    page.names
        .iter()
        .map(|row| (row.kind, row.name.as_str(), row.n_messages))
        .collect()
}

pub fn problem_log_order_and_pages(store: &dyn Store) {
    use ProblemOutcome::{Notice, Rejected};
    let first = vec![
        problem(0, Rejected, "timestamp_out_of_range"),
        problem(1, Notice, "value_cut"),
        problem(2, Rejected, "invalid_json"),
    ];
    commit(store, START_MS, Vec::new(), first.clone());
    commit(
        store,
        START_MS + 1,
        Vec::new(),
        vec![problem(3, Rejected, "timestamp_out_of_range")],
    );

    let all = page(store, newest(PROBLEM_PAGE_MAX));
    assert_eq!(
        messages(&all),
        ["problem 3", "problem 2", "problem 1", "problem 0"]
    );
    assert_eq!((all.n_held, all.n_dropped), (4, 0));
    assert!(
        all.rows.windows(2).all(|w| w[0].id > w[1].id),
        "newest first"
    );
    // Every column round-trips.
    let stored: Vec<ProblemRow> = all.rows[1..]
        .iter()
        .rev()
        .map(|row| ProblemRow {
            id: 0,
            ..row.clone()
        })
        .collect();
    assert_eq!(stored, first);

    let top = page(store, newest(2));
    assert_eq!(messages(&top), ["problem 3", "problem 2"]);
    let next = page(
        store,
        ProblemQuery {
            before_id: Some(top.rows[1].id),
            ..newest(2)
        },
    );
    assert_eq!(messages(&next), ["problem 1", "problem 0"]);
    let by_code = page(
        store,
        ProblemQuery {
            code: Some("timestamp_out_of_range".to_owned()),
            ..newest(10)
        },
    );
    assert_eq!(messages(&by_code), ["problem 3", "problem 0"]);
    assert_eq!(by_code.n_held, 4, "n_held ignores the filters");
    let notices = page(
        store,
        ProblemQuery {
            outcome: Some(Notice),
            ..newest(10)
        },
    );
    assert_eq!(messages(&notices), ["problem 1"]);
}

pub fn problem_log_keeps_the_newest(store: &dyn Store) {
    let n_first = PROBLEM_LOG_ENTRIES_MAX - 2;
    let batch = |from: usize, n: usize| -> Vec<ProblemRow> {
        (from..from + n)
            .map(|n| problem(n, ProblemOutcome::Rejected, "invalid_json"))
            .collect()
    };
    commit(store, START_MS, Vec::new(), batch(0, n_first));
    commit(store, START_MS + 1, Vec::new(), batch(n_first, 7));
    let log = page(store, newest(3));
    assert_eq!(
        (log.n_held, log.n_dropped),
        (PROBLEM_LOG_ENTRIES_MAX as u64, 5)
    );
    let last = n_first + 6;
    assert_eq!(
        messages(&log),
        [last, last - 1, last - 2].map(|n| format!("problem {n}"))
    );
    let oldest = page(
        store,
        ProblemQuery {
            before_id: Some(log.rows[0].id - PROBLEM_LOG_ENTRIES_MAX as i64 + 2),
            ..newest(5)
        },
    );
    assert_eq!(
        messages(&oldest),
        ["problem 5"],
        "entries 0 to 4 were dropped"
    );

    // A group with more problems than the log holds keeps its newest.
    commit(
        store,
        START_MS + 2,
        Vec::new(),
        batch(20_000, PROBLEM_LOG_ENTRIES_MAX + 3),
    );
    let log = page(store, newest(1));
    assert_eq!(log.n_held, PROBLEM_LOG_ENTRIES_MAX as u64);
    assert_eq!(log.n_dropped, 5 + 3 + PROBLEM_LOG_ENTRIES_MAX as u64);
    let last = 20_000 + PROBLEM_LOG_ENTRIES_MAX + 2;
    assert_eq!(messages(&log), [format!("problem {last}")]);
}

pub fn problem_log_without_items(store: &dyn Store) {
    let receipt = store
        .commit_ingest(&IngestGroup {
            now: Timestamp::from_millis(START_MS),
            items: Vec::new(),
            problems: vec![problem(0, ProblemOutcome::Rejected, "invalid_json")],
        })
        .expect("a group of problems alone commits");
    assert!(receipt.is_new.is_empty());
    assert_eq!(messages(&page(store, newest(10))), ["problem 0"]);
}

pub fn ignored_names_count_only_new(store: &dyn Store) {
    use CallKind::{Page, Track};
    assert_eq!(ignored_names(store, 10), IgnoredNamesPage::default());
    // Key 1 twice in one group: the second is a duplicate.
    commit(
        store,
        START_MS,
        vec![
            ignored(1, Track, "Odrer Completed"),
            ignored(2, Track, "Odrer Completed"),
            ignored(1, Track, "Odrer Completed"),
        ],
        Vec::new(),
    );
    // Key 2 again, from an earlier group: a duplicate too.
    commit(
        store,
        START_MS + 60_000,
        vec![
            ignored(2, Track, "Odrer Completed"),
            ignored(3, Track, "Odrer Completed"),
            ignored(4, Page, "Home"),
            ignored(5, Track, "Home"),
        ],
        Vec::new(),
    );
    let page = ignored_names(store, 10);
    assert_eq!(
        names(&page),
        [
            (Track, "Odrer Completed", 3),
            (Page, "Home", 1),
            (Track, "Home", 1)
        ]
    );
    assert_eq!(page.n_unlisted, 0);
    let odrer = &page.names[0];
    assert_eq!(odrer.first_seen, Timestamp::from_millis(START_MS));
    assert_eq!(odrer.last_seen, Timestamp::from_millis(START_MS + 60_000));
    assert_eq!(
        names(&ignored_names(store, 1)),
        [(Track, "Odrer Completed", 3)]
    );
}

pub fn ignored_names_are_bounded(store: &dyn Store) {
    let items = (0..IGNORED_NAMES_MAX as i64 + 3)
        .map(|i| ignored(i, CallKind::Track, &format!("name {i:05}")))
        .collect();
    commit(store, START_MS, items, Vec::new());
    let page = ignored_names(store, IGNORED_NAMES_MAX);
    assert_eq!(page.names.len(), IGNORED_NAMES_MAX);
    assert_eq!(page.n_unlisted, 3);
    // The names kept are the first in key order; a kept name still counts, another does not.
    let last_kept = format!("name {:05}", IGNORED_NAMES_MAX - 1);
    commit(
        store,
        START_MS + 1,
        vec![
            ignored(100_000, CallKind::Track, &last_kept),
            ignored(100_001, CallKind::Track, "one more"),
        ],
        Vec::new(),
    );
    let page = ignored_names(store, 1);
    assert_eq!(names(&page), [(CallKind::Track, last_kept.as_str(), 2)]);
    assert_eq!(page.n_unlisted, 4);
}

pub fn problem_log_survives_reopen(open: &dyn Fn(&Config) -> Box<dyn Store>) {
    let config = super::config();
    {
        let store = open(&config);
        commit(
            &*store,
            START_MS,
            vec![ignored(1, CallKind::Track, "Odrer Completed")],
            vec![problem(0, ProblemOutcome::Rejected, "invalid_json")],
        );
    }
    let store = open(&config);
    assert_eq!(messages(&page(&*store, newest(10))), ["problem 0"]);
    assert_eq!(
        names(&ignored_names(&*store, 10)),
        [(CallKind::Track, "Odrer Completed", 1)]
    );
    // Ids go on increasing after the reopen.
    commit(
        &*store,
        START_MS + 1,
        Vec::new(),
        vec![problem(1, ProblemOutcome::Notice, "value_cut")],
    );
    let log = page(&*store, newest(10));
    assert_eq!(messages(&log), ["problem 1", "problem 0"]);
}

/// Two nodes log problems and ignored names at once: nothing fails or deadlocks, every entry
/// is kept once, and each node's entries keep their order.
pub fn two_nodes_log_problems(a: &dyn Store, b: &dyn Store) {
    const N_GROUPS: usize = 40;
    let barrier = std::sync::Barrier::new(2);
    std::thread::scope(|scope| {
        for (node, store) in [("a", a), ("b", b)] {
            let barrier = &barrier;
            scope.spawn(move || {
                barrier.wait();
                for n in 0..N_GROUPS {
                    let mut row = problem(n, ProblemOutcome::Rejected, "invalid_json");
                    row.key_name = node.to_owned();
                    let key = if node == "a" { n } else { 1_000 + n } as i64;
                    commit(
                        store,
                        START_MS + n as i64,
                        vec![ignored(key, CallKind::Track, "Odrer Completed")],
                        vec![row],
                    );
                }
            });
        }
    });
    let log = page(a, newest(PROBLEM_PAGE_MAX));
    assert_eq!(log.n_held, 2 * N_GROUPS as u64);
    for node in ["a", "b"] {
        let mine: Vec<&str> = log
            .rows
            .iter()
            .filter(|row| row.key_name == node)
            .map(|row| row.message.as_str())
            .collect();
        let want: Vec<String> = (0..N_GROUPS)
            .rev()
            .map(|n| format!("problem {n}"))
            .collect();
        assert_eq!(mine, want, "node {node}");
    }
    assert_eq!(
        names(&ignored_names(b, 10)),
        [(CallKind::Track, "Odrer Completed", 2 * N_GROUPS as u64)]
    );
}
