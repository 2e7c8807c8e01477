//! The false-alarm budget of each funnel, turned into CUSUM thresholds.
//!
//! Each funnel's budget (a false P2 every `false_p2_every`, a false P1 every `false_p1_every`)
//! is split between the series it watches: half to the funnel as a whole, half shared by its
//! segments, so the multiple testing is paid for. Each series' threshold is then set by
//! Siegmund's approximation of its in-control average run length. This module only computes;
//! it never holds state and never judges a minute.

use super::{SIGMA_P1, SIGMA_P2, Settings};
use crate::stats;

/// Share of each funnel's false-alarm budget spent on the funnel as a whole; the rest is shared
/// by its segments.
const AGGREGATE_BUDGET_SHARE: f64 = 0.5;
/// The window test that stops the line at once needs a deviation of at least this many σ (more
/// where the P1 budget asks).
const SHEWHART_SIGMA_MIN: f64 = 5.0;
/// Shifts, in σ of one minute, over which volume thresholds are made safe.
const VOLUME_DELTAS: [f64; 8] = [0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0];

/// CUSUM thresholds for one funnel, from its false-alarm budgets.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Thresholds {
    pub conversion_p2: f64,
    pub conversion_p1: f64,
    /// Deviation of the trailing window, in σ, that raises a P1 on its own.
    pub shewhart_sigma: f64,
    pub volume: f64,
    /// The in-control average run lengths, in minutes, they were set for.
    pub arl0_p2_minutes: f64,
    pub arl0_p1_minutes: f64,
}

/// The thresholds of a funnel of `n_stages` stages watching `n_segments` segments: those of the
/// funnel as a whole, then those of each of its segments.
pub(super) fn funnel_thresholds(
    settings: &Settings,
    n_stages: usize,
    n_segments: usize,
) -> [Thresholds; 2] {
    // Series of one segment: a conversion series per step, and volume collapse and surge.
    let per_segment = (n_stages - 1 + 2) as f64;
    let (share, n_series) = if settings.watch_segments {
        (AGGREGATE_BUDGET_SHARE, per_segment)
    } else {
        (1.0, per_segment)
    };
    // The aggregate's series get `share` of the budget; so do the segments', spread over
    // however many segments there are. The thresholds below are for the stricter of the
    // two, the segments', when there are any: the aggregate's are then lower.
    let arl0 = |every_minutes: f64, series: f64, share: f64| every_minutes * series / share;
    let segment_series = (n_segments.max(1)) as f64 * per_segment;
    let p2_agg = arl0(settings.false_p2_minutes, n_series, share);
    let p1_agg = arl0(settings.false_p1_minutes, n_series, share);
    let p2_seg = arl0(settings.false_p2_minutes, segment_series, 1.0 - share);
    let p1_seg = arl0(settings.false_p1_minutes, segment_series, 1.0 - share);
    let window = settings.window_minutes as f64;
    let delta_p2 = SIGMA_P2 / window.sqrt();
    let delta_p1 = SIGMA_P1 / window.sqrt();
    let volume_threshold = |arl0: f64| {
        VOLUME_DELTAS
            .iter()
            .map(|&delta| stats::llr_cusum_threshold(delta, arl0))
            .fold(0.0, f64::max)
    };
    let shewhart = |arl0: f64| stats::normal_upper_quantile(1.0 / arl0).max(SHEWHART_SIGMA_MIN);
    let thresholds = Thresholds {
        conversion_p2: stats::llr_cusum_threshold(delta_p2, p2_agg),
        conversion_p1: stats::llr_cusum_threshold(delta_p1, p1_agg),
        shewhart_sigma: shewhart(p1_agg),
        volume: volume_threshold(p2_agg),
        arl0_p2_minutes: p2_agg,
        arl0_p1_minutes: p1_agg,
    };
    let segment_thresholds = Thresholds {
        conversion_p2: stats::llr_cusum_threshold(delta_p2, p2_seg),
        conversion_p1: stats::llr_cusum_threshold(delta_p1, p1_seg),
        shewhart_sigma: shewhart(p1_seg),
        volume: volume_threshold(p2_seg),
        arl0_p2_minutes: p2_seg,
        arl0_p1_minutes: p1_seg,
    };
    [thresholds, segment_thresholds]
}
