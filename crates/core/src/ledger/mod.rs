//! The double-entry ledger's rules (issue 13): the chart of accounts, journal entries and the
//! one validation every posting path goes through, [`validate_revenue_transaction`]; the trial
//! balance, the incident lifecycle as entries ([`plan_booking`]) and the exports.
//! docs/ledger.md explains the chart, the double entries and the errors.
//!
//! The types here are the interface between the rules and `store`/`server` (persistence,
//! HTTP, CLI), which keep the entries and never edit or delete one: a change is a reversal
//! plus a new entry.
//!
//! Pure: no IO, no clock. Amounts are integer minor units (`i64`) of one currency per entry;
//! sums are checked, and the trial balance sums in `i128`.

use crate::money::Currency;
use crate::time::Timestamp;

mod balance;
mod booking;
mod chart;
mod export;
mod validate;

pub use balance::{StatementLine, imbalance_per_currency, statement, trial_balance};
pub use booking::{BookingId, ESTIMATE_REVISE_EVERY, plan_booking};
pub use chart::{
    ACCOUNT_CODE_MAX, ACCOUNT_CODE_MIN, ACCOUNT_NAME_BYTES_MAX, ACCOUNTS_MAX, Account, AccountType,
    BookingAccounts, Chart,
};
pub use export::{
    AccountNames, CSV_COLUMNS, Exporter, beancount_account, decimal_units, export_entry,
    export_header, hledger_account,
};
pub use validate::{
    LedgerError, Retry, check_retry, check_reversal, is_valid_entry_id, reversal_of, side_sums,
    validate_revenue_transaction,
};

/// Most lines one journal entry may have.
pub const ENTRY_LINES_MAX: usize = 64;
/// Longest description, in bytes.
pub const DESCRIPTION_BYTES_MAX: usize = 512;
/// Longest entry id, in bytes (ids are client-supplied or deterministic, e.g. `inc-42-est-3`).
pub const ENTRY_ID_BYTES_MAX: usize = 128;
/// Longest memo on one line, in bytes.
pub const MEMO_BYTES_MAX: usize = 256;
/// Longest impact-inputs text ([`EntryLink::inputs_json`]), in bytes.
pub const INPUTS_BYTES_MAX: usize = 16 * 1024;
/// The latest effective time an entry may have: 9999-12-31T23:59:59.999Z, so that every date
/// is four digits in every export. The earliest is the Unix epoch.
pub const EFFECTIVE_AT_MAX: Timestamp = Timestamp::from_millis(253_402_300_799_999);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    Debit,
    Credit,
}

impl Side {
    pub fn opposite(self) -> Side {
        match self {
            Side::Debit => Side::Credit,
            Side::Credit => Side::Debit,
        }
    }

    /// `debit` or `credit`, as the wire, the store and the exports spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Debit => "debit",
            Side::Credit => "credit",
        }
    }

    pub fn parse(text: &str) -> Option<Side> {
        [Side::Debit, Side::Credit]
            .into_iter()
            .find(|side| side.as_str() == text)
    }
}

/// One line: a debit or a credit of a positive amount to one account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub account: u16,
    /// When the sender states the type (the runbook's `accountType`), it must match the
    /// code's range and the chart.
    pub account_type: Option<AccountType>,
    pub side: Side,
    /// Minor units of the entry's currency; must be positive.
    pub amount_minor: i64,
    pub currency: Currency,
    pub memo: Option<String>,
}

/// What links an entry to an incident and to the impact inputs it was computed from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EntryLink {
    pub incident: Option<i64>,
    /// The impact inputs as canonical JSON text (so a person can redo the arithmetic).
    pub inputs_json: Option<String>,
}

/// A journal entry as proposed (before it is recorded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalEntry {
    pub id: String,
    pub description: String,
    pub effective_at: Timestamp,
    pub lines: Vec<Line>,
    pub link: EntryLink,
    /// The entry this one reverses, if it is a reversal.
    pub reverses: Option<String>,
}

/// An entry as the ledger holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedEntry {
    pub entry: JournalEntry,
    pub recorded_at: Timestamp,
    /// The id of the entry that reversed this one, once it has been reversed.
    pub reversed_by: Option<String>,
}

/// One account's totals in one currency. Sums are `i128` so that no sequence of valid
/// entries can overflow them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Balance {
    pub account: u16,
    pub currency: Currency,
    pub debits: i128,
    pub credits: i128,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    Beancount,
    Hledger,
    Csv,
    JsonLines,
}

/// What the incident lifecycle books (`ledger::booking`): an incident's loss figure as the
/// impact estimate gives it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LossFigure {
    pub incident: i64,
    pub funnel: String,
    pub stage: String,
    pub segment: Option<(String, String)>,
    /// The estimated loss so far, in the shop's currency; zero or positive.
    pub amount: crate::money::Money,
    /// The impact inputs as canonical JSON text.
    pub inputs_json: String,
}

/// Where an incident is in its life, as far as the books care.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BookingEvent {
    /// Open (or reopened): the estimate so far.
    Estimate(LossFigure),
    /// Resolved: the final figure.
    Final(LossFigure),
    /// Resolved by a responder as a false alarm: every estimate is reversed.
    FalseAlarm { incident: i64 },
}

#[cfg(test)]
mod tests;
