//! The dead man's switch: when revloop cannot judge a funnel for longer than a configured
//! time, that is an incident of its own kind ([`AlertKind::Guard`](crate::alert::AlertKind)),
//! so that a blind guard pages someone instead of staying silent.
//!
//! [`Watch::judge`] is the rule. It takes what the server observed at `now` (per funnel: how
//! far it has been judged and why it fails; the writer: its last commit and the oldest waiting
//! ingest; the incident timers: since when one is overdue) and says, per funnel and for the
//! process as a whole, whether revloop is blind ([`GuardStatus::Blind`], with a reason and
//! since when), judging ([`GuardStatus::Judging`]) or not yet known (nothing said: a funnel
//! still warming up within the limit). It is stateless: the same observations at the same time
//! give the same events, on every node and after every restart.
//!
//! The [`IncidentEngine`](super::IncidentEngine) takes the events (`handle_guard`) and keeps at
//! most one open guard incident per funnel and one for causes that blind every funnel. Since
//! the engine's state is what is committed, a guard incident pages once: not at every check
//! (an event that changes nothing is ignored), not again after a restart (the incident is
//! loaded open), and not once per node (the second node finds it open). It resolves when
//! judging resumes: only then, never because a restart has not yet looked long enough.
//!
//! It never reads a clock or the store: the server's watchdog gathers the observations.

use crate::time::{DurationMs, Timestamp};

/// The funnel of a guard incident whose cause blinds every funnel (a dead writer, stalled
/// incident timers).
pub const GUARD_EVERY_FUNNEL: &str = "*";
/// The stage of every guard incident: it concerns the funnel as a whole.
pub const GUARD_STAGE: &str = "*";
/// Longest reason kept, in bytes; a longer error text is cut (on a character boundary).
pub const GUARD_REASON_BYTES_MAX: usize = 500;
/// An open guard incident's cause closes only once no node has said "blind" for this long.
/// Several nodes share the incidents and each runs its own watchdog: one that is blind (its
/// connection broke, its writer died) and one that judges fine must not open and resolve the
/// incident in turn, paging at every reopen. A blind node says so again at least every
/// [`GUARD_BLIND_REFRESH`], well within this.
pub const GUARD_CLEAR_AFTER: DurationMs = DurationMs::from_minutes(2);
/// How often a node still blind records so on the open incident (a small commit), so that
/// another node's "judging" does not close it.
pub const GUARD_BLIND_REFRESH: DurationMs = DurationMs::from_secs(30);

/// The rule's parameters, from the configuration and the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Watch {
    /// Blind for longer than this opens a guard incident (`detection.cannot_judge_after`).
    pub cannot_judge_after: DurationMs,
    /// A minute is judged this long after it ends (`detection.settle`), so a funnel judged
    /// until `t` was last judged at about `t + settle`.
    pub settle: DurationMs,
    /// When this process started watching: a funnel not judged yet counts from here.
    pub started_at: Timestamp,
}

/// What the server saw at one moment.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Observations {
    pub funnels: Vec<FunnelObservation>,
    pub writer: WriterObservation,
    /// The earliest incident timer that is due and has not fired, if any.
    pub timers_due_since: Option<Timestamp>,
}

/// One funnel's judging.
#[derive(Debug, Clone, PartialEq)]
pub struct FunnelObservation {
    pub funnel: String,
    /// The end of the last minute judged live; `None` before the first one (warming up).
    pub judged_until: Option<Timestamp>,
    /// Since when its reads fail, if they do.
    pub failing_since: Option<Timestamp>,
    /// The last error, if its reads fail.
    pub error: Option<String>,
}

/// The group-commit writer's progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriterObservation {
    /// False once the writer thread has ended (returned or panicked).
    pub alive: bool,
    /// When a group last committed, if this process saw one.
    pub last_commit: Option<Timestamp>,
    /// Since when ingest has been waiting for the writer without a commit, if it is.
    pub waiting_since: Option<Timestamp>,
}

impl Default for WriterObservation {
    fn default() -> WriterObservation {
        WriterObservation {
            alive: true,
            last_commit: None,
            waiting_since: None,
        }
    }
}

/// What the watch says about one funnel, or about every funnel at once.
#[derive(Debug, Clone, PartialEq)]
pub struct GuardEvent {
    /// `None`: a cause that blinds every funnel.
    pub funnel: Option<String>,
    pub status: GuardStatus,
}

