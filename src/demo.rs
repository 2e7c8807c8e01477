//! `revloop demo`: the newcomer's first command. Everything lives in one data directory: the
//! example config, the SQLite database, and nothing else. It serves at once, backfills fifteen
//! days of simulated history in event time (with two incidents for the detector to find), and
//! streams live simulated traffic through the real HTTP ingest endpoint with a demo write key.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::mpsc::sync_channel;
use std::time::{Duration, Instant};

use anyhow::Context;

use revloop_core::Config;
use revloop_core::Timestamp;
use revloop_core::time::DurationMs;
use revloop_server::http::auth::{base64_encode, generate_secret, hash_secret};
use revloop_server::{App, AppOptions, Clock, SystemClock};
use revloop_sim::demo::{DEMO_DAYS, DEMO_PEAK_SESSIONS_PER_MINUTE, DEMO_SEED};
use revloop_sim::segment_json::write_segment_json;
use revloop_sim::{Scenario, simulate};
use revloop_store::{Role, SqliteStore, Store};

use crate::client::Client;

/// Demo tokens are named with this, so that a restart can revoke the previous ones.
const DEMO_TOKEN_PREFIX: &str = "demo";
/// The demo's delivery channel: its own inbox.
const DEMO_CHANNEL: &str = "demo-inbox";
/// Lines handed from the simulator thread to the ingest thread at a time.
const BACKFILL_CHUNK_LINES: usize = 5_000;
/// Chunks the simulator may run ahead of ingest.
const BACKFILL_CHUNKS_QUEUED_MAX: usize = 4;
/// Live traffic is sent at least this often.
const LIVE_FLUSH_MS: i64 = 1_000;
/// Most messages in one live batch (well under the /v1/batch limit).
const LIVE_BATCH_MESSAGES_MAX: usize = 500;

#[derive(clap::Args)]
pub struct Args {
    /// Address to serve on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// The only directory the demo writes to.
    #[arg(long, default_value = "revloop-demo")]
    data_dir: PathBuf,
    /// Days of history to backfill on first start. The detector learns for a week before it
    /// pages, so the default leaves a week of history it judges, with two incidents in it.
    #[arg(long, default_value_t = DEMO_DAYS)]
    days: u32,
    /// Mean sessions per minute at the busiest time of the week.
    #[arg(long, default_value_t = DEMO_PEAK_SESSIONS_PER_MINUTE)]
    peak_sessions_per_minute: f64,
    /// Seed of the simulated traffic.
    #[arg(long, default_value_t = DEMO_SEED)]
    seed: u64,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating {}", args.data_dir.display()))?;
    let config_path = args.data_dir.join("revloop.toml");
    if !config_path.exists() {
        std::fs::write(&config_path, Config::example_toml())
            .with_context(|| format!("writing {}", config_path.display()))?;
    }
    let mut config = crate::load_config(&config_path)?;
    let db_path = args.data_dir.join("revloop.db");
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(&db_path, &config)
            .with_context(|| format!("opening {}", db_path.display()))?,
    );
    store.claim_ingest()?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(args.listen))
        .with_context(|| {
            format!(
                "listening on {} (is another revloop running? try --listen 127.0.0.1:0)",
                args.listen
            )
        })?;
    let clock = SystemClock;
    let now = clock.now();
    let (write_key, api_token) = fresh_demo_credentials(store.as_ref(), now)?;
    let first_funnel = config.funnels[0].id.clone();
    let has_history = has_history(store.as_ref(), &first_funnel, args.days, now)?;
    let address = listener.local_addr()?;
    let base = format!("http://{address}");
    let inbox_secret = route_to_inbox(&mut config, &args.data_dir, &base)?;
    let app = App::build(
        config.clone(),
        store,
        Arc::new(SystemClock),
        AppOptions {
            demo_inbox_secret: inbox_secret,
            ..AppOptions::default()
        },
    );
    let ingestor = app.state.ingestor.clone();
    let detection = app.state.detection.clone();
    let incidents = app.state.incidents.clone();
    let store = app.state.store.clone();
    print_welcome(
        &args,
        &base,
        &first_funnel,
        &write_key,
        &api_token,
        has_history,
    );

    if !has_history {
        let config = config.clone();
        let base_for_backfill = base.clone();
        let scenario = revloop_sim::demo::history(
            &config,
            now,
            args.days,
            args.seed,
            args.peak_sessions_per_minute,
        );
        std::thread::Builder::new()
            .name("demo-backfill".into())
            .spawn(move || {
                if let Err(err) = backfill(&config, &scenario, &ingestor) {
                    eprintln!("backfill failed: {err:#}");
                    return;
                }
                // The detector judged the backfilled minutes before their events arrived:
                // let it learn them again, as after a restart.
                detection.rebuild();
                eprintln!(
                    "the detector is learning the history; alerts: {base_for_backfill}/api/v1/alerts"
                );
                // And run the incidents over the history in event time, so that yesterday's
                // two incidents have their timelines (nobody acknowledged them).
                let config = Arc::new(config);
                let adopted = revloop_server::event_time::run_in_event_time(
                    &config,
                    store.as_ref(),
                    scenario.from.minute(),
                    SystemClock.now().minute(),
                    revloop_server::event_time::Books::NotKept,
                )
                .and_then(|run| {
                    let through = run.alerts.last().map_or(scenario.from, |a| a.at);
                    incidents.adopt(run.engine, through, SystemClock.now())
                });
                match adopted {
                    Ok(true) => eprintln!(
                        "incidents from the history: {base_for_backfill}/api/v1/incidents?state=all"
                    ),
                    Ok(false) => {}
                    Err(err) => eprintln!("incidents from the history failed: {err:#}"),
                }
            })?;
    }
    let live_config = config.clone();
    let live_seed = args.seed.wrapping_add(1);
    let peak = args.peak_sessions_per_minute;
    let url = format!("{base}/v1/batch");
    std::thread::Builder::new()
        .name("demo-live".into())
        .spawn(move || {
            if let Err(err) = stream_live(&live_config, live_seed, peak, now, &url, &write_key) {
                eprintln!("live traffic stopped: {err:#}");
            }
        })?;
    let store = app.state.store.clone();
    runtime
        .block_on(app.serve(listener, crate::serve::shutdown_signal()))
        .context("serving")?;
    crate::serve::checkpoint_on_exit(store.as_ref());
    Ok(ExitCode::SUCCESS)
}

