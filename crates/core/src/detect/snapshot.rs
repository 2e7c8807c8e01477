//! A funnel's detector state as bytes, and back: what lets a restart skip re-deriving weeks of
//! baselines from the count history.
//!
//! A snapshot holds one funnel's series (every segment's slot tables, overdispersion, trailing
//! windows, CUSUMs and open alerts) and the first minute it has not judged, encoded with
//! `postcard` after a header of [`SNAPSHOT_FORMAT_VERSION`] and a fingerprint
//! ([`snapshot_fingerprint`]) of everything that shapes the state: the funnel's stages and
//! time zone, the dimensions, the detection settings and masks, and the layout of the series
//! themselves. What can be rebuilt from the config (the time zone, the masks, the segment
//! index, the thresholds) is not stored. A restored detector judges every later minute exactly
//! as the one that was saved.
//!
//! Restoring never trusts the bytes: a different version or fingerprint, bytes that do not
//! decode, or a state whose shape does not fit the config is a [`SnapshotError`], and the
//! detector is left as it was, so the caller can re-derive from history instead.
//!
//! What it must never do: IO. Where the bytes are kept is the caller's business.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::baseline::{SLOTS, SlotTable};
use super::volume::VOLUME_PERSISTENCE_MINUTES;
use super::{Detector, SEGMENTS_PER_FUNNEL_MAX, SegmentState};
use crate::config::Config;
use crate::time::Minute;

/// The snapshot encoding's version. Bump it when the meaning of a stored field changes without
/// its layout changing (the fingerprint already covers a changed layout).
pub const SNAPSHOT_FORMAT_VERSION: u32 = 1;

/// Why a snapshot was not restored. Each means: re-derive from history instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    #[error("the detector has no funnel {0}")]
    UnknownFunnel(usize),
    #[error("the snapshot is of format {found}, this build reads {expected}")]
    Version { found: u32, expected: u32 },
    #[error("the snapshot was taken under another configuration or build")]
    Fingerprint,
    #[error("the snapshot does not decode: {0}")]
    Decode(String),
    #[error("the snapshot does not fit the funnel: {0}")]
    Shape(&'static str),
    #[error("the detector has judged up to another minute than the snapshot")]
    MinuteMismatch,
}

/// One funnel's state, ready to be stored.
#[derive(Debug, Clone, PartialEq)]
pub struct FunnelSnapshot {
    /// The first minute the saved detector had not judged: a restored detector goes on from
    /// here.
    pub next_minute: Minute,
    pub fingerprint: u64,
    pub bytes: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
struct Header {
    version: u32,
    fingerprint: u64,
}

#[derive(Serialize)]
struct BodyRef<'a> {
    next_minute: Minute,
    segments_dropped: u64,
    segments: &'a [SegmentState],
}

#[derive(Deserialize)]
struct Body {
    next_minute: Minute,
    segments_dropped: u64,
    segments: Vec<SegmentState>,
}

/// The fingerprint of what shapes funnel `funnel`'s detector state under `config`; `None` for
/// an unknown funnel. Two configs with the same fingerprint give detectors whose state means
/// the same thing.
pub fn snapshot_fingerprint(config: &Config, funnel: usize) -> Option<u64> {
    let funnel_config = config.funnels.get(funnel)?;
    let detector = Detector::new(config);
    let mut text = String::new();
    // Debug output names every field, so the layout of a fresh segment's series stands for
    // the layout of the encoding: a field added, removed or retyped changes the fingerprint.
    let layout = SegmentState::new(
        Some((0, String::new())),
        funnel_config.stages.len(),
        &detector.settings,
    );
    let _ = write!(
        text,
        "{SNAPSHOT_FORMAT_VERSION}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}",
        funnel_config.id,
        funnel_config.stages,
        funnel_config.time_zone,
        config.dimensions,
        config.detection,
        layout,
    );
    Some(xxhash_rust::xxh3::xxh3_64(text.as_bytes()))
}

impl Detector {
    /// Funnel `funnel`'s state now; `None` for an unknown funnel or before any minute was
    /// judged. Take it between minutes (after [`Detector::close_minute`]): counts recorded for
    /// the minute being gathered are not part of it.
    pub fn snapshot(&self, config: &Config, funnel: usize) -> Option<FunnelSnapshot> {
        let state = self.funnels.get(funnel)?;
        let next_minute = self.next_minute?;
        let fingerprint = snapshot_fingerprint(config, funnel)?;
        let header = Header {
            version: SNAPSHOT_FORMAT_VERSION,
            fingerprint,
        };
        let body = BodyRef {
            next_minute,
            segments_dropped: self.segments_dropped,
            segments: &state.segments,
        };
        let mut bytes = postcard::to_allocvec(&header).ok()?;
        bytes.extend(postcard::to_allocvec(&body).ok()?);
        Some(FunnelSnapshot {
            next_minute,
            fingerprint,
            bytes,
        })
    }

