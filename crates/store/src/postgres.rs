//! PostgreSQL, for several revloop nodes sharing one database. Each node opens its own
//! [`PostgresStore`]; the database, not the nodes, decides every race.
//!
//! One writer connection (behind a mutex) runs the group commits, as in the SQLite store. A small
//! pool of further connections serves reads and the rare token writes, so that neither waits
//! behind a group commit. Every group is one `READ COMMITTED` transaction, durable when it
//! commits under the server's default `synchronous_commit = on`.
//!
//! What it must hold across nodes, and how:
//!
//! - **Exactly once.** Every ingest transaction reads the dedup generations from `meta` with
//!   `FOR SHARE`; a rotation reads them with `FOR UPDATE`, so no transaction checks or remembers
//!   keys against a generation that another node is rotating away. Two nodes remembering the same
//!   key at once meet on the primary key: the second waits for the first and sees a conflict.
//! - **No deadlocks.** Every transaction takes its locks in one global order: the `meta` rows,
//!   dedup keys ascending, the admission lock, then `stage_counts`, `late_counts`, `segments` and
//!   `dimension_values` rows, each in ascending key order.
//! - **One incident engine at a time.** An incident commit reads the version from
//!   `incident_meta` with `FOR UPDATE` and fails with a conflict if it moved on; a second node
//!   committing at once waits for the row and then sees the new version. Those commits lock
//!   `incident_meta` before anything else and touch no table that ingest does.
//! - **One fold for all nodes.** Admitting a new dimension value takes a transaction-level
//!   advisory lock and reloads the values the other nodes admitted, so the cap holds exactly and
//!   every node folds a value the same way (see `settle_admissions`).
//!
//! The `postgres` crate's synchronous `Client` runs its own small runtime and panics when used
//! from a thread that is inside a tokio runtime. The server calls the store only from its own
//! std thread or from `spawn_blocking`, never from an async task; keep it that way.
//!
//! TLS is not compiled in (the connections use `NoTls`): reach the server over a local socket,
//! a private network or a TLS-terminating proxy.

use std::collections::HashSet;
use std::sync::{Condvar, Mutex, PoisonError};
use std::time::Duration;

use postgres::error::Severity;
use postgres::fallible_iterator::FallibleIterator;
use postgres::types::{FromSql, ToSql, Type};
use postgres::{Client, GenericClient, IsolationLevel, NoTls, Statement, Transaction};

use revloop_core::funnel::DimensionDictionary;
use revloop_core::ingest::StageCount;
use revloop_core::metrics::MinuteCount;
use revloop_core::time::{DurationMs, Minute};
use revloop_core::{Config, Timestamp};

use crate::plan::{
    Combinations, CommitPlan, Layout, SegmentRows, SingleSegments, WriterState, filter_keys,
};
use crate::{
    ChangeRow, CountsQuery, IncidentCommit, IncidentQuery, IncidentRow, IncidentSnapshot,
    IngestGroup, IngestItem, IngestReceipt, LateCount, OutboxRow, Role, SegmentMinuteCount, Store,
    StoreError, TimelineRow, TokenRecord, migrations,
};

/// Pooled connections a node opens at most, busy or idle; a read waits for one when all are
/// busy. Each PostgreSQL connection is a server process and every node has its own pool, so this
/// stays well below the server's `max_connections` divided by the number of nodes.
const POOL_CONNECTIONS_MAX: usize = 8;
/// How long a connection attempt may take when the URL does not say (`connect_timeout`).
const CONNECT_TIMEOUT_DEFAULT: Duration = Duration::from_secs(10);
/// Keys of the advisory locks: "revloop" in ASCII, then one byte per purpose. Advisory locks are
/// database-wide, so deployments in different schemas of one database share them; both are held
/// briefly and rarely.
const LOCK_MIGRATE: i64 = 0x7265_766c_6f6f_7001;
const LOCK_ADMIT_VALUES: i64 = 0x7265_766c_6f6f_7002;

pub struct PostgresStore {
    connector: Connector,
    layout: Layout,
    dedup_window: DurationMs,
    writer: Mutex<Writer>,
    pool: Mutex<Pool>,
    /// Signalled when a pooled connection is put back or closed.
    pool_changed: Condvar,
}

#[derive(Default)]
struct Pool {
    idle: Vec<Client>,
    /// Connections open, idle or busy; at most [`POOL_CONNECTIONS_MAX`].
    n_open: usize,
}

/// Opens one more connection, with the search path of the store's schema if it has one.
struct Connector {
    config: postgres::Config,
    schema: Option<String>,
}

struct Writer {
    client: Client,
    /// The last commit failed in a way that may have lost the connection.
    client_suspect: bool,
    statements: WriterStatements,
    state: WriterState,
    /// The generations as of this node's last commit. Another node may have rotated since: the
    /// transaction re-reads them, and this copy only says which lock to read them with.
    dedup: DedupGenerations,
}

/// Which dedup table is current, and since when (`-1`: not yet started).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct DedupGenerations {
    current: i64,
    started_ms: i64,
}

impl DedupGenerations {
    fn rotation_due(self, now: Timestamp, window: DurationMs) -> bool {
        self.started_ms < 0 || now.millis() - self.started_ms >= window.millis()
    }
}

/// The statements of a group commit, prepared once per writer connection.
struct WriterStatements {
    generations_shared: Statement,
    generations_exclusive: Statement,
    /// By current generation: checks the previous one, remembers in the current one.
    remember: [Statement; 2],
    add_counts: Statement,
    add_late: Statement,
    add_segments: Statement,
    add_values: Statement,
}

