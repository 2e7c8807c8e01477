//! The detector's API: alerts, the state of every series, baselines, and a rebuild; and the
//! JSON views of alert events and baselines, which `replay --alerts-out` and
//! `revloop baseline show --json` write too.
//!
//! It reads the live detector through [`crate::detection::Detection`]; it never judges minutes
//! itself except through a rebuild's tick.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use revloop_api::detector as wire;
use revloop_core::alert::{AlertEvent, AlertEventKind, Direction};
use revloop_core::detect::SlotBaseline;
use revloop_core::time::Timestamp;
use revloop_store::Role;

use crate::api::{AppState, json_reply, no_funnel, require, segment_view};
use crate::detection::FunnelStatus;
use crate::http::query::{invalid_query, parse_bool, parse_limit, unknown_parameter};
use crate::http::{ApiError, blocking};

/// Most alert events one request returns.
pub const ALERTS_PAGE_MAX: usize = 1_000;

fn funnel_index(state: &AppState, id: &str) -> Result<usize, ApiError> {
    state
        .config
        .funnels
        .iter()
        .position(|f| f.id == id)
        .ok_or_else(|| ApiError::not_found(no_funnel(&state.config, id)))
}

/// `GET /api/v1/alerts?funnel=&open=true&limit=`: alert events, newest last.
#[utoipa::path(
    get, path = "/api/v1/alerts", tag = "detector",
    params(
        ("funnel" = Option<String>, Query, description = "Only this funnel's"),
        ("open" = Option<bool>, Query, description = "Only the last event of each open alert"),
        ("limit" = Option<usize>, Query, minimum = 1, maximum = 1000, description = "The newest events to return (default 100)"),
    ),
    responses(
        (status = 200, description = "Alert events, oldest first", body = crate::api::openapi::AlertList),
        (status = 400, description = "A query parameter is invalid or unknown", body = revloop_api::ErrorBody),
        (status = 404, description = "No such funnel", body = revloop_api::ErrorBody),
    ),
    security(("api_token" = ["viewer"])),
)]
pub async fn list_alerts(
    State(state): State<AppState>,
    Query(params): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    require(&state, &headers, None, Role::Viewer, state.clock.now()).await?;
    let mut funnel = None;
    let mut open_only = false;
    let mut limit = 100;
    for (key, value) in params {
        match key.as_str() {
            "funnel" => {
                funnel_index(&state, &value)?;
                funnel = Some(value);
            }
            "open" => {
                open_only = parse_bool("open", &value)?;
            }
            "limit" => limit = parse_limit(&value, ALERTS_PAGE_MAX)?,
            other => return Err(unknown_parameter(other, "funnel, open or limit")),
        }
    }
    let (events, live_since) = state.detection.alerts();
    let mut selected: Vec<_> = events
        .iter()
        .filter(|e| funnel.as_ref().is_none_or(|f| *f == e.funnel))
        .collect();
    if open_only {
        // The last event of each alert, where that event is not a close.
        let mut last = std::collections::HashMap::new();
        for event in &selected {
            last.insert(event.alert_id, *event);
        }
        selected = last
            .into_values()
            .filter(|e| e.event != AlertEventKind::Closed)
            .collect();
        selected.sort_by_key(|e| (e.at, e.alert_id));
    }
    let skip = selected.len().saturating_sub(limit);
    let alerts: Vec<_> = selected[skip..].iter().map(|e| alert_json(e)).collect();
    Ok(axum::Json(json!({
        "alerts": alerts,
        "live_since": live_since.map(|t| t.to_string()),
        "judged_until": state.detection.next_minute().map(|m| m.start().to_string()),
    }))
    .into_response())
}

/// `GET /api/v1/detector`: the detector as a whole (`warming_up`, `live` or `stalled`) and
/// where each funnel's judging stands.
#[utoipa::path(
    get, path = "/api/v1/detector", tag = "detector",
    responses(
        (status = 200, description = "The detector as a whole and each funnel's judging", body = revloop_api::detector::DetectorStatus),
    ),
    security(("api_token" = ["viewer"])),
)]
pub async fn detector_status(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let now = state.clock.now();
    require(&state, &headers, None, Role::Viewer, now).await?;
    let health = state.detection.health();
    let body = wire::DetectorStatus {
        state: health.state,
        live_since: state.detection.live_since().map(|t| t.to_string()),
        progress_age_seconds: health.progress_age.as_secs(),
        funnels: state
            .detection
            .status()
            .iter()
            .map(|status| funnel_judging_view(status, now))
            .collect(),
    };
    Ok(json_reply(StatusCode::OK, &body))
}

