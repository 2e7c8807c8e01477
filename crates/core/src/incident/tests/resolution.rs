//! The trend, the resolution criteria, auto-resolution, prompts and reopening.

use super::*;

/// The MONITOR trend on a deviation that only wobbles: a five-minute window's σ measured
/// every minute (overlapping, so autocorrelated). It must read stable, not a trend, in all
/// but a few of 200 hours; a real rise of 5σ over the hour must read increasing. (An hour
/// holds about a dozen independent windows, so slower rises take longer to tell.)
#[test]
fn the_trend_is_not_fooled_by_noise() {
    let trend_of = |seed: u64, slope_per_hour: f64| {
        let mut rng = Rng::new(seed);
        let mut engine = engine();
        engine.handle_alert(
            T0,
            &alert(1, "checkout", Severity::P2, AlertEventKind::Opened),
        );
        let per_minute: Vec<f64> = (0..64).map(|_| rng.normal() * 5f64.sqrt()).collect();
        for minute in 0..60 {
            // The mean of the last five minutes' noise: one window's σ, overlapping.
            let window: f64 = per_minute[minute..minute + 5].iter().sum::<f64>() / 5.0;
            let sigma = 1.0 + window + slope_per_hour * minute as f64 / 60.0;
            engine.handle_measurement(minutes(minute as i64), "checkout", "checkout", sigma);
        }
        engine.incident(1).unwrap().trend(minutes(60))
    };
    let false_trends = (0..200)
        .filter(|seed| trend_of(*seed, 0.0) != Trend::Stable)
        .count();
    assert!(
        false_trends <= 10,
        "{false_trends} of 200 noisy hours read as a trend"
    );
    let found = (0..200)
        .filter(|seed| trend_of(*seed, 5.0) == Trend::Increasing)
        .count();
    assert!(
        found >= 180,
        "a 5σ/h rise read as increasing {found} of 200 times"
    );
}

#[test]
fn p1_resolves_itself_only_when_every_criterion_holds() {
    // (alert closed at 30 min, root cause recorded, minutes run) → resolved? The quiet
    // period counts from the close: two hours of it end at 150 minutes.
    let cases = [
        (true, true, 151, true),
        (false, true, 151, false),
        (true, false, 151, false),
        (true, true, 149, false),
    ];
    for (closed, root_cause, wait, resolved) in cases {
        let mut engine = engine();
        engine.handle_alert(
            T0,
            &alert(1, "payment", Severity::P1, AlertEventKind::Opened),
        );
        engine
            .handle_action(T0, 1, "ana", Action::Acknowledge, None)
            .unwrap();
        if closed {
            engine.handle_alert(
                minutes(30),
                &alert(1, "payment", Severity::P1, AlertEventKind::Closed),
            );
        }
        if root_cause {
            engine
                .handle_action(
                    minutes(31),
                    1,
                    "ana",
                    Action::RootCause("expired TLS certificate at the PSP".into()),
                    None,
                )
                .unwrap();
        }
        run_until(&mut engine, minutes(wait));
        let incident = engine.incident(1).unwrap();
        assert_eq!(
            incident.state == IncidentState::Resolved,
            resolved,
            "closed {closed}, root cause {root_cause}, {wait} min: {:?}",
            incident.criteria(engine.policy(), minutes(wait))
        );
        if resolved {
            assert_eq!(incident.resolved_at, Some(minutes(150)));
            assert_eq!(incident.timeline.last().unwrap().actor, ENGINE_ACTOR);
        }
    }
}

#[test]
fn p2_resolves_when_its_trend_is_not_rising_for_four_hours() {
    for (slope_sigma_per_hour, resolved) in [(0.0, true), (-2.0, true), (3.0, false)] {
        let mut engine = engine();
        engine.handle_alert(
            T0,
            &alert(1, "checkout", Severity::P2, AlertEventKind::Opened),
        );
        engine
            .handle_action(T0, 1, "ana", Action::Acknowledge, None)
            .unwrap();
        for minute in (180..240).step_by(5) {
            let sigma = 2.5 + slope_sigma_per_hour * f64::from(minute - 180) / 60.0;
            engine.handle_measurement(minutes(i64::from(minute)), "checkout", "checkout", sigma);
        }
        run_until(&mut engine, minutes(241));
        let incident = engine.incident(1).unwrap();
        assert_eq!(
            incident.state == IncidentState::Resolved,
            resolved,
            "slope {slope_sigma_per_hour}: trend {:?}",
            incident.trend(minutes(241))
        );
    }
}

