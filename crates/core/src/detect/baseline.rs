//! The time-of-week baseline table: where a minute falls among the 168 local hourly slots,
//! the exponentially weighted sums learned per slot, and the between-window variance
//! (overdispersion) learned alongside.
//!
//! It only stores and interpolates what it is told to learn; it never decides whether a minute
//! is fit to learn from (the series do) and never judges a minute.

use crate::time::{MS_PER_DAY, MS_PER_HOUR, MS_PER_MINUTE};

pub(super) const HOURS_PER_DAY: usize = 24;
const DAYS_PER_WEEK: usize = 7;
/// Time-of-week slots: one per local hour of the week, Monday 00:00 first.
pub const SLOTS: usize = DAYS_PER_WEEK * HOURS_PER_DAY;
/// A slot is usable once it holds this many minutes of history (most of one week's hour).
const SLOT_READY_MINUTES: f32 = 45.0;

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

/// Where a minute falls among the time-of-week slots, for interpolation between the centres of
/// two neighbouring slots.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct SlotPosition {
    /// The slot the minute belongs to (where it is learned).
    pub(super) slot: usize,
    pub(super) a: usize,
    pub(super) b: usize,
    /// Weight of slot `b`.
    pub(super) wb: f64,
    /// Local days since 1970-01-01: when a new local day starts.
    pub(super) local_day: i64,
}

impl SlotPosition {
    pub(super) fn of(local_ms: i64) -> SlotPosition {
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
                local_day: days,
            }
        } else {
            SlotPosition {
                slot,
                a: slot,
                b: (slot + 1) % SLOTS,
                wb: fraction - 0.5,
                local_day: days,
            }
        }
    }
}

/// Exponentially weighted sums per time-of-week slot: `[a, b, minutes]`.
#[derive(Debug, Clone)]
pub(super) struct SlotTable(pub(super) Box<[[f32; 3]; SLOTS]>);

impl SlotTable {
    pub(super) fn new() -> SlotTable {
        SlotTable(Box::new([[0.0; 3]; SLOTS]))
    }

    pub(super) fn learn(&mut self, slot: usize, a: f64, b: f64, decay: f32) {
        let cell = &mut self.0[slot];
        cell[0] = cell[0] * decay + a as f32;
        cell[1] = cell[1] * decay + b as f32;
        cell[2] = cell[2] * decay + 1.0;
    }

    pub(super) fn ready(&self, position: SlotPosition) -> bool {
        self.0[position.a][2] >= SLOT_READY_MINUTES && self.0[position.b][2] >= SLOT_READY_MINUTES
    }

    /// Sets `b` of every slot of `hour` (of day) to `a · ratio`: the hour relearned at once,
    /// keeping how many `a` (shoppers) and minutes it has seen.
    pub(super) fn set_hour_of_day_ratio(&mut self, hour: usize, ratio: f64) {
        for day in 0..DAYS_PER_WEEK {
            let cell = &mut self.0[day * HOURS_PER_DAY + hour];
            cell[1] = (f64::from(cell[0]) * ratio) as f32;
        }
    }

    /// `a / b`, interpolated.
    pub(super) fn ratio(&self, position: SlotPosition) -> f64 {
        let ratio = |cell: [f32; 3]| f64::from(cell[0]) / f64::from(cell[1]).max(1e-9);
        (1.0 - position.wb) * ratio(self.0[position.a]) + position.wb * ratio(self.0[position.b])
    }

    /// Every slot as a conversion baseline (`a` shoppers at the stage, `b` of them went on).
    pub(super) fn report(&self) -> Vec<SlotBaseline> {
        self.0
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
            .collect()
    }

