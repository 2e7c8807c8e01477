//! Detector snapshots: stored whole, replaced only by a later minute, read back byte for byte
//! (across chunks), discarded on a rebuild; two nodes saving at once leave the newest.

use revloop_core::Timestamp;
use revloop_store::{DetectorSnapshotRow, SNAPSHOT_CHUNK_BYTES, Store};

use super::{FUNNEL, START_MS, minute};

fn row(next_minute: i64, n_bytes: usize, seed: u8) -> DetectorSnapshotRow {
    DetectorSnapshotRow {
        funnel: FUNNEL.to_owned(),
        next_minute: minute(next_minute),
        fingerprint: u64::MAX - u64::from(seed),
        saved_at: Timestamp::from_millis(START_MS + next_minute),
        bytes: (0..n_bytes)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect(),
    }
}

pub fn detector_snapshots_round_trip(store: &dyn Store) {
    assert_eq!(store.load_detector_snapshot(FUNNEL).unwrap(), None);
    // Over two chunks, not a multiple of the chunk size, with a fingerprint above i64::MAX.
    let first = row(100, SNAPSHOT_CHUNK_BYTES * 2 + 17, 1);
    assert!(store.save_detector_snapshot(&first).unwrap());
    assert_eq!(
        store.load_detector_snapshot(FUNNEL).unwrap(),
        Some(first.clone())
    );
    assert_eq!(store.load_detector_snapshot("other").unwrap(), None);

    // An older or the same minute leaves the stored one.
    assert!(!store.save_detector_snapshot(&row(99, 10, 2)).unwrap());
    assert!(!store.save_detector_snapshot(&row(100, 10, 3)).unwrap());
    assert_eq!(store.load_detector_snapshot(FUNNEL).unwrap(), Some(first));

    // A later and smaller one replaces it whole: no chunk of the old one is left over.
    let later = row(160, 5, 4);
    assert!(store.save_detector_snapshot(&later).unwrap());
    assert_eq!(store.load_detector_snapshot(FUNNEL).unwrap(), Some(later));

    let empty = row(200, 0, 5);
    assert!(store.save_detector_snapshot(&empty).unwrap());
    assert_eq!(store.load_detector_snapshot(FUNNEL).unwrap(), Some(empty));

    assert!(!store.discard_detector_snapshot("other").unwrap());
    assert!(store.load_detector_snapshot(FUNNEL).unwrap().is_some());
    assert!(store.discard_detector_snapshot(FUNNEL).unwrap());
    assert_eq!(store.load_detector_snapshot(FUNNEL).unwrap(), None);
    assert!(!store.discard_detector_snapshot(FUNNEL).unwrap());
    // After a discard, any minute may be saved again.
    assert!(store.save_detector_snapshot(&row(1, 3, 6)).unwrap());
}

/// Two nodes save snapshots of interleaved minutes at once; the stored one is the latest
/// minute's, whole.
pub fn two_nodes_keep_the_newest_detector_snapshot(a: &dyn Store, b: &dyn Store) {
    let saves = |store: &dyn Store, offset: i64| {
        for step in 0..10 {
            let next_minute = 10 + 2 * step + offset;
            store
                .save_detector_snapshot(&row(next_minute, 1_000 + next_minute as usize, step as u8))
                .unwrap();
        }
    };
    std::thread::scope(|scope| {
        scope.spawn(|| saves(a, 0));
        scope.spawn(|| saves(b, 1));
    });
    let stored = a.load_detector_snapshot(FUNNEL).unwrap().unwrap();
    assert_eq!(stored, row(29, 1_029, 9));
    assert_eq!(b.load_detector_snapshot(FUNNEL).unwrap(), Some(stored));
}
