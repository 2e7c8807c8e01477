//! What a group of new items writes, worked out once for both SQL dialects: dimension values
//! folded under their caps, each message expanded into the segments it is counted under, and
//! counts summed per row so that a group of thousands of events touches each row once.

use std::collections::{HashMap, HashSet};

use rustc_hash::{FxHashMap, FxHashSet};

use revloop_core::Config;
use revloop_core::funnel::{DimensionDictionary, DimensionValues, counted_segments, segment_key};
use revloop_core::ingest::StageCount;

use crate::IngestItem;

/// Funnel and stage ids by config position, and dimension names in config order.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    pub funnels: Vec<(String, Vec<String>)>,
    pub dimension_names: Vec<String>,
}

impl Layout {
    pub fn new(config: &Config) -> Layout {
        Layout {
            funnels: config
                .funnels
                .iter()
                .map(|f| {
                    (
                        f.id.clone(),
                        f.stages.iter().map(|s| s.id.clone()).collect(),
                    )
                })
                .collect(),
            dimension_names: config.dimensions.iter().map(|d| d.name.clone()).collect(),
        }
    }

    /// The stage ids of a funnel.
    pub fn stages(&self, funnel: &str) -> Result<&[String], crate::StoreError> {
        self.funnels
            .iter()
            .find(|(id, _)| id == funnel)
            .map(|(_, stages)| stages.as_slice())
            .ok_or_else(|| crate::StoreError::UnknownFunnel(funnel.to_owned()))
    }
}

/// Raw dimension-value combinations whose segment keys are cached. Past it the cache is
/// cleared and refills from the traffic.
const SEGMENT_CACHE_ENTRIES_MAX: usize = 65_536;

/// The folding state the writer keeps between groups: it changes only after a commit succeeds.
#[derive(Debug, Clone)]
pub(crate) struct WriterState {
    pub dictionary: DimensionDictionary,
    pub known_segments: HashSet<i64>,
    /// Raw dimension values → the keys of the segments a message with them is counted under.
    /// Folding a combination always gives the same answer once its values are admitted or
    /// over the cap, so the answer is kept; a failed commit clears it.
    segment_keys: FxHashMap<DimensionValues, Vec<i64>>,
}

#[derive(Debug, Default)]
pub(crate) struct CommitPlan {
    /// `(funnel, stage, segment, minute)` → what to add.
    pub counts: FxHashMap<(usize, usize, i64, i64), StageCount>,
    /// `(funnel, stage, minute)` → late events, all segments together.
    pub late: FxHashMap<(usize, usize, i64), i64>,
    /// `(funnel, stage, segment, minute)` → late events of each segment they are counted
    /// under, folded like counted events (late events admit dimension values too).
    pub late_segments: FxHashMap<(usize, usize, i64, i64), i64>,
    /// Segments not yet in the table: key, JSON assignment, number of dimensions.
    pub new_segments: Vec<(i64, String, i64)>,
    /// Dimension values admitted by this group: dimension index, value.
    pub new_values: Vec<(usize, String)>,
}

impl WriterState {
    pub fn new(dictionary: DimensionDictionary, known_segments: HashSet<i64>) -> WriterState {
        WriterState {
            dictionary,
            known_segments,
            segment_keys: FxHashMap::default(),
        }
    }

