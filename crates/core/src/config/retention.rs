//! The `[retention]` section: how long per-minute counts are kept before they are rolled up to
//! hourly, and how often the server's maintenance runs (rollup, expired dedup keys, the
//! SQLite write-ahead log).

use serde::Deserialize;
use toml::Spanned;

use super::{Detection, Problems, duration_field};
use crate::time::{DurationMs, MS_PER_DAY, MS_PER_HOUR, MS_PER_MINUTE, Minute, Timestamp};

/// What is kept at minute resolution beyond what the detector reads at start, by default: a
/// week, so that a week-over-week look at any minute the detector judges is exact.
pub const MINUTE_COUNTS_MARGIN_MS: i64 = 7 * MS_PER_DAY;

#[derive(Debug, Clone, PartialEq)]
pub struct Retention {
    /// Per-minute counts older than this are rolled up to hourly: an hour's total is kept at
    /// the hour's first minute. At least [`detector_history`]. Default: that plus
    /// [`MINUTE_COUNTS_MARGIN_MS`].
    pub minute_counts_for: DurationMs,
    /// How often the maintenance service runs.
    pub maintenance_every: DurationMs,
}

impl Retention {
    /// The minute before which counts are rolled up to hourly at `now`: `minute_counts_for`
    /// before `now`, rounded down to its hour. Counts of minutes before it may be kept as one
    /// row per hour (at the hour's first minute); every minute from it on is kept as it is.
    pub fn hourly_before(&self, now: Timestamp) -> Minute {
        let horizon = now.saturating_sub(self.minute_counts_for).minute().index();
        Minute::new(horizon.div_euclid(60) * 60)
    }
}

/// How far back the detector reads at start (and so the least minute resolution must cover):
/// every slot of the baselines (`baseline_weeks` weeks), the learning time, and a day.
pub fn detector_history(detection: &Detection) -> DurationMs {
    DurationMs::from_millis(
        i64::from(detection.baseline_weeks) * 7 * MS_PER_DAY
            + detection.learning.millis().max(0)
            + MS_PER_DAY,
    )
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRetention {
    minute_counts_for: Option<Spanned<String>>,
    maintenance_every: Option<Spanned<String>>,
}

pub(super) fn validate_retention(
    raw: RawRetention,
    detection: &Detection,
    problems: &mut Problems,
) -> Retention {
    let needed = detector_history(detection);
    let default = DurationMs::from_millis(needed.millis() + MINUTE_COUNTS_MARGIN_MS);
    let minute_counts_for = match raw.minute_counts_for {
        None => default,
        Some(spanned) => {
            let offset = spanned.span().start;
            let parsed =
                duration_field(Some(spanned), "1d", "retention.minute_counts_for", problems);
            if parsed < needed {
                problems.at(
                    offset,
                    format!(
                        "retention.minute_counts_for must be at least {} hours: the detector reads \
                         baseline_weeks weeks, the learning time and a day of minutes at start",
                        (needed.millis() + MS_PER_HOUR - 1) / MS_PER_HOUR
                    ),
                );
                default
            } else {
                parsed
            }
        }
    };
    let every_offset = raw.maintenance_every.as_ref().map(|s| s.span().start);
    let maintenance_every = duration_field(
        raw.maintenance_every,
        "10m",
        "retention.maintenance_every",
        problems,
    );
    if let Some(offset) = every_offset
        && !(MS_PER_MINUTE..=MS_PER_DAY).contains(&maintenance_every.millis())
    {
        problems.at(
            offset,
            "retention.maintenance_every must be between 1m and 24h",
        );
    }
    Retention {
        minute_counts_for,
        maintenance_every: DurationMs::from_millis(
            maintenance_every.millis().clamp(MS_PER_MINUTE, MS_PER_DAY),
        ),
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, MINUTE_COUNTS_MARGIN_MS, detector_history};
    use crate::time::{MS_PER_DAY, Timestamp};

    /// The bundled example with its `[retention]` section replaced by `section`.
    fn with_retention(section: &str) -> Result<Config, String> {
        let example = Config::example_toml();
        let start = example
            .find("[retention]")
            .expect("the example has the section");
        let end = example[start..]
            .find("\n\n")
            .map_or(example.len(), |n| start + n);
        let text = format!("{}{section}{}", &example[..start], &example[end..]);
        Config::parse(&text).map_err(|err| err.to_string())
    }

    #[test]
    fn the_default_keeps_what_the_detector_reads_plus_a_week() {
        let config = with_retention("[retention]").unwrap();
        let needed = detector_history(&config.detection);
        // 4 weeks, 7 days of learning and a day.
        assert_eq!(needed.millis(), 36 * MS_PER_DAY);
        assert_eq!(
            config.retention.minute_counts_for.millis(),
            needed.millis() + MINUTE_COUNTS_MARGIN_MS
        );
        assert_eq!(config.retention.maintenance_every.millis(), 10 * 60_000);
    }

    #[test]
    fn a_horizon_shorter_than_the_detector_reads_is_refused_with_its_line() {
        let err = with_retention("[retention]\nminute_counts_for = \"30d\"").unwrap_err();
        assert!(
            err.contains("retention.minute_counts_for must be at least 864 hours"),
            "{err}"
        );
        assert!(err.starts_with("line "), "{err}");
        let config = with_retention("[retention]\nminute_counts_for = \"36d\"").unwrap();
        assert_eq!(config.retention.minute_counts_for.millis(), 36 * MS_PER_DAY);
    }

    #[test]
    fn the_detectors_history_is_never_before_the_hourly_horizon() {
        let config = with_retention("[retention]\nminute_counts_for = \"36d\"").unwrap();
        let needed = detector_history(&config.detection);
        for offset_ms in [0, 1, 59 * 60_000, 60 * 60_000 - 1, 3 * MS_PER_DAY + 7] {
            let now = Timestamp::from_millis(1_795_737_600_000 + offset_ms);
            let hourly_before = config.retention.hourly_before(now);
            // The detector reads from this minute on at start.
            let first_read = now.saturating_sub(needed).minute();
            assert!(
                hourly_before <= first_read,
                "{now}: {hourly_before:?} > {first_read:?}"
            );
            assert_eq!(hourly_before.index() % 60, 0);
        }
    }

    #[test]
    fn maintenance_every_is_bounded() {
        let err = with_retention("[retention]\nmaintenance_every = \"10s\"").unwrap_err();
        assert!(err.contains("between 1m and 24h"), "{err}");
        let err = with_retention("[retention]\nkeep = \"1d\"").unwrap_err();
        assert!(err.contains("unknown field"), "{err}");
    }
}
