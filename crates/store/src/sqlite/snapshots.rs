//! SQLite detector snapshots: replace a funnel's whole snapshot in one transaction unless a
//! newer one is stored, read it back in one snapshot, discard it.

use rusqlite::{OptionalExtension, TransactionBehavior, params};

use super::SqliteStore;
use crate::StoreError;
use crate::snapshots::{self, DetectorSnapshotRow, StoredHeader};

impl SqliteStore {
    pub(super) fn save_detector_snapshot(
        &self,
        snapshot: &DetectorSnapshotRow,
    ) -> Result<bool, StoreError> {
        snapshots::check_size(snapshot)?;
        // The writer connection, as incident commits use it: no ingest state is touched.
        let mut writer = self.writer.lock().expect("writer lock");
        let transaction = writer
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        // The upsert's WHERE keeps a stored snapshot of the same or a later minute; then it
        // returns no row and nothing else is written.
        let replaced = transaction
            .prepare_cached(
                "INSERT INTO detector_snapshots
                     (funnel, next_minute, fingerprint, saved_ms, n_bytes, n_chunks)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (funnel) DO UPDATE SET
                     next_minute = excluded.next_minute, fingerprint = excluded.fingerprint,
                     saved_ms = excluded.saved_ms, n_bytes = excluded.n_bytes,
                     n_chunks = excluded.n_chunks
                 WHERE detector_snapshots.next_minute < excluded.next_minute
                 RETURNING funnel",
            )?
            .query_row(
                params![
                    snapshot.funnel,
                    snapshot.next_minute.index(),
                    snapshot.fingerprint as i64,
                    snapshot.saved_at.millis(),
                    snapshot.bytes.len() as i64,
                    snapshots::n_chunks(snapshot),
                ],
                |_| Ok(()),
            )
            .optional()?
            .is_some();
        if !replaced {
            return Ok(false);
        }
        transaction
            .prepare_cached("DELETE FROM detector_snapshot_chunks WHERE funnel = ?1")?
            .execute([&snapshot.funnel])?;
        let mut insert = transaction.prepare_cached(
            "INSERT INTO detector_snapshot_chunks (funnel, chunk, bytes) VALUES (?1, ?2, ?3)",
        )?;
        for (chunk, bytes) in snapshots::chunks(snapshot) {
            insert.execute(params![snapshot.funnel, chunk, bytes])?;
        }
        drop(insert);
        transaction.commit()?;
        Ok(true)
    }

    pub(super) fn load_detector_snapshot(
        &self,
        funnel: &str,
    ) -> Result<Option<DetectorSnapshotRow>, StoreError> {
        self.with_reader(|connection| {
            // One read transaction: the header and its chunks from the same commit.
            let snapshot = connection.unchecked_transaction()?;
            let header = snapshot
                .prepare_cached(
                    "SELECT next_minute, fingerprint, saved_ms, n_bytes, n_chunks
                     FROM detector_snapshots WHERE funnel = ?1",
                )?
                .query_row([funnel], |row| {
                    Ok(StoredHeader {
                        next_minute: row.get(0)?,
                        fingerprint: row.get(1)?,
                        saved_ms: row.get(2)?,
                        n_bytes: row.get(3)?,
                        n_chunks: row.get(4)?,
                    })
                })
                .optional()?;
            let Some(header) = header else {
                return Ok(None);
            };
            let chunks = snapshot
                .prepare_cached(
                    "SELECT chunk, bytes FROM detector_snapshot_chunks WHERE funnel = ?1
                     ORDER BY chunk",
                )?
                .query_map([funnel], |row| Ok((row.get(0)?, row.get(1)?)))?
                .collect::<Result<Vec<_>, _>>()?;
            snapshot.finish()?;
            snapshots::assemble(funnel, header, chunks).map(Some)
        })
    }

    pub(super) fn discard_detector_snapshot(&self, funnel: &str) -> Result<bool, StoreError> {
        let mut writer = self.writer.lock().expect("writer lock");
        let transaction = writer
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        transaction.execute(
            "DELETE FROM detector_snapshot_chunks WHERE funnel = ?1",
            [funnel],
        )?;
        let n_discarded =
            transaction.execute("DELETE FROM detector_snapshots WHERE funnel = ?1", [funnel])?;
        transaction.commit()?;
        Ok(n_discarded > 0)
    }
}
