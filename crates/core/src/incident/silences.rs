//! Silences: windows in which new incidents are recorded but page nobody until they end,
//! from the configuration (written in local time) or added while running. The engine keeps
//! and applies them; this module owns their types, limits and the conversion to UTC. It never
//! names the configuration: whatever declares silences implements [`SilenceCalendar`].

use super::action::TEXT_BYTES_MAX;
use crate::time::{DurationMs, MS_PER_HOUR, Timestamp};

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
pub const ADDED_SILENCE_LENGTH_MAX: DurationMs = DurationMs::from_millis(7 * 24 * MS_PER_HOUR);

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

/// A silence as declared in a configuration, in local time (the funnel's time zone, or the
/// shop's when it names no funnel), so that "Saturday 02:00–04:00" stays that across a DST
/// change.
#[derive(Debug, Clone, PartialEq)]
pub struct SilenceWindow {
    pub funnel: Option<String>,
    pub stage: Option<String>,
    pub from: jiff::civil::DateTime,
    pub to: jiff::civil::DateTime,
    pub reason: String,
}

/// Whatever declares silences in local time: their windows, and the time zone each is read in.
/// The configuration implements it, so that the engine never depends on the configuration.
pub trait SilenceCalendar {
    fn silence_windows(&self) -> &[SilenceWindow];
    /// The IANA time zone of `funnel` (the shop's for `None` or a funnel it does not know).
    fn time_zone_of(&self, funnel: Option<&str>) -> &str;
}

/// A shared calendar reads as the calendar itself (the server keeps its settings in an `Arc`).
impl<T: SilenceCalendar + ?Sized> SilenceCalendar for std::sync::Arc<T> {
    fn silence_windows(&self) -> &[SilenceWindow] {
        (**self).silence_windows()
    }

    fn time_zone_of(&self, funnel: Option<&str>) -> &str {
        (**self).time_zone_of(funnel)
    }
}

/// The declared silences in UTC: each in its funnel's time zone (the shop's when it names no
/// funnel). A local time that does not exist (in a spring-forward gap) is shifted forward by
/// the gap, and a repeated one is its first occurrence.
pub fn silences(calendar: &impl SilenceCalendar) -> Vec<Silence> {
    calendar
        .silence_windows()
        .iter()
        .filter_map(|window| {
            let zone_name = calendar.time_zone_of(window.funnel.as_deref());
            let zone = jiff::tz::TimeZone::get(zone_name).unwrap_or(jiff::tz::TimeZone::UTC);
            let utc = |civil| {
                zone.to_ambiguous_timestamp(civil)
                    .compatible()
                    .ok()
                    .map(|t| Timestamp::from_millis(t.as_millisecond()))
            };
            Some(Silence {
                funnel: window.funnel.clone(),
                stage: window.stage.clone(),
                from: utc(window.from)?,
                to: utc(window.to)?,
                reason: window.reason.clone(),
            })
        })
        .collect()
}
