//! [`IncidentEngine`]: every incident, the silences and the outbox of effects, driven by inputs
//! that carry their time (`handle_alert`, `handle_action`, `handle_measurement`,
//! `handle_timeout`). It does no IO and reads no clock; the rules it applies live in the
//! sibling modules, and it never reads the configuration.

use std::collections::{BTreeMap, VecDeque};

use super::action::{self, Action, ActionError, ActionRequest, TEXT_BYTES_MAX, check_text};
use super::escalation::{
    Effect, check_slas, clock, escalate, raise, resolve, tell_acknowledged, tell_resolved,
};
use super::guard::{GUARD_STAGE, GuardEvent, GuardStatus, guard_headline};
use super::policy::IncidentPolicy;
use super::record::{
    CHECKLIST, ENGINE_ACTOR, Escalation, Incident, IncidentSeverity, IncidentState,
    TIMELINE_ENTRIES_MAX, TimelineKind, Unsaved, push,
};
use super::recovery;
use super::silences::{
    ADDED_SILENCE_LENGTH_MAX, ADDED_SILENCES_MAX, AddedSilence, Silence, SilenceError,
};
use super::surges::{self, RecentSurges};
use crate::alert::{AlertEvent, AlertEventKind, AlertKind, Direction};
use crate::impact::{Impact, ImpactMinute};
use crate::time::Timestamp;

mod declare;

pub use declare::{DECLARED_NAME_BYTES_MAX, DECLARED_SUMMARY_BYTES_MAX, Declaration, DeclareError};

/// Most incidents the engine keeps resolved for reopening and reports; older resolved ones are
/// forgotten first (the store keeps them).
pub const RESOLVED_KEPT_MAX: usize = 1_000;
/// Measurements kept per incident for its trend.
pub const TREND_POINTS_MAX: usize = 60;

/// The engine's own state beside its incidents: what a restart needs besides them.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EngineMeta {
    pub next_id: u64,
    pub evaluated_at: Timestamp,
    #[serde(default)]
    pub added_silences: Vec<AddedSilence>,
    #[serde(default)]
    pub next_silence_id: u64,
    /// Surges of the last while, attached to incidents instead of paging (`surges`).
    #[serde(default)]
    pub surges: RecentSurges,
}

/// What an incident opens with, whatever opened it (an alert, the dead man's switch, or a
/// responder declaring it).
struct Opening<'a> {
    funnel: &'a str,
    stage: &'a str,
    kind: AlertKind,
    segment: Option<(String, String)>,
    severity: IncidentSeverity,
    onset: Timestamp,
    /// Who opened it, for its first timeline entry: `revloop`, or the responder who declared
    /// it.
    actor: &'a str,
}

/// All incidents, and what is owed to the outside.
#[derive(Debug, Clone)]
pub struct IncidentEngine {
    policy: IncidentPolicy,
    /// From the config.
    silences: Vec<Silence>,
    /// Added while running.
    added_silences: Vec<AddedSilence>,
    next_silence_id: u64,
    incidents: BTreeMap<u64, Incident>,
    next_id: u64,
    outbox: VecDeque<Effect>,
    /// The latest time the engine was told; deadlines at or before it have been acted on.
    evaluated_at: Timestamp,
    /// Surges that paged nobody, for the incidents they overlap.
    surges: RecentSurges,
}

impl IncidentEngine {
    pub fn new(policy: IncidentPolicy, silences: Vec<Silence>) -> IncidentEngine {
        IncidentEngine {
            policy,
            silences,
            added_silences: Vec::new(),
            next_silence_id: 1,
            incidents: BTreeMap::new(),
            next_id: 1,
            outbox: VecDeque::new(),
            evaluated_at: Timestamp::MIN,
            surges: RecentSurges::default(),
        }
    }