fn print_welcome(
    args: &Args,
    base: &str,
    funnel: &str,
    write_key: &str,
    api_token: &str,
    has_history: bool,
) {
    let history = if has_history {
        format!(
            "History from an earlier run is in {}; only live traffic is added (delete the directory for fresh history).",
            args.data_dir.display()
        )
    } else {
        format!(
            "Backfilling {} days of history in the background (about ten seconds). Yesterday at 19:00 UTC checkout failed for mobile shoppers, and at 22:00 UTC payment went down; the detector learns the history and finds both within seconds of the backfill (see /api/v1/alerts), and the incidents run through their escalation path with nobody answering (the simulated traffic's own swings may raise a P2 or two more).",
            args.days
        )
    };
    println!(
        "\nrevloop demo is running at {base}\n\
         data directory: {}\n\n\
         demo write key (ingest):  {write_key}\n\
         demo API token (admin):   {api_token}\n\n\
         Try:\n  \
           curl -s -H 'Authorization: Bearer {api_token}' {base}/api/v1/funnels\n  \
           curl -s -H 'Authorization: Bearer {api_token}' '{base}/api/v1/funnels/{funnel}/metrics?step=1h'\n  \
           curl -s -H 'Authorization: Bearer {api_token}' '{base}/api/v1/funnels/{funnel}/metrics?step=5m&device=mobile'\n  \
           curl -s -H 'Authorization: Bearer {api_token}' '{base}/api/v1/alerts'\n  \
           curl -s -H 'Authorization: Bearer {api_token}' '{base}/api/v1/funnels/{funnel}/detector'\n  \
           curl -s -u '{write_key}:' {base}/v1/track -d '{{\"userId\":\"u1\",\"event\":\"Product Viewed\",\"messageId\":\"try-1\"}}'\n  \
           curl -s -H 'Authorization: Bearer {api_token}' {base}/metrics\n\n\
         Incidents, from the command line:\n  \
           export REVLOOP_URL={base} REVLOOP_TOKEN={api_token}\n  \
           {exe} incident list --state all\n  \
           {exe} incident show 1\n  \
           {exe} incident ack <id of an open one> --reason \"looking\"\n  \
           {exe} incident declare --severity P2 --funnel {funnel} --stage cart --summary \"customers say the basket button does nothing\"\n\n\
         Pages, acknowledgements and resolutions are delivered (signed) to the demo's own inbox:\n  \
           curl -s -H 'Authorization: Bearer {api_token}' {base}/demo/inbox\n  \
           curl -s -H 'Authorization: Bearer {api_token}' {base}/api/v1/outbox   (each delivery's state and attempts)\n\n\
         (the same messageId is counted once, however often it is sent; each start of the demo\n\
         issues new credentials and revokes the previous ones)\n\n\
         {history}\nLive simulated traffic is streaming in, at the shop's time of day (quiet at night). Ctrl-C stops.\n",
        args.data_dir.display(),
        exe = std::env::args()
            .next()
            .unwrap_or_else(|| "revloop".to_owned()),
    );
}

