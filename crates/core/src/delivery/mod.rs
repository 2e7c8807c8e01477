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
    match status {
        200..=299 => Outcome::Delivered,
        408 | 429 => Outcome::Transient { retry_after },
        // A 1xx or 3xx as a final answer means the receiver did not take the message, and
        // asking again will not change that: a redirect is not followed (the URL is config).
        100..=199 | 300..=499 => Outcome::Permanent,
        500..=599 => Outcome::Transient { retry_after },
        // Not an HTTP status at all: a broken receiver or proxy, which may come back.
        _ => Outcome::Transient { retry_after: None },
    }
}

/// The SMTP rule (RFC 5321): 2xx is done, 4xx is transient, 5xx is permanent.
pub fn classify_smtp(code: u16) -> Outcome {
    match code {
        200..=299 => Outcome::Delivered,
        500..=599 => Outcome::Permanent,
        // 4xx is transient by definition; anything else is a server not speaking SMTP right
        // now, which may come back.
        _ => Outcome::Transient { retry_after: None },
    }
}

/// A `Retry-After` header's value: delay-seconds or an HTTP-date (RFC 9110 §10.2.3), as a wait
/// from `now`, at most [`RETRY_AFTER_MAX`]; `None` when unreadable. A date in the past is 0.
pub fn parse_retry_after(value: &str, now: Timestamp) -> Option<DurationMs> {
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    if value.bytes().all(|byte| byte.is_ascii_digit()) {
        // Too many digits to fit is still a (very long) wait: it is capped, not unreadable.
        let seconds = value.parse::<i64>().unwrap_or(i64::MAX);
        let millis = seconds.saturating_mul(crate::time::MS_PER_SECOND);
        return Some(DurationMs::from_millis(
            millis.min(RETRY_AFTER_MAX.millis()),
        ));
    }
    // RFC 9110 requires senders to use IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT"), which is
    // RFC 2822's syntax with the obsolete `GMT` zone; the parser is lenient about the weekday
    // because a wrong weekday does not make the instant ambiguous.
    let parser = jiff::fmt::rfc2822::DateTimeParser::new().relaxed_weekday(true);
    let date = parser.parse_timestamp(value).ok()?;
    let wait_ms = date.as_millisecond().saturating_sub(now.millis());
    Some(DurationMs::from_millis(
        wait_ms.clamp(0, RETRY_AFTER_MAX.millis()),
    ))
}

/// The backoff after attempt number `attempts` (1-based; 0 counts as 1):
/// `min(cap, base·2^(attempts−1))`, never negative.
pub fn backoff(policy: &RetryPolicy, attempts: u32) -> DurationMs {
    let base_ms = policy.base.millis().max(0);
    let cap_ms = policy.cap.millis().max(0);
    let doublings = attempts.saturating_sub(1).min(62);
    let backoff_ms = base_ms.saturating_mul(1_i64 << doublings);
    DurationMs::from_millis(backoff_ms.min(cap_ms))
}

/// Equal jitter: the first half of `backoff` always, the second half scaled by
/// `jitter / u64::MAX`. The result is in `[backoff/2, backoff]`.
fn equal_jitter(backoff: DurationMs, jitter: u64) -> DurationMs {
    let backoff_ms = backoff.millis().max(0);
    let half_ms = backoff_ms / 2;
    let rest_ms = backoff_ms - half_ms;
    // u128 so that the product cannot overflow; the quotient is at most `rest_ms`.
    let scaled = (rest_ms as u128 * u128::from(jitter)) / u128::from(u64::MAX);
    let jittered_ms = i64::try_from(scaled).unwrap_or(rest_ms).min(rest_ms);
    DurationMs::from_millis(half_ms + jittered_ms)
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
    let retry_after = match outcome {
        Outcome::Delivered => return Next::Done,
        Outcome::Permanent => return Next::GiveUp,
        Outcome::Transient { retry_after } => retry_after,
    };
    if now.since(first_attempt_at) >= policy.give_up_after {
        return Next::GiveUp;
    }
    let wait = match retry_after {
        Some(asked) => DurationMs::from_millis(asked.millis().clamp(0, RETRY_AFTER_MAX.millis())),
        None => equal_jitter(backoff(policy, attempts), jitter),
    };
    Next::RetryAt(now.saturating_add(wait))
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
    /// A paging channel is probed at least once a minute however long it has been down, so
    /// that it drains soon after its receiver is back.
    pub const OPEN_MAX: DurationMs = DurationMs::from_minutes(1);

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
        match self.open_until {
            None => true,
            Some(until) if now < until => false,
            // Half-open: the first caller after the open spell is the probe.
            Some(_) if self.probing => false,
            Some(_) => {
                self.probing = true;
                true
            }
        }
    }

    /// The result of an attempt that [`Breaker::allow`] let through.
    pub fn record(&mut self, now: Timestamp, outcome: Outcome) {
        match outcome {
            Outcome::Delivered => *self = Breaker::new(),
            Outcome::Permanent => {
                // The receiver answered, but a refusal of one message says nothing about the
                // channel: a probe that got one frees the slot so that the next one probes.
                self.probing = false;
            }
            Outcome::Transient { .. } if self.probing => {
                self.probing = false;
                let doubled_ms = self.open_for.millis().saturating_mul(2);
                self.open_for = DurationMs::from_millis(doubled_ms.min(Breaker::OPEN_MAX.millis()));
                self.open_until = Some(now.saturating_add(self.open_for));
            }
            // An attempt that started before the breaker opened and failed after: the
            // breaker already knows, and its open spell is not stretched.
            Outcome::Transient { .. } if self.open_until.is_some() => {}
            Outcome::Transient { .. } => {
                self.failures_in_a_row = self.failures_in_a_row.saturating_add(1);
                if self.failures_in_a_row >= Breaker::FAILURES_TO_OPEN {
                    self.open_until = Some(now.saturating_add(self.open_for));
                }
            }
        }
    }

    /// Whether the breaker has opened since the channel's last success (it is open or
    /// half-open): the channel was down, and a success now means it is back, so its backlog
    /// may go at once. A few failures of single messages do not count.
    pub fn has_opened(&self) -> bool {
        self.open_until.is_some() || self.probing
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

#[cfg(test)]
mod tests;