/// One funnel's judging as the API shows it.
pub fn funnel_judging_view(status: &FunnelStatus, now: Timestamp) -> wire::FunnelJudging {
    wire::FunnelJudging {
        funnel: status.funnel.clone(),
        state: status.state(),
        live_since: status.live_since.map(|t| t.to_string()),
        last_judged_minute: status.judged_until.map(|m| m.plus(-1).start().to_string()),
        lag_seconds: status.lag(now).map(|lag| lag.millis() / 1000),
        read_failures_total: status.read_failures_total,
        failure: status.failure.map(|failure| wire::ReadFailure {
            since: failure.since.to_string(),
            attempts: failure.attempts,
            next_retry_at: failure.next_retry_at.to_string(),
            error: failure.class.as_str().to_owned(),
            message: failure.class.summary().to_owned(),
        }),
    }
}

/// `GET /api/v1/funnels/{id}/detector?segments=true`: where the funnel's judging stands (its
/// `state`, `live_since`, last judged minute, lag and any failure) and every conversion series
/// now.
#[utoipa::path(
    get, path = "/api/v1/funnels/{id}/detector", tag = "detector",
    params(
        ("id" = String, Path, example = "checkout", description = "The funnel's id"),
        ("segments" = Option<bool>, Query, description = "Also every segment's series"),
    ),
    responses(
        (status = 200, description = "Every conversion series now", body = crate::api::openapi::DetectorState),
        (status = 400, description = "A query parameter is invalid or unknown", body = revloop_api::ErrorBody),
        (status = 404, description = "No such funnel", body = revloop_api::ErrorBody),
    ),
    security(("api_token" = ["viewer"])),
)]
pub async fn detector_state(
    State(state): State<AppState>,
    Path(funnel_id): Path<String>,
    Query(params): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    require(&state, &headers, None, Role::Viewer, state.clock.now()).await?;
    let funnel = funnel_index(&state, &funnel_id)?;
    let mut with_segments = false;
    for (key, value) in params {
        match key.as_str() {
            "segments" => with_segments = parse_bool("segments", &value)?,
            other => return Err(unknown_parameter(other, "segments")),
        }
    }
    let thresholds = state.detection.thresholds(funnel);
    let now = state.clock.now();
    let judging = state
        .detection
        .funnel_status(funnel)
        .map(|status| funnel_judging_view(&status, now));
    let series: Vec<_> = state
        .detection
        .report(funnel)
        .into_iter()
        .filter(|r| with_segments || r.segment.is_none())
        .map(|r| {
            json!({
                "stage": r.stage,
                "next_stage": r.next_stage,
                "segment": r.segment.map(|(d, v)| json!({"dimension": d, "value": v})),
                "status": r.status.as_str(),
                "baseline_drop_off": r.baseline_drop_off,
                "window_drop_off": r.window_drop_off,
                "window_sd": r.window_sd,
                "window_sigma": r.window_sigma,
                "expected_shoppers_per_minute": r.expected_shoppers_per_minute,
                "overdispersion": r.overdispersion,
                "cusum_p2": r.cusum_p2,
                "threshold_p2": r.threshold_p2,
                "cusum_p1": r.cusum_p1,
                "threshold_p1": r.threshold_p1,
            })
        })
        .collect();
    let mut body = json!({
        "funnel": funnel_id,
        "judged_until": state.detection.funnel_next_minute(funnel).map(|m| m.start().to_string()),
        "arl0_p2_minutes": thresholds.map(|t| t.arl0_p2_minutes),
        "arl0_p1_minutes": thresholds.map(|t| t.arl0_p1_minutes),
        "series": series,
    });
    // The judging fields sit beside the series, as `GET /api/v1/detector` lists them.
    if let (Some(Value::Object(judging)), Value::Object(body)) = (
        judging.map(|j| serde_json::to_value(j).unwrap_or_default()),
        &mut body,
    ) {
        for (key, value) in judging {
            body.entry(key).or_insert(value);
        }
    }
    Ok(axum::Json(body).into_response())
}

