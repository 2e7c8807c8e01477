//! The detector's tests, by topic, and the synthetic shop they share: two devices, a daily
//! rhythm, two weeks of clean traffic learned before a test begins. The pipeline's end-to-end
//! tests feed the same shop.

mod alerts;
mod baseline;
mod budget;
mod learning;
mod lock_in;
mod severity;

use super::{Detector, SeriesStatus};
use crate::alert::{AlertEvent, AlertEventKind};
use crate::config::Config;
use crate::rng::Rng;
use crate::time::{MS_PER_MINUTE, Minute};

/// Budgets far stricter than the defaults, so that a false alarm in the weeks a test
/// feeds is a failure of the detector rather than the budget being spent as designed.
pub(crate) const CONFIG: &str = r#"
[shop]
time_zone = "America/New_York"

[detection]
false_p1_every = "5000d"
false_p2_every = "1000d"

[[dimensions]]
name = "device"
path = "context.device.type"

[[funnels]]
id = "shop"
[[funnels.stages]]
id = "viewed"
event = "Product Viewed"
[[funnels.stages]]
id = "cart"
event = "Product Added"
[[funnels.stages]]
id = "order"
event = "Order Completed"
"#;

/// Monday 2026-10-05 00:00 UTC.
pub(crate) const START: Minute = Minute::new(1_791_158_400_000 / MS_PER_MINUTE);
pub(crate) const WEEK_MINUTES: i64 = 7 * 24 * 60;

/// Per device: share of sessions, step conversions.
pub(crate) const DEVICES: [(&str, f64, [f64; 2]); 2] = [
    ("mobile", 0.6, [0.30, 0.70]),
    ("desktop", 0.4, [0.40, 0.80]),
];

/// What the synthetic shop does in one minute.
#[derive(Clone, Copy)]
pub(crate) struct Traffic {
    pub(crate) sessions_per_minute: f64,
    /// Multiplies step conversion, per step, for the devices it applies to.
    pub(crate) keep: [f64; 2],
    pub(crate) only: Option<&'static str>,
    /// Share of the cart stage's events lost (a broken pixel).
    pub(crate) cart_events_lost: f64,
}

pub(crate) const CLEAN: Traffic = Traffic {
    sessions_per_minute: 60.0,
    keep: [1.0, 1.0],
    only: None,
    cart_events_lost: 0.0,
};

fn binomial(rng: &mut Rng, n: u64, p: f64) -> u64 {
    (0..n).filter(|_| rng.bernoulli(p)).count() as u64
}

/// Feeds `minutes` minutes from `from`, with traffic by minute, and returns the events.
pub(crate) fn feed(
    detector: &mut Detector,
    rng: &mut Rng,
    from: Minute,
    minutes: i64,
    traffic: impl Fn(Minute) -> Traffic,
) -> Vec<AlertEvent> {
    let mut events = Vec::new();
    for offset in 0..minutes {
        let minute = from.plus(offset);
        let t = traffic(minute);
        // A daily rhythm: twice as busy at the peak as on average.
        let hour = (minute.index() / 60) % 24;
        let rhythm = 1.0 + 0.8 * ((hour as f64 - 6.0) / 24.0 * std::f64::consts::TAU).sin();
        for (device, share, conversion) in DEVICES {
            let affected = t.only.is_none_or(|d| d == device);
            let keep = if affected { t.keep } else { [1.0, 1.0] };
            let viewed = rng.poisson(t.sessions_per_minute * share * rhythm);
            let cart = binomial(rng, viewed, conversion[0] * keep[0]);
            let order = binomial(rng, cart, conversion[1] * keep[1]);
            let cart_seen = binomial(rng, cart, 1.0 - t.cart_events_lost);
            let segment = detector.segment(0, Some(("device", device))).unwrap();
            for (stage, n) in [viewed, cart_seen, order].into_iter().enumerate() {
                detector.record(0, 0, stage, n as i64);
                detector.record(0, segment, stage, n as i64);
            }
        }
        detector.close_minute(minute, &mut events);
    }
    events
}

/// Two weeks of clean traffic and half a day more: the next minute is at the daily peak.
pub(crate) fn learned(seed: u64) -> (Detector, Rng, Minute) {
    let config = Config::parse(CONFIG).unwrap();
    let mut detector = Detector::new(&config);
    let mut rng = Rng::new(seed);
    let minutes = 2 * WEEK_MINUTES + 12 * 60;
    let events = feed(&mut detector, &mut rng, START, minutes, |_| CLEAN);
    assert!(events.is_empty(), "no alert on clean traffic: {events:?}");
    (detector, rng, START.plus(minutes))
}

pub(crate) fn opened(events: &[AlertEvent]) -> Vec<&AlertEvent> {
    events
        .iter()
        .filter(|e| e.event == AlertEventKind::Opened)
        .collect()
}

pub(crate) fn assert_all_learning(detector: &Detector) {
    let report = detector.report(0);
    assert!(
        report.iter().all(|r| r.status == SeriesStatus::Learning),
        "{report:?}"
    );
}
