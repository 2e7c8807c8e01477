//! The live service's detector snapshots: restoring a funnel from its stored snapshot at
//! start (or discarding it after a rebuild), and saving it periodically and on a clean stop.
//! See the parent module's docs; the snapshot itself is `revloop_core::detect::snapshot`'s.
//!
//! Store IO here holds at most a funnel's tick lock, never the state lock an API handler
//! takes; the state is cloned under that lock and encoded without it.

use std::sync::Arc;

use revloop_core::Config;
use revloop_core::time::{Minute, Timestamp};
use revloop_store::{DetectorSnapshotRow, Store, StoreError};

use super::{Detection, DetectionRunner, FailureClass, FunnelSlot, Span};

impl Detection {
    /// A funnel's start, before its first minute: discards the stored snapshot after a
    /// rebuild, or restores it when it fits (see `fitting_runner`). Store IO holds only the
    /// funnel's tick lock, and decoding holds no lock. A transient store error fails the tick
    /// (it is retried with the backoff); any other problem with the snapshot means warming up
    /// from history.
    pub(super) fn restore_funnel(
        &self,
        slot: &FunnelSlot,
        store: &dyn Store,
        span: Span,
        config: &Arc<Config>,
    ) -> Result<(), (StoreError, FailureClass)> {
        let (may_restore, discard) = {
            let state = slot.lock();
            let fresh = state.runner.detector().next_minute().is_none();
            (state.may_restore && fresh, state.discard_stored)
        };
        if discard {
            let discarded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                store.discard_detector_snapshot(&slot.id)
            }));
            match discarded {
                Ok(Ok(_)) => {}
                Ok(Err(err)) => {
                    let class = FailureClass::of(&err);
                    return Err((err, class));
                }
                Err(_) => {
                    let err = StoreError::Io("discarding the snapshot panicked".to_owned());
                    return Err((err, FailureClass::Panic));
                }
            }
            let mut state = slot.lock();
            if state.generation == span.generation {
                state.discard_stored = false;
            }
        }
        if !may_restore {
            return Ok(());
        }
        let loaded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            store.load_detector_snapshot(&slot.id)
        }));
        let stored = match loaded {
            Ok(Ok(stored)) => stored,
            Ok(Err(err)) if err.is_transient() => {
                let class = FailureClass::of(&err);
                return Err((err, class));
            }
            Ok(Err(err)) => {
                tracing::warn!(funnel = %slot.id, error = %err,
                    "the stored detector snapshot could not be read; warming up from history");
                None
            }
            Err(_) => {
                tracing::warn!(funnel = %slot.id,
                    "reading the stored detector snapshot panicked; warming up from history");
                None
            }
        };
        let restored = stored.and_then(|row| self.fitting_runner(&slot.id, config, &row, span));
        let mut state = slot.lock();
        if state.generation != span.generation {
            return Ok(());
        }
        state.may_restore = false;
        if let Some((runner, minute)) = restored
            && state.runner.detector().next_minute().is_none()
        {
            state.runner = runner;
            state.restored_from = Some(minute);
            state.saved_until = Some(minute);
        }
        Ok(())
    }

    /// A runner restored from a stored snapshot, and the first minute it judges; `None` when
    /// the snapshot does not fit: taken before the history a warm-up reads (or before the
    /// counts kept per minute), after the minutes due now, or under another config or build.
    fn fitting_runner(
        &self,
        funnel: &str,
        config: &Arc<Config>,
        row: &DetectorSnapshotRow,
        span: Span,
    ) -> Option<(DetectionRunner, Minute)> {
        let oldest = span.from.max(self.config.retention.hourly_before(span.now));
        if row.next_minute < oldest || row.next_minute > span.until {
            tracing::info!(funnel, snapshot_minute = %row.next_minute.start(),
                "the stored detector snapshot is outside the history; warming up from history");
            return None;
        }
        let mut runner = DetectionRunner::new(config.clone());
        match runner.detector.restore(config, 0, &row.bytes) {
            Ok(minute) => {
                tracing::info!(funnel, snapshot_minute = %minute.start(), n_bytes = row.bytes.len(),
                    "restored the detector from its snapshot; reading the counts after it");
                Some((runner, minute))
            }
            Err(err) => {
                tracing::warn!(funnel, error = %err,
                    "the stored detector snapshot does not fit; warming up from history");
                None
            }
        }
    }

    /// Saves every live funnel's snapshot that is not saved yet: on a clean stop. Blocking.
    pub fn save_snapshots(&self, store: &dyn Store, saved_at: Timestamp) {
        let generation = self.alert_log().generation;
        for slot in &self.funnels {
            // A funnel whose tick is running (a warm-up reading weeks of history, say) is not
            // waited for: a stop must not hang on it, and what it would save is not live yet.
            let _ticking = match slot.ticking.try_lock() {
                Ok(guard) => guard,
                Err(std::sync::TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
                Err(std::sync::TryLockError::WouldBlock) => continue,
            };
            save_snapshot(slot, store, generation, saved_at, 1);
        }
    }
}

/// Saves a live funnel's snapshot when it has judged at least `every_minutes` minutes since
/// the last one saved (at once, when none was). The state is cloned under its lock, then
/// encoded and written without it; the caller holds the funnel's tick lock, so one funnel's
/// saves never overlap. A failed save is logged and tried again after the next interval: the
/// detector judges on without it.
pub(super) fn save_snapshot(
    slot: &FunnelSlot,
    store: &dyn Store,
    generation: u64,
    saved_at: Timestamp,
    every_minutes: i64,
) {
    let (config, detector) = {
        let state = slot.lock();
        let next = state.runner.detector().next_minute();
        let due = match (next, state.saved_until) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(next), Some(saved)) => next.index() - saved.index() >= every_minutes,
        };
        if state.generation != generation
            || state.live_since.is_none()
            || state.discard_stored
            || !due
        {
            return;
        }
        (state.runner.config.clone(), state.runner.detector().clone())
    };
    let Some(snapshot) = detector.snapshot(&config, 0) else {
        return;
    };
    drop(detector);
    let row = DetectorSnapshotRow {
        funnel: slot.id.clone(),
        next_minute: snapshot.next_minute,
        fingerprint: snapshot.fingerprint,
        saved_at,
        bytes: snapshot.bytes,
    };
    let saved = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        store.save_detector_snapshot(&row)
    }));
    match saved {
        Ok(Ok(_)) => {}
        Ok(Err(err)) => {
            tracing::warn!(funnel = %slot.id, error = %err, "saving the detector snapshot failed");
        }
        Err(_) => tracing::warn!(funnel = %slot.id, "saving the detector snapshot panicked"),
    }
    let mut state = slot.lock();
    if state.generation == generation {
        state.saved_until = Some(row.next_minute);
    }
}