/// Pages go to the demo's own inbox unless the config routes them elsewhere: then the inbox's
/// secret, `None` otherwise.
fn route_to_inbox(
    config: &mut Config,
    data_dir: &std::path::Path,
    base: &str,
) -> anyhow::Result<Option<String>> {
    if config.delivery.is_some() {
        return Ok(None);
    }
    let (delivery, secret) = demo_delivery(config, data_dir, base)?;
    config.delivery = Some(delivery);
    Ok(Some(secret))
}

/// Where the demo's pages go when its config has no `[delivery]` section: every escalation
/// target to one signed webhook channel, the demo's own inbox (`/demo/inbox`), which verifies
/// each signature. The signing secret is fresh each start and read from a file in the data
/// directory, as a real channel's would be (never from the config).
fn demo_delivery(
    config: &Config,
    data_dir: &std::path::Path,
    base: &str,
) -> anyhow::Result<(revloop_core::config::Delivery, String)> {
    use revloop_core::config::{Channel, ChannelKind, Delivery, Route, SecretSource, Url};
    let secret = generate_secret()?;
    let secret_path = data_dir.join("demo-inbox.secret");
    write_private(&secret_path, &secret)?;
    let channel = Channel {
        name: DEMO_CHANNEL.to_owned(),
        kind: ChannelKind::Webhook {
            url: Url(format!("{base}/demo/inbox")),
            secret: SecretSource::File(secret_path.display().to_string()),
        },
        concurrency: 4,
        timeout: DurationMs::from_secs(10),
    };
    let route = Route {
        channel: DEMO_CHANNEL.to_owned(),
        to: None,
    };
    let delivery = Delivery {
        channels: vec![channel],
        targets: config
            .incidents
            .targets()
            .into_iter()
            .map(|target| (target, vec![route.clone()]))
            .collect(),
        audiences: Default::default(),
        failover_after: DurationMs::from_minutes(5),
        retry: Default::default(),
    };
    Ok((delivery, secret))
}

/// Writes a secret readable by its owner only.
fn write_private(path: &std::path::Path, secret: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(secret.as_bytes())?;
    Ok(())
}

/// Fresh demo credentials each start, the previous start's revoked: the write key and the
/// admin API token.
fn fresh_demo_credentials(store: &dyn Store, now: Timestamp) -> anyhow::Result<(String, String)> {
    for token in store.list_tokens()? {
        if token.revoked_at.is_none() && token.name.starts_with(DEMO_TOKEN_PREFIX) {
            store.revoke_token(token.id, now)?;
        }
    }
    let write_key = generate_secret()?;
    let api_token = generate_secret()?;
    store.create_token(
        &format!("{DEMO_TOKEN_PREFIX} write key"),
        Role::Ingest,
        hash_secret(&write_key),
        now,
    )?;
    store.create_token(
        &format!("{DEMO_TOKEN_PREFIX} admin"),
        Role::Admin,
        hash_secret(&api_token),
        now,
    )?;
    Ok((write_key, api_token))
}

/// Whether the first funnel has counts in the `days` before `now`: then the history was
/// backfilled by an earlier start.
fn has_history(
    store: &dyn Store,
    first_funnel: &str,
    days: u32,
    now: Timestamp,
) -> anyhow::Result<bool> {
    Ok(!store
        .minute_counts(&revloop_store::CountsQuery {
            funnel: first_funnel.to_owned(),
            from: now
                .saturating_sub(DurationMs::from_days(i64::from(days)))
                .minute(),
            to: now.minute(),
            filter: Vec::new(),
        })?
        .is_empty())
}

