//! The service's own promises: reads never wait behind a step, the timer lag, and a step that
//! panics or fails leaves the service serving, with memory never ahead of the store.

use std::sync::Arc;
use std::time::Duration;

use revloop_core::Config;
use revloop_core::alert::{AlertEvent, AlertEventKind, AlertKind, Direction, Severity};
use revloop_core::incident::Action;
use revloop_core::time::{DurationMs, Timestamp};
use revloop_store::faults::{Call, Failure, Fault, FaultyStore};
use revloop_store::{SqliteStore, Store};

use super::Incidents;

/// 2026-11-27T10:00:00Z.
const T0: Timestamp = Timestamp::from_millis(1_795_773_600_000);

fn minutes(n: i64) -> Timestamp {
    T0.saturating_add(DurationMs::from_minutes(n))
}

fn alert(at: Timestamp) -> AlertEvent {
    AlertEvent {
        alert_id: 1,
        funnel: "checkout".into(),
        stage: "payment".into(),
        kind: AlertKind::Conversion,
        severity: Severity::P1,
        event: AlertEventKind::Opened,
        direction: Direction::Worse,
        at,
        onset: at,
        segment: None,
        baseline_rate: 0.15,
        observed_rate: 0.6,
        sigma: 9.0,
        n: 200,
        top_segments: Vec::new(),
    }
}

/// A service on a fresh SQLite file behind a fault injector, with one P1 opened at T0.
fn service(dir: &tempfile::TempDir) -> (Arc<Incidents>, Arc<FaultyStore>, u64) {
    let config = Arc::new(Config::parse(Config::example_toml()).unwrap());
    let sqlite = SqliteStore::open(&dir.path().join("incidents.db"), &config).unwrap();
    let faulty = FaultyStore::new(Arc::new(sqlite));
    let store: Arc<dyn Store> = faulty.clone();
    let incidents = Arc::new(Incidents::new(config, store));
    incidents.tick(minutes(-1)).unwrap();
    incidents.feed(&[alert(T0)], &|_| None, T0).unwrap();
    let id = incidents
        .with_engine(|engine| engine.incidents().next().map(|i| i.id))
        .unwrap()
        .expect("the alert opened an incident");
    (incidents, faulty, id)
}

#[test]
fn reads_are_answered_while_a_step_is_under_way() {
    let dir = tempfile::tempdir().unwrap();
    let (incidents, _, id) = service(&dir);
    // A tick whose deviation read is held: the service is mid-step until it is let go.
    let (entered, step_entered) = std::sync::mpsc::channel();
    let (release, released) = std::sync::mpsc::channel::<()>();
    let feeder = incidents.clone();
    let step = std::thread::spawn(move || {
        let deviation = |_: &revloop_core::incident::Incident| {
            let _ = entered.send(());
            let _ = released.recv();
            Some(4.0)
        };
        feeder.feed(&[], &deviation, minutes(1))
    });
    step_entered
        .recv_timeout(Duration::from_secs(10))
        .expect("the step asks for a deviation");
    // Readers see the last published state at once.
    let (read, reader_done) = std::sync::mpsc::channel();
    let reader = incidents.clone();
    std::thread::spawn(move || {
        let found = reader
            .with_engine(|engine| engine.incident(id).is_some())
            .unwrap();
        let _ = read.send((found, reader.wake_at().is_some(), reader.liveness().alive));
    });
    let answer = reader_done.recv_timeout(Duration::from_secs(10));
    release.send(()).unwrap();
    assert_eq!(
        answer.expect("a read waited behind a step"),
        (true, true, true)
    );
    step.join().unwrap().unwrap();
    assert_eq!(incidents.liveness().last_step_at, Some(minutes(1)));
}

#[test]
fn the_timer_lag_is_how_long_the_earliest_due_timer_has_waited() {
    let dir = tempfile::tempdir().unwrap();
    let (incidents, _, _) = service(&dir);
    let due = incidents.wake_at().expect("a P1 escalates");
    assert!(due > T0);
    assert_eq!(incidents.timer_lag(T0).millis(), 0);
    let late = due.saturating_add(DurationMs::from_minutes(5));
    assert_eq!(incidents.timer_lag(late), DurationMs::from_minutes(5));
    incidents.tick(late).unwrap();
    assert_eq!(incidents.liveness().timers_ran_at, Some(late));
    assert!(incidents.wake_at().is_none_or(|next| next > late));
    assert_eq!(incidents.timer_lag(late).millis(), 0);
}

