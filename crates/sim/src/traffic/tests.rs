use std::collections::{BTreeMap, HashSet};

use revloop_core::funnel::{Matcher, Message, StageHit};
use revloop_core::ingest::message_cells;
use revloop_core::time::MS_PER_HOUR;

use super::*;
use crate::injection::{IncidentKind, InjectedIncident};

// Wednesday 2026-11-18; New York is at UTC-5 then, so 10:00 local is 15:00Z.
const LOCAL_10H: &str = "2026-11-18T15:00:00Z";
const LOCAL_11H: &str = "2026-11-18T16:00:00Z";
const LOCAL_12H: &str = "2026-11-18T17:00:00Z";
const LOCAL_14H: &str = "2026-11-18T19:00:00Z";
const LOCAL_15H: &str = "2026-11-18T20:00:00Z";

fn at(text: &str) -> Timestamp {
    Timestamp::parse_rfc3339(text).unwrap()
}

fn example() -> Config {
    Config::parse(Config::example_toml()).unwrap()
}

fn scenario(from: &str, to: &str, peak_sessions_per_minute: f64) -> Scenario {
    Scenario {
        conversion_swing: Default::default(),
        from: at(from),
        to: at(to),
        seed: 1,
        peak_sessions_per_minute,
        incidents: Vec::new(),
    }
}

fn incident(text: &str) -> InjectedIncident {
    InjectedIncident::parse(text).unwrap()
}

fn run(config: &Config, scenario: &Scenario) -> Vec<SimEvent> {
    let mut events = Vec::new();
    let summary = simulate(config, scenario, |event| events.push(event)).unwrap();
    assert_eq!(summary.n_events, events.len() as u64);
    events
}

fn field<'e>(event: &'e SimEvent, path: &str) -> Option<&'e SimValue> {
    event
        .fields
        .iter()
        .find(|(p, _)| p.to_string() == path)
        .map(|(_, value)| value)
}

fn text<'e>(event: &'e SimEvent, path: &str) -> Option<&'e str> {
    match field(event, path) {
        Some(SimValue::Text(text)) => Some(text),
        _ => None,
    }
}

/// The stage of an event in the first funnel, by its trigger name.
fn stage_of(config: &Config, event: &SimEvent) -> usize {
    config.funnels[0]
        .stages
        .iter()
        .position(|s| s.trigger.name() == event.name)
        .unwrap()
}

/// Each session's events in order, with their stages, by anonymous id.
fn sessions<'e>(
    config: &Config,
    events: &'e [SimEvent],
) -> BTreeMap<&'e str, Vec<(usize, &'e SimEvent)>> {
    let mut sessions: BTreeMap<&str, Vec<(usize, &SimEvent)>> = BTreeMap::new();
    for event in events {
        sessions
            .entry(&event.anonymous_id)
            .or_default()
            .push((stage_of(config, event), event));
    }
    sessions
}

/// Sessions that reached `stage` inside `[from, to)` and that `select` keeps: how many, and
/// how many of them reached the next stage.
fn cohort(
    config: &Config,
    events: &[SimEvent],
    stage: usize,
    (from, to): (&str, &str),
    select: impl Fn(&SimEvent) -> bool,
) -> (usize, usize) {
    let (from, to) = (at(from), at(to));
    let mut n_at_stage = 0;
    let mut n_next = 0;
    for walked in sessions(config, events).values() {
        let Some((_, event)) = walked.iter().find(|(s, _)| *s == stage) else {
            continue;
        };
        if event.timestamp < from || event.timestamp >= to || !select(event) {
            continue;
        }
        n_at_stage += 1;
        if walked.iter().any(|(s, _)| *s == stage + 1) {
            n_next += 1;
        }
    }
    (n_at_stage, n_next)
}

fn ratio(numerator: usize, denominator: usize) -> f64 {
    numerator as f64 / denominator as f64
}

