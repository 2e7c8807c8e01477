//! The incidents area: list incidents and read one (viewer role), and the views of an
//! incident the whole API answers with (its headline for lists, in full for one incident and
//! for every action's reply). Acting on incidents is `actions`; the report and the outbox have
//! their own modules. It never changes an incident.

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use revloop_core::change::Suspect;
use revloop_core::incident::{CHECKLIST, Incident, IncidentPolicy, SlaClock};
use revloop_core::time::Timestamp;
use revloop_store::{ChangeRow, IncidentQuery, Role};

use crate::api::changes::change_json;
use crate::api::{AppState, require, store_error};
use crate::http::query::{parse_limit, unknown_parameter};
use crate::http::{ApiError, ErrorDetail, blocking, invalid};
use crate::incidents::incident_from_rows;
use crate::suspects::suspects;

/// Most incidents one list request returns.
pub const INCIDENTS_PAGE_MAX: usize = 200;

/// An incident id from the path; not a number is no incident.
pub fn parse_id(text: &str) -> Result<u64, ApiError> {
    text.parse::<u64>()
        .map_err(|_| ApiError::not_found(format!("no incident `{text}`: ids are numbers")))
}

/// `GET /api/v1/incidents?state=open|resolved|all&funnel=&before=&limit=`: newest first.
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
                    return Err(
                        ApiError::not_found(format!("no funnel `{value}`")).with_details(vec![
                            ErrorDetail {
                                index: None,
                                line: None,
                                field: Some("funnel".into()),
                                message: format!("no funnel `{value}`"),
                            },
                        ]),
                    );
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
    let incidents = state.incidents.clone();
    let store = state.store.clone();
    let body = blocking(move || {
        let rows = store.list_incidents(&query).map_err(store_error)?;
        // From the engine where it has them (fresher by a commit at most); the rest, long
        // resolved, from their rows (a summary needs no timeline).
        let in_engine = incidents
            .with_engine(|engine| {
                rows.iter()
                    .map(|row| engine.incident(row.id as u64).cloned())
                    .collect::<Vec<_>>()
            })
            .map_err(store_error)?;
        let mut listed = Vec::with_capacity(rows.len());
        for (row, found) in rows.iter().zip(in_engine) {
            let incident = match found {
                Some(incident) => incident,
                None => incident_from_rows(row, Vec::new()).map_err(store_error)?,
            };
            listed.push(incident_summary_json(&incident, incidents.policy(), now));
        }
        let next = (rows.len() == query.limit)
            .then(|| rows.last().map(|r| r.id))
            .flatten();
        Ok(json!({ "incidents": listed, "next_before": next }))
    })
    .await?;
    Ok(axum::Json(body).into_response())
}

/// `GET /api/v1/incidents/{id}`: one incident in full.
pub async fn get_incident(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let now = state.clock.now();
    require(&state, &headers, None, Role::Viewer, now).await?;
    let id = parse_id(&id)?;
    let incidents = state.incidents.clone();
    let store = state.store.clone();
    let body = blocking(move || {
        let incident = incidents
            .incident(id)
            .map_err(store_error)?
            .ok_or_else(|| ApiError::not_found(format!("no incident {id}")))?;
        let suspects = suspects(store.as_ref(), &incident).map_err(store_error)?;
        Ok(incident_json(&incident, incidents.policy(), now, &suspects))
    })
    .await?;
    Ok(axum::Json(body).into_response())
}

fn clock_json(clock: &SlaClock, now: Timestamp) -> Value {
    // A clock met after it ran out was breached: that is what it stays.
    let state = if clock.breached {
        "breached"
    } else if clock.met_at.is_some() {
        "met"
    } else {
        "running"
    };
    json!({
        "state": state,
        "due": clock.due.to_string(),
        "met_at": clock.met_at.map(|t| t.to_string()),
        "remaining_ms": (clock.met_at.is_none() && !clock.breached)
            .then(|| clock.due.since(now).millis()),
    })
}

fn since(from: Timestamp, to: Option<Timestamp>) -> Option<i64> {
    to.map(|t| t.since(from).millis())
}