#[test]
fn prompt_mode_asks_once_instead_of_resolving() {
    let mut policy = IncidentPolicy::runbook();
    policy.auto_resolve = false;
    let mut engine = IncidentEngine::new(policy, Vec::new());
    engine.handle_alert(
        T0,
        &alert(1, "checkout", Severity::P2, AlertEventKind::Opened),
    );
    engine.handle_alert(
        minutes(10),
        &alert(1, "checkout", Severity::P2, AlertEventKind::Closed),
    );
    run_until(&mut engine, minutes(600));
    let incident = engine.incident(1).unwrap();
    assert!(incident.is_open());
    assert_eq!(
        kinds(incident)
            .iter()
            .filter(|k| **k == "resolution_prompt")
            .count(),
        1
    );
}

/// Found by a newcomer's trial of the demo: each of these once went wrong.
#[test]
fn reopening_holds_and_keeps_history() {
    // A P2 resolves; its alert returns within the flap hold and reopens it. The reopened
    // incident is not resolved again by the evidence that resolved it, so the alert's
    // upgrade lands on it (one incident, now P1) and its close too.
    let mut engine = engine();
    engine.handle_alert(
        T0,
        &alert(1, "payment", Severity::P2, AlertEventKind::Opened),
    );
    engine
        .handle_action(minutes(5), 1, "ana", Action::Acknowledge, None)
        .unwrap();
    engine.handle_alert(
        minutes(20),
        &alert(1, "payment", Severity::P2, AlertEventKind::Closed),
    );
    run_until(&mut engine, minutes(245));
    assert_eq!(engine.incident(1).unwrap().state, IncidentState::Resolved);
    // P2 stable for its four hours as its four-hour SLA ran out: resolved in time.
    assert!(!engine.incident(1).unwrap().resolution.breached);
    engine.handle_alert(
        minutes(250),
        &alert(2, "payment", Severity::P2, AlertEventKind::Opened),
    );
    run_until(&mut engine, minutes(252));
    assert_eq!(engine.incident(1).unwrap().state, IncidentState::Triggered);
    engine.handle_alert(
        minutes(253),
        &alert(2, "payment", Severity::P1, AlertEventKind::Upgraded),
    );
    engine.handle_alert(
        minutes(290),
        &alert(2, "payment", Severity::P1, AlertEventKind::Closed),
    );
    assert_eq!(engine.incidents().count(), 1);
    let incident = engine.incident(1).unwrap();
    assert_eq!(incident.severity, IncidentSeverity::P1);
    assert!(incident.alerts.values().all(|open| !open));
    // The first acknowledgement is kept for the reports.
    assert_eq!(incident.acknowledged_at, Some(minutes(5)));

    // A responder's reopen holds even where every criterion still holds, and pages L1
    // once.
    let mut engine = IncidentEngine::new(IncidentPolicy::runbook(), Vec::new());
    engine.handle_alert(
        T0,
        &alert(1, "payment", Severity::P1, AlertEventKind::Opened),
    );
    engine
        .handle_action(minutes(1), 1, "ana", Action::Acknowledge, None)
        .unwrap();
    engine
        .handle_action(
            minutes(2),
            1,
            "ana",
            Action::RootCause("bad deploy".into()),
            None,
        )
        .unwrap();
    engine.handle_alert(
        minutes(10),
        &alert(1, "payment", Severity::P1, AlertEventKind::Closed),
    );
    run_until(&mut engine, minutes(200));
    assert_eq!(engine.incident(1).unwrap().state, IncidentState::Resolved);
    while engine.poll_effect().is_some() {}
    engine
        .handle_action(
            minutes(201),
            1,
            "ana",
            Action::Reopen,
            Some("declines again"),
        )
        .unwrap();
    let effects = run_until(&mut engine, minutes(205));
    assert_eq!(engine.incident(1).unwrap().state, IncidentState::Triggered);
    assert_eq!(pages(&effects), [(201, "L1".to_owned())]);

    // A responder's scope is recorded beside the alert's stage and segment, which keep
    // grouping and measuring the incident.
    engine
        .handle_action(
            minutes(206),
            1,
            "ana",
            Action::SetScope {
                stage: "checkout".into(),
                segment: Some(("device".into(), "desktop".into())),
            },
            None,
        )
        .unwrap();
    let incident = engine.incident(1).unwrap();
    assert_eq!(
        (incident.stage.as_str(), &incident.segment),
        ("payment", &None)
    );
    assert_eq!(
        incident.scope,
        Some(("checkout".into(), Some(("device".into(), "desktop".into()))))
    );
}
