//! `revloop bench ingest`: sustained ingest with durability on, over loopback, against a real
//! `revloop serve` child process on a fresh SQLite file, or on PostgreSQL in a schema of its
//! own (`--database-url`), with the first N of the example's dimensions (`--dimensions`), and
//! optionally a share of bad messages that the server rejects one by one (`--bad-percent`).
//! Prints events/s, latency percentiles, the server's peak RSS, disk per event, and the
//! parse-only ceiling: the same bodies merely parsed by serde_json in one thread of this
//! process, so that runs on different stores and days compare as a ratio to it.

use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;

use revloop_core::time::DurationMs;
use revloop_core::{Config, Timestamp};
use revloop_server::http::auth::{base64_encode, generate_secret, hash_secret};
use revloop_server::{Clock, SystemClock};
use revloop_sim::segment_json::write_segment_json;
use revloop_sim::{Scenario, SimEvent, simulate};
use revloop_store::{PostgresStore, Role, SqliteStore, Store};

use super::support::{ChildGuard, TempDir, file_size, peak_rss_kib};
use crate::client::Client;

/// What to measure.
pub struct Setup {
    pub seconds: u64,
    pub n_clients: usize,
    pub batch_size: usize,
    /// The first N dimensions of the example config are kept.
    pub n_dimensions: usize,
    /// PostgreSQL instead of SQLite.
    pub database_url: Option<String>,
    /// Percent of each batch's messages that carry a 1970 timestamp, which the server rejects.
    pub bad_percent: usize,
}

/// Where the server under test keeps its data.
enum Database {
    Sqlite(PathBuf),
    /// The URL as given and the schema of this run, dropped at the end.
    Postgres {
        url: String,
        schema: String,
    },
}

/// A `revloop serve` child on a fresh database, with an ingest token.
struct Server {
    child: ChildGuard,
    base: String,
    database: Database,
    write_key: String,
}

/// What the load generator's clients share.
struct Load {
    templates: Arc<Vec<BodyTemplate>>,
    batch_size: usize,
    /// The `"rejected":N` every reply must carry: the bad messages of one batch.
    rejected_reply: String,
    deadline: Instant,
    sent_events: AtomicU64,
    failed_requests: AtomicU64,
}

pub fn run(setup: &Setup) -> anyhow::Result<ExitCode> {
    let clock = SystemClock;
    let dir = TempDir(std::env::temp_dir().join(format!(
        "revloop-bench-{}-{}",
        std::process::id(),
        clock.now().millis()
    )));
    std::fs::create_dir_all(&dir.0)?;
    let config_text = config_with_dimensions(setup.n_dimensions);
    let config = Config::parse(&config_text).expect("the example config is valid");
    let database = match &setup.database_url {
        None => Database::Sqlite(dir.0.join("bench.db")),
        Some(url) => Database::Postgres {
            url: url.clone(),
            schema: format!("revloop_bench_ingest_{}", std::process::id()),
        },
    };
    let server = start_server(&dir, &config_text, &config, database)?;
    let measured = measure(setup, &config, &server);
    let dropped = match &server.database {
        Database::Sqlite(_) => Ok(()),
        Database::Postgres { url, schema } => {
            drop(server.child);
            PostgresStore::drop_schema(url, schema).context("dropping the bench schema")
        }
    };
    let report = measured?;
    dropped?;
    report.print();
    Ok(ExitCode::SUCCESS)
}

/// The example config with only its first `n_dimensions` dimensions.
pub(super) fn config_with_dimensions(n_dimensions: usize) -> String {
    let text = Config::example_toml();
    let starts: Vec<usize> = text
        .match_indices("[[dimensions]]")
        .map(|(i, _)| i)
        .collect();
    let Some(&cut_from) = starts.get(n_dimensions) else {
        return text.to_owned();
    };
    let last = *starts.last().expect("the example has dimensions");
    let cut_to = text[last + 1..]
        .find("\n[")
        .map_or(text.len(), |i| last + 1 + i + 1);
    format!("{}{}", &text[..cut_from], &text[cut_to..])
}

