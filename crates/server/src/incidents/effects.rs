//! The engine's effects as the service keeps them: an outbox row each (its stored body, which
//! `api::outbox` reads into `revloop_api::outbox::OutboxEntry`), and a line in the log. The
//! body is a stored format (written once, read back many times): fields are added with
//! defaults on the reading side, never renamed.

use serde_json::{Map, Value, json};

use revloop_core::incident::{Brief, Effect};
use revloop_core::time::{DurationMs, Timestamp};
use revloop_store::{OutboxKind, OutboxRow};

/// Effects older than this when committed were owed in history (a run over a backfill): they
/// go to the outbox, and to the log only at debug level.
const HISTORY_LOG_MINUTES: i64 = 5;

/// The outbox in the log too; what a run over history owed long ago (the demo's backfill)
/// only at debug level.
pub(super) fn log_effects(effects: &[Effect], now: Timestamp) {
    for effect in effects {
        let current = now.since(effect.at()) < DurationMs::from_minutes(HISTORY_LOG_MINUTES);
        match effect {
            Effect::Notify {
                incident,
                level,
                targets,
                reason,
                ..
            } if current => tracing::warn!(
                incident,
                level = %level,
                targets = %targets.join(", "),
                "page: {reason}"
            ),
            Effect::Remind {
                incident,
                targets,
                reason,
                ..
            } if current => tracing::info!(
                incident,
                targets = %targets.join(", "),
                "reminder: {reason}"
            ),
            Effect::SlaBreached {
                incident,
                sla,
                targets,
                ..
            } if current => {
                tracing::warn!(incident, sla, targets = %targets.join(", "), "SLA breached")
            }
            Effect::Acknowledged {
                incident,
                by,
                targets,
                ..
            } if current => tracing::info!(
                incident,
                by = %by,
                targets = %targets.join(", "),
                "acknowledged: telling those paged"
            ),
            Effect::Resolved {
                incident,
                by,
                false_alarm,
                targets,
                ..
            } if current => tracing::info!(
                incident,
                by = %by,
                false_alarm,
                targets = %targets.join(", "),
                "resolved: telling those paged"
            ),
            _ => tracing::debug!(effect = %effect_json(effect), "owed in history"),
        }
    }
}

pub(super) fn outbox_row(effect: &Effect) -> OutboxRow {
    let kind = match effect {
        Effect::Notify { .. } => OutboxKind::Notify,
        Effect::Remind { .. } => OutboxKind::Remind,
        Effect::SlaBreached { .. } => OutboxKind::SlaBreached,
        Effect::Acknowledged { .. } => OutboxKind::Acknowledged,
        Effect::Resolved { .. } => OutboxKind::Resolved,
    };
    OutboxRow {
        id: 0,
        incident: effect.incident() as i64,
        at: effect.at(),
        kind,
        body: effect_json(effect).to_string(),
    }
}

/// An effect as stored in its outbox row: the outbox's shape without the row's id.
/// `tests/incidents.rs` checks that every real outbox reply reads into `OutboxEntry`.
pub(super) fn effect_json(effect: &Effect) -> Value {
    let mut body = json!({
        "incident": effect.incident(),
        "at": effect.at().to_string(),
    });
    let fields = match effect {
        Effect::Notify {
            level,
            targets,
            reason,
            brief,
            ..
        } => json!({
            "kind": "notify",
            "level": level,
            "targets": targets,
            "reason": reason,
            "brief": brief_json(brief),
        }),
        Effect::Remind {
            targets,
            reason,
            brief,
            ..
        } => json!({
            "kind": "remind",
            "targets": targets,
            "reason": reason,
            "brief": brief_json(brief),
        }),
        Effect::SlaBreached {
            sla,
            targets,
            brief,
            ..
        } => json!({
            "kind": "sla_breached",
            "sla": sla,
            "targets": targets,
            "brief": brief_json(brief),
        }),
        Effect::Acknowledged {
            by, targets, brief, ..
        } => json!({
            "kind": "acknowledged",
            "by": by,
            "targets": targets,
            "brief": brief_json(brief),
        }),
        Effect::Resolved {
            by,
            false_alarm,
            targets,
            brief,
            ..
        } => json!({
            "kind": "resolved",
            "by": by,
            "false_alarm": false_alarm,
            "targets": targets,
            "brief": brief_json(brief),
        }),
    };
    if let (Some(body), Value::Object(fields)) = (body.as_object_mut(), fields) {
        body.extend(fields);
    }
    body
}

