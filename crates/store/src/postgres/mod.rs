//! PostgreSQL, for several revloop nodes sharing one database. Each node opens its own
//! [`PostgresStore`]; the database, not the nodes, decides every race.
//!
//! This module owns the store struct, connecting, migrating and the connection pool; each
//! concern's statements live in a module of their own (`ingest`, `counts`, `tokens`,
//! `incidents`, `changes`, `problems`), named as under `sqlite/` so the two dialects compare
//! file by file.
//! It must never hold SQL of a concern itself, nor know any wire format.
//!
//! One writer connection (behind a mutex) runs the group commits, as in the SQLite store. A small
//! pool of further connections serves reads and the rare token writes, so that neither waits
//! behind a group commit. Every group is one `READ COMMITTED` transaction, durable when it
//! commits: every connection sets `synchronous_commit = on` itself rather than trust the
//! server's default.
//!
//! What it must hold across nodes, and how:
//!
//! - **Exactly once.** Every ingest transaction reads the dedup generations from `meta` with
//!   `FOR SHARE`; a rotation reads them with `FOR UPDATE`, so no transaction checks or remembers
//!   keys against a generation that another node is rotating away. Two nodes remembering the same
//!   key at once meet on the primary key: the second waits for the first and sees a conflict.
//! - **No deadlocks.** Every group commit takes its locks in one global order: the `meta` rows
//!   (a rotation, holding them `FOR UPDATE`, then truncates a dedup table and prunes
//!   `count_bodies`, which no other ingest transaction can be touching), dedup keys ascending,
//!   `count_bodies` rows ascending (after their keys, so a race on an id waits on the key
//!   first), the admission advisory lock (only when a new dimension value is admitted), then
//!   `stage_counts`, `late_counts`, `late_segment_counts`, `segments` and `dimension_values`
//!   rows, each in ascending key order, and last the problem log's advisory lock, under which
//!   `ingest_problems`, `ignored_names` and `ingest_log_meta` are written (see `problems`).
//! - **One incident engine at a time.** An incident commit reads the version from
//!   `incident_meta` with `FOR UPDATE` and fails with a conflict if it moved on; a second node
//!   committing at once waits for the row and then sees the new version. Those commits lock
//!   `incident_meta` before anything else and touch no table that ingest does.
//! - **One fold for all nodes.** Admitting a new dimension value takes a transaction-level
//!   advisory lock and reloads the values the other nodes admitted, so the cap holds exactly and
//!   every node folds a value the same way (see `settle_admissions`).
//!
//! The `postgres` crate's synchronous `Client` runs its own small runtime and panics when used
//! or closed on a thread that is running async tasks. Closing is made safe here, wherever the
//! store is dropped: every connection closes on a thread of its own (see [`Connection`]). Using
//! it is the caller's side: the server calls the store only from its own std thread or from
//! `spawn_blocking`, never from an async task; keep it that way.
//!
//! Connecting is `connect`'s: TLS as the URL's `sslmode` says (rustls), the session settings,
//! and the limits that keep any call from waiting forever: the pool's wait, the time to open a
//! connection, a statement's run time and a transaction's idle time (see [`PostgresOptions`]).

use std::collections::HashSet;
use std::ops::{Deref, DerefMut};
use std::sync::Mutex;

use postgres::Client;
use postgres::error::Severity;

use revloop_core::Config;
use revloop_core::funnel::DimensionDictionary;
use revloop_core::time::DurationMs;

use crate::plan::{Layout, WriterState};
use crate::pool::Pool;
pub(super) use crate::sql_limit;
use crate::{StoreError, migrations};

pub use connect::PostgresOptions;
use connect::{Connector, MIGRATION_MAX};
use ingest::{DedupGenerations, WriterStatements, generations_from_rows};

use crate::kinds::ColumnText;

mod changes;
mod connect;
mod counts;
mod deliveries;
mod incidents;
mod ingest;
mod ledger;
mod problems;
mod signals;
mod snapshots;
mod tokens;

/// Keys of the advisory locks: "revloop" in ASCII, then one byte per purpose. Advisory locks are
/// database-wide, so deployments in different schemas of one database share them; all are held
/// briefly, the first two rarely, the problem log's by groups that carry problems or ignored
/// names.
const LOCK_MIGRATE: i64 = 0x7265_766c_6f6f_7001;

pub(super) const LOCK_ADMIT_VALUES: i64 = 0x7265_766c_6f6f_7002;

pub(super) const LOCK_PROBLEM_LOG: i64 = 0x7265_766c_6f6f_7003;

pub struct PostgresStore {
    connector: Connector,
    layout: Layout,
    dedup_window: DurationMs,
    writer: Mutex<Writer>,
    /// Connections for reads, token writes and incident commits; a closed one is not reused.
    pool: Pool<Connection>,
}

