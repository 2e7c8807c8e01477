//! PostgreSQL detector snapshots: replace a funnel's whole snapshot in one transaction unless a
//! newer one is stored, read it back in one snapshot, discard it.
//!
//! Several nodes may save at once: the upsert locks the funnel's header row, so savers of one
//! funnel take turns, and each replaces the stored snapshot only with a later minute.

use postgres::IsolationLevel;

use super::{PostgresStore, read_snapshot};
use crate::StoreError;
use crate::snapshots::{self, DetectorSnapshotRow, StoredHeader};

impl PostgresStore {
    pub(super) fn save_detector_snapshot(
        &self,
        snapshot: &DetectorSnapshotRow,
    ) -> Result<bool, StoreError> {
        snapshots::check_size(snapshot)?;
        self.with_client(|client| {
            // READ COMMITTED: an upsert that waited for another node's save then sees that
            // save's minute in its WHERE, rather than failing to serialize.
            let mut transaction = client
                .build_transaction()
                .isolation_level(IsolationLevel::ReadCommitted)
                .start()?;
            let replaced = transaction
                .query_opt(
                    "INSERT INTO detector_snapshots
                         (funnel, next_minute, fingerprint, saved_ms, n_bytes, n_chunks)
                     VALUES ($1, $2, $3, $4, $5, $6)
                     ON CONFLICT (funnel) DO UPDATE SET
                         next_minute = EXCLUDED.next_minute, fingerprint = EXCLUDED.fingerprint,
                         saved_ms = EXCLUDED.saved_ms, n_bytes = EXCLUDED.n_bytes,
                         n_chunks = EXCLUDED.n_chunks
                     WHERE detector_snapshots.next_minute < EXCLUDED.next_minute
                     RETURNING funnel",
                    &[
                        &snapshot.funnel,
                        &snapshot.next_minute.index(),
                        &(snapshot.fingerprint as i64),
                        &snapshot.saved_at.millis(),
                        &(snapshot.bytes.len() as i64),
                        &snapshots::n_chunks(snapshot),
                    ],
                )?
                .is_some();
            if !replaced {
                // Dropping the transaction rolls it back.
                return Ok(false);
            }
            transaction.execute(
                "DELETE FROM detector_snapshot_chunks WHERE funnel = $1",
                &[&snapshot.funnel],
            )?;
            let insert = transaction.prepare(
                "INSERT INTO detector_snapshot_chunks (funnel, chunk, bytes) VALUES ($1, $2, $3)",
            )?;
            for (chunk, bytes) in snapshots::chunks(snapshot) {
                transaction.execute(&insert, &[&snapshot.funnel, &chunk, &bytes])?;
            }
            transaction.commit()?;
            Ok(true)
        })
    }

    pub(super) fn load_detector_snapshot(
        &self,
        funnel: &str,
    ) -> Result<Option<DetectorSnapshotRow>, StoreError> {
        self.with_client(|client| {
            let mut transaction = read_snapshot(client)?;
            let header = transaction.query_opt(
                "SELECT next_minute, fingerprint, saved_ms, n_bytes, n_chunks
                 FROM detector_snapshots WHERE funnel = $1",
                &[&funnel],
            )?;
            let Some(header) = header else {
                return Ok(None);
            };
            let header = StoredHeader {
                next_minute: header.try_get(0)?,
                fingerprint: header.try_get(1)?,
                saved_ms: header.try_get(2)?,
                n_bytes: header.try_get(3)?,
                n_chunks: header.try_get(4)?,
            };
            let chunks = transaction
                .query(
                    "SELECT chunk, bytes FROM detector_snapshot_chunks WHERE funnel = $1
                     ORDER BY chunk",
                    &[&funnel],
                )?
                .iter()
                .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
                .collect::<Result<Vec<_>, postgres::Error>>()?;
            transaction.commit()?;
            snapshots::assemble(funnel, header, chunks).map(Some)
        })
    }

    pub(super) fn discard_detector_snapshot(&self, funnel: &str) -> Result<bool, StoreError> {
        self.with_client(|client| {
            let mut transaction = client.transaction()?;
            transaction.execute(
                "DELETE FROM detector_snapshot_chunks WHERE funnel = $1",
                &[&funnel],
            )?;
            let n_discarded = transaction.execute(
                "DELETE FROM detector_snapshots WHERE funnel = $1",
                &[&funnel],
            )?;
            transaction.commit()?;
            Ok(n_discarded > 0)
        })
    }
}
