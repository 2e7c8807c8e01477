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
//! - Only the lease's holder records an attempt, so a node that lost its lease cannot overwrite
//!   the one that took over. The fence is the lease's owner, not its expiry: an attempt
//!   recorded after the lease ran out still counts while no other node has claimed the
//!   delivery (it did happen, and nobody else is trying), and is refused, writing nothing,
//!   once another node has. A claim replaces the owner, so the late node learns it lost.
//! - Within one incident and receiver (channel and address: a webhook, Slack or PagerDuty
//!   channel is one receiver whatever the target), deliveries are claimed in outbox order: a
//!   later one waits while an earlier one is pending, so an acknowledge or resolve never
//!   overtakes a trigger the same receiver has yet to see (PagerDuty's `dedup_key` is per
//!   incident: a resolve before a trigger would leave its incident open).
//! - The attempt log is append-only (triggers refuse UPDATE and DELETE; on PostgreSQL, and
//!   TRUNCATE). A delivery's `attempts` is the number of its rows there.
//! - The planning cursor (the highest outbox id planned) never goes down.
//! - `Delivered` and `Failed` are final: nothing claims or records on them again.

use std::borrow::Cow;

use revloop_core::delivery::RESPONSE_BYTES_MAX;
use revloop_core::time::{DurationMs, Timestamp};

use crate::StoreError;
use crate::problems::NUL_REPLACEMENT;

/// Most deliveries one claim returns, and most rows a delivery read returns.
pub const DELIVERY_PAGE_MAX: usize = 1_000;

/// Most deliveries one `plan_deliveries` call inserts (one transaction).
pub const DELIVERY_PLAN_MAX: usize = 10_000;

/// Longest attempt status kept, in bytes (a status is a code or an error's kind).
pub const DELIVERY_STATUS_BYTES_MAX: usize = 128;

pub use crate::kinds::DeliveryState;

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

/// Refuses a plan larger than [`DELIVERY_PLAN_MAX`] before anything is written.
pub(crate) fn check_plan(deliveries: &[NewDelivery]) -> Result<(), StoreError> {
    if deliveries.len() > DELIVERY_PLAN_MAX {
        return Err(StoreError::Settings(format!(
            "at most {DELIVERY_PLAN_MAX} deliveries per plan, not {}",
            deliveries.len()
        )));
    }
    Ok(())
}

/// A read's or claim's limit, at most [`DELIVERY_PAGE_MAX`].
pub(crate) fn page_limit(limit: usize) -> i64 {
    crate::sql_limit(limit.min(DELIVERY_PAGE_MAX))
}

/// The start of `text`, at most `bytes_max` bytes, cut at a char boundary.
pub(crate) fn cut(text: &str, bytes_max: usize) -> &str {
    if text.len() <= bytes_max {
        return text;
    }
    let mut end = bytes_max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// `text` as stored: every NUL replaced by [`NUL_REPLACEMENT`] (PostgreSQL `text` refuses
/// it, and a receiver's answer may hold one), then cut to at most `bytes_max` bytes.
pub(crate) fn stored_text(text: &str, bytes_max: usize) -> Cow<'_, str> {
    if text.contains('\0') {
        let replaced = text.replace('\0', NUL_REPLACEMENT.encode_utf8(&mut [0; 4]));
        Cow::Owned(cut(&replaced, bytes_max).to_owned())
    } else {
        Cow::Borrowed(cut(text, bytes_max))
    }
}

/// What `record_attempt` writes, derived once for both dialects from an [`AttemptRecord`].
pub(crate) struct AttemptWrite<'a> {
    pub status: Cow<'a, str>,
    pub response: Cow<'a, str>,
    /// The next try: the record's `next_at` while pending (its `at` when it gave none),
    /// `None` (left as it was) once final.
    pub next_ms: Option<i64>,
    /// When it ended: `at` for a final state, else `None`.
    pub finished_ms: Option<i64>,
}

impl AttemptRecord {
    pub(crate) fn write(&self) -> AttemptWrite<'_> {
        let pending = self.state == DeliveryState::Pending;
        AttemptWrite {
            status: stored_text(&self.status, DELIVERY_STATUS_BYTES_MAX),
            response: stored_text(&self.response, RESPONSE_BYTES_MAX),
            next_ms: pending.then(|| self.next_at.unwrap_or(self.at).millis()),
            finished_ms: (!pending).then(|| self.at.millis()),
        }
    }
}

/// A count the schema keeps non-negative (a CHECK, or `count(*)`), in the type it is read as.
pub(crate) fn count<T: TryFrom<i64> + Default>(n: i64) -> T {
    T::try_from(n).unwrap_or_default()
}

/// A lease as two nullable columns: both set or both null (a CHECK holds it in the schema).
pub(crate) fn lease_from_columns(
    owner: Option<String>,
    until_ms: Option<i64>,
) -> Option<(String, Timestamp)> {
    owner.zip(until_ms.map(Timestamp::from_millis))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_keeps_whole_chars() {
        assert_eq!(cut("abc", 3), "abc");
        assert_eq!(cut("abcd", 3), "abc");
        // "é" is two bytes: a cut inside it drops it.
        assert_eq!(cut("aé", 2), "a");
        assert_eq!(cut("aé", 3), "aé");
        assert_eq!(cut("", 0), "");
    }

    #[test]
    fn stored_text_has_no_nul_and_fits() {
        assert_eq!(stored_text("a\0b", 10), "a\u{FFFD}b");
        // The replacement is three bytes: the cut comes after it.
        assert_eq!(stored_text("a\0b", 3), "a");
        assert_eq!(stored_text("plain", 3), "pla");
    }

    #[test]
    fn an_attempt_writes_next_try_or_end() {
        let record = |state, next_at| AttemptRecord {
            delivery: 1,
            node: "a".into(),
            at: Timestamp::from_millis(1_000),
            state,
            next_at,
            status: "x".repeat(500),
            response: "y".repeat(5_000),
        };
        let retry = record(DeliveryState::Pending, Some(Timestamp::from_millis(9_000)));
        let write = retry.write();
        assert_eq!(write.next_ms, Some(9_000));
        assert_eq!(write.finished_ms, None);
        assert_eq!(write.status.len(), DELIVERY_STATUS_BYTES_MAX);
        assert_eq!(write.response.len(), RESPONSE_BYTES_MAX);
        assert_eq!(
            record(DeliveryState::Pending, None).write().next_ms,
            Some(1_000)
        );
        let done = record(
            DeliveryState::Delivered,
            Some(Timestamp::from_millis(9_000)),
        );
        assert_eq!(done.write().next_ms, None);
        assert_eq!(done.write().finished_ms, Some(1_000));
        assert_eq!(
            record(DeliveryState::Failed, None).write().finished_ms,
            Some(1_000)
        );
    }
}
