//! SQLite ingest problem log: what a group commit adds to it (inside the group's transaction,
//! called from `ingest`), and its reads. It must never open a transaction of its own.

use rusqlite::{OptionalExtension, Transaction, params};

use revloop_core::Timestamp;

use super::{SqliteStore, Text, sql_limit};
use crate::kinds::ColumnText;
use crate::problems::{
    PROBLEM_LOG_ENTRIES_MAX, admit_new_names, count_of, db_count, problems_kept, tally_ignored,
};
use crate::{
    IgnoredNameRow, IgnoredNamesPage, IngestGroup, ProblemPage, ProblemQuery, ProblemRow,
    StoreError,
};

/// Adds the group's problems and its new ignored messages to the log, in the group's
/// transaction; `is_new` says which items were new in it.
pub(super) fn write_problem_log(
    transaction: &Transaction,
    group: &IngestGroup,
    is_new: &[bool],
) -> Result<(), StoreError> {
    let (kept, mut n_dropped) = problems_kept(&group.problems);
    if !kept.is_empty() {
        let mut insert = transaction.prepare_cached(
            "INSERT INTO ingest_problems
                 (at_ms, key_name, outcome, code, field, message, body, body_cut)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?;
        for problem in kept.iter() {
            insert.execute(params![
                problem.at.millis(),
                problem.key_name,
                problem.outcome.to_text(),
                problem.code,
                problem.field,
                problem.message,
                problem.body,
                problem.body_cut,
            ])?;
        }
        // One writer and AUTOINCREMENT: ids are consecutive, so the newest entries are the
        // last `PROBLEM_LOG_ENTRIES_MAX` ids.
        let oldest_kept = transaction.last_insert_rowid() - PROBLEM_LOG_ENTRIES_MAX as i64 + 1;
        n_dropped += transaction
            .prepare_cached("DELETE FROM ingest_problems WHERE id < ?1")?
            .execute([oldest_kept])? as u64;
    }
    let tally = tally_ignored(&group.items, is_new);
    let mut n_unlisted = 0;
    if !tally.is_empty() {
        let now_ms = group.now.millis();
        let mut update = transaction.prepare_cached(
            "UPDATE ignored_names SET n_messages = n_messages + ?3,
                 last_seen_ms = MAX(last_seen_ms, ?4)
             WHERE kind = ?1 AND name = ?2",
        )?;
        let mut missing = Vec::new();
        for ((kind, name), n) in tally {
            if update.execute(params![kind.to_text(), name, db_count(n), now_ms])? == 0 {
                missing.push(((kind, name), n));
            }
        }
        if !missing.is_empty() {
            let n_names_held: i64 =
                transaction
                    .query_row("SELECT COUNT(*) FROM ignored_names", [], |row| row.get(0))?;
            let (admitted, unlisted) = admit_new_names(missing, count_of(n_names_held));
            n_unlisted = unlisted;
            let mut insert = transaction.prepare_cached(
                "INSERT INTO ignored_names (kind, name, n_messages, first_seen_ms, last_seen_ms)
                 VALUES (?1, ?2, ?3, ?4, ?4)",
            )?;
            for ((kind, name), n) in admitted {
                insert.execute(params![kind.to_text(), name, db_count(n), now_ms])?;
            }
        }
    }
    if n_dropped > 0 || n_unlisted > 0 {
        transaction
            .prepare_cached(
                "UPDATE ingest_log_meta SET n_problems_dropped = n_problems_dropped + ?1,
                     n_ignored_unlisted = n_ignored_unlisted + ?2
                 WHERE id = 1",
            )?
            .execute(params![db_count(n_dropped), db_count(n_unlisted)])?;
    }
    Ok(())
}

impl SqliteStore {
    pub(super) fn problem_log(&self, query: &ProblemQuery) -> Result<ProblemPage, StoreError> {
        self.with_reader(|connection| {
            // One read transaction, so the page and the figures agree.
            let transaction = connection.unchecked_transaction()?;
            let rows = transaction
                .prepare_cached(
                    "SELECT id, at_ms, key_name, outcome, code, field, message, body, body_cut
                     FROM ingest_problems
                     WHERE (?1 IS NULL OR id < ?1) AND (?2 IS NULL OR code = ?2)
                       AND (?3 IS NULL OR outcome = ?3)
                     ORDER BY id DESC LIMIT ?4",
                )?
                .query_map(
                    params![
                        query.before_id,
                        query.code,
                        query.outcome.map(ColumnText::to_text),
                        sql_limit(query.limit)
                    ],
                    |row| {
                        Ok(ProblemRow {
                            id: row.get(0)?,
                            at: Timestamp::from_millis(row.get(1)?),
                            key_name: row.get(2)?,
                            outcome: row.get::<_, Text<_>>(3)?.0,
                            code: row.get(4)?,
                            field: row.get(5)?,
                            message: row.get(6)?,
                            body: row.get(7)?,
                            body_cut: row.get(8)?,
                        })
                    },
                )?
                .collect::<Result<Vec<_>, _>>()?;
            let n_held: i64 =
                transaction
                    .query_row("SELECT COUNT(*) FROM ingest_problems", [], |row| row.get(0))?;
            let n_dropped = log_meta(&transaction)?.0;
            Ok(ProblemPage {
                rows,
                n_held: count_of(n_held),
                n_dropped,
            })
        })
    }

    pub(super) fn ignored_names(&self, limit: usize) -> Result<IgnoredNamesPage, StoreError> {
        self.with_reader(|connection| {
            let transaction = connection.unchecked_transaction()?;
            let names = transaction
                .prepare_cached(
                    "SELECT kind, name, n_messages, first_seen_ms, last_seen_ms FROM ignored_names
                     ORDER BY n_messages DESC, kind, name LIMIT ?1",
                )?
                .query_map([sql_limit(limit)], |row| {
                    Ok(IgnoredNameRow {
                        kind: row.get::<_, Text<_>>(0)?.0,
                        name: row.get(1)?,
                        n_messages: count_of(row.get(2)?),
                        first_seen: Timestamp::from_millis(row.get(3)?),
                        last_seen: Timestamp::from_millis(row.get(4)?),
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            let n_unlisted = log_meta(&transaction)?.1;
            Ok(IgnoredNamesPage { names, n_unlisted })
        })
    }
}

/// (entries dropped, ignored messages unlisted) so far.
fn log_meta(transaction: &Transaction) -> Result<(u64, u64), StoreError> {
    let meta = transaction
        .query_row(
            "SELECT n_problems_dropped, n_ignored_unlisted FROM ingest_log_meta WHERE id = 1",
            [],
            |row| Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?)),
        )
        .optional()?;
    let (dropped, unlisted) = meta.unwrap_or_default();
    Ok((count_of(dropped), count_of(unlisted)))
}
