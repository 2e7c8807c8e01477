//! The drill-down: which dimension values account for more of an alert's loss than of the
//! traffic, from each segment's decaying tallies of lost conversions and traffic.
//!
//! It only reads the tallies the series keep; it never judges a minute or changes an alert.

use std::collections::HashMap;

use super::{FunnelState, SegmentState};
use crate::alert::TopSegment;

/// How many contributors an alert lists.
pub const TOP_SEGMENTS_MAX: usize = 5;
/// A dimension value is listed only if it lost this many of its own standard deviations more
/// than its share of the traffic would have.
const TOP_SEGMENT_SIGMA: f64 = 2.0;
/// Memory of the drill-down tallies of lost conversions, in minutes.
pub(super) const DRILL_DOWN_MEMORY_MINUTES: f64 = 8.0;

/// Ranks dimension values by how much more of the recent loss they account for than of the
/// traffic: a value with 58% of the shoppers and 100% of the lost conversions explains the
/// alert; a value with 46% of both does not.
pub(super) fn top_segments(
    state: &FunnelState,
    dimension_names: &[String],
    step: Option<usize>,
) -> Vec<TopSegment> {
    let tallies = |segment: &SegmentState| match step {
        Some(step) => (
            segment.conversions[step].lost,
            segment.conversions[step].traffic,
        ),
        None => (segment.volume.lost, segment.volume.traffic),
    };
    let (aggregate_lost, _) = tallies(&state.segments[0]);
    let sign = if aggregate_lost < 0.0 { -1.0 } else { 1.0 };
    // Variance of one shopper's (or expected event's) contribution to the loss: binomial for
    // conversion, Poisson for volume.
    let unit_variance = match step {
        Some(step) => state.segments[0].conversions[step]
            .last
            .baseline
            .map_or(0.25, |p| p * (1.0 - p)),
        None => 1.0,
    };
    let mut by_dimension: HashMap<usize, Vec<(&str, f64, f64)>> = HashMap::new();
    for segment in &state.segments[1..] {
        let Some((dimension, value)) = &segment.key else {
            continue;
        };
        let (lost, traffic) = tallies(segment);
        by_dimension
            .entry(*dimension)
            .or_default()
            .push((value, sign * lost, traffic));
    }
    let mut ranked = Vec::new();
    for (dimension, values) in by_dimension {
        let lost_total: f64 = values.iter().map(|v| v.1.max(0.0)).sum();
        let traffic_total: f64 = values.iter().map(|v| v.2).sum();
        if lost_total <= 0.0 || traffic_total <= 0.0 {
            continue;
        }
        let net_lost: f64 = values.iter().map(|v| v.1).sum();
        for (value, lost, traffic) in values {
            let share = lost.max(0.0) / lost_total;
            let traffic_share = traffic / traffic_total;
            // A value explains the alert only if it lost more than its share of the traffic
            // would, by more than its own noise: a whole-funnel outage has no top segment.
            let excess = lost - traffic_share * net_lost;
            let noise = (traffic * unit_variance).sqrt().max(1.0);
            if share > traffic_share && excess > TOP_SEGMENT_SIGMA * noise {
                ranked.push((
                    share - traffic_share,
                    dimension,
                    value,
                    share,
                    traffic_share,
                ));
            }
        }
    }
    ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(b.2)));
    ranked
        .into_iter()
        .take(TOP_SEGMENTS_MAX)
        .map(|(_, dimension, value, share, traffic_share)| TopSegment {
            dimension: dimension_names[dimension].clone(),
            value: value.to_owned(),
            share,
            traffic_share,
        })
        .collect()
}
