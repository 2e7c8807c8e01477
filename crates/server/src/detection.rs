//! Runs the anomaly detector of `revloop-core` over stored counts, in event time.
//!
//! The detector's whole state is a function of the count history: [`DetectionRunner`] reads
//! counts from the store a day at a time and feeds them to the detector minute by minute, so
//! `replay` can judge weeks in seconds and `serve` can rebuild its baselines and open alerts
//! after a restart by reading the last weeks again. [`Detection`] is the live service: it warms
//! up from history, then judges each minute once it has settled.
//!
//! It never reaches the incidents: [`run`] hands each tick's alert events to whoever started
//! it, and the `event_time` module drives both in event time. Its JSON views belong to the
//! alerts API.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use revloop_core::Config;
use revloop_core::alert::AlertEvent;
use revloop_core::detect::{self, Detector, SeriesReport, SlotBaseline};
use revloop_core::incident::Incident;
use revloop_core::pipeline;
use revloop_core::time::{DurationMs, MS_PER_DAY, Minute, Timestamp};
use revloop_store::{Store, StoreError};

use crate::Clock;

/// Minutes of counts read from the store at once.
pub const READ_CHUNK_MINUTES: i64 = 24 * 60;
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
        let mut start = self.detector.next_minute().unwrap_or(from);
        while start < until {
            let end = start.plus(READ_CHUNK_MINUTES).min(until);
            let mut rows = Vec::with_capacity(self.config.funnels.len());
            for funnel in &self.config.funnels {
                rows.push(store.segment_minute_counts(&funnel.id, start, end)?);
            }
            let mut cursors = vec![0; rows.len()];
            for minute in start.until(end) {
                for (funnel, funnel_rows) in rows.iter().enumerate() {
                    let cursor = &mut cursors[funnel];
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
                let before = events.len();
                self.detector.close_minute(minute, events);
                observe(minute, &self.detector, &events[before..]);
            }
            start = end;
        }
        Ok(())
    }
}

/// The detector as a live service.
pub struct Detection {
    config: Arc<Config>,
    state: Mutex<LiveState>,
    /// Held through a tick, so that the live task and a rebuild request never judge at once.
    ticking: Mutex<()>,
}

struct LiveState {
    runner: DetectionRunner,
    alerts: VecDeque<AlertEvent>,
    /// Alert events before this were found while warming up from history.
    live_since: Option<Timestamp>,
    /// Bumped by a rebuild, so that a tick that started before it does not write back the
    /// state the rebuild threw away.
    generation: u64,
}

impl Detection {
    pub fn new(config: Arc<Config>) -> Detection {
        Detection {
            state: Mutex::new(LiveState {
                runner: DetectionRunner::new(config.clone()),
                alerts: VecDeque::new(),
                live_since: None,
                generation: 0,
            }),
            ticking: Mutex::new(()),
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

    /// Judges every settled minute up to `now`. Blocking: it reads the store.
    pub fn tick(&self, store: &dyn Store, now: Timestamp) -> Result<Vec<AlertEvent>, StoreError> {
        // Every minute judged by `now` is due.
        let until = detect::first_unjudged(now, self.config.detection.settle);
        let from = now
            .saturating_sub(DurationMs::from_millis(self.history_ms()))
            .minute();
        let _ticking = self
            .ticking
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut events = Vec::new();
        let generation = {
            let mut state = self.lock();
            if state.runner.detector().next_minute().is_some() {
                // Minute by minute: judging a minute takes milliseconds even for 100,000
                // series, so readers wait no longer than that.
                state.runner.advance(store, from, until, &mut events)?;
                None
            } else {
                Some(state.generation)
            }
        };
        let mut state = match generation {
            None => self.lock(),
            Some(generation) => {
                // A warm-up reads weeks of history: do it without holding the lock, on a new
                // runner, and swap it in unless a rebuild came in between.
                let mut runner = DetectionRunner::new(self.config.clone());
                runner.advance(store, from, until, &mut events)?;
                let mut state = self.lock();
                if state.generation != generation {
                    return Ok(Vec::new());
                }
                state.runner = runner;
                state
            }
        };
        // Alerts found while warming up are history: the API has them, the log has news.
        let live = state.live_since.is_some();
        for event in &events {
            if live {
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
            if state.alerts.len() == ALERTS_KEPT_MAX {
                state.alerts.pop_front();
            }
            state.alerts.push_back(event.clone());
        }
        state.live_since.get_or_insert(now);
        Ok(events)
    }

    /// Throws the detector's state away and rebuilds it from history at the next tick.
    pub fn rebuild(&self) {
        let mut state = self.lock();
        state.runner = DetectionRunner::new(self.config.clone());
        state.alerts.clear();
        state.live_since = None;
        state.generation += 1;
    }

    pub fn thresholds(&self, funnel: usize) -> Option<revloop_core::detect::Thresholds> {
        self.lock().runner.detector().thresholds(funnel)
    }

    /// When the next minute is due, if any has been judged.
    pub fn wake_at(&self) -> Option<Timestamp> {
        self.lock().runner.detector().wake_at()
    }

    pub fn alerts(&self) -> (Vec<AlertEvent>, Option<Timestamp>) {
        let state = self.lock();
        (state.alerts.iter().cloned().collect(), state.live_since)
    }

    pub fn report(&self, funnel: usize) -> Vec<SeriesReport> {
        self.lock().runner.detector().report(funnel)
    }

    pub fn baseline(
        &self,
        funnel: usize,
        segment: Option<(&str, &str)>,
        stage: usize,
    ) -> Option<Vec<SlotBaseline>> {
        self.lock()
            .runner
            .detector()
            .baseline(funnel, segment, stage)
    }

    /// The latest deviation of an incident's series, for its trend.
    pub fn deviation(&self, incident: &Incident) -> Option<f64> {
        pipeline::deviation(self.lock().runner.detector(), incident)
    }

    pub fn next_minute(&self) -> Option<Minute> {
        self.lock().runner.detector().next_minute()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LiveState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// What the live detector does with a tick's alert events, on the blocking pool: `serve` hands
/// them to the incidents (see `App::serve`).
pub type OnAlerts =
    dyn Fn(&Detection, &[AlertEvent], Timestamp) -> Result<(), StoreError> + Send + Sync;

/// Runs the live detector until the process ends: a tick whenever a minute is due, its alert
/// events handed to `on_alerts`.
pub async fn run(
    detection: Arc<Detection>,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    on_alerts: Arc<OnAlerts>,
) {
    loop {
        let now = clock.now();
        let due = detection.wake_at().is_none_or(|wake| now >= wake);
        if due {
            let (detection, store, on_alerts) =
                (detection.clone(), store.clone(), on_alerts.clone());
            let result = tokio::task::spawn_blocking(move || {
                let events = detection.tick(store.as_ref(), now)?;
                on_alerts(&detection, &events, now)
            })
            .await;
            match result {
                Ok(Ok(())) => {}
                Ok(Err(err)) => tracing::warn!(error = %err, "detection or incidents failed"),
                Err(err) => tracing::error!(error = %err, "detection panicked"),
            }
        }
        let wait = detection.wake_at().map_or(POLL_MS_MAX, |wake| {
            (wake.millis() - clock.now().millis()).clamp(10, POLL_MS_MAX)
        });
        tokio::time::sleep(std::time::Duration::from_millis(wait as u64)).await;
    }
}