/// Sends load for the set time and gathers the figures.
fn measure(setup: &Setup, config: &Config, server: &Server) -> anyhow::Result<Report> {
    let Setup {
        seconds,
        n_clients,
        batch_size,
        n_dimensions,
        bad_percent,
        ..
    } = *setup;
    let n_bad = batch_size * bad_percent / 100;
    let templates = Arc::new(body_templates(
        &event_templates(config, 5_000)?,
        batch_size,
        n_bad,
        16,
    ));
    let load = Arc::new(Load {
        templates: templates.clone(),
        batch_size,
        rejected_reply: format!("\"rejected\":{n_bad}"),
        deadline: Instant::now() + Duration::from_secs(seconds),
        sent_events: AtomicU64::new(0),
        failed_requests: AtomicU64::new(0),
    });
    let started = Instant::now();
    let authorization = format!(
        "Basic {}",
        base64_encode(format!("{}:", server.write_key).as_bytes())
    );
    let mut handles = Vec::new();
    for client_index in 0..n_clients {
        let load = load.clone();
        let url = format!("{}/v1/batch", server.base);
        let authorization = authorization.clone();
        handles.push(std::thread::spawn(move || {
            send_until_deadline(&load, client_index, &url, &authorization)
        }));
    }
    // Throughput per interval, to show whether it holds as the database grows.
    let mut last_events = 0;
    let mut last_at = started;
    while Instant::now() < load.deadline {
        std::thread::sleep(
            Duration::from_secs(10).min(load.deadline.saturating_duration_since(Instant::now())),
        );
        let events = load.sent_events.load(Ordering::Relaxed);
        let interval_s = last_at.elapsed().as_secs_f64();
        last_at = Instant::now();
        eprintln!(
            "  {:>4.0}s: {:>8.0} events/s over the last interval, {} failed requests so far",
            started.elapsed().as_secs_f64(),
            (events - last_events) as f64 / interval_s,
            load.failed_requests.load(Ordering::Relaxed)
        );
        last_events = events;
    }
    let mut latencies_us: Vec<u64> = Vec::new();
    for handle in handles {
        latencies_us.extend(
            handle
                .join()
                .map_err(|_| anyhow::anyhow!("a client thread panicked"))?,
        );
    }
    let elapsed = started.elapsed().as_secs_f64();
    let peak_rss_kib = peak_rss_kib(server.child.0.id());
    latencies_us.sort_unstable();
    let (store, db_bytes) = match &server.database {
        Database::Sqlite(path) => (
            "SQLite synchronous=FULL",
            Some(file_size(path) + file_size(&path.with_extension("db-wal"))),
        ),
        Database::Postgres { .. } => ("PostgreSQL", None),
    };
    Ok(Report {
        store,
        n_clients,
        batch_size,
        n_bad,
        n_dimensions,
        seconds,
        n_events: load.sent_events.load(Ordering::Relaxed),
        n_failed_requests: load.failed_requests.load(Ordering::Relaxed),
        elapsed_s: elapsed,
        latencies_us,
        peak_rss_kib,
        db_bytes,
        ceiling_events_per_s: parse_only_ceiling(&templates),
    })
}

