//! A restored detector judges as the saved one; a snapshot that does not fit is refused, never
//! a crash.

use super::{SNAPSHOT_FORMAT_VERSION, SnapshotError};
use crate::alert::AlertEventKind;
use crate::config::Config;
use crate::detect::Detector;
use crate::detect::tests::{CLEAN, CONFIG, Traffic, feed, learned, opened};

/// Half an hour into an outage (an alert open, its CUSUMs high), the state is saved and
/// restored into a fresh detector; both then see the same ninety minutes (the outage's end and
/// the recovery) and must say exactly the same things.
#[test]
fn a_restored_detector_judges_exactly_as_the_saved_one() {
    let config = Config::parse(CONFIG).unwrap();
    let (mut saved, mut rng, now) = learned(4);
    let outage_end = now.plus(60);
    let outage = move |minute| {
        if minute < outage_end {
            Traffic {
                keep: [1.0, 0.3],
                ..CLEAN
            }
        } else {
            CLEAN
        }
    };
    let before = feed(&mut saved, &mut rng, now, 30, outage);
    assert!(
        !opened(&before).is_empty(),
        "the outage is alerted: {before:?}"
    );

    let snapshot = saved
        .snapshot(&config, 0)
        .expect("a snapshot after judging");
    assert_eq!(snapshot.next_minute, now.plus(30));
    let mut restored = Detector::new(&config);
    assert_eq!(
        restored.restore(&config, 0, &snapshot.bytes),
        Ok(now.plus(30))
    );
    assert_eq!(restored.next_minute(), saved.next_minute());
    assert_eq!(restored.report(0), saved.report(0));
    assert_eq!(restored.thresholds(0), saved.thresholds(0));

    let mut rng_restored = rng.clone();
    let after_saved = feed(&mut saved, &mut rng, now.plus(30), 90, outage);
    let after_restored = feed(&mut restored, &mut rng_restored, now.plus(30), 90, outage);
    assert!(
        after_saved
            .iter()
            .any(|e| e.event == AlertEventKind::Closed),
        "the recovery closes the alert: {after_saved:?}"
    );
    assert_eq!(after_restored, after_saved);
    assert_eq!(restored.report(0), saved.report(0));
    assert_eq!(
        restored.baseline(0, Some(("device", "mobile")), 1),
        saved.baseline(0, Some(("device", "mobile")), 1)
    );
    // And a snapshot of the restored detector is the saved one's, byte for byte.
    assert_eq!(restored.snapshot(&config, 0), saved.snapshot(&config, 0));
}

fn saved_bytes() -> (Config, Vec<u8>) {
    let config = Config::parse(CONFIG).unwrap();
    let (detector, _, _) = learned(1);
    let bytes = detector.snapshot(&config, 0).unwrap().bytes;
    (config, bytes)
}

#[test]
fn a_snapshot_of_another_configuration_is_refused() {
    let (_, bytes) = saved_bytes();
    for (change, from, to) in [
        ("window", "[detection]\n", "[detection]\nwindow = \"10m\"\n"),
        ("time zone", "America/New_York", "Europe/Berlin"),
        ("stage", "id = \"cart\"", "id = \"basket\""),
        ("dimension", "name = \"device\"", "name = \"platform\""),
    ] {
        let other = Config::parse(&CONFIG.replacen(from, to, 1)).unwrap();
        let mut detector = Detector::new(&other);
        assert_eq!(
            detector.restore(&other, 0, &bytes),
            Err(SnapshotError::Fingerprint),
            "{change}"
        );
        assert_eq!(detector.next_minute(), None, "{change}: left as it was");
    }
}

#[test]
fn a_snapshot_of_another_format_is_refused() {
    let (config, mut bytes) = saved_bytes();
    // The version is the first field, a postcard varint: 1 is the byte 0x01.
    assert_eq!(bytes[0], SNAPSHOT_FORMAT_VERSION as u8);
    bytes[0] = SNAPSHOT_FORMAT_VERSION as u8 + 1;
    let mut detector = Detector::new(&config);
    assert_eq!(
        detector.restore(&config, 0, &bytes),
        Err(SnapshotError::Version {
            found: SNAPSHOT_FORMAT_VERSION + 1,
            expected: SNAPSHOT_FORMAT_VERSION
        })
    );
}

/// Cut short, extended, or with bytes changed all along: an error or a detector that goes on
/// judging, never a panic.
#[test]
fn damaged_bytes_never_crash() {
    let (config, bytes) = saved_bytes();
    let restore = |bytes: &[u8]| Detector::new(&config).restore(&config, 0, bytes);
    assert!(matches!(restore(&[]), Err(SnapshotError::Decode(_))));
    assert!(matches!(
        restore(&bytes[..bytes.len() - 1]),
        Err(SnapshotError::Decode(_))
    ));
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(matches!(restore(&longer), Err(SnapshotError::Decode(_))));
    assert!(restore(&[0xff; 64]).is_err());
    let stride = (bytes.len() / 997).max(1);
    for at in (0..bytes.len()).step_by(stride) {
        for flip in [0x01, 0x80, 0xff] {
            let mut damaged = bytes.clone();
            damaged[at] ^= flip;
            let mut detector = Detector::new(&config);
            if let Ok(next) = detector.restore(&config, 0, &damaged) {
                // A change that still decodes (a float's bits) judges on without a panic.
                let mut events = Vec::new();
                for minute in next.until(next.plus(3)) {
                    detector.close_minute(minute, &mut events);
                }
            }
        }
    }
}

/// A detector that already judged other minutes does not take a snapshot of another minute:
/// its funnels share one clock.
#[test]
fn a_snapshot_of_another_minute_is_refused_by_a_running_detector() {
    let (config, bytes) = saved_bytes();
    let (mut running, _, _) = learned(2);
    running.close_minute(running.next_minute().unwrap(), &mut Vec::new());
    assert_eq!(
        running.restore(&config, 0, &bytes),
        Err(SnapshotError::MinuteMismatch)
    );
    assert_eq!(
        Detector::new(&config).restore(&config, 3, &bytes),
        Err(SnapshotError::UnknownFunnel(3))
    );
}
