//! The inbound signals area: `POST /api/v1/signals/alertmanager` takes Prometheus
//! Alertmanager's webhook (payload version 4) and `POST /api/v1/signals/events` takes
//! PagerDuty-Events-v2-shaped events, both with a responder token (as a change does: context
//! for incidents, not traffic). Each alert or event is upserted as one signal by its
//! fingerprint or dedup key; the reply names the open incidents it attaches to now. The view
//! of a signal is here; incidents list theirs (see `suspects`).
//!
//! Bad input never panics and never stores anything: the whole body is read and checked first,
//! and a refusal is a 4xx naming the field (`alerts[2].startsAt`, `payload.severity`).

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use revloop_api::signals as wire;
use revloop_core::Timestamp;
use revloop_core::signal::{SignalSource, SignalStatus, technical_items};
use revloop_store::{Role, SignalRow};

use crate::api::{AppState, json_reply, require, store_error};
use crate::http::{ApiError, ErrorDetail, blocking, decode_body, invalid, is_gzip, read_body};
use crate::suspects::attached_incidents;

/// Largest signal body, decoded (Alertmanager sends a whole group in one).
pub const SIGNAL_BODY_BYTES_MAX: usize = 1024 * 1024;
/// Most alerts one Alertmanager body may carry (set `max_alerts` below it in Alertmanager).
pub const ALERTS_PER_PAYLOAD_MAX: usize = 1_000;
/// Most labels (or annotations) one alert may carry.
pub const LABELS_PER_SIGNAL_MAX: usize = 64;
/// Most bytes of one alert's label names and values together, or of an event's details as
/// JSON.
pub const LABELS_BYTES_MAX: usize = 16 * 1024;
/// Longest fingerprint or dedup key, in bytes (PagerDuty's limit).
pub const SIGNAL_KEY_BYTES_MAX: usize = 255;
/// Longest summary kept, in bytes; a longer one is cut at a character boundary (PagerDuty
/// truncates alike).
pub const SIGNAL_SUMMARY_BYTES_MAX: usize = 1_024;

/// The label names that name a signal's funnel and stage, in order of preference.
const FUNNEL_LABELS: [&str; 2] = ["revloop_funnel", "funnel"];
const STAGE_LABELS: [&str; 2] = ["revloop_stage", "stage"];

/// `POST /api/v1/signals/alertmanager`: an Alertmanager webhook (version 4).
#[utoipa::path(
    post, path = "/api/v1/signals/alertmanager", tag = "signals",
    request_body(content = revloop_api::signals::AlertmanagerWebhook, content_type = "application/json"),
    responses(
        (status = 200, description = "Every alert stored as a signal; the open incidents they attach to", body = revloop_api::signals::AlertmanagerReply),
        (status = 400, description = "A field is missing or invalid; nothing was stored", body = revloop_api::ErrorBody),
        (status = 413, description = "The body is over 1 MiB", body = revloop_api::ErrorBody),
        (status = 415, description = "A `Content-Encoding` other than gzip", body = revloop_api::ErrorBody),
    ),
    security(("api_token" = ["responder"])),
)]
pub async fn alertmanager(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let now = state.clock.now();
    require(&state, &headers, None, Role::Responder, now).await?;
    let body = signal_body(&headers, body)?;
    let rows = parse_alertmanager(&body, now)?;
    let (stored, incidents) = store_signals(&state, rows, now).await?;
    let reply = wire::AlertmanagerReply {
        status: "success".into(),
        signals: stored.iter().map(signal_view).collect(),
        incidents,
    };
    Ok(json_reply(StatusCode::OK, &reply))
}

/// `POST /api/v1/signals/events`: a PagerDuty-Events-v2-shaped event; 202 as PagerDuty
/// answers.
#[utoipa::path(
    post, path = "/api/v1/signals/events", tag = "signals",
    request_body(content = revloop_api::signals::Event, content_type = "application/json"),
    responses(
        (status = 202, description = "The event stored as a signal; the open incidents it attaches to", body = revloop_api::signals::EventReply),
        (status = 400, description = "A field is missing or invalid; nothing was stored", body = revloop_api::ErrorBody),
        (status = 413, description = "The body is over 1 MiB", body = revloop_api::ErrorBody),
        (status = 415, description = "A `Content-Encoding` other than gzip", body = revloop_api::ErrorBody),
    ),
    security(("api_token" = ["responder"])),
)]
pub async fn event(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let now = state.clock.now();
    require(&state, &headers, None, Role::Responder, now).await?;
    let body = signal_body(&headers, body)?;
    let row = parse_event(&body, now)?;
    let dedup_key = row.key.clone();
    let (_, incidents) = store_signals(&state, vec![row], now).await?;
    let reply = wire::EventReply {
        status: "success".into(),
        message: "Event processed".into(),
        dedup_key,
        incidents,
    };
    Ok(json_reply(StatusCode::ACCEPTED, &reply))
}