    /// The day's traffic shape from `position`: `a` expected over the next 24 hours (this
    /// hour's slot and the 23 after it) divided by 24 times `a` per minute now, interpolated.
    /// A slot without history counts as now; 1 when nothing is known now.
    pub(super) fn day_shape(&self, position: SlotPosition) -> f64 {
        let now = self.rate_a(position);
        if !(now > 0.0 && now.is_finite()) {
            return 1.0;
        }
        let day: f64 = (0..HOURS_PER_DAY)
            .map(|hour| {
                let cell = self.0[(position.slot + hour) % SLOTS];
                if cell[2] > 0.0 {
                    f64::from(cell[0]) / f64::from(cell[2])
                } else {
                    now
                }
            })
            .sum();
        day / (HOURS_PER_DAY as f64 * now)
    }

    /// `a` per minute, interpolated.
    pub(super) fn rate_a(&self, position: SlotPosition) -> f64 {
        let per_minute = |cell: [f32; 3]| f64::from(cell[0]) / f64::from(cell[2]).max(1e-9);
        (1.0 - position.wb) * per_minute(self.0[position.a])
            + position.wb * per_minute(self.0[position.b])
    }
}

/// Running estimate of a between-window variance, from aligned windows.
#[derive(Debug, Clone, Copy, Default, serde::Serialize, serde::Deserialize)]
pub(super) struct Overdispersion {
    value: f64,
    n_windows: u32,
    /// Sums of the window being gathered: `[n, x, expected]`.
    pub(super) window: [f64; 3],
}

impl Overdispersion {
    /// Memory of the estimate: about a week of windows, a running mean before that.
    pub(super) fn update(&mut self, sample: f64, memory_windows: f64) {
        self.n_windows = self.n_windows.saturating_add(1);
        let weight = (1.0 / f64::from(self.n_windows)).max(1.0 / memory_windows);
        self.value += weight * (sample - self.value);
    }

    pub(super) fn get(&self) -> f64 {
        self.value.max(0.0)
    }
}

/// Bounds of the binomial factor φ of [`NoiseModel`]: a window's counts are never read as much
/// less noisy than independent shoppers, nor the excess taken past what the traffic can show.
const BINOMIAL_FACTOR_MIN: f64 = 1.0;
const BINOMIAL_FACTOR_MAX: f64 = 4.0;
/// Windows of evidence before φ is fitted rather than taken as 1.
const NOISE_FIT_WINDOWS_MIN: u32 = 100;
/// Ridge toward φ = 1, as a share of the weighted spread of the binomial term, and at least
/// [`BINOMIAL_FACTOR_RIDGE_MIN`] of its squared mean: a series whose windows all hold about as
/// many shoppers cannot tell φ from τ², and keeps φ near 1.
const BINOMIAL_FACTOR_RIDGE: f64 = 0.1;
const BINOMIAL_FACTOR_RIDGE_MIN: f64 = 0.05;
/// A squared residual counts at most this many times the variance the model expects (a window
/// of an unnoticed incident must not widen every limit).
const RESIDUAL_CAP: f64 = 25.0;

/// The noise of a conversion series' window: its drop-off rate has variance
/// `φ·p(1 − p)/n + τ²`, a binomial term scaled by φ (Laney's p′ correction: counted shoppers
/// trade places across minute edges and move in small groups, which scales with the shoppers)
/// and a between-window variance τ² that does not shrink with them (a beta-binomial's). Both
/// are fitted to the squared residuals of aligned windows against the baseline by least squares
/// on the binomial term, over about a week of windows. The quiet hours (a large binomial term)
/// then say what φ is and the busy hours what τ² is, so neither is spread over the whole day: a
/// single τ² learned in every hour alike is too wide at the peak and too narrow at night. (Each
/// window counts alike: weighting by the inverse square of its expected variance, the textbook
/// choice, let a week of a small shop's busy hours set τ² alone and raised more false P2s in
/// the demo's history.) When φ comes out at 1 this is the plain mean excess over the binomial.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub(super) struct NoiseModel {
    /// Exponentially weighted sums `[1, b, b², s, b·s]` of windows' binomial terms `b` and
    /// squared residuals `s`.
    sums: [f64; 5],
    n_windows: u32,
    /// The fit of the sums: `[φ, τ²]`; `[0, 0]` before the first window (read as φ = 1).
    fit: [f64; 2],
    /// Sums of the window being gathered: `[n, x, expected]`.
    pub(super) window: [f64; 3],
}

