//! Seeded interleavings of alerts, actions, restarts and downtime against the invariants, with
//! a shadow engine that is never restarted.

use super::*;
use crate::incident::TimelineKind;

/// Thousands of seeded interleavings of alerts (some sent twice, as a restarted detector
/// does), the dead man's switch's events, actions, restarts and clock jumps (downtime: the timers are told late, all at
/// once). Invariants:
/// - never two open incidents for one stage, nor two guard incidents for one funnel (or for
///   every funnel), however often the watch repeats itself;
/// - no page for an incident after its ack (no ack timeout here);
/// - each level paged once per opening (repeats aside), each SLA breach recorded once;
/// - the last level paged again at most `REPEATS_MAX` times;
/// - nothing paged while an incident is recovered (between its `recovered` entry and the
///   next `relapsed`, `reopened` or `resolved`), its owner reminded only then, at most once
///   per `REMIND_EVERY`;
/// - every acknowledgement and resolution of an incident that paged is told, once per
///   opening, to exactly the targets it paged in that opening (and an SLA breach to them);
///   declaring refuses a stage already held; failover keeps each level paged once;
/// - a restart is invisible: a shadow engine that is never restarted produces the same
///   effects and timelines.
///
/// A failing seed is printed and replays exactly.
#[test]
fn simulated_interleavings_keep_the_invariants() {
    // How often the runs reached the recovery rules, so that the invariants on them are not
    // checked on nothing: (recovered, relapsed, reminded) timeline entries at the end of runs.
    let mut reached = [0usize; 3];
    let mut told = 0usize;
    let mut failovers = 0usize;
    for seed in 0..2_000u64 {
        let mut rng = Rng::new(seed);
        let mut shadow = engine();
        let mut engine = shadow.clone();
        let mut now = T0;
        let mut seen = Seen::default();
        let stages = ["cart", "checkout", "payment"];
        let mut next_alert = 1u64;
        let mut open_alerts: Vec<(u64, &str)> = Vec::new();
        let mut sent: Vec<AlertEvent> = Vec::new();
        for _ in 0..60 {
            let downtime = rng.below(12) == 0;
            let step = if downtime {
                (rng.below(6 * 60) as i64 + 60) * 60_000
            } else {
                (rng.below(90) as i64 + 1) * 60_000
            };
            now = now.saturating_add(DurationMs::from_millis(step));
            let mut inputs: Vec<AlertEvent> = Vec::new();
            let mut guard_events: Vec<GuardEvent> = Vec::new();
            match rng.below(12) {
                0..=2 => {
                    let stage = stages[rng.below(3) as usize];
                    let severity = if rng.bernoulli(0.5) {
                        Severity::P1
                    } else {
                        Severity::P2
                    };
                    inputs.push(alert(next_alert, stage, severity, AlertEventKind::Opened));
                    open_alerts.push((next_alert, stage));
                    next_alert += 1;
                }
                3 if !open_alerts.is_empty() => {
                    let (id, stage) =
                        open_alerts.swap_remove(rng.below(open_alerts.len() as u64) as usize);
                    inputs.push(alert(id, stage, Severity::P1, AlertEventKind::Closed));
                }
                4..=6 => {
                    let ids: Vec<u64> = engine.incidents().map(|i| i.id).collect();
                    if let Some(&id) = ids.get(rng.below(ids.len().max(1) as u64) as usize) {
                        let action = match rng.below(6) {
                            0 => Action::Acknowledge,
                            1 => Action::Note("looking".into()),
                            2 => Action::RootCause("bad deploy".into()),
                            3 => Action::Resolve,
                            4 => Action::ResolveFalseAlarm,
                            _ => Action::Reopen,
                        };
                        let acking = action == Action::Acknowledge;
                        let reason = Some("seen in the sim");
                        let result = engine.handle_action(now, id, "ana", action.clone(), reason);
                        let shadow_result = shadow.handle_action(now, id, "ana", action, reason);
                        assert_eq!(result, shadow_result, "seed {seed}");
                        if result.is_ok() && acking {
                            seen.acked_at.insert(id, now);
                        }
                    }
                }
                7 => engine = restart(&engine),
                8 if !sent.is_empty() => {
                    // A restarted detector sends an event again.
                    inputs.push(sent[rng.below(sent.len() as u64) as usize].clone());
                }
                9 => {
                    // The watch, on one funnel or every funnel: blind (often said again) or
                    // judging.
                    let funnel = rng.bernoulli(0.5).then(|| "checkout".to_owned());
                    let status = if rng.bernoulli(0.6) {
                        GuardStatus::Blind {
                            since: now.saturating_sub(DurationMs::from_minutes(11)),
                            reason: ["reads fail", "no minute judged"][rng.below(2) as usize]
                                .to_owned(),
                        }
                    } else {
                        GuardStatus::Judging
                    };
                    for _ in 0..=rng.below(3) {
                        guard_events.push(GuardEvent {
                            funnel: funnel.clone(),
                            status: status.clone(),
                        });
                    }
                }
                10 => {
                    // A tick's deviation for a stage: mostly back to normal, sometimes worse.
                    let stage = stages[rng.below(3) as usize];
                    let sigma = [0.5, 1.9, 2.5, 3.5, 8.0][rng.below(5) as usize];
                    engine.handle_measurement(now, "checkout", stage, sigma);
                    shadow.handle_measurement(now, "checkout", stage, sigma);
                }
                11 => {
                    // A responder declares an incident, or the deliverer reports a level
                    // unreachable.
                    if rng.bernoulli(0.5) {
                        let stage = stages[rng.below(3) as usize];
                        let declaration = Declaration {
                            funnel: "checkout".into(),
                            stage: stage.into(),
                            segment: None,
                            severity: [IncidentSeverity::P1, IncidentSeverity::P2]
                                [rng.below(2) as usize],
                            summary: "customers say payment fails".into(),
                        };
                        let holder = engine
                            .incidents()
                            .find(|i| i.is_open() && i.funnel == "checkout" && i.stage == stage)
                            .map(|i| i.id);
                        let result = engine.declare(now, &declaration, "ana");
                        assert_eq!(
                            result,
                            shadow.declare(now, &declaration, "ana"),
                            "seed {seed}"
                        );
                        match holder {
                            Some(id) => assert_eq!(result, Err(DeclareError::AnotherIsOpen(id))),
                            None => assert!(result.is_ok(), "seed {seed}: {result:?}"),
                        }
                    } else {
                        let ids: Vec<u64> = engine.incidents().map(|i| i.id).collect();
                        let id = ids.get(rng.below(ids.len().max(1) as u64) as usize);
                        let level = ["L1", "L2", "L3"][rng.below(3) as usize];
                        if let Some(&id) = id {
                            let paged = engine.handle_unreachable(now, id, level);
                            assert_eq!(
                                paged,
                                shadow.handle_unreachable(now, id, level),
                                "seed {seed}"
                            );
                            failovers += usize::from(paged);
                        }
                    }
                }
                _ => {}
            }
            for input in &inputs {
                engine.handle_alert(now, input);
                shadow.handle_alert(now, input);
            }
            for event in &guard_events {
                engine.handle_guard(now, std::slice::from_ref(event));
                shadow.handle_guard(now, std::slice::from_ref(event));
            }
            sent.extend(inputs);
            if !downtime {
                while let Some(due) = engine.poll_timeout() {
                    if due > now {
                        break;
                    }
                    engine.handle_timeout(due);
                    shadow.handle_timeout(due);
                    seen.drain(&mut engine, &mut shadow, seed);
                }
            }
            engine.handle_timeout(now);
            shadow.handle_timeout(now);
            seen.drain(&mut engine, &mut shadow, seed);
            seen.every_end_told(&engine, seed);
            for stage in stages.into_iter().chain([GUARD_STAGE]) {
                for funnel in ["checkout", GUARD_EVERY_FUNNEL] {
                    let open = engine
                        .incidents()
                        .filter(|i| i.is_open() && i.stage == stage && i.funnel == funnel)
                        .count();
                    assert!(
                        open <= 1,
                        "seed {seed}: {open} open incidents on {funnel}/{stage}"
                    );
                }
            }
            for (incident, twin) in engine.incidents().zip(shadow.incidents()) {
                assert_eq!(incident.timeline, twin.timeline, "seed {seed}");
                assert!(incident.escalation.repeats <= REPEATS_MAX, "seed {seed}");
                quiet_while_recovered(incident, seed);
                assert!(
                    !incident
                        .timeline
                        .iter()
                        .any(|e| e.kind == TimelineKind::AckTimeout),
                    "seed {seed}: an ack timed out with no ack timeout configured"
                );
            }
            assert_eq!(engine.poll_timeout(), shadow.poll_timeout(), "seed {seed}");
        }
        assert!(
            seen.breaches.values().all(|n| *n == 1),
            "seed {seed}: {:?}",
            seen.breaches
        );
        assert!(
            seen.pages.values().all(|n| *n == 1),
            "seed {seed}: {:?}",
            seen.pages
        );
        told += seen.n_told;
        for incident in engine.incidents() {
            for (count, kind) in reached.iter_mut().zip([
                TimelineKind::Recovered,
                TimelineKind::Relapsed,
                TimelineKind::Reminded,
            ]) {
                *count += incident.timeline.iter().filter(|e| e.kind == kind).count();
            }
        }
    }
    assert!(reached.iter().all(|n| *n >= 20), "{reached:?}");
    assert!(
        told >= 1_000,
        "acknowledgements and resolutions told: {told}"
    );
    assert!(failovers >= 20, "failovers that paged: {failovers}");
}

