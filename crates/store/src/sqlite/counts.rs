//! SQLite reads of counts: per-minute counts under a filter, late counts, the per-segment
//! series the detector reads, and the dimension values seen. It must never write: the counts
//! are written by `ingest` alone.

use std::collections::{BTreeMap, HashMap};

use rusqlite::{Connection, params};

use revloop_core::ingest::StageCount;
use revloop_core::metrics::MinuteCount;
use revloop_core::time::Minute;

use super::SqliteStore;
use crate::bad_cells::{Sign, count_cell};
use crate::plan::{Combinations, SegmentRows, SingleSegments, filter_keys};
use crate::{CountsQuery, LateCount, SegmentMinuteCount, StoreError};

impl SqliteStore {
    pub(super) fn minute_counts(
        &self,
        query: &CountsQuery,
    ) -> Result<Vec<MinuteCount>, StoreError> {
        let stage_ids = self.layout.stages(&query.funnel)?;
        self.with_reader(|connection| {
            let keys = filter_keys(&self.layout, &query.filter, || {
                full_combinations(connection, self.layout.dimension_names.len())
            })?;
            let mut sums: HashMap<(usize, i64), StageCount> = HashMap::new();
            // One snapshot for both tables, so that a roll between the two reads can neither
            // hide nor double a minute.
            let snapshot = connection.unchecked_transaction()?;
            for table in ["stage_counts", "stage_counts_recent"] {
                let mut statement = snapshot.prepare_cached(&format!(
                    "SELECT stage, minute, n_events, revenue_minor, n_revenue_events FROM {table}
                 WHERE funnel = ?1 AND segment = ?2 AND minute >= ?3 AND minute < ?4"
                ))?;
                for key in &keys {
                    let mut rows = statement.query(params![
                        query.funnel,
                        key,
                        query.from.index(),
                        query.to.index()
                    ])?;
                    while let Some(row) = rows.next()? {
                        let stage: String = row.get(0)?;
                        let Some(stage) = stage_ids.iter().position(|s| *s == stage) else {
                            continue;
                        };
                        let count = count_from_row(row, 2)?;
                        sums.entry((stage, row.get(1)?)).or_default().add(count);
                    }
                }
            }
            drop(snapshot);
            let mut counts: Vec<MinuteCount> = sums
                .into_iter()
                .map(|((stage, minute), count)| MinuteCount {
                    stage,
                    minute: Minute::new(minute),
                    count,
                })
                .collect();
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
        self.with_reader(|connection| {
            // One snapshot for the segments and both count tables: a roll between two reads can
            // neither hide nor double a minute, and every segment counted is known.
            let snapshot = connection.unchecked_transaction()?;
            let assignments: Vec<(i64, String)> = snapshot
                .prepare_cached("SELECT key, assignment FROM segments WHERE n_dimensions = 1")?
                .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
                .collect::<Result<_, _>>()?;
            let segments = SingleSegments::new(
                &self.layout,
                assignments.iter().map(|(key, json)| (*key, json.as_str())),
            );
            let rows = read_segment_rows(&snapshot, funnel, stage_ids, &segments, from, to)?;
            drop(snapshot);
            Ok(rows.finish(&segments))
        })
    }

    pub(super) fn late_counts(&self, query: &CountsQuery) -> Result<Vec<LateCount>, StoreError> {
        let stage_ids = self.layout.stages(&query.funnel)?;
        self.with_reader(|connection| {
            // Unfiltered, the all-segments table, which also holds the late events stored
            // before they were kept per segment; filtered, the segments the filter sums.
            let (sql, keys) = if query.filter.is_empty() {
                let sql = "SELECT stage, minute, n_events FROM late_counts
                           WHERE funnel = ?1 AND minute >= ?2 AND minute < ?3";
                (sql, vec![None])
            } else {
                let keys = filter_keys(&self.layout, &query.filter, || {
                    full_combinations(connection, self.layout.dimension_names.len())
                })?;
                let sql = "SELECT stage, minute, n_events FROM late_segment_counts
                           WHERE funnel = ?1 AND minute >= ?2 AND minute < ?3 AND segment = ?4";
                (sql, keys.into_iter().map(Some).collect())
            };
            let mut statement = connection.prepare_cached(sql)?;
            let mut sums: BTreeMap<(Minute, usize), i64> = BTreeMap::new();
            for key in keys {
                let from = query.from.index();
                let to = query.to.index();
                let mut rows = match key {
                    None => statement.query(params![query.funnel, from, to])?,
                    Some(key) => statement.query(params![query.funnel, from, to, key])?,
                };
                while let Some(row) = rows.next()? {
                    let stage: String = row.get(0)?;
                    let Some(stage) = stage_ids.iter().position(|s| *s == stage) else {
                        continue;
                    };
                    let n_events = count_cell(row, 2, Sign::NonNegative)?;
                    let sum = sums.entry((Minute::new(row.get(1)?), stage)).or_default();
                    *sum = sum.saturating_add(n_events);
                }
            }
            Ok(sums
                .into_iter()
                .map(|((minute, stage), n_events)| LateCount {
                    stage,
                    minute,
                    n_events,
                })
                .collect())
        })
    }

    pub(super) fn dimension_values(&self) -> Result<Vec<(String, Vec<String>)>, StoreError> {
        self.with_reader(|connection| {
            let mut statement = connection.prepare_cached(
                "SELECT value FROM dimension_values WHERE dimension = ?1 ORDER BY value",
            )?;
            let mut out = Vec::new();
            for name in &self.layout.dimension_names {
                let values = statement
                    .query_map([name], |row| row.get(0))?
                    .collect::<Result<_, _>>()?;
                out.push((name.clone(), values));
            }
            Ok(out)
        })
    }
}

fn full_combinations(
    connection: &Connection,
    n_dimensions: usize,
) -> Result<Combinations, StoreError> {
    let mut statement = connection
        .prepare_cached("SELECT key, assignment FROM segments WHERE n_dimensions = ?1")?;
    let rows = statement.query_map([n_dimensions as i64], |row| {
        Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?))
    })?;
    let mut combinations = Vec::new();
    for row in rows {
        let (key, json) = row?;
        // The store wrote these itself; one that does not parse is skipped, not fatal.
        if let Ok(values) = serde_json::from_str(&json) {
            combinations.push((key, values));
        }
    }
    Ok(combinations)
}

