//! A store that fails chosen calls, for tests (feature `faults`).
//!
//! [`FaultyStore`] wraps any [`Store`] and passes every call through, except those that match
//! an injected [`Fault`]: the Nth commit, reads of one funnel, a disk-full error. The failures
//! are the store's own error values (a busy or full SQLite database, an IO error) or a panic,
//! so callers see exactly what a real fault would give them. A dropped PostgreSQL connection
//! is not imitated here: tests drop a real one (`pg_terminate_backend`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use revloop_core::Timestamp;
use revloop_core::time::Minute;

use crate::{
    ChangeRow, CountsQuery, DedupStats, IgnoredNamesPage, IncidentCommit, IncidentQuery,
    IncidentRow, IncidentSnapshot, IngestGroup, IngestReceipt, LateCount, OutboxRow, ProblemPage,
    ProblemQuery, Role, SegmentMinuteCount, Store, StoreError, TimelineRow, TokenRecord,
};
use revloop_core::metrics::MinuteCount;

/// A method of [`Store`], by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Call {
    CommitIngest,
    MinuteCounts,
    LateCounts,
    SegmentMinuteCounts,
    DimensionValues,
    CreateToken,
    FindToken,
    ListTokens,
    RevokeToken,
    LoadIncidents,
    CommitIncidents,
    IncidentsVersion,
    Incident,
    ListIncidents,
    ResolvedIncidents,
    Outbox,
    InsertChange,
    Changes,
    ProblemLog,
    IgnoredNames,
    Ping,
    ClaimIngest,
    Checkpoint,
    RollUpCounts,
    OutboxStats,
    SaveDetectorSnapshot,
    LoadDetectorSnapshot,
    DiscardDetectorSnapshot,
    PostLedgerEntries,
    LedgerEntry,
    LedgerEntries,
    TrialBalance,
    AccountStatement,
    DeliveryCursor,
    PlanDeliveries,
    ClaimDeliveries,
    RecordAttempt,
    Deliveries,
    DeliveryAttempts,
    DeliveryStats,
}

const CALLS: usize = Call::DeliveryStats as usize + 1;

/// How an injected fault fails the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// SQLite's "database is locked" (transient: worth a retry).
    Busy,
    /// SQLite's "database or disk is full".
    DiskFull,
    /// An IO error with this text.
    Io(String),
    /// The call panics.
    Panic,
    /// The call waits this long, then goes through: a read stuck on a lock, a slow disk.
    Stall(std::time::Duration),
}

impl Failure {
    fn error(&self, call: Call) -> StoreError {
        let sqlite = |code: i32| {
            let error = rusqlite::ffi::Error::new(code);
            let text = format!("{error} (injected into {call:?})");
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(error, Some(text)))
        };
        match self {
            Failure::Busy => sqlite(rusqlite::ffi::SQLITE_BUSY),
            Failure::DiskFull => sqlite(rusqlite::ffi::SQLITE_FULL),
            Failure::Io(text) => StoreError::Io(text.clone()),
            Failure::Panic => panic!("fault injected into {call:?}"),
            Failure::Stall(_) => unreachable!("a stall is not an error"),
        }
    }
}

/// Which calls fail, and how.
#[derive(Debug, Clone)]
pub struct Fault {
    call: Call,
    funnel: Option<String>,
    after: u64,
    times: Option<u64>,
    failure: Failure,
}

impl Fault {
    /// Every call of `call` fails with `failure`, until narrowed.
    pub fn new(call: Call, failure: Failure) -> Fault {
        Fault {
            call,
            funnel: None,
            after: 0,
            times: None,
            failure,
        }
    }

    /// Only calls of this funnel (the count reads, the detector snapshots) match.
    pub fn funnel(mut self, funnel: &str) -> Fault {
        self.funnel = Some(funnel.to_owned());
        self
    }

    /// The first `n` matching calls pass; `after(2)` fails the third.
    pub fn after(mut self, n: u64) -> Fault {
        self.after = n;
        self
    }

    /// At most `n` matching calls fail; then the fault is spent.
    pub fn times(mut self, n: u64) -> Fault {
        self.times = Some(n);
        self
    }
}

struct Armed {
    fault: Fault,
    matched: u64,
    failed: u64,
}

/// A [`Store`] that fails the calls its injected faults match.
pub struct FaultyStore {
    inner: Arc<dyn Store>,
    faults: Mutex<Vec<Armed>>,
    calls: [AtomicU64; CALLS],
    failures: [AtomicU64; CALLS],
    /// Minutes of counts the detector's reads (`segment_minute_counts`) asked for, summed.
    minutes_read: AtomicU64,
}

