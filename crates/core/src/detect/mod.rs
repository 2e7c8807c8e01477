//! The Digital Andon: judging each funnel stage's drop-off against its baseline, minute by
//! minute, in event time.
//!
//! A [`Detector`] is fed the per-minute event counts of every funnel stage, for every funnel as
//! a whole and for every single-dimension segment (device = mobile, country = DE, ...), one
//! minute at a time. It owns no clock: [`Detector::close_minute`] judges the minute it is given
//! and [`Detector::wake_at`] says when the next one is due, so the same engine runs live and as
//! fast as possible in replay. It emits [`AlertEvent`]s: an alert opened, upgraded or closed.
//!
//! What it watches, per funnel and segment:
//!
//! - **Conversion series**, one per pair of consecutive stages: of the `n` shoppers at stage
//!   `i` in a minute, how many did not reach stage `i + 1` (the drop-off rate). The baseline is
//!   the drop-off rate of the same local time-of-week slot (168 hourly slots, in the funnel's
//!   time zone), learned over several weeks, shrunk toward the series' overall rate where a
//!   slot has few shoppers, and interpolated between slot centres.
//! - **The entry volume series**: events at the funnel's first stage against the seasonal
//!   expectation (for a segment, against its seasonal share of the funnel's entries), for
//!   traffic collapses and surges.
//!
//! How it judges. Noise is modelled per window as binomial plus a between-window variance
//! learned from history (a beta-binomial, or Laney-style, treatment): the standard deviation σ
//! of a window's drop-off rate is `√(p₀(1−p₀)/n + τ²)`. Severity is expressed in that σ, as the
//! runbook does. Alarms come from likelihood-ratio CUSUMs, which accumulate evidence minute by
//! minute and are the optimal detectors of a step change (Lorden; Moustakides): one designed
//! for a 2σ shift raises P2, one designed for 3σ raises P1. Their thresholds come from the
//! false-alarm budgets: each funnel's budget is split between the series it watches (half to
//! the funnel as a whole, half shared by its segments, so the multiple testing is paid for),
//! and each series' threshold is set by Siegmund's approximation of its in-control average run
//! length (checked against the Brook–Evans Markov chain in `stats`). Alongside, a window so far
//! above baseline that no budgeted false alarm explains it raises P1 at once, and while a P2
//! is open a shorter window watches for escalation (the runbook's enhanced monitoring).
//!
//! Only degradation pages: a drop-off well below baseline is recorded as an improvement, not
//! alerted. A series whose stage expects fewer than `min_shoppers` per window is not judged and
//! says so. A drop in conversion into a stage while shoppers still reach the stage after it as
//! often as before is the signature of that stage's events going missing (a broken tracking
//! pixel), and is alerted as `volume`, not `conversion`. While the funnel's traffic surges,
//! conversion is judged only for a collapse, and nothing is learned.
//!
//! Where it lives: this module holds the [`Detector`] and the per-minute loop that asks every
//! series of a funnel to observe the minute and then decides and describes its alerts;
//! `baseline` the time-of-week slot table, `ring` the trailing window and evidence span,
//! `conversion` and `volume` the two kinds of series, `budget` the thresholds from the
//! false-alarm budgets, `decide` the opening, upgrading and closing of alerts, `drill_down` the
//! segments that explain an alert, `text` the alert event itself, and `report` what the API
//! shows of each series.
//!
//! What it must never do: IO, read a clock, or know about incidents. Its alerts reach the
//! incident engine through `pipeline`, which imports this module; nothing here imports it.

mod baseline;
mod budget;
mod conversion;
mod decide;
mod drill_down;
mod report;
mod ring;
mod snapshot;
mod text;
mod volume;

#[cfg(test)]
pub(crate) mod tests;

use std::collections::HashMap;

