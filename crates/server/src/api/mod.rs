//! The HTTP API, one module per area, each with its handlers and the JSON views it answers
//! with. This file holds what every handler reads: the [`AppState`], the role check against
//! it (run on the blocking pool because a token lookup may read the store), and the helpers
//! the areas share to answer: `json_reply`, `store_error`, `segment_view`, and the errors for
//! an unknown funnel or stage that name the configured ones.
//!
//! Handlers parse, authorize, act, and answer; the work itself lives in the ingest path and
//! the services. Nothing below `api` imports it back, and no area imports another's handlers.

use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use revloop_core::{Config, Timestamp};
use revloop_store::{Role, Store, StoreError};

use crate::Clock;
use crate::detection::Detection;
use crate::http::auth::Authenticator;
use crate::http::{ApiError, blocking};
use crate::incidents::Incidents;
use crate::ingest::Ingestor;
use crate::telemetry::Telemetry;

pub mod actions;
pub mod alerts;
pub mod body;
pub mod changes;
pub mod declare;
pub mod delivery_log;
pub mod demo_inbox;
pub mod funnels;
pub mod health;
pub mod impact;
pub mod incidents;
pub mod ingest;
pub mod ingest_log;
pub mod ledger;
pub mod ledger_body;
pub mod loss_report;
pub mod metrics;
pub mod openapi;
pub mod outbox;
pub mod report;
pub mod signals;
pub mod silences;

#[derive(Clone)]
pub struct AppState {
    pub detection: Arc<Detection>,
    pub incidents: Arc<Incidents>,
    pub config: Arc<Config>,
    pub store: Arc<dyn Store>,
    pub ingestor: Arc<Ingestor>,
    pub auth: Authenticator,
    pub clock: Arc<dyn Clock>,
    pub telemetry: Arc<Telemetry>,
    pub metrics_public: bool,
    /// The demo's webhook inbox, under `revloop demo` only.
    pub demo_inbox: Option<Arc<demo_inbox::DemoInbox>>,
}

/// Checks that the request may act with `needed` (see [`Authenticator::require`]).
pub(crate) async fn require(
    state: &AppState,
    headers: &HeaderMap,
    body_write_key: Option<&str>,
    needed: Role,
    now: Timestamp,
) -> Result<Role, ApiError> {
    let auth = state.auth.clone();
    let headers = headers.clone();
    let body_write_key = body_write_key.map(str::to_owned);
    blocking(move || auth.require(&headers, body_write_key.as_deref(), needed, now)).await
}

/// As [`require`], also naming the token: the actor of an incident action, or the sender an
/// ingest problem is logged under.
pub(crate) async fn identify(
    state: &AppState,
    headers: &HeaderMap,
    body_write_key: Option<&str>,
    needed: Role,
    now: Timestamp,
) -> Result<String, ApiError> {
    let auth = state.auth.clone();
    let headers = headers.clone();
    let body_write_key = body_write_key.map(str::to_owned);
    blocking(move || auth.identify(&headers, body_write_key.as_deref(), needed, now))
        .await
        .map(|(_, name)| name)
}

/// A failure of the store behind the incidents, changes or silences: logged, a bare 5xx.
pub(crate) fn store_error(err: StoreError) -> ApiError {
    ApiError::store("the incident store failed", err)
}

/// A reply from its wire type (`revloop_api`). It is written through a `serde_json::Value`,
/// whose keys are sorted, so that replies are byte for byte what the API wrote when it built
/// its bodies by hand.
pub(crate) fn json_reply<T: serde::Serialize>(status: StatusCode, body: &T) -> Response {
    // The wire types are plain structs with string keys: writing them cannot fail.
    let value = serde_json::to_value(body).expect("a wire type serializes");
    (status, axum::Json(value)).into_response()
}

/// A single-dimension segment as the API shows it.
pub(crate) fn segment_view((dimension, value): &(String, String)) -> revloop_api::Segment {
    revloop_api::Segment {
        dimension: dimension.clone(),
        value: value.clone(),
    }
}

/// The error for a funnel that is not configured: it names the configured ones.
pub(crate) fn no_funnel(config: &Config, id: &str) -> String {
    format!("no funnel `{id}`; funnels are: {}", config.funnel_list())
}

/// The error for a stage that is not configured, in `funnel` or (where `None`) in any funnel:
/// it names the stages there are, each once.
pub(crate) fn no_stage(config: &Config, funnel: Option<&str>, stage: &str) -> String {
    let place = match funnel {
        Some(id) => format!("in funnel `{id}`"),
        None => "in any funnel".to_owned(),
    };
    format!(
        "no stage `{stage}` {place}; stages are: {}",
        config.stage_list(funnel)
    )
}
