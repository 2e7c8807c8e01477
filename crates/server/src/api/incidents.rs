//! The incidents API: list and read incidents, act on them (responder role), the outbox, the
//! response-time report, and the changes that may explain an incident.

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use revloop_core::change::ChangeKind;
use revloop_core::incident::{
    Action, ActionError, AddedSilence, DurationSummary, IncidentSeverity, Mitigation, Silence,
    SilenceError, TEXT_BYTES_MAX,
};
use revloop_core::time::{MS_PER_DAY, Timestamp};
use revloop_store::{ChangeRow, IncidentQuery, Role, StoreError};

use crate::api::{AppState, identify, require};
use crate::http::{ApiError, ErrorDetail, blocking, decode_body, is_gzip, read_body};
use crate::incidents::{
    change_json, incident_from_rows, incident_json, incident_summary_json, suspects,
};

/// Largest body of an incident action or a change.
pub const ACTION_BYTES_MAX: usize = 16 * 1024;
/// Most incidents one list request returns.
pub const INCIDENTS_PAGE_MAX: usize = 200;
/// Most outbox rows one request returns.
pub const OUTBOX_PAGE_MAX: usize = 1_000;
/// Most changes one request returns.
pub const CHANGES_PAGE_MAX: usize = 1_000;
/// Longest range the response-time report reads.
pub const REPORT_RANGE_MAX_MS: i64 = 366 * MS_PER_DAY;
/// How far ahead of the server's clock a change may be dated (a scheduled change).
pub const CHANGE_AHEAD_MAX_MS: i64 = MS_PER_DAY;
/// How far back a change may be dated (suspects look back a day; a year covers imports).
pub const CHANGE_AGE_MAX_MS: i64 = 366 * MS_PER_DAY;
/// Longest change summary, in bytes (the detail may take `TEXT_BYTES_MAX`).
pub const SUMMARY_BYTES_MAX: usize = 200;

/// The actions, by their path segment.
const ACTIONS: [&str; 10] = [
    "acknowledge",
    "note",
    "scope",
    "severity",
    "mitigate",
    "root-cause",
    "action-items",
    "checklist",
    "resolve",
    "reopen",
];

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/incidents", get(list_incidents))
        .route("/api/v1/incidents/report", get(report))
        .route("/api/v1/incidents/{id}", get(get_incident))
        .route(
            "/api/v1/incidents/{id}/{action}",
            post(act).layer(DefaultBodyLimit::max(ACTION_BYTES_MAX)),
        )
        .route("/api/v1/outbox", get(outbox))
        .route(
            "/api/v1/silences",
            get(list_silences)
                .post(add_silence)
                .layer(DefaultBodyLimit::max(ACTION_BYTES_MAX)),
        )
        .route("/api/v1/silences/{id}", delete(end_silence))
        .route(
            "/api/v1/changes",
            get(list_changes)
                .post(add_change)
                .layer(DefaultBodyLimit::max(ACTION_BYTES_MAX)),
        )
}

fn invalid(code: &'static str, field: &str, message: impl Into<String>) -> ApiError {
    let message = message.into();
    ApiError::bad_request(code, format!("{field}: {message}")).with_details(vec![ErrorDetail {
        index: None,
        line: None,
        field: Some(field.to_owned()),
        message,
    }])
}

/// A change's or silence's funnel and stage, where given, must be configured (a stage in the
/// funnel given, or in any funnel).
fn check_scope(
    state: &AppState,
    funnel: Option<&str>,
    stage: Option<&str>,
) -> Result<(), ApiError> {
    if let Some(id) = funnel
        && !state.config.funnels.iter().any(|f| f.id == id)
    {
        return Err(invalid(
            "invalid_field",
            "funnel",
            format!("no funnel `{id}`"),
        ));
    }
    if let Some(stage) = stage {
        let known = state
            .config
            .funnels
            .iter()
            .filter(|f| funnel.is_none_or(|id| f.id == id))
            .any(|f| f.stages.iter().any(|s| s.id == stage));
        if !known {
            return Err(invalid(
                "invalid_field",
                "stage",
                format!("no stage `{stage}`"),
            ));
        }
    }
    Ok(())
}

