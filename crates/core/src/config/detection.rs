//! The `[detection]` section: how the anomaly detector judges drop-off, and the masks kept
//! out of its baselines.

use std::collections::HashSet;

use serde::Deserialize;
use toml::Spanned;

use super::{Problems, duration_field, integer_field, local_window};
use crate::time::{DurationMs, MS_PER_MINUTE};

/// How the anomaly detector judges drop-off; see `docs/detection.md`.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    /// The window the runbook's σ refers to: deviations are measured in standard deviations of
    /// a window of this length. Whole minutes, 1 to 60.
    pub window: DurationMs,
    /// How long after a minute ends it is judged, so that its events have arrived.
    pub settle: DurationMs,
    /// A new series learns for this long before it may page.
    pub learning: DurationMs,
    /// Effective memory of the time-of-week baselines, in weeks.
    pub baseline_weeks: u32,
    /// False-alarm budgets on clean traffic: at most one false P1 per funnel in this time,
    /// and one false P2.
    pub false_p1_every: DurationMs,
    pub false_p2_every: DurationMs,
    /// Fewest shoppers expected at a stage in one window for it to be judged at all.
    pub min_shoppers: u32,
    /// An alert closes once drop-off has been within 2σ of baseline for this long.
    pub close_after: DurationMs,
    /// Whether single-dimension segments are watched as well as every funnel as a whole.
    pub segments: bool,
    /// The dead man's switch: revloop unable to judge a funnel (or, for a stalled writer or
    /// stalled incident timers, any funnel) for longer than this opens a guard incident.
    pub cannot_judge_after: DurationMs,
    /// Known unusual periods (a sale day) kept out of the baselines.
    pub masks: Vec<Mask>,
}

/// A period kept out of the baselines, in the funnel's local time, so that a mask written as
/// a calendar day stays that day across a daylight-saving change.
#[derive(Debug, Clone, PartialEq)]
pub struct Mask {
    /// A funnel id; `None` masks every funnel.
    pub funnel: Option<String>,
    pub from: jiff::civil::DateTime,
    pub to: jiff::civil::DateTime,
    pub reason: String,
}

/// Most masks a config may declare.
pub const MASKS_MAX: usize = 1_000;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDetection {
    window: Option<Spanned<String>>,
    settle: Option<Spanned<String>>,
    learning: Option<Spanned<String>>,
    baseline_weeks: Option<Spanned<i64>>,
    false_p1_every: Option<Spanned<String>>,
    false_p2_every: Option<Spanned<String>>,
    min_shoppers: Option<Spanned<i64>>,
    close_after: Option<Spanned<String>>,
    segments: Option<bool>,
    cannot_judge_after: Option<Spanned<String>>,
    #[serde(default)]
    masks: Vec<RawMask>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMask {
    funnel: Option<Spanned<String>>,
    from: Spanned<String>,
    to: Spanned<String>,
    reason: Option<String>,
}

pub(super) fn validate_detection(
    raw: RawDetection,
    funnel_ids: &HashSet<String>,
    problems: &mut Problems,
) -> Detection {
    let window_offset = raw.window.as_ref().map(|w| w.span().start);
    let window = duration_field(raw.window, "5m", "detection.window", problems);
    if let Some(offset) = window_offset
        && (window.millis() % MS_PER_MINUTE != 0 || window.millis() > 60 * MS_PER_MINUTE)
    {
        problems.at(
            offset,
            "detection.window must be whole minutes, at most 60m",
        );
    }
    let settle_offset = raw.settle.as_ref().map(|w| w.span().start);
    let settle = duration_field(raw.settle, "1m", "detection.settle", problems);
    if let Some(offset) = settle_offset
        && settle.millis() > 60 * MS_PER_MINUTE
    {
        problems.at(offset, "detection.settle must be at most 60m");
    }
    let cannot_judge_offset = raw.cannot_judge_after.as_ref().map(|w| w.span().start);
    let cannot_judge_after = duration_field(
        raw.cannot_judge_after,
        "10m",
        "detection.cannot_judge_after",
        problems,
    );
    // A healthy funnel is judged once a minute, `settle` after the minute ends: a limit
    // within that would page on every healthy minute.
    if let Some(offset) = cannot_judge_offset
        && cannot_judge_after.millis() < settle.millis() + 2 * MS_PER_MINUTE
    {
        problems.at(
            offset,
            format!(
                "detection.cannot_judge_after must be at least detection.settle + 2m ({})",
                DurationMs::from_millis(settle.millis() + 2 * MS_PER_MINUTE)
            ),
        );
    }
    let mut masks = Vec::new();
    if raw.masks.len() > MASKS_MAX {
        problems.at(
            raw.masks[MASKS_MAX].from.span().start,
            format!("at most {MASKS_MAX} masks are allowed"),
        );
    }
    for raw_mask in raw.masks.into_iter().take(MASKS_MAX) {
        let funnel = raw_mask.funnel.map(|spanned| {
            if !funnel_ids.contains(spanned.get_ref()) {
                problems.at(
                    spanned.span().start,
                    format!("mask names unknown funnel `{}`", spanned.get_ref()),
                );
            }
            spanned.into_inner()
        });
        let Some((from, to)) = local_window(&raw_mask.from, &raw_mask.to, "mask", problems) else {
            continue;
        };
        masks.push(Mask {
            funnel,
            from,
            to,
            reason: raw_mask.reason.unwrap_or_default(),
        });
    }
    Detection {
        window,
        settle,
        learning: duration_field(raw.learning, "7d", "detection.learning", problems),
        baseline_weeks: integer_field(
            raw.baseline_weeks,
            4,
            1..=52,
            "detection.baseline_weeks",
            problems,
        ) as u32,
        false_p1_every: duration_field(
            raw.false_p1_every,
            "30d",
            "detection.false_p1_every",
            problems,
        ),
        false_p2_every: duration_field(
            raw.false_p2_every,
            "7d",
            "detection.false_p2_every",
            problems,
        ),
        min_shoppers: integer_field(
            raw.min_shoppers,
            5,
            1..=1_000_000,
            "detection.min_shoppers",
            problems,
        ) as u32,
        close_after: duration_field(raw.close_after, "15m", "detection.close_after", problems),
        segments: raw.segments.unwrap_or(true),
        cannot_judge_after,
        masks,
    }
}
