//! What a responder sends to act on an incident: `POST /api/v1/incidents/{id}/{action}` with
//! one body per action. Each body holds only the fields its action takes (the server refuses
//! the others), and an absent optional field is left out rather than sent as `null`.

use serde::{Deserialize, Serialize};

use crate::Segment;
use crate::incidents::{Mitigation, Severity, TimelineKind};

/// The body of `acknowledge` and `reopen`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReasonBody {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The body of `resolve`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveBody {
    /// Required to resolve before the runbook's criteria hold, unless a false alarm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Nothing was wrong: resolves it whatever the criteria, and its loss counts in no total.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub false_alarm: bool,
}

/// The body of `note` and `root-cause`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TextBody {
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScopeBody {
    pub stage: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment: Option<Segment>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SeverityBody {
    pub severity: Severity,
    /// Required to lower the severity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MitigateBody {
    pub mitigation: Mitigation,
    #[serde(default)]
    pub detail: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionItemBody {
    pub text: String,
    pub owner: String,
    /// RFC 3339.
    pub due: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChecklistBody {
    /// The item's number in the checklist.
    pub index: usize,
    #[serde(default)]
    pub finding: String,
}

/// One action with its body.
#[derive(Debug, Clone, PartialEq)]
pub enum IncidentAction {
    Acknowledge(ReasonBody),
    Note(TextBody),
    Scope(ScopeBody),
    Severity(SeverityBody),
    Mitigate(MitigateBody),
    RootCause(TextBody),
    ActionItem(ActionItemBody),
    Checklist(ChecklistBody),
    Resolve(ResolveBody),
    Reopen(ReasonBody),
}

impl IncidentAction {
    /// The action's path segment: `/api/v1/incidents/{id}/{path}`.
    pub fn path(&self) -> &'static str {
        match self {
            IncidentAction::Acknowledge(_) => "acknowledge",
            IncidentAction::Note(_) => "note",
            IncidentAction::Scope(_) => "scope",
            IncidentAction::Severity(_) => "severity",
            IncidentAction::Mitigate(_) => "mitigate",
            IncidentAction::RootCause(_) => "root-cause",
            IncidentAction::ActionItem(_) => "action-items",
            IncidentAction::Checklist(_) => "checklist",
            IncidentAction::Resolve(_) => "resolve",
            IncidentAction::Reopen(_) => "reopen",
        }
    }

    /// The kind of the timeline entry the action writes.
    pub fn timeline_kind(&self) -> TimelineKind {
        match self {
            IncidentAction::Acknowledge(_) => TimelineKind::Acknowledged,
            IncidentAction::Note(_) => TimelineKind::Note,
            IncidentAction::Scope(_) => TimelineKind::ScopeSet,
            IncidentAction::Severity(_) => TimelineKind::SeveritySet,
            IncidentAction::Mitigate(_) => TimelineKind::Mitigated,
            IncidentAction::RootCause(_) => TimelineKind::RootCause,
            IncidentAction::ActionItem(_) => TimelineKind::ActionItem,
            IncidentAction::Checklist(_) => TimelineKind::Checklist,
            IncidentAction::Resolve(_) => TimelineKind::Resolved,
            IncidentAction::Reopen(_) => TimelineKind::Reopened,
        }
    }

    /// The body as JSON.
    pub fn body(&self) -> serde_json::Value {
        let value = match self {
            IncidentAction::Acknowledge(body) | IncidentAction::Reopen(body) => {
                serde_json::to_value(body)
            }
            IncidentAction::Resolve(body) => serde_json::to_value(body),
            IncidentAction::Note(body) | IncidentAction::RootCause(body) => {
                serde_json::to_value(body)
            }
            IncidentAction::Scope(body) => serde_json::to_value(body),
            IncidentAction::Severity(body) => serde_json::to_value(body),
            IncidentAction::Mitigate(body) => serde_json::to_value(body),
            IncidentAction::ActionItem(body) => serde_json::to_value(body),
            IncidentAction::Checklist(body) => serde_json::to_value(body),
        };
        // Plain structs of strings and numbers always serialize.
        value.expect("an action body serializes")
    }
}