#[test]
fn the_same_seed_replays_the_same_events() {
    let config = example();
    let base = scenario(LOCAL_10H, LOCAL_12H, 20.0);
    let events = run(&config, &base);
    assert!(events.len() > 1_000, "{}", events.len());
    assert_eq!(run(&config, &base), events);
    let other_seed = Scenario { seed: 2, ..base };
    let other_events = run(&config, &other_seed);
    assert_ne!(other_events, events);
    let ids: HashSet<&str> = events.iter().map(|e| e.message_id.as_str()).collect();
    assert!(
        other_events
            .iter()
            .all(|e| !ids.contains(e.message_id.as_str())),
        "message ids depend on the seed"
    );
}

#[test]
fn a_sub_range_replays_the_events_of_a_longer_run() {
    let config = example();
    let long = run(&config, &scenario(LOCAL_10H, LOCAL_12H, 20.0));
    let cases = [
        ("2026-11-18T15:30:00Z", LOCAL_12H),
        ("2026-11-18T16:12:34.567Z", "2026-11-18T16:40:00.001Z"),
        (LOCAL_10H, "2026-11-18T15:05:00Z"),
    ];
    for (from, to) in cases {
        let short = run(&config, &scenario(from, to, 20.0));
        let inside: Vec<SimEvent> = long
            .iter()
            .filter(|e| e.timestamp >= at(from) && e.timestamp < at(to))
            .cloned()
            .collect();
        assert!(!short.is_empty(), "{from}..{to}");
        assert_eq!(short, inside, "{from}..{to}");
    }
}

#[test]
fn events_are_in_time_order_and_inside_the_range() {
    let config = example();
    // Surges whose extra sessions start up to a second late, ending with the range.
    let busy = |from: &str, to: &str| {
        vec![
            incident(&format!("kind=surge,factor=5,from={from},to={to}")),
            incident(&format!(
                "kind=pixel,stage=cart,drop=0.5,from={from},to={to}"
            )),
        ]
    };
    let cases = [
        ("2026-11-18T15:00:30.250Z", "2026-11-18T15:20:10.5Z", true),
        ("2026-11-18T04:30:00Z", "2026-11-18T06:30:00Z", true),
        (LOCAL_10H, "2026-11-18T15:00:00.001Z", false),
        ("2026-11-21T23:59:00Z", "2026-11-22T00:01:00Z", true),
    ];
    for (from, to, expect_events) in cases {
        for incidents in [Vec::new(), busy(from, to)] {
            let scenario = Scenario {
                incidents,
                ..scenario(from, to, 60.0)
            };
            let events = run(&config, &scenario);
            assert_eq!(!events.is_empty(), expect_events, "{from}..{to}");
            for pair in events.windows(2) {
                assert!(pair[0].timestamp <= pair[1].timestamp, "{from}..{to}");
            }
            for event in &events {
                assert!(
                    event.timestamp >= at(from) && event.timestamp < at(to),
                    "{} outside {from}..{to}",
                    event.timestamp
                );
            }
        }
    }
}

#[test]
fn the_ends_of_time_do_not_overflow() {
    let config = example();
    let cases = [
        (
            Timestamp::from_millis(i64::MIN),
            Timestamp::from_millis(i64::MIN + 10 * MS_PER_MINUTE),
        ),
        (
            Timestamp::from_millis(i64::MAX - 10 * MS_PER_MINUTE),
            Timestamp::from_millis(i64::MAX),
        ),
    ];
    for (from, to) in cases {
        let scenario = Scenario {
            conversion_swing: Default::default(),
            from,
            to,
            seed: 1,
            peak_sessions_per_minute: 60.0,
            incidents: Vec::new(),
        };
        let events = run(&config, &scenario);
        assert!(
            events
                .iter()
                .all(|e| e.timestamp >= from && e.timestamp < to)
        );
    }
}

