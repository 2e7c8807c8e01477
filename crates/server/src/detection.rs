//! Runs the anomaly detector of `revloop-core` over stored counts, in event time.
//!
//! The detector's whole state is a function of the count history: [`DetectionRunner`] reads
//! counts from the store a day at a time and feeds them to the detector minute by minute, so
//! `replay` can judge weeks in seconds and `serve` can rebuild its baselines and open alerts
//! after a restart by reading the last weeks again. [`Detection`] is the live service: it warms
//! up, then judges each minute once it has settled.
//!
//! Re-deriving weeks of baselines takes minutes at a hundred thousand series, so the live
//! service also keeps a snapshot of each funnel's state in the store
//! (`revloop_core::detect::snapshot`), saved once the funnel goes live and then every
//! [`SNAPSHOT_EVERY_MINUTES`] judged minutes, and on a clean stop. A (re)start restores the
//! snapshot and reads only the counts after it; a funnel without one, or whose snapshot does
//! not fit (another config or build, older than the history it would need, damaged), warms up
//! from the whole history as before. A rebuild discards the stored snapshots.
//!
//! The live service runs one detector per funnel, so that a failure degrades only what it
//! touches: a failed read of one funnel stops that funnel alone, which retries with an
//! exponential backoff ([`RETRY_BACKOFF_MIN_MS`] doubling to [`RETRY_BACKOFF_MAX_MS`]) from the
//! chunk that failed, while the others keep judging on time. Each funnel says where it stands
//! ([`Detection::status`], [`Detection::judging`]): warming up, live (since the warm-up
//! finished), or failing (since when, how often, the next retry, the error's class).
//!
//! No store read happens under a lock that an async handler takes: a tick reads a chunk of
//! counts holding only its funnel's tick lock (which only ticks take, on blocking threads),
//! and takes the funnel's state lock one minute at a time to judge.
//!
//! It never reaches the incidents: [`run`] hands each tick's alert events to whoever started
//! it, and the `event_time` module drives both in event time. Its JSON views belong to the
//! alerts API.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use revloop_api::detector::{DetectorHealth, JudgingState};

use revloop_core::Config;
use revloop_core::alert::AlertEvent;
use revloop_core::detect::{self, Detector, SeriesReport, SlotBaseline};
use revloop_core::incident::Incident;
use revloop_core::pipeline;
use revloop_core::time::{DurationMs, MS_PER_DAY, Minute, Timestamp};
use revloop_store::{SegmentMinuteCount, Store, StoreError};

use crate::Clock;

mod snapshot;
use snapshot::save_snapshot;

/// Minutes of counts read from the store at once.
pub const READ_CHUNK_MINUTES: i64 = 24 * 60;
/// Judged minutes between two saved snapshots of a funnel's detector: what a restart reads
/// again at most (besides the minutes since the last save).
pub const SNAPSHOT_EVERY_MINUTES: i64 = 15;
/// Alert events kept in memory for the API; older ones are dropped first.
pub const ALERTS_KEPT_MAX: usize = 10_000;
/// Longest wait between two checks of the clock, so that a clock that jumps (a test's manual
/// clock, a suspended laptop) is noticed.
const POLL_MS_MAX: i64 = 1_000;

/// Feeds stored counts to a detector.
#[derive(Clone)]
pub struct DetectionRunner {
    config: Arc<Config>,
    detector: Detector,
}

impl DetectionRunner {
    pub fn new(config: Arc<Config>) -> DetectionRunner {
        let detector = Detector::new(&config);
        DetectionRunner { config, detector }
    }

    /// A runner of one funnel of `config` alone: its detector is that of a config with only
    /// this funnel, whose index in it is 0. Funnels share nothing in the detector (each has
    /// its own series, budgets and thresholds), so it judges exactly as the funnel's part of a
    /// runner of every funnel does.
    pub fn for_funnel(config: &Config, funnel: usize) -> DetectionRunner {
        let mut one = config.clone();
        one.funnels = vec![config.funnels[funnel].clone()];
        DetectionRunner::new(Arc::new(one))
    }

