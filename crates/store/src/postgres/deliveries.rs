//! PostgreSQL delivery queue statements on pooled connections. The rules are `deliveries`';
//! this file only runs them.
//!
//! Several nodes claim at once, and the database decides every race:
//!
//! - **A claim** is one statement: pick up to `n` rows `FOR UPDATE SKIP LOCKED` in a
//!   `MATERIALIZED` CTE, then `UPDATE ... FROM` it `RETURNING` the rows. A row another node's
//!   claim has locked is skipped, not waited for; a row another claim leased and committed
//!   since this statement's snapshot is locked, then its `WHERE` is checked again on the
//!   newest version (`READ COMMITTED`), which the fresh lease fails. So two nodes never lease
//!   one delivery at once, and neither waits for the other.
//!
//!   Why not `UPDATE ... WHERE id IN (SELECT ... LIMIT n FOR UPDATE SKIP LOCKED)`: the
//!   planner may run that subquery again for each row it updates, and each run, no longer
//!   seeing the rows just leased, picks the next `n`; one claim then leased the whole queue
//!   (the two-node test caught it). A materialized CTE runs once.
//!
//!   The ordering rule's `NOT EXISTS` ends in `OFFSET 0`, which keeps it a subquery run per
//!   candidate with its incident, channel and address as parameters (an index lookup on
//!   `deliveries_incident`). Without it, on a table whose statistics say it is nearly empty
//!   (a burst after a quiet spell, before autovacuum analyses it), the planner joined every
//!   pending delivery to every other: 600 ms a claim at 2,000 pending, 14 deliveries a second.
//! - **A record** locks its delivery (`FOR UPDATE`) and checks the owner in the same
//!   transaction that appends the attempt, so it cannot interleave with a claim by another
//!   node: either the claim came first and the record writes nothing, or the record did and
//!   the delivery is no longer leased.
//! - **A plan** locks the cursor row first, so plans take turns: two nodes planning the same
//!   outbox rows insert each delivery once (the second finds them: `ON CONFLICT DO NOTHING`)
//!   and never deadlock on each other's inserts.

use postgres::Row;

use revloop_core::Timestamp;
use revloop_core::time::DurationMs;

use super::{PostgresStore, Text};
use crate::StoreError;
use crate::deliveries::{
    AttemptRecord, AttemptRow, ChannelDeliveryStats, DeliveryQuery, DeliveryRow, DeliveryState,
    NewDelivery, check_plan, count, lease_from_columns, page_limit,
};
use crate::kinds::ColumnText;

/// The columns [`delivery_row`] reads, in its order.
const COLUMNS: &str = "id, outbox_id, incident, target, channel, address, level, state, \
     attempts, created_ms, first_attempt_ms, next_ms, lease_owner, lease_until_ms, \
     last_status, last_response, finished_ms";

/// [`COLUMNS`] of `deliveries` in an `UPDATE ... FROM picked`, where `id` alone is ambiguous.
const RETURNED: &str = "deliveries.id, outbox_id, incident, target, channel, address, level, \
     state, attempts, created_ms, first_attempt_ms, next_ms, lease_owner, lease_until_ms, \
     last_status, last_response, finished_ms";

impl PostgresStore {
    pub(super) fn delivery_cursor(&self) -> Result<i64, StoreError> {
        self.with_client(|client| {
            let row = client.query_one(
                "SELECT through_outbox_id FROM delivery_cursor WHERE id = 1",
                &[],
            )?;
            Ok(row.try_get(0)?)
        })
    }

