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
    /// The deliveries of this page's entries (one per entry, route and channel), by entry
    /// then delivery id: their state, attempts and the receiver's last answer.
    #[serde(default)]
    pub deliveries: Vec<DeliveryView>,
    /// The `after` of the next read: the last id given, or the `after` asked for.
    pub next_after: i64,
}

/// What a receiver needs to know about the incident, as it stood when the entry was written,
/// so that a page can be read (and a PagerDuty event filled in) without calling back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct IncidentBrief {
    /// One line: "P1 conversion: checkout/payment, device = mobile".
    pub title: String,
    pub funnel: String,
    pub stage: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment: Option<BriefSegment>,
    /// `P1`, `P2` or `P3`.
    pub severity: String,
    /// The alert kind behind the severity (`conversion`, `volume`, `guard`, `declared`).
    pub kind: String,
    /// The latest deviation of the incident's series, in σ (positive: worse than baseline, as
    /// the detector and the timeline measure it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sigma: Option<f64>,
    /// The loss so far, when priced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss: Option<BriefMoney>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BriefSegment {
    pub dimension: String,
    pub value: String,
}

/// Money as integer minor units and an ISO 4217 code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BriefMoney {
    pub minor: i64,
    pub currency: String,
}

names! {
    /// Where a delivery stands.
    pub enum DeliveryState("delivery state") open {
        /// Not yet delivered: waiting for its first attempt or its next retry.
        Pending = "pending",
        /// The receiver took it (2xx, SMTP 250).
        Delivered = "delivered",
        /// Never delivered: refused for good (4xx, SMTP 5xx) or failing past the retry limit.
        Failed = "failed",
    }
}

/// One message to one route (channel and address) of one target or audience.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeliveryView {
    pub id: i64,
    /// The outbox entry delivered.
    pub outbox_id: i64,
    pub incident: u64,
    /// The target or audience ("on-call engineer", "CTO").
    pub target: String,
    /// The configured channel's name.
    pub channel: String,
    /// `webhook`, `slack`, `email`, `pagerduty` or `log`.
    pub channel_kind: String,
    /// The address, for email.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    pub state: DeliveryState,
    pub attempts: u32,
    /// When the next attempt is due, while pending.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_at: Option<String>,
    /// The last answer: an HTTP or SMTP status, `timeout`, or a network error's kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_status: Option<String>,
    /// The start of the receiver's last answer (at most 1 KiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_response: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
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
        /// Absent in entries written before delivery existed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        brief: Option<IncidentBrief>,
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
        #[serde(default, skip_serializing_if = "Option::is_none")]
        brief: Option<IncidentBrief>,
    },
    /// An SLA ran out. Delivered to the targets paged so far.
    #[serde(rename = "sla_breached")]
    SlaBreached {
        id: i64,
        incident: u64,
        at: String,
        sla: SlaName,
        /// Who is told: the targets paged so far (empty in entries written before delivery
        /// existed).
        #[serde(default)]
        targets: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        brief: Option<IncidentBrief>,
    },
    /// Someone acknowledged an incident that paged: everyone paged so far is told, so that
    /// nobody else gets up for it. PagerDuty `acknowledge`.
    #[serde(rename = "acknowledged")]
    Acknowledged {
        id: i64,
        incident: u64,
        at: String,
        /// Who acknowledged it.
        by: String,
        targets: Vec<String>,
        brief: IncidentBrief,
    },
    /// An incident that paged is resolved: everyone paged so far is told. PagerDuty `resolve`.
    #[serde(rename = "resolved")]
    Resolved {
        id: i64,
        incident: u64,
        at: String,
        by: String,
        false_alarm: bool,
        targets: Vec<String>,
        brief: IncidentBrief,
    },
}

impl OutboxEntry {
    pub fn id(&self) -> i64 {
        match self {
            OutboxEntry::Notify { id, .. }
            | OutboxEntry::Remind { id, .. }
            | OutboxEntry::SlaBreached { id, .. }
            | OutboxEntry::Acknowledged { id, .. }
            | OutboxEntry::Resolved { id, .. } => *id,
        }
    }

    pub fn incident(&self) -> u64 {
        match self {
            OutboxEntry::Notify { incident, .. }
            | OutboxEntry::Remind { incident, .. }
            | OutboxEntry::SlaBreached { incident, .. }
            | OutboxEntry::Acknowledged { incident, .. }
            | OutboxEntry::Resolved { incident, .. } => *incident,
        }
    }

    pub fn at(&self) -> &str {
        match self {
            OutboxEntry::Notify { at, .. }
            | OutboxEntry::Remind { at, .. }
            | OutboxEntry::SlaBreached { at, .. }
            | OutboxEntry::Acknowledged { at, .. }
            | OutboxEntry::Resolved { at, .. } => at,
        }
    }

    /// Who the entry is delivered to: targets (escalation levels' names) to route.
    pub fn targets(&self) -> &[String] {
        match self {
            OutboxEntry::Notify { targets, .. }
            | OutboxEntry::Remind { targets, .. }
            | OutboxEntry::SlaBreached { targets, .. }
            | OutboxEntry::Acknowledged { targets, .. }
            | OutboxEntry::Resolved { targets, .. } => targets,
        }
    }

    pub fn brief(&self) -> Option<&IncidentBrief> {
        match self {
            OutboxEntry::Notify { brief, .. }
            | OutboxEntry::Remind { brief, .. }
            | OutboxEntry::SlaBreached { brief, .. } => brief.as_ref(),
            OutboxEntry::Acknowledged { brief, .. } | OutboxEntry::Resolved { brief, .. } => {
                Some(brief)
            }
        }
    }
}