#[derive(Debug, Clone, PartialEq)]
pub enum GuardStatus {
    /// revloop has been unable to judge since `since`, for longer than the limit.
    Blind { since: Timestamp, reason: String },
    /// Judging, live and on time.
    Judging,
}

impl GuardEvent {
    /// The incident's funnel column for this event: the funnel, or [`GUARD_EVERY_FUNNEL`].
    pub fn incident_funnel(&self) -> &str {
        self.funnel.as_deref().unwrap_or(GUARD_EVERY_FUNNEL)
    }
}

/// The headline of a guard incident: "revloop cannot judge checkout: <reason>".
pub fn guard_headline(funnel: &str, reason: &str) -> String {
    if funnel == GUARD_EVERY_FUNNEL {
        format!("revloop cannot judge any funnel: {reason}")
    } else {
        format!("revloop cannot judge {funnel}: {reason}")
    }
}

impl Watch {
    /// The guard events of `observations` at `now`: one per funnel whose status is known, and
    /// one for the process as a whole (the writer and the incident timers).
    pub fn judge(&self, now: Timestamp, observations: &Observations) -> Vec<GuardEvent> {
        let mut events: Vec<GuardEvent> = observations
            .funnels
            .iter()
            .filter_map(|funnel| {
                self.funnel_status(now, funnel).map(|status| GuardEvent {
                    funnel: Some(funnel.funnel.clone()),
                    status,
                })
            })
            .collect();
        events.push(GuardEvent {
            funnel: None,
            status: self.process_status(now, observations),
        });
        events
    }

    fn blind(&self, now: Timestamp, since: Timestamp) -> bool {
        now.since(since) > self.cannot_judge_after
    }

    fn funnel_status(&self, now: Timestamp, funnel: &FunnelObservation) -> Option<GuardStatus> {
        let since = funnel
            .judged_until
            .map_or(self.started_at, |until| until.saturating_add(self.settle));
        if self.blind(now, since) {
            let reason = match (&funnel.error, funnel.judged_until) {
                (Some(error), _) => match funnel.failing_since {
                    Some(failing) => format!("its reads fail since {failing}: {error}"),
                    None => format!("its reads fail: {error}"),
                },
                (None, Some(until)) => format!("no minute judged after {until}"),
                (None, None) => format!(
                    "nothing judged since revloop started at {} (still warming up)",
                    self.started_at
                ),
            };
            return Some(GuardStatus::Blind {
                since,
                reason: cut(reason),
            });
        }
        // Judging resumed only on the evidence of a live judgement and no failing read; a
        // funnel still warming up within the limit is not known yet, so an open guard
        // incident stays open across a restart.
        (funnel.judged_until.is_some() && funnel.error.is_none()).then_some(GuardStatus::Judging)
    }

    fn process_status(&self, now: Timestamp, observations: &Observations) -> GuardStatus {
        let writer = &observations.writer;
        let mut causes: Vec<(Timestamp, String)> = Vec::new();
        if !writer.alive {
            let since = writer.last_commit.unwrap_or(self.started_at);
            if self.blind(now, since) {
                causes.push((since, "the group-commit writer has stopped".to_owned()));
            }
        } else if let Some(waiting) = writer.waiting_since {
            let since = writer.last_commit.map_or(waiting, |last| last.max(waiting));
            if self.blind(now, since) {
                let last = writer
                    .last_commit
                    .map_or("nothing".to_owned(), |last| format!("nothing since {last}"));
                causes.push((
                    since,
                    format!("the writer has committed {last} while ingest waits since {waiting}"),
                ));
            }
        }
        if let Some(due) = observations.timers_due_since
            && self.blind(now, due)
        {
            causes.push((
                due,
                format!("incident timers due since {due} have not fired"),
            ));
        }
        match causes.iter().map(|(since, _)| *since).min() {
            None => GuardStatus::Judging,
            Some(since) => {
                let reasons: Vec<String> = causes.into_iter().map(|(_, reason)| reason).collect();
                GuardStatus::Blind {
                    since,
                    reason: cut(reasons.join("; ")),
                }
            }
        }
    }
}

/// `reason` within [`GUARD_REASON_BYTES_MAX`], cut on a character boundary.
fn cut(mut reason: String) -> String {
    if reason.len() > GUARD_REASON_BYTES_MAX {
        let mut end = GUARD_REASON_BYTES_MAX - '…'.len_utf8();
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        reason.truncate(end);
        reason.push('…');
    }
    reason
}
