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
//!
//!    With the deviation, each open conversion incident's series is priced for the minute
//!    ([`Deviations::impact`]: the detector's statistics at the AOV the caller hands in, see
//!    [`Priced`]) into its revenue impact ([`IncidentEngine::handle_impact`]), before the
//!    evaluation, so that a resolution at this tick books this minute too;
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
use crate::impact::{Aov, ImpactMinute};
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

    /// The incident's series in the minute judged at `now`, priced; `None` (the default)
    /// where it is not priced: no AOV, no baseline, or a caller that measures only the trend.
    fn impact(&self, incident: &Incident, now: Timestamp) -> Option<ImpactMinute> {
        let _ = (incident, now);
        None
    }
}

/// A detector with the AOV to price each incident's minutes at: the caller (the server)
/// configures or measures it, since the detector reads no revenue.
pub struct Priced<'a, A: Fn(&Incident) -> Option<Aov>> {
    pub detector: &'a Detector,
    pub aov: A,
}

impl<A: Fn(&Incident) -> Option<Aov>> Deviations for Priced<'_, A> {
    fn deviation(&self, incident: &Incident) -> Option<f64> {
        deviation(self.detector, incident)
    }

    fn impact(&self, incident: &Incident, now: Timestamp) -> Option<ImpactMinute> {
        impact(self.detector, incident, now, (self.aov)(incident)?)
    }
}

/// What a live caller, which keeps its detector behind a lock, measures of an incident in one
/// ask: its deviation and its priced minute.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Measured {
    pub sigma: Option<f64>,
    pub impact: Option<ImpactMinute>,
}

/// A closure that measures both at once ([`Measured`]): asked once per incident and tick
/// (the deviation's ask is kept for the impact's, which [`feed_tick`] makes right after it).
pub struct Measure<F: Fn(&Incident) -> Measured> {
    measure: F,
    last: std::cell::RefCell<Option<(u64, Measured)>>,
}

impl<F: Fn(&Incident) -> Measured> Measure<F> {
    pub fn new(measure: F) -> Measure<F> {
        Measure {
            measure,
            last: std::cell::RefCell::new(None),
        }
    }

    fn ask(&self, incident: &Incident) -> Measured {
        let measured = (self.measure)(incident);
        *self.last.borrow_mut() = Some((incident.id, measured));
        measured
    }
}

impl<F: Fn(&Incident) -> Measured> Deviations for Measure<F> {
    fn deviation(&self, incident: &Incident) -> Option<f64> {
        self.ask(incident).sigma
    }

    fn impact(&self, incident: &Incident, _now: Timestamp) -> Option<ImpactMinute> {
        match self.last.borrow_mut().take() {
            Some((id, measured)) if id == incident.id => measured.impact,
            _ => self.ask(incident).impact,
        }
    }
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

/// The incident's series in `detector`'s last judged minute, judged at `now`, priced at
/// `aov`: its segment's series where it has a segment (a segment-only incident books only its
/// segment), else the funnel's. Conversion incidents only.
pub fn impact(
    detector: &Detector,
    incident: &Incident,
    now: Timestamp,
    aov: Aov,
) -> Option<ImpactMinute> {
    if incident.kind != crate::alert::AlertKind::Conversion {
        return None;
    }
    let segment = incident
        .segment
        .as_ref()
        .map(|(dimension, value)| (dimension.as_str(), value.as_str()));
    let statistics = detector.impact_statistics(&incident.funnel, segment, &incident.stage)?;
    Some(ImpactMinute::new(now, statistics, aov))
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
    let mut measured: Vec<(String, String, f64)> = Vec::new();
    let mut priced: Vec<(u64, ImpactMinute)> = Vec::new();
    for incident in engine.incidents().filter(|incident| incident.is_open()) {
        if let Some(sigma) = deviations.deviation(incident) {
            measured.push((incident.funnel.clone(), incident.stage.clone(), sigma));
        }
        if let Some(minute) = deviations.impact(incident, now) {
            priced.push((incident.id, minute));
        }
    }
    for (funnel, stage, sigma) in measured {
        engine.handle_measurement(now, &funnel, &stage, sigma);
    }
    for (id, minute) in priced {
        engine.handle_impact(id, &minute);
    }
    engine.handle_timeout(now);
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod impact_tests;
