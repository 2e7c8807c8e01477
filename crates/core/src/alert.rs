//! What the detector says and the incident engine hears: an alert's kind, severity and the
//! events of its life (opened, upgraded, closed).
//!
//! These types sit apart from `detect` so that the incident engine depends on the detector's
//! output, never on the detector itself.

use crate::time::Timestamp;

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum Severity {
    P1,
    P2,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::P1 => "P1",
            Severity::P2 => "P2",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// Shoppers at a stage stopped going on to the next.
    Conversion,
    /// A stage's events vanished or surged: a tracking or traffic problem, not lost shoppers.
    Volume,
    /// revloop itself cannot judge a funnel (the dead man's switch): never said by the
    /// detector, only by the watch over it (`incident::Watch`), so that a blind guard is an
    /// incident like a drop-off and not a silence.
    Guard,
    /// A responder declared the incident by hand (`IncidentEngine::declare`): never said by
    /// the detector, so that an incident seen before the detector sees it walks the same
    /// path as a detected one.
    Declared,
}

impl AlertKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::Conversion => "conversion",
            AlertKind::Volume => "volume",
            AlertKind::Guard => "guard",
            AlertKind::Declared => "declared",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlertEventKind {
    Opened,
    Upgraded,
    Closed,
}

impl AlertEventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertEventKind::Opened => "opened",
            AlertEventKind::Upgraded => "upgraded",
            AlertEventKind::Closed => "closed",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Direction {
    /// More drop-off, or fewer events.
    Worse,
    /// More events than expected: a surge.
    Surge,
}

/// A dimension value that explains part of an alert.
#[derive(Debug, Clone, PartialEq)]
pub struct TopSegment {
    pub dimension: String,
    pub value: String,
    /// Share of the lost conversions (or events) of the dimension that this value accounts for.
    pub share: f64,
    /// Share of the stage's shoppers (or expected events) it has; a value explains the alert
    /// when its `share` is well above this.
    pub traffic_share: f64,
}

/// An alert opened, upgraded or closed.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertEvent {
    /// Names the alert: a hash of its funnel, segment, stage, kind and the minute it opened,
    /// so that every node and every restart gives an alert the same id.
    pub alert_id: u64,
    pub funnel: String,
    /// For `conversion`, the stage whose shoppers drop off; for `volume`, the stage whose
    /// events vanished or surged.
    pub stage: String,
    pub kind: AlertKind,
    pub severity: Severity,
    pub event: AlertEventKind,
    pub direction: Direction,
    /// Event time of the judgement: the end of the minute judged.
    pub at: Timestamp,
    /// Estimated start of the change: when the evidence began to accumulate.
    pub onset: Timestamp,
    /// `None` for the funnel as a whole.
    pub segment: Option<(String, String)>,
    /// For `conversion`, drop-off rates; for `volume`, events per minute. Over the span from
    /// `onset` when opened or upgraded, over the last window when closed.
    pub baseline_rate: f64,
    pub observed_rate: f64,
    /// The deviation in standard deviations of one detection window, in the alert's direction:
    /// positive for more drop-off, for fewer events (`worse`) or for more events (`surge`).
    pub sigma: f64,
    /// Shoppers (conversion) or events (volume) over the same span.
    pub n: i64,
    pub top_segments: Vec<TopSegment>,
}
