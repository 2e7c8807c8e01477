//! What the detector says about its series when asked (the API, `revloop baseline`): each
//! series' status and its numbers now.
//!
//! Plain data; it never computes anything.

use crate::alert::Severity;

/// What a series can say about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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
    /// The series alerted at this local hour on several of the last days: its baseline for the
    /// hour was relearned from what those days showed, and the hour is not judged (opens no
    /// alert) until the next local day.
    BaselineSuspect,
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
            SeriesStatus::BaselineSuspect => "baseline_suspect",
            SeriesStatus::Alerting(Severity::P1) => "alerting_p1",
            SeriesStatus::Alerting(Severity::P2) => "alerting_p2",
        }
    }
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
    /// Factor on the binomial variance of a window learned from history (Laney's φ; 1 for
    /// independent shoppers).
    pub binomial_factor: f64,
    pub cusum_p2: f64,
    pub threshold_p2: f64,
    pub cusum_p1: f64,
    pub threshold_p1: f64,
}
