//! Delivering the outbox, the pure part: what a receiver's answer means, when to try again,
//! when a channel's circuit breaker opens, and the message every channel renders. The IO
//! (HTTP, SMTP, leases in the store) is `revloop_server::delivery`'s; docs/delivery.md
//! explains the whole.
//!
//! Nothing here reads a clock or draws randomness: times come in as arguments, and the jitter
//! of a backoff is a `u64` the caller draws.

use crate::incident::IncidentSeverity;
use crate::money::Money;
use crate::time::{DurationMs, Timestamp};

/// Longest receiver response kept with an attempt, in bytes (cut at a char boundary).
pub const RESPONSE_BYTES_MAX: usize = 1_024;
/// Longest wait a `Retry-After` may ask for; a longer one waits this long.
pub const RETRY_AFTER_MAX: DurationMs = DurationMs::from_hours(1);

/// How a channel retries. The defaults are docs/delivery.md's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The wait after the first failure; it doubles with each failure after that.
    pub base: DurationMs,
    /// The longest wait between two attempts.
    pub cap: DurationMs,
    /// After this long since the first attempt, a failing delivery gives up (final failure).
    pub give_up_after: DurationMs,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy {
            base: DurationMs::from_secs(2),
            cap: DurationMs::from_minutes(10),
            give_up_after: DurationMs::from_hours(24),
        }
    }
}

/// What one attempt came to, as the channel's sender judged its receiver's answer
/// ([`classify_http`], [`classify_smtp`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx (HTTP) or 250 (SMTP): done.
    Delivered,
    /// Try again: 5xx, 408, 429, a network error, a timeout, an SMTP 4xx. `retry_after` is
    /// what the receiver asked for (429 or 503 with `Retry-After`), if anything.
    Transient { retry_after: Option<DurationMs> },
    /// Never again: any other 4xx, an SMTP 5xx, a message the receiver can never take.
    Permanent,
}

/// What to do after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    Done,
    RetryAt(Timestamp),
    /// A final failure: permanent, or transient for longer than `give_up_after`.
    GiveUp,
}

/// The HTTP rule: 2xx is done; 4xx is final except 408 and 429; 5xx retries. `retry_after` is
/// the parsed `Retry-After` header.
pub fn classify_http(status: u16, retry_after: Option<DurationMs>) -> Outcome {
    todo!("H3: {status} {retry_after:?}")
}

/// The SMTP rule (RFC 5321): 2xx is done, 4xx is transient, 5xx is permanent.
pub fn classify_smtp(code: u16) -> Outcome {
    todo!("H3: {code}")
}

/// A `Retry-After` header's value: delay-seconds or an HTTP-date (RFC 9110 §10.2.3), as a wait
/// from `now`, at most [`RETRY_AFTER_MAX`]; `None` when unreadable. A date in the past is 0.
pub fn parse_retry_after(value: &str, now: Timestamp) -> Option<DurationMs> {
    todo!("H3: {value} {now:?}")
}

/// When to try again after attempt number `attempts` (1-based) came to `outcome`.
/// Exponential backoff with "equal jitter": the wait is `min(cap, base·2^(attempts−1))`, of
/// which the second half is scaled by `jitter` (any `u64`, uniformly drawn by the caller). A
/// `Retry-After` is honoured as asked (at most [`RETRY_AFTER_MAX`]) instead of the backoff.
/// Gives up once `now` is `give_up_after` past `first_attempt_at`.
pub fn next_attempt(
    policy: &RetryPolicy,
    attempts: u32,
    first_attempt_at: Timestamp,
    now: Timestamp,
    outcome: Outcome,
    jitter: u64,
) -> Next {
    todo!("H3: {policy:?} {attempts} {first_attempt_at:?} {now:?} {outcome:?} {jitter}")
}

/// A channel's circuit breaker: after [`Breaker::FAILURES_TO_OPEN`] failures in a row it
/// opens and the channel sends nothing for `open_for`; then one probe is let through
/// (half-open): a success closes it, a failure opens it again for twice as long (at most
/// [`Breaker::OPEN_MAX`]). Permanent failures (a 4xx) say nothing about the channel's health
/// and do not count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Breaker {
    failures_in_a_row: u32,
    open_until: Option<Timestamp>,
    open_for: DurationMs,
    probing: bool,
}

impl Breaker {
    pub const FAILURES_TO_OPEN: u32 = 5;
    pub const OPEN_MIN: DurationMs = DurationMs::from_secs(30);
    pub const OPEN_MAX: DurationMs = DurationMs::from_minutes(10);

    pub fn new() -> Breaker {
        Breaker {
            failures_in_a_row: 0,
            open_until: None,
            open_for: Breaker::OPEN_MIN,
            probing: false,
        }
    }

    /// Whether an attempt may start now. While half-open, only one at a time: the caller
    /// that got `true` must report its result.
    pub fn allow(&mut self, now: Timestamp) -> bool {
        todo!("H3: {now:?}")
    }

    /// The result of an attempt that [`Breaker::allow`] let through.
    pub fn record(&mut self, now: Timestamp, outcome: Outcome) {
        todo!("H3: {now:?} {outcome:?}")
    }

    /// Open now (sending nothing), and until when.
    pub fn open_until(&self, now: Timestamp) -> Option<Timestamp> {
        self.open_until.filter(|until| *until > now)
    }
}

impl Default for Breaker {
    fn default() -> Breaker {
        Breaker::new()
    }
}

/// Why a message is sent: the kind of its outbox entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageEvent {
    /// A page (an escalation level reached). PagerDuty `trigger`.
    Trigger,
    /// Someone acknowledged it. PagerDuty `acknowledge`.
    Acknowledge,
    /// It was resolved. PagerDuty `resolve`.
    Resolve,
    /// A reminder that a recovered incident is still open. PagerDuty `trigger` (same dedup key:
    /// a no-op on an open PagerDuty incident).
    Remind,
    /// An SLA ran out. PagerDuty `trigger` (same dedup key).
    SlaBreached,
    /// `revloop notify test`: not about an incident.
    Test,
}

impl MessageEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageEvent::Trigger => "trigger",
            MessageEvent::Acknowledge => "acknowledge",
            MessageEvent::Resolve => "resolve",
            MessageEvent::Remind => "remind",
            MessageEvent::SlaBreached => "sla_breached",
            MessageEvent::Test => "test",
        }
    }
}

/// What every channel renders: one outbox entry (or a test), with what a receiver needs to
/// act on it without calling back.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// Stable per outbox entry: `msg-<outbox id>` (`msg-test-<n>` for a test). The webhook
    /// body's `id`.
    pub id: String,
    pub event: MessageEvent,
    /// 0 for a test.
    pub incident: u64,
    pub at: Timestamp,
    /// One line: "P1 conversion incident #12: checkout/payment drop-off 4.2σ below baseline".
    pub title: String,
    /// A few plain-text lines: what happened, the reason, where to look.
    pub text: String,
    pub severity: Option<IncidentSeverity>,
    /// The escalation level a page reached (`L1`, ...).
    pub level: Option<String>,
    pub funnel: Option<String>,
    pub stage: Option<String>,
    pub segment: Option<(String, String)>,
    /// The incident's deviation when the message was written, in σ.
    pub sigma: Option<f64>,
    /// The incident's loss so far, when priced.
    pub loss: Option<Money>,
    /// Who acknowledged or resolved it.
    pub actor: Option<String>,
}
