//! Bodies captured from the real server (`revloop demo`, then curl, in `tests/bodies/`) read
//! into their types and written back to exactly the same JSON; request bodies are what the
//! server reads. A field renamed, made optional or dropped on either side fails here.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use revloop_api::actions::*;
use revloop_api::changes::*;
use revloop_api::detector::*;
use revloop_api::incidents::*;
use revloop_api::outbox::*;
use revloop_api::report::*;
use revloop_api::silences::*;
use revloop_api::{ErrorBody, Segment};

/// Reads `text` into `T`, checks that writing it back gives the same JSON, and that it reads
/// again to the same value.
fn check<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(text: &str) -> T {
    let original: Value = serde_json::from_str(text).unwrap();
    let typed: T = serde_json::from_str(text).unwrap_or_else(|err| panic!("{err}: {text}"));
    assert_eq!(serde_json::to_value(&typed).unwrap(), original);
    let again: T = serde_json::from_str(&serde_json::to_string(&typed).unwrap()).unwrap();
    assert_eq!(again, typed);
    typed
}

macro_rules! body {
    ($name:literal) => {
        include_str!(concat!("bodies/", $name, ".json"))
    };
}

#[test]
fn incidents_read_and_write_back_exactly() {
    let list: IncidentList = check(body!("incident_list"));
    assert_eq!(list.incidents.len(), 2);
    assert_eq!(list.next_before, Some(3));
    assert_eq!(
        list.incidents[1].segment.as_ref().unwrap().to_string(),
        "device=mobile"
    );

    let resolved: Incident = check(body!("incident_resolved"));
    assert_eq!(resolved.summary.state, IncidentState::Resolved);
    assert_eq!(resolved.summary.severity, Severity::P2);
    assert_eq!(resolved.summary.sla.response.state, SlaState::Breached);
    assert_eq!(resolved.mitigations.len(), 0);
    assert_eq!(resolved.action_items[0].owner, "ann");
    assert_eq!(resolved.checklist[2].finding.as_deref(), Some("seen"));
    assert_eq!(resolved.checklist[3].checked_by, None);
    assert_eq!(resolved.suspects[0].change.kind, ChangeKind::Deploy);
    assert_eq!(resolved.alerts[0].alert_id.len(), 16);
    assert!(resolved.scope.as_ref().unwrap().segment.is_some());
    let kinds: Vec<TimelineKind> = resolved.timeline.iter().map(|e| e.kind.clone()).collect();
    assert_eq!(kinds[..2], [TimelineKind::Opened, TimelineKind::Escalated]);
    assert!(kinds.contains(&TimelineKind::SlaBreached));

    let open: Incident = check(body!("incident_open"));
    assert_eq!(open.summary.state, IncidentState::Triggered);
    assert_eq!(
        (open.escalation.next_at, open.escalation.repeats),
        (None, 10)
    );
    let acknowledged: Incident = check(body!("incident_acknowledged"));
    assert_eq!(acknowledged.escalation.next_level, None);
    let mitigated: Incident = check(body!("incident_mitigated"));
    assert_eq!(mitigated.mitigations[0].mitigation, Mitigation::Rollback);
    assert_eq!(mitigated.summary.state, IncidentState::Mitigated);
}