#[test]
fn sessions_walk_the_stages_in_order() {
    let config = example();
    let from = at(LOCAL_10H);
    let events = run(&config, &scenario(LOCAL_10H, LOCAL_12H, 30.0));
    let sessions = sessions(&config, &events);
    let mut n_crossing_a_minute = 0;
    for (anonymous_id, walked) in &sessions {
        let stages: Vec<usize> = walked.iter().map(|(stage, _)| *stage).collect();
        let first = stages[0];
        let want: Vec<usize> = (first..first + stages.len()).collect();
        assert_eq!(stages, want, "{anonymous_id}");
        // Only a session already under way when the range began starts past stage 0.
        let started_early = walked[0].1.timestamp.millis() - from.millis() < STEP_GAP_MAX_MS * 4;
        assert!(first == 0 || started_early, "{anonymous_id}");
        for pair in walked.windows(2) {
            let gap_ms = pair[1].1.timestamp.millis() - pair[0].1.timestamp.millis();
            assert!(
                (STEP_GAP_MIN_MS..=STEP_GAP_MAX_MS).contains(&gap_ms),
                "{gap_ms}"
            );
            if pair[0].1.timestamp.minute() != pair[1].1.timestamp.minute() {
                n_crossing_a_minute += 1;
            }
        }
        let user_ids: HashSet<_> = walked.iter().map(|(_, e)| &e.user_id).collect();
        assert_eq!(user_ids.len(), 1, "{anonymous_id}");
    }
    assert!(n_crossing_a_minute > 100, "{n_crossing_a_minute}");
    let ids: HashSet<&str> = events.iter().map(|e| e.message_id.as_str()).collect();
    assert_eq!(ids.len(), events.len(), "message ids are unique");
    let n_logged_in = sessions
        .values()
        .filter(|w| w[0].1.user_id.is_some())
        .count();
    let logged_in_share = ratio(n_logged_in, sessions.len());
    assert!((0.3..0.4).contains(&logged_in_share), "{logged_in_share}");
}

#[test]
fn step_and_overall_conversion_are_realistic() {
    let config = example();
    let events = run(&config, &scenario(LOCAL_10H, "2026-11-19T15:00:00Z", 20.0));
    let mut n_by_stage = [0_usize; 5];
    for event in &events {
        n_by_stage[stage_of(&config, event)] += 1;
    }
    let wants = [(0.25, 0.36), (0.48, 0.62), (0.68, 0.83), (0.78, 0.92)];
    for (stage, (low, high)) in wants.iter().enumerate() {
        let step = ratio(n_by_stage[stage + 1], n_by_stage[stage]);
        assert!((*low..*high).contains(&step), "stage {stage}: {step}");
    }
    let overall = ratio(n_by_stage[4], n_by_stage[0]);
    assert!((0.07..0.16).contains(&overall), "{overall}");
}

#[test]
fn step_conversion_varies_more_between_windows_than_a_binomial() {
    let config = example();
    let events = run(&config, &scenario(LOCAL_10H, LOCAL_14H, 120.0));
    // View-to-cart conversion of the sessions viewing in each five-minute window.
    let start = at(LOCAL_10H).millis();
    let mut n_by_window = [(0_usize, 0_usize); 48];
    for walked in sessions(&config, &events).values() {
        let (stage, view) = walked[0];
        let window = (view.timestamp.millis() - start) / OVERDISPERSION_WINDOW_MS;
        if stage == 0 && window >= 0 {
            let (n_viewed, n_added) = &mut n_by_window[window as usize];
            *n_viewed += 1;
            *n_added += usize::from(walked.len() > 1);
        }
    }
    let n_viewed: usize = n_by_window.iter().map(|(n, _)| n).sum();
    let n_added: usize = n_by_window.iter().map(|(_, n)| n).sum();
    let mean_conversion = ratio(n_added, n_viewed);
    // The dispersion index: about 1 for binomial counts, about 3 with the shared
    // per-window factor at this traffic.
    let chi_square: f64 = n_by_window
        .iter()
        .map(|(n_viewed, n_added)| {
            let expected = *n_viewed as f64 * mean_conversion;
            (*n_added as f64 - expected).powi(2) / (expected * (1.0 - mean_conversion))
        })
        .sum();
    let dispersion_index = chi_square / (n_by_window.len() - 1) as f64;
    assert!(dispersion_index > 1.8, "{dispersion_index}");
}

