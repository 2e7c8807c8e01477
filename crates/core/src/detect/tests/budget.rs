//! The false-alarm budget: split between the funnel as a whole and its segments.

use super::{CONFIG, START};
use crate::config::Config;
use crate::detect::{Detector, SIGMA_P2};
use crate::stats;

#[test]
fn budgets_are_split_between_the_whole_and_its_segments() {
    let config = Config::parse(CONFIG).unwrap();
    let mut detector = Detector::new(&config);
    let alone = detector.thresholds(0).unwrap();
    for value in ["a", "b", "c", "d"] {
        detector.segment(0, Some(("device", value)));
    }
    let mut events = Vec::new();
    detector.close_minute(START, &mut events);
    let whole = detector.funnels[0].thresholds;
    let segments = detector.funnels[0].segment_thresholds;
    assert_eq!(alone.conversion_p2, whole.conversion_p2);
    // One funnel, three stages: two conversion series and two volume directions, half the
    // budget each for the whole and for the four segments.
    assert_eq!(whole.arl0_p2_minutes, 1000.0 * 24.0 * 60.0 * 4.0 / 0.5);
    assert_eq!(segments.arl0_p2_minutes, 1000.0 * 24.0 * 60.0 * 16.0 / 0.5);
    assert!(segments.conversion_p2 > whole.conversion_p2);
    assert!(whole.conversion_p1 > whole.conversion_p2);
    assert!(
        stats::llr_cusum_arl0(SIGMA_P2 / 5f64.sqrt(), whole.conversion_p2)
            >= whole.arl0_p2_minutes * 0.999
    );
}
