//! The short memories of a series: a ring of its last minutes' counts (the trailing window)
//! and the span of evidence since a CUSUM last stood at zero (what an alert describes).
//!
//! Plain arithmetic on counts; it never knows what the counts mean or judges them.

use crate::time::Minute;

/// The per-minute counts of one series' last minutes.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(super) struct Ring {
    /// Per minute, oldest overwritten first: for a conversion series `[shoppers, shoppers who
    /// went on, expected drop-offs, events at the next stage]`; for a volume series
    /// `[events, 0, expected events, 0]`.
    pub(super) cells: Box<[[f64; 4]]>,
    next: usize,
    pub(super) filled: usize,
}

impl Ring {
    pub(super) fn new(len: usize) -> Ring {
        Ring {
            cells: vec![[0.0; 4]; len.max(1)].into_boxed_slice(),
            next: 0,
            filled: 0,
        }
    }

    /// Whether a ring read back from a snapshot is one `Ring::new(len)` could have become:
    /// its length, and its cursor and fill within it.
    pub(super) fn is_well_formed(&self, len: usize) -> bool {
        self.cells.len() == len.max(1) && self.next < self.cells.len() && self.filled <= len.max(1)
    }

    pub(super) fn push(&mut self, cell: [f64; 4]) {
        self.cells[self.next] = cell;
        self.next = (self.next + 1) % self.cells.len();
        self.filled = (self.filled + 1).min(self.cells.len());
    }

    /// Sums of the last `k` minutes pushed.
    pub(super) fn sums_last(&self, k: usize) -> [f64; 4] {
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

    pub(super) fn sums(&self) -> [f64; 4] {
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
#[derive(Debug, Clone, Copy, Default, serde::Serialize, serde::Deserialize)]
pub(super) struct Span {
    pub(super) onset: Minute,
    pub(super) minutes: f64,
    pub(super) n: f64,
    pub(super) x: f64,
    pub(super) expected: f64,
}

impl Span {
    pub(super) fn add(
        &mut self,
        minute: Minute,
        n: f64,
        x: f64,
        expected: f64,
        statistic_was_zero: bool,
    ) {
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
