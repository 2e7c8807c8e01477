//! The embedded default: one SQLite file in WAL mode with `synchronous = FULL`, so that a
//! committed group survives a crash of the process or of the machine.
//!
//! One writer connection (behind a mutex) does all writes; the server's group-commit loop is its
//! only caller on the hot path. Readers take connections from a small pool and never block the
//! writer.
//!
//! Only ingest needs the ingest lock, because only ingest keeps state in memory. Incident
//! commits go through the same writer connection without it: they keep nothing in memory, and
//! their version check, read inside a `BEGIN IMMEDIATE` transaction, orders them across every
//! connection and process that opens the file.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use revloop_core::funnel::DimensionDictionary;
use revloop_core::ingest::StageCount;
use revloop_core::metrics::MinuteCount;
use revloop_core::time::Minute;
use revloop_core::{Config, Timestamp};

use crate::dedup::{DedupIndex, DedupStats, pack, unpack};
use crate::plan::{
    Combinations, CommitPlan, Layout, SegmentRows, SingleSegments, WriterState, filter_keys,
};
use crate::{
    ChangeRow, CountsQuery, IncidentCommit, IncidentQuery, IncidentRow, IncidentSnapshot,
    IngestGroup, IngestReceipt, LateCount, OutboxRow, Role, SegmentMinuteCount, Store, StoreError,
    TimelineRow, TokenRecord, migrations,
};

/// Idle reader connections kept for reuse.
const READERS_IDLE_MAX: usize = 8;
/// Page cache of each connection, in KiB.
const CACHE_KIB: i64 = 64 * 1024;

pub struct SqliteStore {
    path: PathBuf,
    layout: Layout,
    config: Config,
    writer: Mutex<Writer>,
    readers: Mutex<Vec<Connection>>,
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
            readers: Mutex::new(Vec::new()),
        })
    }

    /// The ingest state, loading it (and taking the ingest lock) the first time.
    fn ingest_state<'w>(
        &self,
        ingest: &'w mut Option<IngestState>,
        connection: &Connection,
    ) -> Result<&'w mut IngestState, StoreError> {
        if ingest.is_none() {
            *ingest = Some(start_ingest(
                &self.path,
                connection,
                &self.config,
                &self.layout,
            )?);
        }
        Ok(ingest.as_mut().expect("loaded above"))
    }

    fn with_reader<T>(
        &self,
        read: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let pooled = self.readers.lock().expect("reader pool lock").pop();
        let connection = match pooled {
            Some(connection) => connection,
            None => open_connection(&self.path)?,
        };
        let result = read(&connection);
        let mut pool = self.readers.lock().expect("reader pool lock");
        if pool.len() < READERS_IDLE_MAX {
            pool.push(connection);
        }
        result
    }
}

/// Takes the ingest lock and loads what ingest keeps in memory.
fn start_ingest(
    path: &Path,
    connection: &Connection,
    config: &Config,
    layout: &Layout,
) -> Result<IngestState, StoreError> {
    let lock_path = path.with_extension("ingest-lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|err| StoreError::Io(format!("opening {}: {err}", lock_path.display())))?;
    lock.try_lock()
        .map_err(|_| StoreError::Busy(path.display().to_string()))?;

    let mut dictionary = DimensionDictionary::new(config);
    let mut statement = connection.prepare("SELECT dimension, value FROM dimension_values")?;
    let rows = statement.query_map([], |row| {
        Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
    })?;
    for row in rows {
        let (dimension, value) = row?;
        if let Some(index) = layout.dimension_names.iter().position(|d| *d == dimension) {
            dictionary.load(index, &value);
        }
    }
    let mut statement = connection.prepare("SELECT key FROM segments")?;
    let known_segments: HashSet<i64> = statement
        .query_map([], |row| row.get::<_, i64>(0))?
        .collect::<Result<_, _>>()?;

    let mut dedup = DedupIndex::new(
        config.ingest.dedup_window.millis(),
        config.ingest.dedup_keys_max as usize,
    );
    let mut statement =
        connection.prepare("SELECT id, started_ms FROM dedup_generations ORDER BY id")?;
    let generations =
        statement.query_map([], |row| Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?)))?;
    for generation in generations {
        let (id, started_ms) = generation?;
        dedup.load_generation(id, started_ms);
    }
    let mut statement = connection.prepare("SELECT generation, keys FROM dedup_log ORDER BY id")?;
    let mut rows = statement.query([])?;
    while let Some(row) = rows.next()? {
        let generation: i64 = row.get(0)?;
        let keys = row.get_ref(1)?.as_blob().map_err(rusqlite::Error::from)?;
        dedup.load_keys(generation, unpack(keys));
    }
    let rolled_before: i64 = connection.query_row(
        "SELECT COALESCE(MIN(minute), ?1) FROM stage_counts_recent",
        [i64::MIN],
        |row| row.get(0),
    )?;
    Ok(IngestState {
        rolled_before,
        _lock: lock,
        state: WriterState::new(dictionary, known_segments),
        dedup,
    })
}