/// A brief in the shape of `revloop_api::outbox::IncidentBrief`; absent values are left out.
fn brief_json(brief: &Brief) -> Value {
    let mut object = Map::new();
    object.insert("title".into(), json!(brief.title));
    object.insert("funnel".into(), json!(brief.funnel));
    object.insert("stage".into(), json!(brief.stage));
    if let Some((dimension, value)) = &brief.segment {
        object.insert(
            "segment".into(),
            json!({ "dimension": dimension, "value": value }),
        );
    }
    object.insert("severity".into(), json!(brief.severity.as_str()));
    object.insert("kind".into(), json!(brief.kind.as_str()));
    // A σ that is not a number (never measured so) is left out rather than written as null.
    if let Some(sigma) = brief.sigma.filter(|sigma| sigma.is_finite()) {
        object.insert("sigma".into(), json!(sigma));
    }
    if let Some(loss) = &brief.loss {
        object.insert(
            "loss".into(),
            json!({ "minor": loss.minor, "currency": loss.currency.to_string() }),
        );
    }
    Value::Object(object)
}

#[cfg(test)]
mod tests {
    use super::*;
    use revloop_api::outbox::{BriefMoney, BriefSegment, IncidentBrief, OutboxEntry};
    use revloop_core::alert::AlertKind;
    use revloop_core::incident::IncidentSeverity;
    use revloop_core::money::{Currency, Money};

    fn brief() -> Brief {
        let eur = Currency::parse("EUR").unwrap();
        Brief {
            title: "P1 declared: checkout/payment, device = mobile".into(),
            funnel: "checkout".into(),
            stage: "payment".into(),
            segment: Some(("device".into(), "mobile".into())),
            severity: IncidentSeverity::P1,
            kind: AlertKind::Declared,
            sigma: Some(4.25),
            loss: Some(Money::new(12_345, eur)),
        }
    }

    /// Every kind of effect is stored as a body that reads back into the API's outbox entry,
    /// with its kind in the row and its brief whole.
    #[test]
    fn every_effect_reads_back_as_an_outbox_entry() {
        let at = Timestamp::from_millis(1_795_773_600_000);
        let targets = vec!["on-call engineer".to_owned(), "CTO".to_owned()];
        let effects = [
            Effect::Notify {
                incident: 7,
                at,
                level: "L1".into(),
                targets: targets.clone(),
                reason: "P1 incident opened".into(),
                brief: brief(),
            },
            Effect::Remind {
                incident: 7,
                at,
                targets: targets.clone(),
                reason: "still open".into(),
                brief: brief(),
            },
            Effect::SlaBreached {
                incident: 7,
                at,
                sla: "response",
                targets: targets.clone(),
                brief: brief(),
            },
            Effect::Acknowledged {
                incident: 7,
                at,
                by: "bo".into(),
                targets: targets.clone(),
                brief: brief(),
            },
            Effect::Resolved {
                incident: 7,
                at,
                by: "revloop".into(),
                false_alarm: true,
                targets: targets.clone(),
                brief: brief(),
            },
        ];
        let kinds: Vec<&str> = effects
            .iter()
            .map(|e| outbox_row(e).kind.as_str())
            .collect();
        assert_eq!(
            kinds,
            [
                "notify",
                "remind",
                "sla_breached",
                "acknowledged",
                "resolved"
            ]
        );
        let expected_brief = IncidentBrief {
            title: "P1 declared: checkout/payment, device = mobile".into(),
            funnel: "checkout".into(),
            stage: "payment".into(),
            segment: Some(BriefSegment {
                dimension: "device".into(),
                value: "mobile".into(),
            }),
            severity: "P1".into(),
            kind: "declared".into(),
            sigma: Some(4.25),
            loss: Some(BriefMoney {
                minor: 12_345,
                currency: "EUR".into(),
            }),
        };
        for effect in &effects {
            let mut body = effect_json(effect);
            body["id"] = json!(3);
            let entry: OutboxEntry = serde_json::from_value(body.clone()).expect("reads back");
            assert_eq!(entry.id(), 3);
            assert_eq!(entry.incident(), 7);
            assert_eq!(entry.targets(), targets.as_slice(), "{body}");
            assert_eq!(entry.brief(), Some(&expected_brief), "{body}");
        }
        let mut resolved = effect_json(&effects[4]);
        resolved["id"] = json!(3);
        let entry: OutboxEntry = serde_json::from_value(resolved).unwrap();
        assert!(matches!(
            entry,
            OutboxEntry::Resolved { false_alarm: true, ref by, .. } if by == "revloop"
        ));
    }

    #[test]
    fn a_brief_without_segment_sigma_or_loss_leaves_them_out() {
        let mut bare = brief();
        bare.segment = None;
        bare.sigma = Some(f64::NAN);
        bare.loss = None;
        let json = brief_json(&bare);
        let object = json.as_object().unwrap();
        for absent in ["segment", "sigma", "loss"] {
            assert!(!object.contains_key(absent), "{json}");
        }
    }
}