#[test]
fn a_conversion_incident_cuts_the_step_only_in_its_window_and_segment() {
    let config = example();
    let base = scenario(LOCAL_11H, LOCAL_15H, 60.0);
    let with_incident = Scenario {
        incidents: vec![incident(&format!(
            "stage=checkout,drop=0.5,from={LOCAL_12H},to={LOCAL_14H},segment=device:mobile"
        ))],
        ..base.clone()
    };
    let before = run(&config, &base);
    let after = run(&config, &with_incident);
    // (device, window, the incident's effect on checkout-to-payment: None = none at all)
    let cases = [
        ("mobile", (LOCAL_12H, LOCAL_14H), Some((0.4, 0.6))),
        ("desktop", (LOCAL_12H, LOCAL_14H), None),
        ("tablet", (LOCAL_12H, LOCAL_14H), None),
        ("mobile", (LOCAL_11H, LOCAL_12H), None),
        ("mobile", (LOCAL_14H, LOCAL_15H), None),
    ];
    for (device, window, effect) in cases {
        let select = |e: &SimEvent| text(e, "context.device.type") == Some(device);
        let cohort_before = cohort(&config, &before, 2, window, select);
        let cohort_after = cohort(&config, &after, 2, window, select);
        match effect {
            None => assert_eq!(cohort_after, cohort_before, "{device} {window:?}"),
            Some((low, high)) => {
                assert_eq!(cohort_after.0, cohort_before.0);
                assert!(cohort_before.0 > 200, "{cohort_before:?}");
                let kept = ratio(cohort_after.1, cohort_before.1);
                assert!((low..high).contains(&kept), "{device} {window:?}: {kept}");
            }
        }
    }
}

#[test]
fn a_pixel_incident_loses_events_but_not_shoppers() {
    let config = example();
    let base = scenario(LOCAL_11H, LOCAL_15H, 60.0);
    let with_incident = Scenario {
        incidents: vec![incident(&format!(
            "kind=pixel,stage=cart,drop=0.6,from={LOCAL_12H},to={LOCAL_14H}"
        ))],
        ..base.clone()
    };
    let before = run(&config, &base);
    let after = run(&config, &with_incident);
    let kept_ids: HashSet<&str> = after.iter().map(|e| e.message_id.as_str()).collect();
    let before_ids: HashSet<&str> = before.iter().map(|e| e.message_id.as_str()).collect();
    assert!(kept_ids.is_subset(&before_ids));
    let (mut n_cart, mut n_cart_kept) = (0, 0);
    for event in &before {
        let is_kept = kept_ids.contains(event.message_id.as_str());
        let in_window = event.timestamp >= at(LOCAL_12H) && event.timestamp < at(LOCAL_14H);
        if stage_of(&config, event) == 1 && in_window {
            n_cart += 1;
            n_cart_kept += usize::from(is_kept);
        } else {
            assert!(is_kept, "{} at {} was lost", event.name, event.timestamp);
        }
    }
    let kept_share = ratio(n_cart_kept, n_cart);
    assert!((0.34..0.46).contains(&kept_share), "{kept_share}");
    // Shoppers whose cart event was lost still check out.
    let orphans = sessions(&config, &after)
        .values()
        .filter(|walked| {
            let stages: Vec<usize> = walked.iter().map(|(stage, _)| *stage).collect();
            stages.contains(&2) && !stages.contains(&1)
        })
        .count();
    assert!(orphans > 100, "{orphans}");
}

