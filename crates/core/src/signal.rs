//! Technical signals from other monitoring (Prometheus Alertmanager alerts, PagerDuty-style
//! events): payment gateway errors, latency, CDN trouble. This module owns when a signal bears
//! on a revenue incident and which technical items of the root-cause checklist it speaks to.
//! It never parses a wire format and never reads the clock: `now` is an argument.

use crate::incident::CHECKLIST;
use crate::time::{DurationMs, Timestamp};

/// How long before an incident's onset a signal may start and still bear on it: trouble
/// elsewhere usually shows a few minutes before shoppers stop converting.
pub const SIGNAL_LEAD: DurationMs = DurationMs::from_minutes(10);

/// A firing signal not heard of again for this long is taken to have ended this long after it
/// was last received: a lost resolve (or `send_resolved = false`) must not leave a signal
/// attaching to every later incident. Alertmanager re-sends a firing group every
/// `repeat_interval` (4 h by default), which keeps a signal that still fires alive.
pub const SIGNAL_STALE_AFTER: DurationMs = DurationMs::from_hours(24);

/// When a signal ended, as attaching reads it: its end, or for a firing signal last received
/// over [`SIGNAL_STALE_AFTER`] before `now`, that long after it was last received; `None`
/// while it fires.
pub fn effective_end(
    ends_at: Option<Timestamp>,
    last_received: Timestamp,
    now: Timestamp,
) -> Option<Timestamp> {
    ends_at.or_else(|| {
        let stale_at = last_received.saturating_add(SIGNAL_STALE_AFTER);
        (stale_at < now).then_some(stale_at)
    })
}

/// Whether a signal is still going on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SignalStatus {
    Firing,
    Resolved,
}

impl SignalStatus {
    /// The stable name, as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            SignalStatus::Firing => "firing",
            SignalStatus::Resolved => "resolved",
        }
    }

    pub fn parse(text: &str) -> Option<SignalStatus> {
        [SignalStatus::Firing, SignalStatus::Resolved]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// Which inbound endpoint a signal came through; its key is unique within its source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SignalSource {
    /// An Alertmanager webhook alert, keyed by its fingerprint.
    Alertmanager,
    /// A PagerDuty-Events-v2-shaped event, keyed by its dedup key.
    Events,
}

impl SignalSource {
    /// The stable name, as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            SignalSource::Alertmanager => "alertmanager",
            SignalSource::Events => "events",
        }
    }

    pub fn parse(text: &str) -> Option<SignalSource> {
        [SignalSource::Alertmanager, SignalSource::Events]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// What attaching needs of a signal: its span and the funnel and stage its labels name.
#[derive(Debug, Clone, Copy)]
pub struct SignalSpan<'a> {
    pub starts_at: Timestamp,
    /// `None` while it fires.
    pub ends_at: Option<Timestamp>,
    pub funnel: Option<&'a str>,
    pub stage: Option<&'a str>,
}

/// What attaching needs of an incident. A funnel or stage of `*` (a guard incident: revloop
/// itself is blind) matches every signal's.
#[derive(Debug, Clone, Copy)]
pub struct IncidentSpan<'a> {
    pub funnel: &'a str,
    pub stage: &'a str,
    pub onset: Timestamp,
    /// `None` while it is open.
    pub resolved_at: Option<Timestamp>,
}

impl IncidentSpan<'_> {
    /// The earliest instant a signal may overlap to bear on the incident.
    pub fn from(&self) -> Timestamp {
        self.onset.saturating_sub(SIGNAL_LEAD)
    }
}

/// Whether a signal bears on an incident at `now`: `[starts_at, ends_at or now]` overlaps
/// `[onset − SIGNAL_LEAD, resolved_at or now]`, and the funnel and stage the signal names (where
/// it names them) are the incident's.
pub fn attaches(signal: &SignalSpan, incident: &IncidentSpan, now: Timestamp) -> bool {
    let signal_end = signal.ends_at.unwrap_or(now);
    let incident_end = incident.resolved_at.unwrap_or(now);
    let overlaps = signal.starts_at <= incident_end && signal_end >= incident.from();
    let same = |named: Option<&str>, of_incident: &str| {
        of_incident == "*" || named.is_none_or(|n| n == of_incident)
    };
    overlaps && same(signal.funnel, incident.funnel) && same(signal.stage, incident.stage)
}

/// The words that tie a signal to each technical checklist item, by the item's text.
const TECHNICAL_WORDS: [(&str, &[&str]); 5] = [
    (
        "Page load time performance",
        &[
            "page", "pageload", "lcp", "ttfb", "frontend", "web", "vitals", "render",
        ],
    ),
    (
        "API response times and error rates",
        &[
            "api", "latency", "error", "errors", "5xx", "timeout", "timeouts", "http", "slow",
        ],
    ),
    (
        "Payment processor integration status",
        &[
            "payment",
            "payments",
            "gateway",
            "psp",
            "processor",
            "stripe",
            "adyen",
            "card",
            "paypal",
        ],
    ),
    (
        "CDN and infrastructure health",
        &[
            "cdn",
            "edge",
            "dns",
            "infra",
            "infrastructure",
            "node",
            "host",
            "disk",
            "cpu",
            "memory",
            "database",
            "db",
            "kubernetes",
            "pod",
        ],
    ),
    (
        "Mobile vs desktop performance differences",
        &["mobile", "ios", "android", "desktop", "app"],
    ),
];

