//! PostgreSQL reads of counts: per-minute counts under a filter, late counts, the per-segment
//! series the detector reads, and the dimension values seen. It writes counts only to roll old
//! minutes up to hourly (`roll_up_counts`, see `crate::retention`); ingest writes the rest.
//! The outbox's size for `/metrics` (`outbox_stats`) is read here too, beside the rollup, as
//! both serve the maintenance and the operator.

use postgres::Client;
use postgres::fallible_iterator::FallibleIterator;
use postgres::types::ToSql;

use revloop_core::ingest::StageCount;
use revloop_core::metrics::MinuteCount;
use revloop_core::time::Minute;

use revloop_core::Timestamp;

use super::{PostgresStore, read_snapshot};
use crate::plan::{Combinations, SegmentRows, SingleSegments, filter_keys};
use crate::retention::{
    MINUTES_PER_HOUR, OutboxStats, ROLLUP_SEGMENTS_PER_STEP, Rollup, hour_floor, rollup_steps,
};
use crate::{CountsQuery, LateCount, SegmentMinuteCount, StoreError};

impl PostgresStore {
    pub(super) fn minute_counts(
        &self,
        query: &CountsQuery,
    ) -> Result<Vec<MinuteCount>, StoreError> {
        let stage_ids = self.layout.stages(&query.funnel)?;
        self.with_client(|client| {
            let keys = filter_keys(&self.layout, &query.filter, || {
                full_combinations(client, self.layout.dimension_names.len())
            })?;
            if keys.is_empty() {
                return Ok(Vec::new());
            }
            let rows = client.query(
                "SELECT stage, minute,
                        GREATEST(LEAST(sum(n_events), 9223372036854775807),
                                 -9223372036854775808)::bigint,
                        GREATEST(LEAST(sum(revenue_minor), 9223372036854775807),
                                 -9223372036854775808)::bigint,
                        GREATEST(LEAST(sum(n_revenue_events), 9223372036854775807),
                                 -9223372036854775808)::bigint
                 FROM stage_counts
                 WHERE funnel = $1 AND segment = ANY($2) AND minute >= $3 AND minute < $4
                 GROUP BY stage, minute",
                &[&query.funnel, &keys, &query.from.index(), &query.to.index()],
            )?;
            let mut counts = Vec::with_capacity(rows.len());
            for row in rows {
                let stage: &str = row.try_get(0)?;
                let Some(stage) = stage_ids.iter().position(|s| s == stage) else {
                    continue;
                };
                counts.push(MinuteCount {
                    stage,
                    minute: Minute::new(row.try_get(1)?),
                    count: StageCount {
                        n_events: row.try_get(2)?,
                        revenue_minor: row.try_get(3)?,
                        n_revenue_events: row.try_get(4)?,
                    },
                });
            }
            counts.sort_by_key(|c| (c.minute, c.stage));
            Ok(counts)
        })
    }

    pub(super) fn segment_minute_counts(
        &self,
        funnel: &str,
        from: Minute,
        to: Minute,
    ) -> Result<Vec<SegmentMinuteCount>, StoreError> {
        let stage_ids = self.layout.stages(funnel)?;
        self.with_client(|client| {
            // One snapshot for the segments and the counts, so that every segment counted is
            // known.
            let mut transaction = read_snapshot(client)?;
            let assignments = transaction.query(
                "SELECT key, assignment FROM segments WHERE n_dimensions = 1",
                &[],
            )?;
            let assignments: Vec<(i64, &str)> = assignments
                .iter()
                .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
                .collect::<Result<_, postgres::Error>>()?;
            let segments = SingleSegments::new(&self.layout, assignments);
            let keys = segments.keys();
            let params: [&(dyn ToSql + Sync); 4] = [&funnel, &keys, &from.index(), &to.index()];
            // Streamed rather than collected: a rebuild reads weeks of rows.
            let mut found = transaction.query_raw(
                "SELECT segment, minute, stage, n_events
                 FROM stage_counts
                 WHERE funnel = $1 AND segment = ANY($2) AND minute >= $3 AND minute < $4",
                params,
            )?;
            let mut rows = SegmentRows::default();
            while let Some(row) = found.next()? {
                let Some(position) = segments.position(row.try_get(0)?) else {
                    continue;
                };
                let stage: &str = row.try_get(2)?;
                let Some(stage) = stage_ids.iter().position(|s| s == stage) else {
                    continue;
                };
                rows.push(row.try_get(1)?, position, stage, row.try_get(3)?);
            }
            drop(found);
            transaction.commit()?;
            Ok(rows.finish(&segments))
        })
    }

