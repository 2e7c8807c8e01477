//! `revloop simulate`: seeded Segment-format traffic as NDJSON on stdout.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use revloop_core::Timestamp;
use revloop_sim::segment_json::write_segment_json;
use revloop_sim::{InjectedIncident, Scenario, simulate};

#[derive(clap::Args)]
pub struct Args {
    /// The config file whose funnels and dimensions shape the traffic.
    #[arg(long, default_value = "revloop.toml")]
    config: PathBuf,
    /// Start of the range, RFC 3339 (e.g. 2026-11-20T00:00:00Z).
    #[arg(long)]
    from: String,
    /// End of the range (exclusive), RFC 3339.
    #[arg(long)]
    to: String,
    /// The same seed gives byte-identical output.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Mean sessions entering the funnel per minute at the busiest time of the week.
    #[arg(long, default_value_t = 60.0)]
    peak_sessions_per_minute: f64,
    /// Inject an incident, e.g.
    /// `stage=checkout,drop=0.5,from=2026-11-20T10:00:00Z,to=2026-11-20T12:00:00Z,segment=device=mobile`;
    /// `kind=pixel` loses the stage's events instead, `kind=surge,factor=3` multiplies traffic,
    /// `kind=sale_day,factor=2.5` does so for a day whose first hour rushes most.
    /// Repeatable.
    #[arg(long)]
    incident: Vec<String>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config = crate::load_config(&args.config)?;
    let from = Timestamp::parse_rfc3339(&args.from).context("--from")?;
    let to = Timestamp::parse_rfc3339(&args.to).context("--to")?;
    let mut incidents = Vec::new();
    for text in &args.incident {
        let parsed = InjectedIncident::parse_noting_old_form(text)
            .map_err(|err| anyhow::anyhow!("--incident {text}: {err}"))?;
        if let Some(note) = parsed.deprecation_note() {
            eprintln!("{note}");
        }
        incidents.push(parsed.incident);
    }
    let scenario = Scenario {
        conversion_swing: Default::default(),
        from,
        to,
        seed: args.seed,
        peak_sessions_per_minute: args.peak_sessions_per_minute,
        incidents,
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
    let mut line = String::with_capacity(1024);
    let mut write_error = None;
    let summary = simulate(&config, &scenario, |event| {
        if write_error.is_some() {
            return;
        }
        line.clear();
        write_segment_json(&event, &mut line);
        line.push('\n');
        if let Err(err) = out.write_all(line.as_bytes()) {
            write_error = Some(err);
        }
    })?;
    if let Some(err) = write_error {
        // A closed pipe (`| head`) is how a reader says it has had enough.
        if err.kind() == std::io::ErrorKind::BrokenPipe {
            return Ok(ExitCode::SUCCESS);
        }
        return Err(err).context("writing events");
    }
    out.flush().context("writing events")?;
    eprintln!(
        "simulated {} sessions, {} events",
        summary.n_sessions, summary.n_events
    );
    Ok(ExitCode::SUCCESS)
}
