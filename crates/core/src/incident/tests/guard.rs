//! The dead man's switch: the watch's rule on observations, and the guard incident's life in
//! the engine (opens once, pages once, escalates, resolves when judging resumes, survives a
//! restart).

use super::*;

const LIMIT: DurationMs = DurationMs::from_minutes(10);

fn watch() -> Watch {
    Watch {
        cannot_judge_after: LIMIT,
        settle: DurationMs::from_minutes(1),
        started_at: T0,
    }
}

fn funnel(
    judged_until: Option<i64>,
    failing_since: Option<i64>,
    error: Option<&str>,
) -> FunnelObservation {
    FunnelObservation {
        funnel: "checkout".into(),
        judged_until: judged_until.map(minutes),
        failing_since: failing_since.map(minutes),
        error: error.map(str::to_owned),
    }
}

/// The watch's events at minute `at`, each as `funnel: status` (`*` for every funnel).
fn judge(at: i64, observations: &Observations) -> Vec<String> {
    watch()
        .judge(minutes(at), observations)
        .into_iter()
        .map(|event| {
            let status = match &event.status {
                GuardStatus::Judging => "judging".to_owned(),
                GuardStatus::Blind { since, reason } => {
                    format!("blind since {}: {reason}", since.since(T0).whole_minutes())
                }
            };
            format!("{}: {status}", event.incident_funnel())
        })
        .collect()
}

fn funnels(observation: FunnelObservation) -> Observations {
    Observations {
        funnels: vec![observation],
        ..Observations::default()
    }
}

#[test]
fn a_funnel_is_blind_past_the_limit_judging_when_live_and_unknown_while_warming_up() {
    let judging = "*: judging";
    // Judged until minute 20, so last judged at 21 (settle 1m): fine at 31, blind after.
    assert_eq!(
        judge(31, &funnels(funnel(Some(20), None, None))),
        ["checkout: judging", judging]
    );
    assert_eq!(
        judge(32, &funnels(funnel(Some(20), None, None))),
        [
            "checkout: blind since 21: no minute judged after 2026-11-27T10:20:00Z",
            judging
        ]
    );
    // Reads failing: the reason is the error, with since when.
    assert_eq!(
        judge(
            40,
            &funnels(funnel(Some(20), Some(21), Some("database is locked")))
        ),
        [
            "checkout: blind since 21: its reads fail since 2026-11-27T10:21:00Z: database is locked",
            judging
        ]
    );
    // Failing within the limit: neither blind nor judging (an open guard incident stays).
    assert_eq!(
        judge(25, &funnels(funnel(Some(20), Some(21), Some("locked")))),
        [judging]
    );
    // Warming up since the start: unknown within the limit, blind after it.
    assert_eq!(judge(9, &funnels(funnel(None, None, None))), [judging]);
    assert_eq!(
        judge(11, &funnels(funnel(None, None, None))),
        [
            "checkout: blind since 0: nothing judged since revloop started at 2026-11-27T10:00:00Z (still warming up)",
            judging
        ]
    );
}

