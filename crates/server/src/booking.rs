//! The incident lifecycle booked in the ledger: each priced incident's estimate as it opens
//! and grows, its final figure at resolution, and the reversal of its estimates when a
//! responder resolves it as a false alarm (docs/ledger.md shows the double entries).
//!
//! The rules are the core's (`ledger::plan_booking`: deterministic ids, a revision is a
//! reversal plus a new entry); this module only decides when to ask, reads what the incident
//! already has in the books, and posts the plan in one call (`Store::post_ledger_entries`,
//! which validates every entry). The same [`Booker`] runs after every committed incident step
//! live (`server::incidents`) and after every tick in event time (`replay`, the demo's
//! backfill), so a replayed month has the books a live month would have.
//!
//! A booking never fails the incident step: the incident is what people act on, and the books
//! catch up at the next step (every plan is idempotent). Two nodes planning the same step
//! propose the same ids; the store books one and refuses the other (`IdConflict` when their
//! bodies differ), which is logged at debug level and planned again later.

use std::collections::HashMap;

use revloop_core::incident::{Incident, IncidentEngine};
use revloop_core::ledger::{
    BookingEvent, Chart, ESTIMATE_REVISE_EVERY, LedgerError, LossFigure, RecordedEntry,
    plan_booking,
};
use revloop_core::time::{DurationMs, Timestamp};
use revloop_store::{LEDGER_PAGE_MAX, LedgerQuery, Store, StoreError};

/// Newest impact windows an entry's inputs list (the totals cover them all): about 110 bytes
/// each, so the inputs stay well under the ledger's `INPUTS_BYTES_MAX`.
pub const BOOKED_INPUT_WINDOWS_MAX: usize = 96;
/// Most entries read back for one incident before planning; an incident's lifecycle books a
/// handful per revision, so more means something else posted under its id.
pub const BOOKED_ENTRIES_MAX: usize = 10 * LEDGER_PAGE_MAX;
/// How long a failed or refused booking waits before it is planned again.
const RETRY_AFTER: DurationMs = DurationMs::from_minutes(1);

/// What this node last did for one incident, so that a step plans only what may have changed.
#[derive(Debug, Clone, Copy, Default)]
struct Seen {
    /// When the standing estimate was booked, or a booking was last attempted and failed.
    estimate_at: Option<Timestamp>,
    /// The amount last booked (estimate or final), in minor units.
    amount: Option<i64>,
    /// The final figure or the false alarm's reversals are booked for the incident as it is.
    settled: bool,
}

/// Books the lifecycle of every priced incident; one per incident service or event-time run.
pub struct Booker {
    chart: Chart,
    seen: HashMap<u64, Seen>,
}

impl Booker {
    pub fn new(chart: Chart) -> Booker {
        Booker {
            chart,
            seen: HashMap::new(),
        }
    }

    /// Brings the books in line with `engine`'s incidents at `now`; returns how many entries
    /// were written. Errors are logged, never returned (see the module docs).
    pub fn book(&mut self, store: &dyn Store, engine: &IncidentEngine, now: Timestamp) -> usize {
        let mut written = 0;
        for incident in engine.incidents() {
            let Some(event) = self.event(incident, now) else {
                continue;
            };
            let seen = self.seen.entry(incident.id).or_default();
            match book_one(store, &self.chart, incident.id, &event, now) {
                Ok(n) => {
                    written += n;
                    match &event {
                        BookingEvent::Estimate(figure) => {
                            seen.estimate_at = Some(now);
                            seen.amount = Some(figure.amount.minor);
                            seen.settled = false;
                        }
                        BookingEvent::Final(figure) => {
                            seen.amount = Some(figure.amount.minor);
                            seen.settled = true;
                        }
                        BookingEvent::FalseAlarm { .. } => {
                            seen.amount = None;
                            seen.settled = true;
                        }
                    }
                }
                Err(err) => {
                    seen.estimate_at = Some(
                        now.saturating_sub(ESTIMATE_REVISE_EVERY)
                            .saturating_add(RETRY_AFTER),
                    );
                    match &err {
                        StoreError::Ledger {
                            error: LedgerError::IdConflict(id),
                            ..
                        } => tracing::debug!(
                            incident = incident.id,
                            "another node booked {id} first; planned again later"
                        ),
                        _ => tracing::warn!(
                            incident = incident.id,
                            "booking the incident's loss failed, tried again later: {err}"
                        ),
                    }
                }
            }
        }
        self.seen.retain(|id, _| engine.incident(*id).is_some());
        written
    }

