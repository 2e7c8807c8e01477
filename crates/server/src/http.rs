//! Routes and handlers. Handlers parse, authorize, act, and answer; the work itself lives in
//! [`crate::ingest`] and the store. Store calls run on the blocking pool, never on the async
//! workers.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use serde_json::json;

use revloop_core::funnel::CallKind;
use revloop_core::metrics::rollup;
use revloop_core::time::{DurationMs, MS_PER_HOUR, MS_PER_MINUTE, Minute, Timestamp};
use revloop_core::{Config, Money};
use revloop_store::{CountsQuery, Role, Store};

use crate::Clock;
use crate::auth::{Authenticator, credential};
use crate::error::ApiError;
use crate::ingest::{
    BATCH_BYTES_MAX, BULK_BYTES_MAX, COUNTS_BYTES_MAX, Ingestor, LiveClock, Outcome, Place,
    Prepared, decode_body,
};
use crate::segment::MESSAGE_BYTES_MAX;
use crate::telemetry::Telemetry;

/// Longest range `/metrics` of a funnel reads at once.
pub const METRICS_RANGE_MAX_MS: i64 = 92 * 24 * MS_PER_HOUR;

#[derive(Clone)]
pub struct AppState {
    pub detection: Arc<crate::detection::Detection>,
    pub incidents: Arc<crate::incidents::Incidents>,
    pub config: Arc<Config>,
    pub store: Arc<dyn Store>,
    pub ingestor: Arc<Ingestor>,
    pub auth: Authenticator,
    pub clock: Arc<dyn Clock>,
    pub telemetry: Arc<Telemetry>,
    pub metrics_public: bool,
}

pub fn router(state: AppState) -> Router {
    Router::new()
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
        .route("/api/v1/funnels", get(list_funnels))
        .route("/api/v1/funnels/{id}/metrics", get(funnel_metrics))
        .merge(crate::alerts_api::routes())
        .merge(crate::incidents_api::routes())
        .route(
            "/healthz",
            get(|| async { axum::Json(json!({"status": "ok"})) }),
        )
        .route("/readyz", get(readyz))
        .route("/metrics", get(prometheus))
        .fallback(|| async { ApiError::not_found("no such endpoint; see README.md for the API") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this endpoint does not take that method; see README.md for the API",
            )
        })
        .with_state(state)
}

/// A POST route for one kind of ingest body, with that kind's body limit.
fn ingest_route(kind: BodyKind) -> MethodRouter<AppState> {
    post(move |state: State<AppState>, headers: HeaderMap, body: Result<Bytes, BytesRejection>| async move {
        ingest(state, headers, body, kind).await
    })
    .layer(DefaultBodyLimit::max(kind.limit()))
}

#[derive(Debug, Clone, Copy)]
enum BodyKind {
    Single(CallKind),
    Batch,
    Ndjson,
    Counts,
}

impl BodyKind {
    fn limit(self) -> usize {
        match self {
            BodyKind::Single(_) => MESSAGE_BYTES_MAX,
            BodyKind::Batch => BATCH_BYTES_MAX,
            BodyKind::Ndjson => BULK_BYTES_MAX,
            BodyKind::Counts => COUNTS_BYTES_MAX,
        }
    }
}

async fn ingest(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
    kind: BodyKind,
) -> Response {
    match ingest_inner(&state, &headers, body, kind).await {
        Ok(outcome) => axum::Json(json!({
            "success": true,
            "counted": outcome.counted,
            "duplicates": outcome.duplicates,
            "late": outcome.late,
            "ignored": outcome.ignored,
        }))
        .into_response(),
        Err(err) => {
            state.telemetry.reject(err.code);
            err.into_response()
        }
    }
}

async fn ingest_inner(
    state: &AppState,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    kind: BodyKind,
) -> Result<Outcome, ApiError> {
    let now = state.clock.now();
    let has_header_credential = credential(headers)?.is_some();
    if has_header_credential {
        require(state, headers, None, Role::Ingest, now).await?;
    }
    let limit = kind.limit();
    let bytes = read_body(body, limit)?;
    let text = decode_body(&bytes, is_gzip(headers)?, limit)?;
    let ndjson = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-ndjson"));
    let mut clock = LiveClock(now);
    let ingestor = &state.ingestor;
    let prepared: Prepared = match kind {
        BodyKind::Single(call) => {
            ingestor.prepare_messages([(Place::Body, &*text)], Some(call), None, &mut clock)?
        }
        BodyKind::Batch => ingestor.prepare_batch(&text, &mut clock)?,
        BodyKind::Ndjson => ingestor.prepare_ndjson(&text, &mut clock)?,
        BodyKind::Counts => ingestor.prepare_counts(&text, ndjson, &mut clock)?,
    };
    if !has_header_credential {
        let body_key = match kind {
            BodyKind::Single(_) | BodyKind::Batch => prepared.body_write_key.as_deref(),
            BodyKind::Ndjson | BodyKind::Counts => None,
        };
        require(state, headers, body_key, Role::Ingest, now).await?;
    }
    ingestor.commit(now, prepared).await
}

