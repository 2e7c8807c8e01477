//! Silences from the start and added while running: pages held until they end.

use super::*;

#[test]
fn a_maintenance_window_holds_pages_until_it_ends() {
    let silence = Silence {
        funnel: Some("checkout".into()),
        stage: None,
        from: minutes(-10),
        to: minutes(60),
        reason: "payment provider migration".into(),
    };
    let mut engine = IncidentEngine::new(IncidentPolicy::runbook(), vec![silence]);
    engine.handle_alert(
        T0,
        &alert(1, "payment", Severity::P1, AlertEventKind::Opened),
    );
    // Nobody is paged in the window; still unacknowledged when it ends, the incident
    // escalates from L1 then.
    let effects = run_until(&mut engine, minutes(80));
    assert_eq!(
        pages(&effects),
        [(60, "L1".to_owned()), (75, "L2".to_owned())],
        "{effects:?}"
    );
    let incident = engine.incident(1).unwrap();
    assert!(incident.silenced);
    assert!(kinds(incident).contains(&"silenced"));
    // Acknowledged within the window, it never pages.
    let mut quiet = IncidentEngine::new(IncidentPolicy::runbook(), engine.silences().0.to_vec());
    quiet.handle_alert(
        T0,
        &alert(1, "payment", Severity::P1, AlertEventKind::Opened),
    );
    quiet
        .handle_action(minutes(30), 1, "ana", Action::Acknowledge, None)
        .unwrap();
    assert!(pages(&run_until(&mut quiet, minutes(300))).is_empty());
    engine
        .handle_action(minutes(80), 1, "ana", Action::Acknowledge, None)
        .unwrap();
    // Outside the window the same alert pages.
    engine.handle_alert(
        minutes(200),
        &alert(2, "cart", Severity::P1, AlertEventKind::Opened),
    );
    let effects = run_until(&mut engine, minutes(201));
    assert_eq!(pages(&effects), [(200, "L1".to_owned())]);
}

#[test]
fn silences_added_while_running_hold_pages_and_survive_a_restart() {
    let mut engine = engine();
    let window = |from: i64, to: i64, reason: &str| Silence {
        funnel: Some("checkout".into()),
        stage: Some("payment".into()),
        from: minutes(from),
        to: minutes(to),
        reason: reason.into(),
    };
    let refused = [
        (window(30, 10, "deploy"), SilenceError::Backwards),
        (window(-60, -1, "deploy"), SilenceError::Ended),
        (window(0, 8 * 24 * 60, "deploy"), SilenceError::TooLong),
        (window(0, 60, " "), SilenceError::Reason),
    ];
    for (silence, error) in refused {
        assert_eq!(engine.add_silence(T0, "ana", silence), Err(error));
    }
    let id = engine
        .add_silence(T0, "ana", window(0, 60, "PSP migration"))
        .unwrap();
    let engine_meta = serde_json::to_string(&engine.meta()).unwrap();
    let mut engine = IncidentEngine::restore(
        IncidentPolicy::runbook(),
        Vec::new(),
        serde_json::from_str(&engine_meta).unwrap(),
        Vec::new(),
    );
    assert_eq!(engine.silences().1.len(), 1);
    engine.handle_alert(
        minutes(5),
        &alert(1, "payment", Severity::P1, AlertEventKind::Opened),
    );
    // Another stage is not silenced.
    engine.handle_alert(
        minutes(5),
        &alert(2, "cart", Severity::P1, AlertEventKind::Opened),
    );
    let effects = run_until(&mut engine, minutes(20));
    assert_eq!(
        pages(&effects),
        [(5, "L1".to_owned()), (20, "L2".to_owned())]
    );
    engine
        .handle_action(minutes(20), 2, "ana", Action::Acknowledge, None)
        .unwrap();
    // Ended early, the silence releases its incident at once.
    assert!(engine.end_silence(minutes(25), id).is_some());
    assert!(engine.end_silence(minutes(25), id).is_none());
    let effects = run_until(&mut engine, minutes(26));
    assert_eq!(pages(&effects), [(25, "L1".to_owned())]);
    assert!(
        kinds(engine.incident(1).unwrap()).contains(&"silenced"),
        "{:?}",
        engine.incident(1)
    );
}
