//! The incident lifecycle in the books, as a pure plan: given an incident's booking entries so
//! far and where the incident is now, the entries that bring the books in line.
//!
//! Every entry the lifecycle books has a deterministic id ([`BookingId`]) computed from what is
//! already booked, so a retry or a second node planning the same step proposes the same id: the
//! store books it once (the same body) or refuses it (`IdConflict`: the other node booked
//! another figure first, so the caller reloads and plans again). docs/ledger.md shows the
//! double entries with a worked example.

use std::fmt;

use super::validate::{cut_to_bytes, reversal_of, side_sums};
use super::{
    AccountType, BookingEvent, Chart, DESCRIPTION_BYTES_MAX, EntryLink, JournalEntry, Line,
    LossFigure, RecordedEntry, Side,
};
use crate::money::Money;
use crate::time::{DurationMs, Timestamp};

/// How often, at most, the caller revises an open incident's estimate: the issue's "at most
/// every few minutes". The plan itself has no clock; it books whatever figure it is handed, and
/// nothing when the figure is unchanged.
pub const ESTIMATE_REVISE_EVERY: DurationMs = DurationMs::from_secs(5 * 60);

/// The id of one of an incident's booking entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BookingId {
    /// `inc-42-est-3`: the incident's third estimate (counted from 1 over its whole life).
    Estimate { incident: i64, n: u32 },
    /// `inc-42-rev-3`: the reversal of estimate 3.
    EstimateReversal { incident: i64, n: u32 },
    /// `inc-42-final`: the final figure; `inc-42-final-2` the second one, after a reopening
    /// reversed the first.
    Final { incident: i64, n: u32 },
    /// `inc-42-final-rev`, `inc-42-final-2-rev`: the reversal of a final figure.
    FinalReversal { incident: i64, n: u32 },
}

impl BookingId {
    pub fn incident(self) -> i64 {
        match self {
            BookingId::Estimate { incident, .. }
            | BookingId::EstimateReversal { incident, .. }
            | BookingId::Final { incident, .. }
            | BookingId::FinalReversal { incident, .. } => incident,
        }
    }

    /// The id of the entry that reverses this one; `None` for a reversal (the lifecycle never
    /// reverses a reversal).
    pub fn reversal(self) -> Option<BookingId> {
        match self {
            BookingId::Estimate { incident, n } => {
                Some(BookingId::EstimateReversal { incident, n })
            }
            BookingId::Final { incident, n } => Some(BookingId::FinalReversal { incident, n }),
            BookingId::EstimateReversal { .. } | BookingId::FinalReversal { .. } => None,
        }
    }

    /// Reads an id this module wrote; `None` for any other id (a hand-posted entry).
    pub fn parse(id: &str) -> Option<BookingId> {
        let rest = id.strip_prefix("inc-")?;
        // The incident number may be negative, so split at the first `-` after its first byte.
        let split = rest.get(1..)?.find('-')? + 1;
        let incident: i64 = rest[..split].parse().ok()?;
        let kind = &rest[split + 1..];
        let number = |text: &str| -> Option<u32> {
            let n: u32 = text.parse().ok()?;
            // One spelling per id: no leading zeros, no sign.
            (n > 0 && n.to_string() == text).then_some(n)
        };
        let parsed = if let Some(n) = kind.strip_prefix("est-") {
            BookingId::Estimate {
                incident,
                n: number(n)?,
            }
        } else if let Some(n) = kind.strip_prefix("rev-") {
            BookingId::EstimateReversal {
                incident,
                n: number(n)?,
            }
        } else {
            let (final_part, reversal) = match kind.strip_suffix("-rev") {
                Some(part) => (part, true),
                None => (kind, false),
            };
            let n = match final_part {
                "final" => 1,
                other => match number(other.strip_prefix("final-")?)? {
                    1 => return None,
                    n => n,
                },
            };
            if reversal {
                BookingId::FinalReversal { incident, n }
            } else {
                BookingId::Final { incident, n }
            }
        };
        (parsed.to_string() == id).then_some(parsed)
    }
}

impl fmt::Display for BookingId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            BookingId::Estimate { incident, n } => write!(f, "inc-{incident}-est-{n}"),
            BookingId::EstimateReversal { incident, n } => write!(f, "inc-{incident}-rev-{n}"),
            BookingId::Final { incident, n: 1 } => write!(f, "inc-{incident}-final"),
            BookingId::Final { incident, n } => write!(f, "inc-{incident}-final-{n}"),
            BookingId::FinalReversal { incident, n: 1 } => write!(f, "inc-{incident}-final-rev"),
            BookingId::FinalReversal { incident, n } => write!(f, "inc-{incident}-final-{n}-rev"),
        }
    }
}

