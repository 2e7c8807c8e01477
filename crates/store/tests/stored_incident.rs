//! The stored incident body is a boundary: a body written before the versioned record existed
//! still loads, to the same incident, and what this build writes is that body plus `"v": 1`.
//!
//! `fixtures/incident_body_before_v1.json` was captured from the code before the record (the
//! core `Incident`'s serde derive, as the server stored it) after driving the incident engine
//! through a P2 alert upgraded to P1, escalation, an acknowledgement, a note, two checklist
//! ticks, a scope, a rollback, a root cause, an action item, four measurements and the alert
//! closing. The previous format and V1 have the same fields, so today the fixture mostly
//! proves stability against future renames in core: if one changes a stored name, this fails.
//!
//! `fixtures/incident_meta_before_v1.json` is the incident state's meta as the server stored it
//! before (its own serde derive of the engine's `EngineMeta` and its alert clock), captured after
//! adding two silences while running, one scoped to a stage and one shop-wide.

use revloop_core::Timestamp;
use revloop_core::alert::AlertKind;
use revloop_core::incident::{Incident, IncidentSeverity, IncidentState, Mitigation};
use std::collections::BTreeMap;

use revloop_store::{
    AlertWatermark, decode_incident_body, decode_incident_meta, encode_incident_body,
    encode_incident_meta,
};

const BEFORE_V1: &str = include_str!("fixtures/incident_body_before_v1.json");
const META_BEFORE_V1: &str = include_str!("fixtures/incident_meta_before_v1.json");

/// An added silence's id, funnel, stage, from, to, reason, author and time added.
type SilenceFields<'a> = (
    u64,
    Option<&'a str>,
    Option<&'a str>,
    i64,
    i64,
    &'a str,
    &'a str,
    i64,
);

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).expect("json")
}

/// A record of the format before versions, as this build writes it: the same, plus `"v": 1`.
fn with_version_1(before: &str) -> serde_json::Value {
    let mut value = json(before);
    value
        .as_object_mut()
        .expect("an object")
        .insert("v".into(), 1.into());
    value
}

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
    assert_eq!(json(&written), with_version_1(BEFORE_V1));
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

#[test]
fn a_meta_written_before_the_record_loads_and_is_written_back_with_its_version() {
    let (engine, alerts_through) = decode_incident_meta(META_BEFORE_V1).expect("the old meta");
    assert_eq!(alerts_through.floor, at(1_795_773_840_000));
    assert!(alerts_through.by_funnel.is_empty());
    assert_eq!(engine.next_id, 1);
    assert_eq!(engine.evaluated_at, at(1_795_773_900_000));
    assert_eq!(engine.next_silence_id, 3);
    let silences: Vec<SilenceFields> = engine
        .added_silences
        .iter()
        .map(|added| {
            let silence = &added.silence;
            (
                added.id,
                silence.funnel.as_deref(),
                silence.stage.as_deref(),
                silence.from.millis(),
                silence.to.millis(),
                silence.reason.as_str(),
                added.added_by.as_str(),
                added.added_at.millis(),
            )
        })
        .collect();
    assert_eq!(
        silences,
        [
            (
                1,
                Some("checkout"),
                Some("payment"),
                1_795_777_200_000,
                1_795_780_800_000,
                "processor maintenance",
                "ana",
                1_795_773_660_000
            ),
            (
                2,
                None,
                None,
                1_795_773_600_000,
                1_795_775_400_000,
                "deploy \"freeze\" window",
                "ana",
                1_795_773_660_000
            ),
        ]
    );

    let written = encode_incident_meta(&engine, &alerts_through).expect("encodes");
    assert_eq!(json(&written), with_version_1(META_BEFORE_V1));
    assert_eq!(
        decode_incident_meta(&written).expect("reads back"),
        (engine, alerts_through)
    );
}

