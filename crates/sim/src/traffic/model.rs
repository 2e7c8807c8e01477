//! The traffic model's state: everything derived from a config and a scenario, checked, in the
//! shape the walk needs, and the walk itself (sessions arriving, drawing their segment and
//! going through the funnel's stages under any injected incidents).

use revloop_core::config::{Config, FieldPath, Trigger};
use revloop_core::funnel::CallKind;
use revloop_core::rng::Rng;
use revloop_core::time::{DurationMs, MS_PER_HOUR, MS_PER_MINUTE, Timestamp};

use super::*;
use crate::injection::{Effect, InjectedIncident, resolve_effect};

struct Attribute {
    path: FieldPath,
    values: ValueTable,
    weights: Vec<f64>,
    is_payment_method: bool,
}

impl Attribute {
    /// Whether the attribute is on the event of, and shifts the step from, stage `stage`.
    fn is_visible(&self, stage: usize, payment_stage: usize) -> bool {
        !self.is_payment_method || stage >= payment_stage
    }
}

struct FunnelModel {
    stages: Vec<StageModel>,
    /// Where the payment method first appears.
    payment_stage: usize,
}

struct StageModel {
    kind: CallKind,
    name: String,
    /// Logit of the base probability of going on to the next stage; unused on the last stage.
    step_logit: f64,
    /// Mean time from this stage's event to the next stage's.
    gap_mean_ms: f64,
    /// Fields the stage's `where` filters ask for, so that the event counts toward the stage.
    filter_fields: Vec<(FieldPath, SimValue)>,
}

struct ResolvedIncident {
    effect: Effect,
    /// The stage it applies to, by funnel index; `None` where the funnel is not affected. A
    /// surge applies to the first stage, where sessions enter.
    stage_by_funnel: Vec<Option<usize>>,
    from: Timestamp,
    to: Timestamp,
    /// Attribute index and value index.
    segment: Option<(usize, usize)>,
}

struct Session {
    /// Unique per session; seeds its identifiers.
    key: u64,
    funnel: usize,
    /// Value index per attribute.
    values: Vec<usize>,
    user_id: Option<String>,
    is_surge_extra: bool,
    start: Timestamp,
}

/// Everything derived from the config and scenario, checked, in the shape the walk needs.
pub(super) struct Model {
    seed: u64,
    from: Timestamp,
    to: Timestamp,
    peak_sessions_per_minute: f64,
    conversion_swing: ConversionSwing,
    time_zone: jiff::tz::TimeZone,
    pub(super) root: Rng,
    attributes: Vec<Attribute>,
    funnels: Vec<FunnelModel>,
    incidents: Vec<ResolvedIncident>,
    revenue_path: FieldPath,
    currency_path: FieldPath,
    currency_code: String,
    currency_exponent: u32,
    order_value_minor: i64,
    pub(super) session_span_max_ms: i64,
}

