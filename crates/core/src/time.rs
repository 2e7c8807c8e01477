//! Time as plain integers: milliseconds and minutes since the Unix epoch, UTC.
//!
//! Parsing and formatting of RFC 3339 happens here, once, at the edge of the core; everything
//! inside works on integers. Nothing in this module reads a clock: "now" is always an argument.

use std::fmt;

/// An instant, in milliseconds since 1970-01-01T00:00:00Z.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(transparent)]
pub struct Timestamp(i64);

/// A span of time in milliseconds.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(transparent)]
pub struct DurationMs(i64);

/// A minute bucket: minutes since the Unix epoch. Counts are kept per minute.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(transparent)]
pub struct Minute(i64);

pub const MS_PER_SECOND: i64 = 1_000;
pub const MS_PER_MINUTE: i64 = 60 * MS_PER_SECOND;
pub const MS_PER_HOUR: i64 = 60 * MS_PER_MINUTE;
pub const MS_PER_DAY: i64 = 24 * MS_PER_HOUR;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    #[error("`{0}` is not an RFC 3339 timestamp (e.g. 2026-11-27T10:15:00Z)")]
    NotRfc3339(String),
    #[error("`{0}` is not a duration (e.g. 90s, 15m, 24h, 7d)")]
    NotDuration(String),
}

impl Timestamp {
    /// The earliest instant there is: before everything, for "nothing seen yet".
    pub const MIN: Timestamp = Timestamp(i64::MIN);

    /// The latest instant there is: after everything, for "flush all that is left".
    pub const MAX: Timestamp = Timestamp(i64::MAX);

    pub const fn from_millis(ms: i64) -> Timestamp {
        Timestamp(ms)
    }

    pub const fn millis(self) -> i64 {
        self.0
    }

    /// Parses an RFC 3339 / ISO 8601 timestamp with an offset, as Segment sends them.
    pub fn parse_rfc3339(text: &str) -> Result<Timestamp, TimeError> {
        let parsed: jiff::Timestamp = text
            .parse()
            .map_err(|_| TimeError::NotRfc3339(truncate(text)))?;
        Ok(Timestamp(parsed.as_millisecond()))
    }

    /// How far `time_zone`'s wall clock is ahead of UTC at this instant (0 where the instant is
    /// beyond what the time-zone database can place).
    pub fn utc_offset_in(self, time_zone: &jiff::tz::TimeZone) -> DurationMs {
        jiff::Timestamp::from_millisecond(self.0).map_or(DurationMs(0), |instant| {
            DurationMs(i64::from(time_zone.to_offset(instant).seconds()) * MS_PER_SECOND)
        })
    }

    /// This instant on `time_zone`'s wall clock, in milliseconds since the local epoch: what the
    /// time-of-week slots and the traffic model's daily rhythm are computed from.
    pub fn local_millis(self, time_zone: &jiff::tz::TimeZone) -> i64 {
        self.0.saturating_add(self.utc_offset_in(time_zone).0)
    }

    pub fn minute(self) -> Minute {
        Minute(self.0.div_euclid(MS_PER_MINUTE))
    }

    pub fn saturating_add(self, duration: DurationMs) -> Timestamp {
        Timestamp(self.0.saturating_add(duration.0))
    }

    pub fn saturating_sub(self, duration: DurationMs) -> Timestamp {
        Timestamp(self.0.saturating_sub(duration.0))
    }

    pub fn since(self, earlier: Timestamp) -> DurationMs {
        DurationMs(self.0.saturating_sub(earlier.0))
    }
}

impl fmt::Display for Timestamp {
    /// Formats as RFC 3339 in UTC with millisecond precision where needed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match jiff::Timestamp::from_millisecond(self.0) {
            Ok(ts) => write!(f, "{ts}"),
            Err(_) => write!(f, "@{}ms", self.0),
        }
    }
}

impl Minute {
    /// The minute `index` minutes after the epoch.
    pub const fn new(index: i64) -> Minute {
        Minute(index)
    }

    /// Minutes since the epoch.
    pub const fn index(self) -> i64 {
        self.0
    }

    pub fn start(self) -> Timestamp {
        Timestamp(self.0.saturating_mul(MS_PER_MINUTE))
    }

    /// The instant this minute ends (the next one's start).
    pub fn end(self) -> Timestamp {
        self.plus(1).start()
    }

    /// The minute `n` minutes later (earlier for a negative `n`).
    pub fn plus(self, n: i64) -> Minute {
        Minute(self.0.saturating_add(n))
    }

