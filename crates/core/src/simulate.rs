//! Seeded traffic simulation: the Segment calls a shop's shoppers would send, in event time.
//!
//! [`simulate`] turns a [`Config`] and a [`Scenario`] (a time range, a seed, a traffic level
//! and injected incidents) into track, page and screen calls, handed to a callback in timestamp
//! order. It is a pure function of its arguments: the same config and scenario give exactly the
//! same events on every run, and it never reads the clock. (Across platforms, `ln` and `exp`
//! come from each platform's math library and may differ in the last bit, which could in rare
//! cases flip a draw.) It holds only the pending events of sessions still in flight, so memory
//! stays bounded however long the range is.
//!
//! The model. Sessions arrive each minute as a Poisson draw whose mean follows the shop's local
//! time of day and day of week, times an hour-to-hour random factor. Each session picks a funnel
//! and draws its segment (one value per configured dimension path), then walks the funnel's
//! stages in order, seconds to minutes apart, going on from each stage with a step-conversion
//! probability set by the stage, the segment, and a random factor shared by every session at
//! that stage in the same five-minute window (so counts vary more between windows than a
//! binomial would, as real traffic does). Injected incidents change that process inside their
//! window: fewer shoppers going on from a stage, a tracking pixel losing events, or a surge of
//! arriving sessions.
//!
//! Every random choice of a session comes from its own stream, forked from the seed by the
//! session's arrival minute and number, and draws the same number of values whatever the
//! probabilities are. Two consequences make tests exact rather than statistical: an incident
//! changes only the sessions it touches, everything else being identical to a run without it;
//! and simulating a sub-range gives exactly the events of a longer run that fall inside it.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::fmt;

use crate::config::{Config, FieldPath, Trigger};
use crate::funnel::CallKind;
use crate::rng::{Rng, mix64};
use crate::time::{MS_PER_DAY, MS_PER_HOUR, MS_PER_MINUTE, Minute, Timestamp};

/// The busiest traffic a scenario may ask for, in sessions per minute at the weekly peak.
pub const PEAK_SESSIONS_PER_MINUTE_MAX: f64 = 100_000.0;
/// The longest range a scenario may cover.
pub const RANGE_DAYS_MAX: i64 = 366;
/// How many incidents a scenario may inject.
pub const INCIDENTS_MAX: usize = 64;
/// The largest traffic multiplier a surge may apply.
pub const SURGE_FACTOR_MAX: f64 = 100.0;

// The traffic model. The numbers are plausible for a mid-sized web shop, not measured ones.

/// Share of the weekly peak by local hour from Monday to Friday, at the top of each hour, with
/// the minutes in between interpolated: quiet nights, a lunch peak and a larger evening peak.
const WEEKDAY_TRAFFIC_BY_HOUR: [f64; 24] = [
    0.18, 0.11, 0.07, 0.05, 0.05, 0.07, 0.14, 0.26, 0.38, 0.48, 0.56, 0.66, //
    0.82, 0.86, 0.76, 0.66, 0.64, 0.68, 0.78, 0.94, 1.00, 0.88, 0.60, 0.34,
];
/// The same on Saturday and Sunday: a later morning and a fuller afternoon.
const WEEKEND_TRAFFIC_BY_HOUR: [f64; 24] = [
    0.24, 0.16, 0.10, 0.07, 0.05, 0.05, 0.08, 0.14, 0.26, 0.42, 0.58, 0.70, //
    0.80, 0.84, 0.82, 0.78, 0.76, 0.78, 0.84, 0.92, 0.96, 0.88, 0.62, 0.38,
];
/// Monday first. Friday and Saturday are quieter, Monday evening is the weekly peak.
const TRAFFIC_BY_DAY_OF_WEEK: [f64; 7] = [1.0, 0.98, 0.98, 0.97, 0.92, 0.86, 0.97];
/// Coefficient of variation of the hour-to-hour traffic factor, whose mean is 1.
const HOURLY_TRAFFIC_VARIATION: f64 = 0.08;

/// Step conversion of a five-stage checkout funnel: product viewed to cart, cart to checkout,
/// checkout to payment, payment to order.
const CHECKOUT_STEP_CONVERSION: [f64; 4] = [0.30, 0.55, 0.75, 0.85];
/// Step conversion of every stage of a funnel that does not have five stages.
const DEFAULT_STEP_CONVERSION: f64 = 0.6;
/// Standard deviation, on the logit scale, of the factor shared by every session at one stage
/// of one funnel in one window.
const OVERDISPERSION_LOGIT_SD: f64 = 0.15;
const OVERDISPERSION_WINDOW_MS: i64 = 5 * MS_PER_MINUTE;
/// The extra sessions of a surge have less intent: each of their steps converts this much less.
const SURGE_EXTRA_STEP_FACTOR: f64 = 0.9;

/// Time from one event of a session to the next: gamma with this shape and mean, clamped.
const STEP_GAP_SHAPE: f64 = 2.0;
const STEP_GAP_MEAN_MS: f64 = 50_000.0;
/// Paying is quick: the step into the last stage has a shorter mean.
const LAST_STEP_GAP_MEAN_MS: f64 = 15_000.0;
const STEP_GAP_MIN_MS: i64 = 500;
/// Also bounds how long a session is in flight, and so the pending events held in memory.
pub const STEP_GAP_MAX_MS: i64 = 10 * MS_PER_MINUTE;

/// Share of sessions from a logged-in shopper, who carry a `userId`.
const LOGGED_IN_SHARE: f64 = 0.35;
const N_USERS: u64 = 1_000_000;
/// Order value: the average order value times a log-normal factor of mean 1, clamped.
const ORDER_VALUE_LOG_SD: f64 = 0.45;
const ORDER_VALUE_FACTOR_MAX: f64 = 50.0;
/// The average order value when the config sets none, in major units of the shop currency.
const DEFAULT_ORDER_VALUE_MAJOR: i64 = 85;

/// Values of a segment attribute: the value, its share of sessions (relative weight), and its
/// shift of step conversion on the logit scale, at every step where the value is visible.
type ValueTable = &'static [(&'static str, f64, f64)];

const DEVICE_TYPES: ValueTable = &[
    ("mobile", 0.58, -0.25),
    ("desktop", 0.36, 0.30),
    ("tablet", 0.06, 0.0),
];
const COUNTRIES: ValueTable = &[
    ("US", 0.46, 0.05),
    ("GB", 0.12, 0.0),
    ("DE", 0.09, 0.0),
    ("FR", 0.07, -0.05),
    ("CA", 0.07, 0.0),
    ("AU", 0.05, 0.0),
    ("NL", 0.03, 0.0),
    ("ES", 0.03, -0.05),
    ("IT", 0.03, -0.05),
    ("SE", 0.02, 0.0),
    ("JP", 0.02, -0.10),
    ("BR", 0.01, -0.15),
];
const CAMPAIGN_SOURCES: ValueTable = &[
    ("google", 0.34, 0.0),
    ("direct", 0.24, 0.20),
    ("facebook", 0.16, -0.20),
    ("email", 0.12, 0.35),
    ("instagram", 0.06, -0.25),
    ("tiktok", 0.05, -0.45),
    ("bing", 0.03, 0.0),
];
const PAYMENT_METHODS: ValueTable = &[
    ("card", 0.62, 0.0),
    ("paypal", 0.20, 0.10),
    ("apple_pay", 0.12, 0.25),
    ("klarna", 0.06, -0.10),
];
const VARIANTS: ValueTable = &[("control", 0.5, 0.0), ("treatment", 0.5, 0.04)];
const APP_VERSIONS: ValueTable = &[
    ("4.12.0", 0.55, 0.0),
    ("4.11.2", 0.30, 0.0),
    ("4.10.1", 0.12, -0.05),
    ("3.9.0", 0.03, -0.30),
];
const OTHER_VALUES: ValueTable = &[("v1", 1.0, 0.0), ("v2", 1.0, 0.0), ("v3", 1.0, 0.0)];

