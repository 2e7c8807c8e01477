//! `revloop bench incidents`: what an incident step costs, in the engine alone and committed
//! to a real store.
//!
//! The engine's hot path is `handle_timeout` (every input ends with one, and the timer task
//! calls it whenever a deadline comes due); it walks every open incident, so its cost grows
//! with how many are open. A durable step adds the version check, the commit (incident rows,
//! timeline rows, outbox rows, meta) and its fsync.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use revloop_core::Config;
use revloop_core::alert::{AlertEvent, AlertEventKind, AlertKind, Direction, Severity};
use revloop_core::incident::{Action, IncidentEngine};
use revloop_core::time::{DurationMs, MS_PER_MINUTE, Timestamp};
use revloop_server::incidents::Incidents;
use revloop_store::{SqliteStore, Store};

use super::support::TempDir;

/// 2026-11-27T10:00:00Z.
const T0: Timestamp = Timestamp::from_millis(1_795_773_600_000);

fn alert(id: u64, at: Timestamp) -> AlertEvent {
    AlertEvent {
        alert_id: id,
        // One funnel per incident: the engine groups by funnel and stage, and does not check
        // names against a config.
        funnel: format!("funnel_{id}"),
        stage: "payment".into(),
        kind: AlertKind::Conversion,
        severity: Severity::P1,
        event: AlertEventKind::Opened,
        direction: Direction::Worse,
        at,
        onset: at,
        segment: None,
        baseline_rate: 0.15,
        observed_rate: 0.6,
        sigma: 9.0,
        n: 200,
        top_segments: Vec::new(),
    }
}

/// Mean, median and 99th percentile of `samples`, in microseconds.
fn spread_us(samples: &mut [f64]) -> (f64, f64, f64) {
    samples.sort_by(f64::total_cmp);
    let mean = samples.iter().sum::<f64>() / samples.len() as f64;
    let at = |q: f64| samples[((q * samples.len() as f64) as usize).min(samples.len() - 1)];
    (mean, at(0.5), at(0.99))
}

pub fn run(open: usize, steps: usize, database_url: Option<&str>) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        open >= 1 && steps >= 1,
        "--open and --steps must be at least 1"
    );
    // The example config, with a maintenance window over the whole run: the incidents page
    // nobody, so the log stays quiet (paging costs the same outbox row as any effect).
    let text = format!(
        "{}\n[[incidents.silences]]\nfrom = \"2026-11-26T00:00\"\nto = \"2026-11-29T00:00\"\nreason = \"benchmark\"\n",
        Config::example_toml()
    );
    let config = Arc::new(
        Config::parse(&text)
            .map_err(|err| anyhow::anyhow!("the bench config is invalid: {err}"))?,
    );

    // The engine alone: every incident open and acknowledged (the timer tick then only checks
    // clocks and criteria), one tick a second. The work per tick is what every input ends with.
    let mut engine = IncidentEngine::for_config(&config);
    for id in 1..=open as u64 {
        engine.handle_alert(T0, &alert(id, T0));
        engine.handle_action(T0, id, "bench", Action::Acknowledge, None)?;
    }
    while engine.poll_effect().is_some() {}
    let mut ticks = Vec::with_capacity(steps);
    for step in 0..steps {
        let now = T0.saturating_add(DurationMs::from_secs(step as i64 + 1));
        let started = Instant::now();
        engine.handle_timeout(now);
        ticks.push(started.elapsed().as_secs_f64() * 1e6);
    }
    let (mean, p50, p99) = spread_us(&mut ticks);
    println!(
        "engine: handle_timeout with {open} open incidents: mean {mean:.1} µs, p50 {p50:.1} µs, p99 {p99:.1} µs ({:.0} ns per open incident)",
        mean * 1e3 / open as f64
    );

    // Durable steps: the same incidents opened through the service, then one note per step,
    // each committed with its fsync.
    let dir = TempDir(
        std::env::temp_dir().join(format!("revloop-bench-incidents-{}", std::process::id())),
    );
    std::fs::create_dir_all(&dir.0)?;
    // PostgreSQL: a schema of its own, dropped at the end.
    let schema = format!("revloop_bench_incidents_{}", std::process::id());
    let store: Arc<dyn Store> = match database_url {
        Some(url) => Arc::new(revloop_store::PostgresStore::open_in_schema(
            url, &schema, &config,
        )?),
        None => Arc::new(SqliteStore::open(&dir.0.join("bench.db"), &config)?),
    };
    let incidents = Incidents::new(config.clone(), store);
    incidents.tick(T0)?;
    let first = incidents.with_engine(|e| e.meta().next_id)?;
    let alerts: Vec<AlertEvent> = (0..open as u64)
        .map(|i| alert(first + i, T0.saturating_add(DurationMs::from_minutes(1))))
        .collect();
    let started = Instant::now();
    incidents.feed(
        &alerts,
        &|_| None,
        T0.saturating_add(DurationMs::from_minutes(1)),
    )?;
    let opening_ms = started.elapsed().as_secs_f64() * 1e3;
    let ids: Vec<u64> = incidents.with_engine(|e| {
        e.incidents()
            .filter(|i| i.is_open())
            .map(|i| i.id)
            .collect()
    })?;
    anyhow::ensure!(ids.len() >= open, "only {} incidents opened", ids.len());
    let mut notes = Vec::with_capacity(steps);
    for step in 0..steps {
        // A millisecond apart, so that no SLA runs out during the run.
        let now = T0.saturating_add(DurationMs::from_millis(2 * MS_PER_MINUTE + step as i64));
        let id = ids[step % ids.len()];
        let started = Instant::now();
        incidents
            .act(
                id,
                "bench",
                &Action::Note(format!("step {step}")),
                None,
                now,
            )?
            .map_err(|err| anyhow::anyhow!("the note was refused: {err}"))?;
        notes.push(started.elapsed().as_secs_f64() * 1e6);
    }
    let (mean, p50, p99) = spread_us(&mut notes);
    let store_name = if database_url.is_some() {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    println!(
        "{store_name}: opening {open} incidents in one step: {opening_ms:.1} ms; a note (one durable step) with {open} open: mean {mean:.0} µs, p50 {p50:.0} µs, p99 {p99:.0} µs ({:.0} steps/s)",
        1e6 / mean
    );
    drop(incidents);
    if let Some(url) = database_url {
        revloop_store::PostgresStore::drop_schema(url, &schema)?;
    }
    Ok(ExitCode::SUCCESS)
}