    pub fn detector(&self) -> &Detector {
        &self.detector
    }

    /// Judges every minute from the next one due (or `from`, at the start) up to `until`
    /// (exclusive), appending what happened to `events`.
    pub fn advance(
        &mut self,
        store: &dyn Store,
        from: Minute,
        until: Minute,
        events: &mut Vec<AlertEvent>,
    ) -> Result<(), StoreError> {
        self.advance_observed(store, from, until, events, &mut |_, _, _| {})
    }

    /// As [`DetectionRunner::advance`], calling `observe(minute, detector, its events)` after
    /// each minute is judged: how `replay` runs the incidents minute by minute.
    pub fn advance_observed(
        &mut self,
        store: &dyn Store,
        from: Minute,
        until: Minute,
        events: &mut Vec<AlertEvent>,
        observe: &mut dyn FnMut(Minute, &Detector, &[AlertEvent]),
    ) -> Result<(), StoreError> {
        while let Some((start, end)) = self.next_span(from, until) {
            let mut read = read_counts(&self.config, store, start, end)?;
            for minute in start.until(end) {
                let before = events.len();
                self.judge_minute(&mut read, minute, events);
                observe(minute, &self.detector, &events[before..]);
            }
        }
        Ok(())
    }

    /// The minutes `[start, end)` to read next to judge every minute before `until`, at most
    /// [`READ_CHUNK_MINUTES`]; from `from` when nothing is judged yet. `None` when caught up.
    fn next_span(&self, from: Minute, until: Minute) -> Option<(Minute, Minute)> {
        let start = self.detector.next_minute().unwrap_or(from);
        (start < until).then(|| (start, start.plus(READ_CHUNK_MINUTES).min(until)))
    }

    /// Feeds `minute`'s rows of `read` to the detector and judges the minute.
    fn judge_minute(
        &mut self,
        read: &mut CountsRead,
        minute: Minute,
        events: &mut Vec<AlertEvent>,
    ) {
        for (funnel, funnel_rows) in read.rows.iter().enumerate() {
            let cursor = &mut read.cursors[funnel];
            while let Some(row) = funnel_rows.get(*cursor) {
                if row.minute != minute {
                    break;
                }
                *cursor += 1;
                let segment = row
                    .segment
                    .as_ref()
                    .map(|(dimension, value)| (dimension.as_str(), value.as_str()));
                if let Some(index) = self.detector.segment(funnel, segment) {
                    self.detector.record(funnel, index, row.stage, row.n_events);
                }
            }
        }
        self.detector.close_minute(minute, events);
    }
}

/// The counts of a span of minutes for each funnel of a runner's config, and how far each
/// funnel's rows have been fed.
struct CountsRead {
    rows: Vec<Vec<SegmentMinuteCount>>,
    cursors: Vec<usize>,
}

/// Reads `[start, end)` for every funnel of `config`. The only store IO of detection.
fn read_counts(
    config: &Config,
    store: &dyn Store,
    start: Minute,
    end: Minute,
) -> Result<CountsRead, StoreError> {
    let mut rows = Vec::with_capacity(config.funnels.len());
    for funnel in &config.funnels {
        rows.push(store.segment_minute_counts(&funnel.id, start, end)?);
    }
    let cursors = vec![0; rows.len()];
    Ok(CountsRead { rows, cursors })
}

/// First wait before a funnel whose read failed reads again.
pub const RETRY_BACKOFF_MIN_MS: i64 = 1_000;
/// Longest wait between two reads of a failing funnel: the wait doubles after each failure in
/// a row, up to this. Five minutes keeps a broken store from being hammered, and still notices
/// a healed one well within the dead man's switch's default of ten minutes.
pub const RETRY_BACKOFF_MAX_MS: i64 = 5 * 60_000;
/// The detector's loop counts as stalled when it has made no progress (a loop turn, or a
/// chunk read and judged) for this long, in real time. Its poll interval is [`POLL_MS_MAX`],
/// and a chunk of one funnel takes about a second at 1,000 series.
pub const STALLED_AFTER_S: u64 = 60;

