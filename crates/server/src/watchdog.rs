//! The dead man's switch, live: a task that every few seconds gathers what the server can see
//! of itself (how far each funnel has been judged and why it fails, whether the writer
//! commits while ingest waits, whether the incident timers fire), judges it with the core's
//! [`Watch`], and hands the events to the incidents ([`Incidents::feed_guard`]), which commit
//! them like any other step. So a guard incident pages once per episode, across checks,
//! restarts and nodes sharing a database.
//!
//! It reads its observations through [`GuardInputs`] (wired in `App::serve`), so that it does
//! not know the detector's, the writer's or the incidents' insides. It decides nothing itself
//! (the rule is the core's) and never pages by itself: if the incidents cannot commit, no
//! guard incident can either, and the log and `/metrics` are what is left.
//!
//! [`WriterProgress`] turns the writer's counters into times on the server's clock.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use revloop_core::Timestamp;
use revloop_core::incident::{GuardEvent, GuardStatus, Observations, Watch, WriterObservation};
use revloop_store::StoreError;

use crate::Clock;
use crate::incidents::Incidents;

/// How often the watchdog looks. Far below the limit (minutes), so a guard incident opens
/// within seconds of the limit.
pub const CHECK_EVERY_MS: u64 = 2_000;
/// How long (in real time, on the process's monotonic clock) a funnel must be seen blind on
/// every look before the incidents hear of it. The server's clock can jump (a suspended
/// machine, a test's manual clock): right after a jump of hours every funnel is hours behind
/// for the moment it takes the detector to catch up, and that is not blindness.
pub const CONFIRM_BLIND_MS: u64 = 8_000;

/// Where the watchdog reads what it observes at `now`. Blocking calls are allowed: it runs on
/// the blocking pool.
pub trait GuardInputs: Send + Sync + 'static {
    fn observe(&self, now: Timestamp) -> Observations;
}

impl<F: Fn(Timestamp) -> Observations + Send + Sync + 'static> GuardInputs for F {
    fn observe(&self, now: Timestamp) -> Observations {
        self(now)
    }
}

/// The watch, its inputs and the incidents it feeds.
pub struct Watchdog {
    watch: Watch,
    inputs: Box<dyn GuardInputs>,
    incidents: Arc<Incidents>,
    /// The last `judged_until` seen per funnel: a funnel whose detector is rebuilt (warming up
    /// again, `None`) counts as judged until then, not since the process started.
    judged: Mutex<HashMap<String, Timestamp>>,
    /// Since when (real time) each funnel (`None`: every funnel) has been seen blind on every
    /// look.
    blind_seen: Mutex<HashMap<Option<String>, std::time::Instant>>,
}

impl Watchdog {
    pub fn new(watch: Watch, inputs: Box<dyn GuardInputs>, incidents: Arc<Incidents>) -> Watchdog {
        Watchdog {
            watch,
            inputs,
            incidents,
            judged: Mutex::new(HashMap::new()),
            blind_seen: Mutex::new(HashMap::new()),
        }
    }

    /// One look at `now`: the events judged, after the incidents took them. Blocking.
    pub fn check(&self, now: Timestamp) -> Result<Vec<GuardEvent>, StoreError> {
        let mut observations = self.inputs.observe(now);
        {
            let mut judged = self.judged.lock().unwrap_or_else(|p| p.into_inner());
            for funnel in &mut observations.funnels {
                match funnel.judged_until {
                    Some(until) => {
                        let seen = judged.entry(funnel.funnel.clone()).or_insert(until);
                        *seen = (*seen).max(until);
                    }
                    None => funnel.judged_until = judged.get(&funnel.funnel).copied(),
                }
            }
        }
        let events = self.confirmed(self.watch.judge(now, &observations));
        self.incidents.feed_guard(&events, now)?;
        Ok(events)
    }
}

