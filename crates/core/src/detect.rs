//! The Digital Andon: judging each funnel stage's drop-off against its baseline, minute by
//! minute, in event time.
//!
//! A [`Detector`] is fed the per-minute event counts of every funnel stage, for every funnel as
//! a whole and for every single-dimension segment (device = mobile, country = DE, ...), one
//! minute at a time. It owns no clock: [`Detector::close_minute`] judges the minute it is given
//! and [`Detector::wake_at`] says when the next one is due, so the same engine runs live and as
//! fast as possible in replay. It emits [`AlertEvent`]s: an alert opened, upgraded or closed.
//!
//! What it watches, per funnel and segment:
//!
//! - **Conversion series**, one per pair of consecutive stages: of the `n` shoppers at stage
//!   `i` in a minute, how many did not reach stage `i + 1` (the drop-off rate). The baseline is
//!   the drop-off rate of the same local time-of-week slot (168 hourly slots, in the funnel's
//!   time zone), learned over several weeks, shrunk toward the series' overall rate where a
//!   slot has few shoppers, and interpolated between slot centres.
//! - **The entry volume series**: events at the funnel's first stage against the seasonal
//!   expectation (for a segment, against its seasonal share of the funnel's entries), for
//!   traffic collapses and surges.
//!
//! How it judges. Noise is modelled per window as binomial plus a between-window variance
//! learned from history (a beta-binomial, or Laney-style, treatment): the standard deviation σ
//! of a window's drop-off rate is `√(p₀(1−p₀)/n + τ²)`. Severity is expressed in that σ, as the
//! runbook does. Alarms come from likelihood-ratio CUSUMs, which accumulate evidence minute by
//! minute and are the optimal detectors of a step change (Lorden; Moustakides): one designed
//! for a 2σ shift raises P2, one designed for 3σ raises P1. Their thresholds come from the
//! false-alarm budgets: each funnel's budget is split between the series it watches (half to
//! the funnel as a whole, half shared by its segments, so the multiple testing is paid for),
//! and each series' threshold is set by Siegmund's approximation of its in-control average run
//! length (checked against the Brook–Evans Markov chain in `stats`). Alongside, a window so far
//! above baseline that no budgeted false alarm explains it raises P1 at once, and while a P2
//! is open a shorter window watches for escalation (the runbook's enhanced monitoring).
//!
//! Only degradation pages: a drop-off well below baseline is recorded as an improvement, not
//! alerted. A series whose stage expects fewer than `min_shoppers` per window is not judged and
//! says so. A drop in conversion into a stage while shoppers still reach the stage after it as
//! often as before is the signature of that stage's events going missing (a broken tracking
//! pixel), and is alerted as `volume`, not `conversion`. While the funnel's traffic surges,
//! conversion is judged only for a collapse, and nothing is learned.

use std::collections::HashMap;

pub use crate::alert::{AlertEvent, AlertEventKind, AlertKind, Direction, Severity, TopSegment};
use crate::config::Config;
use crate::stats::{self, Cusum};
use crate::time::{MS_PER_DAY, MS_PER_HOUR, MS_PER_MINUTE, Minute, Timestamp};

/// Time-of-week slots: one per local hour of the week, Monday 00:00 first.
pub const SLOTS: usize = 7 * 24;
/// Most segments watched per funnel: a named limit on the detector's memory (about 2 KiB per
/// stage per segment). Segments beyond it are not watched, and [`Detector::segments_dropped`]
/// counts them.
pub const SEGMENTS_PER_FUNNEL_MAX: usize = 2_000;
/// How many contributors an alert lists.
pub const TOP_SEGMENTS_MAX: usize = 5;
/// A dimension value is listed only if it lost this many of its own standard deviations more
/// than its share of the traffic would have.
const TOP_SEGMENT_SIGMA: f64 = 2.0;

/// Severity multipliers of the runbook: P2 above 2σ, P1 above 3σ.
const SIGMA_P2: f64 = 2.0;
const SIGMA_P1: f64 = 3.0;
/// Share of each funnel's false-alarm budget spent on the funnel as a whole; the rest is shared
/// by its segments.
const AGGREGATE_BUDGET_SHARE: f64 = 0.5;
/// Shoppers' worth of weight pulling a slot's rate toward the series' overall rate.
const SHRINK_SHOPPERS: f64 = 200.0;
/// A slot is usable once it holds this many minutes of history (most of one week's hour).
const SLOT_READY_MINUTES: f32 = 45.0;
/// A minute does not update the baseline while the P2 CUSUM is above this share of its
/// threshold: the evidence of an incident that has not yet alarmed stays out.
const LEARNING_EXCLUSION_SHARE: f64 = 0.5;
/// Drop-off rates this close to 0 or 1 carry no information worth judging.
const DEGENERATE_RATE: f64 = 0.001;
/// While a P2 is open, a stage whose drop-off over the last few minutes (a shorter window) is
/// this many σ above baseline for `ENHANCED_RUN` minutes in a row is upgraded: the runbook's
/// enhanced monitoring, "reduce sample size for faster detection".
const ENHANCED_SIGMA: f64 = 3.0;
const ENHANCED_RUN: u8 = 2;
/// The window test that stops the line at once needs `n·p₀(1−p₀)` at least this in the
/// window, and a deviation of at least `SHEWHART_SIGMA_MIN` σ (more where the P1 budget asks).
const SHEWHART_COUNT_MIN: f64 = 10.0;
const SHEWHART_SIGMA_MIN: f64 = 5.0;
/// During a traffic surge the window test asks for this many times the deviation: a surge's
/// new shoppers convert differently, an outage during a campaign still shows.
const SURGE_SHEWHART_FACTOR: f64 = 2.0;
/// Between-minute variation of traffic lasts longer than that of conversion (an hour's weather,
/// a campaign); volume series measure their overdispersion on windows this long.
const VOLUME_PERSISTENCE_MINUTES: usize = 15;
/// Smallest relative change of volume the volume CUSUMs are designed for.
const VOLUME_MIN_CHANGE: f64 = 0.5;
/// Memory of the drill-down tallies of lost conversions, in minutes.
const DRILL_DOWN_MEMORY_MINUTES: f64 = 8.0;
/// Shifts, in σ of one minute, over which volume thresholds are made safe.
const VOLUME_DELTAS: [f64; 8] = [0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0];

/// What a series can say about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeriesStatus {
    /// Still learning its baseline: it does not page yet.
    Learning,
    /// Too few shoppers expected at this time to judge.
    TooFewShoppers,
    /// Drop-off is (nearly) always 0 or 1 here; nothing to judge.
    Degenerate,
    Normal,
    /// Markedly better than baseline: recorded, not alerted.
    Improved,
    /// The funnel's traffic is surging: its new shoppers convert differently, so conversion is
    /// not judged against the baseline (bar a collapse) until the surge ends.
    Surge,
    Alerting(Severity),
}

impl SeriesStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SeriesStatus::Learning => "learning",
            SeriesStatus::TooFewShoppers => "too_few_shoppers",
            SeriesStatus::Degenerate => "degenerate",
            SeriesStatus::Normal => "normal",
            SeriesStatus::Improved => "improved",
            SeriesStatus::Surge => "surge",
            SeriesStatus::Alerting(Severity::P1) => "alerting_p1",
            SeriesStatus::Alerting(Severity::P2) => "alerting_p2",
        }
    }
}

/// One slot of a baseline, for `revloop baseline show` and the API.
#[derive(Debug, Clone, PartialEq)]
pub struct SlotBaseline {
    /// 0 = Monday.
    pub weekday: u8,
    pub hour: u8,
    /// `None` until the slot has history.
    pub drop_off_rate: Option<f64>,
    pub shoppers_per_minute: Option<f64>,
    /// Minutes of history, exponentially weighted.
    pub weight: f64,
}

/// The state of one series now, for the API.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesReport {
    pub stage: String,
    pub next_stage: String,
    pub segment: Option<(String, String)>,
    pub status: SeriesStatus,
    pub baseline_drop_off: Option<f64>,
    pub window_drop_off: Option<f64>,
    /// σ of one window at the expected traffic.
    pub window_sd: Option<f64>,
    pub window_sigma: Option<f64>,
    pub expected_shoppers_per_minute: Option<f64>,
    /// Between-window variance of the drop-off rate learned from history (τ²).
    pub overdispersion: f64,
    pub cusum_p2: f64,
    pub threshold_p2: f64,
    pub cusum_p1: f64,
    pub threshold_p1: f64,
}

/// Where a minute falls among the time-of-week slots, for interpolation between the centres of
/// two neighbouring slots.
#[derive(Debug, Clone, Copy, PartialEq)]
struct SlotPosition {
    /// The slot the minute belongs to (where it is learned).
    slot: usize,
    a: usize,
    b: usize,
    /// Weight of slot `b`.
    wb: f64,
}

impl SlotPosition {
    fn of(local_ms: i64) -> SlotPosition {
        let days = local_ms.div_euclid(MS_PER_DAY);
        // 1970-01-01 was a Thursday: day 0 is weekday 3 counting from Monday.
        let weekday = (days + 3).rem_euclid(7) as usize;
        let in_day = local_ms.rem_euclid(MS_PER_DAY);
        let hour = (in_day / MS_PER_HOUR) as usize;
        let slot = weekday * 24 + hour;
        let minute_of_hour = (in_day % MS_PER_HOUR) / MS_PER_MINUTE;
        let fraction = (minute_of_hour as f64 + 0.5) / 60.0;
        if fraction < 0.5 {
            SlotPosition {
                slot,
                a: (slot + SLOTS - 1) % SLOTS,
                b: slot,
                wb: fraction + 0.5,
            }
        } else {
            SlotPosition {
                slot,
                a: slot,
                b: (slot + 1) % SLOTS,
                wb: fraction - 0.5,
            }
        }
    }
}

/// Exponentially weighted sums per time-of-week slot: `[a, b, minutes]`.
#[derive(Debug, Clone)]
struct SlotTable(Box<[[f32; 3]; SLOTS]>);

impl SlotTable {
    fn new() -> SlotTable {
        SlotTable(Box::new([[0.0; 3]; SLOTS]))
    }

    fn learn(&mut self, slot: usize, a: f64, b: f64, decay: f32) {
        let cell = &mut self.0[slot];
        cell[0] = cell[0] * decay + a as f32;
        cell[1] = cell[1] * decay + b as f32;
        cell[2] = cell[2] * decay + 1.0;
    }

