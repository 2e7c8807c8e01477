//! Health and process metrics: `/healthz` (the process answers), `/readyz` (the store and the
//! writer work), and Prometheus `/metrics`.
//!
//! These answer from what the process already holds; they never change state.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;

use revloop_core::alert::{AlertEvent, AlertEventKind, AlertKind, Severity};
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
    let reader = state.clone();
    let gauges = blocking(move || {
        let open_incidents = reader
            .incidents
            .with_engine(|engine| {
                let mut open: BTreeMap<(&'static str, &'static str), u64> = BTreeMap::new();
                for incident in engine.incidents() {
                    if incident.state != IncidentState::Resolved {
                        let key = (incident.severity.as_str(), incident.state.as_str());
                        *open.entry(key).or_default() += 1;
                    }
                }
                open
            })
            .map_err(|err| ApiError::store("reading the incidents", err))?;
        let (alert_events, _) = reader.detection.alerts();
        // A store that does not answer leaves the scrape up, saying so, rather than failing
        // it: the operator keeps every other metric while the database is down.
        let outbox = reader
            .store
            .outbox_stats()
            .inspect_err(|err| tracing::warn!(error = %err, "/metrics could not read the outbox"))
            .ok();
        Ok(Gauges {
            dedup: reader.store.dedup_stats(),
            next_minute: reader.detection.next_minute(),
            open_incidents,
            open_alerts: open_alerts(&alert_events),
            outbox,
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
    /// The detector's open alerts by severity and kind, every pair present (0 when none).
    open_alerts: BTreeMap<(&'static str, &'static str), u64>,
    /// `None`: the store did not answer.
    outbox: Option<revloop_store::OutboxStats>,
}

/// The open alerts among the detector's kept events (the last event of each alert is not a
/// close, as `GET /api/v1/alerts?open=true` reads them), by severity and kind, with a 0 for
/// every pair so that an alert rule sees the series before the first alert.
fn open_alerts(events: &[AlertEvent]) -> BTreeMap<(&'static str, &'static str), u64> {
    let mut last: HashMap<u64, &AlertEvent> = HashMap::new();
    for event in events {
        last.insert(event.alert_id, event);
    }
    let mut open = BTreeMap::new();
    for severity in [Severity::P1, Severity::P2] {
        for kind in [AlertKind::Conversion, AlertKind::Volume] {
            open.insert((severity.as_str(), kind.as_str()), 0);
        }
    }
    for event in last.values().filter(|e| e.event != AlertEventKind::Closed) {
        *open
            .entry((event.severity.as_str(), event.kind.as_str()))
            .or_default() += 1;
    }
    open
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
        out.push_str(
            "# HELP revloop_alerts_open The detector's open alerts, by severity and kind.\n",
        );
        out.push_str("# TYPE revloop_alerts_open gauge\n");
        for ((severity, kind), n) in &self.open_alerts {
            let _ = writeln!(
                out,
                "revloop_alerts_open{{severity=\"{severity}\",kind=\"{kind}\"}} {n}"
            );
        }
        out.push_str("# HELP revloop_store_up Whether the store answered this scrape's read (0: it failed; see the log).\n");
        out.push_str("# TYPE revloop_store_up gauge\n");
        let _ = writeln!(out, "revloop_store_up {}", u8::from(self.outbox.is_some()));
        let Some(outbox) = &self.outbox else {
            return;
        };
        // Nothing marks an outbox row delivered yet (readers page through it by id), so the
        // depth is every row stored and the age is the oldest row's: see docs/operations.md.
        out.push_str("# HELP revloop_outbox_entries Outbox rows stored (none is marked delivered: every row counts).\n");
        out.push_str("# TYPE revloop_outbox_entries gauge\n");
        let _ = writeln!(out, "revloop_outbox_entries {}", outbox.entries);
        out.push_str("# HELP revloop_outbox_oldest_entry_age_seconds Now minus when the oldest outbox row was queued (0: empty).\n");
        out.push_str("# TYPE revloop_outbox_oldest_entry_age_seconds gauge\n");
        let age_s = outbox
            .oldest_at
            .map_or(0.0, |at| now.since(at).millis().max(0) as f64 / 1000.0);
        let _ = writeln!(out, "revloop_outbox_oldest_entry_age_seconds {age_s}");
    }
}
