//! What a responder may do to an incident, why an action is refused, and how each action
//! changes the one incident it names. Reopening, which must look at the other incidents, is
//! the engine's; so is deciding what happens next (`evaluate`), which runs after every action.

use super::escalation::{lower, meet, raise, resolve};
use super::policy::IncidentPolicy;
use super::record::{
    ActionItem, CHECKLIST, Incident, IncidentSeverity, IncidentState, Mitigation,
    TIMELINE_ENTRIES_MAX, Tick, TimelineKind, push,
};
use crate::time::Timestamp;

/// Longest note, reason, root cause or action item text, in bytes.
pub const TEXT_BYTES_MAX: usize = 4_096;
/// Most action items per incident.
pub const ACTION_ITEMS_MAX: usize = 100;

/// What a responder does to an incident.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Acknowledge,
    Note(String),
    /// The affected stage and, optionally, segment, as the responder judges them.
    SetScope {
        stage: String,
        segment: Option<(String, String)>,
    },
    SetSeverity(IncidentSeverity),
    Mitigate {
        mitigation: Mitigation,
        detail: String,
    },
    RootCause(String),
    ActionItem {
        text: String,
        owner: String,
        due: Timestamp,
    },
    /// Ticks item `index` of [`CHECKLIST`].
    CheckItem {
        index: usize,
        finding: String,
    },
    Resolve,
    /// Resolves it as a false alarm: nothing was wrong, so its loss counts in no total. The
    /// runbook's resolution criteria are not asked for.
    ResolveFalseAlarm,
    Reopen,
}

impl Action {
    pub fn name(&self) -> &'static str {
        match self {
            Action::Acknowledge => "acknowledge",
            Action::Note(_) => "note",
            Action::SetScope { .. } => "set_scope",
            Action::SetSeverity(_) => "set_severity",
            Action::Mitigate { .. } => "mitigate",
            Action::RootCause(_) => "root_cause",
            Action::ActionItem { .. } => "action_item",
            Action::CheckItem { .. } => "check_item",
            Action::Resolve | Action::ResolveFalseAlarm => "resolve",
            Action::Reopen => "reopen",
        }
    }
}

/// Why an action was refused. Nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActionError {
    #[error("no incident {0}")]
    UnknownIncident(u64),
    #[error("the incident is {state}; it cannot be {action}")]
    IllegalTransition {
        state: &'static str,
        action: &'static str,
    },
    #[error("{field} is longer than {TEXT_BYTES_MAX} bytes")]
    TooLong { field: &'static str },
    #[error("{field} must not be empty")]
    Empty { field: &'static str },
    #[error("checklist item {0} does not exist (0 to {n})", n = CHECKLIST.len() - 1)]
    UnknownChecklistItem(usize),
    #[error("the incident already has {ACTION_ITEMS_MAX} action items")]
    TooManyActionItems,
    #[error("the incident's timeline is full ({TIMELINE_ENTRIES_MAX} entries)")]
    TimelineFull,
    #[error("a lower severity needs a reason")]
    DowngradeWithoutReason,
    #[error("the severity is already {0}")]
    SeverityUnchanged(&'static str),
    #[error("resolving before the runbook's criteria hold needs a reason; not holding: {0}")]
    ResolveWithoutReason(String),
    #[error("incident {0} is open for the same stage; reopening would make two")]
    AnotherIsOpen(u64),
}

pub(super) fn check_text(field: &'static str, text: &str) -> Result<(), ActionError> {
    if text.len() > TEXT_BYTES_MAX {
        return Err(ActionError::TooLong { field });
    }
    Ok(())
}

pub(super) fn check_nonempty(field: &'static str, text: &str) -> Result<(), ActionError> {
    check_text(field, text)?;
    if text.trim().is_empty() {
        return Err(ActionError::Empty { field });
    }
    Ok(())
}

/// Who acts, when and why, with what the engine knows of the incident's silences.
pub(super) struct ActionRequest<'a> {
    pub now: Timestamp,
    pub actor: &'a str,
    pub reason: Option<&'a str>,
    /// When escalation may start: now, or when a silence covering the incident ends.
    pub pages_from: Timestamp,
}

impl ActionRequest<'_> {
    /// The reason as the timeline shows it: " (reason)", or nothing.
    pub fn because(&self) -> String {
        self.reason.map(|r| format!(" ({r})")).unwrap_or_default()
    }
}

