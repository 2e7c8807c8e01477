//! The detector through the incident engine in event time, as `replay` runs it: the
//! detection tests' synthetic shop, one [`feed_tick`] per minute, and a responder following a
//! script. Each incident's timeline must read in order from onset to resolution.

use super::{deviation, feed_tick, judged_at};
use crate::alert::{AlertEvent, AlertEventKind, AlertKind, Direction, Severity};
use crate::config::Config;
use crate::detect::Detector;
use crate::detect::tests::{CLEAN, CONFIG, Traffic, feed, learned};
use crate::incident::TimelineKind;
use crate::incident::{
    Action, Incident, IncidentEngine, IncidentPolicy, IncidentSeverity, IncidentState, Mitigation,
};
use crate::time::{DurationMs, Minute, Timestamp};

/// A responder's step in an event-time run: minutes after the incident opened, what.
type Script = Vec<(i64, Action)>;

/// Runs the detector and the incidents together in event time, minute by minute, as
/// `replay` does, with a responder following `script`. Returns the engine and the detector as
/// they are after the last minute.
fn incidents_of(
    seed: u64,
    minutes: i64,
    traffic: impl Fn(Minute, Minute) -> Traffic,
    script: &Script,
) -> (IncidentEngine, Detector) {
    let settle = Config::parse(CONFIG).unwrap().detection.settle;
    let (mut detector, mut rng, now) = learned(seed);
    let mut engine = IncidentEngine::new(IncidentPolicy::runbook(), Vec::new());
    let mut done = vec![false; script.len()];
    for offset in 0..minutes {
        let minute = now.plus(offset);
        let events = feed(&mut detector, &mut rng, minute, 1, |m| traffic(now, m));
        let at = judged_at(minute, settle);
        feed_tick(&mut engine, &detector, at, &events);
        let first = engine.incidents().next().map(|i| (i.id, i.opened_at));
        if let Some(first) = first {
            for ((after, action), done) in script.iter().zip(done.iter_mut()) {
                if !*done && at >= first.1.saturating_add(DurationMs::from_minutes(*after)) {
                    *done = true;
                    engine
                        .handle_action(at, first.0, "ana", action.clone(), None)
                        .unwrap();
                }
            }
        }
    }
    (engine, detector)
}

fn timeline_kinds(incident: &Incident) -> Vec<&str> {
    incident.timeline.iter().map(|e| e.kind.as_str()).collect()
}

/// The detection suite's incidents, run through the incident engine in event time: each
/// timeline reads in order from onset to resolution.
#[test]
fn the_detection_suite_in_event_time_makes_incidents_that_read_right() {
    // An outage of an hour, acknowledged after 10 minutes, mitigated, its root cause found:
    // it resolves by itself two hours after the drop-off is back within 2σ. The Digital
    // Andon's alert opens with the drop; its onset is no later than the incident.
    let script: Script = vec![
        (10, Action::Acknowledge),
        (
            20,
            Action::Mitigate {
                mitigation: Mitigation::Rollback,
                detail: "rolled back the cart release".into(),
            },
        ),
        (
            30,
            Action::RootCause("the cart release broke the order button".into()),
        ),
    ];
    let (engine, _) = incidents_of(
        4,
        5 * 60,
        |now, minute| {
            if minute < now.plus(60) {
                Traffic {
                    keep: [1.0, 0.3],
                    ..CLEAN
                }
            } else {
                CLEAN
            }
        },
        &script,
    );
    let incidents: Vec<_> = engine.incidents().collect();
    assert_eq!(incidents.len(), 1, "{incidents:#?}");
    let incident = incidents[0];
    assert_eq!(
        (incident.stage.as_str(), incident.severity, incident.state),
        ("cart", IncidentSeverity::P1, IncidentState::Resolved)
    );
    assert_eq!(
        timeline_kinds(incident),
        [
            "opened",
            "escalated",
            "acknowledged",
            "mitigated",
            "root_cause",
            "sla_breached",
            "alert_closed",
            "recovered",
            "resolved"
        ]
    );
    // An hour's outage outlasts the P1 resolution SLA of an hour; the response SLA was met.
    assert!(incident.resolution.breached);
    let at = |kind: &str| {
        incident
            .timeline
            .iter()
            .find(|e| e.kind.as_str() == kind)
            .unwrap()
            .at
    };
    assert!(incident.onset <= incident.opened_at);
    assert!(incident.timeline.windows(2).all(|w| w[0].at <= w[1].at));
    assert_eq!(
        at("resolved").since(at("alert_closed")),
        crate::DurationMs::from_hours(2)
    );
    assert!(incident.response.met_at.is_some() && !incident.response.breached);

    // A moderate drop deepening: a P2 incident whose alert upgrades; the ASSESS step is
    // recorded and the P1 path starts from L1. Nobody answers: L2 follows 15 minutes on.
    let (engine, _) = incidents_of(
        5,
        240,
        |now, minute| {
            let keep = if minute < now.plus(150) { 0.9 } else { 0.4 };
            Traffic {
                keep: [1.0, keep],
                ..CLEAN
            }
        },
        &Vec::new(),
    );
    let incident = engine.incidents().next().expect("an incident");
    let kinds = timeline_kinds(incident);
    let upgraded = kinds
        .iter()
        .position(|k| *k == "upgraded")
        .expect("upgraded");
    assert_eq!(&kinds[..2], ["opened", "escalated"]);
    assert!(
        incident.timeline[0].text.starts_with("P2"),
        "{:?}",
        incident.timeline[0]
    );
    assert!(incident.timeline[upgraded].text.starts_with("ASSESS"));
    assert_eq!(incident.severity, IncidentSeverity::P1);
    let pages_after: Vec<&str> = incident.timeline[upgraded..]
        .iter()
        .filter(|e| e.kind == TimelineKind::Escalated)
        .map(|e| e.text.split_whitespace().nth(1).unwrap())
        .collect();
    assert_eq!(pages_after[..2], ["L1", "L2"], "{:#?}", incident.timeline);

    // A failure on desktop only: one incident, scoped to the segment the alert named.
    let (engine, _) = incidents_of(
        8,
        60,
        |_, _| Traffic {
            keep: [1.0, 0.2],
            only: Some("desktop"),
            ..CLEAN
        },
        &vec![(5, Action::Acknowledge)],
    );
    let incidents: Vec<_> = engine.incidents().collect();
    assert_eq!(incidents.len(), 1, "{incidents:#?}");
    assert_eq!(
        incidents[0].segment,
        Some(("device".to_owned(), "desktop".to_owned()))
    );
    let kinds = timeline_kinds(incidents[0]);
    assert_eq!(kinds[..2], ["opened", "escalated"]);
    let acked = kinds.iter().position(|k| *k == "acknowledged").unwrap();
    assert!(!kinds[acked..].contains(&"escalated"), "{kinds:?}");
}