/// The wait before the read after `attempts` failed reads in a row.
pub fn retry_backoff(attempts: u32) -> DurationMs {
    let doublings = attempts.saturating_sub(1).min(20);
    DurationMs::from_millis((RETRY_BACKOFF_MIN_MS << doublings).min(RETRY_BACKOFF_MAX_MS))
}

/// The detector as a live service: one detector per funnel of the config, in its order.
pub struct Detection {
    config: Arc<Config>,
    funnels: Vec<FunnelSlot>,
    alerts: Mutex<AlertLog>,
    /// When this service was made, the origin of `progress_ms`.
    created: Instant,
    /// Milliseconds after `created` of the loop's last progress.
    progress_ms: AtomicU64,
}

struct FunnelSlot {
    id: String,
    /// Held through a tick of this funnel, so that the live task and a rebuild never judge it
    /// at once. Only ticks take it, on blocking threads: never an async handler.
    ticking: Mutex<()>,
    /// What the API reads. Held to judge one minute, or to read a view; never across IO.
    state: Mutex<FunnelLive>,
    /// Failed reads since the process started: a Prometheus counter, never reset.
    read_failures_total: AtomicU64,
}

struct FunnelLive {
    runner: DetectionRunner,
    /// When judging went live: the clock after the warm-up finished.
    live_since: Option<Timestamp>,
    failure: Option<ReadFailure>,
    /// The rebuild this state belongs to (see [`AlertLog::generation`]).
    generation: u64,
    /// Whether the first tick may restore a stored snapshot: not after a rebuild, nor once one
    /// was tried.
    may_restore: bool,
    /// The minute the restored snapshot judged up to; `None` when warmed up from history.
    restored_from: Option<Minute>,
    /// The next minute of the last snapshot saved (or restored); `None` before any.
    saved_until: Option<Minute>,
    /// A rebuild threw the state away: the stored snapshot goes too, before the next tick
    /// judges anything.
    discard_stored: bool,
}

/// A funnel's failed reads in a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadFailure {
    pub since: Timestamp,
    pub attempts: u32,
    pub next_retry_at: Timestamp,
    pub class: FailureClass,
}

/// What kind of failure a read met: what the API says of it (the database's own text is only
/// logged).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureClass {
    /// Busy, locked, no free connection, or the connection lost: likely to pass.
    Unavailable,
    Io,
    /// The store panicked.
    Panic,
    UnknownFunnel,
    /// Any other error of the database.
    Store,
}

impl FailureClass {
    fn of(err: &StoreError) -> FailureClass {
        match err {
            _ if err.is_transient() => FailureClass::Unavailable,
            StoreError::Io(_) => FailureClass::Io,
            StoreError::UnknownFunnel(_) => FailureClass::UnknownFunnel,
            _ => FailureClass::Store,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            FailureClass::Unavailable => "store_unavailable",
            FailureClass::Io => "store_io",
            FailureClass::Panic => "store_panic",
            FailureClass::UnknownFunnel => "unknown_funnel",
            FailureClass::Store => "store_error",
        }
    }

    pub fn summary(self) -> &'static str {
        match self {
            FailureClass::Unavailable => "the store was busy or unreachable while reading counts",
            FailureClass::Io => "the store met an IO error while reading counts",
            FailureClass::Panic => "reading counts from the store panicked",
            FailureClass::UnknownFunnel => "the store does not know this funnel",
            FailureClass::Store => "the store failed to read counts",
        }
    }
}

/// The alert events of the live detector, for the API.
struct AlertLog {
    events: VecDeque<AlertEvent>,
    /// Bumped by a rebuild, so that a tick that started before it does not write back the
    /// state or the events the rebuild threw away.
    generation: u64,
}

/// What one tick judged: the alert events, and the funnels whose read failed.
#[derive(Default)]
pub struct Tick {
    pub events: Vec<AlertEvent>,
    pub failures: Vec<(String, StoreError)>,
}

impl Tick {
    /// The events, or the first failure: for a caller that needs every funnel judged.
    pub fn into_result(self) -> Result<Vec<AlertEvent>, StoreError> {
        match self.failures.into_iter().next() {
            Some((_, err)) => Err(err),
            None => Ok(self.events),
        }
    }
}