    /// An engine that carries on from a saved state: its meta and incidents (with their
    /// timelines). The outbox starts empty: what was owed was saved with the state.
    pub fn restore(
        policy: IncidentPolicy,
        silences: Vec<Silence>,
        meta: EngineMeta,
        incidents: Vec<Incident>,
    ) -> IncidentEngine {
        let next_id = incidents
            .iter()
            .map(|i| i.id + 1)
            .max()
            .unwrap_or(1)
            .max(meta.next_id);
        let next_silence_id = meta
            .added_silences
            .iter()
            .map(|s| s.id + 1)
            .max()
            .unwrap_or(1)
            .max(meta.next_silence_id);
        IncidentEngine {
            policy,
            silences,
            added_silences: meta.added_silences,
            next_silence_id,
            incidents: incidents.into_iter().map(|i| (i.id, i)).collect(),
            next_id,
            outbox: VecDeque::new(),
            evaluated_at: meta.evaluated_at,
            surges: meta.surges,
        }
    }

    pub fn meta(&self) -> EngineMeta {
        EngineMeta {
            next_id: self.next_id,
            evaluated_at: self.evaluated_at,
            added_silences: self.added_silences.clone(),
            next_silence_id: self.next_silence_id,
            surges: self.surges.clone(),
        }
    }

    /// Adds a silence (a maintenance window for a planned deploy, say): incidents opened in
    /// it page nobody until it ends. Incidents already open are not affected.
    pub fn add_silence(
        &mut self,
        now: Timestamp,
        actor: &str,
        silence: Silence,
    ) -> Result<u64, SilenceError> {
        if silence.from >= silence.to {
            return Err(SilenceError::Backwards);
        }
        if silence.to <= now {
            return Err(SilenceError::Ended);
        }
        if silence.to.since(silence.from) > ADDED_SILENCE_LENGTH_MAX {
            return Err(SilenceError::TooLong);
        }
        if silence.reason.trim().is_empty() || silence.reason.len() > TEXT_BYTES_MAX {
            return Err(SilenceError::Reason);
        }
        if self.added_silences.len() >= ADDED_SILENCES_MAX {
            // Forget the ended ones, oldest first.
            self.added_silences.sort_by_key(|s| s.silence.to);
            let ended = self
                .added_silences
                .iter()
                .take_while(|s| s.silence.to <= now)
                .count();
            self.added_silences.drain(..ended);
            if self.added_silences.len() >= ADDED_SILENCES_MAX {
                return Err(SilenceError::TooMany);
            }
        }
        let id = self.next_silence_id;
        self.next_silence_id += 1;
        self.added_silences.push(AddedSilence {
            id,
            silence,
            added_by: actor.to_owned(),
            added_at: now,
        });
        Ok(id)
    }

    /// Ends an added silence now. Incidents it was holding escalate from L1 at once. Returns
    /// the silence, or `None` if there is none with this id.
    pub fn end_silence(&mut self, now: Timestamp, id: u64) -> Option<AddedSilence> {
        let index = self.added_silences.iter().position(|s| s.id == id)?;
        let ended = self.added_silences.remove(index);
        if ended.silence.to <= now {
            return Some(ended);
        }
        // Held by it: triggered, waiting for L1 at its end. Another silence may still hold them.
        let held: Vec<(u64, Timestamp)> = self
            .incidents
            .values()
            .filter(|i| {
                i.state == IncidentState::Triggered
                    && i.escalation.next_level == 0
                    && i.escalation.repeats == 0
                    && i.escalation.next_at == Some(ended.silence.to)
            })
            .map(|i| (i.id, self.pages_from(now, &i.funnel, &i.stage)))
            .collect();
        for (id, pages_from) in held {
            let incident = self.incidents.get_mut(&id).expect("listed");
            incident.escalation.next_at = Some(pages_from);
            incident.unsaved = Unsaved(true);
        }
        Some(ended)
    }

    /// The config's silences and those added while running (with their ids).
    pub fn silences(&self) -> (&[Silence], &[AddedSilence]) {
        (&self.silences, &self.added_silences)
    }

    /// The incidents changed since the last call (opened, acted on, paged, measured), to be
    /// saved with the effects drained since.
    pub fn take_changed(&mut self) -> Vec<&Incident> {
        let mut changed = Vec::new();
        for incident in self.incidents.values_mut() {
            if std::mem::take(&mut incident.unsaved).0 {
                changed.push(&*incident);
            }
        }
        changed
    }

    pub fn policy(&self) -> &IncidentPolicy {
        &self.policy
    }

    pub fn incident(&self, id: u64) -> Option<&Incident> {
        self.incidents.get(&id)
    }

