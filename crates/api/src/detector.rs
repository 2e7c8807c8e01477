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