    fn ready(&self, position: SlotPosition) -> bool {
        self.0[position.a][2] >= SLOT_READY_MINUTES && self.0[position.b][2] >= SLOT_READY_MINUTES
    }

    /// `a / b`, interpolated.
    fn ratio(&self, position: SlotPosition) -> f64 {
        let ratio = |cell: [f32; 3]| f64::from(cell[0]) / f64::from(cell[1]).max(1e-9);
        (1.0 - position.wb) * ratio(self.0[position.a]) + position.wb * ratio(self.0[position.b])
    }

    /// `a` per minute, interpolated.
    fn rate_a(&self, position: SlotPosition) -> f64 {
        let per_minute = |cell: [f32; 3]| f64::from(cell[0]) / f64::from(cell[2]).max(1e-9);
        (1.0 - position.wb) * per_minute(self.0[position.a])
            + position.wb * per_minute(self.0[position.b])
    }
}

/// The per-minute counts of one series' last minutes.
#[derive(Debug, Clone)]
struct Ring {
    /// Per minute, oldest overwritten first: for a conversion series `[shoppers, shoppers who
    /// went on, expected drop-offs, events at the next stage]`; for a volume series
    /// `[events, 0, expected events, 0]`.
    cells: Box<[[f64; 4]]>,
    next: usize,
    filled: usize,
}

impl Ring {
    fn new(len: usize) -> Ring {
        Ring {
            cells: vec![[0.0; 4]; len.max(1)].into_boxed_slice(),
            next: 0,
            filled: 0,
        }
    }

    fn push(&mut self, cell: [f64; 4]) {
        self.cells[self.next] = cell;
        self.next = (self.next + 1) % self.cells.len();
        self.filled = (self.filled + 1).min(self.cells.len());
    }

    /// Sums of the last `k` minutes pushed.
    fn sums_last(&self, k: usize) -> [f64; 4] {
        let len = self.cells.len();
        let mut sums = [0.0; 4];
        for back in 1..=k.min(self.filled) {
            let cell = self.cells[(self.next + len - back) % len];
            for (sum, value) in sums.iter_mut().zip(cell) {
                *sum += value;
            }
        }
        sums
    }

    fn sums(&self) -> [f64; 4] {
        let mut sums = [0.0; 4];
        for cell in &self.cells[..] {
            for (sum, value) in sums.iter_mut().zip(cell) {
                *sum += value;
            }
        }
        sums
    }
}

/// Evidence since the more sensitive CUSUM last stood at zero: the span an alert describes.
#[derive(Debug, Clone, Copy, Default)]
struct Span {
    onset: Minute,
    minutes: f64,
    n: f64,
    x: f64,
    expected: f64,
}

impl Span {
    fn add(&mut self, minute: Minute, n: f64, x: f64, expected: f64, statistic_was_zero: bool) {
        if statistic_was_zero {
            *self = Span {
                onset: minute,
                ..Span::default()
            };
        }
        self.minutes += 1.0;
        self.n += n;
        self.x += x;
        self.expected += expected;
    }
}

#[derive(Debug, Clone, Copy)]
struct OpenAlert {
    id: u64,
    severity: Severity,
    kind: AlertKind,
    /// Index of the stage named in the alert.
    stage: usize,
    direction: Direction,
    /// A segment alarm while the same series of the funnel as a whole is alerting: tracked,
    /// not announced.
    covered: bool,
    /// Minutes in a row the series has looked normal.
    calm: u32,
    enhanced_run: u8,
}

/// Running estimate of a between-window variance, from aligned windows.
#[derive(Debug, Clone, Copy, Default)]
struct Overdispersion {
    value: f64,
    n_windows: u32,
    /// Sums of the window being gathered: `[n, x, expected]`.
    window: [f64; 3],
}

impl Overdispersion {
    /// Memory of the estimate: about a week of windows, a running mean before that.
    fn update(&mut self, sample: f64, memory_windows: f64) {
        self.n_windows = self.n_windows.saturating_add(1);
        let weight = (1.0 / f64::from(self.n_windows)).max(1.0 / memory_windows);
        self.value += weight * (sample - self.value);
    }

    fn get(&self) -> f64 {
        self.value.max(0.0)
    }
}

/// Drop-off of shoppers from one stage to the next, for one segment.
#[derive(Debug, Clone)]
struct ConversionSeries {
    /// `[shoppers at the stage, shoppers who went on, minutes]` per slot.
    slots: SlotTable,
    /// Series-wide sums, exponentially weighted over the same memory: the shrinkage target.
    total_n: f64,
    total_x: f64,
    first_minute: Option<Minute>,
    tau2: Overdispersion,
    trailing: Ring,
    up_p2: Cusum,
    up_p1: Cusum,
    down: Cusum,
    /// Evidence since each CUSUM last stood at zero: P2's and P1's.
    span: Span,
    span_p1: Span,
    alert: Option<OpenAlert>,
    /// Alarmed minutes in a row that looked like missing events rather than leaving shoppers.
    missing_events_run: u32,
    improved: bool,
    status: SeriesStatus,
    /// Exponentially weighted lost conversions and shoppers, for drill-down.
    lost: f64,
    traffic: f64,
    last: MinuteJudgement,
}

/// What one minute showed a series.
#[derive(Debug, Clone, Copy, Default)]
struct MinuteJudgement {
    alarm_p2: bool,
    alarm_p1: bool,
    /// Drop-off of the trailing window in σ above baseline.
    window_sigma: Option<f64>,
    /// Drop-off of the last few minutes (half a window, at least two), in σ of that span: what
    /// enhanced monitoring watches.
    short_sigma: Option<f64>,
    /// Whether the trailing window holds enough shoppers for its normal approximation.
    window_is_large: bool,
    baseline: Option<f64>,
    window_sd: Option<f64>,
    expected_n: Option<f64>,
}

impl MinuteJudgement {
    /// Whether the trailing window is so far above baseline that no budgeted false alarm
    /// explains it. (Windows shorter than the configured one have heavier tails than their
    /// normal approximation: minutes trade shoppers at their edges.)
    fn beyond_shewhart(&self, sigma: f64) -> bool {
        self.window_is_large && self.window_sigma.is_some_and(|z| z > sigma)
    }
}

struct Baseline {
    /// Drop-off rate expected this minute.
    p0: f64,
    /// Variance of that estimate.
    variance: f64,
    /// Shoppers expected per minute.
    expected_n: f64,
}

impl ConversionSeries {
    fn new(window_minutes: usize) -> ConversionSeries {
        ConversionSeries {
            slots: SlotTable::new(),
            total_n: 0.0,
            total_x: 0.0,
            first_minute: None,
            tau2: Overdispersion::default(),
            trailing: Ring::new(window_minutes),
            up_p2: Cusum::default(),
            up_p1: Cusum::default(),
            down: Cusum::default(),
            span: Span::default(),
            span_p1: Span::default(),
            alert: None,
            missing_events_run: 0,
            improved: false,
            status: SeriesStatus::Learning,
            lost: 0.0,
            traffic: 0.0,
            last: MinuteJudgement::default(),
        }
    }

    fn baseline(&self, position: SlotPosition) -> Option<Baseline> {
        if !self.slots.ready(position) || self.total_n <= 0.0 {
            return None;
        }
        let overall = self.total_x / self.total_n;
        let conversion_of = |slot: usize| {
            let cell = self.slots.0[slot];
            (f64::from(cell[1]) + SHRINK_SHOPPERS * overall)
                / (f64::from(cell[0]) + SHRINK_SHOPPERS)
        };
        let conversion = (1.0 - position.wb) * conversion_of(position.a)
            + position.wb * conversion_of(position.b);
        let weight = (1.0 - position.wb) * f64::from(self.slots.0[position.a][0])
            + position.wb * f64::from(self.slots.0[position.b][0]);
        let p0 = (1.0 - conversion).clamp(0.0, 1.0);
        Some(Baseline {
            p0,
            variance: p0 * (1.0 - p0) / (weight + SHRINK_SHOPPERS),
            expected_n: self.slots.rate_a(position),
        })
    }

