//! Proving the detector: a seeded suite of simulated incidents, scored on detection delay
//! against Lorden's bound, on misses, on false alarms over clean weeks and on drill-down, next
//! to the runbook-literal detector.
//!
//! Everything here is pure and deterministic: the same config and options give the same
//! report. The simulated events go through the same matching as ingest and are counted per
//! minute in memory, which is exactly what the store would return, without the disk.

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;

use crate::config::{Config, FieldPath};
use crate::detect::{AlertEvent, AlertEventKind, AlertKind, Detector, Severity};
use crate::funnel::{Matcher, Message, StageHit};
use crate::simulate::{self, IncidentKind, InjectedIncident, Scenario, SimEvent};
use crate::stats;
use crate::time::{MS_PER_DAY, MS_PER_HOUR, MS_PER_MINUTE, Minute, Timestamp};

/// Window of the runbook-literal detector, in minutes.
const NAIVE_WINDOW_MINUTES: i64 = 5;
/// Windows of history it takes its mean and standard deviation from: a day.
const NAIVE_HISTORY_WINDOWS: usize = 288;
/// Windows it needs before it judges.
const NAIVE_HISTORY_MIN: usize = 12;
/// How long after an incident ends an alert about it still counts as a detection.
const DETECTION_GRACE_MS: i64 = 15 * MS_PER_MINUTE;

/// Feeds simulated events to detectors, minute by minute.
pub struct Feed {
    matcher: Matcher,
    slot_of: HashMap<FieldPath, usize>,
    dimension_names: Vec<String>,
    n_stages: Vec<usize>,
}

/// What a stretch of simulated traffic produced.
#[derive(Debug, Default)]
pub struct FeedOutput {
    pub alerts: Vec<AlertEvent>,
    pub naive: Vec<NaiveAlert>,
    /// Events per funnel and stage, summed over the minutes `tally` asked for.
    pub tallies: Vec<Vec<i64>>,
    pub tally_minutes: i64,
}

impl Feed {
    pub fn new(config: &Config) -> Feed {
        let matcher = Matcher::new(config);
        let slot_of = matcher
            .slots()
            .iter()
            .enumerate()
            .map(|(index, path)| (path.clone(), index))
            .collect();
        Feed {
            matcher,
            slot_of,
            dimension_names: config.dimensions.iter().map(|d| d.name.clone()).collect(),
            n_stages: config.funnels.iter().map(|f| f.stages.len()).collect(),
        }
    }

    /// Simulates `scenario` into both detectors. Minutes in `tally` are summed per stage.
    pub fn run(
        &self,
        config: &Config,
        scenario: &Scenario,
        detector: &mut Detector,
        naive: &mut NaiveDetector,
        tally: Option<(Minute, Minute)>,
        observer: &mut dyn FnMut(Minute, &Detector),
    ) -> Result<FeedOutput, simulate::ScenarioError> {
        let mut output = FeedOutput {
            tallies: self.n_stages.iter().map(|&n| vec![0; n]).collect(),
            ..FeedOutput::default()
        };
        let mut minute_counts: Vec<Vec<i64>> = self.n_stages.iter().map(|&n| vec![0; n]).collect();
        let mut current: Option<Minute> = None;
        let mut hits = Vec::new();
        let flush = |minute: Minute,
                     counts: &mut Vec<Vec<i64>>,
                     detector: &mut Detector,
                     naive: &mut NaiveDetector,
                     output: &mut FeedOutput,
                     observer: &mut dyn FnMut(Minute, &Detector)| {
            detector.close_minute(minute, &mut output.alerts);
            observer(minute, detector);
            naive.observe(minute, counts, &mut output.naive);
            if let Some((from, to)) = tally
                && (from..to).contains(&minute)
            {
                output.tally_minutes += 1;
                for (sums, row) in output.tallies.iter_mut().zip(counts.iter()) {
                    for (sum, n) in sums.iter_mut().zip(row) {
                        *sum += n;
                    }
                }
            }
            counts
                .iter_mut()
                .for_each(|row| row.iter_mut().for_each(|n| *n = 0));
        };
        simulate::simulate(config, scenario, |event: SimEvent| {
            let minute = event.timestamp.minute();
            if let Some(previous) = current
                && minute != previous
            {
                flush(
                    previous,
                    &mut minute_counts,
                    detector,
                    naive,
                    &mut output,
                    observer,
                );
            }
            current = Some(minute);
            let mut fields: Vec<Option<Cow<str>>> = vec![None; self.matcher.slots().len()];
            for (path, value) in &event.fields {
                if let Some(&slot) = self.slot_of.get(path) {
                    fields[slot] = Some(Cow::Owned(value.to_string()));
                }
            }
            let message = Message {
                kind: event.kind,
                name: Some(&event.name),
                message_id: &event.message_id,
                event_time: event.timestamp,
                fields,
            };
            hits.clear();
            self.matcher.stage_hits(&message, &mut hits);
            if hits.is_empty() {
                return;
            }
            let values = self.matcher.dimension_values(&message);
            for &StageHit { funnel, stage } in &hits {
                minute_counts[funnel][stage] += 1;
                detector.record(funnel, 0, stage, 1);
                for (name, value) in self.dimension_names.iter().zip(values.iter()) {
                    if let Some(segment) = detector.segment(funnel, Some((name, value))) {
                        detector.record(funnel, segment, stage, 1);
                    }
                }
            }
        })?;
        if let Some(last) = current {
            flush(
                last,
                &mut minute_counts,
                detector,
                naive,
                &mut output,
                observer,
            );
        }
        Ok(output)
    }
}

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
        let window_ends = (minute.0 + 1).rem_euclid(NAIVE_WINDOW_MINUTES) == 0;
        let at = Timestamp(minute.start().0 + MS_PER_MINUTE);
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

