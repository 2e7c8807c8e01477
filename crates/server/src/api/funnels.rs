//! `GET /api/v1/funnels`: the configured funnels with their stages and average order value,
//! the currency and time zone, and every dimension with the values seen so far.
//!
//! A read of config and store; it never changes either.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use revloop_core::config::Trigger;
use revloop_core::ingest::StageCount;
use revloop_core::time::{DurationMs, Timestamp};
use revloop_core::{Config, Money};
use revloop_store::{CountsQuery, Role, Store};

use crate::api::{AppState, require};
use crate::http::{ApiError, blocking};

#[utoipa::path(
    get, path = "/api/v1/funnels", tag = "funnels",
    responses((status = 200, description = "The configured funnels, and every dimension with the values seen", body = crate::api::openapi::FunnelList)),
    security(("api_token" = ["viewer"])),
)]
pub async fn list_funnels(
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
                        Trigger::Track(n) => ("track", n),
                        Trigger::Page(n) => ("page", n),
                        Trigger::Screen(n) => ("screen", n),
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
        let values = store.dimension_values().map_err(|err| ApiError::store("reading dimension values", err))?;
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
            to: now.minute().plus(1),
            filter: Vec::new(),
        })
        .map_err(|err| ApiError::store("reading counts", err))?;
    // Saturating, as every sum of counts: a week of revenue at the bounds of i64 is nonsense,
    // but it must not be a panic or a wrapped sign.
    let mut week_total = StageCount::default();
    for count in &counts {
        week_total.add(count.count);
    }
    let (revenue, n) = (week_total.revenue_minor, week_total.n_revenue_events);
    if n <= 0 {
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
