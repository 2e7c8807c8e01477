//! What an incident costs: the runbook's revenue impact, integrated window by window over the
//! incident (docs/impact.md defines every term).
//!
//! The detector's statistics come in one judged minute at a time ([`ImpactMinute`]: shoppers at
//! the stage, how many went on, the baseline drop-off, the chance a shopper who went on would
//! have ordered, the window's noise, the day's traffic shape) with the average order value the
//! caller measured or configured ([`Aov`]). [`Impact`] gathers the minutes of one window (the
//! detector's window length), and closes it: the window's excess drop-offs, weighted by the
//! chance each would have ordered, are its lost orders, a statistic. A window at or above
//! baseline books nothing. The lost orders are then quantised to micro-orders (an `i64`) and
//! multiplied by the AOV in minor units in `i128` with checked arithmetic; the money is rounded
//! once, half to even, when it is read ([`Impact::figures`]). Overflow is an error value
//! ([`ImpactError`]) that stops the booking, never a panic or a wrap.
//!
//! Pure: no IO, no clock. Floats appear only in the statistics (orders, shoppers, σ), never in
//! an amount.
//!
//! For the ledger's booking (`ledger::LossFigure`): an incident's estimated loss so far is
//! `incident.impact`'s [`Impact::figures`]`.loss` (a `Money`, zero or positive), the inputs it
//! was computed from are [`Impact::inputs_json`] (canonical JSON: sorted keys, integers only),
//! and `incident.false_alarm` says whether a responder resolved it as a false alarm.
//!
//! The serde field names of [`Impact`] are stored (inside the incident's stored body): add
//! fields with defaults, never rename them.

use std::collections::VecDeque;

use crate::money::{Currency, Money};
use crate::time::{Minute, Timestamp};

/// Micro-units per unit: lost orders are quantised to millionths of an order, and the duration
/// factor to millionths.
pub const MICRO: i64 = 1_000_000;
/// Closed windows kept per incident for `GET /api/v1/incidents/{id}/impact` (the totals cover
/// every window; the list only the newest): a day of 15-minute windows, four hours of
/// one-minute ones.
pub const IMPACT_WINDOWS_KEPT: usize = 240;
/// The uncertainty band reaches this many standard deviations above what the baseline's own
/// noise would book.
pub const BAND_SIGMAS: f64 = 2.0;
/// The largest duration factor a projection uses: the next day's traffic at most ten times the
/// current hour's, all day. A far larger ratio comes from a near-empty hour (its loss per hour
/// is then near zero too), and would otherwise project an hour of noise over a whole day.
pub const DURATION_FACTOR_MAX: f64 = 10.0;
/// What a window at baseline books on average, in σ of its lost orders: its noise is clipped
/// at zero, and the mean of a normal variable's positive part is `σ/√(2π)`.
const CLIPPED_NOISE_MEAN: f64 = 0.398_942_280_401_432_7;
/// The variance of that positive part, in σ²: `1/2 − 1/(2π)`.
const CLIPPED_NOISE_VARIANCE: f64 = 0.340_845_056_908_450_5;
/// Minutes per hour and hours per day, for the rates.
const MINUTES_PER_HOUR: i128 = 60;
const HOURS_PER_DAY: i128 = 24;

/// Where an average order value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AovSource {
    /// `[shop] average_order_value`.
    Config,
    /// Measured from the segment's own orders over the trailing period.
    MeasuredSegment,
    /// Measured from the funnel's orders (the segment had too few, or there is no segment).
    MeasuredFunnel,
}

impl AovSource {
    pub fn as_str(self) -> &'static str {
        match self {
            AovSource::Config => "config",
            AovSource::MeasuredSegment => "measured_segment",
            AovSource::MeasuredFunnel => "measured_funnel",
        }
    }
}

/// An average order value: positive minor units of the shop's currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Aov {
    pub minor: i64,
    pub currency: Currency,
    pub source: AovSource,
    /// Orders it was measured from; `0` when configured.
    pub n_orders: i64,
}

impl Aov {
    /// An AOV measured from `revenue_minor` over `n_orders` orders: the mean, rounded half to
    /// even to a minor unit. `None` when there are no orders or the mean is not positive.
    pub fn measured(
        revenue_minor: i64,
        n_orders: i64,
        currency: Currency,
        source: AovSource,
    ) -> Option<Aov> {
        if n_orders <= 0 {
            return None;
        }
        let minor = i64::try_from(divide_half_even(
            i128::from(revenue_minor),
            i128::from(n_orders),
        ))
        .ok()?;
        (minor > 0).then_some(Aov {
            minor,
            currency,
            source,
            n_orders,
        })
    }
}