    pub fn incidents(&self) -> impl Iterator<Item = &Incident> {
        self.incidents.values()
    }

    /// Turns an alert event into incident steps. An event already taken in (the same alert
    /// opened again, an upgrade to a severity the incident has, a close of a closed alert)
    /// changes nothing, so a restarted detector may send what it sent before.
    pub fn handle_alert(&mut self, now: Timestamp, alert: &AlertEvent) {
        let holder = self
            .incidents
            .values()
            .find(|i| i.alerts.contains_key(&alert.alert_id));
        // A surge pages nobody, unless an incident already holds its alert (opened while
        // surges paged): that incident still hears its upgrade and its close.
        if alert.direction == Direction::Surge && !self.policy.page_on_surge && holder.is_none() {
            surges::take_surge(&mut self.surges, &mut self.incidents, now, alert);
            return self.evaluate(now);
        }
        let repeated = holder.is_some_and(|i| match alert.event {
            AlertEventKind::Opened => true,
            AlertEventKind::Upgraded => i.severity <= IncidentSeverity::from(alert.severity),
            AlertEventKind::Closed => false,
        });
        let repeated = repeated
            || (alert.event == AlertEventKind::Closed
                && self
                    .incidents
                    .values()
                    .all(|i| i.alerts.get(&alert.alert_id) != Some(&true)));
        if repeated {
            return;
        }
        // A guard incident is revloop's own blindness: no alert of a funnel joins it.
        let same_stage =
            |i: &&Incident| !i.is_guard() && i.funnel == alert.funnel && i.stage == alert.stage;
        // Related: the same funnel and stage, or the same segment of the funnel (a segment
        // failing at several stages is one incident).
        let open = self
            .incidents
            .values()
            .filter(|i| i.is_open())
            .find(|i| same_stage(i))
            .or_else(|| {
                self.incidents.values().filter(|i| i.is_open()).find(|i| {
                    !i.is_guard()
                        && i.funnel == alert.funnel
                        && alert.segment.is_some()
                        && i.segment == alert.segment
                })
            })
            .map(|i| i.id);
        let last_resolved = self
            .incidents
            .values()
            .filter(same_stage)
            .filter_map(|i| i.resolved_at.map(|at| (at, i.id)))
            .max();
        match (alert.event, open) {
            (AlertEventKind::Opened | AlertEventKind::Upgraded, Some(id)) => {
                self.attach(now, id, alert)
            }
            (AlertEventKind::Opened | AlertEventKind::Upgraded, None) => match last_resolved {
                Some((resolved_at, id)) if now.since(resolved_at) <= self.policy.flap_hold => {
                    self.reopen(
                        now,
                        id,
                        ENGINE_ACTOR,
                        &format!(
                            "the alert returned {} after resolution (within the {} flap hold)",
                            now.since(resolved_at),
                            self.policy.flap_hold
                        ),
                    );
                    self.attach(now, id, alert);
                }
                _ => self.open(now, alert),
            },
            (AlertEventKind::Closed, _) => {
                // Every incident holding it open: an alert that reopened one incident and
                // then, upgraded, opened another closes in both.
                let holders = self
                    .incidents
                    .values_mut()
                    .filter(|i| i.alerts.get(&alert.alert_id) == Some(&true));
                for incident in holders {
                    incident.alerts.insert(alert.alert_id, false);
                    incident.last_alert_at = now;
                    incident.unsaved = Unsaved(true);
                    push(
                        incident,
                        now,
                        ENGINE_ACTOR,
                        TimelineKind::AlertClosed,
                        format!(
                            "alert {:016x} closed: back within 2σ of baseline ({:.1}σ over the last window)",
                            alert.alert_id, alert.sigma
                        ),
                    );
                }
            }
        }
        self.evaluate(now);
    }

    /// A measurement of an incident's series (its deviation in σ), for the trend.
    pub fn handle_measurement(&mut self, now: Timestamp, funnel: &str, stage: &str, sigma: f64) {
        if !sigma.is_finite() {
            return;
        }
        for incident in self.incidents.values_mut() {
            if incident.is_open() && incident.funnel == funnel && incident.stage == stage {
                incident.unsaved = Unsaved(true);
                incident.measurements.push_back((now, sigma));
                if incident.measurements.len() > TREND_POINTS_MAX {
                    incident.measurements.pop_front();
                }
            }
        }
    }

