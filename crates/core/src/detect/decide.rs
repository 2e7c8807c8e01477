//! The decisions: whether a series' alarm opens an alert, upgrades it or closes it, and whether
//! a drop in conversion is really a stage's events going missing.
//!
//! It reads what the series recorded this minute and changes only their alert state; it never
//! measures a minute and never writes the alert's text (that is `text`'s).

use super::conversion::ConversionSeries;
use super::ring::Span;
use super::volume::volume_deficit_sigma;
use super::{FunnelState, SIGMA_P1, SIGMA_P2, SeriesStatus, Settings};
use crate::alert::{AlertEventKind, AlertKind, Direction, Severity};
use crate::time::Minute;

/// While a P2 is open, a stage whose drop-off over the last few minutes (a shorter window) is
/// this many σ above baseline for `ENHANCED_RUN` minutes in a row is upgraded: the runbook's
/// enhanced monitoring, "reduce sample size for faster detection".
const ENHANCED_SIGMA: f64 = 3.0;
const ENHANCED_RUN: u8 = 2;

#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub(super) struct OpenAlert {
    pub(super) id: u64,
    pub(super) severity: Severity,
    pub(super) kind: AlertKind,
    /// Index of the stage named in the alert.
    pub(super) stage: usize,
    pub(super) direction: Direction,
    /// A segment alarm while the same series of the funnel as a whole is alerting: tracked,
    /// not announced.
    pub(super) covered: bool,
    /// Minutes in a row the series has looked normal.
    pub(super) calm: u32,
    pub(super) enhanced_run: u8,
}

/// A change of an alert's state, to be described as an [`AlertEvent`].
pub(super) struct Decision {
    pub(super) segment: usize,
    /// The series: `Some(step)` for a conversion series, `None` for entry volume.
    pub(super) step: Option<usize>,
    pub(super) alert: OpenAlert,
    pub(super) event: AlertEventKind,
    pub(super) span: Span,
}

pub(super) fn decide_conversion(
    state: &mut FunnelState,
    index: usize,
    step: usize,
    settings: &Settings,
    minute: Minute,
) -> Option<Decision> {
    let aggregate = &state.segments[0].conversions[step];
    let aggregate_alerting = index != 0 && aggregate.alert.is_some_and(|a| !a.covered);
    // The whole funnel has alarmed on this step but not yet decided what it is: a segment
    // waits for it rather than announcing part of the same incident first.
    let aggregate_deciding = index != 0
        && aggregate.alert.is_none()
        && (aggregate.last.alarm_p2 || aggregate.last.alarm_p1);
    let series = &mut state.segments[index].conversions[step];
    let judgement = series.last;
    match series.alert {
        None => {
            if !(judgement.alarm_p2 || judgement.alarm_p1) || aggregate_deciding {
                series.missing_events_run = 0;
                return None;
            }
            // Missing events and leaving shoppers look alike until the shoppers who were already
            // on their way have had time to reach the stage after: call it missing events only
            // once it has looked like that for a whole window of alarmed minutes.
            let pixel = looks_like_missing_events(&state.segments[index].conversions, step);
            let (kind, stage) = if pixel {
                (AlertKind::Volume, step + 1)
            } else {
                (AlertKind::Conversion, step)
            };
            let id = alert_id(state, index, stage, kind, minute);
            let series = &mut state.segments[index].conversions[step];
            if pixel {
                series.missing_events_run += 1;
                if (series.missing_events_run as usize) < settings.window_minutes {
                    return None;
                }
            }
            series.missing_events_run = 0;
            let (severity, span) = label(series, judgement.alarm_p1, settings);
            let alert = OpenAlert {
                id,
                severity,
                kind,
                stage,
                direction: Direction::Worse,
                covered: aggregate_alerting,
                calm: 0,
                enhanced_run: 0,
            };
            series.alert = Some(alert);
            series.status = SeriesStatus::Alerting(alert.severity);
            (!alert.covered).then_some(Decision {
                segment: index,
                step: Some(step),
                alert,
                event: AlertEventKind::Opened,
                span,
            })
        }
        Some(mut alert) => {
            alert.enhanced_run = if judgement.short_sigma.is_some_and(|z| z > ENHANCED_SIGMA) {
                alert.enhanced_run.saturating_add(1)
            } else {
                0
            };
            let calm = judgement.window_sigma.is_none_or(|z| z < SIGMA_P2);
            alert.calm = if calm { alert.calm + 1 } else { 0 };
            let mut decision = None;
            if alert.calm >= settings.close_after_minutes {
                let span = closing_span(series);
                series.reset_after_alert();
                series.status = SeriesStatus::Normal;
                return (!alert.covered).then_some(Decision {
                    segment: index,
                    step: Some(step),
                    alert,
                    event: AlertEventKind::Closed,
                    span,
                });
            }
            if alert.severity == Severity::P2
                && (judgement.alarm_p1 || alert.enhanced_run >= ENHANCED_RUN)
                && let (Severity::P1, span) = label(series, true, settings)
            {
                alert.severity = Severity::P1;
                decision = (!alert.covered).then_some(Decision {
                    segment: index,
                    step: Some(step),
                    alert,
                    event: AlertEventKind::Upgraded,
                    span,
                });
            }
            series.alert = Some(alert);
            series.status = SeriesStatus::Alerting(alert.severity);
            decision
        }
    }
}