impl PostgresStore {
    /// Connects to the database at `url` (a `postgres://` URL or a `key=value` string), creating
    /// and migrating revloop's tables if needed. The tables live wherever the connection's
    /// `search_path` puts them, by default `public`.
    pub fn open(url: &str, config: &Config) -> Result<PostgresStore, StoreError> {
        PostgresStore::open_with(url, None, config)
    }

    /// Like [`PostgresStore::open`], but keeps revloop's tables in `schema`, which is created if
    /// missing. Every connection's `search_path` is set to that schema alone, overriding any
    /// `search_path` in the URL. Lets several deployments, or tests, share one database.
    pub fn open_in_schema(
        url: &str,
        schema: &str,
        config: &Config,
    ) -> Result<PostgresStore, StoreError> {
        PostgresStore::open_with(url, Some(schema), config)
    }

    /// Drops `schema` and everything in it: the end of a benchmark or test that opened a store
    /// with [`PostgresStore::open_in_schema`].
    pub fn drop_schema(url: &str, schema: &str) -> Result<(), StoreError> {
        let mut client = Client::connect(url, NoTls)?;
        client.batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {} CASCADE",
            quote_identifier(schema)
        ))?;
        Ok(())
    }

    fn open_with(
        url: &str,
        schema: Option<&str>,
        config: &Config,
    ) -> Result<PostgresStore, StoreError> {
        let mut connection_config: postgres::Config = url.parse()?;
        if connection_config.get_connect_timeout().is_none() {
            connection_config.connect_timeout(CONNECT_TIMEOUT_DEFAULT);
        }
        if connection_config.get_application_name().is_none() {
            connection_config.application_name("revloop");
        }
        let connector = Connector {
            config: connection_config,
            schema: schema.map(str::to_owned),
        };
        let mut client = connector.connect()?;
        migrate(&mut client, schema)?;

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
        let dedup = generations_from_rows(&mut client, &rows)?;
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
            pool: Mutex::new(Pool::default()),
            pool_changed: Condvar::new(),
        })
    }

    /// Runs `work` on a pooled connection, opening one if none is idle and the pool has room,
    /// else waiting for one. A connection that may have been lost (the server restarted or ended
    /// it) is closed rather than put back, so a later call connects afresh.
    fn with_client<T>(
        &self,
        work: impl FnOnce(&mut Client) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let pooled = {
            let mut pool = self.pool.lock().expect("connection pool lock");
            loop {
                match pool.idle.pop() {
                    Some(client) if client.is_closed() => pool.n_open -= 1,
                    Some(client) => break Some(client),
                    None if pool.n_open < POOL_CONNECTIONS_MAX => {
                        pool.n_open += 1;
                        break None;
                    }
                    None => {
                        pool = self.pool_changed.wait(pool).expect("connection pool lock");
                    }
                }
            }
        };
        let mut lease = Lease {
            store: self,
            client: pooled,
        };
        let client = match &mut lease.client {
            Some(client) => client,
            empty => empty.insert(self.connector.connect()?),
        };
        let result = work(client);
        if result.as_ref().is_err_and(connection_may_be_lost) {
            lease.client = None;
        }
        result
    }
}

/// A pooled connection, or a slot for one, on loan. Dropping it returns the connection to the
/// pool, or frees the slot, even when the work panicked.
struct Lease<'a> {
    store: &'a PostgresStore,
    client: Option<Client>,
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        // Never panic here: this may run while unwinding.
        let mut pool = self
            .store
            .pool
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match self.client.take() {
            Some(client) if !client.is_closed() => pool.idle.push(client),
            _ => pool.n_open -= 1,
        }
        self.store.pool_changed.notify_one();
    }
}

impl Connector {
    fn connect(&self) -> Result<Client, StoreError> {
        let mut client = self.config.connect(NoTls)?;
        if let Some(schema) = &self.schema {
            // A session setting, so it outlives every transaction on this connection. The schema
            // need not exist yet: the migration creates it.
            client.batch_execute(&format!("SET search_path TO {}", quote_identifier(schema)))?;
        }
        Ok(client)
    }
}

