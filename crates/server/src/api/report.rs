//! The response-time report: `GET /api/v1/incidents/report`, time to acknowledge, mitigate
//! and resolve per severity over the incidents opened in a range. It reads stored rows only.

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use revloop_core::incident::DurationSummary;
use revloop_core::time::{MS_PER_DAY, Timestamp};
use revloop_store::Role;

use crate::api::{AppState, require, store_error};
use crate::http::query::{parse_time, unknown_parameter};
use crate::http::{ApiError, blocking, invalid};

/// Longest range the response-time report reads.
pub const REPORT_RANGE_MAX_MS: i64 = 366 * MS_PER_DAY;

/// `GET /api/v1/incidents/report?from=&to=`: time to acknowledge, mitigate and resolve per
/// severity, over the incidents opened in the range (default: the last 30 days).
pub async fn report(
    State(state): State<AppState>,
    Query(params): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let now = state.clock.now();
    require(&state, &headers, None, Role::Viewer, now).await?;
    let mut from = Timestamp(now.0 - 30 * MS_PER_DAY);
    let mut to = now;
    for (key, value) in params {
        match key.as_str() {
            "from" => from = parse_time("from", &value)?,
            "to" => to = parse_time("to", &value)?,
            other => return Err(unknown_parameter(other, "from or to")),
        }
    }
    if from >= to || to.0 - from.0 > REPORT_RANGE_MAX_MS {
        return Err(invalid(
            "invalid_query",
            "from",
            "`from` must be before `to`, at most 366 days apart",
        ));
    }
    let store = state.store.clone();
    let body = blocking(move || {
        let rows = store.resolved_incidents(from, to).map_err(store_error)?;
        let mut severities = serde_json::Map::new();
        for severity in ["P1", "P2", "P3"] {
            let of = |pick: &dyn Fn(&revloop_store::IncidentRow) -> Option<Timestamp>| {
                DurationSummary::of(
                    rows.iter()
                        .filter(|r| r.severity.as_str() == severity)
                        .filter_map(|r| pick(r).map(|t| t.since(r.opened_at)))
                        .collect(),
                )
            };
            severities.insert(
                severity.to_owned(),
                json!({
                    "incidents": rows.iter().filter(|r| r.severity.as_str() == severity).count(),
                    "to_acknowledge": summary_json(of(&|r| r.acknowledged_at)),
                    "to_mitigate": summary_json(of(&|r| r.mitigated_at)),
                    "to_resolve": summary_json(of(&|r| r.resolved_at)),
                }),
            );
        }
        Ok(json!({
            "from": from.to_string(),
            "to": to.to_string(),
            "resolved_incidents": rows.len(),
            "severities": severities,
        }))
    })
    .await?;
    Ok(axum::Json(body).into_response())
}

fn summary_json(summary: Option<DurationSummary>) -> Value {
    summary.map_or(Value::Null, |s| {
        json!({
            "count": s.count,
            "mean_ms": s.mean.millis(),
            "median_ms": s.median.millis(),
            "p90_ms": s.p90.millis(),
            "max_ms": s.max.millis(),
        })
    })
}
