//! The delivery log as the API shows it: deliveries on `GET /api/v1/outbox`, attempts on an
//! incident's timeline ("delivered to CTO by email (250)", "failed to reach on-call engineer
//! by webhook: 500 ...; retrying at ...", "gave up reaching CTO by pagerduty: 400 ..."), and
//! the per-channel delivery metrics of `/metrics`.
//!
//! It only reads the store's delivery queue and attempt log; it never writes them, and a read
//! that fails leaves the log out of a view rather than failing the view.

use std::fmt::Write;

use revloop_api::incidents as wire_incidents;
use revloop_api::outbox as wire;
use revloop_core::config::Delivery;
use revloop_core::time::Timestamp;
use revloop_store::{AttemptRow, ChannelDeliveryStats, DeliveryRow, DeliveryState, Store};

/// Most attempts an incident's timeline shows (the oldest first; a client reads the rest of
/// the story from the deliveries' states on the outbox).
pub const TIMELINE_ATTEMPTS_MAX: usize = 500;
/// Longest receiver answer quoted on a timeline entry, in characters.
const QUOTE_CHARS_MAX: usize = 200;

/// A delivery as `GET /api/v1/outbox` shows it. The channel's kind is read from the config;
/// a channel no longer configured shows as `unknown`.
pub fn delivery_view(row: &DeliveryRow, delivery: Option<&Delivery>) -> wire::DeliveryView {
    wire::DeliveryView {
        id: row.id,
        outbox_id: row.outbox_id,
        incident: u64::try_from(row.incident).unwrap_or_default(),
        target: row.target.clone(),
        channel: row.channel.clone(),
        channel_kind: channel_kind(delivery, &row.channel).to_owned(),
        to: Some(row.address.clone()).filter(|a| !a.is_empty()),
        state: state_view(row.state),
        attempts: row.attempts,
        next_at: (row.state == DeliveryState::Pending).then(|| row.next_at.to_string()),
        last_status: row.last_status.clone(),
        last_response: row.last_response.clone(),
        finished_at: row.finished_at.map(|t| t.to_string()),
    }
}

fn state_view(state: DeliveryState) -> wire::DeliveryState {
    match state {
        DeliveryState::Pending => wire::DeliveryState::Pending,
        DeliveryState::Delivered => wire::DeliveryState::Delivered,
        DeliveryState::Failed => wire::DeliveryState::Failed,
    }
}

fn channel_kind<'a>(delivery: Option<&'a Delivery>, channel: &str) -> &'a str {
    delivery
        .and_then(|d| d.channel(channel))
        .map_or("unknown", |c| c.kind.as_str())
}

/// Adds incident `incident`'s delivery attempts to its timeline, in time order among the
/// engine's entries (an attempt at the same instant as an entry comes after it). Blocking. A
/// store that does not answer leaves the timeline as it was, logged.
pub fn add_to_timeline(
    timeline: &mut Vec<wire_incidents::TimelineEntry>,
    store: &dyn Store,
    delivery: Option<&Delivery>,
    incident: u64,
) {
    let Ok(incident) = i64::try_from(incident) else {
        return;
    };
    let read = store
        .delivery_attempts(incident, TIMELINE_ATTEMPTS_MAX)
        .and_then(|attempts| {
            let query = revloop_store::DeliveryQuery {
                incident: Some(incident),
                outbox_ids: None,
                limit: revloop_store::DELIVERY_PAGE_MAX,
            };
            Ok((attempts, store.deliveries(&query)?))
        });
    let (attempts, deliveries) = match read {
        Ok(read) => read,
        Err(err) => {
            tracing::warn!(incident, error = %err, "the delivery log could not be read");
            return;
        }
    };
    let entries = timeline_entries(&attempts, &deliveries, delivery);
    merge_by_time(timeline, entries);
}