fn value_table(path: &str) -> ValueTable {
    match path {
        "context.device.type" => DEVICE_TYPES,
        "context.location.country" => COUNTRIES,
        "context.campaign.source" => CAMPAIGN_SOURCES,
        PAYMENT_METHOD_PATH => PAYMENT_METHODS,
        "properties.variant" => VARIANTS,
        "context.app.version" => APP_VERSIONS,
        _ => OTHER_VALUES,
    }
}

/// The payment method is chosen at payment, so it is on no event before the payment stage.
const PAYMENT_METHOD_PATH: &str = "properties.payment_method";
/// The stage where the payment method appears; the last stage when a funnel lacks it.
const PAYMENT_STAGE_EVENT: &str = "Payment Info Entered";
const REVENUE_PATH: &str = "properties.revenue";
const CURRENCY_PATH: &str = "properties.currency";
/// Paths the simulator fills itself on the last stage; a dimension on them draws no values.
const ORDER_PATHS: &[&str] = &[REVENUE_PATH, "properties.total", CURRENCY_PATH];

// Sub-stream tags, so that no two uses of the seed share a stream.
const STREAM_ARRIVALS: u64 = 1;
const STREAM_SESSION: u64 = 2;
const STREAM_SURGE: u64 = 3;
const STREAM_SURGE_SESSION: u64 = 4;
const STREAM_OVERDISPERSION: u64 = 5;
const STREAM_HOURLY_TRAFFIC: u64 = 6;
const STREAM_MESSAGE_ID: u64 = 7;
const STREAM_ANONYMOUS_ID: u64 = 8;

/// What to simulate.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// Events at or after `from` and before `to` are emitted. Sessions start arriving earlier,
    /// so that the first minutes already have shoppers deep in the funnel.
    pub from: Timestamp,
    pub to: Timestamp,
    pub seed: u64,
    /// Mean arriving sessions per minute at the busiest time of the week.
    pub peak_sessions_per_minute: f64,
    pub incidents: Vec<InjectedIncident>,
}

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
}

/// One simulated Segment call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimEvent {
    pub kind: CallKind,
    /// The `event` of a track call, the `name` of a page or screen call.
    pub name: String,
    pub message_id: String,
    pub anonymous_id: String,
    pub user_id: Option<String>,
    pub timestamp: Timestamp,
    /// Field values by path, such as `context.device.type`. No path appears twice.
    pub fields: Vec<(FieldPath, SimValue)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SimValue {
    Text(String),
    Integer(i64),
    /// An exact decimal, `minor / 10^exponent`: money is never a float.
    Decimal {
        minor: i64,
        exponent: u32,
    },
}

impl fmt::Display for SimValue {
    /// Text as is; numbers as decimal digits (`85.12`, `-0.05`, `1200`), which are also valid
    /// JSON numbers.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SimValue::Text(text) => f.write_str(text),
            SimValue::Integer(value) => write!(f, "{value}"),
            SimValue::Decimal { minor, exponent } => {
                let sign = if *minor < 0 { "-" } else { "" };
                let digits = minor.unsigned_abs().to_string();
                let exponent = *exponent as usize;
                if exponent == 0 {
                    return write!(f, "{sign}{digits}");
                }
                let padded = format!("{digits:0>width$}", width = exponent + 1);
                let (whole, fraction) = padded.split_at(padded.len() - exponent);
                write!(f, "{sign}{whole}.{fraction}")
            }
        }
    }
}

/// What a simulation produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SimSummary {
    /// Sessions that arrived inside the range, surge sessions included.
    pub n_sessions: u64,
    pub n_events: u64,
}

/// A scenario the config cannot run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ScenarioError {
    #[error("the scenario's `from` must be before its `to`")]
    EmptyRange,
    #[error("the scenario covers more than {RANGE_DAYS_MAX} days")]
    RangeTooLong,
    #[error(
        "peak sessions per minute must be a number from 0 to {PEAK_SESSIONS_PER_MINUTE_MAX}, not {0}"
    )]
    BadPeak(f64),
    #[error("at most {INCIDENTS_MAX} incidents can be injected, not {0}")]
    TooManyIncidents(usize),
    #[error("the shop's time zone `{0}` is not an IANA time zone name")]
    UnknownTimeZone(String),
    #[error("the config has no funnel for shoppers to walk")]
    NoFunnels,
    /// `number` counts from 1, in the order the incidents were given.
    #[error("incident {number}: {problem}")]
    Incident { number: usize, problem: String },
}

/// Simulates `scenario` for `config`, handing every event to `emit` in non-decreasing timestamp
/// order (ties in a fixed order). Checks the whole scenario before emitting anything.
pub fn simulate(
    config: &Config,
    scenario: &Scenario,
    mut emit: impl FnMut(SimEvent),
) -> Result<SimSummary, ScenarioError> {
    let model = Model::new(config, scenario)?;
    let mut queue = EventQueue::default();
    let mut summary = SimSummary::default();
    // Sessions that arrive this long before `from` can still have events inside the range.
    let first_minute =
        Timestamp(scenario.from.0.saturating_sub(model.session_span_max_ms)).minute();
    let last_minute = Timestamp(scenario.to.0 - 1).minute();
    let mut emit_counted = |event: SimEvent| {
        summary.n_events += 1;
        emit(event);
    };
    for minute in first_minute.0..=last_minute.0 {
        let minute_start = Minute(minute).start();
        // Each minute's arrivals, and each session, have streams named by the minute rather
        // than by a running count, so that a sub-range replays exactly the same sessions.
        let mut arrivals_rng = model
            .root
            .fork(stream_id(&[STREAM_ARRIVALS, minute as u64]));
        let n_arriving = arrivals_rng.poisson(model.sessions_per_minute(minute_start));
        for number in 0..n_arriving {
            let offset_ms = arrivals_rng.below(MS_PER_MINUTE as u64) as i64;
            let at = Timestamp(minute_start.0.saturating_add(offset_ms));
            if at >= scenario.to {
                continue;
            }
            let n_walked = model.arrive((minute, number), at, &mut queue);
            if at >= scenario.from {
                summary.n_sessions += n_walked;
            }
        }
        // Every later arrival is at or after the next minute, and so are all its events.
        queue.flush_before(Minute(minute + 1).start(), &mut emit_counted);
    }
    queue.flush_before(Timestamp(i64::MAX), &mut emit_counted);
    Ok(summary)
}

/// Pending events in timestamp order, ties in the order they were generated.
#[derive(Default)]
struct EventQueue {
    heap: BinaryHeap<Pending>,
    n_pushed: u64,
}

struct Pending {
    sequence: u64,
    event: SimEvent,
}

impl Pending {
    fn key(&self) -> (Timestamp, u64) {
        (self.event.timestamp, self.sequence)
    }
}

impl PartialEq for Pending {
    fn eq(&self, other: &Pending) -> bool {
        self.key() == other.key()
    }
}

impl Eq for Pending {}

impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Pending) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Pending {
    /// Reversed, so that the max-heap pops the earliest event first.
    fn cmp(&self, other: &Pending) -> Ordering {
        other.key().cmp(&self.key())
    }
}

impl EventQueue {
    fn push(&mut self, event: SimEvent) {
        self.heap.push(Pending {
            sequence: self.n_pushed,
            event,
        });
        self.n_pushed += 1;
    }

