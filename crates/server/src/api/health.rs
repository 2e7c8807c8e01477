//! Health and process metrics: `/healthz` (the process answers), `/readyz` (the store and the
//! writer work), and Prometheus `/metrics`.
//!
//! These answer from what the process already holds; they never change state.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use std::collections::BTreeMap;
use std::fmt::Write;

use revloop_core::incident::IncidentState;
use revloop_core::time::{Minute, Timestamp};
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
    let now = state.clock.now();
    let mut text = state.telemetry.render();
    // The SQLite dedup index sits behind the writer's lock, which a commit holds across its
    // fsync, and the detector's and the incidents' locks are held across store reads: all are
    // read on a blocking thread.
    let snapshot = state
        .incidents
        .snapshot()
        .await
        .map_err(|err| ApiError::store("reading the incidents", err))?;
    let reader = state.clone();
    let gauges = blocking(move || {
        let mut open_incidents: BTreeMap<(&'static str, &'static str), u64> = BTreeMap::new();
        for incident in snapshot.engine().incidents() {
            if incident.state != IncidentState::Resolved {
                let key = (incident.severity.as_str(), incident.state.as_str());
                *open_incidents.entry(key).or_default() += 1;
            }
        }
        Ok(Gauges {
            incident_timer_lag_ms: reader.incidents.timer_lag(now).millis(),
            incident_step_failures: reader.incidents.step_failures(),
            dedup: reader.store.dedup_stats(),
            next_minute: reader.detection.next_minute(),
            open_incidents,
        })
    })
    .await?;
    gauges.render(now, &mut text);
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response())
}

/// What `/metrics` reads from the services at scrape time, beside the process counters.
struct Gauges {
    dedup: Option<revloop_store::DedupStats>,
    /// The first minute the detector has not judged yet; none before it has judged any.
    next_minute: Option<Minute>,
    open_incidents: BTreeMap<(&'static str, &'static str), u64>,
    incident_timer_lag_ms: i64,
    incident_step_failures: u64,
}

impl Gauges {
    fn render(&self, now: Timestamp, out: &mut String) {
        if let Some(stats) = &self.dedup {
            Telemetry::render_dedup(stats, out);
        }
        out.push_str("# HELP revloop_detector_live Whether the detector has judged a minute yet (0 while it warms up).\n");
        out.push_str("# TYPE revloop_detector_live gauge\n");
        let _ = writeln!(
            out,
            "revloop_detector_live {}",
            u8::from(self.next_minute.is_some())
        );
        if let Some(next) = self.next_minute {
            // The last judged minute ended where the next one starts; the settle time is part of
            // any lag, so alert on well beyond it.
            let lag_s = now.since(next.start()).millis() as f64 / 1000.0;
            out.push_str("# HELP revloop_detector_lag_seconds Now minus the end of the last minute the detector judged.\n");
            out.push_str("# TYPE revloop_detector_lag_seconds gauge\n");
            let _ = writeln!(out, "revloop_detector_lag_seconds {lag_s}");
        }
        out.push_str(
            "# HELP revloop_incidents_open Incidents not yet resolved, by severity and state.\n",
        );
        out.push_str("# TYPE revloop_incidents_open gauge\n");
        for ((severity, state), n) in &self.open_incidents {
            let _ = writeln!(
                out,
                "revloop_incidents_open{{severity=\"{severity}\",state=\"{state}\"}} {n}"
            );
        }
        out.push_str("# HELP revloop_incident_timer_lag_seconds Now minus the earliest incident timer due and not yet fired (0 if none).\n");
        out.push_str("# TYPE revloop_incident_timer_lag_seconds gauge\n");
        let lag_s = self.incident_timer_lag_ms as f64 / 1000.0;
        let _ = writeln!(out, "revloop_incident_timer_lag_seconds {lag_s}");
        out.push_str("# HELP revloop_incident_step_failures_total Incident steps that failed (the store refused them, or they panicked).\n");
        out.push_str("# TYPE revloop_incident_step_failures_total counter\n");
        let _ = writeln!(
            out,
            "revloop_incident_step_failures_total {}",
            self.incident_step_failures
        );
    }
}
