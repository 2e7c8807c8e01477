//! What may explain an incident: the changes read from the store around its onset and ranked
//! by the core's `rank_suspects`, and the technical signals that overlap it (the core's
//! `signal::attaches`). It owns the queries only; it never renders JSON and never changes the
//! incident engine.

use std::collections::HashMap;

use revloop_core::change::{Affected, Change, SUSPECT_GRACE, SUSPECT_LOOKBACK};
use revloop_core::incident::{Incident, IncidentEngine};
use revloop_core::signal::{IncidentSpan, SignalSpan, attaches, effective_end};
use revloop_core::time::{DurationMs, Timestamp};
use revloop_store::{ChangeRow, SIGNAL_PAGE_MAX, SignalRow, Store, StoreError};

/// Most changes read to rank an incident's suspects.
pub const SUSPECT_CANDIDATES_MAX: usize = 1_000;

/// Everything that may explain an incident, as its view lists it.
#[derive(Debug, Clone, Default)]
pub struct Suspects {
    /// Changes, most suspect first.
    pub changes: Vec<(revloop_core::change::Suspect, ChangeRow)>,
    /// Technical signals that attach to it, latest start first, at most [`SIGNAL_PAGE_MAX`].
    pub signals: Vec<SignalRow>,
}

/// What may explain an incident at `now`, read from the store.
pub fn suspects(
    store: &dyn Store,
    incident: &Incident,
    now: Timestamp,
) -> Result<Suspects, StoreError> {
    Ok(Suspects {
        changes: change_suspects(store, incident)?,
        signals: incident_signals(store, incident, now)?,
    })
}

/// The span of an incident that signals attach to.
fn incident_span(incident: &Incident) -> IncidentSpan<'_> {
    IncidentSpan {
        funnel: &incident.funnel,
        stage: &incident.stage,
        onset: incident.onset,
        resolved_at: incident.resolved_at,
    }
}

fn signal_span(signal: &SignalRow, now: Timestamp) -> SignalSpan<'_> {
    SignalSpan {
        starts_at: signal.starts_at,
        ends_at: effective_end(signal.ends_at, signal.received_at, now),
        funnel: signal.funnel.as_deref(),
        stage: signal.stage.as_deref(),
    }
}

/// The signals that attach to an incident at `now`, latest start first.
pub fn incident_signals(
    store: &dyn Store,
    incident: &Incident,
    now: Timestamp,
) -> Result<Vec<SignalRow>, StoreError> {
    let span = incident_span(incident);
    let rows = store.signals(
        span.from(),
        incident.resolved_at.unwrap_or(now),
        SIGNAL_PAGE_MAX,
    )?;
    Ok(rows
        .into_iter()
        .filter(|row| attaches(&signal_span(row, now), &span, now))
        .collect())
}

/// The open incidents of `engine` that `signal` attaches to at `now`, by id.
pub fn attached_incidents(engine: &IncidentEngine, signal: &SignalRow, now: Timestamp) -> Vec<u64> {
    let mut ids: Vec<u64> = engine
        .incidents()
        .filter(|incident| incident.is_open())
        .filter(|incident| attaches(&signal_span(signal, now), &incident_span(incident), now))
        .map(|incident| incident.id)
        .collect();
    ids.sort_unstable();
    ids
}

/// The changes that may explain an incident, most suspect first, read from the store.
fn change_suspects(
    store: &dyn Store,
    incident: &Incident,
) -> Result<Vec<(revloop_core::change::Suspect, ChangeRow)>, StoreError> {
    let rows = store.changes(
        incident.onset.saturating_sub(SUSPECT_LOOKBACK),
        incident
            .onset
            .saturating_add(SUSPECT_GRACE)
            .saturating_add(DurationMs::from_millis(1)),
        SUSPECT_CANDIDATES_MAX,
    )?;
    let changes: Vec<Change> = rows
        .iter()
        .map(|row| Change {
            id: row.id,
            at: row.at,
            kind: row.kind,
            funnel: row.funnel.clone(),
            stage: row.stage.clone(),
            segment: row.segment.clone(),
        })
        .collect();
    let affected = Affected {
        funnel: &incident.funnel,
        stage: &incident.stage,
        segment: incident
            .segment
            .as_ref()
            .map(|(d, v)| (d.as_str(), v.as_str())),
        onset: incident.onset,
    };
    let by_id: HashMap<i64, &ChangeRow> = rows.iter().map(|r| (r.id, r)).collect();
    Ok(revloop_core::change::rank_suspects(affected, &changes)
        .into_iter()
        .filter_map(|s| {
            let row = (*by_id.get(&s.change_id)?).clone();
            Some((s, row))
        })
        .collect())
}