/// The refusal of an action the incident's state does not allow; `done` is what the action
/// would make it ("acknowledged", "reopened").
pub(super) fn illegal(incident: &Incident, done: &'static str) -> ActionError {
    ActionError::IllegalTransition {
        state: incident.state.as_str(),
        action: done,
    }
}

/// Applies an action that concerns this incident alone: every action but `Reopen`. On error
/// the incident is unchanged.
pub(super) fn apply(
    incident: &mut Incident,
    action: &Action,
    policy: &IncidentPolicy,
    request: &ActionRequest,
) -> Result<(), ActionError> {
    match action {
        Action::Acknowledge => acknowledge(incident, policy, request),
        Action::Note(text) => {
            check_nonempty("text", text)?;
            push(
                incident,
                request.now,
                request.actor,
                TimelineKind::Note,
                text.clone(),
            );
            Ok(())
        }
        Action::SetScope { stage, segment } => set_scope(incident, stage, segment, request),
        Action::SetSeverity(severity) => set_severity(incident, *severity, policy, request),
        Action::Mitigate { mitigation, detail } => mitigate(incident, *mitigation, detail, request),
        Action::RootCause(text) => {
            check_nonempty("text", text)?;
            incident.root_cause = Some(text.clone());
            incident.prompted = false;
            push(
                incident,
                request.now,
                request.actor,
                TimelineKind::RootCause,
                text.clone(),
            );
            Ok(())
        }
        Action::ActionItem { text, owner, due } => {
            add_action_item(incident, text, owner, *due, request)
        }
        Action::CheckItem { index, finding } => check_item(incident, *index, finding, request),
        Action::Resolve => resolve_by_hand(incident, policy, request),
        Action::ResolveFalseAlarm => {
            if incident.state == IncidentState::Resolved {
                return Err(illegal(incident, "resolved"));
            }
            incident.false_alarm = true;
            let text = format!("resolved as a false alarm{}", request.because());
            resolve(incident, request.now, request.actor, &text);
            Ok(())
        }
        Action::Reopen => unreachable!("the engine reopens: it must see the other incidents"),
    }
}

fn acknowledge(
    incident: &mut Incident,
    policy: &IncidentPolicy,
    request: &ActionRequest,
) -> Result<(), ActionError> {
    match incident.state {
        IncidentState::Triggered => {}
        // Already acknowledged (mitigating acknowledges too): what the responder asks for
        // holds already, so it succeeds and changes nothing, not even the timeline. Two
        // people answering the same page must not see one of them refused.
        IncidentState::Acknowledged | IncidentState::Mitigated => return Ok(()),
        IncidentState::Resolved => return Err(illegal(incident, "acknowledged")),
    }
    let now = request.now;
    incident.state = IncidentState::Acknowledged;
    incident.acknowledged_at.get_or_insert(now);
    incident.escalation.next_at = policy.ack_timeout.map(|t| now.saturating_add(t));
    meet(&mut incident.response, now);
    push(
        incident,
        now,
        request.actor,
        TimelineKind::Acknowledged,
        format!("acknowledged; escalation stopped{}", request.because()),
    );
    Ok(())
}

fn set_scope(
    incident: &mut Incident,
    stage: &str,
    segment: &Option<(String, String)>,
    request: &ActionRequest,
) -> Result<(), ActionError> {
    check_nonempty("stage", stage)?;
    let scope = match segment {
        Some((d, v)) => format!("{stage}, {d} = {v}"),
        None => stage.to_owned(),
    };
    push(
        incident,
        request.now,
        request.actor,
        TimelineKind::ScopeSet,
        format!("affected: {scope}{}", request.because()),
    );
    incident.scope = Some((stage.to_owned(), segment.clone()));
    Ok(())
}

