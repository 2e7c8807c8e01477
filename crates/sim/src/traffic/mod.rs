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
//! binomial would, as real traffic does), and optionally by the local time of day
//! ([`ConversionSwing`]: a shop whose night visitors browse and afternoon visitors buy).
//! Injected incidents change that process inside their
//! window: fewer shoppers going on from a stage, a tracking pixel losing events, or a surge of
//! arriving sessions.
//!
//! Every random choice of a session comes from its own stream, forked from the seed by the
//! session's arrival minute and number, and draws the same number of values whatever the
//! probabilities are. Two consequences make tests exact rather than statistical: an incident
//! changes only the sessions it touches, everything else being identical to a run without it;
//! and simulating a sub-range gives exactly the events of a longer run that fall inside it.

mod model;

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::fmt;

use revloop_core::config::{Config, FieldPath};
use revloop_core::funnel::CallKind;
use revloop_core::rng::mix64;
use revloop_core::time::{DurationMs, MS_PER_DAY, MS_PER_HOUR, MS_PER_MINUTE, Minute, Timestamp};

use crate::injection::InjectedIncident;
use model::Model;

/// The busiest traffic a scenario may ask for, in sessions per minute at the weekly peak.
pub const PEAK_SESSIONS_PER_MINUTE_MAX: f64 = 100_000.0;
/// The longest range a scenario may cover.
pub const RANGE_DAYS_MAX: i64 = 366;
/// How many incidents a scenario may inject.
pub const INCIDENTS_MAX: usize = 64;

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
/// [`ConversionSwing::StrongDaily`]: the amplitude, on the logit scale, of the daily swing of
/// the last two steps' conversion. 0.3 moves checkout's drop-off (0.25 on average) between
/// about 0.19 and 0.31 and payment's (0.15) between about 0.12 and 0.19: ±25%.
const STRONG_DAILY_SWING_LOGIT: f64 = 0.3;
/// The local hour (fractional) at which those steps convert worst: the quiet early morning, when
/// shoppers browse rather than buy.
const STRONG_DAILY_SWING_WORST_HOUR: f64 = 4.5;

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
    /// How conversion moves through the shop's day.
    pub conversion_swing: ConversionSwing,
}

/// How a shop's conversion moves through its local day (its traffic always does).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConversionSwing {
    /// Conversion does not depend on the time of day: only traffic does.
    #[default]
    None,
    /// The last two steps (checkout to payment, payment to order on the checkout funnel)
    /// convert worst in the quiet early-morning hours and best in the afternoon: their drop-off
    /// swings by about ±25% around its daily mean (a shop whose night visitors browse and whose
    /// afternoon visitors buy). Every other step is ordinary.
    StrongDaily,
}

impl ConversionSwing {
    /// The shift of the step conversion's logit out of a stage, `steps_from_end` steps before
    /// the last stage (1 for the last step), at `local_ms` local time.
    pub fn step_logit_shift(self, steps_from_end: usize, local_ms: i64) -> f64 {
        match self {
            ConversionSwing::None => 0.0,
            ConversionSwing::StrongDaily if (1..=2).contains(&steps_from_end) => {
                let hour = local_ms.rem_euclid(MS_PER_DAY) as f64 / MS_PER_HOUR as f64;
                let phase = (hour - STRONG_DAILY_SWING_WORST_HOUR) / 24.0 * std::f64::consts::TAU;
                -STRONG_DAILY_SWING_LOGIT * phase.cos()
            }
            ConversionSwing::StrongDaily => 0.0,
        }
    }

    /// The name `revloop eval --shop` takes.
    pub fn name(self) -> &'static str {
        match self {
            ConversionSwing::None => "ordinary",
            ConversionSwing::StrongDaily => "daily-swing",
        }
    }
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
    let first_minute = scenario
        .from
        .saturating_sub(DurationMs::from_millis(model.session_span_max_ms))
        .minute();
    let last_minute = scenario
        .to
        .saturating_sub(DurationMs::from_millis(1))
        .minute();
    let mut emit_counted = |event: SimEvent| {
        summary.n_events += 1;
        emit(event);
    };
    for minute in first_minute.index()..=last_minute.index() {
        let minute_start = Minute::new(minute).start();
        // Each minute's arrivals, and each session, have streams named by the minute rather
        // than by a running count, so that a sub-range replays exactly the same sessions.
        let mut arrivals_rng = model
            .root
            .fork(stream_id(&[STREAM_ARRIVALS, minute as u64]));
        let n_arriving = arrivals_rng.poisson(model.sessions_per_minute(minute_start));
        for number in 0..n_arriving {
            let offset_ms = arrivals_rng.below(MS_PER_MINUTE as u64) as i64;
            let at = minute_start.saturating_add(DurationMs::from_millis(offset_ms));
            if at >= scenario.to {
                continue;
            }
            let n_walked = model.arrive((minute, number), at, &mut queue);
            if at >= scenario.from {
                summary.n_sessions += n_walked;
            }
        }
        // Every later arrival is at or after the next minute, and so are all its events.
        queue.flush_before(Minute::new(minute).end(), &mut emit_counted);
    }
    queue.flush_before(Timestamp::MAX, &mut emit_counted);
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
pub(crate) mod tests;