#[test]
fn the_report_outbox_changes_silences_and_detector_read_and_write_back_exactly() {
    let report: IncidentReport = check(body!("report"));
    assert_eq!(report.severities.of(Severity::P2).incidents, 2);
    assert_eq!(report.severities.of(Severity::P1).to_resolve, None);

    let outbox: OutboxPage = check(body!("outbox"));
    assert!(matches!(
        outbox.outbox[2],
        OutboxEntry::SlaBreached {
            sla: SlaName::Response,
            ..
        }
    ));
    assert_eq!(outbox.next_after, outbox.outbox.last().unwrap().id());

    // A declared incident paged L1 and L2, breached its response SLA, was acknowledged and
    // resolved: each entry with its brief, the ack and the end told to everyone paged
    // (captured from the server's `tests/declare.rs`).
    let told: OutboxPage = check(body!("outbox_told"));
    let kinds: Vec<&str> = told
        .outbox
        .iter()
        .map(|entry| match entry {
            OutboxEntry::Notify { .. } => "notify",
            OutboxEntry::Remind { .. } => "remind",
            OutboxEntry::SlaBreached { .. } => "sla_breached",
            OutboxEntry::Acknowledged { .. } => "acknowledged",
            OutboxEntry::Resolved { .. } => "resolved",
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "notify",
            "notify",
            "sla_breached",
            "acknowledged",
            "resolved"
        ]
    );
    assert!(
        told.outbox
            .iter()
            .all(|e| e.brief().unwrap().kind == "declared")
    );
    assert_eq!(
        told.outbox[4].targets(),
        ["on-call engineer", "engineering manager"]
    );

    let changes: ChangeList = check(body!("change_list"));
    assert_eq!(changes.changes[0].segment.as_ref().unwrap().value, "mobile");
    let created: Change = check(body!("change_created"));
    assert_eq!(created.funnel, None);

    let added: Silence = check(body!("silence_created"));
    assert_eq!((added.source, added.added_by), (SilenceSource::Api, None));
    let listed: SilenceList = check(body!("silence_list"));
    assert_eq!(listed.silences[0].state, SilenceState::Active);
    let ended: Silence = check(body!("silence_ended"));
    assert_eq!(ended.state, SilenceState::Ended);
    assert!(ended.ended_at.is_some());
    // A silence of the config, built as the server builds it.
    let configured = json!({
        "id": null, "source": "config", "funnel": null, "stage": null,
        "from": "2026-12-01T02:00:00Z", "to": "2026-12-01T04:00:00Z", "reason": "upgrade",
        "state": "scheduled", "added_by": null, "added_at": null,
    });
    let configured: Silence = check(&configured.to_string());
    assert_eq!(configured.id, None);

    let baseline: Baseline = check(body!("baseline"));
    assert_eq!(baseline.slots.len(), 168);
    assert_eq!(baseline.slots[167].weekday, Weekday::Sun);
    let rebuilt: Rebuilt = check(body!("rebuilt"));
    assert!(rebuilt.rebuilt);
}

#[test]
fn error_bodies_read_with_and_without_details() {
    let plain: ErrorBody = check(body!("error_plain"));
    assert_eq!(plain.error.code, "not_found");
    assert_eq!(plain.error.to_string(), "no incident 99");
    // A detail that only repeats the message is not printed twice.
    let field: ErrorBody = check(body!("error_field"));
    assert_eq!(field.error.to_string(), "severity: must be P1, P2 or P3");
    let details: ErrorBody = check(body!("error_details"));
    assert_eq!(
        details.error.to_string(),
        "2 problems in this request; nothing was stored\n  \
         index 1, event: invalid type: integer `5`, expected a string\n  \
         index 2, event: a track call needs a non-empty event name"
    );
}

