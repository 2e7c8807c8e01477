//! The conversion series: the drop-off of shoppers from one stage to the next, for one funnel
//! or segment, minute by minute against its time-of-week baseline.
//!
//! A series learns its baseline, measures the trailing window in σ and runs the P2, P1 and
//! improvement CUSUMs. It records what the minute showed (a [`MinuteJudgement`]) and never
//! opens, upgrades or closes an alert itself: that is `decide`'s, which sees the whole funnel.

use super::baseline::{HOURS_PER_DAY, HourHistory, NoiseModel, SlotPosition, SlotTable};
use super::decide::OpenAlert;
use super::ring::{Ring, Span};
use super::{LEARNING_EXCLUSION_SHARE, MinuteContext, SIGMA_P1, SIGMA_P2, SeriesStatus};
use crate::alert::Severity;
use crate::stats::{self, Cusum};
use crate::time::Minute;

/// Shoppers' worth of weight pulling a slot's rate toward the series' overall rate.
const SHRINK_SHOPPERS: f64 = 200.0;
/// Drop-off rates this close to 0 or 1 carry no information worth judging.
const DEGENERATE_RATE: f64 = 0.001;
/// The window test that stops the line at once needs `n·p₀(1−p₀)` at least this in the
/// window.
const SHEWHART_COUNT_MIN: f64 = 10.0;
/// During a traffic surge the window test asks for this many times the deviation: a surge's
/// new shoppers convert differently, an outage during a campaign still shows.
const SURGE_SHEWHART_FACTOR: f64 = 2.0;

/// Drop-off of shoppers from one stage to the next, for one segment.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(super) struct ConversionSeries {
    /// `[shoppers at the stage, shoppers who went on, minutes]` per slot.
    pub(super) slots: SlotTable,
    /// Series-wide sums, exponentially weighted over the same memory: the shrinkage target.
    pub(super) total_n: f64,
    pub(super) total_x: f64,
    pub(super) first_minute: Option<Minute>,
    /// The noise of a window around the baseline: binomial factor and between-window variance.
    pub(super) noise: NoiseModel,
    /// The local hours the series alerted in, day by day, and what it saw in them lately.
    pub(super) hours: HourHistory,
    pub(super) trailing: Ring,
    pub(super) up_p2: Cusum,
    pub(super) up_p1: Cusum,
    pub(super) down: Cusum,
    /// Evidence since each CUSUM last stood at zero: P2's and P1's.
    pub(super) span: Span,
    pub(super) span_p1: Span,
    pub(super) alert: Option<OpenAlert>,
    /// Alarmed minutes in a row that looked like missing events rather than leaving shoppers.
    pub(super) missing_events_run: u32,
    pub(super) improved: bool,
    pub(super) status: SeriesStatus,
    /// Exponentially weighted lost conversions and shoppers, for drill-down.
    pub(super) lost: f64,
    pub(super) traffic: f64,
    pub(super) last: MinuteJudgement,
}