/// Where one funnel stands, as [`Detection::status`] reports it.
#[derive(Debug, Clone)]
pub struct FunnelStatus {
    pub funnel: String,
    /// When judging went live; `None` while warming up.
    pub live_since: Option<Timestamp>,
    /// The first minute not yet judged; `None` before any.
    pub judged_until: Option<Minute>,
    pub failure: Option<ReadFailure>,
    pub read_failures_total: u64,
    /// The minute its restored snapshot had judged up to; `None` when it warmed up from the
    /// history (or is still warming up).
    pub restored_from: Option<Minute>,
}

impl FunnelStatus {
    pub fn state(&self) -> JudgingState {
        match (&self.failure, self.live_since) {
            (Some(_), _) => JudgingState::Failing,
            (None, Some(_)) => JudgingState::Live,
            (None, None) => JudgingState::WarmingUp,
        }
    }

    /// Now minus the end of the last judged minute.
    pub fn lag(&self, now: Timestamp) -> Option<DurationMs> {
        self.judged_until.map(|next| now.since(next.start()))
    }
}

/// Whether one funnel is being judged: what the dead man's switch reads
/// ([`Detection::judging`]).
#[derive(Debug, Clone, PartialEq)]
pub struct FunnelJudging {
    pub funnel: String,
    /// Its warm-up has finished and its last read succeeded.
    pub live: bool,
    /// The first minute not yet judged; `None` until the funnel first went live.
    pub judged_until: Option<Minute>,
    /// When the failed reads in a row began; `None` unless failing.
    pub failing_since: Option<Timestamp>,
    /// The failure's summary (no database text); `None` unless failing.
    pub error: Option<String>,
}

/// The detector as a whole, as `/readyz` reads it.
#[derive(Debug, Clone)]
pub struct Health {
    pub state: DetectorHealth,
    /// Real time since the loop last made progress.
    pub progress_age: std::time::Duration,
    /// The funnels failing now.
    pub failing: Vec<String>,
}

impl Detection {
    pub fn new(config: Arc<Config>) -> Detection {
        let funnels = (0..config.funnels.len())
            .map(|index| FunnelSlot {
                id: config.funnels[index].id.clone(),
                ticking: Mutex::new(()),
                state: Mutex::new(FunnelLive::new(&config, index, 0, true)),
                read_failures_total: AtomicU64::new(0),
            })
            .collect();
        Detection {
            funnels,
            alerts: Mutex::new(AlertLog {
                events: VecDeque::new(),
                generation: 0,
            }),
            created: Instant::now(),
            progress_ms: AtomicU64::new(0),
            config,
        }
    }

    /// How far back a (re)start reads: enough for every slot of the baselines, plus a day.
    pub fn history_ms(&self) -> i64 {
        let detection = &self.config.detection;
        i64::from(detection.baseline_weeks) * 7 * MS_PER_DAY
            + detection.learning.millis().max(0)
            + MS_PER_DAY
    }

    /// Judges every settled minute up to `now` of every funnel that is not waiting for a retry.
    /// Blocking: it reads the store. A funnel whose read fails keeps what it judged, records
    /// the failure (and when to retry) and is listed in the tick's failures; the others go on.
    /// `clock` stamps when a funnel's warm-up finished.
    pub fn tick(&self, store: &dyn Store, now: Timestamp, clock: &dyn Fn() -> Timestamp) -> Tick {
        self.tick_funnels(0..self.funnels.len(), store, now, clock)
    }

    /// As [`Detection::tick`], for one funnel (by index in the config): what each funnel's own
    /// loop in [`run`] calls, so that a slow read of one funnel delays no other.
    pub fn tick_funnel_at(
        &self,
        funnel: usize,
        store: &dyn Store,
        now: Timestamp,
        clock: &dyn Fn() -> Timestamp,
    ) -> Tick {
        self.tick_funnels(funnel..funnel + 1, store, now, clock)
    }

