//! `revloop bench`: measurements, never tests. Each target lives in its own module:
//! [`ingest`] (sustained ingest against a real `revloop serve` child), [`detect`] (the anomaly
//! detector's cost per series per minute) and [`incidents`] (an incident step, in the engine
//! and committed). [`support`] holds what they share: temporary directories and `/proc`
//! figures. Results are written down with the machine and date (BENCHMARKS.md), never asserted.

mod detect;
mod incidents;
mod ingest;
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
    /// Sustained /v1/batch ingest with durability on.
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
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.target {
        Target::Ingest {
            seconds,
            clients,
            batch,
        } => ingest::run(seconds, clients, batch),
        Target::Detect {
            series,
            minutes,
            warmup_minutes,
        } => detect::run(series, minutes, warmup_minutes),
        Target::Incidents {
            open,
            steps,
            database_url,
        } => incidents::run(open, steps, database_url.as_deref()),
    }
}
