//! Changes that may explain an incident: `POST /api/v1/changes` (its body and reply) and
//! `GET /api/v1/changes`.

use serde::{Deserialize, Serialize};

use crate::Segment;
use crate::names::names;

names! {
    /// What kind of change.
    pub enum ChangeKind("change kind") open {
        Deploy = "deploy",
        ExperimentStart = "experiment_start",
        ExperimentStop = "experiment_stop",
        Pricing = "pricing",
        Promotion = "promotion",
        PaymentProcessor = "payment_processor",
        Cdn = "cdn",
        Infrastructure = "infrastructure",
        Config = "config",
        Other = "other",
    }
}

/// A recorded change, as the changes API returns it and suspects embed it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Change {
    pub id: i64,
    /// When it took effect.
    pub at: String,
    pub kind: ChangeKind,
    pub summary: String,
    pub detail: String,
    /// `null`: every funnel.
    pub funnel: Option<String>,
    /// `null`: shop-wide.
    pub stage: Option<String>,
    pub segment: Option<Segment>,
    /// The name of the token that recorded it.
    pub author: String,
    pub external_id: Option<String>,
    pub recorded_at: String,
}

/// `GET /api/v1/changes`: newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChangeList {
    pub changes: Vec<Change>,
}

/// The body of `POST /api/v1/changes`; absent optional fields are left out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewChange {
    pub kind: ChangeKind,
    /// One line, at most 200 bytes.
    pub summary: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// RFC 3339; the server's now when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub funnel: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment: Option<Segment>,
    /// The sender's own id: recording it twice stores it once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
}