/// Whether an error may have left the connection unusable. The client only notices a closed
/// connection some time after the server closed it, so errors are judged by kind: anything but
/// an error the server reported while keeping the session (a failed statement, a deadlock)
/// counts.
fn connection_may_be_lost(err: &StoreError) -> bool {
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

impl WriterStatements {
    fn prepare(client: &mut Client) -> Result<WriterStatements, StoreError> {
        // `ORDER BY key` makes every transaction lock the two rows in the same order.
        let generations = "SELECT key, value FROM meta
             WHERE key IN ('dedup_current', 'dedup_started_ms') ORDER BY key";
        // The keys arrive sorted and are inserted in that order (`ORDER BY`, whatever join the
        // planner picks), so two groups sharing keys lock them in the same order.
        let remember = |current: usize| {
            format!(
                "INSERT INTO dedup_{current} (key)
                 SELECT incoming.key FROM unnest($1::bigint[]) AS incoming (key)
                 WHERE NOT EXISTS (
                     SELECT 1 FROM dedup_{previous} AS previous WHERE previous.key = incoming.key
                 )
                 ORDER BY incoming.key
                 ON CONFLICT DO NOTHING
                 RETURNING key",
                previous = 1 - current
            )
        };
        Ok(WriterStatements {
            generations_shared: client.prepare(&format!("{generations} FOR SHARE"))?,
            generations_exclusive: client.prepare(&format!("{generations} FOR UPDATE"))?,
            remember: [client.prepare(&remember(0))?, client.prepare(&remember(1))?],
            add_counts: client.prepare(
                "INSERT INTO stage_counts
                     (funnel, segment, minute, stage, n_events, revenue_minor, n_revenue_events)
                 SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::text[],
                                      $5::bigint[], $6::bigint[], $7::bigint[])
                 ON CONFLICT (funnel, segment, minute, stage) DO UPDATE SET
                     n_events = stage_counts.n_events + EXCLUDED.n_events,
                     revenue_minor = stage_counts.revenue_minor + EXCLUDED.revenue_minor,
                     n_revenue_events = stage_counts.n_revenue_events + EXCLUDED.n_revenue_events",
            )?,
            add_late: client.prepare(
                "INSERT INTO late_counts (funnel, minute, stage, n_events)
                 SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::bigint[])
                 ON CONFLICT (funnel, minute, stage) DO UPDATE SET
                     n_events = late_counts.n_events + EXCLUDED.n_events",
            )?,
            add_segments: client.prepare(
                "INSERT INTO segments (key, assignment, n_dimensions)
                 SELECT * FROM unnest($1::bigint[], $2::text[], $3::integer[])
                 ON CONFLICT DO NOTHING",
            )?,
            // Under the admission lock no other node inserts these; the conflict clause only
            // tolerates a value that is already there for any other reason.
            add_values: client.prepare(
                "INSERT INTO dimension_values (dimension, value)
                 SELECT * FROM unnest($1::text[], $2::text[])
                 ON CONFLICT DO NOTHING",
            )?,
        })
    }
}

/// The dedup generations from the `meta` rows `rows` read.
fn generations_from_rows(
    client: &mut impl GenericClient,
    rows: &[postgres::Row],
) -> Result<DedupGenerations, StoreError> {
    Ok(DedupGenerations {
        current: meta_value(client, rows, "dedup_current")?,
        started_ms: meta_value(client, rows, "dedup_started_ms")?,
    })
}

fn meta_value(
    client: &mut impl GenericClient,
    rows: &[postgres::Row],
    key: &str,
) -> Result<i64, StoreError> {
    for row in rows {
        if row.try_get::<_, &str>(0)? == key {
            return Ok(row.try_get(1)?);
        }
    }
    // The migration inserted the row. If it is gone, this fails with the database's own error
    // rather than guess a generation.
    let row = client.query_one("SELECT value FROM meta WHERE key = $1", &[&key])?;
    Ok(row.try_get(0)?)
}

/// Reads the dedup generations inside the group's transaction, and rotates them when the current
/// one is a window old: the previous generation is emptied and becomes current.
///
/// `cached` (this node's last view) decides the lock. When it says a rotation is not due, none
/// is: `dedup_started_ms` only grows, so the fresh value is even less due. Those transactions take
/// `FOR SHARE`, which lets every node's ingest run side by side. When a rotation looks due, the
/// rows are read `FOR UPDATE`, which waits for every transaction still using the old generations,
/// and the decision is taken again on the fresh values: another node may have rotated already.
fn read_and_rotate(
    transaction: &mut Transaction,
    statements: &WriterStatements,
    cached: DedupGenerations,
    now: Timestamp,
    window: DurationMs,
) -> Result<DedupGenerations, StoreError> {
    let exclusive = cached.rotation_due(now, window);
    let statement = if exclusive {
        &statements.generations_exclusive
    } else {
        &statements.generations_shared
    };
    let rows = transaction.query(statement, &[])?;
    let fresh = generations_from_rows(transaction, &rows)?;
    if !exclusive || !fresh.rotation_due(now, window) {
        return Ok(fresh);
    }
    let mut next = DedupGenerations {
        current: fresh.current,
        started_ms: now.millis(),
    };
    if fresh.started_ms >= 0 {
        next.current = 1 - fresh.current;
        // TRUNCATE, unlike DELETE, leaves no dead rows behind for a day's worth of keys. Its
        // exclusive table lock waits for nobody: every transaction that touches a dedup table
        // holds the `meta` rows this one has locked `FOR UPDATE`.
        transaction.batch_execute(&format!("TRUNCATE dedup_{}", next.current))?;
    }
    transaction.execute(
        "UPDATE meta SET value = CASE key WHEN 'dedup_current' THEN $1::bigint ELSE $2::bigint END
         WHERE key IN ('dedup_current', 'dedup_started_ms')",
        &[&next.current, &next.started_ms],
    )?;
    Ok(next)
}

/// Remembers the group's keys in the current generation and says, per item in order, whether it
/// is new: its key is in neither generation, and it is the first item of the group with it.
fn remember_keys(
    transaction: &mut Transaction,
    statements: &WriterStatements,
    dedup: DedupGenerations,
    items: &[IngestItem],
) -> Result<Vec<bool>, StoreError> {
    let mut distinct = HashSet::with_capacity(items.len());
    let mut keys: Vec<i64> = items
        .iter()
        .map(|item| item.dedup_key)
        .filter(|key| distinct.insert(*key))
        .collect();
    keys.sort_unstable();
    assert!(
        dedup.current == 0 || dedup.current == 1,
        "dedup generation {}",
        dedup.current
    );
    let rows = transaction.query(&statements.remember[dedup.current as usize], &[&keys])?;
    let remembered_now: HashSet<i64> = rows
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<_, _>>()?;
    let mut seen = HashSet::with_capacity(keys.len());
    Ok(items
        .iter()
        .map(|item| seen.insert(item.dedup_key) && remembered_now.contains(&item.dedup_key))
        .collect())
}

