//! Acting on an incident (responder role): `POST /api/v1/incidents/{id}/{action}`. It reads
//! the action from its path segment and body, refuses fields the action does not take, and
//! maps the engine's refusals to 4xx. The reply is the incident in full, as `incidents` views
//! it; the engine itself decides what an action does.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;

use revloop_core::incident::{Action, ActionError, IncidentSeverity, Mitigation};
use revloop_core::time::Timestamp;
use revloop_store::Role;

use crate::api::body::{SegmentBody, check_segment, json_object, needed, typed_fields};
use crate::api::delivery_log;
use crate::api::incidents::{incident_view, parse_id};
use crate::api::{AppState, identify, json_reply, no_stage, store_error};
use crate::http::{ApiError, blocking, invalid, retrying};
use crate::suspects::suspects;

/// The actions, by their path segment.
const ACTIONS: [&str; 10] = [
    "acknowledge",
    "note",
    "scope",
    "severity",
    "mitigate",
    "root-cause",
    "action-items",
    "checklist",
    "resolve",
    "reopen",
];

/// The body of every action; which fields are needed depends on the action.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ActionBody {
    reason: Option<String>,
    text: Option<String>,
    stage: Option<String>,
    segment: Option<SegmentBody>,
    severity: Option<String>,
    mitigation: Option<String>,
    detail: Option<String>,
    owner: Option<String>,
    due: Option<String>,
    index: Option<usize>,
    finding: Option<String>,
    false_alarm: Option<bool>,
}

/// The fields `action` takes; `None` for no action.
fn fields_taken(action: &str) -> Option<&'static [&'static str]> {
    if !ACTIONS.contains(&action) {
        return None;
    }
    // A note, root cause, action item or finding is its own why: no `reason` beside it.
    Some(match action {
        "note" | "root-cause" => &["text"],
        "scope" => &["stage", "segment", "reason"],
        "severity" => &["severity", "reason"],
        "mitigate" => &["mitigation", "detail", "reason"],
        "action-items" => &["text", "owner", "due"],
        "checklist" => &["index", "finding"],
        "resolve" => &["reason", "false_alarm"],
        _ => &["reason"],
    })
}

/// A field sent with an action that does not take it; the error lists what it takes.
fn does_not_apply(action: &str, field: &str, taken: &[&str]) -> ApiError {
    let takes = format!("`{}`", taken.join("`, `"));
    invalid(
        "invalid_field",
        field,
        format!("does not apply to `{action}`, which takes {takes}"),
    )
}