/// A [`Client`] that closes on a thread of its own when dropped.
///
/// Why: the synchronous client runs its own tokio runtime, and closing it blocks on that
/// runtime, which panics ("Cannot start a runtime from within a runtime") on a thread that is
/// running async tasks. The last `Arc` of a store can go anywhere: in an axum connection task
/// that outlives `serve`, or in a task dropped when a runtime shuts down. Closing every
/// connection on a fresh thread makes that safe by construction rather than by each caller's
/// care. The thread is joined, so the connection is closed when the drop returns, as before;
/// a thread per closed connection is cheap next to the connection itself.
struct Connection(Option<Client>);

impl Connection {
    fn new(client: Client) -> Connection {
        Connection(Some(client))
    }
}

impl Deref for Connection {
    type Target = Client;

    fn deref(&self) -> &Client {
        self.0
            .as_ref()
            .expect("a connection is empty only while it closes")
    }
}

impl DerefMut for Connection {
    fn deref_mut(&mut self) -> &mut Client {
        self.0
            .as_mut()
            .expect("a connection is empty only while it closes")
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        let Some(client) = self.0.take() else {
            return;
        };
        let closing = std::thread::Builder::new()
            .name("revloop-pg-close".into())
            .spawn(move || drop(client));
        // A thread that cannot be started drops the client where it is, as the client alone
        // would; a panic while closing stays on the closing thread.
        if let Ok(closing) = closing {
            let _ = closing.join();
        }
    }
}

struct Writer {
    client: Connection,
    /// The last commit failed in a way that may have lost the connection.
    client_suspect: bool,
    statements: WriterStatements,
    state: WriterState,
    /// The generations as of this node's last commit. Another node may have rotated since: the
    /// transaction re-reads them, and this copy only says which lock to read them with.
    dedup: DedupGenerations,
}

impl PostgresStore {
    /// Connects to the database at `url` (a `postgres://` URL or a `key=value` string), creating
    /// and migrating revloop's tables if needed. The tables live wherever the connection's
    /// `search_path` puts them, by default `public`.
    pub fn open(url: &str, config: &Config) -> Result<PostgresStore, StoreError> {
        PostgresStore::open_with(url, &PostgresOptions::default(), config)
    }

    /// Like [`PostgresStore::open`], but keeps revloop's tables in `schema`, which is created if
    /// missing. Every connection's `search_path` is set to that schema alone, overriding any
    /// `search_path` in the URL. Lets several deployments, or tests, share one database. The
    /// name must pass [`PostgresOptions::check_schema_name`].
    pub fn open_in_schema(
        url: &str,
        schema: &str,
        config: &Config,
    ) -> Result<PostgresStore, StoreError> {
        PostgresStore::open_with(url, &PostgresOptions::in_schema(schema), config)
    }

    /// Drops `schema` and everything in it: the end of a benchmark or test that opened a store
    /// with [`PostgresStore::open_in_schema`].
    pub fn drop_schema(url: &str, schema: &str) -> Result<(), StoreError> {
        PostgresOptions::check_schema_name(schema)?;
        let mut client = Connector::new(url, &PostgresOptions::default())?.connect()?;
        client.batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {} CASCADE",
            quote_identifier(schema)
        ))?;
        Ok(())
    }

    /// Like [`PostgresStore::open`], with the schema and the limits `options` give.
    pub fn open_with(
        url: &str,
        options: &PostgresOptions,
        config: &Config,
    ) -> Result<PostgresStore, StoreError> {
        let connector = Connector::new(url, options)?;
        let mut client = connector.connect()?;
        migrate(&mut client, options.schema.as_deref())?;

        let layout = Layout::new(config);
        let mut dictionary = DimensionDictionary::new(config);
        for row in client.query("SELECT dimension, value FROM dimension_values", &[])? {
            let dimension: &str = row.try_get(0)?;
            if let Some(index) = layout.dimension_names.iter().position(|d| d == dimension) {
                dictionary.load(index, row.try_get(1)?);
            }
        }
        let known_segments: HashSet<i64> = client
            .query("SELECT key FROM segments", &[])?
            .iter()
            .map(|row| row.try_get(0))
            .collect::<Result<_, _>>()?;
        let rows = client.query(
            "SELECT key, value FROM meta WHERE key IN ('dedup_current', 'dedup_started_ms')",
            &[],
        )?;
        let dedup = generations_from_rows(&mut *client, &rows)?;
        let statements = WriterStatements::prepare(&mut client)?;
        Ok(PostgresStore {
            connector,
            layout,
            dedup_window: config.ingest.dedup_window,
            writer: Mutex::new(Writer {
                client,
                client_suspect: false,
                statements,
                state: WriterState::new(dictionary, known_segments),
                dedup,
            }),
            pool: Pool::new(
                options.pool_connections_max,
                options.pool_wait_max,
                |client| !client.is_closed(),
            ),
        })
    }

    /// Runs `work` on a pooled connection, opening one if none is idle and the pool has room,
    /// else waiting for one (see [`PostgresOptions::pool_wait_max`]). A connection that may have been lost (the
    /// server restarted or ended it) is closed rather than put back, so a later call connects
    /// afresh.
    fn with_client<T>(
        &self,
        work: impl FnOnce(&mut Client) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut lease = self.pool.lease()?;
        let client = lease.connection(|| self.connector.connect())?;
        let result = work(client);
        if result.as_ref().is_err_and(connection_may_be_lost) {
            lease.discard();
        }
        result
    }
}

