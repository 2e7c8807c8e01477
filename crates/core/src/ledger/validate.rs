//! The one validation every posting path goes through ([`validate_revenue_transaction`]),
//! its enumerated errors, and the pure checks the store makes against what it holds: a retry
//! ([`check_retry`]) and a reversal ([`check_reversal`]).

use super::chart::{AccountType, Chart};
use super::{
    DESCRIPTION_BYTES_MAX, EFFECTIVE_AT_MAX, ENTRY_ID_BYTES_MAX, ENTRY_LINES_MAX, INPUTS_BYTES_MAX,
    JournalEntry, Line, MEMO_BYTES_MAX, RecordedEntry, Side,
};
use crate::money::Currency;
use crate::time::Timestamp;

/// Why an entry is refused. Every rejection is one of these; nothing is posted. Line indexes
/// are 0-based, as in the request's `lines` array.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    #[error("an entry needs at least two lines")]
    TooFewLines,
    #[error("an entry has at most {ENTRY_LINES_MAX} lines; this one has {0}")]
    TooManyLines(usize),
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
    #[error("a description has at most {DESCRIPTION_BYTES_MAX} bytes; this one has {0}")]
    DescriptionTooLong(usize),
    #[error("line {line}: a memo has at most {MEMO_BYTES_MAX} bytes")]
    MemoTooLong { line: usize },
    #[error("the impact inputs have at most {INPUTS_BYTES_MAX} bytes; these have {0}")]
    InputsTooLong(usize),
    #[error(
        "entry id `{0}` must be 1 to {ENTRY_ID_BYTES_MAX} letters, digits, `-`, `_`, `.` or `:`"
    )]
    InvalidId(String),
    #[error("the effective time must be between 1970-01-01 and 9999-12-31 (UTC)")]
    EffectiveTimeOutOfRange,
    #[error("entry `{0}` cannot reverse itself")]
    ReversesItself(String),
    #[error("entry `{0}` is not the mirror of the entry it reverses (every line's side swapped)")]
    ReversalMismatch(String),
    #[error("entry `{0}` is itself a reversal; post a new entry instead of reversing it")]
    ReversalOfReversal(String),
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
        match self {
            LedgerError::TooFewLines => "too_few_lines",
            LedgerError::TooManyLines(_) => "too_many_lines",
            LedgerError::Unbalanced { .. } => "unbalanced",
            LedgerError::MixedCurrencies { .. } => "mixed_currencies",
            LedgerError::UnknownAccount(_) => "unknown_account",
            LedgerError::ClosedAccount(_) => "closed_account",
            LedgerError::NonPositiveAmount { .. } => "non_positive_amount",
            LedgerError::TypeMismatch { .. } => "type_mismatch",
            LedgerError::Overflow => "overflow",
            LedgerError::EmptyDescription => "empty_description",
            LedgerError::DescriptionTooLong(_) => "description_too_long",
            LedgerError::MemoTooLong { .. } => "memo_too_long",
            LedgerError::InputsTooLong(_) => "inputs_too_long",
            LedgerError::InvalidId(_) => "invalid_id",
            LedgerError::EffectiveTimeOutOfRange => "effective_time_out_of_range",
            LedgerError::ReversesItself(_) => "reverses_itself",
            LedgerError::ReversalMismatch(_) => "reversal_mismatch",
            LedgerError::ReversalOfReversal(_) => "reversal_of_reversal",
            LedgerError::IdConflict(_) => "id_conflict",
            LedgerError::AlreadyReversed(_) => "already_reversed",
            LedgerError::UnknownEntry(_) => "unknown_entry",
        }
    }

    /// Where in the request the problem is, as a field path (`lines[2].amount_minor`), for
    /// the API's error body; `None` where it is the entry as a whole or the ledger's state.
    pub fn field(&self) -> Option<String> {
        match self {
            LedgerError::TooFewLines | LedgerError::TooManyLines(_) => Some("lines".to_owned()),
            LedgerError::NonPositiveAmount { line } => Some(format!("lines[{line}].amount_minor")),
            LedgerError::MemoTooLong { line } => Some(format!("lines[{line}].memo")),
            LedgerError::EmptyDescription | LedgerError::DescriptionTooLong(_) => {
                Some("description".to_owned())
            }
            LedgerError::InputsTooLong(_) => Some("link.inputs_json".to_owned()),
            LedgerError::InvalidId(_) => Some("id".to_owned()),
            LedgerError::EffectiveTimeOutOfRange => Some("effective_at".to_owned()),
            LedgerError::ReversesItself(_)
            | LedgerError::ReversalMismatch(_)
            | LedgerError::ReversalOfReversal(_) => Some("reverses".to_owned()),
            _ => None,
        }
    }
}