impl FaultyStore {
    pub fn new(inner: Arc<dyn Store>) -> Arc<FaultyStore> {
        Arc::new(FaultyStore {
            inner,
            faults: Mutex::new(Vec::new()),
            calls: std::array::from_fn(|_| AtomicU64::new(0)),
            failures: std::array::from_fn(|_| AtomicU64::new(0)),
            minutes_read: AtomicU64::new(0),
        })
    }

    /// Arms a fault; it counts matching calls from now on.
    pub fn inject(&self, fault: Fault) {
        self.lock().push(Armed {
            fault,
            matched: 0,
            failed: 0,
        });
    }

    /// Disarms every fault.
    pub fn heal(&self) {
        self.lock().clear();
    }

    /// Calls of `call` so far, failed or not.
    pub fn calls(&self, call: Call) -> u64 {
        self.calls[call as usize].load(Ordering::SeqCst)
    }

    /// Minutes of counts read by `segment_minute_counts` calls so far (each call's span, per
    /// funnel): how much history a detector read.
    pub fn minutes_read(&self) -> u64 {
        self.minutes_read.load(Ordering::SeqCst)
    }

    /// Calls of `call` failed (or stalled) by a fault so far.
    pub fn failures(&self, call: Call) -> u64 {
        self.failures[call as usize].load(Ordering::SeqCst)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Armed>> {
        self.faults
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Counts the call and fails it if a fault says so.
    fn check(&self, call: Call, funnel: Option<&str>) -> Result<(), StoreError> {
        self.calls[call as usize].fetch_add(1, Ordering::SeqCst);
        let failure = {
            let mut faults = self.lock();
            let mut failure = None;
            for armed in faults.iter_mut() {
                let fault = &armed.fault;
                let matches =
                    fault.call == call && fault.funnel.as_deref().is_none_or(|f| funnel == Some(f));
                if !matches {
                    continue;
                }
                armed.matched += 1;
                let spent = fault.times.is_some_and(|times| armed.failed >= times);
                if failure.is_none() && armed.matched > fault.after && !spent {
                    armed.failed += 1;
                    failure = Some(fault.failure.clone());
                }
            }
            failure
        };
        let Some(failure) = failure else {
            return Ok(());
        };
        self.failures[call as usize].fetch_add(1, Ordering::SeqCst);
        match failure {
            Failure::Stall(wait) => {
                std::thread::sleep(wait);
                Ok(())
            }
            failure => Err(failure.error(call)),
        }
    }
}

impl Store for FaultyStore {
    fn commit_ingest(&self, group: &IngestGroup) -> Result<IngestReceipt, StoreError> {
        self.check(Call::CommitIngest, None)?;
        self.inner.commit_ingest(group)
    }

    fn minute_counts(&self, query: &CountsQuery) -> Result<Vec<MinuteCount>, StoreError> {
        self.check(Call::MinuteCounts, Some(&query.funnel))?;
        self.inner.minute_counts(query)
    }

    fn late_counts(&self, query: &CountsQuery) -> Result<Vec<LateCount>, StoreError> {
        self.check(Call::LateCounts, Some(&query.funnel))?;
        self.inner.late_counts(query)
    }

    fn segment_minute_counts(
        &self,
        funnel: &str,
        from: Minute,
        to: Minute,
    ) -> Result<Vec<SegmentMinuteCount>, StoreError> {
        self.check(Call::SegmentMinuteCounts, Some(funnel))?;
        let span = (to.index() - from.index()).max(0) as u64;
        self.minutes_read.fetch_add(span, Ordering::SeqCst);
        self.inner.segment_minute_counts(funnel, from, to)
    }

    fn dimension_values(&self) -> Result<Vec<(String, Vec<String>)>, StoreError> {
        self.check(Call::DimensionValues, None)?;
        self.inner.dimension_values()
    }

    fn create_token(
        &self,
        name: &str,
        role: Role,
        secret_sha256: [u8; 32],
        now: Timestamp,
    ) -> Result<TokenRecord, StoreError> {
        self.check(Call::CreateToken, None)?;
        self.inner.create_token(name, role, secret_sha256, now)
    }

    fn find_token(&self, secret_sha256: &[u8; 32]) -> Result<Option<TokenRecord>, StoreError> {
        self.check(Call::FindToken, None)?;
        self.inner.find_token(secret_sha256)
    }

    fn list_tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        self.check(Call::ListTokens, None)?;
        self.inner.list_tokens()
    }

    fn revoke_token(&self, id: i64, now: Timestamp) -> Result<bool, StoreError> {
        self.check(Call::RevokeToken, None)?;
        self.inner.revoke_token(id, now)
    }

    fn load_incidents(&self, resolved_max: usize) -> Result<IncidentSnapshot, StoreError> {
        self.check(Call::LoadIncidents, None)?;
        self.inner.load_incidents(resolved_max)
    }

    fn commit_incidents(&self, commit: &IncidentCommit) -> Result<i64, StoreError> {
        self.check(Call::CommitIncidents, None)?;
        self.inner.commit_incidents(commit)
    }

    fn incidents_version(&self) -> Result<i64, StoreError> {
        self.check(Call::IncidentsVersion, None)?;
        self.inner.incidents_version()
    }

    fn incident(&self, id: i64) -> Result<Option<(IncidentRow, Vec<TimelineRow>)>, StoreError> {
        self.check(Call::Incident, None)?;
        self.inner.incident(id)
    }

    fn list_incidents(&self, query: &IncidentQuery) -> Result<Vec<IncidentRow>, StoreError> {
        self.check(Call::ListIncidents, None)?;
        self.inner.list_incidents(query)
    }

    fn resolved_incidents(
        &self,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<IncidentRow>, StoreError> {
        self.check(Call::ResolvedIncidents, None)?;
        self.inner.resolved_incidents(from, to)
    }

    fn outbox(&self, after_id: i64, limit: usize) -> Result<Vec<OutboxRow>, StoreError> {
        self.check(Call::Outbox, None)?;
        self.inner.outbox(after_id, limit)
    }

    fn insert_change(&self, change: &ChangeRow) -> Result<(ChangeRow, bool), StoreError> {
        self.check(Call::InsertChange, None)?;
        self.inner.insert_change(change)
    }

    fn changes(
        &self,
        from: Timestamp,
        to: Timestamp,
        limit: usize,
    ) -> Result<Vec<ChangeRow>, StoreError> {
        self.check(Call::Changes, None)?;
        self.inner.changes(from, to, limit)
    }

    // Signals pass through unfaulted: no fault test drives them yet.
    fn upsert_signal(
        &self,
        signal: &crate::SignalRow,
    ) -> Result<(crate::SignalRow, bool), StoreError> {
        self.inner.upsert_signal(signal)
    }

    fn signals(
        &self,
        from: Timestamp,
        to: Timestamp,
        limit: usize,
    ) -> Result<Vec<crate::SignalRow>, StoreError> {
        self.inner.signals(from, to, limit)
    }

    fn problem_log(&self, query: &ProblemQuery) -> Result<ProblemPage, StoreError> {
        self.check(Call::ProblemLog, None)?;
        self.inner.problem_log(query)
    }

    fn ignored_names(&self, limit: usize) -> Result<IgnoredNamesPage, StoreError> {
        self.check(Call::IgnoredNames, None)?;
        self.inner.ignored_names(limit)
    }

    fn ping(&self) -> Result<(), StoreError> {
        self.check(Call::Ping, None)?;
        self.inner.ping()
    }

    fn claim_ingest(&self) -> Result<(), StoreError> {
        self.check(Call::ClaimIngest, None)?;
        self.inner.claim_ingest()
    }

    fn dedup_stats(&self) -> Option<DedupStats> {
        self.inner.dedup_stats()
    }

    fn checkpoint(&self) -> Result<(), StoreError> {
        self.check(Call::Checkpoint, None)?;
        self.inner.checkpoint()
    }

    fn roll_up_counts(&self, before: Minute) -> Result<crate::Rollup, StoreError> {
        self.check(Call::RollUpCounts, None)?;
        self.inner.roll_up_counts(before)
    }

    fn outbox_stats(&self) -> Result<crate::OutboxStats, StoreError> {
        self.check(Call::OutboxStats, None)?;
        self.inner.outbox_stats()
    }

    fn save_detector_snapshot(
        &self,
        snapshot: &crate::DetectorSnapshotRow,
    ) -> Result<bool, StoreError> {
        self.check(Call::SaveDetectorSnapshot, Some(&snapshot.funnel))?;
        self.inner.save_detector_snapshot(snapshot)
    }

    fn load_detector_snapshot(
        &self,
        funnel: &str,
    ) -> Result<Option<crate::DetectorSnapshotRow>, StoreError> {
        self.check(Call::LoadDetectorSnapshot, Some(funnel))?;
        self.inner.load_detector_snapshot(funnel)
    }

    fn discard_detector_snapshot(&self, funnel: &str) -> Result<bool, StoreError> {
        self.check(Call::DiscardDetectorSnapshot, Some(funnel))?;
        self.inner.discard_detector_snapshot(funnel)
    }

    fn post_ledger_entries(
        &self,
        chart: &revloop_core::ledger::Chart,
        entries: &[revloop_core::ledger::JournalEntry],
        now: Timestamp,
    ) -> Result<Vec<crate::PostOutcome>, StoreError> {
        self.check(Call::PostLedgerEntries, None)?;
        self.inner.post_ledger_entries(chart, entries, now)
    }

    fn ledger_entry(&self, id: &str) -> Result<Option<crate::LedgerRow>, StoreError> {
        self.check(Call::LedgerEntry, None)?;
        self.inner.ledger_entry(id)
    }

    fn ledger_entries(
        &self,
        query: &crate::LedgerQuery,
    ) -> Result<Vec<crate::LedgerRow>, StoreError> {
        self.check(Call::LedgerEntries, None)?;
        self.inner.ledger_entries(query)
    }

    fn trial_balance(&self) -> Result<Vec<revloop_core::ledger::Balance>, StoreError> {
        self.check(Call::TrialBalance, None)?;
        self.inner.trial_balance()
    }

    fn account_statement(
        &self,
        query: &crate::StatementQuery,
    ) -> Result<Vec<crate::StatementLine>, StoreError> {
        self.check(Call::AccountStatement, None)?;
        self.inner.account_statement(query)
    }

    fn delivery_cursor(&self) -> Result<i64, StoreError> {
        self.check(Call::DeliveryCursor, None)?;
        self.inner.delivery_cursor()
    }

    fn plan_deliveries(
        &self,
        through_outbox_id: i64,
        deliveries: &[crate::NewDelivery],
    ) -> Result<usize, StoreError> {
        self.check(Call::PlanDeliveries, None)?;
        self.inner.plan_deliveries(through_outbox_id, deliveries)
    }

    /// Matches a fault on the channel, as reads match one on the funnel.
    fn claim_deliveries(
        &self,
        channel: &str,
        node: &str,
        now: Timestamp,
        lease: revloop_core::time::DurationMs,
        limit: usize,
    ) -> Result<Vec<crate::DeliveryRow>, StoreError> {
        self.check(Call::ClaimDeliveries, Some(channel))?;
        self.inner
            .claim_deliveries(channel, node, now, lease, limit)
    }

    fn record_attempt(&self, attempt: &crate::AttemptRecord) -> Result<bool, StoreError> {
        self.check(Call::RecordAttempt, None)?;
        self.inner.record_attempt(attempt)
    }

    fn deliveries(
        &self,
        query: &crate::DeliveryQuery,
    ) -> Result<Vec<crate::DeliveryRow>, StoreError> {
        self.check(Call::Deliveries, None)?;
        self.inner.deliveries(query)
    }

    fn delivery_attempts(
        &self,
        incident: i64,
        limit: usize,
    ) -> Result<Vec<crate::AttemptRow>, StoreError> {
        self.check(Call::DeliveryAttempts, None)?;
        self.inner.delivery_attempts(incident, limit)
    }

    fn delivery_stats(&self) -> Result<Vec<crate::ChannelDeliveryStats>, StoreError> {
        self.check(Call::DeliveryStats, None)?;
        self.inner.delivery_stats()
    }

    fn expedite_deliveries(
        &self,
        channel: &str,
        now: revloop_core::Timestamp,
    ) -> Result<usize, StoreError> {
        self.inner.expedite_deliveries(channel, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SqliteStore;
    use revloop_core::Config;

    fn store(dir: &tempfile::TempDir) -> Arc<FaultyStore> {
        let config = Config::parse(Config::example_toml()).expect("the example config parses");
        let sqlite = SqliteStore::open(&dir.path().join("faults.db"), &config).expect("opens");
        FaultyStore::new(Arc::new(sqlite))
    }

    #[test]
    fn the_nth_call_fails_as_many_times_as_asked() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir);
        store.inject(Fault::new(Call::Ping, Failure::Busy).after(1).times(2));
        assert!(store.ping().is_ok());
        let err = store.ping().unwrap_err();
        assert!(err.is_transient(), "{err}");
        assert!(store.ping().is_err());
        assert!(store.ping().is_ok());
        assert_eq!(
            (store.calls(Call::Ping), store.failures(Call::Ping)),
            (4, 2)
        );
    }

    #[test]
    fn a_funnel_fault_fails_only_that_funnels_reads() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir);
        store.inject(Fault::new(Call::SegmentMinuteCounts, Failure::DiskFull).funnel("a"));
        let (from, to) = (Minute::new(0), Minute::new(1));
        let err = store.segment_minute_counts("a", from, to).unwrap_err();
        assert!(!err.is_transient());
        assert!(err.to_string().contains("full"), "{err}");
        // Another funnel passes the fault and reaches the real store.
        let funnel = Config::parse(Config::example_toml()).unwrap().funnels[0]
            .id
            .clone();
        store
            .segment_minute_counts(&funnel, from, to)
            .expect("not injected");
        store.inject(Fault::new(Call::SegmentMinuteCounts, Failure::Busy).funnel(&funnel));
        assert!(store.segment_minute_counts(&funnel, from, to).is_err());
        store.heal();
        store
            .segment_minute_counts(&funnel, from, to)
            .expect("healed");
    }
}
