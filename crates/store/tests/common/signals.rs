//! Inbound signals: one row per `(source, key)` however often re-sent, an update keeps what it
//! does not say, and reads find the signals overlapping a range.

use revloop_core::Timestamp;
use revloop_core::signal::{SignalSource, SignalStatus};
use revloop_store::{SignalRow, Store};

fn at(minutes: i64) -> Timestamp {
    Timestamp::from_millis(1_795_773_600_000 + minutes * 60_000)
}

fn firing(source: SignalSource, key: &str, starts: i64) -> SignalRow {
    SignalRow {
        id: 0,
        source,
        key: key.into(),
        status: SignalStatus::Firing,
        starts_at: at(starts),
        ends_at: None,
        summary: format!("{key} is failing"),
        severity: Some("critical".into()),
        funnel: Some("checkout".into()),
        stage: Some("payment".into()),
        labels_json: format!(r#"{{"alertname":"{key}"}}"#),
        received_at: at(starts + 1),
        n_received: 0,
    }
}

fn keys(rows: &[SignalRow]) -> Vec<&str> {
    rows.iter().map(|r| r.key.as_str()).collect()
}

pub fn signals_upsert_by_key(store: &dyn Store) {
    let sent = firing(SignalSource::Alertmanager, "fp1", 0);
    let (first, new) = store.upsert_signal(&sent).unwrap();
    assert!(new);
    assert!(first.id > 0);
    assert_eq!(
        first,
        SignalRow {
            id: first.id,
            n_received: 1,
            ..sent.clone()
        }
    );

    // A re-send is the same row, counted.
    let (again, new) = store.upsert_signal(&sent).unwrap();
    assert!(!new);
    assert_eq!((again.id, again.n_received), (first.id, 2));

    // The same key from the other source is another signal.
    let (other, new) = store
        .upsert_signal(&firing(SignalSource::Events, "fp1", 0))
        .unwrap();
    assert!(new);
    assert_ne!(other.id, first.id);

    // Resolved by an update that says nothing else: the rest is kept.
    let resolve = SignalRow {
        status: SignalStatus::Resolved,
        starts_at: at(9),
        ends_at: Some(at(9)),
        summary: String::new(),
        severity: None,
        funnel: None,
        stage: None,
        labels_json: "{}".into(),
        received_at: at(9),
        ..sent.clone()
    };
    let (resolved, new) = store.upsert_signal(&resolve).unwrap();
    assert!(!new);
    assert_eq!(
        resolved,
        SignalRow {
            id: first.id,
            status: SignalStatus::Resolved,
            ends_at: Some(at(9)),
            received_at: at(9),
            n_received: 3,
            ..sent.clone()
        }
    );

    // An update that says nothing (an acknowledge) does not fire it again.
    let acknowledge = SignalRow {
        status: SignalStatus::Firing,
        ends_at: None,
        starts_at: at(12),
        received_at: at(12),
        ..resolve.clone()
    };
    let (still, _) = store.upsert_signal(&acknowledge).unwrap();
    assert_eq!(
        (
            still.status,
            still.starts_at,
            still.ends_at,
            still.n_received
        ),
        (SignalStatus::Resolved, at(0), Some(at(9)), 4)
    );

    // Firing again after it resolved starts anew, with what the new one says.
    let refire = SignalRow {
        summary: "again".into(),
        ..firing(SignalSource::Alertmanager, "fp1", 30)
    };
    let (refired, _) = store.upsert_signal(&refire).unwrap();
    assert_eq!(refired.status, SignalStatus::Firing);
    assert_eq!((refired.starts_at, refired.ends_at), (at(30), None));
    assert_eq!(refired.summary, "again");

    // A firing re-send with a later start does not move the start forward.
    let later = firing(SignalSource::Alertmanager, "fp1", 40);
    assert_eq!(store.upsert_signal(&later).unwrap().0.starts_at, at(30));

    let all = store.signals(at(-1000), at(1000), 100).unwrap();
    assert_eq!(all.len(), 2, "{all:?}");
}

pub fn signals_overlap_reads(store: &dyn Store) {
    // fp-early: [0, 5]; fp-mid: [10, open); fp-late: [50, 60].
    store
        .upsert_signal(&SignalRow {
            status: SignalStatus::Resolved,
            ends_at: Some(at(5)),
            ..firing(SignalSource::Alertmanager, "early", 0)
        })
        .unwrap();
    store
        .upsert_signal(&firing(SignalSource::Alertmanager, "mid", 10))
        .unwrap();
    store
        .upsert_signal(&SignalRow {
            status: SignalStatus::Resolved,
            ends_at: Some(at(60)),
            ..firing(SignalSource::Events, "late", 50)
        })
        .unwrap();
    let read = |from, to| store.signals(at(from), at(to), 100).unwrap();
    assert_eq!(keys(&read(0, 100)), ["late", "mid", "early"]);
    assert_eq!(keys(&read(5, 9)), ["early"]);
    assert_eq!(keys(&read(6, 9)), Vec::<&str>::new());
    assert_eq!(keys(&read(6, 10)), ["mid"]);
    // A firing signal overlaps everything after its start.
    assert_eq!(keys(&read(500, 600)), ["mid"]);
    assert_eq!(keys(&read(55, 70)), ["late", "mid"]);
    // The limit holds.
    assert_eq!(store.signals(at(0), at(100), 1).unwrap().len(), 1);
}

/// Two nodes upserting the same keys at once leave one row per key, every send counted.
pub fn two_nodes_upsert_a_signal_once(a: &dyn Store, b: &dyn Store) {
    std::thread::scope(|scope| {
        for node in [a, b] {
            scope.spawn(move || {
                for n in 0..20 {
                    let key = format!("fp{}", n % 5);
                    node.upsert_signal(&firing(SignalSource::Alertmanager, &key, n))
                        .unwrap();
                }
            });
        }
    });
    let rows = a.signals(at(-10), at(100), 100).unwrap();
    assert_eq!(rows.len(), 5, "{rows:?}");
    assert_eq!(rows.iter().map(|r| r.n_received).sum::<i64>(), 40);
    assert!(rows.iter().all(|r| r.starts_at.millis() <= at(4).millis()));
}
