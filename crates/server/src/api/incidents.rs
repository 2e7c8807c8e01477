//! The incidents area: list incidents and read one (viewer role), and the views of an
//! incident the whole API answers with (its headline for lists, in full for one incident and
//! for every action's reply). Acting on incidents is `actions`; the report and the outbox have
//! their own modules. It never changes an incident.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use revloop_api::incidents as wire;
use revloop_core::alert::AlertKind;
use revloop_core::incident::{
    CHECKLIST, Incident, IncidentPolicy, IncidentSeverity, IncidentState, Mitigation, SlaClock,
    TimelineKind, Trend,
};
use revloop_core::time::Timestamp;
use revloop_store::{IncidentQuery, Role, SignalRow};

use crate::api::changes::change_view;
use crate::api::delivery_log;
use crate::api::impact::impact_summary_view;
use crate::api::signals::{signal_checklist, signal_view};
use crate::api::{AppState, json_reply, no_funnel, require, segment_view, store_error};
use crate::http::query::{parse_limit, unknown_parameter};
use crate::http::{ApiError, ErrorDetail, blocking, invalid, retrying};
use crate::incidents::incident_from_rows;
use crate::suspects::{Suspects, suspects};

/// Most incidents one list request returns.
pub const INCIDENTS_PAGE_MAX: usize = 200;

/// An incident id from the path; not a number is no incident.
pub fn parse_id(text: &str) -> Result<u64, ApiError> {
    text.parse::<u64>()
        .map_err(|_| ApiError::not_found(format!("no incident `{text}`: ids are numbers")))
}

/// `GET /api/v1/incidents?state=open|resolved|all&funnel=&before=&limit=`: newest first.
#[utoipa::path(
    get, path = "/api/v1/incidents", tag = "incidents",
    params(
        ("state" = Option<revloop_api::incidents::StateFilter>, Query, description = "Which incidents (default all)"),
        ("funnel" = Option<String>, Query, description = "Only this funnel's"),
        ("before" = Option<i64>, Query, description = "Only incidents older than this id: the last page's `next_before`"),
        ("limit" = Option<usize>, Query, minimum = 1, maximum = 200, description = "Incidents to return (default 50)"),
    ),
    responses(
        (status = 200, description = "Incidents, newest first", body = revloop_api::incidents::IncidentList),
        (status = 400, description = "A query parameter is invalid or unknown", body = revloop_api::ErrorBody),
        (status = 404, description = "No such funnel", body = revloop_api::ErrorBody),
    ),
    security(("api_token" = ["viewer"])),
)]
pub async fn list_incidents(
    State(state): State<AppState>,
    Query(params): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let now = state.clock.now();
    require(&state, &headers, None, Role::Viewer, now).await?;
    let mut query = IncidentQuery {
        open: None,
        funnel: None,
        before_id: None,
        limit: 50,
    };
    for (key, value) in params {
        match key.as_str() {
            "state" => {
                query.open = match value.as_str() {
                    "open" => Some(true),
                    "resolved" => Some(false),
                    "all" => None,
                    _ => {
                        return Err(invalid(
                            "invalid_query",
                            "state",
                            "must be open, resolved or all",
                        ));
                    }
                }
            }
            "funnel" => {
                if !state.config.funnels.iter().any(|f| f.id == value) {
                    let message = no_funnel(&state.config, &value);
                    return Err(ApiError::not_found(message.clone()).with_details(vec![
                        ErrorDetail {
                            index: None,
                            line: None,
                            field: Some("funnel".into()),
                            message,
                        },
                    ]));
                }
                query.funnel = Some(value);
            }
            "before" => {
                query.before_id =
                    Some(value.parse::<i64>().map_err(|_| {
                        invalid("invalid_query", "before", "must be an incident id")
                    })?)
            }
            "limit" => query.limit = parse_limit(&value, INCIDENTS_PAGE_MAX)?,
            other => return Err(unknown_parameter(other, "state, funnel, before or limit")),
        }
    }
    let snapshot = state.incidents.snapshot().await.map_err(store_error)?;
    let incidents = state.incidents.clone();
    let store = state.store.clone();
    let body = blocking(move || {
        let rows = retrying(|| store.list_incidents(&query)).map_err(store_error)?;
        // From the engine where it has them (fresher by a commit at most); the rest, long
        // resolved, from their rows (a summary needs no timeline).
        let mut listed = Vec::with_capacity(rows.len());
        for row in &rows {
            let incident = match snapshot.engine().incident(row.id as u64) {
                Some(incident) => incident.clone(),
                None => incident_from_rows(row, Vec::new()).map_err(store_error)?,
            };
            listed.push(incident_summary_view(&incident, incidents.policy(), now));
        }
        let next = (rows.len() == query.limit)
            .then(|| rows.last().map(|r| r.id))
            .flatten();
        Ok(wire::IncidentList {
            incidents: listed,
            next_before: next,
        })
    })
    .await?;
    Ok(json_reply(StatusCode::OK, &body))
}

