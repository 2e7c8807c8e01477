//! `revloop bench delivery`: the deliverer against a real local webhook receiver, on a fresh
//! SQLite store (or PostgreSQL with `--database-url`), with the default channel settings.
//!
//! 1. **Throughput and latency**: a burst of pages committed to the outbox at once; how fast
//!    they reach the receiver (each signed, each attempt recorded durably), and how long each
//!    took from its commit to its arrival.
//! 2. **Drain after an outage**: the receiver answers 503 for `--outage-seconds` while pages
//!    keep coming at `--pages-per-second`; then it is back, and the bench measures how long the
//!    backlog takes to drain, and how many attempts the outage cost.

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use revloop_core::Config;
use revloop_core::config::{Channel, ChannelKind, Delivery, Route, SecretSource, Url};
use revloop_core::incident::EngineMeta;
use revloop_core::time::{DurationMs, Timestamp};
use revloop_server::delivery::deliverer::{self, Deliverer};
use revloop_server::incidents::Incidents;
use revloop_server::{Clock, SystemClock};
use revloop_store::{AlertWatermark, IncidentCommit, OutboxKind, OutboxRow, SqliteStore, Store};

use super::support::TempDir;

/// Outbox rows written per commit while queueing.
const QUEUE_COMMIT_ROWS_MAX: usize = 500;

pub struct Setup {
    pub messages: usize,
    pub outage_seconds: u64,
    pub pages_per_second: u64,
    pub database_url: Option<String>,
}

/// The receiver: up or answering 503, and when each key first arrived.
#[derive(Default)]
struct Receiver {
    down: AtomicBool,
    arrivals: Mutex<HashMap<String, Instant>>,
    refused: Mutex<u64>,
}

