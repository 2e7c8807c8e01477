//! `revloop bench restart`: how long a restart takes before a detector of many series judges
//! live again, from its stored snapshots, against re-deriving it from the count history.
//!
//! It builds the detector of `bench detect` (funnels of 1,000 segments of a 5-stage funnel),
//! feeds it a warm-up, saves every funnel's snapshot to a fresh SQLite file as `serve` does,
//! then measures a restart: opening the file, loading and restoring each funnel's snapshot, and
//! judging the minutes since (the catch-up). The full re-derive is extrapolated from the
//! per-minute costs measured in the same run (learning in the warm-up, judging in the
//! catch-up), as `bench detect` does; at 100,000 series it takes minutes. The restored detector
//! is checked against the one that kept running: the same alert events and series reports.

use std::process::ExitCode;
use std::time::Instant;

use revloop_core::Config;
use revloop_core::Timestamp;
use revloop_core::alert::AlertEvent;
use revloop_core::detect::Detector;
use revloop_core::time::{MS_PER_MINUTE, Minute};
use revloop_store::{DetectorSnapshotRow, SqliteStore, Store};

use super::detect::{Layout, TrafficPool, feed, watch_segments};
use super::support::{TempDir, file_size};

pub fn run(series: usize, warmup_minutes: u64, catch_up_minutes: u64) -> anyhow::Result<ExitCode> {
    let Layout {
        per_segment,
        n_funnels,
        per_funnel,
        n_series,
        config,
    } = Layout::of(series)?;
    let pool = TrafficPool::new(42);
    let values: Vec<String> = (1..per_funnel)
        .map(|value| format!("v{value:03}"))
        .collect();
    let mut running = Detector::new(&config);
    let segments = watch_segments(&mut running, n_funnels, &values)?;
    // Monday 2026-11-02 00:00 in the funnels' time zone (New York).
    let start = Timestamp::parse_rfc3339("2026-11-02T05:00:00Z")?.minute();
    let mut events = Vec::new();

    eprintln!(
        "  {n_series} series: {n_funnels} funnels x {per_funnel} segments x {per_segment}; \
         warm-up of {warmup_minutes} minutes"
    );
    let warmup_started = Instant::now();
    for index in 0..warmup_minutes {
        feed(&mut running, &pool, &segments, index);
        running.close_minute(start.plus(index as i64), &mut events);
        if (index + 1) % (24 * 60) == 0 {
            eprintln!("  warm-up day {} done", (index + 1) / (24 * 60));
        }
    }
    let warmup_s = warmup_started.elapsed().as_secs_f64();

    // Save as `serve` does: one snapshot per funnel, each replaced in one transaction.
    let dir =
        TempDir(std::env::temp_dir().join(format!("revloop-bench-restart-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0)?;
    let path = dir.0.join("revloop.db");
    let store = SqliteStore::open(&path, &config)?;
    let saved_at = start.plus(warmup_minutes as i64).start();
    let (encode_s, save_s, n_bytes) = save_all(&store, &running, &config, saved_at)?;
    store.checkpoint()?;
    drop(store);
    let file_bytes = file_size(&path);

    // The restart: open, load and restore every funnel, then judge the minutes since.
    let restart_started = Instant::now();
    let store = SqliteStore::open(&path, &config)?;
    let opened = Instant::now();
    let (mut restored, load_s, restore_s) = restore_all(&store, &config)?;
    let restored_at = Instant::now();
    let catch_up = warmup_minutes..warmup_minutes + catch_up_minutes;
    let events_restored = judge(&mut restored, &pool, &segments, start, catch_up.clone());
    let catch_up_s = restored_at.elapsed().as_secs_f64();
    let restart_s = restart_started.elapsed().as_secs_f64();
    let open_s = (opened - restart_started).as_secs_f64();

    // The detector that kept running judges the same minutes: the restored one must agree.
    let events = judge(&mut running, &pool, &segments, start, catch_up);
    let identical = events == events_restored
        && (0..n_funnels).all(|funnel| running.report(funnel) == restored.report(funnel));

    let learn_minute_s = warmup_s / warmup_minutes.max(1) as f64;
    let judge_minute_s = catch_up_s / catch_up_minutes.max(1) as f64;
    let (rederive_s, history_minutes, learning_minutes, judged_in_catch_up) =
        rederive_estimate(&config, warmup_minutes, learn_minute_s, judge_minute_s);

    println!(
        "restart benchmark: {n_series} series = {n_funnels} funnels x {per_funnel} segments x \
         {per_segment} series; warm-up {warmup_minutes} min, catch-up {catch_up_minutes} min"
    );
    println!(
        "  snapshot:           {:.1} MiB in all ({:.0} bytes per series), SQLite file {:.1} MiB; \
         encode {:.2} s, save {:.2} s",
        n_bytes as f64 / (1 << 20) as f64,
        n_bytes as f64 / n_series as f64,
        file_bytes as f64 / (1 << 20) as f64,
        encode_s,
        save_s
    );
    println!(
        "  restart:            {restart_s:.2} s until live = open {open_s:.2} s + load {load_s:.2} s \
         + restore {restore_s:.2} s + catch-up {catch_up_s:.2} s ({catch_up_minutes} minutes \
         judged, counts fed from memory)"
    );
    println!(
        "  full re-derive:     {rederive_s:.0} s ({:.1} min) extrapolated: {} days of history at \
         {:.1} ms a learning minute (this warm-up) {}",
        rederive_s / 60.0,
        history_minutes / (24 * 60),
        learn_minute_s * 1e3,
        if judged_in_catch_up {
            format!(
                "for the first {} days, then {:.1} ms a judged minute (this catch-up)",
                learning_minutes / (24 * 60),
                judge_minute_s * 1e3
            )
        } else {
            "(the catch-up was still learning; a judged minute costs more)".to_owned()
        }
    );
    println!(
        "  restored = kept running over the catch-up: {} ({} alert events)",
        if identical { "identical" } else { "DIFFERENT" },
        events.len()
    );
    Ok(if identical {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Saves every funnel's snapshot as `serve` does, one replaced in one transaction each:
/// seconds encoding, seconds saving, bytes.
fn save_all(
    store: &SqliteStore,
    detector: &Detector,
    config: &Config,
    saved_at: Timestamp,
) -> anyhow::Result<(f64, f64, usize)> {
    let (mut encode_s, mut save_s, mut n_bytes) = (0.0, 0.0, 0_usize);
    for funnel in 0..config.funnels.len() {
        let started = Instant::now();
        let snapshot = detector
            .snapshot(config, funnel)
            .ok_or_else(|| anyhow::anyhow!("no snapshot of funnel {funnel}"))?;
        let encoded = Instant::now();
        n_bytes += snapshot.bytes.len();
        store.save_detector_snapshot(&DetectorSnapshotRow {
            funnel: config.funnels[funnel].id.clone(),
            next_minute: snapshot.next_minute,
            fingerprint: snapshot.fingerprint,
            saved_at,
            bytes: snapshot.bytes,
        })?;
        encode_s += (encoded - started).as_secs_f64();
        save_s += encoded.elapsed().as_secs_f64();
    }
    Ok((encode_s, save_s, n_bytes))
}

/// Loads and restores every funnel into a new detector: it, seconds loading, seconds restoring.
fn restore_all(store: &SqliteStore, config: &Config) -> anyhow::Result<(Detector, f64, f64)> {
    let (mut load_s, mut restore_s) = (0.0, 0.0);
    let mut restored = Detector::new(config);
    for funnel in 0..config.funnels.len() {
        let started = Instant::now();
        let row = store
            .load_detector_snapshot(&config.funnels[funnel].id)?
            .ok_or_else(|| anyhow::anyhow!("funnel {funnel}'s snapshot was not stored"))?;
        let loaded = Instant::now();
        restored
            .restore(config, funnel, &row.bytes)
            .map_err(|err| anyhow::anyhow!("funnel {funnel} did not restore: {err}"))?;
        load_s += (loaded - started).as_secs_f64();
        restore_s += loaded.elapsed().as_secs_f64();
    }
    Ok((restored, load_s, restore_s))
}

/// Feeds and judges the minutes `indices` (from `start`); their alert events.
fn judge(
    detector: &mut Detector,
    pool: &TrafficPool,
    segments: &[Vec<usize>],
    start: Minute,
    indices: std::ops::Range<u64>,
) -> Vec<AlertEvent> {
    let mut events = Vec::new();
    for index in indices {
        feed(detector, pool, segments, index);
        detector.close_minute(start.plus(index as i64), &mut events);
    }
    events
}

/// The full re-derive at the measured rates: seconds, the history's and the learning's
/// minutes, and whether the judged rate was measured (the catch-up was past the learning).
fn rederive_estimate(
    config: &Config,
    warmup_minutes: u64,
    learn_minute_s: f64,
    judge_minute_s: f64,
) -> (f64, i64, i64, bool) {
    let history_minutes = i64::from(config.detection.baseline_weeks) * 7 * 24 * 60
        + config.detection.learning.millis() / MS_PER_MINUTE
        + 24 * 60;
    let learning_minutes = config.detection.learning.millis() / MS_PER_MINUTE;
    let judged_in_catch_up = warmup_minutes as i64 >= learning_minutes;
    let rederive_s = if judged_in_catch_up {
        learning_minutes as f64 * learn_minute_s
            + (history_minutes - learning_minutes) as f64 * judge_minute_s
    } else {
        history_minutes as f64 * learn_minute_s
    };
    (
        rederive_s,
        history_minutes,
        learning_minutes,
        judged_in_catch_up,
    )
}
