//! The ledger's rules, as tables and properties.

use super::*;
use crate::money::Currency;
use crate::time::Timestamp;

mod booking;
mod export;
mod model;
mod validate;

pub(super) fn usd() -> Currency {
    Currency::parse("USD").unwrap()
}

pub(super) fn eur() -> Currency {
    Currency::parse("EUR").unwrap()
}

/// 2026-11-27T10:00:00Z.
pub(super) const T0: Timestamp = Timestamp::from_millis(1_795_773_600_000);

pub(super) fn line(account: u16, side: Side, amount_minor: i64) -> Line {
    Line {
        account,
        account_type: None,
        side,
        amount_minor,
        currency: usd(),
        memo: None,
    }
}

/// A balanced two-line entry: 6200 debited, 2300 credited.
pub(super) fn entry(id: &str, amount_minor: i64) -> JournalEntry {
    JournalEntry {
        id: id.to_owned(),
        description: "Revenue loss - checkout anomaly".to_owned(),
        effective_at: T0,
        lines: vec![
            line(6200, Side::Debit, amount_minor),
            line(2300, Side::Credit, amount_minor),
        ],
        link: EntryLink {
            incident: Some(42),
            inputs_json: Some("{\"aov_minor\":8500}".to_owned()),
        },
        reverses: None,
    }
}

pub(super) fn recorded(entry: JournalEntry) -> RecordedEntry {
    RecordedEntry {
        entry,
        recorded_at: T0,
        reversed_by: None,
    }
}
