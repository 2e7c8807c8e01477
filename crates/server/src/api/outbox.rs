//! The outbox: `GET /api/v1/outbox`, what the incidents owe the outside (pages, SLA
//! breaches), oldest first, as the incidents service stored it. It never writes the outbox.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::Value;

use revloop_api::outbox as wire;
use revloop_store::{DELIVERY_PAGE_MAX, DeliveryQuery, OutboxRow, Role};

use crate::api::delivery_log::delivery_view;
use crate::api::{AppState, json_reply, require, store_error};
use crate::http::query::{parse_limit, unknown_parameter};
use crate::http::{ApiError, blocking, invalid, retrying};

/// Most outbox rows one request returns.
pub const OUTBOX_PAGE_MAX: usize = 1_000;

/// `GET /api/v1/outbox?after=&limit=`: what the incidents owe the outside, oldest first.
#[utoipa::path(
    get, path = "/api/v1/outbox", tag = "incidents",
    params(
        ("after" = Option<i64>, Query, minimum = 0, description = "Only entries after this id: the last page's `next_after`"),
        ("limit" = Option<usize>, Query, minimum = 1, maximum = 1000, description = "Entries to return (default 100)"),
    ),
    responses(
        (status = 200, description = "Pages and SLA breaches owed to the outside, oldest first", body = revloop_api::outbox::OutboxPage),
        (status = 400, description = "A query parameter is invalid or unknown", body = revloop_api::ErrorBody),
    ),
    security(("api_token" = ["viewer"])),
)]
pub async fn outbox(
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
    let config = state.config.clone();
    let body = blocking(move || {
        let rows = retrying(|| store.outbox(after, limit)).map_err(store_error)?;
        let outbox = rows.iter().filter_map(outbox_entry_view).collect();
        let deliveries = match (rows.first(), rows.last()) {
            (Some(first), Some(last)) => {
                let query = DeliveryQuery {
                    incident: None,
                    outbox_ids: Some((first.id, last.id)),
                    limit: DELIVERY_PAGE_MAX,
                };
                let rows = retrying(|| store.deliveries(&query)).map_err(store_error)?;
                let delivery = config.delivery.as_ref();
                rows.iter()
                    .map(|row| delivery_view(row, delivery))
                    .collect()
            }
            _ => Vec::new(),
        };
        Ok::<_, ApiError>(wire::OutboxPage {
            outbox,
            deliveries,
            next_after: rows.last().map_or(after, |r| r.id),
        })
    })
    .await?;
    Ok(json_reply(StatusCode::OK, &body))
}

/// A stored outbox row as the API shows it: the body the incidents service stored (see
/// `incidents::outbox_row`), with the row's id. A body this server cannot read (a bug, a damaged
/// database, or a newer node's row) is logged and left out of the page, and `next_after` still
/// moves past it, so that one bad row never stops a client paging through the rest.
fn outbox_entry_view(row: &OutboxRow) -> Option<wire::OutboxEntry> {
    let mut body: Value = serde_json::from_str(&row.body)
        .inspect_err(|err| tracing::error!(row = row.id, %err, "an outbox row is not JSON"))
        .ok()?;
    if let Value::Object(map) = &mut body {
        map.insert("id".into(), Value::from(row.id));
    }
    serde_json::from_value(body)
        .inspect_err(|err| tracing::error!(row = row.id, %err, "an outbox row is unreadable"))
        .ok()
}
