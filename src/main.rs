//! The `revloop` command line: a thin layer over the crates. Every subcommand parses its
//! flags, opens what it needs, and calls into the crates (`revloop-server`, `-core`, `-store`,
//! `-sim`, and `-api` for the commands that talk to a running server).
//!
//! Exit codes: 0 success, 1 a failure while running, 2 bad usage or an invalid config.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// glibc's allocator degrades when one thread frees what another allocated, which is the
/// ingest pattern (parsed on async workers, freed by the writer); mimalloc does not.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod baseline;
mod bench;
mod change;
mod client;
mod demo;
mod eval;
mod impact;
mod incident;
mod ingest_cmd;
mod ledger;
mod notify;
mod remote;
mod replay;
mod serve;
mod silence;
mod simulate;
mod token;

#[derive(Parser)]
#[command(
    name = "revloop",
    version,
    about = "Guards an online shop's revenue funnel."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where the data lives: an embedded SQLite file, or a shared PostgreSQL database.
#[derive(clap::Args, Clone, Debug)]
pub struct StoreArgs {
    /// SQLite database file; created and migrated on first start.
    #[arg(long, default_value = "revloop.db", global = true)]
    pub db: PathBuf,
    /// PostgreSQL URL (postgres://user@host/db); overrides --db. Several nodes may share one.
    #[arg(long, env = "REVLOOP_DATABASE_URL", global = true)]
    pub database_url: Option<String>,
    /// PostgreSQL schema for revloop's tables, created if missing, so that they cannot collide
    /// with other tables in a shared database (default: the URL's search_path, usually public).
    /// Lowercase letters, digits and underscores.
    #[arg(long, env = "REVLOOP_DATABASE_SCHEMA", global = true, value_parser = parse_schema)]
    pub schema: Option<String>,
}

fn parse_schema(name: &str) -> Result<String, String> {
    revloop_store::PostgresOptions::check_schema_name(name)
        .map(|()| name.to_owned())
        .map_err(|err| err.to_string())
}

#[derive(Subcommand)]
enum Command {
    /// Run the service: ingest, API and metrics.
    Serve(serve::Args),
    /// A self-contained demo: fifteen days of simulated history with two incidents, the
    /// detector's alerts, live traffic, and the API.
    Demo(demo::Args),
    /// Write seeded, realistic Segment-format traffic as NDJSON to stdout.
    Simulate(simulate::Args),
    /// Ingest an NDJSON file of Segment messages as fast as possible, in event time.
    Replay(replay::Args),
    /// Validate a config file and print every problem with its line.
    CheckConfig {
        /// The config file to check.
        file: PathBuf,
    },
    /// Create, list and revoke API tokens and write keys.
    Token(token::Args),
    /// Measure a hot path and print the figures for BENCHMARKS.md.
    Bench(bench::Args),
    /// Score the anomaly detector on a seeded suite of simulated incidents.
    Eval(eval::Args),
    /// Show the detector's time-of-week baselines, or ask a server to rebuild them.
    Baseline(baseline::Args),
    /// List, show and act on incidents on a running server (ack, note, mitigate, resolve...).
    Incident(incident::IncidentArgs),
    /// Record and list changes (deploys, experiments, prices...) that may explain incidents.
    Change(change::ChangeArgs),
    /// Add, list and end maintenance windows on a running server.
    Silence(silence::SilenceArgs),
    /// Show what a running server rejected or ignored: its ingest problem log.
    Ingest(ingest_cmd::IngestArgs),
    /// Read a running server's ledger: trial balance, statements, entries, exports.
    Ledger(ledger::LedgerArgs),
    /// Try the delivery channels: `notify test TARGET` sends a test message through each.
    Notify(notify::NotifyArgs),
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("REVLOOP_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    match try_main(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            // A config that does not validate is bad usage, as documented above.
            ExitCode::from(if err.is::<InvalidConfig>() { 2 } else { 1 })
        }
    }
}

fn try_main(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Demo(args) => demo::run(args),
        Command::Simulate(args) => simulate::run(args),
        Command::Replay(args) => replay::run(args),
        Command::CheckConfig { file } => check_config(&file),
        Command::Token(args) => token::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Baseline(args) => baseline::run(args),
        Command::Incident(args) => incident::run_incident(args),
        Command::Change(args) => change::run(args),
        Command::Silence(args) => silence::run(args),
        Command::Ingest(args) => ingest_cmd::run(args),
        Command::Ledger(args) => ledger::run(args),
        Command::Notify(args) => notify::run(args),
    }
}

