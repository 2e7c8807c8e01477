//! The detector's baselines: `GET /api/v1/funnels/{id}/baseline` (and
//! `revloop baseline show --json`), and `POST /api/v1/detector/rebuild`.

use serde::{Deserialize, Serialize};

use crate::Segment;
use crate::names::names;

names! {
    /// Days of the week, Monday first, as baselines are shown.
    pub enum Weekday("weekday") {
        Mon = "Mon",
        Tue = "Tue",
        Wed = "Wed",
        Thu = "Thu",
        Fri = "Fri",
        Sat = "Sat",
        Sun = "Sun",
    }
}

/// The 168 local time-of-week slots of one step's baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Baseline {
    pub funnel: String,
    /// The stage whose shoppers drop off.
    pub stage: String,
    /// `null`: every shopper.
    pub segment: Option<Segment>,
    pub time_zone: String,
    pub slots: Vec<BaselineSlot>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BaselineSlot {
    pub weekday: Weekday,
    pub hour: u8,
    /// `null` until the slot has history.
    pub drop_off_rate: Option<f64>,
    pub shoppers_per_minute: Option<f64>,
    /// Minutes of history, exponentially weighted.
    pub weight_minutes: f64,
}

/// The reply to `POST /api/v1/detector/rebuild`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Rebuilt {
    pub rebuilt: bool,
    /// Alert events the rebuilt detector found in the history.
    pub alert_events: usize,
    /// The first minute not yet judged; `null` without history.
    pub judged_until: Option<String>,
}

names! {
    /// Where one funnel's judging stands.
    pub enum JudgingState("judging state") {
        /// Reading its history; no minute is judged live yet.
        WarmingUp = "warming_up",
        /// Judging each minute once it has settled.
        Live = "live",
        /// Its last read of the store failed; it retries with backoff.
        Failing = "failing",
    }
}

names! {
    /// The detector as a whole, as `/readyz` and `GET /api/v1/detector` say it.
    pub enum DetectorHealth("detector health") {
        /// At least one funnel is still reading its history.
        WarmingUp = "warming_up",
        /// Every funnel has finished its warm-up (some may be failing: see each funnel).
        Live = "live",
        /// The detector's loop has made no progress for well beyond its poll interval.
        Stalled = "stalled",
    }
}

/// A failing funnel's last failed read. The error is a class and a summary: the database's
/// own text goes to the server's log, never into a reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReadFailure {
    /// When the first of the failures in a row happened.
    pub since: String,
    /// Failed reads in a row.
    pub attempts: u32,
    /// When the read is tried again.
    pub next_retry_at: String,
    /// `store_unavailable`, `store_io`, `store_error`, `store_panic` or `unknown_funnel`.
    pub error: String,
    pub message: String,
}

/// How one funnel's judging stands: part of `GET /api/v1/funnels/{id}/detector` and each
/// entry of `GET /api/v1/detector`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FunnelJudging {
    pub funnel: String,
    pub state: JudgingState,
    /// When judging went live: stamped after the warm-up finished. `null` while warming up.
    pub live_since: Option<String>,
    /// The start of the last minute judged; `null` before any.
    pub last_judged_minute: Option<String>,
    /// Now minus the end of the last minute judged, in whole seconds (the settle time is part
    /// of it); `null` before any minute is judged.
    pub lag_seconds: Option<i64>,
    /// The funnel's failed reads since the server started.
    pub read_failures_total: u64,
    /// Present while the funnel is failing.
    pub failure: Option<ReadFailure>,
}

/// The reply to `GET /api/v1/detector`: the detector as a whole and every funnel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DetectorStatus {
    pub state: DetectorHealth,
    /// When the last funnel to finish its warm-up went live; `null` while any warms up.
    pub live_since: Option<String>,
    /// Seconds since the detector's loop last made progress (real time, not the server's
    /// clock).
    pub progress_age_seconds: u64,
    pub funnels: Vec<FunnelJudging>,
}
