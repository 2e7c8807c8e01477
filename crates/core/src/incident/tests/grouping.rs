//! Which incident an alert joins: related alerts group, a returning alert reopens.

use super::*;

#[test]
fn related_alerts_join_one_incident_and_flapping_reopens_it() {
    let mut engine = engine();
    engine.handle_alert(
        T0,
        &alert(1, "payment", Severity::P2, AlertEventKind::Opened),
    );
    engine.handle_alert(
        minutes(2),
        &alert(2, "payment", Severity::P2, AlertEventKind::Opened),
    );
    assert_eq!(engine.incidents().count(), 1);
    engine
        .handle_action(minutes(3), 1, "ana", Action::Resolve, Some("pixel fixed"))
        .unwrap();
    // Back within the 30-minute hold: the same incident, reopened.
    engine.handle_alert(
        minutes(20),
        &alert(3, "payment", Severity::P2, AlertEventKind::Opened),
    );
    assert_eq!(engine.incidents().count(), 1);
    let incident = engine.incident(1).unwrap();
    assert_eq!(incident.state, IncidentState::Triggered);
    assert!(kinds(incident).contains(&"reopened"));
    engine
        .handle_action(minutes(21), 1, "ana", Action::Resolve, Some("fixed"))
        .unwrap();
    // Past the hold: a new incident.
    engine.handle_alert(
        minutes(60),
        &alert(4, "payment", Severity::P2, AlertEventKind::Opened),
    );
    assert_eq!(engine.incidents().count(), 2);
    // Another stage is another incident.
    engine.handle_alert(
        minutes(61),
        &alert(5, "cart", Severity::P2, AlertEventKind::Opened),
    );
    assert_eq!(engine.incidents().filter(|i| i.is_open()).count(), 2);
}