fn check_config(file: &std::path::Path) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(file)
        .map_err(|err| anyhow::anyhow!("cannot read {}: {err}", file.display()))?;
    match revloop_core::Config::parse(&text) {
        Ok(config) => {
            // Every channel is built as the server builds it, its secrets read, so that a
            // missing secret fails here rather than at the first page.
            let delivery = match &config.delivery {
                None => "pages go to the log only (no [delivery] section)".to_string(),
                Some(delivery) => {
                    let read = revloop_server::delivery::sender::read_secret;
                    if let Err(errors) = revloop_server::delivery::sender::senders(delivery, &read)
                    {
                        for err in &errors {
                            eprintln!("{}: {err}", file.display());
                        }
                        eprintln!("{} problem(s) found", errors.len());
                        return Ok(ExitCode::from(2));
                    }
                    format!(
                        "{} delivery channels, their secrets read",
                        delivery.channels.len()
                    )
                }
            };
            let n_stages: usize = config.funnels.iter().map(|f| f.stages.len()).sum();
            println!(
                "{}: ok ({} funnels, {n_stages} stages, {} dimensions; surges {})\n{delivery}",
                file.display(),
                config.funnels.len(),
                config.dimensions.len(),
                if config.incidents.page_on_surge {
                    "page"
                } else {
                    "page nobody"
                }
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(err) => {
            for problem in &err.0 {
                if problem.line == 0 {
                    eprintln!("{}: {}", file.display(), problem.message);
                } else {
                    eprintln!("{}:{}: {}", file.display(), problem.line, problem.message);
                }
            }
            eprintln!("{} problem(s) found", err.0.len());
            Ok(ExitCode::from(2))
        }
    }
}

/// A config file that does not validate: every problem with its place. `main` exits with 2 for
/// it, whichever command read the config.
#[derive(Debug)]
pub struct InvalidConfig(String);

impl std::fmt::Display for InvalidConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InvalidConfig {}

/// Reads and validates a config file, with every problem in the error ([`InvalidConfig`]).
pub fn load_config(path: &std::path::Path) -> anyhow::Result<revloop_core::Config> {
    let text = std::fs::read_to_string(path).map_err(|err| {
        anyhow::anyhow!(
            "cannot read config {}: {err}\n(name it with --config; copy revloop.example.toml to start, or try `revloop demo`, whose config is in its data directory)",
            path.display()
        )
    })?;
    revloop_core::Config::parse(&text).map_err(|err| {
        let lines: Vec<String> = err
            .0
            .iter()
            .map(|p| format!("{}: {p}", path.display()))
            .collect();
        anyhow::Error::new(InvalidConfig(format!(
            "invalid config:\n{}",
            lines.join("\n")
        )))
    })
}

/// Opens the store the flags name, ready to ingest: fails at once if another process is
/// ingesting into the same SQLite file.
pub fn open_store_for_ingest(
    args: &StoreArgs,
    config: &revloop_core::Config,
) -> anyhow::Result<std::sync::Arc<dyn revloop_store::Store>> {
    let store = open_store(args, config)?;
    store.claim_ingest()?;
    Ok(store)
}

/// Opens the store the flags name.
pub fn open_store(
    args: &StoreArgs,
    config: &revloop_core::Config,
) -> anyhow::Result<std::sync::Arc<dyn revloop_store::Store>> {
    use anyhow::Context;
    Ok(match &args.database_url {
        Some(url) => {
            let options = revloop_store::PostgresOptions {
                schema: args.schema.clone(),
                ..revloop_store::PostgresOptions::default()
            };
            std::sync::Arc::new(
                revloop_store::PostgresStore::open_with(url, &options, config)
                    .context("opening PostgreSQL")?,
            )
        }
        None if args.schema.is_some() => {
            anyhow::bail!("--schema applies to PostgreSQL only; pass --database-url too")
        }
        None => std::sync::Arc::new(
            revloop_store::SqliteStore::open(&args.db, config)
                .with_context(|| format!("opening {}", args.db.display()))?,
        ),
    })
}
