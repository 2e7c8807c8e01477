//! The changes area: `POST /api/v1/changes` records a deploy, experiment, price change...
//! (responder role) and `GET /api/v1/changes` lists them; the view of a change is here, and
//! the incidents' suspects use it. Ranking suspects is `suspects`'s.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;

use revloop_api::changes as wire;
use revloop_core::change::ChangeKind;
use revloop_core::incident::TEXT_BYTES_MAX;
use revloop_core::time::{DurationMs, MS_PER_DAY, Timestamp};
use revloop_store::{ChangeRow, Role};

use crate::api::body::{SegmentBody, check_scope, check_segment, json_body, needed};
use crate::api::{AppState, identify, json_reply, require, segment_view, store_error};
use crate::http::query::{parse_limit, parse_time, unknown_parameter};
use crate::http::{ApiError, blocking, invalid, retrying};

/// Most changes one request returns.
pub const CHANGES_PAGE_MAX: usize = 1_000;
/// How far ahead of the server's clock a change may be dated (a scheduled change).
pub const CHANGE_AHEAD_MAX_MS: i64 = MS_PER_DAY;
/// How far back a change may be dated (suspects look back a day; a year covers imports).
pub const CHANGE_AGE_MAX_MS: i64 = 366 * MS_PER_DAY;
/// Longest change summary, in bytes (the detail may take `TEXT_BYTES_MAX`).
pub const SUMMARY_BYTES_MAX: usize = 200;
/// Longest `external_id` of a change, the sender's own id for it (a deploy id, a ticket).
pub const EXTERNAL_ID_BYTES_MAX: usize = 200;

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
#[utoipa::path(
    post, path = "/api/v1/changes", tag = "changes",
    request_body(content = revloop_api::changes::NewChange, content_type = "application/json"),
    responses(
        (status = 201, description = "The change recorded", body = revloop_api::changes::Change),
        (status = 200, description = "Its `external_id` was recorded before: the stored change", body = revloop_api::changes::Change),
        (status = 400, description = "A field is missing or invalid", body = revloop_api::ErrorBody),
        (status = 409, description = "Its `external_id` was recorded with other content", body = revloop_api::ErrorBody),
        (status = 413, description = "The body is over 16 KiB", body = revloop_api::ErrorBody),
        (status = 415, description = "A `Content-Encoding` other than gzip", body = revloop_api::ErrorBody),
    ),
    security(("api_token" = ["responder"])),
)]
pub async fn add_change(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let now = state.clock.now();
    let author = identify(&state, &headers, None, Role::Responder, now).await?;
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
    if at.millis() > now.millis() + CHANGE_AHEAD_MAX_MS
        || at.millis() < now.millis() - CHANGE_AGE_MAX_MS
    {
        return Err(invalid(
            "invalid_field",
            "at",
            format!("{at} is more than a day ahead of or a year behind the server's clock ({now})"),
        ));
    }
    check_scope(&state, body.funnel.as_deref(), body.stage.as_deref())?;
    let funnel = body.funnel;
    if let Some(segment) = &body.segment {
        check_segment(&state, segment)?;
    }
    if body
        .external_id
        .as_ref()
        .is_some_and(|id| id.is_empty() || id.len() > EXTERNAL_ID_BYTES_MAX)
    {
        return Err(invalid(
            "invalid_field",
            "external_id",
            format!("must be 1 to {EXTERNAL_ID_BYTES_MAX} bytes"),
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
    Ok(json_reply(status, &change_view(&stored)))
}

/// `GET /api/v1/changes?from=&to=&limit=`: newest first (default: the last 7 days).
#[utoipa::path(
    get, path = "/api/v1/changes", tag = "changes",
    params(
        ("from" = Option<String>, Query, description = "RFC 3339; default 7 days ago"),
        ("to" = Option<String>, Query, description = "RFC 3339; default now"),
        ("limit" = Option<usize>, Query, minimum = 1, maximum = 1000, description = "Changes to return (default 100)"),
    ),
    responses(
        (status = 200, description = "Changes, newest first", body = revloop_api::changes::ChangeList),
        (status = 400, description = "A query parameter is invalid or unknown, or the range wrong", body = revloop_api::ErrorBody),
    ),
    security(("api_token" = ["viewer"])),
)]
pub async fn list_changes(
    State(state): State<AppState>,
    Query(params): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let now = state.clock.now();
    require(&state, &headers, None, Role::Viewer, now).await?;
    let mut from = now.saturating_sub(DurationMs::from_days(7));
    let mut to = now.saturating_add(DurationMs::from_millis(1));
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
        let rows = retrying(|| store.changes(from, to, limit)).map_err(store_error)?;
        Ok(wire::ChangeList {
            changes: rows.iter().map(change_view).collect(),
        })
    })
    .await?;
    Ok(json_reply(StatusCode::OK, &body))
}

fn change_kind_view(kind: ChangeKind) -> wire::ChangeKind {
    match kind {
        ChangeKind::Deploy => wire::ChangeKind::Deploy,
        ChangeKind::ExperimentStart => wire::ChangeKind::ExperimentStart,
        ChangeKind::ExperimentStop => wire::ChangeKind::ExperimentStop,
        ChangeKind::Pricing => wire::ChangeKind::Pricing,
        ChangeKind::Promotion => wire::ChangeKind::Promotion,
        ChangeKind::PaymentProcessor => wire::ChangeKind::PaymentProcessor,
        ChangeKind::Cdn => wire::ChangeKind::Cdn,
        ChangeKind::Infrastructure => wire::ChangeKind::Infrastructure,
        ChangeKind::Config => wire::ChangeKind::Config,
        ChangeKind::Other => wire::ChangeKind::Other,
    }
}

/// A stored change as the API shows it: the shape the changes API returns, and an incident's
/// suspects carry.
pub fn change_view(change: &ChangeRow) -> wire::Change {
    wire::Change {
        id: change.id,
        at: change.at.to_string(),
        kind: change_kind_view(change.kind),
        summary: change.summary.clone(),
        detail: change.detail.clone(),
        funnel: change.funnel.clone(),
        stage: change.stage.clone(),
        segment: change.segment.as_ref().map(segment_view),
        author: change.author.clone(),
        external_id: change.external_id.clone(),
        recorded_at: change.recorded_at.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use revloop_api::Segment;
    use revloop_api::changes::{ChangeKind, NewChange};

    use super::ChangeBody;

    /// The server reads a change with its own all-optional parser (so that a missing field is
    /// `missing_field` and a bad kind lists the kinds); every field of the wire type the CLI
    /// sends is one it reads.
    #[test]
    fn the_server_reads_every_field_the_cli_sends() {
        let sent = NewChange {
            kind: ChangeKind::Deploy,
            summary: "v2".into(),
            detail: Some("d".into()),
            at: Some("2026-11-27T09:40:00Z".into()),
            funnel: Some("checkout".into()),
            stage: Some("payment".into()),
            segment: Some(Segment::parse("device=mobile").unwrap()),
            external_id: Some("deploy-1".into()),
        };
        let read: ChangeBody =
            serde_json::from_value(serde_json::to_value(&sent).unwrap()).unwrap();
        assert_eq!(read.kind.as_deref(), Some("deploy"));
        assert_eq!(read.segment.map(|s| s.value).as_deref(), Some("mobile"));
        assert_eq!(read.external_id.as_deref(), Some("deploy-1"));
    }
}
