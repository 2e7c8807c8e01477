//! PostgreSQL inbound signals: upsert by `(source, key)`, and read the ones overlapping a time
//! range. What an update keeps is `signals`'s rule (see `crate::signals`).

use revloop_core::Timestamp;

use super::{PostgresStore, Text, sql_limit};
use crate::kinds::ColumnText;
use crate::signals::SIGNAL_COLUMNS;
use crate::{SIGNAL_PAGE_MAX, SignalRow, StoreError};

impl PostgresStore {
    pub(super) fn upsert_signal(
        &self,
        signal: &SignalRow,
    ) -> Result<(SignalRow, bool), StoreError> {
        self.with_client(|client| {
            // Two nodes upserting one key at once meet on the unique constraint: the second
            // waits for the first to commit and then updates its row. Every right-hand side
            // reads the stored row as it was before this statement.
            let row = client.query_one(
                &format!(
                    "INSERT INTO signals (source, key, status, starts_ms, ends_ms, summary,
                                          severity, funnel, stage, labels_json, received_ms,
                                          n_received)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 1)
                     ON CONFLICT (source, key) DO UPDATE SET
                         starts_ms = CASE WHEN signals.status = 'resolved'
                                               AND excluded.status = 'firing'
                                               AND excluded.summary <> ''
                                          THEN excluded.starts_ms
                                          ELSE LEAST(signals.starts_ms, excluded.starts_ms) END,
                         -- An update that says nothing (a PagerDuty acknowledge) keeps a resolved
                         -- signal resolved.
                         status = CASE WHEN signals.status = 'resolved' AND excluded.summary = ''
                                       THEN signals.status ELSE excluded.status END,
                         ends_ms = CASE WHEN signals.status = 'resolved' AND excluded.summary = ''
                                        THEN signals.ends_ms ELSE excluded.ends_ms END,
                         summary = CASE WHEN excluded.summary = '' THEN signals.summary
                                        ELSE excluded.summary END,
                         severity = COALESCE(excluded.severity, signals.severity),
                         funnel = COALESCE(excluded.funnel, signals.funnel),
                         stage = COALESCE(excluded.stage, signals.stage),
                         labels_json = CASE WHEN excluded.labels_json = '{{}}'
                                            THEN signals.labels_json
                                            ELSE excluded.labels_json END,
                         received_ms = GREATEST(signals.received_ms, excluded.received_ms),
                         n_received = signals.n_received + 1
                     RETURNING {SIGNAL_COLUMNS}"
                ),
                &[
                    &signal.source.to_text(),
                    &signal.key,
                    &signal.status.to_text(),
                    &signal.starts_at.millis(),
                    &signal.ends_at.map(Timestamp::millis),
                    &signal.summary,
                    &signal.severity,
                    &signal.funnel,
                    &signal.stage,
                    &signal.labels_json,
                    &signal.received_at.millis(),
                ],
            )?;
            let stored = signal_from_row(&row)?;
            let new = stored.n_received == 1;
            Ok((stored, new))
        })
    }

    pub(super) fn signals(
        &self,
        from: Timestamp,
        to: Timestamp,
        limit: usize,
    ) -> Result<Vec<SignalRow>, StoreError> {
        let limit = limit.min(SIGNAL_PAGE_MAX);
        self.with_client(|client| {
            client
                .query(
                    &format!(
                        "SELECT {SIGNAL_COLUMNS} FROM signals
                         WHERE starts_ms <= $2 AND (ends_ms IS NULL OR ends_ms >= $1)
                         ORDER BY starts_ms DESC, id DESC LIMIT $3"
                    ),
                    &[&from.millis(), &to.millis(), &sql_limit(limit)],
                )?
                .iter()
                .map(signal_from_row)
                .collect()
        })
    }
}

fn signal_from_row(row: &postgres::Row) -> Result<SignalRow, StoreError> {
    Ok(SignalRow {
        id: row.try_get(0)?,
        source: row.try_get::<_, Text<_>>(1)?.0,
        key: row.try_get(2)?,
        status: row.try_get::<_, Text<_>>(3)?.0,
        starts_at: Timestamp::from_millis(row.try_get(4)?),
        ends_at: row
            .try_get::<_, Option<i64>>(5)?
            .map(Timestamp::from_millis),
        summary: row.try_get(6)?,
        severity: row.try_get(7)?,
        funnel: row.try_get(8)?,
        stage: row.try_get(9)?,
        labels_json: row.try_get(10)?,
        received_at: Timestamp::from_millis(row.try_get(11)?),
        n_received: row.try_get(12)?,
    })
}