#[test]
fn a_dead_or_stalled_writer_and_stalled_timers_blind_every_funnel() {
    let with = |writer: WriterObservation, timers: Option<i64>| Observations {
        funnels: Vec::new(),
        writer,
        timers_due_since: timers.map(minutes),
    };
    let writer = |alive: bool, last: Option<i64>, waiting: Option<i64>| WriterObservation {
        alive,
        last_commit: last.map(minutes),
        waiting_since: waiting.map(minutes),
    };
    assert_eq!(
        judge(30, &with(writer(true, Some(29), None), None)),
        ["*: judging"]
    );
    // Idle (nothing waiting) is not stalled, however old the last commit.
    assert_eq!(
        judge(300, &with(writer(true, Some(1), None), None)),
        ["*: judging"]
    );
    // Waiting since 5 with the last commit at 3: stalled since 5.
    assert_eq!(
        judge(14, &with(writer(true, Some(3), Some(5)), None)),
        ["*: judging"]
    );
    assert_eq!(
        judge(16, &with(writer(true, Some(3), Some(5)), None)),
        [
            "*: blind since 5: the writer has committed nothing since 2026-11-27T10:03:00Z while ingest waits since 2026-11-27T10:05:00Z"
        ]
    );
    assert_eq!(
        judge(20, &with(writer(false, Some(8), None), None)),
        ["*: blind since 8: the group-commit writer has stopped"]
    );
    assert_eq!(
        judge(20, &with(writer(true, None, None), Some(4))),
        ["*: blind since 4: incident timers due since 2026-11-27T10:04:00Z have not fired"]
    );
    // Both at once: one event, both reasons, since the earlier.
    assert_eq!(
        judge(30, &with(writer(false, Some(8), None), Some(4))),
        [
            "*: blind since 4: the group-commit writer has stopped; incident timers due since 2026-11-27T10:04:00Z have not fired"
        ]
    );
}

#[test]
fn a_long_reason_is_cut_on_a_character_boundary() {
    let error = "é".repeat(1_000);
    let events = watch().judge(
        minutes(60),
        &funnels(funnel(Some(1), Some(1), Some(&error))),
    );
    let GuardStatus::Blind { reason, .. } = &events[0].status else {
        panic!("{events:?}")
    };
    assert!(reason.len() <= GUARD_REASON_BYTES_MAX, "{}", reason.len());
    assert!(reason.ends_with('…'));
}

fn blind(funnel: Option<&str>, since: i64, reason: &str) -> GuardEvent {
    GuardEvent {
        funnel: funnel.map(str::to_owned),
        status: GuardStatus::Blind {
            since: minutes(since),
            reason: reason.into(),
        },
    }
}

fn judging(funnel: Option<&str>) -> GuardEvent {
    GuardEvent {
        funnel: funnel.map(str::to_owned),
        status: GuardStatus::Judging,
    }
}

fn effects(engine: &mut IncidentEngine) -> Vec<Effect> {
    std::iter::from_fn(|| engine.poll_effect()).collect()
}

fn guard_incidents(engine: &IncidentEngine) -> Vec<&Incident> {
    engine.incidents().filter(|i| i.is_guard()).collect()
}

