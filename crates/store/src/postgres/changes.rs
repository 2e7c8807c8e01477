//! PostgreSQL changes to the shop (deploys, experiments, prices, ...): insert exactly once by
//! external id, and read a time range.

use revloop_core::Timestamp;

use super::{PostgresStore, Text, sql_limit};
use crate::kinds::ColumnText;
use crate::{ChangeRow, StoreError};

/// The columns [`change_from_row`] reads, in its order.
const CHANGE_COLUMNS: &str = "id, at_ms, kind, summary, detail, funnel, stage, dimension, value, \
     author, external_id, recorded_ms";

impl PostgresStore {
    pub(super) fn insert_change(
        &self,
        change: &ChangeRow,
    ) -> Result<(ChangeRow, bool), StoreError> {
        let (dimension, value) = change.segment.clone().unzip();
        self.with_client(|client| {
            // Two nodes inserting one external id at once meet on the unique index: the second
            // waits for the first to commit, inserts nothing, and then reads the first's row. A
            // NULL external id never conflicts, so a change without one is always new.
            let inserted = client.query_opt(
                "INSERT INTO changes (at_ms, kind, summary, detail, funnel, stage, dimension,
                                      value, author, external_id, recorded_ms)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
                 ON CONFLICT (external_id) DO NOTHING
                 RETURNING id",
                &[
                    &change.at.millis(),
                    &change.kind.to_text(),
                    &change.summary,
                    &change.detail,
                    &change.funnel,
                    &change.stage,
                    &dimension,
                    &value,
                    &change.author,
                    &change.external_id,
                    &change.recorded_at.millis(),
                ],
            )?;
            if let Some(row) = inserted {
                let id = row.try_get(0)?;
                return Ok((
                    ChangeRow {
                        id,
                        ..change.clone()
                    },
                    true,
                ));
            }
            // A new statement, so a new snapshot even under a stricter default isolation: it sees
            // the row that the insert conflicted with.
            let row = client.query_one(
                &format!("SELECT {CHANGE_COLUMNS} FROM changes WHERE external_id = $1"),
                &[&change.external_id],
            )?;
            Ok((change_from_row(&row)?, false))
        })
    }

    pub(super) fn changes(
        &self,
        from: Timestamp,
        to: Timestamp,
        limit: usize,
    ) -> Result<Vec<ChangeRow>, StoreError> {
        self.with_client(|client| {
            client
                .query(
                    &format!(
                        "SELECT {CHANGE_COLUMNS} FROM changes WHERE at_ms >= $1 AND at_ms < $2
                         ORDER BY at_ms DESC, id DESC LIMIT $3"
                    ),
                    &[&from.millis(), &to.millis(), &sql_limit(limit)],
                )?
                .iter()
                .map(change_from_row)
                .collect()
        })
    }
}

fn change_from_row(row: &postgres::Row) -> Result<ChangeRow, StoreError> {
    let dimension: Option<String> = row.try_get(7)?;
    let value: Option<String> = row.try_get(8)?;
    Ok(ChangeRow {
        id: row.try_get(0)?,
        at: Timestamp::from_millis(row.try_get(1)?),
        kind: row.try_get::<_, Text<_>>(2)?.0,
        summary: row.try_get(3)?,
        detail: row.try_get(4)?,
        funnel: row.try_get(5)?,
        stage: row.try_get(6)?,
        // The schema keeps both or neither.
        segment: dimension.zip(value),
        author: row.try_get(9)?,
        external_id: row.try_get(10)?,
        recorded_at: Timestamp::from_millis(row.try_get(11)?),
    })
}
