//! The rules that move an incident's severity, clocks and escalation path: raise, lower,
//! resolve and page every level that is due, with the SLA clocks they set. Free functions on
//! one incident: they queue effects but never look at other incidents or the engine's state.

use std::collections::VecDeque;

use super::brief::Brief;
use super::policy::{EmptyLevel, EscalationLevel, IncidentPolicy, REPEATS_MAX};
use super::record::{
    ENGINE_ACTOR, Escalation, Incident, IncidentSeverity, IncidentState, SlaClock, TimelineKind,
    Unsaved, push,
};
use crate::time::{DurationMs, Timestamp};

/// Something the caller must do. Each carries the incident's [`Brief`] as it stood then, so
/// that it can be delivered without reading the incident again.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Page these targets about this incident.
    Notify {
        incident: u64,
        at: Timestamp,
        level: String,
        targets: Vec<String>,
        reason: String,
        brief: Brief,
    },
    /// Remind the owner of a recovered incident that it is still open (at most once a day);
    /// not a page up the escalation path.
    Remind {
        incident: u64,
        at: Timestamp,
        targets: Vec<String>,
        reason: String,
        brief: Brief,
    },
    /// An SLA ran out. Recorded once per incident and kind; told to the targets paged so far
    /// (none when it paged nobody yet).
    SlaBreached {
        incident: u64,
        at: Timestamp,
        sla: &'static str,
        targets: Vec<String>,
        brief: Brief,
    },
    /// A responder acknowledged (or, unacknowledged, mitigated) an incident that paged
    /// someone: everyone paged so far is told, so that nobody else gets up for it. Never
    /// queued for an incident that paged nobody.
    Acknowledged {
        incident: u64,
        at: Timestamp,
        /// Who acknowledged it.
        by: String,
        targets: Vec<String>,
        brief: Brief,
    },
    /// An incident that paged someone is resolved (by a responder, as a false alarm, or by
    /// the engine once its criteria hold): everyone paged since it (re)opened is told. Never
    /// queued for an incident that paged nobody.
    Resolved {
        incident: u64,
        at: Timestamp,
        /// Who resolved it: a responder, or `revloop` ([`ENGINE_ACTOR`]).
        by: String,
        false_alarm: bool,
        targets: Vec<String>,
        brief: Brief,
    },
}

impl Effect {
    pub fn incident(&self) -> u64 {
        match self {
            Effect::Notify { incident, .. }
            | Effect::Remind { incident, .. }
            | Effect::SlaBreached { incident, .. }
            | Effect::Acknowledged { incident, .. }
            | Effect::Resolved { incident, .. } => *incident,
        }
    }

    pub fn at(&self) -> Timestamp {
        match self {
            Effect::Notify { at, .. }
            | Effect::Remind { at, .. }
            | Effect::SlaBreached { at, .. }
            | Effect::Acknowledged { at, .. }
            | Effect::Resolved { at, .. } => *at,
        }
    }
}

/// Queues the [`Effect::Acknowledged`] owed when `incident` (which was `before`) has just
/// been acknowledged by `by`: only when it was triggered, is no longer, and paged someone.
pub(super) fn tell_acknowledged(
    incident: &Incident,
    before: IncidentState,
    by: &str,
    now: Timestamp,
    outbox: &mut VecDeque<Effect>,
) {
    let acknowledged = matches!(
        incident.state,
        IncidentState::Acknowledged | IncidentState::Mitigated
    );
    if before == IncidentState::Triggered && acknowledged && !incident.paged.is_empty() {
        outbox.push_back(Effect::Acknowledged {
            incident: incident.id,
            at: now,
            by: by.to_owned(),
            targets: incident.paged.clone(),
            brief: Brief::of(incident),
        });
    }
}

/// Queues the [`Effect::Resolved`] owed when `incident` has just been resolved by `by`, if it
/// paged anyone since it (re)opened.
pub(super) fn tell_resolved(
    incident: &Incident,
    by: &str,
    now: Timestamp,
    outbox: &mut VecDeque<Effect>,
) {
    if incident.state == IncidentState::Resolved && !incident.paged.is_empty() {
        outbox.push_back(Effect::Resolved {
            incident: incident.id,
            at: now,
            by: by.to_owned(),
            false_alarm: incident.false_alarm,
            targets: incident.paged.clone(),
            brief: Brief::of(incident),
        });
    }
}

/// Adds `targets` to those the incident has paged, each once, in the order first paged.
pub(super) fn record_paged(incident: &mut Incident, targets: &[String]) {
    for target in targets {
        if !incident.paged.contains(target) {
            incident.paged.push(target.clone());
        }
    }
}

