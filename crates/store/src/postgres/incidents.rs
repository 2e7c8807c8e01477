//! PostgreSQL incident state: the engine's versioned commits (incidents, append-only timeline,
//! outbox, meta) and the reads of them. It must never interpret an incident body beyond the
//! columns: the body's format belongs to `crate::record`.

use postgres::types::ToSql;
use postgres::{IsolationLevel, Transaction};

use revloop_core::Timestamp;

use super::{PostgresStore, Text, read_snapshot, sql_limit};
use crate::kinds::ColumnText;
use crate::{
    IncidentCommit, IncidentQuery, IncidentRow, IncidentSnapshot, OutboxRow, StoreError,
    TimelineRow,
};

/// The columns [`incident_from_row`] reads, in its order.
const INCIDENT_COLUMNS: &str = "id, funnel, stage, severity, state, opened_ms, acknowledged_ms, \
     mitigated_ms, resolved_ms, body";

/// The columns [`timeline_from_row`] reads, in its order.
const TIMELINE_COLUMNS: &str = "incident, seq, at_ms, actor, kind, text";

impl PostgresStore {
    pub(super) fn load_incidents(
        &self,
        resolved_max: usize,
    ) -> Result<IncidentSnapshot, StoreError> {
        self.with_client(|client| {
            // One snapshot: the incidents, their timelines and the version all as of one commit.
            let mut transaction = read_snapshot(client)?;
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

    pub(super) fn commit_incidents(&self, commit: &IncidentCommit) -> Result<i64, StoreError> {
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

    pub(super) fn incidents_version(&self) -> Result<i64, StoreError> {
        self.with_client(|client| {
            Ok(client
                .query_one("SELECT version FROM incident_meta", &[])?
                .try_get(0)?)
        })
    }

    pub(super) fn incident(
        &self,
        id: i64,
    ) -> Result<Option<(IncidentRow, Vec<TimelineRow>)>, StoreError> {
        self.with_client(|client| {
            let mut transaction = read_snapshot(client)?;
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

    pub(super) fn list_incidents(
        &self,
        query: &IncidentQuery,
    ) -> Result<Vec<IncidentRow>, StoreError> {
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

    pub(super) fn resolved_incidents(
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

    pub(super) fn outbox(&self, after_id: i64, limit: usize) -> Result<Vec<OutboxRow>, StoreError> {
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
                        at: Timestamp::from_millis(row.try_get(2)?),
                        kind: row.try_get::<_, Text<_>>(3)?.0,
                        body: row.try_get(4)?,
                    })
                })
                .collect()
        })
    }
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
                    &incident.severity.to_text(),
                    &incident.state.to_text(),
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
                    &entry.kind.to_text(),
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
                    &effect.kind.to_text(),
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
        Ok(row
            .try_get::<_, Option<i64>>(column)?
            .map(Timestamp::from_millis))
    };
    Ok(IncidentRow {
        id: row.try_get(0)?,
        funnel: row.try_get(1)?,
        stage: row.try_get(2)?,
        severity: row.try_get::<_, Text<_>>(3)?.0,
        state: row.try_get::<_, Text<_>>(4)?.0,
        opened_at: Timestamp::from_millis(row.try_get(5)?),
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
        at: Timestamp::from_millis(row.try_get(2)?),
        actor: row.try_get(3)?,
        kind: row.try_get::<_, Text<_>>(4)?.0,
        text: row.try_get(5)?,
    })
}