#[test]
fn a_surge_scales_the_sessions_entering_the_funnel() {
    let config = example();
    let base = scenario(LOCAL_11H, LOCAL_15H, 60.0);
    let before = run(&config, &base);
    let entering = |events: &[SimEvent], source: &str, inside: bool| {
        events
            .iter()
            .filter(|e| stage_of(&config, e) == 0)
            .filter(|e| text(e, "context.campaign.source") == Some(source))
            .filter(|e| (e.timestamp >= at(LOCAL_12H) && e.timestamp < at(LOCAL_14H)) == inside)
            .count()
    };
    let cases = [(3.0, 2.6, 3.4), (0.5, 0.4, 0.6), (0.0, 0.0, 0.0)];
    for (factor, low, high) in cases {
        let surge = Scenario {
            incidents: vec![incident(&format!(
                "kind=surge,factor={factor},from={LOCAL_12H},to={LOCAL_14H},segment=source:tiktok"
            ))],
            ..base.clone()
        };
        let after = run(&config, &surge);
        let scale = ratio(
            entering(&after, "tiktok", true),
            entering(&before, "tiktok", true),
        );
        assert!((low..=high).contains(&scale), "factor {factor}: {scale}");
        for (source, inside) in [("tiktok", false), ("google", true), ("email", true)] {
            assert_eq!(
                entering(&after, source, inside),
                entering(&before, source, inside),
                "factor {factor}: {source} inside={inside}"
            );
        }
    }
}

#[test]
fn night_traffic_is_lower_than_noon_traffic_in_the_shop_time_zone() {
    // (time zone, 03:00 and 12:00 local in UTC on the same day)
    let cases = [
        (
            "America/New_York",
            "2026-11-18T08:00:00Z",
            "2026-11-18T17:00:00Z",
        ),
        ("Asia/Tokyo", "2026-11-17T18:00:00Z", "2026-11-18T03:00:00Z"),
        ("UTC", "2026-11-18T03:00:00Z", "2026-11-18T12:00:00Z"),
    ];
    let peak = 30.0;
    for (time_zone, night, noon) in cases {
        let text = Config::example_toml().replace("America/New_York", time_zone);
        let config = Config::parse(&text).unwrap();
        let hour_from = |start: &str| {
            let to = Timestamp::from_millis(at(start).millis() + MS_PER_HOUR).to_string();
            let mut summary = SimSummary::default();
            simulate(&config, &scenario(start, &to, peak), |_| {})
                .map(|s| summary = s)
                .unwrap();
            summary.n_sessions as f64 / 60.0
        };
        let (night_rate, noon_rate) = (hour_from(night), hour_from(noon));
        assert!(night_rate < 0.12 * peak, "{time_zone}: night {night_rate}");
        assert!(
            (0.55 * peak..1.05 * peak).contains(&noon_rate),
            "{time_zone}: noon {noon_rate}"
        );
    }
}

#[test]
fn events_carry_segment_values_payment_method_and_revenue() {
    let config = example();
    let events = run(&config, &scenario(LOCAL_10H, LOCAL_14H, 30.0));
    let mut revenues = Vec::new();
    for event in &events {
        let stage = stage_of(&config, event);
        assert_eq!(event.kind, CallKind::Track);
        let paths: HashSet<String> = event.fields.iter().map(|(p, _)| p.to_string()).collect();
        assert_eq!(paths.len(), event.fields.len(), "a path twice: {event:?}");
        for (path, values) in [
            ("context.device.type", DEVICE_TYPES),
            ("context.location.country", COUNTRIES),
            ("context.campaign.source", CAMPAIGN_SOURCES),
            ("properties.variant", VARIANTS),
        ] {
            let value = text(event, path).unwrap();
            assert!(values.iter().any(|(v, _, _)| *v == value), "{path}={value}");
        }
        let payment_method = text(event, PAYMENT_METHOD_PATH);
        assert_eq!(payment_method.is_some(), stage >= 3, "{event:?}");
        match (stage, field(event, REVENUE_PATH)) {
            (4, Some(SimValue::Decimal { minor, exponent: 2 })) if *minor > 0 => {
                revenues.push(*minor as f64);
                assert_eq!(text(event, CURRENCY_PATH), Some("USD"));
            }
            (4, other) => panic!("order revenue {other:?}"),
            (_, None) => assert_eq!(text(event, CURRENCY_PATH), None),
            (_, Some(_)) => panic!("revenue before the order: {event:?}"),
        }
    }
    let mean_revenue = revenues.iter().sum::<f64>() / revenues.len() as f64;
    assert!(revenues.len() > 500, "{}", revenues.len());
    assert!((7_650.0..9_350.0).contains(&mean_revenue), "{mean_revenue}");
}