/// Whether `id` is an acceptable entry id: 1 to [`ENTRY_ID_BYTES_MAX`] ASCII letters, digits,
/// `-`, `_`, `.` or `:` (safe in a URL path, a file name, a Beancount string and a CSV cell).
pub fn is_valid_entry_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= ENTRY_ID_BYTES_MAX
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// The one validation every posting path goes through (the runbook's
/// `validateRevenueTransaction`): line count, positive amounts, one currency, known and open
/// accounts, stated types matching, debits equal credits with checked sums, a description.
///
/// The checks run in a fixed order (the id and the texts, then the line count, then each
/// line in order, then the sums), so one entry always gets the same error.
pub fn validate_revenue_transaction(
    chart: &Chart,
    entry: &JournalEntry,
) -> Result<(), LedgerError> {
    check_texts(entry)?;
    if entry.lines.len() < 2 {
        return Err(LedgerError::TooFewLines);
    }
    if entry.lines.len() > ENTRY_LINES_MAX {
        return Err(LedgerError::TooManyLines(entry.lines.len()));
    }
    let currency = entry.lines[0].currency;
    // A reversal may post to a closed account: it takes back what the account holds, so that
    // closing an account never strands an estimate. The store's `check_reversal` makes sure
    // it mirrors an entry that was posted.
    let closed_ok = entry.reverses.is_some();
    for (index, line) in entry.lines.iter().enumerate() {
        check_line(chart, currency, index, line, closed_ok)?;
    }
    let (debits, credits) = side_sums(&entry.lines)?;
    if debits != credits {
        return Err(LedgerError::Unbalanced { debits, credits });
    }
    Ok(())
}

/// The id, the reversed id, the effective time and the texts.
fn check_texts(entry: &JournalEntry) -> Result<(), LedgerError> {
    if !is_valid_entry_id(&entry.id) {
        return Err(LedgerError::InvalidId(shown_id(&entry.id)));
    }
    if let Some(reversed) = &entry.reverses {
        if !is_valid_entry_id(reversed) {
            return Err(LedgerError::InvalidId(shown_id(reversed)));
        }
        if *reversed == entry.id {
            return Err(LedgerError::ReversesItself(entry.id.clone()));
        }
    }
    let millis = entry.effective_at.millis();
    if millis < 0 || millis > EFFECTIVE_AT_MAX.millis() {
        return Err(LedgerError::EffectiveTimeOutOfRange);
    }
    if entry.description.trim().is_empty() {
        return Err(LedgerError::EmptyDescription);
    }
    if entry.description.len() > DESCRIPTION_BYTES_MAX {
        return Err(LedgerError::DescriptionTooLong(entry.description.len()));
    }
    if let Some(inputs) = &entry.link.inputs_json
        && inputs.len() > INPUTS_BYTES_MAX
    {
        return Err(LedgerError::InputsTooLong(inputs.len()));
    }
    Ok(())
}

/// An id as an error shows it: at most the longest valid id, cut on a character boundary.
fn shown_id(id: &str) -> String {
    id.chars()
        .scan(0, |bytes, c| {
            *bytes += c.len_utf8();
            (*bytes <= ENTRY_ID_BYTES_MAX).then_some(c)
        })
        .collect()
}

fn check_line(
    chart: &Chart,
    currency: Currency,
    index: usize,
    line: &Line,
    closed_ok: bool,
) -> Result<(), LedgerError> {
    if line.amount_minor <= 0 {
        return Err(LedgerError::NonPositiveAmount { line: index });
    }
    if line.currency != currency {
        return Err(LedgerError::MixedCurrencies {
            first: currency,
            other: line.currency,
        });
    }
    let account = chart
        .account(line.account)
        .ok_or(LedgerError::UnknownAccount(line.account))?;
    if account.closed && !closed_ok {
        return Err(LedgerError::ClosedAccount(line.account));
    }
    if let Some(stated) = line.account_type {
        // The chart's type and the code's range agree in a valid chart; a stated type must
        // match both, and the range is what the sender can check by itself.
        let by_range = AccountType::of_code(line.account);
        for actual in [by_range, Some(account.account_type)].into_iter().flatten() {
            if actual != stated {
                return Err(LedgerError::TypeMismatch {
                    code: line.account,
                    stated,
                    actual,
                });
            }
        }
    }
    if line
        .memo
        .as_ref()
        .is_some_and(|memo| memo.len() > MEMO_BYTES_MAX)
    {
        return Err(LedgerError::MemoTooLong { line: index });
    }
    Ok(())
}