pub(crate) async fn require(
    state: &AppState,
    headers: &HeaderMap,
    body_write_key: Option<&str>,
    needed: Role,
    now: Timestamp,
) -> Result<Role, ApiError> {
    let auth = state.auth.clone();
    let headers = headers.clone();
    let body_write_key = body_write_key.map(str::to_owned);
    tokio::task::spawn_blocking(move || {
        auth.require(&headers, body_write_key.as_deref(), needed, now)
    })
    .await
    .map_err(|err| ApiError::internal("authorization task failed", err))?
}

/// As [`require`], also naming the token, for the actor of an incident action.
pub(crate) async fn identify(
    state: &AppState,
    headers: &HeaderMap,
    needed: Role,
    now: Timestamp,
) -> Result<String, ApiError> {
    let auth = state.auth.clone();
    let headers = headers.clone();
    tokio::task::spawn_blocking(move || auth.identify(&headers, None, needed, now))
        .await
        .map_err(|err| ApiError::internal("authorization task failed", err))?
        .map(|(_, name)| name)
}

/// Whether the body is gzip (`Content-Encoding: gzip`); any encoding but gzip and identity is
/// a 415.
pub(crate) fn is_gzip(headers: &HeaderMap) -> Result<bool, ApiError> {
    match headers
        .get(header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("?"))
    {
        None => Ok(false),
        Some(encoding) if encoding.eq_ignore_ascii_case("gzip") => Ok(true),
        Some(encoding) if encoding.eq_ignore_ascii_case("identity") => Ok(false),
        Some(encoding) => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_encoding",
            format!(
                "Content-Encoding `{encoding}` is not supported; send gzip or no encoding; nothing was stored"
            ),
        )),
    }
}

/// The body, or a JSON error when it was over `limit` or could not be read.
pub(crate) fn read_body(
    body: Result<Bytes, BytesRejection>,
    limit: usize,
) -> Result<Bytes, ApiError> {
    body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::too_large(format!(
                "body is larger than {limit} bytes; nothing was stored"
            ))
        } else {
            ApiError::bad_request(
                "unreadable_body",
                format!("could not read the body: {rejection}"),
            )
        }
    })
}

pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|err| ApiError::internal("store task failed", err))?
}

async fn list_funnels(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let now = state.clock.now();
    require(&state, &headers, None, Role::Viewer, now).await?;
    let config = state.config.clone();
    let store = state.store.clone();
    let body = blocking(move || {
        let mut funnels = Vec::new();
        for funnel in &config.funnels {
            let stages: Vec<_> = funnel
                .stages
                .iter()
                .map(|stage| {
                    let (call, name) = match &stage.trigger {
                        revloop_core::config::Trigger::Track(n) => ("track", n),
                        revloop_core::config::Trigger::Page(n) => ("page", n),
                        revloop_core::config::Trigger::Screen(n) => ("screen", n),
                    };
                    let filters: serde_json::Map<String, serde_json::Value> =
                        stage.filters.iter().map(|(p, v)| (p.to_string(), json!(v))).collect();
                    json!({"id": stage.id, "name": stage.name, "call": call, "event": name, "where": filters})
                })
                .collect();
            let aov = average_order_value(&*store, &config, &funnel.id, now)?;
            funnels.push(json!({
                "id": funnel.id,
                "name": funnel.name,
                "stages": stages,
                "average_order_value": aov,
            }));
        }
        let values = store.dimension_values().map_err(|err| ApiError::internal("reading dimension values", err))?;
        let dimensions: Vec<_> = config
            .dimensions
            .iter()
            .map(|d| {
                let seen = values.iter().find(|(name, _)| *name == d.name).map(|(_, v)| v.clone()).unwrap_or_default();
                json!({"name": d.name, "path": d.path.to_string(), "max_values": d.values_max, "values": seen})
            })
            .collect();
        Ok(json!({
            "currency": config.shop.currency.code(),
            "time_zone": config.shop.time_zone,
            "funnels": funnels,
            "dimensions": dimensions,
        }))
    })
    .await?;
    Ok(axum::Json(body).into_response())
}

/// The configured average order value, else the one measured over the last week.
fn average_order_value(
    store: &dyn Store,
    config: &Config,
    funnel: &str,
    now: Timestamp,
) -> Result<serde_json::Value, ApiError> {
    if let Some(money) = config.shop.average_order_value {
        return Ok(money_json(money, "config"));
    }
    let week = DurationMs::from_hours(24 * 7);
    let counts = store
        .minute_counts(&CountsQuery {
            funnel: funnel.to_owned(),
            from: now.saturating_sub(week).minute(),
            to: Minute(now.minute().0 + 1),
            filter: Vec::new(),
        })
        .map_err(|err| ApiError::internal("reading counts", err))?;
    let (revenue, n) = counts.iter().fold((0_i64, 0_i64), |(r, n), c| {
        (r + c.count.revenue_minor, n + c.count.n_revenue_events)
    });
    if n == 0 {
        return Ok(serde_json::Value::Null);
    }
    Ok(money_json(
        Money::new(revenue / n, config.shop.currency),
        "measured over the last 7 days",
    ))
}