fn open_connection(path: &Path) -> Result<Connection, StoreError> {
    let connection = Connection::open(path)?;
    connection.busy_timeout(std::time::Duration::from_secs(5))?;
    connection.pragma_update(None, "journal_mode", "WAL")?;
    connection.pragma_update(None, "synchronous", "FULL")?;
    connection.pragma_update(None, "cache_size", -CACHE_KIB)?;
    connection.pragma_update(None, "foreign_keys", "ON")?;
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

impl Store for SqliteStore {
    fn commit_ingest(&self, group: &IngestGroup) -> Result<IngestReceipt, StoreError> {
        let mut guard = self.writer.lock().expect("writer lock");
        let Writer { connection, ingest } = &mut *guard;
        let ingest = self.ingest_state(ingest, connection)?;
        let now_ms = group.now.millis();
        let keys: Vec<i64> = group.items.iter().map(|item| item.dedup_key).collect();
        let mut is_new = Vec::with_capacity(keys.len());
        let dedup_changes = ingest.dedup.admit(now_ms, &keys, &mut is_new);
        let plan = ingest.state.plan(&self.layout, &group.items, &is_new);
        // The current and the previous minute stay in the recent table; see `roll_recent_counts`.
        let roll_before = group.now.minute().0 - 1;
        let result = (|| {
            let transaction =
                connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
            for (id, started_ms) in &dedup_changes.new_generations {
                transaction
                    .prepare_cached(
                        "INSERT OR IGNORE INTO dedup_generations (id, started_ms) VALUES (?1, ?2)",
                    )?
                    .execute(params![id, started_ms])?;
            }
            if !dedup_changes.new_keys.is_empty() {
                transaction
                    .prepare_cached("INSERT INTO dedup_log (generation, keys) VALUES (?1, ?2)")?
                    .execute(params![
                        dedup_changes.generation,
                        pack(&dedup_changes.new_keys)
                    ])?;
            }
            write_plan(&transaction, &self.layout, &plan)?;
            if roll_before > ingest.rolled_before {
                roll_recent_counts(&transaction, roll_before)?;
            }
            transaction.commit()?;
            Ok::<(), StoreError>(())
        })();
        if let Err(err) = result {
            ingest.dedup.undo(&dedup_changes);
            ingest.state.forget(&plan);
            return Err(err);
        }
        ingest.state.committed(&plan);
        ingest.rolled_before = ingest.rolled_before.max(roll_before);
        let forgotten = ingest.dedup.committed(&dedup_changes, now_ms);
        if !forgotten.is_empty() {
            // Best effort: rows of forgotten generations left behind by a failure here are
            // loaded and forgotten again on the next start.
            let _ = forget_generations(connection, &forgotten);
        }
        Ok(IngestReceipt { is_new })
    }

    fn minute_counts(&self, query: &CountsQuery) -> Result<Vec<MinuteCount>, StoreError> {
        let (_, stage_ids) = self
            .layout
            .funnels
            .iter()
            .find(|(id, _)| *id == query.funnel)
            .ok_or_else(|| StoreError::UnknownFunnel(query.funnel.clone()))?;
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
                    let mut rows =
                        statement.query(params![query.funnel, key, query.from.0, query.to.0])?;
                    while let Some(row) = rows.next()? {
                        let stage: String = row.get(0)?;
                        let Some(stage) = stage_ids.iter().position(|s| *s == stage) else {
                            continue;
                        };
                        let count = StageCount {
                            n_events: row.get(2)?,
                            revenue_minor: row.get(3)?,
                            n_revenue_events: row.get(4)?,
                        };
                        sums.entry((stage, row.get(1)?)).or_default().add(count);
                    }
                }
            }
            drop(snapshot);
            let mut counts: Vec<MinuteCount> = sums
                .into_iter()
                .map(|((stage, minute), count)| MinuteCount {
                    stage,
                    minute: Minute(minute),
                    count,
                })
                .collect();
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

    fn late_counts(
        &self,
        funnel: &str,
        from: Minute,
        to: Minute,
    ) -> Result<Vec<LateCount>, StoreError> {
        self.with_reader(|connection| {
            let mut statement = connection.prepare_cached(
                "SELECT stage, minute, n_events FROM late_counts
                 WHERE funnel = ?1 AND minute >= ?2 AND minute < ?3 ORDER BY minute, stage",
            )?;
            let mut rows = statement.query(params![funnel, from.0, to.0])?;
            let mut late = Vec::new();
            while let Some(row) = rows.next()? {
                let stage: String = row.get(0)?;
                let Some(stage) = self.layout.stage_index(funnel, &stage) else {
                    continue;
                };
                late.push(LateCount {
                    stage,
                    minute: Minute(row.get(1)?),
                    n_events: row.get(2)?,
                });
            }
            Ok(late)
        })
    }

    fn dimension_values(&self) -> Result<Vec<(String, Vec<String>)>, StoreError> {
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

    fn create_token(
        &self,
        name: &str,
        role: Role,
        secret_sha256: [u8; 32],
        now: Timestamp,
    ) -> Result<TokenRecord, StoreError> {
        let writer = self.writer.lock().expect("writer lock");
        writer.connection.execute(
            "INSERT INTO api_tokens (name, role, secret_sha256, created_ms) VALUES (?1, ?2, ?3, ?4)",
            params![name, role.as_str(), secret_sha256.as_slice(), now.millis()],
        )?;
        Ok(TokenRecord {
            id: writer.connection.last_insert_rowid(),
            name: name.to_owned(),
            role,
            secret_sha256,
            created_at: now,
            revoked_at: None,
        })
    }

    fn find_token(&self, secret_sha256: &[u8; 32]) -> Result<Option<TokenRecord>, StoreError> {
        self.with_reader(|connection| {
            Ok(connection
                .query_row(
                    "SELECT id, name, role, secret_sha256, created_ms, revoked_ms FROM api_tokens
                     WHERE secret_sha256 = ?1 AND revoked_ms IS NULL",
                    [secret_sha256.as_slice()],
                    token_from_row,
                )
                .optional()?)
        })
    }

    fn list_tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        self.with_reader(|connection| {
            let mut statement = connection.prepare(
                "SELECT id, name, role, secret_sha256, created_ms, revoked_ms FROM api_tokens ORDER BY id",
            )?;
            let tokens = statement.query_map([], token_from_row)?.collect::<Result<_, _>>()?;
            Ok(tokens)
        })
    }

    fn revoke_token(&self, id: i64, now: Timestamp) -> Result<bool, StoreError> {
        let writer = self.writer.lock().expect("writer lock");
        let changed = writer.connection.execute(
            "UPDATE api_tokens SET revoked_ms = ?2 WHERE id = ?1 AND revoked_ms IS NULL",
            params![id, now.millis()],
        )?;
        Ok(changed == 1)
    }

    fn load_incidents(&self, resolved_max: usize) -> Result<IncidentSnapshot, StoreError> {
        self.with_reader(|connection| {
            // One snapshot: the incidents, their timelines and the version all as of one commit.
            let snapshot = connection.unchecked_transaction()?;
            let (version, meta) = snapshot
                .prepare_cached("SELECT version, body FROM incident_meta")?
                .query_row([], |row| Ok((row.get(0)?, row.get(1)?)))?;
            let mut incidents: Vec<IncidentRow> = snapshot
                .prepare_cached(&format!(
                    "SELECT {INCIDENT_COLUMNS} FROM incidents WHERE resolved_ms IS NULL
                     UNION ALL
                     SELECT * FROM (
                         SELECT {INCIDENT_COLUMNS} FROM incidents WHERE resolved_ms IS NOT NULL
                         ORDER BY id DESC LIMIT ?1
                     )"
                ))?
                .query_map([sql_limit(resolved_max)], incident_from_row)?
                .collect::<Result<_, _>>()?;
            incidents.sort_unstable_by_key(|incident| incident.id);
            let mut timeline = Vec::new();
            for incident in &incidents {
                timeline.extend(read_timeline(&snapshot, incident.id)?);
            }
            drop(snapshot);
            Ok(IncidentSnapshot {
                version,
                meta,
                incidents,
                timeline,
            })
        })
    }

    fn commit_incidents(&self, commit: &IncidentCommit) -> Result<i64, StoreError> {
        // The writer connection, but not the ingest state: see the module docs.
        let mut writer = self.writer.lock().expect("writer lock");
        // IMMEDIATE takes the write lock before the version is read, so no other connection
        // commits between the check and the writes. Returning early rolls back.
        let transaction = writer
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let found: i64 = transaction
            .prepare_cached("SELECT version FROM incident_meta")?
            .query_row([], |row| row.get(0))?;
        if found != commit.expected_version {
            return Err(StoreError::Conflict {
                expected: commit.expected_version,
                found,
            });
        }
        let version = found + 1;
        write_incident_commit(&transaction, commit, version)?;
        transaction.commit()?;
        Ok(version)
    }

    fn incidents_version(&self) -> Result<i64, StoreError> {
        self.with_reader(|connection| {
            Ok(connection
                .prepare_cached("SELECT version FROM incident_meta")?
                .query_row([], |row| row.get(0))?)
        })
    }

    fn incident(&self, id: i64) -> Result<Option<(IncidentRow, Vec<TimelineRow>)>, StoreError> {
        self.with_reader(|connection| {
            let snapshot = connection.unchecked_transaction()?;
            let incident = snapshot
                .prepare_cached(&format!(
                    "SELECT {INCIDENT_COLUMNS} FROM incidents WHERE id = ?1"
                ))?
                .query_row([id], incident_from_row)
                .optional()?;
            let Some(incident) = incident else {
                return Ok(None);
            };
            let timeline = read_timeline(&snapshot, id)?;
            drop(snapshot);
            Ok(Some((incident, timeline)))
        })
    }

    fn list_incidents(&self, query: &IncidentQuery) -> Result<Vec<IncidentRow>, StoreError> {
        let mut conditions = Vec::new();
        match query.open {
            Some(true) => conditions.push("resolved_ms IS NULL"),
            Some(false) => conditions.push("resolved_ms IS NOT NULL"),
            None => {}
        }
        if query.funnel.is_some() {
            conditions.push("funnel = ?1");
        }
        if query.before_id.is_some() {
            conditions.push("id < ?2");
        }
        let sql = format!(
            "SELECT {INCIDENT_COLUMNS} FROM incidents {} ORDER BY id DESC LIMIT ?3",
            where_clause(&conditions)
        );
        self.with_reader(|connection| {
            let mut statement = connection.prepare_cached(&sql)?;
            // Numbered parameters that a condition left out are bound but unused, which SQLite
            // allows: one binding for every variant of the statement.
            let incidents = statement
                .query_map(
                    params![query.funnel, query.before_id, sql_limit(query.limit)],
                    incident_from_row,
                )?
                .collect::<Result<_, _>>()?;
            Ok(incidents)
        })
    }

    fn resolved_incidents(
        &self,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<IncidentRow>, StoreError> {
        self.with_reader(|connection| {
            let incidents = connection
                .prepare_cached(&format!(
                    "SELECT {INCIDENT_COLUMNS} FROM incidents
                     WHERE resolved_ms IS NOT NULL AND opened_ms >= ?1 AND opened_ms < ?2
                     ORDER BY id"
                ))?
                .query_map([from.millis(), to.millis()], incident_from_row)?
                .collect::<Result<_, _>>()?;
            Ok(incidents)
        })
    }

    fn outbox(&self, after_id: i64, limit: usize) -> Result<Vec<OutboxRow>, StoreError> {
        self.with_reader(|connection| {
            let rows = connection
                .prepare_cached(
                    "SELECT id, incident, at_ms, kind, body FROM incident_outbox
                     WHERE id > ?1 ORDER BY id LIMIT ?2",
                )?
                .query_map(params![after_id, sql_limit(limit)], |row| {
                    Ok(OutboxRow {
                        id: row.get(0)?,
                        incident: row.get(1)?,
                        at: Timestamp(row.get(2)?),
                        kind: row.get(3)?,
                        body: row.get(4)?,
                    })
                })?
                .collect::<Result<_, _>>()?;
            Ok(rows)
        })
    }

    fn insert_change(&self, change: &ChangeRow) -> Result<(ChangeRow, bool), StoreError> {
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
                    change.kind,
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

    fn changes(
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

    fn claim_ingest(&self) -> Result<(), StoreError> {
        let mut guard = self.writer.lock().expect("writer lock");
        let Writer { connection, ingest } = &mut *guard;
        self.ingest_state(ingest, connection).map(|_| ())
    }

    fn dedup_stats(&self) -> Option<DedupStats> {
        let writer = self.writer.lock().expect("writer lock");
        writer.ingest.as_ref().map(|ingest| ingest.dedup.stats())
    }

    fn ping(&self) -> Result<(), StoreError> {
        self.with_reader(|connection| Ok(connection.query_row("SELECT 1", [], |_| Ok(()))?))
    }
}

/// The columns [`incident_from_row`] reads, in its order.
const INCIDENT_COLUMNS: &str = "id, funnel, stage, severity, state, opened_ms, acknowledged_ms, \
     mitigated_ms, resolved_ms, body";
/// The columns [`change_from_row`] reads, in its order.
const CHANGE_COLUMNS: &str = "id, at_ms, kind, summary, detail, funnel, stage, dimension, value, \
     author, external_id, recorded_ms";

/// A page size as an SQL `LIMIT`; one beyond `i64` is no limit.
fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

fn where_clause(conditions: &[&str]) -> String {
    if conditions.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conditions.join(" AND "))
    }
}

/// Writes an incident commit whose version has been checked, and moves the version to `version`.
fn write_incident_commit(
    transaction: &rusqlite::Transaction,
    commit: &IncidentCommit,
    version: i64,
) -> Result<(), StoreError> {
    let mut upsert = transaction.prepare_cached(
        "INSERT INTO incidents (id, funnel, stage, severity, state, opened_ms, acknowledged_ms,
                                mitigated_ms, resolved_ms, body)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
         ON CONFLICT (id) DO UPDATE SET
             funnel = excluded.funnel,
             stage = excluded.stage,
             severity = excluded.severity,
             state = excluded.state,
             opened_ms = excluded.opened_ms,
             acknowledged_ms = excluded.acknowledged_ms,
             mitigated_ms = excluded.mitigated_ms,
             resolved_ms = excluded.resolved_ms,
             body = excluded.body",
    )?;
    for incident in &commit.incidents {
        upsert.execute(params![
            incident.id,
            incident.funnel,
            incident.stage,
            incident.severity,
            incident.state,
            incident.opened_at.millis(),
            incident.acknowledged_at.map(Timestamp::millis),
            incident.mitigated_at.map(Timestamp::millis),
            incident.resolved_at.map(Timestamp::millis),
            incident.body,
        ])?;
    }
    // A plain INSERT: an `(incident, seq)` already stored fails the whole commit.
    let mut append = transaction.prepare_cached(
        "INSERT INTO incident_timeline (incident, seq, at_ms, actor, kind, text)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for entry in &commit.timeline {
        append.execute(params![
            entry.incident,
            entry.seq,
            entry.at.millis(),
            entry.actor,
            entry.kind,
            entry.text,
        ])?;
    }
    let mut queue = transaction.prepare_cached(
        "INSERT INTO incident_outbox (incident, at_ms, kind, body) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for effect in &commit.outbox {
        queue.execute(params![
            effect.incident,
            effect.at.millis(),
            effect.kind,
            effect.body
        ])?;
    }
    transaction
        .prepare_cached("UPDATE incident_meta SET version = ?1, body = ?2")?
        .execute(params![version, commit.meta])?;
    Ok(())
}