/// The debits' and the credits' sums, checked: a sum past `i64` is [`LedgerError::Overflow`].
pub fn side_sums(lines: &[Line]) -> Result<(i64, i64), LedgerError> {
    let mut debits: i64 = 0;
    let mut credits: i64 = 0;
    for line in lines {
        let sum = match line.side {
            Side::Debit => &mut debits,
            Side::Credit => &mut credits,
        };
        *sum = sum
            .checked_add(line.amount_minor)
            .ok_or(LedgerError::Overflow)?;
    }
    Ok((debits, credits))
}

/// The entry that reverses `entry`: every line's side swapped, same amounts, linked back.
pub fn reversal_of(entry: &JournalEntry, id: String, effective_at: Timestamp) -> JournalEntry {
    let description = cut_to_bytes(
        &format!("Reversal of {}: {}", entry.id, entry.description),
        DESCRIPTION_BYTES_MAX,
    );
    JournalEntry {
        id,
        description,
        effective_at,
        lines: entry
            .lines
            .iter()
            .map(|line| Line {
                side: line.side.opposite(),
                ..line.clone()
            })
            .collect(),
        link: entry.link.clone(),
        reverses: Some(entry.id.clone()),
    }
}

/// `text` cut to at most `bytes_max` bytes on a character boundary.
pub(super) fn cut_to_bytes(text: &str, bytes_max: usize) -> String {
    let mut end = text.len().min(bytes_max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

/// What a post of `proposed` does given the entry already recorded under its id, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry<'a> {
    /// No entry has the id: post it.
    New,
    /// The same body is already recorded: answer with it and write nothing.
    Existing(&'a RecordedEntry),
}

/// A retry is safe: the same id with the same body is the recorded entry again; the same id
/// with any other body is [`LedgerError::IdConflict`].
pub fn check_retry<'a>(
    existing: Option<&'a RecordedEntry>,
    proposed: &JournalEntry,
) -> Result<Retry<'a>, LedgerError> {
    match existing {
        None => Ok(Retry::New),
        Some(recorded) if recorded.entry == *proposed => Ok(Retry::Existing(recorded)),
        Some(_) => Err(LedgerError::IdConflict(proposed.id.clone())),
    }
}

/// A reversal may be posted: the entry it names exists (`original`, as the store found it),
/// has not been reversed by another entry, is not itself a reversal, and `reversal` mirrors it
/// line for line. An entry
/// reversed by `reversal` itself is a retry, which [`check_retry`] answers first.
pub fn check_reversal(
    original: Option<&RecordedEntry>,
    reversal: &JournalEntry,
) -> Result<(), LedgerError> {
    let Some(reversed_id) = &reversal.reverses else {
        return Ok(());
    };
    let original = original.ok_or_else(|| LedgerError::UnknownEntry(reversed_id.clone()))?;
    debug_assert_eq!(
        &original.entry.id, reversed_id,
        "the store passes the named entry"
    );
    if let Some(by) = &original.reversed_by
        && *by != reversal.id
    {
        return Err(LedgerError::AlreadyReversed(reversed_id.clone()));
    }
    // Reversing a reversal would book the original's effect again, past the accounts it
    // was closed to and behind the lifecycle's back (it still counts the original reversed).
    if original.entry.reverses.is_some() {
        return Err(LedgerError::ReversalOfReversal(reversed_id.clone()));
    }
    let mirrors = original.entry.lines.len() == reversal.lines.len()
        && original
            .entry
            .lines
            .iter()
            .zip(&reversal.lines)
            .all(|(before, after)| {
                before.account == after.account
                    && before.amount_minor == after.amount_minor
                    && before.currency == after.currency
                    && before.side.opposite() == after.side
            });
    if !mirrors {
        return Err(LedgerError::ReversalMismatch(reversal.id.clone()));
    }
    Ok(())
}
