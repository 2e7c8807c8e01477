//! The incident engine of `revloop-core` as a durable live service.
//!
//! Every step of the engine (alerts from a detector tick, a responder's action, timers coming
//! due) is committed to the store in one transaction with what it changed: the incidents, the
//! timeline entries it appended, the effects it queued (the outbox), and the engine's own
//! state. The commit names the version it was computed from, so when several nodes share
//! PostgreSQL exactly one of them commits each step: the others find the version moved on,
//! reload, and apply their input again to the fresh state, where a timer already fired is
//! not due any more and an alert already taken in changes nothing. A restart loads the last
//! commit and carries on; nothing in memory is needed.
//!
//! It holds the service only: the API's views of incidents live in the `api` areas, and the
//! changes that may explain an incident are ranked in `suspects`. It never imports `api`.
//!
//! Times: live inputs are stamped with the server's clock; `replay` drives the same engine in
//! event time (see [`crate::event_time::run_in_event_time`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{Value, json};

use revloop_core::Config;
use revloop_core::alert::AlertEvent;
use revloop_core::incident::{
    Action, ActionError, AddedSilence, Effect, EngineMeta, GuardEvent, Incident, IncidentEngine,
    IncidentPolicy, RESOLVED_KEPT_MAX, Silence, SilenceError, TimelineEntry,
};
use revloop_core::pipeline::feed_tick;
use revloop_core::time::{DurationMs, Timestamp};
use revloop_store::{
    IncidentCommit, IncidentRow, OutboxKind, OutboxRow, Store, StoreError, TimelineRow,
};

use crate::Clock;

/// Times a step is applied again after another node committed first.
const CONFLICT_RETRIES_MAX: usize = 8;
/// Longest wait between two looks at the timers and the store, so that a clock that jumps and
/// another node's commits are noticed.
const POLL_MS_MAX: i64 = 1_000;
/// Effects older than this when committed were owed in history (a run over a backfill): they
/// go to the outbox, and to the log only at debug level.
const HISTORY_LOG_MINUTES: i64 = 5;
/// Most alert events held while the store cannot take them.
pub const PENDING_ALERTS_MAX: usize = 10_000;

pub struct Incidents {
    config: Arc<Config>,
    store: Arc<dyn Store>,
    live: Mutex<Live>,
}

struct Live {
    engine: IncidentEngine,
    /// The store's version this state was loaded at or committed as; `None` before loading.
    version: Option<i64>,
    alerts_through: Timestamp,
    /// Timeline entries already stored, per incident.
    stored_entries: HashMap<u64, usize>,
    /// Alert events not yet committed (the store failed); tried again with the next tick's.
    pending: Vec<AlertEvent>,
}

impl Incidents {
    pub fn new(config: Arc<Config>, store: Arc<dyn Store>) -> Incidents {
        let engine = IncidentEngine::for_config(&config);
        Incidents {
            config,
            store,
            live: Mutex::new(Live {
                engine,
                version: None,
                alerts_through: Timestamp::MIN,
                stored_entries: HashMap::new(),
                pending: Vec::new(),
            }),
        }
    }

    pub fn policy(&self) -> &IncidentPolicy {
        &self.config.incidents
    }

    /// Takes in a detector tick's alert events and the latest deviation of every open
    /// incident's series, through the core's one glue ([`feed_tick`]). Events at or before
    /// what was taken in before are skipped (a fresh database starts taking events from its
    /// first start: history is not news).
    pub fn feed(
        &self,
        events: &[AlertEvent],
        deviations: &dyn Fn(&Incident) -> Option<f64>,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        {
            let mut live = self.lock();
            live.pending.extend_from_slice(events);
            let excess = live.pending.len().saturating_sub(PENDING_ALERTS_MAX);
            if excess > 0 {
                tracing::warn!(
                    dropped = excess,
                    "incidents dropped alert events the store could not take"
                );
                live.pending.drain(..excess);
            }
        }
        self.step(now, |live| {
            // The watermark is the service's own: events at or before it were taken in by an
            // earlier step (or are history from before the first start).
            let through = live.alerts_through;
            let fresh: Vec<AlertEvent> = live
                .pending
                .iter()
                .filter(|event| event.at > through)
                .cloned()
                .collect();
            if let Some(latest) = fresh.iter().map(|event| event.at).max() {
                live.alerts_through = live.alerts_through.max(latest);
            }
            // Live, a timer that fell due while the timer loop was behind (or the server was
            // down) fires now and is stamped now, as `tick` does: the page really goes out
            // late, and its timeline entry says so. Only event time fires timers at their due
            // times, which `feed_tick` does for what is still due.
            live.engine.handle_timeout(now);
            feed_tick(&mut live.engine, deviations, now, &fresh);
        })?;
        self.lock().pending.clear();
        Ok(())
    }

