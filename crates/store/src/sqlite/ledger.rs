//! SQLite ledger statements: post a call's entries in one `IMMEDIATE` transaction on the writer
//! connection, and read entries, the trial balance and statements in one snapshot each. The
//! rules are `ledger`'s; this file only runs them.

use rusqlite::{OptionalExtension, Transaction, TransactionBehavior, params};

use revloop_core::Timestamp;
use revloop_core::ledger::{AccountType, Balance, Chart, JournalEntry};

use super::{SqliteStore, sql_limit};
use crate::StoreError;
use crate::ledger::{
    EntryColumns, LedgerQuery, LedgerRow, LedgerTx, LineColumns, NewRow, PostOutcome,
    StatementLine, StatementQuery, assemble, parse_account, parse_currency, parse_side,
    post_entries, side_text,
};

/// The columns [`entry_columns`] reads, in its order, of `ledger_entries e`.
const ENTRY_COLUMNS: &str = "e.seq, e.id, e.description, e.currency, e.effective_ms, \
     e.recorded_ms, e.incident, e.inputs_json, e.reverses, \
     (SELECT r.id FROM ledger_entries r WHERE r.reverses = e.id)";

/// The columns [`line_columns`] reads, in its order, of `ledger_lines l`.
const LINE_COLUMNS: &str = "l.seq, l.account, l.account_type, l.side, l.amount_minor, l.memo";

impl SqliteStore {
    pub(super) fn post_ledger_entries(
        &self,
        chart: &Chart,
        entries: &[JournalEntry],
        now: Timestamp,
    ) -> Result<Vec<PostOutcome>, StoreError> {
        let mut writer = self.writer.lock().expect("writer lock");
        // IMMEDIATE: the write lock before the first read, so that no other connection posts
        // between a check (an id free, an entry not yet reversed) and the write it allows.
        let transaction = writer
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let outcomes = post_entries(&mut Tx(&transaction), chart, entries, now)?;
        transaction.commit()?;
        Ok(outcomes)
    }

    pub(super) fn ledger_entry(&self, id: &str) -> Result<Option<LedgerRow>, StoreError> {
        self.with_reader(|connection| {
            let snapshot = connection.unchecked_transaction()?;
            entry_by_id(&snapshot, id)
        })
    }

    pub(super) fn ledger_entries(&self, query: &LedgerQuery) -> Result<Vec<LedgerRow>, StoreError> {
        self.with_reader(|connection| {
            let snapshot = connection.unchecked_transaction()?;
            let entries: Vec<EntryColumns> = snapshot
                .prepare_cached(&format!(
                    "SELECT {ENTRY_COLUMNS} FROM ledger_entries e
                     WHERE e.seq > ?1 AND (?2 IS NULL OR e.incident = ?2)
                     ORDER BY e.seq LIMIT ?3"
                ))?
                .query_map(
                    params![query.after_seq, query.incident, sql_limit(query.limit)],
                    entry_columns,
                )?
                .collect::<Result<_, _>>()?;
            let (Some(first), Some(last)) = (entries.first(), entries.last()) else {
                return Ok(Vec::new());
            };
            let lines = lines_between(&snapshot, first.seq, last.seq, query.incident)?;
            assemble(entries, lines)
        })
    }

