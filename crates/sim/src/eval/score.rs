//! Scoring: what each run of a scenario found, how fast, against which bound, and how the
//! noise model fits clean traffic. Pure arithmetic on a run's alerts and tallies.

use revloop_core::alert::{AlertEvent, AlertEventKind, AlertKind, Direction, Severity};
use revloop_core::detect::Detector;
use revloop_core::stats;
use revloop_core::time::{DurationMs, MS_PER_MINUTE, Timestamp};

use super::feed::FeedOutput;
use super::suite::ScenarioSpec;
use crate::injection::InjectedIncident;

/// How long after an incident ends an alert about it still counts as a detection.
pub(super) const DETECTION_GRACE: DurationMs = DurationMs::from_minutes(15);

/// Whether an alert at `at` is about the episode `from..=to`: at or after its start, and no
/// later than [`DETECTION_GRACE`] after its end.
fn in_episode(at: Timestamp, from: Timestamp, to: Timestamp) -> bool {
    at >= from && at <= to.saturating_add(DETECTION_GRACE)
}

/// Minutes from an episode's start to an alert about it.
fn delay_minutes(from: Timestamp, at: Timestamp) -> f64 {
    at.since(from).millis() as f64 / MS_PER_MINUTE as f64
}

/// Figures of one scenario.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScenarioResult {
    pub name: String,
    pub runs: usize,
    /// Incidents to find (a relapse counts twice) and found.
    pub incidents: usize,
    pub detected: usize,
    pub delays_minutes: Vec<f64>,
    /// Lorden's bound for each run, in minutes, where it applies: for binomial counts, and for
    /// counts with the between-window variation the traffic actually has. Never below one
    /// minute, the unit of observation.
    pub bounds_minutes: Vec<f64>,
    pub overdispersed_bounds_minutes: Vec<f64>,
    /// Shoppers per minute at the affected stage during each run.
    pub shoppers_per_minute: Vec<f64>,
    /// Alerts of the expected kind and stage that were raised, and those of another kind.
    pub wrong_kind: usize,
    /// Runs whose first alert named the expected top segment, of those that expect one.
    pub top_segment_correct: usize,
    pub top_segment_expected: usize,
    /// Of incidents that hit every shopper alike, first alerts that named no segment (a
    /// named one would be spurious), and how many were checked.
    pub top_segment_none: usize,
    pub top_segment_none_checked: usize,
    pub naive_detected: usize,
    pub naive_delays_minutes: Vec<f64>,
    /// The same at thresholds matched to revloop's false-alarm budget.
    pub matched_detected: usize,
    pub matched_delays_minutes: Vec<f64>,
    pub drop: Option<f64>,
    /// Whether the scenario is a conversion drop at one stage, which the naive detector (that
    /// watches conversion only) can be scored on.
    pub naive_scored: bool,
    /// Alerts of another kind than expected during the runs, for diagnosis.
    pub other_alerts: Vec<AlertEvent>,
}

/// Figures of the whole suite.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EvalReport {
    pub options_summary: String,
    pub clean_weeks: f64,
    pub n_funnels: usize,
    /// False alarms per funnel per week on clean traffic: `[P1, P2]`.
    pub false_alarms_per_week: [f64; 2],
    pub naive_false_alarms_per_week: [f64; 2],
    /// The budgets, per funnel per week.
    pub budget_per_week: [f64; 2],
    /// `[P2, P1]` z thresholds at which the naive detector meets the budgets on clean traffic.
    pub naive_matched_z: [f64; 2],
    pub scenarios: Vec<ScenarioResult>,
    pub arl0_p2_minutes: f64,
    /// The alerts raised on clean traffic: every one is a false alarm.
    pub false_alarms: Vec<AlertEvent>,
    /// How well the noise model fits clean traffic, per step of the first funnel.
    pub calibration: Vec<Calibration>,
}

/// The distribution of the standardised drop-off of non-overlapping windows on clean traffic.
/// If the noise model is right it is close to a standard normal: standard deviation 1, 2.3%
/// above 2σ and 0.13% above 3σ.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Calibration {
    pub stage: String,
    pub windows: usize,
    pub mean: f64,
    pub sd: f64,
    pub above_2: f64,
    pub above_3: f64,
}

impl Calibration {
    pub(super) fn of(stage: &str, z: &[f64]) -> Calibration {
        let n = z.len().max(1) as f64;
        let mean = z.iter().sum::<f64>() / n;
        let sd = (z.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n).sqrt();
        Calibration {
            stage: stage.to_owned(),
            windows: z.len(),
            mean,
            sd,
            above_2: z.iter().filter(|&&v| v > 2.0).count() as f64 / n,
            above_3: z.iter().filter(|&&v| v > 3.0).count() as f64 / n,
        }
    }
}

/// Pages by severity: `[P1, P2]`. An upgrade is a P1 page; a surge is none, unless surges
/// page.
pub(super) fn count_pages(
    events: impl Iterator<Item = (Severity, AlertEventKind, Direction)>,
    page_on_surge: bool,
) -> [usize; 2] {
    let mut counts = [0; 2];
    for (severity, event, direction) in events {
        // A surge pages nobody unless the policy says so (`incidents.page_on_surge`).
        if direction == Direction::Surge && !page_on_surge {
            continue;
        }
        match (event, severity) {
            (AlertEventKind::Opened, Severity::P1) | (AlertEventKind::Upgraded, _) => {
                counts[0] += 1
            }
            (AlertEventKind::Opened, Severity::P2) => counts[1] += 1,
            (AlertEventKind::Closed, _) => {}
        }
    }
    counts
}

