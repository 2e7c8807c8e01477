//! The rules of ingest: event time, admission (counted, late, rejected) and what a message adds
//! to the per-minute stage counts.
//!
//! "Now" is an argument: live ingest passes the receive time, replay passes the event-time
//! watermark. Nothing here knows about HTTP, JSON or storage.

use crate::config::Ingest;
use crate::funnel::{DimensionValues, Matcher, Message, StageHit, ValueNote, ValueNoteKind};
use crate::money::{Currency, Money};
use crate::time::{Minute, Timestamp};

/// What a message, or a pre-aggregated count, adds to one stage in one minute and segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StageCount {
    pub n_events: i64,
    /// Sum of the revenue the events reported, in minor units of the shop currency.
    pub revenue_minor: i64,
    /// How many of the events reported revenue in the shop currency.
    pub n_revenue_events: i64,
}

/// Largest revenue, in minor units and either sign, that one message may report.
///
/// Ten billion in a two-decimal currency: far above any real order, and small enough that
/// about 9.2 million messages must land in one stage, minute and segment before their sum could
/// leave `i64`. That is not impossible for a public write key, so the cap alone is not the
/// argument: every sum of counts in Rust ([`StageCount::add`]) and in the stores' upserts
/// saturates at the `i64` bounds instead of overflowing. The cap keeps one message from
/// reaching the bound by itself.
pub const REVENUE_MINOR_MAX: i64 = 1_000_000_000_000;

impl StageCount {
    /// Adds `other`, saturating each sum at the `i64` bounds: a sum that cannot be held is
    /// kept at the bound rather than wrapping or panicking.
    pub fn add(&mut self, other: StageCount) {
        self.n_events = self.n_events.saturating_add(other.n_events);
        self.revenue_minor = self.revenue_minor.saturating_add(other.revenue_minor);
        self.n_revenue_events = self.n_revenue_events.saturating_add(other.n_revenue_events);
    }
}

/// One stage, one minute, one combination of (raw, unfolded) dimension values.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Cell {
    pub hit: StageHit,
    pub minute: Minute,
    pub dimension_values: DimensionValues,
}

/// Whether an event is counted, tallied as late, or rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Within the allowed lateness: updates its minute.
    Counted,
    /// Older than the allowed lateness: accepted and tallied as late, counts unchanged.
    Late,
    /// Older than `max_event_age`.
    TooOld,
    /// Further ahead of now than `max_clock_ahead`.
    TooFarAhead,
}

/// Event time as Segment computes it: when the client sent `sentAt`, the client clock's skew
/// (`sentAt` minus the receive time) is removed from `timestamp`.
pub fn event_time(
    timestamp: Option<Timestamp>,
    sent_at: Option<Timestamp>,
    received_at: Timestamp,
) -> Timestamp {
    match (timestamp, sent_at) {
        (Some(timestamp), Some(sent_at)) => received_at.saturating_sub(sent_at.since(timestamp)),
        (Some(timestamp), None) => timestamp,
        (None, _) => received_at,
    }
}

pub fn admit(event_time: Timestamp, now: Timestamp, rules: &Ingest) -> Admission {
    if event_time > now.saturating_add(rules.max_clock_ahead) {
        Admission::TooFarAhead
    } else if event_time < now.saturating_sub(rules.max_event_age) {
        Admission::TooOld
    } else if event_time < now.saturating_sub(rules.allowed_lateness) {
        Admission::Late
    } else {
        Admission::Counted
    }
}

/// A problem with one field of an otherwise well-formed message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldProblem {
    /// Stable and machine-readable: `out_of_range`.
    pub code: &'static str,
    pub field: String,
    pub message: String,
}

/// The cells a message adds to, with what it adds. Empty when no stage listens to it.
pub fn message_cells(
    matcher: &Matcher,
    shop_currency: Currency,
    message: &Message,
) -> Result<Vec<(Cell, StageCount)>, FieldProblem> {
    message_cells_noted(matcher, shop_currency, message, &[], &mut Vec::new())
}

