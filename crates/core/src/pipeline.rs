//! The one piece of glue between the detector and the incident engine: what a detector tick
//! hands the incidents, in which order, at which time.
//!
//! The live server, `replay`, the demo's backfill and the tests all take a tick through
//! [`feed_tick`], so that they cannot drift apart. This module owns only that order (the time
//! a tick is stamped with, [`judged_at`], is `detect`'s, re-exported here); it never judges a
//! minute (that is `detect`'s), never decides what an alert does to an incident (that is
//! `incident`'s), and never does IO, keeps state or reads a clock: the caller says what time
//! it is. It imports `detect` and
//! `incident`; neither of them imports it.
//!
//! # What a tick does, and why in this order
//!
//! A tick happens at `now`, the time its minute is judged. [`feed_tick`]:
//!
//! 1. fires the incident timers due up to `now`, each at its own time
//!    ([`IncidentEngine::run_until`]). An escalation, SLA breach or resolution that fell due
//!    before `now` happened before this tick's alerts, and must be on the record before them:
//!    an alert that returns after its incident resolved reopens it (within the flap hold) only
//!    if the resolution came first. In event time (`replay`, the demo backfill) the engine is
//!    woken by nothing else, so this is where those timers fire. Live, the server first
//!    catches the engine up to the wall clock (`handle_timeout(now)`, as its timer loop does),
//!    so that a page that goes out late is stamped when it goes out; this step then finds
//!    nothing overdue;
//! 2. takes in the tick's alert events at `now` ([`IncidentEngine::handle_alert`]), in the
//!    order the detector emitted them;
//! 3. measures the deviation of each incident open after those alerts, segment-aware (an
//!    incident scoped to `device = desktop` is measured on desktop's series, not the whole
//!    funnel's; see [`deviation`]), and records it at `now`
//!    ([`IncidentEngine::handle_measurement`]). After the alerts, so that an incident the tick
//!    just opened gets its first point of trend at once, and an incident whose last alert the
//!    tick closed is judged recovered on a deviation measured after the close (a measured
//!    series waits for it: the evaluation inside `handle_alert` does not recover it on the
//!    alert's close alone);
//! 4. evaluates once more at `now` ([`IncidentEngine::handle_timeout`]), so that the
//!    resolution criteria and recovery judged at `now` see the measurement taken at `now`: a
//!    P2 whose trend stops increasing with this minute resolves at this tick, not one tick
//!    later, and an incident back within 2σ stops escalating at this tick.
//!
//! The callers it replaced each did three of the four steps: the live `Incidents::feed` did
//! 2, 3 and 4 (timers due before `now` fired at `now`, inside the first alert's evaluation,
//! which it still does by catching up first), and the event-time `run_in_event_time` did 1, 2
//! and 3 (the last measurement was seen only by the next tick's timers; now a P2 whose trend
//! stops rising resolves at this tick rather than the next).

use crate::alert::AlertEvent;
use crate::detect::Detector;
use crate::incident::{Incident, IncidentEngine};
use crate::time::Timestamp;

/// When a minute is judged, defined once in `detect`; re-exported here because every caller
/// of [`feed_tick`] stamps its tick with it.
pub use crate::detect::judged_at;

/// Where a tick reads each open incident's deviation from: a [`Detector`] itself, or a
/// closure for a caller that keeps its detector behind a lock.
pub trait Deviations {
    /// The deviation of the incident's series now, in σ (positive: worse); `None` where the
    /// series is unknown or was not judged.
    fn deviation(&self, incident: &Incident) -> Option<f64>;
}

impl Deviations for Detector {
    fn deviation(&self, incident: &Incident) -> Option<f64> {
        deviation(self, incident)
    }
}

impl<F: Fn(&Incident) -> Option<f64> + ?Sized> Deviations for F {
    fn deviation(&self, incident: &Incident) -> Option<f64> {
        self(incident)
    }
}

/// The deviation of an incident's series in `detector` now: the drop-off from its stage over
/// the last judged window, in σ, of its segment's series where it has a segment, else of the
/// funnel as a whole.
pub fn deviation(detector: &Detector, incident: &Incident) -> Option<f64> {
    let segment = incident
        .segment
        .as_ref()
        .map(|(dimension, value)| (dimension.as_str(), value.as_str()));
    detector.window_sigma(&incident.funnel, segment, &incident.stage)
}

/// Takes one detector tick to the incident engine at `now`: timers due up to `now`, then the
/// tick's alert `events`, then each open incident's deviation, then one more evaluation at
/// `now`. See the module documentation for why in that order.
pub fn feed_tick<D: Deviations + ?Sized>(
    engine: &mut IncidentEngine,
    deviations: &D,
    now: Timestamp,
    events: &[AlertEvent],
) {
    engine.run_until(now);
    for event in events {
        engine.handle_alert(now, event);
    }
    let measured: Vec<(String, String, f64)> = engine
        .incidents()
        .filter(|incident| incident.is_open())
        .filter_map(|incident| {
            let sigma = deviations.deviation(incident)?;
            Some((incident.funnel.clone(), incident.stage.clone(), sigma))
        })
        .collect();
    for (funnel, stage, sigma) in measured {
        engine.handle_measurement(now, &funnel, &stage, sigma);
    }
    engine.handle_timeout(now);
}

#[cfg(test)]
mod tests;