/// The severity a conversion alarm is labelled with, and the span whose σ the alert shows.
///
/// The runbook defines P1 as beyond 3σ, and a reader checks the label against the σ beside it.
/// The P1 CUSUM is designed for a sustained 3σ shift, but it may fire on noise around a smaller
/// one (a 2.66σ shift sustained for long enough); so a P1 alarm is labelled P1 only when the
/// σ shown is at least [`SIGMA_P1`]: the σ of the P1 evidence span (the estimated sustained
/// shift), or else of the trailing window (a window beyond the Shewhart limit always is).
/// Otherwise it stays P2 until the evidence says 3σ; the alarm stands, so that is checked again
/// each minute.
fn label(series: &ConversionSeries, alarm_p1: bool, settings: &Settings) -> (Severity, Span) {
    if alarm_p1 {
        let evidence = series.evidence(Severity::P1);
        let window = closing_span(series);
        for span in [evidence, window] {
            if conversion_sigma(series, &span, settings).is_some_and(|z| z >= SIGMA_P1) {
                return (Severity::P1, span);
            }
        }
    }
    (Severity::P2, series.evidence(Severity::P2))
}

/// A conversion span's drop-off in σ of one detection window, in the direction of more
/// drop-off: what an alert shows as `sigma`. `None` for a span without shoppers.
pub(super) fn conversion_sigma(
    series: &ConversionSeries,
    span: &Span,
    settings: &Settings,
) -> Option<f64> {
    if span.n <= 0.0 {
        return None;
    }
    let p0 = span.expected / span.n;
    let observed = 1.0 - span.x / span.n;
    let per_window = span.n / span.minutes.max(1.0) * settings.window_minutes as f64;
    let sd = series.noise.sd(p0, per_window, 0.0);
    Some((observed - p0) / sd)
}

/// Whether a drop in conversion from stage `step` into the next looks like the next stage's
/// events going missing rather than shoppers leaving: shoppers still reach the stage after it
/// as often as usual. Over the trailing window, the relative loss of the two-step conversion
/// (stage `step` to `step + 2`) is under half that of the one step.
fn looks_like_missing_events(conversions: &[ConversionSeries], step: usize) -> bool {
    let Some(next) = conversions.get(step + 1) else {
        return false;
    };
    let [n, x, expected_dropped, _] = conversions[step].trailing.sums();
    let [_, _, _, two_steps_on] = next.trailing.sums();
    let Some(next_drop_off) = next.last.baseline else {
        return false;
    };
    if n <= 0.0 {
        return false;
    }
    let conversion = 1.0 - expected_dropped / n;
    let two_step_conversion = conversion * (1.0 - next_drop_off);
    if conversion <= 0.0 || two_step_conversion <= 0.0 {
        return false;
    }
    let step_loss = 1.0 - (x / n) / conversion;
    let two_step_loss = 1.0 - (two_steps_on / n) / two_step_conversion;
    step_loss > 0.0 && two_step_loss < step_loss / 2.0
}

fn closing_span(series: &ConversionSeries) -> Span {
    let [n, x, expected, _] = series.trailing.sums();
    Span {
        onset: series.span.onset,
        minutes: series.trailing.filled as f64,
        n,
        x,
        expected,
    }
}

pub(super) fn decide_volume(
    state: &mut FunnelState,
    index: usize,
    settings: &Settings,
    minute: Minute,
) -> Option<Decision> {
    let aggregate_alerting =
        index != 0 && state.segments[0].volume.alert.is_some_and(|a| !a.covered);
    let series = &mut state.segments[index].volume;
    let judgement = series.last;
    match series.alert {
        None => {
            if !(judgement.collapse || judgement.surge) {
                return None;
            }
            let direction = if judgement.surge {
                Direction::Surge
            } else {
                Direction::Worse
            };
            let sigma = volume_deficit_sigma(&series.span, series.phi.get());
            let severity = if direction == Direction::Worse && sigma >= SIGMA_P1 {
                Severity::P1
            } else {
                Severity::P2
            };
            let id = alert_id(state, index, 0, AlertKind::Volume, minute);
            let series = &mut state.segments[index].volume;
            let alert = OpenAlert {
                id,
                severity,
                kind: AlertKind::Volume,
                stage: 0,
                direction,
                covered: aggregate_alerting,
                calm: 0,
                enhanced_run: 0,
            };
            series.alert = Some(alert);
            (!alert.covered).then_some(Decision {
                segment: index,
                step: None,
                alert,
                event: AlertEventKind::Opened,
                span: series.span,
            })
        }
        Some(mut alert) => {
            let calm = judgement.window_sigma.is_none_or(|z| z.abs() < SIGMA_P2);
            alert.calm = if calm { alert.calm + 1 } else { 0 };
            if alert.calm >= settings.close_after_minutes {
                let [count, _, expected, _] = series.trailing.sums();
                let span = Span {
                    onset: series.span.onset,
                    minutes: series.trailing.filled as f64,
                    n: count,
                    x: 0.0,
                    expected,
                };
                series.collapse.reset();
                series.surge.reset();
                series.alert = None;
                return (!alert.covered).then_some(Decision {
                    segment: index,
                    step: None,
                    alert,
                    event: AlertEventKind::Closed,
                    span,
                });
            }
            series.alert = Some(alert);
            None
        }
    }
}

/// An alert's id: the same for the same alert on every node and after every restart, as long
/// as the counts are the same, because it names what alerted and when.
fn alert_id(
    state: &FunnelState,
    segment: usize,
    stage: usize,
    kind: AlertKind,
    opened: Minute,
) -> u64 {
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    hasher.update(state.id.as_bytes());
    hasher.update(&[0]);
    if let Some((dimension, value)) = &state.segments[segment].key {
        hasher.update(&(*dimension as u64).to_le_bytes());
        hasher.update(value.as_bytes());
    }
    hasher.update(&[0]);
    hasher.update(&(stage as u64).to_le_bytes());
    hasher.update(kind.as_str().as_bytes());
    hasher.update(&opened.index().to_le_bytes());
    hasher.digest()
}
