//! The time-of-week baseline: masked days stay out of it, and its slots follow local time.

use super::{CLEAN, CONFIG, START, Traffic, WEEK_MINUTES, feed, opened};
use crate::alert::AlertKind;
use crate::config::Config;
use crate::detect::baseline::{NoiseModel, SlotPosition};
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

/// Windows of a day: shoppers per window through a quiet night and a busy afternoon.
const WINDOW_SHOPPERS: [f64; 6] = [15.0, 30.0, 80.0, 200.0, 400.0, 250.0];

/// Feeds `days` of windows whose drop-off rate (about `p`) varies by `phi` times the binomial
/// variance plus `tau2`, in a day's rhythm of [`WINDOW_SHOPPERS`].
fn fed_noise(phi: f64, tau2: f64, p: f64, days: usize) -> NoiseModel {
    let mut rng = Rng::new(7);
    let mut model = NoiseModel::default();
    for _ in 0..days * 48 {
        for n in WINDOW_SHOPPERS {
            let binomial = p * (1.0 - p) / n;
            let residual = (phi * binomial + tau2).sqrt() * rng.normal();
            model.update(binomial, residual, 2016.0);
        }
    }
    model
}

/// The standard deviation of a window of `n` at rate `p` that `model` expects, over the true one.
fn sd_ratio(model: &NoiseModel, [phi, tau2, p, n]: [f64; 4]) -> f64 {
    model.sd(p, n, 0.0) / (phi * p * (1.0 - p) / n + tau2).sqrt()
}

#[test]
fn the_noise_model_tells_the_binomial_excess_from_the_between_window_variance() {
    // Counted shoppers twice as noisy as coins, and a between-window SD of 0.02.
    let model = fed_noise(2.0, 0.0004, 0.15, 14);
    assert!((model.phi() - 2.0).abs() < 0.5, "{model:?}");
    // At night (15 shoppers a window) the binomial term, at the peak τ², sets the limits:
    // neither is spread over the other's hours.
    for n in [15.0, 80.0, 400.0] {
        let ratio = sd_ratio(&model, [2.0, 0.0004, 0.15, n]);
        assert!((ratio - 1.0).abs() < 0.1, "{n}: {ratio} {model:?}");
    }
}

#[test]
fn independent_shoppers_keep_a_binomial_factor_near_one() {
    let model = fed_noise(1.0, 0.0001, 0.3, 14);
    assert!(model.phi() < 1.2, "{model:?}");
    for n in [15.0, 80.0, 400.0] {
        let ratio = sd_ratio(&model, [1.0, 0.0001, 0.3, n]);
        assert!((ratio - 1.0).abs() < 0.1, "{n}: {ratio} {model:?}");
    }
    // Before any window: the binomial variance alone.
    let fresh = NoiseModel::default();
    assert_eq!(fresh.sd(0.25, 100.0, 0.0), (0.25 * 0.75 / 100.0_f64).sqrt());
}
