//! The impact arithmetic against figures computed by hand (docs/impact.md works the first
//! case through).

use super::*;
use crate::time::{DurationMs, Timestamp};

fn usd() -> Currency {
    Currency::parse("USD").unwrap()
}

fn aov(minor: i64) -> Aov {
    Aov {
        minor,
        currency: usd(),
        source: AovSource::Config,
        n_orders: 0,
    }
}

/// One minute's statistics: `[shoppers, went_on, baseline drop-off, downstream conversion,
/// window σ, duration factor]`.
type Row = [f64; 6];

/// Feeds `minutes` (each repeated `times`) in windows of `window_minutes` at `aov_minor`.
fn run(window_minutes: u32, aov_minor: i64, minutes: &[(Row, usize)]) -> Impact {
    let mut impact = Impact::new(usd(), window_minutes, aov(aov_minor));
    let mut at = Timestamp::from_millis(1_700_000_000_000);
    for &(row, times) in minutes {
        for _ in 0..times {
            at = at.saturating_add(DurationMs::from_minutes(1));
            impact.observe(&ImpactMinute {
                at,
                minute: at.minute(),
                window_minutes,
                shoppers: row[0],
                went_on: row[1],
                baseline_drop_off: row[2],
                downstream_conversion: row[3],
                window_sd: row[4],
                duration_factor: row[5],
                aov: aov(aov_minor),
            });
        }
    }
    impact
}

/// `(loss, per hour, daily, band)` in minor units, and orders lost.
fn check(impact: &Impact, want: [i64; 4], orders: f64) {
    let figures = impact.figures().unwrap();
    let got = [
        figures.loss.minor,
        figures.loss_per_hour.minor,
        figures.daily_projection.minor,
        figures.band.minor,
    ];
    assert_eq!(got, want, "loss, per hour, daily, band");
    assert!(
        (figures.orders_lost - orders).abs() < 1e-9,
        "{}",
        figures.orders_lost
    );
}

#[test]
fn a_drop_books_excess_drop_offs_weighted_by_the_chance_to_order() {
    // 100 shoppers a minute, 70 go on where the baseline lets 10 of 100 drop off: 20 excess
    // drop-offs, each half likely to have ordered: 10 orders a minute, 50 per 5-minute
    // window, at 85.00 = 4,250.00. Per hour 600 orders = 51,000.00; a day at a duration factor
    // of 1 is 24 times that. The noise: 250 weighted shoppers × σ 0.02 = σ 5 orders; noise
    // clipped at zero books 5 × 0.398942 = 1.994711 orders on average, with σ 5 × √0.340845
    // = 2.919098: band 1.994711 + 2 × 2.919098 = 7.832908 orders × 85.00 = 665.80.
    let impact = run(5, 8_500, &[([100.0, 70.0, 0.1, 0.5, 0.02, 1.0], 5)]);
    check(&impact, [425_000, 5_100_000, 122_400_000, 66_580], 50.0);
    let figures = impact.figures().unwrap();
    assert!(!figures.within_noise);
    assert_eq!(figures.shoppers_affected, 500.0);
    assert_eq!(impact.n_windows_booked, 1);
    // The day's traffic shape: the next 24 hours bring three quarters of 24 × this hour's.
    let shaped = run(5, 8_500, &[([100.0, 70.0, 0.1, 0.5, 0.02, 0.75], 5)]);
    check(&shaped, [425_000, 5_100_000, 91_800_000, 66_580], 50.0);
}

#[test]
fn a_window_at_or_above_baseline_books_nothing() {
    // Exactly at baseline (10 of 100 drop off), then better than it (5 of 100): nothing, and
    // the better window does not pay back the worse one after it.
    let at = run(5, 8_500, &[([100.0, 90.0, 0.1, 0.5, 0.02, 1.0], 5)]);
    check(&at, [0, 0, 0, 66_580], 0.0);
    assert!(at.figures().unwrap().within_noise);
    let better_then_worse = run(
        1,
        8_500,
        &[
            ([100.0, 95.0, 0.1, 1.0, 0.0, 1.0], 1),
            ([100.0, 80.0, 0.1, 1.0, 0.0, 1.0], 1),
        ],
    );
    // Window 2 alone: 10 lost orders × 85.00; per hour 60 × that.
    check(
        &better_then_worse,
        [85_000, 5_100_000, 122_400_000, 0],
        10.0,
    );
    assert_eq!(better_then_worse.n_windows, 2);
    assert_eq!(better_then_worse.n_windows_booked, 1);
    assert_eq!(
        better_then_worse.figures().unwrap().shoppers_affected,
        100.0
    );
}

