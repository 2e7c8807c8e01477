//! Property tests against a small in-memory ledger that posts as the store does: a retry is
//! answered first, then the one validation, then the reversal check, and only then is anything
//! written.

use proptest::prelude::*;

use super::*;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Posted,
    Existing,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct ModelLedger {
    entries: Vec<RecordedEntry>,
}

impl ModelLedger {
    fn find(&self, id: &str) -> Option<&RecordedEntry> {
        self.entries.iter().find(|r| r.entry.id == id)
    }

    fn post(
        &mut self,
        chart: &Chart,
        entry: &JournalEntry,
        at: Timestamp,
    ) -> Result<Outcome, LedgerError> {
        if let Retry::Existing(_) = check_retry(self.find(&entry.id), entry)? {
            return Ok(Outcome::Existing);
        }
        validate_revenue_transaction(chart, entry)?;
        if let Some(reversed) = &entry.reverses {
            check_reversal(self.find(reversed), entry)?;
            let original = self.entries.iter_mut().find(|r| r.entry.id == *reversed);
            original.expect("checked").reversed_by = Some(entry.id.clone());
        }
        self.entries.push(RecordedEntry {
            entry: entry.clone(),
            recorded_at: at,
            reversed_by: None,
        });
        Ok(Outcome::Posted)
    }
}

/// What a client asks for.
#[derive(Debug, Clone)]
enum Request {
    /// Post pairs of (debit account, credit account, amount) as one entry under `id`;
    /// `skew` unbalances it (0: balanced).
    Post {
        id: usize,
        pairs: Vec<(u16, u16, i64)>,
        euro: bool,
        skew: i64,
    },
    /// Reverse the entry `target` (whatever it holds then) under `id`.
    Reverse { target: usize, id: usize },
    /// Send an earlier request again, as it was built then.
    Replay { index: usize },
}

const IDS: [&str; 6] = ["e0", "e1", "e2", "r0", "r1", "inc-1-est-1"];
const ACCOUNTS: [u16; 5] = [2300, 3900, 4900, 6200, 4242];

fn request() -> impl Strategy<Value = Request> {
    let account = prop::sample::select(ACCOUNTS.to_vec());
    let amount =
        prop_oneof![8 => 1..1_000_000_i64, 1 => (i64::MAX / 4)..=i64::MAX, 1 => -5..=0_i64];
    let pairs = prop::collection::vec((account.clone(), account, amount), 1..4);
    prop_oneof![
        5 => (0..IDS.len(), pairs, any::<bool>(), prop_oneof![6 => Just(0_i64), 1 => -3..3_i64])
            .prop_map(|(id, pairs, euro, skew)| Request::Post { id, pairs, euro, skew }),
        3 => (0..IDS.len(), 0..IDS.len()).prop_map(|(target, id)| Request::Reverse { target, id }),
        2 => (0..64_usize).prop_map(|index| Request::Replay { index }),
    ]
}

/// The entry a request stands for, given the ledger as it is (a reversal mirrors what its
/// target holds now, or a made-up entry when it holds nothing).
fn build(ledger: &ModelLedger, request: &Request) -> Option<JournalEntry> {
    match request {
        Request::Post {
            id,
            pairs,
            euro,
            skew,
        } => {
            let currency = if *euro { eur() } else { usd() };
            let mut proposed = entry(IDS[*id], 1);
            proposed.lines = pairs
                .iter()
                .flat_map(|&(debit, credit, amount)| {
                    [
                        Line {
                            currency,
                            ..line(debit, Side::Debit, amount)
                        },
                        Line {
                            currency,
                            ..line(credit, Side::Credit, amount)
                        },
                    ]
                })
                .collect();
            proposed.lines[0].amount_minor = proposed.lines[0].amount_minor.saturating_add(*skew);
            Some(proposed)
        }
        Request::Reverse { target, id } => {
            let original = ledger
                .find(IDS[*target])
                .map(|r| r.entry.clone())
                .unwrap_or_else(|| entry(IDS[*target], 77));
            Some(reversal_of(&original, IDS[*id].to_owned(), T0))
        }
        Request::Replay { .. } => None,
    }
}

