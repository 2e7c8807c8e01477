//! Proving the detector: a seeded suite of simulated incidents, scored on detection delay
//! against Lorden's bound, on misses, on false alarms over clean weeks and on drill-down, next
//! to the runbook-literal detector.
//!
//! Everything here is pure and deterministic: the same config and options give the same
//! report. This module runs the suite; its parts each own one concern: [`feed`] counts the
//! simulated events through the same core functions as production ingest, [`naive`] is the
//! runbook-literal detector, [`suite`] defines the scenarios, [`score`] scores the runs and
//! [`render`] writes the Markdown tables.

mod feed;
mod naive;
mod render;
mod score;
mod suite;

#[cfg(test)]
mod tests;

pub use feed::{Feed, FeedOutput};
pub use naive::{NaiveAlert, NaiveDetector};
pub use score::{Calibration, EvalReport, ScenarioResult};
pub use suite::{Expectation, IncidentSpec, ScenarioSpec, standard_suite};

use revloop_core::Config;
use revloop_core::alert::Direction;
use revloop_core::detect::{Detector, SeriesStatus};
use revloop_core::time::{DurationMs, MS_PER_DAY, MS_PER_HOUR, Timestamp};

use crate::injection::InjectedIncident;
use crate::traffic::{ConversionSwing, Scenario, ScenarioError};
use score::{DETECTION_GRACE, count_pages, score_run};

const WEEK_MS: i64 = 7 * MS_PER_DAY;

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
    /// The shop: how its conversion moves through the day.
    pub shop: ConversionSwing,
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
            start: Timestamp::from_millis(1_791_763_200_000),
            shop: ConversionSwing::None,
        }
    }
}

/// The state after the learning weeks, from which every scenario run starts.
struct Learned {
    feed: Feed,
    detector: Detector,
    /// The runbook-literal detector after the clean weeks too, with its matched thresholds.
    naive: NaiveDetector,
    until: Timestamp,
}