#[test]
fn a_guard_incident_opens_pages_once_escalates_and_resolves_when_judging_resumes() {
    let mut engine = engine();
    let reason = "its reads fail: database is locked";
    engine.handle_guard(minutes(12), &[blind(Some("checkout"), 1, reason)]);
    let opened = effects(&mut engine);
    assert_eq!(pages(&opened), [(12, "L1".to_owned())]);
    let Effect::Notify {
        reason: page_reason,
        ..
    } = &opened[0]
    else {
        panic!("{opened:?}")
    };
    assert_eq!(
        page_reason,
        "P1 revloop cannot judge checkout: its reads fail: database is locked"
    );
    let incident = guard_incidents(&engine)[0].clone();
    assert_eq!(
        (
            incident.kind,
            incident.severity,
            incident.funnel.as_str(),
            incident.stage.as_str()
        ),
        (AlertKind::Guard, IncidentSeverity::P1, "checkout", "*")
    );
    assert_eq!(incident.onset, minutes(1));
    assert_eq!(incident.guard_reason.as_deref(), Some(reason));
    // The watch says the same every few seconds: nothing more happens, and what is saved is
    // only the note that it is still blind, every `GUARD_BLIND_REFRESH` (so that another
    // node's "judging" does not close it).
    let timeline_len = incident.timeline.len();
    engine.take_changed();
    let mut saves = 0;
    for second in 1..100 {
        let now = minutes(12).saturating_add(DurationMs::from_secs(second * 5));
        engine.handle_guard(now, &[blind(Some("checkout"), 1, reason)]);
        saves += engine.take_changed().len();
    }
    // 495 s of checks: a refresh each 30 s.
    assert!((15..=17).contains(&saves), "{saves}");
    assert!(effects(&mut engine).is_empty());
    assert_eq!(guard_incidents(&engine)[0].timeline.len(), timeline_len);
    // Another node that judges fine says so meanwhile: the incident stays open.
    engine.handle_guard(minutes(20), &[judging(Some("checkout"))]);
    assert!(guard_incidents(&engine)[0].is_open());
    // Escalation as for any P1: L2 after L1's 15 minutes unacknowledged.
    let later = run_until(&mut engine, minutes(28));
    assert_eq!(pages(&later), [(27, "L2".to_owned())]);
    // Judging again: it resolves by itself at once, with no quiet period or root cause.
    engine.handle_guard(minutes(30), &[judging(Some("checkout"))]);
    let incident = guard_incidents(&engine)[0];
    assert_eq!(incident.state, IncidentState::Resolved);
    assert_eq!(incident.resolved_at, Some(minutes(30)));
    assert_eq!(
        kinds(incident)[kinds(incident).len() - 2..],
        ["alert_closed", "resolved"]
    );
    // Everyone paged is told it is over, once.
    let told = effects(&mut engine);
    assert!(
        matches!(
            &told[..],
            [Effect::Resolved { by, false_alarm: false, targets, .. }]
                if by == ENGINE_ACTOR && targets == &["on-call engineer", "engineering manager"]
        ),
        "{told:?}"
    );
    assert!(run_until(&mut engine, minutes(300)).is_empty());
}

#[test]
fn one_guard_incident_per_funnel_and_one_for_every_funnel_apart_from_alerts() {
    let mut engine = engine();
    engine.handle_alert(
        T0,
        &alert(1, "checkout", Severity::P2, AlertEventKind::Opened),
    );
    engine.handle_guard(
        minutes(11),
        &[
            blind(Some("checkout"), 1, "no minute judged"),
            blind(Some("browse"), 1, "no minute judged"),
            blind(None, 1, "the group-commit writer has stopped"),
        ],
    );
    engine.handle_guard(
        minutes(12),
        &[
            blind(Some("checkout"), 1, "no minute judged"),
            blind(None, 1, "the group-commit writer has stopped"),
        ],
    );
    let funnels: Vec<&str> = guard_incidents(&engine)
        .iter()
        .map(|i| i.funnel.as_str())
        .collect();
    assert_eq!(funnels, ["checkout", "browse", "*"]);
    let every = guard_incidents(&engine)[2];
    assert_eq!(every.state, IncidentState::Triggered);
    assert!(
        every.timeline[0]
            .text
            .ends_with("revloop cannot judge any funnel: the group-commit writer has stopped")
    );
    // An alert on the funnel joins its own incident, never the guard's.
    engine.handle_alert(
        minutes(13),
        &alert(2, "checkout", Severity::P1, AlertEventKind::Opened),
    );
    assert_eq!(engine.incident(1).unwrap().alerts.len(), 2);
    assert!(guard_incidents(&engine).iter().all(|i| i.alerts.len() == 1));
}

#[test]
fn guard_events_fire_no_other_incidents_timers() {
    let mut engine = engine();
    engine.handle_alert(
        T0,
        &alert(1, "checkout", Severity::P1, AlertEventKind::Opened),
    );
    assert_eq!(pages(&effects(&mut engine)), [(0, "L1".to_owned())]);
    // L2 is due at 15; the timers have stalled, and the watch says so at 26.
    engine.handle_guard(
        minutes(26),
        &[blind(
            None,
            15,
            "incident timers due since 15 have not fired",
        )],
    );
    let paged: Vec<u64> = effects(&mut engine)
        .iter()
        .filter_map(|e| match e {
            Effect::Notify { incident, .. } => Some(*incident),
            _ => None,
        })
        .collect();
    assert_eq!(paged, [2], "only the guard incident pages");
    assert_eq!(engine.poll_timeout(), Some(minutes(15)), "L2 still due");
}

