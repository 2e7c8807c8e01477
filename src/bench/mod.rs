//! `revloop bench`: measurements, never tests. Each target lives in its own module:
//! [`ingest`] (sustained ingest against a real `revloop serve` child), [`detect`] (the anomaly
//! detector's cost per series per minute) and [`incidents`] (an incident step, in the engine
//! and committed), [`ledger`] (durable ledger postings), [`delivery`] (the deliverer against a local receiver), [`restart`] (a restart from stored detector snapshots against re-deriving
//! from history). [`support`] holds what they share: temporary directories and `/proc`
//! figures. Results are written down with the machine and date (BENCHMARKS.md), never asserted.

mod delivery;
mod detect;
mod disk;
mod incidents;
mod ingest;
mod ledger;
mod restart;
mod support;

use std::process::ExitCode;

use clap::Subcommand;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    target: Target,
}

#[derive(Subcommand)]
enum Target {
    /// Sustained /v1/batch ingest with durability on, on SQLite or PostgreSQL.
    Ingest {
        /// How long to send for.
        #[arg(long, default_value_t = 20)]
        seconds: u64,
        /// Concurrent client connections. Group commit shares each fsync among the requests
        /// that arrive during the previous commit, so throughput grows with concurrency.
        #[arg(long, default_value_t = 16)]
        clients: usize,
        /// Messages per batch.
        #[arg(long, default_value_t = 500)]
        batch: usize,
        /// Dimensions configured: the first N of the example config's five. Each message is
        /// counted under every single-dimension segment and the full combination, so more
        /// dimensions mean more rows per commit.
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u8).range(0..=5))]
        dimensions: u8,
        /// Measure on PostgreSQL (a schema of its own, dropped at the end) instead of a fresh
        /// SQLite file.
        #[arg(long)]
        database_url: Option<String>,
        /// Percent of each batch's messages that are bad (a 1970 timestamp): rejected one by
        /// one while the rest of the batch is counted, and logged in the problem log.
        #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=100))]
        bad_percent: u8,
    },
    /// Disk use of a simulated shop per million events and per day, per-minute and after the
    /// hourly rollup (SQLite).
    Disk {
        /// Days of history ingested in event time.
        #[arg(long, default_value_t = 7)]
        days: u32,
        /// Mean sessions per minute at the busiest time of the week.
        #[arg(long, default_value_t = 40.0)]
        peak_sessions_per_minute: f64,
        /// Dimensions configured: the first N of the example config's five.
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(0..=5))]
        dimensions: u8,
    },
    /// The anomaly detector's evaluation cost per series per minute, and its memory.
    Detect {
        /// Series to watch. Each segment of a 5-stage funnel has 5: four conversion steps and
        /// entry volume. Funnels hold up to 1,000 segments (the whole funnel and 999 values of
        /// one dimension); the count is rounded down to fill the funnels evenly.
        #[arg(long, default_value_t = 10_000)]
        series: usize,
        /// Minutes measured after the warm-up.
        #[arg(long, default_value_t = 240)]
        minutes: u64,
        /// Minutes of traffic fed first, measured as the learning phase. A week (with the
        /// default `learning = "7d"`) puts every series on its full judging path; fewer leave
        /// the measured minutes learning too.
        #[arg(long, default_value_t = 7 * 24 * 60)]
        warmup_minutes: u64,
    },
    /// A restart of a detector of many series from its stored snapshots (SQLite), until it
    /// judges live again, against re-deriving it from the count history.
    Restart {
        /// Series to watch, as for `bench detect`: 100,000 is 20 funnels x 1,000 segments x 5.
        #[arg(long, default_value_t = 100_000)]
        series: usize,
        /// Minutes of traffic fed before the snapshot. A week and an hour (with the default
        /// `learning = "7d"`) leaves every series judged, so the catch-up measures judging.
        #[arg(long, default_value_t = 7 * 24 * 60 + 60)]
        warmup_minutes: u64,
        /// Minutes judged after the restore: the counts since the last snapshot (`serve`
        /// saves every 15).
        #[arg(long, default_value_t = 15)]
        catch_up_minutes: u64,
    },
    /// The incident engine's timer tick with many open incidents, and a durable incident step
    /// (one action committed) on SQLite, or PostgreSQL with --database-url.
    Incidents {
        /// Open incidents.
        #[arg(long, default_value_t = 100)]
        open: usize,
        /// Ticks and steps measured.
        #[arg(long, default_value_t = 2_000)]
        steps: usize,
        #[arg(long)]
        database_url: Option<String>,
    },
    /// Delivery to a local webhook receiver: throughput and latency of a burst of pages, and
    /// the outbox's drain time after a receiver outage (SQLite, or PostgreSQL with
    /// --database-url).
    Delivery {
        /// Pages in the burst.
        #[arg(long, default_value_t = 2_000)]
        messages: usize,
        /// How long the receiver answers 503.
        #[arg(long, default_value_t = 600)]
        outage_seconds: u64,
        /// Pages queued per second during the outage.
        #[arg(long, default_value_t = 1)]
        pages_per_second: u64,
        #[arg(long)]
        database_url: Option<String>,
    },
    /// Durable ledger postings per second: single entries and revision pairs (a reversal and
    /// a new estimate in one call), on SQLite, or PostgreSQL with --database-url.
    Ledger {
        /// Calls measured for each kind.
        #[arg(long, default_value_t = 1_000)]
        calls: usize,
        #[arg(long)]
        database_url: Option<String>,
    },
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.target {
        Target::Ingest {
            seconds,
            clients,
            batch,
            dimensions,
            database_url,
            bad_percent,
        } => ingest::run(&ingest::Setup {
            seconds,
            n_clients: clients,
            batch_size: batch,
            n_dimensions: usize::from(dimensions),
            database_url,
            bad_percent: usize::from(bad_percent),
        }),
        Target::Disk {
            days,
            peak_sessions_per_minute,
            dimensions,
        } => disk::run(&disk::Setup {
            days,
            peak_sessions_per_minute,
            n_dimensions: usize::from(dimensions),
        }),
        Target::Detect {
            series,
            minutes,
            warmup_minutes,
        } => detect::run(series, minutes, warmup_minutes),
        Target::Restart {
            series,
            warmup_minutes,
            catch_up_minutes,
        } => restart::run(series, warmup_minutes, catch_up_minutes),
        Target::Incidents {
            open,
            steps,
            database_url,
        } => incidents::run(open, steps, database_url.as_deref()),
        Target::Delivery {
            messages,
            outage_seconds,
            pages_per_second,
            database_url,
        } => delivery::run(&delivery::Setup {
            messages,
            outage_seconds,
            pages_per_second,
            database_url,
        }),
        Target::Ledger {
            calls,
            database_url,
        } => ledger::run(calls, database_url.as_deref()),
    }
}
