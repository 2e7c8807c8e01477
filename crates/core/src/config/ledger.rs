//! The `[ledger]` section: the chart of accounts. It starts from the runbook's seed
//! (`ledger::Chart::runbook`); `[[ledger.accounts]]` adds accounts, renames them and closes
//! them, and the four booking roles name the accounts the incident lifecycle books to.
//!
//! An account's code range must match its type, and a booking account must be in the chart,
//! open and of its role's type, or the config is refused: the ledger's rules then never meet a
//! chart they cannot book to.

use serde::Deserialize;
use toml::Spanned;

use super::Problems;
use crate::ledger::{
    ACCOUNT_CODE_MAX, ACCOUNT_CODE_MIN, ACCOUNT_NAME_BYTES_MAX, ACCOUNTS_MAX, Account, AccountType,
    BookingAccounts, Chart,
};

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ledger {
    /// The runbook's seed with the configured accounts: in code order, each code once.
    pub chart: Chart,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLedger {
    loss_expense: Option<Spanned<i64>>,
    accrued_estimates: Option<Spanned<i64>>,
    finalised_offset: Option<Spanned<i64>>,
    recovered_revenue: Option<Spanned<i64>>,
    #[serde(default)]
    accounts: Vec<Spanned<RawAccount>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAccount {
    code: Spanned<i64>,
    name: Option<Spanned<String>>,
    #[serde(rename = "type")]
    account_type: Option<Spanned<String>>,
    closed: Option<bool>,
}

pub(super) fn validate_ledger(raw: RawLedger, problems: &mut Problems) -> Ledger {
    let mut chart = Chart::runbook();
    // Where each configured code was written, for the booking checks' problems.
    let mut written: Vec<(u16, usize)> = Vec::new();
    if raw.accounts.len() > ACCOUNTS_MAX {
        let offset = raw.accounts[ACCOUNTS_MAX].span().start;
        problems.at(
            offset,
            format!("at most {ACCOUNTS_MAX} ledger accounts may be configured"),
        );
    }
    let roles = raw_roles(&raw);
    for spanned in raw.accounts.into_iter().take(ACCOUNTS_MAX) {
        let offset = spanned.span().start;
        let account = spanned.into_inner();
        let Some(code) = account_code(&account.code, problems) else {
            continue;
        };
        if written.iter().any(|(seen, _)| *seen == code) {
            problems.at(offset, format!("ledger account {code} is configured twice"));
            continue;
        }
        written.push((code, offset));
        configure_account(&mut chart, code, account, problems);
    }
    if chart.accounts.len() > ACCOUNTS_MAX {
        problems.found.push(super::ConfigProblem {
            line: 0,
            message: format!(
                "the chart holds at most {ACCOUNTS_MAX} accounts, the seed's included"
            ),
        });
    }
    chart.accounts.sort_by_key(|account| account.code);
    chart.booking = booking_accounts(&roles, &chart, &written, problems);
    Ledger { chart }
}

/// A four-digit code, or `None` with a problem noted.
fn account_code(code: &Spanned<i64>, problems: &mut Problems) -> Option<u16> {
    let value = *code.get_ref();
    let valid = u16::try_from(value)
        .ok()
        .filter(|c| (ACCOUNT_CODE_MIN..=ACCOUNT_CODE_MAX).contains(c));
    if valid.is_none() {
        problems.at(
            code.span().start,
            format!(
                "ledger account code {value} must be four digits, {ACCOUNT_CODE_MIN} to {ACCOUNT_CODE_MAX} (the first says the type)"
            ),
        );
    }
    valid
}

/// Adds the account `code`, or renames or closes the chart's account of that code.
fn configure_account(chart: &mut Chart, code: u16, raw: RawAccount, problems: &mut Problems) {
    let by_range = AccountType::of_code(code).expect("a checked code is in a range");
    if let Some(stated) = &raw.account_type {
        match AccountType::parse(stated.get_ref()) {
            None => problems.at(
                stated.span().start,
                format!(
                    "`{}` is not an account type ({})",
                    stated.get_ref(),
                    AccountType::list()
                ),
            ),
            Some(account_type) if account_type != by_range => {
                let (low, high) = by_range.code_range();
                problems.at(
                    stated.span().start,
                    format!(
                        "ledger account {code} is {by_range} by its code ({low}–{high}), not {account_type}"
                    ),
                );
            }
            Some(_) => {}
        }
    }
    let name_written = raw.name.is_some();
    let name = raw.name.and_then(|name| account_name(name, problems));
    match chart.accounts.iter_mut().find(|a| a.code == code) {
        Some(existing) => {
            if let Some(name) = name {
                existing.name = name;
            }
            if let Some(closed) = raw.closed {
                existing.closed = closed;
            }
        }
        None => {
            let Some(name) = name else {
                if name_written {
                    return; // Its problem is noted.
                }
                problems.at(
                    raw.code.span().start,
                    format!("ledger account {code} is new, so it needs a name"),
                );
                return;
            };
            chart.accounts.push(Account {
                code,
                name,
                account_type: by_range,
                closed: raw.closed.unwrap_or(false),
            });
        }
    }
}

/// A name of 1 to [`ACCOUNT_NAME_BYTES_MAX`] bytes without control characters.
fn account_name(name: Spanned<String>, problems: &mut Problems) -> Option<String> {
    let text = name.get_ref().trim();
    let valid = !text.is_empty()
        && text.len() <= ACCOUNT_NAME_BYTES_MAX
        && !text.chars().any(char::is_control);
    if !valid {
        problems.at(
            name.span().start,
            format!(
                "a ledger account's name must be 1 to {ACCOUNT_NAME_BYTES_MAX} bytes without control characters"
            ),
        );
        return None;
    }
    Some(text.to_owned())
}

/// The four roles as written (`None` where the runbook's account is kept).
fn raw_roles(raw: &RawLedger) -> [Option<Spanned<i64>>; 4] {
    [
        raw.loss_expense.clone(),
        raw.accrued_estimates.clone(),
        raw.finalised_offset.clone(),
        raw.recovered_revenue.clone(),
    ]
}

/// The booking accounts: each in the chart, open and of its role's type, or the runbook's
/// with a problem noted at the role (or at the account that was closed).
fn booking_accounts(
    roles: &[Option<Spanned<i64>>; 4],
    chart: &Chart,
    written: &[(u16, usize)],
    problems: &mut Problems,
) -> BookingAccounts {
    let mut codes = [0_u16; 4];
    let defaults = BookingAccounts::RUNBOOK.roles();
    for (index, ((role, default, account_type), raw)) in defaults.iter().zip(roles).enumerate() {
        let code = match raw {
            None => *default,
            Some(spanned) => match account_code(spanned, problems) {
                Some(code) => code,
                None => {
                    codes[index] = *default;
                    continue;
                }
            },
        };
        codes[index] = code;
        let offset = raw.as_ref().map_or_else(
            || {
                written
                    .iter()
                    .find(|(c, _)| *c == code)
                    .map_or(0, |(_, offset)| *offset)
            },
            |spanned| spanned.span().start,
        );
        let problem = match chart.account(code) {
            None => Some(format!(
                "ledger.{role} names account {code}, which is not in the chart"
            )),
            Some(account) if account.account_type != *account_type => Some(format!(
                "ledger.{role} must be an account of type {account_type}; {code} is {}",
                account.account_type
            )),
            Some(account) if account.closed => Some(format!(
                "account {code} is the ledger's {role}, so it cannot be closed (name another account as ledger.{role} first)"
            )),
            Some(_) => None,
        };
        if let Some(message) = problem {
            problems.at(offset, message);
        }
    }
    BookingAccounts {
        loss_expense: codes[0],
        accrued_estimates: codes[1],
        finalised_offset: codes[2],
        recovered_revenue: codes[3],
    }
}
