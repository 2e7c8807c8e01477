//! An incident's revenue impact as the API shows it: the figures on every incident
//! ([`impact_summary_view`]) and `GET /api/v1/incidents/{id}/impact`, the figures with the
//! newest windows and every input, so that a person can redo the arithmetic
//! (docs/impact.md). The core computes; this module only converts.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use revloop_api::incidents as wire;
use revloop_core::Money;
use revloop_core::impact::{Impact, ImpactError, ImpactWindow};
use revloop_core::incident::Incident;
use revloop_store::Role;

use crate::api::incidents::parse_id;
use crate::api::{AppState, json_reply, require, store_error};
use crate::http::query::{parse_limit, unknown_parameter};
use crate::http::{ApiError, blocking};

/// Most windows one `/impact` request lists (the totals always cover every window).
pub const IMPACT_WINDOWS_PAGE_MAX: usize = revloop_core::impact::IMPACT_WINDOWS_KEPT;
/// Windows listed when no `limit` is given.
const IMPACT_WINDOWS_DEFAULT: usize = 24;

fn amount(money: Money) -> wire::Amount {
    wire::Amount {
        minor: money.minor,
        currency: money.currency.code().to_owned(),
        display: money.to_string(),
    }
}

fn error_name(error: ImpactError) -> &'static str {
    match error {
        ImpactError::Overflow => "overflow",
        ImpactError::CurrencyChanged => "currency_changed",
        ImpactError::NotFinite => "not_finite",
    }
}

/// The figures of an incident's impact now. An impact whose figures overflow shows zero
/// amounts and says so in `error`. The loss per hour and the daily projection are rates of
/// an incident still losing: zero once it has recovered or resolved.
pub fn impact_summary_view(incident: &Incident, impact: &Impact) -> wire::ImpactSummary {
    let figures = impact.figures();
    let zero = Money::new(0, impact.currency);
    let pick =
        |f: fn(&revloop_core::impact::ImpactFigures) -> Money| figures.as_ref().map_or(zero, f);
    let losing = incident.is_open() && !incident.is_recovered();
    let rate = |f: fn(&revloop_core::impact::ImpactFigures) -> Money| {
        if losing { pick(f) } else { zero }
    };
    let error = impact.error.or(figures.as_ref().err().copied());
    wire::ImpactSummary {
        loss: amount(pick(|f| f.loss)),
        loss_per_hour: amount(rate(|f| f.loss_per_hour)),
        daily_projection: amount(rate(|f| f.daily_projection)),
        band: amount(pick(|f| f.band)),
        within_noise: figures.as_ref().is_ok_and(|f| f.within_noise),
        orders_lost: figures.as_ref().map_or(0.0, |f| f.orders_lost),
        shoppers_affected: impact.shoppers_affected,
        aov: amount(Money::new(impact.aov.minor, impact.aov.currency)),
        aov_source: impact.aov.source.as_str().to_owned(),
        duration_factor: impact.duration_factor,
        window_minutes: impact.window_minutes,
        n_windows: impact.n_windows,
        n_windows_booked: impact.n_windows_booked,
        error: error.map(|e| error_name(e).to_owned()),
    }
}

fn window_view(window: &ImpactWindow) -> wire::ImpactWindow {
    wire::ImpactWindow {
        from: window.from.to_string(),
        to: window.to.to_string(),
        minutes: window.minutes,
        shoppers: window.shoppers,
        went_on: window.went_on,
        baseline_drop_off: window.baseline_drop_off,
        observed_drop_off: window.observed_drop_off,
        downstream_conversion: window.downstream_conversion,
        window_sd: window.window_sd,
        lost_micro_orders: window.lost_micro_orders,
        aov_minor: window.aov_minor,
        loss_micro_minor: window.loss_micro_minor.to_string(),
        sd_orders: window.sd_orders,
    }
}

/// `GET /api/v1/incidents/{id}/impact?limit=`: the figures and the newest windows.
#[utoipa::path(
    get, path = "/api/v1/incidents/{id}/impact", tag = "incidents",
    params(
        ("id" = u64, Path, example = 1, description = "The incident's id"),
        ("limit" = Option<usize>, Query, minimum = 1, maximum = 240, description = "Newest windows to list (default 24)"),
    ),
    responses(
        (status = 200, description = "The impact with its inputs", body = revloop_api::incidents::IncidentImpact),
        (status = 400, description = "A query parameter is invalid or unknown", body = revloop_api::ErrorBody),
        (status = 404, description = "No such incident", body = revloop_api::ErrorBody),
    ),
    security(("api_token" = ["viewer"])),
)]
pub async fn incident_impact(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(params): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let now = state.clock.now();
    require(&state, &headers, None, Role::Viewer, now).await?;
    let id = parse_id(&id)?;
    let mut limit = IMPACT_WINDOWS_DEFAULT;
    for (name, value) in &params {
        match name.as_str() {
            "limit" => limit = parse_limit(value, IMPACT_WINDOWS_PAGE_MAX)?,
            other => return Err(unknown_parameter(other, "`limit`")),
        }
    }
    let snapshot = state.incidents.snapshot().await.map_err(store_error)?;
    let in_engine = snapshot.engine().incident(id).cloned();
    let incidents = state.incidents.clone();
    let body = blocking(move || {
        let incident = match in_engine {
            Some(incident) => incident,
            None => incidents
                .stored_incident(id)
                .map_err(store_error)?
                .ok_or_else(|| ApiError::not_found(format!("no incident {id}")))?,
        };
        let impact = incident.impact.as_ref();
        let kept = impact.map_or(0, |i| i.windows.len());
        let listed = limit.min(kept);
        Ok(wire::IncidentImpact {
            id,
            false_alarm: incident.false_alarm,
            impact: impact.map(|i| impact_summary_view(&incident, i)),
            loss_micro_minor: impact.map(|i| i.loss_micro_minor.to_string()),
            rounding: "half_even".to_owned(),
            windows: impact
                .map(|i| {
                    i.windows
                        .iter()
                        .skip(kept - listed)
                        .map(window_view)
                        .collect()
                })
                .unwrap_or_default(),
            windows_omitted: impact.map_or(0, |i| i.n_windows.saturating_sub(listed as u64)),
            inputs_json: impact.map(Impact::inputs_json),
        })
    })
    .await?;
    Ok(json_reply(StatusCode::OK, &body))
}
