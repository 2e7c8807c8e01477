//! SQLite incident state: the engine's versioned commits (incidents, append-only timeline,
//! outbox, meta) and the reads of them. It must never interpret an incident body beyond the
//! columns: the body's format belongs to `crate::record`.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use revloop_core::Timestamp;

use super::{SqliteStore, Text, sql_limit};
use crate::kinds::ColumnText;
use crate::{
    IncidentCommit, IncidentQuery, IncidentRow, IncidentSnapshot, OutboxRow, StoreError,
    TimelineRow,
};

/// The columns [`incident_from_row`] reads, in its order.
const INCIDENT_COLUMNS: &str = "id, funnel, stage, severity, state, opened_ms, acknowledged_ms, \
     mitigated_ms, resolved_ms, body";

impl SqliteStore {
    pub(super) fn load_incidents(
        &self,
        resolved_max: usize,
    ) -> Result<IncidentSnapshot, StoreError> {
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

    pub(super) fn commit_incidents(&self, commit: &IncidentCommit) -> Result<i64, StoreError> {
        // The writer connection, but not the ingest state: see `sqlite/mod.rs`'s docs.
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

    pub(super) fn incidents_version(&self) -> Result<i64, StoreError> {
        self.with_reader(|connection| {
            Ok(connection
                .prepare_cached("SELECT version FROM incident_meta")?
                .query_row([], |row| row.get(0))?)
        })
    }

    pub(super) fn incident(
        &self,
        id: i64,
    ) -> Result<Option<(IncidentRow, Vec<TimelineRow>)>, StoreError> {
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

    pub(super) fn list_incidents(
        &self,
        query: &IncidentQuery,
    ) -> Result<Vec<IncidentRow>, StoreError> {
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

    pub(super) fn resolved_incidents(
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

    pub(super) fn outbox(&self, after_id: i64, limit: usize) -> Result<Vec<OutboxRow>, StoreError> {
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
                        at: Timestamp::from_millis(row.get(2)?),
                        kind: row.get::<_, Text<_>>(3)?.0,
                        body: row.get(4)?,
                    })
                })?
                .collect::<Result<_, _>>()?;
            Ok(rows)
        })
    }
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
            incident.severity.to_text(),
            incident.state.to_text(),
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
            entry.kind.to_text(),
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
            effect.kind.to_text(),
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
                at: Timestamp::from_millis(row.get(2)?),
                actor: row.get(3)?,
                kind: row.get::<_, Text<_>>(4)?.0,
                text: row.get(5)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(timeline)
}

fn incident_from_row(row: &rusqlite::Row) -> rusqlite::Result<IncidentRow> {
    let at = |column| -> rusqlite::Result<Option<Timestamp>> {
        Ok(row
            .get::<_, Option<i64>>(column)?
            .map(Timestamp::from_millis))
    };
    Ok(IncidentRow {
        id: row.get(0)?,
        funnel: row.get(1)?,
        stage: row.get(2)?,
        severity: row.get::<_, Text<_>>(3)?.0,
        state: row.get::<_, Text<_>>(4)?.0,
        opened_at: Timestamp::from_millis(row.get(5)?),
        acknowledged_at: at(6)?,
        mitigated_at: at(7)?,
        resolved_at: at(8)?,
        body: row.get(9)?,
    })
}