use crate::alert::{AlertEvent, Direction};
pub use baseline::{SLOTS, SlotBaseline};
pub use budget::Thresholds;
pub use drill_down::TOP_SEGMENTS_MAX;
pub use report::{SeriesReport, SeriesStatus};
pub use snapshot::{FunnelSnapshot, SNAPSHOT_FORMAT_VERSION, SnapshotError, snapshot_fingerprint};

use crate::config::Config;
use crate::impact::ImpactStatistics;
use crate::time::{DurationMs, Minute, Timestamp};
use baseline::SlotPosition;
use conversion::ConversionSeries;
use decide::{decide_conversion, decide_volume};
use drill_down::DRILL_DOWN_MEMORY_MINUTES;
use text::describe;
use volume::VolumeSeries;

/// Most segments watched per funnel: a named limit on the detector's memory (about 2 KiB per
/// stage per segment). Segments beyond it are not watched, and [`Detector::segments_dropped`]
/// counts them.
pub const SEGMENTS_PER_FUNNEL_MAX: usize = 2_000;

/// Severity multipliers of the runbook: P2 above 2σ, P1 above 3σ.
const SIGMA_P2: f64 = 2.0;
const SIGMA_P1: f64 = 3.0;
/// A minute does not update the baseline while the P2 CUSUM is above this share of its
/// threshold: the evidence of an incident that has not yet alarmed stays out.
const LEARNING_EXCLUSION_SHARE: f64 = 0.5;

/// One funnel as a whole, or one segment of it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct SegmentState {
    /// `None` for the funnel as a whole; otherwise (dimension index, value).
    key: Option<(usize, String)>,
    /// Events per stage in the minute being gathered.
    pending: Vec<f64>,
    conversions: Vec<ConversionSeries>,
    volume: VolumeSeries,
}

#[derive(Debug, Clone)]
struct FunnelState {
    id: String,
    stage_ids: Vec<String>,
    time_zone: jiff::tz::TimeZone,
    /// Masked periods, as half-open UTC ranges `[from, to)`.
    masks: Vec<(Timestamp, Timestamp)>,
    /// Index 0 is the funnel as a whole.
    segments: Vec<SegmentState>,
    /// Per dimension: value → index in `segments`.
    index: Vec<HashMap<String, usize>>,
    thresholds: Thresholds,
    segment_thresholds: Thresholds,
    thresholds_for_segments: usize,
}

#[derive(Debug, Clone, Copy)]
struct Settings {
    window_minutes: usize,
    /// How long after a minute ends it is judged (see [`judged_at`]).
    settle: DurationMs,
    learning_minutes: i64,
    min_shoppers: u32,
    close_after_minutes: u32,
    false_p1_minutes: f64,
    false_p2_minutes: f64,
    watch_segments: bool,
}

/// What every series of a funnel shares in one minute.
struct MinuteContext<'a> {
    settings: &'a Settings,
    thresholds: Thresholds,
    position: SlotPosition,
    learnable: bool,
    /// The funnel as a whole has an open traffic-surge alert.
    surging: bool,
    slot_decay: f32,
    total_decay: f64,
    drill_down_decay: f64,
    overdispersion_memory_windows: f64,
}

/// When `minute` is judged: at its end plus the settle time (late events of the minute have
/// had that long to arrive). The time a tick is stamped with, live and in event time alike,
/// and when [`Detector::wake_at`] says the next minute is due.
pub fn judged_at(minute: Minute, settle: DurationMs) -> Timestamp {
    minute.end().saturating_add(settle)
}

/// The first minute not yet judged at `now`: the inverse of [`judged_at`]. Every minute
/// before it has `judged_at(minute, settle) <= now`, and it and every later minute do not.
pub fn first_unjudged(now: Timestamp, settle: DurationMs) -> Minute {
    now.saturating_sub(settle)
        .saturating_sub(DurationMs::from_minutes(1))
        .minute()
        .plus(1)
}