    /// Plans the writes of the items whose `is_new` is true. Folding decisions are made on
    /// `self` as the plan goes; [`WriterState::forget`] undoes them if the commit fails.
    pub fn plan(&mut self, layout: &Layout, items: &[IngestItem], is_new: &[bool]) -> CommitPlan {
        let mut plan = CommitPlan::default();
        let mut new_segment_keys = FxHashSet::default();
        for (item, _) in items.iter().zip(is_new).filter(|(_, new)| **new) {
            for (cell, count) in &item.cells {
                let funnel = cell.hit.funnel;
                let stage = cell.hit.stage;
                let minute = cell.minute.index();
                if item.late {
                    let late = plan.late.entry((funnel, stage, minute)).or_default();
                    *late = late.saturating_add(count.n_events);
                }
                if !self.segment_keys.contains_key(&cell.dimension_values) {
                    let keys = self.fold_and_register(
                        layout,
                        &cell.dimension_values,
                        &mut plan,
                        &mut new_segment_keys,
                    );
                    if self.segment_keys.len() >= SEGMENT_CACHE_ENTRIES_MAX {
                        self.segment_keys.clear();
                    }
                    self.segment_keys
                        .insert(cell.dimension_values.clone(), keys);
                }
                for key in &self.segment_keys[&cell.dimension_values] {
                    if item.late {
                        let late = plan
                            .late_segments
                            .entry((funnel, stage, *key, minute))
                            .or_default();
                        *late = late.saturating_add(count.n_events);
                    } else {
                        plan.counts
                            .entry((funnel, stage, *key, minute))
                            .or_default()
                            .add(*count);
                    }
                }
            }
        }
        plan
    }

    /// Folds raw values under the caps and returns the segment keys they are counted under,
    /// adding segments not seen before to the plan.
    fn fold_and_register(
        &mut self,
        layout: &Layout,
        raw_values: &DimensionValues,
        plan: &mut CommitPlan,
        new_segment_keys: &mut FxHashSet<i64>,
    ) -> Vec<i64> {
        let folded = self.dictionary.fold_values(raw_values, |dimension, value| {
            plan.new_values.push((dimension, value.to_owned()))
        });
        let mut keys = Vec::new();
        for assignment in counted_segments(&layout.dimension_names, &folded) {
            let key = segment_key(&assignment);
            if !self.known_segments.contains(&key) && new_segment_keys.insert(key) {
                let object: serde_json::Map<String, serde_json::Value> = assignment
                    .iter()
                    .map(|(d, v)| ((*d).to_owned(), serde_json::Value::from(*v)))
                    .collect();
                let json = serde_json::Value::Object(object).to_string();
                plan.new_segments.push((key, json, assignment.len() as i64));
            }
            keys.push(key);
        }
        keys
    }

    /// Makes a committed plan's segments known.
    pub fn committed(&mut self, plan: &CommitPlan) {
        self.known_segments
            .extend(plan.new_segments.iter().map(|(key, _, _)| *key));
    }

    /// Undoes the folding decisions of a plan whose commit failed.
    pub fn forget(&mut self, plan: &CommitPlan) {
        for (dimension, value) in &plan.new_values {
            self.dictionary.forget(*dimension, value);
        }
        self.segment_keys.clear();
    }
}

/// Full combinations of dimension values seen so far: segment key and assignment.
pub(crate) type Combinations = Vec<(i64, HashMap<String, String>)>;

/// Resolves a filter to the segment keys whose counts sum to it. `full_combinations` lists the
/// assignments of every full combination seen so far.
pub(crate) fn filter_keys(
    layout: &Layout,
    filter: &[(String, String)],
    full_combinations: impl FnOnce() -> Result<Combinations, crate::StoreError>,
) -> Result<Vec<i64>, crate::StoreError> {
    let mut pairs: Vec<(usize, &str, &str)> = Vec::with_capacity(filter.len());
    for (dimension, value) in filter {
        let index = layout
            .dimension_names
            .iter()
            .position(|d| d == dimension)
            .ok_or_else(|| crate::StoreError::UnknownDimension(dimension.clone()))?;
        pairs.push((index, dimension, value));
    }
    pairs.sort_by_key(|(index, _, _)| *index);
    let n_distinct = pairs
        .iter()
        .map(|(index, _, _)| *index)
        .collect::<HashSet<_>>()
        .len();
    if n_distinct < pairs.len() {
        // Two values for one dimension: no event has both.
        let first_values_agree = pairs
            .windows(2)
            .all(|w| w[0].0 != w[1].0 || w[0].2 == w[1].2);
        if !first_values_agree {
            return Ok(Vec::new());
        }
        pairs.dedup_by_key(|(index, _, _)| *index);
    }
    let assignment: Vec<(&str, &str)> = pairs.iter().map(|(_, d, v)| (*d, *v)).collect();
    if assignment.len() <= 1 || assignment.len() == layout.dimension_names.len() {
        return Ok(vec![segment_key(&assignment)]);
    }
    Ok(full_combinations()?
        .into_iter()
        .filter(|(_, values)| {
            assignment
                .iter()
                .all(|(d, v)| values.get(*d).map(String::as_str) == Some(*v))
        })
        .map(|(key, _)| key)
        .collect())
}