    fn tick_funnels(
        &self,
        funnels: std::ops::Range<usize>,
        store: &dyn Store,
        now: Timestamp,
        clock: &dyn Fn() -> Timestamp,
    ) -> Tick {
        let until = detect::first_unjudged(now, self.config.detection.settle);
        let from = now
            .saturating_sub(DurationMs::from_millis(self.history_ms()))
            .minute();
        let generation = self.alert_log().generation;
        let mut tick = Tick::default();
        for slot in self.funnels.get(funnels).unwrap_or_default() {
            let mut events = Vec::new();
            let span = Span {
                from,
                until,
                now,
                generation,
            };
            match self.tick_funnel(slot, store, span, clock, &mut events) {
                Ok(()) => {}
                Err(err) => tick.failures.push((slot.id.clone(), err)),
            }
            tick.events.append(&mut events);
        }
        tick.events.sort_by_key(|event| event.at);
        let mut log = self.alert_log();
        if log.generation == generation {
            for event in &tick.events {
                if log.events.len() == ALERTS_KEPT_MAX {
                    log.events.pop_front();
                }
                log.events.push_back(event.clone());
            }
        }
        tick
    }

    /// One funnel's part of a tick: chunk by chunk, each read without the state lock, each
    /// minute judged under it.
    fn tick_funnel(
        &self,
        slot: &FunnelSlot,
        store: &dyn Store,
        span: Span,
        clock: &dyn Fn() -> Timestamp,
        events: &mut Vec<AlertEvent>,
    ) -> Result<(), StoreError> {
        let _ticking = slot
            .ticking
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let (config, was_live) = {
            let state = slot.lock();
            let waiting = state
                .failure
                .is_some_and(|failure| span.now < failure.next_retry_at);
            if state.generation != span.generation || waiting {
                return Ok(());
            }
            (state.runner.config.clone(), state.live_since.is_some())
        };
        if let Err((err, class)) = self.restore_funnel(slot, store, span, &config) {
            record_failure(slot, span.generation, clock(), class, &err.to_string());
            return Err(err);
        }
        loop {
            let next = {
                let state = slot.lock();
                if state.generation != span.generation {
                    return Ok(());
                }
                state.runner.next_span(span.from, span.until)
            };
            let Some((start, end)) = next else { break };
            let read = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                read_counts(&config, store, start, end)
            }));
            let mut read = match read {
                Ok(Ok(read)) => read,
                Ok(Err(err)) => {
                    let class = FailureClass::of(&err);
                    record_failure(slot, span.generation, clock(), class, &err.to_string());
                    return Err(err);
                }
                Err(_) => {
                    let err = StoreError::Io("reading counts panicked".to_owned());
                    let class = FailureClass::Panic;
                    record_failure(slot, span.generation, clock(), class, "the read panicked");
                    return Err(err);
                }
            };
            for minute in start.until(end) {
                let mut state = slot.lock();
                if state.generation != span.generation {
                    return Ok(());
                }
                let before = events.len();
                state.runner.judge_minute(&mut read, minute, events);
                if was_live {
                    log_alerts(&events[before..]);
                }
            }
            self.progress();
        }
        let mut state = slot.lock();
        if state.generation != span.generation {
            return Ok(());
        }
        if let Some(failure) = state.failure.take() {
            tracing::info!(funnel = %slot.id, attempts = failure.attempts, "detection resumed");
        }
        if state.live_since.is_none() {
            let live_since = clock();
            tracing::info!(funnel = %slot.id, %live_since, "detection is live");
            state.live_since = Some(live_since);
        }
        drop(state);
        save_snapshot(
            slot,
            store,
            span.generation,
            clock(),
            SNAPSHOT_EVERY_MINUTES,
        );
        Ok(())
    }

    /// Throws the detector's state away and rebuilds it from history at the next tick.
    pub fn rebuild(&self) {
        let mut log = self.alert_log();
        log.generation += 1;
        log.events.clear();
        for (index, slot) in self.funnels.iter().enumerate() {
            *slot.lock() = FunnelLive::new(&self.config, index, log.generation, false);
        }
    }

    /// Marks progress of the loop: `/readyz` calls a loop without any for
    /// [`STALLED_AFTER_S`] stalled.
    pub fn progress(&self) {
        let ms = self.created.elapsed().as_millis() as u64;
        self.progress_ms.fetch_max(ms, Ordering::Relaxed);
    }

    /// When the next funnel is due: its next minute's judging time, or its next retry. `None`
    /// when one is due now (it has judged nothing and is not waiting to retry).
    pub fn due_at(&self) -> Option<Timestamp> {
        let mut due: Option<Timestamp> = None;
        for funnel in 0..self.funnels.len() {
            let at = self.funnel_due_at(funnel)?;
            due = Some(due.map_or(at, |due| due.min(at)));
        }
        due
    }

    /// When one funnel (by index in the config) is next due; `None` when it is due now.
    pub fn funnel_due_at(&self, funnel: usize) -> Option<Timestamp> {
        let state = self.funnels.get(funnel)?.lock();
        match state.failure {
            Some(failure) => Some(failure.next_retry_at),
            None => state.runner.detector().wake_at(),
        }
    }

    /// How many funnels it judges.
    pub fn funnel_count(&self) -> usize {
        self.funnels.len()
    }

    /// Where every funnel stands, in the config's order.
    pub fn status(&self) -> Vec<FunnelStatus> {
        self.funnels.iter().map(|slot| slot.status()).collect()
    }

    /// Where one funnel stands, by index in the config.
    pub fn funnel_status(&self, funnel: usize) -> Option<FunnelStatus> {
        self.funnels.get(funnel).map(FunnelSlot::status)
    }

    /// Whether each funnel is being judged, in the config's order: what the dead man's switch
    /// reads. A funnel is `live` once its warm-up finished and while its reads succeed; a
    /// stalled loop shows as a `judged_until` falling behind the clock, which this does not
    /// judge. A funnel still in its first warm-up has no `judged_until`: the minutes it judged
    /// are history, not a sign of being blind.
    pub fn judging(&self) -> Vec<FunnelJudging> {
        self.status()
            .into_iter()
            .map(|status| FunnelJudging {
                live: status.state() == JudgingState::Live,
                judged_until: status.live_since.and(status.judged_until),
                failing_since: status.failure.map(|failure| failure.since),
                error: status
                    .failure
                    .map(|failure| failure.class.summary().to_owned()),
                funnel: status.funnel,
            })
            .collect()
    }

    /// The detector as a whole. Stalled wins over warming up: a loop that makes no progress
    /// will not finish a warm-up either.
    pub fn health(&self) -> Health {
        let status = self.status();
        let progress_age = self.progress_age();
        let state = if progress_age.as_secs() >= STALLED_AFTER_S {
            DetectorHealth::Stalled
        } else if status.iter().any(|s| s.state() == JudgingState::WarmingUp) {
            DetectorHealth::WarmingUp
        } else {
            DetectorHealth::Live
        };
        let failing = status
            .iter()
            .filter(|s| s.failure.is_some())
            .map(|s| s.funnel.clone())
            .collect();
        Health {
            state,
            progress_age,
            failing,
        }
    }

    /// Real time since the loop's last progress (since this service was made, before any).
    pub fn progress_age(&self) -> std::time::Duration {
        let last = std::time::Duration::from_millis(self.progress_ms.load(Ordering::Relaxed));
        self.created.elapsed().saturating_sub(last)
    }

    /// When the last funnel to go live did, while none is warming up (a funnel failing in its
    /// warm-up does not hold this back: it shows as failing).
    pub fn live_since(&self) -> Option<Timestamp> {
        let status = self.status();
        if status.iter().any(|s| s.state() == JudgingState::WarmingUp) {
            return None;
        }
        status.iter().filter_map(|s| s.live_since).max()
    }

    pub fn thresholds(&self, funnel: usize) -> Option<revloop_core::detect::Thresholds> {
        self.funnels
            .get(funnel)?
            .lock()
            .runner
            .detector()
            .thresholds(0)
    }

    pub fn alerts(&self) -> (Vec<AlertEvent>, Option<Timestamp>) {
        let events = self.alert_log().events.iter().cloned().collect();
        (events, self.live_since())
    }

    pub fn report(&self, funnel: usize) -> Vec<SeriesReport> {
        match self.funnels.get(funnel) {
            Some(slot) => slot.lock().runner.detector().report(0),
            None => Vec::new(),
        }
    }

    pub fn baseline(
        &self,
        funnel: usize,
        segment: Option<(&str, &str)>,
        stage: usize,
    ) -> Option<Vec<SlotBaseline>> {
        self.funnels
            .get(funnel)?
            .lock()
            .runner
            .detector()
            .baseline(0, segment, stage)
    }

    /// The latest deviation of an incident's series, for its trend.
    pub fn deviation(&self, incident: &Incident) -> Option<f64> {
        let slot = self
            .funnels
            .iter()
            .find(|slot| slot.id == incident.funnel)?;
        pipeline::deviation(slot.lock().runner.detector(), incident)
    }

    /// An incident's series in its funnel's last judged minute, priced at `aov`, for its
    /// revenue impact.
    pub fn impact(
        &self,
        incident: &Incident,
        now: Timestamp,
        aov: revloop_core::impact::Aov,
    ) -> Option<revloop_core::impact::ImpactMinute> {
        let slot = self
            .funnels
            .iter()
            .find(|slot| slot.id == incident.funnel)?;
        pipeline::impact(slot.lock().runner.detector(), incident, now, aov)
    }

    /// The first minute not yet judged by every funnel: `None` while any has judged none.
    pub fn next_minute(&self) -> Option<Minute> {
        let mut first: Option<Minute> = None;
        for slot in &self.funnels {
            let next = slot.lock().runner.detector().next_minute()?;
            first = Some(first.map_or(next, |first| first.min(next)));
        }
        first
    }

    /// The first minute one funnel has not judged yet.
    pub fn funnel_next_minute(&self, funnel: usize) -> Option<Minute> {
        self.funnels
            .get(funnel)?
            .lock()
            .runner
            .detector()
            .next_minute()
    }

    fn alert_log(&self) -> std::sync::MutexGuard<'_, AlertLog> {
        self.alerts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// What a tick judges: every minute from `from` (or the next one due) before `until`, of the