/// The anomaly detector of every funnel of a config. Cloning it snapshots its whole state.
#[derive(Debug, Clone)]
pub struct Detector {
    settings: Settings,
    dimension_names: Vec<String>,
    funnels: Vec<FunnelState>,
    slot_decay: f32,
    total_decay: f64,
    /// The next minute to judge; `None` before the first.
    next_minute: Option<Minute>,
    segments_dropped: u64,
}

impl Detector {
    pub fn new(config: &Config) -> Detector {
        let detection = &config.detection;
        let settings = Settings {
            window_minutes: detection.window.whole_minutes().max(1) as usize,
            settle: detection.settle,
            learning_minutes: detection.learning.whole_minutes(),
            min_shoppers: detection.min_shoppers,
            close_after_minutes: detection.close_after.whole_minutes().max(1) as u32,
            false_p1_minutes: detection.false_p1_every.whole_minutes().max(1) as f64,
            false_p2_minutes: detection.false_p2_every.whole_minutes().max(1) as f64,
            watch_segments: detection.segments && !config.dimensions.is_empty(),
        };
        let slot_minutes_remembered = 60.0 * f64::from(detection.baseline_weeks);
        let funnels = config
            .funnels
            .iter()
            .map(|funnel| {
                let time_zone =
                    jiff::tz::TimeZone::get(&funnel.time_zone).unwrap_or(jiff::tz::TimeZone::UTC);
                let masks = detection
                    .masks
                    .iter()
                    .filter(|mask| mask.funnel.as_ref().is_none_or(|id| *id == funnel.id))
                    .filter_map(|mask| {
                        let from = time_zone
                            .to_ambiguous_timestamp(mask.from)
                            .compatible()
                            .ok()?;
                        let to = time_zone
                            .to_ambiguous_timestamp(mask.to)
                            .compatible()
                            .ok()?;
                        Some((
                            Timestamp::from_millis(from.as_millisecond()),
                            Timestamp::from_millis(to.as_millisecond()),
                        ))
                    })
                    .collect();
                let n_stages = funnel.stages.len();
                let mut state = FunnelState {
                    id: funnel.id.clone(),
                    stage_ids: funnel.stages.iter().map(|s| s.id.clone()).collect(),
                    time_zone,
                    masks,
                    segments: Vec::new(),
                    index: vec![HashMap::new(); config.dimensions.len()],
                    thresholds: Thresholds::default(),
                    segment_thresholds: Thresholds::default(),
                    thresholds_for_segments: usize::MAX,
                };
                state
                    .segments
                    .push(SegmentState::new(None, n_stages, &settings));
                state
            })
            .collect();
        let mut detector = Detector {
            settings,
            dimension_names: config.dimensions.iter().map(|d| d.name.clone()).collect(),
            funnels,
            slot_decay: (1.0 - 1.0 / slot_minutes_remembered) as f32,
            total_decay: 1.0 - 1.0 / (slot_minutes_remembered * SLOTS as f64),
            next_minute: None,
            segments_dropped: 0,
        };
        for funnel in 0..detector.funnels.len() {
            detector.refresh_thresholds(funnel);
        }
        detector
    }

    /// The index of a segment of a funnel (`None` = the funnel as a whole), registering it on
    /// first sight. `None` when it is not watched: unknown funnel or dimension, segments off,
    /// or the funnel already watches [`SEGMENTS_PER_FUNNEL_MAX`] segments.
    pub fn segment(&mut self, funnel: usize, segment: Option<(&str, &str)>) -> Option<usize> {
        let settings = self.settings;
        let state = self.funnels.get_mut(funnel)?;
        let Some((dimension, value)) = segment else {
            return Some(0);
        };
        if !settings.watch_segments {
            return None;
        }
        let dimension = self.dimension_names.iter().position(|d| d == dimension)?;
        if let Some(&index) = state.index[dimension].get(value) {
            return Some(index);
        }
        if state.segments.len() > SEGMENTS_PER_FUNNEL_MAX {
            self.segments_dropped += 1;
            return None;
        }
        let index = state.segments.len();
        state.segments.push(SegmentState::new(
            Some((dimension, value.to_owned())),
            state.stage_ids.len(),
            &settings,
        ));
        state.index[dimension].insert(value.to_owned(), index);
        Some(index)
    }

