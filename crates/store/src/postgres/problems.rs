//! PostgreSQL ingest problem log: what a group commit adds to it (inside the group's
//! transaction, called from `ingest`), and its reads.
//!
//! Every write to its tables happens under one transaction-level advisory lock, taken after
//! every other lock of the group commit (the global order in the docs of `postgres`). Under it
//! the ids drawn for new entries increase in commit order across nodes, trimming the log to its
//! bound races with no other node, and the list of ignored names cannot outgrow its bound.
//! Every text it binds comes through `problems_kept` or `tally_ignored`, which replace NUL
//! (which `text` refuses) by `NUL_REPLACEMENT`.

use std::collections::HashSet;

use postgres::{Client, GenericClient, Statement, Transaction};

use revloop_core::Timestamp;

use super::{LOCK_PROBLEM_LOG, PostgresStore, Text, read_snapshot, sql_limit};
use crate::kinds::ColumnText;
use crate::problems::{
    NameTally, PROBLEM_LOG_ENTRIES_MAX, admit_new_names, count_of, db_count, problems_kept,
    tally_ignored,
};
use crate::{
    IgnoredNameRow, IgnoredNamesPage, IngestGroup, ProblemPage, ProblemQuery, ProblemRow,
    StoreError,
};

/// The statements of the log's writes, prepared once per writer connection with the group
/// commit's own.
pub(super) struct ProblemStatements {
    lock: Statement,
    insert: Statement,
    trim: Statement,
    add_to_meta: Statement,
    count_names: Statement,
    update_names: Statement,
    insert_names: Statement,
}

impl ProblemStatements {
    pub(super) fn prepare(client: &mut Client) -> Result<ProblemStatements, StoreError> {
        Ok(ProblemStatements {
            lock: client.prepare("SELECT pg_advisory_xact_lock($1)")?,
            // Returns the newest id, so that the log is trimmed only once it may be full.
            insert: client.prepare(
                "WITH inserted AS (
                     INSERT INTO ingest_problems
                         (at_ms, key_name, outcome, code, field, message, body, body_cut)
                     SELECT at_ms, key_name, outcome, code, field, message, body, body_cut
                     FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[],
                                 $6::text[], $7::text[], $8::boolean[])
                          WITH ORDINALITY
                          AS p (at_ms, key_name, outcome, code, field, message, body, body_cut, n)
                     ORDER BY n
                     RETURNING id
                 )
                 SELECT max(id) FROM inserted",
            )?,
            trim: client.prepare("DELETE FROM ingest_problems WHERE id <= $1")?,
            add_to_meta: client.prepare(
                "UPDATE ingest_log_meta SET n_problems_dropped = n_problems_dropped + $1,
                     n_ignored_unlisted = n_ignored_unlisted + $2
                 WHERE id = 1",
            )?,
            count_names: client.prepare("SELECT count(*) FROM ignored_names")?,
            update_names: client.prepare(
                "UPDATE ignored_names AS t
                 SET n_messages = t.n_messages + u.n,
                     last_seen_ms = GREATEST(t.last_seen_ms, $4)
                 FROM unnest($1::text[], $2::text[], $3::bigint[]) AS u (kind, name, n)
                 WHERE t.kind = u.kind AND t.name = u.name
                 RETURNING t.kind, t.name",
            )?,
            insert_names: client.prepare(
                "INSERT INTO ignored_names (kind, name, n_messages, first_seen_ms, last_seen_ms)
                 SELECT kind, name, n, $4, $4 FROM unnest($1::text[], $2::text[], $3::bigint[])
                     AS u (kind, name, n)",
            )?,
        })
    }
}

/// Adds the group's problems and its new ignored messages to the log, in the group's
/// transaction; `is_new` says which items were new in it.
pub(super) fn write_problem_log(
    transaction: &mut Transaction,
    statements: &ProblemStatements,
    group: &IngestGroup,
    is_new: &[bool],
) -> Result<(), StoreError> {
    let (kept, mut n_dropped) = problems_kept(&group.problems);
    let tally = tally_ignored(&group.items, is_new);
    if kept.is_empty() && tally.is_empty() {
        return Ok(());
    }
    transaction.execute(&statements.lock, &[&LOCK_PROBLEM_LOG])?;
    if !kept.is_empty() {
        n_dropped += insert_problems(transaction, statements, &kept)?;
    }
    let n_unlisted = add_ignored(transaction, statements, tally, group.now)?;
    if n_dropped > 0 || n_unlisted > 0 {
        transaction.execute(
            &statements.add_to_meta,
            &[&db_count(n_dropped), &db_count(n_unlisted)],
        )?;
    }
    Ok(())
}

/// Inserts entries in order and drops the oldest past the bound; returns how many it dropped.
fn insert_problems(
    transaction: &mut Transaction,
    statements: &ProblemStatements,
    problems: &[ProblemRow],
) -> Result<u64, StoreError> {
    let at_ms: Vec<i64> = problems.iter().map(|p| p.at.millis()).collect();
    let key_names: Vec<&str> = problems.iter().map(|p| p.key_name.as_str()).collect();
    let outcomes: Vec<&str> = problems.iter().map(|p| p.outcome.to_text()).collect();
    let codes: Vec<&str> = problems.iter().map(|p| p.code.as_str()).collect();
    let fields: Vec<Option<&str>> = problems.iter().map(|p| p.field.as_deref()).collect();
    let messages: Vec<&str> = problems.iter().map(|p| p.message.as_str()).collect();
    let bodies: Vec<&str> = problems.iter().map(|p| p.body.as_str()).collect();
    let cuts: Vec<bool> = problems.iter().map(|p| p.body_cut).collect();
    let newest_id: i64 = transaction
        .query_one(
            &statements.insert,
            &[
                &at_ms, &key_names, &outcomes, &codes, &fields, &messages, &bodies, &cuts,
            ],
        )?
        .try_get(0)?;
    // Ids are drawn under the lock, so they are consecutive but for a rolled-back group's: the
    // log keeps at most, and almost always exactly, the bound.
    let oldest_dropped = newest_id - db_count(PROBLEM_LOG_ENTRIES_MAX as u64);
    if oldest_dropped < 1 {
        return Ok(0);
    }
    Ok(transaction.execute(&statements.trim, &[&oldest_dropped])?)
}