async fn receive(State(receiver): State<Arc<Receiver>>, headers: HeaderMap) -> StatusCode {
    if receiver.down.load(Ordering::SeqCst) {
        *receiver.refused.lock().expect("lock") += 1;
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let mut arrivals = receiver.arrivals.lock().expect("lock");
    arrivals.entry(key).or_insert_with(Instant::now);
    StatusCode::OK
}

pub fn run(setup: &Setup) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(setup.messages >= 1, "--messages must be at least 1");
    let runtime = tokio::runtime::Runtime::new()?;
    let receiver = Arc::new(Receiver::default());
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    let router = axum::Router::new()
        .route("/hook", axum::routing::post(receive))
        .with_state(receiver.clone());
    runtime.spawn(async move { axum::serve(listener, router).await });

    let dir = TempDir(
        std::env::temp_dir().join(format!("revloop-bench-delivery-{}", std::process::id())),
    );
    std::fs::create_dir_all(&dir.0)?;
    let secret = dir.0.join("hook.secret");
    std::fs::write(&secret, "bench-secret")?;
    let config = bench_config(&url, &secret.display().to_string())?;
    let schema = format!("revloop_bench_delivery_{}", std::process::id());
    let store: Arc<dyn Store> = match &setup.database_url {
        Some(url) => Arc::new(revloop_store::PostgresStore::open_in_schema(
            url, &schema, &config,
        )?),
        None => Arc::new(SqliteStore::open(&dir.0.join("bench.db"), &config)?),
    };
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let incidents = Arc::new(Incidents::new(Arc::new(config.clone()), store.clone()));
    let deliverer = Arc::new(
        Deliverer::new(&config, store.clone(), clock.clone(), incidents)
            .ok_or_else(|| anyhow::anyhow!("no [delivery] section"))?,
    );
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let service = runtime.spawn(deliverer::run(deliverer, stopped));

    println!(
        "delivery to a local webhook receiver, {} store, default channel settings (concurrency {}, timeout {})",
        if setup.database_url.is_some() {
            "PostgreSQL"
        } else {
            "SQLite"
        },
        config
            .delivery
            .as_ref()
            .map_or(0, |d| d.channels[0].concurrency),
        config
            .delivery
            .as_ref()
            .map_or(DurationMs::ZERO, |d| d.channels[0].timeout),
    );
    burst(setup, store.as_ref(), clock.as_ref(), &receiver)?;
    outage(setup, store.as_ref(), clock.as_ref(), &receiver)?;

    let _ = stop.send(true);
    let _ = runtime.block_on(service);
    if setup.database_url.is_some() {
        drop(store);
        if let Some(url) = &setup.database_url {
            revloop_store::PostgresStore::drop_schema(url, &schema)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Phase 1: `messages` pages committed at once; throughput and commit-to-arrival latency.
fn burst(
    setup: &Setup,
    store: &dyn Store,
    clock: &dyn Clock,
    receiver: &Receiver,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let ids = queue(store, &mut 0, 1, setup.messages, clock.now())?;
    let keys = wait_all(store, receiver, &ids, Duration::from_secs(600))?;
    let arrivals = receiver.arrivals.lock().expect("lock");
    let mut latencies: Vec<f64> = keys
        .iter()
        .filter_map(|key| arrivals.get(key))
        .map(|at| at.duration_since(started).as_secs_f64() * 1e3)
        .collect();
    latencies.sort_by(f64::total_cmp);
    let last = latencies.last().copied().unwrap_or(0.0);
    println!(
        "burst: {} pages delivered in {:.2} s: {:.0} deliveries/s; commit to arrival p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        latencies.len(),
        last / 1e3,
        latencies.len() as f64 / (last / 1e3).max(1e-9),
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
        last,
    );
    Ok(())
}

/// Phase 2: the receiver down for `outage_seconds` while pages keep coming; the drain after.
fn outage(
    setup: &Setup,
    store: &dyn Store,
    clock: &dyn Clock,
    receiver: &Receiver,
) -> anyhow::Result<()> {
    receiver.down.store(true, Ordering::SeqCst);
    let down_at = Instant::now();
    let mut ids = Vec::new();
    let mut incident = 1_000_000;
    let mut cursor = i64::try_from(setup.messages).unwrap_or(i64::MAX);
    while down_at.elapsed() < Duration::from_secs(setup.outage_seconds) {
        let n = usize::try_from(setup.pages_per_second.max(1)).unwrap_or(1);
        ids.extend(queue(store, &mut cursor, incident, n, clock.now())?);
        incident += n as i64;
        std::thread::sleep(Duration::from_secs(1));
    }
    let refused = *receiver.refused.lock().expect("lock");
    receiver.down.store(false, Ordering::SeqCst);
    let back_at = Instant::now();
    let keys = wait_all(store, receiver, &ids, Duration::from_secs(3_600))?;
    let drained = back_at.elapsed();
    let arrivals = receiver.arrivals.lock().expect("lock");
    let first = keys
        .iter()
        .filter_map(|key| arrivals.get(key))
        .min()
        .map_or(Duration::ZERO, |at| at.duration_since(back_at));
    println!(
        "outage: {} s down, {} pages queued meanwhile, {} attempts refused (the breaker held the rest back); \
         back: first arrival after {:.1} s, backlog drained in {:.1} s",
        setup.outage_seconds,
        ids.len(),
        refused,
        first.as_secs_f64(),
        drained.as_secs_f64(),
    );
    Ok(())
}

/// Waits until every delivery of outbox rows `ids` has arrived; their idempotency keys.
fn wait_all(
    store: &dyn Store,
    receiver: &Receiver,
    ids: &[i64],
    limit: Duration,
) -> anyhow::Result<Vec<String>> {
    let (Some(&first), Some(&last)) = (ids.first(), ids.last()) else {
        return Ok(Vec::new());
    };
    let started = Instant::now();
    loop {
        let mut keys = Vec::new();
        let mut from = first;
        while from <= last {
            let rows = store.deliveries(&revloop_store::DeliveryQuery {
                incident: None,
                outbox_ids: Some((from, last)),
                limit: revloop_store::DELIVERY_PAGE_MAX,
            })?;
            let Some(tail) = rows.last() else { break };
            from = tail.outbox_id + 1;
            keys.extend(rows.iter().map(|r| format!("revloop-delivery-{}", r.id)));
        }
        let arrived = {
            let arrivals = receiver.arrivals.lock().expect("lock");
            keys.iter().filter(|k| arrivals.contains_key(*k)).count()
        };
        if keys.len() == ids.len() && arrived == keys.len() {
            return Ok(keys);
        }
        anyhow::ensure!(
            started.elapsed() < limit,
            "{arrived} of {} delivered after {limit:?}",
            ids.len()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// The example config with every escalation target routed to one webhook channel.
fn bench_config(url: &str, secret_file: &str) -> anyhow::Result<Config> {
    let mut config = Config::parse(Config::example_toml())
        .map_err(|err| anyhow::anyhow!("the example config is invalid: {err}"))?;
    let route = Route {
        channel: "hook".into(),
        to: None,
    };
    config.delivery = Some(Delivery {
        channels: vec![Channel {
            name: "hook".into(),
            kind: ChannelKind::Webhook {
                url: Url(url.to_owned()),
                secret: SecretSource::File(secret_file.to_owned()),
            },
            concurrency: 4,
            timeout: DurationMs::from_secs(10),
        }],
        targets: config
            .incidents
            .targets()
            .into_iter()
            .map(|t| (t, vec![route.clone()]))
            .collect(),
        audiences: Default::default(),
        // Failover pages the next level of an incident; the bench's pages have none.
        failover_after: DurationMs::from_hours(24),
        retry: Default::default(),
    });
    Ok(config)
}

/// Commits `n` pages (incidents `first_incident..`) to the outbox as the incidents service
/// does; their outbox ids.
fn queue(
    store: &dyn Store,
    cursor: &mut i64,
    first_incident: i64,
    n: usize,
    now: Timestamp,
) -> anyhow::Result<Vec<i64>> {
    let mut ids = Vec::with_capacity(n);
    let incidents: Vec<i64> = (0..n as i64).map(|i| first_incident + i).collect();
    for chunk in incidents.chunks(QUEUE_COMMIT_ROWS_MAX) {
        let rows: Vec<OutboxRow> = chunk.iter().map(|&i| page_row(i, now)).collect();
        let snapshot = store.load_incidents(0)?;
        let meta = match snapshot.meta {
            Some(meta) => meta,
            None => revloop_store::encode_incident_meta(
                &EngineMeta {
                    next_id: 1,
                    evaluated_at: now,
                    added_silences: Vec::new(),
                    next_silence_id: 1,
                    surges: Default::default(),
                },
                &AlertWatermark::NONE,
            )?,
        };
        store.commit_incidents(&IncidentCommit {
            expected_version: snapshot.version,
            meta,
            incidents: Vec::new(),
            timeline: Vec::new(),
            outbox: rows,
        })?;
        // Only the bench writes the outbox: its rows are the next ones.
        let written = store.outbox(*cursor, chunk.len())?;
        anyhow::ensure!(written.len() == chunk.len(), "the outbox lost rows");
        *cursor = written.last().map_or(*cursor, |r| r.id);
        ids.extend(written.iter().map(|r| r.id));
    }
    Ok(ids)
}

fn page_row(incident: i64, now: Timestamp) -> OutboxRow {
    let body = serde_json::json!({
        "kind": "notify", "incident": incident, "at": now.to_string(), "level": "L1",
        "targets": ["on-call engineer"], "reason": "opened",
        "brief": {
            "title": format!("P1 conversion: checkout/payment #{incident}"),
            "funnel": "checkout", "stage": "payment", "severity": "P1",
            "kind": "conversion", "sigma": 5.1,
            "loss": {"minor": 12_345, "currency": "USD"},
        },
    });
    OutboxRow {
        id: 0,
        incident,
        at: now,
        kind: OutboxKind::Notify,
        body: body.to_string(),
    }
}