/// Simulates history on one thread and ingests it in event time on this one.
fn backfill(
    config: &Config,
    scenario: &Scenario,
    ingestor: &revloop_server::ingest::Ingestor,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let (sender, receiver) = sync_channel::<Vec<u8>>(BACKFILL_CHUNKS_QUEUED_MAX);
    let config = config.clone();
    let scenario = scenario.clone();
    let producer = std::thread::spawn(move || {
        let mut chunk = Vec::with_capacity(BACKFILL_CHUNK_LINES * 400);
        let mut n_lines = 0;
        let mut line = String::new();
        let result = simulate(&config, &scenario, |event| {
            line.clear();
            write_segment_json(&event, &mut line);
            chunk.extend_from_slice(line.as_bytes());
            chunk.push(b'\n');
            n_lines += 1;
            if n_lines == BACKFILL_CHUNK_LINES {
                let _ = sender.send(std::mem::take(&mut chunk));
                n_lines = 0;
            }
        });
        let _ = sender.send(chunk);
        result
    });
    let lines = receiver.into_iter().flat_map(|chunk| {
        chunk
            .split(|b| *b == b'\n')
            .map(<[u8]>::to_vec)
            .collect::<Vec<_>>()
    });
    let summary =
        crate::replay::replay_lines(ingestor, lines.map(Ok), false, &mut |line, problem| {
            eprintln!("backfill line {line}: {problem}");
        })?;
    producer
        .join()
        .map_err(|_| anyhow::anyhow!("the simulator panicked"))??;
    eprintln!(
        "backfill done: {} events in {:.1}s ({} counted)",
        summary.n_lines,
        started.elapsed().as_secs_f64(),
        summary.outcome.counted
    );
    Ok(())
}

/// Runs one long simulation from `start`, sending each event once the wall clock reaches it.
fn stream_live(
    config: &Config,
    seed: u64,
    peak: f64,
    start: revloop_core::Timestamp,
    url: &str,
    write_key: &str,
) -> anyhow::Result<()> {
    let client = Client::new();
    let authorization = format!(
        "Basic {}",
        base64_encode(format!("{write_key}:").as_bytes())
    );
    let scenario = Scenario {
        conversion_swing: Default::default(),
        from: start,
        to: start.saturating_add(DurationMs::from_days(365)),
        seed,
        peak_sessions_per_minute: peak,
        incidents: Vec::new(),
    };
    let clock = SystemClock;
    let mut pending: Vec<String> = Vec::new();
    let mut last_flush = clock.now();
    let mut failure = None;
    let flush = |pending: &mut Vec<String>| -> anyhow::Result<()> {
        if pending.is_empty() {
            return Ok(());
        }
        let body = format!("{{\"batch\":[{}]}}", pending.join(","));
        pending.clear();
        let reply = client.post(
            url,
            &[
                ("Authorization", &authorization),
                ("Content-Type", "application/json"),
            ],
            body.as_bytes(),
        )?;
        if reply.status != 200 {
            eprintln!("live batch answered {}: {}", reply.status, reply.body);
        }
        Ok(())
    };
    simulate(config, &scenario, |event| {
        if failure.is_some() {
            return;
        }
        loop {
            let now = clock.now();
            if event.timestamp <= now {
                break;
            }
            if now.since(last_flush).millis() >= LIVE_FLUSH_MS {
                if let Err(err) = flush(&mut pending) {
                    failure = Some(err);
                    return;
                }
                last_flush = now;
            }
            let wait_ms = event.timestamp.since(now).millis().clamp(1, 200);
            std::thread::sleep(Duration::from_millis(wait_ms as u64));
        }
        let mut line = String::new();
        write_segment_json(&event, &mut line);
        pending.push(line);
        if pending.len() >= LIVE_BATCH_MESSAGES_MAX {
            if let Err(err) = flush(&mut pending) {
                failure = Some(err);
            }
            last_flush = clock.now();
        }
    })?;
    match failure {
        Some(err) => Err(err),
        None => Ok(()),
    }
}
