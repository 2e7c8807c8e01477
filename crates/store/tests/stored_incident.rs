//! The stored incident body is a boundary: a body written before the versioned record existed
//! still loads, to the same incident, and what this build writes is that body plus `"v": 1`.
//!
//! `fixtures/incident_body_before_v1.json` was captured from the code before the record (the
//! core `Incident`'s serde derive, as the server stored it) after driving the incident engine
//! through a P2 alert upgraded to P1, escalation, an acknowledgement, a note, two checklist
//! ticks, a scope, a rollback, a root cause, an action item, four measurements and the alert
//! closing. The previous format and V1 have the same fields, so today the fixture mostly
//! proves stability against future renames in core: if one changes a stored name, this fails.

use revloop_core::Timestamp;
use revloop_core::alert::AlertKind;
use revloop_core::incident::{Incident, IncidentSeverity, IncidentState, Mitigation};
use revloop_store::{decode_incident_body, encode_incident_body};

const BEFORE_V1: &str = include_str!("fixtures/incident_body_before_v1.json");

fn at(ms: i64) -> Timestamp {
    Timestamp::from_millis(ms)
}

#[test]
fn a_body_written_before_the_record_loads_to_the_same_incident() {
    let incident = decode_incident_body(1, BEFORE_V1).expect("the old body loads");
    // What the previous code read it as: the core's own derive, as of this build.
    let previous: Incident = serde_json::from_str(BEFORE_V1).expect("the core's derive reads it");
    assert_eq!(incident, previous);

    // And field by field, so that the test holds when the core's derive moves on.
    assert_eq!(incident.id, 1);
    assert_eq!(
        (incident.funnel.as_str(), incident.stage.as_str()),
        ("checkout", "payment")
    );
    assert_eq!(incident.kind, AlertKind::Conversion);
    assert_eq!(incident.segment, Some(("device".into(), "mobile".into())));
    assert_eq!(
        incident.scope,
        Some(("payment".into(), Some(("device".into(), "mobile".into()))))
    );
    assert_eq!(incident.severity, IncidentSeverity::P1);
    assert_eq!(incident.state, IncidentState::Mitigated);
    assert_eq!(incident.onset, at(1_795_773_600_000));
    assert_eq!(incident.acknowledged_at, Some(at(1_795_774_860_000)));
    assert_eq!(incident.mitigated_at, Some(at(1_795_775_400_000)));
    assert_eq!(incident.resolved_at, None);
    assert_eq!(incident.severity_since, at(1_795_773_840_000));
    assert_eq!(incident.escalation.next_level, 2);
    assert_eq!(incident.escalation.next_at, None);
    assert_eq!(incident.response.due, at(1_795_774_740_000));
    assert_eq!(incident.response.met_at, Some(at(1_795_774_860_000)));
    assert!(incident.response.breached);
    assert_eq!(incident.resolution.met_at, None);
    assert!(!incident.resolution.breached);
    assert_eq!(incident.alerts.get(&7), Some(&false));
    assert_eq!(
        incident.root_cause.as_deref(),
        Some("a \"quoted\" config flag")
    );
    assert_eq!(
        incident.mitigations,
        [(Mitigation::Rollback, "rolled back 14:02".to_owned())]
    );
    assert_eq!(incident.action_items.len(), 1);
    assert_eq!(incident.action_items[0].owner, "ben");
    assert_eq!(incident.action_items[0].due, at(1_796_373_600_000));
    let ticked: Vec<(usize, &str, &str)> = incident
        .checklist
        .iter()
        .enumerate()
        .filter_map(|(index, tick)| {
            tick.as_ref()
                .map(|tick| (index, tick.by.as_str(), tick.finding.as_str()))
        })
        .collect();
    assert_eq!(
        ticked,
        [
            (2, "ana", "processor returns 502"),
            (5, "ben", "deploy 14:02")
        ]
    );
    assert_eq!(incident.checklist.len(), 16);
    let measurements: Vec<(i64, f64)> = incident
        .measurements
        .iter()
        .map(|(at, sigma)| (at.millis(), *sigma))
        .collect();
    assert_eq!(
        measurements,
        [
            (1_795_775_580_000, 6.5),
            (1_795_775_640_000, 5.25),
            (1_795_775_700_000, 3.0),
            (1_795_775_760_000, 1.5)
        ]
    );
    assert!(
        incident.timeline.is_empty(),
        "the timeline is kept row by row"
    );
}

#[test]
fn this_build_writes_the_old_body_plus_its_version() {
    let incident = decode_incident_body(1, BEFORE_V1).expect("the old body loads");
    let written = encode_incident_body(&incident).expect("encodes");
    let mut expected: serde_json::Value = serde_json::from_str(BEFORE_V1).expect("json");
    expected
        .as_object_mut()
        .expect("an object")
        .insert("v".into(), 1.into());
    let written_value: serde_json::Value = serde_json::from_str(&written).expect("json");
    assert_eq!(written_value, expected);
    assert_eq!(
        decode_incident_body(1, &written).expect("reads back"),
        incident
    );
}

#[test]
fn a_body_of_a_newer_version_is_an_error() {
    let mut newer: serde_json::Value = serde_json::from_str(BEFORE_V1).expect("json");
    newer["v"] = 2.into();
    let err = decode_incident_body(1, &newer.to_string()).expect_err("a newer body");
    assert!(err.to_string().contains("body version 2"), "{err}");
    let err = decode_incident_body(1, r#"{"id":1}"#).expect_err("a body missing fields");
    assert!(err.to_string().starts_with("incident 1: "), "{err}");
}
