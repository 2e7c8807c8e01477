//! `revloop replay`: ingest a file as fast as possible, in event time, through the same
//! validation and commit path as live ingest. Bad lines are reported and skipped, not fatal:
//! a replay of a week should not stop at one broken line.

use std::collections::VecDeque;
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;

use revloop_core::Config;
use revloop_core::incident::IncidentEngine;
use revloop_core::ledger::{ExportFormat, imbalance_per_currency};
use revloop_core::time::{Minute, Timestamp};
use revloop_server::api::alerts::alert_json;
use revloop_server::api::incidents::incident_view;
use revloop_server::booking::{Booker, write_export};
use revloop_server::event_time::{Books, EventTimeRun, run_in_event_time};
use revloop_server::ingest::{IngestClock, Ingestor, Outcome, Place, Prepared, Watermark};
use revloop_server::telemetry::Telemetry;
use revloop_server::writer::GroupCommitter;
use revloop_store::{SqliteStore, Store};

use crate::StoreArgs;

/// Items per commit.
const REPLAY_BATCH_ITEMS: usize = 5_000;
/// Commits in flight while the next batch is prepared.
const REPLAY_COMMITS_IN_FLIGHT_MAX: usize = 4;
/// Problems printed before the rest are only counted.
const PROBLEMS_PRINTED_MAX: usize = 20;
/// Longest line read; a longer one is reported as too large.
const LINE_BYTES_MAX: usize = 1024 * 1024;

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("input").required(true).args(["events", "counts"])))]
pub struct Args {
    /// The config file.
    #[arg(long, default_value = "revloop.toml")]
    config: PathBuf,
    #[command(flatten)]
    store: StoreArgs,
    /// NDJSON of Segment messages (as `revloop simulate` writes). One of --events and
    /// --counts is required.
    #[arg(long, conflicts_with = "counts")]
    events: Option<PathBuf>,
    /// NDJSON of pre-aggregated count records (the shape of POST /api/v1/counts).
    #[arg(long)]
    counts: Option<PathBuf>,
    /// Run the anomaly detector over the replayed minutes, in event time, and write every
    /// alert opened, upgraded or closed to this file as NDJSON.
    #[arg(long)]
    alerts_out: Option<PathBuf>,
    /// Run the incidents over those alerts too, in event time (escalations, SLA breaches and
    /// resolution checks each at its own time; nobody acknowledges), and write every incident
    /// with its timeline to this file as NDJSON.
    #[arg(long)]
    incidents_out: Option<PathBuf>,
    /// Book the incidents' losses too, in event time, as a live server would (estimates,
    /// revisions, finals), in a ledger of the replay's own (the database's ledger is left
    /// alone), and export it to this file (docs/ledger.md).
    #[arg(long)]
    ledger_out: Option<PathBuf>,
    /// The export's format: beancount, hledger, csv or jsonl.
    #[arg(long, default_value = "beancount", value_parser = parse_export_format)]
    ledger_format: ExportFormat,
}

fn parse_export_format(text: &str) -> Result<ExportFormat, String> {
    ExportFormat::parse(text)
        .ok_or_else(|| format!("`{text}` is not a format: beancount, hledger, csv or jsonl"))
}