impl Watchdog {
    /// `events` without the blind ones not yet seen blind for [`CONFIRM_BLIND_MS`].
    fn confirmed(&self, events: Vec<GuardEvent>) -> Vec<GuardEvent> {
        let mut blind_seen = self.blind_seen.lock().unwrap_or_else(|p| p.into_inner());
        let blind_now: Vec<Option<String>> = events
            .iter()
            .filter(|e| matches!(e.status, GuardStatus::Blind { .. }))
            .map(|e| e.funnel.clone())
            .collect();
        blind_seen.retain(|funnel, _| blind_now.contains(funnel));
        let confirm = std::time::Duration::from_millis(CONFIRM_BLIND_MS);
        events
            .into_iter()
            .filter(|event| {
                let GuardStatus::Blind { reason, .. } = &event.status else {
                    return true;
                };
                let since = *blind_seen
                    .entry(event.funnel.clone())
                    .or_insert_with(std::time::Instant::now);
                let confirmed = since.elapsed() >= confirm;
                tracing::debug!(
                    funnel = event.incident_funnel(),
                    reason,
                    confirmed,
                    "revloop is blind"
                );
                confirmed
            })
            .collect()
    }
}

/// Runs the watchdog until the process ends.
pub async fn run(watchdog: Arc<Watchdog>, clock: Arc<dyn Clock>) {
    loop {
        let now = clock.now();
        let checking = watchdog.clone();
        match tokio::task::spawn_blocking(move || checking.check(now)).await {
            Ok(Ok(_)) => {}
            Ok(Err(err)) => tracing::warn!(error = %err, "the watchdog could not commit"),
            Err(err) => tracing::error!(error = %err, "the watchdog panicked"),
        }
        tokio::time::sleep(std::time::Duration::from_millis(CHECK_EVERY_MS)).await;
    }
}

/// The writer's progress on the server's clock. The writer counts its commits in wall-clock
/// time (for `/metrics`), which a test's or replay's clock does not share; so a change of that
/// value is taken only as the sign that a group committed, at the time it is first seen.
#[derive(Default)]
pub struct WriterProgress {
    seen: Mutex<Progress>,
}

#[derive(Default)]
struct Progress {
    marker: u64,
    last_commit: Option<Timestamp>,
    waiting_since: Option<Timestamp>,
}

impl WriterProgress {
    /// What the watch needs at `now`, from whether the writer thread lives, a value that
    /// changes with every commit (`commit_marker`, 0 before the first) and the requests
    /// queued. Ingest seen waiting counts as waiting until the next commit: a commit that
    /// fails answers its requests at once, so the queue may look empty between two looks
    /// while nothing commits.
    pub fn observe(
        &self,
        now: Timestamp,
        alive: bool,
        commit_marker: u64,
        queued: u64,
    ) -> WriterObservation {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if commit_marker != seen.marker {
            seen.marker = commit_marker;
            seen.last_commit = Some(now);
            seen.waiting_since = None;
        }
        if queued > 0 && seen.waiting_since.is_none() {
            seen.waiting_since = Some(now);
        }
        WriterObservation {
            alive,
            last_commit: seen.last_commit,
            waiting_since: seen.waiting_since,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writer_progress_is_a_commit_seen_and_ingest_waiting_since_the_last_one() {
        let progress = WriterProgress::default();
        let at = Timestamp::from_millis;
        let look = |now: i64, marker: u64, queued: u64| {
            let observed = progress.observe(at(now), true, marker, queued);
            (
                observed.last_commit.map(Timestamp::millis),
                observed.waiting_since.map(Timestamp::millis),
            )
        };
        assert_eq!(look(1, 0, 0), (None, None));
        assert_eq!(look(2, 0, 3), (None, Some(2)));
        assert_eq!(look(3, 0, 0), (None, Some(2)), "still no commit");
        assert_eq!(look(4, 77, 0), (Some(4), None));
        assert_eq!(look(5, 77, 1), (Some(4), Some(5)));
        assert_eq!(look(6, 78, 1), (Some(6), Some(6)));
    }
}