/// The attempts as timeline entries, oldest first. An attempt of a delivery not among
/// `deliveries` (past the read's limit) names its delivery by id.
pub fn timeline_entries(
    attempts: &[AttemptRow],
    deliveries: &[DeliveryRow],
    delivery: Option<&Delivery>,
) -> Vec<wire_incidents::TimelineEntry> {
    attempts
        .iter()
        .map(|attempt| {
            let row = deliveries.iter().find(|d| d.id == attempt.delivery);
            wire_incidents::TimelineEntry {
                at: attempt.at.to_string(),
                actor: "revloop".to_owned(),
                kind: wire_incidents::TimelineKind::Delivery,
                text: attempt_text(attempt, row, delivery),
            }
        })
        .collect()
}

/// One attempt in words. The latest attempt of a delivery still pending says when the next
/// one is due; an earlier one says only that it was retried.
fn attempt_text(
    attempt: &AttemptRow,
    row: Option<&DeliveryRow>,
    delivery: Option<&Delivery>,
) -> String {
    let Some(row) = row else {
        return format!(
            "delivery {} attempt {}: {} {}",
            attempt.delivery,
            attempt.attempt,
            attempt.status,
            quote(&attempt.response)
        );
    };
    let kind = channel_kind(delivery, &row.channel);
    let by = if kind == row.channel {
        kind.to_owned()
    } else {
        format!("{kind} ({})", row.channel)
    };
    let what = if row.level.is_empty() {
        String::new()
    } else {
        format!(" [{} page]", row.level)
    };
    let answer = format!("{} {}", attempt.status, quote(&attempt.response));
    let answer = answer.trim_end();
    match attempt.state {
        DeliveryState::Delivered => {
            format!(
                "delivered to {} by {by} ({}){what}",
                row.target, attempt.status
            )
        }
        DeliveryState::Failed => format!("gave up reaching {} by {by}: {answer}{what}", row.target),
        DeliveryState::Pending => {
            let latest = row.state == DeliveryState::Pending && row.attempts == attempt.attempt;
            let when = if latest {
                format!("retrying at {}", row.next_at)
            } else {
                "retried".to_owned()
            };
            format!(
                "failed to reach {} by {by}: {answer}; {when}{what}",
                row.target
            )
        }
    }
}

/// The start of a receiver's answer, on one line.
fn quote(response: &str) -> String {
    let one_line: String = response
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(QUOTE_CHARS_MAX)
        .collect();
    let one_line = one_line.trim();
    if response.chars().count() > QUOTE_CHARS_MAX {
        format!("{one_line}…")
    } else {
        one_line.to_owned()
    }
}

/// Merges `added` (in time order) into `timeline` (in time order), each added entry after the
/// timeline's entries of the same instant.
fn merge_by_time(
    timeline: &mut Vec<wire_incidents::TimelineEntry>,
    added: Vec<wire_incidents::TimelineEntry>,
) {
    if added.is_empty() {
        return;
    }
    let millis = |entry: &wire_incidents::TimelineEntry| {
        Timestamp::parse_rfc3339(&entry.at).map_or(i64::MIN, |t| t.millis())
    };
    let mut merged = Vec::with_capacity(timeline.len() + added.len());
    let mut added = added.into_iter().peekable();
    for entry in timeline.drain(..) {
        while let Some(next) = added.next_if(|a| millis(a) < millis(&entry)) {
            merged.push(next);
        }
        merged.push(entry);
    }
    merged.extend(added);
    *timeline = merged;
}

