//! `GET /api/v1/funnels/{id}/metrics`: a funnel's counts rolled up into windows of `step`,
//! with each stage's conversion, drop-off, late events and revenue, optionally filtered by
//! dimension values.
//!
//! A read of the store; the rollup itself is the core's. It never changes state.

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use revloop_core::Config;
use revloop_core::config::Funnel;
use revloop_core::metrics::{MinuteCount, RollupError, Window, rollup};
use revloop_core::time::{DurationMs, MS_PER_HOUR, MS_PER_MINUTE, Minute, Timestamp};
use revloop_store::{CountsQuery, LateCount, Role};

use crate::api::{AppState, no_funnel, require};
use crate::http::query::{invalid_query, parse_time};
use crate::http::{ApiError, blocking};

/// Longest range `/metrics` of a funnel reads at once.
pub const METRICS_RANGE_MAX_MS: i64 = 92 * 24 * MS_PER_HOUR;

/// What a metrics request asked for, as sent.
struct MetricsParams {
    from: Option<Timestamp>,
    to: Option<Timestamp>,
    step: DurationMs,
    filter: Vec<(String, String)>,
}

/// The whole minutes a request covers, `[from, to)`, cut into windows of `step_minutes`.
struct MinuteRange {
    from: Minute,
    to: Minute,
    step_minutes: i64,
}

pub async fn funnel_metrics(
    State(state): State<AppState>,
    Path(funnel_id): Path<String>,
    Query(params): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let now = state.clock.now();
    require(&state, &headers, None, Role::Viewer, now).await?;
    let funnel = state
        .config
        .funnel(&funnel_id)
        .ok_or_else(|| ApiError::not_found(no_funnel(&state.config, &funnel_id)))?
        .clone();
    let params = parse_params(&state.config, params)?;
    let range = minute_range(&params, now)?;
    let query = CountsQuery {
        funnel: funnel.id.clone(),
        from: range.from,
        to: range.to,
        filter: params.filter.clone(),
    };
    let (counts, late) = read_counts(&state, query).await?;
    let windows = rollup(
        funnel.stages.len(),
        &counts,
        range.from,
        range.to,
        range.step_minutes,
    )
    .map_err(|err| match err {
        RollupError::EmptyRange => invalid_query("from", err.to_string()),
        _ => invalid_query("step", err.to_string()),
    })?;
    let currency = state.config.shop.currency.code();
    let windows_json: Vec<_> = windows
        .iter()
        .map(|window| window_json(window, &funnel, &late, range.step_minutes, currency))
        .collect();
    let filter_json: serde_json::Map<String, Value> = params
        .filter
        .into_iter()
        .map(|(k, v)| (k, json!(v)))
        .collect();
    Ok(axum::Json(json!({
        "funnel": funnel.id,
        "from": range.from.start().to_string(),
        "to": range.to.start().to_string(),
        "step": params.step.to_string(),
        "filter": filter_json,
        "stages": funnel.stages.iter().map(|s| s.id.clone()).collect::<Vec<_>>(),
        "windows": windows_json,
    }))
    .into_response())
}

/// Reads `from`, `to`, `step` and dimension filters; anything else is refused.
fn parse_params(config: &Config, params: Vec<(String, String)>) -> Result<MetricsParams, ApiError> {
    let mut parsed = MetricsParams {
        from: None,
        to: None,
        step: DurationMs::from_hours(1),
        filter: Vec::new(),
    };
    for (key, value) in params {
        match key.as_str() {
            "from" => parsed.from = Some(parse_time("from", &value)?),
            "to" => parsed.to = Some(parse_time("to", &value)?),
            "step" => {
                let step =
                    DurationMs::parse(&value).map_err(|e| invalid_query("step", e.to_string()))?;
                if step.millis() % MS_PER_MINUTE != 0 || step.millis() <= 0 {
                    return Err(invalid_query(
                        "step",
                        "must be a whole number of minutes, e.g. 1m, 5m, 1h, 1d",
                    ));
                }
                parsed.step = step;
            }
            name => {
                if !config.has_dimension(name) {
                    return Err(invalid_query(
                        name,
                        format!(
                            "not a query parameter or dimension; dimensions are: {}",
                            config.dimension_list()
                        ),
                    ));
                }
                parsed.filter.push((name.to_owned(), value));
            }
        }
    }
    Ok(parsed)
}

/// The minutes to read: `to` defaults to the end of the window holding `now`, `from` to a day
/// before `to`; a partial minute at the end is read whole.
fn minute_range(params: &MetricsParams, now: Timestamp) -> Result<MinuteRange, ApiError> {
    let step_minutes = params.step.millis() / MS_PER_MINUTE;
    let to = params.to.unwrap_or_else(|| {
        let next_window = (now.minute().index().div_euclid(step_minutes) + 1) * step_minutes;
        Minute::new(next_window).start()
    });
    let from = params
        .from
        .unwrap_or_else(|| to.saturating_sub(DurationMs::from_hours(24)));
    if to.since(from).millis() > METRICS_RANGE_MAX_MS {
        return Err(invalid_query(
            "from",
            format!(
                "the range may span at most {}",
                DurationMs::from_millis(METRICS_RANGE_MAX_MS)
            ),
        ));
    }
    Ok(MinuteRange {
        from: from.minute(),
        to: Minute::new(
            to.millis().div_euclid(MS_PER_MINUTE) + i64::from(to.millis() % MS_PER_MINUTE != 0),
        ),
        step_minutes,
    })
}

async fn read_counts(
    state: &AppState,
    query: CountsQuery,
) -> Result<(Vec<MinuteCount>, Vec<LateCount>), ApiError> {
    let store = state.store.clone();
    blocking(move || {
        let counts = store
            .minute_counts(&query)
            .map_err(|err| ApiError::internal("reading counts", err))?;
        let late = store
            .late_counts(&query.funnel, query.from, query.to)
            .map_err(|err| ApiError::internal("reading late counts", err))?;
        Ok((counts, late))
    })
    .await
}

/// One window: each stage's figures and the late events that fell in it.
fn window_json(
    window: &Window,
    funnel: &Funnel,
    late: &[LateCount],
    step_minutes: i64,
    currency: &str,
) -> Value {
    let window_end = window.start.index() + step_minutes;
    let stages: Vec<_> = window
        .stages
        .iter()
        .zip(&funnel.stages)
        .enumerate()
        .map(|(index, (figures, stage))| {
            let n_late: i64 = late
                .iter()
                .filter(|l| {
                    l.stage == index && l.minute >= window.start && l.minute.index() < window_end
                })
                .map(|l| l.n_events)
                .sum();
            json!({
                "stage": stage.id,
                "count": figures.count.n_events,
                "step_conversion": figures.step_conversion,
                "drop_off_rate": figures.drop_off_rate,
                "overall_conversion": figures.overall_conversion,
                "excess": figures.excess,
                "late": n_late,
                "revenue": {"minor": figures.count.revenue_minor, "currency": currency},
            })
        })
        .collect();
    json!({"start": window.start.start().to_string(), "stages": stages})
}