/// How big a suite to run.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalOptions {
    pub seed: u64,
    pub peak_sessions_per_minute: f64,
    /// Clean weeks the detectors learn from before anything is scored.
    pub learning_weeks: i64,
    /// Clean weeks after learning on which false alarms are counted.
    pub clean_weeks: i64,
    /// Runs of each incident scenario, at different times of day.
    pub runs: usize,
    /// Only the scenarios whose name contains this.
    pub filter: Option<String>,
    /// Monday 00:00 UTC of the first learning week.
    pub start: Timestamp,
}

impl Default for EvalOptions {
    fn default() -> EvalOptions {
        EvalOptions {
            seed: 1,
            peak_sessions_per_minute: 400.0,
            learning_weeks: 3,
            clean_weeks: 4,
            runs: 6,
            filter: None,
            // Monday 2026-10-12 UTC: the learning weeks span the end of daylight saving time in
            // New York and in Europe.
            start: Timestamp(1_791_763_200_000),
        }
    }
}

/// What an incident scenario should raise.
#[derive(Debug, Clone, PartialEq)]
pub struct Expectation {
    pub kind: AlertKind,
    /// Stage id named in the alert.
    pub stage: String,
    /// The dimension value that should top the drill-down.
    pub top_segment: Option<(String, String)>,
    /// The conversion drop, for the delay bound (absent for volume scenarios).
    pub drop: Option<f64>,
    /// Stage whose shoppers convert less, for the bound.
    pub bound_stage: Option<usize>,
}

/// An incident of a scenario: what, when (from the run's start, and how long, in ms), and
/// for which segment.
pub type IncidentSpec = (IncidentKind, i64, i64, Option<(String, String)>);

/// One named scenario of the suite.
#[derive(Debug, Clone)]
pub struct ScenarioSpec {
    pub name: String,
    /// Incidents relative to the run's start, `(kind, offset, duration, segment)`.
    pub incidents: Vec<IncidentSpec>,
    /// Local hours of day at which runs start their first incident.
    pub hours: Vec<f64>,
    pub expect: Expectation,
}

