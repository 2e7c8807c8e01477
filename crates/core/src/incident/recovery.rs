//! Recovery: an open incident whose problem is over. Once every related alert has closed and
//! the deviation of its series is back within 2σ, the incident reads recovered and stops
//! escalating (no page, no repeat, no next level), though it stays open until its resolution
//! criteria hold (a P1 still needs its root cause). Its owner is reminded at most once a
//! day. If the problem returns (an alert opens, or the deviation stays at [`RELAPSE_SIGMA`]
//! or beyond for [`RELAPSE_MEASUREMENTS`] measurements in a row), it relapses and escalation
//! resumes where it stood, with the time that was left before its next page.
//!
//! Free functions on one incident, as `escalation`'s are: they queue effects but never look
//! at other incidents, and the guard incident (revloop's own blindness) is never recovered
//! here: it resolves itself when judging resumes.

use std::collections::VecDeque;

use super::escalation::Effect;
use super::policy::IncidentPolicy;
use super::record::{ENGINE_ACTOR, Incident, IncidentState, Recovery, TimelineKind, push};
use crate::time::{DurationMs, Timestamp};

/// The deviation below which the drop-off counts as back to normal: the runbook's "within
/// 2σ of baseline", as the detector closes an alert.
pub const RECOVERED_SIGMA_MAX: f64 = 2.0;
/// The deviation at which a recovered incident relapses. Above [`RECOVERED_SIGMA_MAX`], so
/// that a series hovering about 2σ does not flip the incident every minute; at the runbook's
/// P1 line, where the detector would alert again anyway.
pub const RELAPSE_SIGMA: f64 = 3.0;
/// How many measurements in a row (one a minute, of overlapping windows) must reach
/// [`RELAPSE_SIGMA`] for a recovered incident to relapse without an alert: one noisy window
/// of a thin series at night (the demo's payment stage read 4.0σ for one minute, hours after
/// its outage) must not restart the pages. A sustained return still relapses within minutes,
/// and the detector's alert, with its false-alarm budget, relapses it at once.
pub const RELAPSE_MEASUREMENTS: usize = 5;
/// How often the owner of a recovered incident that is still open is reminded, at most.
pub const REMIND_EVERY: DurationMs = DurationMs::from_hours(24);

/// Moves the incident in or out of recovery at `now`, from its alerts and its measurements.
pub(super) fn update(incident: &mut Incident, now: Timestamp) {
    if incident.is_guard() || !incident.is_open() {
        return;
    }
    let all_closed = incident.alerts.values().all(|open| !open);
    // The last word on its alerts is that one closed: a responder's reopen (or an incident
    // whose alerts closed before it reopened) is not recovered by evidence older than it,
    // so it holds until an alert opens and closes again.
    let closed_last = incident
        .timeline
        .iter()
        .rev()
        .find(|e| {
            matches!(
                e.kind,
                TimelineKind::Opened
                    | TimelineKind::Reopened
                    | TimelineKind::RelatedAlert
                    | TimelineKind::Upgraded
                    | TimelineKind::AlertClosed
            )
        })
        .is_some_and(|e| e.kind == TimelineKind::AlertClosed);
    // The deviation measured since the last alert event: a measurement taken while the alert
    // was open says nothing of now. A measured series waits for its next measurement (the
    // tick measures after its alerts); a series never measured (too thin) has only its
    // alert's close ("back within 2σ") to go by.
    let latest = incident
        .measurements
        .back()
        .filter(|(at, _)| *at >= incident.last_alert_at)
        .map(|(_, sigma)| *sigma);
    let measured = latest.is_some() || incident.measurements.is_empty();
    match incident.recovered {
        None if all_closed
            && closed_last
            && measured
            && latest.is_none_or(|sigma| sigma < RECOVERED_SIGMA_MAX) =>
        {
            recover(incident, now, latest)
        }
        Some(recovery) if !all_closed || worse_again(incident, recovery.at) => {
            relapse(incident, now, all_closed, latest)
        }
        _ => {}
    }
}

/// Whether the last [`RELAPSE_MEASUREMENTS`] measurements, all taken after the recovery,
/// reach [`RELAPSE_SIGMA`].
fn worse_again(incident: &Incident, recovered_at: Timestamp) -> bool {
    let recent: Vec<f64> = incident
        .measurements
        .iter()
        .rev()
        .take_while(|(at, _)| *at > recovered_at)
        .take(RELAPSE_MEASUREMENTS)
        .map(|(_, sigma)| *sigma)
        .collect();
    recent.len() == RELAPSE_MEASUREMENTS && recent.iter().all(|sigma| *sigma >= RELAPSE_SIGMA)
}