/// What the detector saw of an incident's series in its last judged minute
/// (`Detector::impact_statistics`); [`ImpactMinute::new`] prices it. Statistics, so floats.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ImpactStatistics {
    /// The judged minute the statistics are of.
    pub minute: Minute,
    pub window_minutes: u32,
    pub shoppers: f64,
    pub went_on: f64,
    pub baseline_drop_off: f64,
    pub downstream_conversion: f64,
    pub window_sd: f64,
    pub duration_factor: f64,
}

impl ImpactMinute {
    pub fn new(at: Timestamp, statistics: ImpactStatistics, aov: Aov) -> ImpactMinute {
        ImpactMinute {
            at,
            minute: statistics.minute,
            window_minutes: statistics.window_minutes,
            shoppers: statistics.shoppers,
            went_on: statistics.went_on,
            baseline_drop_off: statistics.baseline_drop_off,
            downstream_conversion: statistics.downstream_conversion,
            window_sd: statistics.window_sd,
            duration_factor: statistics.duration_factor,
            aov,
        }
    }
}

/// What the detector saw of an incident's series in one judged minute, with the AOV to price
/// it at. Statistics, so floats.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ImpactMinute {
    /// When the minute was judged.
    pub at: Timestamp,
    /// The judged minute: an impact prices each minute once, however often it is handed the
    /// same one (live, every funnel's tick prices every open incident).
    pub minute: Minute,
    /// The detector's window, in minutes: the length of a booked window.
    pub window_minutes: u32,
    /// Shoppers who reached the incident's stage in the minute (of its segment, if any).
    pub shoppers: f64,
    /// Of them, how many went on to the next stage.
    pub went_on: f64,
    /// The baseline drop-off rate from the stage (the detector's, for this time of week).
    pub baseline_drop_off: f64,
    /// The baseline chance that a shopper who reached the next stage goes on to order: the
    /// product of the baseline conversions of every later step (1 at the last step).
    pub downstream_conversion: f64,
    /// σ of one window's drop-off rate at the expected traffic, overdispersion included.
    pub window_sd: f64,
    /// The day's traffic shape: the stage's expected shoppers over the next 24 hours divided
    /// by 24 times the current hour's.
    pub duration_factor: f64,
    pub aov: Aov,
}

/// Why a booking stopped. The figures booked before it stay.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, thiserror::Error,
)]
#[serde(rename_all = "snake_case")]
pub enum ImpactError {
    #[error("the loss overflows the integer arithmetic")]
    Overflow,
    #[error("the AOV's currency is not the incident's")]
    CurrencyChanged,
    #[error("a statistic was not a finite number")]
    NotFinite,
}

/// The minutes of the window being gathered: sums of statistics.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct OpenWindow {
    pub from: Option<Timestamp>,
    pub minutes: u32,
    pub shoppers: f64,
    pub went_on: f64,
    /// Σ shoppers × baseline drop-off: the drop-offs the baseline expected.
    pub expected_drop_offs: f64,
    /// Σ (drop-offs − expected) × downstream conversion, signed.
    pub excess_orders: f64,
    /// Σ shoppers × downstream conversion, for the noise.
    pub weighted_shoppers: f64,
    /// The newest minute's σ of a window's drop-off rate.
    pub window_sd: f64,
}

/// One closed window, with every input, so that a person can redo its arithmetic.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ImpactWindow {
    pub from: Timestamp,
    /// When its last minute was judged.
    pub to: Timestamp,
    pub minutes: u32,
    pub shoppers: f64,
    pub went_on: f64,
    pub baseline_drop_off: f64,
    pub observed_drop_off: f64,
    pub downstream_conversion: f64,
    pub window_sd: f64,
    /// `max(0, excess drop-offs × downstream conversion)`, quantised: what it booked.
    pub lost_micro_orders: i64,
    pub aov_minor: i64,
    /// `lost_micro_orders × aov_minor`: the window's loss in micro-minor units (exact).
    pub loss_micro_minor: i128,
    /// σ of the window's lost orders from the baseline's noise.
    pub sd_orders: f64,
}

