//! SQLite changes to the shop (deploys, experiments, prices, ...): insert exactly once by
//! external id, and read a time range.

use rusqlite::{OptionalExtension, params};

use revloop_core::Timestamp;

use super::{SqliteStore, Text, sql_limit};
use crate::kinds::ColumnText;
use crate::{ChangeRow, StoreError};

/// The columns [`change_from_row`] reads, in its order.
const CHANGE_COLUMNS: &str = "id, at_ms, kind, summary, detail, funnel, stage, dimension, value, \
     author, external_id, recorded_ms";

impl SqliteStore {
    pub(super) fn insert_change(
        &self,
        change: &ChangeRow,
    ) -> Result<(ChangeRow, bool), StoreError> {
        let writer = self.writer.lock().expect("writer lock");
        let (dimension, value) = change.segment.clone().unzip();
        // A NULL external id never conflicts, so a change without one is always new.
        let inserted: Option<i64> = writer
            .connection
            .prepare_cached(
                "INSERT INTO changes (at_ms, kind, summary, detail, funnel, stage, dimension,
                                      value, author, external_id, recorded_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
                 ON CONFLICT (external_id) DO NOTHING
                 RETURNING id",
            )?
            .query_row(
                params![
                    change.at.millis(),
                    change.kind.to_text(),
                    change.summary,
                    change.detail,
                    change.funnel,
                    change.stage,
                    dimension,
                    value,
                    change.author,
                    change.external_id,
                    change.recorded_at.millis(),
                ],
                |row| row.get(0),
            )
            .optional()?;
        if let Some(id) = inserted {
            return Ok((
                ChangeRow {
                    id,
                    ..change.clone()
                },
                true,
            ));
        }
        let stored = writer
            .connection
            .prepare_cached(&format!(
                "SELECT {CHANGE_COLUMNS} FROM changes WHERE external_id = ?1"
            ))?
            .query_row([&change.external_id], change_from_row)?;
        Ok((stored, false))
    }

    pub(super) fn changes(
        &self,
        from: Timestamp,
        to: Timestamp,
        limit: usize,
    ) -> Result<Vec<ChangeRow>, StoreError> {
        self.with_reader(|connection| {
            let changes = connection
                .prepare_cached(&format!(
                    "SELECT {CHANGE_COLUMNS} FROM changes WHERE at_ms >= ?1 AND at_ms < ?2
                     ORDER BY at_ms DESC, id DESC LIMIT ?3"
                ))?
                .query_map(
                    params![from.millis(), to.millis(), sql_limit(limit)],
                    change_from_row,
                )?
                .collect::<Result<_, _>>()?;
            Ok(changes)
        })
    }
}

fn change_from_row(row: &rusqlite::Row) -> rusqlite::Result<ChangeRow> {
    let dimension: Option<String> = row.get(7)?;
    let value: Option<String> = row.get(8)?;
    Ok(ChangeRow {
        id: row.get(0)?,
        at: Timestamp::from_millis(row.get(1)?),
        kind: row.get::<_, Text<_>>(2)?.0,
        summary: row.get(3)?,
        detail: row.get(4)?,
        funnel: row.get(5)?,
        stage: row.get(6)?,
        // The schema keeps both or neither.
        segment: dimension.zip(value),
        author: row.get(9)?,
        external_id: row.get(10)?,
        recorded_at: Timestamp::from_millis(row.get(11)?),
    })
}
