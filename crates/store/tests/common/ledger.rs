//! The ledger checks every backend runs: posting, idempotence by id and body, reversal once,
//! all-or-nothing calls, the reads (entries by incident and page, trial balance, statements
//! with running balance), and two nodes posting one id at once.

use std::sync::Barrier;

use revloop_core::Timestamp;
use revloop_core::ledger::{
    Account, AccountType, Balance, Chart, EntryLink, JournalEntry, LedgerError, Line, Side,
};
use revloop_core::money::Currency;
use revloop_store::{LedgerQuery, PostOutcome, StatementQuery, Store, StoreError};

const T0: i64 = 1_795_773_600_000;

/// A chart of its own (not the runbook's), so that the store's checks do not depend on the
/// seed: the loss expense, the accrued liability, and a closed account.
pub fn chart() -> Chart {
    let account = |code, name: &str, account_type, closed| Account {
        code,
        name: name.into(),
        account_type,
        closed,
    };
    Chart {
        accounts: vec![
            account(
                2100,
                "Accrued loss estimates",
                AccountType::Liability,
                false,
            ),
            account(4900, "Recovered revenue", AccountType::Revenue, false),
            account(6200, "Lost Revenue Expense", AccountType::Expense, false),
            account(6900, "Retired expense", AccountType::Expense, true),
        ],
        booking: Default::default(),
    }
}

fn usd() -> Currency {
    Currency::parse("USD").unwrap()
}

fn line(account: u16, side: Side, amount_minor: i64) -> Line {
    Line {
        account,
        account_type: None,
        side,
        amount_minor,
        currency: usd(),
        memo: None,
    }
}

/// A loss estimate of `amount_minor`: debit 6200, credit 2100.
pub fn estimate(id: &str, incident: i64, amount_minor: i64) -> JournalEntry {
    JournalEntry {
        id: id.into(),
        description: format!("Revenue loss - payment anomaly (incident {incident})"),
        effective_at: Timestamp::from_millis(T0),
        lines: vec![
            line(6200, Side::Debit, amount_minor),
            line(2100, Side::Credit, amount_minor),
        ],
        link: EntryLink {
            incident: Some(incident),
            inputs_json: Some(format!("{{\"loss_minor\":{amount_minor}}}")),
        },
        reverses: None,
    }
}

/// The reversal of `entry`, built here by hand (swapped sides), so that the store's checks
/// do not lean on the core's `reversal_of`.
pub fn reversal(entry: &JournalEntry, id: &str) -> JournalEntry {
    let swap = |side| match side {
        Side::Debit => Side::Credit,
        Side::Credit => Side::Debit,
    };
    JournalEntry {
        id: id.into(),
        description: format!("Reversal of {}", entry.id),
        lines: entry
            .lines
            .iter()
            .map(|l| Line {
                side: swap(l.side),
                ..l.clone()
            })
            .collect(),
        reverses: Some(entry.id.clone()),
        ..entry.clone()
    }
}

fn at(minutes: i64) -> Timestamp {
    Timestamp::from_millis(T0 + minutes * 60_000)
}

fn refused(result: Result<Vec<PostOutcome>, StoreError>) -> (usize, LedgerError) {
    match result {
        Err(StoreError::Ledger { index, error }) => (index, error),
        other => panic!("expected a ledger refusal, got {other:?}"),
    }
}

fn balances(store: &dyn Store) -> Vec<Balance> {
    store.trial_balance().expect("trial balance")
}

fn all_entries(store: &dyn Store) -> Vec<String> {
    let query = LedgerQuery {
        incident: None,
        after_seq: 0,
        limit: 1_000,
    };
    let rows = store.ledger_entries(&query).expect("entries");
    rows.into_iter().map(|row| row.recorded.entry.id).collect()
}