#[test]
fn action_bodies_hold_only_their_fields() {
    let cases = [
        (
            IncidentAction::Acknowledge(ReasonBody::default()),
            "acknowledge",
            json!({}),
        ),
        (
            IncidentAction::Resolve(ResolveBody {
                reason: Some("done".into()),
                false_alarm: false,
            }),
            "resolve",
            json!({"reason": "done"}),
        ),
        (
            IncidentAction::Scope(ScopeBody {
                stage: "cart".into(),
                segment: Some(Segment::parse("device=mobile").unwrap()),
                reason: None,
            }),
            "scope",
            json!({"stage": "cart", "segment": {"dimension": "device", "value": "mobile"}}),
        ),
        (
            IncidentAction::Severity(SeverityBody {
                severity: Severity::P3,
                reason: Some("calmer".into()),
            }),
            "severity",
            json!({"severity": "P3", "reason": "calmer"}),
        ),
        (
            IncidentAction::Mitigate(MitigateBody {
                mitigation: Mitigation::BackupPaymentProcessor,
                detail: String::new(),
                reason: None,
            }),
            "mitigate",
            json!({"mitigation": "backup_payment_processor", "detail": ""}),
        ),
        (
            IncidentAction::Mitigate(MitigateBody {
                mitigation: Mitigation::Rollback,
                detail: "v2.3.0".into(),
                reason: Some("the deploy at the onset".into()),
            }),
            "mitigate",
            json!({"mitigation": "rollback", "detail": "v2.3.0", "reason": "the deploy at the onset"}),
        ),
        (
            IncidentAction::RootCause(TextBody { text: "cdn".into() }),
            "root-cause",
            json!({"text": "cdn"}),
        ),
        (
            IncidentAction::ActionItem(ActionItemBody {
                text: "test".into(),
                owner: "ann".into(),
                due: "2026-12-01T00:00:00Z".into(),
            }),
            "action-items",
            json!({"text": "test", "owner": "ann", "due": "2026-12-01T00:00:00Z"}),
        ),
        (
            IncidentAction::Checklist(ChecklistBody {
                index: 3,
                finding: "fine".into(),
            }),
            "checklist",
            json!({"index": 3, "finding": "fine"}),
        ),
    ];
    for (action, path, body) in cases {
        assert_eq!(action.path(), path);
        assert_eq!(action.body(), body, "{path}");
    }
    let change = NewChange {
        kind: ChangeKind::ExperimentStart,
        summary: "new checkout".into(),
        detail: None,
        at: None,
        funnel: Some("checkout".into()),
        stage: None,
        segment: None,
        external_id: None,
    };
    assert_eq!(
        serde_json::to_value(&change).unwrap(),
        json!({"kind": "experiment_start", "summary": "new checkout", "funnel": "checkout"})
    );
    let round: NewChange = check(&serde_json::to_string(&change).unwrap());
    assert_eq!(round, change);
    let silence = NewSilence {
        to: "2026-12-01T04:00:00+01:00".into(),
        from: None,
        reason: "upgrade".into(),
        funnel: None,
        stage: Some("payment".into()),
    };
    let round: NewSilence = check(&serde_json::to_string(&silence).unwrap());
    assert_eq!(round, silence);
}

#[test]
fn names_and_segments_are_read_with_the_valid_choices_in_the_error() {
    assert_eq!("rollback".parse::<Mitigation>(), Ok(Mitigation::Rollback));
    assert_eq!(
        "paymnt".parse::<ChangeKind>().unwrap_err().to_string(),
        "no change kind `paymnt`; use one of deploy, experiment_start, experiment_stop, \
         pricing, promotion, payment_processor, cdn, infrastructure, config, other"
    );
    assert_eq!(Severity::parse_loose("p2"), Ok(Severity::P2));
    assert_eq!(
        Severity::parse_loose("P4").unwrap_err().to_string(),
        "no severity `P4`; use one of P1, P2, P3"
    );
    assert_eq!(format!("[{:<4}]", Severity::P1), "[P1  ]");
    let segment = Segment::parse("campaign=a=b").unwrap();
    assert_eq!(
        (segment.dimension.as_str(), segment.value.as_str()),
        ("campaign", "a=b")
    );
    for bad in ["device:mobile", "device=", "=mobile", ""] {
        assert_eq!(
            Segment::parse(bad).unwrap_err(),
            format!("`{bad}` is not dimension=value, e.g. device=mobile")
        );
    }
}

/// A newer server's name that this build does not know still reads (an older CLI prints it
/// as sent) and writes back unchanged; what a person types is still checked.
#[test]
fn display_only_names_tolerate_a_newer_servers_values() {
    let newer = body!("incident_open")
        .replace("\"triggered\"", "\"investigating\"")
        .replace("\"opened\"", "\"paged_by_phone\"");
    let incident: Incident = check(&newer);
    assert_eq!(
        incident.summary.state,
        IncidentState::Unknown("investigating".into())
    );
    assert_eq!(incident.summary.state.to_string(), "investigating");
    assert_eq!(incident.timeline[0].kind.as_str(), "paged_by_phone");
    let kind: ChangeKind = serde_json::from_value(json!("feature_flag")).unwrap();
    assert_eq!(kind, ChangeKind::Unknown("feature_flag".into()));
    assert!("feature_flag".parse::<ChangeKind>().is_err());
    assert_eq!(
        serde_json::from_value::<SilenceState>(json!("active")).unwrap(),
        SilenceState::Active
    );
}