/// The segments [`crate::Store::segment_minute_counts`] reads, resolved once per read: all
/// segments together, then each single-dimension segment of a configured dimension, ordered by
/// dimension (config order) and value. Rows then carry a small index instead of strings.
#[derive(Debug)]
pub(crate) struct SingleSegments {
    /// In output order; index 0 is all segments together.
    segments: Vec<Option<(String, String)>>,
    /// The key of each of `segments`.
    keys: Vec<i64>,
    /// Segment key → index in `segments`.
    index: FxHashMap<i64, u32>,
}

impl SingleSegments {
    /// `rows`: key and JSON assignment of the segments table's rows with one dimension. Those
    /// of dimensions no longer configured, or that do not parse, are left out.
    pub fn new<'r>(layout: &Layout, rows: impl IntoIterator<Item = (i64, &'r str)>) -> Self {
        let mut found: Vec<(usize, String, i64)> = Vec::new();
        for (key, json) in rows {
            // The store wrote these itself; one that does not parse is skipped, not fatal.
            let Ok(assignment) = serde_json::from_str::<HashMap<String, String>>(json) else {
                continue;
            };
            let mut pairs = assignment.into_iter();
            let (Some((dimension, value)), None) = (pairs.next(), pairs.next()) else {
                continue;
            };
            if let Some(position) = layout.dimension_names.iter().position(|d| *d == dimension) {
                found.push((position, value, key));
            }
        }
        found.sort_unstable();
        let mut segments = vec![None];
        let mut keys = vec![revloop_core::funnel::SEGMENT_ALL];
        for (position, value, key) in found {
            segments.push(Some((layout.dimension_names[position].clone(), value)));
            keys.push(key);
        }
        let index = keys
            .iter()
            .enumerate()
            .map(|(index, key)| (*key, index as u32))
            .collect();
        SingleSegments {
            segments,
            keys,
            index,
        }
    }

    /// The keys, in output order.
    pub fn keys(&self) -> &[i64] {
        &self.keys
    }

    /// The output position of the segment with this key, if it is one of these.
    pub fn position(&self, key: i64) -> Option<u32> {
        self.index.get(&key).copied()
    }
}

/// Rows of [`crate::Store::segment_minute_counts`] as read, possibly several per
/// (minute, segment, stage) where a minute sits in two tables.
#[derive(Debug, Default)]
pub(crate) struct SegmentRows {
    /// `(minute, segment position, stage)` and the number of events.
    rows: Vec<((i64, u32, u32), i64)>,
}

impl SegmentRows {
    pub fn push(&mut self, minute: i64, segment: u32, stage: usize, n_events: i64) {
        self.rows.push(((minute, segment, stage as u32), n_events));
    }

    /// Sums rows of the same minute, segment and stage, and orders them by minute, segment
    /// (in [`SingleSegments`] order) and stage.
    pub fn finish(mut self, segments: &SingleSegments) -> Vec<crate::SegmentMinuteCount> {
        self.rows.sort_unstable_by_key(|(at, _)| *at);
        let mut out: Vec<crate::SegmentMinuteCount> = Vec::with_capacity(self.rows.len());
        let mut last = None;
        for ((minute, segment, stage), n_events) in self.rows {
            if last == Some((minute, segment, stage)) {
                let sum = &mut out.last_mut().expect("pushed below").n_events;
                *sum = sum.saturating_add(n_events);
                continue;
            }
            last = Some((minute, segment, stage));
            out.push(crate::SegmentMinuteCount {
                segment: segments.segments[segment as usize].clone(),
                stage: stage as usize,
                minute: revloop_core::time::Minute::new(minute),
                n_events,
            });
        }
        out
    }
}