    pub(super) fn trial_balance(&self) -> Result<Vec<Balance>, StoreError> {
        self.with_reader(|connection| {
            // Summed in two halves (see `split_sum`), so that no total can overflow.
            let mut statement = connection.prepare_cached(
                "SELECT l.account, e.currency,
                        SUM(CASE WHEN l.side = 'debit' THEN l.amount_minor >> 32 ELSE 0 END),
                        SUM(CASE WHEN l.side = 'debit' THEN l.amount_minor & 4294967295 ELSE 0 END),
                        SUM(CASE WHEN l.side = 'credit' THEN l.amount_minor >> 32 ELSE 0 END),
                        SUM(CASE WHEN l.side = 'credit' THEN l.amount_minor & 4294967295 ELSE 0 END)
                 FROM ledger_lines l JOIN ledger_entries e ON e.id = l.entry
                 GROUP BY l.account, e.currency ORDER BY l.account, e.currency",
            )?;
            let rows = statement.query_map([], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, String>(1)?,
                    split_sum(row.get(2)?, row.get(3)?),
                    split_sum(row.get(4)?, row.get(5)?),
                ))
            })?;
            let mut balances = Vec::new();
            for row in rows {
                let (account, currency, debits, credits) = row?;
                balances.push(Balance {
                    account: parse_account(account)?,
                    currency: parse_currency(&currency)?,
                    debits,
                    credits,
                });
            }
            Ok(balances)
        })
    }

    pub(super) fn account_statement(
        &self,
        query: &StatementQuery,
    ) -> Result<Vec<StatementLine>, StoreError> {
        self.with_reader(|connection| {
            // The running balance is summed over the account's whole history in the window,
            // then the page is cut from it.
            let mut statement = connection.prepare_cached(
                "SELECT * FROM (
                     SELECT l.seq, l.entry, l.line, e.effective_ms, e.recorded_ms, e.description,
                            l.side, l.amount_minor, e.currency,
                            SUM(CASE WHEN l.side = 'debit' THEN l.amount_minor >> 32
                                     ELSE -(l.amount_minor >> 32) END)
                                OVER running,
                            SUM(CASE WHEN l.side = 'debit' THEN l.amount_minor & 4294967295
                                     ELSE -(l.amount_minor & 4294967295) END)
                                OVER running
                     FROM ledger_lines l JOIN ledger_entries e ON e.id = l.entry
                     WHERE l.account = ?1
                     WINDOW running AS (PARTITION BY e.currency ORDER BY l.seq, l.line
                                        ROWS UNBOUNDED PRECEDING)
                 ) WHERE seq > ?2 ORDER BY seq, line LIMIT ?3",
            )?;
            let rows = statement.query_map(
                params![
                    i64::from(query.account),
                    query.after_seq,
                    sql_limit(query.limit)
                ],
                |row| {
                    Ok((
                        (
                            row.get::<_, i64>(0)?,
                            row.get::<_, String>(1)?,
                            row.get::<_, i64>(2)?,
                            row.get::<_, i64>(3)?,
                            row.get::<_, i64>(4)?,
                        ),
                        (
                            row.get::<_, String>(5)?,
                            row.get::<_, String>(6)?,
                            row.get::<_, i64>(7)?,
                            row.get::<_, String>(8)?,
                            split_sum(row.get(9)?, row.get(10)?),
                        ),
                    ))
                },
            )?;
            let mut lines = Vec::new();
            for row in rows {
                let ((seq, entry, line, effective_ms, recorded_ms), rest) = row?;
                let (description, side, amount_minor, currency, balance) = rest;
                lines.push(StatementLine {
                    seq,
                    entry,
                    line: usize::try_from(line).unwrap_or(0),
                    effective_at: Timestamp::from_millis(effective_ms),
                    recorded_at: Timestamp::from_millis(recorded_ms),
                    description,
                    side: parse_side(&side)?,
                    amount_minor,
                    currency: parse_currency(&currency)?,
                    balance_minor: balance,
                });
            }
            Ok(lines)
        })
    }
}

/// A sum taken in two halves, the high 32 bits and the low 32 bits of each (positive) amount,
/// put back together. SQLite sums integers in 64 bits and fails on overflow; each half's sum
/// stays within 64 bits for up to 2^31 lines, and the whole is exact in 128.
fn split_sum(high: i64, low: i64) -> i128 {
    (i128::from(high) << 32) + i128::from(low)
}

/// The posting transaction's statements.
struct Tx<'a, 'c>(&'a Transaction<'c>);

impl LedgerTx for Tx<'_, '_> {
    fn entry(&mut self, id: &str) -> Result<Option<LedgerRow>, StoreError> {
        entry_by_id(self.0, id)
    }