/// Upserts the signals, in order; returns them as stored and the open incidents any of them
/// attaches to now.
async fn store_signals(
    state: &AppState,
    rows: Vec<SignalRow>,
    now: Timestamp,
) -> Result<(Vec<SignalRow>, Vec<u64>), ApiError> {
    let store = state.store.clone();
    let stored = blocking(move || {
        rows.iter()
            .map(|row| store.upsert_signal(row).map(|(stored, _)| stored))
            .collect::<Result<Vec<_>, _>>()
            .map_err(store_error)
    })
    .await?;
    let snapshot = state.incidents.snapshot().await.map_err(store_error)?;
    let mut incidents: Vec<u64> = stored
        .iter()
        .flat_map(|signal| attached_incidents(snapshot.engine(), signal, now))
        .collect();
    incidents.sort_unstable();
    incidents.dedup();
    Ok((stored, incidents))
}

/// The body as a JSON object (gzip or not, at most [`SIGNAL_BODY_BYTES_MAX`]).
fn signal_body(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Map<String, Value>, ApiError> {
    let bytes = read_body(body, SIGNAL_BODY_BYTES_MAX)?;
    let text = decode_body(&bytes, is_gzip(headers)?, SIGNAL_BODY_BYTES_MAX)?;
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
    match value {
        Value::Object(fields) => Ok(fields),
        _ => Err(ApiError::bad_request(
            "invalid_json",
            "the body must be a JSON object",
        )),
    }
}

/// Where a field sits, for refusals: `alerts[2].` inside an alert, else nothing.
#[derive(Clone, Copy)]
struct At {
    alert: Option<usize>,
}

impl At {
    fn refuse(self, code: &'static str, field: &str, message: impl Into<String>) -> ApiError {
        let Some(index) = self.alert else {
            return invalid(code, field, message);
        };
        // An empty field is the whole alert.
        let field = match field {
            "" => format!("alerts[{index}]"),
            field => format!("alerts[{index}].{field}"),
        };
        let message = message.into();
        ApiError::bad_request(code, format!("{field}: {message}")).with_details(vec![ErrorDetail {
            index: Some(index),
            line: None,
            field: Some(field),
            message,
        }])
    }

    fn missing(self, field: &str) -> ApiError {
        self.refuse("missing_field", field, "is required")
    }

    /// A string field, or `None` when absent or null.
    fn string<'a>(
        self,
        fields: &'a Map<String, Value>,
        field: &str,
    ) -> Result<Option<&'a str>, ApiError> {
        match fields.get(field) {
            None | Some(Value::Null) => Ok(None),
            // PostgreSQL cannot store NUL in text, and no sender needs it.
            Some(Value::String(text)) if text.contains('\0') => {
                Err(self.refuse("invalid_field", field, "must not contain NUL"))
            }
            Some(Value::String(text)) => Ok(Some(text)),
            Some(_) => Err(self.refuse("invalid_field", field, "must be a string")),
        }
    }

    fn required<'a>(
        self,
        fields: &'a Map<String, Value>,
        field: &str,
    ) -> Result<&'a str, ApiError> {
        self.string(fields, field)?
            .ok_or_else(|| self.missing(field))
    }

    fn time(self, field: &str, text: &str) -> Result<Timestamp, ApiError> {
        Timestamp::parse_rfc3339(text)
            .map_err(|err| self.refuse("invalid_field", field, err.to_string()))
    }

    /// A key: 1 to [`SIGNAL_KEY_BYTES_MAX`] bytes.
    fn key(self, field: &str, text: &str) -> Result<String, ApiError> {
        if text.is_empty() || text.len() > SIGNAL_KEY_BYTES_MAX {
            return Err(self.refuse(
                "invalid_field",
                field,
                format!("must be 1 to {SIGNAL_KEY_BYTES_MAX} bytes"),
            ));
        }
        Ok(text.to_owned())
    }

    /// An object of string values (labels, annotations), within the label limits; absent is
    /// empty.
    fn string_map(
        self,
        fields: &Map<String, Value>,
        field: &str,
    ) -> Result<BTreeMap<String, String>, ApiError> {
        let object = match fields.get(field) {
            None | Some(Value::Null) => return Ok(BTreeMap::new()),
            Some(Value::Object(object)) => object,
            Some(_) => {
                return Err(self.refuse("invalid_field", field, "must be an object of strings"));
            }
        };
        if object.len() > LABELS_PER_SIGNAL_MAX {
            return Err(self.refuse(
                "too_many",
                field,
                format!(
                    "has {} entries; at most {LABELS_PER_SIGNAL_MAX} are allowed",
                    object.len()
                ),
            ));
        }
        let mut map = BTreeMap::new();
        let mut n_bytes = 0usize;
        for (name, value) in object {
            let value = match value {
                Value::String(value) if !value.contains('\0') && !name.contains('\0') => value,
                _ => {
                    return Err(self.refuse(
                        "invalid_field",
                        &format!("{field}.{name}"),
                        "must be a string without NUL",
                    ));
                }
            };
            n_bytes = n_bytes.saturating_add(name.len() + value.len());
            map.insert(name.clone(), value.clone());
        }
        if n_bytes > LABELS_BYTES_MAX {
            return Err(self.refuse(
                "too_long",
                field,
                format!("has {n_bytes} bytes of names and values; at most {LABELS_BYTES_MAX} are allowed"),
            ));
        }
        Ok(map)
    }
}

