//! Telling people: who an incident has paged, the brief on every effect, the acknowledgement
//! and the resolution told to everyone paged, and failover when a level cannot be reached.

use super::*;
use crate::impact::{Aov, AovSource, Impact, MICRO};
use crate::money::{Currency, Money};

/// An effect in one line, for tables: `page L1 [on-call engineer]`, `ack bo [..]`,
/// `resolved revloop [..]`, `sla response [..]`, with its minute.
fn told(effects: &[Effect]) -> Vec<(i64, String)> {
    effects
        .iter()
        .map(|effect| {
            let minute = effect.at().since(T0).whole_minutes();
            let line = match effect {
                Effect::Notify { level, targets, .. } => {
                    format!("page {level} [{}]", targets.join(", "))
                }
                Effect::Remind { targets, .. } => format!("remind [{}]", targets.join(", ")),
                Effect::SlaBreached { sla, targets, .. } => {
                    format!("sla {sla} [{}]", targets.join(", "))
                }
                Effect::Acknowledged { by, targets, .. } => {
                    format!("ack {by} [{}]", targets.join(", "))
                }
                Effect::Resolved {
                    by,
                    false_alarm,
                    targets,
                    ..
                } => format!(
                    "resolved{} {by} [{}]",
                    if *false_alarm { " (false alarm)" } else { "" },
                    targets.join(", ")
                ),
            };
            (minute, line)
        })
        .collect()
}

fn drained(engine: &mut IncidentEngine) -> Vec<Effect> {
    std::iter::from_fn(|| engine.poll_effect()).collect()
}

fn lines(expected: &[(i64, &str)]) -> Vec<(i64, String)> {
    expected
        .iter()
        .map(|(m, l)| (*m, (*l).to_owned()))
        .collect()
}

fn p1_payment() -> IncidentEngine {
    let mut engine = engine();
    engine.handle_alert(
        T0,
        &alert(1, "payment", Severity::P1, AlertEventKind::Opened),
    );
    engine
}

#[test]
fn an_incident_records_whom_it_paged_once_each_in_order_and_breaches_tell_them() {
    let mut engine = p1_payment();
    let effects = run_until(&mut engine, minutes(400));
    assert_eq!(
        told(&effects),
        lines(&[
            (0, "page L1 [on-call engineer]"),
            (15, "page L2 [engineering manager]"),
            (15, "sla response [on-call engineer, engineering manager]"),
            (45, "page L3 [VP engineering]"),
            (
                60,
                "sla resolution [on-call engineer, engineering manager, VP engineering]"
            ),
            (105, "page executive [CTO]"),
            (225, "page executive [CTO]"),
            (345, "page executive [CTO]"),
        ])
    );
    assert_eq!(
        engine.incident(1).unwrap().paged,
        [
            "on-call engineer",
            "engineering manager",
            "VP engineering",
            "CTO"
        ]
    );
}

#[test]
fn an_ack_and_a_resolution_are_told_to_everyone_paged_once() {
    let mut engine = p1_payment();
    let mut effects = run_until(&mut engine, minutes(20));
    for (minute, action, reason) in [
        (21, Action::Acknowledge, None),
        // A second ack changes nothing and tells nobody.
        (22, Action::Acknowledge, None),
        (30, Action::Resolve, Some("fixed the gateway")),
    ] {
        engine
            .handle_action(minutes(minute), 1, "bo", action, reason)
            .unwrap();
        effects.extend(drained(&mut engine));
    }
    effects.extend(run_until(&mut engine, minutes(600)));
    assert_eq!(
        told(&effects),
        lines(&[
            (0, "page L1 [on-call engineer]"),
            (15, "page L2 [engineering manager]"),
            (15, "sla response [on-call engineer, engineering manager]"),
            (21, "ack bo [on-call engineer, engineering manager]"),
            (30, "resolved bo [on-call engineer, engineering manager]"),
        ])
    );
}