/// Makes the plan's admissions of new dimension values agree with every other node.
///
/// Each node folds with its own copy of the admitted values, loaded at open. Alone, two nodes
/// could each admit up to the cap, and fold the same value differently (one admits it, the other
/// has no room and counts it as "other"). So a plan that admits anything is redone under a
/// transaction-level advisory lock, after loading what the other nodes have admitted: the cap then
/// holds exactly, and a value is counted the same way whichever node receives it. A plan that
/// admits nothing needs no lock: a node whose copy is full holds exactly the admitted values, as
/// no node admits past the cap. This happens once per admitted value, so it is rare once the
/// dimensions have filled up.
fn settle_admissions(
    transaction: &mut Transaction,
    state: &mut WriterState,
    layout: &Layout,
    group: &IngestGroup,
    is_new: &[bool],
    plan: &mut CommitPlan,
) -> Result<(), StoreError> {
    if plan.new_values.is_empty() {
        return Ok(());
    }
    let dimensions: Vec<&str> = plan
        .new_values
        .iter()
        .map(|(dimension, _)| layout.dimension_names[*dimension].as_str())
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    // Until the new plan is made, the caller must have nothing to forget if this fails.
    state.forget(plan);
    *plan = CommitPlan::default();
    transaction.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_ADMIT_VALUES])?;
    let rows = transaction.query(
        "SELECT dimension, value FROM dimension_values WHERE dimension = ANY($1)",
        &[&dimensions],
    )?;
    for row in rows {
        let dimension: &str = row.try_get(0)?;
        if let Some(index) = layout.dimension_names.iter().position(|d| d == dimension) {
            state.dictionary.load(index, row.try_get(1)?);
        }
    }
    *plan = state.plan(layout, &group.items, is_new);
    Ok(())
}

/// Writes a plan with one statement per table. Rows go in ascending key order, so that two nodes
/// updating the same rows lock them in the same order.
fn write_plan(
    transaction: &mut Transaction,
    statements: &WriterStatements,
    layout: &Layout,
    plan: &CommitPlan,
) -> Result<(), StoreError> {
    if !plan.counts.is_empty() {
        let mut rows: Vec<(&str, i64, i64, &str, StageCount)> = plan
            .counts
            .iter()
            .map(|((funnel, stage, segment, minute), count)| {
                let (funnel_id, stage_ids) = &layout.funnels[*funnel];
                (
                    funnel_id.as_str(),
                    *segment,
                    *minute,
                    stage_ids[*stage].as_str(),
                    *count,
                )
            })
            .collect();
        rows.sort_unstable_by_key(|(funnel, segment, minute, stage, _)| {
            (*funnel, *segment, *minute, *stage)
        });
        let n_rows = rows.len();
        let mut funnels = Vec::with_capacity(n_rows);
        let mut segments = Vec::with_capacity(n_rows);
        let mut minutes = Vec::with_capacity(n_rows);
        let mut stages = Vec::with_capacity(n_rows);
        let mut n_events = Vec::with_capacity(n_rows);
        let mut revenue_minor = Vec::with_capacity(n_rows);
        let mut n_revenue_events = Vec::with_capacity(n_rows);
        for (funnel, segment, minute, stage, count) in rows {
            funnels.push(funnel);
            segments.push(segment);
            minutes.push(minute);
            stages.push(stage);
            n_events.push(count.n_events);
            revenue_minor.push(count.revenue_minor);
            n_revenue_events.push(count.n_revenue_events);
        }
        transaction.execute(
            &statements.add_counts,
            &[
                &funnels,
                &segments,
                &minutes,
                &stages,
                &n_events,
                &revenue_minor,
                &n_revenue_events,
            ],
        )?;
    }
    if !plan.late.is_empty() {
        let mut rows: Vec<(&str, i64, &str, i64)> = plan
            .late
            .iter()
            .map(|((funnel, stage, minute), n_events)| {
                let (funnel_id, stage_ids) = &layout.funnels[*funnel];
                (
                    funnel_id.as_str(),
                    *minute,
                    stage_ids[*stage].as_str(),
                    *n_events,
                )
            })
            .collect();
        rows.sort_unstable_by_key(|(funnel, minute, stage, _)| (*funnel, *minute, *stage));
        let funnels: Vec<&str> = rows.iter().map(|row| row.0).collect();
        let minutes: Vec<i64> = rows.iter().map(|row| row.1).collect();
        let stages: Vec<&str> = rows.iter().map(|row| row.2).collect();
        let n_events: Vec<i64> = rows.iter().map(|row| row.3).collect();
        transaction.execute(
            &statements.add_late,
            &[&funnels, &minutes, &stages, &n_events],
        )?;
    }
    if !plan.new_segments.is_empty() {
        let mut rows: Vec<&(i64, String, i64)> = plan.new_segments.iter().collect();
        rows.sort_unstable_by_key(|(key, _, _)| *key);
        let keys: Vec<i64> = rows.iter().map(|row| row.0).collect();
        let assignments: Vec<&str> = rows.iter().map(|row| row.1.as_str()).collect();
        let n_dimensions: Vec<i32> = rows
            .iter()
            .map(|row| i32::try_from(row.2).expect("at most DIMENSIONS_MAX dimensions"))
            .collect();
        transaction.execute(
            &statements.add_segments,
            &[&keys, &assignments, &n_dimensions],
        )?;
    }
    if !plan.new_values.is_empty() {
        let mut rows: Vec<(&str, &str)> = plan
            .new_values
            .iter()
            .map(|(dimension, value)| (layout.dimension_names[*dimension].as_str(), value.as_str()))
            .collect();
        rows.sort_unstable();
        let dimensions: Vec<&str> = rows.iter().map(|row| row.0).collect();
        let values: Vec<&str> = rows.iter().map(|row| row.1).collect();
        transaction.execute(&statements.add_values, &[&dimensions, &values])?;
    }
    Ok(())
}