#[test]
fn a_minute_is_judged_at_its_end_plus_the_settle_time() {
    let minute = Minute::new(1_000);
    assert_eq!(
        judged_at(minute, DurationMs::from_minutes(1)),
        minute.start().saturating_add(DurationMs::from_minutes(2))
    );
    assert_eq!(
        judged_at(minute, DurationMs::from_minutes(0)),
        Minute::new(1_001).start()
    );
}

/// An incident scoped to a segment is measured on its segment's series: desktop's deviation,
/// not the whole funnel's, which the other devices' shoppers dilute.
#[test]
fn a_segment_incident_is_measured_on_its_segment() {
    let (engine, detector) = incidents_of(
        8,
        60,
        |_, _| Traffic {
            keep: [1.0, 0.2],
            only: Some("desktop"),
            ..CLEAN
        },
        &Vec::new(),
    );
    let incident = engine.incidents().next().expect("an incident");
    let desktop = Some(("device", "desktop"));
    let (_, last) = *incident.measurements.back().expect("measured");
    assert_eq!(Some(last), detector.window_sigma("shop", desktop, "cart"));
    assert_eq!(Some(last), deviation(&detector, incident));
    let whole = detector.window_sigma("shop", None, "cart").unwrap();
    assert!(last > whole + 1.0, "desktop {last}, whole funnel {whole}");
}

/// Timers that fell due before a tick fire at their own times, before the tick's alerts: a
/// tick that runs late does not stamp an escalation with the time it ran.
#[test]
fn timers_due_before_a_tick_fire_at_their_own_times() {
    let opened_at = Minute::new(1_000).start();
    let alert = AlertEvent {
        alert_id: 1,
        funnel: "shop".into(),
        stage: "cart".into(),
        kind: AlertKind::Conversion,
        severity: Severity::P1,
        event: AlertEventKind::Opened,
        direction: Direction::Worse,
        at: opened_at,
        onset: opened_at,
        segment: None,
        baseline_rate: 0.3,
        observed_rate: 0.7,
        sigma: 9.0,
        n: 200,
        top_segments: Vec::new(),
    };
    // As the live server passes it: a closure over a detector kept behind a lock.
    let no_deviation: &dyn Fn(&Incident) -> Option<f64> = &|_| None;
    let mut engine = IncidentEngine::new(IncidentPolicy::runbook(), Vec::new());
    feed_tick(&mut engine, no_deviation, opened_at, &[alert]);
    let late = opened_at.saturating_add(DurationMs::from_minutes(40));
    feed_tick(&mut engine, no_deviation, late, &[]);
    let incident = engine.incidents().next().unwrap();
    let escalations: Vec<Timestamp> = incident
        .timeline
        .iter()
        .filter(|e| e.kind == TimelineKind::Escalated)
        .map(|e| e.at)
        .collect();
    assert!(escalations.len() >= 2, "{:#?}", incident.timeline);
    assert!(
        escalations.iter().all(|&at| at < late),
        "{:#?}",
        incident.timeline
    );
}

#[test]
fn the_first_unjudged_minute_is_the_inverse_of_judged_at() {
    let settle = DurationMs::from_secs(90);
    let minute = Minute::new(1_000);
    let at = judged_at(minute, settle);
    let just_before = at.saturating_sub(DurationMs::from_millis(1));
    assert_eq!(crate::detect::first_unjudged(just_before, settle), minute);
    assert_eq!(crate::detect::first_unjudged(at, settle), minute.plus(1));
}
