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

use revloop_api::detector::{DetectorHealth, JudgingState};
use revloop_core::alert::{AlertEvent, AlertEventKind, AlertKind, Severity};
use revloop_core::incident::IncidentState;
use revloop_core::time::Timestamp;
use revloop_store::Role;

use crate::api::{AppState, require};
use crate::detection::FunnelStatus;
use crate::http::{ApiError, blocking};
use crate::telemetry::Telemetry;

#[utoipa::path(
    get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "The process answers", body = crate::api::openapi::Health)),
)]
pub async fn healthz() -> Response {
    axum::Json(json!({"status": "ok"})).into_response()
}

/// `/readyz`: 503 unless the store answers, the writer thread lives, and the detector is live:
/// `"detector"` is `warming_up` until every funnel has finished reading its history (judging is
/// not live before), and `stalled` when its loop has made no progress for
/// [`crate::detection::STALLED_AFTER_S`]; `"incidents"` is `dead` once the incident service's
/// thread has ended and `stalled` when its timers have not run for as long (real time; they
/// run every second); the body says which part failed.
///
/// A single failing funnel does not fail readiness; it is listed in `"failing_funnels"`, on
/// `GET /api/v1/detector`, and in `/metrics`. Readiness decides whether this node gets
/// traffic, and a funnel's failed reads do not stop this node from ingesting: taking it out of
/// rotation would lose every funnel's events to save none, and another node sharing the
/// database would likely fail the same read. A failing funnel is alerted on instead (its
/// metrics, and the dead man's switch once it has failed long enough). An unreachable store
/// fails readiness through `"store"`.
#[utoipa::path(
    get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Every part works", body = crate::api::openapi::Readiness),
        (status = 503, description = "A part does not work; the body says which", body = crate::api::openapi::Readiness),
    ),
)]
pub async fn readyz(State(state): State<AppState>) -> Response {
    let store = state.store.clone();
    let store_ok = tokio::task::spawn_blocking(move || store.ping())
        .await
        .is_ok_and(|r| r.is_ok());
    let writer_ok = state.ingestor.committer().is_alive();
    let detection = state.detection.clone();
    let detector = tokio::task::spawn_blocking(move || detection.health())
        .await
        .ok();
    let detector_ok = detector
        .as_ref()
        .is_some_and(|health| health.state == DetectorHealth::Live);
    let incidents = state.incidents.liveness();
    let incidents_state = if !incidents.alive {
        "dead"
    } else if incidents.timers_idle.as_secs() >= crate::detection::STALLED_AFTER_S {
        "stalled"
    } else {
        "ok"
    };
    let status = if store_ok && writer_ok && detector_ok && incidents_state == "ok" {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "store": store_ok,
        "writer": writer_ok,
        "detector": detector.as_ref().map_or("stalled", |health| health.state.as_str()),
        "failing_funnels": detector.map(|health| health.failing).unwrap_or_default(),
        "incidents": incidents_state,
    });
    (status, axum::Json(body)).into_response()
}

#[utoipa::path(
    get, path = "/metrics", tag = "operations",
    responses(
        (status = 200, description = "Prometheus text exposition", content_type = "text/plain", body = String),
    ),
    security((), ("api_token" = ["viewer"])),
)]
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
    // The incidents are loaded from the store once; a store down since the start leaves them
    // out (and `revloop_store_up` 0) rather than failing the scrape.
    let snapshot = state
        .incidents
        .snapshot()
        .await
        .inspect_err(|err| tracing::warn!(error = %err, "/metrics could not read the incidents"))
        .ok();
    let reader = state.clone();
    let gauges = blocking(move || {
        let mut open_incidents: BTreeMap<(&'static str, &'static str), u64> = BTreeMap::new();
        let incidents = snapshot
            .as_ref()
            .map(|snapshot| snapshot.engine().incidents());
        for incident in incidents.into_iter().flatten() {
            if incident.state != IncidentState::Resolved {
                let key = (incident.severity.as_str(), incident.state.as_str());
                *open_incidents.entry(key).or_default() += 1;
            }
        }
        let (alert_events, _) = reader.detection.alerts();
        // A store that does not answer leaves the scrape up, saying so, rather than failing
        // it: the operator keeps every other metric while the database is down.
        let outbox = reader
            .store
            .outbox_stats()
            .inspect_err(|err| tracing::warn!(error = %err, "/metrics could not read the outbox"))
            .ok()
            .filter(|_| snapshot.is_some());
        Ok(Gauges {
            incident_timer_lag_ms: reader.incidents.timer_lag(now).millis(),
            incident_step_failures: reader.incidents.step_failures(),
            dedup: reader.store.dedup_stats(),
            detector: reader.detection.status(),
            detector_stalled: reader.detection.health().state == DetectorHealth::Stalled,
            open_incidents,
            open_alerts: open_alerts(&alert_events),
            outbox,
            deliveries: reader.config.delivery.as_ref().and_then(|_| {
                (reader.store.delivery_stats())
                    .inspect_err(|err| tracing::warn!(error = %err, "/metrics could not read the deliveries"))
                    .ok()
            }),
        })
    })
    .await?;
    gauges.render(now, &mut text);
    let (delivery, deliveries) = (state.config.delivery.as_ref(), gauges.deliveries.as_deref());
    crate::api::delivery_log::render_metrics(delivery, deliveries, now, &mut text);
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response())
}

