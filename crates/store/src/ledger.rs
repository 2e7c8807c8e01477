//! The ledger's persistence rules, written once for both backends: what posting a call's
//! entries means (validate, idempotence by id and body hash, reverse once, all or nothing),
//! the canonical body hash, and turning stored rows back into entries. Each backend supplies
//! the statements through [`LedgerTx`] (`sqlite/ledger.rs`, `postgres/ledger.rs`); this module
//! must hold no SQL.
//!
//! Entries and lines are append-only: the schema refuses UPDATE and DELETE on both tables
//! (triggers), and the store never issues either. A revised figure is a reversal plus a new
//! entry, posted in one call and so in one transaction.

use sha2::{Digest, Sha256};

use revloop_core::Timestamp;
use revloop_core::ledger::{
    AccountType, Chart, EntryLink, JournalEntry, LedgerError, Line, RecordedEntry, Retry, Side,
    check_retry, check_reversal, validate_revenue_transaction,
};
use revloop_core::money::Currency;

use crate::StoreError;

/// Most entries one [`crate::Store::post_ledger_entries`] call may post (a revision is two).
pub const LEDGER_POST_ENTRIES_MAX: usize = 64;
/// Most entries (or statement lines) one ledger read returns.
pub const LEDGER_PAGE_MAX: usize = 1_000;

/// What became of one entry of a posting call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PostOutcome {
    /// Written now.
    New(LedgerRow),
    /// Its id was stored before with the same body: nothing written, the stored entry.
    Existing(LedgerRow),
}

impl PostOutcome {
    pub fn row(&self) -> &LedgerRow {
        match self {
            PostOutcome::New(row) | PostOutcome::Existing(row) => row,
        }
    }

    pub fn is_new(&self) -> bool {
        matches!(self, PostOutcome::New(_))
    }
}

/// An entry as stored, with its place in recorded order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerRow {
    /// 1, 2, 3, ... in the order entries were recorded, with no gaps; readers page by it.
    pub seq: i64,
    pub recorded: RecordedEntry,
}

/// A page of entries in recorded order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerQuery {
    /// Only the entries linked to this incident.
    pub incident: Option<i64>,
    /// Only entries recorded after this `seq` (0: from the first).
    pub after_seq: i64,
    /// At most [`LEDGER_PAGE_MAX`].
    pub limit: usize,
}

/// A page of one account's statement, in recorded order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatementQuery {
    pub account: u16,
    /// Only lines of entries recorded after this `seq` (0: from the first).
    pub after_seq: i64,
    /// At most [`LEDGER_PAGE_MAX`] lines.
    pub limit: usize,
}

/// One line of an account statement, with the account's running balance in the line's
/// currency after it (debits minus credits, over every entry up to and including this line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatementLine {
    pub seq: i64,
    pub entry: String,
    /// The line's place in its entry, 0-based.
    pub line: usize,
    pub effective_at: Timestamp,
    pub recorded_at: Timestamp,
    pub description: String,
    pub side: Side,
    pub amount_minor: i64,
    pub currency: Currency,
    pub balance_minor: i128,
}

/// The statements a backend runs inside the posting transaction; see [`post_entries`].
pub(crate) trait LedgerTx {
    /// The stored entry with this id, as of this transaction (it sees its own writes).
    fn entry(&mut self, id: &str) -> Result<Option<LedgerRow>, StoreError>;
    /// The body hash of the entry with this id, if it is stored.
    fn body_hash(&mut self, id: &str) -> Result<Option<String>, StoreError>;
    /// The highest `seq` stored (0 when empty).
    fn last_seq(&mut self) -> Result<i64, StoreError>;
    fn insert(&mut self, row: &NewRow<'_>) -> Result<(), StoreError>;
}

/// One entry on its way into the tables.
pub(crate) struct NewRow<'a> {
    pub entry: &'a JournalEntry,
    pub seq: i64,
    pub body_sha256: String,
    pub currency: Currency,
    pub recorded_at: Timestamp,
}

/// Posts `entries` in order inside the caller's transaction; see
/// [`crate::Store::post_ledger_entries`]. On an `Err` the caller rolls back: nothing of the
/// call is written.
pub(crate) fn post_entries(
    tx: &mut impl LedgerTx,
    chart: &Chart,
    entries: &[JournalEntry],
    now: Timestamp,
) -> Result<Vec<PostOutcome>, StoreError> {
    if entries.len() > LEDGER_POST_ENTRIES_MAX {
        return Err(StoreError::Settings(format!(
            "at most {LEDGER_POST_ENTRIES_MAX} ledger entries per call"
        )));
    }
    let mut outcomes = Vec::with_capacity(entries.len());
    let mut seq = tx.last_seq()?;
    for (index, entry) in entries.iter().enumerate() {
        let rejected = |error: LedgerError| StoreError::Ledger { index, error };
        let hash = body_sha256(entry);
        // A retry first: the same id and body is the stored entry, whatever has changed since
        // (an account closed, the entry reversed), so that a retry always gets one answer.
        // Equal hashes are equal bodies; the rule itself is the core's `check_retry`.
        if let Some(stored_hash) = tx.body_hash(&entry.id)? {
            let stored = tx.entry(&entry.id)?.expect("an entry whose hash was read");
            debug_assert_eq!(
                stored_hash == hash,
                stored.recorded.entry == *entry,
                "the body hash decides as the bodies do"
            );
            match check_retry(Some(&stored.recorded), entry).map_err(rejected)? {
                Retry::Existing(_) => {
                    outcomes.push(PostOutcome::Existing(stored));
                    continue;
                }
                Retry::New => unreachable!("a stored entry is never new"),
            }
        }
        validate_revenue_transaction(chart, entry).map_err(rejected)?;
        if let Some(reversed) = &entry.reverses {
            let original = tx.entry(reversed)?;
            check_reversal(original.as_ref().map(|row| &row.recorded), entry).map_err(rejected)?;
        }
        seq += 1;
        let currency = entry
            .lines
            .first()
            .map(|line| line.currency)
            .expect("a validated entry has lines");
        tx.insert(&NewRow {
            entry,
            seq,
            body_sha256: hash,
            currency,
            recorded_at: now,
        })?;
        outcomes.push(PostOutcome::New(LedgerRow {
            seq,
            recorded: RecordedEntry {
                entry: entry.clone(),
                recorded_at: now,
                reversed_by: None,
            },
        }));
    }
    Ok(outcomes)
}