#[test]
fn each_way_of_ending_or_answering_is_told() {
    // (the action at minute 5 after L1's page, its reason, what is told after the page)
    let cases: Vec<(Action, Option<&str>, Vec<&str>)> = vec![
        (
            Action::ResolveFalseAlarm,
            None,
            vec!["resolved (false alarm) ana [on-call engineer]"],
        ),
        (
            Action::Mitigate {
                mitigation: Mitigation::Rollback,
                detail: String::new(),
            },
            None,
            vec!["ack ana [on-call engineer]"],
        ),
        // Resolving an unacknowledged incident tells its end, not an ack.
        (
            Action::Resolve,
            Some("a test order"),
            vec!["resolved ana [on-call engineer]"],
        ),
        (Action::Note("looking".into()), None, vec![]),
    ];
    for (action, reason, expected) in cases {
        let mut engine = p1_payment();
        drained(&mut engine);
        engine
            .handle_action(minutes(5), 1, "ana", action, reason)
            .unwrap();
        let effects: Vec<String> = told(&drained(&mut engine))
            .into_iter()
            .map(|(_, line)| line)
            .collect();
        assert_eq!(effects, expected);
    }
}

#[test]
fn the_engine_resolving_by_itself_tells_everyone_paged() {
    let mut engine = engine();
    engine.handle_alert(
        T0,
        &alert(1, "checkout", Severity::P2, AlertEventKind::Opened),
    );
    let effects = run_until(&mut engine, minutes(300));
    assert_eq!(
        told(&effects),
        lines(&[
            (0, "page L1 [on-call engineer]"),
            (60, "page L2 [engineering manager]"),
            (60, "sla response [on-call engineer, engineering manager]"),
            (
                240,
                "resolved revloop [on-call engineer, engineering manager]"
            ),
        ])
    );
}

#[test]
fn an_incident_that_paged_nobody_tells_nobody() {
    let mut policy = IncidentPolicy::runbook();
    policy.severities[0].levels.clear();
    let mut engine = IncidentEngine::new(policy, Vec::new());
    engine.handle_alert(
        T0,
        &alert(1, "payment", Severity::P1, AlertEventKind::Opened),
    );
    engine
        .handle_action(minutes(5), 1, "ana", Action::Acknowledge, None)
        .unwrap();
    engine
        .handle_action(minutes(6), 1, "ana", Action::Resolve, Some("gone"))
        .unwrap();
    assert!(engine.incident(1).unwrap().paged.is_empty());
    assert_eq!(told(&drained(&mut engine)), []);
}

#[test]
fn a_reopened_incident_tells_those_it_pages_again_of_its_new_end() {
    let mut engine = p1_payment();
    let mut effects = run_until(&mut engine, minutes(20));
    let act = |engine: &mut IncidentEngine, minute: i64, action: Action| {
        engine
            .handle_action(minutes(minute), 1, "ana", action, Some("checked"))
            .unwrap();
    };
    act(&mut engine, 21, Action::Resolve);
    act(&mut engine, 30, Action::Reopen);
    effects.extend(drained(&mut engine));
    // Through a restart: whom it paged is kept.
    let mut engine = restart(&engine);
    act(&mut engine, 31, Action::Resolve);
    effects.extend(drained(&mut engine));
    assert_eq!(
        told(&effects),
        lines(&[
            (0, "page L1 [on-call engineer]"),
            (15, "page L2 [engineering manager]"),
            (15, "sla response [on-call engineer, engineering manager]"),
            (21, "resolved ana [on-call engineer, engineering manager]"),
            (30, "page L1 [on-call engineer]"),
            (31, "resolved ana [on-call engineer]"),
        ])
    );
}

