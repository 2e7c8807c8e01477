//! A series learns before it pages, and only from minutes that are a baseline: not silence
//! before the first event, not too few shoppers to judge.

use super::{CLEAN, CONFIG, START, Traffic, WEEK_MINUTES, assert_all_learning, feed, opened};
use crate::alert::AlertKind;
use crate::config::Config;
use crate::detect::{Detector, SeriesStatus};
use crate::rng::Rng;

#[test]
fn a_new_funnel_learns_before_it_pages() {
    let config = Config::parse(CONFIG).unwrap();
    let mut detector = Detector::new(&config);
    let mut rng = Rng::new(9);
    let events = feed(&mut detector, &mut rng, START, 3 * 24 * 60, |minute| {
        if minute > START.plus(2 * 24 * 60) {
            Traffic {
                keep: [0.0, 0.0],
                ..CLEAN
            }
        } else {
            CLEAN
        }
    });
    assert!(events.is_empty(), "{events:?}");
    assert_all_learning(&detector);
}

#[test]
fn silence_before_the_first_event_is_not_a_baseline() {
    // A server started weeks before its shop sends anything judges those minutes empty;
    // they must not teach the detector that zero traffic is normal.
    let config = Config::parse(CONFIG).unwrap();
    let mut detector = Detector::new(&config);
    let mut events = Vec::new();
    for minute in START.until(START.plus(2 * WEEK_MINUTES)) {
        detector.close_minute(minute, &mut events);
    }
    let mut rng = Rng::new(12);
    let now = START.plus(2 * WEEK_MINUTES);
    events.extend(feed(&mut detector, &mut rng, now, 3 * 24 * 60, |_| CLEAN));
    assert!(events.is_empty(), "{events:?}");
    assert_all_learning(&detector);
}

#[test]
fn too_few_shoppers_are_not_judged() {
    let config = Config::parse(CONFIG).unwrap();
    let mut detector = Detector::new(&config);
    let mut rng = Rng::new(10);
    let quiet = Traffic {
        sessions_per_minute: 0.5,
        ..CLEAN
    };
    feed(&mut detector, &mut rng, START, 2 * WEEK_MINUTES, |_| quiet);
    let now = START.plus(2 * WEEK_MINUTES);
    let events = feed(&mut detector, &mut rng, now, 60, |_| Traffic {
        keep: [0.0, 0.0],
        ..quiet
    });
    assert!(opened(&events).iter().all(|e| e.kind == AlertKind::Volume));
    let cart = detector
        .report(0)
        .into_iter()
        .find(|r| r.segment.is_none() && r.stage == "cart")
        .unwrap();
    assert_eq!(cart.status, SeriesStatus::TooFewShoppers);
}