    /// Takes one minute: `n` shoppers at the stage, `x` of them went on (`next_raw` events at the
    /// next stage, which may exceed `n`).
    fn observe(
        &mut self,
        minute: Minute,
        n: f64,
        x: f64,
        next_raw: f64,
        context: &MinuteContext,
    ) -> MinuteJudgement {
        // A series starts with its first shopper: minutes before a shop sent anything are
        // not a baseline of zero.
        if self.first_minute.is_none() && n == 0.0 {
            return MinuteJudgement::default();
        }
        let first = *self.first_minute.get_or_insert(minute);
        let settings = context.settings;
        let window = settings.window_minutes as f64;
        let learned_long_enough = minute.0 - first.0 >= settings.learning_minutes;
        let baseline = self.baseline(context.position);
        let mut judgement = MinuteJudgement::default();
        let thresholds = context.thresholds;
        if let Some(base) = &baseline {
            let p0 = base.p0;
            let tau2 = self.tau2.get() + base.variance;
            let window_sd = stats::overdispersed_sd(p0, base.expected_n * window, tau2);
            judgement.baseline = Some(p0);
            judgement.window_sd = Some(window_sd);
            judgement.expected_n = Some(base.expected_n);
            if n > 0.0 {
                self.lost = self.lost * context.drill_down_decay + (n - x) - n * p0;
                self.traffic = self.traffic * context.drill_down_decay + n;
            } else {
                self.lost *= context.drill_down_decay;
                self.traffic *= context.drill_down_decay;
            }
            self.trailing.push([n, x, n * p0, next_raw]);
            let sigma_of = |[tn, tx, texpected, _]: [f64; 4]| {
                (tn > 0.0).then(|| {
                    let sd = stats::overdispersed_sd(texpected / tn, tn, tau2);
                    ((tn - tx) - texpected) / tn / sd
                })
            };
            let trailing = self.trailing.sums();
            judgement.window_sigma = sigma_of(trailing);
            judgement.window_is_large = trailing[0] * p0 * (1.0 - p0) >= SHEWHART_COUNT_MIN;
            let short = (self.trailing.cells.len().div_ceil(2)).max(2);
            judgement.short_sigma = sigma_of(self.trailing.sums_last(short));
            self.status = if !learned_long_enough {
                SeriesStatus::Learning
            } else if !(DEGENERATE_RATE..=1.0 - DEGENERATE_RATE).contains(&p0) {
                SeriesStatus::Degenerate
            } else if base.expected_n * window < f64::from(settings.min_shoppers) {
                SeriesStatus::TooFewShoppers
            } else {
                SeriesStatus::Normal
            };
            if self.status == SeriesStatus::Normal && context.surging {
                self.status = SeriesStatus::Surge;
                // The new shoppers of a surge convert differently: only a collapse far beyond
                // that stops the line.
                judgement.alarm_p1 =
                    judgement.beyond_shewhart(SURGE_SHEWHART_FACTOR * thresholds.shewhart_sigma);
            }
            if self.status == SeriesStatus::Normal && n > 0.0 {
                let dropped = n - x;
                let binomial = p0 * (1.0 - p0) / n;
                // Variance of this minute's rate over the binomial's: the between-window
                // variation is shared by the minutes of a window, so it counts in full.
                let inflation = (binomial + window * tau2) / binomial;
                let llr = |shift: f64| {
                    let p1 = (p0 + shift).clamp(DEGENERATE_RATE / 2.0, 1.0 - DEGENERATE_RATE / 2.0);
                    stats::binomial_llr(n, dropped, p0, p1, inflation)
                };
                let was_zero = self.up_p2.statistic == 0.0;
                let was_zero_p1 = self.up_p1.statistic == 0.0;
                let (h2, h1) = (thresholds.conversion_p2, thresholds.conversion_p1);
                let alarm_p2 = self.up_p2.update(llr(SIGMA_P2 * window_sd), h2);
                let mut alarm_p1 = self.up_p1.update(llr(SIGMA_P1 * window_sd), h1);
                // A window far beyond any budgeted false alarm stops the line at once, where the
                // counts are large enough for its normal approximation.
                if judgement.beyond_shewhart(thresholds.shewhart_sigma) {
                    alarm_p1 = true;
                }
                if self.up_p2.statistic > 0.0 {
                    self.span.add(minute, n, x, n * p0, was_zero);
                }
                if self.up_p1.statistic > 0.0 {
                    self.span_p1.add(minute, n, x, n * p0, was_zero_p1);
                }
                if self.down.update(llr(-SIGMA_P2 * window_sd), h2) {
                    self.improved = true;
                    self.down.reset();
                }
                if judgement.window_sigma.is_some_and(|z| z > -SIGMA_P2) {
                    self.improved = false;
                }
                judgement.alarm_p2 = alarm_p2;
                judgement.alarm_p1 = alarm_p1;
            }
        }
        let suspicious = self.alert.is_some()
            || self.up_p2.statistic > LEARNING_EXCLUSION_SHARE * thresholds.conversion_p2;
        if context.learnable && !suspicious {
            self.learn(minute, n, x, &baseline, context);
        }
        if let Some(alert) = self.alert {
            self.status = SeriesStatus::Alerting(alert.severity);
        } else if self.improved && self.status == SeriesStatus::Normal {
            self.status = SeriesStatus::Improved;
        }
        self.last = judgement;
        judgement
    }

    fn learn(
        &mut self,
        minute: Minute,
        n: f64,
        x: f64,
        baseline: &Option<Baseline>,
        context: &MinuteContext,
    ) {
        self.slots
            .learn(context.position.slot, n, x, context.slot_decay);
        self.total_n = self.total_n * context.total_decay + n;
        self.total_x = self.total_x * context.total_decay + x;
        let window = context.settings.window_minutes as i64;
        let Some(base) = baseline else { return };
        let gathered = &mut self.tau2.window;
        gathered[0] += n;
        gathered[1] += x;
        gathered[2] += n * base.p0;
        if (minute.0 + 1).rem_euclid(window) == 0 {
            let [wn, wx, wexpected] = std::mem::take(gathered);
            if wn >= 10.0 {
                let p0 = wexpected / wn;
                let binomial = p0 * (1.0 - p0) / wn;
                let residual = (wn - wx) / wn - p0;
                let cap = 25.0 * (binomial + self.tau2.get());
                let sample = (residual * residual).min(cap) - binomial;
                self.tau2
                    .update(sample, context.overdispersion_memory_windows);
            }
        }
    }

    fn reset_after_alert(&mut self) {
        self.up_p2.reset();
        self.up_p1.reset();
        self.down.reset();
        self.alert = None;
    }
}

/// Events at the funnel's first stage. For the funnel as a whole, against the seasonal
/// expectation; for a segment, against its seasonal share of the whole funnel's entries this
/// minute, so that traffic swings every segment shares (a busy hour) do not count against
/// each segment.
#[derive(Debug, Clone)]
struct VolumeSeries {
    /// `[events, events of the whole funnel, minutes]` per slot.
    slots: SlotTable,
    first_minute: Option<Minute>,
    phi: Overdispersion,
    trailing: Ring,
    collapse: Cusum,
    surge: Cusum,
    span: Span,
    alert: Option<OpenAlert>,
    lost: f64,
    traffic: f64,
    last: VolumeJudgement,
}

#[derive(Debug, Clone, Copy, Default)]
struct VolumeJudgement {
    collapse: bool,
    surge: bool,
    window_sigma: Option<f64>,
    expected: Option<f64>,
}

impl VolumeSeries {
    fn new() -> VolumeSeries {
        VolumeSeries {
            slots: SlotTable::new(),
            first_minute: None,
            phi: Overdispersion::default(),
            trailing: Ring::new(VOLUME_PERSISTENCE_MINUTES),
            collapse: Cusum::default(),
            surge: Cusum::default(),
            span: Span::default(),
            alert: None,
            lost: 0.0,
            traffic: 0.0,
            last: VolumeJudgement::default(),
        }
    }

    /// `whole` is the whole funnel's count this minute, for a segment's series.
    fn observe(
        &mut self,
        minute: Minute,
        count: f64,
        whole: Option<f64>,
        context: &MinuteContext,
    ) -> VolumeJudgement {
        if self.first_minute.is_none() && count == 0.0 {
            return VolumeJudgement::default();
        }
        let first = *self.first_minute.get_or_insert(minute);
        let settings = context.settings;
        let persistence = VOLUME_PERSISTENCE_MINUTES as f64;
        let mut judgement = VolumeJudgement::default();
        let ready =
            self.slots.ready(context.position) && minute.0 - first.0 >= settings.learning_minutes;
        let expected = self.slots.ready(context.position).then(|| match whole {
            None => self.slots.rate_a(context.position),
            Some(whole) => self.slots.ratio(context.position) * whole,
        });
        if let Some(lambda) = expected {
            judgement.expected = Some(lambda);
            self.lost = self.lost * context.drill_down_decay + (lambda - count);
            self.traffic = self.traffic * context.drill_down_decay + lambda;
            self.trailing.push([count, 0.0, lambda, 0.0]);
            let [tc, _, texpected, _] = self.trailing.sums();
            let phi = self.phi.get();
            let window_sd = (texpected + phi * texpected * texpected).sqrt();
            if texpected > 0.0 {
                judgement.window_sigma = Some((texpected - tc) / window_sd);
            }
            let judged = ready
                && lambda * settings.window_minutes as f64 >= f64::from(settings.min_shoppers);
            if judged {
                // Per-minute variance, with the between-window part counted as lasting the
                // whole persistence window.
                let variance = lambda + persistence * phi * lambda * lambda;
                let rate_sd = (variance / persistence).sqrt();
                let shift = (SIGMA_P2 * rate_sd).max(VOLUME_MIN_CHANGE * lambda);
                let was_zero = self.collapse.statistic == 0.0 && self.surge.statistic == 0.0;
                let h = context.thresholds.volume;
                judgement.collapse = self
                    .collapse
                    .update(stats::gaussian_llr(count, lambda, -shift, variance), h);
                judgement.surge = self
                    .surge
                    .update(stats::gaussian_llr(count, lambda, shift, variance), h);
                if self.collapse.statistic > 0.0 || self.surge.statistic > 0.0 {
                    self.span.add(minute, count, 0.0, lambda, was_zero);
                }
            }
        }
        let suspicious = self.alert.is_some()
            || self.collapse.statistic.max(self.surge.statistic)
                > LEARNING_EXCLUSION_SHARE * context.thresholds.volume;
        if context.learnable && !suspicious {
            self.slots.learn(
                context.position.slot,
                count,
                whole.unwrap_or(0.0),
                context.slot_decay,
            );
            if let Some(lambda) = expected {
                let gathered = &mut self.phi.window;
                gathered[0] += count;
                gathered[2] += lambda;
                if (minute.0 + 1).rem_euclid(VOLUME_PERSISTENCE_MINUTES as i64) == 0 {
                    let [wc, _, wexpected] = std::mem::take(gathered);
                    if wexpected >= 10.0 {
                        let residual = wc - wexpected;
                        let cap = 25.0 * (wexpected + self.phi.get() * wexpected * wexpected);
                        let sample =
                            ((residual * residual).min(cap) - wexpected) / (wexpected * wexpected);
                        self.phi
                            .update(sample, context.overdispersion_memory_windows / 3.0);
                    }
                }
            }
        }
        self.last = judgement;
        judgement
    }
}

/// One funnel as a whole, or one segment of it.
#[derive(Debug, Clone)]
struct SegmentState {
    /// `None` for the funnel as a whole; otherwise (dimension index, value).
    key: Option<(usize, String)>,
    /// Events per stage in the minute being gathered.
    pending: Vec<f64>,
    conversions: Vec<ConversionSeries>,
    volume: VolumeSeries,
}

#[derive(Debug, Clone)]
struct FunnelState {
    id: String,
    stage_ids: Vec<String>,
    time_zone: jiff::tz::TimeZone,
    /// Masked periods, as UTC millisecond ranges.
    masks: Vec<(i64, i64)>,
    /// Index 0 is the funnel as a whole.
    segments: Vec<SegmentState>,
    /// Per dimension: value → index in `segments`.
    index: Vec<HashMap<String, usize>>,
    thresholds: Thresholds,
    segment_thresholds: Thresholds,
    thresholds_for_segments: usize,
}

/// CUSUM thresholds for one funnel, from its false-alarm budgets.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Thresholds {
    pub conversion_p2: f64,
    pub conversion_p1: f64,
    /// Deviation of the trailing window, in σ, that raises a P1 on its own.
    pub shewhart_sigma: f64,
    pub volume: f64,
    /// The in-control average run lengths, in minutes, they were set for.
    pub arl0_p2_minutes: f64,
    pub arl0_p1_minutes: f64,
}