/// An incident's running impact: the totals of every closed window, the newest windows, and
/// the window being gathered.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Impact {
    pub currency: Currency,
    pub window_minutes: u32,
    pub open: OpenWindow,
    pub n_windows: u64,
    pub n_windows_booked: u64,
    /// Σ over closed windows of the quantised lost orders.
    pub lost_micro_orders: i64,
    /// Σ over closed windows of `lost_micro_orders × aov_minor`. Exact; rounded on reading.
    pub loss_micro_minor: i128,
    /// Shoppers who reached the stage in the windows that booked a loss.
    pub shoppers_affected: f64,
    /// Shoppers who reached the stage in every closed window.
    pub shoppers_exposed: f64,
    /// What the baseline's noise alone would have booked over the closed windows: the mean
    /// and the variance of Σ max(0, noise), in orders.
    pub noise_mean_orders: f64,
    pub noise_variance_orders: f64,
    /// The latest minute's AOV and duration factor.
    pub aov: Aov,
    pub duration_factor: f64,
    /// The newest closed windows, oldest first, at most [`IMPACT_WINDOWS_KEPT`].
    pub windows: VecDeque<ImpactWindow>,
    /// Set when a booking stopped; nothing more is booked.
    #[serde(default)]
    pub error: Option<ImpactError>,
    /// The last judged minute priced; a minute at or before it is not priced again.
    #[serde(default)]
    pub last_minute: Option<Minute>,
    /// Minutes skipped because a statistic was not a finite number (a time-of-week slot with
    /// no expected traffic has no noise figure): they book nothing and stop nothing.
    #[serde(default)]
    pub minutes_skipped: u64,
}

/// The figures of an [`Impact`] now, rounded once, half to even.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ImpactFigures {
    /// Estimated loss so far (closed windows).
    pub loss: Money,
    /// The newest closed window's loss rate, per hour.
    pub loss_per_hour: Money,
    /// `loss_per_hour × 24 × duration factor`.
    pub daily_projection: Money,
    /// The uncertainty band: what the baseline's own noise would book, clipped at zero per
    /// window, on average plus [`BAND_SIGMAS`] σ. A loss above it is beyond noise.
    pub band: Money,
    /// The loss is no larger than the band: it may be the baseline's own noise.
    pub within_noise: bool,
    pub orders_lost: f64,
    pub shoppers_affected: f64,
}

impl Impact {
    pub fn new(currency: Currency, window_minutes: u32, aov: Aov) -> Impact {
        Impact {
            currency,
            window_minutes: window_minutes.max(1),
            open: OpenWindow::default(),
            n_windows: 0,
            n_windows_booked: 0,
            lost_micro_orders: 0,
            loss_micro_minor: 0,
            shoppers_affected: 0.0,
            shoppers_exposed: 0.0,
            noise_mean_orders: 0.0,
            noise_variance_orders: 0.0,
            aov,
            duration_factor: 1.0,
            windows: VecDeque::new(),
            error: None,
            last_minute: None,
            minutes_skipped: 0,
        }
    }

    /// Adds one judged minute; closes the window once it holds `window_minutes` minutes.
    pub fn observe(&mut self, minute: &ImpactMinute) {
        if self.error.is_some() || self.last_minute.is_some_and(|last| minute.minute <= last) {
            return;
        }
        if minute.aov.currency != self.currency {
            self.error = Some(ImpactError::CurrencyChanged);
            return;
        }
        self.last_minute = Some(minute.minute);
        let finite = [
            minute.shoppers,
            minute.went_on,
            minute.baseline_drop_off,
            minute.downstream_conversion,
            minute.window_sd,
        ]
        .iter()
        .all(|v| v.is_finite());
        if !finite {
            self.minutes_skipped += 1;
            return;
        }
        self.aov = minute.aov;
        if minute.duration_factor.is_finite() {
            self.duration_factor = minute.duration_factor.clamp(0.0, DURATION_FACTOR_MAX);
        }
        self.window_minutes = minute.window_minutes.max(1);
        let shoppers = minute.shoppers.max(0.0);
        let went_on = minute.went_on.clamp(0.0, shoppers);
        let baseline = minute.baseline_drop_off.clamp(0.0, 1.0);
        let downstream = minute.downstream_conversion.clamp(0.0, 1.0);
        let open = &mut self.open;
        open.from.get_or_insert(minute.at);
        open.minutes += 1;
        open.shoppers += shoppers;
        open.went_on += went_on;
        open.expected_drop_offs += shoppers * baseline;
        open.excess_orders += ((shoppers - went_on) - shoppers * baseline) * downstream;
        open.weighted_shoppers += shoppers * downstream;
        open.window_sd = minute.window_sd.max(0.0);
        if open.minutes >= self.window_minutes {
            self.close_window(minute.at);
        }
    }

