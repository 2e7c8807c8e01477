//! An outbox entry as the message every channel renders: a one-line title and a few lines of
//! plain text, from the entry and the incident brief written with it. It never reads the
//! store or the clock: everything comes from the entry, so that every node and every retry
//! renders the same message from the same row.

use std::fmt::Write;

use revloop_api::outbox::{IncidentBrief, OutboxEntry};
use revloop_core::delivery::{Message, MessageEvent};
use revloop_core::incident::IncidentSeverity;
use revloop_core::money::{Currency, Money};
use revloop_core::time::Timestamp;
use revloop_store::OutboxRow;

/// The message of an outbox entry: its title and plain text from the entry's brief (entries
/// written before delivery existed have none: the title then names the incident only).
pub fn message(entry: &OutboxEntry) -> Message {
    let brief = entry.brief();
    let incident = entry.incident();
    let (event, level, actor) = match entry {
        OutboxEntry::Notify { level, .. } => (MessageEvent::Trigger, Some(level.clone()), None),
        OutboxEntry::Remind { .. } => (MessageEvent::Remind, None, None),
        OutboxEntry::SlaBreached { .. } => (MessageEvent::SlaBreached, None, None),
        OutboxEntry::Acknowledged { by, .. } => (MessageEvent::Acknowledge, None, Some(by.clone())),
        OutboxEntry::Resolved { by, .. } => (MessageEvent::Resolve, None, Some(by.clone())),
    };
    let about = brief.map_or_else(
        || format!("incident #{incident}"),
        |brief| format!("{} (incident #{incident})", brief.title),
    );
    let title = match entry {
        OutboxEntry::Notify { level, .. } => format!("[{level}] {about}"),
        OutboxEntry::Remind { .. } => format!("Still open: {about}"),
        OutboxEntry::SlaBreached { sla, .. } => format!("{sla} SLA breached: {about}"),
        OutboxEntry::Acknowledged { by, .. } => format!("Acknowledged by {by}: {about}"),
        OutboxEntry::Resolved {
            by, false_alarm, ..
        } => {
            let how = if *false_alarm {
                " as a false alarm"
            } else {
                ""
            };
            format!("Resolved{how} by {by}: {about}")
        }
    };
    let loss = brief.and_then(|b| b.loss.as_ref()).and_then(|loss| {
        Currency::parse(&loss.currency)
            .ok()
            .map(|currency| Money::new(loss.minor, currency))
    });
    Message {
        id: format!("msg-{}", entry.id()),
        event,
        incident,
        // A malformed time cannot come from this server's own rows; the epoch says so.
        at: Timestamp::parse_rfc3339(entry.at()).unwrap_or(Timestamp::from_millis(0)),
        text: text(entry, brief, loss),
        title,
        severity: brief.and_then(|b| IncidentSeverity::parse(&b.severity)),
        level,
        funnel: brief.map(|b| b.funnel.clone()),
        stage: brief.map(|b| b.stage.clone()),
        segment: brief
            .and_then(|b| b.segment.as_ref())
            .map(|s| (s.dimension.clone(), s.value.clone())),
        sigma: brief.and_then(|b| b.sigma).filter(|s| s.is_finite()),
        loss,
        actor,
    }
}

/// The plain-text body: what happened and why, then the brief's facts, one per line.
fn text(entry: &OutboxEntry, brief: Option<&IncidentBrief>, loss: Option<Money>) -> String {
    let mut out = String::new();
    let incident = entry.incident();
    let _ = match entry {
        OutboxEntry::Notify {
            level,
            targets,
            reason,
            ..
        } => writeln!(
            out,
            "Incident #{incident} paged {level} ({}): {reason}",
            targets.join(", ")
        ),
        OutboxEntry::Remind { reason, .. } => {
            writeln!(out, "Incident #{incident} is still open: {reason}")
        }
        OutboxEntry::SlaBreached { sla, .. } => {
            writeln!(out, "Incident #{incident}: its {sla} SLA ran out.")
        }
        OutboxEntry::Acknowledged { by, .. } => {
            writeln!(out, "Incident #{incident} was acknowledged by {by}.")
        }
        OutboxEntry::Resolved {
            by, false_alarm, ..
        } => {
            let how = if *false_alarm {
                " as a false alarm"
            } else {
                ""
            };
            writeln!(out, "Incident #{incident} was resolved{how} by {by}.")
        }
    };
    if let Some(brief) = brief {
        let _ = writeln!(out, "Severity: {} ({})", brief.severity, brief.kind);
        let _ = writeln!(out, "Where: {}/{}", brief.funnel, brief.stage);
        if let Some(segment) = &brief.segment {
            let _ = writeln!(out, "Segment: {} = {}", segment.dimension, segment.value);
        }
        if let Some(sigma) = brief.sigma.filter(|s| s.is_finite()) {
            let _ = writeln!(out, "Deviation: {sigma:.1}σ");
        }
    }
    if let Some(loss) = loss {
        let _ = writeln!(out, "Loss so far: {loss}");
    }
    let _ = write!(out, "At: {}", entry.at());
    out
}