    /// Prices one judged minute of incident `id`'s series into its impact (`impact`): open
    /// conversion incidents only; the others are left alone. A recovered incident (its problem
    /// over by the engine's judgement) books nothing until it relapses: the window being
    /// gathered is booked as a shorter one, and the minutes while recovered are not priced,
    /// since a window at baseline books nothing but its noise, clipped at zero, would book a
    /// little every window for as long as a P1 waits for its root cause.
    pub fn handle_impact(&mut self, id: u64, minute: &ImpactMinute) {
        let Some(incident) = self.incidents.get_mut(&id) else {
            return;
        };
        if !incident.is_open() || incident.kind != AlertKind::Conversion {
            return;
        }
        if incident.is_recovered() {
            if let Some(impact) = &mut incident.impact
                && impact.open.minutes > 0
            {
                impact.close_window(minute.at);
                incident.unsaved = Unsaved(true);
            }
            return;
        }
        incident.unsaved = Unsaved(true);
        incident
            .impact
            .get_or_insert_with(|| {
                Impact::new(minute.aov.currency, minute.window_minutes, minute.aov)
            })
            .observe(minute);
    }

    /// Takes the dead man's switch's events (`Watch::judge`): a funnel (or every funnel)
    /// blind opens its guard incident, P1, or reopens it within the flap hold; judging again
    /// closes its cause, and then the resolution criteria resolve it. An event that changes
    /// nothing is ignored, so the watch may say the same thing every few seconds and a guard
    /// incident still pages once.
    ///
    /// It fires no other incident's timers and does not move the engine's clock: those are
    /// the timer loop's, whose lag is one of the things watched. It evaluates the guard
    /// incidents only, so that they page and escalate even while the timers are stalled.
    pub fn handle_guard(&mut self, now: Timestamp, events: &[GuardEvent]) {
        for event in events {
            let funnel = event.incident_funnel();
            let open = self
                .incidents
                .values()
                .find(|i| i.is_open() && i.is_guard() && i.funnel == funnel)
                .map(|i| i.id);
            match (&event.status, open) {
                (GuardStatus::Blind { reason, .. }, Some(id)) => {
                    self.guard_still_blind(now, id, reason)
                }
                (GuardStatus::Blind { since, reason }, None) => {
                    self.guard_opens(now, funnel, *since, reason)
                }
                (GuardStatus::Judging, Some(id)) => self.guard_judging(now, id),
                (GuardStatus::Judging, None) => {}
            }
        }
        self.evaluate_where(now, Incident::is_guard);
    }

    /// A funnel blind with no open guard incident: reopen the last one within the flap hold,
    /// else open one.
    fn guard_opens(&mut self, now: Timestamp, funnel: &str, since: Timestamp, reason: &str) {
        let last_resolved = self
            .incidents
            .values()
            .filter(|i| i.is_guard() && i.funnel == funnel)
            .filter_map(|i| i.resolved_at.map(|at| (at, i.id)))
            .max();
        let headline = guard_headline(funnel, reason);
        let id = match last_resolved {
            Some((resolved_at, id)) if now.since(resolved_at) <= self.policy.flap_hold => {
                let text = format!(
                    "{headline}, again {} after resolution (within the {} flap hold)",
                    now.since(resolved_at),
                    self.policy.flap_hold
                );
                self.reopen(now, id, ENGINE_ACTOR, &text);
                id
            }
            _ => {
                let opening = Opening {
                    funnel,
                    stage: GUARD_STAGE,
                    kind: AlertKind::Guard,
                    segment: None,
                    severity: IncidentSeverity::P1,
                    onset: since,
                    actor: ENGINE_ACTOR,
                };
                self.open_incident(now, opening, format!("P1 {headline}"))
            }
        };
        let incident = self.incidents.get_mut(&id).expect("opened");
        incident.guard_reason = Some(reason.to_owned());
        incident.alerts.insert(guard_cause_id(funnel, now), true);
        incident.last_alert_at = now;
    }

