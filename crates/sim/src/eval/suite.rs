//! The suite's definition: which incident scenarios run, at which local hours, and what each
//! should raise. Data only; running and scoring them is elsewhere.

use revloop_core::Config;
use revloop_core::alert::AlertKind;
use revloop_core::time::DurationMs;

use crate::injection::IncidentKind;

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

/// An incident of a scenario: what, when (from the run's start), for how long, and for which
/// segment.
#[derive(Debug, Clone, PartialEq)]
pub struct IncidentSpec {
    pub kind: IncidentKind,
    /// When it starts, after the run's start.
    pub offset: DurationMs,
    pub duration: DurationMs,
    /// The one segment it hits; `None` for the whole funnel.
    pub segment: Option<(String, String)>,
}

impl IncidentSpec {
    /// An incident of the whole funnel, `offset` after the run's start, lasting `duration`.
    pub fn new(kind: IncidentKind, offset: DurationMs, duration: DurationMs) -> IncidentSpec {
        IncidentSpec {
            kind,
            offset,
            duration,
            segment: None,
        }
    }
}

/// One named scenario of the suite.
#[derive(Debug, Clone)]
pub struct ScenarioSpec {
    pub name: String,
    /// Incidents relative to the run's start.
    pub incidents: Vec<IncidentSpec>,
    /// Local hours of day at which runs start their first incident.
    pub hours: Vec<f64>,
    pub expect: Expectation,
}

/// The suite of the issue: step drops of 10, 25, 50 and 100% at each stage, a slow drift, a
/// night-time outage, a mobile-only payment failure, a broken tracking pixel, a marketing
/// spike and a recovery followed by a relapse. Stages are those of the config's first funnel.
pub fn standard_suite(config: &Config) -> Vec<ScenarioSpec> {
    let stages = Stages::of(config);
    let stage_ids = &stages.ids;
    let last_step = stage_ids.len() - 2;
    let daytime = daytime_hours();
    let conversion = |stage: usize, drop: f64| stages.conversion(stage, drop);
    let expect = |stage: usize, drop: f64| stages.expect(stage, drop);
    let mut suite = Vec::new();
    for (stage, _) in stage_ids.iter().enumerate().take(last_step + 1) {
        for drop in [0.10, 0.25, 0.50, 1.0] {
            suite.push(ScenarioSpec {
                name: format!("step {:.0}% at {}", drop * 100.0, stage_ids[stage]),
                incidents: vec![IncidentSpec::new(
                    conversion(stage, drop),
                    DurationMs::ZERO,
                    DurationMs::from_hours(2),
                )],
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
                IncidentSpec::new(
                    conversion(last_step, 0.05 * f64::from(i)),
                    DurationMs::from_minutes(i64::from(i - 1) * 30),
                    DurationMs::from_minutes(30),
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
        incidents: vec![IncidentSpec::new(
            conversion(last_step, 1.0),
            DurationMs::ZERO,
            DurationMs::from_hours(1),
        )],
        hours: vec![2.0, 2.5, 3.0, 3.5, 4.0, 4.5],
        expect: expect(last_step, 1.0),
    });
    suite.extend(segment_scenarios(config, &stages));
    // A pixel in the middle of the funnel, so that the stage after it still counts.
    let pixel_stage = (stage_ids.len() / 2).max(1);
    suite.push(ScenarioSpec {
        name: format!("broken pixel at {}", stage_ids[pixel_stage]),
        incidents: vec![IncidentSpec::new(
            IncidentKind::Pixel {
                stage: stage_ids[pixel_stage].to_owned(),
                drop: 0.6,
            },
            DurationMs::ZERO,
            DurationMs::from_hours(2),
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
        incidents: vec![IncidentSpec::new(
            IncidentKind::Surge { factor: 3.0 },
            DurationMs::ZERO,
            DurationMs::from_hours(2),
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
            IncidentSpec::new(
                conversion(last_step, 0.5),
                DurationMs::ZERO,
                DurationMs::from_minutes(45),
            ),
            IncidentSpec::new(
                conversion(last_step, 0.5),
                DurationMs::from_minutes(105),
                DurationMs::from_minutes(45),
            ),
        ],
        hours: daytime,
        expect: expect(last_step, 0.5),
    });
    suite
}

/// Local hours of day at which daytime runs start.
fn daytime_hours() -> Vec<f64> {
    vec![10.0, 12.5, 15.0, 17.5, 19.5, 21.0]
}

/// The stage ids of the config's first funnel, and the conversion incidents and expectations
/// at them.
struct Stages<'c> {
    ids: Vec<&'c str>,
}

impl<'c> Stages<'c> {
    fn of(config: &'c Config) -> Stages<'c> {
        Stages {
            ids: config.funnels[0]
                .stages
                .iter()
                .map(|s| s.id.as_str())
                .collect(),
        }
    }

    fn conversion(&self, stage: usize, drop: f64) -> IncidentKind {
        IncidentKind::Conversion {
            stage: self.ids[stage].to_owned(),
            drop,
        }
    }

    fn expect(&self, stage: usize, drop: f64) -> Expectation {
        Expectation {
            kind: AlertKind::Conversion,
            stage: self.ids[stage].to_owned(),
            top_segment: None,
            drop: Some(drop),
            bound_stage: Some(stage),
        }
    }
}

/// Failures of one device only, where the config has a `device` dimension.
fn segment_scenarios(config: &Config, stages: &Stages) -> Vec<ScenarioSpec> {
    if !config.dimensions.iter().any(|d| d.name == "device") {
        return Vec::new();
    }
    let stage_ids = &stages.ids;
    let last_step = stage_ids.len() - 2;
    let daytime = daytime_hours();
    // A failure of one device's shoppers: `drop` of theirs at `stage`, which is `share` of the
    // stage's shoppers, so the whole funnel converts `drop * share` less.
    let one_device = |name: String, device: &str, stage: usize, drop: f64, share: f64| {
        let segment = ("device".to_owned(), device.to_owned());
        ScenarioSpec {
            name,
            incidents: vec![IncidentSpec {
                segment: Some(segment.clone()),
                ..IncidentSpec::new(
                    stages.conversion(stage, drop),
                    DurationMs::ZERO,
                    DurationMs::from_hours(2),
                )
            }],
            hours: daytime.clone(),
            expect: Expectation {
                top_segment: Some(segment),
                ..stages.expect(stage, drop * share)
            },
        }
    };
    let checkout = stage_ids.len().saturating_sub(3).min(last_step);
    vec![
        one_device(
            format!("mobile-only failure at {}", stage_ids[last_step]),
            "mobile",
            last_step,
            0.3,
            0.58,
        ),
        one_device(
            format!("desktop-only 25% drop at {}", stage_ids[checkout]),
            "desktop",
            checkout,
            0.25,
            0.36,
        ),
    ]
}
