//! The demo's history: `revloop demo` backfills [`DEMO_DAYS`] days of simulated traffic with
//! two incidents for the detector to find. Here so that the demo and the test of what its
//! history shows (`tests/demo_history.rs`) use the same scenario.

use revloop_core::Config;
use revloop_core::time::{DurationMs, MS_PER_DAY, MS_PER_HOUR, Timestamp};

use crate::injection::{IncidentKind, InjectedIncident};
use crate::traffic::Scenario;

/// Days of history the demo backfills. The detector learns for a week before it pages, so
/// this leaves a week of history it judges, with two incidents in it.
pub const DEMO_DAYS: u32 = 15;
/// Seed of the demo's simulated traffic.
pub const DEMO_SEED: u64 = 7;
/// Mean sessions per minute at the busiest time of the demo shop's week.
pub const DEMO_PEAK_SESSIONS_PER_MINUTE: f64 = 40.0;

/// The demo's history: `days` of traffic up to `now`, with [`incidents`] in it.
pub fn history(config: &Config, now: Timestamp, days: u32, seed: u64, peak: f64) -> Scenario {
    Scenario {
        from: now.saturating_sub(DurationMs::from_days(i64::from(days))),
        to: now,
        seed,
        peak_sessions_per_minute: peak,
        incidents: incidents(config, now),
        conversion_swing: Default::default(),
    }
}

/// Two incidents in the history for the detector to find, yesterday afternoon in the example
/// shop's New York: a checkout failure on mobile only from 19:00 UTC, and a payment outage
/// from 22:00 UTC. None where the first funnel has fewer than three stages; no mobile failure
/// where the config has no `device` dimension.
pub fn incidents(config: &Config, now: Timestamp) -> Vec<InjectedIncident> {
    let stages: Vec<&str> = config.funnels[0]
        .stages
        .iter()
        .map(|s| s.id.as_str())
        .collect();
    if stages.len() < 3 {
        return Vec::new();
    }
    // 22:00 UTC yesterday: the start of today, less two hours.
    let yesterday_evening = Timestamp::from_millis(
        now.millis() - now.millis().rem_euclid(MS_PER_DAY) - 2 * MS_PER_HOUR,
    );
    let at =
        |hours_before: i64, minutes: i64, stage: &str, drop: f64, segment: Option<(&str, &str)>| {
            let from = yesterday_evening.saturating_sub(DurationMs::from_hours(hours_before));
            InjectedIncident {
                funnel: Some(config.funnels[0].id.clone()),
                kind: IncidentKind::Conversion {
                    stage: stage.to_owned(),
                    drop,
                },
                from,
                to: from.saturating_add(DurationMs::from_minutes(minutes)),
                segment: segment.map(|(d, v)| (d.to_owned(), v.to_owned())),
            }
        };
    let last_step = stages[stages.len() - 2];
    let middle = stages[stages.len() / 2];
    let mut incidents = vec![at(0, 40, last_step, 1.0, None)];
    if config.dimensions.iter().any(|d| d.name == "device") {
        incidents.push(at(3, 90, middle, 0.6, Some(("device", "mobile"))));
    }
    incidents
}