    /// Blind still: a new reason replaces the old one (without a timeline entry, so that a
    /// changing error text cannot fill the timeline); blind again after judging had resumed
    /// (not yet resolved: a prompt waits) opens a new cause.
    fn guard_still_blind(&mut self, now: Timestamp, id: u64, reason: &str) {
        let incident = self.incidents.get_mut(&id).expect("found");
        if incident.guard_reason.as_deref() != Some(reason) {
            incident.guard_reason = Some(reason.to_owned());
            incident.unsaved = Unsaved(true);
        }
        if incident.alerts.values().any(|open| *open) {
            // Said again now and then, so that no other node's "judging" closes it.
            if now.since(incident.last_alert_at) >= super::guard::GUARD_BLIND_REFRESH {
                incident.last_alert_at = now;
                incident.unsaved = Unsaved(true);
            }
            return;
        }
        incident
            .alerts
            .insert(guard_cause_id(&incident.funnel, now), true);
        incident.last_alert_at = now;
        incident.prompted = false;
        let headline = guard_headline(&incident.funnel, reason);
        push(
            incident,
            now,
            ENGINE_ACTOR,
            TimelineKind::RelatedAlert,
            format!("{headline} (again)"),
        );
    }

    /// Judging resumed: the open cause closes, once no node has said "blind" for
    /// [`GUARD_CLEAR_AFTER`](super::guard::GUARD_CLEAR_AFTER).
    fn guard_judging(&mut self, now: Timestamp, id: u64) {
        let incident = self.incidents.get_mut(&id).expect("found");
        if !incident.alerts.values().any(|open| *open)
            || now.since(incident.last_alert_at) < super::guard::GUARD_CLEAR_AFTER
        {
            return;
        }
        for open in incident.alerts.values_mut() {
            *open = false;
        }
        incident.last_alert_at = now;
        let whom = if incident.funnel == super::guard::GUARD_EVERY_FUNNEL {
            "every funnel".to_owned()
        } else {
            incident.funnel.clone()
        };
        push(
            incident,
            now,
            ENGINE_ACTOR,
            TimelineKind::AlertClosed,
            format!("revloop judges {whom} again"),
        );
    }

    /// A responder's action. On error nothing changes.
    pub fn handle_action(
        &mut self,
        now: Timestamp,
        id: u64,
        actor: &str,
        action: Action,
        reason: Option<&str>,
    ) -> Result<(), ActionError> {
        check_text("actor", actor)?;
        if let Some(reason) = reason {
            check_text("reason", reason)?;
        }
        let incident = self
            .incidents
            .get(&id)
            .ok_or(ActionError::UnknownIncident(id))?;
        let pages_from = self.pages_from(now, &incident.funnel, &incident.stage);
        if incident.timeline.len() >= TIMELINE_ENTRIES_MAX {
            return Err(ActionError::TimelineFull);
        }
        let request = ActionRequest {
            now,
            actor,
            reason,
            pages_from,
        };
        if action == Action::Reopen {
            self.reopen_by_hand(id, &request)?;
        } else {
            let incident = self.incidents.get_mut(&id).expect("found above");
            let before = incident.state;
            action::apply(incident, &action, &self.policy, &request)?;
            // Everyone paged is told when someone else answers, and when it ends.
            tell_acknowledged(incident, before, actor, now, &mut self.outbox);
            if before != IncidentState::Resolved {
                tell_resolved(incident, actor, now, &mut self.outbox);
            }
        }
        self.evaluate(now);
        Ok(())
    }

    /// A responder reopening a resolved incident, unless another is open for its stage.
    fn reopen_by_hand(&mut self, id: u64, request: &ActionRequest) -> Result<(), ActionError> {
        let incident = &self.incidents[&id];
        if incident.state != IncidentState::Resolved {
            return Err(action::illegal(incident, "reopened"));
        }
        let (funnel, stage) = (&incident.funnel, &incident.stage);
        if let Some(other) = self
            .incidents
            .values()
            .find(|i| i.is_open() && i.funnel == *funnel && i.stage == *stage)
        {
            return Err(ActionError::AnotherIsOpen(other.id));
        }
        let text = format!("reopened{}", request.because());
        self.reopen(request.now, id, request.actor, &text);
        Ok(())
    }

