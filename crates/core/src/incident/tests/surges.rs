//! Surges are information, not incidents: no incident, no page, but attached to the incidents
//! of the funnel they overlap as the checklist's external factor.

use super::*;
use crate::alert::Direction;

/// A surge of entries at `product_viewed`: 9 a minute against 3.
fn surge(id: u64, event: AlertEventKind) -> AlertEvent {
    AlertEvent {
        kind: AlertKind::Volume,
        direction: Direction::Surge,
        baseline_rate: 3.0,
        observed_rate: 9.0,
        sigma: 6.0,
        ..alert(id, "product_viewed", Severity::P2, event)
    }
}

fn surge_finding(incident: &Incident) -> Option<&Tick> {
    incident.checklist[SURGE_CHECKLIST_ITEM].as_ref()
}

#[test]
fn the_surge_item_is_the_checklists_campaign_spikes() {
    assert_eq!(
        CHECKLIST[SURGE_CHECKLIST_ITEM],
        ("external", "Marketing campaign traffic spikes")
    );
}

#[test]
fn a_surge_opens_no_incident_and_pages_nobody() {
    let mut engine = engine();
    engine.handle_alert(minutes(0), &surge(1, AlertEventKind::Opened));
    engine.handle_alert(minutes(30), &surge(1, AlertEventKind::Closed));
    let effects = run_until(&mut engine, minutes(24 * 60));
    assert_eq!(engine.incidents().count(), 0);
    assert!(effects.is_empty(), "{effects:?}");
    assert_eq!(engine.meta().surges.surges.len(), 1);
    assert_eq!(
        engine.meta().surges.surges[0].closed_at,
        Some(minutes(30)),
        "its end is kept"
    );
}

#[test]
fn with_page_on_surge_a_surge_pages_like_any_alert() {
    let mut policy = IncidentPolicy::runbook();
    policy.page_on_surge = true;
    let mut engine = IncidentEngine::new(policy, Vec::new());
    engine.handle_alert(minutes(0), &surge(1, AlertEventKind::Opened));
    let effects = run_until(&mut engine, minutes(1));
    assert_eq!(engine.incidents().count(), 1);
    assert_eq!(pages(&effects), [(0, "L1".to_owned())]);
}

#[test]
fn a_collapse_of_entries_still_pages() {
    let mut engine = engine();
    let collapse = AlertEvent {
        kind: AlertKind::Volume,
        direction: Direction::Worse,
        observed_rate: 0.2,
        ..alert(1, "product_viewed", Severity::P1, AlertEventKind::Opened)
    };
    engine.handle_alert(minutes(0), &collapse);
    let effects = run_until(&mut engine, minutes(1));
    assert_eq!(pages(&effects), [(0, "L1".to_owned())]);
    let incident = engine.incidents().next().unwrap();
    assert_eq!(incident.severity, IncidentSeverity::P1);
    assert_eq!(surge_finding(incident), None);
}