impl Model {
    pub(super) fn new(config: &Config, scenario: &Scenario) -> Result<Model, ScenarioError> {
        if scenario.from >= scenario.to {
            return Err(ScenarioError::EmptyRange);
        }
        if scenario.to.since(scenario.from).millis() > RANGE_DAYS_MAX * MS_PER_DAY {
            return Err(ScenarioError::RangeTooLong);
        }
        let peak = scenario.peak_sessions_per_minute;
        if !(0.0..=PEAK_SESSIONS_PER_MINUTE_MAX).contains(&peak) {
            return Err(ScenarioError::BadPeak(peak));
        }
        if scenario.incidents.len() > INCIDENTS_MAX {
            return Err(ScenarioError::TooManyIncidents(scenario.incidents.len()));
        }
        let time_zone = jiff::tz::TimeZone::get(&config.shop.time_zone)
            .map_err(|_| ScenarioError::UnknownTimeZone(config.shop.time_zone.clone()))?;
        // A parsed config always has one; a config built in code might not.
        if config.funnels.is_empty() {
            return Err(ScenarioError::NoFunnels);
        }

        let (attributes, attribute_of_dimension) = attributes_of(config);
        let path = |text: &str| FieldPath::parse(text).expect("a valid built-in path");
        let funnels = funnel_models(config, &attributes);

        let mut incidents = Vec::new();
        for (index, incident) in scenario.incidents.iter().enumerate() {
            let resolved = resolve_incident(config, &attributes, &attribute_of_dimension, incident)
                .map_err(|problem| ScenarioError::Incident {
                    number: index + 1,
                    problem,
                })?;
            incidents.push(resolved);
        }

        let currency = config.shop.currency;
        let currency_exponent = currency.exponent();
        let order_value_minor = config.shop.average_order_value.map_or(
            DEFAULT_ORDER_VALUE_MAJOR * 10_i64.pow(currency_exponent),
            |money| money.minor,
        );
        let n_steps_max = funnels
            .iter()
            .map(|f| f.stages.len().saturating_sub(1))
            .max()
            .unwrap_or(0);
        Ok(Model {
            seed: scenario.seed,
            from: scenario.from,
            to: scenario.to,
            peak_sessions_per_minute: peak,
            conversion_swing: scenario.conversion_swing,
            time_zone,
            root: Rng::new(scenario.seed),
            attributes,
            funnels,
            incidents,
            revenue_path: path(REVENUE_PATH),
            currency_path: path(CURRENCY_PATH),
            currency_code: currency.code().to_owned(),
            currency_exponent,
            order_value_minor,
            session_span_max_ms: n_steps_max as i64 * STEP_GAP_MAX_MS,
        })
    }

    /// The mean number of sessions arriving in the minute starting at `minute_start`.
    pub(super) fn sessions_per_minute(&self, minute_start: Timestamp) -> f64 {
        let middle = minute_start.saturating_add(DurationMs::from_millis(MS_PER_MINUTE / 2));
        let local_ms = middle.local_millis(&self.time_zone);
        let hour = middle.millis().div_euclid(MS_PER_HOUR);
        let variation_shape = 1.0 / (HOURLY_TRAFFIC_VARIATION * HOURLY_TRAFFIC_VARIATION);
        let hourly_factor = self
            .root
            .fork(stream_id(&[STREAM_HOURLY_TRAFFIC, hour as u64]))
            .gamma(variation_shape, 1.0 / variation_shape);
        self.peak_sessions_per_minute * local_traffic_share(local_ms) * hourly_factor
    }

    /// Starts the session numbered `number` among those arriving in `minute`, at `at`, with
    /// the extra or suppressed sessions of any surge. Returns how many sessions were walked.
    pub(super) fn arrive(
        &self,
        (minute, number): (i64, u64),
        at: Timestamp,
        queue: &mut EventQueue,
    ) -> u64 {
        let key = stream_id(&[STREAM_SESSION, minute as u64, number]);
        let mut rng = self.root.fork(key);
        let funnel = rng.below(self.funnels.len() as u64) as usize;
        let session = self.draw_session(key, funnel, at, &mut rng);
        let surges: Vec<&ResolvedIncident> = self
            .incidents
            .iter()
            .filter(|incident| matches!(incident.effect, Effect::Surge { .. }))
            .filter(|incident| self.applies(incident, &session, 0, at))
            .collect();
        if surges.is_empty() {
            self.walk(&session, &mut rng, queue);
            return 1;
        }
        let factor: f64 = surges
            .iter()
            .map(|incident| incident.effect.surge_factor(at.since(incident.from)))
            .product();
        // Its own stream, so that the session's own draws are those of a run without a surge.
        let mut surge_rng = self
            .root
            .fork(stream_id(&[STREAM_SURGE, minute as u64, number]));
        if factor <= 1.0 {
            if surge_rng.bernoulli(factor) {
                self.walk(&session, &mut rng, queue);
                return 1;
            }
            return 0;
        }
        self.walk(&session, &mut rng, queue);
        let n_extra = surge_rng.poisson(factor - 1.0);
        for extra in 0..n_extra {
            let extra_key = stream_id(&[STREAM_SURGE_SESSION, minute as u64, number, extra]);
            let mut extra_rng = self.root.fork(extra_key);
            let extra_at =
                at.saturating_add(DurationMs::from_millis(extra_rng.below(1_000) as i64));
            let mut extra_session = self.draw_session(extra_key, funnel, extra_at, &mut extra_rng);
            extra_session.is_surge_extra = true;
            // The extra traffic belongs to the surging segment; its other values are fresh.
            for incident in &surges {
                if let Some((attribute, value)) = incident.segment {
                    extra_session.values[attribute] = value;
                }
            }
            self.walk(&extra_session, &mut extra_rng, queue);
        }
        1 + n_extra
    }