/// state of `generation`, with `now` the tick's time.
#[derive(Debug, Clone, Copy)]
struct Span {
    from: Minute,
    until: Minute,
    now: Timestamp,
    generation: u64,
}

impl FunnelLive {
    fn new(config: &Config, funnel: usize, generation: u64, may_restore: bool) -> FunnelLive {
        FunnelLive {
            runner: DetectionRunner::for_funnel(config, funnel),
            live_since: None,
            failure: None,
            generation,
            may_restore,
            restored_from: None,
            saved_until: None,
            discard_stored: !may_restore,
        }
    }
}

impl FunnelSlot {
    fn lock(&self) -> std::sync::MutexGuard<'_, FunnelLive> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn status(&self) -> FunnelStatus {
        let state = self.lock();
        FunnelStatus {
            funnel: self.id.clone(),
            live_since: state.live_since,
            judged_until: state.runner.detector().next_minute(),
            failure: state.failure,
            read_failures_total: self.read_failures_total.load(Ordering::Relaxed),
            restored_from: state.restored_from,
        }
    }
}

/// Records a failed read of a funnel at `now` (the clock when it failed, so that a read that
/// failed late in a long tick still waits its backoff) and when to retry.
fn record_failure(
    slot: &FunnelSlot,
    generation: u64,
    now: Timestamp,
    class: FailureClass,
    text: &str,
) {
    slot.read_failures_total.fetch_add(1, Ordering::Relaxed);
    let mut state = slot.lock();
    if state.generation != generation {
        return;
    }
    let (since, attempts) = match state.failure {
        Some(failure) => (failure.since, failure.attempts.saturating_add(1)),
        None => (now, 1),
    };
    let backoff = retry_backoff(attempts);
    let next_retry_at = now.saturating_add(backoff);
    tracing::warn!(
        funnel = %slot.id,
        attempts,
        retry_in_ms = backoff.millis(),
        class = class.as_str(),
        error = %text,
        "detection of this funnel failed to read counts; the others go on"
    );
    state.failure = Some(ReadFailure {
        since,
        attempts,
        next_retry_at,
        class,
    });
}

