//! The delivery queue: one row per outbox entry and route, planned from the outbox, claimed
//! under a lease by one node at a time, and every attempt appended to a log. The dialect-free
//! part lives here; `sqlite/deliveries.rs` and `postgres/deliveries.rs` run the statements.
//!
//! Invariants:
//! - A delivery is planned once per `(outbox_id, target, channel, address)`: two nodes planning
//!   the same outbox rows insert each delivery once (a UNIQUE constraint).
//! - A delivery is held by at most one node at a time: `claim_deliveries` leases it
//!   (PostgreSQL: `FOR UPDATE SKIP LOCKED`; SQLite: `BEGIN IMMEDIATE`), and an expired lease
//!   may be claimed by another node, so deliveries go on when a node dies.
//! - Only the lease's holder records an attempt (`record_attempt` checks owner and lease), so
//!   a node that lost its lease cannot overwrite the one that took over.
//! - Within one incident, target and channel, deliveries are claimed in outbox order: a later
//!   one waits while an earlier one is pending, so an acknowledge or resolve never overtakes
//!   its trigger.
//! - The attempt log is append-only (triggers refuse UPDATE and DELETE).

use revloop_core::time::{DurationMs, Timestamp};

/// Most deliveries one claim returns, and most rows a delivery read returns.
pub const DELIVERY_PAGE_MAX: usize = 1_000;

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryState {
    Pending,
    Delivered,
    /// Final: refused for good, or given up after the retry limit.
    Failed,
}

/// A delivery to plan: one outbox entry to one route of one target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDelivery {
    pub outbox_id: i64,
    pub incident: i64,
    pub target: String,
    pub channel: String,
    /// The route's address (email), or empty.
    pub address: String,
    /// The escalation level a page reached, for failover; empty for the other entries.
    pub level: String,
    /// When it was planned; the first attempt is due at once.
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryRow {
    pub id: i64,
    pub outbox_id: i64,
    pub incident: i64,
    pub target: String,
    pub channel: String,
    pub address: String,
    pub level: String,
    pub state: DeliveryState,
    /// Attempts made so far.
    pub attempts: u32,
    pub created_at: Timestamp,
    /// When the first attempt was made (for giving up and failover).
    pub first_attempt_at: Option<Timestamp>,
    /// When the next attempt is due, while pending.
    pub next_at: Timestamp,
    /// The node holding it and until when; `None` when nobody does.
    pub lease: Option<(String, Timestamp)>,
    /// The last answer: an HTTP or SMTP status, `timeout`, or a network error's kind.
    pub last_status: Option<String>,
    /// The start of the last answer's body (at most `RESPONSE_BYTES_MAX`).
    pub last_response: Option<String>,
    pub finished_at: Option<Timestamp>,
}

/// One attempt's result, recorded by the lease holder.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptRecord {
    pub delivery: i64,
    /// The node that made it: it must still hold the lease.
    pub node: String,
    pub at: Timestamp,
    /// What the delivery becomes: `Pending` (retry at `next_at`), `Delivered` or `Failed`.
    pub state: DeliveryState,
    pub next_at: Option<Timestamp>,
    pub status: String,
    pub response: String,
}

/// One logged attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptRow {
    pub delivery: i64,
    /// 1-based.
    pub attempt: u32,
    pub node: String,
    pub at: Timestamp,
    pub state: DeliveryState,
    pub status: String,
    pub response: String,
}

/// A read of deliveries: those of one incident, or of a range of outbox ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryQuery {
    pub incident: Option<i64>,
    /// Outbox ids in `[from, to]`.
    pub outbox_ids: Option<(i64, i64)>,
    pub limit: usize,
}

/// Per channel, for `/metrics`.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelDeliveryStats {
    pub channel: String,
    pub delivered: u64,
    pub failed: u64,
    pub pending: u64,
    /// Attempts that did not deliver (each retry counts).
    pub failed_attempts: u64,
    pub oldest_pending_at: Option<Timestamp>,
}

/// The lease a claim takes: long enough for one attempt's timeout and recording it.
pub fn lease_for(attempt_timeout: DurationMs) -> DurationMs {
    DurationMs::from_millis(attempt_timeout.millis().saturating_add(30_000))
}