    /// Adds events of one stage of one segment to the minute being gathered.
    pub fn record(&mut self, funnel: usize, segment: usize, stage: usize, n_events: i64) {
        if let Some(slot) = self
            .funnels
            .get_mut(funnel)
            .and_then(|f| f.segments.get_mut(segment))
            .and_then(|s| s.pending.get_mut(stage))
        {
            *slot += n_events.max(0) as f64;
        }
    }

    /// The next minute to judge.
    pub fn next_minute(&self) -> Option<Minute> {
        self.next_minute
    }

    /// When the next minute is due ([`judged_at`]). `None` before any minute.
    pub fn wake_at(&self) -> Option<Timestamp> {
        self.next_minute
            .map(|minute| judged_at(minute, self.settings.settle))
    }

    /// The window deviations are measured on, in minutes.
    pub fn window_minutes(&self) -> usize {
        self.settings.window_minutes
    }

    /// Segments not watched because a funnel reached [`SEGMENTS_PER_FUNNEL_MAX`].
    pub fn segments_dropped(&self) -> u64 {
        self.segments_dropped
    }

    pub fn thresholds(&self, funnel: usize) -> Option<Thresholds> {
        self.funnels.get(funnel).map(|f| f.thresholds)
    }

    /// Judges `minute` with the counts recorded since the last call, appending what happened
    /// to `events`. Minutes must come in order; a minute before the next one due is ignored
    /// (its counts are dropped), and minutes skipped over are judged as having no events.
    pub fn close_minute(&mut self, minute: Minute, events: &mut Vec<AlertEvent>) {
        let next = self.next_minute.unwrap_or(minute);
        if minute < next {
            for funnel in &mut self.funnels {
                for segment in &mut funnel.segments {
                    segment.pending.iter_mut().for_each(|n| *n = 0.0);
                }
            }
            return;
        }
        // A long gap (a shop closed for a week) is not replayed minute by minute.
        let gap_start = next.max(minute.plus(-7 * 24 * 60));
        // Skipped minutes had no events; the counts gathered belong to `minute`.
        for skipped in gap_start.until(minute) {
            for funnel in 0..self.funnels.len() {
                self.judge(funnel, skipped, false, events);
            }
        }
        for funnel in 0..self.funnels.len() {
            self.judge(funnel, minute, true, events);
        }
        self.next_minute = Some(minute.plus(1));
    }

    fn refresh_thresholds(&mut self, funnel: usize) {
        let settings = self.settings;
        let state = &mut self.funnels[funnel];
        let n_segments = state.segments.len() - 1;
        if n_segments == state.thresholds_for_segments {
            return;
        }
        state.thresholds_for_segments = n_segments;
        [state.thresholds, state.segment_thresholds] =
            budget::funnel_thresholds(&settings, state.stage_ids.len(), n_segments);
    }