#[test]
fn rounds_once_at_the_end_half_to_even() {
    // Each one-minute window loses half an order at 1 minor unit: rounding every window would
    // book 0; rounding once books 1 after two windows and 2 (1.5 to even) after three.
    let row = [10.0, 8.0, 0.15, 1.0, 0.0, 1.0];
    check(&run(1, 1, &[(row, 1)]), [0, 30, 720, 0], 0.5);
    check(&run(1, 1, &[(row, 2)]), [1, 30, 720, 0], 1.0);
    check(&run(1, 1, &[(row, 3)]), [2, 30, 720, 0], 1.5);
    assert_eq!(divide_half_even(5, 2), 2);
    assert_eq!(divide_half_even(7, 2), 4);
    assert_eq!(divide_half_even(-5, 2), -2);
    assert_eq!(divide_half_even(-7, 2), -4);
    assert_eq!(divide_half_even(10, 4), 2);
}

#[test]
fn a_huge_aov_is_exact() {
    // 2 orders lost in one 60-minute window at 10,000,000,000,000.00.
    let row = [1_000.0, 898.0, 0.1, 1.0, 0.0, 1.0];
    let impact = run(
        60,
        1_000_000_000_000_000,
        &[([1_000.0, 900.0, 0.1, 1.0, 0.0, 1.0], 59), (row, 1)],
    );
    check(
        &impact,
        [
            2_000_000_000_000_000,
            2_000_000_000_000_000,
            48_000_000_000_000_000,
            0,
        ],
        2.0,
    );
}

#[test]
fn an_overflow_is_an_error_not_a_wrap() {
    // The booked money does not fit an i64 of minor units when read.
    let impact = run(60, i64::MAX, &[([100.0, 87.0, 0.1, 1.0, 0.0, 1.0], 60)]);
    assert_eq!(impact.error, None);
    assert_eq!(impact.figures(), Err(ImpactError::Overflow));
    // The lost orders themselves do not fit in micro-orders: the booking stops, and what
    // was booked before stays.
    let mut impact = run(1, 100, &[([100.0, 80.0, 0.1, 1.0, 0.0, 1.0], 1)]);
    let before = impact.loss_micro_minor;
    impact.observe(&ImpactMinute {
        at: Timestamp::from_millis(1_800_000_000_000),
        minute: Timestamp::from_millis(1_800_000_000_000).minute(),
        window_minutes: 1,
        shoppers: 1e17,
        went_on: 0.0,
        baseline_drop_off: 0.0,
        downstream_conversion: 1.0,
        window_sd: 0.0,
        duration_factor: 1.0,
        aov: aov(100),
    });
    assert_eq!(impact.error, Some(ImpactError::Overflow));
    assert_eq!(impact.loss_micro_minor, before);
    assert_eq!(impact.figures().unwrap().loss.minor, 1_000);
}

#[test]
fn a_minute_is_priced_once_and_one_without_a_noise_figure_is_skipped() {
    let mut impact = run(1, 100, &[([100.0, 80.0, 0.1, 1.0, 0.0, 1.0], 1)]);
    let booked = impact.loss_micro_minor;
    assert!(booked > 0);
    // Live, every funnel's tick hands the same judged minute again: nothing more is booked.
    let at = Timestamp::from_millis(1_700_000_000_000);
    let again = ImpactMinute {
        at: at.saturating_add(crate::time::DurationMs::from_secs(20)),
        minute: impact.last_minute.unwrap(),
        window_minutes: 1,
        shoppers: 100.0,
        went_on: 80.0,
        baseline_drop_off: 0.1,
        downstream_conversion: 1.0,
        window_sd: 0.0,
        duration_factor: 1.0,
        aov: aov(100),
    };
    impact.observe(&again);
    assert_eq!(impact.loss_micro_minor, booked);
    // A slot with no expected traffic has no noise figure (σ is infinite): that minute is
    // skipped, and the next one is priced as usual.
    let next = impact.last_minute.unwrap().plus(1);
    impact.observe(&ImpactMinute {
        minute: next,
        window_sd: f64::INFINITY,
        ..again
    });
    assert_eq!((impact.error, impact.minutes_skipped), (None, 1));
    assert_eq!(impact.loss_micro_minor, booked);
    impact.observe(&ImpactMinute {
        minute: next.plus(1),
        ..again
    });
    assert_eq!(impact.loss_micro_minor, 2 * booked);
    let nan = run(1, 100, &[([f64::NAN, 0.0, 0.1, 1.0, 0.0, 1.0], 1)]);
    assert_eq!((nan.error, nan.minutes_skipped), (None, 1));
    // A near-empty hour's day shape is capped, so a projection never multiplies noise.
    let shaped = run(1, 100, &[([100.0, 80.0, 0.1, 1.0, 0.0, 1e9], 1)]);
    assert_eq!(shaped.duration_factor, crate::impact::DURATION_FACTOR_MAX);
    // 10 excess drop-offs × 1.00: the loss, read on its own.
    assert_eq!(shaped.loss().unwrap().minor, 1_000);
}

