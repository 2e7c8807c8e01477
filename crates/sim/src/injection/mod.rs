//! Incident injection: what an injected incident is ([`InjectedIncident`], [`IncidentKind`]),
//! the checks it must pass and the effect it has on the traffic model, resolved against a
//! config. The command-line text form lives in [`spec`].
//!
//! This module knows the config's funnels and stages, never the traffic model's internals: the
//! model asks it what an incident does and applies that itself.

mod spec;

pub use spec::ParsedIncident;

#[cfg(test)]
mod tests;

use revloop_core::config::Config;
use revloop_core::time::{DurationMs, Timestamp};

/// The largest traffic multiplier a surge may apply.
pub const SURGE_FACTOR_MAX: f64 = 100.0;
/// A sale day's first hour, when the newsletter lands and the banner goes up, brings this many
/// times the day's own surge: the steepest part of the day.
pub const SALE_DAY_FIRST_HOUR_BOOST: f64 = 1.5;
/// How long a sale day's opening rush lasts.
pub const SALE_DAY_RUSH: DurationMs = DurationMs::from_hours(1);

/// A change to the traffic inside `[from, to)`, for one funnel or all, and for one segment or all.
#[derive(Debug, Clone, PartialEq)]
pub struct InjectedIncident {
    /// A funnel id; `None` is every funnel.
    pub funnel: Option<String>,
    pub kind: IncidentKind,
    pub from: Timestamp,
    pub to: Timestamp,
    /// A dimension name and value: only sessions with that value are affected. A session draws
    /// all its values when it starts, so `payment_method:paypal` selects the shoppers who would
    /// pay with PayPal even at stages before payment.
    pub segment: Option<(String, String)>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum IncidentKind {
    /// Shoppers at `stage` (a stage id) go on to the next stage with their probability
    /// multiplied by `1 - drop`. Applies when the shopper reaches `stage` inside the window.
    Conversion { stage: String, drop: f64 },
    /// The events of `stage` are lost with probability `drop`, but shoppers go on as usual:
    /// a broken tracking pixel.
    Pixel { stage: String, drop: f64 },
    /// Sessions entering the funnel are multiplied by `factor` (a marketing spike above 1, an
    /// outage of a traffic source below 1). The extra sessions convert slightly worse.
    Surge { factor: f64 },
    /// A sale day: sessions entering the funnel are multiplied by `factor` (2 to 3 on a
    /// typical one) over the whole range, and by [`SALE_DAY_FIRST_HOUR_BOOST`] times that in
    /// its first hour ([`SALE_DAY_RUSH`]). The extra shoppers are new: like a surge's, they
    /// convert slightly worse than the regulars.
    SaleDay { factor: f64 },
}

/// What an incident does to the traffic, as the model applies it.
pub(crate) enum Effect {
    Conversion {
        keep: f64,
    },
    Pixel {
        loss: f64,
    },
    /// Entering sessions multiplied by `factor`, by `rush_factor` for the first `rush`.
    Surge {
        factor: f64,
        rush_factor: f64,
        rush: DurationMs,
    },
}

impl Effect {
    /// A surge's multiplier of entering sessions `since_from` after its start; 1 for any
    /// other effect.
    pub(crate) fn surge_factor(&self, since_from: DurationMs) -> f64 {
        match *self {
            Effect::Surge {
                factor,
                rush_factor,
                rush,
            } => {
                if since_from < rush {
                    rush_factor
                } else {
                    factor
                }
            }
            Effect::Conversion { .. } | Effect::Pixel { .. } => 1.0,
        }
    }
}

/// Checks an incident's kind and time range and resolves its effect and the stage it applies
/// to in each funnel (`None` where the funnel is not affected). The segment, which needs the
/// model's drawn attributes, is resolved by the model.
pub(crate) fn resolve_effect(
    config: &Config,
    incident: &InjectedIncident,
) -> Result<(Effect, Vec<Option<usize>>), String> {
    check_kind(&incident.kind)?;
    if incident.from >= incident.to {
        return Err("`from` must be before `to`".into());
    }
    let funnels: Vec<usize> = match &incident.funnel {
        None => (0..config.funnels.len()).collect(),
        Some(id) => match config.funnels.iter().position(|f| f.id == *id) {
            Some(index) => vec![index],
            None => {
                return Err(format!(
                    "no funnel `{id}` in the config (funnels: {})",
                    config.funnel_list()
                ));
            }
        },
    };
    let mut stage_by_funnel = vec![None; config.funnels.len()];
    let effect = match &incident.kind {
        IncidentKind::Surge { factor } | IncidentKind::SaleDay { factor } => {
            for funnel in &funnels {
                stage_by_funnel[*funnel] = Some(0);
            }
            let sale_day = matches!(incident.kind, IncidentKind::SaleDay { .. });
            Effect::Surge {
                factor: *factor,
                rush_factor: if sale_day {
                    factor * SALE_DAY_FIRST_HOUR_BOOST
                } else {
                    *factor
                },
                rush: if sale_day {
                    SALE_DAY_RUSH
                } else {
                    DurationMs::ZERO
                },
            }
        }
        IncidentKind::Conversion { stage, drop } | IncidentKind::Pixel { stage, drop } => {
            let is_conversion = matches!(incident.kind, IncidentKind::Conversion { .. });
            let mut last_of = None;
            for funnel in &funnels {
                let stages = &config.funnels[*funnel].stages;
                match stages.iter().position(|s| s.id == *stage) {
                    Some(index) if is_conversion && index + 1 == stages.len() => {
                        last_of = Some(&config.funnels[*funnel].id);
                    }
                    Some(index) => stage_by_funnel[*funnel] = Some(index),
                    None => {}
                }
            }
            if stage_by_funnel.iter().all(Option::is_none) {
                if let Some(funnel_id) = last_of {
                    return Err(format!(
                        "stage `{stage}` is the last of funnel `{funnel_id}`: a conversion \
                         incident needs a next stage to convert to"
                    ));
                }
                return Err(format!(
                    "no stage `{stage}` in the affected funnels (stages: {})",
                    config.stage_list(incident.funnel.as_deref())
                ));
            }
            if is_conversion {
                Effect::Conversion { keep: 1.0 - drop }
            } else {
                Effect::Pixel { loss: *drop }
            }
        }
    };
    Ok((effect, stage_by_funnel))
}

pub(crate) fn check_kind(kind: &IncidentKind) -> Result<(), String> {
    match kind {
        IncidentKind::Conversion { drop, .. } | IncidentKind::Pixel { drop, .. } => {
            if !(0.0..=1.0).contains(drop) {
                return Err(format!("`drop` must be a number from 0 to 1, not {drop}"));
            }
        }
        IncidentKind::Surge { factor } => {
            if !(0.0..=SURGE_FACTOR_MAX).contains(factor) {
                return Err(format!(
                    "`factor` must be a number from 0 to {SURGE_FACTOR_MAX}, not {factor}"
                ));
            }
        }
        IncidentKind::SaleDay { factor } => {
            let max = SURGE_FACTOR_MAX / SALE_DAY_FIRST_HOUR_BOOST;
            if !(1.0..=max).contains(factor) {
                return Err(format!(
                    "`factor` of a sale day must be a number from 1 to {max}, not {factor}"
                ));
            }
        }
    }
    Ok(())
}