    fn flush_before(&mut self, end: Timestamp, emit: &mut impl FnMut(SimEvent)) {
        while self
            .heap
            .peek()
            .is_some_and(|pending| pending.event.timestamp < end)
        {
            let pending = self.heap.pop().expect("peeked");
            emit(pending.event);
        }
    }
}

/// A session attribute: one distinct dimension path and the values it takes.
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

enum Effect {
    Conversion { keep: f64 },
    Pixel { loss: f64 },
    Surge { factor: f64 },
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
struct Model {
    seed: u64,
    from: Timestamp,
    to: Timestamp,
    peak_sessions_per_minute: f64,
    time_zone: jiff::tz::TimeZone,
    root: Rng,
    attributes: Vec<Attribute>,
    funnels: Vec<FunnelModel>,
    incidents: Vec<ResolvedIncident>,
    revenue_path: FieldPath,
    currency_path: FieldPath,
    currency_code: String,
    currency_exponent: u32,
    order_value_minor: i64,
    session_span_max_ms: i64,
}

impl Model {
    fn new(config: &Config, scenario: &Scenario) -> Result<Model, ScenarioError> {
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

        let path = |text: &str| FieldPath::parse(text).expect("a valid built-in path");
        let order_paths: Vec<FieldPath> = ORDER_PATHS.iter().map(|p| path(p)).collect();
        let funnels = config
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
            .collect::<Vec<_>>();

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
    fn sessions_per_minute(&self, minute_start: Timestamp) -> f64 {
        let middle = Timestamp(minute_start.0.saturating_add(MS_PER_MINUTE / 2));
        let offset_ms = jiff::Timestamp::from_millisecond(middle.0).map_or(0, |instant| {
            i64::from(self.time_zone.to_offset(instant).seconds()) * 1_000
        });
        let local_ms = middle.0 + offset_ms;
        let hour = middle.0.div_euclid(MS_PER_HOUR);
        let variation_shape = 1.0 / (HOURLY_TRAFFIC_VARIATION * HOURLY_TRAFFIC_VARIATION);
        let hourly_factor = self
            .root
            .fork(stream_id(&[STREAM_HOURLY_TRAFFIC, hour as u64]))
            .gamma(variation_shape, 1.0 / variation_shape);
        self.peak_sessions_per_minute * local_traffic_share(local_ms) * hourly_factor
    }

    /// Starts the session numbered `number` among those arriving in `minute`, at `at`, with
    /// the extra or suppressed sessions of any surge. Returns how many sessions were walked.
    fn arrive(&self, (minute, number): (i64, u64), at: Timestamp, queue: &mut EventQueue) -> u64 {
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
            .map(|incident| match incident.effect {
                Effect::Surge { factor } => factor,
                _ => 1.0,
            })
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
            let extra_at = Timestamp(at.0.saturating_add(extra_rng.below(1_000) as i64));
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
            at = Timestamp(at.0.saturating_add(gap_ms.clamp(STEP_GAP_MIN_MS, STEP_GAP_MAX_MS)));
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
        let window = at.0.div_euclid(OVERDISPERSION_WINDOW_MS);
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
fn local_traffic_share(local_ms: i64) -> f64 {
    let day = local_ms.div_euclid(MS_PER_DAY);
    // 1970-01-01 was a Thursday, day 3 counting from Monday.
    let day_of_week = (day + 3).rem_euclid(7) as usize;
    let minute_of_day = local_ms.rem_euclid(MS_PER_DAY) / MS_PER_MINUTE;
    let by_hour = if day_of_week >= 5 {
        &WEEKEND_TRAFFIC_BY_HOUR
    } else {
        &WEEKDAY_TRAFFIC_BY_HOUR
    };
    let hour = (minute_of_day / 60) as usize;
    let fraction = (minute_of_day % 60) as f64 / 60.0;
    let (this_hour, next_hour) = (by_hour[hour], by_hour[(hour + 1) % 24]);
    (this_hour + (next_hour - this_hour) * fraction) * TRAFFIC_BY_DAY_OF_WEEK[day_of_week]
}

fn resolve_incident(
    config: &Config,
    attributes: &[Attribute],
    attribute_of_dimension: &[Option<usize>],
    incident: &InjectedIncident,
) -> Result<ResolvedIncident, String> {
    check_kind(&incident.kind)?;
    if incident.from >= incident.to {
        return Err("`from` must be before `to`".into());
    }
    let funnels: Vec<usize> = match &incident.funnel {
        None => (0..config.funnels.len()).collect(),
        Some(id) => match config.funnels.iter().position(|f| f.id == *id) {
            Some(index) => vec![index],
            None => {
                let ids: Vec<&str> = config.funnels.iter().map(|f| f.id.as_str()).collect();
                return Err(format!(
                    "no funnel `{id}` in the config (funnels: {})",
                    ids.join(", ")
                ));
            }
        },
    };
    let mut stage_by_funnel = vec![None; config.funnels.len()];
    let effect = match &incident.kind {
        IncidentKind::Surge { factor } => {
            for funnel in &funnels {
                stage_by_funnel[*funnel] = Some(0);
            }
            Effect::Surge { factor: *factor }
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
                let ids: Vec<&str> = funnels
                    .iter()
                    .flat_map(|f| config.funnels[*f].stages.iter().map(|s| s.id.as_str()))
                    .collect();
                return Err(format!(
                    "no stage `{stage}` in the affected funnels (stages: {})",
                    ids.join(", ")
                ));
            }
            if is_conversion {
                Effect::Conversion { keep: 1.0 - drop }
            } else {
                Effect::Pixel { loss: *drop }
            }
        }
    };
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

fn check_kind(kind: &IncidentKind) -> Result<(), String> {
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
    }
    Ok(())
}

impl InjectedIncident {
    /// Parses the command-line form, comma-separated `key=value` pairs:
    ///
    /// `kind=conversion,funnel=checkout,stage=payment,drop=0.5,from=2026-11-20T10:00:00Z,to=2026-11-20T12:00:00Z,segment=device:mobile`
    ///
    /// `kind` is `conversion` (the default), `pixel` or `surge`. Conversion and pixel incidents
    /// need `stage` and `drop`; a surge needs `factor` and takes no stage. `funnel` and
    /// `segment` (`dimension:value`) are optional.
    pub fn parse(text: &str) -> Result<InjectedIncident, String> {
        const KEYS: &[&str] = &[
            "kind", "funnel", "stage", "drop", "factor", "from", "to", "segment",
        ];
        let mut values: [Option<&str>; KEYS.len()] = [None; KEYS.len()];
        for pair in text.split(',') {
            let Some((key, value)) = pair.split_once('=') else {
                return Err(format!(
                    "`{}` is not key=value (keys: {})",
                    pair.trim(),
                    KEYS.join(", ")
                ));
            };
            let (key, value) = (key.trim(), value.trim());
            let Some(slot) = KEYS.iter().position(|k| *k == key) else {
                return Err(format!("unknown key `{key}` (keys: {})", KEYS.join(", ")));
            };
            if values[slot].is_some() {
                return Err(format!("`{key}` is given twice"));
            }
            if value.is_empty() {
                return Err(format!("`{key}` has no value"));
            }
            values[slot] = Some(value);
        }
        let [kind, funnel, stage, drop, factor, from, to, segment] = values;

        let timestamp = |key: &str, value: Option<&str>| -> Result<Timestamp, String> {
            let value = value
                .ok_or_else(|| format!("missing `{key}` (e.g. {key}=2026-11-20T10:00:00Z)"))?;
            Timestamp::parse_rfc3339(value).map_err(|err| format!("`{key}`: {err}"))
        };
        let number = |key: &str, value: &str| -> Result<f64, String> {
            value
                .parse::<f64>()
                .ok()
                .filter(|n| n.is_finite())
                .ok_or_else(|| format!("`{key}`: `{value}` is not a number"))
        };
        let not_for = |key: &str, given: Option<&str>, kind: &str| -> Result<(), String> {
            match given {
                Some(_) => Err(format!("`{key}` does not apply to kind={kind}")),
                None => Ok(()),
            }
        };
        let stage_and_drop = || -> Result<(String, f64), String> {
            let stage = stage.ok_or("missing `stage` (a stage id, e.g. stage=checkout)")?;
            let drop = drop.ok_or("missing `drop` (the share lost, e.g. drop=0.5)")?;
            Ok((stage.to_owned(), number("drop", drop)?))
        };
        let kind = match kind.unwrap_or("conversion") {
            "conversion" => {
                not_for("factor", factor, "conversion")?;
                let (stage, drop) = stage_and_drop()?;
                IncidentKind::Conversion { stage, drop }
            }
            "pixel" => {
                not_for("factor", factor, "pixel")?;
                let (stage, drop) = stage_and_drop()?;
                IncidentKind::Pixel { stage, drop }
            }
            "surge" => {
                not_for(
                    "stage",
                    stage,
                    "surge: a surge affects sessions entering the funnel",
                )?;
                not_for("drop", drop, "surge")?;
                let factor = factor.ok_or("missing `factor` (e.g. factor=3)")?;
                IncidentKind::Surge {
                    factor: number("factor", factor)?,
                }
            }
            other => {
                return Err(format!(
                    "`kind`: `{other}` is not one of conversion, pixel, surge"
                ));
            }
        };
        check_kind(&kind)?;
        let from = timestamp("from", from)?;
        let to = timestamp("to", to)?;
        if from >= to {
            return Err("`from` must be before `to`".into());
        }
        let segment = match segment {
            None => None,
            Some(text) => match text.split_once(':') {
                Some((name, value)) if !name.trim().is_empty() && !value.trim().is_empty() => {
                    Some((name.trim().to_owned(), value.trim().to_owned()))
                }
                _ => {
                    return Err(format!(
                        "`segment`: `{text}` is not dimension:value (e.g. segment=device:mobile)"
                    ));
                }
            },
        };
        Ok(InjectedIncident {
            funnel: funnel.map(str::to_owned),
            kind,
            from,
            to,
            segment,
        })
    }
}

impl fmt::Display for InjectedIncident {
    /// The command-line form that [`InjectedIncident::parse`] reads.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            IncidentKind::Conversion { stage, drop } => {
                write!(f, "kind=conversion,stage={stage},drop={drop}")?
            }
            IncidentKind::Pixel { stage, drop } => {
                write!(f, "kind=pixel,stage={stage},drop={drop}")?
            }
            IncidentKind::Surge { factor } => write!(f, "kind=surge,factor={factor}")?,
        }
        if let Some(funnel) = &self.funnel {
            write!(f, ",funnel={funnel}")?;
        }
        write!(f, ",from={},to={}", self.from, self.to)?;
        if let Some((name, value)) = &self.segment {
            write!(f, ",segment={name}:{value}")?;
        }
        Ok(())
    }
}

