//! Paging: the escalation path, acks, empty levels, ack timeouts and severity changes.

use super::*;
use crate::incident::TimelineKind;

#[test]
fn an_unacknowledged_p1_walks_the_whole_escalation_path() {
    let mut engine = engine();
    engine.handle_alert(
        T0,
        &alert(1, "payment", Severity::P1, AlertEventKind::Opened),
    );
    let effects = run_until(&mut engine, minutes(300));
    let expected: Vec<(i64, String)> = [
        (0, "L1"),
        (15, "L2"),
        (45, "L3"),
        (105, "executive"),
        (225, "executive"),
    ]
    .iter()
    .map(|(m, l)| (*m, (*l).to_owned()))
    .collect();
    assert_eq!(pages(&effects), expected);
    let breaches: Vec<(&str, i64)> = effects
        .iter()
        .filter_map(|e| match e {
            Effect::SlaBreached { sla, at, .. } => Some((*sla, at.since(T0).whole_minutes())),
            _ => None,
        })
        .collect();
    assert_eq!(breaches, [("response", 15), ("resolution", 60)]);
}

#[test]
fn an_ack_at_each_level_stops_escalation() {
    for (ack_minute, pages_before) in [(1, 1), (16, 2), (46, 3), (106, 4)] {
        let mut engine = engine();
        engine.handle_alert(
            T0,
            &alert(1, "payment", Severity::P1, AlertEventKind::Opened),
        );
        let before = run_until(&mut engine, minutes(ack_minute));
        assert_eq!(pages(&before).len(), pages_before, "ack at {ack_minute}");
        engine
            .handle_action(minutes(ack_minute), 1, "ana", Action::Acknowledge, None)
            .unwrap();
        let after = run_until(&mut engine, minutes(24 * 60));
        assert!(pages(&after).is_empty(), "ack at {ack_minute}: {after:?}");
        let incident = engine.incident(1).unwrap();
        assert_eq!(incident.state, IncidentState::Acknowledged);
        assert_eq!(incident.response.breached, ack_minute > 15);
    }
}

#[test]
fn a_level_with_nobody_is_skipped_or_waited_on_as_configured() {
    // (what an empty L2 does, pages by minute)
    let cases = [
        (
            EmptyLevel::Skip,
            vec![(0, "L1"), (15, "L3"), (75, "executive")],
        ),
        (
            EmptyLevel::Wait,
            vec![(0, "L1"), (45, "L3"), (105, "executive")],
        ),
    ];
    for (empty_level, expected) in cases {
        let mut policy = IncidentPolicy::runbook();
        policy.severities[0].levels[1].targets.clear();
        policy.severities[0].empty_level = empty_level;
        policy.severities[0].repeat_every = None;
        let mut engine = IncidentEngine::new(policy, Vec::new());
        engine.handle_alert(
            T0,
            &alert(1, "payment", Severity::P1, AlertEventKind::Opened),
        );
        let mut effects: Vec<Effect> = std::iter::from_fn(|| engine.poll_effect()).collect();
        effects.extend(run_until(&mut engine, minutes(600)));
        let expected: Vec<(i64, String)> = expected
            .into_iter()
            .map(|(m, l)| (m, l.to_owned()))
            .collect();
        assert_eq!(pages(&effects), expected, "{empty_level:?}");
        assert!(kinds(engine.incident(1).unwrap()).contains(&"escalation_skipped"));
    }
}

#[test]
fn an_ack_timeout_escalates_again_only_when_configured() {
    let mut policy = IncidentPolicy::runbook();
    policy.ack_timeout = Some(DurationMs::from_minutes(30));
    let mut engine = IncidentEngine::new(policy, Vec::new());
    engine.handle_alert(
        T0,
        &alert(1, "payment", Severity::P1, AlertEventKind::Opened),
    );
    run_until(&mut engine, minutes(5));
    engine
        .handle_action(minutes(5), 1, "ana", Action::Acknowledge, None)
        .unwrap();
    let effects = run_until(&mut engine, minutes(40));
    assert_eq!(pages(&effects), [(35, "L1".to_owned())]);
    assert!(kinds(engine.incident(1).unwrap()).contains(&"ack_timeout"));
}