#[derive(Debug, Clone, Copy)]
struct Settings {
    window_minutes: usize,
    settle_ms: i64,
    learning_minutes: i64,
    min_shoppers: u32,
    close_after_minutes: u32,
    false_p1_minutes: f64,
    false_p2_minutes: f64,
    watch_segments: bool,
}

/// What every series of a funnel shares in one minute.
struct MinuteContext<'a> {
    settings: &'a Settings,
    thresholds: Thresholds,
    position: SlotPosition,
    learnable: bool,
    /// The funnel as a whole has an open traffic-surge alert.
    surging: bool,
    slot_decay: f32,
    total_decay: f64,
    drill_down_decay: f64,
    overdispersion_memory_windows: f64,
}

/// The anomaly detector of every funnel of a config. Cloning it snapshots its whole state.
#[derive(Debug, Clone)]
pub struct Detector {
    settings: Settings,
    dimension_names: Vec<String>,
    funnels: Vec<FunnelState>,
    slot_decay: f32,
    total_decay: f64,
    /// The next minute to judge; `None` before the first.
    next_minute: Option<Minute>,
    segments_dropped: u64,
}

impl Detector {
    pub fn new(config: &Config) -> Detector {
        let detection = &config.detection;
        let minutes = |ms: i64| ms / MS_PER_MINUTE;
        let settings = Settings {
            window_minutes: minutes(detection.window.millis()).max(1) as usize,
            settle_ms: detection.settle.millis(),
            learning_minutes: minutes(detection.learning.millis()),
            min_shoppers: detection.min_shoppers,
            close_after_minutes: minutes(detection.close_after.millis()).max(1) as u32,
            false_p1_minutes: minutes(detection.false_p1_every.millis()).max(1) as f64,
            false_p2_minutes: minutes(detection.false_p2_every.millis()).max(1) as f64,
            watch_segments: detection.segments && !config.dimensions.is_empty(),
        };
        let slot_minutes_remembered = 60.0 * f64::from(detection.baseline_weeks);
        let funnels = config
            .funnels
            .iter()
            .map(|funnel| {
                let time_zone =
                    jiff::tz::TimeZone::get(&funnel.time_zone).unwrap_or(jiff::tz::TimeZone::UTC);
                let masks = detection
                    .masks
                    .iter()
                    .filter(|mask| mask.funnel.as_ref().is_none_or(|id| *id == funnel.id))
                    .filter_map(|mask| {
                        let from = time_zone
                            .to_ambiguous_timestamp(mask.from)
                            .compatible()
                            .ok()?;
                        let to = time_zone
                            .to_ambiguous_timestamp(mask.to)
                            .compatible()
                            .ok()?;
                        Some((from.as_millisecond(), to.as_millisecond()))
                    })
                    .collect();
                let n_stages = funnel.stages.len();
                let mut state = FunnelState {
                    id: funnel.id.clone(),
                    stage_ids: funnel.stages.iter().map(|s| s.id.clone()).collect(),
                    time_zone,
                    masks,
                    segments: Vec::new(),
                    index: vec![HashMap::new(); config.dimensions.len()],
                    thresholds: Thresholds::default(),
                    segment_thresholds: Thresholds::default(),
                    thresholds_for_segments: usize::MAX,
                };
                state
                    .segments
                    .push(SegmentState::new(None, n_stages, &settings));
                state
            })
            .collect();
        let mut detector = Detector {
            settings,
            dimension_names: config.dimensions.iter().map(|d| d.name.clone()).collect(),
            funnels,
            slot_decay: (1.0 - 1.0 / slot_minutes_remembered) as f32,
            total_decay: 1.0 - 1.0 / (slot_minutes_remembered * SLOTS as f64),
            next_minute: None,
            segments_dropped: 0,
        };
        for funnel in 0..detector.funnels.len() {
            detector.refresh_thresholds(funnel);
        }
        detector
    }

    /// The index of a segment of a funnel (`None` = the funnel as a whole), registering it on
    /// first sight. `None` when it is not watched: unknown funnel or dimension, segments off,
    /// or the funnel already watches [`SEGMENTS_PER_FUNNEL_MAX`] segments.
    pub fn segment(&mut self, funnel: usize, segment: Option<(&str, &str)>) -> Option<usize> {
        let settings = self.settings;
        let state = self.funnels.get_mut(funnel)?;
        let Some((dimension, value)) = segment else {
            return Some(0);
        };
        if !settings.watch_segments {
            return None;
        }
        let dimension = self.dimension_names.iter().position(|d| d == dimension)?;
        if let Some(&index) = state.index[dimension].get(value) {
            return Some(index);
        }
        if state.segments.len() > SEGMENTS_PER_FUNNEL_MAX {
            self.segments_dropped += 1;
            return None;
        }
        let index = state.segments.len();
        state.segments.push(SegmentState::new(
            Some((dimension, value.to_owned())),
            state.stage_ids.len(),
            &settings,
        ));
        state.index[dimension].insert(value.to_owned(), index);
        Some(index)
    }

    /// Adds events of one stage of one segment to the minute being gathered.
    pub fn record(&mut self, funnel: usize, segment: usize, stage: usize, n_events: i64) {
        if let Some(slot) = self
            .funnels
            .get_mut(funnel)
            .and_then(|f| f.segments.get_mut(segment))
            .and_then(|s| s.pending.get_mut(stage))
        {
            *slot += n_events.max(0) as f64;
        }
    }

    /// The next minute to judge.
    pub fn next_minute(&self) -> Option<Minute> {
        self.next_minute
    }

    /// When the next minute is due: its end plus the settle time. `None` before any minute.
    pub fn wake_at(&self) -> Option<Timestamp> {
        self.next_minute
            .map(|m| Timestamp(m.start().0 + MS_PER_MINUTE + self.settings.settle_ms))
    }

    /// The window deviations are measured on, in minutes.
    pub fn window_minutes(&self) -> usize {
        self.settings.window_minutes
    }

    /// How long after a minute ends it may be judged.
    pub fn settle_ms(&self) -> i64 {
        self.settings.settle_ms
    }

    /// Segments not watched because a funnel reached [`SEGMENTS_PER_FUNNEL_MAX`].
    pub fn segments_dropped(&self) -> u64 {
        self.segments_dropped
    }

    pub fn thresholds(&self, funnel: usize) -> Option<Thresholds> {
        self.funnels.get(funnel).map(|f| f.thresholds)
    }

    /// Judges `minute` with the counts recorded since the last call, appending what happened
    /// to `events`. Minutes must come in order; a minute before the next one due is ignored
    /// (its counts are dropped), and minutes skipped over are judged as having no events.
    pub fn close_minute(&mut self, minute: Minute, events: &mut Vec<AlertEvent>) {
        let next = self.next_minute.unwrap_or(minute);
        if minute < next {
            for funnel in &mut self.funnels {
                for segment in &mut funnel.segments {
                    segment.pending.iter_mut().for_each(|n| *n = 0.0);
                }
            }
            return;
        }
        // A long gap (a shop closed for a week) is not replayed minute by minute.
        let gap_start = Minute(next.0.max(minute.0 - 7 * 24 * 60));
        // Skipped minutes had no events; the counts gathered belong to `minute`.
        for skipped in gap_start.0..minute.0 {
            for funnel in 0..self.funnels.len() {
                self.judge(funnel, Minute(skipped), false, events);
            }
        }
        for funnel in 0..self.funnels.len() {
            self.judge(funnel, minute, true, events);
        }
        self.next_minute = Some(Minute(minute.0 + 1));
    }

    fn refresh_thresholds(&mut self, funnel: usize) {
        let settings = self.settings;
        let state = &mut self.funnels[funnel];
        let n_segments = state.segments.len() - 1;
        if n_segments == state.thresholds_for_segments {
            return;
        }
        state.thresholds_for_segments = n_segments;
        // Series of one segment: a conversion series per step, and volume collapse and surge.
        let per_segment = (state.stage_ids.len() - 1 + 2) as f64;
        let (share, n_series) = if settings.watch_segments {
            (AGGREGATE_BUDGET_SHARE, per_segment)
        } else {
            (1.0, per_segment)
        };
        // The aggregate's series get `share` of the budget; so do the segments', spread over
        // however many segments there are. The thresholds below are for the stricter of the
        // two, the segments', when there are any: the aggregate's are then lower.
        let arl0 = |every_minutes: f64, series: f64, share: f64| every_minutes * series / share;
        let segment_series = (n_segments.max(1)) as f64 * per_segment;
        let p2_agg = arl0(settings.false_p2_minutes, n_series, share);
        let p1_agg = arl0(settings.false_p1_minutes, n_series, share);
        let p2_seg = arl0(settings.false_p2_minutes, segment_series, 1.0 - share);
        let p1_seg = arl0(settings.false_p1_minutes, segment_series, 1.0 - share);
        let window = settings.window_minutes as f64;
        let delta_p2 = SIGMA_P2 / window.sqrt();
        let delta_p1 = SIGMA_P1 / window.sqrt();
        let volume_threshold = |arl0: f64| {
            VOLUME_DELTAS
                .iter()
                .map(|&delta| stats::llr_cusum_threshold(delta, arl0))
                .fold(0.0, f64::max)
        };
        let shewhart = |arl0: f64| stats::normal_upper_quantile(1.0 / arl0).max(SHEWHART_SIGMA_MIN);
        state.thresholds = Thresholds {
            conversion_p2: stats::llr_cusum_threshold(delta_p2, p2_agg),
            conversion_p1: stats::llr_cusum_threshold(delta_p1, p1_agg),
            shewhart_sigma: shewhart(p1_agg),
            volume: volume_threshold(p2_agg),
            arl0_p2_minutes: p2_agg,
            arl0_p1_minutes: p1_agg,
        };
        let segment_thresholds = Thresholds {
            conversion_p2: stats::llr_cusum_threshold(delta_p2, p2_seg),
            conversion_p1: stats::llr_cusum_threshold(delta_p1, p1_seg),
            shewhart_sigma: shewhart(p1_seg),
            volume: volume_threshold(p2_seg),
            arl0_p2_minutes: p2_seg,
            arl0_p1_minutes: p1_seg,
        };
        state.segment_thresholds = segment_thresholds;
    }

