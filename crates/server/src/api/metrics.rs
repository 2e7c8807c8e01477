//! `GET /api/v1/funnels/{id}/metrics`: a funnel's counts rolled up into windows of `step`,
//! with each stage's conversion, drop-off, late events and revenue, optionally filtered by
//! dimension values.
//!
//! Folding is never silent here: the reply says, for each filtered value, whether it is
//! tracked, folded into `other` (its dimension was full before it came) or unseen, and for each
//! dimension how many values it tracks against its cap.
//!
//! A read of the store; the rollup itself is the core's. It never changes state.

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use revloop_core::Config;
use revloop_core::config::Funnel;
use revloop_core::funnel::{
    DIMENSION_VALUE_LEN_MAX, DimensionValues, VALUE_CUT_MARK, VALUE_INVALID, VALUE_NONE,
    VALUE_OTHER,
};
use revloop_core::metrics::{MinuteCount, RollupError, Window, WindowSpan, rollup};
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

#[utoipa::path(
    get, path = "/api/v1/funnels/{id}/metrics", tag = "funnels",
    params(
        ("id" = String, Path, example = "checkout", description = "The funnel's id"),
        ("from" = Option<String>, Query, description = "RFC 3339; default a day before `to`"),
        ("to" = Option<String>, Query, description = "RFC 3339; default the end of the window holding now"),
        ("step" = Option<String>, Query, description = "The window: a whole number of minutes, e.g. `5m`, `1h` (default), `1d`"),
        ("filter" = Option<std::collections::BTreeMap<String, String>>, Query, style = Form, explode, description = "Dimension filters: `<dimension>=<value>`, one per configured dimension"),
    ),
    responses(
        (status = 200, description = "Per window and stage: counts, conversion, drop-off, late events, revenue", body = crate::api::openapi::FunnelMetrics),
        (status = 400, description = "A query parameter is invalid or unknown, or the range too long", body = revloop_api::ErrorBody),
        (status = 404, description = "No such funnel", body = revloop_api::ErrorBody),
    ),
    security(("api_token" = ["viewer"])),
)]
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
    // Refused before anything is read.
    let span = WindowSpan::of(range.from, range.to, range.step_minutes).map_err(rollup_error)?;
    let query = CountsQuery {
        funnel: funnel.id.clone(),
        from: range.from,
        to: range.to,
        filter: params.filter.clone(),
    };
    let Read {
        counts,
        late,
        dimension_values,
    } = read_counts(&state, query).await?;
    let windows = rollup(
        funnel.stages.len(),
        &counts,
        range.from,
        range.to,
        range.step_minutes,
    )
    .map_err(rollup_error)?;
    let currency = state.config.shop.currency.code();
    let late = late_per_window(&late, &range, span, funnel.stages.len());
    let windows_json: Vec<_> = windows
        .iter()
        .zip(&late)
        .map(|(window, late)| window_json(window, &funnel, late, currency))
        .collect();
    let filter_json: serde_json::Map<String, Value> = params
        .filter
        .iter()
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    Ok(axum::Json(json!({
        "funnel": funnel.id,
        "from": range.from.start().to_string(),
        "to": range.to.start().to_string(),
        "step": params.step.to_string(),
        "filter": filter_json,
        "segment": segment_json(&state.config, &params.filter, &dimension_values),
        "dimensions": dimensions_json(&state.config, &dimension_values),
        "stages": funnel.stages.iter().map(|s| s.id.clone()).collect::<Vec<_>>(),
        "windows": windows_json,
        "resolution": resolution_json(&state.config, &range, now),
    }))
    .into_response())
}

/// What resolution the counts read have: minutes before `hourly_before` may have been rolled
/// up to hourly by the maintenance (see `retention` in the config), each hour's counts then
/// in the window holding its first minute. `hourly` says whether the range reaches back there.
fn resolution_json(config: &Config, range: &MinuteRange, now: Timestamp) -> Value {
    let hourly_before = config.retention.hourly_before(now);
    json!({
        "hourly_before": hourly_before.start().to_string(),
        "hourly": range.from < hourly_before,
    })
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

/// What one metrics request reads from the store.
struct Read {
    counts: Vec<MinuteCount>,
    late: Vec<LateCount>,
    /// The admitted values of each configured dimension.
    dimension_values: Vec<(String, Vec<String>)>,
}

async fn read_counts(state: &AppState, query: CountsQuery) -> Result<Read, ApiError> {
    let store = state.store.clone();
    blocking(move || {
        let counts = store
            .minute_counts(&query)
            .map_err(|err| ApiError::store("reading counts", err))?;
        let late = store
            .late_counts(&query)
            .map_err(|err| ApiError::store("reading late counts", err))?;
        let dimension_values = store
            .dimension_values()
            .map_err(|err| ApiError::store("reading dimension values", err))?;
        Ok(Read {
            counts,
            late,
            dimension_values,
        })
    })
    .await
}

/// Whether the counts of one filtered value are what was sent for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum ValueStatus {
    /// Admitted (or a fold bucket itself): its events are counted under it.
    Tracked,
    /// Never stored while its dimension was below its cap: no events yet.
    Unseen,
    /// Not admitted and its dimension is full: its events, if any came, are under `other`.
    Folded,
}

impl ValueStatus {
    fn as_str(self) -> &'static str {
        match self {
            ValueStatus::Tracked => "tracked",
            ValueStatus::Unseen => "unseen",
            ValueStatus::Folded => "folded",
        }
    }
}