    fn body_hash(&mut self, id: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .0
            .prepare_cached("SELECT body_sha256 FROM ledger_entries WHERE id = ?1")?
            .query_row([id], |row| row.get(0))
            .optional()?)
    }

    fn last_seq(&mut self) -> Result<i64, StoreError> {
        Ok(self
            .0
            .prepare_cached("SELECT COALESCE(MAX(seq), 0) FROM ledger_entries")?
            .query_row([], |row| row.get(0))?)
    }

    fn insert(&mut self, row: &NewRow<'_>) -> Result<(), StoreError> {
        let entry = row.entry;
        self.0
            .prepare_cached(
                "INSERT INTO ledger_entries (id, seq, body_sha256, description, currency,
                     effective_ms, recorded_ms, incident, inputs_json, reverses)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )?
            .execute(params![
                entry.id,
                row.seq,
                row.body_sha256,
                entry.description,
                row.currency.code(),
                entry.effective_at.millis(),
                row.recorded_at.millis(),
                entry.link.incident,
                entry.link.inputs_json,
                entry.reverses,
            ])?;
        let mut insert_line = self.0.prepare_cached(
            "INSERT INTO ledger_lines (entry, line, seq, account, account_type, side,
                 amount_minor, memo)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?;
        for (index, line) in entry.lines.iter().enumerate() {
            insert_line.execute(params![
                entry.id,
                index as i64,
                row.seq,
                i64::from(line.account),
                line.account_type.map(AccountType::as_str),
                side_text(line.side),
                line.amount_minor,
                line.memo,
            ])?;
        }
        Ok(())
    }
}

fn entry_by_id(
    connection: &rusqlite::Connection,
    id: &str,
) -> Result<Option<LedgerRow>, StoreError> {
    let entry = connection
        .prepare_cached(&format!(
            "SELECT {ENTRY_COLUMNS} FROM ledger_entries e WHERE e.id = ?1"
        ))?
        .query_row([id], entry_columns)
        .optional()?;
    let Some(entry) = entry else {
        return Ok(None);
    };
    let seq = entry.seq;
    let lines = lines_between(connection, seq, seq, None)?;
    Ok(assemble(vec![entry], lines)?.pop())
}

/// The lines of the entries with `seq` in `first..=last` (of one incident, where given), in
/// order.
fn lines_between(
    connection: &rusqlite::Connection,
    first: i64,
    last: i64,
    incident: Option<i64>,
) -> Result<Vec<LineColumns>, StoreError> {
    let lines = connection
        .prepare_cached(&format!(
            "SELECT {LINE_COLUMNS} FROM ledger_lines l
             WHERE l.seq BETWEEN ?1 AND ?2
               AND (?3 IS NULL OR l.seq IN (
                   SELECT seq FROM ledger_entries
                   WHERE incident = ?3 AND seq BETWEEN ?1 AND ?2))
             ORDER BY l.seq, l.line"
        ))?
        .query_map(params![first, last, incident], line_columns)?
        .collect::<Result<_, _>>()?;
    Ok(lines)
}

fn entry_columns(row: &rusqlite::Row) -> rusqlite::Result<EntryColumns> {
    Ok(EntryColumns {
        seq: row.get(0)?,
        id: row.get(1)?,
        description: row.get(2)?,
        currency: row.get(3)?,
        effective_ms: row.get(4)?,
        recorded_ms: row.get(5)?,
        incident: row.get(6)?,
        inputs_json: row.get(7)?,
        reverses: row.get(8)?,
        reversed_by: row.get(9)?,
    })
}

fn line_columns(row: &rusqlite::Row) -> rusqlite::Result<LineColumns> {
    Ok(LineColumns {
        seq: row.get(0)?,
        account: row.get(1)?,
        account_type: row.get(2)?,
        side: row.get(3)?,
        amount_minor: row.get(4)?,
        memo: row.get(5)?,
    })
}
