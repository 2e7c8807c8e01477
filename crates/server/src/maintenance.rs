//! The maintenance service: keeps the disk bounded while the server runs. Every
//! `retention.maintenance_every` it rolls per-minute counts older than
//! `retention.minute_counts_for` up to hourly (`Store::roll_up_counts`, in short transactions
//! that group commits interleave with) and checkpoints the write-ahead log
//! (`Store::checkpoint`; PostgreSQL manages its own). Expired dedup keys are deleted by the
//! store when the dedup window rotates at a commit, and the problem log is bounded by count,
//! so neither needs a pass here.
//!
//! The store work runs on a blocking thread, never under a lock an async handler takes. What
//! each run did is counted in [`MaintenanceTelemetry`] for `/metrics`.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use revloop_core::{Config, Timestamp};
use revloop_store::{Store, StoreError};

use crate::Clock;

/// How long a failed run waits before it tries again, at least (and at most its interval).
const RETRY_MS_MIN: i64 = 60_000;

/// What the maintenance runs did, for `/metrics`.
#[derive(Debug, Default)]
pub struct MaintenanceTelemetry {
    runs_ok: AtomicU64,
    runs_failed: AtomicU64,
    rows_deleted: AtomicU64,
    /// Wall-clock time of the last successful run, in Unix milliseconds; 0 before.
    last_success_unix_ms: AtomicU64,
    /// Counts of minutes before this (a minute index) are kept hourly; 0 before the first run.
    hourly_before_minute: AtomicI64,
}

/// What one run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunReport {
    pub rows_deleted: u64,
    pub hourly_before: Option<revloop_core::time::Minute>,
}

/// One maintenance run at `now`. Blocking: call it on a blocking thread.
pub fn run_once(
    store: &dyn Store,
    config: &Config,
    now: Timestamp,
) -> Result<RunReport, StoreError> {
    let rollup = store.roll_up_counts(config.retention.hourly_before(now))?;
    store.checkpoint()?;
    Ok(RunReport {
        rows_deleted: rollup.rows_deleted,
        hourly_before: rollup.hourly_before,
    })
}

impl MaintenanceTelemetry {
    fn record(&self, outcome: &Result<RunReport, String>) {
        match outcome {
            Ok(report) => {
                self.runs_ok.fetch_add(1, Ordering::Relaxed);
                self.rows_deleted
                    .fetch_add(report.rows_deleted, Ordering::Relaxed);
                if let Some(before) = report.hourly_before {
                    self.hourly_before_minute
                        .fetch_max(before.index(), Ordering::Relaxed);
                }
                // The operator's clock, as for the last commit: an alert compares it with
                // Prometheus's `time()`.
                let unix_ms = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |since| since.as_millis() as u64);
                self.last_success_unix_ms.store(unix_ms, Ordering::Relaxed);
            }
            Err(_) => {
                self.runs_failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The maintenance metrics, appended to `/metrics`.
    pub fn render(&self, out: &mut String) {
        use std::fmt::Write;
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        out.push_str("# HELP revloop_maintenance_runs_total Maintenance runs (hourly rollup, WAL checkpoint) by outcome.\n");
        out.push_str("# TYPE revloop_maintenance_runs_total counter\n");
        for (outcome, n) in [
            ("ok", get(&self.runs_ok)),
            ("failed", get(&self.runs_failed)),
        ] {
            let _ = writeln!(
                out,
                "revloop_maintenance_runs_total{{outcome=\"{outcome}\"}} {n}"
            );
        }
        out.push_str("# HELP revloop_maintenance_rows_deleted_total Per-minute count rows rolled up into their hour and deleted.\n");
        out.push_str("# TYPE revloop_maintenance_rows_deleted_total counter\n");
        let _ = writeln!(
            out,
            "revloop_maintenance_rows_deleted_total {}",
            get(&self.rows_deleted)
        );
        out.push_str("# HELP revloop_maintenance_last_success_timestamp_seconds When a maintenance run last succeeded (0: none yet).\n");
        out.push_str("# TYPE revloop_maintenance_last_success_timestamp_seconds gauge\n");
        let _ = writeln!(
            out,
            "revloop_maintenance_last_success_timestamp_seconds {}",
            get(&self.last_success_unix_ms) as f64 / 1000.0
        );
        let before = self.hourly_before_minute.load(Ordering::Relaxed);
        out.push_str("# HELP revloop_counts_hourly_before_timestamp_seconds Counts before this time are kept per hour, not per minute (0: none yet).\n");
        out.push_str("# TYPE revloop_counts_hourly_before_timestamp_seconds gauge\n");
        let _ = writeln!(
            out,
            "revloop_counts_hourly_before_timestamp_seconds {}",
            before.saturating_mul(60)
        );
    }
}

/// Runs maintenance until the process ends: once at start, then every
/// `retention.maintenance_every` (a failed run is tried again after a minute).
pub async fn run(
    config: Arc<Config>,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    telemetry: Arc<MaintenanceTelemetry>,
) {
    let every_ms = config.retention.maintenance_every.millis().max(1);
    loop {
        let now = clock.now();
        let (config_run, store_run) = (config.clone(), store.clone());
        let outcome = tokio::task::spawn_blocking(move || {
            run_once(store_run.as_ref(), &config_run, now).map_err(|err| err.to_string())
        })
        .await
        .unwrap_or_else(|panic| Err(format!("maintenance panicked: {panic}")));
        telemetry.record(&outcome);
        let wait_ms = match &outcome {
            Ok(report) => {
                if report.rows_deleted > 0 {
                    tracing::info!(
                        rows = report.rows_deleted,
                        "maintenance rolled old per-minute counts up to hourly"
                    );
                }
                every_ms
            }
            Err(err) => {
                tracing::warn!(error = %err, "maintenance failed; trying again");
                RETRY_MS_MIN.min(every_ms)
            }
        };
        tokio::time::sleep(std::time::Duration::from_millis(wait_ms as u64)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_metrics_say_what_the_runs_did() {
        let telemetry = MaintenanceTelemetry::default();
        telemetry.record(&Ok(RunReport {
            rows_deleted: 7,
            hourly_before: Some(revloop_core::time::Minute::new(120)),
        }));
        telemetry.record(&Err("disk full".into()));
        let mut text = String::new();
        telemetry.render(&mut text);
        for line in [
            "revloop_maintenance_runs_total{outcome=\"ok\"} 1",
            "revloop_maintenance_runs_total{outcome=\"failed\"} 1",
            "revloop_maintenance_rows_deleted_total 7",
            "revloop_counts_hourly_before_timestamp_seconds 7200",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
        }
        assert!(
            !text.contains("revloop_maintenance_last_success_timestamp_seconds 0\n"),
            "{text}"
        );
    }
}
