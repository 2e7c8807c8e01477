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
