//! The suite's in-memory replica of ingest: simulated events go through the same core functions
//! production runs (admission against an event-time watermark, stage matching and revenue with
//! `ingest::message_cells`, dimension folding under the caps with
//! `funnel::DimensionDictionary::fold_values`, segment expansion with `funnel::counted_segments`)
//! and are counted per minute in memory. Each minute is then handed to the detectors in the
//! order the store's `segment_minute_counts` returns it: per funnel, every segment together
//! first, then each single-dimension segment by dimension (config order) and value, each by
//! stage.
//!
//! It never touches a disk or a clock. It does not deduplicate: simulated message ids are
//! unique, so production's dedup would drop nothing.

use std::borrow::Cow;
use std::collections::HashMap;

use revloop_core::Config;
use revloop_core::alert::AlertEvent;
use revloop_core::config::{FieldPath, Ingest};
use revloop_core::detect::Detector;
use revloop_core::funnel::{
    DimensionDictionary, DimensionValues, Matcher, Message, counted_segments,
};
use revloop_core::ingest::{Admission, admit, message_cells};
use revloop_core::money::Currency;
use revloop_core::time::{Minute, Timestamp};

use super::naive::{NaiveAlert, NaiveDetector};
use crate::traffic::{Scenario, ScenarioError, SimEvent, simulate};

/// Raw dimension-value combinations whose segments are cached; past it the cache is cleared
/// and refills from the traffic, as the store's writer does.
const SEGMENT_CACHE_ENTRIES_MAX: usize = 65_536;

/// A single-dimension segment: dimension index and folded value.
type SingleSegment = (usize, String);

/// Feeds simulated events to detectors, minute by minute. Its folding state (the values
/// admitted under each cap) carries over from one run to the next, as the store's does, so a
/// clone taken after learning is the state production would have then.
#[derive(Debug, Clone)]
pub struct Feed {
    matcher: Matcher,
    slot_of: HashMap<FieldPath, usize>,
    dimension_names: Vec<String>,
    n_stages: Vec<usize>,
    shop_currency: Currency,
    ingest_rules: Ingest,
    dictionary: DimensionDictionary,
    /// Every single-dimension segment seen, by id; ids are positions here.
    segments: Vec<SingleSegment>,
    segment_ids: HashMap<SingleSegment, usize>,
    /// Segment ids in the store's read order: by dimension, then value.
    read_order: Vec<usize>,
    /// Raw dimension values → the single-dimension segments a message with them counts under.
    segments_of_values: HashMap<DimensionValues, Vec<usize>>,
}

/// What a stretch of simulated traffic produced.
#[derive(Debug, Default)]
pub struct FeedOutput {
    pub alerts: Vec<AlertEvent>,
    pub naive: Vec<NaiveAlert>,
    /// Events per funnel and stage, summed over the minutes `tally` asked for.
    pub tallies: Vec<Vec<i64>>,
    pub tally_minutes: i64,
    /// Events older than the allowed lateness: tallied as late, not counted, as ingest does.
    pub n_late: i64,
    /// Events ingest would reject (too old, too far ahead, or a malformed field).
    pub n_rejected: i64,
}

/// One minute's counts: per funnel, per segment (0 every segment together, `1 + id` a single
/// dimension segment), per stage.
#[derive(Debug, Default)]
struct MinuteCounts {
    counts: Vec<Vec<Vec<i64>>>,
}

impl MinuteCounts {
    fn add(&mut self, funnel: usize, segment: usize, n_stages: usize, stage: usize, n: i64) {
        let rows = &mut self.counts[funnel];
        if rows.len() <= segment {
            rows.resize_with(segment + 1, || vec![0; n_stages]);
        }
        rows[segment][stage] += n;
    }

    fn clear(&mut self) {
        for row in self.counts.iter_mut().flatten() {
            row.iter_mut().for_each(|n| *n = 0);
        }
    }
}