    /// Replaces funnel `funnel`'s state with a snapshot taken under `config` (the config this
    /// detector was made from), and returns the first minute to judge next. On any error the
    /// detector is unchanged.
    ///
    /// The detector's next minute is shared by its funnels, so a detector of several funnels
    /// can only restore snapshots of the same minute; one that has judged nothing takes the
    /// snapshot's.
    pub fn restore(
        &mut self,
        config: &Config,
        funnel: usize,
        bytes: &[u8],
    ) -> Result<Minute, SnapshotError> {
        if funnel >= self.funnels.len() {
            return Err(SnapshotError::UnknownFunnel(funnel));
        }
        let (header, rest) = postcard::take_from_bytes::<Header>(bytes)
            .map_err(|err| SnapshotError::Decode(err.to_string()))?;
        if header.version != SNAPSHOT_FORMAT_VERSION {
            return Err(SnapshotError::Version {
                found: header.version,
                expected: SNAPSHOT_FORMAT_VERSION,
            });
        }
        if Some(header.fingerprint) != snapshot_fingerprint(config, funnel) {
            return Err(SnapshotError::Fingerprint);
        }
        let (mut body, rest) = postcard::take_from_bytes::<Body>(rest)
            .map_err(|err| SnapshotError::Decode(err.to_string()))?;
        if !rest.is_empty() {
            return Err(SnapshotError::Decode("bytes after the end".to_owned()));
        }
        if self
            .next_minute
            .is_some_and(|next| next != body.next_minute)
        {
            return Err(SnapshotError::MinuteMismatch);
        }
        let index = self.check_shape(funnel, &mut body.segments)?;
        let state = &mut self.funnels[funnel];
        state.segments = body.segments;
        state.index = index;
        state.thresholds_for_segments = usize::MAX;
        self.refresh_thresholds(funnel);
        self.segments_dropped = body.segments_dropped;
        self.next_minute = Some(body.next_minute);
        Ok(body.next_minute)
    }

    /// Checks that decoded segments fit funnel `funnel` (so that no later minute indexes out of
    /// bounds), clears their pending counts, and returns the segment index they imply.
    fn check_shape(
        &self,
        funnel: usize,
        segments: &mut [SegmentState],
    ) -> Result<Vec<HashMap<String, usize>>, SnapshotError> {
        let state = &self.funnels[funnel];
        let n_stages = state.stage_ids.len();
        let n_dimensions = self.dimension_names.len();
        let window = self.settings.window_minutes.max(1);
        if segments.is_empty() || segments.len() > SEGMENTS_PER_FUNNEL_MAX + 1 {
            return Err(SnapshotError::Shape("segment count"));
        }
        if segments.len() > 1 && !self.settings.watch_segments {
            return Err(SnapshotError::Shape("segments are not watched"));
        }
        let mut index = vec![HashMap::new(); n_dimensions];
        let mut seen = HashSet::new();
        for (position, segment) in segments.iter_mut().enumerate() {
            match (&segment.key, position) {
                (None, 0) => {}
                (Some((dimension, value)), 1..) if *dimension < n_dimensions => {
                    if !seen.insert((*dimension, value.clone())) {
                        return Err(SnapshotError::Shape("a segment twice"));
                    }
                    index[*dimension].insert(value.clone(), position);
                }
                _ => return Err(SnapshotError::Shape("segment key")),
            }
            if segment.pending.len() != n_stages || segment.conversions.len() + 1 != n_stages {
                return Err(SnapshotError::Shape("stage count"));
            }
            segment.pending.iter_mut().for_each(|n| *n = 0.0);
            let alert_stage_fits = |alert: Option<super::decide::OpenAlert>| {
                alert.is_none_or(|alert| alert.stage < n_stages)
            };
            for series in &segment.conversions {
                if !series.trailing.is_well_formed(window) || !alert_stage_fits(series.alert) {
                    return Err(SnapshotError::Shape("conversion series"));
                }
            }
            let volume = &segment.volume;
            if !volume.trailing.is_well_formed(VOLUME_PERSISTENCE_MINUTES)
                || !alert_stage_fits(volume.alert)
            {
                return Err(SnapshotError::Shape("volume series"));
            }
        }
        Ok(index)
    }
}

// The slot table is 168 cells, beyond the array sizes serde derives for: it is written as a
// sequence and read back only when it has exactly that many.
impl Serialize for SlotTable {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter())
    }
}

impl<'de> Deserialize<'de> for SlotTable {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<SlotTable, D::Error> {
        struct Cells;
        impl<'de> Visitor<'de> for Cells {
            type Value = SlotTable;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                write!(f, "{SLOTS} slots")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<SlotTable, A::Error> {
                let mut table = SlotTable::new();
                for (slot, cell) in table.0.iter_mut().enumerate() {
                    *cell = seq
                        .next_element()?
                        .ok_or_else(|| de::Error::invalid_length(slot, &self))?;
                }
                if seq.next_element::<[f32; 3]>()?.is_some() {
                    return Err(de::Error::invalid_length(SLOTS + 1, &self));
                }
                Ok(table)
            }
        }
        deserializer.deserialize_seq(Cells)
    }
}

#[cfg(test)]
mod tests;
