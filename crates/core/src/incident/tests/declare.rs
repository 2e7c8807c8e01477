//! Incidents declared by hand: refused when the stage is held or the declaration is bad;
//! otherwise they page, escalate, group and resolve as detected ones do, with a root cause.

use super::*;

fn declaration(stage: &str, severity: IncidentSeverity) -> Declaration {
    Declaration {
        funnel: "checkout".into(),
        stage: stage.into(),
        segment: None,
        severity,
        summary: "customers say the card form hangs".into(),
    }
}

#[test]
fn a_declared_incident_pages_and_escalates_like_a_detected_one() {
    let mut engine = engine();
    let id = engine
        .declare(T0, &declaration("payment", IncidentSeverity::P1), "ana")
        .unwrap();
    assert_eq!(id, 1);
    let incident = engine.incident(id).unwrap();
    assert_eq!(
        (incident.kind, incident.severity, incident.state),
        (
            AlertKind::Declared,
            IncidentSeverity::P1,
            IncidentState::Triggered
        )
    );
    let opened = &incident.timeline[0];
    assert_eq!(
        (opened.actor.as_str(), opened.kind),
        ("ana", TimelineKind::Opened)
    );
    assert_eq!(
        opened.text,
        "P1 declared by ana on payment (every shopper): customers say the card form hangs"
    );
    let mut effects: Vec<Effect> = std::iter::from_fn(|| engine.poll_effect()).collect();
    effects.extend(run_until(&mut engine, minutes(50)));
    assert_eq!(
        pages(&effects),
        [
            (0, "L1".to_owned()),
            (15, "L2".to_owned()),
            (45, "L3".to_owned())
        ]
    );
    let Effect::Notify { brief, reason, .. } = &effects[0] else {
        panic!("{:?}", effects[0]);
    };
    assert_eq!(
        brief.title,
        "P1 declared: checkout/payment: customers say the card form hangs"
    );
    assert_eq!(reason, "P1 incident opened");
}

#[test]
fn a_declaration_is_refused_when_the_stage_is_held_or_it_is_malformed() {
    let mut engine = engine();
    engine.handle_alert(
        T0,
        &alert(1, "payment", Severity::P2, AlertEventKind::Opened),
    );
    let long_summary = "x".repeat(DECLARED_SUMMARY_BYTES_MAX + 1);
    let long_name = "s".repeat(DECLARED_NAME_BYTES_MAX + 1);
    let with = |edit: &dyn Fn(&mut Declaration)| {
        let mut d = declaration("cart", IncidentSeverity::P2);
        edit(&mut d);
        d
    };
    let cases: Vec<(Declaration, &str, DeclareError)> = vec![
        (
            declaration("payment", IncidentSeverity::P1),
            "ana",
            DeclareError::AnotherIsOpen(1),
        ),
        (
            with(&|d| d.summary = "  ".into()),
            "ana",
            DeclareError::Empty { field: "summary" },
        ),
        (
            with(&|d| d.summary = long_summary.clone()),
            "ana",
            DeclareError::TooLong {
                field: "summary",
                max: DECLARED_SUMMARY_BYTES_MAX,
            },
        ),
        (
            with(&|d| d.funnel = String::new()),
            "ana",
            DeclareError::Empty { field: "funnel" },
        ),
        (
            with(&|d| d.stage = long_name.clone()),
            "ana",
            DeclareError::TooLong {
                field: "stage",
                max: DECLARED_NAME_BYTES_MAX,
            },
        ),
        (
            with(&|d| d.segment = Some(("device".into(), " ".into()))),
            "ana",
            DeclareError::Empty {
                field: "segment.value",
            },
        ),
        (
            declaration("cart", IncidentSeverity::P2),
            "",
            DeclareError::Empty { field: "actor" },
        ),
    ];
    for (declaration, actor, expected) in cases {
        assert_eq!(
            engine.declare(minutes(1), &declaration, actor),
            Err(expected.clone())
        );
    }
    assert_eq!(engine.incidents().count(), 1, "nothing opened");
    // Another stage, or the same once its incident resolved, is free.
    assert_eq!(
        engine.declare(
            minutes(2),
            &declaration("cart", IncidentSeverity::P3),
            "ana"
        ),
        Ok(2)
    );
    engine
        .handle_action(minutes(3), 1, "ana", Action::ResolveFalseAlarm, None)
        .unwrap();
    assert_eq!(
        engine.declare(
            minutes(4),
            &declaration("payment", IncidentSeverity::P1),
            "ana"
        ),
        Ok(3)
    );
}

