//! PostgreSQL ledger statements: post a call's entries in one transaction on a pooled
//! connection, and read entries, the trial balance and statements in one snapshot each. The
//! rules are `ledger`'s; this file only runs them.
//!
//! Several nodes post at once. Every posting transaction first takes the ledger's
//! transaction-level advisory lock, so posts are serialized across nodes: two nodes posting
//! the same id book it once (the second waits, then finds the first's entry and compares
//! bodies), an entry is reversed once, and `seq` is drawn in commit order, so a reader paging
//! by it never skips an entry committed later with a lower one. The primary key and the UNIQUE
//! `reverses` hold the same rules in the schema, should anything else write. Postings are rare
//! next to ingest (an incident's estimate every few minutes), so one at a time costs nothing.

use postgres::{IsolationLevel, Transaction};

use revloop_core::Timestamp;
use revloop_core::ledger::{AccountType, Balance, Chart, JournalEntry};

use super::{PostgresStore, read_snapshot, sql_limit};
use crate::StoreError;
use crate::ledger::{
    EntryColumns, LedgerQuery, LedgerRow, LedgerTx, LineColumns, NewRow, PostOutcome,
    StatementLine, StatementQuery, assemble, parse_account, parse_currency, parse_side,
    post_entries, side_text,
};

/// The ledger's advisory lock key; see the module docs.
const LOCK_LEDGER: i64 = 0x7265_766c_6f6f_7004;

/// The columns [`entry_columns`] reads, in its order, of `ledger_entries e`.
const ENTRY_COLUMNS: &str = "e.seq, e.id, e.description, e.currency, e.effective_ms, \
     e.recorded_ms, e.incident, e.inputs_json, e.reverses, \
     (SELECT r.id FROM ledger_entries r WHERE r.reverses = e.id)";

/// The columns [`line_columns`] reads, in its order, of `ledger_lines l`.
const LINE_COLUMNS: &str =
    "l.seq, l.account::BIGINT, l.account_type, l.side, l.amount_minor, l.memo";

impl PostgresStore {
    pub(super) fn post_ledger_entries(
        &self,
        chart: &Chart,
        entries: &[JournalEntry],
        now: Timestamp,
    ) -> Result<Vec<PostOutcome>, StoreError> {
        self.with_client(|client| {
            // READ COMMITTED: after waiting for the lock, each statement sees what the node
            // that held it committed.
            let mut transaction = client
                .build_transaction()
                .isolation_level(IsolationLevel::ReadCommitted)
                .start()?;
            transaction.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_LEDGER])?;
            let outcomes = post_entries(&mut Tx(&mut transaction), chart, entries, now)?;
            transaction.commit()?;
            Ok(outcomes)
        })
    }

    pub(super) fn ledger_entry(&self, id: &str) -> Result<Option<LedgerRow>, StoreError> {
        self.with_client(|client| {
            let mut snapshot = read_snapshot(client)?;
            entry_by_id(&mut snapshot, id)
        })
    }

    pub(super) fn ledger_entries(&self, query: &LedgerQuery) -> Result<Vec<LedgerRow>, StoreError> {
        self.with_client(|client| {
            let mut snapshot = read_snapshot(client)?;
            let entries: Vec<EntryColumns> = snapshot
                .query(
                    &format!(
                        "SELECT {ENTRY_COLUMNS} FROM ledger_entries e
                         WHERE e.seq > $1 AND ($2::BIGINT IS NULL OR e.incident = $2)
                         ORDER BY e.seq LIMIT $3"
                    ),
                    &[&query.after_seq, &query.incident, &sql_limit(query.limit)],
                )?
                .iter()
                .map(entry_columns)
                .collect::<Result<_, _>>()?;
            let (Some(first), Some(last)) = (entries.first(), entries.last()) else {
                return Ok(Vec::new());
            };
            let (first, last) = (first.seq, last.seq);
            let lines = lines_between(&mut snapshot, first, last, query.incident)?;
            assemble(entries, lines)
        })
    }

    pub(super) fn trial_balance(&self) -> Result<Vec<Balance>, StoreError> {
        self.with_client(|client| {
            // SUM of BIGINT is NUMERIC: read as text, so no total can overflow on the way.
            let rows = client.query(
                "SELECT l.account::BIGINT, e.currency,
                        SUM(CASE WHEN l.side = 'debit' THEN l.amount_minor ELSE 0 END)::TEXT,
                        SUM(CASE WHEN l.side = 'credit' THEN l.amount_minor ELSE 0 END)::TEXT
                 FROM ledger_lines l JOIN ledger_entries e ON e.id = l.entry
                 GROUP BY l.account, e.currency ORDER BY l.account, e.currency",
                &[],
            )?;
            rows.iter()
                .map(|row| {
                    Ok(Balance {
                        account: parse_account(row.try_get(0)?)?,
                        currency: parse_currency(row.try_get(1)?)?,
                        debits: parse_sum(row.try_get(2)?)?,
                        credits: parse_sum(row.try_get(3)?)?,
                    })
                })
                .collect()
        })
    }

    pub(super) fn account_statement(
        &self,
        query: &StatementQuery,
    ) -> Result<Vec<StatementLine>, StoreError> {
        self.with_client(|client| {
            let rows = client.query(
                "SELECT * FROM (
                     SELECT l.seq, l.entry, l.line::BIGINT, e.effective_ms, e.recorded_ms,
                            e.description, l.side, l.amount_minor, e.currency,
                            (SUM(CASE WHEN l.side = 'debit' THEN l.amount_minor
                                      ELSE -l.amount_minor END)
                                OVER (PARTITION BY e.currency ORDER BY l.seq, l.line
                                      ROWS UNBOUNDED PRECEDING))::TEXT
                     FROM ledger_lines l JOIN ledger_entries e ON e.id = l.entry
                     WHERE l.account = $1
                 ) AS statement WHERE seq > $2 ORDER BY seq, line LIMIT $3",
                &[
                    &i32::from(query.account),
                    &query.after_seq,
                    &sql_limit(query.limit),
                ],
            )?;
            rows.iter()
                .map(|row| {
                    let line: i64 = row.try_get(2)?;
                    Ok(StatementLine {
                        seq: row.try_get(0)?,
                        entry: row.try_get(1)?,
                        line: usize::try_from(line).unwrap_or(0),
                        effective_at: Timestamp::from_millis(row.try_get(3)?),
                        recorded_at: Timestamp::from_millis(row.try_get(4)?),
                        description: row.try_get(5)?,
                        side: parse_side(row.try_get(6)?)?,
                        amount_minor: row.try_get(7)?,
                        currency: parse_currency(row.try_get(8)?)?,
                        balance_minor: parse_sum(row.try_get(9)?)?,
                    })
                })
                .collect()
        })
    }
}

