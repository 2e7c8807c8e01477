//! Surges: more shoppers arriving is information, not an incident.
//!
//! A surge of entries (the detector's volume alert in the `surge` direction) loses no revenue,
//! and the runbook lists "marketing campaign traffic spikes" among the external factors to
//! check during an incident, not as an incident of its own. So, unless the policy says surges
//! page (`page_on_surge`), the engine hands a surge alert to this module instead of opening an
//! incident: it is kept for a while ([`RecentSurges`]) and attached to every open incident of
//! its funnel that it overlaps, as a finding on the checklist's external factor, with a
//! timeline entry. An incident that opens while a surge is on, or within
//! [`SURGE_ATTACH_AFTER_CLOSE`] of its end, gets it too.
//!
//! It owns only this bookkeeping; it never pages, never opens, resolves or re-rates an
//! incident, and never ticks a checklist item a responder has ticked.

use std::collections::BTreeMap;

use super::record::{CHECKLIST, ENGINE_ACTOR, Incident, Tick, TimelineKind, Unsaved, push};
use crate::alert::{AlertEvent, AlertEventKind};
use crate::time::{DurationMs, Timestamp};

/// Most surges kept at once; past it the oldest is forgotten first. Surges are few (a volume
/// alert per funnel and segment, open for minutes), so this only bounds a pathological stream.
pub const SURGES_KEPT_MAX: usize = 64;
/// Most incidents one surge is attached to (and remembered as attached to).
pub const SURGE_INCIDENTS_MAX: usize = 32;
/// How long after a surge closed it still attaches to an incident that opens: shoppers of a
/// campaign burst are still in the funnel, and a drop-off right after one is worth reading
/// beside it.
pub const SURGE_ATTACH_AFTER_CLOSE: DurationMs = DurationMs::from_minutes(60);
/// A surge whose close never arrived (a rebuilt detector derived another history, say) is
/// forgotten this long after it opened, rather than read as "still on" forever.
pub const SURGE_ON_FOR_MAX: DurationMs = DurationMs::from_hours(24);

/// The checklist item a surge is a finding of: "Marketing campaign traffic spikes".
pub const SURGE_CHECKLIST_ITEM: usize = 9;

/// One surge as the engine remembers it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Surge {
    pub alert_id: u64,
    pub funnel: String,
    /// The stage whose events surged (the funnel's first, where shoppers enter).
    pub stage: String,
    pub segment: Option<(String, String)>,
    pub onset: Timestamp,
    pub opened_at: Timestamp,
    /// `None` while the surge is on.
    pub closed_at: Option<Timestamp>,
    /// Events a minute: the baseline and what was observed, and by how many σ, when it opened.
    pub baseline_rate: f64,
    pub observed_rate: f64,
    pub sigma: f64,
    /// The incidents it has been attached to, at most [`SURGE_INCIDENTS_MAX`].
    pub attached_to: Vec<u64>,
}

impl Surge {
    fn from_alert(now: Timestamp, alert: &AlertEvent) -> Surge {
        // Kept as JSON with the engine's state, where a NaN would not read back.
        let finite = |x: f64| if x.is_finite() { x } else { 0.0 };
        Surge {
            alert_id: alert.alert_id,
            funnel: alert.funnel.clone(),
            stage: alert.stage.clone(),
            segment: alert.segment.clone(),
            onset: alert.onset,
            opened_at: now,
            closed_at: None,
            baseline_rate: finite(alert.baseline_rate),
            observed_rate: finite(alert.observed_rate),
            sigma: finite(alert.sigma),
            attached_to: Vec::new(),
        }
    }

    /// Whether it is on at `now`, or ended recently enough to be read beside an incident.
    fn is_relevant(&self, now: Timestamp) -> bool {
        match self.closed_at {
            Some(closed) => now.since(closed) <= SURGE_ATTACH_AFTER_CLOSE,
            None => now.since(self.opened_at) <= SURGE_ON_FOR_MAX,
        }
    }

    /// What the checklist and the timeline say about it.
    fn finding(&self) -> String {
        let ratio = if self.baseline_rate > 0.0 {
            format!(
                "{:.1}× the baseline",
                self.observed_rate / self.baseline_rate
            )
        } else {
            "above a baseline of none".to_owned()
        };
        let segment = self
            .segment
            .as_ref()
            .map_or(String::new(), |(d, v)| format!(" ({d} = {v})"));
        let until = match self.closed_at {
            Some(closed) => format!(", until {closed}"),
            None => ", still on".to_owned(),
        };
        format!(
            "suspect: a surge of {} events{segment} since {}{until}: {:.1} a minute against {:.1}, \
             {ratio} (alert {:016x}; surges page nobody)",
            self.stage, self.onset, self.observed_rate, self.baseline_rate, self.alert_id
        )
    }
}