/// The per-channel delivery metrics, every configured channel present (0 before any
/// delivery), appended to `/metrics`. `stats` is `None` when the store did not answer: the
/// series are left out rather than reported as 0.
pub fn render_metrics(
    delivery: Option<&Delivery>,
    stats: Option<&[ChannelDeliveryStats]>,
    now: Timestamp,
    out: &mut String,
) {
    let (Some(delivery), Some(stats)) = (delivery, stats) else {
        return;
    };
    let of = |channel: &str| stats.iter().find(|s| s.channel == channel);
    let channels: Vec<&str> = delivery.channels.iter().map(|c| c.name.as_str()).collect();
    out.push_str("# HELP revloop_deliveries_total Deliveries finished, by channel and result.\n");
    out.push_str("# TYPE revloop_deliveries_total counter\n");
    for channel in &channels {
        let (delivered, failed) = of(channel).map_or((0, 0), |s| (s.delivered, s.failed));
        for (result, n) in [("delivered", delivered), ("failed", failed)] {
            let _ = writeln!(
                out,
                "revloop_deliveries_total{{channel=\"{channel}\",result=\"{result}\"}} {n}"
            );
        }
    }
    out.push_str("# HELP revloop_delivery_attempts_failed_total Delivery attempts that did not deliver (each retry counts), by channel.\n");
    out.push_str("# TYPE revloop_delivery_attempts_failed_total counter\n");
    for channel in &channels {
        let n = of(channel).map_or(0, |s| s.failed_attempts);
        let _ = writeln!(
            out,
            "revloop_delivery_attempts_failed_total{{channel=\"{channel}\"}} {n}"
        );
    }
    out.push_str("# HELP revloop_deliveries_pending Deliveries not yet delivered nor given up, by channel.\n");
    out.push_str("# TYPE revloop_deliveries_pending gauge\n");
    for channel in &channels {
        let n = of(channel).map_or(0, |s| s.pending);
        let _ = writeln!(
            out,
            "revloop_deliveries_pending{{channel=\"{channel}\"}} {n}"
        );
    }
    out.push_str("# HELP revloop_delivery_oldest_pending_age_seconds Age of the oldest pending delivery, by channel (0: none pending).\n");
    out.push_str("# TYPE revloop_delivery_oldest_pending_age_seconds gauge\n");
    for channel in &channels {
        let age_ms = of(channel)
            .and_then(|s| s.oldest_pending_at)
            .map_or(0, |at| now.since(at).millis().max(0));
        let _ = writeln!(
            out,
            "revloop_delivery_oldest_pending_age_seconds{{channel=\"{channel}\"}} {}",
            age_ms as f64 / 1000.0
        );
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use revloop_core::config::{Channel, ChannelKind};
    use revloop_core::time::DurationMs;

    use super::*;

    const T0: i64 = 1_795_773_600_000;

    fn config() -> Delivery {
        let channel = |name: &str, kind: ChannelKind| Channel {
            name: name.into(),
            kind,
            concurrency: 4,
            timeout: DurationMs::from_secs(10),
        };
        Delivery {
            channels: vec![
                channel("email", ChannelKind::Log),
                channel("oncall-hook", ChannelKind::Log),
            ],
            targets: BTreeMap::new(),
            audiences: BTreeMap::new(),
            failover_after: DurationMs::from_minutes(5),
            retry: Default::default(),
        }
    }

    fn row(id: i64, state: DeliveryState, attempts: u32) -> DeliveryRow {
        DeliveryRow {
            id,
            outbox_id: 3,
            incident: 1,
            target: "CTO".into(),
            channel: "oncall-hook".into(),
            address: String::new(),
            level: "L2".into(),
            state,
            attempts,
            created_at: Timestamp::from_millis(T0),
            first_attempt_at: Some(Timestamp::from_millis(T0)),
            next_at: Timestamp::from_millis(T0 + 4_000),
            lease: None,
            last_status: Some("500".into()),
            last_response: Some("boom".into()),
            finished_at: None,
        }
    }

    fn attempt(n: u32, state: DeliveryState, status: &str, response: &str) -> AttemptRow {
        AttemptRow {
            delivery: 7,
            attempt: n,
            node: "a".into(),
            at: Timestamp::from_millis(T0 + i64::from(n) * 1_000),
            state,
            status: status.into(),
            response: response.into(),
        }
    }

    #[test]
    fn attempts_read_as_what_happened_to_whom_by_what() {
        use DeliveryState::*;
        let config = config();
        let check = |attempts: &[AttemptRow], row: DeliveryRow, expected: &[&str]| {
            let entries = timeline_entries(attempts, &[row], Some(&config));
            let texts: Vec<&str> = entries.iter().map(|e| e.text.as_str()).collect();
            assert_eq!(texts, expected);
            assert!(
                entries
                    .iter()
                    .all(|e| e.kind == wire_incidents::TimelineKind::Delivery)
            );
        };
        check(
            &[
                attempt(1, Pending, "500", "boom\nagain"),
                attempt(2, Pending, "timeout", ""),
            ],
            row(7, Pending, 2),
            &[
                "failed to reach CTO by log (oncall-hook): 500 boom again; retried [L2 page]",
                "failed to reach CTO by log (oncall-hook): timeout; retrying at 2026-11-27T10:00:04Z [L2 page]",
            ],
        );
        check(
            &[attempt(1, Delivered, "200", "ok")],
            row(7, Delivered, 1),
            &["delivered to CTO by log (oncall-hook) (200) [L2 page]"],
        );
        check(
            &[attempt(1, Failed, "400", "bad key")],
            row(7, Failed, 1),
            &["gave up reaching CTO by log (oncall-hook): 400 bad key [L2 page]"],
        );
        let orphan = timeline_entries(&[attempt(1, Failed, "400", "x")], &[], Some(&config));
        assert_eq!(orphan[0].text, "delivery 7 attempt 1: 400 x");
    }

    #[test]
    fn attempts_merge_into_the_timeline_in_time_order() {
        let entry = |at: i64, text: &str| wire_incidents::TimelineEntry {
            at: Timestamp::from_millis(at).to_string(),
            actor: "revloop".into(),
            kind: wire_incidents::TimelineKind::Note,
            text: text.into(),
        };
        let mut timeline = vec![entry(T0, "opened"), entry(T0 + 2_000, "acked")];
        merge_by_time(
            &mut timeline,
            vec![
                entry(T0, "sent"),
                entry(T0 + 1_000, "retry"),
                entry(T0 + 3_000, "ack sent"),
            ],
        );
        let texts: Vec<&str> = timeline.iter().map(|e| e.text.as_str()).collect();
        assert_eq!(texts, ["opened", "sent", "retry", "acked", "ack sent"]);
    }

    #[test]
    fn every_configured_channel_has_its_series() {
        let stats = [ChannelDeliveryStats {
            channel: "oncall-hook".into(),
            delivered: 3,
            failed: 1,
            pending: 2,
            failed_attempts: 5,
            oldest_pending_at: Some(Timestamp::from_millis(T0 - 90_500)),
        }];
        let mut out = String::new();
        render_metrics(
            Some(&config()),
            Some(&stats),
            Timestamp::from_millis(T0),
            &mut out,
        );
        for line in [
            "revloop_deliveries_total{channel=\"oncall-hook\",result=\"delivered\"} 3",
            "revloop_deliveries_total{channel=\"oncall-hook\",result=\"failed\"} 1",
            "revloop_deliveries_total{channel=\"email\",result=\"delivered\"} 0",
            "revloop_delivery_attempts_failed_total{channel=\"oncall-hook\"} 5",
            "revloop_deliveries_pending{channel=\"oncall-hook\"} 2",
            "revloop_deliveries_pending{channel=\"email\"} 0",
            "revloop_delivery_oldest_pending_age_seconds{channel=\"oncall-hook\"} 90.5",
            "revloop_delivery_oldest_pending_age_seconds{channel=\"email\"} 0",
            "# TYPE revloop_deliveries_total counter",
            "# TYPE revloop_delivery_oldest_pending_age_seconds gauge",
        ] {
            assert!(out.lines().any(|l| l == line), "{line} not in\n{out}");
        }
        let mut nothing = String::new();
        render_metrics(None, Some(&stats), Timestamp::from_millis(T0), &mut nothing);
        render_metrics(
            Some(&config()),
            None,
            Timestamp::from_millis(T0),
            &mut nothing,
        );
        assert_eq!(nothing, "");
    }

    #[test]
    fn a_delivery_shows_its_kind_state_and_next_try_while_pending() {
        let config = config();
        let pending = delivery_view(&row(7, DeliveryState::Pending, 1), Some(&config));
        assert_eq!(pending.channel_kind, "log");
        assert_eq!(pending.state, wire::DeliveryState::Pending);
        assert_eq!(pending.next_at.as_deref(), Some("2026-11-27T10:00:04Z"));
        assert_eq!(pending.to, None);
        let mut done = row(8, DeliveryState::Delivered, 1);
        done.channel = "gone".into();
        let done = delivery_view(&done, Some(&config));
        assert_eq!(
            (done.next_at, done.channel_kind.as_str()),
            (None, "unknown")
        );
    }
}