/// What the books should hold for an incident once the plan is committed: one unreversed
/// estimate or final of this amount, or nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target<'a> {
    Nothing,
    Estimate(&'a LossFigure),
    Final(&'a LossFigure),
}

/// The entries (deterministic ids, so two nodes or a retry book a step once) that bring the
/// incident's postings, `booked` (its entries so far, in recorded order), in line with
/// `event` at `at`. Empty when nothing changed. A revision is a reversal plus a new entry,
/// to be committed atomically; reversals come first.
///
/// Entries in `booked` whose ids are not the lifecycle's (hand postings linked to the
/// incident) are left alone. An estimate or final of zero books nothing (an entry needs
/// positive amounts): it only reverses what is there.
pub fn plan_booking(
    chart: &Chart,
    booked: &[RecordedEntry],
    event: &BookingEvent,
    at: Timestamp,
) -> Vec<JournalEntry> {
    let (incident, target) = match event {
        BookingEvent::Estimate(figure) => (figure.incident, positive(figure, Target::Estimate)),
        BookingEvent::Final(figure) => (figure.incident, positive(figure, Target::Final)),
        BookingEvent::FalseAlarm { incident } => (*incident, Target::Nothing),
    };
    let mine: Vec<(BookingId, &RecordedEntry)> = booked
        .iter()
        .filter_map(|recorded| {
            let id = BookingId::parse(&recorded.entry.id)?;
            (id.incident() == incident).then_some((id, recorded))
        })
        .collect();
    let standing: Vec<(BookingId, &RecordedEntry)> = mine
        .iter()
        .copied()
        .filter(|(id, recorded)| {
            id.reversal().is_some()
                && recorded.reversed_by.is_none()
                && !booked
                    .iter()
                    .any(|other| other.entry.reverses.as_deref() == Some(&recorded.entry.id))
        })
        .collect();
    if already_there(&standing, target) {
        return Vec::new();
    }
    let mut plan: Vec<JournalEntry> = standing
        .iter()
        .filter_map(|(id, recorded)| {
            let reversal_id = id.reversal()?.to_string();
            Some(reversal_of(&recorded.entry, reversal_id, at))
        })
        .collect();
    let next = |is_kind: fn(&BookingId) -> Option<u32>| {
        mine.iter()
            .filter_map(|(id, _)| is_kind(id))
            .max()
            .unwrap_or(0)
            .saturating_add(1)
    };
    match target {
        Target::Nothing => {}
        Target::Estimate(figure) => {
            let n = next(|id| match id {
                BookingId::Estimate { n, .. } => Some(*n),
                _ => None,
            });
            let id = BookingId::Estimate { incident, n };
            let credit = chart.booking.accrued_estimates;
            let what = format!("estimate {n}");
            plan.push(booking_entry(chart, figure, id, credit, &what, at));
        }
        Target::Final(figure) => {
            let n = next(|id| match id {
                BookingId::Final { n, .. } => Some(*n),
                _ => None,
            });
            let id = BookingId::Final { incident, n };
            let credit = chart.booking.finalised_offset;
            plan.push(booking_entry(chart, figure, id, credit, "final", at));
        }
    }
    plan
}

/// The target for a figure: nothing for a zero (or, defensively, negative) loss.
fn positive<'a>(figure: &'a LossFigure, target: fn(&'a LossFigure) -> Target<'a>) -> Target<'a> {
    if figure.amount.minor > 0 {
        target(figure)
    } else {
        Target::Nothing
    }
}

/// Whether the standing entries are already exactly what `target` asks for.
fn already_there(standing: &[(BookingId, &RecordedEntry)], target: Target) -> bool {
    let same = |recorded: &RecordedEntry, amount: Money| {
        side_sums(&recorded.entry.lines).is_ok_and(|(debits, _)| debits == amount.minor)
            && recorded
                .entry
                .lines
                .iter()
                .all(|line| line.currency == amount.currency)
    };
    match (target, standing) {
        (Target::Nothing, []) => true,
        (Target::Estimate(figure), [(BookingId::Estimate { .. }, recorded)])
        | (Target::Final(figure), [(BookingId::Final { .. }, recorded)]) => {
            same(recorded, figure.amount)
        }
        _ => false,
    }
}

/// An estimate or a final: the loss expense debited, `credit` (the accrual or the offset)
/// credited.
fn booking_entry(
    chart: &Chart,
    figure: &LossFigure,
    id: BookingId,
    credit: u16,
    what: &str,
    at: Timestamp,
) -> JournalEntry {
    let line = |account: u16, side: Side| Line {
        account,
        account_type: chart
            .account(account)
            .map(|a| a.account_type)
            .or_else(|| AccountType::of_code(account)),
        side,
        amount_minor: figure.amount.minor,
        currency: figure.amount.currency,
        memo: None,
    };
    let segment = figure
        .segment
        .as_ref()
        .map(|(dimension, value)| format!(", segment {dimension}={value}"))
        .unwrap_or_default();
    let description = format!(
        "Revenue loss - {} anomaly (funnel {}{segment}, incident {}, {what})",
        figure.stage, figure.funnel, figure.incident
    );
    JournalEntry {
        id: id.to_string(),
        description: cut_to_bytes(&description, DESCRIPTION_BYTES_MAX),
        effective_at: at,
        lines: vec![
            line(chart.booking.loss_expense, Side::Debit),
            line(credit, Side::Credit),
        ],
        link: EntryLink {
            incident: Some(figure.incident),
            inputs_json: Some(figure.inputs_json.clone()),
        },
        reverses: None,
    }
}