/// When the surge comes and when the incident opens, in minutes from T0 (`None`: the surge does
/// not close), and whether the incident gets the surge as a finding.
#[test]
fn a_surge_is_attached_to_the_incidents_it_overlaps() {
    type Case = (&'static str, i64, Option<i64>, i64, bool);
    let cases: [Case; 5] = [
        ("incident open when the surge starts", 10, Some(40), 0, true),
        ("incident opens during the surge", 0, None, 10, true),
        ("incident opens just after the surge", 0, Some(20), 70, true),
        (
            "incident opens long after the surge",
            0,
            Some(20),
            90,
            false,
        ),
        (
            "incident opens long after, surge still on",
            0,
            None,
            600,
            true,
        ),
    ];
    for (name, surge_at, closed_at, incident_at, attached) in cases {
        let mut engine = engine();
        let mut inputs: Vec<(i64, AlertEvent)> = vec![
            (surge_at, surge(1, AlertEventKind::Opened)),
            (
                incident_at,
                alert(2, "payment", Severity::P2, AlertEventKind::Opened),
            ),
        ];
        if let Some(closed_at) = closed_at {
            inputs.push((closed_at, surge(1, AlertEventKind::Closed)));
        }
        inputs.sort_by_key(|(at, _)| *at);
        for (at, input) in &inputs {
            engine.handle_alert(minutes(*at), input);
        }
        assert_eq!(engine.incidents().count(), 1, "{name}");
        let incident = engine.incidents().next().unwrap();
        let finding = surge_finding(incident);
        assert_eq!(finding.is_some(), attached, "{name}: {finding:?}");
        let entries = incident
            .timeline
            .iter()
            .filter(|e| e.kind == TimelineKind::Checklist && e.text.contains("surge"))
            .count();
        assert_eq!(
            entries,
            usize::from(attached),
            "{name}: {:?}",
            kinds(incident)
        );
        if let Some(tick) = finding {
            assert_eq!(tick.by, ENGINE_ACTOR);
            assert!(
                tick.finding
                    .starts_with("suspect: a surge of product_viewed events")
            );
            assert!(
                tick.finding.contains("3.0× the baseline"),
                "{}",
                tick.finding
            );
        }
    }
}

#[test]
fn a_surge_leaves_other_funnels_and_a_responders_tick_alone() {
    let mut engine = engine();
    engine.handle_alert(
        minutes(0),
        &alert(1, "payment", Severity::P2, AlertEventKind::Opened),
    );
    let other_funnel = AlertEvent {
        funnel: "wholesale".into(),
        ..alert(2, "payment", Severity::P2, AlertEventKind::Opened)
    };
    engine.handle_alert(minutes(1), &other_funnel);
    let checkout = engine
        .incidents()
        .find(|i| i.funnel == "checkout")
        .unwrap()
        .id;
    engine
        .handle_action(
            minutes(2),
            checkout,
            "ana",
            Action::CheckItem {
                index: SURGE_CHECKLIST_ITEM,
                finding: "no campaign running".into(),
            },
            None,
        )
        .unwrap();
    engine.handle_alert(minutes(3), &surge(3, AlertEventKind::Opened));
    // Taken in twice (a restarted detector): attached once.
    engine.handle_alert(minutes(4), &surge(3, AlertEventKind::Opened));
    let checkout = engine.incident(checkout).unwrap();
    assert_eq!(surge_finding(checkout).unwrap().by, "ana");
    let surge_entries = |i: &Incident| {
        i.timeline
            .iter()
            .filter(|e| e.actor == ENGINE_ACTOR && e.text.contains("a surge of"))
            .count()
    };
    assert_eq!(surge_entries(checkout), 1);
    let wholesale = engine
        .incidents()
        .find(|i| i.funnel == "wholesale")
        .unwrap();
    assert_eq!(surge_finding(wholesale), None);
    assert_eq!(surge_entries(wholesale), 0);
}

#[test]
fn surges_survive_a_restart_and_stay_bounded() {
    let mut engine = engine();
    engine.handle_alert(minutes(0), &surge(1, AlertEventKind::Opened));
    let mut engine = restart(&engine);
    engine.handle_alert(
        minutes(5),
        &alert(2, "payment", Severity::P2, AlertEventKind::Opened),
    );
    let incident = engine.incidents().next().unwrap();
    assert!(surge_finding(incident).is_some(), "{:?}", kinds(incident));

    let mut engine = super::engine();
    let n = SURGES_KEPT_MAX as u64 + 10;
    for id in 0..n {
        engine.handle_alert(minutes(id as i64), &surge(100 + id, AlertEventKind::Opened));
    }
    let kept = engine.meta().surges.surges;
    assert_eq!(kept.len(), SURGES_KEPT_MAX);
    assert_eq!(
        kept.last().unwrap().alert_id,
        100 + n - 1,
        "the newest kept"
    );
}

#[test]
fn an_incident_opened_while_surges_paged_still_hears_its_surge_close() {
    let mut policy = IncidentPolicy::runbook();
    policy.page_on_surge = true;
    let mut engine = IncidentEngine::new(policy, Vec::new());
    engine.handle_alert(minutes(0), &surge(1, AlertEventKind::Opened));
    assert_eq!(engine.incidents().count(), 1);
    // The operator turns page_on_surge off and restarts: the open incident holds the alert.
    let incidents: Vec<Incident> = engine.incidents().cloned().collect();
    let mut engine = IncidentEngine::restore(
        IncidentPolicy::runbook(),
        Vec::new(),
        engine.meta(),
        incidents,
    );
    engine.handle_alert(minutes(30), &surge(1, AlertEventKind::Closed));
    let incident = engine.incidents().next().unwrap();
    assert_eq!(incident.alerts.get(&1), Some(&false), "{incident:?}");
}

#[test]
fn a_surge_whose_close_never_came_is_forgotten_after_a_day() {
    let mut engine = engine();
    engine.handle_alert(minutes(0), &surge(1, AlertEventKind::Opened));
    // A day and more later, with no close: an incident opening now is not told it is still on.
    let later = minutes(25 * 60);
    engine.handle_alert(
        later,
        &alert(2, "payment", Severity::P2, AlertEventKind::Opened),
    );
    let incident = engine.incidents().next().unwrap();
    assert!(surge_finding(incident).is_none(), "{incident:?}");
}
