//! Silences: windows in which new incidents are recorded but page nobody until they end,
//! from the configuration (written in local time) or added while running. The engine keeps
//! and applies them; this module owns their types and limits. It never names the
//! configuration: the config turns its local-time windows into [`Silence`]s in UTC.

use super::action::TEXT_BYTES_MAX;
use crate::time::{DurationMs, Timestamp};

/// A silence: incidents matching it in its time are recorded but page nobody until it ends
/// (then, still unacknowledged, they escalate from L1).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Silence {
    pub funnel: Option<String>,
    pub stage: Option<String>,
    pub from: Timestamp,
    pub to: Timestamp,
    pub reason: String,
}

/// A silence added while running (through the API), kept with the engine's state.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AddedSilence {
    pub id: u64,
    pub silence: Silence,
    pub added_by: String,
    pub added_at: Timestamp,
}

/// Most silences added while running that are kept; the oldest ended ones go first.
pub const ADDED_SILENCES_MAX: usize = 1_000;
/// Longest silence that can be added while running: a week. Longer quiet belongs in the
/// config, where it is reviewed.
pub const ADDED_SILENCE_LENGTH_MAX: DurationMs = DurationMs::from_days(7);

/// Why a silence was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SilenceError {
    #[error("`from` must be before `to`")]
    Backwards,
    #[error("it ends before now: a silence must end in the future")]
    Ended,
    #[error("it lasts longer than {ADDED_SILENCE_LENGTH_MAX}; put longer silences in the config")]
    TooLong,
    #[error("the reason must not be empty or longer than {TEXT_BYTES_MAX} bytes")]
    Reason,
    #[error("{ADDED_SILENCES_MAX} silences are in force or to come; end some first")]
    TooMany,
}