pub fn ledger_posts_once_per_id(store: &dyn Store) {
    let chart = chart();
    let first = estimate("inc-1-est-1", 1, 12_345);
    let outcomes = store
        .post_ledger_entries(&chart, std::slice::from_ref(&first), at(0))
        .expect("post");
    assert!(outcomes[0].is_new());
    assert_eq!(outcomes[0].row().seq, 1);
    assert_eq!(outcomes[0].row().recorded.entry, first);
    // A retry, later: the stored entry, with its first recorded time, and nothing written.
    let again = store
        .post_ledger_entries(&chart, std::slice::from_ref(&first), at(5))
        .expect("retry");
    assert_eq!(again[0], PostOutcome::Existing(outcomes[0].row().clone()));
    assert_eq!(again[0].row().recorded.recorded_at, at(0));
    // The same id with another body is refused, and changes nothing.
    let before = balances(store);
    let changed = estimate("inc-1-est-1", 1, 12_346);
    let (index, error) = refused(store.post_ledger_entries(&chart, &[changed], at(6)));
    assert_eq!(
        (index, error),
        (0, LedgerError::IdConflict("inc-1-est-1".into()))
    );
    assert_eq!(balances(store), before);
    assert_eq!(
        before,
        [
            Balance {
                account: 2100,
                currency: usd(),
                debits: 0,
                credits: 12_345
            },
            Balance {
                account: 6200,
                currency: usd(),
                debits: 12_345,
                credits: 0
            },
        ]
    );
    let stored = store
        .ledger_entry("inc-1-est-1")
        .expect("read")
        .expect("stored");
    assert_eq!(stored.recorded.entry, first);
    assert_eq!(store.ledger_entry("nope").expect("read"), None);
}

/// Every refusal names its entry and error and writes nothing of its call, not even the
/// valid entries before it.
pub fn ledger_refusals_write_nothing(store: &dyn Store) {
    let chart = chart();
    let base = estimate("base", 1, 1_000);
    store
        .post_ledger_entries(&chart, std::slice::from_ref(&base), at(0))
        .expect("post");
    store
        .post_ledger_entries(&chart, &[reversal(&base, "base-rev")], at(1))
        .expect("reverse");
    let before = balances(store);
    let ok = estimate("fine", 2, 500);
    let mut unbalanced = estimate("unbalanced", 2, 500);
    unbalanced.lines[1].amount_minor = 499;
    let mut closed = estimate("closed", 2, 500);
    closed.lines[0].account = 6900;
    let mut unknown = estimate("unknown", 2, 500);
    unknown.lines[0].account = 6300;
    let cases: Vec<(JournalEntry, LedgerError)> = vec![
        (
            unbalanced,
            LedgerError::Unbalanced {
                debits: 500,
                credits: 499,
            },
        ),
        (closed, LedgerError::ClosedAccount(6900)),
        (unknown, LedgerError::UnknownAccount(6300)),
        (
            reversal(&base, "base-rev-2"),
            LedgerError::AlreadyReversed("base".into()),
        ),
        (
            reversal(&estimate("ghost", 3, 1), "ghost-rev"),
            LedgerError::UnknownEntry("ghost".into()),
        ),
        (
            estimate("base", 1, 999),
            LedgerError::IdConflict("base".into()),
        ),
    ];
    for (entry, expected) in cases {
        let result = store.post_ledger_entries(&chart, &[ok.clone(), entry.clone()], at(2));
        assert_eq!(refused(result), (1, expected), "{}", entry.id);
        assert_eq!(balances(store), before, "{}", entry.id);
        assert_eq!(all_entries(store), ["base", "base-rev"], "{}", entry.id);
    }
    // The reversal netted the entry to zero on both accounts.
    assert!(before.iter().all(|b| b.debits == b.credits), "{before:?}");
    let base = store.ledger_entry("base").unwrap().unwrap();
    assert_eq!(base.recorded.reversed_by.as_deref(), Some("base-rev"));
}

/// A revision is a reversal plus a new entry in one call; the later entry of a call sees the
/// earlier one (reversing an entry of the same call, a repeated id).
pub fn ledger_revision_in_one_call(store: &dyn Store) {
    let chart = chart();
    let first = estimate("inc-7-est-1", 7, 1_000);
    let second = estimate("inc-7-est-2", 7, 1_500);
    let outcomes = store
        .post_ledger_entries(
            &chart,
            &[
                first.clone(),
                reversal(&first, "inc-7-rev-1"),
                second.clone(),
                second.clone(),
            ],
            at(0),
        )
        .expect("post a revision");
    let new: Vec<bool> = outcomes.iter().map(PostOutcome::is_new).collect();
    assert_eq!(new, [true, true, true, false]);
    let seqs: Vec<i64> = outcomes.iter().map(|o| o.row().seq).collect();
    assert_eq!(seqs, [1, 2, 3, 3]);
    let expense = balances(store)
        .into_iter()
        .find(|b| b.account == 6200)
        .unwrap();
    assert_eq!((expense.debits, expense.credits), (2_500, 1_000));
}

