//! The embedded default: one SQLite file in WAL mode with `synchronous = FULL`, so that a
//! committed group survives a crash of the process or of the machine.
//!
//! This module owns the store struct, opening and migrating the file, and the reader pool; each
//! concern's statements live in a module of their own (`ingest`, `counts`, `tokens`,
//! `incidents`, `changes`, `problems`), named as under `postgres/` so the two dialects compare
//! file by file. It must never hold SQL of a concern itself, nor know any wire format.
//!
//! One writer connection (behind a mutex) does all writes; the server's group-commit loop is its
//! only caller on the hot path. Readers take connections from a small pool and never block the
//! writer.
//!
//! Only ingest needs the ingest lock, because only ingest keeps state in memory. Incident
//! commits go through the same writer connection without it: they keep nothing in memory, and
//! their version check, read inside a `BEGIN IMMEDIATE` transaction, orders them across every
//! connection and process that opens the file.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{Connection, TransactionBehavior};

use revloop_core::Config;

use crate::dedup::{DedupIndex, DedupStats};
use crate::plan::{Layout, WriterState};
use crate::pool::Pool;
pub(super) use crate::sql_limit;
use crate::{StoreError, migrations};

use crate::kinds::ColumnText;

mod changes;
mod counts;
mod deliveries;
mod incidents;
mod ingest;
mod ledger;
mod problems;
mod retention;
mod signals;
mod snapshots;
mod tokens;

/// Reader connections open at most, busy or idle. WAL readers never block each other or the
/// writer, so this bounds file handles and page caches (each [`CACHE_KIB`]), not contention.
const READERS_MAX: usize = 8;
/// How long a read waits for a free reader when all are busy, before it fails.
const READER_WAIT_MAX: Duration = Duration::from_secs(10);

/// How long a connection waits for another's lock (SQLite's busy timeout) before it fails.
const BUSY_WAIT_MAX: Duration = Duration::from_secs(5);

/// Page cache of each connection, in KiB.
const CACHE_KIB: i64 = 64 * 1024;
/// The write-ahead log's size a checkpoint leaves at most (`journal_size_limit`).
const WAL_BYTES_KEPT: i64 = 64 * 1024 * 1024;

pub struct SqliteStore {
    path: PathBuf,
    layout: Layout,
    config: Config,
    writer: Mutex<Writer>,
    readers: Pool<Connection>,
}

struct Writer {
    connection: Connection,
    /// Loaded on the first ingest, once this process holds the ingest lock.
    ingest: Option<IngestState>,
}

/// What only the process that ingests keeps in memory.
struct IngestState {
    /// Held for the life of the store: one process ingests into a database file at a time,
    /// because the dedup index and the folding state live in its memory.
    _lock: std::fs::File,
    state: WriterState,
    dedup: DedupIndex,
    /// Recent counts of minutes before this have been rolled into `stage_counts`.
    rolled_before: i64,
}

impl SqliteStore {
    /// Opens (creating and migrating if needed) the database at `path`. Opening takes no lock:
    /// `revloop token` may open a database that `revloop serve` is using. The first ingest
    /// takes the ingest lock and loads the dedup index.
    pub fn open(path: &Path, config: &Config) -> Result<SqliteStore, StoreError> {
        let mut connection = open_connection(path)?;
        migrate(&mut connection)?;
        Ok(SqliteStore {
            path: path.to_owned(),
            layout: Layout::new(config),
            config: config.clone(),
            writer: Mutex::new(Writer {
                connection,
                ingest: None,
            }),
            readers: Pool::new(READERS_MAX, READER_WAIT_MAX, |_| true),
        })
    }

    /// Runs `read` on a pooled reader connection, opening one if none is idle and the pool has
    /// room, else waiting for one (see [`READER_WAIT_MAX`]).
    fn with_reader<T>(
        &self,
        read: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut lease = self.readers.lease()?;
        let connection = lease.connection(|| open_connection(&self.path))?;
        read(connection)
    }
}

fn open_connection(path: &Path) -> Result<Connection, StoreError> {
    let connection = Connection::open(path)?;
    connection.busy_timeout(BUSY_WAIT_MAX)?;
    connection.pragma_update(None, "journal_mode", "WAL")?;
    connection.pragma_update(None, "synchronous", "FULL")?;
    connection.pragma_update(None, "cache_size", -CACHE_KIB)?;
    connection.pragma_update(None, "foreign_keys", "ON")?;
    // SQLite checkpoints the log every 1,000 pages but never shrinks the file: past this size
    // a checkpoint cuts it back, so a burst of ingest does not leave a large log for good.
    connection.pragma_update(None, "journal_size_limit", WAL_BYTES_KEPT)?;
    Ok(connection)
}

fn migrate(connection: &mut Connection) -> Result<(), StoreError> {
    let known = migrations::SQLITE.len() as i64;
    let found: i64 = connection.pragma_query_value(None, "user_version", |row| row.get(0))?;
    if found > known {
        return Err(StoreError::SchemaTooNew { found, known });
    }
    for (index, sql) in migrations::SQLITE.iter().enumerate().skip(found as usize) {
        let transaction = connection.transaction_with_behavior(TransactionBehavior::Exclusive)?;
        transaction.execute_batch(sql)?;
        transaction.pragma_update(None, "user_version", index as i64 + 1)?;
        transaction.commit()?;
    }
    Ok(())
}

/// An enum column read through its one mapping; an unknown text is a conversion error.
struct Text<T>(T);

impl<T: ColumnText> rusqlite::types::FromSql for Text<T> {
    fn column_result(value: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
        let text = value.as_str()?;
        T::parse_column(text)
            .map(Text)
            .map_err(|message| rusqlite::types::FromSqlError::Other(message.into()))
    }
}

store_by_concern!(SqliteStore {
    fn ping(&self) -> Result<(), StoreError> {
        self.with_reader(|connection| Ok(connection.query_row("SELECT 1", [], |_| Ok(()))?))
    }

    fn claim_ingest(&self) -> Result<(), StoreError> {
        SqliteStore::claim_ingest(self)
    }

    fn dedup_stats(&self) -> Option<DedupStats> {
        SqliteStore::dedup_stats(self)
    }

    fn checkpoint(&self) -> Result<(), StoreError> {
        let writer = self.writer.lock().expect("writer lock");
        // TRUNCATE waits for readers and leaves a zero-length log; a reader still holding an
        // old snapshot leaves it as it is, which the next checkpoint finishes.
        writer
            .connection
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(())
    }
});
