//! Process counters for Prometheus `GET /metrics`: ingest outcomes, rejected requests and
//! rejected messages and notices by reason, late events, and group-commit latency and size.
//! Every `reason` label is a code from the closed set of `&'static str` the ingest path
//! writes, so the label's cardinality stays bounded whatever clients send. Plain atomics, rendered as text on demand.
//! It only counts: it never decides anything, and nothing reads it back to act on.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::http::lock::lock;

/// Upper bounds, in seconds, of the commit latency histogram buckets.
const COMMIT_BUCKETS_S: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

#[derive(Debug, Default)]
pub struct Telemetry {
    pub messages_counted: AtomicU64,
    pub messages_duplicate: AtomicU64,
    pub messages_late: AtomicU64,
    pub messages_ignored: AtomicU64,
    pub count_records: AtomicU64,
    rejects: Mutex<BTreeMap<&'static str, u64>>,
    /// Messages refused one by one (the rest of their request taken), by reason.
    messages_rejected: Mutex<BTreeMap<&'static str, u64>>,
    /// Messages counted with a part folded, cut or dropped, by reason.
    notices: Mutex<BTreeMap<&'static str, u64>>,
    commit_buckets: [AtomicU64; COMMIT_BUCKETS_S.len()],
    commit_count: AtomicU64,
    commit_sum_us: AtomicU64,
    commit_failures: AtomicU64,
    group_items_sum: AtomicU64,
    /// Wall-clock time of the last successful group commit, in Unix milliseconds; 0 before.
    last_commit_unix_ms: AtomicU64,
    pub queue_depth: AtomicU64,
    /// What the maintenance service's runs did (see `maintenance`).
    pub maintenance: std::sync::Arc<crate::maintenance::MaintenanceTelemetry>,
}

impl Telemetry {
    pub fn reject(&self, reason: &'static str) {
        *lock(&self.rejects).entry(reason).or_default() += 1;
    }

    /// Counts the messages a committed request refused one by one, and its notices, by reason.
    pub fn message_problems(
        &self,
        rejected: impl IntoIterator<Item = &'static str>,
        notices: impl IntoIterator<Item = &'static str>,
    ) {
        for (counters, reasons) in [
            (
                &self.messages_rejected,
                rejected.into_iter().collect::<Vec<_>>(),
            ),
            (&self.notices, notices.into_iter().collect()),
        ] {
            if reasons.is_empty() {
                continue;
            }
            let mut counters = lock(counters);
            for reason in reasons {
                *counters.entry(reason).or_default() += 1;
            }
        }
    }