#[test]
fn every_effect_carries_the_incident_in_brief() {
    let mut engine = engine();
    let mut segment_alert = alert(1, "payment", Severity::P1, AlertEventKind::Opened);
    segment_alert.segment = Some(("device".into(), "mobile".into()));
    engine.handle_alert(T0, &segment_alert);
    engine.handle_measurement(minutes(1), "checkout", "payment", 7.5);
    let effects = run_until(&mut engine, minutes(15));
    let briefs: Vec<&Brief> = effects
        .iter()
        .map(|effect| match effect {
            Effect::Notify { brief, .. } | Effect::SlaBreached { brief, .. } => brief,
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(briefs.len(), 3);
    assert_eq!(
        briefs[0].title,
        "P1 conversion: checkout/payment, device = mobile"
    );
    assert_eq!(briefs[0].sigma, None);
    assert_eq!(briefs[1].sigma, Some(7.5));
    assert_eq!(
        briefs[1].segment,
        Some(("device".to_owned(), "mobile".to_owned()))
    );
    assert_eq!(
        (briefs[2].severity, briefs[2].kind, briefs[2].loss),
        (IncidentSeverity::P1, AlertKind::Conversion, None)
    );
}

#[test]
fn a_brief_names_the_loss_once_a_window_is_priced() {
    let mut engine = p1_payment();
    let mut incident = engine.incident(1).unwrap().clone();
    drained(&mut engine);
    let eur = Currency::parse("EUR").unwrap();
    let aov = Aov {
        minor: 5_000,
        currency: eur,
        source: AovSource::Config,
        n_orders: 0,
    };
    let mut impact = Impact::new(eur, 5, aov);
    assert_eq!(Brief::of(&incident).loss, None, "no impact yet");
    incident.impact = Some(impact.clone());
    assert_eq!(Brief::of(&incident).loss, None, "no window closed yet");
    impact.n_windows = 1;
    impact.loss_micro_minor = 12_345 * i128::from(MICRO);
    incident.impact = Some(impact);
    assert_eq!(Brief::of(&incident).loss, Some(Money::new(12_345, eur)));
}

#[test]
fn an_unreachable_level_pages_the_next_at_once_and_only_once() {
    let mut engine = p1_payment();
    let mut effects = run_until(&mut engine, minutes(5));
    assert!(engine.handle_unreachable(minutes(5), 1, "L1"));
    // The same report again (another node, a retry) changes nothing.
    assert!(!engine.handle_unreachable(minutes(6), 1, "L1"));
    effects.extend(run_until(&mut engine, minutes(100)));
    assert_eq!(
        told(&effects),
        lines(&[
            (0, "page L1 [on-call engineer]"),
            (5, "page L2 [engineering manager]"),
            (15, "sla response [on-call engineer, engineering manager]"),
            // The path goes on from the failover: L2's 30 minutes, then L3's hour.
            (35, "page L3 [VP engineering]"),
            (
                60,
                "sla resolution [on-call engineer, engineering manager, VP engineering]"
            ),
            (95, "page executive [CTO]"),
        ])
    );
    let Effect::Notify { reason, .. } = &effects[1] else {
        panic!("{:?}", effects[1]);
    };
    assert_eq!(
        reason,
        "nobody at L1 could be reached (every delivery failed): paging L2 now"
    );
    let timeline = &engine.incident(1).unwrap().timeline;
    assert!(timeline.iter().any(|e| e.text
        == "paged L2 (engineering manager): nobody at L1 could be reached (every delivery failed): paging L2 now"));
}

#[test]
fn an_unreachable_level_changes_nothing_unless_the_incident_waits_on_it() {
    // (what happened before the report at minute 20, incident, level)
    type Setup = fn(&mut IncidentEngine);
    let nothing: Setup = |_| {};
    let acked: Setup = |engine| {
        engine
            .handle_action(minutes(2), 1, "ana", Action::Acknowledge, None)
            .unwrap();
    };
    let recovered: Setup = |engine| {
        engine.handle_alert(
            minutes(2),
            &alert(1, "payment", Severity::P1, AlertEventKind::Closed),
        );
        engine.handle_measurement(minutes(3), "checkout", "payment", 0.5);
        engine.handle_timeout(minutes(3));
        assert!(engine.incident(1).unwrap().is_recovered());
    };
    let cases: [(Setup, u64, &str); 6] = [
        (acked, 1, "L1"),
        (recovered, 1, "L1"),
        // At minute 20, L2 was paged at 15: L1 is no longer the level it waits on.
        (nothing, 1, "L1"),
        (nothing, 1, "L9"),
        (nothing, 9, "L2"),
        (nothing, 1, ""),
    ];
    for (i, (setup, id, level)) in cases.into_iter().enumerate() {
        let mut engine = p1_payment();
        setup(&mut engine);
        engine.run_until(minutes(20));
        let before = engine.incident(1).unwrap().clone();
        drained(&mut engine);
        assert!(
            !engine.handle_unreachable(minutes(20), id, level),
            "case {i}"
        );
        assert_eq!(told(&drained(&mut engine)), [], "case {i}");
        assert_eq!(engine.incident(1).unwrap().escalation, before.escalation);
    }
    // L2 itself, waited on at minute 20, fails over to L3.
    let mut engine = p1_payment();
    engine.run_until(minutes(20));
    drained(&mut engine);
    assert!(engine.handle_unreachable(minutes(20), 1, "L2"));
    assert_eq!(
        told(&drained(&mut engine)),
        lines(&[(20, "page L3 [VP engineering]")])
    );
}

#[test]
fn the_last_level_has_no_next_to_fail_over_to() {
    let mut engine = p1_payment();
    engine.run_until(minutes(110));
    drained(&mut engine);
    assert!(!engine.handle_unreachable(minutes(110), 1, "executive"));
    assert_eq!(told(&drained(&mut engine)), []);
}
