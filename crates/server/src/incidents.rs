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
//! The service owns its state: one thread holds the engine and takes steps as messages over a
//! bounded channel, each with a reply channel, and publishes a snapshot of the engine after
//! each step that changed it. Readers take that snapshot and never wait behind a commit; no
//! lock is held across store IO, and async callers await their replies. A step that panics
//! answers its caller with an error and the next step reloads from the store. The timer loop
//! ([`run`]) only sends messages. Reads of another node's commits are as fresh as the last
//! look at the store (at most `POLL_MS_MAX` ms old).
//!
//! Times: live inputs are stamped with the server's clock; `replay` drives the same engine in
//! event time (see [`crate::event_time::run_in_event_time`]).

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock, mpsc};

use tokio::sync::oneshot;

use revloop_core::Config;
use revloop_core::alert::AlertEvent;
use revloop_core::incident::{
    Action, ActionError, AddedSilence, Declaration, DeclareError, Effect, EngineMeta, GuardEvent,
    Incident, IncidentEngine, IncidentPolicy, RESOLVED_KEPT_MAX, Silence, SilenceError,
    TimelineEntry,
};
use revloop_core::pipeline::{Measure, Measured, feed_tick};
use revloop_core::time::{DurationMs, Timestamp};
use revloop_store::{
    AlertWatermark, IncidentCommit, IncidentRow, OutboxRow, Store, StoreError, TimelineRow,
};

use crate::Clock;
use crate::booking::Booker;
use crate::http::lock;
use crate::http::retry::Backoff;

/// Times a step is applied again after another node committed first.
const CONFLICT_RETRIES_MAX: usize = 8;
/// Longest wait between two looks at the timers and the store, so that a clock that jumps and
/// another node's commits are noticed.
const POLL_MS_MAX: i64 = 1_000;
/// Most alert events held while the store cannot take them.
pub const PENDING_ALERTS_MAX: usize = 10_000;
/// Steps waiting for the service; past this a caller waits for room.
pub const STEPS_QUEUED_MAX: usize = 256;
/// A time not yet recorded.
const NEVER_MS: i64 = i64::MIN;

/// A step for the service thread, with its reply inside.
type Job = Box<dyn FnOnce(&mut Service) + Send>;

/// The handle to the incident service: it sends steps to the thread that owns the engine and
/// reads the snapshot that thread publishes.
pub struct Incidents {
    config: Arc<Config>,
    store: Arc<dyn Store>,
    sender: Option<tokio::sync::mpsc::Sender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
    shared: Arc<Shared>,
}

/// The engine as of the service's last step, for readers: replaced whole, never changed.
pub struct Snapshot {
    engine: IncidentEngine,
    /// Whether it was read from the store yet (before that it is an empty engine).
    loaded: bool,
}

impl Snapshot {
    pub fn engine(&self) -> &IncidentEngine {
        &self.engine
    }
}

/// Whether the service is alive and when it last did something, for readiness and the
/// watchdog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Liveness {
    /// The service thread is running (false once it ended, a panic included).
    pub alive: bool,
    /// The time of the last step or look at the store that succeeded.
    pub last_step_at: Option<Timestamp>,
    /// The time the timers were last run (whether any was due or not).
    pub timers_ran_at: Option<Timestamp>,
    /// Real time (not the server's clock, which a test or a suspended laptop may jump) since
    /// the timers last ran, or since the service started if they never did.
    pub timers_idle: std::time::Duration,
}

/// What the service thread and the handles share. The lock guards only the swap of an `Arc`:
/// nobody holds it across IO.
struct Shared {
    snapshot: RwLock<Arc<Snapshot>>,
    alive: AtomicBool,
    last_step_ms: AtomicI64,
    timers_ran_ms: AtomicI64,
    /// Real milliseconds from `started` to the last run of the timers.
    timers_ran_real_ms: AtomicU64,
    started: std::time::Instant,
    step_failures: AtomicU64,
}

impl Shared {
    fn timers_ran(&self, now: Timestamp) {
        self.timers_ran_ms.store(now.millis(), Ordering::Relaxed);
        let real_ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.timers_ran_real_ms.store(real_ms, Ordering::Relaxed);
    }
}