impl NoiseModel {
    /// The binomial factor φ.
    pub(super) fn phi(&self) -> f64 {
        self.fit[0].max(BINOMIAL_FACTOR_MIN)
    }

    /// The between-window variance τ².
    pub(super) fn tau2(&self) -> f64 {
        self.fit[1].max(0.0)
    }

    /// Variance of the drop-off rate of a window of `n` shoppers at rate `p`, plus `extra` (the
    /// baseline's own uncertainty).
    pub(super) fn variance(&self, p: f64, n: f64, extra: f64) -> f64 {
        if n <= 0.0 {
            return f64::INFINITY;
        }
        self.phi() * p * (1.0 - p) / n + self.tau2() + extra
    }

    pub(super) fn sd(&self, p: f64, n: f64, extra: f64) -> f64 {
        self.variance(p, n, extra).sqrt()
    }

    /// Takes one window: binomial term `binomial` (`p(1 − p)/n`) and residual `residual`.
    /// Memory: about `memory_windows` windows.
    pub(super) fn update(&mut self, binomial: f64, residual: f64, memory_windows: f64) {
        let expected = self.variance_of(binomial);
        let s = (residual * residual).min(RESIDUAL_CAP * expected);
        let decay = 1.0 - 1.0 / memory_windows.max(1.0);
        let terms = [1.0, binomial, binomial * binomial, s, binomial * s];
        for (sum, term) in self.sums.iter_mut().zip(terms) {
            *sum = *sum * decay + term;
        }
        self.n_windows = self.n_windows.saturating_add(1);
        self.refit();
    }

    fn variance_of(&self, binomial: f64) -> f64 {
        if self.n_windows == 0 {
            return binomial;
        }
        self.phi() * binomial + self.tau2()
    }

    fn refit(&mut self) {
        let [w, wb, wbb, ws, wbs] = self.sums;
        if w <= 0.0 {
            return;
        }
        let (mean_b, mean_s) = (wb / w, ws / w);
        let phi = if self.n_windows < NOISE_FIT_WINDOWS_MIN {
            1.0
        } else {
            let spread = (wbb / w - mean_b * mean_b).max(0.0);
            let covariance = wbs / w - mean_b * mean_s;
            let ridge =
                (BINOMIAL_FACTOR_RIDGE * spread).max(BINOMIAL_FACTOR_RIDGE_MIN * mean_b * mean_b);
            ((covariance + ridge) / (spread + ridge))
                .clamp(BINOMIAL_FACTOR_MIN, BINOMIAL_FACTOR_MAX)
        };
        self.fit = [phi, (mean_s - phi * mean_b).max(0.0)];
    }
}

/// A baseline hour of day is suspect when the series alerted in it on at least this many of
/// the last [`SUSPECT_DAYS`] local days: the same hours alarming day after day are more likely a
/// baseline that is wrong at those hours than an incident that recurs on the clock.
pub(super) const SUSPECT_ALERTED_DAYS_MIN: u32 = 2;
/// The days [`SUSPECT_ALERTED_DAYS_MIN`] counts over (today not included).
pub(super) const SUSPECT_DAYS: u32 = 3;
/// A day whose alerts covered more local hours than this is an ongoing outage rather than
/// hours that recur on the clock: it makes no hour suspect.
const RECURRING_HOURS_MAX: usize = HOURS_PER_DAY / 2;
/// What each earlier day's recent drop-off keeps at a new local day: the recent estimate an hour
/// is relearned from is mostly the last two days.
const RECENT_DAY_DECAY: f32 = 0.25;

