//! The lifecycle in the books, on a real SQLite store: an estimate as the incident grows, a
//! revision at most every few minutes, the final figure or a false alarm's reversals at the
//! end; a second booker (another node, or a restart) books nothing twice.

use revloop_core::Config;
use revloop_core::alert::{AlertEvent, AlertEventKind, AlertKind, Direction, Severity};
use revloop_core::impact::{Aov, AovSource, ImpactMinute};
use revloop_core::incident::{Action, IncidentEngine};
use revloop_core::ledger::Chart;
use revloop_core::money::Currency;
use revloop_core::time::{DurationMs, Timestamp};
use revloop_store::{LedgerQuery, SqliteStore, Store};

use super::{BOOKED_INPUT_WINDOWS_MAX, Booker};

/// 2026-11-27T10:00:00Z.
const T0: Timestamp = Timestamp::from_millis(1_795_773_600_000);
const LOSS_2300: u16 = 2300;
const EXPENSE_6200: u16 = 6200;

fn minutes(n: i64) -> Timestamp {
    T0.saturating_add(DurationMs::from_minutes(n))
}

fn opened(id: u64, stage: &str) -> AlertEvent {
    AlertEvent {
        alert_id: id,
        funnel: "checkout".into(),
        stage: stage.into(),
        kind: AlertKind::Conversion,
        severity: Severity::P1,
        event: AlertEventKind::Opened,
        direction: Direction::Worse,
        at: T0,
        onset: T0,
        segment: None,
        baseline_rate: 0.15,
        observed_rate: 0.6,
        sigma: 9.0,
        n: 200,
        top_segments: Vec::new(),
    }
}

/// One judged minute at `at`: 100 shoppers, 40 went on where 90 would have (50 lost at the
/// step), each of whom would have ordered with chance 1/2, at 20.00 USD: 500.00 USD a minute.
fn bad_minute(at: Timestamp) -> ImpactMinute {
    ImpactMinute {
        at,
        minute: at.minute(),
        window_minutes: 1,
        shoppers: 100.0,
        went_on: 40.0,
        baseline_drop_off: 0.1,
        downstream_conversion: 0.5,
        window_sd: 0.0,
        duration_factor: 1.0,
        aov: Aov {
            minor: 2_000,
            currency: Currency::parse("USD").unwrap(),
            source: AovSource::Config,
            n_orders: 0,
        },
    }
}

struct Books {
    _dir: tempfile::TempDir,
    store: SqliteStore,
}

impl Books {
    fn new() -> Books {
        let dir = tempfile::tempdir().unwrap();
        let config = Config::parse(Config::example_toml()).unwrap();
        let store = SqliteStore::open(&dir.path().join("books.db"), &config).unwrap();
        Books { _dir: dir, store }
    }

    fn ids(&self) -> Vec<String> {
        let rows = self
            .store
            .ledger_entries(&LedgerQuery {
                incident: None,
                after_seq: 0,
                limit: 100,
            })
            .unwrap();
        rows.into_iter().map(|row| row.recorded.entry.id).collect()
    }

    /// The account's net debit, and that every currency balances.
    fn net_debit(&self, account: u16) -> i128 {
        let balances = self.store.trial_balance().unwrap();
        let total: i128 = balances.iter().map(|b| b.debits - b.credits).sum();
        assert_eq!(total, 0, "the trial balance is not zero: {balances:?}");
        balances
            .iter()
            .filter(|b| b.account == account)
            .map(|b| b.debits - b.credits)
            .sum()
    }
}

/// An engine with one open P1 on `stage`, priced `bad` minutes from T0 (minute 1 on).
fn engine_with_loss(stage: &str, bad: i64) -> (IncidentEngine, u64) {
    let config = Config::parse(Config::example_toml()).unwrap();
    let mut engine = IncidentEngine::for_config(&config);
    engine.handle_alert(T0, &opened(1, stage));
    let id = engine.incidents().next().unwrap().id;
    for minute in 1..=bad {
        engine.handle_impact(id, &bad_minute(minutes(minute)));
    }
    (engine, id)
}

fn loss_minor(engine: &IncidentEngine, id: u64) -> i64 {
    let impact = engine.incident(id).unwrap().impact.as_ref().unwrap();
    impact.figures().unwrap().loss.minor
}

