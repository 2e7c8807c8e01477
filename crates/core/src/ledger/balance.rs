//! The trial balance: every account's debits and credits per currency, summed in `i128`.

use std::collections::BTreeMap;

use super::{Balance, RecordedEntry, Side};
use crate::money::Currency;

/// The trial balance of `entries`: per account and currency, in code then currency order;
/// total debits equal total credits for every currency. A reversal is an entry like any
/// other, so an entry and its reversal leave both sides grown by the same amount.
pub fn trial_balance(entries: &[RecordedEntry]) -> Vec<Balance> {
    let mut sums: BTreeMap<(u16, Currency), (i128, i128)> = BTreeMap::new();
    for line in entries.iter().flat_map(|recorded| &recorded.entry.lines) {
        let (debits, credits) = sums.entry((line.account, line.currency)).or_default();
        // i128 holds 2^64 lines of i64::MAX, far past what any store can hold.
        match line.side {
            Side::Debit => *debits += i128::from(line.amount_minor),
            Side::Credit => *credits += i128::from(line.amount_minor),
        }
    }
    sums.into_iter()
        .map(|((account, currency), (debits, credits))| Balance {
            account,
            currency,
            debits,
            credits,
        })
        .collect()
}

impl Balance {
    /// Debits less credits: positive for an account whose debits outweigh its credits.
    pub fn net_debit(&self) -> i128 {
        self.debits - self.credits
    }
}

/// Per currency, total debits less total credits over `balances`: zero for every currency of
/// a ledger of valid entries.
pub fn imbalance_per_currency(balances: &[Balance]) -> BTreeMap<Currency, i128> {
    let mut net: BTreeMap<Currency, i128> = BTreeMap::new();
    for balance in balances {
        *net.entry(balance.currency).or_default() += balance.net_debit();
    }
    net
}

/// One line of an account statement: a posting to the account and the balance after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatementLine<'a> {
    pub entry: &'a RecordedEntry,
    /// The line's index in its entry.
    pub line: usize,
    pub side: Side,
    pub amount_minor: i64,
    pub currency: Currency,
    /// Debits less credits of the account in this currency, this line included.
    pub running_net_debit: i128,
}

/// The statement of `account`: every line posted to it, in the order of `entries` (recorded
/// order), with the running balance per currency (debits less credits; an account whose
/// normal balance is credit runs negative).
pub fn statement(entries: &[RecordedEntry], account: u16) -> Vec<StatementLine<'_>> {
    let mut running: BTreeMap<Currency, i128> = BTreeMap::new();
    let mut lines = Vec::new();
    for recorded in entries {
        for (index, line) in recorded.entry.lines.iter().enumerate() {
            if line.account != account {
                continue;
            }
            let balance = running.entry(line.currency).or_default();
            match line.side {
                Side::Debit => *balance += i128::from(line.amount_minor),
                Side::Credit => *balance -= i128::from(line.amount_minor),
            }
            lines.push(StatementLine {
                entry: recorded,
                line: index,
                side: line.side,
                amount_minor: line.amount_minor,
                currency: line.currency,
                running_net_debit: *balance,
            });
        }
    }
    lines
}
