//! Simulation and evaluation for revloop: seeded Segment-format traffic with injected incidents,
//! and the detector's scenario suite that runs on it.
//!
//! This crate builds on `revloop-core` only and is pure like it: it never does IO, never reads
//! the wall clock and never draws unseeded randomness, so the same config, scenario and seed
//! give the same events and the same report on every run. `traffic` is the traffic model,
//! `injection` what an injected incident is and its `--incident` text form, `segment_json` the
//! events as Segment JSON, `demo` the history `revloop demo` backfills, and `eval` the suite (its in-memory ingest feed, the
//! runbook-literal detector, scoring and rendering).

pub mod demo;
pub mod eval;
pub mod injection;
pub mod segment_json;
pub mod traffic;

pub use injection::{IncidentKind, InjectedIncident, ParsedIncident, SURGE_FACTOR_MAX};
pub use traffic::{
    ConversionSwing, INCIDENTS_MAX, PEAK_SESSIONS_PER_MINUTE_MAX, RANGE_DAYS_MAX, STEP_GAP_MAX_MS,
    Scenario, ScenarioError, SimEvent, SimSummary, SimValue, simulate,
};