fn assert_balanced(ledger: &ModelLedger) {
    for (currency, net) in imbalance_per_currency(&trial_balance(&ledger.entries)) {
        assert_eq!(net, 0, "{currency} is out of balance");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_sequence_of_posts_retries_and_reversals_keeps_the_books_balanced(
        requests in prop::collection::vec(request(), 1..40)
    ) {
        let chart = Chart::runbook();
        let mut ledger = ModelLedger::default();
        // What was sent, in order, each with what it got.
        let mut sent: Vec<(JournalEntry, Result<Outcome, LedgerError>)> = Vec::new();
        for request in &requests {
            let proposed = match request {
                Request::Replay { index } if !sent.is_empty() => sent[index % sent.len()].0.clone(),
                Request::Replay { .. } => continue,
                _ => build(&ledger, request).expect("not a replay"),
            };
            let before = ledger.clone();
            let outcome = ledger.post(&chart, &proposed, T0);
            match &outcome {
                Ok(Outcome::Posted) => prop_assert_eq!(ledger.entries.len(), before.entries.len() + 1),
                Ok(Outcome::Existing) | Err(_) => prop_assert_eq!(&ledger, &before, "nothing changes"),
            }
            if let Some((_, first)) = sent.iter().find(|(e, _)| *e == proposed) {
                // The same request again: posted before means it is there now.
                if first.is_ok() {
                    prop_assert_eq!(&outcome, &Ok(Outcome::Existing));
                }
            }
            assert_balanced(&ledger);
            sent.push((proposed, outcome));
        }
        // Every entry is reversed at most once, and an entry with its reversal nets to zero.
        for recorded in &ledger.entries {
            let reversals: Vec<&RecordedEntry> = ledger
                .entries
                .iter()
                .filter(|r| r.entry.reverses.as_deref() == Some(&recorded.entry.id))
                .collect();
            prop_assert!(reversals.len() <= 1);
            if let Some(reversal) = reversals.first() {
                prop_assert_eq!(recorded.reversed_by.as_deref(), Some(reversal.entry.id.as_str()));
                let pair = [recorded.clone(), (*reversal).clone()];
                for balance in trial_balance(&pair) {
                    prop_assert_eq!(balance.net_debit(), 0, "{:?}", balance);
                }
            }
        }
        // Replaying every request changes nothing.
        let settled = ledger.clone();
        for (proposed, _) in &sent {
            let outcome = ledger.post(&chart, proposed, T0);
            prop_assert!(!matches!(outcome, Ok(Outcome::Posted)), "{:?} posted on replay", proposed.id);
        }
        prop_assert_eq!(ledger, settled);
    }

    #[test]
    fn the_lifecycle_keeps_the_books_balanced_and_books_a_step_once(
        steps in prop::collection::vec((0..4_u8, 0..5_000_i64, 0..3_i64), 1..30)
    ) {
        let chart = Chart::runbook();
        let mut ledger = ModelLedger::default();
        for (minute, (kind, amount, incident)) in steps.into_iter().enumerate() {
            let figure = LossFigure {
                incident,
                funnel: "checkout".to_owned(),
                stage: "payment".to_owned(),
                segment: None,
                amount: crate::money::Money::new(amount, usd()),
                inputs_json: "{}".to_owned(),
            };
            let event = match kind {
                0 | 1 => BookingEvent::Estimate(figure),
                2 => BookingEvent::Final(figure),
                _ => BookingEvent::FalseAlarm { incident },
            };
            let at = Timestamp::from_millis(T0.millis() + minute as i64 * 60_000);
            let plan = plan_booking(&chart, &ledger.entries, &event, at);
            for proposed in &plan {
                prop_assert_eq!(ledger.post(&chart, proposed, at), Ok(Outcome::Posted));
            }
            // A second node (or a retry) with the books as they are now plans nothing more,
            // and one that planned from the books as they were books nothing twice.
            prop_assert_eq!(plan_booking(&chart, &ledger.entries, &event, at), vec![]);
            for proposed in &plan {
                prop_assert_eq!(ledger.post(&chart, proposed, at), Ok(Outcome::Existing));
            }
            assert_balanced(&ledger);
            // At most one standing estimate or final per incident, and the accrual holds
            // exactly the standing estimates.
            let accrued: i128 = trial_balance(&ledger.entries)
                .iter()
                .filter(|b| b.account == chart.booking.accrued_estimates)
                .map(Balance::net_debit)
                .sum();
            let standing: i128 = ledger
                .entries
                .iter()
                .filter(|r| r.reversed_by.is_none())
                .filter(|r| matches!(BookingId::parse(&r.entry.id), Some(BookingId::Estimate { .. })))
                .map(|r| i128::from(r.entry.lines[0].amount_minor))
                .sum();
            prop_assert_eq!(accrued, -standing);
        }
    }
}
