//! What a receiver of a page needs to know about the incident as it stands when the effect is
//! queued ([`Brief`]), so that a page, an acknowledgement or a resolution can be read (and a
//! PagerDuty event filled in) without calling back. Read-only: built from one incident, it
//! never changes one.

use super::record::{Incident, IncidentSeverity};
use crate::alert::AlertKind;
use crate::money::Money;

/// The incident in brief, as it stood when an effect was queued.
#[derive(Debug, Clone, PartialEq)]
pub struct Brief {
    /// One line: "P1 conversion: checkout/payment, device = mobile"; a declared incident's
    /// ends with what its declarer said.
    pub title: String,
    pub funnel: String,
    pub stage: String,
    /// `(dimension, value)` when the incident is one segment's.
    pub segment: Option<(String, String)>,
    pub severity: IncidentSeverity,
    /// The kind behind the severity (the incident's `kind`).
    pub kind: AlertKind,
    /// The latest measured deviation of its series, in σ (positive: worse than baseline, as
    /// the detector measures it); `None` before the first measurement.
    pub sigma: Option<f64>,
    /// The loss so far, when priced (conversion incidents with an AOV); `None` before the
    /// first closed window, for the kinds that are not priced, and when a booking stopped.
    pub loss: Option<Money>,
}

impl Brief {
    pub fn of(incident: &Incident) -> Brief {
        let segment = incident
            .segment
            .as_ref()
            .map_or(String::new(), |(d, v)| format!(", {d} = {v}"));
        let declared = incident
            .declared_summary
            .as_ref()
            .map_or(String::new(), |summary| format!(": {summary}"));
        Brief {
            title: format!(
                "{} {}: {}/{}{segment}{declared}",
                incident.severity.as_str(),
                incident.kind.as_str(),
                incident.funnel,
                incident.stage
            ),
            funnel: incident.funnel.clone(),
            stage: incident.stage.clone(),
            segment: incident.segment.clone(),
            severity: incident.severity,
            kind: incident.kind,
            sigma: incident.measurements.back().map(|(_, sigma)| *sigma),
            loss: incident
                .impact
                .as_ref()
                .filter(|impact| impact.n_windows > 0)
                .and_then(|impact| impact.loss().ok()),
        }
    }
}