/// The counts of `segments` in `[from, to)` from both count tables, as read in one snapshot.
fn read_segment_rows(
    snapshot: &rusqlite::Transaction,
    funnel: &str,
    stage_ids: &[String],
    segments: &SingleSegments,
    from: Minute,
    to: Minute,
) -> Result<SegmentRows, StoreError> {
    let stage_index = |row: &rusqlite::Row, column: usize| -> rusqlite::Result<Option<usize>> {
        let stage = row.get_ref(column)?.as_str()?;
        Ok(stage_ids.iter().position(|s| s == stage))
    };
    let mut rows = SegmentRows::default();
    // Segment-major: one range of the primary key per segment.
    let mut statement = snapshot.prepare_cached(
        "SELECT minute, stage, n_events FROM stage_counts
         WHERE funnel = ?1 AND segment = ?2 AND minute >= ?3 AND minute < ?4",
    )?;
    for (position, key) in segments.keys().iter().enumerate() {
        let mut found = statement.query(params![funnel, key, from.index(), to.index()])?;
        while let Some(row) = found.next()? {
            if let Some(stage) = stage_index(row, 1)? {
                let n_events = count_cell(row, 2, Sign::NonNegative)?;
                rows.push(row.get(0)?, position as u32, stage, n_events);
            }
        }
    }
    // Minute-major and small: one range of minutes; full combinations are skipped here.
    let mut statement = snapshot.prepare_cached(
        "SELECT minute, stage, segment, n_events
         FROM stage_counts_recent WHERE minute >= ?1 AND minute < ?2 AND funnel = ?3",
    )?;
    let mut found = statement.query(params![from.index(), to.index(), funnel])?;
    while let Some(row) = found.next()? {
        let Some(position) = segments.position(row.get(2)?) else {
            continue;
        };
        if let Some(stage) = stage_index(row, 1)? {
            rows.push(
                row.get(0)?,
                position,
                stage,
                count_cell(row, 3, Sign::NonNegative)?,
            );
        }
    }
    Ok(rows)
}

/// The `n_events, revenue_minor, n_revenue_events` columns from `first` on; a bad cell reads
/// as 0 and is reported (see `bad_cells`).
fn count_from_row(row: &rusqlite::Row, first: usize) -> rusqlite::Result<StageCount> {
    Ok(StageCount {
        n_events: count_cell(row, first, Sign::NonNegative)?,
        revenue_minor: count_cell(row, first + 1, Sign::Any)?,
        n_revenue_events: count_cell(row, first + 2, Sign::NonNegative)?,
    })
}