fn money_json(money: Money, source: &str) -> serde_json::Value {
    json!({"minor": money.minor, "currency": money.currency.code(), "display": money.to_string(), "source": source})
}

async fn funnel_metrics(
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
        .ok_or_else(|| ApiError::not_found(format!("no funnel `{funnel_id}`")))?
        .clone();
    let mut from = None;
    let mut to = None;
    let mut step = DurationMs::from_hours(1);
    let mut filter = Vec::new();
    let bad = |field: &str, message: String| {
        ApiError::bad_request("invalid_query", format!("{field}: {message}")).with_details(vec![
            crate::error::ErrorDetail {
                index: None,
                line: None,
                field: Some(field.to_owned()),
                message,
            },
        ])
    };
    for (key, value) in params {
        match key.as_str() {
            "from" => {
                from =
                    Some(Timestamp::parse_rfc3339(&value).map_err(|e| bad("from", e.to_string()))?)
            }
            "to" => {
                to = Some(Timestamp::parse_rfc3339(&value).map_err(|e| bad("to", e.to_string()))?)
            }
            "step" => {
                step = DurationMs::parse(&value).map_err(|e| bad("step", e.to_string()))?;
                if step.millis() % MS_PER_MINUTE != 0 || step.millis() <= 0 {
                    return Err(bad(
                        "step",
                        "must be a whole number of minutes, e.g. 1m, 5m, 1h, 1d".into(),
                    ));
                }
            }
            name => {
                if !state.config.has_dimension(name) {
                    return Err(bad(
                        name,
                        format!(
                            "not a query parameter or dimension; dimensions are: {}",
                            state.config.dimension_list()
                        ),
                    ));
                }
                filter.push((name.to_owned(), value));
            }
        }
    }
    let step_minutes = step.millis() / MS_PER_MINUTE;
    let to = to.unwrap_or_else(|| {
        let next_window = (now.minute().0.div_euclid(step_minutes) + 1) * step_minutes;
        Minute(next_window).start()
    });
    let from = from.unwrap_or_else(|| to.saturating_sub(DurationMs::from_hours(24)));
    if to.since(from).millis() > METRICS_RANGE_MAX_MS {
        return Err(bad(
            "from",
            format!(
                "the range may span at most {}",
                DurationMs(METRICS_RANGE_MAX_MS)
            ),
        ));
    }
    let from_minute = from.minute();
    let to_minute =
        Minute(to.millis().div_euclid(MS_PER_MINUTE) + i64::from(to.millis() % MS_PER_MINUTE != 0));
    let store = state.store.clone();
    let query = CountsQuery {
        funnel: funnel.id.clone(),
        from: from_minute,
        to: to_minute,
        filter: filter.clone(),
    };
    let (counts, late) = blocking(move || {
        let counts = store
            .minute_counts(&query)
            .map_err(|err| ApiError::internal("reading counts", err))?;
        let late = store
            .late_counts(&query.funnel, query.from, query.to)
            .map_err(|err| ApiError::internal("reading late counts", err))?;
        Ok((counts, late))
    })
    .await?;
    let windows = rollup(
        funnel.stages.len(),
        &counts,
        from_minute,
        to_minute,
        step_minutes,
    )
    .map_err(|err| match err {
        revloop_core::metrics::RollupError::EmptyRange => bad("from", err.to_string()),
        _ => bad("step", err.to_string()),
    })?;
    let currency = state.config.shop.currency.code();
    let windows_json: Vec<_> = windows
        .iter()
        .map(|window| {
            let window_end = window.start.0 + step_minutes;
            let stages: Vec<_> = window
                .stages
                .iter()
                .zip(&funnel.stages)
                .enumerate()
                .map(|(index, (figures, stage))| {
                    let n_late: i64 = late
                        .iter()
                        .filter(|l| {
                            l.stage == index && l.minute >= window.start && l.minute.0 < window_end
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
        })
        .collect();
    let filter_json: serde_json::Map<String, serde_json::Value> =
        filter.into_iter().map(|(k, v)| (k, json!(v))).collect();
    Ok(axum::Json(json!({
        "funnel": funnel.id,
        "from": from_minute.start().to_string(),
        "to": to_minute.start().to_string(),
        "step": step.to_string(),
        "filter": filter_json,
        "stages": funnel.stages.iter().map(|s| s.id.clone()).collect::<Vec<_>>(),
        "windows": windows_json,
    }))
    .into_response())
}

async fn readyz(State(state): State<AppState>) -> Response {
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

async fn prometheus(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if !state.metrics_public {
        require(&state, &headers, None, Role::Viewer, state.clock.now()).await?;
    }
    Ok((
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.telemetry.render(),
    )
        .into_response())
}