const APP_CONFIG: &str = r#"
[shop]
currency = "JPY"
time_zone = "Asia/Tokyo"

[[dimensions]]
name = "plan"
path = "traits.plan"

[[dimensions]]
name = "device"
path = "context.device.type"

[[dimensions]]
name = "device_again"
path = "context.device.type"

[[dimensions]]
name = "pay"
path = "properties.payment_method"

[[funnels]]
id = "app"
[[funnels.stages]]
id = "home"
screen = "Home"
[[funnels.stages]]
id = "added"
event = "Product Added"
where = { "properties.category" = "shoes", "context.device.type" = "mobile" }
[[funnels.stages]]
id = "done"
page = "Thanks"

[[funnels]]
id = "web"
[[funnels.stages]]
id = "landing"
page = "Landing"
[[funnels.stages]]
id = "ordered"
event = "Order Completed"
"#;

/// The simulated events, as the edge would hand them to the core's ingest rules. The eval's
/// tests use it too, to count what the feed should count without going through the feed.
pub(crate) fn as_message<'e>(matcher: &Matcher, event: &'e SimEvent) -> Message<'e> {
    let fields = matcher
        .slots()
        .iter()
        .map(|slot| {
            event
                .fields
                .iter()
                .find(|(path, _)| path == slot)
                .map(|(_, value)| value.to_string().into())
        })
        .collect();
    Message {
        kind: event.kind,
        name: Some(&event.name),
        message_id: &event.message_id,
        event_time: event.timestamp,
        fields,
    }
}

#[test]
fn every_event_counts_toward_the_stage_it_was_simulated_for() {
    // (config, trigger name, expected stage hits; `None` = depends on the device filter)
    let app_config = Config::parse(APP_CONFIG).unwrap();
    let hit = |funnel, stage| StageHit { funnel, stage };
    let cases: [(&Config, &str, Option<Vec<StageHit>>); 7] = [
        (&example(), "Product Viewed", Some(vec![hit(0, 0)])),
        (&example(), "Order Completed", Some(vec![hit(0, 4)])),
        (&app_config, "Home", Some(vec![hit(0, 0)])),
        (&app_config, "Product Added", None),
        (&app_config, "Thanks", Some(vec![hit(0, 2)])),
        (&app_config, "Landing", Some(vec![hit(1, 0)])),
        (&app_config, "Order Completed", Some(vec![hit(1, 1)])),
    ];
    for (config, name, want) in cases {
        let matcher = Matcher::new(config);
        let currency = config.shop.currency;
        let events = run(config, &scenario(LOCAL_10H, LOCAL_12H, 20.0));
        let named: Vec<&SimEvent> = events.iter().filter(|e| e.name == name).collect();
        assert!(named.len() > 20, "{name}: {}", named.len());
        for event in named {
            let message = as_message(&matcher, event);
            let mut hits = Vec::new();
            matcher.stage_hits(&message, &mut hits);
            let want = want.clone().unwrap_or_else(|| {
                assert_eq!(text(event, "properties.category"), Some("shoes"));
                match text(event, "context.device.type") {
                    Some("mobile") => vec![hit(0, 1)],
                    _ => vec![],
                }
            });
            assert_eq!(hits, want, "{event:?}");
            let cells = message_cells(&matcher, currency, &message).unwrap();
            let is_last = config.funnels[want.first().map_or(0, |h| h.funnel)]
                .stages
                .len()
                == want.first().map_or(0, |h| h.stage + 1);
            for (_, count) in cells {
                assert_eq!(count.n_revenue_events, i64::from(is_last), "{event:?}");
            }
        }
    }
}