/// A flag that goes false when it is dropped: at the end of the thread that owns it, whether
/// the thread returned or unwound.
struct ClearedOnExit(Arc<Shared>);

impl Drop for ClearedOnExit {
    fn drop(&mut self) {
        self.0.alive.store(false, Ordering::SeqCst);
    }
}

/// The service thread's own state: only it touches the engine and the store's incident rows.
struct Service {
    config: Arc<Config>,
    store: Arc<dyn Store>,
    live: Live,
    shared: Arc<Shared>,
    /// The version the published snapshot was taken at.
    published: Option<i64>,
    /// Books the incidents' losses after each committed step.
    booker: Booker,
}

struct Live {
    engine: IncidentEngine,
    /// The store's version this state was loaded at or committed as; `None` before loading.
    version: Option<i64>,
    /// Through when alert events have been taken in, per funnel.
    alerts: AlertWatermark,
    /// Timeline entries already stored, per incident.
    stored_entries: HashMap<u64, usize>,
    /// Alert events not yet committed (the store failed); tried again with the next tick's.
    pending: Vec<AlertEvent>,
}

/// Why a step did not commit: a read (nothing was written) or the commit itself.
enum StepFailure {
    Read(StoreError),
    Commit { err: StoreError, expected: i64 },
}

impl Incidents {
    /// Starts the service thread. It loads the state at its first step.
    pub fn new(config: Arc<Config>, store: Arc<dyn Store>) -> Incidents {
        let engine = IncidentEngine::for_config(&config);
        let shared = Arc::new(Shared {
            snapshot: RwLock::new(Arc::new(Snapshot {
                engine: engine.clone(),
                loaded: false,
            })),
            alive: AtomicBool::new(true),
            last_step_ms: AtomicI64::new(NEVER_MS),
            timers_ran_ms: AtomicI64::new(NEVER_MS),
            timers_ran_real_ms: AtomicU64::new(0),
            started: std::time::Instant::now(),
            step_failures: AtomicU64::new(0),
        });
        let mut service = Service {
            config: config.clone(),
            store: store.clone(),
            live: Live {
                engine,
                version: None,
                alerts: AlertWatermark::NONE,
                stored_entries: HashMap::new(),
                pending: Vec::new(),
            },
            shared: shared.clone(),
            published: None,
            booker: Booker::new(config.ledger.chart.clone()),
        };
        let (sender, mut receiver) = tokio::sync::mpsc::channel::<Job>(STEPS_QUEUED_MAX);
        let thread = std::thread::Builder::new()
            .name("revloop-incidents".into())
            .spawn(move || {
                let _alive = ClearedOnExit(service.shared.clone());
                while let Some(job) = receiver.blocking_recv() {
                    // A step that panics answers its caller with an error (its reply is
                    // dropped) and leaves memory ahead of the store: reload at the next step.
                    if let Err(panic) = catch_unwind(AssertUnwindSafe(|| job(&mut service))) {
                        let said = crate::http::error::panic_text(panic.as_ref());
                        tracing::error!("an incident step panicked: {said}");
                        service.live.version = None;
                        service.shared.step_failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
            .expect("spawn the incident service thread");
        Incidents {
            config,
            store,
            sender: Some(sender),
            thread: Some(thread),
            shared,
        }
    }

    pub fn policy(&self) -> &IncidentPolicy {
        &self.config.incidents
    }

    /// Takes in a detector tick's alert events and the latest deviation of every open
    /// incident's series, through the core's one glue ([`feed_tick`]). Events at or before
    /// what was taken in before are skipped (a fresh database starts taking events from its
    /// first start: history is not news). Blocking: call it from a blocking thread. The
    /// service asks this thread for each deviation while the step runs, so `deviations` may
    /// borrow what the caller holds.
    pub fn feed(
        &self,
        events: &[AlertEvent],
        deviations: &dyn Fn(&Incident) -> Option<f64>,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.feed_measured(
            events,
            &|incident| Measured {
                sigma: deviations(incident),
                impact: None,
            },
            now,
        )
    }

    /// [`Incidents::feed`] with each open incident's minute priced too (its revenue impact):
    /// `measure` answers both in one ask.
    pub fn feed_measured(
        &self,
        events: &[AlertEvent],
        deviations: &dyn Fn(&Incident) -> Measured,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let (ask, asked) = mpsc::channel::<Incident>();
        let (answer, answered) = mpsc::channel::<Measured>();
        let events = events.to_vec();
        let reply = self.send_blocking(move |service| {
            let deviation = |incident: &Incident| {
                if ask.send(incident.clone()).is_err() {
                    return Measured::default();
                }
                answered.recv().unwrap_or_default()
            };
            service.feed(events, &deviation, now)
        })?;
        // The asks end when the step does (its end drops `ask`), however it ends.
        for incident in asked {
            let _ = answer.send(deviations(&incident));
        }
        wait_blocking(reply)
    }

    /// Fires the timers due at `now`. Blocking.
    pub fn tick(&self, now: Timestamp) -> Result<(), StoreError> {
        wait_blocking(self.send_blocking(move |service| service.tick(now))?)
    }

    /// Takes the dead man's switch's events (from the `watchdog` module) as one step, committed
    /// like any other: an event that changes nothing commits nothing, so a guard incident
    /// opens and pages once across checks, restarts and nodes.
    pub fn feed_guard(&self, events: &[GuardEvent], now: Timestamp) -> Result<(), StoreError> {
        let events = events.to_vec();
        wait_blocking(self.send_blocking(move |service| {
            service.step(now, |live| live.engine.handle_guard(now, &events))
        })?)
    }

    /// The deliverer found that nobody of `level` could be reached about incident `id` (every
    /// delivery of its page failed for the failover window): the engine pages the next level
    /// at once, if the incident still waits at that level. One committed step.
    pub async fn level_unreachable(
        &self,
        id: u64,
        level: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let level = level.to_owned();
        let job = move |service: &mut Service| {
            service.step(now, |live| {
                live.engine.handle_unreachable(now, id, &level);
            })
        };
        wait_async(self.send_async(job).await?).await
    }

    /// A responder declares an incident by hand (`IncidentEngine::declare`): the incident as
    /// opened (L1 paged, unless a silence holds it), or why it was refused. One committed step.
    pub async fn declare_async(
        &self,
        declaration: &Declaration,
        actor: &str,
        now: Timestamp,
    ) -> Result<Result<Incident, DeclareError>, StoreError> {
        let (declaration, actor) = (declaration.clone(), actor.to_owned());
        let job = move |service: &mut Service| {
            service.step(now, |live| {
                let id = live.engine.declare(now, &declaration, &actor)?;
                Ok(live.engine.incident(id).expect("just declared").clone())
            })
        };
        wait_async(self.send_async(job).await?).await
    }

    /// A responder's action; the incident as it is after it. Blocking.
    pub fn act(
        &self,
        id: u64,
        actor: &str,
        action: &Action,
        reason: Option<&str>,
        now: Timestamp,
    ) -> Result<Result<Incident, ActionError>, StoreError> {
        let job = act_job(id, actor, action, reason, now);
        wait_blocking(self.send_blocking(job)?)
    }

    /// As [`Incidents::act`], for an async handler: it awaits the service.
    pub async fn act_async(
        &self,
        id: u64,
        actor: &str,
        action: &Action,
        reason: Option<&str>,
        now: Timestamp,
    ) -> Result<Result<Incident, ActionError>, StoreError> {
        let job = act_job(id, actor, action, reason, now);
        wait_async(self.send_async(job).await?).await
    }

    /// Takes over the incidents of an event-time run over history (see
    /// [`crate::event_time::run_in_event_time`]) when there are none yet, as the demo does after its backfill;
    /// returns whether it did. Alerts up to `alerts_through` count as taken in. Blocking.
    pub fn adopt(
        &self,
        engine: IncidentEngine,
        alerts_through: Timestamp,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        wait_blocking(self.send_blocking(move |service| {
            // A step may be applied again after a conflict, so it copies rather than moves.
            service.step(now, |live| {
                if live.engine.incidents().next().is_some() {
                    return false;
                }
                live.engine = engine.clone();
                live.alerts.floor = live.alerts.floor.max(alerts_through);
                live.engine.handle_timeout(now);
                true
            })
        })?)
    }

    /// Adds a silence; its id, or why it was refused. Blocking.
    pub fn add_silence(
        &self,
        actor: &str,
        silence: &Silence,
        now: Timestamp,
    ) -> Result<Result<u64, SilenceError>, StoreError> {
        wait_blocking(self.send_blocking(add_silence_job(actor, silence, now))?)
    }

    /// As [`Incidents::add_silence`], for an async handler.
    pub async fn add_silence_async(
        &self,
        actor: &str,
        silence: &Silence,
        now: Timestamp,
    ) -> Result<Result<u64, SilenceError>, StoreError> {
        wait_async(
            self.send_async(add_silence_job(actor, silence, now))
                .await?,
        )
        .await
    }

    /// Ends an added silence now; `None` if there is none with this id. Blocking.
    pub fn end_silence(&self, id: u64, now: Timestamp) -> Result<Option<AddedSilence>, StoreError> {
        wait_blocking(self.send_blocking(move |service| {
            service.step(now, |live| live.engine.end_silence(now, id))
        })?)
    }

    /// As [`Incidents::end_silence`], for an async handler.
    pub async fn end_silence_async(
        &self,
        id: u64,
        now: Timestamp,
    ) -> Result<Option<AddedSilence>, StoreError> {
        let job =
            move |service: &mut Service| service.step(now, |live| live.engine.end_silence(now, id));
        wait_async(self.send_async(job).await?).await
    }

    /// Runs the timers at `now`: catches up with the store (another node's commits), and fires
    /// those due. For the timer loop; it awaits the service.
    pub async fn run_timers(&self, now: Timestamp) -> Result<(), StoreError> {
        wait_async(
            self.send_async(move |service| service.run_timers(now))
                .await?,
        )
        .await
    }

    /// When the engine next needs the time, if ever, as of the last step.
    pub fn wake_at(&self) -> Option<Timestamp> {
        self.published().engine.poll_timeout()
    }

    /// How late the timers are at `now`: now minus the earliest due timer not yet fired, as of
    /// the last step; zero if none is due.
    pub fn timer_lag(&self, now: Timestamp) -> DurationMs {
        match self.wake_at() {
            Some(due) if due < now => now.since(due),
            _ => DurationMs::from_millis(0),
        }
    }

    /// Whether the service thread runs, and when it last stepped and ran the timers.
    pub fn liveness(&self) -> Liveness {
        let at = |ms: &AtomicI64| match ms.load(Ordering::Relaxed) {
            NEVER_MS => None,
            ms => Some(Timestamp::from_millis(ms)),
        };
        Liveness {
            alive: self.shared.alive.load(Ordering::SeqCst),
            last_step_at: at(&self.shared.last_step_ms),
            timers_ran_at: at(&self.shared.timers_ran_ms),
            timers_idle: self.shared.started.elapsed().saturating_sub(
                std::time::Duration::from_millis(
                    self.shared.timers_ran_real_ms.load(Ordering::Relaxed),
                ),
            ),
        }
    }

    /// Steps that failed (the store refused them, or they panicked) since the start.
    pub fn step_failures(&self) -> u64 {
        self.shared.step_failures.load(Ordering::Relaxed)
    }

    /// The engine as of the last step, for an async reader: it never waits behind a commit
    /// (only, once, for the first load from the store).
    pub async fn snapshot(&self) -> Result<Arc<Snapshot>, StoreError> {
        let published = self.published();
        if published.loaded {
            return Ok(published);
        }
        wait_async(
            self.send_async(|service| service.refresh_published())
                .await?,
        )
        .await?;
        Ok(self.published())
    }

    /// The engine as of the last step, read on a blocking thread (a first load may read the
    /// store).
    pub fn with_engine<R>(&self, read: impl FnOnce(&IncidentEngine) -> R) -> Result<R, StoreError> {
        let mut published = self.published();
        if !published.loaded {
            wait_blocking(self.send_blocking(|service| service.refresh_published())?)?;
            published = self.published();
        }
        Ok(read(&published.engine))
    }

    /// An incident as it is now: from the engine, or from the store for one long resolved.
    /// Blocking: it may read the store.
    pub fn incident(&self, id: u64) -> Result<Option<Incident>, StoreError> {
        if let Some(incident) = self.with_engine(|engine| engine.incident(id).cloned())? {
            return Ok(Some(incident));
        }
        self.stored_incident(id)
    }

    /// An incident from its stored rows (one the engine no longer keeps). Blocking.
    pub fn stored_incident(&self, id: u64) -> Result<Option<Incident>, StoreError> {
        let Ok(key) = i64::try_from(id) else {
            return Ok(None);
        };
        crate::http::retrying(|| self.store.incident(key))?
            .map(|(row, timeline)| incident_from_rows(&row, timeline))
            .transpose()
    }

    fn published(&self) -> Arc<Snapshot> {
        lock::read(&self.shared.snapshot).clone()
    }

    fn send_blocking<R: Send + 'static>(
        &self,
        job: impl FnOnce(&mut Service) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<oneshot::Receiver<Result<R, StoreError>>, StoreError> {
        let (job, reply) = with_reply(job);
        self.sender()?
            .blocking_send(job)
            .map_err(|_| service_stopped())?;
        Ok(reply)
    }

    async fn send_async<R: Send + 'static>(
        &self,
        job: impl FnOnce(&mut Service) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<oneshot::Receiver<Result<R, StoreError>>, StoreError> {
        let (job, reply) = with_reply(job);
        self.sender()?
            .send(job)
            .await
            .map_err(|_| service_stopped())?;
        Ok(reply)
    }

    fn sender(&self) -> Result<&tokio::sync::mpsc::Sender<Job>, StoreError> {
        self.sender.as_ref().ok_or_else(service_stopped)
    }
}

impl Drop for Incidents {
    /// Ends the service thread after the step it is on, and waits for it, so that the store
    /// it holds is let go when the handle is (a restart on the same file finds it free).
    fn drop(&mut self) {
        drop(self.sender.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn act_job(
    id: u64,
    actor: &str,
    action: &Action,
    reason: Option<&str>,
    now: Timestamp,
) -> impl FnOnce(&mut Service) -> Result<Result<Incident, ActionError>, StoreError> + Send + 'static
{
    let (actor, action, reason) = (actor.to_owned(), action.clone(), reason.map(str::to_owned));
    move |service: &mut Service| {
        service.step(now, |live| {
            live.engine
                .handle_action(now, id, &actor, action.clone(), reason.as_deref())
                .map(|()| live.engine.incident(id).expect("acted on").clone())
        })
    }
}

fn add_silence_job(
    actor: &str,
    silence: &Silence,
    now: Timestamp,
) -> impl FnOnce(&mut Service) -> Result<Result<u64, SilenceError>, StoreError> + Send + 'static {
    let (actor, silence) = (actor.to_owned(), silence.clone());
    move |service: &mut Service| {
        service.step(now, |live| {
            live.engine.add_silence(now, &actor, silence.clone())
        })
    }
}

/// A job and the receiver of its reply.
fn with_reply<R: Send + 'static>(
    job: impl FnOnce(&mut Service) -> Result<R, StoreError> + Send + 'static,
) -> (Job, oneshot::Receiver<Result<R, StoreError>>) {
    let (reply, receiver) = oneshot::channel();
    let job: Job = Box::new(move |service: &mut Service| {
        let _ = reply.send(job(service));
    });
    (job, receiver)
}

fn wait_blocking<R>(reply: oneshot::Receiver<Result<R, StoreError>>) -> Result<R, StoreError> {
    reply.blocking_recv().map_err(|_| step_failed())?
}

async fn wait_async<R>(reply: oneshot::Receiver<Result<R, StoreError>>) -> Result<R, StoreError> {
    reply.await.map_err(|_| step_failed())?
}

/// The service ended: its thread is gone.
fn service_stopped() -> StoreError {
    StoreError::Io("the incident service has stopped; see the server log".into())
}

/// The step ended without an answer: it panicked (the log has it).
fn step_failed() -> StoreError {
    StoreError::Io("an incident step failed; see the server log".into())
}

impl Service {
    fn feed(
        &mut self,
        events: Vec<AlertEvent>,
        deviations: &dyn Fn(&Incident) -> Measured,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let live = &mut self.live;
        live.pending.extend(events);
        let excess = live.pending.len().saturating_sub(PENDING_ALERTS_MAX);
        if excess > 0 {
            tracing::warn!(
                dropped = excess,
                "incidents dropped alert events the store could not take"
            );
            live.pending.drain(..excess);
        }
        self.step(now, |live| {
            // The watermark is the service's own, per funnel: events at or before it were taken
            // in by an earlier step (or are history from before the first start). A funnel
            // whose detector fell behind judges the minutes it missed later, and their events
            // are still news.
            let fresh: Vec<AlertEvent> = live
                .pending
                .iter()
                .filter(|event| event.at > live.alerts.through(&event.funnel))
                .cloned()
                .collect();
            for event in &fresh {
                live.alerts.advance(&event.funnel, event.at);
            }
            // Live, a timer that fell due while the timer loop was behind (or the server was
            // down) fires now and is stamped now, as `tick` does: the page really goes out
            // late, and its timeline entry says so. Only event time fires timers at their due
            // times, which `feed_tick` does for what is still due.
            live.engine.handle_timeout(now);
            feed_tick(&mut live.engine, &Measure::new(deviations), now, &fresh);
        })?;
        self.live.pending.clear();
        Ok(())
    }

    fn tick(&mut self, now: Timestamp) -> Result<(), StoreError> {
        self.step(now, |live| live.engine.handle_timeout(now))?;
        self.shared.timers_ran(now);
        Ok(())
    }

    /// Catches up with the store, then fires the timers if any is due.
    fn run_timers(&mut self, now: Timestamp) -> Result<(), StoreError> {
        self.refresh_published()?;
        if self
            .live
            .engine
            .poll_timeout()
            .is_some_and(|due| due <= now)
        {
            return self.tick(now);
        }
        self.shared.timers_ran(now);
        self.shared
            .last_step_ms
            .store(now.millis(), Ordering::Relaxed);
        Ok(())
    }

    /// Catches up with the store (reads retried while transient) and publishes what it read.
    fn refresh_published(&mut self) -> Result<(), StoreError> {
        let mut backoff = Backoff::new();
        loop {
            match self.refresh() {
                Ok(()) => break,
                Err(err) if backoff.wait_after(&err) => self.live.version = None,
                Err(err) => {
                    self.live.version = None;
                    self.shared.step_failures.fetch_add(1, Ordering::Relaxed);
                    return Err(err);
                }
            }
        }
        self.publish();
        Ok(())
    }

    /// Applies `input` to the current state and commits what it did, as one step. On a
    /// conflict the state is reloaded and `input` applied again. A transient failure is tried
    /// again, briefly, when nothing can have been written: a failed read, or a failed commit
    /// after which the store's version is still the one the step was computed from (a commit
    /// whose outcome is unknown, such as one on a connection lost mid-commit, is not repeated:
    /// an action would be applied twice). On any other failure the state is reloaded at the
    /// next step and the error returned, so memory never runs ahead of the store.
    fn step<R>(
        &mut self,
        now: Timestamp,
        mut input: impl FnMut(&mut Live) -> R,
    ) -> Result<R, StoreError> {
        let mut conflicts = 0;
        let mut backoff = Backoff::new();
        loop {
            let failure = match self.try_step(now, &mut input) {
                Ok(result) => {
                    self.shared
                        .last_step_ms
                        .store(now.millis(), Ordering::Relaxed);
                    self.publish();
                    // The books follow what was committed; a failed booking is logged, tried
                    // again a minute later, and never fails this step.
                    let _ = self
                        .booker
                        .book(self.store.as_ref(), &self.live.engine, now);
                    return Ok(result);
                }
                Err(failure) => failure,
            };
            self.live.version = None;
            let err = match failure {
                StepFailure::Commit {
                    err: StoreError::Conflict { .. },
                    ..
                } if conflicts < CONFLICT_RETRIES_MAX => {
                    conflicts += 1;
                    continue;
                }
                StepFailure::Read(err) => err,
                StepFailure::Commit { err, expected } => {
                    let unchanged =
                        err.is_transient() && self.store.incidents_version().ok() == Some(expected);
                    if !unchanged {
                        self.shared.step_failures.fetch_add(1, Ordering::Relaxed);
                        return Err(err);
                    }
                    err
                }
            };
            if !backoff.wait_after(&err) {
                self.shared.step_failures.fetch_add(1, Ordering::Relaxed);
                return Err(err);
            }
        }
    }

    fn try_step<R>(
        &mut self,
        now: Timestamp,
        input: &mut impl FnMut(&mut Live) -> R,
    ) -> Result<R, StepFailure> {
        self.refresh().map_err(StepFailure::Read)?;
        let live = &mut self.live;
        if live.alerts.floor == Timestamp::MIN {
            live.alerts.floor = now;
        }
        let before = meta_key(live);
        let expected = live.version.unwrap_or(0);
        let result = input(live);
        commit(self.store.as_ref(), live, before, now)
            .map_err(|err| StepFailure::Commit { err, expected })?;
        Ok(result)
    }

    /// Publishes the engine for readers if it changed since the last time.
    /// Publishes the engine for readers when the store's version moved, or when a step moved
    /// only the engine's clock (a deadline that passed with nothing to commit): readers, the
    /// timer loop's `wake_at` and the timer lag must not see a deadline already dealt with.
    fn publish(&mut self) {
        let version = self.live.version;
        if version.is_none() {
            return;
        }
        let wake_at = self.live.engine.poll_timeout();
        if version == self.published
            && lock::read(&self.shared.snapshot).engine.poll_timeout() == wake_at
        {
            return;
        }
        let snapshot = Arc::new(Snapshot {
            engine: self.live.engine.clone(),
            loaded: true,
        });
        *lock::write(&self.shared.snapshot) = snapshot;
        self.published = version;
    }

    /// Reloads the state if the store's moved on (another node committed) or was never read.
    fn refresh(&mut self) -> Result<(), StoreError> {
        let live = &mut self.live;
        if let Some(version) = live.version
            && self.store.incidents_version()? == version
        {
            return Ok(());
        }
        let snapshot = self.store.load_incidents(RESOLVED_KEPT_MAX)?;
        // The engine's meta, and the time through which alert events have been taken in (a
        // restarted detector's history is not news again).
        let meta: Option<(EngineMeta, AlertWatermark)> = snapshot
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
        live.alerts = meta
            .as_ref()
            .map_or(AlertWatermark::NONE, |(_, alerts)| alerts.clone());
        let engine_meta = meta.map_or(
            EngineMeta {
                next_id: 1,
                evaluated_at: Timestamp::MIN,
                added_silences: Vec::new(),
                next_silence_id: 1,
                surges: Default::default(),
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
}

/// Writes what the last input changed, if anything.
fn commit(
    store: &dyn Store,
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
    if incidents.is_empty() && outbox.is_empty() && meta_key(live) == meta_before && !first_commit {
        return Ok(());
    }
    let commit = IncidentCommit {
        expected_version: live.version.unwrap_or(0),
        meta: revloop_store::encode_incident_meta(&live.engine.meta(), &live.alerts)?,
        incidents,
        timeline,
        outbox,
    };
    let version = store.commit_incidents(&commit)?;
    live.version = Some(version);
    live.stored_entries.extend(stored);
    log_effects(&effects, now);
    Ok(())
}

/// What of the service's meta a step can change besides the clock: a change of it is worth a
/// commit even when no incident changed.
type MetaKey = (AlertWatermark, u64, usize);

fn meta_key(live: &Live) -> MetaKey {
    let (_, added) = live.engine.silences();
    (
        live.alerts.clone(),
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

mod effects;
#[cfg(test)]
mod tests;

use effects::{log_effects, outbox_row};

/// Runs the incident timers until the process ends. Detector ticks feed alerts separately
/// (see [`crate::detection::run`]); this loop asks the service to fire escalations, SLA
/// breaches and resolution checks when they come due, and to pick up what other nodes
/// committed. It only sends and awaits: the service thread does the work.
pub async fn run(incidents: Arc<Incidents>, clock: Arc<dyn Clock>) {
    loop {
        if let Err(err) = incidents.run_timers(clock.now()).await {
            tracing::warn!(error = %err, "incident timers could not commit");
        }
        let wait = incidents.wake_at().map_or(POLL_MS_MAX, |wake| {
            (wake.millis() - clock.now().millis()).clamp(10, POLL_MS_MAX)
        });
        tokio::time::sleep(std::time::Duration::from_millis(wait as u64)).await;
    }
}
