//! Responders' actions: what is refused, and what reaches the timeline.

use super::*;

#[test]
fn bad_actions_are_refused_and_change_nothing() {
    let mut engine = engine();
    engine.handle_alert(
        T0,
        &alert(1, "payment", Severity::P1, AlertEventKind::Opened),
    );
    // Resolving before the criteria hold needs a reason, and says which do not hold.
    assert_eq!(
        engine.handle_action(T0, 1, "ana", Action::Resolve, None),
        Err(ActionError::ResolveWithoutReason(
            "within_2_sigma, quiet, root_cause".into()
        ))
    );
    engine
        .handle_action(T0, 1, "ana", Action::Resolve, Some("false alarm"))
        .unwrap();
    let before = engine.incident(1).unwrap().clone();
    let long = "x".repeat(TEXT_BYTES_MAX + 1);
    let cases: Vec<(u64, Action, ActionError)> = vec![
        (9, Action::Acknowledge, ActionError::UnknownIncident(9)),
        (
            1,
            Action::Resolve,
            ActionError::IllegalTransition {
                state: "resolved",
                action: "resolved",
            },
        ),
        (
            1,
            Action::Acknowledge,
            ActionError::IllegalTransition {
                state: "resolved",
                action: "acknowledged",
            },
        ),
        (
            1,
            Action::Note(long.clone()),
            ActionError::TooLong { field: "text" },
        ),
        (
            1,
            Action::Note("  ".into()),
            ActionError::Empty { field: "text" },
        ),
        (
            1,
            Action::CheckItem {
                index: 99,
                finding: String::new(),
            },
            ActionError::UnknownChecklistItem(99),
        ),
    ];
    for (id, action, want) in cases {
        assert_eq!(
            engine.handle_action(minutes(1), id, "ana", action.clone(), None),
            Err(want),
            "{action:?}"
        );
    }
    assert_eq!(engine.incident(1).unwrap(), &before);
    engine
        .handle_action(minutes(2), 1, "ana", Action::Reopen, Some("relapsed"))
        .unwrap();
    assert_eq!(engine.incident(1).unwrap().state, IncidentState::Triggered);
}

#[test]
fn every_action_is_on_the_timeline_with_who_and_when() {
    let mut engine = engine();
    engine.handle_alert(
        T0,
        &alert(1, "payment", Severity::P1, AlertEventKind::Opened),
    );
    let actions = [
        Action::Acknowledge,
        Action::Note("PSP dashboard shows 502s".into()),
        Action::SetScope {
            stage: "payment".into(),
            segment: Some(("payment_method".into(), "card".into())),
        },
        Action::CheckItem {
            index: 2,
            finding: "PSP returns 502".into(),
        },
        Action::Mitigate {
            mitigation: Mitigation::BackupPaymentProcessor,
            detail: "switched to Adyen".into(),
        },
        Action::RootCause("PSP outage".into()),
        Action::ActionItem {
            text: "alert on PSP 5xx".into(),
            owner: "bo".into(),
            due: minutes(7 * 24 * 60),
        },
    ];
    for (i, action) in actions.into_iter().enumerate() {
        engine
            .handle_action(minutes(i as i64 + 1), 1, "ana", action, None)
            .unwrap();
    }
    let incident = engine.incident(1).unwrap();
    assert_eq!(
        kinds(incident)[1..],
        [
            "escalated",
            "acknowledged",
            "note",
            "scope_set",
            "checklist",
            "mitigated",
            "root_cause",
            "action_item"
        ]
    );
    assert!(incident.timeline[2..].iter().all(|e| e.actor == "ana"));
    assert_eq!(incident.state, IncidentState::Mitigated);
    assert_eq!(incident.checklist[2].as_ref().unwrap().by, "ana");
    assert_eq!(incident.mitigated_at, Some(minutes(5)));
}

/// Acknowledging what is already acknowledged (or mitigated, which acknowledges) succeeds and
/// changes nothing: no timeline entry, no new time, no effect.
#[test]
fn a_second_ack_succeeds_and_changes_nothing() {
    let mut engine = engine();
    engine.handle_alert(
        T0,
        &alert(1, "payment", Severity::P1, AlertEventKind::Opened),
    );
    engine
        .handle_action(minutes(3), 1, "ana", Action::Acknowledge, None)
        .unwrap();
    run_until(&mut engine, minutes(3));
    for (minute, then) in [(5, None), (8, Some("mitigate"))] {
        if then.is_some() {
            engine
                .handle_action(
                    minutes(minute - 1),
                    1,
                    "ana",
                    Action::Mitigate {
                        mitigation: Mitigation::Rollback,
                        detail: "rolled back".into(),
                    },
                    None,
                )
                .unwrap();
        }
        let before = engine.incident(1).unwrap().clone();
        assert_eq!(
            engine.handle_action(
                minutes(minute),
                1,
                "bo",
                Action::Acknowledge,
                Some("me too")
            ),
            Ok(())
        );
        let after = engine.incident(1).unwrap();
        assert_eq!(after, &before, "ack after {then:?}");
        assert_eq!(after.acknowledged_at, Some(minutes(3)));
        assert_eq!(engine.poll_effect(), None);
    }
    assert_eq!(
        kinds(engine.incident(1).unwrap())
            .iter()
            .filter(|k| **k == "acknowledged")
            .count(),
        1
    );
}

#[test]
fn a_false_alarm_resolves_without_the_criteria_and_a_reopen_clears_it() {
    let mut engine = engine();
    engine.handle_alert(
        T0,
        &alert(1, "payment", Severity::P1, AlertEventKind::Opened),
    );
    // A P1 owes a root cause before it resolves; a false alarm owes none.
    engine
        .handle_action(T0, 1, "ana", Action::ResolveFalseAlarm, Some("a load test"))
        .unwrap();
    let incident = engine.incident(1).unwrap();
    assert_eq!(incident.state, IncidentState::Resolved);
    assert!(incident.false_alarm);
    let last = incident.timeline.last().unwrap();
    assert_eq!(
        (last.kind, last.text.as_str()),
        (
            TimelineKind::Resolved,
            "resolved as a false alarm (a load test)"
        )
    );
    assert_eq!(
        engine.handle_action(T0, 1, "ana", Action::ResolveFalseAlarm, None),
        Err(ActionError::IllegalTransition {
            state: "resolved",
            action: "resolved",
        })
    );
    // The mark survives a restart, and a reopen clears it.
    let mut engine = restart(&engine);
    assert!(engine.incident(1).unwrap().false_alarm);
    engine
        .handle_action(minutes(5), 1, "ana", Action::Reopen, Some("it was real"))
        .unwrap();
    assert!(!engine.incident(1).unwrap().false_alarm);
}
