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

/// A spread of durations to one milestone (acknowledge, mitigate, resolve) over incidents of
/// which some have not reached it yet and are still open: censored observations. Each incident
/// still waiting counts with the time it has waited so far, so every figure is a lower bound,
/// read "at least": the true mean, median, 90th percentile and maximum can only be higher,
/// since a waiting incident reaches the milestone (if it ever does) later than now. Without
/// it, an incident nobody acknowledges would vanish from the time to acknowledge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CensoredSummary {
    /// Incidents that reached the milestone.
    pub reached: usize,
    /// Incidents still open that have not (censored at the time waited so far).
    pub waiting: usize,
    pub mean_at_least: DurationMs,
    pub median_at_least: DurationMs,
    pub p90_at_least: DurationMs,
    pub max_at_least: DurationMs,
}

impl CensoredSummary {
    /// `None` when there is no incident at all; `reached` are the durations to the milestone,
    /// `waiting` the times waited so far by those still waiting.
    pub fn of(reached: Vec<DurationMs>, waiting: Vec<DurationMs>) -> Option<CensoredSummary> {
        let (n_reached, n_waiting) = (reached.len(), waiting.len());
        let all = DurationSummary::of(reached.into_iter().chain(waiting).collect())?;
        Some(CensoredSummary {
            reached: n_reached,
            waiting: n_waiting,
            mean_at_least: all.mean,
            median_at_least: all.median,
            p90_at_least: all.p90,
            max_at_least: all.max,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minutes(values: &[i64]) -> Vec<DurationMs> {
        values
            .iter()
            .map(|m| DurationMs::from_minutes(*m))
            .collect()
    }

    /// (reached, waiting, mean, median, max), minutes for durations.
    type Expected = Option<(usize, usize, i64, i64, i64)>;

    /// (reached, waiting so far) → the summary.
    #[test]
    fn open_incidents_count_at_the_time_they_have_waited() {
        let cases: [(&[i64], &[i64], Expected); 4] = [
            (&[], &[], None),
            // Two never-acknowledged P1s, open a day and four days: they no longer vanish.
            (&[], &[1_440, 5_760], Some((0, 2, 3_600, 1_440, 5_760))),
            (&[10, 20], &[], Some((2, 0, 15, 10, 20))),
            (&[10, 20], &[1_440, 5_760], Some((2, 2, 1_807, 20, 5_760))),
        ];
        for (reached, waiting, want) in cases {
            let got = CensoredSummary::of(minutes(reached), minutes(waiting)).map(|s| {
                (
                    s.reached,
                    s.waiting,
                    s.mean_at_least.whole_minutes(),
                    s.median_at_least.whole_minutes(),
                    s.max_at_least.whole_minutes(),
                )
            });
            assert_eq!(got, want, "{reached:?} {waiting:?}");
        }
    }

    /// Every "at least" figure is a lower bound: whenever the waiting incidents reach the
    /// milestone later, the true summary is at least as high.
    #[test]
    fn at_least_figures_bound_the_true_ones_from_below() {
        let reached = minutes(&[5, 9, 30, 31, 200]);
        let waiting = minutes(&[60, 600]);
        let bound = CensoredSummary::of(reached.clone(), waiting.clone()).unwrap();
        for extra in [0, 1, 50, 10_000] {
            let eventually: Vec<DurationMs> = waiting
                .iter()
                .map(|w| DurationMs::from_millis(w.millis() + extra * 60_000))
                .collect();
            let truth =
                DurationSummary::of(reached.iter().copied().chain(eventually).collect()).unwrap();
            assert!(bound.mean_at_least <= truth.mean);
            assert!(bound.median_at_least <= truth.median);
            assert!(bound.p90_at_least <= truth.p90);
            assert!(bound.max_at_least <= truth.max);
        }
    }
}