    /// Takes the dead man's switch's events (from the `watchdog` module) as one step, committed
    /// like any other: an event that changes nothing commits nothing, so a guard incident
    /// opens and pages once across checks, restarts and nodes.
    pub fn feed_guard(&self, events: &[GuardEvent], now: Timestamp) -> Result<(), StoreError> {
        self.step(now, |live| live.engine.handle_guard(now, events))
    }

    /// Fires the timers due at `now`.
    pub fn tick(&self, now: Timestamp) -> Result<(), StoreError> {
        self.step(now, |live| live.engine.handle_timeout(now))
    }

    /// A responder's action; the incident as it is after it.
    pub fn act(
        &self,
        id: u64,
        actor: &str,
        action: &Action,
        reason: Option<&str>,
        now: Timestamp,
    ) -> Result<Result<Incident, ActionError>, StoreError> {
        self.step(now, |live| {
            live.engine
                .handle_action(now, id, actor, action.clone(), reason)
                .map(|()| live.engine.incident(id).expect("acted on").clone())
        })
    }

    /// Takes over the incidents of an event-time run over history (see
    /// [`crate::event_time::run_in_event_time`]) when there are none yet, as the demo does after its backfill;
    /// returns whether it did. Alerts up to `alerts_through` count as taken in.
    pub fn adopt(
        &self,
        engine: IncidentEngine,
        alerts_through: Timestamp,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        // A step may be applied again after a conflict, so it copies rather than moves.
        self.step(now, |live| {
            if live.engine.incidents().next().is_some() {
                return false;
            }
            live.engine = engine.clone();
            live.alerts_through = live.alerts_through.max(alerts_through);
            live.engine.handle_timeout(now);
            true
        })
    }

    /// Adds a silence; its id, or why it was refused.
    pub fn add_silence(
        &self,
        actor: &str,
        silence: &Silence,
        now: Timestamp,
    ) -> Result<Result<u64, SilenceError>, StoreError> {
        self.step(now, |live| {
            live.engine.add_silence(now, actor, silence.clone())
        })
    }

    /// Ends an added silence now; `None` if there is none with this id.
    pub fn end_silence(&self, id: u64, now: Timestamp) -> Result<Option<AddedSilence>, StoreError> {
        self.step(now, |live| live.engine.end_silence(now, id))
    }

    /// When the engine next needs the time, if ever.
    pub fn wake_at(&self) -> Option<Timestamp> {
        self.lock().engine.poll_timeout()
    }

    /// An incident as it is now: from the engine, or from the store for one long resolved.
    pub fn incident(&self, id: u64) -> Result<Option<Incident>, StoreError> {
        {
            let mut live = self.lock();
            self.refresh(&mut live)?;
            if let Some(incident) = live.engine.incident(id) {
                return Ok(Some(incident.clone()));
            }
        }
        let Ok(key) = i64::try_from(id) else {
            return Ok(None);
        };
        self.store
            .incident(key)?
            .map(|(row, timeline)| incident_from_rows(&row, timeline))
            .transpose()
    }

    /// The engine's incidents now, after catching up with the store.
    pub fn with_engine<R>(&self, read: impl FnOnce(&IncidentEngine) -> R) -> Result<R, StoreError> {
        let mut live = self.lock();
        self.refresh(&mut live)?;
        Ok(read(&live.engine))
    }