/// Alerts judged live are news: the log has them (those found while warming up are history,
/// which the API has).
fn log_alerts(events: &[AlertEvent]) {
    for event in events {
        tracing::info!(
            funnel = %event.funnel,
            stage = %event.stage,
            kind = event.kind.as_str(),
            severity = event.severity.as_str(),
            event = event.event.as_str(),
            sigma = format_args!("{:.1}", event.sigma),
            "alert"
        );
    }
}

/// What the live detector does with a tick's alert events, on the blocking pool: `serve` hands
/// them to the incidents (see `App::serve`).
pub type OnAlerts =
    dyn Fn(&Detection, &[AlertEvent], Timestamp) -> Result<(), StoreError> + Send + Sync;

/// Runs the live detector until the process ends (or this future is dropped, which stops
/// every loop): one loop per funnel, each ticking its funnel whenever it is due and handing the
/// alert events to `on_alerts`, so that a read that hangs (up to the store's statement limit)
/// delays only its own funnel. A funnel's failed read is recorded on its status by the tick
/// itself; its loop goes on.
pub async fn run(
    detection: Arc<Detection>,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    on_alerts: Arc<OnAlerts>,
) {
    let mut loops = tokio::task::JoinSet::new();
    for funnel in 0..detection.funnel_count() {
        loops.spawn(run_funnel(
            funnel,
            detection.clone(),
            store.clone(),
            clock.clone(),
            on_alerts.clone(),
        ));
    }
    if loops.is_empty() {
        // No funnel: nothing to judge, but the loop is alive.
        loop {
            detection.progress();
            tokio::time::sleep(std::time::Duration::from_millis(POLL_MS_MAX as u64)).await;
        }
    }
    while loops.join_next().await.is_some() {}
}