#[test]
fn other_configs_get_generic_values_and_a_default_order_value() {
    let config = Config::parse(APP_CONFIG).unwrap();
    let events = run(&config, &scenario(LOCAL_10H, LOCAL_14H, 30.0));
    let kinds: HashSet<(CallKind, &str)> =
        events.iter().map(|e| (e.kind, e.name.as_str())).collect();
    let want: HashSet<(CallKind, &str)> = [
        (CallKind::Screen, "Home"),
        (CallKind::Track, "Product Added"),
        (CallKind::Page, "Thanks"),
        (CallKind::Page, "Landing"),
        (CallKind::Track, "Order Completed"),
    ]
    .into_iter()
    .collect();
    assert_eq!(kinds, want);
    let mut revenues = Vec::new();
    for event in &events {
        let plan = text(event, "traits.plan").unwrap();
        assert!(["v1", "v2", "v3"].contains(&plan), "{plan}");
        let is_last = ["Thanks", "Order Completed"].contains(&event.name.as_str());
        assert_eq!(text(event, PAYMENT_METHOD_PATH).is_some(), is_last);
        if is_last {
            assert_eq!(text(event, CURRENCY_PATH), Some("JPY"));
            match field(event, REVENUE_PATH) {
                Some(SimValue::Decimal { minor, exponent: 0 }) => revenues.push(*minor as f64),
                other => panic!("{other:?}"),
            }
        }
    }
    let mean_revenue = revenues.iter().sum::<f64>() / revenues.len() as f64;
    assert!((72.0..98.0).contains(&mean_revenue), "{mean_revenue}");
}

#[test]
fn decimals_render_exactly() {
    let cases = [
        (8512, 2, "85.12"),
        (8500, 2, "85.00"),
        (5, 2, "0.05"),
        (-5, 2, "-0.05"),
        (-1234, 2, "-12.34"),
        (1200, 0, "1200"),
        (1234, 3, "1.234"),
        (0, 2, "0.00"),
        (i64::MIN, 2, "-92233720368547758.08"),
    ];
    for (minor, exponent, want) in cases {
        assert_eq!(SimValue::Decimal { minor, exponent }.to_string(), want);
    }
}