/// A NUMERIC sum as text, into an `i128`.
fn parse_sum(text: Option<&str>) -> Result<i128, StoreError> {
    let text = text.unwrap_or("0");
    text.parse()
        .map_err(|_| StoreError::Io(format!("a ledger sum `{text}` is not an integer")))
}

/// The posting transaction's statements.
struct Tx<'a, 'c>(&'a mut Transaction<'c>);

impl LedgerTx for Tx<'_, '_> {
    fn entry(&mut self, id: &str) -> Result<Option<LedgerRow>, StoreError> {
        entry_by_id(self.0, id)
    }

    fn body_hash(&mut self, id: &str) -> Result<Option<String>, StoreError> {
        let row = self.0.query_opt(
            "SELECT body_sha256 FROM ledger_entries WHERE id = $1",
            &[&id],
        )?;
        Ok(row.map(|row| row.try_get(0)).transpose()?)
    }

    fn last_seq(&mut self) -> Result<i64, StoreError> {
        Ok(self
            .0
            .query_one("SELECT COALESCE(MAX(seq), 0) FROM ledger_entries", &[])?
            .try_get(0)?)
    }

    fn insert(&mut self, row: &NewRow<'_>) -> Result<(), StoreError> {
        let entry = row.entry;
        self.0.execute(
            "INSERT INTO ledger_entries (id, seq, body_sha256, description, currency,
                 effective_ms, recorded_ms, incident, inputs_json, reverses)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            &[
                &entry.id,
                &row.seq,
                &row.body_sha256,
                &entry.description,
                &row.currency.code(),
                &entry.effective_at.millis(),
                &row.recorded_at.millis(),
                &entry.link.incident,
                &entry.link.inputs_json,
                &entry.reverses,
            ],
        )?;
        let insert_line = self.0.prepare(
            "INSERT INTO ledger_lines (entry, line, seq, account, account_type, side,
                 amount_minor, memo)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )?;
        for (index, line) in entry.lines.iter().enumerate() {
            let index = i32::try_from(index).expect("an entry has few lines");
            self.0.execute(
                &insert_line,
                &[
                    &entry.id,
                    &index,
                    &row.seq,
                    &i32::from(line.account),
                    &line.account_type.map(AccountType::as_str),
                    &side_text(line.side),
                    &line.amount_minor,
                    &line.memo,
                ],
            )?;
        }
        Ok(())
    }
}

fn entry_by_id(
    transaction: &mut Transaction<'_>,
    id: &str,
) -> Result<Option<LedgerRow>, StoreError> {
    let entry = transaction.query_opt(
        &format!("SELECT {ENTRY_COLUMNS} FROM ledger_entries e WHERE e.id = $1"),
        &[&id],
    )?;
    let Some(entry) = entry.as_ref().map(entry_columns).transpose()? else {
        return Ok(None);
    };
    let seq = entry.seq;
    let lines = lines_between(transaction, seq, seq, None)?;
    Ok(assemble(vec![entry], lines)?.pop())
}

/// The lines of the entries with `seq` in `first..=last` (of one incident, where given), in
/// order.
fn lines_between(
    transaction: &mut Transaction<'_>,
    first: i64,
    last: i64,
    incident: Option<i64>,
) -> Result<Vec<LineColumns>, StoreError> {
    transaction
        .query(
            &format!(
                "SELECT {LINE_COLUMNS} FROM ledger_lines l
                 WHERE l.seq BETWEEN $1 AND $2
                   AND ($3::BIGINT IS NULL OR l.seq IN (
                       SELECT seq FROM ledger_entries
                       WHERE incident = $3 AND seq BETWEEN $1 AND $2))
                 ORDER BY l.seq, l.line"
            ),
            &[&first, &last, &incident],
        )?
        .iter()
        .map(line_columns)
        .collect()
}

fn entry_columns(row: &postgres::Row) -> Result<EntryColumns, StoreError> {
    Ok(EntryColumns {
        seq: row.try_get(0)?,
        id: row.try_get(1)?,
        description: row.try_get(2)?,
        currency: row.try_get(3)?,
        effective_ms: row.try_get(4)?,
        recorded_ms: row.try_get(5)?,
        incident: row.try_get(6)?,
        inputs_json: row.try_get(7)?,
        reverses: row.try_get(8)?,
        reversed_by: row.try_get(9)?,
    })
}

fn line_columns(row: &postgres::Row) -> Result<LineColumns, StoreError> {
    Ok(LineColumns {
        seq: row.try_get(0)?,
        account: row.try_get(1)?,
        account_type: row.try_get(2)?,
        side: row.try_get(3)?,
        amount_minor: row.try_get(4)?,
        memo: row.try_get(5)?,
    })
}