/// [`message_cells`] for a message whose `invalid_slots` were sent but unusable, with a note
/// for each field value not kept as sent. A problem confined to an optional part costs the
/// message only that part: an unusable dimension value is counted as
/// [`crate::funnel::VALUE_INVALID`], an unusable revenue (not an amount, or its currency not
/// text) is dropped and the event counted without it, each noted. A revenue beyond
/// [`REVENUE_MINOR_MAX`] is a problem: a number with a limit rejects its message. A message no
/// stage listens to gets no notes.
pub fn message_cells_noted(
    matcher: &Matcher,
    shop_currency: Currency,
    message: &Message,
    invalid_slots: &[usize],
    notes: &mut Vec<ValueNote>,
) -> Result<Vec<(Cell, StageCount)>, FieldProblem> {
    let mut hits = Vec::new();
    matcher.stage_hits(message, &mut hits);
    if hits.is_empty() {
        return Ok(Vec::new());
    }
    let mut count = StageCount {
        n_events: 1,
        ..StageCount::default()
    };
    let revenue_dropped = |slot| ValueNote {
        slot,
        kind: ValueNoteKind::RevenueDropped,
    };
    match matcher.revenue(message, invalid_slots) {
        Ok(None) => {}
        Err(slot) => notes.push(revenue_dropped(slot)),
        Ok(Some(revenue)) => {
            let same_currency = match revenue.currency {
                None => true,
                Some(code) => Currency::parse_any_case(code).is_ok_and(|c| c == shop_currency),
            };
            if same_currency {
                match parse_reported_amount(revenue.amount, shop_currency) {
                    None => notes.push(revenue_dropped(revenue.amount_slot)),
                    Some(money)
                        if !(-REVENUE_MINOR_MAX..=REVENUE_MINOR_MAX).contains(&money.minor) =>
                    {
                        return Err(FieldProblem {
                            code: "out_of_range",
                            field: matcher.slot_path(revenue.amount_slot).to_string(),
                            message: format!(
                                "must be at most {REVENUE_MINOR_MAX} minor units of {shop_currency} \
                                 either side of zero"
                            ),
                        });
                    }
                    Some(money) => {
                        count.revenue_minor = money.minor;
                        count.n_revenue_events = 1;
                    }
                }
            }
        }
    }
    let values = matcher.dimension_values_noted(message, invalid_slots, notes);
    let minute = message.event_time.minute();
    Ok(hits
        .into_iter()
        .map(|hit| {
            (
                Cell {
                    hit,
                    minute,
                    dimension_values: values.clone(),
                },
                count,
            )
        })
        .collect())
}