/// The first of `names` that `labels` has, as the funnel or stage a signal names.
fn named(labels: &BTreeMap<String, String>, names: [&str; 2]) -> Option<String> {
    names
        .iter()
        .find_map(|name| labels.get(*name))
        .filter(|value| !value.is_empty())
        .cloned()
}

/// `text` cut to at most [`SIGNAL_SUMMARY_BYTES_MAX`] bytes, at a character boundary.
fn summary_cut(text: &str) -> String {
    let mut end = text.len().min(SIGNAL_SUMMARY_BYTES_MAX);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

/// Alertmanager's "no end" time: the zero `time.Time` it writes while an alert fires.
fn is_zero_time(text: &str) -> bool {
    text.starts_with("0001-01-01")
}

/// An Alertmanager webhook body (version 4) as signals, one per alert, in order.
pub fn parse_alertmanager(
    body: &Map<String, Value>,
    now: Timestamp,
) -> Result<Vec<SignalRow>, ApiError> {
    let top = At { alert: None };
    let version = top.required(body, "version")?;
    if version != "4" {
        return Err(top.refuse(
            "invalid_field",
            "version",
            format!("is `{version}`; only Alertmanager's webhook version \"4\" is understood"),
        ));
    }
    check_envelope(body)?;
    let alerts = match body.get("alerts") {
        None | Some(Value::Null) => return Err(top.missing("alerts")),
        Some(Value::Array(alerts)) => alerts,
        Some(_) => return Err(top.refuse("invalid_field", "alerts", "must be an array")),
    };
    if alerts.len() > ALERTS_PER_PAYLOAD_MAX {
        return Err(top.refuse(
            "too_many",
            "alerts",
            format!(
                "has {} alerts; at most {ALERTS_PER_PAYLOAD_MAX} are allowed (set max_alerts in Alertmanager)",
                alerts.len()
            ),
        ));
    }
    alerts
        .iter()
        .enumerate()
        .map(|(index, alert)| parse_alert(index, alert, now))
        .collect()
}

/// The group's fields, which revloop does not keep, must still have their documented types.
fn check_envelope(body: &Map<String, Value>) -> Result<(), ApiError> {
    let top = At { alert: None };
    for field in ["groupKey", "status", "receiver", "externalURL"] {
        top.string(body, field)?;
    }
    for field in ["groupLabels", "commonLabels", "commonAnnotations"] {
        top.string_map(body, field)?;
    }
    match body.get("truncatedAlerts") {
        None | Some(Value::Null) => Ok(()),
        Some(value) if value.as_u64().is_some() => Ok(()),
        Some(_) => Err(top.refuse(
            "invalid_field",
            "truncatedAlerts",
            "must be a count (a whole number, 0 or more)",
        )),
    }
}

fn parse_alert(index: usize, alert: &Value, now: Timestamp) -> Result<SignalRow, ApiError> {
    let at = At { alert: Some(index) };
    let Value::Object(alert) = alert else {
        return Err(at.refuse("invalid_field", "", "must be an object"));
    };
    let status = at.required(alert, "status")?;
    let status = SignalStatus::parse(status).ok_or_else(|| {
        at.refuse(
            "invalid_field",
            "status",
            format!("is `{status}`; must be firing or resolved"),
        )
    })?;
    if alert.get("labels").is_none_or(Value::is_null) {
        return Err(at.missing("labels"));
    }
    let labels = at.string_map(alert, "labels")?;
    let annotations = at.string_map(alert, "annotations")?;
    let starts_at = at.time("startsAt", at.required(alert, "startsAt")?)?;
    let ends_at = match at.string(alert, "endsAt")? {
        Some(text) if !is_zero_time(text) => Some(at.time("endsAt", text)?),
        _ => None,
    };
    let key = at.key("fingerprint", at.required(alert, "fingerprint")?)?;
    let ends_at = match status {
        // Firing is going on, whatever end Alertmanager expects.
        SignalStatus::Firing => None,
        SignalStatus::Resolved => Some(ends_at.unwrap_or(now).max(starts_at)),
    };
    let summary = ["summary", "description"]
        .iter()
        .find_map(|name| annotations.get(*name))
        .or_else(|| labels.get("alertname"))
        .map_or_else(|| key.clone(), |text| summary_cut(text));
    Ok(SignalRow {
        id: 0,
        source: SignalSource::Alertmanager,
        key,
        status,
        starts_at,
        ends_at,
        summary,
        severity: labels.get("severity").cloned(),
        funnel: named(&labels, FUNNEL_LABELS),
        stage: named(&labels, STAGE_LABELS),
        labels_json: serde_json::to_string(&labels).expect("a map of strings serializes"),
        received_at: now,
        n_received: 0,
    })
}

/// The severities an event may have (PagerDuty's).
const EVENT_SEVERITIES: [&str; 4] = ["critical", "error", "warning", "info"];

/// A PagerDuty-Events-v2-shaped event as a signal.
pub fn parse_event(body: &Map<String, Value>, now: Timestamp) -> Result<SignalRow, ApiError> {
    let top = At { alert: None };
    let action = top.required(body, "event_action")?;
    let dedup_key = match top.string(body, "dedup_key")? {
        Some(key) => Some(top.key("dedup_key", key)?),
        None => None,
    };
    let payload = match body.get("payload") {
        None | Some(Value::Null) => None,
        Some(Value::Object(payload)) => Some(payload),
        Some(_) => return Err(top.refuse("invalid_field", "payload", "must be an object")),
    };
    match action {
        "trigger" => {
            let payload = payload.ok_or_else(|| top.missing("payload"))?;
            parse_trigger(payload, dedup_key, now)
        }
        "acknowledge" | "resolve" => {
            let key = dedup_key.ok_or_else(|| {
                top.refuse(
                    "missing_field",
                    "dedup_key",
                    format!("is required to {action}"),
                )
            })?;
            let resolved = action == "resolve";
            Ok(SignalRow {
                id: 0,
                source: SignalSource::Events,
                key,
                status: if resolved {
                    SignalStatus::Resolved
                } else {
                    SignalStatus::Firing
                },
                // The store keeps the earlier start and everything this does not say.
                starts_at: now,
                ends_at: resolved.then_some(now),
                summary: String::new(),
                severity: None,
                funnel: None,
                stage: None,
                labels_json: "{}".into(),
                received_at: now,
                n_received: 0,
            })
        }
        other => Err(top.refuse(
            "invalid_field",
            "event_action",
            format!("is `{other}`; must be trigger, acknowledge or resolve"),
        )),
    }
}

fn parse_trigger(
    payload: &Map<String, Value>,
    dedup_key: Option<String>,
    now: Timestamp,
) -> Result<SignalRow, ApiError> {
    let field = |name: &str| format!("payload.{name}");
    let string = |name: &str| {
        At { alert: None }
            .string(payload, name)
            .map_err(|_| invalid("invalid_field", &field(name), "must be a string"))
    };
    let required = |name: &str| {
        string(name)?
            .filter(|text| !text.trim().is_empty())
            .ok_or_else(|| invalid("missing_field", &field(name), "is required for a trigger"))
    };
    let summary = summary_cut(required("summary")?);
    let source = required("source")?;
    let severity = required("severity")?;
    if !EVENT_SEVERITIES.contains(&severity) {
        return Err(invalid(
            "invalid_field",
            &field("severity"),
            format!(
                "is `{severity}`; must be one of {}",
                EVENT_SEVERITIES.join(", ")
            ),
        ));
    }
    let starts_at = match string("timestamp")? {
        Some(text) => Timestamp::parse_rfc3339(text)
            .map_err(|err| invalid("invalid_field", &field("timestamp"), err.to_string()))?,
        None => now,
    };
    let mut labels = Map::new();
    labels.insert("source".into(), Value::String(source.to_owned()));
    for name in ["component", "group", "class"] {
        if let Some(text) = string(name)? {
            labels.insert(name.into(), Value::String(text.to_owned()));
        }
    }
    let details = payload.get("custom_details").filter(|d| !d.is_null());
    if let Some(details) = details {
        labels.insert("custom_details".into(), details.clone());
    }
    let labels_json = Value::Object(labels).to_string();
    if labels_json.len() > LABELS_BYTES_MAX {
        return Err(invalid(
            "too_long",
            &field("custom_details"),
            format!(
                "the event's fields come to {} bytes; at most {LABELS_BYTES_MAX} are allowed",
                labels_json.len()
            ),
        ));
    }
    let detail = |names: [&str; 2]| {
        names.iter().find_map(|name| {
            details?
                .get(*name)?
                .as_str()
                .filter(|v| !v.is_empty() && !v.contains('\0'))
                .map(str::to_owned)
        })
    };
    let key = dedup_key.unwrap_or_else(|| derived_key(source, &summary));
    Ok(SignalRow {
        id: 0,
        source: SignalSource::Events,
        key,
        status: SignalStatus::Firing,
        starts_at,
        ends_at: None,
        summary,
        severity: Some(severity.to_owned()),
        funnel: detail(FUNNEL_LABELS),
        stage: detail(STAGE_LABELS),
        labels_json,
        received_at: now,
        n_received: 0,
    })
}

/// A dedup key for a trigger that has none: the same source and summary are the same signal
/// (PagerDuty makes one up; a deterministic one makes a re-send idempotent).
fn derived_key(source: &str, summary: &str) -> String {
    let digest = Sha256::digest(format!("{source}\n{summary}").as_bytes());
    digest.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

/// The technical checklist items a signal speaks to, by its summary and labels.
pub fn signal_checklist(signal: &SignalRow) -> Vec<usize> {
    technical_items(&format!("{} {}", signal.summary, signal.labels_json))
}

/// A stored signal as the API shows it.
pub fn signal_view(signal: &SignalRow) -> wire::Signal {
    wire::Signal {
        id: signal.id,
        source: signal.source.as_str().to_owned(),
        key: signal.key.clone(),
        status: signal.status.as_str().to_owned(),
        starts_at: signal.starts_at.to_string(),
        ends_at: signal.ends_at.map(|t| t.to_string()),
        summary: if signal.summary.is_empty() {
            signal.key.clone()
        } else {
            signal.summary.clone()
        },
        severity: signal.severity.clone(),
        funnel: signal.funnel.clone(),
        stage: signal.stage.clone(),
        labels: serde_json::from_str(&signal.labels_json).unwrap_or(Value::Null),
        received_at: signal.received_at.to_string(),
        n_received: signal.n_received,
        checklist: signal_checklist(signal),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const T: i64 = 1_795_773_600_000;

    fn now() -> Timestamp {
        Timestamp::from_millis(T)
    }

    fn alert(fields: Value) -> Value {
        let mut alert = json!({
            "status": "firing",
            "labels": {"alertname": "A"},
            "startsAt": "2026-11-27T09:00:00Z",
            "fingerprint": "f"
        });
        for (key, value) in fields.as_object().unwrap() {
            alert[key] = value.clone();
        }
        alert
    }

    fn check_alert(fields: Value) -> Result<SignalRow, String> {
        let body = json!({"version": "4", "alerts": [alert(fields)]});
        parse_alertmanager(body.as_object().unwrap(), now())
            .map(|mut rows| rows.remove(0))
            .map_err(|err| err.details[0].field.clone().unwrap_or_default())
    }

    #[test]
    fn alert_ends_and_summaries() {
        // Firing has no end, whatever Alertmanager expects; the zero time is no end.
        let row = check_alert(json!({"endsAt": "2026-11-27T09:05:00Z"})).unwrap();
        assert_eq!((row.status, row.ends_at), (SignalStatus::Firing, None));
        let row =
            check_alert(json!({"status": "resolved", "endsAt": "0001-01-01T00:00:00Z"})).unwrap();
        assert_eq!(
            row.ends_at,
            Some(now()),
            "resolved without an end: ended when received"
        );
        // An end before the start is the start.
        let row =
            check_alert(json!({"status": "resolved", "endsAt": "2026-11-27T08:00:00Z"})).unwrap();
        assert_eq!(row.ends_at, Some(row.starts_at));
        // Nanoseconds, as Alertmanager writes them, are read to the millisecond.
        let row = check_alert(json!({"startsAt": "2026-11-27T09:00:00.123456789Z"})).unwrap();
        assert_eq!(row.starts_at.to_string(), "2026-11-27T09:00:00.123Z");
        // Summary: the annotation, else the description, else the alert name.
        assert_eq!(check_alert(json!({})).unwrap().summary, "A");
        let row = check_alert(json!({"annotations": {"description": "d"}})).unwrap();
        assert_eq!(row.summary, "d");
        let long = "é".repeat(SIGNAL_SUMMARY_BYTES_MAX);
        let row = check_alert(json!({"annotations": {"summary": long}})).unwrap();
        assert_eq!(row.summary.len(), SIGNAL_SUMMARY_BYTES_MAX);
        // `revloop_stage` is preferred to `stage`; an empty one names nothing.
        let row =
            check_alert(json!({"labels": {"stage": "cart", "revloop_stage": "payment"}})).unwrap();
        assert_eq!(row.stage.as_deref(), Some("payment"));
        assert_eq!(
            check_alert(json!({"labels": {"stage": ""}})).unwrap().stage,
            None
        );
    }

    #[test]
    fn alert_refusals_name_the_field() {
        for (fields, field) in [
            (
                json!({"fingerprint": "x".repeat(256)}),
                "alerts[0].fingerprint",
            ),
            (
                json!({"labels": {"a\u{0}": "b"}}),
                "alerts[0].labels.a\u{0}",
            ),
            (
                json!({"annotations": {"summary": "nul\u{0}"}}),
                "alerts[0].annotations.summary",
            ),
            (json!({"annotations": []}), "alerts[0].annotations"),
            (json!({"status": 1}), "alerts[0].status"),
            (json!({"endsAt": "later"}), "alerts[0].endsAt"),
        ] {
            assert_eq!(
                check_alert(fields.clone()),
                Err(field.to_owned()),
                "{fields}"
            );
        }
    }

    fn check_event(body: Value) -> Result<SignalRow, String> {
        parse_event(body.as_object().unwrap(), now())
            .map_err(|err| err.details[0].field.clone().unwrap_or_default())
    }

    #[test]
    fn events() {
        let trigger = json!({"event_action": "trigger", "payload": {"summary": "s", "source": "a", "severity": "info"}});
        let first = check_event(trigger.clone()).unwrap();
        assert_eq!(
            first.key,
            check_event(trigger.clone()).unwrap().key,
            "a derived key is stable"
        );
        assert_eq!(first.key.len(), 32);
        assert_eq!(first.starts_at, now());
        let mut other = trigger.clone();
        other["payload"]["source"] = json!("b");
        assert_ne!(first.key, check_event(other).unwrap().key);
        let resolve = check_event(json!({"event_action": "resolve", "dedup_key": "k"})).unwrap();
        assert_eq!(
            (resolve.status, resolve.ends_at),
            (SignalStatus::Resolved, Some(now()))
        );
        assert_eq!(
            (resolve.summary.as_str(), resolve.labels_json.as_str()),
            ("", "{}")
        );
        let ack = check_event(json!({"event_action": "acknowledge", "dedup_key": "k"})).unwrap();
        assert_eq!((ack.status, ack.ends_at), (SignalStatus::Firing, None));
        // The stage from custom details; a NUL one names nothing.
        let mut staged = trigger.clone();
        staged["payload"]["custom_details"] =
            json!({"stage": "payment", "revloop_funnel": "checkout"});
        let row = check_event(staged.clone()).unwrap();
        assert_eq!(
            (row.funnel.as_deref(), row.stage.as_deref()),
            (Some("checkout"), Some("payment"))
        );
        staged["payload"]["custom_details"] = json!({"stage": "pay\u{0}"});
        assert_eq!(check_event(staged).unwrap().stage, None);
        assert_eq!(
            check_event(json!({"event_action": "acknowledge"})),
            Err("dedup_key".into())
        );
        assert_eq!(
            check_event(json!({"event_action": "trigger", "payload": 3})),
            Err("payload".into())
        );
    }
}
