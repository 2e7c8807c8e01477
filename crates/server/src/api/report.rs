//! The response-time report: `GET /api/v1/incidents/report`, time to acknowledge, mitigate
//! and resolve per severity over the incidents opened in a range, resolved or still open. An
//! incident still open is counted apart (`open`), in the summaries of the milestones it has
//! reached, and as a censored observation in `at_least` for those it has not: at the time it
//! has waited so far, so that a P1 nobody acknowledges does not vanish from the time to
//! acknowledge. It reads stored rows only.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use revloop_api::report as wire;
use revloop_core::incident::{CensoredSummary, DurationSummary, IncidentSeverity};
use revloop_core::time::{DurationMs, MS_PER_DAY, Timestamp};
use revloop_store::{IncidentQuery, IncidentRow, Role};

use crate::api::loss_report::loss_report;
use crate::api::{AppState, json_reply, require, store_error};
use crate::http::query::{parse_time, unknown_parameter};
use crate::http::{ApiError, blocking, invalid, retrying};

/// Longest range the response-time report reads.
pub const REPORT_RANGE_MAX_MS: i64 = 366 * MS_PER_DAY;
/// Most open incidents the report reads. The engine keeps at most one open incident per
/// funnel and stage, so this is far above any real count.
pub const REPORT_OPEN_INCIDENTS_MAX: usize = 10_000;

/// `GET /api/v1/incidents/report?from=&to=`: time to acknowledge, mitigate and resolve per
/// severity, over the incidents opened in the range (default: the last 30 days).
#[utoipa::path(
    get, path = "/api/v1/incidents/report", tag = "incidents",
    params(
        ("from" = Option<String>, Query, description = "RFC 3339; default 30 days before `to`"),
        ("to" = Option<String>, Query, description = "RFC 3339; default now"),
    ),
    responses(
        (status = 200, description = "Response times per severity", body = revloop_api::report::IncidentReport),
        (status = 400, description = "A query parameter is invalid or unknown, or the range wrong", body = revloop_api::ErrorBody),
    ),
    security(("api_token" = ["viewer"])),
)]
pub async fn report(
    State(state): State<AppState>,
    Query(params): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let now = state.clock.now();
    require(&state, &headers, None, Role::Viewer, now).await?;
    let mut from = now.saturating_sub(DurationMs::from_days(30));
    let mut to = now;
    for (key, value) in params {
        match key.as_str() {
            "from" => from = parse_time("from", &value)?,
            "to" => to = parse_time("to", &value)?,
            other => return Err(unknown_parameter(other, "from or to")),
        }
    }
    if from >= to || to.millis() - from.millis() > REPORT_RANGE_MAX_MS {
        return Err(invalid(
            "invalid_query",
            "from",
            "`from` must be before `to`, at most 366 days apart",
        ));
    }
    let store = state.store.clone();
    let config = state.config.clone();
    let body = blocking(move || {
        let mut rows = retrying(|| store.resolved_incidents(from, to)).map_err(store_error)?;
        let resolved = rows.len();
        let open_query = IncidentQuery {
            open: Some(true),
            funnel: None,
            before_id: None,
            limit: REPORT_OPEN_INCIDENTS_MAX,
        };
        let open = retrying(|| store.list_incidents(&open_query)).map_err(store_error)?;
        rows.extend(
            open.into_iter()
                .filter(|r| r.resolved_at.is_none() && (from..to).contains(&r.opened_at)),
        );
        // A body this build cannot read counts in no loss total (it still counts above).
        let decoded: Vec<_> = rows
            .iter()
            .filter_map(|row| revloop_store::decode_incident_body(row.id, &row.body).ok())
            .collect();
        Ok(wire::IncidentReport {
            loss: Some(loss_report(&config, &decoded)),
            from: from.to_string(),
            to: to.to_string(),
            resolved_incidents: resolved,
            open_incidents: rows.len() - resolved,
            severities: wire::ReportSeverities {
                p1: severity_report(&rows, IncidentSeverity::P1, now),
                p2: severity_report(&rows, IncidentSeverity::P2, now),
                p3: severity_report(&rows, IncidentSeverity::P3, now),
            },
        })
    })
    .await?;
    Ok(json_reply(StatusCode::OK, &body))
}

/// The response times of the incidents of one severity among `rows` (resolved and open), the
/// open ones censored at `now` for the milestones they have not reached.
fn severity_report(
    rows: &[IncidentRow],
    severity: IncidentSeverity,
    now: Timestamp,
) -> wire::SeverityReport {
    let rows: Vec<&IncidentRow> = rows.iter().filter(|r| r.severity == severity).collect();
    let reached = |pick: &dyn Fn(&IncidentRow) -> Option<Timestamp>| -> Vec<DurationMs> {
        rows.iter()
            .filter_map(|r| pick(r).map(|t| t.since(r.opened_at)))
            .collect()
    };
    // Open and not there yet: waited from opening to now (a resolved incident that never
    // reached a milestone, say resolved by revloop without an ack, never will).
    let waiting = |pick: &dyn Fn(&IncidentRow) -> Option<Timestamp>| -> Vec<DurationMs> {
        rows.iter()
            .filter(|r| r.resolved_at.is_none() && pick(r).is_none())
            .map(|r| now.since(r.opened_at))
            .collect()
    };
    let censored = |pick: &dyn Fn(&IncidentRow) -> Option<Timestamp>| {
        censored_view(CensoredSummary::of(reached(pick), waiting(pick)))
    };
    let acknowledged = |r: &IncidentRow| r.acknowledged_at;
    let mitigated = |r: &IncidentRow| r.mitigated_at;
    let resolved = |r: &IncidentRow| r.resolved_at;
    wire::SeverityReport {
        incidents: rows.len(),
        open: rows.iter().filter(|r| r.resolved_at.is_none()).count(),
        to_acknowledge: summary_view(DurationSummary::of(reached(&acknowledged))),
        to_mitigate: summary_view(DurationSummary::of(reached(&mitigated))),
        to_resolve: summary_view(DurationSummary::of(reached(&resolved))),
        at_least: wire::CensoredMilestones {
            to_acknowledge: censored(&acknowledged),
            to_mitigate: censored(&mitigated),
            to_resolve: censored(&resolved),
        },
    }
}

fn censored_view(summary: Option<CensoredSummary>) -> Option<wire::CensoredSummary> {
    summary.map(|s| wire::CensoredSummary {
        reached: s.reached,
        waiting: s.waiting,
        mean_ms_at_least: s.mean_at_least.millis(),
        median_ms_at_least: s.median_at_least.millis(),
        p90_ms_at_least: s.p90_at_least.millis(),
        max_ms_at_least: s.max_at_least.millis(),
    })
}

fn summary_view(summary: Option<DurationSummary>) -> Option<wire::DurationSummary> {
    summary.map(|s| wire::DurationSummary {
        count: s.count,
        mean_ms: s.mean.millis(),
        median_ms: s.median.millis(),
        p90_ms: s.p90.millis(),
        max_ms: s.max.millis(),
    })
}