/// `GET /api/v1/incidents/{id}`: one incident in full.
#[utoipa::path(
    get, path = "/api/v1/incidents/{id}", tag = "incidents",
    params(("id" = u64, Path, example = 1, description = "The incident's id")),
    responses(
        (status = 200, description = "The incident in full", body = revloop_api::incidents::Incident),
        (status = 404, description = "No such incident", body = revloop_api::ErrorBody),
    ),
    security(("api_token" = ["viewer"])),
)]
pub async fn get_incident(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let now = state.clock.now();
    require(&state, &headers, None, Role::Viewer, now).await?;
    let id = parse_id(&id)?;
    let snapshot = state.incidents.snapshot().await.map_err(store_error)?;
    let in_engine = snapshot.engine().incident(id).cloned();
    let incidents = state.incidents.clone();
    let store = state.store.clone();
    let delivery = state.config.delivery.clone();
    let body = blocking(move || {
        let incident = match in_engine {
            Some(incident) => incident,
            None => incidents
                .stored_incident(id)
                .map_err(store_error)?
                .ok_or_else(|| ApiError::not_found(format!("no incident {id}")))?,
        };
        let suspects =
            retrying(|| suspects(store.as_ref(), &incident, now)).map_err(store_error)?;
        let mut view = incident_view(&incident, incidents.policy(), now, &suspects);
        delivery_log::add_to_timeline(&mut view.timeline, store.as_ref(), delivery.as_ref(), id);
        Ok(view)
    })
    .await?;
    Ok(json_reply(StatusCode::OK, &body))
}

/// An SLA clock as the API shows it. A clock met after it ran out was breached: that is what
/// it stays.
fn sla_clock_view(clock: &SlaClock, now: Timestamp) -> wire::SlaClock {
    let state = if clock.breached {
        wire::SlaState::Breached
    } else if clock.met_at.is_some() {
        wire::SlaState::Met
    } else {
        wire::SlaState::Running
    };
    wire::SlaClock {
        state,
        due: clock.due.to_string(),
        met_at: clock.met_at.map(|t| t.to_string()),
        remaining_ms: (clock.met_at.is_none() && !clock.breached)
            .then(|| clock.due.since(now).millis()),
    }
}

fn since(from: Timestamp, to: Option<Timestamp>) -> Option<i64> {
    to.map(|t| t.since(from).millis())
}

fn severity_view(severity: IncidentSeverity) -> wire::Severity {
    match severity {
        IncidentSeverity::P1 => wire::Severity::P1,
        IncidentSeverity::P2 => wire::Severity::P2,
        IncidentSeverity::P3 => wire::Severity::P3,
    }
}