/// One incident's whole timeline, by seq.
fn read_timeline(connection: &Connection, incident: i64) -> Result<Vec<TimelineRow>, StoreError> {
    let timeline = connection
        .prepare_cached(
            "SELECT incident, seq, at_ms, actor, kind, text FROM incident_timeline
             WHERE incident = ?1 ORDER BY seq",
        )?
        .query_map([incident], |row| {
            Ok(TimelineRow {
                incident: row.get(0)?,
                seq: row.get(1)?,
                at: Timestamp(row.get(2)?),
                actor: row.get(3)?,
                kind: row.get(4)?,
                text: row.get(5)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(timeline)
}

fn incident_from_row(row: &rusqlite::Row) -> rusqlite::Result<IncidentRow> {
    let at = |column| -> rusqlite::Result<Option<Timestamp>> {
        Ok(row.get::<_, Option<i64>>(column)?.map(Timestamp))
    };
    Ok(IncidentRow {
        id: row.get(0)?,
        funnel: row.get(1)?,
        stage: row.get(2)?,
        severity: row.get(3)?,
        state: row.get(4)?,
        opened_at: Timestamp(row.get(5)?),
        acknowledged_at: at(6)?,
        mitigated_at: at(7)?,
        resolved_at: at(8)?,
        body: row.get(9)?,
    })
}

fn change_from_row(row: &rusqlite::Row) -> rusqlite::Result<ChangeRow> {
    let dimension: Option<String> = row.get(7)?;
    let value: Option<String> = row.get(8)?;
    Ok(ChangeRow {
        id: row.get(0)?,
        at: Timestamp(row.get(1)?),
        kind: row.get(2)?,
        summary: row.get(3)?,
        detail: row.get(4)?,
        funnel: row.get(5)?,
        stage: row.get(6)?,
        // The schema keeps both or neither.
        segment: dimension.zip(value),
        author: row.get(9)?,
        external_id: row.get(10)?,
        recorded_at: Timestamp(row.get(11)?),
    })
}

/// Moves the counts of minutes before `before` from the recent table into `stage_counts`.
///
/// Why two tables: `stage_counts` is keyed segment-major, so that a read of one segment over
/// days is one range scan. But every commit adds to the current minute of hundreds of
/// segments, and in a segment-major B-tree each of those rows sits on a different page: the
/// WAL would receive a page per row per commit, growing with the table. The recent table is
/// keyed minute-major, so a commit's rows share a few pages at the right edge; once a minute
/// it hands its older rows over, in key order, in one statement.
fn roll_recent_counts(transaction: &rusqlite::Transaction, before: i64) -> Result<(), StoreError> {
    transaction
        .prepare_cached(
            "INSERT INTO stage_counts (funnel, segment, minute, stage, n_events, revenue_minor, n_revenue_events)
             SELECT funnel, segment, minute, stage, n_events, revenue_minor, n_revenue_events
             FROM stage_counts_recent WHERE minute < ?1 ORDER BY funnel, segment, minute, stage
             ON CONFLICT (funnel, segment, minute, stage) DO UPDATE SET
                 n_events = n_events + excluded.n_events,
                 revenue_minor = revenue_minor + excluded.revenue_minor,
                 n_revenue_events = n_revenue_events + excluded.n_revenue_events",
        )?
        .execute([before])?;
    transaction
        .prepare_cached("DELETE FROM stage_counts_recent WHERE minute < ?1")?
        .execute([before])?;
    Ok(())
}

fn forget_generations(connection: &Connection, ids: &[i64]) -> Result<(), StoreError> {
    let transaction = connection.unchecked_transaction()?;
    for id in ids {
        transaction.execute("DELETE FROM dedup_log WHERE generation = ?1", [id])?;
        transaction.execute("DELETE FROM dedup_generations WHERE id = ?1", [id])?;
    }
    transaction.commit()?;
    Ok(())
}

fn write_plan(
    transaction: &rusqlite::Transaction,
    layout: &Layout,
    plan: &CommitPlan,
) -> Result<(), StoreError> {
    let mut add_count = transaction.prepare_cached(
        "INSERT INTO stage_counts_recent (funnel, segment, minute, stage, n_events, revenue_minor, n_revenue_events)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (funnel, segment, minute, stage) DO UPDATE SET
             n_events = n_events + excluded.n_events,
             revenue_minor = revenue_minor + excluded.revenue_minor,
             n_revenue_events = n_revenue_events + excluded.n_revenue_events",
    )?;
    for ((funnel, stage, segment, minute), count) in &plan.counts {
        let (funnel_id, stage_ids) = &layout.funnels[*funnel];
        add_count.execute(params![
            funnel_id,
            segment,
            minute,
            stage_ids[*stage],
            count.n_events,
            count.revenue_minor,
            count.n_revenue_events
        ])?;
    }
    let mut add_late = transaction.prepare_cached(
        "INSERT INTO late_counts (funnel, minute, stage, n_events) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (funnel, minute, stage) DO UPDATE SET n_events = n_events + excluded.n_events",
    )?;
    for ((funnel, stage, minute), n_events) in &plan.late {
        let (funnel_id, stage_ids) = &layout.funnels[*funnel];
        add_late.execute(params![funnel_id, minute, stage_ids[*stage], n_events])?;
    }
    let mut add_segment = transaction.prepare_cached(
        "INSERT OR IGNORE INTO segments (key, assignment, n_dimensions) VALUES (?1, ?2, ?3)",
    )?;
    for (key, assignment, n_dimensions) in &plan.new_segments {
        add_segment.execute(params![key, assignment, n_dimensions])?;
    }
    let mut add_value = transaction.prepare_cached(
        "INSERT OR IGNORE INTO dimension_values (dimension, value) VALUES (?1, ?2)",
    )?;
    for (dimension, value) in &plan.new_values {
        add_value.execute(params![layout.dimension_names[*dimension], value])?;
    }
    Ok(())
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
        "SELECT minute, stage, n_events, revenue_minor, n_revenue_events FROM stage_counts
         WHERE funnel = ?1 AND segment = ?2 AND minute >= ?3 AND minute < ?4",
    )?;
    for (position, key) in segments.keys().iter().enumerate() {
        let mut found = statement.query(params![funnel, key, from.0, to.0])?;
        while let Some(row) = found.next()? {
            if let Some(stage) = stage_index(row, 1)? {
                rows.push(row.get(0)?, position as u32, stage, count_from_row(row, 2)?);
            }
        }
    }
    // Minute-major and small: one range of minutes; full combinations are skipped here.
    let mut statement = snapshot.prepare_cached(
        "SELECT minute, stage, segment, n_events, revenue_minor, n_revenue_events
         FROM stage_counts_recent WHERE minute >= ?1 AND minute < ?2 AND funnel = ?3",
    )?;
    let mut found = statement.query(params![from.0, to.0, funnel])?;
    while let Some(row) = found.next()? {
        let Some(position) = segments.position(row.get(2)?) else {
            continue;
        };
        if let Some(stage) = stage_index(row, 1)? {
            rows.push(row.get(0)?, position, stage, count_from_row(row, 3)?);
        }
    }
    Ok(rows)
}

/// The `n_events, revenue_minor, n_revenue_events` columns from `first` on.
fn count_from_row(row: &rusqlite::Row, first: usize) -> rusqlite::Result<StageCount> {
    Ok(StageCount {
        n_events: row.get(first)?,
        revenue_minor: row.get(first + 1)?,
        n_revenue_events: row.get(first + 2)?,
    })
}

fn token_from_row(row: &rusqlite::Row) -> rusqlite::Result<TokenRecord> {
    let corrupt = |column: usize, what: &str| {
        rusqlite::Error::FromSqlConversionFailure(
            column,
            rusqlite::types::Type::Text,
            format!("api_tokens holds {what}").into(),
        )
    };
    let role: String = row.get(2)?;
    let hash: Vec<u8> = row.get(3)?;
    let revoked: Option<i64> = row.get(5)?;
    Ok(TokenRecord {
        id: row.get(0)?,
        name: row.get(1)?,
        role: Role::parse(&role).ok_or_else(|| corrupt(2, "an unknown role"))?,
        secret_sha256: hash
            .try_into()
            .map_err(|_| corrupt(3, "a hash that is not 32 bytes"))?,
        created_at: Timestamp(row.get(4)?),
        revoked_at: revoked.map(Timestamp),
    })
}