/// Writes the config into `dir`, creates the database and an ingest token, and starts
/// `revloop serve` on a free port, waiting until it is ready.
fn start_server(
    dir: &TempDir,
    config_text: &str,
    config: &Config,
    database: Database,
) -> anyhow::Result<Server> {
    let clock = SystemClock;
    let config_path = dir.0.join("revloop.toml");
    std::fs::write(&config_path, config_text)?;
    let write_key = generate_secret()?;
    // The store the server opens: a file, or the URL with the run's schema first on its
    // search path.
    let store_args: Vec<std::ffi::OsString> = match &database {
        Database::Sqlite(path) => {
            SqliteStore::open(path, config)?.create_token(
                "bench",
                Role::Ingest,
                hash_secret(&write_key),
                clock.now(),
            )?;
            vec!["--db".into(), path.into()]
        }
        Database::Postgres { url, schema } => {
            PostgresStore::open_in_schema(url, schema, config)
                .context("opening the bench schema")?
                .create_token("bench", Role::Ingest, hash_secret(&write_key), clock.now())?;
            let separator = if url.contains('?') { '&' } else { '?' };
            let url = format!("{url}{separator}options=-csearch_path%3D{schema}");
            vec!["--database-url".into(), url.into()]
        }
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let child = ChildGuard(
        Command::new(std::env::current_exe()?)
            .args(["serve", "--config"])
            .arg(&config_path)
            .args(&store_args)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .env("REVLOOP_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .context("starting `revloop serve`")?,
    );
    let base = format!("http://127.0.0.1:{port}");
    wait_until_ready(&base)?;
    Ok(Server {
        child,
        base,
        database,
        write_key,
    })
}

/// One client: posts stamped copies of the templates until the deadline. Returns the latency
/// of each acknowledged request, in microseconds.
fn send_until_deadline(
    load: &Load,
    client_index: usize,
    url: &str,
    authorization: &str,
) -> Vec<u64> {
    let client = Client::new();
    let mut latencies_us = Vec::new();
    let mut sequence = 0_u64;
    let mut body = Vec::new();
    let templates = &load.templates;
    while Instant::now() < load.deadline {
        let template = &templates[sequence as usize / load.batch_size % templates.len()];
        stamp(template, client_index, &mut sequence, &mut body);
        let sent = Instant::now();
        match client.post(
            url,
            &[
                ("Authorization", authorization),
                ("Content-Type", "application/json"),
            ],
            &body,
        ) {
            Ok(reply)
                if reply.status == 200 && says_rejected(&reply.body, &load.rejected_reply) =>
            {
                latencies_us.push(sent.elapsed().as_micros() as u64);
                load.sent_events
                    .fetch_add(load.batch_size as u64, Ordering::Relaxed);
            }
            failure => {
                if load.failed_requests.fetch_add(1, Ordering::Relaxed) == 0 {
                    match failure {
                        Ok(reply) => eprintln!(
                            "  first failure: {} {}",
                            reply.status,
                            reply.body.chars().take(300).collect::<String>()
                        ),
                        Err(err) => eprintln!("  first failure: {err}"),
                    }
                }
            }
        }
    }
    latencies_us
}

/// Whether a reply holds `"rejected":N` for exactly this N (not a longer number).
fn says_rejected(reply: &str, rejected: &str) -> bool {
    reply
        .match_indices(rejected)
        .any(|(at, _)| !reply[at + rejected.len()..].starts_with(|c: char| c.is_ascii_digit()))
}

/// The figures of one ingest run.
struct Report {
    store: &'static str,
    n_clients: usize,
    batch_size: usize,
    /// Bad messages per batch, rejected by the server.
    n_bad: usize,
    n_dimensions: usize,
    seconds: u64,
    n_events: u64,
    n_failed_requests: u64,
    elapsed_s: f64,
    /// Sorted.
    latencies_us: Vec<u64>,
    peak_rss_kib: u64,
    /// SQLite only: the file and its WAL.
    db_bytes: Option<u64>,
    ceiling_events_per_s: f64,
}

impl Report {
    fn print(&self) {
        let Report {
            store,
            n_clients,
            batch_size,
            n_bad,
            n_dimensions,
            seconds,
            n_events,
            db_bytes,
            ..
        } = *self;
        let latencies_us = &self.latencies_us;
        let percentile = |p: f64| -> f64 {
            if latencies_us.is_empty() {
                return f64::NAN;
            }
            let index = ((latencies_us.len() as f64 - 1.0) * p).round() as usize;
            latencies_us[index] as f64 / 1000.0
        };
        let events_per_s = n_events as f64 / self.elapsed_s;
        let ceiling = self.ceiling_events_per_s;
        println!(
            "ingest benchmark: {n_clients} clients, {batch_size} messages per /v1/batch, {n_dimensions} dimensions, {seconds}s, {store}"
        );
        println!(
            "  acknowledged events: {n_events} ({} failed requests)",
            self.n_failed_requests
        );
        if n_bad > 0 {
            println!(
                "  bad messages:        {n_bad} per batch, each rejected by itself and logged; \
                 throughput counts them"
            );
        }
        println!("  throughput:          {events_per_s:.0} events/s");
        println!(
            "  request latency:     p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            percentile(0.5),
            percentile(0.99),
            percentile(1.0)
        );
        println!(
            "  server peak RSS:     {:.1} MiB",
            self.peak_rss_kib as f64 / 1024.0
        );
        if let Some(db_bytes) = db_bytes {
            println!(
                "  database on disk:    {:.1} MiB ({:.1} bytes per event, dedup keys and counts)",
                db_bytes as f64 / 1048576.0,
                db_bytes as f64 / n_events.max(1) as f64
            );
        }
        println!("  parse-only ceiling:  {ceiling:.0} events/s (serde_json::Value, one thread)");
        println!(
            "  ratio to ceiling:    {:.0}%",
            100.0 * events_per_s / ceiling
        );
    }
}

fn wait_until_ready(base: &str) -> anyhow::Result<()> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    for _ in 0..200 {
        if let Ok(response) = agent.get(&format!("{base}/readyz")).call()
            && response.status() == 200
        {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    anyhow::bail!("the server did not become ready within 10 s")
}

/// Realistic events from the simulator, to be re-stamped with fresh ids and times.
fn event_templates(config: &Config, n_events: usize) -> anyhow::Result<Arc<Vec<SimEvent>>> {
    let now = SystemClock.now();
    let scenario = Scenario {
        conversion_swing: Default::default(),
        from: now.saturating_sub(DurationMs::from_hours(6)),
        to: now,
        seed: 42,
        peak_sessions_per_minute: 200.0,
        incidents: Vec::new(),
    };
    let mut events = Vec::with_capacity(n_events);
    simulate(config, &scenario, |event| {
        if events.len() < n_events {
            events.push(event);
        }
    })?;
    anyhow::ensure!(!events.is_empty(), "the simulator produced no events");
    Ok(Arc::new(events))
}

/// A `/v1/batch` body with its message ids left as fixed-width placeholders, so that a client
/// can stamp fresh ids into a copy in place: the load generator must cost far less than the
/// server it measures, on the same two cores.
struct BodyTemplate {
    bytes: Vec<u8>,
    id_offsets: Vec<usize>,
    /// Where each message's `timestamp` value starts; stamped with the send time, so that
    /// traffic moves from minute to minute as live traffic does.
    timestamp_offsets: Vec<usize>,
}

const ID_DIGITS: usize = 20;

/// The first `n_bad` messages of each body keep a 1970 timestamp that `stamp` never refreshes.
fn body_templates(
    events: &[SimEvent],
    batch_size: usize,
    n_bad: usize,
    n_bodies: usize,
) -> Vec<BodyTemplate> {
    let placeholder = "0".repeat(ID_DIGITS);
    let now = SystemClock.now();
    (0..n_bodies)
        .map(|body_index| {
            let mut body = String::with_capacity(batch_size * 450);
            let mut id_offsets = Vec::with_capacity(batch_size);
            let mut timestamp_offsets = Vec::with_capacity(batch_size);
            body.push_str("{\"batch\":[");
            for i in 0..batch_size {
                let mut event = events[(body_index * batch_size + i) % events.len()].clone();
                event.message_id = format!("bench-{placeholder}");
                let bad = i < n_bad;
                event.timestamp = fixed_width(if bad { Timestamp::from_millis(1) } else { now });
                if i > 0 {
                    body.push(',');
                }
                let start = body.len();
                write_segment_json(&event, &mut body);
                let offset = body[start..]
                    .find(&placeholder)
                    .expect("the id placeholder is in the JSON");
                id_offsets.push(start + offset);
                if bad {
                    continue;
                }
                let key = "\"timestamp\":\"";
                let at = body[start..]
                    .find(key)
                    .expect("the timestamp is in the JSON");
                timestamp_offsets.push(start + at + key.len());
            }
            body.push_str("]}");
            BodyTemplate {
                timestamp_offsets,
                bytes: body.into_bytes(),
                id_offsets,
            }
        })
        .collect()
}

/// A copy of a template with unique ids: `client_index` and a running sequence number.
/// A time whose RFC 3339 text is always 24 bytes (`2026-11-27T06:22:15.123Z`): the fraction
/// is printed without trailing zeros, so the last millisecond digit must not be 0.
fn fixed_width(time: Timestamp) -> Timestamp {
    if time.millis() % 10 == 0 {
        time.saturating_add(DurationMs::from_millis(1))
    } else {
        time
    }
}

fn stamp(template: &BodyTemplate, client_index: usize, sequence: &mut u64, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&template.bytes);
    let now = fixed_width(SystemClock.now()).to_string();
    for offset in &template.timestamp_offsets {
        out[*offset..*offset + now.len()].copy_from_slice(now.as_bytes());
    }
    for offset in &template.id_offsets {
        let id = (client_index as u64) * 1_000_000_000_000_000 + *sequence;
        *sequence += 1;
        let mut value = id;
        for position in (0..ID_DIGITS).rev() {
            out[offset + position] = b'0' + (value % 10) as u8;
            value /= 10;
        }
    }
}

fn parse_only_ceiling(templates: &[BodyTemplate]) -> f64 {
    let mut sequence = 0;
    let bodies: Vec<Vec<u8>> = (0..200)
        .map(|i| {
            let mut body = Vec::new();
            stamp(&templates[i % templates.len()], 0, &mut sequence, &mut body);
            body
        })
        .collect();
    let started = Instant::now();
    let mut n_events = 0;
    while started.elapsed() < Duration::from_secs(3) {
        for body in &bodies {
            let value: serde_json::Value =
                serde_json::from_slice(body).expect("bench bodies are JSON");
            n_events += value["batch"].as_array().map_or(0, Vec::len);
        }
    }
    n_events as f64 / started.elapsed().as_secs_f64()
}