/// The generic technical item a signal that names nothing more particular falls under.
const TECHNICAL_DEFAULT: &str = "CDN and infrastructure health";

/// The indices into [`CHECKLIST`] of the technical items a signal's text speaks to (its name,
/// summary, labels), ascending; at least one. Words are matched whole and case-blind, so
/// `happy` is not `app`.
pub fn technical_items(text: &str) -> Vec<usize> {
    let lower = text.to_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    let index_of = |item: &str| CHECKLIST.iter().position(|(_, text)| *text == item);
    let mut items: Vec<usize> = TECHNICAL_WORDS
        .iter()
        .filter(|(_, keys)| words.iter().any(|w| keys.contains(w)))
        .filter_map(|(item, _)| index_of(item))
        .collect();
    if items.is_empty() {
        items.extend(index_of(TECHNICAL_DEFAULT));
    }
    items.sort_unstable();
    items
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    fn at(minute: i64) -> Timestamp {
        Timestamp::from_millis(minute * MIN)
    }

    fn check_attaches(
        signal: (i64, Option<i64>, Option<&str>, Option<&str>),
        incident: (&str, &str, i64, Option<i64>),
        now: i64,
    ) -> bool {
        let signal = SignalSpan {
            starts_at: at(signal.0),
            ends_at: signal.1.map(at),
            funnel: signal.2,
            stage: signal.3,
        };
        let incident = IncidentSpan {
            funnel: incident.0,
            stage: incident.1,
            onset: at(incident.2),
            resolved_at: incident.3.map(at),
        };
        attaches(&signal, &incident, at(now))
    }

    #[test]
    fn a_firing_signal_not_heard_of_for_a_day_has_ended() {
        let day = SIGNAL_STALE_AFTER.millis() / MIN;
        // Heard of at minute 0, firing: going on for a day, then ended a day after.
        assert_eq!(effective_end(None, at(0), at(day - 1)), None);
        assert_eq!(effective_end(None, at(0), at(day + 5)), Some(at(day)));
        // A resolved one keeps its own end.
        assert_eq!(effective_end(Some(at(3)), at(0), at(day + 5)), Some(at(3)));
        // So a stale firing signal no longer attaches to an incident opened after it.
        let later = ("checkout", "payment", day + 60, None);
        let end = effective_end(None, at(0), at(day + 70)).map(|t| t.millis() / MIN);
        assert!(!check_attaches((0, end, None, None), later, day + 70));
    }

    #[test]
    fn a_signal_attaches_when_it_overlaps_in_time_and_stage() {
        let open = ("checkout", "payment", 100, None);
        // Firing since before the lead window: overlaps.
        assert!(check_attaches((50, None, None, None), open, 120));
        // Ended inside the lead window (onset − 10 min).
        assert!(check_attaches((50, Some(90), None, None), open, 120));
        // Ended just before it.
        assert!(!check_attaches((50, Some(89), None, None), open, 120));
        // Starts after now while the incident is open: not yet.
        assert!(!check_attaches((121, None, None, None), open, 120));
        // Starts after a resolved incident ended.
        assert!(!check_attaches(
            (111, None, None, None),
            ("checkout", "payment", 100, Some(110)),
            120
        ));
        assert!(check_attaches(
            (110, None, None, None),
            ("checkout", "payment", 100, Some(110)),
            120
        ));
        // Stage and funnel, where named, must be the incident's.
        assert!(check_attaches(
            (95, None, Some("checkout"), Some("payment")),
            open,
            120
        ));
        assert!(!check_attaches((95, None, None, Some("cart")), open, 120));
        assert!(!check_attaches(
            (95, None, Some("signup"), Some("payment")),
            open,
            120
        ));
        // A guard incident (`*`) takes any stage's signal.
        assert!(check_attaches(
            (95, None, Some("checkout"), Some("cart")),
            ("*", "*", 100, None),
            120
        ));
    }

    fn check_items(text: &str) -> Vec<&'static str> {
        technical_items(text)
            .into_iter()
            .map(|i| {
                assert_eq!(CHECKLIST[i].0, "technical", "{text}");
                CHECKLIST[i].1
            })
            .collect()
    }

    #[test]
    fn signals_fall_under_the_technical_items_their_words_name() {
        assert_eq!(
            check_items("PaymentGatewayErrors stripe"),
            ["Payment processor integration status"]
        );
        assert_eq!(
            check_items("payment gateway errors"),
            [
                "API response times and error rates",
                "Payment processor integration status"
            ]
        );
        assert_eq!(
            check_items("CDN 503s at edge"),
            ["CDN and infrastructure health"]
        );
        assert_eq!(
            check_items("iOS app crashes"),
            ["Mobile vs desktop performance differences"]
        );
        assert_eq!(
            check_items("HighLatency api"),
            ["API response times and error rates"]
        );
        // Nothing particular: the generic infrastructure item; `happy` is not `app`.
        assert_eq!(
            check_items("something happy"),
            ["CDN and infrastructure health"]
        );
        assert_eq!(check_items(""), ["CDN and infrastructure health"]);
    }
}