/// One group's transaction on the writer connection; see the module docs for the locking.
fn commit_group(
    store: &PostgresStore,
    writer: &mut Writer,
    group: &IngestGroup,
) -> Result<IngestReceipt, StoreError> {
    let Writer {
        client,
        statements,
        state,
        dedup: cached,
        ..
    } = writer;
    // The locking in `read_and_rotate` relies on READ COMMITTED, where a statement that waited
    // for a row lock sees the row as the other transaction committed it. A stricter default
    // (from the URL or the role) would turn every race into a serialization failure.
    let mut transaction = client
        .build_transaction()
        .isolation_level(IsolationLevel::ReadCommitted)
        .start()?;
    let dedup = read_and_rotate(
        &mut transaction,
        statements,
        *cached,
        group.now,
        store.dedup_window,
    )?;
    let is_new = remember_keys(&mut transaction, statements, dedup, &group.items)?;

    let mut plan = state.plan(&store.layout, &group.items, &is_new);
    let written = settle_admissions(
        &mut transaction,
        state,
        &store.layout,
        group,
        &is_new,
        &mut plan,
    )
    .and_then(|()| write_plan(&mut transaction, statements, &store.layout, &plan))
    .and_then(|()| Ok(transaction.commit()?));
    match written {
        Ok(()) => {
            state.committed(&plan);
            *cached = dedup;
            Ok(IngestReceipt { is_new })
        }
        Err(err) => {
            state.forget(&plan);
            Err(err)
        }
    }
}

impl Store for PostgresStore {
    fn commit_ingest(&self, group: &IngestGroup) -> Result<IngestReceipt, StoreError> {
        let mut guard = self.writer.lock().expect("writer lock");
        let writer = &mut *guard;
        if writer.client_suspect || writer.client.is_closed() {
            // The server may have closed the connection (a restart, a failover): reconnect rather
            // than fail every later group.
            let mut client = self.connector.connect()?;
            writer.statements = WriterStatements::prepare(&mut client)?;
            writer.client = client;
            writer.client_suspect = false;
        }
        let result = commit_group(self, writer, group);
        if let Err(err) = &result {
            writer.client_suspect = connection_may_be_lost(err);
        }
        result
    }