/// Which local hours of the day a series alerted in, day by day, and what it saw in each hour
/// lately (alerting or not): the evidence that a baseline hour is wrong and what to relearn it
/// from. Plain data, a function of the counts alone, so every node derives the same.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub(super) struct HourHistory {
    /// Per local hour: bit `i` set when the series had an alert open in that hour `i` days ago.
    alerted_days: [u8; HOURS_PER_DAY],
    /// Per local hour: `[a, b]` of the last days, each earlier day kept at
    /// [`RECENT_DAY_DECAY`].
    recent: [[f32; 2]; HOURS_PER_DAY],
    /// Hours whose baseline is suspect today (bit per hour): relearned at the start of the day,
    /// and not judged until it ends.
    pub(super) suspect_today: u32,
    /// The local day the bits describe as today.
    day: Option<i64>,
}

impl Default for HourHistory {
    fn default() -> HourHistory {
        HourHistory {
            alerted_days: [0; HOURS_PER_DAY],
            recent: [[0.0; 2]; HOURS_PER_DAY],
            suspect_today: 0,
            day: None,
        }
    }
}

impl HourHistory {
    /// Whether `local_day` is not the day the history describes as today.
    pub(super) fn is_new_day(&self, local_day: i64) -> bool {
        self.day != Some(local_day)
    }

    /// Moves to `local_day`; returns the hours that became suspect, with the `b / a` ratio
    /// they showed lately, for the caller to relearn. Days before the last one are idle days:
    /// nothing alerted in them.
    pub(super) fn start_day(&mut self, local_day: i64) -> Vec<(usize, f64)> {
        let Some(today) = self.day else {
            self.day = Some(local_day);
            return Vec::new();
        };
        if local_day < today {
            // A day from the future (state that does not fit the counts): start again.
            *self = HourHistory {
                day: Some(local_day),
                ..HourHistory::default()
            };
            return Vec::new();
        }
        if local_day == today {
            return Vec::new();
        }
        self.day = Some(local_day);
        let shift = local_day.saturating_sub(today).clamp(0, 8) as u32;
        let keep = RECENT_DAY_DECAY.powi(shift as i32);
        self.suspect_today = 0;
        for hours in &mut self.alerted_days {
            *hours = u8::try_from((u32::from(*hours) << shift) & 0xff).unwrap_or(0);
        }
        // A day counts toward an hour's suspicion only if the series was quiet for most of it:
        // an outage that runs all day long is an incident to page about, not the same hours
        // recurring on the clock, and must not be relearned as the baseline.
        let pattern_days: u8 = (1..=SUSPECT_DAYS)
            .filter(|&day| {
                let alerted_hours = self
                    .alerted_days
                    .iter()
                    .filter(|hours| *hours & (1 << day) != 0)
                    .count();
                alerted_hours <= RECURRING_HOURS_MAX
            })
            .fold(0, |days, day| days | (1 << day));
        let mut suspect = Vec::new();
        for hour in 0..HOURS_PER_DAY {
            let alerted = self.alerted_days[hour] & pattern_days;
            let [a, b] = self.recent[hour];
            if alerted.count_ones() >= SUSPECT_ALERTED_DAYS_MIN && a > 0.0 {
                suspect.push((hour, f64::from(b) / f64::from(a)));
                self.suspect_today |= 1 << hour;
                // Relearned: its old alerts say nothing about the new baseline.
                self.alerted_days[hour] = 0;
            }
            self.recent[hour] = [a * keep, b * keep];
        }
        suspect
    }

    pub(super) fn record(&mut self, hour: usize, alerting: bool, learned: Option<[f64; 2]>) {
        if alerting {
            self.alerted_days[hour] |= 1;
        }
        if let Some([a, b]) = learned {
            let cell = &mut self.recent[hour];
            cell[0] += a as f32;
            cell[1] += b as f32;
        }
    }

    pub(super) fn is_suspect(&self, hour: usize) -> bool {
        self.suspect_today & (1 << hour) != 0
    }
}