/// A higher severity from `now`: its SLAs (the response due by the sooner of the two clocks,
/// the resolution within the new severity's time) and, while unacknowledged, its escalation
/// path from L1 (held until `pages_from` by a silence).
pub(super) fn raise(
    incident: &mut Incident,
    policy: &IncidentPolicy,
    to: IncidentSeverity,
    now: Timestamp,
    pages_from: Timestamp,
) {
    let severity_policy = policy.for_severity(to);
    incident.severity = to;
    incident.severity_since = now;
    incident.response.due = incident
        .response
        .due
        .min(now.saturating_add(severity_policy.response));
    incident.resolution.due = now.saturating_add(severity_policy.resolution);
    incident.resolution.breached = false;
    if incident.state == IncidentState::Triggered {
        incident.escalation = Escalation {
            next_level: 0,
            next_at: (!severity_policy.levels.is_empty()).then_some(pages_from),
            repeats: 0,
        };
    }
}

/// A lower severity, set by a responder with a reason: its escalation path from where the
/// incident stands (none if it pages nobody). The clocks keep their stricter due times.
pub(super) fn lower(incident: &mut Incident, policy: &IncidentPolicy, to: IncidentSeverity) {
    incident.severity = to;
    let levels = &policy.for_severity(to).levels;
    if levels.is_empty() {
        incident.escalation.next_at = None;
    } else {
        incident.escalation.next_level = incident.escalation.next_level.min(levels.len() - 1);
    }
}

pub(super) fn clock(now: Timestamp, within: DurationMs) -> SlaClock {
    SlaClock {
        due: now.saturating_add(within),
        met_at: None,
        breached: false,
    }
}

pub(super) fn meet(clock: &mut SlaClock, now: Timestamp) {
    clock.met_at.get_or_insert(now);
}

pub(super) fn resolve(incident: &mut Incident, now: Timestamp, actor: &str, text: &str) {
    incident.state = IncidentState::Resolved;
    incident.resolved_at = Some(now);
    // The minutes gathered since the last whole window are booked as a shorter one.
    if let Some(impact) = &mut incident.impact {
        impact.close_window(now);
    }
    // A responder resolving implies acknowledging, as mitigating does: the response was
    // given. The engine resolving by itself acknowledges nothing.
    if actor != ENGINE_ACTOR {
        incident.acknowledged_at.get_or_insert(now);
    }
    incident.escalation.next_at = None;
    meet(&mut incident.response, now);
    meet(&mut incident.resolution, now);
    push(
        incident,
        now,
        actor,
        TimelineKind::Resolved,
        text.to_owned(),
    );
}

/// Pages every level that is due, in order.
pub(super) fn escalate(
    incident: &mut Incident,
    policy: &IncidentPolicy,
    now: Timestamp,
    outbox: &mut VecDeque<Effect>,
) {
    escalate_because(incident, policy, now, outbox, None);
}

/// Failover: nobody at `level` (the last level paged, whose wait for an answer is still
/// running) could be reached, so the next level is paged at `now` instead of when that wait
/// ends, and the path goes on from `now`. Does nothing (and returns false) unless the
/// incident is triggered, not recovered, and `level` is the last level it paged with a
/// level after it still to page: acknowledged, escalated past it, an unknown level or the
/// path's end change nothing, so the same report twice pages once.
pub(super) fn fail_over(
    incident: &mut Incident,
    policy: &IncidentPolicy,
    level: &str,
    now: Timestamp,
    outbox: &mut VecDeque<Effect>,
) -> bool {
    let levels = &policy.for_severity(incident.severity).levels;
    let next = incident.escalation.next_level;
    let waiting = incident.escalation.next_at.is_some_and(|at| at > now);
    let last_paged = next.checked_sub(1).and_then(|index| levels.get(index));
    let Some(last_paged) = last_paged else {
        return false;
    };
    if !incident.is_open()
        || incident.state != IncidentState::Triggered
        || incident.recovered.is_some()
        || !waiting
        || next >= levels.len()
        || last_paged.name != level
        || last_paged.targets.is_empty()
    {
        return false;
    }
    let reason = format!(
        "nobody at {level} could be reached (every delivery failed): paging {} now",
        levels[next].name
    );
    incident.escalation.next_at = Some(now);
    escalate_because(incident, policy, now, outbox, Some(reason));
    true
}

