//! Health and process metrics: `/healthz` (the process answers), `/readyz` (the store and the
//! writer work), and Prometheus `/metrics`.
//!
//! These answer from what the process already holds; they never change state.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use revloop_store::Role;

use crate::api::{AppState, require};
use crate::http::{ApiError, blocking};
use crate::telemetry::Telemetry;

pub async fn healthz() -> Response {
    axum::Json(json!({"status": "ok"})).into_response()
}

pub async fn readyz(State(state): State<AppState>) -> Response {
    let store = state.store.clone();
    let store_ok = tokio::task::spawn_blocking(move || store.ping())
        .await
        .is_ok_and(|r| r.is_ok());
    let writer_ok = state.ingestor.committer().is_alive();
    let status = if store_ok && writer_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        axum::Json(json!({"store": store_ok, "writer": writer_ok})),
    )
        .into_response()
}

pub async fn prometheus(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if !state.metrics_public {
        require(&state, &headers, None, Role::Viewer, state.clock.now()).await?;
    }
    let mut text = state.telemetry.render();
    // The SQLite dedup index sits behind the writer's lock, which a commit holds across its
    // fsync: read it on a blocking thread.
    let store = state.store.clone();
    if let Some(stats) = blocking(move || Ok(store.dedup_stats())).await? {
        Telemetry::render_dedup(&stats, &mut text);
    }
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response())
}
