//! The changes that may explain an incident: read from the store around its onset and ranked
//! by the core's `rank_suspects`. It owns the query only; it never renders JSON and never
//! touches the incident engine.

use std::collections::HashMap;

use revloop_core::change::{Affected, Change, SUSPECT_GRACE, SUSPECT_LOOKBACK};
use revloop_core::incident::Incident;
use revloop_core::time::DurationMs;
use revloop_store::{ChangeRow, Store, StoreError};

/// Most changes read to rank an incident's suspects.
pub const SUSPECT_CANDIDATES_MAX: usize = 1_000;

/// The changes that may explain an incident, most suspect first, read from the store.
pub fn suspects(
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
