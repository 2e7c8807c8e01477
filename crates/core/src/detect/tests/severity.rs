//! Severity labels a reader can check against the runbook: P1 is "beyond 3σ", so no P1 alert
//! event shows a σ below 3, whatever CUSUM raised it.

use super::*;
use crate::alert::{AlertKind, Severity};

#[test]
fn no_p1_shows_a_sigma_below_three() {
    let mut n_p1 = 0;
    let mut n_p2_first = 0;
    for seed in [11, 12, 13] {
        let (learned_detector, learned_rng, now) = learned(seed);
        // Drops at the last step (kept share of step conversion), from barely visible to an
        // outage, at the first step too, and on mobile only.
        let cases: [([f64; 2], Option<&'static str>); 7] = [
            ([1.0, 0.92], None),
            ([1.0, 0.88], None),
            ([1.0, 0.8], None),
            ([1.0, 0.6], None),
            ([0.85, 1.0], None),
            ([0.7, 1.0], None),
            ([1.0, 0.8], Some("mobile")),
        ];
        for (keep, only) in cases {
            let mut detector = learned_detector.clone();
            let mut rng = learned_rng.clone();
            let events = feed(&mut detector, &mut rng, now, 180, |_| Traffic {
                keep,
                only,
                ..CLEAN
            });
            for event in &events {
                if event.kind != AlertKind::Conversion || event.event == AlertEventKind::Closed {
                    continue;
                }
                if event.severity == Severity::P1 {
                    n_p1 += 1;
                    assert!(
                        event.sigma >= 3.0,
                        "seed {seed}, keep {keep:?} on {only:?}: P1 at {:.2}σ: {event:?}",
                        event.sigma
                    );
                } else if event.event == AlertEventKind::Opened {
                    n_p2_first += 1;
                }
            }
        }
    }
    // The cases reach both severities, so the check above is not vacuous.
    assert!(n_p1 >= 10, "{n_p1} P1 events");
    assert!(n_p2_first >= 3, "{n_p2_first} P2 openings");
}
