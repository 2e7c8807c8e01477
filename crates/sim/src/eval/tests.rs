//! The suite's own parts, tested as tables: scoring (detection delay, misses, alerts of the
//! wrong kind, false-alarm pages), the naive detector's scoring, rendering, and the feed's
//! folding of dimension values as production ingest does.

use std::collections::BTreeSet;

use revloop_core::Config;
use revloop_core::alert::{AlertEvent, AlertEventKind, AlertKind, Direction, Severity, TopSegment};
use revloop_core::detect::Detector;
use revloop_core::funnel::{Matcher, StageHit};
use revloop_core::time::{MS_PER_HOUR, MS_PER_MINUTE, Timestamp};

use super::naive::NaiveAlert;
use super::score::{count_pages, score_naive};
use super::*;
use crate::injection::IncidentKind;
use crate::traffic::tests::as_message;
use crate::traffic::{SimEvent, simulate};

/// Wednesday 2026-11-18 15:00 UTC, where every incident of these tests starts.
const T0: i64 = 1_795_014_000_000;

fn example() -> Config {
    Config::parse(Config::example_toml()).unwrap()
}

fn at_minute(offset_minutes: i64) -> Timestamp {
    Timestamp::from_millis(T0 + offset_minutes * MS_PER_MINUTE)
}

/// An alert `offset_minutes` after the incident's start.
fn alert(offset_minutes: i64, kind: AlertKind, stage: &str, event: AlertEventKind) -> AlertEvent {
    AlertEvent {
        alert_id: 0,
        funnel: "checkout".into(),
        stage: stage.into(),
        kind,
        severity: Severity::P2,
        event,
        direction: Direction::Worse,
        at: at_minute(offset_minutes),
        onset: at_minute(offset_minutes),
        segment: None,
        baseline_rate: 0.0,
        observed_rate: 0.0,
        sigma: 0.0,
        n: 0,
        top_segments: Vec::new(),
    }
}

fn opened(offset_minutes: i64, kind: AlertKind, stage: &str) -> AlertEvent {
    alert(offset_minutes, kind, stage, AlertEventKind::Opened)
}

/// A conversion drop at `cart` for two hours from [`T0`] (with a relapse after 105 minutes
/// for `recovery` names), scored on `alerts`.
fn score(name: &str, top_segment: Option<(&str, &str)>, alerts: Vec<AlertEvent>) -> ScenarioResult {
    let kind = IncidentKind::Conversion {
        stage: "cart".into(),
        drop: 0.5,
    };
    let incident = |offset_minutes: i64, minutes: i64| InjectedIncident {
        funnel: Some("checkout".into()),
        kind: kind.clone(),
        from: at_minute(offset_minutes),
        to: at_minute(offset_minutes + minutes),
        segment: None,
    };
    let incidents = if name.starts_with("recovery") {
        vec![incident(0, 45), incident(105, 45)]
    } else {
        vec![incident(0, 120)]
    };
    let spec = ScenarioSpec {
        name: name.into(),
        incidents: Vec::new(),
        hours: vec![10.0],
        expect: Expectation {
            kind: AlertKind::Conversion,
            stage: "cart".into(),
            top_segment: top_segment.map(|(d, v)| (d.into(), v.into())),
            drop: None,
            bound_stage: None,
        },
    };
    let output = FeedOutput {
        alerts,
        ..FeedOutput::default()
    };
    let detector = Detector::new(&example());
    let mut result = ScenarioResult::default();
    score_run(&spec, &incidents, &output, &detector, &mut result);
    result
}