    /// Books the window being gathered (a partial one at resolution), if it has any minute.
    pub fn close_window(&mut self, at: Timestamp) {
        let open = std::mem::take(&mut self.open);
        let Some(from) = open.from else { return };
        if self.error.is_some() {
            return;
        }
        match self.book(open, from, at) {
            Ok(window) => {
                self.windows.push_back(window);
                if self.windows.len() > IMPACT_WINDOWS_KEPT {
                    self.windows.pop_front();
                }
            }
            Err(error) => self.error = Some(error),
        }
    }

    fn book(
        &mut self,
        open: OpenWindow,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<ImpactWindow, ImpactError> {
        let window_sd = open.window_sd;
        let lost_micro_orders = quantise(open.excess_orders.max(0.0))?;
        let aov_minor = self.aov.minor;
        let loss_micro_minor = i128::from(lost_micro_orders)
            .checked_mul(i128::from(aov_minor))
            .ok_or(ImpactError::Overflow)?;
        let total_orders = self
            .lost_micro_orders
            .checked_add(lost_micro_orders)
            .ok_or(ImpactError::Overflow)?;
        let total_loss = self
            .loss_micro_minor
            .checked_add(loss_micro_minor)
            .ok_or(ImpactError::Overflow)?;
        // The noise of a window's drop-off count is its shoppers times the σ of its rate; each
        // drop-off weighs as the order it would have become.
        let sd_orders = open.weighted_shoppers * window_sd.max(0.0);
        self.lost_micro_orders = total_orders;
        self.loss_micro_minor = total_loss;
        self.n_windows += 1;
        self.shoppers_exposed += open.shoppers;
        if lost_micro_orders > 0 {
            self.n_windows_booked += 1;
            self.shoppers_affected += open.shoppers;
        }
        self.noise_mean_orders += CLIPPED_NOISE_MEAN * sd_orders;
        self.noise_variance_orders += CLIPPED_NOISE_VARIANCE * sd_orders * sd_orders;
        let rate = |part: f64| {
            if open.shoppers > 0.0 {
                part / open.shoppers
            } else {
                0.0
            }
        };
        Ok(ImpactWindow {
            from,
            to,
            minutes: open.minutes,
            shoppers: open.shoppers,
            went_on: open.went_on,
            baseline_drop_off: rate(open.expected_drop_offs),
            observed_drop_off: rate(open.shoppers - open.went_on),
            downstream_conversion: if open.shoppers > 0.0 {
                open.weighted_shoppers / open.shoppers
            } else {
                0.0
            },
            window_sd,
            lost_micro_orders,
            aov_minor,
            loss_micro_minor,
            sd_orders,
        })
    }

    /// The estimated loss so far (closed windows), rounded once, half to even: what the ledger
    /// books. Apart from [`Impact::figures`], so that a projection or band that cannot be
    /// computed never hides the loss itself.
    pub fn loss(&self) -> Result<Money, ImpactError> {
        let minor = i64::try_from(divide_half_even(self.loss_micro_minor, i128::from(MICRO)))
            .map_err(|_| ImpactError::Overflow)?;
        Ok(Money::new(minor, self.currency))
    }

    /// The figures now, each rounded once, half to even.
    pub fn figures(&self) -> Result<ImpactFigures, ImpactError> {
        let money = |micro_minor: i128, divisor: i128| -> Result<Money, ImpactError> {
            let minor = i64::try_from(divide_half_even(micro_minor, divisor))
                .map_err(|_| ImpactError::Overflow)?;
            Ok(Money::new(minor, self.currency))
        };
        let micro = i128::from(MICRO);
        let loss = money(self.loss_micro_minor, micro)?;
        let window_minutes = i128::from(self.window_minutes.max(1));
        let last = self.windows.back().map_or(0, |w| w.loss_micro_minor);
        let last_minutes = self
            .windows
            .back()
            .map_or(window_minutes, |w| i128::from(w.minutes.max(1)));
        let per_hour_numerator = last
            .checked_mul(MINUTES_PER_HOUR)
            .ok_or(ImpactError::Overflow)?;
        let loss_per_hour = money(per_hour_numerator, micro * last_minutes)?;
        let factor_micro = i128::from(quantise(self.duration_factor)?);
        let daily_numerator = per_hour_numerator
            .checked_mul(HOURS_PER_DAY)
            .and_then(|v| v.checked_mul(factor_micro))
            .ok_or(ImpactError::Overflow)?;
        let daily_projection = money(daily_numerator, micro * micro * last_minutes)?;
        let band_micro_orders = quantise(
            self.noise_mean_orders.max(0.0)
                + BAND_SIGMAS * self.noise_variance_orders.max(0.0).sqrt(),
        )?;
        let band_micro_minor = i128::from(band_micro_orders)
            .checked_mul(i128::from(self.aov.minor))
            .ok_or(ImpactError::Overflow)?;
        let band = money(band_micro_minor, micro)?;
        Ok(ImpactFigures {
            loss,
            loss_per_hour,
            daily_projection,
            band,
            within_noise: loss.minor <= band.minor,
            orders_lost: self.lost_micro_orders as f64 / MICRO as f64,
            shoppers_affected: self.shoppers_affected,
        })
    }

    /// The inputs of the figures as canonical JSON text (keys sorted, no spaces): what the
    /// ledger links its entries to, so a person can redo the arithmetic. Every window kept.
    pub fn inputs_json(&self) -> String {
        self.inputs_json_newest(usize::MAX)
    }

    /// [`Impact::inputs_json`] with only the newest `windows_max` windows listed (the totals
    /// still cover every window; `windows_omitted` says how many are not listed), for a
    /// reader with a size limit such as a ledger entry's metadata.
    pub fn inputs_json_newest(&self, windows_max: usize) -> String {
        let omitted = self.windows.len().saturating_sub(windows_max);
        let windows: Vec<serde_json::Value> = self
            .windows
            .iter()
            .skip(omitted)
            .map(|w| {
                serde_json::json!({
                    "aov_minor": w.aov_minor,
                    "from_ms": w.from.millis(),
                    "loss_micro_minor": w.loss_micro_minor.to_string(),
                    "lost_micro_orders": w.lost_micro_orders,
                    "minutes": w.minutes,
                    "to_ms": w.to.millis(),
                })
            })
            .collect();
        // serde_json's map keeps keys sorted (no `preserve_order`): the text is canonical.
        // The i128 sums are text, as JSON readers lose integers past 2^53.
        serde_json::json!({
            "aov_minor": self.aov.minor,
            "aov_source": self.aov.source.as_str(),
            "currency": self.currency.code(),
            "duration_factor_micro": quantise(self.duration_factor).unwrap_or(0),
            "loss_micro_minor": self.loss_micro_minor.to_string(),
            "lost_micro_orders": self.lost_micro_orders,
            "n_windows": self.n_windows,
            "rounding": "half_even",
            "window_minutes": self.window_minutes,
            "windows": windows,
            "windows_omitted": omitted,
        })
        .to_string()
    }
}

/// A non-negative statistic in millionths, rounded half to even; an error when it is not a
/// finite number or does not fit an `i64`.
pub fn quantise(value: f64) -> Result<i64, ImpactError> {
    if !value.is_finite() {
        return Err(ImpactError::NotFinite);
    }
    let scaled = (value * MICRO as f64).round_ties_even();
    // `i64::MAX as f64` rounds up to 2^63, which does not fit: refuse it too.
    if scaled.abs() >= 9.223_372_036_854_775e18 {
        return Err(ImpactError::Overflow);
    }
    Ok(scaled as i64)
}

/// `numerator / divisor` rounded half to even; `divisor` positive.
pub fn divide_half_even(numerator: i128, divisor: i128) -> i128 {
    debug_assert!(divisor > 0);
    let quotient = numerator.div_euclid(divisor);
    let remainder = numerator.rem_euclid(divisor);
    let twice = remainder * 2;
    if twice > divisor || (twice == divisor && quotient % 2 != 0) {
        quotient + 1
    } else {
        quotient
    }
}

#[cfg(test)]
mod tests;