    fn judge(
        &mut self,
        funnel: usize,
        minute: Minute,
        with_counts: bool,
        events: &mut Vec<AlertEvent>,
    ) {
        self.refresh_thresholds(funnel);
        let settings = self.settings;
        let start_ms = minute.start().0;
        let state = &mut self.funnels[funnel];
        let offset_ms = jiff::Timestamp::from_millisecond(start_ms).map_or(0, |instant| {
            i64::from(state.time_zone.to_offset(instant).seconds()) * 1_000
        });
        let position = SlotPosition::of(start_ms + offset_ms);
        let surging = state.segments[0]
            .volume
            .alert
            .is_some_and(|a| a.direction == Direction::Surge);
        let learnable = !surging
            && !state
                .masks
                .iter()
                .any(|&(from, to)| (from..to).contains(&start_ms));
        let memory_windows = 7.0 * 24.0 * 60.0 / settings.window_minutes as f64;
        let context_for = |thresholds: Thresholds| MinuteContext {
            settings: &settings,
            thresholds,
            position,
            learnable,
            surging,
            slot_decay: self.slot_decay,
            total_decay: self.total_decay,
            drill_down_decay: 1.0 - 1.0 / DRILL_DOWN_MEMORY_MINUTES,
            overdispersion_memory_windows: memory_windows,
        };
        let aggregate_context = context_for(state.thresholds);
        let segment_context = context_for(state.segment_thresholds);
        let n_stages = state.stage_ids.len();
        let counts_whole_entry = if with_counts {
            state.segments[0].pending[0]
        } else {
            0.0
        };
        for (index, segment) in state.segments.iter_mut().enumerate() {
            let context = if index == 0 {
                &aggregate_context
            } else {
                &segment_context
            };
            let pending = &segment.pending;
            let count = |stage: usize| if with_counts { pending[stage] } else { 0.0 };
            for stage in 0..n_stages - 1 {
                let n = count(stage);
                let next = count(stage + 1);
                segment.conversions[stage].observe(minute, n, next.min(n), next, context);
            }
            let whole = (index > 0).then_some(counts_whole_entry);
            segment.volume.observe(minute, count(0), whole, context);
            if with_counts {
                segment.pending.iter_mut().for_each(|n| *n = 0.0);
            }
        }
        let at = Timestamp(start_ms + MS_PER_MINUTE);
        let mut decisions = Vec::new();
        for index in 0..state.segments.len() {
            for stage in 0..n_stages - 1 {
                if let Some(decision) = decide_conversion(state, index, stage, &settings, minute) {
                    decisions.push(decision);
                }
            }
            if let Some(decision) = decide_volume(state, index, &settings, minute) {
                decisions.push(decision);
            }
        }
        for decision in decisions {
            events.push(describe(
                state,
                &self.dimension_names,
                decision,
                at,
                &settings,
            ));
        }
    }

    /// The time-of-week baseline of one conversion series: `stage` is the index of the stage
    /// whose shoppers drop off.
    pub fn baseline(
        &self,
        funnel: usize,
        segment: Option<(&str, &str)>,
        stage: usize,
    ) -> Option<Vec<SlotBaseline>> {
        let state = self.funnels.get(funnel)?;
        let index = self.find_segment(state, segment)?;
        let series = state.segments[index].conversions.get(stage)?;
        Some(
            series
                .slots
                .0
                .iter()
                .enumerate()
                .map(|(slot, cell)| {
                    let has_history = cell[2] > 0.0 && cell[0] > 0.0;
                    SlotBaseline {
                        weekday: (slot / 24) as u8,
                        hour: (slot % 24) as u8,
                        drop_off_rate: has_history
                            .then(|| 1.0 - f64::from(cell[1]) / f64::from(cell[0])),
                        shoppers_per_minute: (cell[2] > 0.0)
                            .then(|| f64::from(cell[0]) / f64::from(cell[2])),
                        weight: f64::from(cell[2]),
                    }
                })
                .collect(),
        )
    }

    /// How far the drop-off from `stage` was from its baseline over the last judged window, in
    /// σ (positive: worse); `None` where the series is unknown or was not judged. What an
    /// incident's trend is made of.
    pub fn window_sigma(
        &self,
        funnel: &str,
        segment: Option<(&str, &str)>,
        stage: &str,
    ) -> Option<f64> {
        let state = self.funnels.get(self.funnel_index(funnel)?)?;
        let index = self.find_segment(state, segment)?;
        let stage = state.stage_ids.iter().position(|id| id == stage)?;
        state.segments[index]
            .conversions
            .get(stage)?
            .last
            .window_sigma
    }

    /// The state of every conversion series of a funnel now: the funnel as a whole first.
    pub fn report(&self, funnel: usize) -> Vec<SeriesReport> {
        let Some(state) = self.funnels.get(funnel) else {
            return Vec::new();
        };
        let mut reports = Vec::new();
        for (index, segment) in state.segments.iter().enumerate() {
            let thresholds = if index == 0 {
                state.thresholds
            } else {
                state.segment_thresholds
            };
            for (stage, series) in segment.conversions.iter().enumerate() {
                let last = series.last;
                reports.push(SeriesReport {
                    stage: state.stage_ids[stage].clone(),
                    next_stage: state.stage_ids[stage + 1].clone(),
                    segment: self.segment_name(segment),
                    status: series.status,
                    baseline_drop_off: last.baseline,
                    window_drop_off: series.trailing_drop_off(),
                    window_sd: last.window_sd,
                    window_sigma: last.window_sigma,
                    expected_shoppers_per_minute: last.expected_n,
                    overdispersion: series.tau2.get(),
                    cusum_p2: series.up_p2.statistic,
                    threshold_p2: thresholds.conversion_p2,
                    cusum_p1: series.up_p1.statistic,
                    threshold_p1: thresholds.conversion_p1,
                });
            }
        }
        reports
    }

    pub fn funnel_index(&self, id: &str) -> Option<usize> {
        self.funnels.iter().position(|f| f.id == id)
    }

    fn find_segment(&self, state: &FunnelState, segment: Option<(&str, &str)>) -> Option<usize> {
        match segment {
            None => Some(0),
            Some((dimension, value)) => {
                let dimension = self.dimension_names.iter().position(|d| d == dimension)?;
                state.index[dimension].get(value).copied()
            }
        }
    }

    fn segment_name(&self, segment: &SegmentState) -> Option<(String, String)> {
        segment
            .key
            .as_ref()
            .map(|(dimension, value)| (self.dimension_names[*dimension].clone(), value.clone()))
    }
}

impl ConversionSeries {
    /// The span an alert of this severity describes: since the CUSUM that raised it last stood
    /// at zero (the P1 one changes its mind about the onset less often).
    fn evidence(&self, severity: Severity) -> Span {
        if severity == Severity::P1 && self.span_p1.minutes > 0.0 {
            self.span_p1
        } else {
            self.span
        }
    }

    fn trailing_drop_off(&self) -> Option<f64> {
        let [n, x, _, _] = self.trailing.sums();
        (n > 0.0).then(|| 1.0 - x / n)
    }
}

impl SegmentState {
    fn new(key: Option<(usize, String)>, n_stages: usize, settings: &Settings) -> SegmentState {
        SegmentState {
            key,
            pending: vec![0.0; n_stages],
            conversions: (0..n_stages - 1)
                .map(|_| ConversionSeries::new(settings.window_minutes))
                .collect(),
            volume: VolumeSeries::new(),
        }
    }
}

/// A change of an alert's state, to be described as an [`AlertEvent`].
struct Decision {
    segment: usize,
    /// The series: `Some(step)` for a conversion series, `None` for entry volume.
    step: Option<usize>,
    alert: OpenAlert,
    event: AlertEventKind,
    span: Span,
}

fn decide_conversion(
    state: &mut FunnelState,
    index: usize,
    step: usize,
    settings: &Settings,
    minute: Minute,
) -> Option<Decision> {
    let aggregate = &state.segments[0].conversions[step];
    let aggregate_alerting = index != 0 && aggregate.alert.is_some_and(|a| !a.covered);
    // The whole funnel has alarmed on this step but not yet decided what it is: a segment
    // waits for it rather than announcing part of the same incident first.
    let aggregate_deciding = index != 0
        && aggregate.alert.is_none()
        && (aggregate.last.alarm_p2 || aggregate.last.alarm_p1);
    let series = &mut state.segments[index].conversions[step];
    let judgement = series.last;
    match series.alert {
        None => {
            if !(judgement.alarm_p2 || judgement.alarm_p1) || aggregate_deciding {
                series.missing_events_run = 0;
                return None;
            }
            // Missing events and leaving shoppers look alike until the shoppers who were already
            // on their way have had time to reach the stage after: call it missing events only
            // once it has looked like that for a whole window of alarmed minutes.
            let pixel = looks_like_missing_events(&state.segments[index].conversions, step);
            let (kind, stage) = if pixel {
                (AlertKind::Volume, step + 1)
            } else {
                (AlertKind::Conversion, step)
            };
            let id = alert_id(state, index, stage, kind, minute);
            let series = &mut state.segments[index].conversions[step];
            if pixel {
                series.missing_events_run += 1;
                if (series.missing_events_run as usize) < settings.window_minutes {
                    return None;
                }
            }
            series.missing_events_run = 0;
            let alert = OpenAlert {
                id,
                severity: if judgement.alarm_p1 {
                    Severity::P1
                } else {
                    Severity::P2
                },
                kind,
                stage,
                direction: Direction::Worse,
                covered: aggregate_alerting,
                calm: 0,
                enhanced_run: 0,
            };
            series.alert = Some(alert);
            series.status = SeriesStatus::Alerting(alert.severity);
            (!alert.covered).then_some(Decision {
                segment: index,
                step: Some(step),
                alert,
                event: AlertEventKind::Opened,
                span: series.evidence(alert.severity),
            })
        }
        Some(mut alert) => {
            alert.enhanced_run = if judgement.short_sigma.is_some_and(|z| z > ENHANCED_SIGMA) {
                alert.enhanced_run.saturating_add(1)
            } else {
                0
            };
            let calm = judgement.window_sigma.is_none_or(|z| z < SIGMA_P2);
            alert.calm = if calm { alert.calm + 1 } else { 0 };
            let mut decision = None;
            if alert.calm >= settings.close_after_minutes {
                let span = closing_span(series);
                series.reset_after_alert();
                series.status = SeriesStatus::Normal;
                return (!alert.covered).then_some(Decision {
                    segment: index,
                    step: Some(step),
                    alert,
                    event: AlertEventKind::Closed,
                    span,
                });
            }
            if alert.severity == Severity::P2
                && (judgement.alarm_p1 || alert.enhanced_run >= ENHANCED_RUN)
            {
                alert.severity = Severity::P1;
                decision = (!alert.covered).then_some(Decision {
                    segment: index,
                    step: Some(step),
                    alert,
                    event: AlertEventKind::Upgraded,
                    span: series.evidence(Severity::P1),
                });
            }
            series.alert = Some(alert);
            series.status = SeriesStatus::Alerting(alert.severity);
            decision
        }
    }
}

