use super::*;
use crate::money::Money;

fn figure(incident: i64, amount_minor: i64) -> LossFigure {
    LossFigure {
        incident,
        funnel: "checkout".to_owned(),
        stage: "payment".to_owned(),
        segment: None,
        amount: Money::new(amount_minor, usd()),
        inputs_json: format!("{{\"loss_minor\":{amount_minor}}}"),
    }
}

/// A tiny ledger: what plan_booking proposes is validated and recorded, as the store would.
#[derive(Default)]
struct Books {
    entries: Vec<RecordedEntry>,
}

impl Books {
    /// Plans `event` at minute `minute`, books the plan, and returns the ids it booked.
    fn step(&mut self, event: BookingEvent, minute: i64) -> Vec<String> {
        let chart = Chart::runbook();
        let at = Timestamp::from_millis(T0.millis() + minute * 60_000);
        let plan = plan_booking(&chart, &self.entries, &event, at);
        for entry in &plan {
            assert_eq!(
                validate_revenue_transaction(&chart, entry),
                Ok(()),
                "{entry:?}"
            );
            if let Some(reversed) = &entry.reverses {
                let original = self.entries.iter_mut().find(|r| r.entry.id == *reversed);
                let original = original.expect("a plan reverses what is booked");
                assert_eq!(original.reversed_by, None, "reversed twice");
                original.reversed_by = Some(entry.id.clone());
            }
            assert!(
                self.entries.iter().all(|r| r.entry.id != entry.id),
                "{} booked twice",
                entry.id
            );
            self.entries.push(RecordedEntry {
                entry: entry.clone(),
                recorded_at: at,
                reversed_by: None,
            });
        }
        plan.into_iter().map(|entry| entry.id).collect()
    }

    /// Net debit of `account` over the books.
    fn net(&self, account: u16) -> i128 {
        trial_balance(&self.entries)
            .iter()
            .filter(|b| b.account == account)
            .map(Balance::net_debit)
            .sum()
    }
}

fn ids(ids: &[&str]) -> Vec<String> {
    ids.iter().map(|id| (*id).to_owned()).collect()
}

#[test]
fn estimates_are_revised_by_a_reversal_and_a_new_entry_and_the_final_moves_to_the_offset() {
    let mut books = Books::default();
    let estimate = |amount| BookingEvent::Estimate(figure(42, amount));
    assert_eq!(books.step(estimate(0), 0), ids(&[]), "no loss yet");
    assert_eq!(books.step(estimate(1200), 5), ids(&["inc-42-est-1"]));
    assert_eq!(books.net(6200), 1200);
    assert_eq!(books.net(2300), -1200);
    assert_eq!(books.step(estimate(1200), 10), ids(&[]), "unchanged");
    assert_eq!(
        books.step(estimate(3000), 15),
        ids(&["inc-42-rev-1", "inc-42-est-2"])
    );
    assert_eq!(books.net(6200), 3000);
    assert_eq!(books.net(2300), -3000);
    assert_eq!(
        books.step(BookingEvent::Final(figure(42, 3500)), 20),
        ids(&["inc-42-rev-2", "inc-42-final"])
    );
    assert_eq!(books.net(6200), 3500);
    assert_eq!(
        books.net(2300),
        0,
        "the accrual holds nothing once resolved"
    );
    assert_eq!(books.net(3900), -3500);
    // A retry of the final, by this node or another, books nothing.
    assert_eq!(
        books.step(BookingEvent::Final(figure(42, 3500)), 21),
        ids(&[])
    );
    // Reopened: the final is reversed and estimates start again, then a second final.
    assert_eq!(
        books.step(estimate(4000), 30),
        ids(&["inc-42-final-rev", "inc-42-est-3"])
    );
    assert_eq!(books.net(3900), 0);
    assert_eq!(
        books.step(BookingEvent::Final(figure(42, 4100)), 40),
        ids(&["inc-42-rev-3", "inc-42-final-2"])
    );
    assert_eq!(books.net(6200), 4100);
    assert_eq!(books.net(2300), 0);
    assert_eq!(books.net(3900), -4100);
}

#[test]
fn a_false_alarm_reverses_every_estimate_and_books_nothing_else() {
    let mut books = Books::default();
    books.step(BookingEvent::Estimate(figure(7, 500)), 0);
    books.step(BookingEvent::Estimate(figure(7, 900)), 5);
    // Another incident's books are not touched.
    books.step(BookingEvent::Estimate(figure(8, 100)), 5);
    assert_eq!(
        books.step(BookingEvent::FalseAlarm { incident: 7 }, 10),
        ids(&["inc-7-rev-2"])
    );
    assert_eq!(
        books.step(BookingEvent::FalseAlarm { incident: 7 }, 11),
        ids(&[])
    );
    assert_eq!(books.net(6200), 100);
    assert_eq!(books.net(2300), -100);
}

#[test]
fn a_zero_figure_only_reverses() {
    let mut books = Books::default();
    books.step(BookingEvent::Estimate(figure(3, 500)), 0);
    assert_eq!(
        books.step(BookingEvent::Estimate(figure(3, 0)), 5),
        ids(&["inc-3-rev-1"])
    );
    assert_eq!(books.step(BookingEvent::Final(figure(3, 0)), 10), ids(&[]));
    assert_eq!(books.net(6200), 0);
}