#[test]
fn scoring_measures_the_delay_to_the_first_alert_of_the_right_kind_and_stage() {
    use AlertKind::{Conversion, Volume};
    /// Case, alerts, incidents found, delays in minutes, alerts of another kind.
    type Case = (&'static str, Vec<AlertEvent>, usize, Vec<f64>, usize);
    let cases: Vec<Case> = vec![
        ("no alert is a miss", vec![], 0, vec![], 0),
        (
            "found",
            vec![opened(7, Conversion, "cart")],
            1,
            vec![7.0],
            0,
        ),
        (
            "the first of two counts",
            vec![opened(7, Conversion, "cart"), opened(9, Conversion, "cart")],
            1,
            vec![7.0],
            0,
        ),
        (
            "before the incident does not count",
            vec![opened(-1, Conversion, "cart")],
            0,
            vec![],
            0,
        ),
        (
            "the grace after the end counts",
            vec![opened(135, Conversion, "cart")],
            1,
            vec![135.0],
            0,
        ),
        (
            "past the grace does not",
            vec![opened(136, Conversion, "cart")],
            0,
            vec![],
            0,
        ),
        (
            "another stage is not a detection",
            vec![
                opened(2, Conversion, "checkout"),
                opened(9, Conversion, "cart"),
            ],
            1,
            vec![9.0],
            0,
        ),
        (
            "a volume alert is of another kind",
            vec![opened(3, Volume, "cart"), opened(8, Conversion, "cart")],
            1,
            vec![8.0],
            1,
        ),
        (
            "closing or upgrading is not opening",
            vec![
                alert(4, Conversion, "cart", AlertEventKind::Closed),
                alert(5, Conversion, "cart", AlertEventKind::Upgraded),
            ],
            0,
            vec![],
            0,
        ),
    ];
    for (case, alerts, found, delays, wrong_kind) in cases {
        let result = score("step 50% at cart", None, alerts);
        assert_eq!(
            (result.runs, result.incidents, result.detected),
            (1, 1, found),
            "{case}"
        );
        assert_eq!(result.delays_minutes, delays, "{case}");
        assert_eq!(result.wrong_kind, wrong_kind, "{case}");
        assert_eq!(result.other_alerts.len(), wrong_kind, "{case}");
    }
}

#[test]
fn a_relapse_is_a_second_incident_to_find() {
    let both = score(
        "recovery then relapse at cart",
        None,
        vec![
            opened(10, AlertKind::Conversion, "cart"),
            opened(110, AlertKind::Conversion, "cart"),
        ],
    );
    assert_eq!((both.incidents, both.detected), (2, 2));
    assert_eq!(both.delays_minutes, vec![10.0, 5.0]);
    // The first episode's alert does not find the relapse.
    let first_only = score(
        "recovery then relapse at cart",
        None,
        vec![opened(10, AlertKind::Conversion, "cart")],
    );
    assert_eq!((first_only.incidents, first_only.detected), (2, 1));
}

#[test]
fn scoring_checks_the_named_segment() {
    let with_top = |dimension: &str, value: &str| {
        let mut alert = opened(6, AlertKind::Conversion, "cart");
        alert.top_segments = vec![TopSegment {
            dimension: dimension.into(),
            value: value.into(),
            share: 0.9,
            traffic_share: 0.4,
        }];
        alert
    };
    let mut in_segment = opened(6, AlertKind::Conversion, "cart");
    in_segment.segment = Some(("device".into(), "mobile".into()));
    // (case, expected top segment, alerts, `[correct, expected]`, `[none, checked]`)
    let cases = [
        (
            "named first",
            Some(("device", "mobile")),
            vec![with_top("device", "mobile")],
            [1, 1],
            [0, 0],
        ),
        (
            "named wrong",
            Some(("device", "mobile")),
            vec![with_top("country", "US")],
            [0, 1],
            [0, 0],
        ),
        (
            "the alert's own segment",
            Some(("device", "mobile")),
            vec![in_segment],
            [1, 1],
            [0, 0],
        ),
        ("missed", Some(("device", "mobile")), vec![], [0, 1], [0, 0]),
        (
            "rightly none",
            None,
            vec![opened(6, AlertKind::Conversion, "cart")],
            [0, 0],
            [1, 1],
        ),
        (
            "a spurious segment",
            None,
            vec![with_top("device", "mobile")],
            [0, 0],
            [0, 1],
        ),
    ];
    for (case, top_segment, alerts, top, none) in cases {
        let result = score("step 50% at cart", top_segment, alerts);
        assert_eq!(
            [result.top_segment_correct, result.top_segment_expected],
            top,
            "{case}"
        );
        assert_eq!(
            [result.top_segment_none, result.top_segment_none_checked],
            none,
            "{case}"
        );
    }
}

#[test]
fn false_alarm_pages_count_openings_and_upgrades_by_severity() {
    use AlertEventKind::{Closed, Opened, Upgraded};
    use Direction::{Surge, Worse};
    use Severity::{P1, P2};
    /// Events, whether surges page, and `[P1 pages, P2 pages]`.
    type Case = (Vec<(Severity, AlertEventKind, Direction)>, bool, [usize; 2]);
    let cases: Vec<Case> = vec![
        (vec![], false, [0, 0]),
        (vec![(P2, Opened, Worse)], false, [0, 1]),
        (vec![(P1, Opened, Worse)], false, [1, 0]),
        (
            vec![(P2, Opened, Worse), (P1, Upgraded, Worse)],
            false,
            [1, 1],
        ),
        (
            vec![
                (P2, Opened, Worse),
                (P2, Closed, Worse),
                (P1, Closed, Worse),
            ],
            false,
            [0, 1],
        ),
        (
            vec![
                (P1, Opened, Worse),
                (P2, Opened, Worse),
                (P2, Opened, Worse),
            ],
            false,
            [1, 2],
        ),
        // A surge is good news: no page, unless the config asks for it.
        (
            vec![(P2, Opened, Surge), (P2, Closed, Surge)],
            false,
            [0, 0],
        ),
        (vec![(P2, Opened, Surge), (P2, Closed, Surge)], true, [0, 1]),
        (
            vec![(P2, Opened, Surge), (P1, Opened, Worse)],
            false,
            [1, 0],
        ),
    ];
    for (events, page_on_surge, want) in cases {
        assert_eq!(
            count_pages(events.iter().copied(), page_on_surge),
            want,
            "{events:?}, page_on_surge = {page_on_surge}"
        );
    }
}

#[test]
fn the_naive_detector_is_scored_at_both_thresholds() {
    let naive =
        |variant: usize, stage: usize, offset_minutes: i64, event: AlertEventKind| NaiveAlert {
            variant,
            funnel: 0,
            stage,
            severity: Severity::P2,
            event,
            at: at_minute(offset_minutes),
        };
    let output = FeedOutput {
        naive: vec![
            naive(0, 0, 4, AlertEventKind::Opened),
            naive(0, 1, 5, AlertEventKind::Opened),
            naive(0, 1, 10, AlertEventKind::Opened),
            naive(1, 1, 2, AlertEventKind::Closed),
            naive(1, 1, 200, AlertEventKind::Opened),
        ],
        ..FeedOutput::default()
    };
    let mut result = ScenarioResult::default();
    let episode = (at_minute(0), at_minute(120));
    score_naive(&output, 1, episode, &mut result);
    assert_eq!(
        (result.naive_detected, result.naive_delays_minutes.clone()),
        (1, vec![5.0])
    );
    assert_eq!(
        (
            result.matched_detected,
            result.matched_delays_minutes.clone()
        ),
        (0, vec![])
    );
}

/// The report with one scenario, rendered; only the scenario's row is returned.
fn rendered_row(result: ScenarioResult) -> String {
    let report = EvalReport {
        scenarios: vec![result],
        ..EvalReport::default()
    };
    let markdown = report.to_markdown();
    markdown
        .lines()
        .last()
        .expect("a row per scenario")
        .to_owned()
}

#[test]
fn rendering_writes_one_row_per_scenario() {
    let found = ScenarioResult {
        name: "step 50% at cart".into(),
        runs: 3,
        incidents: 3,
        detected: 2,
        delays_minutes: vec![4.0, 6.0],
        bounds_minutes: vec![1.0, 1.5],
        overdispersed_bounds_minutes: vec![2.0, 2.0],
        shoppers_per_minute: vec![96.7],
        top_segment_none: 1,
        top_segment_none_checked: 2,
        wrong_kind: 1,
        naive_detected: 3,
        naive_delays_minutes: vec![5.0, 5.0, 10.0],
        naive_scored: true,
        ..ScenarioResult::default()
    };
    let missed = ScenarioResult {
        name: "marketing spike x3".into(),
        runs: 2,
        incidents: 2,
        ..ScenarioResult::default()
    };
    let segment = ScenarioResult {
        name: "mobile-only failure at payment".into(),
        runs: 1,
        incidents: 1,
        detected: 1,
        delays_minutes: vec![12.0],
        top_segment_correct: 1,
        top_segment_expected: 1,
        ..ScenarioResult::default()
    };
    let cases = [
        (
            found,
            "| step 50% at cart | 2/3 | 1 | 5.0 / 6.0 | 1.2 | 2.0 | 2.5 | 96.7 | none 1/2 | 1 | 3/3 | 5.0 | 0/3 | – |",
        ),
        (
            missed,
            "| marketing spike x3 | 0/2 | 2 | – / – | – | – | – | – | – | 0 | – | – | – | – |",
        ),
        (
            segment,
            "| mobile-only failure at payment | 1/1 | 0 | 12.0 / 12.0 | – | – | – | – | 1/1 | 0 | – | – | – | – |",
        ),
    ];
    for (result, want) in cases {
        assert_eq!(rendered_row(result), want);
    }
}

#[test]
fn rendering_shows_false_alarms_and_budgets() {
    let report = EvalReport {
        options_summary: "seed 1".into(),
        clean_weeks: 4.0,
        false_alarms_per_week: [0.0, 0.25],
        naive_false_alarms_per_week: [87.25, 179.25],
        budget_per_week: [0.2333, 1.0],
        naive_matched_z: [6.55, 6.91],
        ..EvalReport::default()
    };
    let markdown = report.to_markdown();
    for line in [
        "Options: seed 1.",
        "False alarms on 4 clean week(s), per funnel per week (budget: P1 0.233, P2 1.000):",
        "| revloop | 0.00 | 0.25 |",
        "| runbook-literal z-score | 87.25 | 179.25 |",
        "For a comparison at equal false alarms, the z-score detector needs z > 6.55 for P2 and z > 6.91 for P1 to stay within the same budgets on these clean weeks (the \"matched\" columns).",
    ] {
        assert!(markdown.lines().any(|l| l == line), "{line}\n{markdown}");
    }
}

/// The example config with the `country` dimension capped at `cap` values.
fn with_country_cap(cap: u32) -> Config {
    let text = Config::example_toml().replace(
        "path = \"context.location.country\"\nmax_values = 50",
        &format!("path = \"context.location.country\"\nmax_values = {cap}"),
    );
    assert_ne!(
        text,
        Config::example_toml(),
        "the example's country dimension moved"
    );
    Config::parse(&text).unwrap()
}

/// The `country` values the detector holds a series for after the feed ran the scenario.
fn fed_country_segments(config: &Config, scenario: &Scenario) -> BTreeSet<String> {
    let mut feed = Feed::new(config);
    let mut detector = Detector::new(config);
    feed.run(
        config,
        scenario,
        &mut detector,
        &mut NaiveDetector::new(config),
        None,
        &mut |_, _, _| {},
    )
    .unwrap();
    detector
        .report(0)
        .into_iter()
        .filter_map(|series| series.segment)
        .filter(|(dimension, _)| dimension == "country")
        .map(|(_, value)| value)
        .collect()
}

#[test]
fn the_feed_folds_values_over_a_cap_into_other_as_ingest_does() {
    let config = with_country_cap(3);
    let scenario = Scenario {
        conversion_swing: Default::default(),
        from: Timestamp::from_millis(T0),
        to: Timestamp::from_millis(T0 + 2 * MS_PER_HOUR),
        seed: 3,
        peak_sessions_per_minute: 100.0,
        incidents: Vec::new(),
    };
    // Production admits values first come, first served, in the order messages that count
    // toward a stage arrive; the rest of the dimension's values fold into `other`.
    let matcher = Matcher::new(&config);
    let mut first_seen: Vec<String> = Vec::new();
    let mut all_seen = BTreeSet::new();
    simulate(&config, &scenario, |event: SimEvent| {
        let country = event
            .fields
            .iter()
            .find(|(path, _)| path.to_string() == "context.location.country")
            .map(|(_, value)| value.to_string());
        let reaches_a_stage = matcher.is_relevant(event.kind, &event.name);
        if let (Some(country), true) = (country, reaches_a_stage) {
            all_seen.insert(country.clone());
            if !first_seen.contains(&country) {
                first_seen.push(country);
            }
        }
    })
    .unwrap();
    assert!(
        all_seen.len() > 3,
        "the test needs more countries than the cap"
    );
    let admitted: BTreeSet<String> = first_seen.into_iter().take(3).collect();

    let countries = fed_country_segments(&config, &scenario);
    let mut want = admitted;
    want.insert("other".to_owned());
    assert_eq!(countries, want);

    // Under the example's cap of 50 nothing folds: every country seen is its own segment.
    let config = example();
    let countries = fed_country_segments(&config, &scenario);
    assert_eq!(countries, all_seen);
}

#[test]
fn the_feed_counts_each_stage_event_once_per_minute() {
    let config = example();
    let scenario = Scenario {
        conversion_swing: Default::default(),
        from: Timestamp::from_millis(T0),
        to: Timestamp::from_millis(T0 + 30 * MS_PER_MINUTE),
        seed: 5,
        peak_sessions_per_minute: 50.0,
        incidents: Vec::new(),
    };
    let matcher = Matcher::new(&config);
    let n_stages = config.funnels[0].stages.len();
    let mut want = vec![0_i64; n_stages];
    simulate(&config, &scenario, |event: SimEvent| {
        let message = as_message(&matcher, &event);
        let mut hits = Vec::new();
        matcher.stage_hits(&message, &mut hits);
        for StageHit { stage, .. } in hits {
            want[stage] += 1;
        }
    })
    .unwrap();
    let mut feed = Feed::new(&config);
    let output = feed
        .run(
            &config,
            &scenario,
            &mut Detector::new(&config),
            &mut NaiveDetector::new(&config),
            Some((
                Timestamp::from_millis(T0).minute(),
                Timestamp::from_millis(T0 + 30 * MS_PER_MINUTE).minute(),
            )),
            &mut |_, _, _| {},
        )
        .unwrap();
    assert_eq!(output.tallies[0], want);
    assert_eq!(output.tally_minutes, 30);
    assert_eq!((output.n_late, output.n_rejected), (0, 0));
}