#[test]
fn a_step_that_panics_or_fails_leaves_the_service_serving_and_nothing_half_done() {
    let dir = tempfile::tempdir().unwrap();
    let (incidents, faulty, id) = service(&dir);
    let note = |text: &str, at: i64| {
        incidents.act(id, "ann", &Action::Note(text.into()), None, minutes(at))
    };
    faulty.inject(Fault::new(Call::CommitIncidents, Failure::Panic).times(1));
    assert!(note("lost to a panic", 1).is_err());
    faulty.inject(Fault::new(Call::CommitIncidents, Failure::Io("gone".into())).times(1));
    assert!(note("lost to a fault", 2).is_err());
    // Busy twice: tried again inside the step, which then commits.
    faulty.inject(Fault::new(Call::CommitIncidents, Failure::Busy).times(2));
    note("kept", 3).unwrap().unwrap();
    assert!(incidents.liveness().alive);
    assert_eq!(incidents.step_failures(), 2);
    let stored = incidents.stored_incident(id).unwrap().unwrap();
    let texts: Vec<&str> = stored.timeline.iter().map(|e| e.text.as_str()).collect();
    assert!(texts.contains(&"kept"), "{texts:?}");
    assert!(!texts.iter().any(|t| t.starts_with("lost")), "{texts:?}");
    // What readers see is what the store has.
    let published = incidents
        .with_engine(|engine| engine.incident(id).unwrap().timeline.len())
        .unwrap();
    assert_eq!(published, stored.timeline.len());
}

/// Each funnel's detector keeps its own pace: one that fell behind (its reads failed while the
/// others went on) judges the minutes it missed later, and an alert it finds there still opens
/// an incident. The same event again, from this service or from one restarted on the same
/// database, opens nothing more.
#[test]
fn a_funnel_that_fell_behind_still_opens_its_incidents() {
    let dir = tempfile::tempdir().unwrap();
    let (incidents, _, _) = service(&dir);
    let count = |incidents: &Incidents| {
        incidents
            .with_engine(|engine| engine.incidents().count())
            .unwrap()
    };
    // checkout is judged on to minute 8 (its alert, again, changes nothing) ...
    incidents
        .feed(&[alert(minutes(8))], &|_| None, minutes(8))
        .unwrap();
    assert_eq!(count(&incidents), 1);
    // ... while signup, behind, finds an alert in minute 3.
    let mut behind = alert(minutes(3));
    behind.alert_id = 2;
    behind.funnel = "signup".into();
    incidents
        .feed(std::slice::from_ref(&behind), &|_| None, minutes(9))
        .unwrap();
    assert_eq!(count(&incidents), 2, "signup's alert was dropped");
    incidents
        .feed(std::slice::from_ref(&behind), &|_| None, minutes(10))
        .unwrap();
    assert_eq!(count(&incidents), 2);
    drop(incidents);

    let config = Arc::new(Config::parse(Config::example_toml()).unwrap());
    let store = SqliteStore::open(&dir.path().join("incidents.db"), &config).unwrap();
    let restarted = Incidents::new(config, Arc::new(store));
    // A restarted detector sends its history again: an event at or before signup's mark (here
    // one the engine has never seen, as if long pruned) is not news.
    let mut history = behind.clone();
    history.alert_id = 3;
    restarted.feed(&[history], &|_| None, minutes(11)).unwrap();
    assert_eq!(
        count(&restarted),
        2,
        "an event at or before signup's mark is history after a restart"
    );
}

/// The deliverer's failover: nobody at L1 could be reached, so L2 is paged at once, committed
/// to the outbox; the same report again (a retry, another node) pages nobody.
#[test]
fn an_unreachable_level_pages_the_next_at_once_in_one_committed_step() {
    let dir = tempfile::tempdir().unwrap();
    let (incidents, faulty, id) = service(&dir);
    let store: Arc<dyn Store> = faulty;
    let pages = || -> Vec<(String, i64)> {
        store
            .outbox(0, 100)
            .unwrap()
            .into_iter()
            .filter(|row| row.kind.as_str() == "notify")
            .map(|row| {
                let body: serde_json::Value = serde_json::from_str(&row.body).unwrap();
                (
                    body["level"].as_str().unwrap().to_owned(),
                    row.at.since(T0).whole_minutes(),
                )
            })
            .collect()
    };
    assert_eq!(pages(), [("L1".to_owned(), 0)]);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime
        .block_on(incidents.level_unreachable(id, "L1", minutes(5)))
        .unwrap();
    runtime
        .block_on(incidents.level_unreachable(id, "L1", minutes(6)))
        .unwrap();
    assert_eq!(pages(), [("L1".to_owned(), 0), ("L2".to_owned(), 5)]);
    // An unknown incident changes nothing and is no error.
    runtime
        .block_on(incidents.level_unreachable(999, "L1", minutes(7)))
        .unwrap();
    assert_eq!(pages().len(), 2);
    let timeline = incidents
        .with_engine(|engine| engine.incident(id).unwrap().timeline.clone())
        .unwrap();
    assert!(
        timeline
            .iter()
            .any(|e| e.text.contains("nobody at L1 could be reached")),
        "{timeline:?}"
    );
}