    fn draw_session(&self, key: u64, funnel: usize, start: Timestamp, rng: &mut Rng) -> Session {
        let values = self
            .attributes
            .iter()
            .map(|attribute| rng.pick_weighted(&attribute.weights))
            .collect();
        let is_logged_in = rng.bernoulli(LOGGED_IN_SHARE);
        let user_number = rng.below(N_USERS);
        Session {
            key,
            funnel,
            values,
            user_id: is_logged_in.then(|| format!("user-{user_number:07}")),
            is_surge_extra: false,
            start,
        }
    }

    /// Walks a session through its funnel, queueing the events that fall inside the range.
    fn walk(&self, session: &Session, rng: &mut Rng, queue: &mut EventQueue) {
        let funnel = &self.funnels[session.funnel];
        let anonymous_id = uuid_text(stream_id(&[self.seed, STREAM_ANONYMOUS_ID, session.key]));
        let mut at = session.start;
        for (index, stage) in funnel.stages.iter().enumerate() {
            let is_last = index + 1 == funnel.stages.len();
            // Drawn whether or not a pixel incident is active, to keep the stream aligned.
            let loss_roll = rng.f64();
            let order_value_minor = is_last.then(|| self.draw_order_value(rng));
            // A surge's extra session may start just past the end of the range.
            let is_in_range = at >= self.from && at < self.to;
            if is_in_range && !self.is_lost(session, index, at, loss_roll) {
                queue.push(self.event(session, &anonymous_id, index, at, order_value_minor));
            }
            if is_last {
                break;
            }
            let step_probability = self.step_probability(session, index, at);
            if !rng.bernoulli(step_probability) {
                break;
            }
            let gap_ms = rng
                .gamma(STEP_GAP_SHAPE, stage.gap_mean_ms / STEP_GAP_SHAPE)
                .round() as i64;
            at = at.saturating_add(DurationMs::from_millis(
                gap_ms.clamp(STEP_GAP_MIN_MS, STEP_GAP_MAX_MS),
            ));
            if at >= self.to {
                break;
            }
        }
    }

    fn draw_order_value(&self, rng: &mut Rng) -> i64 {
        let factor = (ORDER_VALUE_LOG_SD * rng.normal()
            - ORDER_VALUE_LOG_SD * ORDER_VALUE_LOG_SD / 2.0)
            .exp()
            .min(ORDER_VALUE_FACTOR_MAX);
        ((self.order_value_minor as f64 * factor).round() as i64).max(1)
    }

    fn step_probability(&self, session: &Session, stage: usize, at: Timestamp) -> f64 {
        let funnel = &self.funnels[session.funnel];
        let mut step_logit =
            funnel.stages[stage].step_logit + self.overdispersion(session.funnel, stage, at);
        if self.conversion_swing != ConversionSwing::None {
            step_logit += self.conversion_swing.step_logit_shift(
                funnel.stages.len() - 1 - stage,
                at.local_millis(&self.time_zone),
            );
        }
        for (attribute, value) in self.attributes.iter().zip(&session.values) {
            if attribute.is_visible(stage, funnel.payment_stage) {
                step_logit += attribute.values[*value].2;
            }
        }
        let mut probability = 1.0 / (1.0 + (-step_logit).exp());
        if session.is_surge_extra {
            probability *= SURGE_EXTRA_STEP_FACTOR;
        }
        for incident in &self.incidents {
            if let Effect::Conversion { keep } = incident.effect
                && self.applies(incident, session, stage, at)
            {
                probability *= keep;
            }
        }
        probability
    }