/// Scores one run of `spec` into `result`.
pub(super) fn score_run(
    spec: &ScenarioSpec,
    incidents: &[InjectedIncident],
    output: &FeedOutput,
    detector: &Detector,
    result: &mut ScenarioResult,
) {
    result.runs += 1;
    let funnel = &incidents[0].funnel;
    let matches = |alert: &AlertEvent| {
        Some(&alert.funnel) == funnel.as_ref()
            && alert.kind == spec.expect.kind
            && alert.stage == spec.expect.stage
            && alert.event == AlertEventKind::Opened
    };
    // A relapse is a second incident to find; the drift's steps are one.
    let episodes: Vec<(Timestamp, Timestamp)> = if spec.name.starts_with("recovery") {
        incidents.iter().map(|i| (i.from, i.to)).collect()
    } else {
        let epoch = Timestamp::from_millis(0);
        vec![(
            incidents.iter().map(|i| i.from).min().unwrap_or(epoch),
            incidents.iter().map(|i| i.to).max().unwrap_or(epoch),
        )]
    };
    for (index, &(from, to)) in episodes.iter().enumerate() {
        result.incidents += 1;
        let first = output
            .alerts
            .iter()
            .find(|a| matches(a) && in_episode(a.at, from, to));
        if let Some(alert) = first {
            result.detected += 1;
            if spec.expect.top_segment.is_none() && spec.expect.kind == AlertKind::Conversion {
                result.top_segment_none_checked += 1;
                if alert.top_segments.is_empty() {
                    result.top_segment_none += 1;
                }
            }
            result.delays_minutes.push(delay_minutes(from, alert.at));
            if index == 0
                && let Some(want) = &spec.expect.top_segment
            {
                result.top_segment_expected += 1;
                let named = alert.segment.clone().or_else(|| {
                    alert
                        .top_segments
                        .first()
                        .map(|t| (t.dimension.clone(), t.value.clone()))
                });
                if named.as_ref() == Some(want) {
                    result.top_segment_correct += 1;
                }
            }
        } else if index == 0 && spec.expect.top_segment.is_some() {
            result.top_segment_expected += 1;
        }
        if let Some(stage) = spec.expect.bound_stage {
            score_naive(output, stage, (from, to), result);
        }
    }
    let (from, to) = (episodes[0].0, episodes[episodes.len() - 1].1);
    let other: Vec<AlertEvent> = output
        .alerts
        .iter()
        .filter(|a| {
            a.event == AlertEventKind::Opened
                && in_episode(a.at, from, to)
                && a.kind != spec.expect.kind
        })
        .cloned()
        .collect();
    result.wrong_kind += other.len();
    result.other_alerts.extend(other);
    if let (Some(stage), Some(drop)) = (spec.expect.bound_stage, spec.expect.drop) {
        score_bounds(spec, output, detector, (stage, drop), result);
    }
}

/// Scores the runbook-literal detector's first alert at `stage` for the episode `from..to`,
/// at both thresholds.
pub(super) fn score_naive(
    output: &FeedOutput,
    stage: usize,
    (from, to): (Timestamp, Timestamp),
    result: &mut ScenarioResult,
) {
    for variant in 0..2 {
        let first = output.naive.iter().find(|a| {
            a.variant == variant
                && a.stage == stage
                && a.event == AlertEventKind::Opened
                && in_episode(a.at, from, to)
        });
        let (detected, delays) = if variant == 0 {
            (&mut result.naive_detected, &mut result.naive_delays_minutes)
        } else {
            (
                &mut result.matched_detected,
                &mut result.matched_delays_minutes,
            )
        };
        if let Some(alert) = first {
            *detected += 1;
            delays.push(delay_minutes(from, alert.at));
        }
    }
}

/// Shoppers per minute at the affected stage and Lorden's bounds on the delay, binomial and
/// overdispersed, for a conversion drop of `drop` at `stage`.
fn score_bounds(
    spec: &ScenarioSpec,
    output: &FeedOutput,
    detector: &Detector,
    (stage, drop): (usize, f64),
    result: &mut ScenarioResult,
) {
    let minutes = output.tally_minutes.max(1) as f64;
    let n = output.tallies[0][stage] as f64 / minutes;
    result.shoppers_per_minute.push(n);
    let report = detector.report(0);
    let series = report
        .iter()
        .find(|r| r.segment.is_none() && r.stage == spec.expect.stage);
    if let (Some(series), Some(thresholds)) = (series, detector.thresholds(0))
        && let Some(p0) = series.baseline_drop_off
    {
        let c0 = 1.0 - p0;
        let c1 = c0 * (1.0 - drop);
        let arl0 = thresholds.arl0_p2_minutes;
        result
            .bounds_minutes
            .push(stats::delay_lower_bound(arl0, n, c1, c0).max(1.0));
        // Shoppers' worth of information in a minute when a window's rate also varies by
        // τ² between windows (and its binomial term by φ): the binomial variance over the
        // total.
        let window = detector.window_minutes() as f64;
        let binomial = p0 * (1.0 - p0) / n;
        let n_effective =
            n * binomial / (series.binomial_factor * binomial + window * series.overdispersion);
        result
            .overdispersed_bounds_minutes
            .push(stats::delay_lower_bound(arl0, n_effective, c1, c0).max(1.0));
    }
}
