//! The pure, deterministic heart of revloop.
//!
//! This crate owns the funnel model, the configuration and its validation, the rules that turn
//! a parsed message into per-minute stage counts, the rollup and conversion arithmetic, the
//! statistics, the detector, the incident engine, and the one pipeline that joins them. The
//! seeded simulator and the evaluation suite live beside it in `revloop-sim`. It never does IO, never reads the wall clock and never draws
//! unseeded randomness: every input arrives with its timestamp, so the same engine runs live
//! under `serve` and in event time under `replay`.

pub mod alert;
pub mod change;
pub mod config;
pub mod delivery;
pub mod detect;
pub mod funnel;
pub mod impact;
pub mod incident;
pub mod ingest;
pub mod ledger;
pub mod metrics;
pub mod money;
pub mod pipeline;
pub mod rng;
pub mod signal;
pub mod stats;
pub mod time;

pub use config::Config;
pub use money::{Currency, Money};
pub use time::{DurationMs, Minute, Timestamp};
