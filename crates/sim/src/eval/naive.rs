//! The runbook-literal detector the suite compares revloop with: a z-score of each 5-minute
//! drop-off rate against the trailing day's windows. It reads the same per-minute stage counts
//! as revloop's detector and nothing else; it is a yardstick, never used in production.

use std::collections::VecDeque;

use revloop_core::Config;
use revloop_core::alert::{AlertEventKind, Severity};
use revloop_core::time::{Minute, Timestamp};

/// Window of the runbook-literal detector, in minutes.
const NAIVE_WINDOW_MINUTES: i64 = 5;
/// Windows of history it takes its mean and standard deviation from: a day.
const NAIVE_HISTORY_WINDOWS: usize = 288;
/// Windows it needs before it judges.
const NAIVE_HISTORY_MIN: usize = 12;

/// An alert of the runbook-literal detector.
#[derive(Debug, Clone, PartialEq)]
pub struct NaiveAlert {
    /// Which thresholds: 0 the runbook's (2σ and 3σ), 1 those matched to revloop's budget.
    pub variant: usize,
    pub funnel: usize,
    pub stage: usize,
    pub severity: Severity,
    pub event: AlertEventKind,
    pub at: Timestamp,
}

/// The runbook read literally: each 5-minute window's drop-off rate as a z-score against the
/// mean and standard deviation of the trailing day's windows; above 2 is P2, above 3 is P1.
/// A second set of thresholds, matched to revloop's false-alarm budget on clean traffic, makes
/// the comparison fair at equal false alarms.
#[derive(Debug, Clone)]
pub struct NaiveDetector {
    /// Per funnel, per step.
    steps: Vec<Vec<NaiveStep>>,
    /// `[P2, P1]` z thresholds per variant.
    thresholds: Vec<[f64; 2]>,
    /// When recording, the z of every judged window, per funnel and step.
    recorded: Option<Vec<Vec<Vec<f64>>>>,
}

#[derive(Debug, Clone, Default)]
struct NaiveStep {
    /// `[n, x]` of the window being gathered.
    window: [i64; 2],
    history: VecDeque<f64>,
    open: Vec<Option<Severity>>,
}

/// The runbook's own thresholds.
const RUNBOOK_Z: [f64; 2] = [2.0, 3.0];

impl NaiveDetector {
    pub fn new(config: &Config) -> NaiveDetector {
        NaiveDetector {
            steps: config
                .funnels
                .iter()
                .map(|f| vec![NaiveStep::default(); f.stages.len() - 1])
                .collect(),
            thresholds: vec![RUNBOOK_Z],
            recorded: None,
        }
    }

    /// Starts keeping the z of every judged window.
    pub fn record(&mut self) {
        self.recorded = Some(
            self.steps
                .iter()
                .map(|steps| vec![Vec::new(); steps.len()])
                .collect(),
        );
    }

    /// Adds a variant with the lowest thresholds that would have raised no more than
    /// `per_week` `[P2, P1]` alerts per funnel per week over the recorded windows.
    pub fn add_matched_thresholds(&mut self, weeks: f64, per_week: [f64; 2]) -> [f64; 2] {
        let recorded = self.recorded.take().unwrap_or_default();
        let n_funnels = recorded.len().max(1) as f64;
        let alerts_per_week = |threshold: f64| {
            let crossings: usize = recorded
                .iter()
                .flatten()
                .map(|z| {
                    z.windows(2)
                        .filter(|w| w[0] <= threshold && w[1] > threshold)
                        .count()
                })
                .sum();
            crossings as f64 / (weeks * n_funnels)
        };
        let lowest_within = |budget: f64| {
            let (mut low, mut high) = (RUNBOOK_Z[0], 50.0);
            for _ in 0..60 {
                let mid = 0.5 * (low + high);
                if alerts_per_week(mid) > budget {
                    low = mid;
                } else {
                    high = mid;
                }
            }
            high
        };
        let p2 = lowest_within(per_week[1]);
        let p1 = lowest_within(per_week[0]).max(p2);
        self.thresholds.push([p2, p1]);
        [p2, p1]
    }

    pub fn observe(&mut self, minute: Minute, counts: &[Vec<i64>], alerts: &mut Vec<NaiveAlert>) {
        let window_ends = (minute.index() + 1).rem_euclid(NAIVE_WINDOW_MINUTES) == 0;
        let at = minute.end();
        for (funnel, steps) in self.steps.iter_mut().enumerate() {
            for (stage, step) in steps.iter_mut().enumerate() {
                let n = counts[funnel][stage];
                step.window[0] += n;
                step.window[1] += counts[funnel][stage + 1].min(n);
                if !window_ends {
                    continue;
                }
                let [wn, wx] = std::mem::take(&mut step.window);
                if wn == 0 {
                    continue;
                }
                let drop_off = 1.0 - wx as f64 / wn as f64;
                if step.history.len() >= NAIVE_HISTORY_MIN {
                    let len = step.history.len() as f64;
                    let mean = step.history.iter().sum::<f64>() / len;
                    let variance = step
                        .history
                        .iter()
                        .map(|d| (d - mean) * (d - mean))
                        .sum::<f64>()
                        / (len - 1.0);
                    let z = (drop_off - mean) / variance.sqrt().max(1e-9);
                    if let Some(recorded) = &mut self.recorded {
                        recorded[funnel][stage].push(z);
                    }
                    step.open.resize(self.thresholds.len(), None);
                    for (variant, &[p2, p1]) in self.thresholds.iter().enumerate() {
                        let severity = if z > p1 {
                            Some(Severity::P1)
                        } else if z > p2 {
                            Some(Severity::P2)
                        } else {
                            None
                        };
                        let open = step.open[variant];
                        let event = match (open, severity) {
                            (None, Some(_)) => AlertEventKind::Opened,
                            (Some(Severity::P2), Some(Severity::P1)) => AlertEventKind::Upgraded,
                            (Some(_), None) => AlertEventKind::Closed,
                            _ => continue,
                        };
                        let severity = match (event, open, severity) {
                            (AlertEventKind::Closed, Some(open), _) => open,
                            (_, _, Some(severity)) => severity,
                            _ => continue,
                        };
                        alerts.push(NaiveAlert {
                            variant,
                            funnel,
                            stage,
                            severity,
                            event,
                            at,
                        });
                        step.open[variant] = (event != AlertEventKind::Closed).then_some(severity);
                    }
                }
                step.history.push_back(drop_off);
                if step.history.len() > NAIVE_HISTORY_WINDOWS {
                    step.history.pop_front();
                }
            }
        }
    }
}