/// Whether a drop in conversion from stage `step` into the next looks like the next stage's
/// events going missing rather than shoppers leaving: shoppers still reach the stage after it
/// as often as usual. Over the trailing window, the relative loss of the two-step conversion
/// (stage `step` to `step + 2`) is under half that of the one step.
fn looks_like_missing_events(conversions: &[ConversionSeries], step: usize) -> bool {
    let Some(next) = conversions.get(step + 1) else {
        return false;
    };
    let [n, x, expected_dropped, _] = conversions[step].trailing.sums();
    let [_, _, _, two_steps_on] = next.trailing.sums();
    let Some(next_drop_off) = next.last.baseline else {
        return false;
    };
    if n <= 0.0 {
        return false;
    }
    let conversion = 1.0 - expected_dropped / n;
    let two_step_conversion = conversion * (1.0 - next_drop_off);
    if conversion <= 0.0 || two_step_conversion <= 0.0 {
        return false;
    }
    let step_loss = 1.0 - (x / n) / conversion;
    let two_step_loss = 1.0 - (two_steps_on / n) / two_step_conversion;
    step_loss > 0.0 && two_step_loss < step_loss / 2.0
}

fn closing_span(series: &ConversionSeries) -> Span {
    let [n, x, expected, _] = series.trailing.sums();
    Span {
        onset: series.span.onset,
        minutes: series.trailing.filled as f64,
        n,
        x,
        expected,
    }
}

fn decide_volume(
    state: &mut FunnelState,
    index: usize,
    settings: &Settings,
    minute: Minute,
) -> Option<Decision> {
    let aggregate_alerting =
        index != 0 && state.segments[0].volume.alert.is_some_and(|a| !a.covered);
    let series = &mut state.segments[index].volume;
    let judgement = series.last;
    match series.alert {
        None => {
            if !(judgement.collapse || judgement.surge) {
                return None;
            }
            let direction = if judgement.surge {
                Direction::Surge
            } else {
                Direction::Worse
            };
            let sigma = volume_deficit_sigma(&series.span, series.phi.get());
            let severity = if direction == Direction::Worse && sigma >= SIGMA_P1 {
                Severity::P1
            } else {
                Severity::P2
            };
            let id = alert_id(state, index, 0, AlertKind::Volume, minute);
            let series = &mut state.segments[index].volume;
            let alert = OpenAlert {
                id,
                severity,
                kind: AlertKind::Volume,
                stage: 0,
                direction,
                covered: aggregate_alerting,
                calm: 0,
                enhanced_run: 0,
            };
            series.alert = Some(alert);
            (!alert.covered).then_some(Decision {
                segment: index,
                step: None,
                alert,
                event: AlertEventKind::Opened,
                span: series.span,
            })
        }
        Some(mut alert) => {
            let calm = judgement.window_sigma.is_none_or(|z| z.abs() < SIGMA_P2);
            alert.calm = if calm { alert.calm + 1 } else { 0 };
            if alert.calm >= settings.close_after_minutes {
                let [count, _, expected, _] = series.trailing.sums();
                let span = Span {
                    onset: series.span.onset,
                    minutes: series.trailing.filled as f64,
                    n: count,
                    x: 0.0,
                    expected,
                };
                series.collapse.reset();
                series.surge.reset();
                series.alert = None;
                return (!alert.covered).then_some(Decision {
                    segment: index,
                    step: None,
                    alert,
                    event: AlertEventKind::Closed,
                    span,
                });
            }
            series.alert = Some(alert);
            None
        }
    }
}

/// The deficit of events over `span`, in σ of one volume window: positive when fewer events
/// came than expected.
fn volume_deficit_sigma(span: &Span, phi: f64) -> f64 {
    if span.expected <= 0.0 {
        return 0.0;
    }
    let persistence = VOLUME_PERSISTENCE_MINUTES as f64;
    let per_window_expected = span.expected / span.minutes.max(1.0) * persistence;
    let relative_sd = (1.0 / per_window_expected + phi).sqrt();
    (span.expected - span.n) / span.expected / relative_sd
}

/// An alert's id: the same for the same alert on every node and after every restart, as long
/// as the counts are the same, because it names what alerted and when.
fn alert_id(
    state: &FunnelState,
    segment: usize,
    stage: usize,
    kind: AlertKind,
    opened: Minute,
) -> u64 {
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    hasher.update(state.id.as_bytes());
    hasher.update(&[0]);
    if let Some((dimension, value)) = &state.segments[segment].key {
        hasher.update(&(*dimension as u64).to_le_bytes());
        hasher.update(value.as_bytes());
    }
    hasher.update(&[0]);
    hasher.update(&(stage as u64).to_le_bytes());
    hasher.update(kind.as_str().as_bytes());
    hasher.update(&opened.0.to_le_bytes());
    hasher.digest()
}

fn describe(
    state: &FunnelState,
    dimension_names: &[String],
    decision: Decision,
    at: Timestamp,
    settings: &Settings,
) -> AlertEvent {
    let segment_state = &state.segments[decision.segment];
    let span = decision.span;
    let window = settings.window_minutes as f64;
    let (baseline_rate, observed_rate, sigma) = match decision.step {
        Some(step) => {
            let series = &segment_state.conversions[step];
            if span.n > 0.0 {
                let p0 = span.expected / span.n;
                let observed = 1.0 - span.x / span.n;
                let per_window = span.n / span.minutes.max(1.0) * window;
                let sd = stats::overdispersed_sd(p0, per_window, series.tau2.get());
                (p0, observed, (observed - p0) / sd)
            } else {
                (series.last.baseline.unwrap_or(0.0), 0.0, 0.0)
            }
        }
        None => {
            let minutes = span.minutes.max(1.0);
            // In the alert's direction: a surge's excess of events counts as positive.
            let deficit = volume_deficit_sigma(&span, segment_state.volume.phi.get());
            let sigma = match decision.alert.direction {
                Direction::Worse => deficit,
                Direction::Surge => -deficit,
            };
            (span.expected / minutes, span.n / minutes, sigma)
        }
    };
    let top_segments = top_segments(state, dimension_names, decision.step);
    AlertEvent {
        alert_id: decision.alert.id,
        funnel: state.id.clone(),
        stage: state.stage_ids[decision.alert.stage].clone(),
        kind: decision.alert.kind,
        severity: decision.alert.severity,
        event: decision.event,
        direction: decision.alert.direction,
        at,
        onset: span.onset.start(),
        segment: segment_state
            .key
            .as_ref()
            .map(|(d, v)| (dimension_names[*d].clone(), v.clone())),
        baseline_rate,
        observed_rate,
        sigma,
        n: span.n.round() as i64,
        top_segments,
    }
}