    /// Whole minutes from `earlier` to this one.
    pub fn minutes_since(self, earlier: Minute) -> i64 {
        self.0.saturating_sub(earlier.0)
    }

    /// Every minute from this one up to, but not including, `end`, oldest first.
    /// Empty when `end` is not later than this minute.
    pub fn until(self, end: Minute) -> impl Iterator<Item = Minute> {
        (self.0..end.0).map(Minute)
    }
}

impl DurationMs {
    pub const ZERO: DurationMs = DurationMs(0);

    pub const fn from_millis(ms: i64) -> DurationMs {
        DurationMs(ms)
    }

    pub const fn from_secs(seconds: i64) -> DurationMs {
        DurationMs(seconds * MS_PER_SECOND)
    }

    pub const fn from_days(days: i64) -> DurationMs {
        DurationMs(days * MS_PER_DAY)
    }

    /// The number of whole minutes, rounded toward zero (`-90s` is `-1`), unlike
    /// [`DurationMs::floor_to_minute`], which rounds toward minus infinity (`-90s` is `-2m`).
    pub fn whole_minutes(self) -> i64 {
        self.0 / MS_PER_MINUTE
    }

    pub const fn from_minutes(minutes: i64) -> DurationMs {
        DurationMs(minutes * MS_PER_MINUTE)
    }

    pub const fn from_hours(hours: i64) -> DurationMs {
        DurationMs(hours * MS_PER_HOUR)
    }

    pub const fn millis(self) -> i64 {
        self.0
    }

    /// The same length pointing the other way: `-d`.
    pub const fn negated(self) -> DurationMs {
        DurationMs(-self.0)
    }

    /// Rounded down to whole minutes (toward minus infinity, so `-30s` becomes `-1m`).
    pub fn floor_to_minute(self) -> DurationMs {
        DurationMs(self.0 - self.0.rem_euclid(MS_PER_MINUTE))
    }

    /// Parses `500ms`, `90s`, `15m`, `24h`, `7d` or a combination such as `1h30m`.
    pub fn parse(text: &str) -> Result<DurationMs, TimeError> {
        let err = || TimeError::NotDuration(truncate(text));
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(err());
        }
        let mut total: i64 = 0;
        let mut digits = String::new();
        let mut chars = trimmed.chars().peekable();
        while let Some(ch) = chars.next() {
            if ch.is_ascii_digit() {
                digits.push(ch);
                continue;
            }
            let unit_ms = match ch {
                'm' if chars.peek() == Some(&'s') => {
                    chars.next();
                    1
                }
                's' => MS_PER_SECOND,
                'm' => MS_PER_MINUTE,
                'h' => MS_PER_HOUR,
                'd' => MS_PER_DAY,
                'w' => 7 * MS_PER_DAY,
                _ => return Err(err()),
            };
            let value: i64 = digits.parse().map_err(|_| err())?;
            digits.clear();
            total = value
                .checked_mul(unit_ms)
                .and_then(|ms| total.checked_add(ms))
                .ok_or_else(err)?;
        }
        if !digits.is_empty() {
            return Err(err());
        }
        Ok(DurationMs(total))
    }
}

/// Largest units first, as the config writes durations: `1d`, `1h30m`, `5d7h26m`, `1m500ms`.
/// Parses back to the same value.
impl fmt::Display for DurationMs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0;
        if ms == 0 {
            return write!(f, "0s");
        }
        if ms < 0 {
            write!(f, "-")?;
        }
        let mut rest = ms.unsigned_abs();
        for (unit, unit_ms) in [
            ("d", MS_PER_DAY),
            ("h", MS_PER_HOUR),
            ("m", MS_PER_MINUTE),
            ("s", MS_PER_SECOND),
            ("ms", 1),
        ] {
            let unit_ms = unit_ms as u64;
            if rest >= unit_ms {
                write!(f, "{}{unit}", rest / unit_ms)?;
                rest %= unit_ms;
            }
        }
        Ok(())
    }
}