/// Whether an error may have left the connection unusable. The client only notices a closed
/// connection some time after the server closed it, so errors are judged by kind: anything but
/// an error the server reported while keeping the session (a failed statement, a deadlock)
/// counts.
pub(super) fn connection_may_be_lost(err: &StoreError) -> bool {
    let StoreError::Postgres(err) = err else {
        return false;
    };
    match err.as_db_error() {
        None => true,
        Some(db) => matches!(
            db.parsed_severity(),
            Some(Severity::Fatal | Severity::Panic) | None
        ),
    }
}

/// Quotes an SQL identifier, so that any schema name is taken literally.
fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Brings the schema up to [`migrations::POSTGRES`] in one transaction. The advisory lock makes
/// nodes starting at once take turns: the first migrates, the others then find nothing to do.
///
/// The version lives in `revloop_schema_version` rather than a plain `schema_version`, a name
/// other tools use in a shared `public` schema. Nothing is created that already exists, so a
/// role without the right to create schemas or tables can open a database already migrated.
fn migrate(client: &mut Client, schema: Option<&str>) -> Result<(), StoreError> {
    let known = migrations::POSTGRES.len() as i64;
    let mut transaction = client.transaction()?;
    // A migration may rewrite large tables, and waits for another node's: it gets a limit of
    // its own instead of a statement's.
    transaction.batch_execute(&format!(
        "SET LOCAL statement_timeout TO {}",
        MIGRATION_MAX.as_millis()
    ))?;
    transaction.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_MIGRATE])?;
    if let Some(schema) = schema {
        let exists = transaction
            .query_opt("SELECT 1 FROM pg_namespace WHERE nspname = $1", &[&schema])?
            .is_some();
        if !exists {
            transaction.batch_execute(&format!("CREATE SCHEMA {}", quote_identifier(schema)))?;
        }
    }
    let versioned = transaction
        .query_one(
            "SELECT to_regclass('revloop_schema_version') IS NOT NULL",
            &[],
        )?
        .try_get(0)?;
    let found: i64 = if versioned {
        let row = transaction.query_opt("SELECT version FROM revloop_schema_version", &[])?;
        row.map(|row| row.try_get(0)).transpose()?.unwrap_or(0)
    } else {
        transaction.batch_execute(
            "CREATE TABLE revloop_schema_version (
                 id      INTEGER PRIMARY KEY CHECK (id = 1),
                 version BIGINT  NOT NULL
             )",
        )?;
        0
    };
    if found > known {
        return Err(StoreError::SchemaTooNew { found, known });
    }
    if found < known {
        for sql in &migrations::POSTGRES[found as usize..] {
            transaction.batch_execute(sql)?;
        }
        transaction.execute(
            "INSERT INTO revloop_schema_version (id, version) VALUES (1, $1)
             ON CONFLICT (id) DO UPDATE SET version = EXCLUDED.version",
            &[&known],
        )?;
    }
    transaction.commit()?;
    Ok(())
}

/// A read-only `REPEATABLE READ` transaction: every statement in it reads the database as of
/// one commit, so that reads spread over several tables see one state.
pub(super) fn read_snapshot(
    client: &mut Client,
) -> Result<postgres::Transaction<'_>, postgres::Error> {
    client
        .build_transaction()
        .isolation_level(postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
}

/// An enum column read through its one mapping; an unknown text is a conversion error.
struct Text<T>(T);

impl<'a, T: ColumnText> postgres::types::FromSql<'a> for Text<T> {
    fn from_sql(
        ty: &postgres::types::Type,
        raw: &'a [u8],
    ) -> Result<Text<T>, Box<dyn std::error::Error + Sync + Send>> {
        let text = <&str as postgres::types::FromSql>::from_sql(ty, raw)?;
        Ok(Text(T::parse_column(text)?))
    }

    fn accepts(ty: &postgres::types::Type) -> bool {
        <&str as postgres::types::FromSql>::accepts(ty)
    }
}

store_by_concern!(PostgresStore {
    fn ping(&self) -> Result<(), StoreError> {
        self.with_client(|client| Ok(client.batch_execute("SELECT 1")?))
    }
});