    /// Applies `input` to the current state and commits what it did, as one step. On a
    /// conflict the state is reloaded and `input` applied again; on any other failure the
    /// state is reloaded and the error returned, so memory never runs ahead of the store.
    fn step<R>(
        &self,
        now: Timestamp,
        mut input: impl FnMut(&mut Live) -> R,
    ) -> Result<R, StoreError> {
        let mut live = self.lock();
        let mut attempts = 0;
        loop {
            self.refresh(&mut live)?;
            if live.alerts_through == Timestamp::MIN {
                live.alerts_through = now;
            }
            let before = meta_key(&live);
            let result = input(&mut live);
            match self.commit(&mut live, before, now) {
                Ok(()) => return Ok(result),
                Err(StoreError::Conflict { .. }) if attempts < CONFLICT_RETRIES_MAX => {
                    attempts += 1;
                    live.version = None;
                }
                Err(err) => {
                    live.version = None;
                    return Err(err);
                }
            }
        }
    }

    /// Reloads the state if the store's moved on (another node committed) or was never read.
    fn refresh(&self, live: &mut Live) -> Result<(), StoreError> {
        if let Some(version) = live.version
            && self.store.incidents_version()? == version
        {
            return Ok(());
        }
        let snapshot = self.store.load_incidents(RESOLVED_KEPT_MAX)?;
        // The engine's meta, and the time through which alert events have been taken in (a
        // restarted detector's history is not news again).
        let meta: Option<(EngineMeta, Timestamp)> = snapshot
            .meta
            .as_deref()
            .map(revloop_store::decode_incident_meta)
            .transpose()?;
        let mut timelines: HashMap<i64, Vec<TimelineRow>> = HashMap::new();
        for row in snapshot.timeline {
            timelines.entry(row.incident).or_default().push(row);
        }
        let mut incidents = Vec::with_capacity(snapshot.incidents.len());
        for row in &snapshot.incidents {
            let timeline = timelines.remove(&row.id).unwrap_or_default();
            incidents.push(incident_from_rows(row, timeline)?);
        }
        live.stored_entries = incidents
            .iter()
            .map(|i: &Incident| (i.id, i.timeline.len()))
            .collect();
        live.alerts_through = meta
            .as_ref()
            .map_or(Timestamp::MIN, |(_, alerts_through)| *alerts_through);
        let engine_meta = meta.map_or(
            EngineMeta {
                next_id: 1,
                evaluated_at: Timestamp::MIN,
                added_silences: Vec::new(),
                next_silence_id: 1,
            },
            |(engine, _)| engine,
        );
        live.engine = IncidentEngine::restore(
            self.config.incidents.clone(),
            self.config.silences(),
            engine_meta,
            incidents,
        );
        live.version = Some(snapshot.version);
        Ok(())
    }