/// Runs the suite. `progress` hears of each step.
pub fn run_suite(
    config: &Config,
    options: &EvalOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<EvalReport, ScenarioError> {
    let mut feed = Feed::new(config);
    let learned_until = options
        .start
        .saturating_add(DurationMs::from_millis(options.learning_weeks * WEEK_MS));
    let mut detector = Detector::new(config);
    let mut naive = NaiveDetector::new(config);
    progress(&format!(
        "learning from {} weeks of clean traffic",
        options.learning_weeks
    ));
    feed.run(
        config,
        &clean_scenario(options, options.start, learned_until),
        &mut detector,
        &mut naive,
        None,
        &mut |_, _, _| {},
    )?;
    let mut learned = Learned {
        feed: feed.clone(),
        detector: detector.clone(),
        naive: naive.clone(),
        until: learned_until,
    };
    let mut report = empty_report(config, options, &learned.detector);
    if options.clean_weeks > 0 {
        progress(&format!(
            "counting false alarms over {} clean weeks",
            options.clean_weeks
        ));
        count_false_alarms(
            config,
            options,
            &learned,
            (feed, detector, &mut naive),
            &mut report,
        )?;
        learned.naive = naive;
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
        let result = run_scenario(config, options, &spec, &learned, &time_zone)?;
        report.scenarios.push(result);
    }
    Ok(report)
}

/// Clean traffic, with no incident, from `from` to `to`.
fn clean_scenario(options: &EvalOptions, from: Timestamp, to: Timestamp) -> Scenario {
    Scenario {
        conversion_swing: options.shop,
        from,
        to,
        seed: options.seed,
        peak_sessions_per_minute: options.peak_sessions_per_minute,
        incidents: Vec::new(),
    }
}

/// The report before anything is scored: options, budgets and the learned thresholds.
fn empty_report(config: &Config, options: &EvalOptions, learned: &Detector) -> EvalReport {
    let budget = |every_ms: i64| WEEK_MS as f64 / every_ms as f64;
    EvalReport {
        n_funnels: config.funnels.len(),
        options_summary: format!(
            "{} shop, seed {}, peak {} sessions/min, {} learning weeks, {} clean weeks, {} runs per scenario",
            options.shop.name(),
            options.seed,
            options.peak_sessions_per_minute,
            options.learning_weeks,
            options.clean_weeks,
            options.runs
        ),
        arl0_p2_minutes: learned.thresholds(0).map_or(0.0, |t| t.arl0_p2_minutes),
        budget_per_week: [
            budget(config.detection.false_p1_every.millis()),
            budget(config.detection.false_p2_every.millis()),
        ],
        ..EvalReport::default()
    }
}

/// Runs the clean weeks after learning, continuing the learned state: false alarms of both
/// detectors, the noise model's calibration, and the naive detector's matched thresholds.
fn count_false_alarms(
    config: &Config,
    options: &EvalOptions,
    learned: &Learned,
    (mut feed, mut detector, naive): (Feed, Detector, &mut NaiveDetector),
    report: &mut EvalReport,
) -> Result<(), ScenarioError> {
    let window = config.detection.window.whole_minutes();
    let mut sigmas: Vec<Vec<f64>> = Vec::new();
    naive.record();
    let output = feed.run(
        config,
        &clean_scenario(
            options,
            learned.until,
            learned
                .until
                .saturating_add(DurationMs::from_millis(options.clean_weeks * WEEK_MS)),
        ),
        &mut detector,
        naive,
        None,
        &mut |minute, detector, _| {
            if (minute.index() + 1).rem_euclid(window) != 0 {
                return;
            }
            let reports = detector.report(0);
            let whole = reports.iter().filter(|r| r.segment.is_none());
            for (step, report) in whole.enumerate() {
                if sigmas.len() <= step {
                    sigmas.push(Vec::new());
                }
                if report.status == SeriesStatus::Normal
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
    let page_on_surge = config.incidents.page_on_surge;
    report.false_alarms_per_week = count_pages(
        output
            .alerts
            .iter()
            .map(|a| (a.severity, a.event, a.direction)),
        page_on_surge,
    )
    .map(|n| n as f64 / weeks);
    // The runbook-literal detector judges drop-off only: it never sees a surge.
    report.naive_false_alarms_per_week = count_pages(
        output
            .naive
            .iter()
            .map(|a| (a.severity, a.event, Direction::Worse)),
        page_on_surge,
    )
    .map(|n| n as f64 / weeks);
    report.naive_matched_z =
        naive.add_matched_thresholds(weeks / report.n_funnels as f64, report.budget_per_week);
    report.false_alarms = output.alerts;
    Ok(())
}

/// Runs one scenario `options.runs` times from the learned state, each at one of its hours.
fn run_scenario(
    config: &Config,
    options: &EvalOptions,
    spec: &ScenarioSpec,
    learned: &Learned,
    time_zone: &jiff::tz::TimeZone,
) -> Result<ScenarioResult, ScenarioError> {
    let mut result = ScenarioResult {
        name: spec.name.clone(),
        drop: spec.expect.drop,
        naive_scored: spec.expect.bound_stage.is_some(),
        ..ScenarioResult::default()
    };
    for run in 0..options.runs {
        let hour = spec.hours[run % spec.hours.len()];
        let start = local_time_after(learned.until, hour, time_zone);
        let incidents: Vec<InjectedIncident> = spec
            .incidents
            .iter()
            .map(|incident| {
                let from = start.saturating_add(incident.offset);
                InjectedIncident {
                    funnel: Some(config.funnels[0].id.clone()),
                    kind: incident.kind.clone(),
                    from,
                    to: from.saturating_add(incident.duration),
                    segment: incident.segment.clone(),
                }
            })
            .collect();
        let end = incidents.iter().map(|i| i.to).max().unwrap_or(start);
        let scenario = Scenario {
            conversion_swing: options.shop,
            from: learned.until,
            to: end
                .saturating_add(DETECTION_GRACE)
                .saturating_add(DurationMs::from_hours(1)),
            seed: options.seed.wrapping_add(1 + run as u64),
            peak_sessions_per_minute: options.peak_sessions_per_minute,
            incidents: incidents.clone(),
        };
        let mut feed = learned.feed.clone();
        let mut detector = learned.detector.clone();
        let mut naive = learned.naive.clone();
        let output = feed.run(
            config,
            &scenario,
            &mut detector,
            &mut naive,
            Some((
                start.minute(),
                start.saturating_add(DurationMs::from_minutes(30)).minute(),
            )),
            &mut |_, _, _| {},
        )?;
        score_run(spec, &incidents, &output, &detector, &mut result);
    }
    Ok(result)
}

/// The first instant after `after` at `hour` (fractional) local time.
fn local_time_after(after: Timestamp, hour: f64, time_zone: &jiff::tz::TimeZone) -> Timestamp {
    let offset_ms = after.utc_offset_in(time_zone).millis();
    let local = after.local_millis(time_zone);
    let day_start = local - local.rem_euclid(MS_PER_DAY);
    let mut candidate = day_start + (hour * MS_PER_HOUR as f64) as i64;
    if candidate < local + MS_PER_HOUR {
        candidate += MS_PER_DAY;
    }
    Timestamp::from_millis(candidate - offset_ms)
}
