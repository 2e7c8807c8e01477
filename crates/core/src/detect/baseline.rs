//! The time-of-week baseline table: where a minute falls among the 168 local hourly slots,
//! the exponentially weighted sums learned per slot, and the between-window variance
//! (overdispersion) learned alongside.
//!
//! It only stores and interpolates what it is told to learn; it never decides whether a minute
//! is fit to learn from (the series do) and never judges a minute.

use crate::time::{MS_PER_DAY, MS_PER_HOUR, MS_PER_MINUTE};

/// Time-of-week slots: one per local hour of the week, Monday 00:00 first.
pub const SLOTS: usize = 7 * 24;
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