fn state_view(state: IncidentState) -> wire::IncidentState {
    match state {
        IncidentState::Triggered => wire::IncidentState::Triggered,
        IncidentState::Acknowledged => wire::IncidentState::Acknowledged,
        IncidentState::Mitigated => wire::IncidentState::Mitigated,
        IncidentState::Resolved => wire::IncidentState::Resolved,
    }
}

fn kind_view(kind: AlertKind) -> wire::IncidentKind {
    match kind {
        AlertKind::Conversion => wire::IncidentKind::Conversion,
        AlertKind::Volume => wire::IncidentKind::Volume,
        AlertKind::Guard => wire::IncidentKind::Guard,
        AlertKind::Declared => wire::IncidentKind::Declared,
    }
}

fn trend_view(trend: Trend) -> wire::Trend {
    match trend {
        Trend::Increasing => wire::Trend::Increasing,
        Trend::Stable => wire::Trend::Stable,
        Trend::Decreasing => wire::Trend::Decreasing,
    }
}

fn mitigation_view(mitigation: Mitigation) -> wire::Mitigation {
    match mitigation {
        Mitigation::TrafficRouting => wire::Mitigation::TrafficRouting,
        Mitigation::Rollback => wire::Mitigation::Rollback,
        Mitigation::DisableExperiment => wire::Mitigation::DisableExperiment,
        Mitigation::BackupPaymentProcessor => wire::Mitigation::BackupPaymentProcessor,
        Mitigation::StatusBanner => wire::Mitigation::StatusBanner,
        Mitigation::Other => wire::Mitigation::Other,
    }
}

/// The wire name of a timeline kind: the core's stable name, which the API crate knows.
fn timeline_kind_view(kind: TimelineKind) -> wire::TimelineKind {
    kind.as_str()
        .parse()
        .unwrap_or_else(|_| wire::TimelineKind::Unknown(kind.as_str().to_owned()))
}

/// An incident's headline, for lists.
pub fn incident_summary_view(
    incident: &Incident,
    policy: &IncidentPolicy,
    now: Timestamp,
) -> wire::IncidentSummary {
    let criteria = incident.criteria(policy, now);
    wire::IncidentSummary {
        id: incident.id,
        funnel: incident.funnel.clone(),
        stage: incident.stage.clone(),
        kind: kind_view(incident.kind),
        segment: incident.segment.as_ref().map(segment_view),
        severity: severity_view(incident.severity),
        state: state_view(incident.state),
        silenced: incident.silenced,
        onset: incident.onset.to_string(),
        opened_at: incident.opened_at.to_string(),
        acknowledged_at: incident.acknowledged_at.map(|t| t.to_string()),
        mitigated_at: incident.mitigated_at.map(|t| t.to_string()),
        resolved_at: incident.resolved_at.map(|t| t.to_string()),
        sla: wire::SlaClocks {
            response: sla_clock_view(&incident.response, now),
            resolution: sla_clock_view(&incident.resolution, now),
        },
        times: wire::ResponseTimes {
            to_acknowledge_ms: since(incident.opened_at, incident.acknowledged_at),
            to_mitigate_ms: since(incident.opened_at, incident.mitigated_at),
            to_resolve_ms: since(incident.opened_at, incident.resolved_at),
        },
        trend: trend_view(incident.trend(now)),
        resolvable: incident.is_open() && criteria.iter().all(|c| c.holds),
        recovered_at: incident
            .recovered
            .filter(|_| incident.is_open())
            .map(|r| r.at.to_string()),
        reason: incident.guard_reason.clone(),
        false_alarm: incident.false_alarm,
        impact: incident
            .impact
            .as_ref()
            .map(|impact| impact_summary_view(incident, impact)),
    }
}

/// The level an incident pages next, by name; `None` once escalation has stopped.
fn next_level_view(incident: &Incident, policy: &IncidentPolicy) -> Option<String> {
    let levels = &policy.for_severity(incident.severity).levels;
    incident.escalation.next_at.map(|_| {
        levels
            .get(incident.escalation.next_level)
            .or(levels.last())
            .map_or("", |l| l.name.as_str())
            .to_owned()
    })
}