    fn minute_counts(&self, query: &CountsQuery) -> Result<Vec<MinuteCount>, StoreError> {
        let (_, stage_ids) = self
            .layout
            .funnels
            .iter()
            .find(|(id, _)| *id == query.funnel)
            .ok_or_else(|| StoreError::UnknownFunnel(query.funnel.clone()))?;
        self.with_client(|client| {
            let keys = filter_keys(&self.layout, &query.filter, || {
                full_combinations(client, self.layout.dimension_names.len())
            })?;
            if keys.is_empty() {
                return Ok(Vec::new());
            }
            let rows = client.query(
                "SELECT stage, minute, sum(n_events)::bigint, sum(revenue_minor)::bigint,
                        sum(n_revenue_events)::bigint
                 FROM stage_counts
                 WHERE funnel = $1 AND segment = ANY($2) AND minute >= $3 AND minute < $4
                 GROUP BY stage, minute",
                &[&query.funnel, &keys, &query.from.0, &query.to.0],
            )?;
            let mut counts = Vec::with_capacity(rows.len());
            for row in rows {
                let stage: &str = row.try_get(0)?;
                let Some(stage) = stage_ids.iter().position(|s| s == stage) else {
                    continue;
                };
                counts.push(MinuteCount {
                    stage,
                    minute: Minute(row.try_get(1)?),
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

    fn segment_minute_counts(
        &self,
        funnel: &str,
        from: Minute,
        to: Minute,
    ) -> Result<Vec<SegmentMinuteCount>, StoreError> {
        let stage_ids = self.layout.stages(funnel)?;
        self.with_client(|client| {
            // One snapshot for the segments and the counts, so that every segment counted is
            // known.
            let mut transaction = client
                .build_transaction()
                .isolation_level(IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()?;
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
            let params: [&(dyn ToSql + Sync); 4] = [&funnel, &keys, &from.0, &to.0];
            // Streamed rather than collected: a rebuild reads weeks of rows.
            let mut found = transaction.query_raw(
                "SELECT segment, minute, stage, n_events, revenue_minor, n_revenue_events
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
                let count = StageCount {
                    n_events: row.try_get(3)?,
                    revenue_minor: row.try_get(4)?,
                    n_revenue_events: row.try_get(5)?,
                };
                rows.push(row.try_get(1)?, position, stage, count);
            }
            drop(found);
            transaction.commit()?;
            Ok(rows.finish(&segments))
        })
    }

    fn late_counts(
        &self,
        funnel: &str,
        from: Minute,
        to: Minute,
    ) -> Result<Vec<LateCount>, StoreError> {
        self.with_client(|client| {
            let rows = client.query(
                "SELECT stage, minute, n_events FROM late_counts
                 WHERE funnel = $1 AND minute >= $2 AND minute < $3",
                &[&funnel, &from.0, &to.0],
            )?;
            let mut late = Vec::with_capacity(rows.len());
            for row in rows {
                let stage: &str = row.try_get(0)?;
                let Some(stage) = self.layout.stage_index(funnel, stage) else {
                    continue;
                };
                late.push(LateCount {
                    stage,
                    minute: Minute(row.try_get(1)?),
                    n_events: row.try_get(2)?,
                });
            }
            late.sort_by_key(|l| (l.minute, l.stage));
            Ok(late)
        })
    }

    fn dimension_values(&self) -> Result<Vec<(String, Vec<String>)>, StoreError> {
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

    fn create_token(
        &self,
        name: &str,
        role: Role,
        secret_sha256: [u8; 32],
        now: Timestamp,
    ) -> Result<TokenRecord, StoreError> {
        self.with_client(|client| {
            let row = client.query_one(
                "INSERT INTO api_tokens (name, role, secret_sha256, created_ms)
                 VALUES ($1, $2, $3, $4) RETURNING id",
                &[
                    &name,
                    &role.as_str(),
                    &secret_sha256.as_slice(),
                    &now.millis(),
                ],
            )?;
            Ok(TokenRecord {
                id: row.try_get(0)?,
                name: name.to_owned(),
                role,
                secret_sha256,
                created_at: now,
                revoked_at: None,
            })
        })
    }

    fn find_token(&self, secret_sha256: &[u8; 32]) -> Result<Option<TokenRecord>, StoreError> {
        self.with_client(|client| {
            let row = client.query_opt(
                "SELECT id, name, role, secret_sha256, created_ms, revoked_ms FROM api_tokens
                 WHERE secret_sha256 = $1 AND revoked_ms IS NULL",
                &[&secret_sha256.as_slice()],
            )?;
            row.as_ref().map(token_from_row).transpose()
        })
    }

    fn list_tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        self.with_client(|client| {
            client
                .query(
                    "SELECT id, name, role, secret_sha256, created_ms, revoked_ms FROM api_tokens
                     ORDER BY id",
                    &[],
                )?
                .iter()
                .map(token_from_row)
                .collect()
        })
    }

    fn revoke_token(&self, id: i64, now: Timestamp) -> Result<bool, StoreError> {
        self.with_client(|client| {
            let changed = client.execute(
                "UPDATE api_tokens SET revoked_ms = $2 WHERE id = $1 AND revoked_ms IS NULL",
                &[&id, &now.millis()],
            )?;
            Ok(changed == 1)
        })
    }

    fn load_incidents(&self, resolved_max: usize) -> Result<IncidentSnapshot, StoreError> {
        self.with_client(|client| {
            // One snapshot: the incidents, their timelines and the version all as of one commit.
            let mut transaction = client
                .build_transaction()
                .isolation_level(IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()?;
            let row = transaction.query_one("SELECT version, body FROM incident_meta", &[])?;
            let (version, meta) = (row.try_get(0)?, row.try_get(1)?);
            let mut incidents = transaction
                .query(
                    &format!(
                        "SELECT {INCIDENT_COLUMNS} FROM incidents WHERE resolved_ms IS NULL
                         UNION ALL
                         (SELECT {INCIDENT_COLUMNS} FROM incidents WHERE resolved_ms IS NOT NULL
                          ORDER BY id DESC LIMIT $1)"
                    ),
                    &[&sql_limit(resolved_max)],
                )?
                .iter()
                .map(incident_from_row)
                .collect::<Result<Vec<_>, _>>()?;
            incidents.sort_unstable_by_key(|incident| incident.id);
            let ids: Vec<i64> = incidents.iter().map(|incident| incident.id).collect();
            let timeline = transaction
                .query(
                    &format!(
                        "SELECT {TIMELINE_COLUMNS} FROM incident_timeline
                         WHERE incident = ANY($1) ORDER BY incident, seq"
                    ),
                    &[&ids],
                )?
                .iter()
                .map(timeline_from_row)
                .collect::<Result<_, _>>()?;
            transaction.commit()?;
            Ok(IncidentSnapshot {
                version,
                meta,
                incidents,
                timeline,
            })
        })
    }

    fn commit_incidents(&self, commit: &IncidentCommit) -> Result<i64, StoreError> {
        // A pooled connection rather than the writer: an incident commit need not wait behind a
        // group commit, and shares no rows with one.
        self.with_client(|client| {
            // READ COMMITTED, as in `commit_group`: a `FOR UPDATE` that waited for another node's
            // commit then reads the version that node committed, so the race ends in a conflict
            // rather than a serialization failure under a stricter default.
            let mut transaction = client
                .build_transaction()
                .isolation_level(IsolationLevel::ReadCommitted)
                .start()?;
            let found: i64 = transaction
                .query_one("SELECT version FROM incident_meta FOR UPDATE", &[])?
                .try_get(0)?;
            if found != commit.expected_version {
                // Dropping the transaction rolls it back.
                return Err(StoreError::Conflict {
                    expected: commit.expected_version,
                    found,
                });
            }
            let version = found + 1;
            write_incident_commit(&mut transaction, commit, version)?;
            transaction.commit()?;
            Ok(version)
        })
    }

    fn incidents_version(&self) -> Result<i64, StoreError> {
        self.with_client(|client| {
            Ok(client
                .query_one("SELECT version FROM incident_meta", &[])?
                .try_get(0)?)
        })
    }

    fn incident(&self, id: i64) -> Result<Option<(IncidentRow, Vec<TimelineRow>)>, StoreError> {
        self.with_client(|client| {
            let mut transaction = client
                .build_transaction()
                .isolation_level(IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()?;
            let row = transaction.query_opt(
                &format!("SELECT {INCIDENT_COLUMNS} FROM incidents WHERE id = $1"),
                &[&id],
            )?;
            let Some(row) = row else {
                return Ok(None);
            };
            let incident = incident_from_row(&row)?;
            let timeline = transaction
                .query(
                    &format!(
                        "SELECT {TIMELINE_COLUMNS} FROM incident_timeline
                         WHERE incident = $1 ORDER BY seq"
                    ),
                    &[&id],
                )?
                .iter()
                .map(timeline_from_row)
                .collect::<Result<_, _>>()?;
            transaction.commit()?;
            Ok(Some((incident, timeline)))
        })
    }

    fn list_incidents(&self, query: &IncidentQuery) -> Result<Vec<IncidentRow>, StoreError> {
        let limit = sql_limit(query.limit);
        let mut conditions: Vec<String> = Vec::new();
        let mut params: Vec<&(dyn ToSql + Sync)> = Vec::new();
        match query.open {
            Some(true) => conditions.push("resolved_ms IS NULL".to_owned()),
            Some(false) => conditions.push("resolved_ms IS NOT NULL".to_owned()),
            None => {}
        }
        if let Some(funnel) = &query.funnel {
            params.push(funnel);
            conditions.push(format!("funnel = ${}", params.len()));
        }
        if let Some(before_id) = &query.before_id {
            params.push(before_id);
            conditions.push(format!("id < ${}", params.len()));
        }
        params.push(&limit);
        let where_clause = if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        };
        let sql = format!(
            "SELECT {INCIDENT_COLUMNS} FROM incidents {where_clause} ORDER BY id DESC LIMIT ${}",
            params.len()
        );
        self.with_client(|client| {
            client
                .query(&sql, &params)?
                .iter()
                .map(incident_from_row)
                .collect()
        })
    }

    fn resolved_incidents(
        &self,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<IncidentRow>, StoreError> {
        self.with_client(|client| {
            client
                .query(
                    &format!(
                        "SELECT {INCIDENT_COLUMNS} FROM incidents
                         WHERE resolved_ms IS NOT NULL AND opened_ms >= $1 AND opened_ms < $2
                         ORDER BY id"
                    ),
                    &[&from.millis(), &to.millis()],
                )?
                .iter()
                .map(incident_from_row)
                .collect()
        })
    }

    fn outbox(&self, after_id: i64, limit: usize) -> Result<Vec<OutboxRow>, StoreError> {
        self.with_client(|client| {
            let rows = client.query(
                "SELECT id, incident, at_ms, kind, body FROM incident_outbox
                 WHERE id > $1 ORDER BY id LIMIT $2",
                &[&after_id, &sql_limit(limit)],
            )?;
            rows.iter()
                .map(|row| {
                    Ok(OutboxRow {
                        id: row.try_get(0)?,
                        incident: row.try_get(1)?,
                        at: Timestamp(row.try_get(2)?),
                        kind: row.try_get(3)?,
                        body: row.try_get(4)?,
                    })
                })
                .collect()
        })
    }

    fn insert_change(&self, change: &ChangeRow) -> Result<(ChangeRow, bool), StoreError> {
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
                    &change.kind,
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

    fn changes(
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

    fn ping(&self) -> Result<(), StoreError> {
        self.with_client(|client| Ok(client.batch_execute("SELECT 1")?))
    }
}

/// The columns [`incident_from_row`] reads, in its order.
const INCIDENT_COLUMNS: &str = "id, funnel, stage, severity, state, opened_ms, acknowledged_ms, \
     mitigated_ms, resolved_ms, body";
/// The columns [`timeline_from_row`] reads, in its order.
const TIMELINE_COLUMNS: &str = "incident, seq, at_ms, actor, kind, text";
/// The columns [`change_from_row`] reads, in its order.
const CHANGE_COLUMNS: &str = "id, at_ms, kind, summary, detail, funnel, stage, dimension, value, \
     author, external_id, recorded_ms";

/// A page size as an SQL `LIMIT`; one beyond `i64` is no limit.
fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

/// Writes an incident commit whose version has been checked (and its row locked), and moves the
/// version to `version`. Row by row, in the commit's order: a commit is a handful of rows, an
/// incident named twice ends as its last row says, as in the SQLite store, and the outbox ids
/// follow the order of the effects.
fn write_incident_commit(
    transaction: &mut Transaction,
    commit: &IncidentCommit,
    version: i64,
) -> Result<(), StoreError> {
    if !commit.incidents.is_empty() {
        let upsert = transaction.prepare(
            "INSERT INTO incidents (id, funnel, stage, severity, state, opened_ms, acknowledged_ms,
                                    mitigated_ms, resolved_ms, body)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
             ON CONFLICT (id) DO UPDATE SET
                 funnel = EXCLUDED.funnel,
                 stage = EXCLUDED.stage,
                 severity = EXCLUDED.severity,
                 state = EXCLUDED.state,
                 opened_ms = EXCLUDED.opened_ms,
                 acknowledged_ms = EXCLUDED.acknowledged_ms,
                 mitigated_ms = EXCLUDED.mitigated_ms,
                 resolved_ms = EXCLUDED.resolved_ms,
                 body = EXCLUDED.body",
        )?;
        for incident in &commit.incidents {
            transaction.execute(
                &upsert,
                &[
                    &incident.id,
                    &incident.funnel,
                    &incident.stage,
                    &incident.severity,
                    &incident.state,
                    &incident.opened_at.millis(),
                    &incident.acknowledged_at.map(Timestamp::millis),
                    &incident.mitigated_at.map(Timestamp::millis),
                    &incident.resolved_at.map(Timestamp::millis),
                    &incident.body,
                ],
            )?;
        }
    }
    if !commit.timeline.is_empty() {
        // A plain INSERT: an `(incident, seq)` already stored fails the whole commit.
        let append = transaction.prepare(
            "INSERT INTO incident_timeline (incident, seq, at_ms, actor, kind, text)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )?;
        for entry in &commit.timeline {
            transaction.execute(
                &append,
                &[
                    &entry.incident,
                    &entry.seq,
                    &entry.at.millis(),
                    &entry.actor,
                    &entry.kind,
                    &entry.text,
                ],
            )?;
        }
    }
    if !commit.outbox.is_empty() {
        let queue = transaction.prepare(
            "INSERT INTO incident_outbox (incident, at_ms, kind, body) VALUES ($1, $2, $3, $4)",
        )?;
        for effect in &commit.outbox {
            transaction.execute(
                &queue,
                &[
                    &effect.incident,
                    &effect.at.millis(),
                    &effect.kind,
                    &effect.body,
                ],
            )?;
        }
    }
    transaction.execute(
        "UPDATE incident_meta SET version = $1, body = $2",
        &[&version, &commit.meta],
    )?;
    Ok(())
}

fn incident_from_row(row: &postgres::Row) -> Result<IncidentRow, StoreError> {
    let at = |column| -> Result<Option<Timestamp>, postgres::Error> {
        Ok(row.try_get::<_, Option<i64>>(column)?.map(Timestamp))
    };
    Ok(IncidentRow {
        id: row.try_get(0)?,
        funnel: row.try_get(1)?,
        stage: row.try_get(2)?,
        severity: row.try_get(3)?,
        state: row.try_get(4)?,
        opened_at: Timestamp(row.try_get(5)?),
        acknowledged_at: at(6)?,
        mitigated_at: at(7)?,
        resolved_at: at(8)?,
        body: row.try_get(9)?,
    })
}

fn timeline_from_row(row: &postgres::Row) -> Result<TimelineRow, StoreError> {
    Ok(TimelineRow {
        incident: row.try_get(0)?,
        seq: row.try_get(1)?,
        at: Timestamp(row.try_get(2)?),
        actor: row.try_get(3)?,
        kind: row.try_get(4)?,
        text: row.try_get(5)?,
    })
}

fn change_from_row(row: &postgres::Row) -> Result<ChangeRow, StoreError> {
    let dimension: Option<String> = row.try_get(7)?;
    let value: Option<String> = row.try_get(8)?;
    Ok(ChangeRow {
        id: row.try_get(0)?,
        at: Timestamp(row.try_get(1)?),
        kind: row.try_get(2)?,
        summary: row.try_get(3)?,
        detail: row.try_get(4)?,
        funnel: row.try_get(5)?,
        stage: row.try_get(6)?,
        // The schema keeps both or neither.
        segment: dimension.zip(value),
        author: row.try_get(9)?,
        external_id: row.try_get(10)?,
        recorded_at: Timestamp(row.try_get(11)?),
    })
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

fn token_from_row(row: &postgres::Row) -> Result<TokenRecord, StoreError> {
    let revoked: Option<i64> = row.try_get(5)?;
    Ok(TokenRecord {
        id: row.try_get(0)?,
        name: row.try_get(1)?,
        role: row.try_get::<_, RoleColumn>(2)?.0,
        secret_sha256: row.try_get::<_, Sha256Column>(3)?.0,
        created_at: Timestamp(row.try_get(4)?),
        revoked_at: revoked.map(Timestamp),
    })
}

/// A role read from `api_tokens`; an unknown one is a conversion error, as in the SQLite store.
struct RoleColumn(Role);

impl<'a> FromSql<'a> for RoleColumn {
    fn from_sql(
        ty: &Type,
        raw: &'a [u8],
    ) -> Result<RoleColumn, Box<dyn std::error::Error + Sync + Send>> {
        let text = <&str as FromSql>::from_sql(ty, raw)?;
        match Role::parse(text) {
            Some(role) => Ok(RoleColumn(role)),
            None => Err(format!("api_tokens holds an unknown role `{text}`").into()),
        }
    }

    fn accepts(ty: &Type) -> bool {
        <&str as FromSql>::accepts(ty)
    }
}

/// A secret hash read from `api_tokens`; one that is not 32 bytes is a conversion error.
struct Sha256Column([u8; 32]);

impl<'a> FromSql<'a> for Sha256Column {
    fn from_sql(
        ty: &Type,
        raw: &'a [u8],
    ) -> Result<Sha256Column, Box<dyn std::error::Error + Sync + Send>> {
        let bytes = <&[u8] as FromSql>::from_sql(ty, raw)?;
        let hash = bytes
            .try_into()
            .map_err(|_| "api_tokens holds a hash that is not 32 bytes")?;
        Ok(Sha256Column(hash))
    }

    fn accepts(ty: &Type) -> bool {
        <&[u8] as FromSql>::accepts(ty)
    }
}