    /// Writes what the last input changed, if anything.
    fn commit(
        &self,
        live: &mut Live,
        meta_before: MetaKey,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let effects: Vec<Effect> = std::iter::from_fn(|| live.engine.poll_effect()).collect();
        let outbox: Vec<OutboxRow> = effects.iter().map(outbox_row).collect();
        let mut incidents = Vec::new();
        let mut timeline = Vec::new();
        let mut stored = Vec::new();
        for incident in live.engine.take_changed() {
            incidents.push(incident_row(incident)?);
            let from = live.stored_entries.get(&incident.id).copied().unwrap_or(0);
            for (seq, entry) in incident.timeline.iter().enumerate().skip(from) {
                timeline.push(TimelineRow {
                    incident: incident.id as i64,
                    seq: seq as i64,
                    at: entry.at,
                    actor: entry.actor.clone(),
                    kind: entry.kind,
                    text: entry.text.clone(),
                });
            }
            stored.push((incident.id, incident.timeline.len()));
        }
        let first_commit = live.version == Some(0);
        if incidents.is_empty()
            && outbox.is_empty()
            && meta_key(live) == meta_before
            && !first_commit
        {
            return Ok(());
        }
        let commit = IncidentCommit {
            expected_version: live.version.unwrap_or(0),
            meta: revloop_store::encode_incident_meta(&live.engine.meta(), live.alerts_through)?,
            incidents,
            timeline,
            outbox,
        };
        let version = self.store.commit_incidents(&commit)?;
        live.version = Some(version);
        live.stored_entries.extend(stored);
        // The outbox in the log too, until notifications deliver it; what a run over history
        // owed long ago (the demo's backfill) only at debug level.
        for effect in &effects {
            let (Effect::Notify { at, .. } | Effect::SlaBreached { at, .. }) = effect;
            let current = now.since(*at) < DurationMs::from_minutes(HISTORY_LOG_MINUTES);
            match effect {
                Effect::Notify {
                    incident,
                    level,
                    targets,
                    reason,
                    ..
                } if current => tracing::warn!(
                    incident,
                    level = %level,
                    targets = %targets.join(", "),
                    "page: {reason}"
                ),
                Effect::SlaBreached { incident, sla, .. } if current => {
                    tracing::warn!(incident, sla, "SLA breached")
                }
                _ => tracing::debug!(effect = %effect_json(effect), "owed in history"),
            }
        }
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, Live> {
        self.live
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// What of the service's meta a step can change besides the clock: a change of it is worth a
/// commit even when no incident changed.
type MetaKey = (Timestamp, u64, usize);

fn meta_key(live: &Live) -> MetaKey {
    let (_, added) = live.engine.silences();
    (
        live.alerts_through,
        live.engine.meta().next_silence_id,
        added.len(),
    )
}

fn incident_row(incident: &Incident) -> Result<IncidentRow, StoreError> {
    Ok(IncidentRow {
        id: incident.id as i64,
        funnel: incident.funnel.clone(),
        stage: incident.stage.clone(),
        severity: incident.severity,
        state: incident.state,
        opened_at: incident.opened_at,
        acknowledged_at: incident.acknowledged_at,
        mitigated_at: incident.mitigated_at,
        resolved_at: incident.resolved_at,
        body: revloop_store::encode_incident_body(incident)?,
    })
}

pub fn incident_from_rows(
    row: &IncidentRow,
    timeline: Vec<TimelineRow>,
) -> Result<Incident, StoreError> {
    let mut incident = revloop_store::decode_incident_body(row.id, &row.body)?;
    incident.timeline = timeline
        .into_iter()
        .map(|row| TimelineEntry {
            at: row.at,
            actor: row.actor,
            kind: row.kind,
            text: row.text,
        })
        .collect();
    Ok(incident)
}

fn outbox_row(effect: &Effect) -> OutboxRow {
    let (incident, at, kind) = match effect {
        Effect::Notify { incident, at, .. } => (*incident, *at, OutboxKind::Notify),
        Effect::SlaBreached { incident, at, .. } => (*incident, *at, OutboxKind::SlaBreached),
    };
    OutboxRow {
        id: 0,
        incident: incident as i64,
        at,
        kind,
        body: effect_json(effect).to_string(),
    }
}

/// An effect as stored in its outbox row: the outbox's shape without the row's id. This is a
/// stored format (written once, read back many times), so it stays here with the service;
/// `api::outbox` reads it into `revloop_api::outbox::OutboxEntry`, and `tests/incidents.rs`
/// checks that every real outbox reply reads into that type.
fn effect_json(effect: &Effect) -> Value {
    match effect {
        Effect::Notify {
            incident,
            at,
            level,
            targets,
            reason,
        } => json!({
            "kind": "notify",
            "incident": incident,
            "at": at.to_string(),
            "level": level,
            "targets": targets,
            "reason": reason,
        }),
        Effect::SlaBreached { incident, at, sla } => json!({
            "kind": "sla_breached",
            "incident": incident,
            "at": at.to_string(),
            "sla": sla,
        }),
    }
}

/// Runs the incident timers until the process ends. Detector ticks feed alerts separately
/// (see [`crate::detection::run`]); this loop fires escalations, SLA breaches and resolution
/// checks when they come due, and picks up what other nodes committed.
pub async fn run(incidents: Arc<Incidents>, clock: Arc<dyn Clock>) {
    loop {
        let now = clock.now();
        let due = incidents.wake_at().is_some_and(|wake| now >= wake);
        let incidents_for_task = incidents.clone();
        let result = tokio::task::spawn_blocking(move || {
            if due {
                incidents_for_task.tick(now)
            } else {
                incidents_for_task.with_engine(|_| ())
            }
        })
        .await;
        match result {
            Ok(Ok(())) => {}
            Ok(Err(err)) => tracing::warn!(error = %err, "incident timers could not commit"),
            Err(err) => tracing::error!(error = %err, "incident timers panicked"),
        }
        let wait = incidents.wake_at().map_or(POLL_MS_MAX, |wake| {
            (wake.millis() - clock.now().millis()).clamp(10, POLL_MS_MAX)
        });
        tokio::time::sleep(std::time::Duration::from_millis(wait as u64)).await;
    }
}