/// Reads: entries of one incident, paged; a statement with its running balance, paged.
pub fn ledger_reads_page(store: &dyn Store) {
    let chart = chart();
    for n in 0..5 {
        let incident = 1 + n % 2;
        let entry = estimate(&format!("e{n}"), incident, 100 * (n + 1));
        store
            .post_ledger_entries(&chart, &[entry], at(n))
            .expect("post");
    }
    let page = |incident, after_seq, limit| {
        store
            .ledger_entries(&LedgerQuery {
                incident,
                after_seq,
                limit,
            })
            .expect("entries")
            .into_iter()
            .map(|row| {
                (
                    row.seq,
                    row.recorded.entry.id,
                    row.recorded.entry.lines.len(),
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        page(Some(1), 0, 2),
        [(1, "e0".to_owned(), 2), (3, "e2".to_owned(), 2)]
    );
    assert_eq!(page(Some(1), 3, 2), [(5, "e4".to_owned(), 2)]);
    assert_eq!(page(Some(2), 0, 10).len(), 2);
    assert_eq!(page(None, 4, 10), [(5, "e4".to_owned(), 2)]);
    assert_eq!(page(Some(9), 0, 10), []);
    let statement = |after_seq, limit| {
        store
            .account_statement(&StatementQuery {
                account: 6200,
                after_seq,
                limit,
            })
            .expect("statement")
            .into_iter()
            .map(|line| (line.seq, line.amount_minor, line.balance_minor))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        statement(0, 3),
        [(1, 100, 100), (2, 200, 300), (3, 300, 600)]
    );
    // A later page carries the balance of everything before it.
    assert_eq!(statement(3, 10), [(4, 400, 1_000), (5, 500, 1_500)]);
    let liability = store
        .account_statement(&StatementQuery {
            account: 2100,
            after_seq: 0,
            limit: 10,
        })
        .expect("statement");
    assert_eq!(liability.last().unwrap().balance_minor, -1_500);
    assert_eq!(liability[0].side, Side::Credit);
    assert_eq!(liability[0].entry, "e0");
}

/// Two nodes posting the same entries at once book each once.
pub fn two_nodes_post_an_id_once(a: &dyn Store, b: &dyn Store) {
    const N_ENTRIES: i64 = 20;
    let chart = chart();
    let barrier = Barrier::new(2);
    let run = |store: &dyn Store| {
        let mut n_new = 0;
        for n in 0..N_ENTRIES {
            barrier.wait();
            let entry = estimate(&format!("step-{n}"), 1, 100 + n);
            let outcomes = store
                .post_ledger_entries(&chart, &[entry], at(n))
                .expect("post");
            n_new += usize::from(outcomes[0].is_new());
        }
        n_new
    };
    let (n_a, n_b) = std::thread::scope(|scope| {
        let a = scope.spawn(|| run(a));
        let b = scope.spawn(|| run(b));
        (a.join().unwrap(), b.join().unwrap())
    });
    assert_eq!(n_a + n_b, N_ENTRIES as usize);
    let ids = all_entries(a);
    assert_eq!(ids.len(), N_ENTRIES as usize);
    let expense = balances(b).into_iter().find(|b| b.account == 6200).unwrap();
    assert_eq!(
        expense.debits,
        (0..N_ENTRIES).map(|n| i128::from(100 + n)).sum()
    );
}

/// Totals past 64 bits are exact: two entries of `i64::MAX` each.
pub fn ledger_sums_do_not_overflow(store: &dyn Store) {
    let chart = chart();
    for id in ["huge-1", "huge-2"] {
        store
            .post_ledger_entries(&chart, &[estimate(id, 1, i64::MAX)], at(0))
            .expect("post");
    }
    let twice = 2 * i128::from(i64::MAX);
    let expense = balances(store)
        .into_iter()
        .find(|b| b.account == 6200)
        .unwrap();
    assert_eq!((expense.debits, expense.credits), (twice, 0));
    let liability = store
        .account_statement(&StatementQuery {
            account: 2100,
            after_seq: 0,
            limit: 10,
        })
        .expect("statement");
    let running: Vec<i128> = liability.iter().map(|l| l.balance_minor).collect();
    assert_eq!(running, [-i128::from(i64::MAX), -twice]);
}

/// One step of a random ledger history.
#[derive(Debug, Clone)]
enum Op {
    /// Post an estimate under id `n` (of a small pool, so ids repeat) for `minor`.
    Post { n: u8, minor: i64 },
    /// Reverse the entry with id `n`, under the reversal id `r` (of a small pool).
    Reverse { n: u8, r: u8 },
}

fn op_strategy() -> impl proptest::strategy::Strategy<Value = Op> {
    use proptest::prelude::*;
    prop_oneof![
        (
            0..6_u8,
            prop_oneof![Just(500_i64), Just(700), 1..1_000_000_i64]
        )
            .prop_map(|(n, minor)| Op::Post { n, minor }),
        (0..6_u8, 0..3_u8).prop_map(|(n, r)| Op::Reverse { n, r }),
    ]
}

/// Any sequence of posts, retries, conflicts and reversals, posted one call at a time: the
/// books balance after every call, a refused call changes nothing, each reversal nets its
/// entry to zero, and replaying the whole sequence changes nothing at all.
pub fn ledger_random_histories_balance(store: &dyn Store) {
    use proptest::test_runner::{Config as ProptestConfig, TestRunner};
    let chart = chart();
    let mut runner = TestRunner::new(ProptestConfig {
        cases: 24,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let case = std::cell::Cell::new(0_u32);
    let strategy = proptest::collection::vec(op_strategy(), 1..24);
    runner
        .run(&strategy, |ops| {
            // Ids of their own per case: one store serves every case.
            let prefix = format!("c{}", case.get());
            case.set(case.get() + 1);
            let id = |n: u8| format!("{prefix}-e{n}");
            let entry_of = |op: &Op, stored: &dyn Store| -> Option<JournalEntry> {
                match op {
                    Op::Post { n, minor } => Some(estimate(&id(*n), 1, *minor)),
                    Op::Reverse { n, r } => {
                        let original = stored.ledger_entry(&id(*n)).expect("read")?;
                        Some(reversal(
                            &original.recorded.entry,
                            &format!("{prefix}-r{n}-{r}"),
                        ))
                    }
                }
            };
            // The requests as sent, for the replay.
            let mut sent = Vec::new();
            for op in &ops {
                let Some(entry) = entry_of(op, store) else {
                    continue;
                };
                sent.push(entry.clone());
                let before = balances(store);
                let result = store.post_ledger_entries(&chart, &[entry], at(0));
                let after = balances(store);
                match &result {
                    Ok(_) => {}
                    Err(StoreError::Ledger { .. }) => {
                        proptest::prop_assert_eq!(&after, &before, "a refusal changed the books")
                    }
                    Err(err) => panic!("store error: {err}"),
                }
                let debits: i128 = after.iter().map(|b| b.debits).sum();
                let credits: i128 = after.iter().map(|b| b.credits).sum();
                proptest::prop_assert_eq!(debits, credits);
            }
            // An entry and its reversal net to zero: what is left on the expense account is
            // exactly the entries of this case that stand unreversed.
            let books = balances(store);
            let all = store
                .ledger_entries(&LedgerQuery {
                    incident: None,
                    after_seq: 0,
                    limit: 1_000,
                })
                .expect("entries");
            let standing: i128 = all
                .iter()
                .filter(|row| row.recorded.entry.reverses.is_none())
                .filter(|row| row.recorded.reversed_by.is_none())
                .map(|row| i128::from(row.recorded.entry.lines[0].amount_minor))
                .sum();
            let expense = books.iter().find(|b| b.account == 6200);
            let net = expense.map_or(0, |b| b.debits - b.credits);
            proptest::prop_assert_eq!(net, standing);
            // Replaying every call changes nothing: each answers as an existing entry or
            // is refused again, and the books and entries stay as they were.
            for entry in sent {
                match store.post_ledger_entries(&chart, &[entry], at(1)) {
                    Ok(outcomes) => proptest::prop_assert!(!outcomes[0].is_new()),
                    Err(StoreError::Ledger { .. }) => {}
                    Err(err) => panic!("store error: {err}"),
                }
            }
            proptest::prop_assert_eq!(balances(store), books);
            let again = store
                .ledger_entries(&LedgerQuery {
                    incident: None,
                    after_seq: 0,
                    limit: 1_000,
                })
                .expect("entries");
            proptest::prop_assert_eq!(again, all);
            Ok(())
        })
        .unwrap();
}