    /// The logit shift shared by every session at `stage` of `funnel` in the window of `at`.
    fn overdispersion(&self, funnel: usize, stage: usize, at: Timestamp) -> f64 {
        let window = at.millis().div_euclid(OVERDISPERSION_WINDOW_MS);
        let stream = stream_id(&[
            STREAM_OVERDISPERSION,
            window as u64,
            funnel as u64,
            stage as u64,
        ]);
        OVERDISPERSION_LOGIT_SD * self.root.fork(stream).normal()
    }

    fn is_lost(&self, session: &Session, stage: usize, at: Timestamp, roll: f64) -> bool {
        let mut keep = 1.0;
        for incident in &self.incidents {
            if let Effect::Pixel { loss } = incident.effect
                && self.applies(incident, session, stage, at)
            {
                keep *= 1.0 - loss;
            }
        }
        roll >= keep
    }

    fn applies(
        &self,
        incident: &ResolvedIncident,
        session: &Session,
        stage: usize,
        at: Timestamp,
    ) -> bool {
        incident.stage_by_funnel[session.funnel] == Some(stage)
            && incident.from <= at
            && at < incident.to
            && incident
                .segment
                .is_none_or(|(attribute, value)| session.values[attribute] == value)
    }

    fn event(
        &self,
        session: &Session,
        anonymous_id: &str,
        stage_index: usize,
        at: Timestamp,
        order_value_minor: Option<i64>,
    ) -> SimEvent {
        let funnel = &self.funnels[session.funnel];
        let stage = &funnel.stages[stage_index];
        let mut fields = Vec::with_capacity(self.attributes.len() + stage.filter_fields.len() + 2);
        for (attribute, value) in self.attributes.iter().zip(&session.values) {
            if attribute.is_visible(stage_index, funnel.payment_stage) {
                let text = attribute.values[*value].0.to_owned();
                fields.push((attribute.path.clone(), SimValue::Text(text)));
            }
        }
        fields.extend(stage.filter_fields.iter().cloned());
        if let Some(minor) = order_value_minor {
            let exponent = self.currency_exponent;
            fields.push((
                self.revenue_path.clone(),
                SimValue::Decimal { minor, exponent },
            ));
            fields.push((
                self.currency_path.clone(),
                SimValue::Text(self.currency_code.clone()),
            ));
        }
        let message_id = stream_id(&[
            self.seed,
            STREAM_MESSAGE_ID,
            session.key,
            stage_index as u64,
        ]);
        SimEvent {
            kind: stage.kind,
            name: stage.name.clone(),
            message_id: uuid_text(message_id),
            anonymous_id: anonymous_id.to_owned(),
            user_id: session.user_id.clone(),
            timestamp: at,
            fields,
        }
    }
}

/// Share of the weekly peak at a local wall-clock time, given as milliseconds since the epoch
/// as if the local time were UTC.
/// The attributes a session draws, one per distinct dimension path (dimensions that share a
/// path share one drawn value), and the attribute of each dimension (`None` for a field the
/// simulator sets on orders only).
fn attributes_of(config: &Config) -> (Vec<Attribute>, Vec<Option<usize>>) {
    // Dimensions that share a path share one drawn value.
    let mut attributes: Vec<Attribute> = Vec::new();
    let mut attribute_of_dimension = Vec::new();
    for dimension in &config.dimensions {
        let path_text = dimension.path.to_string();
        if ORDER_PATHS.contains(&path_text.as_str()) {
            attribute_of_dimension.push(None);
            continue;
        }
        let index = match attributes.iter().position(|a| a.path == dimension.path) {
            Some(index) => index,
            None => {
                let values = value_table(&path_text);
                attributes.push(Attribute {
                    path: dimension.path.clone(),
                    values,
                    weights: values.iter().map(|(_, weight, _)| *weight).collect(),
                    is_payment_method: path_text == PAYMENT_METHOD_PATH,
                });
                attributes.len() - 1
            }
        };
        attribute_of_dimension.push(Some(index));
    }
    (attributes, attribute_of_dimension)
}