/// [`escalate`], with `first_reason` (when given) as the reason of the first page instead of
/// the path's own.
fn escalate_because(
    incident: &mut Incident,
    policy: &IncidentPolicy,
    now: Timestamp,
    outbox: &mut VecDeque<Effect>,
    mut first_reason: Option<String>,
) {
    let severity_policy = policy.for_severity(incident.severity);
    let levels = &severity_policy.levels;
    while let Some(due) = incident.escalation.next_at {
        if due > now {
            return;
        }
        incident.unsaved = Unsaved(true);
        if incident.state == IncidentState::Acknowledged {
            if policy.ack_timeout.is_none() {
                // Nothing pages after an ack.
                incident.escalation.next_at = None;
                return;
            }
            // The ack timed out: back to triggered, from the first level.
            incident.state = IncidentState::Triggered;
            incident.escalation.next_level = 0;
            push(
                incident,
                due,
                ENGINE_ACTOR,
                TimelineKind::AckTimeout,
                "acknowledged but neither mitigated nor resolved in time: escalating again".into(),
            );
        }
        let index = incident.escalation.next_level;
        let Some(level) = levels.get(index.min(levels.len().saturating_sub(1))) else {
            incident.escalation.next_at = None;
            return;
        };
        let is_repeat = index >= levels.len();
        // Paged when the engine is told the time: at `due` when it runs, later after downtime
        // (said so on the timeline). The path's schedule stays anchored on `due`.
        let late = now.since(due);
        let late_note = if late >= DurationMs::from_minutes(1) {
            format!(" (due {due}; {late} late: revloop was not running)")
        } else {
            String::new()
        };
        if level.targets.is_empty() {
            let then = match severity_policy.empty_level {
                EmptyLevel::Skip => "going on".to_owned(),
                EmptyLevel::Wait => format!("waiting its {} before going on", level.respond_within),
            };
            push(
                incident,
                now,
                ENGINE_ACTOR,
                TimelineKind::EscalationSkipped,
                format!("{} has nobody to page; {then}", level.name),
            );
        } else {
            let reason = first_reason
                .take()
                .unwrap_or_else(|| page_reason(incident, levels, index, due));
            record_paged(incident, &level.targets);
            outbox.push_back(Effect::Notify {
                incident: incident.id,
                at: now,
                level: level.name.clone(),
                targets: level.targets.clone(),
                reason: reason.clone(),
                brief: Brief::of(incident),
            });
            push(
                incident,
                now,
                ENGINE_ACTOR,
                TimelineKind::Escalated,
                format!(
                    "paged {} ({}): {reason}{late_note}",
                    level.name,
                    level.targets.join(", ")
                ),
            );
        }
        let next_wait = if level.targets.is_empty()
            && !is_repeat
            && severity_policy.empty_level == EmptyLevel::Skip
        {
            DurationMs::ZERO
        } else {
            level.respond_within
        };
        // The repeat just paged is counted before the next is scheduled, so that the last
        // level is paged again at most `REPEATS_MAX` times (the count was once checked before
        // it moved, which paged it once more).
        if is_repeat {
            incident.escalation.repeats = incident.escalation.repeats.saturating_add(1);
        }
        if index + 1 < levels.len() {
            incident.escalation.next_level = index + 1;
            incident.escalation.next_at = Some(due.saturating_add(next_wait));
        } else {
            match severity_policy.repeat_every {
                Some(every) if incident.escalation.repeats < REPEATS_MAX => {
                    let wait = if is_repeat { every } else { next_wait };
                    incident.escalation.next_level = levels.len();
                    incident.escalation.next_at = Some(due.saturating_add(wait));
                }
                _ => incident.escalation.next_at = None,
            }
        }
    }
}

/// Records each SLA of the incident that ran out by `now`, once: an effect and a timeline entry.
pub(super) fn check_slas(incident: &mut Incident, now: Timestamp, outbox: &mut VecDeque<Effect>) {
    for (sla, name) in [(0, "response"), (1, "resolution")] {
        let clock = if sla == 0 {
            &mut incident.response
        } else {
            &mut incident.resolution
        };
        if clock.met_at.is_none() && !clock.breached && now >= clock.due {
            clock.breached = true;
            let due = clock.due;
            outbox.push_back(Effect::SlaBreached {
                incident: incident.id,
                at: now,
                sla: name,
                targets: incident.paged.clone(),
                brief: Brief::of(incident),
            });
            push(
                incident,
                now,
                ENGINE_ACTOR,
                TimelineKind::SlaBreached,
                format!("{name} SLA breached: due {due}"),
            );
        }
    }
}

/// Why level `index` (at or past the path's end: a repeat of the last) is paged at `due`, for
/// the page and the timeline.
fn page_reason(
    incident: &Incident,
    levels: &[EscalationLevel],
    index: usize,
    due: Timestamp,
) -> String {
    let level = &levels[index.min(levels.len() - 1)];
    if index >= levels.len() {
        format!("still unacknowledged: paging {} again", level.name)
    } else if index == 0 && incident.is_guard() {
        format!(
            "{} {}",
            incident.severity.as_str(),
            super::guard::guard_headline(
                &incident.funnel,
                incident
                    .guard_reason
                    .as_deref()
                    .unwrap_or("no reason recorded")
            )
        )
    } else if index == 0
        && incident.timeline.iter().rev().find_map(|e| {
            matches!(
                e.kind,
                TimelineKind::Opened | TimelineKind::Reopened | TimelineKind::Upgraded
            )
            .then_some(e.kind)
        }) == Some(TimelineKind::Reopened)
    {
        format!("{} incident reopened", incident.severity.as_str())
    } else if index == 0 && incident.silenced && due > incident.opened_at {
        format!(
            "{} incident still open when the silence ended",
            incident.severity.as_str()
        )
    } else if index == 0 {
        format!("{} incident opened", incident.severity.as_str())
    } else {
        format!(
            "unacknowledged after {}: escalating to {}",
            levels[index - 1].respond_within,
            level.name
        )
    }
}
