//! `revloop eval`: the detector's scenario suite, with the table for `docs/detection.md`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use revloop_sim::ConversionSwing;
use revloop_sim::eval::{EvalOptions, run_suite};

#[derive(clap::Args)]
pub struct Args {
    /// The config file; the bundled example when absent.
    #[arg(long)]
    config: Option<PathBuf>,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Mean sessions per minute at the weekly peak.
    #[arg(long, default_value_t = 400.0)]
    peak: f64,
    /// Clean weeks to learn from before scoring.
    #[arg(long, default_value_t = 3)]
    learning_weeks: i64,
    /// Clean weeks on which false alarms are counted.
    #[arg(long, default_value_t = 4)]
    clean_weeks: i64,
    /// Runs of each incident scenario.
    #[arg(long, default_value_t = 6)]
    runs: usize,
    /// Only scenarios whose name contains this.
    #[arg(long)]
    only: Option<String>,
    /// The simulated shop: `ordinary`, or `daily-swing` (checkout's and payment's drop-off
    /// swings by about ±25% through the local day, worst in the early morning).
    #[arg(long, default_value = "ordinary", value_parser = parse_shop)]
    shop: ConversionSwing,
    /// Also print every false alarm on the clean weeks.
    #[arg(long)]
    verbose: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config = match &args.config {
        Some(path) => crate::load_config(path)?,
        None => revloop_core::Config::parse(revloop_core::Config::example_toml())
            .map_err(|err| anyhow::anyhow!("the bundled example config is invalid: {err}"))?,
    };
    let options = EvalOptions {
        seed: args.seed,
        peak_sessions_per_minute: args.peak,
        learning_weeks: args.learning_weeks,
        clean_weeks: args.clean_weeks,
        runs: args.runs,
        filter: args.only,
        shop: args.shop,
        ..EvalOptions::default()
    };
    if let Some(only) = &options.filter {
        let names: Vec<String> = revloop_sim::eval::standard_suite(&config)
            .into_iter()
            .map(|s| s.name)
            .collect();
        if !names.iter().any(|n| n.contains(only.as_str())) {
            anyhow::bail!(
                "no scenario's name contains `{only}`; the scenarios are:\n  {}",
                names.join("\n  ")
            );
        }
    }
    let started = Instant::now();
    let report = run_suite(&config, &options, &mut |step| {
        eprintln!("[{:>6.1}s] {step}", started.elapsed().as_secs_f64());
    })?;
    if args.verbose {
        for alert in &report.false_alarms {
            eprintln!("false alarm: {alert:?}");
        }
        for scenario in &report.scenarios {
            for alert in &scenario.other_alerts {
                eprintln!("{}: alert of another kind: {alert:?}", scenario.name);
            }
        }
    }
    print!("{}", report.to_markdown());
    Ok(ExitCode::SUCCESS)
}

fn parse_shop(text: &str) -> Result<ConversionSwing, String> {
    [ConversionSwing::None, ConversionSwing::StrongDaily]
        .into_iter()
        .find(|shop| shop.name() == text)
        .ok_or_else(|| {
            format!("`{text}` is not a shop; the shops are `ordinary` and `daily-swing`")
        })
}
