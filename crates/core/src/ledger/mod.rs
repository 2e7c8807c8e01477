//! The double-entry ledger's rules (issue 13): the chart of accounts, journal entries and the
//! one validation every posting path goes through, [`validate_revenue_transaction`].
//!
//! CONTRACT SKELETON written by the lead so that two engineers can work in parallel: the
//! types and signatures below are the agreed interface between `core::ledger` (its rules) and
//! `store`/`server` (persistence, HTTP, CLI). Field names may be extended (add, do not rename)
//! by the core engineer; every `todo!()` must be gone before this lands.
//!
//! Pure: no IO, no clock. Amounts are integer minor units (`i64`) of one currency per entry.

use crate::money::Currency;
use crate::time::Timestamp;

/// Most lines one journal entry may have.
pub const ENTRY_LINES_MAX: usize = 64;
/// Longest description, in bytes.
pub const DESCRIPTION_BYTES_MAX: usize = 512;
/// Longest entry id, in bytes (ids are client-supplied or deterministic, e.g. `inc-42-est-3`).
pub const ENTRY_ID_BYTES_MAX: usize = 128;

/// The five account types. Codes are four digits whose first digit says the type:
/// 1 asset, 2 liability, 3 equity, 4 revenue, 5–9 expense (6200 is the runbook's Lost Revenue
/// Expense).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AccountType {
    Asset,
    Liability,
    Equity,
    Revenue,
    Expense,
}

impl AccountType {
    /// `ASSET`, `LIABILITY`, `EQUITY`, `REVENUE`, `EXPENSE`: the runbook's spelling, used on the
    /// wire, in the store and in exports.
    pub fn as_str(self) -> &'static str {
        match self {
            AccountType::Asset => "ASSET",
            AccountType::Liability => "LIABILITY",
            AccountType::Equity => "EQUITY",
            AccountType::Revenue => "REVENUE",
            AccountType::Expense => "EXPENSE",
        }
    }

    pub fn parse(text: &str) -> Option<AccountType> {
        todo!("{text}")
    }

    /// The type a four-digit code's range belongs to; `None` for a code outside 1000..=9999.
    pub fn of_code(code: u16) -> Option<AccountType> {
        todo!("{code}")
    }
}

impl std::fmt::Display for AccountType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub code: u16,
    pub name: String,
    pub account_type: AccountType,
    /// A closed account takes no new postings; its history stays.
    pub closed: bool,
}

/// The chart of accounts: the runbook's seed ([`Chart::runbook`]) or the config's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chart {
    pub accounts: Vec<Account>,
}

impl Chart {
    /// The seed the runbook implies: 6200 Lost Revenue Expense, an accrued-estimate liability,
    /// a recovered-revenue account and an offset for finalised estimates.
    pub fn runbook() -> Chart {
        todo!()
    }

    pub fn account(&self, code: u16) -> Option<&Account> {
        self.accounts.iter().find(|account| account.code == code)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    Debit,
    Credit,
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

/// Why an entry is refused. Every rejection is one of these; nothing is posted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    #[error("an entry needs at least two lines")]
    TooFewLines,
    #[error("debits {debits} and credits {credits} differ")]
    Unbalanced { debits: i64, credits: i64 },
    #[error("one entry holds one currency; found {first} and {other}")]
    MixedCurrencies { first: Currency, other: Currency },
    #[error("account {0} is not in the chart")]
    UnknownAccount(u16),
    #[error("account {0} is closed")]
    ClosedAccount(u16),
    #[error("line {line}: amounts are positive minor units")]
    NonPositiveAmount { line: usize },
    #[error("account {code} is {actual} by its code, not {stated}")]
    TypeMismatch {
        code: u16,
        stated: AccountType,
        actual: AccountType,
    },
    #[error("the sum of the lines overflows")]
    Overflow,
    #[error("an entry needs a description")]
    EmptyDescription,
    #[error("entry `{0}` already exists with a different body")]
    IdConflict(String),
    #[error("entry `{0}` has already been reversed")]
    AlreadyReversed(String),
    #[error("entry `{0}` does not exist")]
    UnknownEntry(String),
}

impl LedgerError {
    /// A stable machine-readable code for the API's error body (`unbalanced`, ...).
    pub fn code(&self) -> &'static str {
        todo!()
    }
}

/// The one validation every posting path goes through (the runbook's
/// `validateRevenueTransaction`): line count, positive amounts, one currency, known and open
/// accounts, stated types matching, debits equal credits with checked sums, a description.
pub fn validate_revenue_transaction(
    chart: &Chart,
    entry: &JournalEntry,
) -> Result<(), LedgerError> {
    todo!("{chart:?} {entry:?}")
}

/// The entry that reverses `entry`: every line's side swapped, same amounts, linked back.
pub fn reversal_of(entry: &JournalEntry, id: String, effective_at: Timestamp) -> JournalEntry {
    todo!("{entry:?} {id} {effective_at:?}")
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

/// The trial balance of `entries`: per account and currency; total debits equal total
/// credits for every currency.
pub fn trial_balance(entries: &[RecordedEntry]) -> Vec<Balance> {
    todo!("{entries:?}")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    Beancount,
    Hledger,
    Csv,
    JsonLines,
}

/// What an export starts with (Beancount/hledger: option lines and `open` directives for the
/// chart; CSV: the header row; JSON Lines: nothing). Streamed exports write this once, then
/// [`export_entry`] for each entry in recorded order.
pub fn export_header(chart: &Chart, currency: Currency, format: ExportFormat) -> String {
    todo!("{chart:?} {currency} {format:?}")
}

pub fn export_entry(entry: &RecordedEntry, format: ExportFormat) -> String {
    todo!("{entry:?} {format:?}")
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

/// The entries (deterministic ids, so two nodes or a retry book a step once) that bring the
/// incident's postings, `booked` (its entries so far, in recorded order), in line with
/// `event` at `at`. Empty when nothing changed. A revision is a reversal plus a new entry,
/// to be committed atomically.
pub fn plan_booking(
    chart: &Chart,
    booked: &[RecordedEntry],
    event: &BookingEvent,
    at: Timestamp,
) -> Vec<JournalEntry> {
    todo!("{chart:?} {booked:?} {event:?} {at:?}")
}