/// The suite of the issue: step drops of 10, 25, 50 and 100% at each stage, a slow drift, a
/// night-time outage, a mobile-only payment failure, a broken tracking pixel, a marketing
/// spike and a recovery followed by a relapse. Stages are those of the config's first funnel.
pub fn standard_suite(config: &Config) -> Vec<ScenarioSpec> {
    let funnel = &config.funnels[0];
    let stage_ids: Vec<&str> = funnel.stages.iter().map(|s| s.id.as_str()).collect();
    let last_step = stage_ids.len() - 2;
    let daytime = vec![10.0, 12.5, 15.0, 17.5, 19.5, 21.0];
    let conversion = |stage: usize, drop: f64| IncidentKind::Conversion {
        stage: stage_ids[stage].to_owned(),
        drop,
    };
    let expect = |stage: usize, drop: f64| Expectation {
        kind: AlertKind::Conversion,
        stage: stage_ids[stage].to_owned(),
        top_segment: None,
        drop: Some(drop),
        bound_stage: Some(stage),
    };
    let mut suite = Vec::new();
    for (stage, _) in stage_ids.iter().enumerate().take(last_step + 1) {
        for drop in [0.10, 0.25, 0.50, 1.0] {
            suite.push(ScenarioSpec {
                name: format!("step {:.0}% at {}", drop * 100.0, stage_ids[stage]),
                incidents: vec![(conversion(stage, drop), 0, 2 * MS_PER_HOUR, None)],
                hours: daytime.clone(),
                expect: expect(stage, drop),
            });
        }
    }
    // A slow drift: conversion at the payment step slides 5% lower every half hour.
    suite.push(ScenarioSpec {
        name: format!("slow drift at {}", stage_ids[last_step]),
        incidents: (1..=8)
            .map(|i| {
                (
                    conversion(last_step, 0.05 * f64::from(i)),
                    i64::from(i - 1) * 30 * MS_PER_MINUTE,
                    30 * MS_PER_MINUTE,
                    None,
                )
            })
            .collect(),
        hours: daytime.clone(),
        expect: Expectation {
            drop: None,
            ..expect(last_step, 0.2)
        },
    });
    suite.push(ScenarioSpec {
        name: format!("night outage at {}", stage_ids[last_step]),
        incidents: vec![(conversion(last_step, 1.0), 0, MS_PER_HOUR, None)],
        hours: vec![2.0, 2.5, 3.0, 3.5, 4.0, 4.5],
        expect: expect(last_step, 1.0),
    });
    let device = config.dimensions.iter().any(|d| d.name == "device");
    if device {
        suite.push(ScenarioSpec {
            name: format!("mobile-only failure at {}", stage_ids[last_step]),
            incidents: vec![(
                conversion(last_step, 0.3),
                0,
                2 * MS_PER_HOUR,
                Some(("device".to_owned(), "mobile".to_owned())),
            )],
            hours: daytime.clone(),
            expect: Expectation {
                top_segment: Some(("device".into(), "mobile".into())),
                ..expect(last_step, 0.3 * 0.58)
            },
        });
        let checkout = stage_ids.len().saturating_sub(3).min(last_step);
        suite.push(ScenarioSpec {
            name: format!("desktop-only 25% drop at {}", stage_ids[checkout]),
            incidents: vec![(
                conversion(checkout, 0.25),
                0,
                2 * MS_PER_HOUR,
                Some(("device".to_owned(), "desktop".to_owned())),
            )],
            hours: daytime.clone(),
            expect: Expectation {
                top_segment: Some(("device".into(), "desktop".into())),
                ..expect(checkout, 0.25 * 0.36)
            },
        });
    }
    // A pixel in the middle of the funnel, so that the stage after it still counts.
    let pixel_stage = (stage_ids.len() / 2).max(1);
    suite.push(ScenarioSpec {
        name: format!("broken pixel at {}", stage_ids[pixel_stage]),
        incidents: vec![(
            IncidentKind::Pixel {
                stage: stage_ids[pixel_stage].to_owned(),
                drop: 0.6,
            },
            0,
            2 * MS_PER_HOUR,
            None,
        )],
        hours: daytime.clone(),
        expect: Expectation {
            kind: AlertKind::Volume,
            stage: stage_ids[pixel_stage].to_owned(),
            top_segment: None,
            drop: None,
            bound_stage: None,
        },
    });
    suite.push(ScenarioSpec {
        name: "marketing spike x3".to_owned(),
        incidents: vec![(
            IncidentKind::Surge { factor: 3.0 },
            0,
            2 * MS_PER_HOUR,
            None,
        )],
        hours: daytime.clone(),
        expect: Expectation {
            kind: AlertKind::Volume,
            stage: stage_ids[0].to_owned(),
            top_segment: None,
            drop: None,
            bound_stage: None,
        },
    });
    suite.push(ScenarioSpec {
        name: format!("recovery then relapse at {}", stage_ids[last_step]),
        incidents: vec![
            (conversion(last_step, 0.5), 0, 45 * MS_PER_MINUTE, None),
            (
                conversion(last_step, 0.5),
                105 * MS_PER_MINUTE,
                45 * MS_PER_MINUTE,
                None,
            ),
        ],
        hours: daytime,
        expect: expect(last_step, 0.5),
    });
    suite
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
    fn of(stage: &str, z: &[f64]) -> Calibration {
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

/// Runs the suite. `progress` hears of each step.
pub fn run_suite(
    config: &Config,
    options: &EvalOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<EvalReport, simulate::ScenarioError> {
    let feed = Feed::new(config);
    let week = 7 * MS_PER_DAY;
    let learned_until = Timestamp(options.start.0 + options.learning_weeks * week);
    let mut detector = Detector::new(config);
    let mut naive = NaiveDetector::new(config);
    progress(&format!(
        "learning from {} weeks of clean traffic",
        options.learning_weeks
    ));
    let clean = |from: Timestamp, to: Timestamp, seed: u64| Scenario {
        from,
        to,
        seed,
        peak_sessions_per_minute: options.peak_sessions_per_minute,
        incidents: Vec::new(),
    };
    feed.run(
        config,
        &clean(options.start, learned_until, options.seed),
        &mut detector,
        &mut naive,
        None,
        &mut |_, _| {},
    )?;
    let learned = detector.clone();
    let mut learned_naive = naive.clone();
    let mut report = EvalReport {
        n_funnels: config.funnels.len(),
        options_summary: format!(
            "seed {}, peak {} sessions/min, {} learning weeks, {} clean weeks, {} runs per scenario",
            options.seed,
            options.peak_sessions_per_minute,
            options.learning_weeks,
            options.clean_weeks,
            options.runs
        ),
        arl0_p2_minutes: learned.thresholds(0).map_or(0.0, |t| t.arl0_p2_minutes),
        ..EvalReport::default()
    };
    let budget = |every_ms: i64| week as f64 / every_ms as f64;
    report.budget_per_week = [
        budget(config.detection.false_p1_every.millis()),
        budget(config.detection.false_p2_every.millis()),
    ];
    if options.clean_weeks > 0 {
        progress(&format!(
            "counting false alarms over {} clean weeks",
            options.clean_weeks
        ));
        let window = config.detection.window.millis() / MS_PER_MINUTE;
        let mut sigmas: Vec<Vec<f64>> = Vec::new();
        naive.record();
        let output = feed.run(
            config,
            &clean(
                learned_until,
                Timestamp(learned_until.0 + options.clean_weeks * week),
                options.seed,
            ),
            &mut detector,
            &mut naive,
            None,
            &mut |minute, detector| {
                if (minute.0 + 1).rem_euclid(window) != 0 {
                    return;
                }
                let reports = detector.report(0);
                let whole = reports.iter().filter(|r| r.segment.is_none());
                for (step, report) in whole.enumerate() {
                    if sigmas.len() <= step {
                        sigmas.push(Vec::new());
                    }
                    if report.status == crate::detect::SeriesStatus::Normal
                        && let Some(z) = report.window_sigma
                    {
                        sigmas[step].push(z);
                    }
                }
            },
        )?;
        let stage_ids = &config.funnels[0].stages;
        report.calibration = sigmas
            .iter()
            .enumerate()
            .map(|(step, z)| Calibration::of(&stage_ids[step].id, z))
            .collect();
        let weeks = options.clean_weeks as f64 * config.funnels.len() as f64;
        report.clean_weeks = options.clean_weeks as f64;
        report.false_alarms_per_week =
            count_pages(output.alerts.iter().map(|a| (a.severity, a.event)))
                .map(|n| n as f64 / weeks);
        report.naive_false_alarms_per_week =
            count_pages(output.naive.iter().map(|a| (a.severity, a.event)))
                .map(|n| n as f64 / weeks);
        report.naive_matched_z =
            naive.add_matched_thresholds(weeks / report.n_funnels as f64, report.budget_per_week);
        learned_naive = naive.clone();
        report.false_alarms = output.alerts;
    }
    let time_zone =
        jiff::tz::TimeZone::get(&config.funnels[0].time_zone).unwrap_or(jiff::tz::TimeZone::UTC);
    for spec in standard_suite(config) {
        if options
            .filter
            .as_ref()
            .is_some_and(|f| !spec.name.contains(f.as_str()))
        {
            continue;
        }
        progress(&spec.name);
        let mut result = ScenarioResult {
            name: spec.name.clone(),
            drop: spec.expect.drop,
            naive_scored: spec.expect.bound_stage.is_some(),
            ..ScenarioResult::default()
        };
        for run in 0..options.runs {
            let hour = spec.hours[run % spec.hours.len()];
            let start = local_time_after(learned_until, hour, &time_zone);
            let incidents: Vec<InjectedIncident> = spec
                .incidents
                .iter()
                .map(|(kind, offset, duration, segment)| InjectedIncident {
                    funnel: Some(config.funnels[0].id.clone()),
                    kind: kind.clone(),
                    from: Timestamp(start.0 + offset),
                    to: Timestamp(start.0 + offset + duration),
                    segment: segment.clone(),
                })
                .collect();
            let end = incidents.iter().map(|i| i.to.0).max().unwrap_or(start.0);
            let scenario = Scenario {
                from: learned_until,
                to: Timestamp(end + DETECTION_GRACE_MS + MS_PER_HOUR),
                seed: options.seed.wrapping_add(1 + run as u64),
                peak_sessions_per_minute: options.peak_sessions_per_minute,
                incidents: incidents.clone(),
            };
            let mut detector = learned.clone();
            let mut naive = learned_naive.clone();
            let output = feed.run(
                config,
                &scenario,
                &mut detector,
                &mut naive,
                Some((
                    start.minute(),
                    Timestamp(start.0 + 30 * MS_PER_MINUTE).minute(),
                )),
                &mut |_, _| {},
            )?;
            score_run(&spec, &incidents, &output, &detector, &mut result);
        }
        report.scenarios.push(result);
    }
    Ok(report)
}

/// Pages by severity: `[P1, P2]`. An upgrade is a P1 page.
fn count_pages(events: impl Iterator<Item = (Severity, AlertEventKind)>) -> [usize; 2] {
    let mut counts = [0; 2];
    for (severity, event) in events {
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

/// The first instant after `after` at `hour` (fractional) local time.
fn local_time_after(after: Timestamp, hour: f64, time_zone: &jiff::tz::TimeZone) -> Timestamp {
    let offset_ms = jiff::Timestamp::from_millisecond(after.0).map_or(0, |instant| {
        i64::from(time_zone.to_offset(instant).seconds()) * 1_000
    });
    let local = after.0 + offset_ms;
    let day_start = local - local.rem_euclid(MS_PER_DAY);
    let mut candidate = day_start + (hour * MS_PER_HOUR as f64) as i64;
    if candidate < local + MS_PER_HOUR {
        candidate += MS_PER_DAY;
    }
    Timestamp(candidate - offset_ms)
}

fn score_run(
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
    let episodes: Vec<(i64, i64)> = if spec.name.starts_with("recovery") {
        incidents.iter().map(|i| (i.from.0, i.to.0)).collect()
    } else {
        vec![(
            incidents.iter().map(|i| i.from.0).min().unwrap_or(0),
            incidents.iter().map(|i| i.to.0).max().unwrap_or(0),
        )]
    };
    for (index, &(from, to)) in episodes.iter().enumerate() {
        result.incidents += 1;
        let first = output
            .alerts
            .iter()
            .find(|a| matches(a) && a.at.0 >= from && a.at.0 <= to + DETECTION_GRACE_MS);
        if let Some(alert) = first {
            result.detected += 1;
            if spec.expect.top_segment.is_none() && spec.expect.kind == AlertKind::Conversion {
                result.top_segment_none_checked += 1;
                if alert.top_segments.is_empty() {
                    result.top_segment_none += 1;
                }
            }
            result
                .delays_minutes
                .push((alert.at.0 - from) as f64 / MS_PER_MINUTE as f64);
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
            for variant in 0..2 {
                let first = output.naive.iter().find(|a| {
                    a.variant == variant
                        && a.stage == stage
                        && a.event == AlertEventKind::Opened
                        && a.at.0 >= from
                        && a.at.0 <= to + DETECTION_GRACE_MS
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
                    delays.push((alert.at.0 - from) as f64 / MS_PER_MINUTE as f64);
                }
            }
        }
    }
    let (from, to) = (episodes[0].0, episodes[episodes.len() - 1].1);
    let other: Vec<AlertEvent> = output
        .alerts
        .iter()
        .filter(|a| {
            a.event == AlertEventKind::Opened
                && a.at.0 >= from
                && a.at.0 <= to + DETECTION_GRACE_MS
                && a.kind != spec.expect.kind
        })
        .cloned()
        .collect();
    result.wrong_kind += other.len();
    result.other_alerts.extend(other);
    if let (Some(stage), Some(drop)) = (spec.expect.bound_stage, spec.expect.drop) {
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
            // τ² between windows: the binomial variance over the total.
            let window = config_window_minutes(detector);
            let binomial = p0 * (1.0 - p0) / n;
            let n_effective = n * binomial / (binomial + window * series.overdispersion);
            result
                .overdispersed_bounds_minutes
                .push(stats::delay_lower_bound(arl0, n_effective, c1, c0).max(1.0));
        }
    }
}

fn config_window_minutes(detector: &Detector) -> f64 {
    detector.window_minutes() as f64
}

impl EvalReport {
    /// The report as Markdown tables.
    pub fn to_markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "Options: {}.\n", self.options_summary);
        let _ = writeln!(
            out,
            "False alarms on {} clean week(s), per funnel per week (budget: P1 {:.3}, P2 {:.3}):\n",
            self.clean_weeks, self.budget_per_week[0], self.budget_per_week[1]
        );
        let _ = writeln!(out, "| detector | P1 | P2 |\n|---|---:|---:|");
        let _ = writeln!(
            out,
            "| revloop | {:.2} | {:.2} |",
            self.false_alarms_per_week[0], self.false_alarms_per_week[1]
        );
        let _ = writeln!(
            out,
            "| runbook-literal z-score | {:.2} | {:.2} |\n",
            self.naive_false_alarms_per_week[0], self.naive_false_alarms_per_week[1]
        );
        if self.clean_weeks > 0.0 {
            let _ = writeln!(
                out,
                "For a comparison at equal false alarms, the z-score detector needs z > {:.2} for P2 and z > {:.2} for P1 to stay within the same budgets on these clean weeks (the \"matched\" columns).\n",
                self.naive_matched_z[0], self.naive_matched_z[1]
            );
        }
        if !self.calibration.is_empty() {
            let _ = writeln!(
                out,
                "Noise model on clean traffic: standardised drop-off of non-overlapping windows (a standard normal has SD 1, 2.28% above 2σ, 0.13% above 3σ):\n"
            );
            let _ = writeln!(
                out,
                "| stage | windows | mean | SD | above 2σ | above 3σ |\n|---|---:|---:|---:|---:|---:|"
            );
            for c in &self.calibration {
                let _ = writeln!(
                    out,
                    "| {} | {} | {:.2} | {:.2} | {:.2}% | {:.2}% |",
                    c.stage,
                    c.windows,
                    c.mean,
                    c.sd,
                    100.0 * c.above_2,
                    100.0 * c.above_3
                );
            }
            let _ = writeln!(out);
        }
        let _ = writeln!(
            out,
            "| scenario | found | missed | delay median / p90 (min) | binomial bound (min) | overdispersed bound (min) | delay ÷ overdispersed bound | shoppers/min | top segment | other kind | naive found | naive median (min) | matched found | matched median (min) |"
        );
        let _ = writeln!(
            out,
            "|---|---:|---:|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|"
        );
        for s in &self.scenarios {
            let median = |v: &[f64]| stats::median(&mut v.to_vec());
            let p90 = |v: &[f64]| stats::quantile(&mut v.to_vec(), 0.9);
            let fmt = |v: Option<f64>| v.map_or("–".to_owned(), |x| format!("{x:.1}"));
            let delay = median(&s.delays_minutes);
            let bound = median(&s.overdispersed_bounds_minutes);
            let ratio = match (delay, bound) {
                (Some(d), Some(b)) if b > 0.0 => format!("{:.1}", d / b),
                _ => "–".to_owned(),
            };
            let top = if s.top_segment_expected > 0 {
                format!("{}/{}", s.top_segment_correct, s.top_segment_expected)
            } else if s.top_segment_none_checked > 0 {
                format!("none {}/{}", s.top_segment_none, s.top_segment_none_checked)
            } else {
                "–".to_owned()
            };
            let found = |n: usize| {
                if s.naive_scored {
                    format!("{n}/{}", s.incidents)
                } else {
                    "–".to_owned()
                }
            };
            let _ = writeln!(
                out,
                "| {} | {}/{} | {} | {} / {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                s.name,
                s.detected,
                s.incidents,
                s.incidents - s.detected,
                fmt(delay),
                fmt(p90(&s.delays_minutes)),
                fmt(median(&s.bounds_minutes)),
                fmt(bound),
                ratio,
                fmt(median(&s.shoppers_per_minute)),
                top,
                s.wrong_kind,
                found(s.naive_detected),
                fmt(median(&s.naive_delays_minutes)),
                found(s.matched_detected),
                fmt(median(&s.matched_delays_minutes)),
            );
        }
        out
    }
}