async fn run_funnel(
    funnel: usize,
    detection: Arc<Detection>,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    on_alerts: Arc<OnAlerts>,
) {
    loop {
        detection.progress();
        let now = clock.now();
        let due = detection.funnel_due_at(funnel).is_none_or(|at| now >= at);
        if due {
            let (detection, store, clock, on_alerts) = (
                detection.clone(),
                store.clone(),
                clock.clone(),
                on_alerts.clone(),
            );
            let result = tokio::task::spawn_blocking(move || {
                let tick = detection.tick_funnel_at(funnel, store.as_ref(), now, &|| clock.now());
                on_alerts(&detection, &tick.events, now)
            })
            .await;
            match result {
                Ok(Ok(())) => {}
                Ok(Err(err)) => tracing::warn!(error = %err, "handing alerts to incidents failed"),
                Err(err) => tracing::error!(error = %err, "detection panicked"),
            }
        }
        let wait = detection.funnel_due_at(funnel).map_or(POLL_MS_MAX, |at| {
            (at.millis() - clock.now().millis()).clamp(10, POLL_MS_MAX)
        });
        tokio::time::sleep(std::time::Duration::from_millis(wait as u64)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A loop without progress for [`STALLED_AFTER_S`] is stalled, whatever the funnels say;
    /// one turn of it makes it merely warming up again.
    #[test]
    fn a_loop_without_progress_is_stalled() {
        let config = Arc::new(Config::parse(Config::example_toml()).unwrap());
        let mut detection = Detection::new(config);
        assert_eq!(detection.health().state, DetectorHealth::WarmingUp);
        let long_ago = std::time::Duration::from_secs(STALLED_AFTER_S + 1);
        let created = Instant::now()
            .checked_sub(long_ago)
            .expect("the monotonic clock started more than a minute ago");
        detection.created = created;
        let health = detection.health();
        assert_eq!(health.state, DetectorHealth::Stalled);
        assert!(health.progress_age >= long_ago, "{health:?}");
        detection.progress();
        assert_eq!(detection.health().state, DetectorHealth::WarmingUp);
    }
}