/// The detectors a feed drives, and where their output goes.
struct Sinks<'a> {
    detector: &'a mut Detector,
    naive: &'a mut NaiveDetector,
    output: FeedOutput,
    tally: Option<(Minute, Minute)>,
    observer: &'a mut dyn FnMut(Minute, &Detector, &[AlertEvent]),
}

impl Feed {
    pub fn new(config: &Config) -> Feed {
        let matcher = Matcher::new(config);
        let slot_of = matcher
            .slots()
            .iter()
            .enumerate()
            .map(|(index, path)| (path.clone(), index))
            .collect();
        Feed {
            matcher,
            slot_of,
            dimension_names: config.dimensions.iter().map(|d| d.name.clone()).collect(),
            n_stages: config.funnels.iter().map(|f| f.stages.len()).collect(),
            shop_currency: config.shop.currency,
            ingest_rules: config.ingest.clone(),
            dictionary: DimensionDictionary::new(config),
            segments: Vec::new(),
            segment_ids: HashMap::new(),
            read_order: Vec::new(),
            segments_of_values: HashMap::new(),
        }
    }

    /// Simulates `scenario` into both detectors. Minutes in `tally` are summed per stage.
    pub fn run(
        &mut self,
        config: &Config,
        scenario: &Scenario,
        detector: &mut Detector,
        naive: &mut NaiveDetector,
        tally: Option<(Minute, Minute)>,
        observer: &mut dyn FnMut(Minute, &Detector, &[AlertEvent]),
    ) -> Result<FeedOutput, ScenarioError> {
        let mut sinks = Sinks {
            detector,
            naive,
            output: FeedOutput {
                tallies: self.n_stages.iter().map(|&n| vec![0; n]).collect(),
                ..FeedOutput::default()
            },
            tally,
            observer,
        };
        let mut minute_counts = MinuteCounts {
            counts: self.n_stages.iter().map(|&n| vec![vec![0; n]]).collect(),
        };
        let mut current: Option<Minute> = None;
        let mut watermark: Option<Timestamp> = None;
        simulate(config, scenario, |event: SimEvent| {
            let minute = event.timestamp.minute();
            if let Some(previous) = current
                && minute != previous
            {
                self.flush(previous, &mut minute_counts, &mut sinks);
            }
            current = Some(minute);
            let now =
                *watermark.insert(watermark.map_or(event.timestamp, |w| w.max(event.timestamp)));
            self.count(&event, now, &mut minute_counts, &mut sinks.output);
        })?;
        if let Some(last) = current {
            self.flush(last, &mut minute_counts, &mut sinks);
        }
        Ok(sinks.output)
    }

    /// Counts one event as ingest and the store's writer would: admitted against `now` (the
    /// event-time watermark, as in replay), matched to stages, its dimension values folded
    /// under the caps and expanded into the segments it is counted under.
    fn count(
        &mut self,
        event: &SimEvent,
        now: Timestamp,
        minute_counts: &mut MinuteCounts,
        output: &mut FeedOutput,
    ) {
        let admission = admit(event.timestamp, now, &self.ingest_rules);
        if matches!(admission, Admission::TooOld | Admission::TooFarAhead) {
            output.n_rejected += 1;
            return;
        }
        let mut fields: Vec<Option<Cow<str>>> = vec![None; self.matcher.slots().len()];
        for (path, value) in &event.fields {
            if let Some(&slot) = self.slot_of.get(path) {
                fields[slot] = Some(Cow::Owned(value.to_string()));
            }
        }
        let message = Message {
            kind: event.kind,
            name: Some(&event.name),
            message_id: &event.message_id,
            event_time: event.timestamp,
            fields,
        };
        let Ok(cells) = message_cells(&self.matcher, self.shop_currency, &message) else {
            output.n_rejected += 1;
            return;
        };
        if cells.is_empty() {
            return;
        }
        if admission == Admission::Late {
            output.n_late += 1;
            return;
        }
        for (cell, count) in &cells {
            let (funnel, stage) = (cell.hit.funnel, cell.hit.stage);
            let n_stages = self.n_stages[funnel];
            minute_counts.add(funnel, 0, n_stages, stage, count.n_events);
            for &id in self.segments_of(&cell.dimension_values) {
                minute_counts.add(funnel, 1 + id, n_stages, stage, count.n_events);
            }
        }
    }

