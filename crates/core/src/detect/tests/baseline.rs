//! The time-of-week baseline: masked days stay out of it, and its slots follow local time.

use super::{CLEAN, CONFIG, START, Traffic, WEEK_MINUTES, feed, opened};
use crate::alert::AlertKind;
use crate::config::Config;
use crate::detect::baseline::SlotPosition;
use crate::detect::{Detector, SLOTS};
use crate::rng::Rng;

#[test]
fn masked_days_stay_out_of_the_baseline() {
    let text = format!(
        "{CONFIG}\n[[detection.masks]]\nfrom = \"2026-10-19T00:00\"\nto = \"2026-10-20T00:00\"\nreason = \"sale\"\n"
    );
    let config = Config::parse(&text).unwrap();
    let mut detector = Detector::new(&config);
    let mut rng = Rng::new(11);
    feed(&mut detector, &mut rng, START, 2 * WEEK_MINUTES, |_| CLEAN);
    let before = detector.baseline(0, None, 0).unwrap();
    // Monday 2026-10-19 in New York: a sale where half the shoppers add to cart.
    let sale = START.plus(2 * WEEK_MINUTES + 4 * 60);
    feed(&mut detector, &mut rng, sale.plus(-4 * 60), 4 * 60, |_| {
        CLEAN
    });
    let events = feed(&mut detector, &mut rng, sale, 24 * 60, |_| Traffic {
        keep: [1.6, 1.0],
        ..CLEAN
    });
    assert!(opened(&events).iter().all(|e| e.kind == AlertKind::Volume));
    let after = detector.baseline(0, None, 0).unwrap();
    // Monday's slots (0..24) learned nothing during the sale.
    for hour in 0..24 {
        assert_eq!(before[hour], after[hour], "hour {hour}");
    }
}

#[test]
fn slots_follow_local_time_across_daylight_saving() {
    let time_zone = jiff::tz::TimeZone::get("America/New_York").unwrap();
    let slot_of = |utc: &str| {
        let instant: jiff::Timestamp = utc.parse().unwrap();
        let offset = i64::from(time_zone.to_offset(instant).seconds()) * 1_000;
        SlotPosition::of(instant.as_millisecond() + offset).slot
    };
    // 09:15 local on the Mondays either side of the end of daylight saving (1 Nov 2026):
    // 13:15Z in EDT, 14:15Z in EST, both Monday 09:00, slot 9.
    assert_eq!(slot_of("2026-10-26T13:15:00Z"), 9);
    assert_eq!(slot_of("2026-11-02T14:15:00Z"), 9);
    // Sunday 23:59 local is the last slot of the week.
    assert_eq!(slot_of("2026-11-02T04:59:00Z"), SLOTS - 1);
}
