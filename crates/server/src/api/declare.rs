//! Declaring an incident by hand (responder role): `POST /api/v1/incidents`. It reads and
//! checks the body against the config (funnel, stage, dimension), then hands the declaration
//! to the engine, which opens the incident, pages and refuses a stage already held
//! (`IncidentEngine::declare`). The reply is the incident in full, as `incidents` views it.

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;

use revloop_core::incident::{
    DECLARED_SUMMARY_BYTES_MAX, Declaration, DeclareError, IncidentSeverity,
};
use revloop_store::Role;

use crate::api::body::{SegmentBody, check_scope, check_segment, json_body, needed};
use crate::api::incidents::incident_view;
use crate::api::{AppState, identify, json_reply, store_error};
use crate::http::{ApiError, blocking, invalid, retrying};
use crate::suspects::suspects;

/// The body as sent: every field optional here, so that a missing one is named.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeclareBody {
    funnel: Option<String>,
    stage: Option<String>,
    severity: Option<String>,
    summary: Option<String>,
    segment: Option<SegmentBody>,
}

/// Reads a declaration from its body, against the config; a refusal names the field.
fn parse_declaration(state: &AppState, body: DeclareBody) -> Result<Declaration, ApiError> {
    let required = |field: &str, value: Option<String>| {
        needed(field, value).map_err(|_| invalid("missing_field", field, "is required"))
    };
    let funnel = required("funnel", body.funnel)?;
    let stage = required("stage", body.stage)?;
    let severity_text = required("severity", body.severity)?;
    let summary = required("summary", body.summary)?;
    let severity = IncidentSeverity::parse(&severity_text.to_ascii_uppercase())
        .ok_or_else(|| invalid("invalid_field", "severity", "must be P1, P2 or P3"))?;
    check_scope(state, Some(&funnel), Some(&stage))?;
    if summary.trim().is_empty() {
        return Err(invalid("empty_field", "summary", "must not be empty"));
    }
    if summary.len() > DECLARED_SUMMARY_BYTES_MAX {
        return Err(invalid(
            "too_long",
            "summary",
            format!("is longer than {DECLARED_SUMMARY_BYTES_MAX} bytes"),
        ));
    }
    // PostgreSQL text cannot hold NUL: refused here, naming the field, not by the commit.
    if summary.contains('\0') {
        return Err(invalid("invalid_field", "summary", "must not contain NUL"));
    }
    let segment = match body.segment {
        Some(segment) => {
            if segment.value.contains('\0') {
                return Err(invalid(
                    "invalid_field",
                    "segment.value",
                    "must not contain NUL",
                ));
            }
            check_segment(state, &segment)?;
            if segment.value.trim().is_empty() {
                return Err(invalid("empty_field", "segment.value", "must not be empty"));
            }
            Some((segment.dimension, segment.value))
        }
        None => None,
    };
    Ok(Declaration {
        funnel,
        stage,
        segment,
        severity,
        summary,
    })
}

fn declare_error(err: DeclareError) -> ApiError {
    let message = err.to_string();
    match err {
        DeclareError::AnotherIsOpen(_) => {
            ApiError::new(StatusCode::CONFLICT, "another_is_open", message)
        }
        DeclareError::Empty { field } => invalid("empty_field", field, message),
        DeclareError::TooLong { field, .. } => invalid("too_long", field, message),
    }
}

/// `POST /api/v1/incidents` (responder): declares an incident by hand; it pages and escalates
/// as a detected one does.
#[utoipa::path(
    post, path = "/api/v1/incidents", tag = "incidents",
    request_body(content = revloop_api::incidents::NewIncident, content_type = "application/json"),
    responses(
        (status = 201, description = "The incident declared, as `GET /api/v1/incidents/{id}` shows it", body = revloop_api::incidents::Incident),
        (status = 400, description = "A field is missing or invalid (an unknown funnel, stage or dimension, a bad severity, an empty or oversized summary)", body = revloop_api::ErrorBody),
        (status = 409, description = "An open incident already holds that funnel and stage; the message names it", body = revloop_api::ErrorBody),
        (status = 413, description = "The body is over 16 KiB", body = revloop_api::ErrorBody),
        (status = 415, description = "A `Content-Encoding` other than gzip", body = revloop_api::ErrorBody),
    ),
    security(("api_token" = ["responder"])),
)]
pub async fn declare(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let now = state.clock.now();
    let actor = identify(&state, &headers, None, Role::Responder, now).await?;
    let body: DeclareBody = json_body(&headers, body)?;
    let declaration = parse_declaration(&state, body)?;
    let incident = state
        .incidents
        .declare_async(&declaration, &actor, now)
        .await
        .map_err(store_error)?
        .map_err(declare_error)?;
    tracing::info!(
        incident = incident.id,
        actor = %actor,
        severity = incident.severity.as_str(),
        "incident declared"
    );
    let incidents = state.incidents.clone();
    let store = state.store.clone();
    let reply = blocking(move || {
        // The incident is committed: a failed read of the suspects (the changes before it)
        // must not look like a failed declaration (a client would declare again), so the
        // reply goes without them then.
        let suspects = retrying(|| suspects(store.as_ref(), &incident, now)).unwrap_or_else(|err| {
            tracing::warn!(incident = incident.id, error = %err, "the suspects could not be read");
            Default::default()
        });
        Ok(incident_view(&incident, incidents.policy(), now, &suspects))
    })
    .await?;
    Ok(json_reply(StatusCode::CREATED, &reply))
}