    pub fn record_commit(&self, elapsed: std::time::Duration, n_items: usize, ok: bool) {
        if !ok {
            self.commit_failures.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let seconds = elapsed.as_secs_f64();
        for (bucket, bound) in self.commit_buckets.iter().zip(COMMIT_BUCKETS_S) {
            if seconds <= bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.commit_count.fetch_add(1, Ordering::Relaxed);
        // The operator's clock, for an alert on a writer that stopped committing: not the
        // engine's time (replay commits in event time), so the wall clock is right here.
        let unix_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_millis() as u64);
        self.last_commit_unix_ms.store(unix_ms, Ordering::Relaxed);
        self.commit_sum_us
            .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
        self.group_items_sum
            .fetch_add(n_items as u64, Ordering::Relaxed);
    }

    /// Wall-clock time of the last successful group commit, in Unix milliseconds; 0 before.
    pub fn last_commit_unix_ms(&self) -> u64 {
        self.last_commit_unix_ms.load(Ordering::Relaxed)
    }

    /// The SQLite dedup index's gauges and its early evictions, appended to [`Telemetry::render`]'s
    /// text. PostgreSQL keeps its keys in tables and has none of these.
    pub fn render_dedup(stats: &revloop_store::DedupStats, out: &mut String) {
        for (name, kind, help, value) in [
            (
                "revloop_dedup_keys",
                "gauge",
                "Dedup keys held in memory.",
                stats.n_keys,
            ),
            (
                "revloop_dedup_generations",
                "gauge",
                "Dedup generations held, a quarter of the dedup window each.",
                stats.n_generations,
            ),
            (
                "revloop_dedup_evicted_early_total",
                "counter",
                "Dedup generations forgotten before the window ended because dedup_keys_max was reached.",
                stats.n_evicted_early,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            let _ = writeln!(out, "{name} {value}");
        }
    }

    pub fn render(&self) -> String {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let n_rejected: u64 = lock(&self.messages_rejected).values().sum();
        let mut out = String::new();
        out.push_str("# HELP revloop_ingest_messages_total Messages by outcome; `rejected` counts messages refused one by one.\n");
        out.push_str("# TYPE revloop_ingest_messages_total counter\n");
        for (outcome, n) in [
            ("counted", get(&self.messages_counted)),
            ("duplicate", get(&self.messages_duplicate)),
            ("late", get(&self.messages_late)),
            ("ignored", get(&self.messages_ignored)),
            ("rejected", n_rejected),
        ] {
            let _ = writeln!(
                out,
                "revloop_ingest_messages_total{{outcome=\"{outcome}\"}} {n}"
            );
        }
        for (name, help, counters) in [
            (
                "revloop_ingest_messages_rejected_total",
                "Messages refused one by one (the rest of their request taken), by reason.",
                &self.messages_rejected,
            ),
            (
                "revloop_ingest_notices_total",
                "Messages counted with a part folded, cut or dropped, by reason.",
                &self.notices,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} counter");
            for (reason, n) in lock(counters).iter() {
                let _ = writeln!(out, "{name}{{reason=\"{reason}\"}} {n}");
            }
        }
        out.push_str("# HELP revloop_ingest_late_total Events older than the allowed lateness: accepted, tallied, not counted.\n");
        out.push_str("# TYPE revloop_ingest_late_total counter\n");
        let _ = writeln!(
            out,
            "revloop_ingest_late_total {}",
            get(&self.messages_late)
        );
        out.push_str(
            "# HELP revloop_ingest_count_records_total Pre-aggregated count records counted (new, not late).\n",
        );
        out.push_str("# TYPE revloop_ingest_count_records_total counter\n");
        let _ = writeln!(
            out,
            "revloop_ingest_count_records_total {}",
            get(&self.count_records)
        );
        out.push_str("# HELP revloop_ingest_rejected_total Rejected ingest requests by reason.\n");
        out.push_str("# TYPE revloop_ingest_rejected_total counter\n");
        for (reason, n) in lock(&self.rejects).iter() {
            let _ = writeln!(
                out,
                "revloop_ingest_rejected_total{{reason=\"{reason}\"}} {n}"
            );
        }
        out.push_str("# HELP revloop_last_commit_timestamp_seconds When the last group commit succeeded (0: none yet).\n");
        out.push_str("# TYPE revloop_last_commit_timestamp_seconds gauge\n");
        let _ = writeln!(
            out,
            "revloop_last_commit_timestamp_seconds {}",
            get(&self.last_commit_unix_ms) as f64 / 1000.0
        );
        out.push_str("# HELP revloop_commit_seconds Group commit latency.\n");
        out.push_str("# TYPE revloop_commit_seconds histogram\n");
        for (bucket, bound) in self.commit_buckets.iter().zip(COMMIT_BUCKETS_S) {
            let _ = writeln!(
                out,
                "revloop_commit_seconds_bucket{{le=\"{bound}\"}} {}",
                get(bucket)
            );
        }
        let count = get(&self.commit_count);
        let _ = writeln!(out, "revloop_commit_seconds_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(
            out,
            "revloop_commit_seconds_sum {}",
            get(&self.commit_sum_us) as f64 / 1e6
        );
        let _ = writeln!(out, "revloop_commit_seconds_count {count}");
        out.push_str("# HELP revloop_commit_failures_total Group commits that failed (their callers got 503).\n");
        out.push_str("# TYPE revloop_commit_failures_total counter\n");
        let _ = writeln!(
            out,
            "revloop_commit_failures_total {}",
            get(&self.commit_failures)
        );
        out.push_str("# HELP revloop_commit_items_total Messages and count records committed, for the mean group size.\n");
        out.push_str("# TYPE revloop_commit_items_total counter\n");
        let _ = writeln!(
            out,
            "revloop_commit_items_total {}",
            get(&self.group_items_sum)
        );
        out.push_str(
            "# HELP revloop_ingest_queue_depth Requests waiting for the group-commit writer.\n",
        );
        out.push_str("# TYPE revloop_ingest_queue_depth gauge\n");
        let _ = writeln!(out, "revloop_ingest_queue_depth {}", get(&self.queue_depth));
        out.push_str("# HELP revloop_store_bad_cells_total Count cells read as 0 because they held no valid integer.\n");
        out.push_str("# TYPE revloop_store_bad_cells_total counter\n");
        let _ = writeln!(
            out,
            "revloop_store_bad_cells_total {}",
            revloop_store::bad_cells_total()
        );
        self.maintenance.render(&mut out);
        out
    }
}
