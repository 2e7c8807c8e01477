//! The router: every endpoint of the API and the handler that answers it, and the answers for
//! an unknown path or method, and the catch-panic layer around them all.
//!
//! Routes import the handlers; no handler imports the routes.

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::{delete, get, post};

use revloop_core::funnel::CallKind;

use crate::api::body::ACTION_BYTES_MAX;
use crate::api::ingest::{BodyKind, ingest_route};
use crate::api::{
    AppState, actions, alerts, changes, declare, demo_inbox, funnels, health, impact, incidents,
    ingest_log, ledger, metrics, openapi, outbox, report, signals, silences,
};
use crate::http::ApiError;

pub fn router(state: AppState) -> Router {
    let routes = Router::new()
        .route("/v1/track", ingest_route(BodyKind::Single(CallKind::Track)))
        .route("/v1/page", ingest_route(BodyKind::Single(CallKind::Page)))
        .route(
            "/v1/screen",
            ingest_route(BodyKind::Single(CallKind::Screen)),
        )
        .route(
            "/v1/identify",
            ingest_route(BodyKind::Single(CallKind::Identify)),
        )
        .route("/v1/group", ingest_route(BodyKind::Single(CallKind::Group)))
        .route("/v1/alias", ingest_route(BodyKind::Single(CallKind::Alias)))
        .route("/v1/batch", ingest_route(BodyKind::Batch))
        .route("/api/v1/events/bulk", ingest_route(BodyKind::Ndjson))
        .route("/api/v1/counts", ingest_route(BodyKind::Counts))
        .route("/api/v1/ingest/rejected", get(ingest_log::rejected))
        .route("/api/v1/ingest/ignored", get(ingest_log::ignored))
        .route("/api/v1/funnels", get(funnels::list_funnels))
        .route("/api/v1/funnels/{id}/metrics", get(metrics::funnel_metrics))
        .route("/api/v1/alerts", get(alerts::list_alerts))
        .route("/api/v1/funnels/{id}/detector", get(alerts::detector_state))
        .route("/api/v1/funnels/{id}/baseline", get(alerts::baseline))
        .route("/api/v1/detector", get(alerts::detector_status))
        .route("/api/v1/detector/rebuild", post(alerts::rebuild))
        .route(
            "/api/v1/incidents",
            get(incidents::list_incidents)
                .post(declare::declare)
                .layer(DefaultBodyLimit::max(ACTION_BYTES_MAX)),
        )
        .route("/api/v1/incidents/report", get(report::report))
        .route("/api/v1/incidents/{id}", get(incidents::get_incident))
        .route(
            "/api/v1/incidents/{id}/impact",
            get(impact::incident_impact),
        )
        .route(
            "/api/v1/incidents/{id}/{action}",
            post(actions::act).layer(DefaultBodyLimit::max(ACTION_BYTES_MAX)),
        )
        .route("/api/v1/outbox", get(outbox::outbox))
        .route(
            "/demo/inbox",
            get(demo_inbox::list)
                .post(demo_inbox::receive)
                .layer(DefaultBodyLimit::max(demo_inbox::DEMO_INBOX_BODY_BYTES_MAX)),
        )
        .route(
            "/api/v1/silences",
            get(silences::list_silences)
                .post(silences::add_silence)
                .layer(DefaultBodyLimit::max(ACTION_BYTES_MAX)),
        )
        .route("/api/v1/silences/{id}", delete(silences::end_silence))
        .route(
            "/api/v1/changes",
            get(changes::list_changes)
                .post(changes::add_change)
                .layer(DefaultBodyLimit::max(ACTION_BYTES_MAX)),
        )
        .route(
            "/api/v1/signals/alertmanager",
            post(signals::alertmanager)
                .layer(DefaultBodyLimit::max(signals::SIGNAL_BODY_BYTES_MAX)),
        )
        .route(
            "/api/v1/signals/events",
            post(signals::event).layer(DefaultBodyLimit::max(signals::SIGNAL_BODY_BYTES_MAX)),
        )
        .route(
            "/api/v1/ledger/validate",
            post(ledger::validate).layer(DefaultBodyLimit::max(ACTION_BYTES_MAX)),
        )
        .route(
            "/api/v1/ledger/entries",
            get(ledger::list_entries)
                .post(ledger::post_entry)
                .layer(DefaultBodyLimit::max(ACTION_BYTES_MAX)),
        )
        .route(
            "/api/v1/ledger/entries/{id}/reverse",
            post(ledger::reverse).layer(DefaultBodyLimit::max(ACTION_BYTES_MAX)),
        )
        .route("/api/v1/ledger/trial-balance", get(ledger::trial_balance))
        .route("/api/v1/ledger/accounts", get(ledger::accounts))
        .route(
            "/api/v1/ledger/accounts/{code}/statement",
            get(ledger::statement),
        )
        .route("/api/v1/ledger/export", get(ledger::export))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::prometheus))
        .route("/openapi.json", get(openapi::openapi_json))
        .fallback(|| async { ApiError::not_found("no such endpoint; see README.md for the API") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this endpoint does not take that method; see README.md for the API",
            )
        });
    // Outermost: a handler that panics answers the usual JSON 500, and the server serves on.
    crate::http::catching_panics(routes).with_state(state)
}
