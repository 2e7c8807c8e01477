//! Ingest replies and the ingest problem log.
//!
//! A batch endpoint (`/v1/batch`, `/api/v1/events/bulk`) accepts message by message: its
//! 200 reply says how many were counted, duplicates, late, ignored and rejected, and lists each
//! rejected message with its place, field and reason. A message counted although part of it
//! was unusable (a dimension value folded, cut or dropped) is listed under `notices`.
//!
//! The problem log keeps the newest rejected messages and notices durably, and the ignored
//! event names with their counts, so that a tracking-plan typo shows.

use serde::{Deserialize, Serialize};

/// The 200 reply of every ingest endpoint.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct IngestReply {
    pub success: bool,
    /// New messages (or count records) that updated counts.
    pub counted: usize,
    /// Already seen within the dedup window: nothing added.
    pub duplicates: usize,
    /// Older than the allowed lateness: tallied as late, counts unchanged.
    pub late: usize,
    /// New, but no funnel stage listens to them.
    pub ignored: usize,
    /// Refused one by one; the rest of the request was still taken.
    #[serde(default)]
    pub rejected: usize,
    /// The rejected messages, in request order, up to a named limit.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rejections: Vec<MessageProblem>,
    /// Counted messages with a part that could not be kept as sent, up to a named limit.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notices: Vec<MessageProblem>,
    /// How many rejections and notices were not listed because of the limit.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub unlisted: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// One message's problem, where it stands in the request and what was done about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MessageProblem {
    /// Position in a `batch` array, 0-based.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
    /// Line of an NDJSON body, 1-based.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// Dotted path of the field, e.g. `timestamp` or `context.device.type`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Stable and machine-readable: `timestamp_out_of_range`, `invalid_json`, `value_cut`...
    pub code: String,
    pub message: String,
}

/// One entry of the problem log: `GET /api/v1/ingest/rejected`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LoggedProblem {
    /// Increasing with the time entries were logged; `?before=` pages by it.
    pub id: i64,
    /// When it was received, RFC 3339.
    pub at: String,
    /// The name of the token or write key that sent it.
    pub key_name: String,
    /// `rejected`: the message was not counted; `notice`: it was counted, with this part
    /// folded, cut or dropped.
    pub outcome: ProblemOutcome,
    pub code: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    pub message: String,
    /// The message as sent, cut to a few KiB at a character boundary.
    pub body: String,
    /// Whether `body` was cut.
    #[serde(default)]
    pub body_cut: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProblemOutcome {
    Rejected,
    Notice,
}

/// The reply of `GET /api/v1/ingest/rejected`: newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProblemLog {
    pub entries: Vec<LoggedProblem>,
    /// Entries the log holds in all, whatever the filters (it keeps a bounded number, oldest
    /// dropped first).
    pub total: u64,
    /// Entries dropped so far to keep the log under its bound.
    #[serde(default)]
    pub dropped: u64,
    /// Pass as `?before=` for the next (older) page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_before: Option<i64>,
}

/// One event name no funnel stage listens to, with how often it was sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct IgnoredName {
    /// The Segment call type: `track`, `page` or `screen`.
    pub kind: String,
    pub name: String,
    pub count: u64,
    pub first_seen: String,
    pub last_seen: String,
}

/// The reply of `GET /api/v1/ingest/ignored`: most frequent first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct IgnoredNames {
    pub names: Vec<IgnoredName>,
    /// Ignored messages whose name was not kept because the list was full.
    #[serde(default)]
    pub unlisted: u64,
}
