//! The response-time report: `GET /api/v1/incidents/report`, time to acknowledge, mitigate
//! and resolve per severity over the incidents opened in a range. It reads stored rows only.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use revloop_api::report as wire;
use revloop_core::incident::{DurationSummary, IncidentSeverity};
use revloop_core::time::{DurationMs, MS_PER_DAY, Timestamp};
use revloop_store::{IncidentRow, Role};

use crate::api::{AppState, json_reply, require, store_error};
use crate::http::query::{parse_time, unknown_parameter};
use crate::http::{ApiError, blocking, invalid, retrying};

/// Longest range the response-time report reads.
pub const REPORT_RANGE_MAX_MS: i64 = 366 * MS_PER_DAY;

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
    let body = blocking(move || {
        let rows = retrying(|| store.resolved_incidents(from, to)).map_err(store_error)?;
        Ok(wire::IncidentReport {
            from: from.to_string(),
            to: to.to_string(),
            resolved_incidents: rows.len(),
            severities: wire::ReportSeverities {
                p1: severity_report(&rows, IncidentSeverity::P1),
                p2: severity_report(&rows, IncidentSeverity::P2),
                p3: severity_report(&rows, IncidentSeverity::P3),
            },
        })
    })
    .await?;
    Ok(json_reply(StatusCode::OK, &body))
}

/// The response times of the incidents of one severity among `rows`.
fn severity_report(rows: &[IncidentRow], severity: IncidentSeverity) -> wire::SeverityReport {
    let of = |pick: &dyn Fn(&IncidentRow) -> Option<Timestamp>| {
        summary_view(DurationSummary::of(
            rows.iter()
                .filter(|r| r.severity == severity)
                .filter_map(|r| pick(r).map(|t| t.since(r.opened_at)))
                .collect(),
        ))
    };
    wire::SeverityReport {
        incidents: rows.iter().filter(|r| r.severity == severity).count(),
        to_acknowledge: of(&|r| r.acknowledged_at),
        to_mitigate: of(&|r| r.mitigated_at),
        to_resolve: of(&|r| r.resolved_at),
    }
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
