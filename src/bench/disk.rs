//! `revloop bench disk`: disk use of a simulated shop, per million events and per day, with
//! per-minute counts as ingested and after the hourly rollup (`Store::roll_up_counts`).
//!
//! The shop: the example config with its first `dimensions` dimensions, the simulator's traffic
//! at `peak` sessions a minute at the busiest hour of the week, `days` days of history ingested
//! in event time through the same path as `replay` and the demo (SQLite, durability on). Sizes
//! are of the live pages (page size × (pages − free pages)) after a WAL checkpoint, so that
//! pages freed by the rollup, which later writes reuse, are not counted; the file size is
//! printed too. The dedup log holds a window of keys, which steady state keeps, so it is
//! counted as it is.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::mpsc::sync_channel;
use std::time::Instant;

use anyhow::Context;

use revloop_core::Config;
use revloop_core::time::DurationMs;
use revloop_server::{App, AppOptions, Clock, SystemClock};
use revloop_sim::segment_json::write_segment_json;
use revloop_sim::{Scenario, simulate};
use revloop_store::{SqliteStore, Store};

use super::support::{TempDir, file_size};

pub struct Setup {
    pub days: u32,
    pub peak_sessions_per_minute: f64,
    pub n_dimensions: usize,
}

struct Usage {
    live_bytes: u64,
    file_bytes: u64,
    stage_count_rows: i64,
}

fn usage(path: &Path) -> anyhow::Result<Usage> {
    let connection = rusqlite::Connection::open(path)?;
    connection.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    let page = |name: &str| -> anyhow::Result<i64> {
        Ok(connection.pragma_query_value(None, name, |row| row.get(0))?)
    };
    let live_pages = page("page_count")? - page("freelist_count")?;
    let stage_count_rows: i64 =
        connection.query_row("SELECT count(*) FROM stage_counts", [], |row| row.get(0))?;
    Ok(Usage {
        live_bytes: (live_pages * page("page_size")?) as u64,
        file_bytes: file_size(path) + file_size(&path.with_extension("db-wal")),
        stage_count_rows,
    })
}

pub fn run(setup: &Setup) -> anyhow::Result<ExitCode> {
    let text = super::ingest::config_with_dimensions(setup.n_dimensions);
    let config = Config::parse(&text).map_err(|err| anyhow::anyhow!("{err}"))?;
    let dir =
        TempDir(std::env::temp_dir().join(format!("revloop-bench-disk-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0)?;
    let path = dir.0.join("revloop.db");
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&path, &config)?);
    store.claim_ingest()?;
    let app = App::build(
        config.clone(),
        store.clone(),
        Arc::new(SystemClock),
        AppOptions::default(),
    );
    let now = SystemClock.now();
    let scenario = Scenario {
        conversion_swing: Default::default(),
        from: now.saturating_sub(DurationMs::from_days(i64::from(setup.days))),
        to: now,
        seed: 7,
        peak_sessions_per_minute: setup.peak_sessions_per_minute,
        incidents: Vec::new(),
    };
    let started = Instant::now();
    let (sender, receiver) = sync_channel::<Vec<u8>>(4);
    let producer = {
        let (config, scenario) = (config.clone(), scenario.clone());
        std::thread::spawn(move || {
            let mut chunk = Vec::new();
            let mut line = String::new();
            let result = simulate(&config, &scenario, |event| {
                line.clear();
                write_segment_json(&event, &mut line);
                chunk.extend_from_slice(line.as_bytes());
                chunk.push(b'\n');
                if chunk.len() > 2 << 20 {
                    let _ = sender.send(std::mem::take(&mut chunk));
                }
            });
            let _ = sender.send(chunk);
            result
        })
    };
    let lines = receiver.into_iter().flat_map(|chunk| {
        chunk
            .split(|b| *b == b'\n')
            .filter(|line| !line.is_empty())
            .map(<[u8]>::to_vec)
            .collect::<Vec<_>>()
    });
    let summary =
        crate::replay::replay_lines(&app.state.ingestor, lines.map(Ok), false, &mut |_, _| {})?;
    producer
        .join()
        .map_err(|_| anyhow::anyhow!("the simulator panicked"))?
        .map_err(|err| anyhow::anyhow!("{err:?}"))?;
    let ingest_s = started.elapsed().as_secs_f64();
    drop(app);
    let before = usage(&path).context("measuring before the rollup")?;
    let started = Instant::now();
    // Everything before the last hour rolled up, as the maintenance does past its horizon.
    let rollup = store.roll_up_counts(now.minute())?;
    let rollup_s = started.elapsed().as_secs_f64();
    let after = usage(&path).context("measuring after the rollup")?;
    let events = summary.outcome.counted as f64;
    let days = f64::from(setup.days);
    let mib = |bytes: u64| bytes as f64 / (1 << 20) as f64;
    println!(
        "shop: {} days, peak {} sessions/min, {} dimensions; {} events counted ({:.0}/day), ingested in {ingest_s:.1} s",
        setup.days,
        setup.peak_sessions_per_minute,
        setup.n_dimensions,
        summary.outcome.counted,
        events / days,
    );
    for (name, usage) in [("per-minute", &before), ("hourly", &after)] {
        println!(
            "{name:>10}: {:.1} MiB live ({:.1} MiB file), {} count rows; {:.1} MiB per million events, {:.2} MiB per day",
            mib(usage.live_bytes),
            mib(usage.file_bytes),
            usage.stage_count_rows,
            mib(usage.live_bytes) / (events / 1e6),
            mib(usage.live_bytes) / days,
        );
    }
    println!(
        "rollup: {} rows deleted in {rollup_s:.1} s; {:.1}% of the live bytes kept",
        rollup.rows_deleted,
        100.0 * after.live_bytes as f64 / before.live_bytes as f64
    );
    Ok(ExitCode::SUCCESS)
}