/// Counts the tallied names, adding the new ones while the list has room; returns the ignored
/// messages left unlisted.
fn add_ignored(
    transaction: &mut Transaction,
    statements: &ProblemStatements,
    tally: Vec<NameTally>,
    now: Timestamp,
) -> Result<u64, StoreError> {
    if tally.is_empty() {
        return Ok(0);
    }
    let kinds: Vec<&str> = tally.iter().map(|((kind, _), _)| kind.to_text()).collect();
    let names: Vec<&str> = tally.iter().map(|((_, name), _)| name.as_str()).collect();
    let counts: Vec<i64> = tally.iter().map(|(_, n)| db_count(*n)).collect();
    let updated: HashSet<(String, String)> = transaction
        .query(
            &statements.update_names,
            &[&kinds, &names, &counts, &now.millis()],
        )?
        .iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
        .collect::<Result<_, postgres::Error>>()?;
    let missing: Vec<_> = tally
        .into_iter()
        .filter(|((kind, name), _)| !updated.contains(&(kind.to_text().to_owned(), name.clone())))
        .collect();
    if missing.is_empty() {
        return Ok(0);
    }
    let n_names_held: i64 = transaction
        .query_one(&statements.count_names, &[])?
        .try_get(0)?;
    let (admitted, n_unlisted) = admit_new_names(missing, count_of(n_names_held));
    let kinds: Vec<&str> = admitted
        .iter()
        .map(|((kind, _), _)| kind.to_text())
        .collect();
    let names: Vec<&str> = admitted
        .iter()
        .map(|((_, name), _)| name.as_str())
        .collect();
    let counts: Vec<i64> = admitted.iter().map(|(_, n)| db_count(*n)).collect();
    transaction.execute(
        &statements.insert_names,
        &[&kinds, &names, &counts, &now.millis()],
    )?;
    Ok(n_unlisted)
}

impl PostgresStore {
    pub(super) fn problem_log(&self, query: &ProblemQuery) -> Result<ProblemPage, StoreError> {
        self.with_client(|client| {
            let mut transaction = read_snapshot(client)?;
            let rows = transaction
                .query(
                    "SELECT id, at_ms, key_name, outcome, code, field, message, body, body_cut
                     FROM ingest_problems
                     WHERE ($1::bigint IS NULL OR id < $1) AND ($2::text IS NULL OR code = $2)
                       AND ($3::text IS NULL OR outcome = $3)
                     ORDER BY id DESC LIMIT $4",
                    &[
                        &query.before_id,
                        &query.code,
                        &query.outcome.map(ColumnText::to_text),
                        &sql_limit(query.limit),
                    ],
                )?
                .iter()
                .map(|row| {
                    Ok(ProblemRow {
                        id: row.try_get(0)?,
                        at: Timestamp::from_millis(row.try_get(1)?),
                        key_name: row.try_get(2)?,
                        outcome: row.try_get::<_, Text<_>>(3)?.0,
                        code: row.try_get(4)?,
                        field: row.try_get(5)?,
                        message: row.try_get(6)?,
                        body: row.try_get(7)?,
                        body_cut: row.try_get(8)?,
                    })
                })
                .collect::<Result<Vec<_>, postgres::Error>>()?;
            let n_held: i64 = transaction
                .query_one("SELECT count(*) FROM ingest_problems", &[])?
                .try_get(0)?;
            let (n_dropped, _) = log_meta(&mut transaction)?;
            transaction.commit()?;
            Ok(ProblemPage {
                rows,
                n_held: count_of(n_held),
                n_dropped,
            })
        })
    }

    pub(super) fn ignored_names(&self, limit: usize) -> Result<IgnoredNamesPage, StoreError> {
        self.with_client(|client| {
            let mut transaction = read_snapshot(client)?;
            let names = transaction
                .query(
                    "SELECT kind, name, n_messages, first_seen_ms, last_seen_ms FROM ignored_names
                     ORDER BY n_messages DESC, kind, name LIMIT $1",
                    &[&sql_limit(limit)],
                )?
                .iter()
                .map(|row| {
                    Ok(IgnoredNameRow {
                        kind: row.try_get::<_, Text<_>>(0)?.0,
                        name: row.try_get(1)?,
                        n_messages: count_of(row.try_get(2)?),
                        first_seen: Timestamp::from_millis(row.try_get(3)?),
                        last_seen: Timestamp::from_millis(row.try_get(4)?),
                    })
                })
                .collect::<Result<Vec<_>, postgres::Error>>()?;
            let (_, n_unlisted) = log_meta(&mut transaction)?;
            transaction.commit()?;
            Ok(IgnoredNamesPage { names, n_unlisted })
        })
    }
}

/// (entries dropped, ignored messages unlisted) so far.
fn log_meta(client: &mut impl GenericClient) -> Result<(u64, u64), StoreError> {
    let row = client.query_opt(
        "SELECT n_problems_dropped, n_ignored_unlisted FROM ingest_log_meta WHERE id = 1",
        &[],
    )?;
    let Some(row) = row else {
        return Ok((0, 0));
    };
    let dropped: i64 = row.try_get(0)?;
    let unlisted: i64 = row.try_get(1)?;
    Ok((count_of(dropped), count_of(unlisted)))
}