/// Ranks dimension values by how much more of the recent loss they account for than of the
/// traffic: a value with 58% of the shoppers and 100% of the lost conversions explains the
/// alert; a value with 46% of both does not.
fn top_segments(
    state: &FunnelState,
    dimension_names: &[String],
    step: Option<usize>,
) -> Vec<TopSegment> {
    let tallies = |segment: &SegmentState| match step {
        Some(step) => (
            segment.conversions[step].lost,
            segment.conversions[step].traffic,
        ),
        None => (segment.volume.lost, segment.volume.traffic),
    };
    let (aggregate_lost, _) = tallies(&state.segments[0]);
    let sign = if aggregate_lost < 0.0 { -1.0 } else { 1.0 };
    // Variance of one shopper's (or expected event's) contribution to the loss: binomial for
    // conversion, Poisson for volume.
    let unit_variance = match step {
        Some(step) => state.segments[0].conversions[step]
            .last
            .baseline
            .map_or(0.25, |p| p * (1.0 - p)),
        None => 1.0,
    };
    let mut by_dimension: HashMap<usize, Vec<(&str, f64, f64)>> = HashMap::new();
    for segment in &state.segments[1..] {
        let Some((dimension, value)) = &segment.key else {
            continue;
        };
        let (lost, traffic) = tallies(segment);
        by_dimension
            .entry(*dimension)
            .or_default()
            .push((value, sign * lost, traffic));
    }
    let mut ranked = Vec::new();
    for (dimension, values) in by_dimension {
        let lost_total: f64 = values.iter().map(|v| v.1.max(0.0)).sum();
        let traffic_total: f64 = values.iter().map(|v| v.2).sum();
        if lost_total <= 0.0 || traffic_total <= 0.0 {
            continue;
        }
        let net_lost: f64 = values.iter().map(|v| v.1).sum();
        for (value, lost, traffic) in values {
            let share = lost.max(0.0) / lost_total;
            let traffic_share = traffic / traffic_total;
            // A value explains the alert only if it lost more than its share of the traffic
            // would, by more than its own noise: a whole-funnel outage has no top segment.
            let excess = lost - traffic_share * net_lost;
            let noise = (traffic * unit_variance).sqrt().max(1.0);
            if share > traffic_share && excess > TOP_SEGMENT_SIGMA * noise {
                ranked.push((
                    share - traffic_share,
                    dimension,
                    value,
                    share,
                    traffic_share,
                ));
            }
        }
    }
    ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(b.2)));
    ranked
        .into_iter()
        .take(TOP_SEGMENTS_MAX)
        .map(|(_, dimension, value, share, traffic_share)| TopSegment {
            dimension: dimension_names[dimension].clone(),
            value: value.to_owned(),
            share,
            traffic_share,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    /// Budgets far stricter than the defaults, so that a false alarm in the weeks a test
    /// feeds is a failure of the detector rather than the budget being spent as designed.
    const CONFIG: &str = r#"
[shop]
time_zone = "America/New_York"

[detection]
false_p1_every = "5000d"
false_p2_every = "1000d"

[[dimensions]]
name = "device"
path = "context.device.type"

[[funnels]]
id = "shop"
[[funnels.stages]]
id = "viewed"
event = "Product Viewed"
[[funnels.stages]]
id = "cart"
event = "Product Added"
[[funnels.stages]]
id = "order"
event = "Order Completed"
"#;

    /// Monday 2026-10-05 00:00 UTC.
    const START: Minute = Minute(1_791_158_400_000 / MS_PER_MINUTE);
    const WEEK_MINUTES: i64 = 7 * 24 * 60;

    /// Per device: share of sessions, step conversions.
    const DEVICES: [(&str, f64, [f64; 2]); 2] = [
        ("mobile", 0.6, [0.30, 0.70]),
        ("desktop", 0.4, [0.40, 0.80]),
    ];

    /// What the synthetic shop does in one minute.
    #[derive(Clone, Copy)]
    struct Traffic {
        sessions_per_minute: f64,
        /// Multiplies step conversion, per step, for the devices it applies to.
        keep: [f64; 2],
        only: Option<&'static str>,
        /// Share of the cart stage's events lost (a broken pixel).
        cart_events_lost: f64,
    }

    const CLEAN: Traffic = Traffic {
        sessions_per_minute: 60.0,
        keep: [1.0, 1.0],
        only: None,
        cart_events_lost: 0.0,
    };

    fn binomial(rng: &mut Rng, n: u64, p: f64) -> u64 {
        (0..n).filter(|_| rng.bernoulli(p)).count() as u64
    }

    /// Feeds `minutes` minutes from `from`, with traffic by minute, and returns the events.
    fn feed(
        detector: &mut Detector,
        rng: &mut Rng,
        from: Minute,
        minutes: i64,
        traffic: impl Fn(Minute) -> Traffic,
    ) -> Vec<AlertEvent> {
        let mut events = Vec::new();
        for offset in 0..minutes {
            let minute = Minute(from.0 + offset);
            let t = traffic(minute);
            // A daily rhythm: twice as busy at the peak as on average.
            let hour = (minute.0 / 60) % 24;
            let rhythm = 1.0 + 0.8 * ((hour as f64 - 6.0) / 24.0 * std::f64::consts::TAU).sin();
            for (device, share, conversion) in DEVICES {
                let affected = t.only.is_none_or(|d| d == device);
                let keep = if affected { t.keep } else { [1.0, 1.0] };
                let viewed = rng.poisson(t.sessions_per_minute * share * rhythm);
                let cart = binomial(rng, viewed, conversion[0] * keep[0]);
                let order = binomial(rng, cart, conversion[1] * keep[1]);
                let cart_seen = binomial(rng, cart, 1.0 - t.cart_events_lost);
                let segment = detector.segment(0, Some(("device", device))).unwrap();
                for (stage, n) in [viewed, cart_seen, order].into_iter().enumerate() {
                    detector.record(0, 0, stage, n as i64);
                    detector.record(0, segment, stage, n as i64);
                }
            }
            detector.close_minute(minute, &mut events);
        }
        events
    }

    /// Two weeks of clean traffic and half a day more: the next minute is at the daily peak.
    fn learned(seed: u64) -> (Detector, Rng, Minute) {
        let config = Config::parse(CONFIG).unwrap();
        let mut detector = Detector::new(&config);
        let mut rng = Rng::new(seed);
        let minutes = 2 * WEEK_MINUTES + 12 * 60;
        let events = feed(&mut detector, &mut rng, START, minutes, |_| CLEAN);
        assert!(events.is_empty(), "no alert on clean traffic: {events:?}");
        (detector, rng, Minute(START.0 + minutes))
    }

    fn opened(events: &[AlertEvent]) -> Vec<&AlertEvent> {
        events
            .iter()
            .filter(|e| e.event == AlertEventKind::Opened)
            .collect()
    }

    /// A responder's step in an event-time run: minutes after the incident opened, what.
    type Script = Vec<(i64, crate::incident::Action)>;

    /// Runs the detector and the incidents together in event time, minute by minute, as
    /// `replay` does, with a responder following `script`. Returns the engine.
    fn incidents_of(
        seed: u64,
        minutes: i64,
        traffic: impl Fn(Minute, Minute) -> Traffic,
        script: &Script,
    ) -> crate::incident::IncidentEngine {
        use crate::incident::{IncidentEngine, IncidentPolicy};
        let (mut detector, mut rng, now) = learned(seed);
        let mut engine = IncidentEngine::new(IncidentPolicy::runbook(), Vec::new());
        let mut done = vec![false; script.len()];
        for offset in 0..minutes {
            let minute = Minute(now.0 + offset);
            let events = feed(&mut detector, &mut rng, minute, 1, |m| traffic(now, m));
            // Judged once the minute has ended and settled.
            let at = Timestamp(minute.start().0 + 2 * MS_PER_MINUTE);
            engine.run_until(at);
            for event in &events {
                engine.handle_alert(at, event);
            }
            let open: Vec<(String, String)> = engine
                .incidents()
                .filter(|i| i.is_open())
                .map(|i| (i.funnel.clone(), i.stage.clone()))
                .collect();
            for (funnel, stage) in open {
                if let Some(sigma) = detector.window_sigma(&funnel, None, &stage) {
                    engine.handle_measurement(at, &funnel, &stage, sigma);
                }
            }
            let first = engine.incidents().next().map(|i| (i.id, i.opened_at));
            if let Some(first) = first {
                for ((after, action), done) in script.iter().zip(done.iter_mut()) {
                    if !*done && at.0 >= first.1.0 + after * MS_PER_MINUTE {
                        *done = true;
                        engine
                            .handle_action(at, first.0, "ana", action.clone(), None)
                            .unwrap();
                    }
                }
            }
        }
        engine
    }

    fn timeline_kinds(incident: &crate::incident::Incident) -> Vec<&str> {
        incident.timeline.iter().map(|e| e.kind.as_str()).collect()
    }

    /// The detection suite's incidents, run through the incident engine in event time: each
    /// timeline reads in order from onset to resolution.
    #[test]
    fn the_detection_suite_in_event_time_makes_incidents_that_read_right() {
        use crate::incident::{Action, IncidentSeverity, IncidentState, Mitigation};
        // An outage of an hour, acknowledged after 10 minutes, mitigated, its root cause found:
        // it resolves by itself two hours after the drop-off is back within 2σ. The Digital
        // Andon's alert opens with the drop; its onset is no later than the incident.
        let script: Script = vec![
            (10, Action::Acknowledge),
            (
                20,
                Action::Mitigate {
                    mitigation: Mitigation::Rollback,
                    detail: "rolled back the cart release".into(),
                },
            ),
            (
                30,
                Action::RootCause("the cart release broke the order button".into()),
            ),
        ];
        let engine = incidents_of(
            4,
            5 * 60,
            |now, minute| {
                if minute.0 < now.0 + 60 {
                    Traffic {
                        keep: [1.0, 0.3],
                        ..CLEAN
                    }
                } else {
                    CLEAN
                }
            },
            &script,
        );
        let incidents: Vec<_> = engine.incidents().collect();
        assert_eq!(incidents.len(), 1, "{incidents:#?}");
        let incident = incidents[0];
        assert_eq!(
            (incident.stage.as_str(), incident.severity, incident.state),
            ("cart", IncidentSeverity::P1, IncidentState::Resolved)
        );
        assert_eq!(
            timeline_kinds(incident),
            [
                "opened",
                "escalated",
                "acknowledged",
                "mitigated",
                "root_cause",
                "sla_breached",
                "alert_closed",
                "resolved"
            ]
        );
        // An hour's outage outlasts the P1 resolution SLA of an hour; the response SLA was met.
        assert!(incident.resolution.breached);
        let at = |kind: &str| {
            incident
                .timeline
                .iter()
                .find(|e| e.kind == kind)
                .unwrap()
                .at
        };
        assert!(incident.onset <= incident.opened_at);
        assert!(incident.timeline.windows(2).all(|w| w[0].at <= w[1].at));
        assert_eq!(
            at("resolved").since(at("alert_closed")),
            crate::DurationMs::from_hours(2)
        );
        assert!(incident.response.met_at.is_some() && !incident.response.breached);

        // A moderate drop deepening: a P2 incident whose alert upgrades; the ASSESS step is
        // recorded and the P1 path starts from L1. Nobody answers: L2 follows 15 minutes on.
        let engine = incidents_of(
            5,
            240,
            |now, minute| {
                let keep = if minute.0 < now.0 + 150 { 0.9 } else { 0.4 };
                Traffic {
                    keep: [1.0, keep],
                    ..CLEAN
                }
            },
            &Vec::new(),
        );
        let incident = engine.incidents().next().expect("an incident");
        let kinds = timeline_kinds(incident);
        let upgraded = kinds
            .iter()
            .position(|k| *k == "upgraded")
            .expect("upgraded");
        assert_eq!(&kinds[..2], ["opened", "escalated"]);
        assert!(
            incident.timeline[0].text.starts_with("P2"),
            "{:?}",
            incident.timeline[0]
        );
        assert!(incident.timeline[upgraded].text.starts_with("ASSESS"));
        assert_eq!(incident.severity, IncidentSeverity::P1);
        let pages_after: Vec<&str> = incident.timeline[upgraded..]
            .iter()
            .filter(|e| e.kind == "escalated")
            .map(|e| e.text.split_whitespace().nth(1).unwrap())
            .collect();
        assert_eq!(pages_after[..2], ["L1", "L2"], "{:#?}", incident.timeline);

        // A failure on desktop only: one incident, scoped to the segment the alert named.
        let engine = incidents_of(
            8,
            60,
            |_, _| Traffic {
                keep: [1.0, 0.2],
                only: Some("desktop"),
                ..CLEAN
            },
            &vec![(5, Action::Acknowledge)],
        );
        let incidents: Vec<_> = engine.incidents().collect();
        assert_eq!(incidents.len(), 1, "{incidents:#?}");
        assert_eq!(
            incidents[0].segment,
            Some(("device".to_owned(), "desktop".to_owned()))
        );
        let kinds = timeline_kinds(incidents[0]);
        assert_eq!(kinds[..2], ["opened", "escalated"]);
        let acked = kinds.iter().position(|k| *k == "acknowledged").unwrap();
        assert!(!kinds[acked..].contains(&"escalated"), "{kinds:?}");
    }

    #[test]
    fn clean_traffic_stays_quiet() {
        // Identical to baseline: no alarm in a week, at each of these seeds. The budget is one
        // false P2 per week for the whole funnel, so a quiet week is the expected outcome.
        for seed in [1, 2, 3] {
            let (mut detector, mut rng, now) = learned(seed);
            let events = feed(&mut detector, &mut rng, now, WEEK_MINUTES, |_| CLEAN);
            assert!(opened(&events).is_empty(), "seed {seed}: {events:?}");
            let report = detector.report(0);
            assert!(report.iter().all(|r| r.status != SeriesStatus::Learning));
        }
    }

    #[test]
    fn an_outage_stops_the_line_and_recovery_closes_it() {
        let (mut detector, mut rng, now) = learned(4);
        let outage_end = now.0 + 60;
        let events = feed(&mut detector, &mut rng, now, 120, |minute| {
            if minute.0 < outage_end {
                Traffic {
                    keep: [1.0, 0.3],
                    ..CLEAN
                }
            } else {
                CLEAN
            }
        });
        let first = opened(&events)[0];
        assert_eq!(
            (
                first.stage.as_str(),
                first.kind,
                first.severity,
                first.segment.clone()
            ),
            ("cart", AlertKind::Conversion, Severity::P1, None)
        );
        let delay = (first.at.0 - now.start().0) / MS_PER_MINUTE;
        assert!(delay <= 5, "found after {delay} minutes");
        assert!(first.observed_rate > first.baseline_rate + 0.3, "{first:?}");
        assert!(first.sigma > 3.0, "{first:?}");
        // Every device lost its share: nothing stands out.
        assert!(first.top_segments.is_empty(), "{first:?}");
        let closed = events
            .iter()
            .find(|e| e.event == AlertEventKind::Closed && e.alert_id == first.alert_id)
            .expect("closed after recovery");
        let after_recovery = (closed.at.0 - Minute(outage_end).start().0) / MS_PER_MINUTE;
        assert!(
            (15..=25).contains(&after_recovery),
            "closed {after_recovery} minutes after recovery"
        );
    }

    #[test]
    fn a_moderate_drop_is_p2_and_a_deeper_one_upgrades_it() {
        let (mut detector, mut rng, now) = learned(5);
        let events = feed(&mut detector, &mut rng, now, 240, |minute| {
            let keep = if minute.0 < now.0 + 150 { 0.9 } else { 0.4 };
            Traffic {
                keep: [1.0, keep],
                ..CLEAN
            }
        });
        let kinds: Vec<(AlertEventKind, Severity)> = events
            .iter()
            .filter(|e| e.segment.is_none())
            .map(|e| (e.event, e.severity))
            .collect();
        assert_eq!(
            kinds[..2],
            [
                (AlertEventKind::Opened, Severity::P2),
                (AlertEventKind::Upgraded, Severity::P1)
            ],
            "{events:?}"
        );
    }

    #[test]
    fn a_better_run_is_recorded_not_alerted() {
        let (mut detector, mut rng, now) = learned(6);
        let events = feed(&mut detector, &mut rng, now, 120, |_| Traffic {
            keep: [1.0, 1.2],
            ..CLEAN
        });
        assert!(opened(&events).is_empty(), "{events:?}");
        let report = detector.report(0);
        let cart = report
            .iter()
            .find(|r| r.segment.is_none() && r.stage == "cart")
            .unwrap();
        assert_eq!(cart.status, SeriesStatus::Improved);
    }

    #[test]
    fn missing_events_are_a_volume_alert_not_lost_shoppers() {
        let (mut detector, mut rng, now) = learned(7);
        let events = feed(&mut detector, &mut rng, now, 60, |_| Traffic {
            cart_events_lost: 0.6,
            ..CLEAN
        });
        let first = opened(&events)[0];
        assert_eq!(
            (first.kind, first.stage.as_str()),
            (AlertKind::Volume, "cart"),
            "{events:?}"
        );
        assert!(
            opened(&events).iter().all(|e| e.kind == AlertKind::Volume),
            "{events:?}"
        );
    }

    #[test]
    fn a_segment_failure_names_its_segment() {
        let (mut detector, mut rng, now) = learned(8);
        let events = feed(&mut detector, &mut rng, now, 120, |_| Traffic {
            keep: [1.0, 0.6],
            only: Some("desktop"),
            ..CLEAN
        });
        let first = opened(&events)[0];
        let named = first.segment.clone().or_else(|| {
            first
                .top_segments
                .first()
                .map(|t| (t.dimension.clone(), t.value.clone()))
        });
        assert_eq!(
            named,
            Some(("device".into(), "desktop".into())),
            "{first:?}"
        );
        if first.segment.is_none() {
            let top = &first.top_segments[0];
            assert!(top.share > 0.9 && top.traffic_share < 0.5, "{top:?}");
        }
    }

    #[test]
    fn a_new_funnel_learns_before_it_pages() {
        let config = Config::parse(CONFIG).unwrap();
        let mut detector = Detector::new(&config);
        let mut rng = Rng::new(9);
        let events = feed(&mut detector, &mut rng, START, 3 * 24 * 60, |minute| {
            if minute.0 > START.0 + 2 * 24 * 60 {
                Traffic {
                    keep: [0.0, 0.0],
                    ..CLEAN
                }
            } else {
                CLEAN
            }
        });
        assert!(events.is_empty(), "{events:?}");
        assert_all_learning(&detector);
    }

    fn assert_all_learning(detector: &Detector) {
        let report = detector.report(0);
        assert!(
            report.iter().all(|r| r.status == SeriesStatus::Learning),
            "{report:?}"
        );
    }

    #[test]
    fn silence_before_the_first_event_is_not_a_baseline() {
        // A server started weeks before its shop sends anything judges those minutes empty;
        // they must not teach the detector that zero traffic is normal.
        let config = Config::parse(CONFIG).unwrap();
        let mut detector = Detector::new(&config);
        let mut events = Vec::new();
        for minute in START.0..START.0 + 2 * WEEK_MINUTES {
            detector.close_minute(Minute(minute), &mut events);
        }
        let mut rng = Rng::new(12);
        let now = Minute(START.0 + 2 * WEEK_MINUTES);
        events.extend(feed(&mut detector, &mut rng, now, 3 * 24 * 60, |_| CLEAN));
        assert!(events.is_empty(), "{events:?}");
        assert_all_learning(&detector);
    }

    #[test]
    fn too_few_shoppers_are_not_judged() {
        let config = Config::parse(CONFIG).unwrap();
        let mut detector = Detector::new(&config);
        let mut rng = Rng::new(10);
        let quiet = Traffic {
            sessions_per_minute: 0.5,
            ..CLEAN
        };
        feed(&mut detector, &mut rng, START, 2 * WEEK_MINUTES, |_| quiet);
        let now = Minute(START.0 + 2 * WEEK_MINUTES);
        let events = feed(&mut detector, &mut rng, now, 60, |_| Traffic {
            keep: [0.0, 0.0],
            ..quiet
        });
        assert!(opened(&events).iter().all(|e| e.kind == AlertKind::Volume));
        let cart = detector
            .report(0)
            .into_iter()
            .find(|r| r.segment.is_none() && r.stage == "cart")
            .unwrap();
        assert_eq!(cart.status, SeriesStatus::TooFewShoppers);
    }

    #[test]
    fn masked_days_stay_out_of_the_baseline() {
        let text = format!(
            "{CONFIG}\n[[detection.masks]]\nfrom = \"2026-10-19T00:00\"\nto = \"2026-10-20T00:00\"\nreason = \"sale\"\n"
        );
        let config = Config::parse(&text).unwrap();
        let mut detector = Detector::new(&config);
        let mut rng = Rng::new(11);
        feed(&mut detector, &mut rng, START, 2 * WEEK_MINUTES, |_| CLEAN);
        let before = detector.baseline(0, None, 0).unwrap();
        // Monday 2026-10-19 in New York: a sale where half the shoppers add to cart.
        let sale = Minute(START.0 + 2 * WEEK_MINUTES + 4 * 60);
        feed(
            &mut detector,
            &mut rng,
            Minute(sale.0 - 4 * 60),
            4 * 60,
            |_| CLEAN,
        );
        let events = feed(&mut detector, &mut rng, sale, 24 * 60, |_| Traffic {
            keep: [1.6, 1.0],
            ..CLEAN
        });
        assert!(opened(&events).iter().all(|e| e.kind == AlertKind::Volume));
        let after = detector.baseline(0, None, 0).unwrap();
        // Monday's slots (0..24) learned nothing during the sale.
        for hour in 0..24 {
            assert_eq!(before[hour], after[hour], "hour {hour}");
        }
    }

    #[test]
    fn slots_follow_local_time_across_daylight_saving() {
        let time_zone = jiff::tz::TimeZone::get("America/New_York").unwrap();
        let slot_of = |utc: &str| {
            let instant: jiff::Timestamp = utc.parse().unwrap();
            let offset = i64::from(time_zone.to_offset(instant).seconds()) * 1_000;
            SlotPosition::of(instant.as_millisecond() + offset).slot
        };
        // 09:15 local on the Mondays either side of the end of daylight saving (1 Nov 2026):
        // 13:15Z in EDT, 14:15Z in EST, both Monday 09:00, slot 9.
        assert_eq!(slot_of("2026-10-26T13:15:00Z"), 9);
        assert_eq!(slot_of("2026-11-02T14:15:00Z"), 9);
        // Sunday 23:59 local is the last slot of the week.
        assert_eq!(slot_of("2026-11-02T04:59:00Z"), SLOTS - 1);
    }

    #[test]
    fn budgets_are_split_between_the_whole_and_its_segments() {
        let config = Config::parse(CONFIG).unwrap();
        let mut detector = Detector::new(&config);
        let alone = detector.thresholds(0).unwrap();
        for value in ["a", "b", "c", "d"] {
            detector.segment(0, Some(("device", value)));
        }
        let mut events = Vec::new();
        detector.close_minute(START, &mut events);
        let whole = detector.funnels[0].thresholds;
        let segments = detector.funnels[0].segment_thresholds;
        assert_eq!(alone.conversion_p2, whole.conversion_p2);
        // One funnel, three stages: two conversion series and two volume directions, half the
        // budget each for the whole and for the four segments.
        assert_eq!(whole.arl0_p2_minutes, 1000.0 * 24.0 * 60.0 * 4.0 / 0.5);
        assert_eq!(segments.arl0_p2_minutes, 1000.0 * 24.0 * 60.0 * 16.0 / 0.5);
        assert!(segments.conversion_p2 > whole.conversion_p2);
        assert!(whole.conversion_p1 > whole.conversion_p2);
        assert!(
            stats::llr_cusum_arl0(SIGMA_P2 / 5f64.sqrt(), whole.conversion_p2)
                >= whole.arl0_p2_minutes * 0.999
        );
    }
}