    fn judge(
        &mut self,
        funnel: usize,
        minute: Minute,
        with_counts: bool,
        events: &mut Vec<AlertEvent>,
    ) {
        self.refresh_thresholds(funnel);
        let settings = self.settings;
        let state = &mut self.funnels[funnel];
        let position = SlotPosition::of(minute.start().local_millis(&state.time_zone));
        let surging = state.segments[0]
            .volume
            .alert
            .is_some_and(|a| a.direction == Direction::Surge);
        let learnable = !surging
            && !state
                .masks
                .iter()
                .any(|&(from, to)| (from..to).contains(&minute.start()));
        let memory_windows = 7.0 * 24.0 * 60.0 / settings.window_minutes as f64;
        let context_for = |thresholds: Thresholds| MinuteContext {
            settings: &settings,
            thresholds,
            position,
            learnable,
            surging,
            slot_decay: self.slot_decay,
            total_decay: self.total_decay,
            drill_down_decay: 1.0 - 1.0 / DRILL_DOWN_MEMORY_MINUTES,
            overdispersion_memory_windows: memory_windows,
        };
        let aggregate_context = context_for(state.thresholds);
        let segment_context = context_for(state.segment_thresholds);
        let n_stages = state.stage_ids.len();
        let counts_whole_entry = if with_counts {
            state.segments[0].pending[0]
        } else {
            0.0
        };
        // A segment counts the hours its whole funnel alerted in as its own: the whole's
        // alert covers (and so silences) the segment's, whose baseline may be as wrong.
        let whole_alerting: u32 = state.segments[0]
            .conversions
            .iter()
            .enumerate()
            .filter(|(_, series)| series.alert.is_some())
            .fold(0, |mask, (stage, _)| mask | 1 << stage);
        for (index, segment) in state.segments.iter_mut().enumerate() {
            let context = if index == 0 {
                &aggregate_context
            } else {
                &segment_context
            };
            let pending = &segment.pending;
            let count = |stage: usize| if with_counts { pending[stage] } else { 0.0 };
            for stage in 0..n_stages - 1 {
                let n = count(stage);
                let next = count(stage + 1);
                let whole_alerting = whole_alerting & 1 << stage != 0;
                segment.conversions[stage].observe(
                    minute,
                    [n, next.min(n), next],
                    whole_alerting,
                    context,
                );
            }
            let whole = (index > 0).then_some(counts_whole_entry);
            segment.volume.observe(minute, count(0), whole, context);
            if with_counts {
                segment.pending.iter_mut().for_each(|n| *n = 0.0);
            }
        }
        let at = minute.end();
        let mut decisions = Vec::new();
        for index in 0..state.segments.len() {
            for stage in 0..n_stages - 1 {
                if let Some(decision) = decide_conversion(state, index, stage, &settings, minute) {
                    decisions.push(decision);
                }
            }
            if let Some(decision) = decide_volume(state, index, &settings, minute) {
                decisions.push(decision);
            }
        }
        for decision in decisions {
            events.push(describe(
                state,
                &self.dimension_names,
                decision,
                at,
                &settings,
            ));
        }
    }

    /// The time-of-week baseline of one conversion series: `stage` is the index of the stage
    /// whose shoppers drop off.
    pub fn baseline(
        &self,
        funnel: usize,
        segment: Option<(&str, &str)>,
        stage: usize,
    ) -> Option<Vec<SlotBaseline>> {
        let state = self.funnels.get(funnel)?;
        let index = self.find_segment(state, segment)?;
        let series = state.segments[index].conversions.get(stage)?;
        Some(series.slots.report())
    }

    /// How far the drop-off from `stage` was from its baseline over the last judged window, in
    /// σ (positive: worse); `None` where the series is unknown or was not judged. What an
    /// incident's trend is made of.
    pub fn window_sigma(
        &self,
        funnel: &str,
        segment: Option<(&str, &str)>,
        stage: &str,
    ) -> Option<f64> {
        let state = self.funnels.get(self.funnel_index(funnel)?)?;
        let index = self.find_segment(state, segment)?;
        let stage = state.stage_ids.iter().position(|id| id == stage)?;
        state.segments[index]
            .conversions
            .get(stage)?
            .last
            .window_sigma
    }