#[test]
fn a_restart_keeps_a_guard_incident_open_without_paging_again_and_a_flap_reopens_it() {
    let mut engine = engine();
    engine.handle_guard(
        minutes(11),
        &[blind(Some("checkout"), 1, "no minute judged")],
    );
    assert_eq!(pages(&effects(&mut engine)).len(), 1);
    engine
        .handle_action(minutes(12), 1, "ana", Action::Acknowledge, None)
        .unwrap();
    let mut restarted = restart(&engine);
    assert_eq!(
        restarted
            .incident(1)
            .map(|i| (i.kind, i.guard_reason.clone())),
        Some((AlertKind::Guard, Some("no minute judged".into())))
    );
    // The restarted process sees it still blind, then warming up (nothing said), then judging.
    restarted.handle_guard(
        minutes(13),
        &[blind(Some("checkout"), 1, "no minute judged")],
    );
    restarted.handle_guard(minutes(14), &[]);
    assert!(effects(&mut restarted).is_empty());
    assert!(restarted.incident(1).unwrap().is_open());
    restarted.handle_guard(minutes(15), &[judging(Some("checkout"))]);
    assert!(!restarted.incident(1).unwrap().is_open());
    // Blind again within the flap hold: the same incident reopens and pages from L1.
    restarted.handle_guard(minutes(30), &[blind(Some("checkout"), 18, "reads fail")]);
    let incident = restarted.incident(1).unwrap();
    assert!(incident.is_open());
    assert_eq!(incident.guard_reason.as_deref(), Some("reads fail"));
    assert_eq!(guard_incidents(&restarted).len(), 1);
    let effects = effects(&mut restarted);
    assert_eq!(pages(&effects), [(30, "L1".to_owned())]);
    // A reason that changes while it is open replaces the old one, without a timeline entry.
    let before = restarted.incident(1).unwrap().timeline.len();
    restarted.handle_guard(minutes(31), &[blind(Some("checkout"), 18, "disk full")]);
    let incident = restarted.incident(1).unwrap();
    assert_eq!(incident.guard_reason.as_deref(), Some("disk full"));
    assert_eq!(incident.timeline.len(), before);
    assert_eq!(
        incident.criteria(restarted.policy(), minutes(31))[0].detail,
        "revloop still cannot judge: disk full"
    );
}

#[test]
fn without_auto_resolve_judging_again_prompts_and_blind_again_reopens_the_cause() {
    let mut policy = IncidentPolicy::runbook();
    policy.auto_resolve = false;
    let mut engine = IncidentEngine::new(policy, Vec::new());
    engine.handle_guard(
        minutes(11),
        &[blind(Some("checkout"), 1, "no minute judged")],
    );
    // Within `GUARD_CLEAR_AFTER` of the last "blind", "judging" closes nothing yet.
    engine.handle_guard(minutes(12), &[judging(Some("checkout"))]);
    assert_ne!(
        kinds(engine.incident(1).unwrap()).last(),
        Some(&"alert_closed")
    );
    engine.handle_guard(minutes(13), &[judging(Some("checkout"))]);
    let incident = engine.incident(1).unwrap();
    assert!(incident.is_open());
    assert_eq!(kinds(incident).last(), Some(&"resolution_prompt"));
    engine.handle_guard(
        minutes(14),
        &[blind(Some("checkout"), 13, "no minute judged")],
    );
    let incident = engine.incident(1).unwrap();
    assert_eq!(kinds(incident).last(), Some(&"related_alert"));
    assert!(!incident.criteria(engine.policy(), minutes(14))[0].holds);
    assert_eq!(pages(&effects(&mut engine)).len(), 1, "paged once");
}