fn logit(probability: f64) -> f64 {
    (probability / (1.0 - probability)).ln()
}

/// A stream number for a tuple of parts, such as (tag, session number). Distinct tuples of the
/// same length give distinct numbers, since each step is a bijection of the running value.
fn stream_id(parts: &[u64]) -> u64 {
    parts
        .iter()
        .fold(0x243F_6A88_85A3_08D3, |hash, part| mix64(hash ^ part))
}

/// A version 4 UUID's text, from 64 bits of hash stretched to 122. Written by hand because
/// `format!` made it a quarter of the simulation's time.
fn uuid_text(hash: u64) -> String {
    const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";
    let high = (hash & !0xF000) | 0x4000;
    let low = (mix64(hash ^ 0x9E37_79B9_7F4A_7C15) & 0x3FFF_FFFF_FFFF_FFFF) | 0x8000_0000_0000_0000;
    let bytes = ((u128::from(high) << 64) | u128::from(low)).to_be_bytes();
    let mut text = String::with_capacity(36);
    for (index, byte) in bytes.iter().enumerate() {
        if matches!(index, 4 | 6 | 8 | 10) {
            text.push('-');
        }
        text.push(char::from(HEX_DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(HEX_DIGITS[usize::from(byte & 0xF)]));
    }
    text
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashSet};

    use super::*;
    use crate::funnel::{Matcher, Message, StageHit};
    use crate::ingest::message_cells;

    // Wednesday 2026-11-18; New York is at UTC-5 then, so 10:00 local is 15:00Z.
    const LOCAL_10H: &str = "2026-11-18T15:00:00Z";
    const LOCAL_11H: &str = "2026-11-18T16:00:00Z";
    const LOCAL_12H: &str = "2026-11-18T17:00:00Z";
    const LOCAL_14H: &str = "2026-11-18T19:00:00Z";
    const LOCAL_15H: &str = "2026-11-18T20:00:00Z";

    fn at(text: &str) -> Timestamp {
        Timestamp::parse_rfc3339(text).unwrap()
    }

    fn example() -> Config {
        Config::parse(Config::example_toml()).unwrap()
    }

    fn scenario(from: &str, to: &str, peak_sessions_per_minute: f64) -> Scenario {
        Scenario {
            from: at(from),
            to: at(to),
            seed: 1,
            peak_sessions_per_minute,
            incidents: Vec::new(),
        }
    }

    fn incident(text: &str) -> InjectedIncident {
        InjectedIncident::parse(text).unwrap()
    }

    fn run(config: &Config, scenario: &Scenario) -> Vec<SimEvent> {
        let mut events = Vec::new();
        let summary = simulate(config, scenario, |event| events.push(event)).unwrap();
        assert_eq!(summary.n_events, events.len() as u64);
        events
    }

    fn field<'e>(event: &'e SimEvent, path: &str) -> Option<&'e SimValue> {
        event
            .fields
            .iter()
            .find(|(p, _)| p.to_string() == path)
            .map(|(_, value)| value)
    }

    fn text<'e>(event: &'e SimEvent, path: &str) -> Option<&'e str> {
        match field(event, path) {
            Some(SimValue::Text(text)) => Some(text),
            _ => None,
        }
    }

    /// The stage of an event in the first funnel, by its trigger name.
    fn stage_of(config: &Config, event: &SimEvent) -> usize {
        config.funnels[0]
            .stages
            .iter()
            .position(|s| s.trigger.name() == event.name)
            .unwrap()
    }

    /// Each session's events in order, with their stages, by anonymous id.
    fn sessions<'e>(
        config: &Config,
        events: &'e [SimEvent],
    ) -> BTreeMap<&'e str, Vec<(usize, &'e SimEvent)>> {
        let mut sessions: BTreeMap<&str, Vec<(usize, &SimEvent)>> = BTreeMap::new();
        for event in events {
            sessions
                .entry(&event.anonymous_id)
                .or_default()
                .push((stage_of(config, event), event));
        }
        sessions
    }

    /// Sessions that reached `stage` inside `[from, to)` and that `select` keeps: how many, and
    /// how many of them reached the next stage.
    fn cohort(
        config: &Config,
        events: &[SimEvent],
        stage: usize,
        (from, to): (&str, &str),
        select: impl Fn(&SimEvent) -> bool,
    ) -> (usize, usize) {
        let (from, to) = (at(from), at(to));
        let mut n_at_stage = 0;
        let mut n_next = 0;
        for walked in sessions(config, events).values() {
            let Some((_, event)) = walked.iter().find(|(s, _)| *s == stage) else {
                continue;
            };
            if event.timestamp < from || event.timestamp >= to || !select(event) {
                continue;
            }
            n_at_stage += 1;
            if walked.iter().any(|(s, _)| *s == stage + 1) {
                n_next += 1;
            }
        }
        (n_at_stage, n_next)
    }

    fn ratio(numerator: usize, denominator: usize) -> f64 {
        numerator as f64 / denominator as f64
    }

    #[test]
    fn the_same_seed_replays_the_same_events() {
        let config = example();
        let base = scenario(LOCAL_10H, LOCAL_12H, 20.0);
        let events = run(&config, &base);
        assert!(events.len() > 1_000, "{}", events.len());
        assert_eq!(run(&config, &base), events);
        let other_seed = Scenario { seed: 2, ..base };
        let other_events = run(&config, &other_seed);
        assert_ne!(other_events, events);
        let ids: HashSet<&str> = events.iter().map(|e| e.message_id.as_str()).collect();
        assert!(
            other_events
                .iter()
                .all(|e| !ids.contains(e.message_id.as_str())),
            "message ids depend on the seed"
        );
    }

    #[test]
    fn a_sub_range_replays_the_events_of_a_longer_run() {
        let config = example();
        let long = run(&config, &scenario(LOCAL_10H, LOCAL_12H, 20.0));
        let cases = [
            ("2026-11-18T15:30:00Z", LOCAL_12H),
            ("2026-11-18T16:12:34.567Z", "2026-11-18T16:40:00.001Z"),
            (LOCAL_10H, "2026-11-18T15:05:00Z"),
        ];
        for (from, to) in cases {
            let short = run(&config, &scenario(from, to, 20.0));
            let inside: Vec<SimEvent> = long
                .iter()
                .filter(|e| e.timestamp >= at(from) && e.timestamp < at(to))
                .cloned()
                .collect();
            assert!(!short.is_empty(), "{from}..{to}");
            assert_eq!(short, inside, "{from}..{to}");
        }
    }

    #[test]
    fn events_are_in_time_order_and_inside_the_range() {
        let config = example();
        // Surges whose extra sessions start up to a second late, ending with the range.
        let busy = |from: &str, to: &str| {
            vec![
                incident(&format!("kind=surge,factor=5,from={from},to={to}")),
                incident(&format!(
                    "kind=pixel,stage=cart,drop=0.5,from={from},to={to}"
                )),
            ]
        };
        let cases = [
            ("2026-11-18T15:00:30.250Z", "2026-11-18T15:20:10.5Z", true),
            ("2026-11-18T04:30:00Z", "2026-11-18T06:30:00Z", true),
            (LOCAL_10H, "2026-11-18T15:00:00.001Z", false),
            ("2026-11-21T23:59:00Z", "2026-11-22T00:01:00Z", true),
        ];
        for (from, to, expect_events) in cases {
            for incidents in [Vec::new(), busy(from, to)] {
                let scenario = Scenario {
                    incidents,
                    ..scenario(from, to, 60.0)
                };
                let events = run(&config, &scenario);
                assert_eq!(!events.is_empty(), expect_events, "{from}..{to}");
                for pair in events.windows(2) {
                    assert!(pair[0].timestamp <= pair[1].timestamp, "{from}..{to}");
                }
                for event in &events {
                    assert!(
                        event.timestamp >= at(from) && event.timestamp < at(to),
                        "{} outside {from}..{to}",
                        event.timestamp
                    );
                }
            }
        }
    }

    #[test]
    fn the_ends_of_time_do_not_overflow() {
        let config = example();
        let cases = [
            (
                Timestamp(i64::MIN),
                Timestamp(i64::MIN + 10 * MS_PER_MINUTE),
            ),
            (
                Timestamp(i64::MAX - 10 * MS_PER_MINUTE),
                Timestamp(i64::MAX),
            ),
        ];
        for (from, to) in cases {
            let scenario = Scenario {
                from,
                to,
                seed: 1,
                peak_sessions_per_minute: 60.0,
                incidents: Vec::new(),
            };
            let events = run(&config, &scenario);
            assert!(
                events
                    .iter()
                    .all(|e| e.timestamp >= from && e.timestamp < to)
            );
        }
    }

    #[test]
    fn sessions_walk_the_stages_in_order() {
        let config = example();
        let from = at(LOCAL_10H);
        let events = run(&config, &scenario(LOCAL_10H, LOCAL_12H, 30.0));
        let sessions = sessions(&config, &events);
        let mut n_crossing_a_minute = 0;
        for (anonymous_id, walked) in &sessions {
            let stages: Vec<usize> = walked.iter().map(|(stage, _)| *stage).collect();
            let first = stages[0];
            let want: Vec<usize> = (first..first + stages.len()).collect();
            assert_eq!(stages, want, "{anonymous_id}");
            // Only a session already under way when the range began starts past stage 0.
            let started_early = walked[0].1.timestamp.0 - from.0 < STEP_GAP_MAX_MS * 4;
            assert!(first == 0 || started_early, "{anonymous_id}");
            for pair in walked.windows(2) {
                let gap_ms = pair[1].1.timestamp.0 - pair[0].1.timestamp.0;
                assert!(
                    (STEP_GAP_MIN_MS..=STEP_GAP_MAX_MS).contains(&gap_ms),
                    "{gap_ms}"
                );
                if pair[0].1.timestamp.minute() != pair[1].1.timestamp.minute() {
                    n_crossing_a_minute += 1;
                }
            }
            let user_ids: HashSet<_> = walked.iter().map(|(_, e)| &e.user_id).collect();
            assert_eq!(user_ids.len(), 1, "{anonymous_id}");
        }
        assert!(n_crossing_a_minute > 100, "{n_crossing_a_minute}");
        let ids: HashSet<&str> = events.iter().map(|e| e.message_id.as_str()).collect();
        assert_eq!(ids.len(), events.len(), "message ids are unique");
        let n_logged_in = sessions
            .values()
            .filter(|w| w[0].1.user_id.is_some())
            .count();
        let logged_in_share = ratio(n_logged_in, sessions.len());
        assert!((0.3..0.4).contains(&logged_in_share), "{logged_in_share}");
    }

    #[test]
    fn step_and_overall_conversion_are_realistic() {
        let config = example();
        let events = run(&config, &scenario(LOCAL_10H, "2026-11-19T15:00:00Z", 20.0));
        let mut n_by_stage = [0_usize; 5];
        for event in &events {
            n_by_stage[stage_of(&config, event)] += 1;
        }
        let wants = [(0.25, 0.36), (0.48, 0.62), (0.68, 0.83), (0.78, 0.92)];
        for (stage, (low, high)) in wants.iter().enumerate() {
            let step = ratio(n_by_stage[stage + 1], n_by_stage[stage]);
            assert!((*low..*high).contains(&step), "stage {stage}: {step}");
        }
        let overall = ratio(n_by_stage[4], n_by_stage[0]);
        assert!((0.07..0.16).contains(&overall), "{overall}");
    }

    #[test]
    fn step_conversion_varies_more_between_windows_than_a_binomial() {
        let config = example();
        let events = run(&config, &scenario(LOCAL_10H, LOCAL_14H, 120.0));
        // View-to-cart conversion of the sessions viewing in each five-minute window.
        let start = at(LOCAL_10H).0;
        let mut n_by_window = [(0_usize, 0_usize); 48];
        for walked in sessions(&config, &events).values() {
            let (stage, view) = walked[0];
            let window = (view.timestamp.0 - start) / OVERDISPERSION_WINDOW_MS;
            if stage == 0 && window >= 0 {
                let (n_viewed, n_added) = &mut n_by_window[window as usize];
                *n_viewed += 1;
                *n_added += usize::from(walked.len() > 1);
            }
        }
        let n_viewed: usize = n_by_window.iter().map(|(n, _)| n).sum();
        let n_added: usize = n_by_window.iter().map(|(_, n)| n).sum();
        let mean_conversion = ratio(n_added, n_viewed);
        // The dispersion index: about 1 for binomial counts, about 3 with the shared
        // per-window factor at this traffic.
        let chi_square: f64 = n_by_window
            .iter()
            .map(|(n_viewed, n_added)| {
                let expected = *n_viewed as f64 * mean_conversion;
                (*n_added as f64 - expected).powi(2) / (expected * (1.0 - mean_conversion))
            })
            .sum();
        let dispersion_index = chi_square / (n_by_window.len() - 1) as f64;
        assert!(dispersion_index > 1.8, "{dispersion_index}");
    }

    #[test]
    fn a_conversion_incident_cuts_the_step_only_in_its_window_and_segment() {
        let config = example();
        let base = scenario(LOCAL_11H, LOCAL_15H, 60.0);
        let with_incident = Scenario {
            incidents: vec![incident(&format!(
                "stage=checkout,drop=0.5,from={LOCAL_12H},to={LOCAL_14H},segment=device:mobile"
            ))],
            ..base.clone()
        };
        let before = run(&config, &base);
        let after = run(&config, &with_incident);
        // (device, window, the incident's effect on checkout-to-payment: None = none at all)
        let cases = [
            ("mobile", (LOCAL_12H, LOCAL_14H), Some((0.4, 0.6))),
            ("desktop", (LOCAL_12H, LOCAL_14H), None),
            ("tablet", (LOCAL_12H, LOCAL_14H), None),
            ("mobile", (LOCAL_11H, LOCAL_12H), None),
            ("mobile", (LOCAL_14H, LOCAL_15H), None),
        ];
        for (device, window, effect) in cases {
            let select = |e: &SimEvent| text(e, "context.device.type") == Some(device);
            let cohort_before = cohort(&config, &before, 2, window, select);
            let cohort_after = cohort(&config, &after, 2, window, select);
            match effect {
                None => assert_eq!(cohort_after, cohort_before, "{device} {window:?}"),
                Some((low, high)) => {
                    assert_eq!(cohort_after.0, cohort_before.0);
                    assert!(cohort_before.0 > 200, "{cohort_before:?}");
                    let kept = ratio(cohort_after.1, cohort_before.1);
                    assert!((low..high).contains(&kept), "{device} {window:?}: {kept}");
                }
            }
        }
    }

    #[test]
    fn a_pixel_incident_loses_events_but_not_shoppers() {
        let config = example();
        let base = scenario(LOCAL_11H, LOCAL_15H, 60.0);
        let with_incident = Scenario {
            incidents: vec![incident(&format!(
                "kind=pixel,stage=cart,drop=0.6,from={LOCAL_12H},to={LOCAL_14H}"
            ))],
            ..base.clone()
        };
        let before = run(&config, &base);
        let after = run(&config, &with_incident);
        let kept_ids: HashSet<&str> = after.iter().map(|e| e.message_id.as_str()).collect();
        let before_ids: HashSet<&str> = before.iter().map(|e| e.message_id.as_str()).collect();
        assert!(kept_ids.is_subset(&before_ids));
        let (mut n_cart, mut n_cart_kept) = (0, 0);
        for event in &before {
            let is_kept = kept_ids.contains(event.message_id.as_str());
            let in_window = event.timestamp >= at(LOCAL_12H) && event.timestamp < at(LOCAL_14H);
            if stage_of(&config, event) == 1 && in_window {
                n_cart += 1;
                n_cart_kept += usize::from(is_kept);
            } else {
                assert!(is_kept, "{} at {} was lost", event.name, event.timestamp);
            }
        }
        let kept_share = ratio(n_cart_kept, n_cart);
        assert!((0.34..0.46).contains(&kept_share), "{kept_share}");
        // Shoppers whose cart event was lost still check out.
        let orphans = sessions(&config, &after)
            .values()
            .filter(|walked| {
                let stages: Vec<usize> = walked.iter().map(|(stage, _)| *stage).collect();
                stages.contains(&2) && !stages.contains(&1)
            })
            .count();
        assert!(orphans > 100, "{orphans}");
    }

    #[test]
    fn a_surge_scales_the_sessions_entering_the_funnel() {
        let config = example();
        let base = scenario(LOCAL_11H, LOCAL_15H, 60.0);
        let before = run(&config, &base);
        let entering = |events: &[SimEvent], source: &str, inside: bool| {
            events
                .iter()
                .filter(|e| stage_of(&config, e) == 0)
                .filter(|e| text(e, "context.campaign.source") == Some(source))
                .filter(|e| (e.timestamp >= at(LOCAL_12H) && e.timestamp < at(LOCAL_14H)) == inside)
                .count()
        };
        let cases = [(3.0, 2.6, 3.4), (0.5, 0.4, 0.6), (0.0, 0.0, 0.0)];
        for (factor, low, high) in cases {
            let surge = Scenario {
                incidents: vec![incident(&format!(
                    "kind=surge,factor={factor},from={LOCAL_12H},to={LOCAL_14H},segment=source:tiktok"
                ))],
                ..base.clone()
            };
            let after = run(&config, &surge);
            let scale = ratio(
                entering(&after, "tiktok", true),
                entering(&before, "tiktok", true),
            );
            assert!((low..=high).contains(&scale), "factor {factor}: {scale}");
            for (source, inside) in [("tiktok", false), ("google", true), ("email", true)] {
                assert_eq!(
                    entering(&after, source, inside),
                    entering(&before, source, inside),
                    "factor {factor}: {source} inside={inside}"
                );
            }
        }
    }

    #[test]
    fn night_traffic_is_lower_than_noon_traffic_in_the_shop_time_zone() {
        // (time zone, 03:00 and 12:00 local in UTC on the same day)
        let cases = [
            (
                "America/New_York",
                "2026-11-18T08:00:00Z",
                "2026-11-18T17:00:00Z",
            ),
            ("Asia/Tokyo", "2026-11-17T18:00:00Z", "2026-11-18T03:00:00Z"),
            ("UTC", "2026-11-18T03:00:00Z", "2026-11-18T12:00:00Z"),
        ];
        let peak = 30.0;
        for (time_zone, night, noon) in cases {
            let text = Config::example_toml().replace("America/New_York", time_zone);
            let config = Config::parse(&text).unwrap();
            let hour_from = |start: &str| {
                let to = Timestamp(at(start).0 + MS_PER_HOUR).to_string();
                let mut summary = SimSummary::default();
                simulate(&config, &scenario(start, &to, peak), |_| {})
                    .map(|s| summary = s)
                    .unwrap();
                summary.n_sessions as f64 / 60.0
            };
            let (night_rate, noon_rate) = (hour_from(night), hour_from(noon));
            assert!(night_rate < 0.12 * peak, "{time_zone}: night {night_rate}");
            assert!(
                (0.55 * peak..1.05 * peak).contains(&noon_rate),
                "{time_zone}: noon {noon_rate}"
            );
        }
    }

    #[test]
    fn events_carry_segment_values_payment_method_and_revenue() {
        let config = example();
        let events = run(&config, &scenario(LOCAL_10H, LOCAL_14H, 30.0));
        let mut revenues = Vec::new();
        for event in &events {
            let stage = stage_of(&config, event);
            assert_eq!(event.kind, CallKind::Track);
            let paths: HashSet<String> = event.fields.iter().map(|(p, _)| p.to_string()).collect();
            assert_eq!(paths.len(), event.fields.len(), "a path twice: {event:?}");
            for (path, values) in [
                ("context.device.type", DEVICE_TYPES),
                ("context.location.country", COUNTRIES),
                ("context.campaign.source", CAMPAIGN_SOURCES),
                ("properties.variant", VARIANTS),
            ] {
                let value = text(event, path).unwrap();
                assert!(values.iter().any(|(v, _, _)| *v == value), "{path}={value}");
            }
            let payment_method = text(event, PAYMENT_METHOD_PATH);
            assert_eq!(payment_method.is_some(), stage >= 3, "{event:?}");
            match (stage, field(event, REVENUE_PATH)) {
                (4, Some(SimValue::Decimal { minor, exponent: 2 })) if *minor > 0 => {
                    revenues.push(*minor as f64);
                    assert_eq!(text(event, CURRENCY_PATH), Some("USD"));
                }
                (4, other) => panic!("order revenue {other:?}"),
                (_, None) => assert_eq!(text(event, CURRENCY_PATH), None),
                (_, Some(_)) => panic!("revenue before the order: {event:?}"),
            }
        }
        let mean_revenue = revenues.iter().sum::<f64>() / revenues.len() as f64;
        assert!(revenues.len() > 500, "{}", revenues.len());
        assert!((7_650.0..9_350.0).contains(&mean_revenue), "{mean_revenue}");
    }

    const APP_CONFIG: &str = r#"