    /// What the last judged minute showed the conversion series from `stage` (of `segment`,
    /// else of the funnel as a whole), for its revenue impact (`impact`): its shoppers, how
    /// many went on, its baseline and noise, the baseline chance of ordering after the next
    /// stage, and the day's traffic shape. `None` where the series is unknown or the minute
    /// had no baseline.
    pub fn impact_statistics(
        &self,
        funnel: &str,
        segment: Option<(&str, &str)>,
        stage: &str,
    ) -> Option<ImpactStatistics> {
        let state = self.funnels.get(self.funnel_index(funnel)?)?;
        let index = self.find_segment(state, segment)?;
        let stage = state.stage_ids.iter().position(|id| id == stage)?;
        let conversions = &state.segments[index].conversions;
        let series = conversions.get(stage)?;
        let baseline_drop_off = series.last.baseline?;
        let window_sd = series.last.window_sd?;
        // The trailing ring took this minute: a minute with a baseline always pushes.
        let [shoppers, went_on, _, _] = series.trailing.sums_last(1);
        let mut downstream_conversion = 1.0;
        for later in &conversions[stage + 1..] {
            let conversion = match later.last.baseline {
                Some(p0) => 1.0 - p0,
                None if later.total_n > 0.0 => later.total_x / later.total_n,
                None => return None,
            };
            downstream_conversion *= conversion.clamp(0.0, 1.0);
        }
        let minute = self.next_minute?.plus(-1);
        let position = SlotPosition::of(minute.start().local_millis(&state.time_zone));
        Some(ImpactStatistics {
            minute,
            window_minutes: self.settings.window_minutes as u32,
            shoppers,
            went_on,
            baseline_drop_off,
            downstream_conversion,
            window_sd,
            duration_factor: series.slots.day_shape(position),
        })
    }

    /// The state of every conversion series of a funnel now: the funnel as a whole first.
    pub fn report(&self, funnel: usize) -> Vec<SeriesReport> {
        let Some(state) = self.funnels.get(funnel) else {
            return Vec::new();
        };
        let mut reports = Vec::new();
        for (index, segment) in state.segments.iter().enumerate() {
            let thresholds = if index == 0 {
                state.thresholds
            } else {
                state.segment_thresholds
            };
            for (stage, series) in segment.conversions.iter().enumerate() {
                let last = series.last;
                reports.push(SeriesReport {
                    stage: state.stage_ids[stage].clone(),
                    next_stage: state.stage_ids[stage + 1].clone(),
                    segment: self.segment_name(segment),
                    status: series.status,
                    baseline_drop_off: last.baseline,
                    window_drop_off: series.trailing_drop_off(),
                    window_sd: last.window_sd,
                    window_sigma: last.window_sigma,
                    expected_shoppers_per_minute: last.expected_n,
                    overdispersion: series.noise.tau2(),
                    binomial_factor: series.noise.phi(),
                    cusum_p2: series.up_p2.statistic,
                    threshold_p2: thresholds.conversion_p2,
                    cusum_p1: series.up_p1.statistic,
                    threshold_p1: thresholds.conversion_p1,
                });
            }
        }
        reports
    }

    pub fn funnel_index(&self, id: &str) -> Option<usize> {
        self.funnels.iter().position(|f| f.id == id)
    }

    fn find_segment(&self, state: &FunnelState, segment: Option<(&str, &str)>) -> Option<usize> {
        match segment {
            None => Some(0),
            Some((dimension, value)) => {
                let dimension = self.dimension_names.iter().position(|d| d == dimension)?;
                state.index[dimension].get(value).copied()
            }
        }
    }

    fn segment_name(&self, segment: &SegmentState) -> Option<(String, String)> {
        segment
            .key
            .as_ref()
            .map(|(dimension, value)| (self.dimension_names[*dimension].clone(), value.clone()))
    }
}

impl SegmentState {
    fn new(key: Option<(usize, String)>, n_stages: usize, settings: &Settings) -> SegmentState {
        SegmentState {
            key,
            pending: vec![0.0; n_stages],
            conversions: (0..n_stages - 1)
                .map(|_| ConversionSeries::new(settings.window_minutes))
                .collect(),
            volume: VolumeSeries::new(),
        }
    }
}