#[derive(Default)]
struct Seen {
    acked_at: BTreeMap<u64, Timestamp>,
    /// (incident, opening × 100 + upgrades, SLA) → breaches.
    breaches: BTreeMap<(u64, usize, &'static str), usize>,
    /// (incident, opening, level) → first pages (repeats aside).
    pages: BTreeMap<(u64, usize, String), usize>,
    /// (incident, opening) → the targets paged, each once, in order.
    paged: BTreeMap<(u64, usize), Vec<String>>,
    /// (incident, opening) → resolutions told.
    resolved: BTreeMap<(u64, usize), usize>,
    /// Acknowledgements and resolutions told, over the whole run.
    n_told: usize,
}

impl Seen {
    fn drain(&mut self, engine: &mut IncidentEngine, shadow: &mut IncidentEngine, seed: u64) {
        let effects: Vec<Effect> = std::iter::from_fn(|| engine.poll_effect()).collect();
        let shadow_effects: Vec<Effect> = std::iter::from_fn(|| shadow.poll_effect()).collect();
        assert_eq!(
            effects, shadow_effects,
            "seed {seed}: a restart changed the effects"
        );
        for effect in effects {
            // A reopen starts new clocks and a new escalation, so count per opening.
            let opening = |id: u64| {
                engine.incident(id).map_or(0, |i| {
                    i.timeline
                        .iter()
                        .filter(|e| e.kind == TimelineKind::Reopened)
                        .count()
                })
            };
            match effect {
                Effect::Notify {
                    incident,
                    at,
                    level,
                    reason,
                    targets,
                    ..
                } => {
                    let paged = self.paged.entry((incident, opening(incident))).or_default();
                    for target in targets {
                        if !paged.contains(&target) {
                            paged.push(target);
                        }
                    }
                    // Paged after its ack, with no reopen in between: a broken promise.
                    if let Some(acked) = self.acked_at.get(&incident) {
                        let reopened_since = engine.incident(incident).is_some_and(|i| {
                            i.timeline
                                .iter()
                                .any(|e| e.kind == TimelineKind::Reopened && e.at >= *acked)
                        });
                        assert!(
                            reopened_since || at < *acked,
                            "seed {seed}: paged incident {incident} at {at} after its ack at {acked}"
                        );
                    }
                    // An upgrade to P1 walks the P1 path from its start: a new opening.
                    let upgrades = engine.incident(incident).map_or(0, |i| {
                        i.timeline
                            .iter()
                            .filter(|e| e.kind == TimelineKind::Upgraded)
                            .count()
                    });
                    if !reason.contains("again") {
                        let key = (incident, opening(incident) * 100 + upgrades, level);
                        *self.pages.entry(key).or_default() += 1;
                    }
                }
                Effect::Remind { incident, .. } => {
                    assert!(
                        engine.incident(incident).is_some_and(|i| i.is_recovered()),
                        "seed {seed}: reminded incident {incident}, which is not recovered"
                    );
                }
                Effect::SlaBreached {
                    incident,
                    sla,
                    targets,
                    ..
                } => {
                    let paged = self.paged.get(&(incident, opening(incident)));
                    assert_eq!(targets, paged.cloned().unwrap_or_default(), "seed {seed}");
                    // A raised severity runs a new resolution clock (a declared P2, which
                    // waits for its root cause, may breach its own before a P1 alert
                    // raises it): count per severity too.
                    let upgrades = engine.incident(incident).map_or(0, |i| {
                        i.timeline
                            .iter()
                            .filter(|e| e.kind == TimelineKind::Upgraded)
                            .count()
                    });
                    *self
                        .breaches
                        .entry((incident, opening(incident) * 100 + upgrades, sla))
                        .or_default() += 1;
                }
                Effect::Acknowledged {
                    incident, targets, ..
                } => {
                    // Told to everyone paged in this opening, and only when someone was.
                    let paged = self.paged.get(&(incident, opening(incident)));
                    assert_eq!(Some(&targets), paged, "seed {seed}: incident {incident}");
                    self.n_told += 1;
                }
                Effect::Resolved {
                    incident, targets, ..
                } => {
                    let key = (incident, opening(incident));
                    assert_eq!(Some(&targets), self.paged.get(&key), "seed {seed}");
                    *self.resolved.entry(key).or_default() += 1;
                    assert_eq!(self.resolved[&key], 1, "seed {seed}: told twice");
                    self.n_told += 1;
                }
            }
        }
    }
}

impl Seen {
    /// Every resolve follows its trigger: each resolved incident that paged anyone in its
    /// last opening told them it was resolved.
    fn every_end_told(&self, engine: &IncidentEngine, seed: u64) {
        for incident in engine.incidents().filter(|i| !i.is_open()) {
            let opening = incident
                .timeline
                .iter()
                .filter(|e| e.kind == TimelineKind::Reopened)
                .count();
            if self.paged.contains_key(&(incident.id, opening)) {
                assert!(
                    self.resolved.contains_key(&(incident.id, opening)),
                    "seed {seed}: incident {} paged and resolved, nobody told",
                    incident.id
                );
            }
        }
    }
}

/// Walks an incident's timeline in order: no page while it is recovered, reminders only then
/// and at least `REMIND_EVERY` apart.
fn quiet_while_recovered(incident: &Incident, seed: u64) {
    let mut recovered = false;
    let mut last_reminder: Option<Timestamp> = None;
    for entry in &incident.timeline {
        match entry.kind {
            TimelineKind::Recovered => recovered = true,
            TimelineKind::Relapsed | TimelineKind::Reopened | TimelineKind::Resolved => {
                recovered = false
            }
            TimelineKind::Escalated
            | TimelineKind::EscalationSkipped
            | TimelineKind::AckTimeout => {
                assert!(
                    !recovered,
                    "seed {seed}: incident {} escalated at {} while recovered",
                    incident.id, entry.at
                )
            }
            TimelineKind::Reminded => {
                assert!(recovered, "seed {seed}: reminded while not recovered");
                if let Some(last) = last_reminder {
                    assert!(
                        entry.at.since(last) >= REMIND_EVERY,
                        "seed {seed}: reminded twice within {REMIND_EVERY}"
                    );
                }
                last_reminder = Some(entry.at);
            }
            _ => {}
        }
    }
}
