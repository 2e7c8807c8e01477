//! The alert's text: what a decision says as an [`AlertEvent`], with the rates and σ of the
//! span it describes and the segments that explain it.
//!
//! It only reads the detector's state; it never changes an alert.

use super::decide::Decision;
use super::drill_down::top_segments;
use super::volume::volume_deficit_sigma;
use super::{FunnelState, Settings};
use crate::alert::{AlertEvent, Direction};
use crate::stats;
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
    let window = settings.window_minutes as f64;
    let (baseline_rate, observed_rate, sigma) = match decision.step {
        Some(step) => {
            let series = &segment_state.conversions[step];
            if span.n > 0.0 {
                let p0 = span.expected / span.n;
                let observed = 1.0 - span.x / span.n;
                let per_window = span.n / span.minutes.max(1.0) * window;
                let sd = stats::overdispersed_sd(p0, per_window, series.tau2.get());
                (p0, observed, (observed - p0) / sd)
            } else {
                (series.last.baseline.unwrap_or(0.0), 0.0, 0.0)
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