/// The surges of the last while, oldest first.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RecentSurges {
    pub surges: Vec<Surge>,
}

impl RecentSurges {
    /// Takes a surge alert's event in: opened (or upgraded, for an alert not yet known)
    /// remembers it, closed marks its end. An event already taken in changes nothing. Returns
    /// the index of the surge to attach to open incidents, if the event makes one news.
    pub fn take(&mut self, now: Timestamp, alert: &AlertEvent) -> Option<usize> {
        self.forget(now);
        let known = self
            .surges
            .iter()
            .position(|s| s.alert_id == alert.alert_id);
        match (alert.event, known) {
            (AlertEventKind::Opened | AlertEventKind::Upgraded, None) => {
                if self.surges.len() >= SURGES_KEPT_MAX {
                    // The oldest closed one goes first; a surge still on only if none closed.
                    let oldest = self
                        .surges
                        .iter()
                        .position(|s| s.closed_at.is_some())
                        .unwrap_or(0);
                    self.surges.remove(oldest);
                }
                self.surges.push(Surge::from_alert(now, alert));
                Some(self.surges.len() - 1)
            }
            (AlertEventKind::Opened | AlertEventKind::Upgraded, Some(_)) => None,
            (AlertEventKind::Closed, Some(index)) => {
                let surge = &mut self.surges[index];
                if surge.closed_at.is_none() {
                    surge.closed_at = Some(now);
                }
                None
            }
            (AlertEventKind::Closed, None) => None,
        }
    }

    /// Attaches surge `index` to `incident` if it is open, of the same funnel, not a guard
    /// incident, and does not have it yet. Returns whether it did.
    pub fn attach(&mut self, now: Timestamp, index: usize, incident: &mut Incident) -> bool {
        let Some(surge) = self.surges.get_mut(index) else {
            return false;
        };
        if !incident.is_open()
            || incident.is_guard()
            || incident.funnel != surge.funnel
            || surge.attached_to.contains(&incident.id)
            || surge.attached_to.len() >= SURGE_INCIDENTS_MAX
        {
            return false;
        }
        surge.attached_to.push(incident.id);
        let finding = surge.finding();
        let (category, item) = CHECKLIST[SURGE_CHECKLIST_ITEM];
        // A responder's own tick stands; the engine's finding of an earlier surge is replaced.
        let slot = &mut incident.checklist[SURGE_CHECKLIST_ITEM];
        if slot.as_ref().is_none_or(|tick| tick.by == ENGINE_ACTOR) {
            *slot = Some(Tick {
                by: ENGINE_ACTOR.to_owned(),
                at: now,
                finding: finding.clone(),
            });
        }
        incident.unsaved = Unsaved(true);
        push(
            incident,
            now,
            ENGINE_ACTOR,
            TimelineKind::Checklist,
            format!("{category}: {item}: {finding}"),
        );
        true
    }

    /// The surges to attach to an incident opening at `now`: those on, or closed within
    /// [`SURGE_ATTACH_AFTER_CLOSE`].
    pub fn relevant(&self, now: Timestamp) -> Vec<usize> {
        (0..self.surges.len())
            .filter(|&index| self.surges[index].is_relevant(now))
            .collect()
    }

    /// Forgets the surges that ended too long ago to be attached to anything.
    fn forget(&mut self, now: Timestamp) {
        self.surges.retain(|s| s.is_relevant(now));
    }
}

/// Takes a surge alert in instead of an incident: remembered, and attached to every open
/// incident of its funnel.
pub(super) fn take_surge(
    surges: &mut RecentSurges,
    incidents: &mut BTreeMap<u64, Incident>,
    now: Timestamp,
    alert: &AlertEvent,
) {
    if let Some(index) = surges.take(now, alert) {
        for incident in incidents.values_mut() {
            surges.attach(now, index, incident);
        }
    }
}

/// Attaches to an incident that just opened the surges that are on or just ended.
pub(super) fn attach_recent(surges: &mut RecentSurges, now: Timestamp, incident: &mut Incident) {
    for index in surges.relevant(now) {
        surges.attach(now, index, incident);
    }
}
