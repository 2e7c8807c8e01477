//! The outbox: `GET /api/v1/outbox`, what the incidents owe the outside (pages, SLA
//! breaches), oldest first, as the incidents service stored it. It never writes the outbox.

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use revloop_store::Role;

use crate::api::{AppState, require, store_error};
use crate::http::query::{parse_limit, unknown_parameter};
use crate::http::{ApiError, blocking, invalid};

/// Most outbox rows one request returns.
pub const OUTBOX_PAGE_MAX: usize = 1_000;

/// `GET /api/v1/outbox?after=&limit=`: what the incidents owe the outside, oldest first.
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