    /// The single-dimension segments a message with these raw values is counted under,
    /// folding them on first sight. Once folded, a combination always gives the same answer
    /// (its values are admitted or over the cap), so the answer is kept.
    fn segments_of(&mut self, raw_values: &DimensionValues) -> &[usize] {
        if !self.segments_of_values.contains_key(raw_values) {
            let folded = self.dictionary.fold_values(raw_values, |_, _| {});
            // The detector reads every segment together (counted by the caller) and the
            // single-dimension segments; the full combination serves other filters only.
            let singles: Vec<SingleSegment> = counted_segments(&self.dimension_names, &folded)
                .iter()
                .filter_map(|assignment| match assignment.as_slice() {
                    [(dimension, value)] => Some((
                        self.dimension_names
                            .iter()
                            .position(|d| d == dimension)
                            .expect("counted_segments names configured dimensions"),
                        (*value).to_owned(),
                    )),
                    _ => None,
                })
                .collect();
            let ids = singles
                .into_iter()
                .map(|segment| self.segment_id(segment))
                .collect();
            if self.segments_of_values.len() >= SEGMENT_CACHE_ENTRIES_MAX {
                self.segments_of_values.clear();
            }
            self.segments_of_values.insert(raw_values.clone(), ids);
        }
        &self.segments_of_values[raw_values]
    }

    fn segment_id(&mut self, segment: SingleSegment) -> usize {
        if let Some(&id) = self.segment_ids.get(&segment) {
            return id;
        }
        let id = self.segments.len();
        self.segments.push(segment.clone());
        self.segment_ids.insert(segment, id);
        self.read_order.push(id);
        let segments = &self.segments;
        self.read_order
            .sort_by(|a, b| segments[*a].cmp(&segments[*b]));
        id
    }

    /// Hands a minute's counts to both detectors, in the store's read order, and clears them.
    fn flush(&self, minute: Minute, minute_counts: &mut MinuteCounts, sinks: &mut Sinks) {
        for (funnel, rows) in minute_counts.counts.iter().enumerate() {
            let mut record = |segment: usize, detector_segment: Option<(&str, &str)>| {
                let Some(row) = rows.get(segment) else { return };
                let mut index = None;
                for (stage, &n) in row.iter().enumerate().filter(|(_, n)| **n > 0) {
                    if index.is_none() {
                        index = sinks.detector.segment(funnel, detector_segment);
                    }
                    if let Some(index) = index {
                        sinks.detector.record(funnel, index, stage, n);
                    }
                }
            };
            record(0, None);
            for &id in &self.read_order {
                let (dimension, value) = &self.segments[id];
                record(1 + id, Some((&self.dimension_names[*dimension], value)));
            }
        }
        let alerts_before = sinks.output.alerts.len();
        sinks
            .detector
            .close_minute(minute, &mut sinks.output.alerts);
        (sinks.observer)(
            minute,
            sinks.detector,
            &sinks.output.alerts[alerts_before..],
        );
        let whole: Vec<Vec<i64>> = minute_counts
            .counts
            .iter()
            .map(|rows| rows[0].clone())
            .collect();
        sinks.naive.observe(minute, &whole, &mut sinks.output.naive);
        if let Some((from, to)) = sinks.tally
            && (from..to).contains(&minute)
        {
            sinks.output.tally_minutes += 1;
            for (sums, row) in sinks.output.tallies.iter_mut().zip(&whole) {
                for (sum, n) in sums.iter_mut().zip(row) {
                    *sum += n;
                }
            }
        }
        minute_counts.clear();
    }
}
