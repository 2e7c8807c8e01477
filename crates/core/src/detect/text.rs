//! The alert's text: what a decision says as an [`AlertEvent`], with the rates and σ of the
//! span it describes and the segments that explain it.
//!
//! It only reads the detector's state; it never changes an alert.

use super::decide::{Decision, conversion_sigma};
use super::drill_down::top_segments;
use super::volume::volume_deficit_sigma;
use super::{FunnelState, Settings};
use crate::alert::{AlertEvent, Direction};
use crate::time::Timestamp;

/// Describes a decision of the minute ending `at` as an alert event.
pub(super) fn describe(
    state: &FunnelState,
    dimension_names: &[String],
    decision: Decision,
    at: Timestamp,
    settings: &Settings,
) -> AlertEvent {
    let segment_state = &state.segments[decision.segment];
    let span = decision.span;
    let (baseline_rate, observed_rate, sigma) = match decision.step {
        Some(step) => {
            let series = &segment_state.conversions[step];
            // The same σ that labelled the alert (`decide::label`), so the two agree.
            match conversion_sigma(series, &span, settings) {
                Some(sigma) => (span.expected / span.n, 1.0 - span.x / span.n, sigma),
                None => (series.last.baseline.unwrap_or(0.0), 0.0, 0.0),
            }
        }
        None => {
            let minutes = span.minutes.max(1.0);
            // In the alert's direction: a surge's excess of events counts as positive.
            let deficit = volume_deficit_sigma(&span, segment_state.volume.phi.get());
            let sigma = match decision.alert.direction {
                Direction::Worse => deficit,
                Direction::Surge => -deficit,
            };
            (span.expected / minutes, span.n / minutes, sigma)
        }
    };
    let top_segments = top_segments(state, dimension_names, decision.step);
    AlertEvent {
        alert_id: decision.alert.id,
        funnel: state.id.clone(),
        stage: state.stage_ids[decision.alert.stage].clone(),
        kind: decision.alert.kind,
        severity: decision.alert.severity,
        event: decision.event,
        direction: decision.alert.direction,
        at,
        onset: span.onset.start(),
        segment: segment_state
            .key
            .as_ref()
            .map(|(d, v)| (dimension_names[*d].clone(), v.clone())),
        baseline_rate,
        observed_rate,
        sigma,
        n: span.n.round() as i64,
        top_segments,
    }
}
