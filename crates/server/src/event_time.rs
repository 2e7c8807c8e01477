//! The detector and the incident engine in event time, as `replay` and `demo` run them over
//! stored counts: each minute is judged when a live server would judge it, and the engine's
//! clock is that judging time, never the wall clock.
//!
//! It wires the detection runner to the core's engine and owns nothing else; the live service
//! (`App::serve`) wires the same two through `detection::run` and the durable incidents.

use std::sync::Arc;

use revloop_core::Config;
use revloop_core::alert::AlertEvent;
use revloop_core::incident::Incident;
use revloop_core::incident::IncidentEngine;
use revloop_core::pipeline::{Priced, feed_tick, judged_at};
use revloop_core::time::{Minute, Timestamp};
use revloop_store::{Store, StoreError};

use crate::aov::AovBook;
use crate::booking::Booker;
use crate::detection::DetectionRunner;

/// Whether, and where, an event-time run books the incidents' losses.
#[derive(Clone, Copy)]
pub enum Books<'a> {
    /// In this store's ledger (it may be the store the counts are read from).
    In(&'a dyn Store),
    NotKept,
}

/// What an event-time run over stored counts found.
pub struct EventTimeRun {
    pub alerts: Vec<AlertEvent>,
    pub engine: IncidentEngine,
    /// When the last minute was judged (its end plus the settle time).
    pub judged_until: Option<Timestamp>,
}

/// Runs the detector over the stored counts of `[from, until)` and the incidents over its
/// alerts, in event time, as `replay` does: each minute is judged when a live server would
/// judge it ([`judged_at`]), and each tick goes through the core's one glue ([`feed_tick`]):
/// timers fire at their own times, each open incident's deviation is measured every minute,
/// and the minute ends with an evaluation at its judging time. Nobody acknowledges.
///
/// With [`Books::In`], every tick also books the incidents' losses in that store's ledger as a
/// live server would ([`Booker`]): `replay`'s books. The demo's backfill keeps none here; its
/// incidents are booked once the live service adopts them, so that the books never name an
/// incident the store does not hold.
pub fn run_in_event_time(
    config: &Arc<Config>,
    store: &dyn Store,
    from: Minute,
    until: Minute,
    books: Books<'_>,
) -> Result<EventTimeRun, StoreError> {
    let mut run = EventTimeRun {
        alerts: Vec::new(),
        engine: IncidentEngine::for_config(config),
        judged_until: None,
    };
    let settle = config.detection.settle;
    let aov_book = AovBook::new(config.clone());
    let mut booker = match books {
        Books::In(ledger) => Some((Booker::new(config.ledger.chart.clone()), ledger)),
        Books::NotKept => None,
    };
    let mut booking_failure = None;
    let engine = &mut run.engine;
    let judged_until = &mut run.judged_until;
    DetectionRunner::new(config.clone()).advance_observed(
        store,
        from,
        until,
        &mut run.alerts,
        &mut |minute, detector, new_events| {
            let now = judged_at(minute, settle);
            let priced = Priced {
                detector,
                aov: |incident: &Incident| aov_book.for_incident(store, incident, now),
            };
            feed_tick(engine, &priced, now, new_events);
            if let Some((booker, ledger)) = &mut booker
                && let Err(err) = booker.book(*ledger, engine, now)
            {
                booking_failure.get_or_insert(err);
            }
            *judged_until = Some(now);
        },
    )?;
    // A replay's books must not be silently short: the first failed booking fails the run.
    if let Some(err) = booking_failure {
        return Err(err);
    }
    Ok(run)
}
