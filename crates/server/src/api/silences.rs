//! The silences area: maintenance windows from the config and those added through the API
//! (`GET`, `POST /api/v1/silences`, `DELETE /api/v1/silences/{id}`), and their view. The
//! engine decides what a silence silences; this module only reads and adds them.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;

use revloop_api::silences as wire;
use revloop_core::incident::{AddedSilence, Silence, SilenceError};
use revloop_core::time::Timestamp;
use revloop_store::Role;

use crate::api::body::{check_scope, json_body, needed};
use crate::api::{AppState, identify, json_reply, require, store_error};
use crate::http::{ApiError, invalid};

/// A silence as the API shows it: from the config (`added` is `None`) or added through the
/// API, and whether it is scheduled, active or ended at `now`.
fn silence_view(silence: &Silence, added: Option<&AddedSilence>, now: Timestamp) -> wire::Silence {
    wire::Silence {
        id: added.map(|a| a.id),
        source: if added.is_some() {
            wire::SilenceSource::Api
        } else {
            wire::SilenceSource::Config
        },
        funnel: silence.funnel.clone(),
        stage: silence.stage.clone(),
        from: silence.from.to_string(),
        to: silence.to.to_string(),
        reason: silence.reason.clone(),
        state: if now < silence.from {
            wire::SilenceState::Scheduled
        } else if now < silence.to {
            wire::SilenceState::Active
        } else {
            wire::SilenceState::Ended
        },
        added_by: added.map(|a| a.added_by.clone()),
        added_at: added.map(|a| a.added_at.to_string()),
        ended_at: None,
    }
}

/// `GET /api/v1/silences`: the config's silences and those added through the API.
#[utoipa::path(
    get, path = "/api/v1/silences", tag = "changes",
    responses((status = 200, description = "The config's silences, then those added through the API", body = revloop_api::silences::SilenceList)),
    security(("api_token" = ["viewer"])),
)]
pub async fn list_silences(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let now = state.clock.now();
    require(&state, &headers, None, Role::Viewer, now).await?;
    let snapshot = state.incidents.snapshot().await.map_err(store_error)?;
    let (configured, added) = snapshot.engine().silences();
    let silences = configured
        .iter()
        .map(|s| silence_view(s, None, now))
        .chain(added.iter().map(|a| silence_view(&a.silence, Some(a), now)))
        .collect();
    let body = wire::SilenceList { silences };
    Ok(json_reply(StatusCode::OK, &body))
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
#[utoipa::path(
    post, path = "/api/v1/silences", tag = "changes",
    request_body(content = revloop_api::silences::NewSilence, content_type = "application/json"),
    responses(
        (status = 201, description = "The silence added", body = revloop_api::silences::Silence),
        (status = 400, description = "A field is missing or invalid", body = revloop_api::ErrorBody),
        (status = 413, description = "The body is over 16 KiB", body = revloop_api::ErrorBody),
        (status = 415, description = "A `Content-Encoding` other than gzip", body = revloop_api::ErrorBody),
    ),
    security(("api_token" = ["responder"])),
)]
pub async fn add_silence(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let now = state.clock.now();
    let actor = identify(&state, &headers, None, Role::Responder, now).await?;
    let body: SilenceBody = json_body(&headers, body)?;
    let time = |field: &str, value: Option<String>| -> Result<Option<Timestamp>, ApiError> {
        value
            .map(|text| {
                Timestamp::parse_rfc3339(&text)
                    .map_err(|err| invalid("invalid_field", field, err.to_string()))
            })
            .transpose()
    };
    let from_given = time("from", body.from)?;
    let to = time("to", body.to)?
        .ok_or_else(|| invalid("missing_field", "to", "is required: when the silence ends"))?;
    // Without `from` the silence starts now, so an end in the past is the end's fault (the
    // engine's "`from` must be before `to`" would name a field nobody sent).
    if from_given.is_none() && to <= now {
        return Err(invalid(
            "invalid_field",
            "to",
            format!("{to} is in the past: {}", SilenceError::Ended),
        ));
    }
    let from = from_given.unwrap_or(now);
    check_scope(&state, body.funnel.as_deref(), body.stage.as_deref())?;
    let funnel = body.funnel;
    let silence = Silence {
        funnel,
        stage: body.stage,
        from,
        to,
        reason: needed("reason", body.reason)?,
    };
    let id = state
        .incidents
        .add_silence_async(&actor, &silence, now)
        .await
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
    tracing::info!(silence = id, reason = %silence.reason, "silence added");
    let mut reply = silence_view(&silence, None, now);
    reply.id = Some(id);
    reply.source = wire::SilenceSource::Api;
    Ok(json_reply(StatusCode::CREATED, &reply))
}

/// `DELETE /api/v1/silences/{id}` (responder): ends an added silence now.
#[utoipa::path(
    delete, path = "/api/v1/silences/{id}", tag = "changes",
    params(("id" = u64, Path, example = 1, description = "The silence's id")),
    responses(
        (status = 200, description = "The silence, ended now", body = revloop_api::silences::Silence),
        (status = 404, description = "No silence with that id was added through the API", body = revloop_api::ErrorBody),
    ),
    security(("api_token" = ["responder"])),
)]
pub async fn end_silence(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let now = state.clock.now();
    identify(&state, &headers, None, Role::Responder, now).await?;
    let not_found = || {
        ApiError::not_found(format!(
            "no silence `{id}` added through the API (config silences end by editing the config)"
        ))
    };
    let key = id.parse::<u64>().map_err(|_| not_found())?;
    let ended = state
        .incidents
        .end_silence_async(key, now)
        .await
        .map_err(store_error)?
        .ok_or_else(not_found)?;
    let mut reply = silence_view(&ended.silence, Some(&ended), now);
    reply.state = wire::SilenceState::Ended;
    reply.ended_at = Some(now.to_string());
    Ok(json_reply(StatusCode::OK, &reply))
}

#[cfg(test)]
mod tests {
    use revloop_api::silences::NewSilence;

    use super::SilenceBody;

    /// The server reads a silence with its own all-optional parser (so that a missing field
    /// is `missing_field`); every field of the wire type the CLI sends is one it reads.
    #[test]
    fn the_server_reads_every_field_the_cli_sends() {
        let sent = NewSilence {
            to: "2026-12-01T04:00:00+01:00".into(),
            from: Some("2026-12-01T02:00:00+01:00".into()),
            reason: "migration".into(),
            funnel: Some("checkout".into()),
            stage: Some("payment".into()),
        };
        let read: SilenceBody =
            serde_json::from_value(serde_json::to_value(&sent).unwrap()).unwrap();
        assert_eq!(read.to.as_deref(), Some("2026-12-01T04:00:00+01:00"));
        assert_eq!(read.stage.as_deref(), Some("payment"));
    }
}