    /// Fires every timer due at `now`: escalations, SLA breaches, resolution checks.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        self.evaluate(now);
    }

    /// Event time: fires every timer due up to `until`, each at its own time, as a live
    /// engine woken at each deadline would. Effects wait in the outbox.
    pub fn run_until(&mut self, until: Timestamp) {
        while let Some(due) = self.poll_timeout() {
            if due > until {
                break;
            }
            self.evaluate(due);
        }
        self.evaluate(until);
    }

    /// The next effect to carry out, oldest first.
    pub fn poll_effect(&mut self) -> Option<Effect> {
        self.outbox.pop_front()
    }

    /// When the engine next needs `handle_timeout`: the earliest deadline after the last time
    /// it was told.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        let after = self.evaluated_at;
        self.incidents
            .values()
            .filter(|i| i.is_open())
            .flat_map(|i| {
                let policy = &self.policy;
                // A guard incident resolves on an input (judging resumed), never by a wait.
                let quiet = (i.severity == IncidentSeverity::P1 && !i.is_guard())
                    .then(|| i.last_alert_at.saturating_add(policy.p1_quiet_for));
                let stable = (i.severity != IncidentSeverity::P1 && !i.is_guard())
                    .then(|| i.severity_since.saturating_add(policy.p2_stable_for));
                [
                    // Nothing pages a recovered incident; its owner's reminder is due instead.
                    if i.recovered.is_some() {
                        recovery::next_reminder(i)
                    } else {
                        i.escalation.next_at
                    },
                    (i.response.met_at.is_none() && !i.response.breached).then_some(i.response.due),
                    (i.resolution.met_at.is_none() && !i.resolution.breached)
                        .then_some(i.resolution.due),
                    quiet,
                    stable,
                ]
            })
            .flatten()
            .filter(|deadline| *deadline > after)
            .min()
    }

    fn open(&mut self, now: Timestamp, alert: &AlertEvent) {
        let severity = IncidentSeverity::from(alert.severity);
        let text = format!(
            "{} {} alert on {} ({}): {}",
            severity.as_str(),
            alert.kind.as_str(),
            alert.stage,
            alert
                .segment
                .as_ref()
                .map_or("every shopper".to_owned(), |(d, v)| format!("{d} = {v}")),
            evidence(alert)
        );
        let opening = Opening {
            funnel: &alert.funnel,
            stage: &alert.stage,
            kind: alert.kind,
            segment: alert.segment.clone(),
            severity,
            onset: alert.onset,
            actor: ENGINE_ACTOR,
        };
        let id = self.open_incident(now, opening, text);
        let incident = self.incidents.get_mut(&id).expect("just opened");
        incident.alerts.insert(alert.alert_id, true);
    }

    /// Opens an incident at `now` with `text` as its first timeline entry (held by a silence
    /// in force), and returns its id.
    fn open_incident(&mut self, now: Timestamp, opening: Opening<'_>, text: String) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        let severity = opening.severity;
        let policy = self.policy.for_severity(severity);
        let silenced = self.silence_at(now, opening.funnel, opening.stage).cloned();
        let mut incident = Incident {
            id,
            funnel: opening.funnel.to_owned(),
            stage: opening.stage.to_owned(),
            kind: opening.kind,
            segment: opening.segment,
            scope: None,
            severity,
            state: IncidentState::Triggered,
            onset: opening.onset,
            opened_at: now,
            acknowledged_at: None,
            mitigated_at: None,
            resolved_at: None,
            severity_since: now,
            escalation: Escalation {
                next_level: 0,
                next_at: (!policy.levels.is_empty()).then_some(now),
                repeats: 0,
            },
            response: clock(now, policy.response),
            resolution: clock(now, policy.resolution),
            alerts: BTreeMap::new(),
            last_alert_at: now,
            root_cause: None,
            mitigations: Vec::new(),
            action_items: Vec::new(),
            checklist: vec![None; CHECKLIST.len()],
            silenced: silenced.is_some(),
            measurements: VecDeque::new(),
            prompted: false,
            guard_reason: None,
            recovered: None,
            impact: None,
            false_alarm: false,
            paged: Vec::new(),
            declared_summary: None,
            timeline: Vec::new(),
            unsaved: Unsaved(true),
        };
        push(
            &mut incident,
            now,
            opening.actor,
            TimelineKind::Opened,
            text,
        );
        if let Some(silence) = silenced {
            push(
                &mut incident,
                now,
                ENGINE_ACTOR,
                TimelineKind::Silenced,
                format!(
                    "a silence is in force until {} ({}): nobody is paged before then",
                    silence.to, silence.reason
                ),
            );
            // Still open when the silence ends, it escalates from L1 then.
            if incident.escalation.next_at.is_some() {
                incident.escalation.next_at = Some(silence.to);
            }
        }
        surges::attach_recent(&mut self.surges, now, &mut incident);
        self.incidents.insert(id, incident);
        self.forget_old_resolved();
        id
    }

    /// The silence covering this funnel and stage at `now` that ends last, if any.
    fn silence_at(&self, now: Timestamp, funnel: &str, stage: &str) -> Option<&Silence> {
        self.silences
            .iter()
            .chain(self.added_silences.iter().map(|s| &s.silence))
            .filter(|s| {
                s.funnel.as_ref().is_none_or(|f| f == funnel)
                    && s.stage.as_ref().is_none_or(|st| st == stage)
                    && (s.from..s.to).contains(&now)
            })
            .max_by_key(|s| s.to)
    }

    /// When escalation may start at `now`: now, or when the silence covering it ends.
    fn pages_from(&self, now: Timestamp, funnel: &str, stage: &str) -> Timestamp {
        self.silence_at(now, funnel, stage).map_or(now, |s| s.to)
    }

    fn attach(&mut self, now: Timestamp, id: u64, alert: &AlertEvent) {
        let policy = self.policy.clone();
        let pages_from = self.pages_from(now, &alert.funnel, &alert.stage);
        let incident = self.incidents.get_mut(&id).expect("exists");
        incident.alerts.insert(alert.alert_id, true);
        incident.last_alert_at = now;
        incident.prompted = false;
        let severity = IncidentSeverity::from(alert.severity);
        if severity < incident.severity {
            // The runbook's ASSESS step: a P2 crossing 3σ becomes P1, with the evidence.
            let from = incident.severity;
            raise(incident, &policy, severity, now, pages_from);
            // Named by the kind that set its severity: a P1 raised by a conversion alert reads
            // "P1 conversion", even if a volume alert opened it.
            incident.kind = alert.kind;
            push(
                incident,
                now,
                ENGINE_ACTOR,
                TimelineKind::Upgraded,
                format!(
                    "ASSESS: escalated {} → {}: {}",
                    from.as_str(),
                    severity.as_str(),
                    evidence(alert)
                ),
            );
        } else {
            // A declared incident the detector now sees is named by the detector's evidence
            // (and priced, and resolved, as a detected one) from then on.
            if incident.is_declared() {
                incident.kind = alert.kind;
            }
            push(
                incident,
                now,
                ENGINE_ACTOR,
                TimelineKind::RelatedAlert,
                format!(
                    "related {} alert {:016x} ({}): {:.1}σ",
                    alert.kind.as_str(),
                    alert.alert_id,
                    alert
                        .segment
                        .as_ref()
                        .map_or("every shopper".to_owned(), |(d, v)| format!("{d} = {v}")),
                    alert.sigma
                ),
            );
        }
    }

    fn reopen(&mut self, now: Timestamp, id: u64, actor: &str, text: &str) {
        let policy = self.policy.clone();
        let (funnel, stage) = {
            let incident = &self.incidents[&id];
            (incident.funnel.clone(), incident.stage.clone())
        };
        let pages_from = self.pages_from(now, &funnel, &stage);
        let incident = self.incidents.get_mut(&id).expect("exists");
        let severity_policy = policy.for_severity(incident.severity);
        incident.state = IncidentState::Triggered;
        incident.resolved_at = None;
        incident.false_alarm = false;
        incident.prompted = false;
        incident.recovered = None;
        // Those paged before were told it ended; who is told of this episode's end is who
        // it pages now.
        incident.paged.clear();
        // The quiet and stable periods start again: a reopened incident is not resolved by
        // the same evidence that resolved it. (The first acknowledgement and mitigation times
        // stay, for the reports; the timeline keeps the earlier breaches.)
        incident.last_alert_at = now;
        incident.severity_since = now;
        incident.response = clock(now, severity_policy.response);
        incident.resolution = clock(now, severity_policy.resolution);
        incident.escalation = Escalation {
            next_level: 0,
            next_at: (!severity_policy.levels.is_empty()).then_some(pages_from),
            repeats: 0,
        };
        push(
            incident,
            now,
            actor,
            TimelineKind::Reopened,
            text.to_owned(),
        );
    }

    /// Runs every rule that depends on time or on the incident's state.
    fn evaluate(&mut self, now: Timestamp) {
        self.evaluated_at = self.evaluated_at.max(now);
        self.evaluate_where(now, |_| true);
    }

    /// Runs the rules of `evaluate` on the open incidents `select` picks, without moving the
    /// engine's clock: the deadlines of the others stay due.
    fn evaluate_where(&mut self, now: Timestamp, select: impl Fn(&Incident) -> bool) {
        let policy = self.policy.clone();
        for incident in self
            .incidents
            .values_mut()
            .filter(|i| i.is_open() && select(i))
        {
            // Resolution first: an incident whose criteria come to hold at the moment a clock
            // runs out (P2's four stable hours against its four-hour SLA) is resolved in time.
            let criteria = incident.criteria(&policy, now);
            if criteria.iter().all(|c| c.holds) {
                let summary: Vec<&str> = criteria.iter().map(|c| c.name).collect();
                if policy.auto_resolve {
                    resolve(
                        incident,
                        now,
                        ENGINE_ACTOR,
                        &format!("resolved: every criterion holds ({})", summary.join(", ")),
                    );
                    tell_resolved(incident, ENGINE_ACTOR, now, &mut self.outbox);
                    continue;
                } else if !incident.prompted {
                    incident.prompted = true;
                    push(
                        incident,
                        now,
                        ENGINE_ACTOR,
                        TimelineKind::ResolutionPrompt,
                        format!(
                            "every resolution criterion holds ({}); resolve it?",
                            summary.join(", ")
                        ),
                    );
                }
            }
            // Recovery before escalation: a page due at the minute the problem ends does
            // not go out, and one due when it returns does.
            recovery::update(incident, now);
            if incident.recovered.is_some() {
                recovery::remind(incident, &policy, now, &mut self.outbox);
            } else {
                escalate(incident, &policy, now, &mut self.outbox);
            }
            check_slas(incident, now, &mut self.outbox);
        }
    }

    fn forget_old_resolved(&mut self) {
        let resolved: Vec<u64> = self
            .incidents
            .values()
            .filter(|i| !i.is_open())
            .map(|i| i.id)
            .collect();
        if resolved.len() > RESOLVED_KEPT_MAX {
            for id in &resolved[..resolved.len() - RESOLVED_KEPT_MAX] {
                self.incidents.remove(id);
            }
        }
    }
}