/// A stored outbox row as its entry: the body the incidents service stored, with the row's id.
/// `None` for a body this server cannot read (a damaged row, or a newer node's kind): the
/// caller logs it and moves past it.
pub fn entry_of(row: &OutboxRow) -> Option<OutboxEntry> {
    let mut body: serde_json::Value = serde_json::from_str(&row.body).ok()?;
    if let serde_json::Value::Object(map) = &mut body {
        map.insert("id".into(), serde_json::Value::from(row.id));
    }
    serde_json::from_value(body).ok()
}

#[cfg(test)]
mod tests {
    use revloop_api::outbox::{BriefMoney, BriefSegment};

    use super::*;

    fn brief() -> IncidentBrief {
        IncidentBrief {
            title: "P1 conversion: checkout/payment, device = mobile".into(),
            funnel: "checkout".into(),
            stage: "payment".into(),
            segment: Some(BriefSegment {
                dimension: "device".into(),
                value: "mobile".into(),
            }),
            severity: "P1".into(),
            kind: "conversion".into(),
            sigma: Some(-4.23),
            loss: Some(BriefMoney {
                minor: 123_456,
                currency: "USD".into(),
            }),
        }
    }

    #[test]
    fn a_page_says_what_where_how_bad_and_what_it_cost() {
        let entry = OutboxEntry::Notify {
            id: 7,
            incident: 3,
            at: "2026-11-27T10:05:00Z".into(),
            level: "L1".into(),
            targets: vec!["on-call engineer".into()],
            reason: "opened".into(),
            brief: Some(brief()),
        };
        let message = message(&entry);
        assert_eq!(message.id, "msg-7");
        assert_eq!(message.event, MessageEvent::Trigger);
        assert_eq!(
            message.title,
            "[L1] P1 conversion: checkout/payment, device = mobile (incident #3)"
        );
        for line in [
            "Incident #3 paged L1 (on-call engineer): opened",
            "Where: checkout/payment",
            "Segment: device = mobile",
            "Deviation: -4.2σ",
            "Severity: P1 (conversion)",
        ] {
            assert!(
                message.text.lines().any(|l| l == line),
                "{line}: {}",
                message.text
            );
        }
        assert!(message.text.contains("Loss so far: "), "{}", message.text);
        assert_eq!(message.severity, Some(IncidentSeverity::P1));
        assert_eq!(message.level.as_deref(), Some("L1"));
        assert_eq!(message.loss.map(|l| l.minor), Some(123_456));
        assert_eq!(message.at.to_string(), "2026-11-27T10:05:00Z");
    }

    #[test]
    fn acks_and_resolves_name_who_and_an_old_entry_names_the_incident() {
        let ack = OutboxEntry::Acknowledged {
            id: 8,
            incident: 3,
            at: "2026-11-27T10:06:00Z".into(),
            by: "alice".into(),
            targets: vec![],
            brief: brief(),
        };
        let message = message(&ack);
        assert_eq!(message.event, MessageEvent::Acknowledge);
        assert_eq!(message.actor.as_deref(), Some("alice"));
        assert!(message.title.starts_with("Acknowledged by alice: P1"));
        let resolved = OutboxEntry::Resolved {
            id: 9,
            incident: 3,
            at: "2026-11-27T10:07:00Z".into(),
            by: "bob".into(),
            false_alarm: true,
            targets: vec![],
            brief: brief(),
        };
        assert!(
            super::message(&resolved)
                .title
                .starts_with("Resolved as a false alarm by bob")
        );
        let old = OutboxEntry::Remind {
            id: 2,
            incident: 1,
            at: "2026-11-27T10:00:00Z".into(),
            targets: vec!["owner".into()],
            reason: "recovered".into(),
            brief: None,
        };
        let message = super::message(&old);
        assert_eq!(message.title, "Still open: incident #1");
        assert_eq!((message.severity, message.funnel), (None, None));
    }

    #[test]
    fn a_row_reads_as_its_entry_with_its_id_and_a_bad_row_reads_as_none() {
        let row = |body: &str| OutboxRow {
            id: 41,
            incident: 1,
            at: Timestamp::from_millis(0),
            kind: revloop_store::OutboxKind::Notify,
            body: body.into(),
        };
        let entry = entry_of(&row(
            r#"{"kind":"notify","incident":1,"at":"2026-11-27T10:00:00Z","level":"L1","targets":["CTO"],"reason":"opened"}"#,
        ))
        .unwrap();
        assert_eq!(entry.id(), 41);
        assert_eq!(entry.targets(), ["CTO".to_owned()]);
        assert!(entry_of(&row("not json")).is_none());
        assert!(entry_of(&row(r#"{"kind":"unknown"}"#)).is_none());
    }
}