#[test]
fn a_declared_incident_waits_for_its_root_cause_then_resolves_like_others() {
    for severity in [
        IncidentSeverity::P1,
        IncidentSeverity::P2,
        IncidentSeverity::P3,
    ] {
        let mut engine = engine();
        let id = engine
            .declare(T0, &declaration("payment", severity), "ana")
            .unwrap();
        engine
            .handle_action(minutes(1), id, "ana", Action::Acknowledge, None)
            .unwrap();
        // No alert to close and a flat series: the rest holds after its wait, but not the
        // root cause, so it stays open however long nothing happens.
        engine.run_until(minutes(24 * 60));
        let incident = engine.incident(id).unwrap();
        assert!(incident.is_open(), "{severity:?}");
        let failing: Vec<&str> = incident
            .criteria(engine.policy(), minutes(24 * 60))
            .into_iter()
            .filter(|c| !c.holds)
            .map(|c| c.name)
            .collect();
        assert_eq!(failing, ["root_cause"], "{severity:?}");
        engine
            .handle_action(
                minutes(24 * 60),
                id,
                "ana",
                Action::RootCause("the card form's script failed to load".into()),
                None,
            )
            .unwrap();
        let incident = engine.incident(id).unwrap();
        assert_eq!(incident.state, IncidentState::Resolved, "{severity:?}");
        assert_eq!(incident.resolved_at, Some(minutes(24 * 60)));
    }
}

#[test]
fn a_detector_alert_of_the_same_severity_joins_it_and_names_it() {
    let mut engine = engine();
    engine
        .declare(T0, &declaration("payment", IncidentSeverity::P2), "ana")
        .unwrap();
    engine.handle_alert(
        minutes(10),
        &alert(7, "payment", Severity::P2, AlertEventKind::Opened),
    );
    let incident = engine.incident(1).unwrap();
    assert_eq!(incident.alerts.get(&7), Some(&true));
    assert_eq!(
        (incident.severity, incident.kind),
        (IncidentSeverity::P2, AlertKind::Conversion)
    );
    // From then on its criteria are a detected P2's: no root cause asked.
    let names: Vec<&str> = incident
        .criteria(engine.policy(), minutes(10))
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names, ["trend", "no_escalation"]);
}

#[test]
fn a_detector_alert_on_a_declared_stage_joins_it_and_may_raise_it() {
    let mut engine = engine();
    engine
        .declare(T0, &declaration("payment", IncidentSeverity::P2), "ana")
        .unwrap();
    engine.handle_alert(
        minutes(10),
        &alert(7, "payment", Severity::P1, AlertEventKind::Opened),
    );
    assert_eq!(engine.incidents().count(), 1);
    let incident = engine.incident(1).unwrap();
    assert_eq!(incident.alerts.get(&7), Some(&true));
    // Raised by the detector's evidence: named by it, and resolved by P1's criteria.
    assert_eq!(
        (incident.severity, incident.kind),
        (IncidentSeverity::P1, AlertKind::Conversion)
    );
    assert!(!incident.is_declared());
}

#[test]
fn a_declared_incident_in_a_silence_pages_when_it_ends() {
    let mut engine = engine();
    engine
        .add_silence(
            T0,
            "ops",
            Silence {
                funnel: Some("checkout".into()),
                stage: None,
                from: T0,
                to: minutes(30),
                reason: "planned deploy".into(),
            },
        )
        .unwrap();
    engine
        .declare(
            minutes(1),
            &declaration("payment", IncidentSeverity::P1),
            "ana",
        )
        .unwrap();
    let effects = run_until(&mut engine, minutes(31));
    assert_eq!(pages(&effects), [(30, "L1".to_owned())]);
}