[shop]
currency = "JPY"
time_zone = "Asia/Tokyo"

[[dimensions]]
name = "plan"
path = "traits.plan"

[[dimensions]]
name = "device"
path = "context.device.type"

[[dimensions]]
name = "device_again"
path = "context.device.type"

[[dimensions]]
name = "pay"
path = "properties.payment_method"

[[funnels]]
id = "app"
[[funnels.stages]]
id = "home"
screen = "Home"
[[funnels.stages]]
id = "added"
event = "Product Added"
where = { "properties.category" = "shoes", "context.device.type" = "mobile" }
[[funnels.stages]]
id = "done"
page = "Thanks"

[[funnels]]
id = "web"
[[funnels.stages]]
id = "landing"
page = "Landing"
[[funnels.stages]]
id = "ordered"
event = "Order Completed"
"#;

    /// The simulated events, as the edge would hand them to the core's ingest rules.
    fn as_message<'e>(matcher: &Matcher, event: &'e SimEvent) -> Message<'e> {
        let fields = matcher
            .slots()
            .iter()
            .map(|slot| {
                event
                    .fields
                    .iter()
                    .find(|(path, _)| path == slot)
                    .map(|(_, value)| value.to_string().into())
            })
            .collect();
        Message {
            kind: event.kind,
            name: Some(&event.name),
            message_id: &event.message_id,
            event_time: event.timestamp,
            fields,
        }
    }

    #[test]
    fn every_event_counts_toward_the_stage_it_was_simulated_for() {
        // (config, trigger name, expected stage hits; `None` = depends on the device filter)
        let app_config = Config::parse(APP_CONFIG).unwrap();
        let hit = |funnel, stage| StageHit { funnel, stage };
        let cases: [(&Config, &str, Option<Vec<StageHit>>); 7] = [
            (&example(), "Product Viewed", Some(vec![hit(0, 0)])),
            (&example(), "Order Completed", Some(vec![hit(0, 4)])),
            (&app_config, "Home", Some(vec![hit(0, 0)])),
            (&app_config, "Product Added", None),
            (&app_config, "Thanks", Some(vec![hit(0, 2)])),
            (&app_config, "Landing", Some(vec![hit(1, 0)])),
            (&app_config, "Order Completed", Some(vec![hit(1, 1)])),
        ];
        for (config, name, want) in cases {
            let matcher = Matcher::new(config);
            let currency = config.shop.currency;
            let events = run(config, &scenario(LOCAL_10H, LOCAL_12H, 20.0));
            let named: Vec<&SimEvent> = events.iter().filter(|e| e.name == name).collect();
            assert!(named.len() > 20, "{name}: {}", named.len());
            for event in named {
                let message = as_message(&matcher, event);
                let mut hits = Vec::new();
                matcher.stage_hits(&message, &mut hits);
                let want = want.clone().unwrap_or_else(|| {
                    assert_eq!(text(event, "properties.category"), Some("shoes"));
                    match text(event, "context.device.type") {
                        Some("mobile") => vec![hit(0, 1)],
                        _ => vec![],
                    }
                });
                assert_eq!(hits, want, "{event:?}");
                let cells = message_cells(&matcher, currency, &message).unwrap();
                let is_last = config.funnels[want.first().map_or(0, |h| h.funnel)]
                    .stages
                    .len()
                    == want.first().map_or(0, |h| h.stage + 1);
                for (_, count) in cells {
                    assert_eq!(count.n_revenue_events, i64::from(is_last), "{event:?}");
                }
            }
        }
    }

    #[test]
    fn other_configs_get_generic_values_and_a_default_order_value() {
        let config = Config::parse(APP_CONFIG).unwrap();
        let events = run(&config, &scenario(LOCAL_10H, LOCAL_14H, 30.0));
        let kinds: HashSet<(CallKind, &str)> =
            events.iter().map(|e| (e.kind, e.name.as_str())).collect();
        let want: HashSet<(CallKind, &str)> = [
            (CallKind::Screen, "Home"),
            (CallKind::Track, "Product Added"),
            (CallKind::Page, "Thanks"),
            (CallKind::Page, "Landing"),
            (CallKind::Track, "Order Completed"),
        ]
        .into_iter()
        .collect();
        assert_eq!(kinds, want);
        let mut revenues = Vec::new();
        for event in &events {
            let plan = text(event, "traits.plan").unwrap();
            assert!(["v1", "v2", "v3"].contains(&plan), "{plan}");
            let is_last = ["Thanks", "Order Completed"].contains(&event.name.as_str());
            assert_eq!(text(event, PAYMENT_METHOD_PATH).is_some(), is_last);
            if is_last {
                assert_eq!(text(event, CURRENCY_PATH), Some("JPY"));
                match field(event, REVENUE_PATH) {
                    Some(SimValue::Decimal { minor, exponent: 0 }) => revenues.push(*minor as f64),
                    other => panic!("{other:?}"),
                }
            }
        }
        let mean_revenue = revenues.iter().sum::<f64>() / revenues.len() as f64;
        assert!((72.0..98.0).contains(&mean_revenue), "{mean_revenue}");
    }

    #[test]
    fn decimals_render_exactly() {
        let cases = [
            (8512, 2, "85.12"),
            (8500, 2, "85.00"),
            (5, 2, "0.05"),
            (-5, 2, "-0.05"),
            (-1234, 2, "-12.34"),
            (1200, 0, "1200"),
            (1234, 3, "1.234"),
            (0, 2, "0.00"),
            (i64::MIN, 2, "-92233720368547758.08"),
        ];
        for (minor, exponent, want) in cases {
            assert_eq!(SimValue::Decimal { minor, exponent }.to_string(), want);
        }
    }

    #[test]
    fn parses_incidents() {
        let cases: &[(&str, Result<&str, &str>)] = &[
            (
                "stage=checkout,drop=0.5,from=2026-11-20T10:00:00Z,to=2026-11-20T12:00:00Z",
                Ok(
                    "kind=conversion,stage=checkout,drop=0.5,from=2026-11-20T10:00:00Z,to=2026-11-20T12:00:00Z",
                ),
            ),
            (
                " kind = pixel , stage=cart,drop=1,funnel=checkout,from=2026-11-20T10:00:00Z,to=2026-11-20T12:00:00+01:00,segment=device:mobile",
                Ok(
                    "kind=pixel,stage=cart,drop=1,funnel=checkout,from=2026-11-20T10:00:00Z,to=2026-11-20T11:00:00Z,segment=device:mobile",
                ),
            ),
            (
                "kind=surge,factor=3,from=2026-11-20T10:00:00Z,to=2026-11-20T12:00:00Z,segment=source:tiktok",
                Ok(
                    "kind=surge,factor=3,from=2026-11-20T10:00:00Z,to=2026-11-20T12:00:00Z,segment=source:tiktok",
                ),
            ),
            (
                "stage=checkout,drop=0.5,from=2026-11-20T10:00:00Z",
                Err("missing `to`"),
            ),
            (
                "drop=0.5,from=2026-11-20T10:00:00Z,to=2026-11-20T12:00:00Z",
                Err("missing `stage`"),
            ),
            (
                "stage=a,from=2026-11-20T10:00:00Z,to=2026-11-20T12:00:00Z",
                Err("missing `drop`"),
            ),
            (
                "stage=a,drop=1.5,from=2026-11-20T10:00:00Z,to=2026-11-20T12:00:00Z",
                Err("`drop` must be a number from 0 to 1"),
            ),
            (
                "stage=a,drop=half,from=2026-11-20T10:00:00Z,to=2026-11-20T12:00:00Z",
                Err("`drop`: `half` is not a number"),
            ),
            (
                "stage=a,drop=NaN,from=2026-11-20T10:00:00Z,to=2026-11-20T12:00:00Z",
                Err("`drop`: `NaN` is not a number"),
            ),
            (
                "stage=a,drop=0.5,from=noon,to=2026-11-20T12:00:00Z",
                Err("`from`: `noon` is not an RFC 3339"),
            ),
            (
                "stage=a,drop=0.5,from=2026-11-20T12:00:00Z,to=2026-11-20T12:00:00Z",
                Err("`from` must be before `to`"),
            ),
            ("stage=a,dorp=0.5", Err("unknown key `dorp`")),
            ("stage=a,stage=b", Err("`stage` is given twice")),
            ("stage=a,drop", Err("`drop` is not key=value")),
            ("stage=,drop=0.5", Err("`stage` has no value")),
            ("kind=outage,stage=a", Err("`kind`: `outage` is not one of")),
            (
                "kind=surge,stage=a,factor=2",
                Err("`stage` does not apply to kind=surge"),
            ),
            (
                "kind=surge,drop=0.5",
                Err("`drop` does not apply to kind=surge"),
            ),
            (
                "kind=surge,from=2026-11-20T10:00:00Z",
                Err("missing `factor`"),
            ),
            (
                "kind=surge,factor=1000",
                Err("`factor` must be a number from 0 to 100"),
            ),
            (
                "stage=a,drop=0.5,factor=2",
                Err("`factor` does not apply to kind=conversion"),
            ),
            (
                "stage=a,drop=0.5,from=2026-11-20T10:00:00Z,to=2026-11-20T12:00:00Z,segment=mobile",
                Err("`segment`: `mobile` is not dimension:value"),
            ),
            ("", Err("`` is not key=value")),
        ];
        for (text, want) in cases {
            let got = InjectedIncident::parse(text);
            match (want, &got) {
                (Ok(canonical), Ok(parsed)) => {
                    assert_eq!(parsed.to_string(), *canonical, "{text}");
                    assert_eq!(InjectedIncident::parse(canonical).as_ref(), Ok(parsed));
                }
                (Err(fragment), Err(message)) => {
                    assert!(
                        message.contains(fragment),
                        "{text}: `{message}` lacks `{fragment}`"
                    );
                }
                _ => panic!("{text}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn rejects_scenarios_the_config_cannot_run() {
        let window = "from=2026-11-18T15:00:00Z,to=2026-11-18T16:00:00Z";
        let with_incident = |text: &str| {
            let mut scenario = scenario(LOCAL_10H, LOCAL_12H, 10.0);
            scenario
                .incidents
                .push(incident(&format!("{text},{window}")));
            scenario
        };
        let mut backwards = scenario(LOCAL_12H, LOCAL_10H, 10.0);
        let mut too_long = scenario(LOCAL_10H, LOCAL_12H, 10.0);
        too_long.to = Timestamp(too_long.from.0 + (RANGE_DAYS_MAX + 1) * MS_PER_DAY);
        let mut too_busy = scenario(LOCAL_10H, LOCAL_12H, 1e9);
        let mut not_a_number = scenario(LOCAL_10H, LOCAL_12H, f64::NAN);
        let mut too_many = with_incident("stage=cart,drop=0.1");
        too_many.incidents = vec![too_many.incidents[0].clone(); INCIDENTS_MAX + 1];
        let mut bad_drop = with_incident("stage=cart,drop=0.1");
        bad_drop.incidents[0].kind = IncidentKind::Pixel {
            stage: "cart".into(),
            drop: -0.1,
        };
        let cases: Vec<(&mut Scenario, &str)> = vec![
            (&mut backwards, "`from` must be before its `to`"),
            (&mut too_long, "more than 366 days"),
            (&mut too_busy, "peak sessions per minute must be"),
            (&mut not_a_number, "not NaN"),
            (&mut too_many, "at most 64 incidents"),
            (&mut bad_drop, "incident 1: `drop` must be"),
        ];
        let config = example();
        let check = |scenario: &Scenario, want: &str| {
            let got = simulate(&config, scenario, |_| panic!("emitted before checking"));
            match got {
                Err(err) => assert!(err.to_string().contains(want), "`{err}` lacks `{want}`"),
                Ok(_) if want.is_empty() => {}
                Ok(_) => panic!("accepted, want `{want}`"),
            }
        };
        for (scenario, want) in cases {
            check(scenario, want);
        }
        let no_funnels = Config {
            funnels: Vec::new(),
            ..example()
        };
        assert_eq!(
            simulate(&no_funnels, &scenario(LOCAL_10H, LOCAL_12H, 10.0), |_| {}),
            Err(ScenarioError::NoFunnels)
        );
        let incident_cases = [
            ("stage=cart,drop=0.1", ""),
            (
                "stage=cart,drop=0.1,funnel=checkout,segment=payment_method:klarna",
                "",
            ),
            ("kind=pixel,stage=order,drop=0.1", ""),
            (
                "stage=order,drop=0.1",
                "stage `order` is the last of funnel `checkout`",
            ),
            (
                "stage=cart,drop=0.1,funnel=web",
                "no funnel `web` in the config (funnels: checkout)",
            ),
            (
                "stage=basket,drop=0.1",
                "no stage `basket` in the affected funnels (stages: product_viewed, cart,",
            ),
            (
                "stage=cart,drop=0.1,segment=os:ios",
                "no dimension `os` in the config (dimensions: device, country,",
            ),
            (
                "stage=cart,drop=0.1,segment=device:phone",
                "dimension `device` never has the value `phone` in the simulation (values: mobile, desktop, tablet)",
            ),
            ("kind=surge,factor=2,segment=variant:control", ""),
        ];
        for (text, want) in incident_cases {
            let scenario = with_incident(text);
            if want.is_empty() {
                assert!(simulate(&config, &scenario, |_| {}).is_ok(), "{text}");
            } else {
                check(&scenario, &format!("incident 1: {want}"));
            }
        }
    }
}