    pub(super) fn late_counts(&self, query: &CountsQuery) -> Result<Vec<LateCount>, StoreError> {
        let stage_ids = self.layout.stages(&query.funnel)?;
        self.with_client(|client| {
            let (from, to) = (query.from.index(), query.to.index());
            // Unfiltered, the all-segments table, which also holds the late events stored
            // before they were kept per segment; filtered, the segments the filter sums.
            let rows = if query.filter.is_empty() {
                client.query(
                    "SELECT stage, minute, n_events FROM late_counts
                     WHERE funnel = $1 AND minute >= $2 AND minute < $3",
                    &[&query.funnel, &from, &to],
                )?
            } else {
                let keys = filter_keys(&self.layout, &query.filter, || {
                    full_combinations(client, self.layout.dimension_names.len())
                })?;
                client.query(
                    "SELECT stage, minute,
                            GREATEST(LEAST(sum(n_events), 9223372036854775807),
                                     -9223372036854775808)::bigint
                     FROM late_segment_counts
                     WHERE funnel = $1 AND minute >= $2 AND minute < $3 AND segment = ANY($4)
                     GROUP BY stage, minute",
                    &[&query.funnel, &from, &to, &keys],
                )?
            };
            let mut late = Vec::with_capacity(rows.len());
            for row in rows {
                let stage: &str = row.try_get(0)?;
                let Some(stage) = stage_ids.iter().position(|s| s == stage) else {
                    continue;
                };
                late.push(LateCount {
                    stage,
                    minute: Minute::new(row.try_get(1)?),
                    n_events: row.try_get(2)?,
                });
            }
            late.sort_by_key(|l| (l.minute, l.stage));
            Ok(late)
        })
    }

    pub(super) fn dimension_values(&self) -> Result<Vec<(String, Vec<String>)>, StoreError> {
        self.with_client(|client| {
            // Byte order, as SQLite sorts, whatever the database's collation.
            let rows = client.query(
                "SELECT dimension, value FROM dimension_values
                 WHERE dimension = ANY($1) ORDER BY value COLLATE \"C\"",
                &[&self.layout.dimension_names],
            )?;
            let mut out: Vec<(String, Vec<String>)> = self
                .layout
                .dimension_names
                .iter()
                .map(|name| (name.clone(), Vec::new()))
                .collect();
            for row in rows {
                let dimension: &str = row.try_get(0)?;
                if let Some((_, values)) = out.iter_mut().find(|(name, _)| name == dimension) {
                    values.push(row.try_get(1)?);
                }
            }
            Ok(out)
        })
    }
}

