//! SQLite inbound signals: upsert by `(source, key)`, and read the ones overlapping a time
//! range. What an update keeps is `signals`'s rule (see `crate::signals`).

use rusqlite::params;

use revloop_core::Timestamp;

use super::{SqliteStore, Text, sql_limit};
use crate::kinds::ColumnText;
use crate::signals::SIGNAL_COLUMNS;
use crate::{SIGNAL_PAGE_MAX, SignalRow, StoreError};

impl SqliteStore {
    pub(super) fn upsert_signal(
        &self,
        signal: &SignalRow,
    ) -> Result<(SignalRow, bool), StoreError> {
        let writer = self.writer.lock().expect("writer lock");
        // Every right-hand side reads the stored row as it was before this statement.
        let stored = writer
            .connection
            .prepare_cached(&format!(
                "INSERT INTO signals (source, key, status, starts_ms, ends_ms, summary, severity,
                                      funnel, stage, labels_json, received_ms, n_received)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, 1)
                 ON CONFLICT (source, key) DO UPDATE SET
                     starts_ms = CASE WHEN signals.status = 'resolved'
                                           AND excluded.status = 'firing'
                                           AND excluded.summary <> ''
                                      THEN excluded.starts_ms
                                      ELSE min(signals.starts_ms, excluded.starts_ms) END,
                     -- An update that says nothing (a PagerDuty acknowledge) keeps a resolved
                     -- signal resolved.
                     status = CASE WHEN signals.status = 'resolved' AND excluded.summary = ''
                                   THEN signals.status ELSE excluded.status END,
                     ends_ms = CASE WHEN signals.status = 'resolved' AND excluded.summary = ''
                                    THEN signals.ends_ms ELSE excluded.ends_ms END,
                     summary = CASE WHEN excluded.summary = '' THEN signals.summary
                                    ELSE excluded.summary END,
                     severity = coalesce(excluded.severity, signals.severity),
                     funnel = coalesce(excluded.funnel, signals.funnel),
                     stage = coalesce(excluded.stage, signals.stage),
                     labels_json = CASE WHEN excluded.labels_json = '{{}}'
                                        THEN signals.labels_json
                                        ELSE excluded.labels_json END,
                     received_ms = max(signals.received_ms, excluded.received_ms),
                     n_received = signals.n_received + 1
                 RETURNING {SIGNAL_COLUMNS}"
            ))?
            .query_row(
                params![
                    signal.source.to_text(),
                    signal.key,
                    signal.status.to_text(),
                    signal.starts_at.millis(),
                    signal.ends_at.map(Timestamp::millis),
                    signal.summary,
                    signal.severity,
                    signal.funnel,
                    signal.stage,
                    signal.labels_json,
                    signal.received_at.millis(),
                ],
                signal_from_row,
            )?;
        let new = stored.n_received == 1;
        Ok((stored, new))
    }

    pub(super) fn signals(
        &self,
        from: Timestamp,
        to: Timestamp,
        limit: usize,
    ) -> Result<Vec<SignalRow>, StoreError> {
        let limit = limit.min(SIGNAL_PAGE_MAX);
        self.with_reader(|connection| {
            let rows = connection
                .prepare_cached(&format!(
                    "SELECT {SIGNAL_COLUMNS} FROM signals
                     WHERE starts_ms <= ?2 AND (ends_ms IS NULL OR ends_ms >= ?1)
                     ORDER BY starts_ms DESC, id DESC LIMIT ?3"
                ))?
                .query_map(
                    params![from.millis(), to.millis(), sql_limit(limit)],
                    signal_from_row,
                )?
                .collect::<Result<_, _>>()?;
            Ok(rows)
        })
    }
}

fn signal_from_row(row: &rusqlite::Row) -> rusqlite::Result<SignalRow> {
    Ok(SignalRow {
        id: row.get(0)?,
        source: row.get::<_, Text<_>>(1)?.0,
        key: row.get(2)?,
        status: row.get::<_, Text<_>>(3)?.0,
        starts_at: Timestamp::from_millis(row.get(4)?),
        ends_at: row.get::<_, Option<i64>>(5)?.map(Timestamp::from_millis),
        summary: row.get(6)?,
        severity: row.get(7)?,
        funnel: row.get(8)?,
        stage: row.get(9)?,
        labels_json: row.get(10)?,
        received_at: Timestamp::from_millis(row.get(11)?),
        n_received: row.get(12)?,
    })
}