fn truncate(text: &str) -> String {
    const SHOWN_CHARS_MAX: usize = 64;
    text.chars().take(SHOWN_CHARS_MAX).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_segment_timestamps() {
        let cases = [
            ("2026-11-27T10:15:00Z", 1_795_774_500_000),
            ("2026-11-27T10:15:00.123Z", 1_795_774_500_123),
            ("2026-11-27T11:15:00+01:00", 1_795_774_500_000),
        ];
        for (text, ms) in cases {
            assert_eq!(Timestamp::parse_rfc3339(text), Ok(Timestamp(ms)), "{text}");
        }
        assert!(Timestamp::parse_rfc3339("yesterday").is_err());
        assert!(Timestamp::parse_rfc3339("2026-11-27").is_err());
    }

    #[test]
    fn minute_ranges() {
        let minutes: Vec<Minute> = Minute::new(3).until(Minute::new(6)).collect();
        assert_eq!(minutes, [Minute::new(3), Minute::new(4), Minute::new(5)]);
        assert_eq!(Minute::new(6).until(Minute::new(6)).count(), 0);
        assert_eq!(Minute::new(7).until(Minute::new(6)).count(), 0);
    }

    #[test]
    fn duration_operations() {
        assert_eq!(
            DurationMs::from_secs(90).negated(),
            DurationMs::from_millis(-90_000)
        );
        assert_eq!(DurationMs::ZERO.negated(), DurationMs::ZERO);
        let cases = [
            (90_000, 60_000),
            (60_000, 60_000),
            (59_999, 0),
            (-30_000, -60_000),
        ];
        for (ms, floored_ms) in cases {
            let floored = DurationMs::from_millis(ms).floor_to_minute();
            assert_eq!(floored, DurationMs::from_millis(floored_ms), "{ms}");
        }
    }

    #[test]
    fn formats_round_trip() {
        let ts = Timestamp(1_795_774_500_123);
        assert_eq!(ts.to_string(), "2026-11-27T10:15:00.123Z");
        assert_eq!(Timestamp::parse_rfc3339(&ts.to_string()), Ok(ts));
    }

    #[test]
    fn bounds_order_every_instant_and_saturate() {
        assert!(Timestamp::MIN < Timestamp::from_millis(0));
        assert!(Timestamp::from_millis(0) < Timestamp::MAX);
        let one_ms = DurationMs::from_millis(1);
        assert_eq!(Timestamp::MAX.saturating_add(one_ms), Timestamp::MAX);
        assert_eq!(Timestamp::MIN.saturating_sub(one_ms), Timestamp::MIN);
    }

    #[test]
    fn minutes_floor_before_the_epoch() {
        assert_eq!(Timestamp(-1).minute(), Minute(-1));
        assert_eq!(Timestamp(59_999).minute(), Minute(0));
        assert_eq!(Timestamp(60_000).minute(), Minute(1));
    }

    #[test]
    fn durations() {
        let cases = [
            ("90s", 90_000),
            ("15m", 900_000),
            ("24h", 86_400_000),
            ("7d", 604_800_000),
            ("1h30m", 5_400_000),
        ];
        for (text, ms) in cases {
            assert_eq!(DurationMs::parse(text), Ok(DurationMs(ms)), "{text}");
        }
        for bad in ["", "10", "h", "5x", "99999999999999999999d"] {
            assert!(DurationMs::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(DurationMs(86_400_000).to_string(), "1d");
        assert_eq!(DurationMs(5_400_000).to_string(), "1h30m");
        assert_eq!(DurationMs(459_960_000).to_string(), "5d7h46m");
        assert_eq!(DurationMs(60_500).to_string(), "1m500ms");
        assert_eq!(DurationMs(0).to_string(), "0s");
        for ms in [1, 999, 60_500, 5_400_000, 459_960_000, 86_400_000] {
            let text = DurationMs(ms).to_string();
            assert_eq!(DurationMs::parse(&text), Ok(DurationMs(ms)), "{text}");
        }
    }

    #[test]
    fn local_time_follows_the_zone_and_its_daylight_saving() {
        let new_york = jiff::tz::TimeZone::get("America/New_York").unwrap();
        let cases = [
            // Winter: five hours behind UTC; summer: four.
            ("2026-01-15T12:00:00Z", -5),
            ("2026-07-15T12:00:00Z", -4),
            // The spring-forward instant itself is already on daylight time.
            ("2026-03-08T07:00:00Z", -4),
            ("2026-03-08T06:59:59Z", -5),
        ];
        for (text, hours) in cases {
            let at = Timestamp::parse_rfc3339(text).unwrap();
            assert_eq!(
                at.utc_offset_in(&new_york),
                DurationMs::from_hours(hours),
                "{text}"
            );
            assert_eq!(
                at.local_millis(&new_york),
                at.millis() + hours * MS_PER_HOUR,
                "{text}"
            );
        }
        let utc = jiff::tz::TimeZone::UTC;
        assert_eq!(Timestamp::MAX.utc_offset_in(&utc), DurationMs::ZERO);
        assert_eq!(Timestamp::MAX.local_millis(&new_york), i64::MAX);
    }
}
