//! Revenue impact through the detector and the incident engine in event time, on the
//! detection tests' synthetic shop: an outage books about what the injected drop costs by
//! hand, and a segment's outage books only its segment's shoppers.

use super::{Priced, feed_tick, judged_at};
use crate::config::Config;
use crate::detect::tests::{CLEAN, CONFIG, DEVICES, Traffic, feed, learned};
use crate::impact::{Aov, AovSource};
use crate::incident::{Incident, IncidentEngine, IncidentPolicy};
use crate::money::Currency;
use crate::time::Minute;

const AOV_MINOR: i64 = 8_500;
const OUTAGE_MINUTES: i64 = 60;

fn aov(_: &Incident) -> Option<Aov> {
    Some(Aov {
        minor: AOV_MINOR,
        currency: Currency::parse("USD").unwrap(),
        source: AovSource::Config,
        n_orders: 0,
    })
}

/// The synthetic shop's expected cart shoppers in `minute` (its daily rhythm), of `devices`.
fn expected_carts(minute: Minute, devices: &[&str]) -> f64 {
    let hour = (minute.index() / 60) % 24;
    let rhythm = 1.0 + 0.8 * ((hour as f64 - 6.0) / 24.0 * std::f64::consts::TAU).sin();
    DEVICES
        .iter()
        .filter(|(device, _, _)| devices.contains(device))
        .map(|(_, share, conversion)| CLEAN.sessions_per_minute * share * rhythm * conversion[0])
        .sum()
}

/// Runs an outage of the cart → order step (`keep` of it kept, on `only`'s device or every
/// device) for an hour, then two clean hours. Returns the engine and, by hand, the orders the
/// drop lost from the minute the first incident opened to the outage's end.
fn outage(seed: u64, keep: f64, only: Option<&'static str>) -> (IncidentEngine, f64) {
    let settle = Config::parse(CONFIG).unwrap().detection.settle;
    let (mut detector, mut rng, start) = learned(seed);
    let mut engine = IncidentEngine::new(IncidentPolicy::runbook(), Vec::new());
    let devices: Vec<&str> = match only {
        Some(device) => vec![device],
        None => DEVICES.iter().map(|d| d.0).collect(),
    };
    let mut lost_by_hand = 0.0;
    for offset in 0..3 * 60 {
        let minute = start.plus(offset);
        let down = offset < OUTAGE_MINUTES;
        let traffic = |_| {
            if down {
                Traffic {
                    keep: [1.0, keep],
                    only,
                    ..CLEAN
                }
            } else {
                CLEAN
            }
        };
        let events = feed(&mut detector, &mut rng, minute, 1, traffic);
        let at = judged_at(minute, settle);
        let priced = Priced {
            detector: &detector,
            aov,
        };
        feed_tick(&mut engine, &priced, at, &events);
        if down && engine.incidents().next().is_some() {
            lost_by_hand += DEVICES
                .iter()
                .filter(|(device, _, _)| devices.contains(device))
                .map(|(device, _, conversion)| {
                    expected_carts(minute, &[device]) * conversion[1] * (1.0 - keep)
                })
                .sum::<f64>();
        }
    }
    (engine, lost_by_hand)
}

#[test]
fn an_outage_books_about_the_drop_times_traffic_times_aov() {
    let (engine, lost_by_hand) = outage(11, 0.3, None);
    let incidents: Vec<_> = engine.incidents().collect();
    assert_eq!(incidents.len(), 1, "{incidents:#?}");
    let impact = incidents[0].impact.as_ref().expect("priced");
    let figures = impact.figures().unwrap();
    // About 19 orders a minute at the peak for most of an hour: about 1,100 orders.
    assert!(lost_by_hand > 800.0, "{lost_by_hand}");
    let ratio = figures.orders_lost / lost_by_hand;
    assert!(
        (0.8..1.25).contains(&ratio),
        "{} vs {lost_by_hand}",
        figures.orders_lost
    );
    let by_hand_minor = (lost_by_hand * AOV_MINOR as f64) as i64;
    assert!(figures.loss.minor > by_hand_minor * 8 / 10, "{figures:?}");
    assert!(!figures.within_noise, "{figures:?}");
    // The windows after the outage, back at baseline, book (nearly) nothing.
    let after: Vec<_> = impact
        .windows
        .iter()
        .filter(|w| {
            w.from
                > incidents[0]
                    .opened_at
                    .saturating_add(crate::DurationMs::from_minutes(70))
        })
        .collect();
    assert!(!after.is_empty());
    let booked_after: i64 = after.iter().map(|w| w.lost_micro_orders).sum();
    assert!(
        booked_after < 60_000_000,
        "{booked_after} micro-orders after the outage"
    );
}

#[test]
fn a_segment_outage_books_only_its_segment() {
    let (engine, lost_by_hand) = outage(12, 0.3, Some("desktop"));
    let incidents: Vec<_> = engine.incidents().collect();
    assert_eq!(incidents.len(), 1, "{incidents:#?}");
    assert_eq!(
        incidents[0].segment,
        Some(("device".to_owned(), "desktop".to_owned()))
    );
    let impact = incidents[0].impact.as_ref().expect("priced");
    let figures = impact.figures().unwrap();
    let ratio = figures.orders_lost / lost_by_hand;
    assert!(
        (0.8..1.25).contains(&ratio),
        "{} vs {lost_by_hand}",
        figures.orders_lost
    );
    // Its windows hold desktop's cart shoppers only: 0.4 × 0.4 of sessions, not the whole
    // funnel's 0.6 × 0.3 + 0.4 × 0.4.
    let window = impact.windows.front().unwrap();
    let minute = start_of(window.from);
    let desktop = expected_carts(minute, &["desktop"]) * f64::from(window.minutes);
    let whole = expected_carts(minute, &["desktop", "mobile"]) * f64::from(window.minutes);
    assert!(
        (window.shoppers - desktop).abs() < (window.shoppers - whole).abs(),
        "{} shoppers: desktop {desktop}, whole {whole}",
        window.shoppers
    );
}

fn start_of(at: crate::time::Timestamp) -> Minute {
    at.minute()
}