fn recover(incident: &mut Incident, now: Timestamp, latest: Option<f64>) {
    let escalation_left = incident.escalation.next_at.map(|at| {
        if at > now {
            at.since(now)
        } else {
            DurationMs::ZERO
        }
    });
    incident.escalation.next_at = None;
    incident.recovered = Some(Recovery {
        at: now,
        escalation_left,
        reminded_at: None,
    });
    let measured = latest.map_or(String::new(), |sigma| format!(", {sigma:.1}σ now"));
    push(
        incident,
        now,
        ENGINE_ACTOR,
        TimelineKind::Recovered,
        format!(
            "recovered: every related alert closed and the drop-off is back within 2σ{measured}; \
             escalation stops (nobody is paged while it stays recovered), and it stays open \
             until its resolution criteria hold"
        ),
    );
}

fn relapse(incident: &mut Incident, now: Timestamp, all_closed: bool, latest: Option<f64>) {
    let Some(recovery) = incident.recovered.take() else {
        return;
    };
    // An action taken while recovered (raising the severity, an ack with a timeout) may have
    // set the next page itself; otherwise the path resumes with the time it had left.
    if incident.escalation.next_at.is_none() {
        incident.escalation.next_at = recovery
            .escalation_left
            .map(|left| now.saturating_add(left));
    }
    let why = if all_closed {
        format!(
            "the drop-off is {:.1}σ from baseline again ({RELAPSE_MEASUREMENTS} minutes at \
             {RELAPSE_SIGMA}σ or more)",
            latest.unwrap_or(RELAPSE_SIGMA)
        )
    } else {
        "a related alert is open again".to_owned()
    };
    let resumes = match incident.escalation.next_at {
        Some(at) if incident.state == IncidentState::Triggered => {
            format!("escalation resumes where it stood (next page {at})")
        }
        _ => "escalation resumes where it stood".to_owned(),
    };
    push(
        incident,
        now,
        ENGINE_ACTOR,
        TimelineKind::Relapsed,
        format!(
            "no longer recovered ({} after recovering): {why}; {resumes}",
            now.since(recovery.at)
        ),
    );
}

/// When the owner of a recovered incident is next reminded; `None` if it is not recovered.
pub(super) fn next_reminder(incident: &Incident) -> Option<Timestamp> {
    let recovery = incident.recovered.as_ref()?;
    Some(
        recovery
            .reminded_at
            .unwrap_or(recovery.at)
            .saturating_add(REMIND_EVERY),
    )
}

/// Reminds the owner of a recovered incident that is still open, if a reminder is due: one
/// effect to the first level of its path (naming who acknowledged it), never a page up the
/// path.
pub(super) fn remind(
    incident: &mut Incident,
    policy: &IncidentPolicy,
    now: Timestamp,
    outbox: &mut VecDeque<Effect>,
) {
    let Some(due) = next_reminder(incident) else {
        return;
    };
    if now < due || !incident.is_open() {
        return;
    }
    if let Some(recovery) = incident.recovered.as_mut() {
        // Anchored on now, not on `due`: after downtime one reminder goes out, not one per
        // missed day.
        recovery.reminded_at = Some(now);
    }
    let unmet: Vec<&str> = incident
        .criteria(policy, now)
        .into_iter()
        .filter(|c| !c.holds)
        .map(|c| c.name)
        .collect();
    let recovered_at = incident.recovered.as_ref().map_or(now, |r| r.at);
    let reason = format!(
        "{} {} incident recovered at {recovered_at} but is still open{}; to resolve it: {}",
        incident.severity.as_str(),
        incident.kind.as_str(),
        acknowledger(incident).map_or(String::new(), |who| format!(" (acknowledged by {who})")),
        if unmet.is_empty() {
            "resolve it".to_owned()
        } else {
            unmet.join(", ")
        }
    );
    let targets = owner(incident, policy);
    if !targets.is_empty() {
        outbox.push_back(Effect::Remind {
            incident: incident.id,
            at: now,
            targets: targets.clone(),
            reason: reason.clone(),
            brief: super::brief::Brief::of(incident),
        });
    }
    let whom = if targets.is_empty() {
        "nobody to remind".to_owned()
    } else {
        targets.join(", ")
    };
    push(
        incident,
        now,
        ENGINE_ACTOR,
        TimelineKind::Reminded,
        format!("reminded {whom}: {reason}"),
    );
}

/// Whom a reminder goes to: the targets of the first level of its severity's path (the
/// on-call, who own an open incident; they are who delivery routes reach, while the person
/// who acknowledged is named in the text), counted as paged, so that its resolution reaches
/// them too (a silenced incident may never have paged them).
fn owner(incident: &mut Incident, policy: &IncidentPolicy) -> Vec<String> {
    let first = policy
        .for_severity(incident.severity)
        .levels
        .first()
        .map(|level| level.targets.clone())
        .unwrap_or_default();
    super::escalation::record_paged(incident, &first);
    first
}

/// Whoever last acknowledged it (not the engine), for a reminder's text.
fn acknowledger(incident: &Incident) -> Option<String> {
    incident
        .timeline
        .iter()
        .rev()
        .find(|e| e.kind == TimelineKind::Acknowledged && e.actor != ENGINE_ACTOR)
        .map(|e| e.actor.clone())
}