impl PostgresStore {
    /// See [`crate::Store::roll_up_counts`]. Each step moves a day of a batch of segments in
    /// one statement: the minute rows are deleted and their sums added into their hours' first
    /// minutes. Two nodes rolling up at once cannot double a count: a row deleted by one is
    /// gone for the other, whose statement then moves nothing.
    pub(super) fn roll_up_counts(&self, before: Minute) -> Result<Rollup, StoreError> {
        let end = hour_floor(before);
        let (mut start, keys) = self.with_client(|client| {
            let start: i64 = client
                .query_one("SELECT hourly_before FROM count_rollup WHERE id = 1", &[])?
                .try_get(0)?;
            let mut keys: Vec<i64> = vec![0];
            for row in client.query("SELECT key FROM segments ORDER BY key", &[])? {
                keys.push(row.try_get(0)?);
            }
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
            let oldest: Option<i64> = self.with_client(|client| {
                Ok(client
                    .query_one(
                        "SELECT min(minute) FROM stage_counts WHERE minute >= 0",
                        &[],
                    )?
                    .try_get(0)?)
            })?;
            start = oldest.map_or(end, |m| m.div_euclid(MINUTES_PER_HOUR) * MINUTES_PER_HOUR);
        }
        for (from, to) in rollup_steps(start, end) {
            for (funnel, _) in &self.layout.funnels {
                for batch in keys.chunks(ROLLUP_SEGMENTS_PER_STEP) {
                    let moved = self.with_client(|client| {
                        let rows = client.query(
                            "WITH moved AS (
                                 DELETE FROM stage_counts
                                 WHERE funnel = $1 AND segment = ANY($2)
                                       AND minute >= $3 AND minute < $4 AND minute % 60 <> 0
                                 RETURNING funnel, segment, minute - minute % 60 AS hour, stage,
                                           n_events, revenue_minor, n_revenue_events
                             ), added AS (
                                 INSERT INTO stage_counts (funnel, segment, minute, stage,
                                                           n_events, revenue_minor, n_revenue_events)
                                 SELECT funnel, segment, hour, stage,
                                        GREATEST(LEAST(sum(n_events), 9223372036854775807), -9223372036854775808)::bigint,
                                        GREATEST(LEAST(sum(revenue_minor), 9223372036854775807), -9223372036854775808)::bigint,
                                        GREATEST(LEAST(sum(n_revenue_events), 9223372036854775807), -9223372036854775808)::bigint
                                 FROM moved GROUP BY funnel, segment, hour, stage
                                 ON CONFLICT (funnel, segment, minute, stage) DO UPDATE SET
                                     n_events = GREATEST(LEAST(stage_counts.n_events::numeric + EXCLUDED.n_events, 9223372036854775807), -9223372036854775808)::bigint,
                                     revenue_minor = GREATEST(LEAST(stage_counts.revenue_minor::numeric + EXCLUDED.revenue_minor, 9223372036854775807), -9223372036854775808)::bigint,
                                     n_revenue_events = GREATEST(LEAST(stage_counts.n_revenue_events::numeric + EXCLUDED.n_revenue_events, 9223372036854775807), -9223372036854775808)::bigint
                             )
                             SELECT count(*) FROM moved",
                            &[funnel, &batch, &from, &to],
                        )?;
                        Ok(rows[0].try_get::<_, i64>(0)?)
                    })?;
                    rollup.rows_deleted += moved.max(0) as u64;
                }
            }
        }
        self.with_client(|client| {
            client.execute(
                "UPDATE count_rollup SET hourly_before = GREATEST(hourly_before, $1) WHERE id = 1",
                &[&end],
            )?;
            Ok(())
        })?;
        rollup.hourly_before = Some(Minute::new(end));
        Ok(rollup)
    }

    pub(super) fn outbox_stats(&self) -> Result<OutboxStats, StoreError> {
        self.with_client(|client| {
            let row = client.query_one("SELECT count(*), min(at_ms) FROM incident_outbox", &[])?;
            let entries: i64 = row.try_get(0)?;
            let oldest: Option<i64> = row.try_get(1)?;
            Ok(OutboxStats {
                entries: entries.max(0) as u64,
                oldest_at: oldest.map(Timestamp::from_millis),
            })
        })
    }
}

fn full_combinations(client: &mut Client, n_dimensions: usize) -> Result<Combinations, StoreError> {
    let n_dimensions = i32::try_from(n_dimensions).expect("at most DIMENSIONS_MAX dimensions");
    let rows = client.query(
        "SELECT key, assignment FROM segments WHERE n_dimensions = $1",
        &[&n_dimensions],
    )?;
    let mut combinations = Vec::with_capacity(rows.len());
    for row in rows {
        let json: &str = row.try_get(1)?;
        // The store wrote these itself; one that does not parse is skipped, not fatal.
        if let Ok(values) = serde_json::from_str(json) {
            combinations.push((row.try_get(0)?, values));
        }
    }
    Ok(combinations)
}