/// One filtered value's status and the sentence that explains it.
fn value_status(
    dimension: &str,
    value: &str,
    values_max: u32,
    admitted: &[String],
) -> (ValueStatus, String) {
    let n_tracked = admitted.len();
    if value == VALUE_OTHER {
        let text = format!(
            "`{VALUE_OTHER}` is the fold bucket of `{dimension}`: the events of values that came \
             after it reached its cap of {values_max} values"
        );
        return (ValueStatus::Tracked, text);
    }
    if value == VALUE_NONE {
        let text = format!("`{VALUE_NONE}`: events without a `{dimension}` value");
        return (ValueStatus::Tracked, text);
    }
    if value == VALUE_INVALID {
        let text = format!(
            "`{VALUE_INVALID}`: events whose `{dimension}` value was sent but could not be used \
             as text (see the problem log's `invalid_value` notices)"
        );
        return (ValueStatus::Tracked, text);
    }
    if value.len() > DIMENSION_VALUE_LEN_MAX {
        let stored = DimensionValues::new([value]);
        let cut = stored.iter().next().unwrap_or_default();
        let text = format!(
            "values longer than {DIMENSION_VALUE_LEN_MAX} bytes are stored cut, ending in \
             `{VALUE_CUT_MARK}`: query {dimension}={cut} for this one"
        );
        return (ValueStatus::Unseen, text);
    }
    if admitted.iter().any(|v| v == value) {
        let text = format!("`{dimension}` = `{value}` is tracked as its own segment");
        return (ValueStatus::Tracked, text);
    }
    if n_tracked >= values_max as usize {
        let text = format!(
            "`{dimension}` reached its cap of {values_max} values before `{value}` was seen, so \
             its events (if any were sent) are counted under `{VALUE_OTHER}`, not here; query \
             {dimension}={VALUE_OTHER} for them, or raise `max_values`"
        );
        return (ValueStatus::Folded, text);
    }
    let text = format!(
        "no event with `{dimension}` = `{value}` has been stored; `{dimension}` tracks \
         {n_tracked} of at most {values_max} values, so this value will be tracked from its \
         first event"
    );
    (ValueStatus::Unseen, text)
}

/// The filter's segment: the worst status of its values (folded, then unseen, then tracked),
/// and each value's own.
fn segment_json(
    config: &Config,
    filter: &[(String, String)],
    dimension_values: &[(String, Vec<String>)],
) -> Value {
    let mut worst = ValueStatus::Tracked;
    let values: Vec<Value> = filter
        .iter()
        .map(|(dimension, value)| {
            let values_max = config
                .dimensions
                .iter()
                .find(|d| d.name == *dimension)
                .map_or(0, |d| d.values_max);
            let admitted = dimension_values
                .iter()
                .find(|(name, _)| name == dimension)
                .map_or(&[][..], |(_, values)| values.as_slice());
            let (status, message) = value_status(dimension, value, values_max, admitted);
            worst = worst.max(status);
            json!({
                "dimension": dimension,
                "value": value,
                "status": status.as_str(),
                "message": message,
            })
        })
        .collect();
    let message = match (filter.is_empty(), worst) {
        (true, _) => "every segment together".to_owned(),
        (false, ValueStatus::Tracked) => "every filtered value is tracked".to_owned(),
        (false, _) => values
            .iter()
            .filter(|v| v["status"] == worst.as_str())
            .filter_map(|v| v["message"].as_str())
            .collect::<Vec<_>>()
            .join("; "),
    };
    json!({"status": worst.as_str(), "message": message, "values": values})
}

/// Per configured dimension: how many values it tracks, its cap, and whether it is full (new
/// values fold into `other`).
fn dimensions_json(config: &Config, dimension_values: &[(String, Vec<String>)]) -> Vec<Value> {
    config
        .dimensions
        .iter()
        .map(|dimension| {
            let n_tracked = dimension_values
                .iter()
                .find(|(name, _)| *name == dimension.name)
                .map_or(0, |(_, values)| values.len());
            json!({
                "name": dimension.name,
                "values_tracked": n_tracked,
                "values_max": dimension.values_max,
                "full": n_tracked >= dimension.values_max as usize,
            })
        })
        .collect()
}

fn rollup_error(err: RollupError) -> ApiError {
    match err {
        RollupError::EmptyRange => invalid_query("from", err.to_string()),
        _ => invalid_query("step", err.to_string()),
    }
}

/// The late events of each window and stage, in one pass over the late counts.
fn late_per_window(
    late: &[LateCount],
    range: &MinuteRange,
    span: WindowSpan,
    n_stages: usize,
) -> Vec<Vec<i64>> {
    let mut sums = vec![vec![0_i64; n_stages]; span.n_windows];
    for count in late {
        if count.minute < range.from || count.minute >= range.to || count.stage >= n_stages {
            continue;
        }
        let window = (count.minute.index().div_euclid(range.step_minutes) - span.first) as usize;
        let sum = &mut sums[window][count.stage];
        *sum = sum.saturating_add(count.n_events);
    }
    sums
}

/// One window: each stage's figures and the late events that fell in it.
fn window_json(window: &Window, funnel: &Funnel, late: &[i64], currency: &str) -> Value {
    let stages: Vec<_> = window
        .stages
        .iter()
        .zip(&funnel.stages)
        .zip(late)
        .map(|((figures, stage), &n_late)| {
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