/// Each funnel's stages as the walk needs them.
fn funnel_models(config: &Config, attributes: &[Attribute]) -> Vec<FunnelModel> {
    let path = |text: &str| FieldPath::parse(text).expect("a valid built-in path");
    let order_paths: Vec<FieldPath> = ORDER_PATHS.iter().map(|p| path(p)).collect();
    config
        .funnels
        .iter()
        .map(|funnel| {
            let n_stages = funnel.stages.len();
            let stages = funnel
                .stages
                .iter()
                .enumerate()
                .map(|(index, stage)| {
                    let step_conversion = if n_stages == CHECKOUT_STEP_CONVERSION.len() + 1 {
                        CHECKOUT_STEP_CONVERSION
                            .get(index)
                            .copied()
                            .unwrap_or(DEFAULT_STEP_CONVERSION)
                    } else {
                        DEFAULT_STEP_CONVERSION
                    };
                    let (kind, name) = match &stage.trigger {
                        Trigger::Track(name) => (CallKind::Track, name),
                        Trigger::Page(name) => (CallKind::Page, name),
                        Trigger::Screen(name) => (CallKind::Screen, name),
                    };
                    let is_before_last = index + 2 == n_stages;
                    let is_last = index + 1 == n_stages;
                    // A filter on a dimension path is left to the drawn value: shoppers of
                    // other segments still send the event, the stage just does not count it.
                    let filter_fields = stage
                        .filters
                        .iter()
                        .filter(|(path, _)| !attributes.iter().any(|a| a.path == *path))
                        .filter(|(path, _)| !(is_last && order_paths.contains(path)))
                        .map(|(path, value)| (path.clone(), SimValue::Text(value.clone())))
                        .collect();
                    StageModel {
                        kind,
                        name: name.clone(),
                        step_logit: logit(step_conversion),
                        gap_mean_ms: if is_before_last {
                            LAST_STEP_GAP_MEAN_MS
                        } else {
                            STEP_GAP_MEAN_MS
                        },
                        filter_fields,
                    }
                })
                .collect();
            let payment_stage = funnel
                .stages
                .iter()
                .position(|s| s.trigger == Trigger::Track(PAYMENT_STAGE_EVENT.to_owned()))
                .unwrap_or(n_stages.saturating_sub(1));
            FunnelModel {
                stages,
                payment_stage,
            }
        })
        .collect::<Vec<_>>()
}

/// Resolves an injected incident: its effect from the incident module, its segment against the
/// model's drawn attributes.
fn resolve_incident(
    config: &Config,
    attributes: &[Attribute],
    attribute_of_dimension: &[Option<usize>],
    incident: &InjectedIncident,
) -> Result<ResolvedIncident, String> {
    let (effect, stage_by_funnel) = resolve_effect(config, incident)?;
    let segment = match &incident.segment {
        None => None,
        Some((name, value)) => {
            let Some(dimension) = config.dimensions.iter().position(|d| d.name == *name) else {
                let names: Vec<&str> = config.dimensions.iter().map(|d| d.name.as_str()).collect();
                return Err(format!(
                    "no dimension `{name}` in the config (dimensions: {})",
                    names.join(", ")
                ));
            };
            let Some(attribute) = attribute_of_dimension[dimension] else {
                return Err(format!(
                    "dimension `{name}` reads a field the simulator sets on orders only; \
                     it cannot select a segment"
                ));
            };
            let values = attributes[attribute].values;
            let Some(value_index) = values.iter().position(|(v, _, _)| v == value) else {
                let known: Vec<&str> = values.iter().map(|(v, _, _)| *v).collect();
                return Err(format!(
                    "dimension `{name}` never has the value `{value}` in the simulation \
                     (values: {})",
                    known.join(", ")
                ));
            };
            Some((attribute, value_index))
        }
    };
    Ok(ResolvedIncident {
        effect,
        stage_by_funnel,
        from: incident.from,
        to: incident.to,
        segment,
    })
}