/// `GET /api/v1/funnels/{id}/baseline?stage=cart&segment=device=mobile`: the 168 local
/// time-of-week slots of one conversion series. The segment is `dimension=value`, as the CLI
/// writes it; the older `dimension:value` is still read.
#[utoipa::path(
    get, path = "/api/v1/funnels/{id}/baseline", tag = "detector",
    params(
        ("id" = String, Path, example = "checkout", description = "The funnel's id"),
        ("stage" = Option<String>, Query, description = "The stage whose shoppers drop off (default the first)"),
        ("segment" = Option<String>, Query, description = "`dimension=value`"),
    ),
    responses(
        (status = 200, description = "The 168 local time-of-week slots", body = revloop_api::detector::Baseline),
        (status = 400, description = "A query parameter is invalid or unknown", body = revloop_api::ErrorBody),
        (status = 404, description = "No such funnel, or no counts yet for that value", body = revloop_api::ErrorBody),
    ),
    security(("api_token" = ["viewer"])),
)]
pub async fn baseline(
    State(state): State<AppState>,
    Path(funnel_id): Path<String>,
    Query(params): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    require(&state, &headers, None, Role::Viewer, state.clock.now()).await?;
    let funnel = funnel_index(&state, &funnel_id)?;
    let stages = &state.config.funnels[funnel].stages;
    let mut stage = 0;
    let mut segment: Option<(String, String)> = None;
    for (key, value) in params {
        match key.as_str() {
            "stage" => {
                let leavable: Vec<&str> = stages[..stages.len() - 1]
                    .iter()
                    .map(|s| s.id.as_str())
                    .collect();
                stage = leavable.iter().position(|s| *s == value).ok_or_else(|| {
                    let why = if stages.last().is_some_and(|s| s.id == value) {
                        "is the last stage: it has no drop-off"
                    } else {
                        "is not a stage of this funnel"
                    };
                    invalid_query(
                        "stage",
                        format!("`{value}` {why}; use one of {}", leavable.join(", ")),
                    )
                })?;
            }
            "segment" => {
                let (dimension, value) = value
                    .split_once('=')
                    .or_else(|| value.split_once(':'))
                    .ok_or_else(|| {
                        invalid_query("segment", "must be dimension=value, e.g. device=mobile")
                    })?;
                if !state.config.has_dimension(dimension) {
                    return Err(invalid_query(
                        "segment",
                        format!(
                            "no dimension `{dimension}`; dimensions are: {}",
                            state.config.dimension_list()
                        ),
                    ));
                }
                segment = Some((dimension.to_owned(), value.to_owned()));
            }
            other => return Err(unknown_parameter(other, "stage or segment")),
        }
    }
    let slots = state
        .detection
        .baseline(
            funnel,
            segment.as_ref().map(|(d, v)| (d.as_str(), v.as_str())),
            stage,
        )
        .ok_or_else(|| {
            ApiError::not_found("no counts have been seen yet for that dimension value")
        })?;
    let body = wire::Baseline {
        funnel: funnel_id,
        stage: stages[stage].id.clone(),
        segment: segment.as_ref().map(segment_view),
        time_zone: state.config.funnels[funnel].time_zone.clone(),
        slots: baseline_slots_view(&slots),
    };
    Ok(json_reply(StatusCode::OK, &body))
}

/// `POST /api/v1/detector/rebuild` (admin): forgets the detector's state and rebuilds it from
/// the stored history, as after a restart. Use it after changing masks.
#[utoipa::path(
    post, path = "/api/v1/detector/rebuild", tag = "detector",
    responses((status = 200, description = "The detector was rebuilt from the stored history", body = revloop_api::detector::Rebuilt)),
    security(("api_token" = ["admin"])),
)]
pub async fn rebuild(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let now = state.clock.now();
    require(&state, &headers, None, Role::Admin, now).await?;
    let detection = state.detection.clone();
    let store = state.store.clone();
    detection.rebuild();
    let clock = state.clock.clone();
    let events = blocking(move || {
        detection
            .tick(store.as_ref(), now, &|| clock.now())
            .into_result()
            .map_err(|err| ApiError::store("rebuilding the detector", err))
    })
    .await?;
    let body = wire::Rebuilt {
        rebuilt: true,
        alert_events: events.len(),
        judged_until: state.detection.next_minute().map(|m| m.start().to_string()),
    };
    Ok(json_reply(StatusCode::OK, &body))
}

/// An alert event as JSON: the shape `replay --alerts-out` writes and the API returns. Keep it
/// stable; users' scripts read it.
pub fn alert_json(event: &AlertEvent) -> Value {
    json!({
        "alert_id": format!("{:016x}", event.alert_id),
        "funnel": event.funnel,
        "stage": event.stage,
        "kind": event.kind.as_str(),
        "severity": event.severity.as_str(),
        "event": event.event.as_str(),
        "direction": match event.direction {
            Direction::Worse => "worse",
            Direction::Surge => "surge",
        },
        "at": event.at.to_string(),
        "onset": event.onset.to_string(),
        "segment": event.segment.as_ref().map(|(dimension, value)| json!({
            "dimension": dimension,
            "value": value,
        })),
        "baseline_rate": round(event.baseline_rate),
        "observed_rate": round(event.observed_rate),
        "sigma": round(event.sigma),
        "n": event.n,
        "top_segments": event.top_segments.iter().map(|top| json!({
            "dimension": top.dimension,
            "value": top.value,
            "share": round(top.share),
            "traffic_share": round(top.traffic_share),
        })).collect::<Vec<_>>(),
    })
}

/// A baseline's slots as the API shows them: the shape `GET /api/v1/funnels/{id}/baseline`
/// and `revloop baseline show --json` return.
pub fn baseline_slots_view(slots: &[SlotBaseline]) -> Vec<wire::BaselineSlot> {
    slots
        .iter()
        .map(|s| wire::BaselineSlot {
            weekday: wire::Weekday::ALL[usize::from(s.weekday)],
            hour: s.hour,
            drop_off_rate: s.drop_off_rate,
            shoppers_per_minute: s.shoppers_per_minute,
            weight_minutes: s.weight,
        })
        .collect()
}

/// Six significant decimals: enough for rates, and stable text across platforms.
fn round(value: f64) -> f64 {
    if value.is_finite() {
        (value * 1e6).round() / 1e6
    } else {
        0.0
    }
}