    pub(super) fn plan_deliveries(
        &self,
        through_outbox_id: i64,
        deliveries: &[NewDelivery],
    ) -> Result<usize, StoreError> {
        check_plan(deliveries)?;
        self.with_client(|client| {
            let mut transaction = client.transaction()?;
            transaction.execute(
                "SELECT through_outbox_id FROM delivery_cursor WHERE id = 1 FOR UPDATE",
                &[],
            )?;
            let insert = transaction.prepare(
                "INSERT INTO deliveries (outbox_id, incident, target, channel, address, level,
                                         state, attempts, created_ms, next_ms)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, 0, $8, $8)
                 ON CONFLICT (outbox_id, target, channel, address) DO NOTHING",
            )?;
            let pending = DeliveryState::Pending.to_text();
            let mut n_new = 0;
            for delivery in deliveries {
                n_new += transaction.execute(
                    &insert,
                    &[
                        &delivery.outbox_id,
                        &delivery.incident,
                        &delivery.target,
                        &delivery.channel,
                        &delivery.address,
                        &delivery.level,
                        &pending,
                        &delivery.created_at.millis(),
                    ],
                )?;
            }
            transaction.execute(
                "UPDATE delivery_cursor SET through_outbox_id = GREATEST(through_outbox_id, $1)
                 WHERE id = 1",
                &[&through_outbox_id],
            )?;
            transaction.commit()?;
            Ok(usize::try_from(n_new).unwrap_or(usize::MAX))
        })
    }

    pub(super) fn claim_deliveries(
        &self,
        channel: &str,
        node: &str,
        now: Timestamp,
        lease: DurationMs,
        limit: usize,
    ) -> Result<Vec<DeliveryRow>, StoreError> {
        self.with_client(|client| {
            let rows = client.query(
                &format!(
                    "WITH picked AS MATERIALIZED (
                         SELECT d.id FROM deliveries d
                         WHERE d.channel = $1 AND d.state = $6 AND d.next_ms <= $4
                           AND (d.lease_until_ms IS NULL OR d.lease_until_ms <= $4)
                           AND NOT EXISTS (
                               SELECT 1 FROM deliveries e
                               WHERE e.incident = d.incident AND e.address = d.address
                                 AND e.channel = d.channel AND e.outbox_id < d.outbox_id
                                 AND e.state = $6
                               OFFSET 0)
                         ORDER BY d.next_ms, d.id LIMIT $5
                         FOR UPDATE SKIP LOCKED)
                     UPDATE deliveries SET lease_owner = $2, lease_until_ms = $3
                     FROM picked WHERE deliveries.id = picked.id
                     RETURNING {RETURNED}"
                ),
                &[
                    &channel,
                    &node,
                    &now.saturating_add(lease).millis(),
                    &now.millis(),
                    &page_limit(limit),
                    &DeliveryState::Pending.to_text(),
                ],
            )?;
            let mut claimed = rows
                .iter()
                .map(delivery_row)
                .collect::<Result<Vec<_>, _>>()?;
            // RETURNING gives no order.
            claimed.sort_by_key(|row| (row.next_at, row.id));
            Ok(claimed)
        })
    }

    pub(super) fn record_attempt(&self, attempt: &AttemptRecord) -> Result<bool, StoreError> {
        let write = attempt.write();
        self.with_client(|client| {
            let mut transaction = client.transaction()?;
            let held = transaction.query_opt(
                "SELECT attempts FROM deliveries
                 WHERE id = $1 AND lease_owner = $2 AND state = $3 FOR UPDATE",
                &[
                    &attempt.delivery,
                    &attempt.node,
                    &DeliveryState::Pending.to_text(),
                ],
            )?;
            let Some(held) = held else {
                return Ok(false);
            };
            let number: i32 = held.try_get::<_, i32>(0)?.saturating_add(1);
            let state = attempt.state.to_text();
            transaction.execute(
                "INSERT INTO delivery_attempts (delivery, attempt, node, at_ms, state, status,
                                                response)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[
                    &attempt.delivery,
                    &number,
                    &attempt.node,
                    &attempt.at.millis(),
                    &state,
                    &write.status.as_ref(),
                    &write.response.as_ref(),
                ],
            )?;
            transaction.execute(
                "UPDATE deliveries
                 SET state = $2, attempts = $3,
                     first_attempt_ms = COALESCE(first_attempt_ms, $4),
                     next_ms = COALESCE($5, next_ms), lease_owner = NULL, lease_until_ms = NULL,
                     last_status = $6, last_response = $7, finished_ms = $8
                 WHERE id = $1",
                &[
                    &attempt.delivery,
                    &state,
                    &number,
                    &attempt.at.millis(),
                    &write.next_ms,
                    &write.status.as_ref(),
                    &write.response.as_ref(),
                    &write.finished_ms,
                ],
            )?;
            transaction.commit()?;
            Ok(true)
        })
    }

    pub(super) fn deliveries(&self, query: &DeliveryQuery) -> Result<Vec<DeliveryRow>, StoreError> {
        let (from, to) = query.outbox_ids.unzip();
        self.with_client(|client| {
            let rows = client.query(
                &format!(
                    "SELECT {COLUMNS} FROM deliveries
                     WHERE ($1::BIGINT IS NULL OR incident = $1)
                       AND ($2::BIGINT IS NULL OR outbox_id >= $2)
                       AND ($3::BIGINT IS NULL OR outbox_id <= $3)
                     ORDER BY outbox_id, id LIMIT $4"
                ),
                &[&query.incident, &from, &to, &page_limit(query.limit)],
            )?;
            Ok(rows.iter().map(delivery_row).collect::<Result<_, _>>()?)
        })
    }

    pub(super) fn delivery_attempts(
        &self,
        incident: i64,
        limit: usize,
    ) -> Result<Vec<AttemptRow>, StoreError> {
        self.with_client(|client| {
            let rows = client.query(
                "SELECT * FROM (
                   SELECT a.delivery, a.attempt, a.node, a.at_ms, a.state, a.status, a.response
                   FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery
                   WHERE d.incident = $1
                   ORDER BY a.at_ms DESC, a.delivery DESC, a.attempt DESC LIMIT $2) newest
                 ORDER BY at_ms, delivery, attempt",
                &[&incident, &page_limit(limit)],
            )?;
            rows.iter()
                .map(|row| {
                    Ok(AttemptRow {
                        delivery: row.try_get(0)?,
                        attempt: count(row.try_get::<_, i32>(1)?.into()),
                        node: row.try_get(2)?,
                        at: Timestamp::from_millis(row.try_get(3)?),
                        state: row.try_get::<_, Text<DeliveryState>>(4)?.0,
                        status: row.try_get(5)?,
                        response: row.try_get(6)?,
                    })
                })
                .collect()
        })
    }

    pub(super) fn expedite_deliveries(
        &self,
        channel: &str,
        now: Timestamp,
    ) -> Result<usize, StoreError> {
        self.with_client(|client| {
            let n = client.execute(
                "UPDATE deliveries SET next_ms = $2
                 WHERE channel = $1 AND state = $3 AND next_ms > $2
                   AND (last_status IS NULL OR last_status <> '429')",
                &[&channel, &now.millis(), &DeliveryState::Pending.to_text()],
            )?;
            Ok(usize::try_from(n).unwrap_or(usize::MAX))
        })
    }

    pub(super) fn delivery_stats(&self) -> Result<Vec<ChannelDeliveryStats>, StoreError> {
        self.with_client(|client| {
            let rows = client.query(
                "SELECT d.channel,
                        count(*) FILTER (WHERE d.state = $1),
                        count(*) FILTER (WHERE d.state = $2),
                        count(*) FILTER (WHERE d.state = $3),
                        (SELECT count(*) FROM delivery_attempts a
                         JOIN deliveries e ON e.id = a.delivery
                         WHERE e.channel = d.channel AND a.state <> $1),
                        MIN(d.created_ms) FILTER (WHERE d.state = $3)
                 FROM deliveries d GROUP BY d.channel ORDER BY d.channel LIMIT $4",
                &[
                    &DeliveryState::Delivered.to_text(),
                    &DeliveryState::Failed.to_text(),
                    &DeliveryState::Pending.to_text(),
                    &page_limit(usize::MAX),
                ],
            )?;
            rows.iter()
                .map(|row| {
                    Ok(ChannelDeliveryStats {
                        channel: row.try_get(0)?,
                        delivered: count(row.try_get(1)?),
                        failed: count(row.try_get(2)?),
                        pending: count(row.try_get(3)?),
                        failed_attempts: count(row.try_get(4)?),
                        oldest_pending_at: row
                            .try_get::<_, Option<i64>>(5)?
                            .map(Timestamp::from_millis),
                    })
                })
                .collect()
        })
    }
}

/// One row of [`COLUMNS`].
fn delivery_row(row: &Row) -> Result<DeliveryRow, postgres::Error> {
    Ok(DeliveryRow {
        id: row.try_get(0)?,
        outbox_id: row.try_get(1)?,
        incident: row.try_get(2)?,
        target: row.try_get(3)?,
        channel: row.try_get(4)?,
        address: row.try_get(5)?,
        level: row.try_get(6)?,
        state: row.try_get::<_, Text<DeliveryState>>(7)?.0,
        attempts: count(row.try_get::<_, i32>(8)?.into()),
        created_at: Timestamp::from_millis(row.try_get(9)?),
        first_attempt_at: row
            .try_get::<_, Option<i64>>(10)?
            .map(Timestamp::from_millis),
        next_at: Timestamp::from_millis(row.try_get(11)?),
        lease: lease_from_columns(row.try_get(12)?, row.try_get(13)?),
        last_status: row.try_get(14)?,
        last_response: row.try_get(15)?,
        finished_at: row
            .try_get::<_, Option<i64>>(16)?
            .map(Timestamp::from_millis),
    })
}