/// What one minute showed a series.
#[derive(Debug, Clone, Copy, Default, serde::Serialize, serde::Deserialize)]
pub(super) struct MinuteJudgement {
    pub(super) alarm_p2: bool,
    pub(super) alarm_p1: bool,
    /// Drop-off of the trailing window in σ above baseline.
    pub(super) window_sigma: Option<f64>,
    /// Drop-off of the last few minutes (half a window, at least two), in σ of that span: what
    /// enhanced monitoring watches.
    pub(super) short_sigma: Option<f64>,
    /// Whether the trailing window holds enough shoppers for its normal approximation.
    pub(super) window_is_large: bool,
    pub(super) baseline: Option<f64>,
    pub(super) window_sd: Option<f64>,
    pub(super) expected_n: Option<f64>,
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
    pub(super) p0: f64,
    /// Variance of that estimate.
    pub(super) variance: f64,
    /// Shoppers expected per minute.
    pub(super) expected_n: f64,
}
impl ConversionSeries {
    pub(super) fn new(window_minutes: usize) -> ConversionSeries {
        ConversionSeries {
            slots: SlotTable::new(),
            total_n: 0.0,
            total_x: 0.0,
            first_minute: None,
            noise: NoiseModel::default(),
            hours: HourHistory::default(),
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
    /// next stage, which may exceed `n`). `whole_alerting`: the funnel as a whole has an alert
    /// open on this step (for a segment's series).
    pub(super) fn observe(
        &mut self,
        minute: Minute,
        [n, x, next_raw]: [f64; 3],
        whole_alerting: bool,
        context: &MinuteContext,
    ) -> MinuteJudgement {
        // A series starts with its first shopper: minutes before a shop sent anything are
        // not a baseline of zero.
        if self.first_minute.is_none() && n == 0.0 {
            return MinuteJudgement::default();
        }
        let first = *self.first_minute.get_or_insert(minute);
        let position = context.position;
        if self.hours.is_new_day(position.local_day) {
            for (hour, ratio) in self.hours.start_day(position.local_day) {
                self.slots.set_hour_of_day_ratio(hour, ratio);
            }
        }
        let hour = position.slot % HOURS_PER_DAY;
        let settings = context.settings;
        let window = settings.window_minutes as f64;
        let learned_long_enough = minute.minutes_since(first) >= settings.learning_minutes;
        let baseline = self.baseline(context.position);
        let mut judgement = MinuteJudgement::default();
        let thresholds = context.thresholds;
        if let Some(base) = &baseline {
            let p0 = base.p0;
            let noise = self.noise;
            let window_sd = noise.sd(p0, base.expected_n * window, base.variance);
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
                    let sd = noise.sd(texpected / tn, tn, base.variance);
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
            if self.status == SeriesStatus::Normal && self.hours.is_suspect(hour) {
                // Relearned at the start of the day from what it showed lately: judged again
                // from tomorrow, once the relearned baseline has been seen to hold.
                self.status = SeriesStatus::BaselineSuspect;
            }
            if self.status == SeriesStatus::Normal && context.surging {
                self.status = SeriesStatus::Surge;
                // The new shoppers of a surge convert differently: only a collapse far beyond
                // that stops the line.
                judgement.alarm_p1 =
                    judgement.beyond_shewhart(SURGE_SHEWHART_FACTOR * thresholds.shewhart_sigma);
            }
            if self.status == SeriesStatus::Normal && n > 0.0 {
                self.run_cusums(
                    minute,
                    [n, x],
                    p0,
                    [window_sd, base.variance],
                    context,
                    &mut judgement,
                );
            }
        }
        let suspicious = self.alert.is_some()
            || self.up_p2.statistic > LEARNING_EXCLUSION_SHARE * thresholds.conversion_p2;
        if context.learnable && !suspicious {
            self.learn(minute, n, x, &baseline, context);
        }
        // Alerting or not: what the hour showed lately is what a suspect hour relearns from.
        self.hours.record(
            hour,
            self.alert.is_some() || whole_alerting,
            (context.learnable && n > 0.0).then_some([n, x]),
        );
        if let Some(alert) = self.alert {
            self.status = SeriesStatus::Alerting(alert.severity);
        } else if self.improved && self.status == SeriesStatus::Normal {
            self.status = SeriesStatus::Improved;
        }
        self.last = judgement;
        judgement
    }

    /// The CUSUMs of a judged minute (`n` shoppers, `x` went on) against `p0`, whose window has
    /// standard deviation `window_sd` (`extra`: the baseline's own variance): P2, P1 (or the
    /// window test) and improvement, and the evidence spans they describe.
    fn run_cusums(
        &mut self,
        minute: Minute,
        [n, x]: [f64; 2],
        p0: f64,
        [window_sd, extra]: [f64; 2],
        context: &MinuteContext,
        judgement: &mut MinuteJudgement,
    ) {
        let window = context.settings.window_minutes as f64;
        let thresholds = context.thresholds;
        let dropped = n - x;
        let binomial = p0 * (1.0 - p0) / n;
        // Variance of this minute's rate over the binomial's: the between-window
        // variation is shared by the minutes of a window, so it counts in full.
        let tau2 = self.noise.tau2() + extra;
        let inflation = (self.noise.phi() * binomial + window * tau2) / binomial;
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
        let gathered = &mut self.noise.window;
        gathered[0] += n;
        gathered[1] += x;
        gathered[2] += n * base.p0;
        if minute.plus(1).index().rem_euclid(window) == 0 {
            let [wn, wx, wexpected] = std::mem::take(gathered);
            if wn >= 10.0 {
                let p0 = wexpected / wn;
                let binomial = p0 * (1.0 - p0) / wn;
                let residual = (wn - wx) / wn - p0;
                self.noise
                    .update(binomial, residual, context.overdispersion_memory_windows);
            }
        }
    }

    pub(super) fn reset_after_alert(&mut self) {
        self.up_p2.reset();
        self.up_p1.reset();
        self.down.reset();
        self.alert = None;
    }
}
impl ConversionSeries {
    /// The span an alert of this severity describes: since the CUSUM that raised it last stood
    /// at zero (the P1 one changes its mind about the onset less often).
    pub(super) fn evidence(&self, severity: Severity) -> Span {
        if severity == Severity::P1 && self.span_p1.minutes > 0.0 {
            self.span_p1
        } else {
            self.span
        }
    }

    pub(super) fn trailing_drop_off(&self) -> Option<f64> {
        let [n, x, _, _] = self.trailing.sums();
        (n > 0.0).then(|| 1.0 - x / n)
    }
}