#[test]
fn a_p2_upgraded_by_its_alert_becomes_p1_with_the_evidence() {
    let mut engine = engine();
    engine.handle_alert(
        T0,
        &alert(1, "checkout", Severity::P2, AlertEventKind::Opened),
    );
    let first = run_until(&mut engine, minutes(20));
    assert_eq!(pages(&first), [(0, "L1".to_owned())]);
    engine.handle_alert(
        minutes(20),
        &alert(1, "checkout", Severity::P1, AlertEventKind::Upgraded),
    );
    let effects = run_until(&mut engine, minutes(40));
    assert_eq!(
        pages(&effects),
        [(20, "L1".to_owned()), (35, "L2".to_owned())]
    );
    let incident = engine.incident(1).unwrap();
    assert_eq!(incident.severity, IncidentSeverity::P1);
    let upgrade = incident
        .timeline
        .iter()
        .find(|e| e.kind == TimelineKind::Upgraded)
        .unwrap();
    assert!(
        upgrade.text.contains("P2 → P1") && upgrade.text.contains("9.0σ"),
        "{upgrade:?}"
    );
    // The P1 response clock runs from the upgrade: 15 minutes, not the P2's hour.
    assert_eq!(incident.response.due, minutes(35));
}

#[test]
fn severity_never_falls_silently() {
    let mut engine = engine();
    engine.handle_alert(
        T0,
        &alert(1, "checkout", Severity::P1, AlertEventKind::Opened),
    );
    // A P2 alert on the same stage does not lower the incident.
    engine.handle_alert(
        minutes(1),
        &alert(2, "checkout", Severity::P2, AlertEventKind::Opened),
    );
    assert_eq!(engine.incident(1).unwrap().severity, IncidentSeverity::P1);
    // A responder may lower it, with a reason.
    assert_eq!(
        engine.handle_action(
            minutes(2),
            1,
            "ana",
            Action::SetSeverity(IncidentSeverity::P2),
            None
        ),
        Err(ActionError::DowngradeWithoutReason)
    );
    engine
        .handle_action(
            minutes(2),
            1,
            "ana",
            Action::SetSeverity(IncidentSeverity::P2),
            Some("only gift cards affected"),
        )
        .unwrap();
    let incident = engine.incident(1).unwrap();
    assert_eq!(incident.severity, IncidentSeverity::P2);
    assert!(
        incident
            .timeline
            .last()
            .unwrap()
            .text
            .contains("gift cards")
    );
    // The same severity again is refused, not recorded.
    assert_eq!(
        engine.handle_action(
            minutes(3),
            1,
            "ana",
            Action::SetSeverity(IncidentSeverity::P2),
            None
        ),
        Err(ActionError::SeverityUnchanged("P2"))
    );
    // Raised by hand, it takes P1's clocks and walks the P1 path from L1, as an upgrade
    // by its alert does.
    while engine.poll_effect().is_some() {}
    engine
        .handle_action(
            minutes(40),
            1,
            "ana",
            Action::SetSeverity(IncidentSeverity::P1),
            None,
        )
        .unwrap();
    let effects = run_until(&mut engine, minutes(56));
    assert_eq!(
        pages(&effects),
        [(40, "L1".to_owned()), (55, "L2".to_owned())]
    );
    // Lowered to P3, which pages nobody, escalation stops.
    engine
        .handle_action(
            minutes(57),
            1,
            "ana",
            Action::SetSeverity(IncidentSeverity::P3),
            Some("a display glitch"),
        )
        .unwrap();
    assert!(pages(&run_until(&mut engine, minutes(600))).is_empty());
    assert_eq!(engine.incident(1).unwrap().escalation.next_at, None);
}

