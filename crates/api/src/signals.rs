//! Inbound technical signals as the API takes and shows them: Prometheus Alertmanager's
//! webhook payload (version 4) at `POST /api/v1/signals/alertmanager`, PagerDuty-Events-v2
//! shaped events at `POST /api/v1/signals/events`, their replies, and a stored signal as an
//! incident's view lists it.
//!
//! The request types document the senders' own shapes (field names as they send them); the
//! server reads bodies with its own parser so that a refusal names the field.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Prometheus Alertmanager's webhook body, version 4
/// (<https://prometheus.io/docs/alerting/latest/configuration/#webhook_config>).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlertmanagerWebhook {
    /// `"4"`; any other version is refused.
    #[schema(pattern = "^4$", example = "4")]
    pub version: String,
    pub group_key: String,
    /// How many alerts Alertmanager left out (`max_alerts`).
    #[serde(default)]
    pub truncated_alerts: u64,
    /// `firing` or `resolved`.
    #[schema(pattern = "^(firing|resolved)$", example = "firing")]
    pub status: String,
    pub receiver: String,
    #[serde(default)]
    pub group_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub common_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub common_annotations: BTreeMap<String, String>,
    #[serde(rename = "externalURL", default)]
    pub external_url: String,
    pub alerts: Vec<AlertmanagerAlert>,
}

/// One alert of an Alertmanager webhook body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlertmanagerAlert {
    /// `firing` or `resolved`.
    #[schema(pattern = "^(firing|resolved)$", example = "firing")]
    pub status: String,
    /// `funnel` and `stage` (or `revloop_funnel`, `revloop_stage`) name what it bears on.
    pub labels: BTreeMap<String, String>,
    /// `summary` (else `description`) is shown as the signal's summary.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// RFC 3339.
    #[schema(format = DateTime, example = "2026-11-27T09:55:00.123456789Z")]
    pub starts_at: String,
    /// RFC 3339; `0001-01-01T00:00:00Z` while firing.
    #[serde(default)]
    pub ends_at: Option<String>,
    #[serde(rename = "generatorURL", default)]
    pub generator_url: String,
    /// The alert's identity: a re-send updates the signal with it.
    #[schema(min_length = 1, max_length = 255, example = "a1b2c3d4e5f60718")]
    pub fingerprint: String,
}

/// A PagerDuty Events API v2 event (`POST /api/v1/signals/events`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Event {
    /// `trigger`, `acknowledge` or `resolve`.
    #[schema(pattern = "^(trigger|acknowledge|resolve)$", example = "trigger")]
    pub event_action: String,
    /// The signal's identity; required for `acknowledge` and `resolve`, made up from the
    /// payload for a `trigger` without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 1, max_length = 255)]
    pub dedup_key: Option<String>,
    /// PagerDuty's integration key; accepted and ignored (the bearer token authenticates).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing_key: Option<String>,
    /// Required for `trigger`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<EventPayload>,
}

/// What a `trigger` says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EventPayload {
    pub summary: String,
    pub source: String,
    /// `critical`, `error`, `warning` or `info`.
    #[schema(pattern = "^(critical|error|warning|info)$", example = "critical")]
    pub severity: String,
    /// RFC 3339; when it started (default: when received).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    /// Free-form; its `funnel` and `stage` (or `revloop_funnel`, `revloop_stage`) name what it
    /// bears on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub custom_details: Option<serde_json::Value>,
}

/// The reply to an event, PagerDuty's: `{"status":"success","message":"Event processed",
/// "dedup_key":...}`, plus the open incidents the signal attaches to now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EventReply {
    pub status: String,
    pub message: String,
    pub dedup_key: String,
    #[serde(default)]
    pub incidents: Vec<u64>,
}

/// The reply to an Alertmanager webhook: the signals stored and the open incidents they attach
/// to now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AlertmanagerReply {
    pub status: String,
    pub signals: Vec<Signal>,
    pub incidents: Vec<u64>,
}

/// A stored technical signal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Signal {
    pub id: i64,
    /// `alertmanager` or `events`.
    pub source: String,
    /// The Alertmanager fingerprint or the event's dedup key.
    pub key: String,
    /// `firing` or `resolved`.
    pub status: String,
    pub starts_at: String,
    /// `null` while firing.
    pub ends_at: Option<String>,
    pub summary: String,
    pub severity: Option<String>,
    pub funnel: Option<String>,
    pub stage: Option<String>,
    /// Its labels (an event: its source, component, group, class and custom details).
    #[schema(value_type = Object)]
    pub labels: serde_json::Value,
    pub received_at: String,
    /// How often it was received (re-sends update it).
    pub n_received: i64,
    /// The root-cause checklist's technical items it speaks to, by index.
    pub checklist: Vec<usize>,
}