fn unknown_parameter(name: &str, known: &str) -> ApiError {
    invalid(
        "invalid_query",
        name,
        format!("not a query parameter; use {known}"),
    )
}

fn store_error(err: StoreError) -> ApiError {
    ApiError::internal("the incident store failed", err)
}

fn parse_id(text: &str) -> Result<u64, ApiError> {
    text.parse::<u64>()
        .map_err(|_| ApiError::not_found(format!("no incident `{text}`: ids are numbers")))
}

fn parse_limit(value: &str, max: usize) -> Result<usize, ApiError> {
    value
        .parse::<usize>()
        .ok()
        .filter(|n| (1..=max).contains(n))
        .ok_or_else(|| {
            invalid(
                "invalid_query",
                "limit",
                format!("must be a number from 1 to {max}"),
            )
        })
}

fn parse_time(field: &str, value: &str) -> Result<Timestamp, ApiError> {
    Timestamp::parse_rfc3339(value).map_err(|err| invalid("invalid_query", field, err.to_string()))
}

/// `GET /api/v1/incidents?state=open|resolved|all&funnel=&before=&limit=`: newest first.
async fn list_incidents(
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
async fn get_incident(
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

/// The body of every action; which fields are needed depends on the action.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ActionBody {
    reason: Option<String>,
    text: Option<String>,
    stage: Option<String>,
    segment: Option<SegmentBody>,
    severity: Option<String>,
    mitigation: Option<String>,
    detail: Option<String>,
    owner: Option<String>,
    due: Option<String>,
    index: Option<usize>,
    finding: Option<String>,
}

impl ActionBody {
    /// Refuses fields that the action does not take (a `severity` sent with a note would
    /// otherwise be silently ignored).
    fn only(&self, action: &str) -> Result<(), ApiError> {
        // A note, root cause, action item or finding is its own why: no `reason` beside it.
        let taken: &[&str] = match action {
            "note" | "root-cause" => &["text"],
            "scope" => &["stage", "segment", "reason"],
            "severity" => &["severity", "reason"],
            "mitigate" => &["mitigation", "detail", "reason"],
            "action-items" => &["text", "owner", "due"],
            "checklist" => &["index", "finding"],
            _ => &["reason"],
        };
        let present = [
            ("reason", self.reason.is_some()),
            ("text", self.text.is_some()),
            ("stage", self.stage.is_some()),
            ("segment", self.segment.is_some()),
            ("severity", self.severity.is_some()),
            ("mitigation", self.mitigation.is_some()),
            ("detail", self.detail.is_some()),
            ("owner", self.owner.is_some()),
            ("due", self.due.is_some()),
            ("index", self.index.is_some()),
            ("finding", self.finding.is_some()),
        ];
        match present
            .iter()
            .find(|(field, is_set)| *is_set && !taken.contains(field))
        {
            Some((field, _)) if ACTIONS.contains(&action) => {
                let takes = format!("`{}`", taken.join("`, `"));
                Err(invalid(
                    "invalid_field",
                    field,
                    format!("does not apply to `{action}`, which takes {takes}"),
                ))
            }
            _ => Ok(()),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SegmentBody {
    dimension: String,
    value: String,
}

/// A JSON body (gzip or not, at most `ACTION_BYTES_MAX`); an empty body is the default.
fn json_body<T: for<'de> Deserialize<'de> + Default>(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    let bytes = read_body(body, ACTION_BYTES_MAX)?;
    let text = decode_body(&bytes, is_gzip(headers)?, ACTION_BYTES_MAX)?;
    if text.trim().is_empty() {
        return Ok(T::default());
    }
    let value: Value = serde_json::from_str(&text).map_err(|err| {
        ApiError::bad_request("invalid_json", format!("the body is not JSON: {err}")).with_details(
            vec![ErrorDetail {
                index: None,
                line: Some(err.line()),
                field: None,
                message: err.to_string(),
            }],
        )
    })?;
    let Value::Object(fields) = &value else {
        return Err(ApiError::bad_request(
            "invalid_json",
            "the body must be a JSON object",
        ));
    };
    serde_json::from_value(value.clone()).map_err(|err| {
        // Every field is optional, so the first field that cannot stand alone is the culprit:
        // name it.
        let culprit = fields.iter().find(|(key, field)| {
            let alone = Value::Object([((*key).clone(), (*field).clone())].into_iter().collect());
            serde_json::from_value::<T>(alone).is_err()
        });
        let message = err.to_string().replace(
            "struct SegmentBody",
            "an object with `dimension` and `value`",
        );
        match culprit {
            Some((key, _)) => invalid("invalid_field", key, message),
            None => ApiError::bad_request("invalid_json", message),
        }
    })
}

fn needed(field: &str, value: Option<String>) -> Result<String, ApiError> {
    value.ok_or_else(|| invalid("missing_field", field, "is required for this action"))
}

/// Reads an action from its path segment and body.
fn parse_action(state: &AppState, name: &str, body: ActionBody) -> Result<Action, ApiError> {
    Ok(match name {
        "acknowledge" => Action::Acknowledge,
        "resolve" => Action::Resolve,
        "reopen" => Action::Reopen,
        "note" => Action::Note(needed("text", body.text)?),
        "root-cause" => Action::RootCause(needed("text", body.text)?),
        "scope" => {
            let stage = needed("stage", body.stage)?;
            let known_stage = state
                .config
                .funnels
                .iter()
                .any(|f| f.stages.iter().any(|s| s.id == stage));
            if !known_stage {
                return Err(invalid(
                    "invalid_field",
                    "stage",
                    format!("no stage `{stage}` in any funnel"),
                ));
            }
            let segment = match body.segment {
                Some(segment) => {
                    if !state.config.has_dimension(&segment.dimension) {
                        return Err(invalid(
                            "invalid_field",
                            "segment.dimension",
                            format!(
                                "no dimension `{}`; configured: {}",
                                segment.dimension,
                                state.config.dimension_list()
                            ),
                        ));
                    }
                    Some((segment.dimension, segment.value))
                }
                None => None,
            };
            Action::SetScope { stage, segment }
        }
        "severity" => {
            let text = needed("severity", body.severity)?;
            let severity = IncidentSeverity::parse(&text.to_ascii_uppercase())
                .ok_or_else(|| invalid("invalid_field", "severity", "must be P1, P2 or P3"))?;
            Action::SetSeverity(severity)
        }
        "mitigate" => {
            let text = needed("mitigation", body.mitigation)?;
            let mitigation = Mitigation::parse(&text).ok_or_else(|| {
                let names: Vec<&str> = Mitigation::ALL.iter().map(|m| m.as_str()).collect();
                invalid(
                    "invalid_field",
                    "mitigation",
                    format!("must be one of {}", names.join(", ")),
                )
            })?;
            Action::Mitigate {
                mitigation,
                detail: body.detail.unwrap_or_default(),
            }
        }
        "action-items" => {
            let due = needed("due", body.due)?;
            let due = Timestamp::parse_rfc3339(&due)
                .map_err(|err| invalid("invalid_field", "due", err.to_string()))?;
            Action::ActionItem {
                text: needed("text", body.text)?,
                owner: needed("owner", body.owner)?,
                due,
            }
        }
        "checklist" => Action::CheckItem {
            index: body
                .index
                .ok_or_else(|| invalid("missing_field", "index", "is required for this action"))?,
            finding: body.finding.unwrap_or_default(),
        },
        other => {
            return Err(ApiError::not_found(format!(
                "no action `{other}`; actions are {}",
                ACTIONS.join(", ")
            )));
        }
    })
}

fn action_error(err: ActionError) -> ApiError {
    let message = err.to_string();
    match err {
        ActionError::UnknownIncident(_) => ApiError::not_found(message),
        ActionError::IllegalTransition { .. } => {
            ApiError::new(StatusCode::CONFLICT, "illegal_transition", message)
        }
        ActionError::AnotherIsOpen(_) => {
            ApiError::new(StatusCode::CONFLICT, "another_is_open", message)
        }
        ActionError::SeverityUnchanged(_) => {
            ApiError::new(StatusCode::CONFLICT, "unchanged", message)
        }
        ActionError::TooManyActionItems | ActionError::TimelineFull => {
            ApiError::new(StatusCode::CONFLICT, "incident_full", message)
        }
        ActionError::TooLong { field } => invalid("too_long", field, message),
        ActionError::Empty { field } => invalid("empty_field", field, message),
        ActionError::UnknownChecklistItem(_) => invalid("invalid_field", "index", message),
        ActionError::DowngradeWithoutReason | ActionError::ResolveWithoutReason(_) => {
            invalid("missing_field", "reason", message)
        }
    }
}

/// `POST /api/v1/incidents/{id}/{action}`: a responder acts; the incident as it is after.
async fn act(
    State(state): State<AppState>,
    Path((id, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let now = state.clock.now();
    let actor = identify(&state, &headers, Role::Responder, now).await?;
    let id = parse_id(&id)?;
    let body: ActionBody = json_body(&headers, body)?;
    body.only(&name)?;
    let reason = body.reason.clone().filter(|r| !r.trim().is_empty());
    let action = parse_action(&state, &name, body)?;
    let incidents = state.incidents.clone();
    let store = state.store.clone();
    let reply = blocking(move || {
        let incident = incidents
            .act(id, &actor, &action, reason.as_deref(), now)
            .map_err(store_error)?
            .map_err(action_error)?;
        tracing::info!(incident = id, actor = %actor, action = action.name(), "incident action");
        let suspects = suspects(store.as_ref(), &incident).map_err(store_error)?;
        Ok(incident_json(&incident, incidents.policy(), now, &suspects))
    })
    .await?;
    Ok(axum::Json(reply).into_response())
}

/// `GET /api/v1/outbox?after=&limit=`: what the incidents owe the outside, oldest first.
async fn outbox(
    State(state): State<AppState>,
    Query(params): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    require(&state, &headers, None, Role::Viewer, state.clock.now()).await?;
    let mut after = 0;
    let mut limit = 100;
    for (key, value) in params {
        match key.as_str() {
            "after" => {
                after = value
                    .parse::<i64>()
                    .ok()
                    .filter(|after| *after >= 0)
                    .ok_or_else(|| {
                        invalid("invalid_query", "after", "must be an outbox id (0 or more)")
                    })?
            }
            "limit" => limit = parse_limit(&value, OUTBOX_PAGE_MAX)?,
            other => return Err(unknown_parameter(other, "after or limit")),
        }
    }
    let store = state.store.clone();
    let body = blocking(move || {
        let rows = store.outbox(after, limit).map_err(store_error)?;
        let effects: Vec<Value> = rows
            .iter()
            .map(|row| {
                let mut effect: Value = serde_json::from_str(&row.body).unwrap_or(Value::Null);
                if let Value::Object(map) = &mut effect {
                    map.insert("id".into(), json!(row.id));
                }
                effect
            })
            .collect();
        Ok(json!({
            "outbox": effects,
            "next_after": rows.last().map_or(after, |r| r.id),
        }))
    })
    .await?;
    Ok(axum::Json(body).into_response())
}

/// `GET /api/v1/incidents/report?from=&to=`: time to acknowledge, mitigate and resolve per
/// severity, over the incidents opened in the range (default: the last 30 days).
async fn report(
    State(state): State<AppState>,
    Query(params): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let now = state.clock.now();
    require(&state, &headers, None, Role::Viewer, now).await?;
    let mut from = Timestamp(now.0 - 30 * MS_PER_DAY);
    let mut to = now;
    for (key, value) in params {
        match key.as_str() {
            "from" => from = parse_time("from", &value)?,
            "to" => to = parse_time("to", &value)?,
            other => return Err(unknown_parameter(other, "from or to")),
        }
    }
    if from >= to || to.0 - from.0 > REPORT_RANGE_MAX_MS {
        return Err(invalid(
            "invalid_query",
            "from",
            "`from` must be before `to`, at most 366 days apart",
        ));
    }
    let store = state.store.clone();
    let body = blocking(move || {
        let rows = store.resolved_incidents(from, to).map_err(store_error)?;
        let mut severities = serde_json::Map::new();
        for severity in ["P1", "P2", "P3"] {
            let of = |pick: &dyn Fn(&revloop_store::IncidentRow) -> Option<Timestamp>| {
                DurationSummary::of(
                    rows.iter()
                        .filter(|r| r.severity.as_str() == severity)
                        .filter_map(|r| pick(r).map(|t| t.since(r.opened_at)))
                        .collect(),
                )
            };
            severities.insert(
                severity.to_owned(),
                json!({
                    "incidents": rows.iter().filter(|r| r.severity.as_str() == severity).count(),
                    "to_acknowledge": summary_json(of(&|r| r.acknowledged_at)),
                    "to_mitigate": summary_json(of(&|r| r.mitigated_at)),
                    "to_resolve": summary_json(of(&|r| r.resolved_at)),
                }),
            );
        }
        Ok(json!({
            "from": from.to_string(),
            "to": to.to_string(),
            "resolved_incidents": rows.len(),
            "severities": severities,
        }))
    })
    .await?;
    Ok(axum::Json(body).into_response())
}

fn summary_json(summary: Option<DurationSummary>) -> Value {
    summary.map_or(Value::Null, |s| {
        json!({
            "count": s.count,
            "mean_ms": s.mean.millis(),
            "median_ms": s.median.millis(),
            "p90_ms": s.p90.millis(),
            "max_ms": s.max.millis(),
        })
    })
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChangeBody {
    at: Option<String>,
    kind: Option<String>,
    summary: Option<String>,
    detail: Option<String>,
    funnel: Option<String>,
    stage: Option<String>,
    segment: Option<SegmentBody>,
    external_id: Option<String>,
}

/// `POST /api/v1/changes`: records a change (responder role); 201 when new, 200 when the
/// `external_id` was recorded before.
async fn add_change(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let now = state.clock.now();
    let author = identify(&state, &headers, Role::Responder, now).await?;
    let body: ChangeBody = json_body(&headers, body)?;
    let kind = needed("kind", body.kind)?;
    let Some(kind) = ChangeKind::parse(&kind) else {
        let names: Vec<&str> = ChangeKind::ALL.iter().map(|k| k.as_str()).collect();
        return Err(invalid(
            "invalid_field",
            "kind",
            format!("must be one of {}", names.join(", ")),
        ));
    };
    let summary = needed("summary", body.summary)?;
    if summary.trim().is_empty() || summary.len() > SUMMARY_BYTES_MAX {
        return Err(invalid(
            "invalid_field",
            "summary",
            format!("must be 1 to {SUMMARY_BYTES_MAX} bytes"),
        ));
    }
    let detail = body.detail.unwrap_or_default();
    if detail.len() > TEXT_BYTES_MAX {
        return Err(invalid(
            "too_long",
            "detail",
            format!("is longer than {TEXT_BYTES_MAX} bytes"),
        ));
    }
    let at = match body.at {
        Some(text) => Timestamp::parse_rfc3339(&text)
            .map_err(|err| invalid("invalid_field", "at", err.to_string()))?,
        None => now,
    };
    if at.0 > now.0 + CHANGE_AHEAD_MAX_MS || at.0 < now.0 - CHANGE_AGE_MAX_MS {
        return Err(invalid(
            "invalid_field",
            "at",
            format!("{at} is more than a day ahead of or a year behind the server's clock ({now})"),
        ));
    }
    check_scope(&state, body.funnel.as_deref(), body.stage.as_deref())?;
    let funnel = body.funnel;
    if let Some(segment) = &body.segment
        && !state.config.has_dimension(&segment.dimension)
    {
        return Err(invalid(
            "invalid_field",
            "segment.dimension",
            format!(
                "no dimension `{}`; configured: {}",
                segment.dimension,
                state.config.dimension_list()
            ),
        ));
    }
    if body
        .external_id
        .as_ref()
        .is_some_and(|id| id.is_empty() || id.len() > SUMMARY_BYTES_MAX)
    {
        return Err(invalid(
            "invalid_field",
            "external_id",
            format!("must be 1 to {SUMMARY_BYTES_MAX} bytes"),
        ));
    }
    let row = ChangeRow {
        id: 0,
        at,
        kind,
        summary,
        detail,
        funnel,
        stage: body.stage,
        segment: body.segment.map(|s| (s.dimension, s.value)),
        author,
        external_id: body.external_id,
        recorded_at: now,
    };
    let store = state.store.clone();
    let sent = row.clone();
    let (stored, new) = blocking(move || store.insert_change(&row).map_err(store_error)).await?;
    let content = |c: &ChangeRow| {
        (
            c.at,
            c.kind,
            c.summary.clone(),
            c.detail.clone(),
            c.funnel.clone(),
            c.stage.clone(),
            c.segment.clone(),
        )
    };
    if !new && content(&stored) != content(&sent) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "external_id_conflict",
            format!(
                "external_id `{}` was recorded as change {} with different content; nothing was stored",
                stored.external_id.as_deref().unwrap_or_default(),
                stored.id
            ),
        ));
    }
    let status = if new {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, axum::Json(change_json(&stored))).into_response())
}

/// `GET /api/v1/changes?from=&to=&limit=`: newest first (default: the last 7 days).
async fn list_changes(
    State(state): State<AppState>,
    Query(params): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let now = state.clock.now();
    require(&state, &headers, None, Role::Viewer, now).await?;
    let mut from = Timestamp(now.0 - 7 * MS_PER_DAY);
    let mut to = Timestamp(now.0 + 1);
    let mut limit = 100;
    for (key, value) in params {
        match key.as_str() {
            "from" => from = parse_time("from", &value)?,
            "to" => to = parse_time("to", &value)?,
            "limit" => limit = parse_limit(&value, CHANGES_PAGE_MAX)?,
            other => return Err(unknown_parameter(other, "from, to or limit")),
        }
    }
    if from >= to {
        return Err(invalid(
            "invalid_query",
            "from",
            "`from` must be before `to`",
        ));
    }
    let store = state.store.clone();
    let body = blocking(move || {
        let rows = store.changes(from, to, limit).map_err(store_error)?;
        Ok(json!({ "changes": rows.iter().map(change_json).collect::<Vec<_>>() }))
    })
    .await?;
    Ok(axum::Json(body).into_response())
}

/// A silence as JSON: the shape the silences API returns.
fn silence_json(silence: &Silence, added: Option<&AddedSilence>, now: Timestamp) -> Value {
    json!({
        "id": added.map(|a| a.id),
        "source": if added.is_some() { "api" } else { "config" },
        "funnel": silence.funnel,
        "stage": silence.stage,
        "from": silence.from.to_string(),
        "to": silence.to.to_string(),
        "reason": silence.reason,
        "state": if now < silence.from {
            "scheduled"
        } else if now < silence.to {
            "active"
        } else {
            "ended"
        },
        "added_by": added.map(|a| a.added_by.clone()),
        "added_at": added.map(|a| a.added_at.to_string()),
    })
}

/// `GET /api/v1/silences`: the config's silences and those added through the API.
async fn list_silences(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let now = state.clock.now();
    require(&state, &headers, None, Role::Viewer, now).await?;
    let incidents = state.incidents.clone();
    let body = blocking(move || {
        incidents
            .with_engine(|engine| {
                let (configured, added) = engine.silences();
                let silences: Vec<Value> = configured
                    .iter()
                    .map(|s| silence_json(s, None, now))
                    .chain(added.iter().map(|a| silence_json(&a.silence, Some(a), now)))
                    .collect();
                json!({ "silences": silences })
            })
            .map_err(store_error)
    })
    .await?;
    Ok(axum::Json(body).into_response())
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SilenceBody {
    funnel: Option<String>,
    stage: Option<String>,
    from: Option<String>,
    to: Option<String>,
    reason: Option<String>,
}

/// `POST /api/v1/silences` (responder): a maintenance window from `from` (default now) to
/// `to`, RFC 3339 instants (with their offset, so daylight saving cannot shift them).
async fn add_silence(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let now = state.clock.now();
    let actor = identify(&state, &headers, Role::Responder, now).await?;
    let body: SilenceBody = json_body(&headers, body)?;
    let time = |field: &str, value: Option<String>| -> Result<Option<Timestamp>, ApiError> {
        value
            .map(|text| {
                Timestamp::parse_rfc3339(&text)
                    .map_err(|err| invalid("invalid_field", field, err.to_string()))
            })
            .transpose()
    };
    let from = time("from", body.from)?.unwrap_or(now);
    let to = time("to", body.to)?
        .ok_or_else(|| invalid("missing_field", "to", "is required: when the silence ends"))?;
    check_scope(&state, body.funnel.as_deref(), body.stage.as_deref())?;
    let funnel = body.funnel;
    let silence = Silence {
        funnel,
        stage: body.stage,
        from,
        to,
        reason: needed("reason", body.reason)?,
    };
    let incidents = state.incidents.clone();
    let (id, silence) = blocking(move || {
        let id = incidents
            .add_silence(&actor, &silence, now)
            .map_err(store_error)?
            .map_err(|err| {
                let field = match err {
                    SilenceError::Reason => "reason",
                    SilenceError::Ended | SilenceError::TooLong => "to",
                    SilenceError::Backwards => "from",
                    SilenceError::TooMany => "silences",
                };
                invalid("invalid_field", field, err.to_string())
            })?;
        Ok((id, silence))
    })
    .await?;
    tracing::info!(silence = id, reason = %silence.reason, "silence added");
    let mut reply = silence_json(&silence, None, now);
    reply["id"] = json!(id);
    reply["source"] = json!("api");
    Ok((StatusCode::CREATED, axum::Json(reply)).into_response())
}

/// `DELETE /api/v1/silences/{id}` (responder): ends an added silence now.
async fn end_silence(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let now = state.clock.now();
    identify(&state, &headers, Role::Responder, now).await?;
    let not_found = || {
        ApiError::not_found(format!(
            "no silence `{id}` added through the API (config silences end by editing the config)"
        ))
    };
    let key = id.parse::<u64>().map_err(|_| not_found())?;
    let incidents = state.incidents.clone();
    let ended = blocking(move || incidents.end_silence(key, now).map_err(store_error))
        .await?
        .ok_or_else(not_found)?;
    let mut reply = silence_json(&ended.silence, Some(&ended), now);
    reply["state"] = json!("ended");
    reply["ended_at"] = json!(now.to_string());
    Ok(axum::Json(reply).into_response())
}
