//! Bounded disk: what the maintenance service asks of a store, in both dialects.
//!
//! - **Hourly rollup.** Per-minute counts before a horizon are rolled up to hourly: the rows of
//!   minutes 1 to 59 of an hour are added into the row of its first minute and deleted. A read
//!   of a rolled-up range still answers, and every sum over whole hours is unchanged; only the
//!   hour's minutes are no longer told apart (the hour's total reads as its first minute's).
//!   The rollup runs segment batch by segment batch, a day at a time, each in a transaction of
//!   its own, so that ingest never waits long for it. It is idempotent: a step repeated (after
//!   a failure, or by two nodes at once on PostgreSQL) moves nothing twice. The horizon it has
//!   reached is kept in the database (`count_rollup`), so a restart does not scan again.
//!   Late counts are not rolled up: they are few.
//! - **Expired dedup keys** are deleted when the dedup window rotates (at a commit), in both
//!   stores: see `dedup` (SQLite) and `postgres::ingest` (PostgreSQL).
//! - **The problem log** keeps its newest `PROBLEM_LOG_ENTRIES_MAX` entries (see `problems`):
//!   it is bounded by count already.

use revloop_core::Timestamp;
use revloop_core::time::Minute;

/// Minutes per hour, for the rollup's arithmetic on minute indexes.
pub(crate) const MINUTES_PER_HOUR: i64 = 60;
/// The rollup's step: a day of minutes of a batch of segments per transaction.
pub(crate) const ROLLUP_STEP_MINUTES: i64 = 24 * MINUTES_PER_HOUR;
/// Segments rolled up in one transaction.
pub(crate) const ROLLUP_SEGMENTS_PER_STEP: usize = 32;

/// What a rollup did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rollup {
    /// Minute rows deleted (their counts added to their hour's first minute).
    pub rows_deleted: u64,
    /// Counts of minutes before this are kept hourly (`None`: nothing rolled up yet).
    pub hourly_before: Option<Minute>,
}

/// The outbox's size. Nothing marks an outbox row delivered (readers page through it by id), so
/// every stored row counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OutboxStats {
    pub entries: u64,
    /// When the oldest row was queued (`None`: the outbox is empty).
    pub oldest_at: Option<Timestamp>,
}

/// `before` rounded down to the start of its hour.
pub(crate) fn hour_floor(before: Minute) -> i64 {
    before.index().div_euclid(MINUTES_PER_HOUR) * MINUTES_PER_HOUR
}

/// The ranges `[from, to)` a rollup from `start` up to `end` steps through, a day each.
pub(crate) fn rollup_steps(start: i64, end: i64) -> impl Iterator<Item = (i64, i64)> {
    let mut from = start;
    std::iter::from_fn(move || {
        if from >= end {
            return None;
        }
        let to = (from + ROLLUP_STEP_MINUTES).min(end);
        let step = (from, to);
        from = to;
        Some(step)
    })
}
