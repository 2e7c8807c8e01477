//! The `[ingest]` section: deduplication, lateness and clock limits for incoming events.

use serde::Deserialize;
use toml::Spanned;

use super::{ConfigProblem, Problems, duration_field};
use crate::time::DurationMs;

/// Dedup keys remembered at once by default: about 320 MiB of memory.
pub const DEDUP_KEYS_DEFAULT: u64 = 20_000_000;
pub const DEDUP_KEYS_MIN: u64 = 1_000;
pub const DEDUP_KEYS_MAX: u64 = 2_000_000_000;

#[derive(Debug, Clone, PartialEq)]
pub struct Ingest {
    /// How long a `messageId` is remembered. SDKs retry for hours.
    pub dedup_window: DurationMs,
    /// Events at most this much older than "now" still update their window.
    pub allowed_lateness: DurationMs,
    /// Events further in the future than this (after skew correction) are rejected.
    pub max_clock_ahead: DurationMs,
    /// Events older than this are rejected rather than tallied as late.
    pub max_event_age: DurationMs,
    /// Most dedup keys remembered at once (about 16 bytes of memory each). Past it, the oldest
    /// are forgotten before the window ends, and `/metrics` says so.
    pub dedup_keys_max: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawIngest {
    dedup_window: Option<Spanned<String>>,
    allowed_lateness: Option<Spanned<String>>,
    max_clock_ahead: Option<Spanned<String>>,
    max_event_age: Option<Spanned<String>>,
    dedup_keys_max: Option<Spanned<i64>>,
}

pub(super) fn validate_ingest(raw: Option<RawIngest>, problems: &mut Problems) -> Ingest {
    let raw = raw.unwrap_or(RawIngest {
        dedup_window: None,
        allowed_lateness: None,
        max_clock_ahead: None,
        max_event_age: None,
        dedup_keys_max: None,
    });
    let ingest = Ingest {
        dedup_window: duration_field(raw.dedup_window, "24h", "dedup_window", problems),
        allowed_lateness: duration_field(raw.allowed_lateness, "1h", "allowed_lateness", problems),
        max_clock_ahead: duration_field(raw.max_clock_ahead, "24h", "max_clock_ahead", problems),
        max_event_age: duration_field(raw.max_event_age, "30d", "max_event_age", problems),
        dedup_keys_max: match raw.dedup_keys_max {
            None => DEDUP_KEYS_DEFAULT,
            Some(spanned) => {
                let value = *spanned.get_ref();
                if !(DEDUP_KEYS_MIN as i64..=DEDUP_KEYS_MAX as i64).contains(&value) {
                    problems.at(
                        spanned.span().start,
                        format!(
                            "dedup_keys_max must be between {DEDUP_KEYS_MIN} and {DEDUP_KEYS_MAX}"
                        ),
                    );
                }
                value.clamp(DEDUP_KEYS_MIN as i64, DEDUP_KEYS_MAX as i64) as u64
            }
        },
    };
    if ingest.allowed_lateness > ingest.max_event_age {
        problems.found.push(ConfigProblem {
            line: 0,
            message: "ingest.allowed_lateness must not exceed ingest.max_event_age".into(),
        });
    }
    ingest
}