#[test]
fn a_measured_aov_is_the_mean_order_rounded_half_to_even() {
    let measured =
        |revenue, n| Aov::measured(revenue, n, usd(), AovSource::MeasuredFunnel).map(|a| a.minor);
    assert_eq!(measured(1_000_001, 2), Some(500_000));
    assert_eq!(measured(1_000_003, 2), Some(500_002));
    assert_eq!(measured(3, 2), Some(2));
    assert_eq!(measured(900_000, 0), None);
    assert_eq!(measured(0, 5), None);
    // Priced at a measured segment AOV of 120.00 (desktop's larger orders): 10 orders a
    // minute-window = 1,200.00.
    let desktop = Aov::measured(1_200_000, 100, usd(), AovSource::MeasuredSegment).unwrap();
    let mut impact = Impact::new(usd(), 1, desktop);
    impact.observe(&ImpactMinute {
        at: Timestamp::from_millis(1_700_000_000_000),
        minute: Timestamp::from_millis(1_700_000_000_000).minute(),
        window_minutes: 1,
        shoppers: 100.0,
        went_on: 80.0,
        baseline_drop_off: 0.1,
        downstream_conversion: 1.0,
        window_sd: 0.0,
        duration_factor: 1.0,
        aov: desktop,
    });
    assert_eq!(impact.figures().unwrap().loss.minor, 120_000);
    assert!(
        impact
            .inputs_json()
            .contains("\"aov_source\":\"measured_segment\"")
    );
}

#[test]
fn a_partial_window_is_booked_when_closed_and_an_other_currency_stops_it() {
    let mut impact = run(5, 100, &[([100.0, 80.0, 0.1, 1.0, 0.0, 1.0], 3)]);
    assert_eq!(impact.figures().unwrap().loss.minor, 0);
    impact.close_window(Timestamp::from_millis(1_700_000_300_000));
    // 3 minutes × 10 orders × 1.00, over 3 minutes: per hour 600 orders.
    check(&impact, [3_000, 60_000, 1_440_000, 0], 30.0);
    let mut eur = aov(100);
    eur.currency = Currency::parse("EUR").unwrap();
    impact.observe(&ImpactMinute {
        at: Timestamp::from_millis(1_700_000_400_000),
        minute: Timestamp::from_millis(1_700_000_400_000).minute(),
        window_minutes: 5,
        shoppers: 1.0,
        went_on: 1.0,
        baseline_drop_off: 0.1,
        downstream_conversion: 1.0,
        window_sd: 0.0,
        duration_factor: 1.0,
        aov: eur,
    });
    assert_eq!(impact.error, Some(ImpactError::CurrencyChanged));
}

#[test]
fn the_stored_form_reads_back() {
    let impact = run(5, 8_500, &[([100.0, 70.0, 0.1, 0.5, 0.02, 1.0], 7)]);
    let text = serde_json::to_string(&impact).unwrap();
    let back: Impact = serde_json::from_str(&text).unwrap();
    // serde_json may read a float back one ulp off (its fast parser); the amounts are
    // integers and come back exactly.
    assert_eq!(back.loss_micro_minor, impact.loss_micro_minor);
    assert_eq!(back.lost_micro_orders, impact.lost_micro_orders);
    assert_eq!(back.windows, impact.windows);
    assert_eq!(back.figures(), impact.figures());
    assert_eq!(back.inputs_json(), impact.inputs_json());
    assert!(impact.inputs_json().starts_with("{\"aov_minor\":8500,"));
}

#[test]
fn a_quiet_day_at_baseline_reads_as_within_noise() {
    // A day of 5-minute windows at baseline (binomial drop-offs around p₀ = 0.3 of 40
    // shoppers a minute): windows above baseline book their noise, clipped at zero, and the
    // band of the noise model covers it.
    // The band is a 2σ bound: about one quiet day in forty books beyond it (seed 7 of 0..8
    // does, at 1.5σ of the eight days' spread); seed 3 is a typical day.
    let mut rng = crate::rng::Rng::new(3);
    let p0: f64 = 0.3;
    let shoppers = 40.0;
    let window_sd = (p0 * (1.0 - p0) / (shoppers * 5.0)).sqrt();
    let mut impact = Impact::new(usd(), 5, aov(8_500));
    let mut at = Timestamp::from_millis(1_700_000_000_000);
    for _ in 0..24 * 60 {
        at = at.saturating_add(DurationMs::from_minutes(1));
        let dropped = (0..40).filter(|_| rng.bernoulli(p0)).count() as f64;
        impact.observe(&ImpactMinute {
            at,
            minute: at.minute(),
            window_minutes: 5,
            shoppers,
            went_on: shoppers - dropped,
            baseline_drop_off: p0,
            downstream_conversion: 1.0,
            window_sd,
            duration_factor: 1.0,
            aov: aov(8_500),
        });
    }
    let figures = impact.figures().unwrap();
    assert_eq!(impact.n_windows, 288);
    assert!(figures.within_noise, "{figures:?}");
    // Noise above baseline is booked (a window cannot tell noise from loss), about
    // 0.4σ a window: 288 × 0.4 × 6.5 orders ≈ 745 orders at 85.00, and the band says so.
    assert!(
        (5_000_000..7_420_722).contains(&figures.loss.minor),
        "{figures:?}"
    );
    assert_eq!(figures.band.minor, 7_420_722);
}
