//! SQLite maintenance: the hourly rollup of old per-minute counts, and the outbox's size. The
//! rollup writes through the writer connection, a short transaction per step, so that group
//! commits interleave with it (see `crate::retention`).

use rusqlite::{OptionalExtension, TransactionBehavior, params};

use revloop_core::Timestamp;
use revloop_core::time::Minute;

use super::SqliteStore;
use crate::StoreError;
use crate::retention::{
    MINUTES_PER_HOUR, OutboxStats, ROLLUP_SEGMENTS_PER_STEP, Rollup, hour_floor, rollup_steps,
};

impl SqliteStore {
    pub(super) fn roll_up_counts(&self, before: Minute) -> Result<Rollup, StoreError> {
        let end = hour_floor(before);
        let (mut start, keys) = self.with_reader(|connection| {
            let start: i64 = connection.query_row(
                "SELECT hourly_before FROM count_rollup WHERE id = 1",
                [],
                |row| row.get(0),
            )?;
            let mut keys: Vec<i64> = vec![0];
            keys.extend(
                connection
                    .prepare_cached("SELECT key FROM segments ORDER BY key")?
                    .query_map([], |row| row.get::<_, i64>(0))?
                    .collect::<Result<Vec<_>, _>>()?,
            );
            Ok((start, keys))
        })?;
        let mut rollup = Rollup {
            rows_deleted: 0,
            hourly_before: (start > 0).then(|| Minute::new(start)),
        };
        if start >= end {
            return Ok(rollup);
        }
        if start == 0 {
            // The first rollup: start at the oldest minute stored (one scan, once).
            let oldest: Option<i64> = self.with_reader(|connection| {
                Ok(connection.query_row(
                    "SELECT MIN(minute) FROM stage_counts WHERE minute >= 0",
                    [],
                    |row| row.get(0),
                )?)
            })?;
            start = oldest.map_or(end, |m| m.div_euclid(MINUTES_PER_HOUR) * MINUTES_PER_HOUR);
        }
        for (from, to) in rollup_steps(start, end) {
            for (funnel, _) in &self.layout.funnels {
                for batch in keys.chunks(ROLLUP_SEGMENTS_PER_STEP) {
                    rollup.rows_deleted += self.roll_up_step(funnel, batch, from, to)?;
                }
            }
        }
        let writer = self.writer.lock().expect("writer lock");
        writer.connection.execute(
            "UPDATE count_rollup SET hourly_before = MAX(hourly_before, ?1) WHERE id = 1",
            [end],
        )?;
        drop(writer);
        rollup.hourly_before = Some(Minute::new(end));
        Ok(rollup)
    }

    /// Rolls up `[from, to)` of the segments `keys` of `funnel` in one transaction; returns the
    /// minute rows deleted.
    fn roll_up_step(
        &self,
        funnel: &str,
        keys: &[i64],
        from: i64,
        to: i64,
    ) -> Result<u64, StoreError> {
        let mut writer = self.writer.lock().expect("writer lock");
        let transaction = writer
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut deleted = 0;
        {
            // The sums are cast back to INTEGER as ingest's are (see `ingest::write_plan`).
            let mut add = transaction.prepare_cached(
                "INSERT INTO stage_counts
                     (funnel, segment, minute, stage, n_events, revenue_minor, n_revenue_events)
                 SELECT funnel, segment, minute - (minute % 60), stage,
                        SUM(n_events), SUM(revenue_minor), SUM(n_revenue_events)
                 FROM stage_counts
                 WHERE funnel = ?1 AND segment = ?2 AND minute >= ?3 AND minute < ?4
                       AND minute % 60 != 0
                 GROUP BY funnel, segment, minute - (minute % 60), stage
                 ON CONFLICT (funnel, segment, minute, stage) DO UPDATE SET
                     n_events = CAST(n_events + excluded.n_events AS INTEGER),
                     revenue_minor = CAST(revenue_minor + excluded.revenue_minor AS INTEGER),
                     n_revenue_events = CAST(n_revenue_events + excluded.n_revenue_events AS INTEGER)",
            )?;
            let mut delete = transaction.prepare_cached(
                "DELETE FROM stage_counts
                 WHERE funnel = ?1 AND segment = ?2 AND minute >= ?3 AND minute < ?4
                       AND minute % 60 != 0",
            )?;
            for key in keys {
                add.execute(params![funnel, key, from, to])?;
                deleted += delete.execute(params![funnel, key, from, to])? as u64;
            }
        }
        transaction.commit()?;
        Ok(deleted)
    }

    pub(super) fn outbox_stats(&self) -> Result<OutboxStats, StoreError> {
        self.with_reader(|connection| {
            let (entries, oldest): (i64, Option<i64>) = connection
                .query_row(
                    "SELECT COUNT(*), MIN(at_ms) FROM incident_outbox",
                    [],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .optional()?
                .unwrap_or((0, None));
            Ok(OutboxStats {
                entries: entries.max(0) as u64,
                oldest_at: oldest.map(Timestamp::from_millis),
            })
        })
    }
}