#[test]
fn an_entry_reversed_by_another_booked_entry_counts_as_reversed() {
    // A store that has not yet set `reversed_by` on the original still holds the reversal.
    let chart = Chart::runbook();
    let mut books = Books::default();
    books.step(BookingEvent::Estimate(figure(5, 500)), 0);
    books.step(BookingEvent::Estimate(figure(5, 600)), 1);
    for recorded in &mut books.entries {
        recorded.reversed_by = None;
    }
    let plan = plan_booking(
        &chart,
        &books.entries,
        &BookingEvent::Estimate(figure(5, 600)),
        T0,
    );
    assert_eq!(plan, vec![]);
}

#[test]
fn booking_ids_read_back_as_written_and_nothing_else_reads() {
    let incidents = [0, 42, -5, i64::MAX, i64::MIN];
    for incident in incidents {
        for n in [1, 2, 17, u32::MAX] {
            for id in [
                BookingId::Estimate { incident, n },
                BookingId::EstimateReversal { incident, n },
                BookingId::Final { incident, n },
                BookingId::FinalReversal { incident, n },
            ] {
                let text = id.to_string();
                assert_eq!(BookingId::parse(&text), Some(id), "{text}");
                assert!(is_valid_entry_id(&text), "{text}");
            }
        }
    }
    for other in [
        "",
        "inc-",
        "inc-42",
        "inc-42-",
        "inc-42-est-",
        "inc-42-est-0",
        "inc-42-est-01",
        "inc-42-est-+1",
        "inc-42-final-1",
        "inc-42-final-01",
        "inc-42-finale",
        "inc-042-est-1",
        "inc-x-est-1",
        "inc-42-rev-1-rev",
        "manual-1",
    ] {
        assert_eq!(BookingId::parse(other), None, "{other}");
    }
}

#[test]
fn a_booking_entry_says_what_it_is_and_links_its_inputs() {
    let mut with_segment = figure(42, 1234);
    with_segment.segment = Some(("device".to_owned(), "desktop".to_owned()));
    let plan = plan_booking(
        &Chart::runbook(),
        &[],
        &BookingEvent::Estimate(with_segment),
        T0,
    );
    assert_eq!(plan.len(), 1);
    let entry = &plan[0];
    assert_eq!(
        entry.description,
        "Revenue loss - payment anomaly (funnel checkout, segment device=desktop, incident 42, estimate 1)"
    );
    assert_eq!(entry.link.incident, Some(42));
    assert_eq!(
        entry.link.inputs_json.as_deref(),
        Some("{\"loss_minor\":1234}")
    );
    assert_eq!(entry.lines[0].account, 6200);
    assert_eq!(entry.lines[0].account_type, Some(AccountType::Expense));
    assert_eq!(entry.lines[1].account, 2300);
    assert_eq!(entry.effective_at, T0);
    let mut long = figure(42, 1);
    long.stage = "s".repeat(DESCRIPTION_BYTES_MAX);
    let plan = plan_booking(&Chart::runbook(), &[], &BookingEvent::Estimate(long), T0);
    assert_eq!(plan[0].description.len(), DESCRIPTION_BYTES_MAX);
}

#[test]
fn a_statement_runs_the_balance_line_by_line() {
    let mut books = Books::default();
    books.step(BookingEvent::Estimate(figure(42, 1200)), 0);
    books.step(BookingEvent::Estimate(figure(42, 3000)), 5);
    books.step(BookingEvent::Final(figure(42, 3500)), 10);
    let running = |account| -> Vec<(String, Side, i64, i128)> {
        statement(&books.entries, account)
            .iter()
            .map(|l| {
                (
                    l.entry.entry.id.clone(),
                    l.side,
                    l.amount_minor,
                    l.running_net_debit,
                )
            })
            .collect()
    };
    let row = |id: &str, side, amount, net| (id.to_owned(), side, amount, net);
    assert_eq!(
        running(6200),
        vec![
            row("inc-42-est-1", Side::Debit, 1200, 1200),
            row("inc-42-rev-1", Side::Credit, 1200, 0),
            row("inc-42-est-2", Side::Debit, 3000, 3000),
            row("inc-42-rev-2", Side::Credit, 3000, 0),
            row("inc-42-final", Side::Debit, 3500, 3500),
        ]
    );
    assert_eq!(
        running(3900),
        vec![row("inc-42-final", Side::Credit, 3500, -3500)]
    );
    assert_eq!(running(4900), vec![]);
}

#[test]
fn closing_an_account_never_strands_an_estimate() {
    let mut books = Books::default();
    books.step(BookingEvent::Estimate(figure(9, 500)), 0);
    let mut chart = Chart::runbook();
    chart.accounts.push(Account {
        code: 2310,
        name: "Accrued Estimates, New".to_owned(),
        account_type: AccountType::Liability,
        closed: false,
    });
    chart
        .accounts
        .iter_mut()
        .find(|a| a.code == 2300)
        .unwrap()
        .closed = true;
    chart.booking.accrued_estimates = 2310;
    let plan = plan_booking(
        &chart,
        &books.entries,
        &BookingEvent::Estimate(figure(9, 700)),
        T0,
    );
    let ids: Vec<&str> = plan.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["inc-9-rev-1", "inc-9-est-2"]);
    // The reversal takes back the old accrual, closed as it is.
    assert_eq!(plan[0].lines[1].account, 2300);
    assert_eq!(plan[0].lines[1].side, Side::Debit);
    assert_eq!(plan[1].lines[1].account, 2310);
    for entry in &plan {
        assert_eq!(
            validate_revenue_transaction(&chart, entry),
            Ok(()),
            "{}",
            entry.id
        );
    }
}
