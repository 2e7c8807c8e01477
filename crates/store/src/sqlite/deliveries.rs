//! SQLite delivery queue statements: plan, claim and record each in one `IMMEDIATE`
//! transaction on the writer connection, and read on a pooled reader. The rules are
//! `deliveries`'; this file only runs them.
//!
//! `IMMEDIATE` takes the database's write lock before the first read, so a claim's choice and
//! its lease are one step for every connection and process that opens the file: two claims
//! never lease the same row, and a record's owner check and its writes see one state.

use rusqlite::{OptionalExtension, Row, TransactionBehavior, params};

use revloop_core::Timestamp;
use revloop_core::time::DurationMs;

use super::{SqliteStore, Text};
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

impl SqliteStore {
    pub(super) fn delivery_cursor(&self) -> Result<i64, StoreError> {
        self.with_reader(|connection| {
            Ok(connection.query_row(
                "SELECT through_outbox_id FROM delivery_cursor WHERE id = 1",
                [],
                |row| row.get(0),
            )?)
        })
    }

    pub(super) fn plan_deliveries(
        &self,
        through_outbox_id: i64,
        deliveries: &[NewDelivery],
    ) -> Result<usize, StoreError> {
        check_plan(deliveries)?;
        let mut writer = self.writer.lock().expect("writer lock");
        let transaction = writer
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut n_new = 0;
        {
            let mut insert = transaction.prepare_cached(
                "INSERT INTO deliveries (outbox_id, incident, target, channel, address, level,
                                         state, attempts, created_ms, next_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 0, ?8, ?8)
                 ON CONFLICT (outbox_id, target, channel, address) DO NOTHING",
            )?;
            for delivery in deliveries {
                n_new += insert.execute(params![
                    delivery.outbox_id,
                    delivery.incident,
                    delivery.target,
                    delivery.channel,
                    delivery.address,
                    delivery.level,
                    DeliveryState::Pending.to_text(),
                    delivery.created_at.millis(),
                ])?;
            }
        }
        transaction.execute(
            "UPDATE delivery_cursor SET through_outbox_id = MAX(through_outbox_id, ?1)
             WHERE id = 1",
            [through_outbox_id],
        )?;
        transaction.commit()?;
        Ok(n_new)
    }

    pub(super) fn claim_deliveries(
        &self,
        channel: &str,
        node: &str,
        now: Timestamp,
        lease: DurationMs,
        limit: usize,
    ) -> Result<Vec<DeliveryRow>, StoreError> {
        let mut writer = self.writer.lock().expect("writer lock");
        let transaction = writer
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut claimed: Vec<DeliveryRow> = transaction
            .prepare_cached(&format!(
                "UPDATE deliveries SET lease_owner = ?2, lease_until_ms = ?3
                 WHERE id IN (
                     SELECT d.id FROM deliveries d
                     WHERE d.channel = ?1 AND d.state = ?6 AND d.next_ms <= ?4
                       AND (d.lease_until_ms IS NULL OR d.lease_until_ms <= ?4)
                       AND NOT EXISTS (
                           SELECT 1 FROM deliveries e
                           WHERE e.incident = d.incident AND e.address = d.address
                             AND e.channel = d.channel AND e.outbox_id < d.outbox_id
                             AND e.state = ?6)
                     ORDER BY d.next_ms, d.id LIMIT ?5)
                 RETURNING {COLUMNS}"
            ))?
            .query_map(
                params![
                    channel,
                    node,
                    now.saturating_add(lease).millis(),
                    now.millis(),
                    page_limit(limit),
                    DeliveryState::Pending.to_text(),
                ],
                delivery_row,
            )?
            .collect::<Result<_, _>>()?;
        transaction.commit()?;
        // RETURNING gives no order.
        claimed.sort_by_key(|row| (row.next_at, row.id));
        Ok(claimed)
    }

    pub(super) fn record_attempt(&self, attempt: &AttemptRecord) -> Result<bool, StoreError> {
        let write = attempt.write();
        let mut writer = self.writer.lock().expect("writer lock");
        let transaction = writer
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let attempts: Option<i64> = transaction
            .query_row(
                "SELECT attempts FROM deliveries
                 WHERE id = ?1 AND lease_owner = ?2 AND state = ?3",
                params![
                    attempt.delivery,
                    attempt.node,
                    DeliveryState::Pending.to_text()
                ],
                |row| row.get(0),
            )
            .optional()?;
        let Some(attempts) = attempts else {
            return Ok(false);
        };
        let number = attempts + 1;
        let state = attempt.state.to_text();
        transaction.execute(
            "INSERT INTO delivery_attempts (delivery, attempt, node, at_ms, state, status,
                                            response)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                attempt.delivery,
                number,
                attempt.node,
                attempt.at.millis(),
                state,
                write.status.as_ref(),
                write.response.as_ref(),
            ],
        )?;
        transaction.execute(
            "UPDATE deliveries
             SET state = ?2, attempts = ?3, first_attempt_ms = COALESCE(first_attempt_ms, ?4),
                 next_ms = COALESCE(?5, next_ms), lease_owner = NULL, lease_until_ms = NULL,
                 last_status = ?6, last_response = ?7, finished_ms = ?8
             WHERE id = ?1",
            params![
                attempt.delivery,
                state,
                number,
                attempt.at.millis(),
                write.next_ms,
                write.status.as_ref(),
                write.response.as_ref(),
                write.finished_ms,
            ],
        )?;
        transaction.commit()?;
        Ok(true)
    }

    pub(super) fn deliveries(&self, query: &DeliveryQuery) -> Result<Vec<DeliveryRow>, StoreError> {
        let (from, to) = query.outbox_ids.unzip();
        self.with_reader(|connection| {
            let rows = connection
                .prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM deliveries
                     WHERE (?1 IS NULL OR incident = ?1)
                       AND (?2 IS NULL OR outbox_id >= ?2) AND (?3 IS NULL OR outbox_id <= ?3)
                     ORDER BY outbox_id, id LIMIT ?4"
                ))?
                .query_map(
                    params![query.incident, from, to, page_limit(query.limit)],
                    delivery_row,
                )?
                .collect::<Result<_, _>>()?;
            Ok(rows)
        })
    }

    pub(super) fn delivery_attempts(
        &self,
        incident: i64,
        limit: usize,
    ) -> Result<Vec<AttemptRow>, StoreError> {
        self.with_reader(|connection| {
            let rows = connection
                .prepare_cached(
                    "SELECT * FROM (
                       SELECT a.delivery, a.attempt, a.node, a.at_ms, a.state, a.status, a.response
                       FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery
                       WHERE d.incident = ?1
                       ORDER BY a.at_ms DESC, a.delivery DESC, a.attempt DESC LIMIT ?2) newest
                     ORDER BY at_ms, delivery, attempt",
                )?
                .query_map(params![incident, page_limit(limit)], |row| {
                    Ok(AttemptRow {
                        delivery: row.get(0)?,
                        attempt: row.get(1)?,
                        node: row.get(2)?,
                        at: Timestamp::from_millis(row.get(3)?),
                        state: row.get::<_, Text<DeliveryState>>(4)?.0,
                        status: row.get(5)?,
                        response: row.get(6)?,
                    })
                })?
                .collect::<Result<_, _>>()?;
            Ok(rows)
        })
    }

    pub(super) fn expedite_deliveries(
        &self,
        channel: &str,
        now: Timestamp,
    ) -> Result<usize, StoreError> {
        let writer = self.writer.lock().expect("writer lock");
        let n = writer.connection.execute(
            "UPDATE deliveries SET next_ms = ?2
             WHERE channel = ?1 AND state = ?3 AND next_ms > ?2
               AND (last_status IS NULL OR last_status <> '429')",
            params![channel, now.millis(), DeliveryState::Pending.to_text()],
        )?;
        Ok(n)
    }

    pub(super) fn delivery_stats(&self) -> Result<Vec<ChannelDeliveryStats>, StoreError> {
        self.with_reader(|connection| {
            let rows = connection
                .prepare_cached(
                    "SELECT d.channel,
                            SUM(d.state = ?1), SUM(d.state = ?2), SUM(d.state = ?3),
                            (SELECT count(*) FROM delivery_attempts a
                             JOIN deliveries e ON e.id = a.delivery
                             WHERE e.channel = d.channel AND a.state <> ?1),
                            MIN(CASE WHEN d.state = ?3 THEN d.created_ms END)
                     FROM deliveries d GROUP BY d.channel ORDER BY d.channel LIMIT ?4",
                )?
                .query_map(
                    params![
                        DeliveryState::Delivered.to_text(),
                        DeliveryState::Failed.to_text(),
                        DeliveryState::Pending.to_text(),
                        page_limit(usize::MAX),
                    ],
                    |row| {
                        Ok(ChannelDeliveryStats {
                            channel: row.get(0)?,
                            delivered: count(row.get(1)?),
                            failed: count(row.get(2)?),
                            pending: count(row.get(3)?),
                            failed_attempts: count(row.get(4)?),
                            oldest_pending_at: row
                                .get::<_, Option<i64>>(5)?
                                .map(Timestamp::from_millis),
                        })
                    },
                )?
                .collect::<Result<_, _>>()?;
            Ok(rows)
        })
    }
}

/// One row of [`COLUMNS`].
fn delivery_row(row: &Row<'_>) -> rusqlite::Result<DeliveryRow> {
    Ok(DeliveryRow {
        id: row.get(0)?,
        outbox_id: row.get(1)?,
        incident: row.get(2)?,
        target: row.get(3)?,
        channel: row.get(4)?,
        address: row.get(5)?,
        level: row.get(6)?,
        state: row.get::<_, Text<DeliveryState>>(7)?.0,
        attempts: row.get(8)?,
        created_at: Timestamp::from_millis(row.get(9)?),
        first_attempt_at: row.get::<_, Option<i64>>(10)?.map(Timestamp::from_millis),
        next_at: Timestamp::from_millis(row.get(11)?),
        lease: lease_from_columns(row.get(12)?, row.get(13)?),
        last_status: row.get(14)?,
        last_response: row.get(15)?,
        finished_at: row.get::<_, Option<i64>>(16)?.map(Timestamp::from_millis),
    })
}