/// Reported amounts come from JavaScript clients whose float arithmetic leaves digits beyond
/// the minor unit (`0.30000000000000004`). The decimal text is rounded half away from zero to
/// the minor unit, exactly, without passing through a float.
fn parse_reported_amount(text: &str, currency: Currency) -> Option<Money> {
    if let Ok(money) = Money::parse_decimal(text, currency) {
        return Some(money);
    }
    let exponent = currency.exponent() as usize;
    let (whole, fraction) = text.split_once('.')?;
    if fraction.len() <= exponent || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let kept = format!("{whole}.{}", &fraction[..exponent]);
    let kept = kept.trim_end_matches('.');
    let mut money = Money::parse_decimal(kept, currency).ok()?;
    if fraction.as_bytes()[exponent] >= b'5' {
        // Saturating: an amount at the edge of `i64` is refused by the cap, not a panic here.
        money.minor = money
            .minor
            .saturating_add(if money.minor < 0 || whole.starts_with('-') {
                -1
            } else {
                1
            });
    }
    Some(money)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::funnel::CallKind;
    use crate::time::DurationMs;

    #[test]
    fn event_time_removes_client_clock_skew() {
        let received = Timestamp::from_millis(1_000_000);
        // The client clock runs 5 s ahead: it stamped the event 2 s before sending it.
        assert_eq!(
            event_time(
                Some(Timestamp::from_millis(998_000 + 5_000)),
                Some(Timestamp::from_millis(1_005_000)),
                received
            ),
            Timestamp::from_millis(998_000)
        );
        assert_eq!(
            event_time(Some(Timestamp::from_millis(42)), None, received),
            Timestamp::from_millis(42)
        );
        assert_eq!(
            event_time(None, Some(Timestamp::from_millis(42)), received),
            received
        );
    }

    #[test]
    fn admission_boundaries() {
        let rules = Ingest {
            dedup_window: DurationMs::from_hours(24),
            allowed_lateness: DurationMs::from_hours(1),
            max_clock_ahead: DurationMs::from_hours(24),
            max_event_age: DurationMs::from_hours(24 * 30),
            dedup_keys_max: 1_000,
        };
        let now = Timestamp::from_millis(100 * 86_400_000);
        let hour = DurationMs::from_hours(1);
        let cases = [
            (now, Admission::Counted),
            (now.saturating_sub(hour), Admission::Counted),
            (
                now.saturating_sub(DurationMs::from_millis(hour.millis() + 1)),
                Admission::Late,
            ),
            (
                now.saturating_sub(DurationMs::from_hours(24 * 30)),
                Admission::Late,
            ),
            (
                now.saturating_sub(DurationMs::from_hours(24 * 30 + 1)),
                Admission::TooOld,
            ),
            (
                now.saturating_add(DurationMs::from_hours(24)),
                Admission::Counted,
            ),
            (
                now.saturating_add(DurationMs::from_hours(25)),
                Admission::TooFarAhead,
            ),
        ];
        for (event_time, want) in cases {
            assert_eq!(admit(event_time, now, &rules), want, "{event_time}");
        }
    }

    #[test]
    fn reported_amounts_round_to_the_minor_unit() {
        let usd = Currency::parse("USD").unwrap();
        let cases = [
            ("19.99", Some(1999)),
            ("0.30000000000000004", Some(30)),
            ("10.005", Some(1001)),
            ("-10.005", Some(-1001)),
            ("12", Some(1200)),
            ("1e3", None),
            ("abc", None),
        ];
        for (text, want) in cases {
            assert_eq!(
                parse_reported_amount(text, usd).map(|m| m.minor),
                want,
                "{text}"
            );
        }
    }

    #[test]
    fn cells_carry_revenue_in_the_shop_currency_only() {
        let config = Config::parse(Config::example_toml()).unwrap();
        let matcher = Matcher::new(&config);
        let usd = config.shop.currency;
        let slot = |path: &str| {
            matcher
                .slots()
                .iter()
                .position(|p| p.to_string() == path)
                .unwrap()
        };
        let mut fields = vec![None; matcher.slots().len()];
        fields[slot("properties.revenue")] = Some("25.50".into());
        fields[slot("context.device.type")] = Some("mobile".into());
        let mut message = Message {
            kind: CallKind::Track,
            name: Some("Order Completed"),
            message_id: "m1",
            event_time: Timestamp::from_millis(120_000),
            fields,
        };
        let cells = message_cells(&matcher, usd, &message).unwrap();
        assert_eq!(cells.len(), 1);
        let (cell, count) = &cells[0];
        assert_eq!(cell.minute, Minute::new(2));
        assert_eq!(cell.dimension_values.iter().next(), Some("mobile"));
        assert_eq!(
            *count,
            StageCount {
                n_events: 1,
                revenue_minor: 2550,
                n_revenue_events: 1
            }
        );

        message.fields[slot("properties.currency")] = Some("EUR".into());
        let cells = message_cells(&matcher, usd, &message).unwrap();
        assert_eq!(
            cells[0].1,
            StageCount {
                n_events: 1,
                revenue_minor: 0,
                n_revenue_events: 0
            }
        );

        message.fields[slot("properties.currency")] = None;
        // Not an amount: the event counts, without revenue, and the revenue is noted.
        message.fields[slot("properties.revenue")] = Some("lots".into());
        let mut notes = Vec::new();
        let cells = message_cells_noted(&matcher, usd, &message, &[], &mut notes).unwrap();
        assert_eq!(
            cells[0].1,
            StageCount {
                n_events: 1,
                revenue_minor: 0,
                n_revenue_events: 0
            }
        );
        assert_eq!(
            notes,
            [ValueNote {
                slot: slot("properties.revenue"),
                kind: ValueNoteKind::RevenueDropped
            }]
        );

        // The cap, in minor units of USD: 10,000,000,000.00 is the largest amount either side
        // of zero; one cent more, and the attack's 90000000000000000, are refused.
        let cases = [
            ("10000000000.00", Ok(REVENUE_MINOR_MAX)),
            ("-10000000000.00", Ok(-REVENUE_MINOR_MAX)),
            ("10000000000.01", Err("properties.revenue")),
            ("-10000000000.01", Err("properties.revenue")),
            ("90000000000000000", Err("properties.revenue")),
            ("92233720368547758.07", Err("properties.revenue")),
        ];
        for (amount, want) in cases {
            message.fields[slot("properties.revenue")] = Some(amount.into());
            let got = message_cells(&matcher, usd, &message)
                .map(|cells| cells[0].1.revenue_minor)
                .map_err(|problem| problem.field);
            assert_eq!(got, want.map_err(String::from), "{amount}");
        }
    }

    #[test]
    fn stage_count_sums_saturate_at_the_i64_bounds() {
        let count = |n: i64, revenue_minor: i64| StageCount {
            n_events: n,
            revenue_minor,
            n_revenue_events: n,
        };
        let cases = [
            (count(1, 10), count(2, -3), count(3, 7)),
            (
                count(i64::MAX - 1, i64::MAX - 1),
                count(1, 1),
                count(i64::MAX, i64::MAX),
            ),
            (
                count(i64::MAX, i64::MAX),
                count(1, 1),
                count(i64::MAX, i64::MAX),
            ),
            (
                count(i64::MAX, i64::MAX),
                count(i64::MAX, i64::MAX),
                count(i64::MAX, i64::MAX),
            ),
            (count(0, i64::MIN + 1), count(0, -1), count(0, i64::MIN)),
            (count(0, i64::MIN), count(0, -1), count(0, i64::MIN)),
        ];
        for (mut sum, other, want) in cases {
            sum.add(other);
            assert_eq!(sum, want, "{other:?}");
        }
    }
}