/// Totals of a replay.
#[derive(Debug, Default, Clone, Copy)]
pub struct ReplaySummary {
    pub outcome: Outcome,
    pub n_lines: usize,
    pub n_rejected: usize,
    /// The first and last minutes with accepted events.
    pub minutes: Option<(Minute, Minute)>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config = Arc::new(crate::load_config(&args.config)?);
    let store = crate::open_store_for_ingest(&args.store, &config)?;
    let telemetry = Arc::new(Telemetry::default());
    let ingestor = Ingestor::new(
        config.clone(),
        GroupCommitter::start(store.clone(), telemetry.clone()),
        telemetry,
    );
    let (path, counts) = match (&args.events, &args.counts) {
        (Some(path), _) => (path, false),
        (None, Some(path)) => (path, true),
        (None, None) => unreachable!("clap requires one of --events and --counts"),
    };
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let started = Instant::now();
    let summary = replay(
        &ingestor,
        std::io::BufReader::new(file),
        counts,
        &mut |line, problem| {
            eprintln!("{}:{line}: {problem}", path.display());
        },
    )?;
    let elapsed = started.elapsed().as_secs_f64();
    let o = summary.outcome;
    eprintln!(
        "replayed {} lines in {elapsed:.1}s ({:.0} lines/s): counted {}, duplicates {}, late {}, ignored {}, rejected {}",
        summary.n_lines,
        summary.n_lines as f64 / elapsed.max(1e-9),
        o.counted,
        o.duplicates,
        o.late,
        o.ignored,
        summary.n_rejected
    );
    if args.alerts_out.is_some() || args.incidents_out.is_some() || args.ledger_out.is_some() {
        let started = Instant::now();
        let (first, last) = summary.minutes.unwrap_or_default();
        // The replay's books are its own: a temporary SQLite ledger, exported at the end.
        let ledger_dir = tempfile::tempdir().context("creating a directory for the ledger")?;
        let ledger = match &args.ledger_out {
            Some(_) => Some(SqliteStore::open(
                &ledger_dir.path().join("ledger.db"),
                &config,
            )?),
            None => None,
        };
        let books = match &ledger {
            Some(ledger) => Books::In(ledger),
            None => Books::NotKept,
        };
        let EventTimeRun {
            alerts: events,
            engine: mut incidents,
            judged_until,
        } = run_in_event_time(&config, store.as_ref(), first, last.plus(1), books)?;
        let now = judged_until.unwrap_or_default();
        incidents.run_until(now);
        if let Some(out) = &args.alerts_out {
            write_ndjson(out, events.iter().map(alert_json))?;
            eprintln!(
                "detection: {} alert events in {:.1}s, written to {}",
                events.len(),
                started.elapsed().as_secs_f64(),
                out.display()
            );
        }
        if let Some(out) = &args.incidents_out {
            let policy = incidents.policy().clone();
            let all: Vec<_> = incidents.incidents().collect();
            write_ndjson(
                out,
                all.iter().map(|i| {
                    // Through a `Value`, keys sorted: the lines are what the API answers.
                    serde_json::to_value(incident_view(i, &policy, now, &Default::default()))
                        .expect("a wire type serializes")
                }),
            )?;
            eprintln!(
                "incidents: {} ({} still open at {now}), written to {}",
                all.len(),
                all.iter().filter(|i| i.is_open()).count(),
                out.display()
            );
        }
        if let (Some(out), Some(ledger)) = (&args.ledger_out, &ledger) {
            write_books(&config, ledger, &incidents, now, out, args.ledger_format)?;
        }
    }
    Ok(if summary.n_rejected > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Books what the timers after the last tick changed (a resolution), checks that the books
/// balance, and exports them.
fn write_books(
    config: &Config,
    ledger: &SqliteStore,
    incidents: &IncidentEngine,
    now: Timestamp,
    out: &std::path::Path,
    format: ExportFormat,
) -> anyhow::Result<()> {
    let chart = &config.ledger.chart;
    Booker::new(chart.clone()).book(ledger, incidents, now)?;
    let balances = ledger.trial_balance()?;
    let unbalanced = imbalance_per_currency(&balances)
        .into_iter()
        .find(|(_, net)| *net != 0);
    if let Some((currency, net)) = unbalanced {
        anyhow::bail!("the replay's books do not balance: {currency} is off by {net} minor units");
    }
    let mut file = std::io::BufWriter::new(
        std::fs::File::create(out).with_context(|| format!("creating {}", out.display()))?,
    );
    let n = write_export(ledger, chart, config.shop.currency, format, &mut file)?;
    file.flush()?;
    eprintln!(
        "ledger: {n} entries, balanced, written to {} ({})",
        out.display(),
        format.as_str()
    );
    Ok(())
}

fn write_ndjson(
    path: &std::path::Path,
    values: impl Iterator<Item = serde_json::Value>,
) -> anyhow::Result<()> {
    let mut file = std::io::BufWriter::new(
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
    );
    for value in values {
        serde_json::to_writer(&mut file, &value)?;
        file.write_all(b"\n")?;
    }
    file.flush()?;
    Ok(())
}

/// Replays NDJSON from `reader`; `report(line, problem)` hears of the first rejected lines.
pub fn replay(
    ingestor: &Ingestor,
    reader: impl BufRead,
    counts: bool,
    report: &mut dyn FnMut(usize, &str),
) -> anyhow::Result<ReplaySummary> {
    replay_lines(ingestor, reader.split(b'\n'), counts, report)
}

/// As [`replay`], over lines already split (without their newline).
pub fn replay_lines(
    ingestor: &Ingestor,
    lines: impl Iterator<Item = std::io::Result<Vec<u8>>>,
    counts: bool,
    report: &mut dyn FnMut(usize, &str),
) -> anyhow::Result<ReplaySummary> {
    let mut summary = ReplaySummary::default();
    let mut clock = Watermark::default();
    let mut batch = Prepared::default();
    let mut in_flight = VecDeque::new();
    let mut reject = |summary: &mut ReplaySummary, line: usize, problem: String| {
        if summary.n_rejected < PROBLEMS_PRINTED_MAX {
            report(line, &problem);
        }
        summary.n_rejected += 1;
    };
    for (index, line) in lines.enumerate() {
        let line_number = index + 1;
        let bytes = line.context("reading the replay file")?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        summary.n_lines += 1;
        if bytes.len() > LINE_BYTES_MAX {
            reject(
                &mut summary,
                line_number,
                format!("line is longer than {LINE_BYTES_MAX} bytes"),
            );
            continue;
        }
        let Ok(text) = std::str::from_utf8(&bytes) else {
            reject(&mut summary, line_number, "line is not valid UTF-8".into());
            continue;
        };
        let prepared = if counts {
            ingestor.prepare_counts(text, true, &mut clock)
        } else {
            ingestor.prepare_messages([(Place::Line(line_number), text)], None, None, &mut clock)
        };
        match prepared {
            Ok(prepared) => {
                for problem in &prepared.rejected {
                    let field = problem
                        .field
                        .as_deref()
                        .map(|f| format!("{f}: "))
                        .unwrap_or_default();
                    let reason = format!("{field}{} ({})", problem.message, problem.code);
                    reject(&mut summary, line_number, reason);
                }
                for item in &prepared.items {
                    for (cell, _) in &item.cells {
                        let (first, last) =
                            summary.minutes.get_or_insert((cell.minute, cell.minute));
                        *first = (*first).min(cell.minute);
                        *last = (*last).max(cell.minute);
                    }
                }
                batch.items.extend(prepared.items);
            }
            Err(err) => {
                let detail = err.details.first().map(|d| {
                    let field = d
                        .field
                        .as_deref()
                        .map(|f| format!("{f}: "))
                        .unwrap_or_default();
                    format!("{field}{}", d.message)
                });
                reject(&mut summary, line_number, detail.unwrap_or(err.message));
            }
        }
        if batch.items.len() >= REPLAY_BATCH_ITEMS {
            in_flight
                .push_back(ingestor.enqueue_blocking(clock.now(), std::mem::take(&mut batch))?);
            if in_flight.len() >= REPLAY_COMMITS_IN_FLIGHT_MAX {
                add(
                    &mut summary.outcome,
                    in_flight.pop_front().expect("non-empty").wait()?,
                );
            }
        }
    }
    if !batch.items.is_empty() {
        in_flight.push_back(ingestor.enqueue_blocking(clock.now(), batch)?);
    }
    for pending in in_flight {
        add(&mut summary.outcome, pending.wait()?);
    }
    Ok(summary)
}

fn add(total: &mut Outcome, outcome: Outcome) {
    total.counted += outcome.counted;
    total.duplicates += outcome.duplicates;
    total.late += outcome.late;
    total.ignored += outcome.ignored;
}