#[test]
fn rejects_scenarios_the_config_cannot_run() {
    let window = "from=2026-11-18T15:00:00Z,to=2026-11-18T16:00:00Z";
    let with_incident = |text: &str| {
        let mut scenario = scenario(LOCAL_10H, LOCAL_12H, 10.0);
        scenario
            .incidents
            .push(incident(&format!("{text},{window}")));
        scenario
    };
    let mut backwards = scenario(LOCAL_12H, LOCAL_10H, 10.0);
    let mut too_long = scenario(LOCAL_10H, LOCAL_12H, 10.0);
    too_long.to =
        Timestamp::from_millis(too_long.from.millis() + (RANGE_DAYS_MAX + 1) * MS_PER_DAY);
    let mut too_busy = scenario(LOCAL_10H, LOCAL_12H, 1e9);
    let mut not_a_number = scenario(LOCAL_10H, LOCAL_12H, f64::NAN);
    let mut too_many = with_incident("stage=cart,drop=0.1");
    too_many.incidents = vec![too_many.incidents[0].clone(); INCIDENTS_MAX + 1];
    let mut bad_drop = with_incident("stage=cart,drop=0.1");
    bad_drop.incidents[0].kind = IncidentKind::Pixel {
        stage: "cart".into(),
        drop: -0.1,
    };
    let cases: Vec<(&mut Scenario, &str)> = vec![
        (&mut backwards, "`from` must be before its `to`"),
        (&mut too_long, "more than 366 days"),
        (&mut too_busy, "peak sessions per minute must be"),
        (&mut not_a_number, "not NaN"),
        (&mut too_many, "at most 64 incidents"),
        (&mut bad_drop, "incident 1: `drop` must be"),
    ];
    let config = example();
    let check = |scenario: &Scenario, want: &str| {
        let got = simulate(&config, scenario, |_| panic!("emitted before checking"));
        match got {
            Err(err) => assert!(err.to_string().contains(want), "`{err}` lacks `{want}`"),
            Ok(_) if want.is_empty() => {}
            Ok(_) => panic!("accepted, want `{want}`"),
        }
    };
    for (scenario, want) in cases {
        check(scenario, want);
    }
    let no_funnels = Config {
        funnels: Vec::new(),
        ..example()
    };
    assert_eq!(
        simulate(&no_funnels, &scenario(LOCAL_10H, LOCAL_12H, 10.0), |_| {}),
        Err(ScenarioError::NoFunnels)
    );
    let incident_cases = [
        ("stage=cart,drop=0.1", ""),
        (
            "stage=cart,drop=0.1,funnel=checkout,segment=payment_method:klarna",
            "",
        ),
        ("kind=pixel,stage=order,drop=0.1", ""),
        (
            "stage=order,drop=0.1",
            "stage `order` is the last of funnel `checkout`",
        ),
        (
            "stage=cart,drop=0.1,funnel=web",
            "no funnel `web` in the config (funnels: checkout)",
        ),
        (
            "stage=basket,drop=0.1",
            "no stage `basket` in the affected funnels (stages: product_viewed, cart,",
        ),
        (
            "stage=cart,drop=0.1,segment=os:ios",
            "no dimension `os` in the config (dimensions: device, country,",
        ),
        (
            "stage=cart,drop=0.1,segment=device:phone",
            "dimension `device` never has the value `phone` in the simulation (values: mobile, desktop, tablet)",
        ),
        ("kind=surge,factor=2,segment=variant:control", ""),
    ];
    for (text, want) in incident_cases {
        let scenario = with_incident(text);
        if want.is_empty() {
            assert!(simulate(&config, &scenario, |_| {}).is_ok(), "{text}");
        } else {
            check(&scenario, &format!("incident 1: {want}"));
        }
    }
}

/// Drop-off out of `stage` of the sessions that reached it in `[from, to)`.
fn drop_off(config: &Config, events: &[SimEvent], stage: usize, range: (&str, &str)) -> f64 {
    let (n, next) = cohort(config, events, stage, range, |_| true);
    1.0 - ratio(next, n)
}

#[test]
fn the_daily_swing_shop_drops_off_most_in_the_early_morning_at_checkout_and_payment() {
    let config = example();
    // 03:30-05:30 and 15:30-17:30 local time in New York (UTC-5) on a Wednesday.
    let night = ("2026-11-18T08:30:00Z", "2026-11-18T10:30:00Z");
    let afternoon = ("2026-11-18T20:30:00Z", "2026-11-18T22:30:00Z");
    let swinging = |range: (&str, &str)| {
        let ordinary = scenario(range.0, range.1, 400.0);
        let swing = Scenario {
            conversion_swing: ConversionSwing::StrongDaily,
            ..ordinary.clone()
        };
        (run(&config, &ordinary), run(&config, &swing))
    };
    for range in [night, afternoon] {
        let (ordinary, swing) = swinging(range);
        // Only the last two steps move: every event up to checkout is the same.
        let early = |events: &[SimEvent]| -> Vec<SimEvent> {
            events
                .iter()
                .filter(|e| stage_of(&config, e) <= 2)
                .cloned()
                .collect()
        };
        assert_eq!(early(&ordinary), early(&swing));
        for stage in [2, 3] {
            let ratio = drop_off(&config, &swing, stage, range)
                / drop_off(&config, &ordinary, stage, range);
            eprintln!("{range:?} stage {stage}: drop-off ×{ratio:.2}");
            let wants = if range == night {
                1.15..1.45
            } else {
                0.6..0.88
            };
            assert!(wants.contains(&ratio), "{range:?} stage {stage}: ×{ratio}");
        }
    }
}
