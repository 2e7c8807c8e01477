//! `GET /api/v1/outbox`: what the incidents owe the outside (pages, reminders, SLA breaches), oldest
//! first. Each entry is tagged by its `kind`.

use serde::{Deserialize, Serialize};

use crate::names::names;

names! {
    /// Which SLA clock ran out.
    pub enum SlaName("SLA") open {
        Response = "response",
        Resolution = "resolution",
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OutboxPage {
    pub outbox: Vec<OutboxEntry>,
    /// The `after` of the next read: the last id given, or the `after` asked for.
    pub next_after: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind")]
pub enum OutboxEntry {
    /// Page these targets about this incident.
    #[serde(rename = "notify")]
    Notify {
        id: i64,
        incident: u64,
        at: String,
        /// The escalation level's name (`L1`, ...).
        level: String,
        targets: Vec<String>,
        reason: String,
    },
    /// Remind the owner of a recovered incident (its problem over, escalation stopped) that it
    /// is still open; at most once a day, never a page up the escalation path.
    #[serde(rename = "remind")]
    Remind {
        id: i64,
        incident: u64,
        at: String,
        targets: Vec<String>,
        reason: String,
    },
    /// An SLA ran out.
    #[serde(rename = "sla_breached")]
    SlaBreached {
        id: i64,
        incident: u64,
        at: String,
        sla: SlaName,
    },
}

impl OutboxEntry {
    pub fn id(&self) -> i64 {
        match self {
            OutboxEntry::Notify { id, .. }
            | OutboxEntry::Remind { id, .. }
            | OutboxEntry::SlaBreached { id, .. } => *id,
        }
    }

    pub fn incident(&self) -> u64 {
        match self {
            OutboxEntry::Notify { incident, .. }
            | OutboxEntry::Remind { incident, .. }
            | OutboxEntry::SlaBreached { incident, .. } => *incident,
        }
    }

    pub fn at(&self) -> &str {
        match self {
            OutboxEntry::Notify { at, .. }
            | OutboxEntry::Remind { at, .. }
            | OutboxEntry::SlaBreached { at, .. } => at,
        }
    }
}