/// The SHA-256 (hex) of everything an entry says except its id: two posts of one id are the
/// same entry exactly when these are equal. Canonical JSON: object keys sorted, lines in order.
pub fn body_sha256(entry: &JournalEntry) -> String {
    let lines: Vec<serde_json::Value> = entry
        .lines
        .iter()
        .map(|line| {
            serde_json::json!({
                "account": line.account,
                "account_type": line.account_type.map(AccountType::as_str),
                "side": side_text(line.side),
                "amount_minor": line.amount_minor,
                "currency": line.currency.code(),
                "memo": line.memo,
            })
        })
        .collect();
    let body = serde_json::json!({
        "description": entry.description,
        "effective_ms": entry.effective_at.millis(),
        "lines": lines,
        "incident": entry.link.incident,
        "inputs_json": entry.link.inputs_json,
        "reverses": entry.reverses,
    });
    let digest = Sha256::digest(body.to_string().as_bytes());
    digest.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// A side as its column text.
pub(crate) fn side_text(side: Side) -> &'static str {
    match side {
        Side::Debit => "debit",
        Side::Credit => "credit",
    }
}

pub(crate) fn parse_side(text: &str) -> Result<Side, StoreError> {
    match text {
        "debit" => Ok(Side::Debit),
        "credit" => Ok(Side::Credit),
        other => Err(corrupt(format!("ledger_lines.side holds `{other}`"))),
    }
}

pub(crate) fn parse_currency(text: &str) -> Result<Currency, StoreError> {
    Currency::parse(text).map_err(|err| corrupt(format!("ledger_entries.currency: {err}")))
}

pub(crate) fn parse_account(code: i64) -> Result<u16, StoreError> {
    u16::try_from(code).map_err(|_| corrupt(format!("ledger_lines.account holds {code}")))
}

fn corrupt(message: String) -> StoreError {
    StoreError::Io(format!(
        "the ledger tables hold a value revloop never writes: {message}"
    ))
}

/// An entry's columns as read, before its lines are attached.
pub(crate) struct EntryColumns {
    pub seq: i64,
    pub id: String,
    pub description: String,
    pub currency: String,
    pub effective_ms: i64,
    pub recorded_ms: i64,
    pub incident: Option<i64>,
    pub inputs_json: Option<String>,
    pub reverses: Option<String>,
    pub reversed_by: Option<String>,
}

/// A line's columns as read.
pub(crate) struct LineColumns {
    pub seq: i64,
    pub account: i64,
    pub account_type: Option<String>,
    pub side: String,
    pub amount_minor: i64,
    pub memo: Option<String>,
}

/// Entries (in `seq` order) with their lines (in `seq`, then line order) as rows.
pub(crate) fn assemble(
    entries: Vec<EntryColumns>,
    lines: Vec<LineColumns>,
) -> Result<Vec<LedgerRow>, StoreError> {
    let mut lines = lines.into_iter().peekable();
    let mut rows = Vec::with_capacity(entries.len());
    for columns in entries {
        let currency = parse_currency(&columns.currency)?;
        let mut entry_lines = Vec::new();
        while let Some(line) = lines.next_if(|line| line.seq == columns.seq) {
            let account_type =
                match &line.account_type {
                    Some(text) => Some(AccountType::parse(text).ok_or_else(|| {
                        corrupt(format!("ledger_lines.account_type holds `{text}`"))
                    })?),
                    None => None,
                };
            entry_lines.push(Line {
                account: parse_account(line.account)?,
                account_type,
                side: parse_side(&line.side)?,
                amount_minor: line.amount_minor,
                currency,
                memo: line.memo,
            });
        }
        rows.push(LedgerRow {
            seq: columns.seq,
            recorded: RecordedEntry {
                entry: JournalEntry {
                    id: columns.id,
                    description: columns.description,
                    effective_at: Timestamp::from_millis(columns.effective_ms),
                    lines: entry_lines,
                    link: EntryLink {
                        incident: columns.incident,
                        inputs_json: columns.inputs_json,
                    },
                    reverses: columns.reverses,
                },
                recorded_at: Timestamp::from_millis(columns.recorded_ms),
                reversed_by: columns.reversed_by,
            },
        });
    }
    Ok(rows)
}