/// The last level is paged once, then again at most `REPEATS_MAX` times, whatever the path's
/// length, the repeat interval or the empty-level rule; the table gives, per policy, the
/// minutes of the last level's pages.
#[test]
fn the_last_level_is_paged_again_at_most_repeats_max_times() {
    struct Case {
        name: &'static str,
        /// Levels' windows, in minutes; the last is the level that repeats.
        windows: &'static [i64],
        repeat_every_minutes: Option<i64>,
        /// An empty level (by index) and what it does.
        empty: Option<(usize, EmptyLevel)>,
        /// Pages of the last level: its first and then its repeats.
        last_level_pages: usize,
        first_last_page_minute: i64,
    }
    let cases = [
        Case {
            name: "the runbook's P1 path",
            windows: &[15, 30, 60, 120],
            repeat_every_minutes: Some(120),
            empty: None,
            last_level_pages: 1 + REPEATS_MAX as usize,
            first_last_page_minute: 105,
        },
        Case {
            name: "one level, repeated every 5 minutes",
            windows: &[10],
            repeat_every_minutes: Some(5),
            empty: None,
            last_level_pages: 1 + REPEATS_MAX as usize,
            first_last_page_minute: 0,
        },
        Case {
            name: "repeats shorter than the last window",
            windows: &[15, 240],
            repeat_every_minutes: Some(1),
            empty: None,
            last_level_pages: 1 + REPEATS_MAX as usize,
            first_last_page_minute: 15,
        },
        Case {
            name: "an empty level skipped",
            windows: &[15, 30, 60],
            repeat_every_minutes: Some(60),
            empty: Some((1, EmptyLevel::Skip)),
            last_level_pages: 1 + REPEATS_MAX as usize,
            first_last_page_minute: 15,
        },
        Case {
            name: "an empty level waited on",
            windows: &[15, 30, 60],
            repeat_every_minutes: Some(60),
            empty: Some((1, EmptyLevel::Wait)),
            last_level_pages: 1 + REPEATS_MAX as usize,
            first_last_page_minute: 45,
        },
        Case {
            name: "no repeats",
            windows: &[15, 30],
            repeat_every_minutes: None,
            empty: None,
            last_level_pages: 1,
            first_last_page_minute: 15,
        },
    ];
    for case in cases {
        let mut policy = IncidentPolicy::runbook();
        let p1 = &mut policy.severities[0];
        p1.levels = case
            .windows
            .iter()
            .enumerate()
            .map(|(index, minutes)| EscalationLevel {
                name: format!("level {index}"),
                targets: vec![format!("person {index}")],
                respond_within: DurationMs::from_minutes(*minutes),
            })
            .collect();
        p1.repeat_every = case.repeat_every_minutes.map(DurationMs::from_minutes);
        if let Some((index, empty_level)) = case.empty {
            p1.levels[index].targets.clear();
            p1.empty_level = empty_level;
        }
        let last = p1.levels.last().unwrap().name.clone();
        let mut engine = IncidentEngine::new(policy, Vec::new());
        engine.handle_alert(
            T0,
            &alert(1, "payment", Severity::P1, AlertEventKind::Opened),
        );
        let mut effects: Vec<Effect> = std::iter::from_fn(|| engine.poll_effect()).collect();
        // Long enough for every repeat of the slowest case, many times over.
        effects.extend(run_until(&mut engine, minutes(7 * 24 * 60)));
        let last_pages: Vec<i64> = pages(&effects)
            .into_iter()
            .filter(|(_, level)| *level == last)
            .map(|(minute, _)| minute)
            .collect();
        assert_eq!(last_pages.len(), case.last_level_pages, "{}", case.name);
        assert_eq!(last_pages[0], case.first_last_page_minute, "{}", case.name);
        let incident = engine.incident(1).unwrap();
        assert!(incident.escalation.repeats <= REPEATS_MAX, "{}", case.name);
        assert_eq!(incident.escalation.next_at, None, "{}: stopped", case.name);
        if let Some(every) = case.repeat_every_minutes {
            let gaps: Vec<i64> = last_pages.windows(2).map(|w| w[1] - w[0]).collect();
            let window = *case.windows.last().unwrap();
            // The first repeat waits out the last level's window, the others the interval.
            assert_eq!(gaps[0], window, "{}", case.name);
            assert!(gaps[1..].iter().all(|gap| *gap == every), "{}", case.name);
        }
    }
}

/// An incident is named by the kind of the alert that set its severity: a volume P2 raised to
/// P1 by a conversion alert reads "P1 conversion"; a P2 conversion alert joining a volume P1
/// leaves it "P1 volume".
#[test]
fn an_incident_is_named_by_the_kind_that_set_its_severity() {
    let with_kind = |id, severity, event, kind| AlertEvent {
        kind,
        ..alert(id, "checkout", severity, event)
    };
    // (opening kind and severity, joining kind and severity, the name after)
    let cases = [
        (
            (AlertKind::Volume, Severity::P2),
            (AlertKind::Conversion, Severity::P1),
            "P1 conversion",
        ),
        (
            (AlertKind::Volume, Severity::P1),
            (AlertKind::Conversion, Severity::P2),
            "P1 volume",
        ),
        (
            (AlertKind::Conversion, Severity::P2),
            (AlertKind::Volume, Severity::P1),
            "P1 volume",
        ),
        (
            (AlertKind::Conversion, Severity::P2),
            (AlertKind::Volume, Severity::P2),
            "P2 conversion",
        ),
    ];
    for ((open_kind, open_severity), (join_kind, join_severity), want) in cases {
        let mut engine = engine();
        engine.handle_alert(
            T0,
            &with_kind(1, open_severity, AlertEventKind::Opened, open_kind),
        );
        engine.handle_alert(
            minutes(5),
            &with_kind(2, join_severity, AlertEventKind::Opened, join_kind),
        );
        let incident = engine.incident(1).unwrap();
        let name = format!("{} {}", incident.severity.as_str(), incident.kind.as_str());
        assert_eq!(
            name, want,
            "{open_kind:?} {open_severity:?} then {join_kind:?}"
        );
    }
}
