//! `revloop bench ingest`: sustained ingest with durability on, over loopback, against a real
//! `revloop serve` child process on a fresh SQLite file. Prints events/s, latency percentiles,
//! the server's peak RSS, disk per event, and the parse-only ceiling: the same bodies merely
//! parsed by serde_json in one thread of this process.
//!
//! `revloop bench detect`: the anomaly detector's cost per series per minute, in this process,
//! while it learns and once every series is judged, with its memory per series.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Subcommand;

use revloop_core::detect::{AlertEvent, Detector};
use revloop_core::rng::Rng;
use revloop_core::time::{DurationMs, MS_PER_MINUTE, Minute};
use revloop_core::{Config, Timestamp};
use revloop_server::auth::{base64_encode, generate_secret, hash_secret};
use revloop_server::segment_json::write_segment_json;
use revloop_server::{Clock, SystemClock};
use revloop_sim::{Scenario, SimEvent, simulate};
use revloop_store::{Role, SqliteStore, Store};

use crate::client::Client;

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
        } => ingest(seconds, clients, batch),
        Target::Detect {
            series,
            minutes,
            warmup_minutes,
        } => detect(series, minutes, warmup_minutes),
        Target::Incidents {
            open,
            steps,
            database_url,
        } => crate::bench_incidents::run(open, steps, database_url.as_deref()),
    }
}

