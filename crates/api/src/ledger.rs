//! The double-entry ledger: `POST /api/v1/ledger/validate`, `POST /api/v1/ledger/entries`,
//! `POST /api/v1/ledger/entries/{id}/reverse`, `GET /api/v1/ledger/entries`,
//! `GET /api/v1/ledger/trial-balance`, `GET /api/v1/ledger/accounts` and
//! `GET /api/v1/ledger/accounts/{code}/statement`.
//!
//! Amounts travel twice: `amount` is a decimal string in the currency (`"123.45"`), for
//! people; `amount_minor` the integer minor units (`12345`), for programs. Never a float.

use serde::{Deserialize, Serialize};

use crate::names::names;

names! {
    /// Which side of the books a line is on.
    pub enum Side("side") {
        Debit = "debit",
        Credit = "credit",
    }
}

/// One line of an entry as the ledger shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EntryLine {
    /// The four-digit account code.
    pub account: u16,
    /// The type the sender stated (`ASSET`, `LIABILITY`, `EQUITY`, `REVENUE`, `EXPENSE`).
    pub account_type: Option<String>,
    pub side: Side,
    /// Decimal, in the entry's currency.
    pub amount: String,
    pub amount_minor: i64,
    pub memo: Option<String>,
}

/// A journal entry as the ledger holds it (or, from `validate`, as it would be posted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Entry {
    pub id: String,
    /// The recorded order, 1, 2, ...; `null` for an entry only validated.
    pub seq: Option<i64>,
    pub description: String,
    /// ISO 4217.
    pub currency: String,
    /// RFC 3339: when the booked event happened.
    pub effective_at: String,
    /// RFC 3339: when the ledger recorded it; `null` for an entry only validated.
    pub recorded_at: Option<String>,
    pub incident: Option<i64>,
    /// The impact inputs the amounts were computed from, as JSON text.
    pub inputs_json: Option<String>,
    /// The entry this one reverses.
    pub reverses: Option<String>,
    /// The entry that reversed this one.
    pub reversed_by: Option<String>,
    pub lines: Vec<EntryLine>,
}

/// `GET /api/v1/ledger/entries`: a page in recorded order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EntryList {
    pub entries: Vec<Entry>,
    /// Pass as `after` for the next page; `null` when this page is the last.
    pub next_after: Option<i64>,
}

/// A line of a new entry. Give the amount either as `amount` (decimal text in the currency)
/// or as `amount_minor` (integer minor units), not both.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewLine {
    /// The four-digit account code (the runbook's `accountCode`).
    #[serde(alias = "accountCode")]
    pub account: u16,
    /// Optional; when given it must match the code's range and the chart (the runbook's
    /// `accountType`).
    #[serde(
        default,
        alias = "accountType",
        skip_serializing_if = "Option::is_none"
    )]
    pub account_type: Option<String>,
    pub side: Side,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount_minor: Option<i64>,
    /// The entry's currency when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memo: Option<String>,
}

/// The body of `POST /api/v1/ledger/entries` and `POST /api/v1/ledger/validate`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewEntry {
    /// The client's id for the entry (1 to 128 bytes, no spaces or control characters): a
    /// retry with the same id and body returns the stored entry. Optional for `validate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub description: String,
    /// ISO 4217; the shop's currency when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// RFC 3339; required to post (so that a retry is the same body), the server's now when
    /// only validating.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effective_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident: Option<i64>,
    /// What the amounts were computed from, any JSON; kept as canonical JSON text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<serde_json::Value>,
    pub lines: Vec<NewLine>,
}

/// The body of `POST /api/v1/ledger/entries/{id}/reverse`; every field optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReverseBody {
    /// The reversal's id; `<id>.reversal` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// RFC 3339; the reversed entry's own when absent, so that a retry is the same body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effective_at: Option<String>,
}

/// One account's totals in one currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BalanceRow {
    pub account: u16,
    /// From the chart; `null` for an account the chart no longer lists.
    pub name: Option<String>,
    pub account_type: Option<String>,
    pub currency: String,
    pub debits: String,
    /// Integer minor units, as text: totals may exceed 64 bits.
    pub debits_minor: String,
    pub credits: String,
    pub credits_minor: String,
    /// Debits minus credits.
    pub balance: String,
    pub balance_minor: String,
}

/// Debit and credit totals of one currency over every account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CurrencyTotal {
    pub currency: String,
    pub debits: String,
    pub debits_minor: String,
    pub credits: String,
    pub credits_minor: String,
    /// Debits equal credits: the books balance in this currency.
    pub balanced: bool,
}

/// `GET /api/v1/ledger/trial-balance`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TrialBalance {
    pub accounts: Vec<BalanceRow>,
    pub totals: Vec<CurrencyTotal>,
    /// Every currency balances.
    pub balanced: bool,
}

/// One line of an account statement with the running balance after it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StatementLine {
    pub seq: i64,
    pub entry: String,
    pub line: usize,
    pub effective_at: String,
    pub recorded_at: String,
    pub description: String,
    pub side: Side,
    pub currency: String,
    pub amount: String,
    pub amount_minor: i64,
    /// Debits minus credits of the account in this currency, up to and including this line.
    pub balance: String,
    pub balance_minor: String,
}

/// `GET /api/v1/ledger/accounts/{code}/statement`: a page in recorded order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Statement {
    pub account: u16,
    pub name: Option<String>,
    pub account_type: Option<String>,
    pub lines: Vec<StatementLine>,
    /// Pass as `after` for the next page; `null` when this page is the last.
    pub next_after: Option<i64>,
}

/// An account of the chart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Account {
    pub code: u16,
    pub name: String,
    pub account_type: String,
    /// A closed account takes no new postings.
    pub closed: bool,
}

/// `GET /api/v1/ledger/accounts`: the chart of accounts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Chart {
    pub accounts: Vec<Account>,
}
