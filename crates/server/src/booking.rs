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
//! catch up a minute later (every plan is idempotent). Two nodes planning the same step from
//! the same committed incident propose the same ids and the same bodies (the effective time
//! comes from the incident, not from a node's clock), so the store books them once; a node
//! that planned from older books is refused (`IdConflict`), logs it at debug level, and plans
//! again later.

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
    /// An estimate is not revised before this (`ESTIMATE_REVISE_EVERY` after the last one).
    revise_at: Option<Timestamp>,
    /// Nothing is planned before this (`RETRY_AFTER` a failure).
    retry_at: Option<Timestamp>,
    /// The estimate last booked, in minor units.
    estimate: Option<i64>,
    /// The resolution the books were last brought in line with: when, and whether as a false
    /// alarm. A reopened incident that resolves again is a new one.
    settled: Option<(Timestamp, bool)>,
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
    /// were written. A failed booking is logged and planned again after `RETRY_AFTER`; the
    /// first failure is returned once every incident has been tried (an entry another node
    /// booked first is no failure). Live, the caller only logs it (see the module docs);
    /// `replay` fails on it, so that its books are never silently short.
    pub fn book(
        &mut self,
        store: &dyn Store,
        engine: &IncidentEngine,
        now: Timestamp,
    ) -> Result<usize, StoreError> {
        let mut written = 0;
        let mut failure = None;
        for incident in engine.incidents() {
            let Some((event, at)) = self.event(incident, now) else {
                continue;
            };
            let seen = self.seen.entry(incident.id).or_default();
            match book_one(store, &self.chart, incident.id, &event, at, now) {
                Ok(n) => {
                    written += n;
                    seen.retry_at = None;
                    match &event {
                        BookingEvent::Estimate(figure) => {
                            seen.revise_at = Some(now.saturating_add(ESTIMATE_REVISE_EVERY));
                            seen.estimate = Some(figure.amount.minor);
                            seen.settled = None;
                        }
                        BookingEvent::Final(_) | BookingEvent::FalseAlarm { .. } => {
                            seen.revise_at = None;
                            seen.estimate = None;
                            seen.settled =
                                incident.resolved_at.map(|at| (at, incident.false_alarm));
                        }
                    }
                }
                Err(err) => {
                    seen.retry_at = Some(now.saturating_add(RETRY_AFTER));
                    if let StoreError::Ledger {
                        error: LedgerError::IdConflict(id),
                        ..
                    } = &err
                    {
                        tracing::debug!(
                            incident = incident.id,
                            "another node booked {id} first; planned again later"
                        );
                    } else {
                        tracing::warn!(
                            incident = incident.id,
                            "booking the incident's loss failed, tried again later: {err}"
                        );
                        failure.get_or_insert(err);
                    }
                }
            }
        }
        self.seen.retain(|id, _| engine.incident(*id).is_some());
        match failure {
            Some(err) => Err(err),
            None => Ok(written),
        }
    }

    /// What the books should take for `incident` now, if anything may have changed, and the
    /// entries' effective time. That time comes from the incident, never from this node's
    /// clock (the newest priced window's end, the resolution), so that two nodes planning the
    /// same step propose the same bodies and the store books them once.
    fn event(&self, incident: &Incident, now: Timestamp) -> Option<(BookingEvent, Timestamp)> {
        let impact = incident.impact.as_ref()?;
        let seen = self.seen.get(&incident.id).copied().unwrap_or_default();
        if seen.retry_at.is_some_and(|at| now < at) {
            return None;
        }
        let figure = || -> Option<LossFigure> {
            Some(LossFigure {
                incident: incident.id as i64,
                funnel: incident.funnel.clone(),
                stage: incident.stage.clone(),
                segment: incident.segment.clone(),
                amount: impact.loss().ok()?,
                inputs_json: impact.inputs_json_newest(BOOKED_INPUT_WINDOWS_MAX),
            })
        };
        if incident.is_open() {
            // A reopened incident (its resolution booked) is estimated at once; an open one is
            // revised at most every `ESTIMATE_REVISE_EVERY`, and only when its loss moved.
            if seen.settled.is_none() && seen.revise_at.is_some_and(|at| now < at) {
                return None;
            }
            let figure = figure()?;
            if seen.settled.is_none() && seen.estimate == Some(figure.amount.minor) {
                return None;
            }
            let at = impact.windows.back().map_or(incident.opened_at, |w| w.to);
            return Some((BookingEvent::Estimate(figure), at));
        }
        let resolved_at = incident.resolved_at?;
        if seen.settled == Some((resolved_at, incident.false_alarm)) {
            return None;
        }
        if incident.false_alarm {
            let event = BookingEvent::FalseAlarm {
                incident: incident.id as i64,
            };
            return Some((event, resolved_at));
        }
        figure().map(|figure| (BookingEvent::Final(figure), resolved_at))
    }
}

/// Reads the incident's entries, plans at effective time `at`, and posts the plan in one call,
/// recorded at `now`.
fn book_one(
    store: &dyn Store,
    chart: &Chart,
    incident: u64,
    event: &BookingEvent,
    at: Timestamp,
    now: Timestamp,
) -> Result<usize, StoreError> {
    let booked = booked_entries(store, incident as i64)?;
    let plan = plan_booking(chart, &booked, event, at);
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
