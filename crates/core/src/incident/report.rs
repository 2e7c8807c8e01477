//! Statistics over many incidents for reports: spreads of durations. Pure arithmetic on
//! values handed in; it never looks into the engine.

use crate::time::DurationMs;

/// A spread of durations (time to acknowledge, mitigate, resolve) over many incidents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DurationSummary {
    pub count: usize,
    pub mean: DurationMs,
    pub median: DurationMs,
    pub p90: DurationMs,
    pub max: DurationMs,
}

impl DurationSummary {
    /// `None` for no durations. Quantiles are nearest-rank.
    pub fn of(mut durations: Vec<DurationMs>) -> Option<DurationSummary> {
        if durations.is_empty() {
            return None;
        }
        durations.sort();
        let count = durations.len();
        let rank = |q: f64| durations[((q * count as f64).ceil() as usize).clamp(1, count) - 1];
        let total: i128 = durations.iter().map(|d| i128::from(d.millis())).sum();
        Some(DurationSummary {
            count,
            mean: DurationMs::from_millis((total / count as i128) as i64),
            median: rank(0.5),
            p90: rank(0.9),
            max: durations[count - 1],
        })
    }
}
