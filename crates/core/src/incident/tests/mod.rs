//! The incident engine's tests, by topic, on a virtual clock. The helpers here are shared by
//! every topic; tests that parse a configuration live with the configuration's tests.

use std::collections::BTreeMap;

use super::*;
use crate::alert::{AlertEvent, AlertEventKind, AlertKind, Severity};
use crate::rng::Rng;
use crate::time::{DurationMs, Timestamp};

mod actions;
mod declare;
mod escalation;
mod grouping;
mod guard;
mod recovery;
mod resolution;
mod silences;
mod simulation;
mod surges;
mod told;

const T0: Timestamp = Timestamp::from_millis(1_795_773_600_000);

fn minutes(n: i64) -> Timestamp {
    T0.saturating_add(DurationMs::from_minutes(n))
}

fn alert(id: u64, stage: &str, severity: Severity, event: AlertEventKind) -> AlertEvent {
    AlertEvent {
        alert_id: id,
        funnel: "checkout".into(),
        stage: stage.into(),
        kind: AlertKind::Conversion,
        severity,
        event,
        direction: crate::alert::Direction::Worse,
        at: T0,
        onset: T0,
        segment: None,
        baseline_rate: 0.15,
        observed_rate: 0.6,
        sigma: 9.0,
        n: 200,
        top_segments: Vec::new(),
    }
}

fn engine() -> IncidentEngine {
    IncidentEngine::new(IncidentPolicy::runbook(), Vec::new())
}

/// Runs the engine's timers up to `until`, returning the effects.
fn run_until(engine: &mut IncidentEngine, until: Timestamp) -> Vec<Effect> {
    engine.run_until(until);
    std::iter::from_fn(|| engine.poll_effect()).collect()
}

fn pages(effects: &[Effect]) -> Vec<(i64, String)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Notify { at, level, .. } => Some((at.since(T0).whole_minutes(), level.clone())),
            _ => None,
        })
        .collect()
}

fn kinds(incident: &Incident) -> Vec<&str> {
    incident.timeline.iter().map(|e| e.kind.as_str()).collect()
}

/// A restart as the server does one: the engine's meta and incidents through their
/// serialized form, timelines kept apart, a fresh engine restored from them.
fn restart(engine: &IncidentEngine) -> IncidentEngine {
    let meta = serde_json::to_string(&engine.meta()).unwrap();
    let saved: Vec<(String, Vec<TimelineEntry>)> = engine
        .incidents()
        .map(|i| (serde_json::to_string(i).unwrap(), i.timeline.clone()))
        .collect();
    let incidents = saved
        .into_iter()
        .map(|(json, timeline)| {
            let mut incident: Incident = serde_json::from_str(&json).unwrap();
            incident.timeline = timeline;
            incident
        })
        .collect();
    IncidentEngine::restore(
        engine.policy().clone(),
        Vec::new(),
        serde_json::from_str(&meta).unwrap(),
        incidents,
    )
}
