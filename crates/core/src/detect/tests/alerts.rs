//! What the detector alerts on, and what it leaves alone: outages, drops that deepen,
//! improvements, missing events and a failing segment.

use super::{CLEAN, Traffic, WEEK_MINUTES, feed, learned, opened};
use crate::alert::{AlertEventKind, AlertKind, Severity};
use crate::detect::SeriesStatus;

#[test]
fn clean_traffic_stays_quiet() {
    // Identical to baseline: no alarm in a week, at each of these seeds. The budget is one
    // false P2 per week for the whole funnel, so a quiet week is the expected outcome.
    for seed in [1, 2, 3] {
        let (mut detector, mut rng, now) = learned(seed);
        let events = feed(&mut detector, &mut rng, now, WEEK_MINUTES, |_| CLEAN);
        assert!(opened(&events).is_empty(), "seed {seed}: {events:?}");
        let report = detector.report(0);
        assert!(report.iter().all(|r| r.status != SeriesStatus::Learning));
    }
}

#[test]
fn an_outage_stops_the_line_and_recovery_closes_it() {
    let (mut detector, mut rng, now) = learned(4);
    let outage_end = now.plus(60);
    let events = feed(&mut detector, &mut rng, now, 120, |minute| {
        if minute < outage_end {
            Traffic {
                keep: [1.0, 0.3],
                ..CLEAN
            }
        } else {
            CLEAN
        }
    });
    let first = opened(&events)[0];
    assert_eq!(
        (
            first.stage.as_str(),
            first.kind,
            first.severity,
            first.segment.clone()
        ),
        ("cart", AlertKind::Conversion, Severity::P1, None)
    );
    let delay = first.at.since(now.start()).whole_minutes();
    assert!(delay <= 5, "found after {delay} minutes");
    assert!(first.observed_rate > first.baseline_rate + 0.3, "{first:?}");
    assert!(first.sigma > 3.0, "{first:?}");
    // Every device lost its share: nothing stands out.
    assert!(first.top_segments.is_empty(), "{first:?}");
    let closed = events
        .iter()
        .find(|e| e.event == AlertEventKind::Closed && e.alert_id == first.alert_id)
        .expect("closed after recovery");
    let after_recovery = closed.at.since(outage_end.start()).whole_minutes();
    assert!(
        (15..=25).contains(&after_recovery),
        "closed {after_recovery} minutes after recovery"
    );
}

#[test]
fn a_moderate_drop_is_p2_and_a_deeper_one_upgrades_it() {
    let (mut detector, mut rng, now) = learned(5);
    let events = feed(&mut detector, &mut rng, now, 240, |minute| {
        let keep = if minute < now.plus(150) { 0.9 } else { 0.4 };
        Traffic {
            keep: [1.0, keep],
            ..CLEAN
        }
    });
    let kinds: Vec<(AlertEventKind, Severity)> = events
        .iter()
        .filter(|e| e.segment.is_none())
        .map(|e| (e.event, e.severity))
        .collect();
    assert_eq!(
        kinds[..2],
        [
            (AlertEventKind::Opened, Severity::P2),
            (AlertEventKind::Upgraded, Severity::P1)
        ],
        "{events:?}"
    );
}

#[test]
fn a_better_run_is_recorded_not_alerted() {
    let (mut detector, mut rng, now) = learned(6);
    // Minute by minute: the status says `improved` while the improvement CUSUM's last alarm
    // stands and the window stays beyond 2σ better, so it may lapse for a few minutes where a
    // window comes back within 2σ.
    let mut improved_minutes = 0;
    for minute in 0..120 {
        let events = feed(&mut detector, &mut rng, now.plus(minute), 1, |_| Traffic {
            keep: [1.0, 1.2],
            ..CLEAN
        });
        assert!(opened(&events).is_empty(), "{events:?}");
        let report = detector.report(0);
        let cart = report
            .iter()
            .find(|r| r.segment.is_none() && r.stage == "cart")
            .unwrap();
        if cart.status == SeriesStatus::Improved {
            improved_minutes += 1;
        }
    }
    assert!(improved_minutes >= 60, "{improved_minutes}");
}

#[test]
fn missing_events_are_a_volume_alert_not_lost_shoppers() {
    let (mut detector, mut rng, now) = learned(7);
    let events = feed(&mut detector, &mut rng, now, 60, |_| Traffic {
        cart_events_lost: 0.6,
        ..CLEAN
    });
    let first = opened(&events)[0];
    assert_eq!(
        (first.kind, first.stage.as_str()),
        (AlertKind::Volume, "cart"),
        "{events:?}"
    );
    assert!(
        opened(&events).iter().all(|e| e.kind == AlertKind::Volume),
        "{events:?}"
    );
}

#[test]
fn a_segment_failure_names_its_segment() {
    let (mut detector, mut rng, now) = learned(8);
    let events = feed(&mut detector, &mut rng, now, 120, |_| Traffic {
        keep: [1.0, 0.6],
        only: Some("desktop"),
        ..CLEAN
    });
    let first = opened(&events)[0];
    let named = first.segment.clone().or_else(|| {
        first
            .top_segments
            .first()
            .map(|t| (t.dimension.clone(), t.value.clone()))
    });
    assert_eq!(
        named,
        Some(("device".into(), "desktop".into())),
        "{first:?}"
    );
    if first.segment.is_none() {
        let top = &first.top_segments[0];
        assert!(top.share > 0.9 && top.traffic_share < 0.5, "{top:?}");
    }
}