/// The id of a guard incident's cause, in its alerts: the same on every node for the same
/// funnel and time, and apart from the detector's alert ids (those hash other fields).
fn guard_cause_id(funnel: &str, at: Timestamp) -> u64 {
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    hasher.update(b"guard\0");
    hasher.update(funnel.as_bytes());
    hasher.update(&[0]);
    hasher.update(&at.millis().to_le_bytes());
    hasher.digest()
}

/// What an alert measured, in its own units: drop-off rates for conversion, events per minute
/// for volume.
fn evidence(alert: &AlertEvent) -> String {
    match alert.kind {
        AlertKind::Conversion => format!(
            "drop-off {:.1}% against a baseline of {:.1}%, {:.1}σ",
            100.0 * alert.observed_rate,
            100.0 * alert.baseline_rate,
            alert.sigma
        ),
        AlertKind::Volume => format!(
            "{} {:.1} events a minute against a baseline of {:.1}, {:.1}σ",
            match alert.direction {
                Direction::Worse => "events missing:",
                Direction::Surge => "a surge:",
            },
            alert.observed_rate,
            alert.baseline_rate,
            alert.sigma
        ),
        AlertKind::Guard => "revloop could not judge".to_owned(),
        AlertKind::Declared => "declared by hand".to_owned(),
    }
}