/// Reads an action's body. A field no action takes is refused as one this action does not
/// take (the generic reader would list every action's fields).
fn action_body(
    action: &str,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<ActionBody, ApiError> {
    let Some(fields) = json_object(headers, body)? else {
        return Ok(ActionBody::default());
    };
    if let Some(taken) = fields_taken(action)
        && let Some(unknown) = fields.keys().find(|key| {
            !ActionBody::default()
                .present()
                .iter()
                .any(|(f, _)| f == key)
        })
    {
        return Err(does_not_apply(action, unknown, taken));
    }
    typed_fields(fields)
}

impl ActionBody {
    /// Each field by name, and whether the body has it: the one list of [`ActionBody`]'s
    /// fields, each name beside its value.
    fn present(&self) -> [(&'static str, bool); 12] {
        [
            ("reason", self.reason.is_some()),
            ("text", self.text.is_some()),
            ("stage", self.stage.is_some()),
            ("segment", self.segment.is_some()),
            ("severity", self.severity.is_some()),
            ("mitigation", self.mitigation.is_some()),
            ("detail", self.detail.is_some()),
            ("owner", self.owner.is_some()),
            ("due", self.due.is_some()),
            ("index", self.index.is_some()),
            ("finding", self.finding.is_some()),
            ("false_alarm", self.false_alarm.is_some()),
        ]
    }

    /// Refuses fields that the action does not take (a `severity` sent with a note would
    /// otherwise be silently ignored).
    fn only(&self, action: &str) -> Result<(), ApiError> {
        let Some(taken) = fields_taken(action) else {
            return Ok(());
        };
        match self
            .present()
            .into_iter()
            .find(|(field, is_set)| *is_set && !taken.contains(field))
        {
            Some((field, _)) => Err(does_not_apply(action, field, taken)),
            None => Ok(()),
        }
    }
}

/// Reads an action from its path segment and body.
fn parse_action(state: &AppState, name: &str, body: ActionBody) -> Result<Action, ApiError> {
    Ok(match name {
        "acknowledge" => Action::Acknowledge,
        "resolve" if body.false_alarm == Some(true) => Action::ResolveFalseAlarm,
        "resolve" => Action::Resolve,
        "reopen" => Action::Reopen,
        "note" => Action::Note(needed("text", body.text)?),
        "root-cause" => Action::RootCause(needed("text", body.text)?),
        "scope" => {
            let stage = needed("stage", body.stage)?;
            let known_stage = state
                .config
                .funnels
                .iter()
                .any(|f| f.stages.iter().any(|s| s.id == stage));
            if !known_stage {
                return Err(invalid(
                    "invalid_field",
                    "stage",
                    no_stage(&state.config, None, &stage),
                ));
            }
            let segment = match body.segment {
                Some(segment) => {
                    check_segment(state, &segment)?;
                    Some((segment.dimension, segment.value))
                }
                None => None,
            };
            Action::SetScope { stage, segment }
        }
        "severity" => {
            let text = needed("severity", body.severity)?;
            let severity = IncidentSeverity::parse(&text.to_ascii_uppercase())
                .ok_or_else(|| invalid("invalid_field", "severity", "must be P1, P2 or P3"))?;
            Action::SetSeverity(severity)
        }
        "mitigate" => {
            let text = needed("mitigation", body.mitigation)?;
            let mitigation = Mitigation::parse(&text).ok_or_else(|| {
                let names: Vec<&str> = Mitigation::ALL.iter().map(|m| m.as_str()).collect();
                invalid(
                    "invalid_field",
                    "mitigation",
                    format!("must be one of {}", names.join(", ")),
                )
            })?;
            Action::Mitigate {
                mitigation,
                detail: body.detail.unwrap_or_default(),
            }
        }
        "action-items" => {
            let due = needed("due", body.due)?;
            let due = Timestamp::parse_rfc3339(&due)
                .map_err(|err| invalid("invalid_field", "due", err.to_string()))?;
            Action::ActionItem {
                text: needed("text", body.text)?,
                owner: needed("owner", body.owner)?,
                due,
            }
        }
        "checklist" => Action::CheckItem {
            index: body
                .index
                .ok_or_else(|| invalid("missing_field", "index", "is required for this action"))?,
            finding: body.finding.unwrap_or_default(),
        },
        other => {
            return Err(ApiError::not_found(format!(
                "no action `{other}`; actions are {}",
                ACTIONS.join(", ")
            )));
        }
    })
}

fn action_error(err: ActionError) -> ApiError {
    let message = err.to_string();
    match err {
        ActionError::UnknownIncident(_) => ApiError::not_found(message),
        ActionError::IllegalTransition { .. } => {
            ApiError::new(StatusCode::CONFLICT, "illegal_transition", message)
        }
        ActionError::AnotherIsOpen(_) => {
            ApiError::new(StatusCode::CONFLICT, "another_is_open", message)
        }
        ActionError::SeverityUnchanged(_) => {
            ApiError::new(StatusCode::CONFLICT, "unchanged", message)
        }
        ActionError::TooManyActionItems | ActionError::TimelineFull => {
            ApiError::new(StatusCode::CONFLICT, "incident_full", message)
        }
        ActionError::TooLong { field } => invalid("too_long", field, message),
        ActionError::Empty { field } => invalid("empty_field", field, message),
        ActionError::UnknownChecklistItem(_) => invalid("invalid_field", "index", message),
        ActionError::DowngradeWithoutReason | ActionError::ResolveWithoutReason(_) => {
            invalid("missing_field", "reason", message)
        }
    }
}

/// `POST /api/v1/incidents/{id}/{action}`: a responder acts; the incident as it is after.
pub async fn act(
    State(state): State<AppState>,
    Path((id, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let now = state.clock.now();
    let actor = identify(&state, &headers, None, Role::Responder, now).await?;
    let id = parse_id(&id)?;
    let body = action_body(&name, &headers, body)?;
    body.only(&name)?;
    let reason = body.reason.clone().filter(|r| !r.trim().is_empty());
    let action = parse_action(&state, &name, body)?;
    let incidents = state.incidents.clone();
    let store = state.store.clone();
    let delivery = state.config.delivery.clone();
    let incident = incidents
        .act_async(id, &actor, &action, reason.as_deref(), now)
        .await
        .map_err(store_error)?
        .map_err(action_error)?;
    tracing::info!(incident = id, actor = %actor, action = action.name(), "incident action");
    let reply = blocking(move || {
        // The action is committed: a failed read of the suspects must not look like a failed
        // action (a client would act again), so the reply goes without them then.
        let suspects =
            retrying(|| suspects(store.as_ref(), &incident, now)).unwrap_or_else(|err| {
                tracing::warn!(incident = id, error = %err, "the suspects could not be read");
                Default::default()
            });
        let mut view = incident_view(&incident, incidents.policy(), now, &suspects);
        delivery_log::add_to_timeline(&mut view.timeline, store.as_ref(), delivery.as_ref(), id);
        Ok(view)
    })
    .await?;
    Ok(json_reply(StatusCode::OK, &reply))
}

#[cfg(test)]
mod tests {
    use revloop_api::Segment;
    use revloop_api::actions::*;
    use revloop_api::incidents::{Mitigation, Severity};

    use super::{ACTIONS, fields_taken};

    /// The server reads action bodies with its own parser (it keeps its refusals: a missing
    /// field is `missing_field`, `p1` is P1); this keeps it in step with the wire types the
    /// CLI sends: each action takes the fields of its `revloop_api` body, and no others.
    #[test]
    fn each_action_takes_the_fields_of_its_wire_body() {
        let reason = || ReasonBody {
            reason: Some("why".into()),
        };
        let text = || TextBody { text: "t".into() };
        let every = [
            IncidentAction::Acknowledge(reason()),
            IncidentAction::Note(text()),
            IncidentAction::Scope(ScopeBody {
                stage: "payment".into(),
                segment: Some(Segment::parse("device=mobile").unwrap()),
                reason: Some("why".into()),
            }),
            IncidentAction::Severity(SeverityBody {
                severity: Severity::P1,
                reason: Some("why".into()),
            }),
            IncidentAction::Mitigate(MitigateBody {
                mitigation: Mitigation::Rollback,
                detail: "d".into(),
                reason: Some("why".into()),
            }),
            IncidentAction::RootCause(text()),
            IncidentAction::ActionItem(ActionItemBody {
                text: "t".into(),
                owner: "ann".into(),
                due: "2026-12-01T00:00:00Z".into(),
            }),
            IncidentAction::Checklist(ChecklistBody {
                index: 0,
                finding: "f".into(),
            }),
            IncidentAction::Resolve(ResolveBody {
                reason: Some("why".into()),
                false_alarm: true,
            }),
            IncidentAction::Reopen(reason()),
        ];
        let paths: Vec<&str> = every.iter().map(|a| a.path()).collect();
        assert_eq!(paths, ACTIONS);
        for action in &every {
            let body = action.body();
            let mut sent: Vec<&str> = body
                .as_object()
                .unwrap()
                .keys()
                .map(|k| k.as_str())
                .collect();
            let mut taken = fields_taken(action.path()).unwrap().to_vec();
            sent.sort_unstable();
            taken.sort_unstable();
            assert_eq!(sent, taken, "{}", action.path());
        }
    }
}
