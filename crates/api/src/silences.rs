//! Maintenance windows: `GET /api/v1/silences`, `POST /api/v1/silences` (its body and reply)
//! and `DELETE /api/v1/silences/{id}`.

use serde::{Deserialize, Serialize};

use crate::names::names;

names! {
    /// Where a silence comes from: the config file, or added through the API.
    pub enum SilenceSource("silence source") open {
        Config = "config",
        Api = "api",
    }
}

names! {
    /// A silence relative to the server's now.
    pub enum SilenceState("silence state") open {
        Scheduled = "scheduled",
        Active = "active",
        Ended = "ended",
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Silence {
    /// `null` for a silence of the config.
    pub id: Option<u64>,
    pub source: SilenceSource,
    /// `null`: every funnel.
    pub funnel: Option<String>,
    /// `null`: every stage.
    pub stage: Option<String>,
    pub from: String,
    pub to: String,
    pub reason: String,
    pub state: SilenceState,
    /// Who added it through the API; `null` for the config's, and in the reply to the `POST`.
    pub added_by: Option<String>,
    pub added_at: Option<String>,
    /// Only in the reply to the `DELETE` that ended it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<String>,
}

/// `GET /api/v1/silences`: the config's, then those added through the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SilenceList {
    pub silences: Vec<Silence>,
}

/// The body of `POST /api/v1/silences`; absent optional fields are left out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSilence {
    /// RFC 3339 with its offset.
    pub to: String,
    /// RFC 3339; the server's now when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub funnel: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
}