/// What `/metrics` reads from the services at scrape time, beside the process counters.
struct Gauges {
    dedup: Option<revloop_store::DedupStats>,
    /// Where each funnel's judging stands.
    detector: Vec<FunnelStatus>,
    detector_stalled: bool,
    open_incidents: BTreeMap<(&'static str, &'static str), u64>,
    incident_timer_lag_ms: i64,
    incident_step_failures: u64,
    /// The detector's open alerts by severity and kind, every pair present (0 when none).
    open_alerts: BTreeMap<(&'static str, &'static str), u64>,
    /// `None`: the store did not answer.
    outbox: Option<revloop_store::OutboxStats>,
    /// Per channel; `None` without `[delivery]` or when the store did not answer.
    deliveries: Option<Vec<revloop_store::ChannelDeliveryStats>>,
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
        self.render_detector(now, out);
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

impl Gauges {
    /// The detector's gauges, one sample per funnel: whether it is live, failing (and for how
    /// long, what an operator alerts on), its lag, and its failed reads.
    fn render_detector(&self, now: Timestamp, out: &mut String) {
        let mut family =
            |name: &str, kind: &str, help: &str, samples: &mut dyn Iterator<Item = (&str, f64)>| {
                let _ = writeln!(out, "# HELP {name} {help}");
                let _ = writeln!(out, "# TYPE {name} {kind}");
                for (funnel, value) in samples {
                    let _ = writeln!(out, "{name}{{funnel=\"{funnel}\"}} {value}");
                }
            };
        let funnels = &self.detector;
        family(
            "revloop_detector_live",
            "gauge",
            "Whether the funnel's judging is live: warmed up and its last read succeeded (0 while warming up or failing).",
            &mut funnels.iter().map(|s| {
                (
                    s.funnel.as_str(),
                    f64::from(u8::from(s.state() == JudgingState::Live)),
                )
            }),
        );
        family(
            "revloop_detector_failing",
            "gauge",
            "Whether the funnel's last read of the store failed (it retries with backoff).",
            &mut funnels
                .iter()
                .map(|s| (s.funnel.as_str(), f64::from(u8::from(s.failure.is_some())))),
        );
        family(
            "revloop_detector_failing_seconds",
            "gauge",
            "How long the funnel's reads have been failing in a row (0 when not failing).",
            &mut funnels.iter().map(|s| {
                let seconds =
                    s.failure.map_or(0, |f| now.since(f.since).millis().max(0)) as f64 / 1000.0;
                (s.funnel.as_str(), seconds)
            }),
        );
        family(
            "revloop_detector_read_failures_total",
            "counter",
            "Failed reads of the funnel's counts since the process started.",
            &mut funnels
                .iter()
                .map(|s| (s.funnel.as_str(), s.read_failures_total as f64)),
        );
        // The last judged minute ended where the next one starts; the settle time is part of
        // any lag, so alert on well beyond it. No sample before the funnel first went live: a
        // warm-up's minutes are history, and `revloop_detector_live` covers it.
        family(
            "revloop_detector_lag_seconds",
            "gauge",
            "Now minus the end of the last minute the funnel's detector judged.",
            &mut funnels
                .iter()
                .filter(|s| s.live_since.is_some())
                .filter_map(|s| Some((s.funnel.as_str(), s.lag(now)?.millis() as f64 / 1000.0))),
        );
        out.push_str("# HELP revloop_detector_stalled Whether the detector's loop has made no progress for well beyond its poll interval.\n");
        out.push_str("# TYPE revloop_detector_stalled gauge\n");
        let _ = writeln!(
            out,
            "revloop_detector_stalled {}",
            u8::from(self.detector_stalled)
        );
    }
}