fn set_severity(
    incident: &mut Incident,
    severity: IncidentSeverity,
    policy: &IncidentPolicy,
    request: &ActionRequest,
) -> Result<(), ActionError> {
    let from = incident.severity;
    if severity == from {
        return Err(ActionError::SeverityUnchanged(from.as_str()));
    }
    if severity > from && request.reason.is_none() {
        return Err(ActionError::DowngradeWithoutReason);
    }
    if severity < from {
        raise(incident, policy, severity, request.now, request.pages_from);
    } else {
        lower(incident, policy, severity);
    }
    push(
        incident,
        request.now,
        request.actor,
        TimelineKind::SeveritySet,
        format!(
            "severity {} → {}{}",
            from.as_str(),
            severity.as_str(),
            request.because()
        ),
    );
    Ok(())
}

fn mitigate(
    incident: &mut Incident,
    mitigation: Mitigation,
    detail: &str,
    request: &ActionRequest,
) -> Result<(), ActionError> {
    check_text("detail", detail)?;
    if !matches!(
        incident.state,
        IncidentState::Triggered | IncidentState::Acknowledged | IncidentState::Mitigated
    ) {
        return Err(illegal(incident, "mitigated"));
    }
    let now = request.now;
    if incident.state == IncidentState::Triggered {
        incident.acknowledged_at.get_or_insert(now);
        meet(&mut incident.response, now);
    }
    incident.state = IncidentState::Mitigated;
    incident.mitigated_at.get_or_insert(now);
    incident.escalation.next_at = None;
    incident.mitigations.push((mitigation, detail.to_owned()));
    push(
        incident,
        now,
        request.actor,
        TimelineKind::Mitigated,
        format!(
            "mitigation: {}{}{}",
            mitigation.as_str(),
            if detail.is_empty() {
                String::new()
            } else {
                format!(": {detail}")
            },
            request.because()
        ),
    );
    Ok(())
}

fn add_action_item(
    incident: &mut Incident,
    text: &str,
    owner: &str,
    due: Timestamp,
    request: &ActionRequest,
) -> Result<(), ActionError> {
    check_nonempty("text", text)?;
    check_nonempty("owner", owner)?;
    if incident.action_items.len() >= ACTION_ITEMS_MAX {
        return Err(ActionError::TooManyActionItems);
    }
    incident.action_items.push(ActionItem {
        text: text.to_owned(),
        owner: owner.to_owned(),
        due,
        added_by: request.actor.to_owned(),
        added_at: request.now,
    });
    push(
        incident,
        request.now,
        request.actor,
        TimelineKind::ActionItem,
        format!("{text} (owner {owner}, due {due})"),
    );
    Ok(())
}

fn check_item(
    incident: &mut Incident,
    index: usize,
    finding: &str,
    request: &ActionRequest,
) -> Result<(), ActionError> {
    let Some((category, item)) = CHECKLIST.get(index) else {
        return Err(ActionError::UnknownChecklistItem(index));
    };
    check_text("finding", finding)?;
    incident.checklist[index] = Some(Tick {
        by: request.actor.to_owned(),
        at: request.now,
        finding: finding.to_owned(),
    });
    push(
        incident,
        request.now,
        request.actor,
        TimelineKind::Checklist,
        if finding.is_empty() {
            format!("checked {category}: {item}")
        } else {
            format!("checked {category}: {item}: {finding}")
        },
    );
    Ok(())
}

fn resolve_by_hand(
    incident: &mut Incident,
    policy: &IncidentPolicy,
    request: &ActionRequest,
) -> Result<(), ActionError> {
    if incident.state == IncidentState::Resolved {
        return Err(illegal(incident, "resolved"));
    }
    let failing: Vec<&str> = incident
        .criteria(policy, request.now)
        .iter()
        .filter(|c| !c.holds)
        .map(|c| c.name)
        .collect();
    if !failing.is_empty() && request.reason.is_none() {
        return Err(ActionError::ResolveWithoutReason(failing.join(", ")));
    }
    let text = format!("resolved{}", request.because());
    resolve(incident, request.now, request.actor, &text);
    Ok(())
}