    /// What the books should take for `incident` now, if anything may have changed.
    fn event(&self, incident: &Incident, now: Timestamp) -> Option<BookingEvent> {
        let impact = incident.impact.as_ref()?;
        let seen = self.seen.get(&incident.id).copied().unwrap_or_default();
        let figure = || -> Option<LossFigure> {
            let figures = impact.figures().ok()?;
            Some(LossFigure {
                incident: incident.id as i64,
                funnel: incident.funnel.clone(),
                stage: incident.stage.clone(),
                segment: incident.segment.clone(),
                amount: figures.loss,
                inputs_json: impact.inputs_json_newest(BOOKED_INPUT_WINDOWS_MAX),
            })
        };
        if incident.is_open() {
            let due = seen
                .estimate_at
                .is_none_or(|at| now >= at.saturating_add(ESTIMATE_REVISE_EVERY));
            let figure = figure()?;
            let changed = seen.settled || seen.amount != Some(figure.amount.minor);
            return (due && changed).then_some(BookingEvent::Estimate(figure));
        }
        if seen.settled {
            return None;
        }
        if incident.false_alarm {
            return Some(BookingEvent::FalseAlarm {
                incident: incident.id as i64,
            });
        }
        figure().map(BookingEvent::Final)
    }
}

/// Reads the incident's entries, plans, and posts the plan in one call.
fn book_one(
    store: &dyn Store,
    chart: &Chart,
    incident: u64,
    event: &BookingEvent,
    now: Timestamp,
) -> Result<usize, StoreError> {
    let booked = booked_entries(store, incident as i64)?;
    let plan = plan_booking(chart, &booked, event, now);
    if plan.is_empty() {
        return Ok(0);
    }
    let outcomes = store.post_ledger_entries(chart, &plan, now)?;
    Ok(outcomes.iter().filter(|outcome| outcome.is_new()).count())
}

/// Every entry linked to `incident`, in recorded order.
fn booked_entries(store: &dyn Store, incident: i64) -> Result<Vec<RecordedEntry>, StoreError> {
    let mut entries = Vec::new();
    let mut after_seq = 0;
    loop {
        let page = store.ledger_entries(&LedgerQuery {
            incident: Some(incident),
            after_seq,
            limit: LEDGER_PAGE_MAX,
        })?;
        let full = page.len() == LEDGER_PAGE_MAX;
        for row in page {
            after_seq = row.seq;
            entries.push(row.recorded);
        }
        if !full {
            return Ok(entries);
        }
        if entries.len() >= BOOKED_ENTRIES_MAX {
            return Err(StoreError::Io(format!(
                "incident {incident} has more than {BOOKED_ENTRIES_MAX} ledger entries; its \
                 lifecycle is no longer booked"
            )));
        }
    }
}

/// Writes the whole ledger in `store` to `out` in `format`, accounts named by code: what
/// `replay --ledger-out` writes (the API streams the same text page by page). Returns how many
/// entries were written.
pub fn write_export(
    store: &dyn Store,
    chart: &Chart,
    currency: revloop_core::money::Currency,
    format: revloop_core::ledger::ExportFormat,
    out: &mut dyn std::io::Write,
) -> Result<usize, StoreError> {
    let exporter = revloop_core::ledger::Exporter::new(
        chart,
        currency,
        format,
        revloop_core::ledger::AccountNames::Codes,
    );
    let io = |err: std::io::Error| StoreError::Io(format!("writing the export: {err}"));
    out.write_all(exporter.header().as_bytes()).map_err(io)?;
    let mut written = 0;
    let mut after_seq = 0;
    loop {
        let page = store.ledger_entries(&LedgerQuery {
            incident: None,
            after_seq,
            limit: LEDGER_PAGE_MAX,
        })?;
        for row in &page {
            out.write_all(exporter.entry(&row.recorded).as_bytes())
                .map_err(io)?;
            after_seq = row.seq;
        }
        written += page.len();
        if page.len() < LEDGER_PAGE_MAX {
            return Ok(written);
        }
    }
}

#[cfg(test)]
mod tests;
