//! Rolling per-minute stage counts up into windows, and the conversion arithmetic.
//!
//! Counts are events per stage per window, not cohorts of shoppers followed through the funnel.
//! For stage `i` in a window:
//!
//! - `step_conversion = min(n[i+1], n[i]) / n[i]`: the share of this stage's shoppers who reached
//!   the next stage; absent on the last stage and when `n[i] == 0`.
//! - `drop_off_rate = 1 - step_conversion`: the share who left at this stage.
//! - `overall_conversion = min(n[i], n[0]) / n[0]`: the share of the funnel's entrants who got here.
//! - `excess = max(0, n[i+1] - n[i])`: when the next stage counts more events than this one (a
//!   shopper who added to cart at 10:00:59 checks out at 10:01:02; a client retried with a new
//!   messageId), conversion is capped at 1 and the surplus is reported here rather than hidden.

use crate::ingest::StageCount;
use crate::time::Minute;

/// Longest rollup the API returns, in windows. A named limit on the response page.
pub const WINDOWS_MAX: usize = 10_000;

/// The per-minute count of one stage, summed over the segments of interest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MinuteCount {
    pub stage: usize,
    pub minute: Minute,
    pub count: StageCount,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    pub start: Minute,
    pub stages: Vec<StageWindow>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StageWindow {
    pub count: StageCount,
    pub step_conversion: Option<f64>,
    pub drop_off_rate: Option<f64>,
    pub overall_conversion: Option<f64>,
    pub excess: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RollupError {
    #[error("step must be a positive number of minutes")]
    BadStep,
    #[error("`from` must be before `to`")]
    EmptyRange,
    #[error("the range holds {n_windows} windows of this step; at most {WINDOWS_MAX} are returned")]
    TooManyWindows { n_windows: i64 },
}

/// The windows of `step_minutes` that cover `[from, to)`, aligned as [`rollup`] aligns them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowSpan {
    /// The first window's index: its first minute's index divided by the step.
    pub first: i64,
    /// At most [`WINDOWS_MAX`].
    pub n_windows: usize,
}

impl WindowSpan {
    /// The checks every rollup makes, so that a request can be refused before anything is read.
    pub fn of(from: Minute, to: Minute, step_minutes: i64) -> Result<WindowSpan, RollupError> {
        if step_minutes <= 0 {
            return Err(RollupError::BadStep);
        }
        if from >= to {
            return Err(RollupError::EmptyRange);
        }
        let first = from.index().div_euclid(step_minutes);
        let last = (to.index() - 1).div_euclid(step_minutes);
        let n_windows = last - first + 1;
        if n_windows > WINDOWS_MAX as i64 {
            return Err(RollupError::TooManyWindows { n_windows });
        }
        Ok(WindowSpan {
            first,
            n_windows: n_windows as usize,
        })
    }
}

/// Sums minute counts into windows of `step_minutes` covering `[from, to)`, aligned to
/// multiples of the step since the epoch, so that the same minute always lands in the same
/// window whatever range is asked for. Counts outside the range, or of stages past
/// `n_stages`, are ignored.
pub fn rollup(
    n_stages: usize,
    counts: &[MinuteCount],
    from: Minute,
    to: Minute,
    step_minutes: i64,
) -> Result<Vec<Window>, RollupError> {
    let WindowSpan { first, n_windows } = WindowSpan::of(from, to, step_minutes)?;
    let mut sums = vec![vec![StageCount::default(); n_stages]; n_windows];
    for count in counts {
        if count.minute < from || count.minute >= to || count.stage >= n_stages {
            continue;
        }
        let index = (count.minute.index().div_euclid(step_minutes) - first) as usize;
        sums[index][count.stage].add(count.count);
    }
    Ok(sums
        .into_iter()
        .enumerate()
        .map(|(index, stage_counts)| Window {
            start: Minute::new((first + index as i64) * step_minutes),
            stages: conversions(&stage_counts),
        })
        .collect())
}

/// The conversion figures of one window, from its per-stage counts.
pub fn conversions(counts: &[StageCount]) -> Vec<StageWindow> {
    let entrants = counts.first().map_or(0, |c| c.n_events);
    counts
        .iter()
        .enumerate()
        .map(|(i, count)| {
            let here = count.n_events;
            let next = counts.get(i + 1).map(|c| c.n_events);
            let step_conversion = match next {
                Some(next) if here > 0 => Some(next.min(here) as f64 / here as f64),
                _ => None,
            };
            StageWindow {
                count: *count,
                step_conversion,
                drop_off_rate: step_conversion.map(|c| 1.0 - c),
                overall_conversion: (entrants > 0)
                    .then(|| here.min(entrants) as f64 / entrants as f64),
                excess: next.map_or(0, |next| next.saturating_sub(here).max(0)),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(n_events: i64) -> StageCount {
        StageCount {
            n_events,
            ..StageCount::default()
        }
    }

    #[test]
    fn conversion_arithmetic() {
        let windows = conversions(&[n(200), n(50), n(60), n(0)]);
        let got: Vec<_> = windows
            .iter()
            .map(|w| {
                (
                    w.step_conversion,
                    w.drop_off_rate,
                    w.overall_conversion,
                    w.excess,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (Some(0.25), Some(0.75), Some(1.0), 0),
                (Some(1.0), Some(0.0), Some(0.25), 10),
                (Some(0.0), Some(1.0), Some(0.3), 0),
                (None, None, Some(0.0), 0),
            ]
        );
        let empty = conversions(&[n(0), n(0)]);
        assert_eq!(empty[0].step_conversion, None);
        assert_eq!(empty[1].overall_conversion, None);
    }

    #[test]
    fn rollup_aligns_windows_to_the_step() {
        let counts = [
            MinuteCount {
                stage: 0,
                minute: Minute::new(4),
                count: n(1),
            },
            MinuteCount {
                stage: 0,
                minute: Minute::new(5),
                count: n(2),
            },
            MinuteCount {
                stage: 1,
                minute: Minute::new(9),
                count: n(1),
            },
            MinuteCount {
                stage: 0,
                minute: Minute::new(10),
                count: n(4),
            },
            MinuteCount {
                stage: 7,
                minute: Minute::new(6),
                count: n(100),
            },
        ];
        let windows = rollup(2, &counts, Minute::new(3), Minute::new(11), 5).unwrap();
        let got: Vec<(i64, i64, i64)> = windows
            .iter()
            .map(|w| {
                (
                    w.start.index(),
                    w.stages[0].count.n_events,
                    w.stages[1].count.n_events,
                )
            })
            .collect();
        assert_eq!(got, [(0, 1, 0), (5, 2, 1), (10, 4, 0)]);
    }

    #[test]
    fn rollup_rejects_bad_ranges() {
        assert_eq!(
            rollup(2, &[], Minute::new(0), Minute::new(10), 0),
            Err(RollupError::BadStep)
        );
        assert_eq!(
            rollup(2, &[], Minute::new(10), Minute::new(10), 1),
            Err(RollupError::EmptyRange)
        );
        assert!(matches!(
            rollup(2, &[], Minute::new(0), Minute::new(1_000_000), 1),
            Err(RollupError::TooManyWindows { .. })
        ));
    }
}