/// An incident's headline, for lists.
pub fn incident_summary_json(
    incident: &Incident,
    policy: &IncidentPolicy,
    now: Timestamp,
) -> Value {
    let criteria = incident.criteria(policy, now);
    json!({
        "id": incident.id,
        "funnel": incident.funnel,
        "stage": incident.stage,
        "kind": incident.kind.as_str(),
        "segment": incident.segment.as_ref().map(|(d, v)| json!({"dimension": d, "value": v})),
        "severity": incident.severity.as_str(),
        "state": incident.state.as_str(),
        "silenced": incident.silenced,
        "onset": incident.onset.to_string(),
        "opened_at": incident.opened_at.to_string(),
        "acknowledged_at": incident.acknowledged_at.map(|t| t.to_string()),
        "mitigated_at": incident.mitigated_at.map(|t| t.to_string()),
        "resolved_at": incident.resolved_at.map(|t| t.to_string()),
        "sla": {
            "response": clock_json(&incident.response, now),
            "resolution": clock_json(&incident.resolution, now),
        },
        "times": {
            "to_acknowledge_ms": since(incident.opened_at, incident.acknowledged_at),
            "to_mitigate_ms": since(incident.opened_at, incident.mitigated_at),
            "to_resolve_ms": since(incident.opened_at, incident.resolved_at),
        },
        "trend": incident.trend(now).as_str(),
        "resolvable": incident.is_open() && criteria.iter().all(|c| c.holds),
    })
}

/// An incident in full: the headline, escalation, criteria, checklist, suspects, timeline.
pub fn incident_json(
    incident: &Incident,
    policy: &IncidentPolicy,
    now: Timestamp,
    suspects: &[(Suspect, ChangeRow)],
) -> Value {
    let mut body = incident_summary_json(incident, policy, now);
    let levels = &policy.severities[match incident.severity.as_str() {
        "P1" => 0,
        "P2" => 1,
        _ => 2,
    }]
    .levels;
    let next_level = incident.escalation.next_at.map(|_| {
        levels
            .get(incident.escalation.next_level)
            .or(levels.last())
            .map_or("", |l| l.name.as_str())
    });
    let extra = json!({
        "escalation": {
            "next_level": next_level,
            "next_at": incident.escalation.next_at.map(|t| t.to_string()),
            "repeats": incident.escalation.repeats,
        },
        "criteria": incident.criteria(policy, now).iter().map(|c| json!({
            "name": c.name,
            "holds": c.holds,
            "detail": c.detail,
        })).collect::<Vec<_>>(),
        "alerts": incident.alerts.iter().map(|(id, open)| json!({
            "alert_id": format!("{id:016x}"),
            "open": open,
        })).collect::<Vec<_>>(),
        "scope": incident.scope.as_ref().map(|(stage, segment)| json!({
            "stage": stage,
            "segment": segment.as_ref().map(|(d, v)| json!({"dimension": d, "value": v})),
        })),
        // Every breach, including those of clocks a reopen has since restarted.
        "sla_breaches": incident.timeline.iter().filter(|e| e.kind == "sla_breached").map(|e| json!({
            "at": e.at.to_string(),
            "text": e.text,
        })).collect::<Vec<_>>(),
        "root_cause": incident.root_cause,
        "mitigations": incident.mitigations.iter().map(|(m, detail)| json!({
            "mitigation": m.as_str(),
            "detail": detail,
        })).collect::<Vec<_>>(),
        "action_items": incident.action_items.iter().map(|a| json!({
            "text": a.text,
            "owner": a.owner,
            "due": a.due.to_string(),
            "added_by": a.added_by,
            "added_at": a.added_at.to_string(),
        })).collect::<Vec<_>>(),
        "checklist": CHECKLIST.iter().zip(&incident.checklist).enumerate().map(|(index, ((category, item), tick))| json!({
            "index": index,
            "category": category,
            "item": item,
            "checked_by": tick.as_ref().map(|t| t.by.clone()),
            "checked_at": tick.as_ref().map(|t| t.at.to_string()),
            "finding": tick.as_ref().map(|t| t.finding.clone()),
        })).collect::<Vec<_>>(),
        "suspects": suspects.iter().map(|(suspect, change)| json!({
            "score": (suspect.score * 1000.0).round() / 1000.0,
            "before_onset_ms": suspect.before_onset.millis(),
            "reasons": suspect.reasons,
            "change": change_json(change),
        })).collect::<Vec<_>>(),
        "timeline": incident.timeline.iter().map(|e| json!({
            "at": e.at.to_string(),
            "actor": e.actor,
            "kind": e.kind,
            "text": e.text,
        })).collect::<Vec<_>>(),
    });
    if let (Value::Object(body), Value::Object(extra)) = (&mut body, extra) {
        body.extend(extra);
    }
    body
}