/// A directory removed when dropped.
pub struct TempDir(pub PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn ingest(seconds: u64, n_clients: usize, batch_size: usize) -> anyhow::Result<ExitCode> {
    let clock = SystemClock;
    let dir = TempDir(std::env::temp_dir().join(format!(
        "revloop-bench-{}-{}",
        std::process::id(),
        clock.now().millis()
    )));
    std::fs::create_dir_all(&dir.0)?;
    let config_path = dir.0.join("revloop.toml");
    std::fs::write(&config_path, Config::example_toml())?;
    let config = Config::parse(Config::example_toml()).expect("the example config is valid");
    let db_path = dir.0.join("bench.db");
    let write_key = generate_secret()?;
    SqliteStore::open(&db_path, &config)?.create_token(
        "bench",
        Role::Ingest,
        hash_secret(&write_key),
        clock.now(),
    )?;

    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let child = ChildGuard(
        Command::new(std::env::current_exe()?)
            .args(["serve", "--config"])
            .arg(&config_path)
            .arg("--db")
            .arg(&db_path)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .env("REVLOOP_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .context("starting `revloop serve`")?,
    );
    let base = format!("http://127.0.0.1:{port}");
    wait_until_ready(&base)?;

    let templates = Arc::new(body_templates(
        &event_templates(&config, 5_000)?,
        batch_size,
        16,
    ));
    let sent_events = Arc::new(AtomicU64::new(0));
    let failed_requests = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut handles = Vec::new();
    for client_index in 0..n_clients {
        let templates = templates.clone();
        let sent_events = sent_events.clone();
        let failed_requests = failed_requests.clone();
        let url = format!("{base}/v1/batch");
        let authorization = format!(
            "Basic {}",
            base64_encode(format!("{write_key}:").as_bytes())
        );
        handles.push(std::thread::spawn(move || {
            let client = Client::new();
            let mut latencies_us = Vec::new();
            let mut sequence = 0_u64;
            let mut body = Vec::new();
            while Instant::now() < deadline {
                let template = &templates[sequence as usize / batch_size % templates.len()];
                stamp(template, client_index, &mut sequence, &mut body);
                let sent = Instant::now();
                match client.post(
                    &url,
                    &[
                        ("Authorization", &authorization),
                        ("Content-Type", "application/json"),
                    ],
                    &body,
                ) {
                    Ok(reply) if reply.status == 200 => {
                        latencies_us.push(sent.elapsed().as_micros() as u64);
                        sent_events.fetch_add(batch_size as u64, Ordering::Relaxed);
                    }
                    failure => {
                        if failed_requests.fetch_add(1, Ordering::Relaxed) == 0 {
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
        }));
    }
    // Throughput per interval, to show whether it holds as the database grows.
    let mut last_events = 0;
    while Instant::now() < deadline {
        std::thread::sleep(
            Duration::from_secs(10).min(deadline.saturating_duration_since(Instant::now())),
        );
        let events = sent_events.load(Ordering::Relaxed);
        eprintln!(
            "  {:>4.0}s: {:>8.0} events/s over the last interval, {} failed requests so far",
            started.elapsed().as_secs_f64(),
            (events - last_events) as f64 / 10.0,
            failed_requests.load(Ordering::Relaxed)
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
    let peak_rss_kib = peak_rss_kib(child.0.id());
    drop(child);
    latencies_us.sort_unstable();
    let percentile = |p: f64| -> f64 {
        if latencies_us.is_empty() {
            return f64::NAN;
        }
        let index = ((latencies_us.len() as f64 - 1.0) * p).round() as usize;
        latencies_us[index] as f64 / 1000.0
    };
    let n_events = sent_events.load(Ordering::Relaxed);
    let events_per_s = n_events as f64 / elapsed;
    let db_bytes = file_size(&db_path) + file_size(&db_path.with_extension("db-wal"));
    let ceiling = parse_only_ceiling(&templates);

    println!(
        "ingest benchmark: {n_clients} clients, {batch_size} messages per /v1/batch, {seconds}s, SQLite synchronous=FULL"
    );
    println!(
        "  acknowledged events: {n_events} ({} failed requests)",
        failed_requests.load(Ordering::Relaxed)
    );
    println!("  throughput:          {events_per_s:.0} events/s");
    println!(
        "  request latency:     p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        percentile(0.5),
        percentile(0.99),
        percentile(1.0)
    );
    println!(
        "  server peak RSS:     {:.1} MiB",
        peak_rss_kib as f64 / 1024.0
    );
    println!(
        "  database on disk:    {:.1} MiB ({:.1} bytes per event, dedup keys and counts)",
        db_bytes as f64 / 1048576.0,
        db_bytes as f64 / n_events.max(1) as f64
    );
    println!("  parse-only ceiling:  {ceiling:.0} events/s (serde_json::Value, one thread)");
    println!(
        "  ratio to ceiling:    {:.0}%",
        100.0 * events_per_s / ceiling
    );
    Ok(ExitCode::SUCCESS)
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

fn body_templates(events: &[SimEvent], batch_size: usize, n_bodies: usize) -> Vec<BodyTemplate> {
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
                event.timestamp = fixed_width(now);
                if i > 0 {
                    body.push(',');
                }
                let start = body.len();
                write_segment_json(&event, &mut body);
                let offset = body[start..]
                    .find(&placeholder)
                    .expect("the id placeholder is in the JSON");
                id_offsets.push(start + offset);
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
        Timestamp(time.millis() + 1)
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

fn peak_rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmHWM:")
}

/// A memory figure of `/proc/{pid}/status`, e.g. `VmRSS:`; 0 where there is none.
fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// The stages of every funnel of `bench detect`: the example config's checkout funnel.
const DETECT_STAGES: [(&str, &str); 5] = [
    ("product_viewed", "Product Viewed"),
    ("cart", "Product Added"),
    ("checkout", "Checkout Started"),
    ("payment", "Payment Info Entered"),
    ("order", "Order Completed"),
];
/// Share of each stage's shoppers who go on to the next.
const DETECT_STEP_CONVERSION: [f64; 4] = [0.30, 0.55, 0.65, 0.80];
/// Most segments per funnel, the funnel as a whole included: within
/// `SEGMENTS_PER_FUNNEL_MAX` and one dimension's `max_values`.
const DETECT_SEGMENTS_PER_FUNNEL: usize = 1_000;
const DETECT_DIMENSION: &str = "category";
/// Traffic sizes of the segments: entries per minute from 15 to 400, log-spaced. At 15 the
/// payment stage still expects 8 shoppers per window, above `min_shoppers`, so every series is
/// judged: the costly case.
const TRAFFIC_CLASSES: usize = 16;
/// Minutes of counts precomputed per traffic class and cycled through, so that the generator
/// costs a table lookup. Prime, so that a segment's counts do not repeat in step with the 5- and
/// 15-minute windows.
const POOL_MINUTES: usize = 241;

/// Per-minute stage counts, precomputed: Poisson entries, binomial steps.
struct TrafficPool(Vec<[u32; 5]>);

impl TrafficPool {
    fn new(seed: u64) -> TrafficPool {
        let root = Rng::new(seed);
        let mut rows = Vec::with_capacity(TRAFFIC_CLASSES * POOL_MINUTES);
        for class in 0..TRAFFIC_CLASSES {
            let mut rng = root.fork(class as u64);
            let entries =
                15.0 * (400.0_f64 / 15.0).powf(class as f64 / (TRAFFIC_CLASSES - 1) as f64);
            for _ in 0..POOL_MINUTES {
                let mut row = [0_u32; 5];
                row[0] = rng.poisson(entries) as u32;
                for (step, &p) in DETECT_STEP_CONVERSION.iter().enumerate() {
                    row[step + 1] = (0..row[step]).filter(|_| rng.bernoulli(p)).count() as u32;
                }
                rows.push(row);
            }
        }
        TrafficPool(rows)
    }

    /// The counts of dimension value `value` (from 1) of `funnel` in the `minute`-th minute.
    fn row(&self, funnel: usize, value: usize, minute: u64) -> &[u32; 5] {
        let class = value % TRAFFIC_CLASSES;
        let phase = (funnel * 131 + value * 7_919 + minute as usize) % POOL_MINUTES;
        &self.0[class * POOL_MINUTES + phase]
    }
}

fn detect_config(n_funnels: usize) -> String {
    let mut text = format!(
        "[shop]\ncurrency = \"USD\"\ntime_zone = \"America/New_York\"\n\n\
         [[dimensions]]\nname = \"{DETECT_DIMENSION}\"\npath = \"properties.category\"\n\
         max_values = {DETECT_SEGMENTS_PER_FUNNEL}\n"
    );
    for funnel in 0..n_funnels {
        text.push_str(&format!("\n[[funnels]]\nid = \"funnel_{funnel}\"\n"));
        for (id, event) in DETECT_STAGES {
            text.push_str(&format!(
                "\n[[funnels.stages]]\nid = \"{id}\"\nevent = \"{event}\"\n"
            ));
        }
    }
    text.push_str("\n[detection]\nlearning = \"7d\"\n");
    text
}

/// Feeds one minute of counts: every segment's, then each funnel's as a whole (their sums), as
/// the store's rows would.
fn feed(detector: &mut Detector, pool: &TrafficPool, segments: &[Vec<usize>], minute: u64) {
    for (funnel, indices) in segments.iter().enumerate() {
        let mut whole = [0_i64; 5];
        for (value, &segment) in indices.iter().enumerate() {
            let row = pool.row(funnel, value + 1, minute);
            for (stage, &n) in row.iter().enumerate() {
                detector.record(funnel, segment, stage, i64::from(n));
                whole[stage] += i64::from(n);
            }
        }
        for (stage, n) in whole.into_iter().enumerate() {
            detector.record(funnel, 0, stage, n);
        }
    }
}

/// The same walk as [`feed`] without the detector: the generator's own cost.
fn feed_nothing(pool: &TrafficPool, segments: &[Vec<usize>], minute: u64) {
    for (funnel, indices) in segments.iter().enumerate() {
        let mut whole = [0_i64; 5];
        for (value, &segment) in indices.iter().enumerate() {
            let row = pool.row(funnel, value + 1, minute);
            for (stage, &n) in row.iter().enumerate() {
                std::hint::black_box((funnel, segment, stage, i64::from(n)));
                whole[stage] += i64::from(n);
            }
        }
        for (stage, n) in whole.into_iter().enumerate() {
            std::hint::black_box((funnel, 0, stage, n));
        }
    }
}

/// Time spent in one phase: feeding counts (generator and `record`), and `close_minute` per
/// minute.
#[derive(Default)]
struct Phase {
    feed_ns: u64,
    close_ns: Vec<u64>,
}

impl Phase {
    fn run_minute(
        &mut self,
        detector: &mut Detector,
        pool: &TrafficPool,
        segments: &[Vec<usize>],
        (index, minute): (u64, Minute),
        events: &mut Vec<AlertEvent>,
    ) {
        let started = Instant::now();
        feed(detector, pool, segments, index);
        let fed = Instant::now();
        detector.close_minute(minute, events);
        self.feed_ns += (fed - started).as_nanos() as u64;
        self.close_ns.push(fed.elapsed().as_nanos() as u64);
    }

    fn minutes(&self) -> usize {
        self.close_ns.len()
    }

    fn close_ms(&self) -> (f64, f64, f64) {
        let mut sorted = self.close_ns.clone();
        sorted.sort_unstable();
        let mean = sorted.iter().sum::<u64>() as f64 / sorted.len().max(1) as f64;
        let p50 = sorted.get(sorted.len() / 2).copied().unwrap_or(0) as f64;
        let max = sorted.last().copied().unwrap_or(0) as f64;
        (mean / 1e6, p50 / 1e6, max / 1e6)
    }

    /// `close_minute` per series per minute.
    fn close_ns_per_series(&self, n_series: usize) -> f64 {
        self.close_ms().0 * 1e6 / n_series as f64
    }

    /// Feeding per `record` call (one per series per minute), the generator's cost removed.
    fn record_ns(&self, n_series: usize, generator_ns: f64) -> f64 {
        self.feed_ns as f64 / (self.minutes().max(1) * n_series) as f64 - generator_ns
    }
}

fn detect(series: usize, minutes: u64, warmup_minutes: u64) -> anyhow::Result<ExitCode> {
    let per_segment = DETECT_STAGES.len();
    let all_segments = series / per_segment;
    anyhow::ensure!(all_segments >= 1, "--series must be at least {per_segment}");
    anyhow::ensure!(minutes >= 1, "--minutes must be at least 1");
    let n_funnels = all_segments.div_ceil(DETECT_SEGMENTS_PER_FUNNEL);
    anyhow::ensure!(
        n_funnels <= revloop_core::config::FUNNELS_MAX,
        "--series must be at most {}",
        revloop_core::config::FUNNELS_MAX * DETECT_SEGMENTS_PER_FUNNEL * per_segment
    );
    let per_funnel = all_segments / n_funnels;
    let n_series = n_funnels * per_funnel * per_segment;
    let config = Config::parse(&detect_config(n_funnels))
        .map_err(|err| anyhow::anyhow!("the bench config is invalid: {err}"))?;
    let pool = TrafficPool::new(42);
    let pid = std::process::id();
    let rss_before_kib = status_kib(pid, "VmRSS:");

    let mut detector = Detector::new(&config);
    let values: Vec<String> = (1..per_funnel)
        .map(|value| format!("v{value:03}"))
        .collect();
    let mut segments = Vec::with_capacity(n_funnels);
    for funnel in 0..n_funnels {
        let mut indices = Vec::with_capacity(values.len());
        for value in &values {
            indices.push(
                detector
                    .segment(funnel, Some((DETECT_DIMENSION, value)))
                    .context("a bench segment is not watched")?,
            );
        }
        segments.push(indices);
    }
    // Monday 2026-11-02 00:00 in the funnels' time zone (New York).
    let start = Timestamp::parse_rfc3339("2026-11-02T05:00:00Z")?.minute();
    let at = |index: u64| (index, Minute(start.0 + index as i64));
    let mut events = Vec::new();

    eprintln!(
        "  {n_series} series: {n_funnels} funnels x {per_funnel} segments x {per_segment}; \
         warm-up of {warmup_minutes} minutes"
    );
    let mut learning = Phase::default();
    let mut day = Phase::default();
    for index in 0..warmup_minutes {
        day.run_minute(&mut detector, &pool, &segments, at(index), &mut events);
        if day.minutes() == 24 * 60 || index + 1 == warmup_minutes {
            eprintln!(
                "  warm-up minute {:>6}: close_minute {:.1} ns per series, feeding {:.1} ns per series",
                index + 1,
                day.close_ns_per_series(n_series),
                day.record_ns(n_series, 0.0)
            );
            learning.feed_ns += day.feed_ns;
            learning.close_ns.append(&mut day.close_ns);
            day = Phase::default();
        }
    }
    let warmup_events = events.len();
    events.clear();
    let rss_warm_kib = status_kib(pid, "VmRSS:");

    let mut measured = Phase::default();
    for index in warmup_minutes..warmup_minutes + minutes {
        measured.run_minute(&mut detector, &pool, &segments, at(index), &mut events);
    }
    let peak_kib = status_kib(pid, "VmHWM:");

    // The generator alone, over the measured minutes again: the best of three passes.
    let generator_ns = (0..3)
        .map(|_| {
            let started = Instant::now();
            for index in warmup_minutes..warmup_minutes + minutes {
                feed_nothing(&pool, &segments, index);
            }
            started.elapsed().as_nanos() as f64 / (minutes.max(1) as usize * n_series) as f64
        })
        .fold(f64::INFINITY, f64::min);

    // The server's runner looks each count row's segment up by name before `record`.
    let lookups_started = Instant::now();
    let mut lookups = 0_u64;
    while lookups < 1_000_000 {
        for funnel in 0..n_funnels {
            for value in &values {
                std::hint::black_box(detector.segment(funnel, Some((DETECT_DIMENSION, value))));
            }
        }
        lookups += (n_funnels * values.len()).max(1) as u64;
    }
    let lookup_ns = lookups_started.elapsed().as_nanos() as f64 / lookups as f64;

    let mut statuses: std::collections::BTreeMap<&str, usize> = Default::default();
    for funnel in 0..n_funnels {
        for report in detector.report(funnel) {
            *statuses.entry(report.status.as_str()).or_default() += 1;
        }
    }

    // The server's detection tick works on a copy of the detector, once a minute.
    let clone_started = Instant::now();
    let copy = detector.clone();
    let clone_ms = clone_started.elapsed().as_secs_f64() * 1e3;
    let rss_with_copy_kib = status_kib(pid, "VmRSS:");
    drop(copy);

    let detector_kib = rss_warm_kib.saturating_sub(rss_before_kib);
    let history_minutes = i64::from(config.detection.baseline_weeks) * 7 * 24 * 60
        + config.detection.learning.millis() / MS_PER_MINUTE
        + 24 * 60;
    let learning_minutes = config.detection.learning.millis() / MS_PER_MINUTE;
    let learning_ns = learning.close_ns_per_series(n_series);
    let measured_ns = measured.close_ns_per_series(n_series);
    let record_ns = measured.record_ns(n_series, generator_ns);
    let rebuild_s = n_series as f64
        * (learning_minutes as f64 * (learning_ns + record_ns)
            + (history_minutes - learning_minutes) as f64 * (measured_ns + record_ns))
        / 1e9;
    let phase_name = if statuses.get("learning").copied().unwrap_or(0) > 0 {
        "learning"
    } else {
        "judged"
    };

    println!(
        "detect benchmark: {n_series} series = {n_funnels} funnel{} x {per_funnel} segments \
         (the funnel as a whole and {} values of one dimension) x {per_segment} series \
         (4 conversion steps, entry volume); window {} min",
        if n_funnels == 1 { "" } else { "s" },
        per_funnel - 1,
        detector.window_minutes()
    );
    println!(
        "  phase         minutes  close_minute per minute (mean, p50, max)   ns per series-minute"
    );
    for (name, phase) in [("learning", &learning), (phase_name, &measured)] {
        if phase.minutes() == 0 {
            continue;
        }
        let (mean, p50, max) = phase.close_ms();
        println!(
            "  {name:<12}  {:>7}  {mean:>9.2} ms, {p50:>9.2} ms, {max:>9.2} ms   {:>8.1}",
            phase.minutes(),
            phase.close_ns_per_series(n_series)
        );
    }
    println!(
        "  record():           {record_ns:.1} ns per call, one call per series per minute \
         (generator's {generator_ns:.1} ns subtracted)"
    );
    println!(
        "  segment() by name:  {lookup_ns:.1} ns per call (the server's runner: one per count row)"
    );
    println!(
        "  100,000 series:     {:.1} ms to judge one minute on one core \
         (close_minute + record at {measured_ns:.1} + {record_ns:.1} ns per series)",
        100_000.0 * (measured_ns + record_ns) / 1e6
    );
    println!(
        "  rebuild estimate:   {rebuild_s:.0} s to replay {} days of history at this size \
         (first {} days learning, then judged)",
        history_minutes / (24 * 60),
        learning_minutes / (24 * 60)
    );
    println!(
        "  series after the measured minutes: {} (conversion series only); alert events: \
         {warmup_events} in the warm-up, {} in the measured minutes",
        statuses
            .iter()
            .map(|(status, n)| format!("{n} {status}"))
            .collect::<Vec<_>>()
            .join(", "),
        events.len()
    );
    println!(
        "  memory:             detector {:.1} MiB after the warm-up ({:.0} bytes per series), \
         peak RSS {:.1} MiB",
        detector_kib as f64 / 1024.0,
        detector_kib as f64 * 1024.0 / n_series as f64,
        peak_kib as f64 / 1024.0
    );
    println!(
        "  Detector::clone():  {clone_ms:.1} ms, RSS {:.1} MiB with the copy \
         (what a snapshot of the detector costs, as `revloop eval` takes per scenario)",
        rss_with_copy_kib as f64 / 1024.0
    );
    Ok(ExitCode::SUCCESS)
}