/// Each funnel's mark is kept: a funnel that fell behind keeps its own, lower one.
#[test]
fn per_funnel_alert_marks_round_trip_and_never_go_below_the_floor() {
    let mut marks = AlertWatermark {
        floor: at(100),
        by_funnel: BTreeMap::new(),
    };
    marks.advance("checkout", at(500));
    marks.advance("signup", at(50));
    marks.advance("checkout", at(400));
    assert_eq!(
        (marks.through("checkout"), marks.through("signup")),
        (at(500), at(100))
    );
    let (engine, _) =
        decode_incident_meta(r#"{"engine":{"next_id":4,"evaluated_at":5},"alerts_through":6}"#)
            .expect("an old meta");
    let written = encode_incident_meta(&engine, &marks).expect("encodes");
    assert!(
        written.contains(r#""alerts_through_by_funnel":{"checkout":500}"#),
        "{written}"
    );
    assert_eq!(decode_incident_meta(&written).expect("reads back").1, marks);
}

#[test]
fn a_meta_from_before_added_silences_loads() {
    let (engine, alerts_through) =
        decode_incident_meta(r#"{"engine":{"next_id":4,"evaluated_at":5},"alerts_through":6}"#)
            .expect("an old meta");
    assert_eq!(
        (engine.next_id, engine.evaluated_at, alerts_through.floor),
        (4, at(5), at(6))
    );
    assert!(engine.added_silences.is_empty());
    assert_eq!(engine.next_silence_id, 0);
}

/// A guard incident (the dead man's switch) stores its kind and reason, and reads back the
/// same; the other kinds' bodies carry no reason at all, so they are what they were.
#[test]
fn a_guard_incident_keeps_its_kind_and_reason() {
    let mut incident = decode_incident_body(1, BEFORE_V1).expect("the old body loads");
    assert_eq!(incident.guard_reason, None);
    let body = encode_incident_body(&incident).unwrap();
    assert!(!body.contains("guard_reason"), "{body}");
    incident.kind = AlertKind::Guard;
    incident.guard_reason = Some("its reads fail: database is locked".into());
    let body = encode_incident_body(&incident).unwrap();
    let stored = json(&body);
    assert_eq!(stored["kind"], "guard");
    assert_eq!(stored["guard_reason"], "its reads fail: database is locked");
    assert_eq!(decode_incident_body(1, &body).unwrap(), incident);
}

/// The surges that paged nobody are kept with the engine's meta, field by field, so that an
/// incident opening after a restart still gets the surge it overlaps; a meta without them (every
/// meta written before) reads as none, and none are written as nothing.
#[test]
fn surges_round_trip_in_the_meta_and_an_older_meta_has_none() {
    use revloop_core::incident::{RecentSurges, Surge};
    let (mut engine, marks) =
        decode_incident_meta(r#"{"engine":{"next_id":4,"evaluated_at":5},"alerts_through":6}"#)
            .expect("an old meta");
    assert!(engine.surges.surges.is_empty());
    let written = encode_incident_meta(&engine, &marks).expect("encodes");
    assert!(!written.contains("surges"), "{written}");
    engine.surges = RecentSurges {
        surges: vec![Surge {
            alert_id: 0x7f0d_fdb7_4544_bf05,
            funnel: "checkout".into(),
            stage: "product_viewed".into(),
            segment: Some(("source".into(), "tiktok".into())),
            onset: at(1_795_773_600_000),
            opened_at: at(1_795_773_660_000),
            closed_at: Some(at(1_795_775_400_000)),
            baseline_rate: 3.0,
            observed_rate: 9.5,
            sigma: 6.25,
            attached_to: vec![3, 7],
        }],
    };
    let written = encode_incident_meta(&engine, &marks).expect("encodes");
    assert!(written.contains(r#""attached_to":[3,7]"#), "{written}");
    assert_eq!(
        decode_incident_meta(&written).expect("reads back"),
        (engine, marks)
    );
}

/// A recovered incident stores its recovery and reads back the same; a body written before
/// recovery existed reads as not recovered, and an incident that is not recovered writes no
/// `recovered` field, so its body is what it was.
#[test]
fn a_recovered_incident_keeps_its_recovery_and_an_old_body_reads_as_not_recovered() {
    let mut incident = decode_incident_body(1, BEFORE_V1).expect("the old body loads");
    assert_eq!(incident.recovered, None);
    let body = encode_incident_body(&incident).unwrap();
    assert!(!body.contains("recovered"), "{body}");
    incident.recovered = Some(revloop_core::incident::Recovery {
        at: at(1_795_780_000_000),
        escalation_left: Some(revloop_core::DurationMs::from_minutes(45)),
        reminded_at: Some(at(1_795_866_400_000)),
    });
    let body = encode_incident_body(&incident).unwrap();
    let stored = json(&body);
    assert_eq!(
        stored["recovered"],
        serde_json::json!({
            "at": 1_795_780_000_000_i64,
            "escalation_left_ms": 2_700_000,
            "reminded_at": 1_795_866_400_000_i64
        })
    );
    assert_eq!(decode_incident_body(1, &body).unwrap(), incident);
}

/// Whom an incident paged is stored in order and reads back the same; a body written before
/// delivery existed reads as having paged nobody, and an incident that paged nobody writes no
/// `paged` field. A declared incident keeps its kind.
#[test]
fn whom_an_incident_paged_and_a_declared_kind_round_trip_and_an_old_body_paged_nobody() {
    let mut incident = decode_incident_body(1, BEFORE_V1).expect("the old body loads");
    assert!(incident.paged.is_empty());
    let body = encode_incident_body(&incident).unwrap();
    assert!(!body.contains("paged"), "{body}");
    incident.paged = vec!["on-call engineer".into(), "engineering manager".into()];
    incident.kind = AlertKind::Declared;
    let body = encode_incident_body(&incident).unwrap();
    let stored = json(&body);
    assert_eq!(
        stored["paged"],
        serde_json::json!(["on-call engineer", "engineering manager"])
    );
    assert_eq!(stored["kind"], "declared");
    assert_eq!(decode_incident_body(1, &body).unwrap(), incident);
}