/// The checklist, each technical item with the ids of the `signals` that speak to it.
fn checklist_view(incident: &Incident, signals: &[SignalRow]) -> Vec<wire::ChecklistItem> {
    let items_of: Vec<(i64, Vec<usize>)> = signals
        .iter()
        .map(|signal| (signal.id, signal_checklist(signal)))
        .collect();
    CHECKLIST
        .iter()
        .zip(&incident.checklist)
        .enumerate()
        .map(|(index, ((category, item), tick))| wire::ChecklistItem {
            index,
            category: (*category).to_owned(),
            item: (*item).to_owned(),
            checked_by: tick.as_ref().map(|t| t.by.clone()),
            checked_at: tick.as_ref().map(|t| t.at.to_string()),
            finding: tick.as_ref().map(|t| t.finding.clone()),
            signals: items_of
                .iter()
                .filter(|(_, items)| items.contains(&index))
                .map(|(id, _)| *id)
                .collect(),
        })
        .collect()
}

/// An incident in full: the headline, escalation, criteria, checklist, suspects (changes and
/// signals), timeline.
pub fn incident_view(
    incident: &Incident,
    policy: &IncidentPolicy,
    now: Timestamp,
    suspects: &Suspects,
) -> wire::Incident {
    wire::Incident {
        summary: incident_summary_view(incident, policy, now),
        escalation: wire::Escalation {
            next_level: next_level_view(incident, policy),
            next_at: incident.escalation.next_at.map(|t| t.to_string()),
            repeats: incident.escalation.repeats,
        },
        criteria: incident
            .criteria(policy, now)
            .into_iter()
            .map(|c| wire::Criterion {
                name: c.name.to_owned(),
                holds: c.holds,
                detail: c.detail,
            })
            .collect(),
        alerts: incident
            .alerts
            .iter()
            .map(|(id, open)| wire::AlertLink {
                alert_id: format!("{id:016x}"),
                open: *open,
            })
            .collect(),
        scope: incident.scope.as_ref().map(|(stage, segment)| wire::Scope {
            stage: stage.clone(),
            segment: segment.as_ref().map(segment_view),
        }),
        // Every breach, including those of clocks a reopen has since restarted.
        sla_breaches: incident
            .timeline
            .iter()
            .filter(|e| e.kind == TimelineKind::SlaBreached)
            .map(|e| wire::SlaBreach {
                at: e.at.to_string(),
                text: e.text.clone(),
            })
            .collect(),
        root_cause: incident.root_cause.clone(),
        mitigations: incident
            .mitigations
            .iter()
            .map(|(m, detail)| wire::MitigationEntry {
                mitigation: mitigation_view(*m),
                detail: detail.clone(),
            })
            .collect(),
        action_items: incident
            .action_items
            .iter()
            .map(|a| wire::ActionItem {
                text: a.text.clone(),
                owner: a.owner.clone(),
                due: a.due.to_string(),
                added_by: a.added_by.clone(),
                added_at: a.added_at.to_string(),
            })
            .collect(),
        checklist: checklist_view(incident, &suspects.signals),
        suspects: suspects
            .changes
            .iter()
            .map(|(suspect, change)| wire::Suspect {
                score: (suspect.score * 1000.0).round() / 1000.0,
                before_onset_ms: suspect.before_onset.millis(),
                reasons: suspect.reasons.clone(),
                change: change_view(change),
            })
            .collect(),
        signals: suspects.signals.iter().map(signal_view).collect(),
        timeline: incident
            .timeline
            .iter()
            .map(|e| wire::TimelineEntry {
                at: e.at.to_string(),
                actor: e.actor.clone(),
                kind: timeline_kind_view(e.kind),
                text: e.text.clone(),
            })
            .collect(),
    }
}