#[test]
fn an_estimate_is_revised_every_few_minutes_and_finalised_once() {
    let books = Books::new();
    let chart = Chart::runbook();
    let mut booker = Booker::new(chart.clone());
    let (mut engine, id) = engine_with_loss("payment", 3);
    // Three one-minute windows of 500.00 USD.
    assert_eq!(loss_minor(&engine, id), 150_000);
    assert_eq!(booker.book(&books.store, &engine, minutes(3)).unwrap(), 1);
    assert_eq!(books.ids(), ["inc-1-est-1"]);
    assert_eq!(books.net_debit(EXPENSE_6200), 150_000);
    assert_eq!(books.net_debit(LOSS_2300), -150_000);

    // The loss grows, but a revision waits for `ESTIMATE_REVISE_EVERY`.
    engine.handle_impact(id, &bad_minute(minutes(4)));
    assert_eq!(booker.book(&books.store, &engine, minutes(4)).unwrap(), 0);
    assert_eq!(booker.book(&books.store, &engine, minutes(8)).unwrap(), 2);
    assert_eq!(books.ids(), ["inc-1-est-1", "inc-1-rev-1", "inc-1-est-2"]);
    assert_eq!(books.net_debit(LOSS_2300), -200_000);

    // Another node (or a restarted one) plans the same step a little later, from the same
    // committed incident: the same ids and bodies, so the store books nothing twice and
    // refuses nothing.
    let later = minutes(8).saturating_add(DurationMs::from_secs(30));
    assert_eq!(
        Booker::new(chart.clone())
            .book(&books.store, &engine, later)
            .unwrap(),
        0
    );

    // Resolved: the final figure, once.
    engine
        .handle_action(minutes(9), id, "ana", Action::Resolve, Some("fixed"))
        .unwrap();
    let final_loss = loss_minor(&engine, id);
    assert!(booker.book(&books.store, &engine, minutes(9)).unwrap() > 0);
    assert_eq!(books.net_debit(EXPENSE_6200), i128::from(final_loss));
    assert_eq!(books.net_debit(LOSS_2300), 0, "no estimate left standing");
    let written = books.ids().len();
    assert_eq!(booker.book(&books.store, &engine, minutes(20)).unwrap(), 0);
    assert_eq!(
        Booker::new(chart)
            .book(&books.store, &engine, minutes(20))
            .unwrap(),
        0
    );
    assert_eq!(books.ids().len(), written);
}

#[test]
fn a_false_alarm_reverses_what_was_booked() {
    let books = Books::new();
    let mut booker = Booker::new(Chart::runbook());
    let (mut engine, id) = engine_with_loss("checkout", 4);
    assert_eq!(booker.book(&books.store, &engine, minutes(4)).unwrap(), 1);
    assert!(books.net_debit(EXPENSE_6200) > 0);
    engine
        .handle_action(minutes(5), id, "ana", Action::ResolveFalseAlarm, None)
        .unwrap();
    assert_eq!(booker.book(&books.store, &engine, minutes(5)).unwrap(), 1);
    assert_eq!(books.ids(), ["inc-1-est-1", "inc-1-rev-1"]);
    assert_eq!(books.net_debit(EXPENSE_6200), 0);
    assert_eq!(books.net_debit(LOSS_2300), 0);
}

#[test]
fn a_quick_reopen_then_a_false_alarm_takes_back_the_final() {
    let books = Books::new();
    let mut booker = Booker::new(Chart::runbook());
    let (mut engine, id) = engine_with_loss("payment", 4);
    booker.book(&books.store, &engine, minutes(4)).unwrap();
    engine
        .handle_action(minutes(5), id, "ana", Action::Resolve, Some("fixed"))
        .unwrap();
    booker.book(&books.store, &engine, minutes(5)).unwrap();
    assert!(books.net_debit(EXPENSE_6200) > 0);
    // Within the revision interval: reopened, then resolved as a false alarm.
    engine
        .handle_action(minutes(6), id, "ana", Action::Reopen, None)
        .unwrap();
    booker.book(&books.store, &engine, minutes(6)).unwrap();
    engine
        .handle_action(minutes(7), id, "ana", Action::ResolveFalseAlarm, None)
        .unwrap();
    booker.book(&books.store, &engine, minutes(7)).unwrap();
    assert_eq!(books.net_debit(EXPENSE_6200), 0, "{:?}", books.ids());
    assert_eq!(books.net_debit(LOSS_2300), 0);
}

#[test]
fn an_incident_without_a_price_books_nothing() {
    let books = Books::new();
    let mut booker = Booker::new(Chart::runbook());
    let (engine, _) = engine_with_loss("payment", 0);
    assert_eq!(booker.book(&books.store, &engine, minutes(30)).unwrap(), 0);
    assert!(books.ids().is_empty());
}

#[test]
fn a_long_incident_links_its_newest_windows_within_the_ledgers_limit() {
    let (engine, id) = engine_with_loss("payment", 600);
    let impact = engine.incident(id).unwrap().impact.as_ref().unwrap();
    let inputs = impact.inputs_json_newest(BOOKED_INPUT_WINDOWS_MAX);
    assert!(
        inputs.len() <= revloop_core::ledger::INPUTS_BYTES_MAX,
        "{}",
        inputs.len()
    );
    let value: serde_json::Value = serde_json::from_str(&inputs).unwrap();
    assert_eq!(
        value["windows"].as_array().unwrap().len(),
        BOOKED_INPUT_WINDOWS_MAX
    );
    assert!(value["windows_omitted"].as_u64().unwrap() > 0);
    let books = Books::new();
    assert_eq!(
        Booker::new(Chart::runbook())
            .book(&books.store, &engine, minutes(601))
            .unwrap(),
        1
    );
}
