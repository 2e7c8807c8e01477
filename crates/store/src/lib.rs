//! revloop's persistence: one [`Store`] trait, with SQLite (the default, embedded) and
//! PostgreSQL (for several nodes sharing one database) implementations.
//!
//! The store knows SQL and nothing about HTTP or JSON wire formats. It owns three invariants:
//!
//! - **Atomic ingest.** [`Store::commit_ingest`] records a whole group of messages (many HTTP
//!   requests, group-committed) in one transaction: their dedup keys and every count they add.
//!   Either all of it is durable when it returns `Ok`, or none of it is.
//! - **Exactly once.** A dedup key is remembered for at least the configured window, across
//!   restarts; a message whose key is remembered adds nothing.
//! - **Stable folding.** Dimension values admitted under a cardinality cap are persisted, so a
//!   value folds the same way after a restart.
//! - **A bounded problem log.** The problems and ignored names a group carries are written in
//!   its transaction, and the log keeps the newest [`PROBLEM_LOG_ENTRIES_MAX`] entries and
//!   [`IGNORED_NAMES_MAX`] names (see `problems`).
//! - **Books that only grow.** Ledger entries are validated by
//!   `revloop_core::ledger::validate_revenue_transaction` inside the call that writes them,
//!   posted all or nothing per call, never updated or deleted, reversed at most once, and
//!   booked once per id (see `ledger`).

use revloop_core::Timestamp;
use revloop_core::change::ChangeKind;
use revloop_core::funnel::CallKind;
use revloop_core::incident::{IncidentSeverity, IncidentState};
use revloop_core::ingest::{Cell, StageCount};
use revloop_core::metrics::MinuteCount;
use revloop_core::time::Minute;

#[macro_use]
mod store_impl;

mod bad_cells;
mod dedup;
pub mod deliveries;
#[cfg(feature = "faults")]
pub mod faults;
mod kinds;
pub mod ledger;
mod migrations;
mod plan;
mod pool;
pub mod postgres;
mod problems;
pub mod record;
mod retention;
pub mod signals;
mod snapshots;
pub mod sqlite;

pub use bad_cells::bad_cells_total;
pub use dedup::DedupStats;
pub use deliveries::{
    AttemptRecord, AttemptRow, ChannelDeliveryStats, DELIVERY_PAGE_MAX, DELIVERY_PLAN_MAX,
    DELIVERY_STATUS_BYTES_MAX, DeliveryQuery, DeliveryRow, DeliveryState, NewDelivery,
};
pub use kinds::OutboxKind;
pub use ledger::{
    LEDGER_PAGE_MAX, LEDGER_POST_ENTRIES_MAX, LedgerQuery, LedgerRow, PostOutcome, StatementLine,
    StatementQuery,
};
pub use postgres::{PostgresOptions, PostgresStore};
pub use problems::{
    IGNORED_NAME_BYTES_MAX, IGNORED_NAMES_MAX, IgnoredNameRow, IgnoredNamesPage,
    PROBLEM_LOG_ENTRIES_MAX, PROBLEM_PAGE_MAX, ProblemOutcome, ProblemPage, ProblemQuery,
    ProblemRow,
};
pub use record::{
    AlertWatermark, decode_incident_body, decode_incident_meta, encode_incident_body,
    encode_incident_meta,
};
pub use retention::{OutboxStats, Rollup};
pub use revloop_core::incident::TimelineKind;
pub use signals::{SIGNAL_PAGE_MAX, SignalRow};
pub use snapshots::{DetectorSnapshotRow, SNAPSHOT_BYTES_MAX, SNAPSHOT_CHUNK_BYTES};
pub use sqlite::SqliteStore;

/// A row limit as SQL takes it (both dialects bind `LIMIT` as a 64-bit integer).
pub(crate) fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("postgres: {0}")]
    Postgres(#[from] ::postgres::Error),
    #[error(
        "the database was written by a newer revloop (schema version {found}, this build knows {known})"
    )]
    SchemaTooNew { found: i64, known: i64 },
    #[error("unknown funnel `{0}`")]
    UnknownFunnel(String),
    #[error("unknown dimension `{0}`")]
    UnknownDimension(String),
    #[error(
        "another revloop process is ingesting into {0}; one process ingests into a SQLite file at a time (use PostgreSQL for several nodes)"
    )]
    Busy(String),
    #[error("{0}")]
    Io(String),
    /// Every pooled connection stayed busy for the pool's whole wait.
    #[error("no free database connection within {waited_ms} ms (all {size_max} are busy)")]
    PoolTimeout { size_max: usize, waited_ms: u64 },
    /// Opening a database connection (socket, TLS, authentication) took longer than allowed.
    #[error("no database connection within {waited_ms} ms")]
    ConnectTimeout { waited_ms: u64 },
    /// A database URL or option that cannot be used (a malformed URL, a schema name outside
    /// the rules, a server certificate the URL's `sslmode` refuses), with the reason.
    #[error("{0}")]
    Settings(String),
    /// Another node (or process) committed incident state since this one loaded it: reload
    /// and apply the input again.
    #[error("incident state moved on: expected version {expected}, found {found}")]
    Conflict { expected: i64, found: i64 },
    /// Count records (by index in the group) whose id is remembered with a different body, or
    /// appears earlier in the group with one. Nothing of the group was written.
    #[error("{} count record(s) repeat a stored id with a different body", items.len())]
    CountConflict { items: Vec<usize> },
    /// A ledger entry (by index in the call) was refused; nothing of the call was written.
    #[error("ledger entry {index}: {error}")]
    Ledger {
        index: usize,
        error: revloop_core::ledger::LedgerError,
    },
}

impl StoreError {
    /// Whether the same call may well succeed if tried again shortly: every connection busy,
    /// SQLite busy or locked, a PostgreSQL serialization failure or deadlock, a statement
    /// cancelled at its time limit, a server shutting down or not yet accepting connections, or
    /// a connection lost or not opened in time. A caller answers such an
    /// error with 503 and Retry-After rather than 500.
    pub fn is_transient(&self) -> bool {
        use ::postgres::error::SqlState;
        match self {
            StoreError::PoolTimeout { .. } | StoreError::ConnectTimeout { .. } => true,
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(err, _)) => matches!(
                err.code,
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
            ),
            StoreError::Postgres(err) => match err.code() {
                Some(code) => [
                    SqlState::T_R_SERIALIZATION_FAILURE,
                    SqlState::T_R_DEADLOCK_DETECTED,
                    SqlState::ADMIN_SHUTDOWN,
                    SqlState::CRASH_SHUTDOWN,
                    SqlState::CANNOT_CONNECT_NOW,
                    SqlState::TOO_MANY_CONNECTIONS,
                    // A statement cancelled at `statement_timeout`, a lock not had in time.
                    SqlState::QUERY_CANCELED,
                    SqlState::LOCK_NOT_AVAILABLE,
                ]
                .contains(code),
                // No SQLSTATE: the client lost or could not open its connection.
                None => err.is_closed() || err.as_db_error().is_none(),
            },
            _ => false,
        }
    }
}

/// One accepted message (or pre-aggregated count record) on its way into the store.
#[derive(Debug, Clone, PartialEq)]
pub struct IngestItem {
    /// The 63-bit key it is deduplicated by; see `revloop_core::funnel::dedup_key`.
    pub dedup_key: i64,
    /// What it adds to the per-minute counts. Empty for calls no funnel listens to, which are
    /// still remembered for dedup.
    pub cells: Vec<(Cell, StageCount)>,
    /// Older than the allowed lateness: the cells are tallied as late instead of counted.
    pub late: bool,
    /// The call and event name of a message no funnel stage listens to (`cells` empty), so
    /// that the ignored-names list counts it if it is new. `None` for everything else.
    pub ignored_name: Option<(CallKind, String)>,
    /// For a pre-aggregated count record with an `id`: what it says. Its dedup key is the id's;
    /// the same key with a different body is a conflict, not a duplicate.
    pub count_body: Option<CountBody>,
}

/// The id of a pre-aggregated count record and a hash of everything else it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CountBody {
    /// The sender's id, as sent (for naming it in a conflict).
    pub id: String,
    /// See `revloop_core::funnel::dedup_key`; equal bodies, equal keys.
    pub body_key: i64,
}

/// A group of items committed in one transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct IngestGroup {
    /// The ingest clock: the receive time when live, the event-time watermark in replay. It
    /// drives the rotation of the dedup window.
    pub now: Timestamp,
    pub items: Vec<IngestItem>,
    /// The requests' rejected messages and notices, for the problem log. A group may carry
    /// these and no items (a request whose every message was rejected).
    pub problems: Vec<ProblemRow>,
}

/// What became of each item of a group, in order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IngestReceipt {
    /// `false` where the item's dedup key was already remembered (or appeared earlier in the
    /// same group): it added nothing.
    pub is_new: Vec<bool>,
}

/// A read of per-minute counts of one funnel, summed over the segments matching `filter`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CountsQuery {
    pub funnel: String,
    pub from: Minute,
    pub to: Minute,
    /// `(dimension name, value)` pairs that must all hold. Empty: every segment.
    pub filter: Vec<(String, String)>,
}

/// Late events of one stage in one minute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LateCount {
    pub stage: usize,
    pub minute: Minute,
    pub n_events: i64,
}

/// Per-minute counts of one stage of one segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentMinuteCount {
    /// `None` for all segments together; otherwise the one (dimension name, value) of a
    /// single-dimension segment.
    pub segment: Option<(String, String)>,
    /// Index of the stage in the funnel's config.
    pub stage: usize,
    pub minute: Minute,
    /// Only the events: the detector judges conversion, so its read never touches the revenue
    /// columns, and a bad revenue cell cannot reach it.
    pub n_events: i64,
}

/// What a token may do. Ordered: each role can do what the ones before it can, except that
/// `Ingest` only ingests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    Ingest,
    Viewer,
    Responder,
    Admin,
}

impl Role {
    pub fn parse(text: &str) -> Option<Role> {
        Some(match text {
            "ingest" => Role::Ingest,
            "viewer" => Role::Viewer,
            "responder" => Role::Responder,
            "admin" => Role::Admin,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Ingest => "ingest",
            Role::Viewer => "viewer",
            Role::Responder => "responder",
            Role::Admin => "admin",
        }
    }

    /// Whether a token of this role may act with `needed`.
    pub fn allows(self, needed: Role) -> bool {
        match needed {
            Role::Ingest => matches!(self, Role::Ingest | Role::Admin),
            _ => self != Role::Ingest && self >= needed,
        }
    }
}

/// A stored API token or write key. Only the SHA-256 of the secret is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    pub id: i64,
    pub name: String,
    pub role: Role,
    pub secret_sha256: [u8; 32],
    pub created_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
}

/// An incident as stored: the columns that lists and reports filter and sort on, and the
/// engine's state of it as JSON (`body`, without its timeline, which is kept row by row). The
/// body is written and read only through [`encode_incident_body`] and [`decode_incident_body`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncidentRow {
    pub id: i64,
    pub funnel: String,
    pub stage: String,
    pub severity: IncidentSeverity,
    pub state: IncidentState,
    pub opened_at: Timestamp,
    pub acknowledged_at: Option<Timestamp>,
    pub mitigated_at: Option<Timestamp>,
    pub resolved_at: Option<Timestamp>,
    pub body: String,
}

/// One entry of an incident's timeline. The timeline is append-only: rows are inserted, never
/// updated or deleted (the schema refuses both).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimelineRow {
    pub incident: i64,
    /// 0, 1, 2, ... within the incident, with no gaps.
    pub seq: i64,
    pub at: Timestamp,
    pub actor: String,
    pub kind: TimelineKind,
    pub text: String,
}

/// Something the incident engine owes the outside (a page, a breach), in a durable outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    /// Assigned by the store on commit, increasing; ignored in an [`IncidentCommit`].
    pub id: i64,
    pub incident: i64,
    pub at: Timestamp,
    pub kind: OutboxKind,
    /// The effect as JSON.
    pub body: String,
}

/// One step of the incident engine, committed atomically: the incidents it changed, the
/// timeline entries it appended, the effects it queued, and its own state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncidentCommit {
    /// The version this step was computed from; the commit fails with
    /// [`StoreError::Conflict`] (and writes nothing) if the stored version differs.
    pub expected_version: i64,
    /// The engine's own state (next id, clocks) as JSON, written by [`encode_incident_meta`].
    pub meta: String,
    /// Inserted or replaced by id.
    pub incidents: Vec<IncidentRow>,
    /// Appended; an `(incident, seq)` already stored is an error.
    pub timeline: Vec<TimelineRow>,
    pub outbox: Vec<OutboxRow>,
}

/// The incident engine's state as last committed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IncidentSnapshot {
    /// 0 before the first commit; each commit adds one.
    pub version: i64,
    /// `None` before the first commit.
    pub meta: Option<String>,
    /// Every open incident and the most recently opened resolved ones, by id.
    pub incidents: Vec<IncidentRow>,
    /// The timelines of those incidents, by incident then seq.
    pub timeline: Vec<TimelineRow>,
}

/// A page of incidents, newest (highest id) first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncidentQuery {
    /// `Some(true)`: not resolved; `Some(false)`: resolved; `None`: both.
    pub open: Option<bool>,
    pub funnel: Option<String>,
    /// Only ids below this (for paging).
    pub before_id: Option<i64>,
    pub limit: usize,
}

/// A change to the shop that may explain an incident: a deploy, an experiment, a price, ...
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeRow {
    /// Assigned by the store; ignored by [`Store::insert_change`].
    pub id: i64,
    /// When the change took effect.
    pub at: Timestamp,
    pub kind: ChangeKind,
    pub summary: String,
    pub detail: String,
    pub funnel: Option<String>,
    pub stage: Option<String>,
    /// (dimension, value).
    pub segment: Option<(String, String)>,
    pub author: String,
    /// The sender's own id for the change; a second insert with the same one returns the first
    /// row and stores nothing (exactly once for retried posts).
    pub external_id: Option<String>,
    pub recorded_at: Timestamp,
}

pub trait Store: Send + Sync + 'static {
    /// Records a group atomically and durably; see the crate docs. Fails with
    /// [`StoreError::CountConflict`], writing nothing, if a count record's id is remembered
    /// with a different body: the caller drops the requests holding those items and retries.
    fn commit_ingest(&self, group: &IngestGroup) -> Result<IngestReceipt, StoreError>;

    /// Per-minute counts of the funnel's stages (stage = index in the config), summed over the
    /// segments matching the query's filter. Minutes with no events are absent.
    fn minute_counts(&self, query: &CountsQuery) -> Result<Vec<MinuteCount>, StoreError>;

    /// Late events of the funnel's stages in `[from, to)`, summed over the segments matching
    /// the query's filter, ordered by minute and stage. Late events are kept per segment since
    /// schema version 3; a filtered read does not see those stored before.
    fn late_counts(&self, query: &CountsQuery) -> Result<Vec<LateCount>, StoreError>;

    /// Per-minute counts in `[from, to)` of the funnel's all-segments series and of every
    /// single-dimension segment (one dimension = one value), ordered by minute. Minutes with no
    /// events are absent. This is what the anomaly detector reads.
    ///
    /// Within a minute, rows come all segments first, then by dimension in config order and
    /// value (byte order), then by stage. Segments of dimensions no longer configured, and full
    /// combinations of two or more dimensions, are left out; with one configured dimension its
    /// full combination is its single-dimension segment, returned once.
    fn segment_minute_counts(
        &self,
        funnel: &str,
        from: Minute,
        to: Minute,
    ) -> Result<Vec<SegmentMinuteCount>, StoreError>;

    /// Values seen so far for each configured dimension, for filters and drill-down.
    fn dimension_values(&self) -> Result<Vec<(String, Vec<String>)>, StoreError>;

    fn create_token(
        &self,
        name: &str,
        role: Role,
        secret_sha256: [u8; 32],
        now: Timestamp,
    ) -> Result<TokenRecord, StoreError>;

    /// The live (not revoked) token whose secret hashes to this.
    fn find_token(&self, secret_sha256: &[u8; 32]) -> Result<Option<TokenRecord>, StoreError>;

    fn list_tokens(&self) -> Result<Vec<TokenRecord>, StoreError>;

    /// Returns whether a live token with this id existed.
    fn revoke_token(&self, id: i64, now: Timestamp) -> Result<bool, StoreError>;

    /// Every open incident and the `resolved_max` most recent (highest id) resolved ones, with
    /// their timelines, and the engine's meta and version.
    fn load_incidents(&self, resolved_max: usize) -> Result<IncidentSnapshot, StoreError>;

    /// Commits one step of the incident engine atomically; returns the new version. Fails with
    /// [`StoreError::Conflict`], writing nothing, if the version moved on.
    fn commit_incidents(&self, commit: &IncidentCommit) -> Result<i64, StoreError>;

    /// The version of the incident state: cheap, so a node can ask before every read.
    fn incidents_version(&self) -> Result<i64, StoreError>;

    /// One incident with its whole timeline.
    fn incident(&self, id: i64) -> Result<Option<(IncidentRow, Vec<TimelineRow>)>, StoreError>;

    fn list_incidents(&self, query: &IncidentQuery) -> Result<Vec<IncidentRow>, StoreError>;

    /// Resolved incidents opened in `[from, to)`, for response-time reports.
    fn resolved_incidents(
        &self,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<IncidentRow>, StoreError>;

    /// Outbox rows with id above `after_id`, oldest first, at most `limit`.
    fn outbox(&self, after_id: i64, limit: usize) -> Result<Vec<OutboxRow>, StoreError>;

    /// Stores a change (or returns the one already stored under its `external_id`), with its id.
    /// Returns whether it was new.
    fn insert_change(&self, change: &ChangeRow) -> Result<(ChangeRow, bool), StoreError>;

    /// Changes that took effect in `[from, to)`, newest first, at most `limit`.
    fn changes(
        &self,
        from: Timestamp,
        to: Timestamp,
        limit: usize,
    ) -> Result<Vec<ChangeRow>, StoreError>;

    /// Stores an inbound signal by `(source, key)`: inserts it, or updates the stored one
    /// (status, end, what the new one says; see `signals` for what an update keeps) and counts
    /// the re-send. Returns the row as stored and whether it was new. Two nodes upserting one
    /// key at once leave one row.
    fn upsert_signal(&self, signal: &SignalRow) -> Result<(SignalRow, bool), StoreError>;

    /// Signals whose span `[starts_at, ends_at or forever]` overlaps `[from, to]`, latest
    /// start first, at most `limit` (≤ [`SIGNAL_PAGE_MAX`]).
    fn signals(
        &self,
        from: Timestamp,
        to: Timestamp,
        limit: usize,
    ) -> Result<Vec<SignalRow>, StoreError>;

    /// A page of the problem log, newest first.
    fn problem_log(&self, query: &ProblemQuery) -> Result<ProblemPage, StoreError>;

    /// The ignored event names, most frequent first, at most `limit`.
    fn ignored_names(&self, limit: usize) -> Result<IgnoredNamesPage, StoreError>;

    /// Cheap liveness check of the database, for `/readyz`.
    fn ping(&self) -> Result<(), StoreError>;

    /// Makes this process ready to ingest, failing early if it cannot (for SQLite: another
    /// process holds the ingest lock). Ingest without it claims on the first commit.
    fn claim_ingest(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Figures of an in-process dedup index, where the store keeps one.
    fn dedup_stats(&self) -> Option<DedupStats> {
        None
    }

    /// Moves what a write-ahead log holds into the database and empties the log, so that a
    /// stopped process leaves no large log file behind. PostgreSQL manages its own log: there
    /// it does nothing.
    fn checkpoint(&self) -> Result<(), StoreError> {
        Ok(())
    }
    /// Rolls the per-minute counts of minutes before `before` (rounded down to its hour) up to
    /// hourly, in short transactions; see `retention`. Idempotent.
    fn roll_up_counts(&self, before: Minute) -> Result<Rollup, StoreError>;

    /// How many outbox rows are stored, and when the oldest was queued.
    fn outbox_stats(&self) -> Result<OutboxStats, StoreError>;

    /// Stores a funnel's detector snapshot in place of the one stored, atomically, unless the
    /// stored one covers the same or a later minute: then nothing changes and it returns
    /// `false`. Nodes sharing a database may all save; the newest minute wins.
    fn save_detector_snapshot(&self, snapshot: &DetectorSnapshotRow) -> Result<bool, StoreError>;

    /// The funnel's stored detector snapshot, read whole in one snapshot of the database.
    fn load_detector_snapshot(
        &self,
        funnel: &str,
    ) -> Result<Option<DetectorSnapshotRow>, StoreError>;

    /// Deletes the funnel's stored detector snapshot (a baseline rebuild); returns whether
    /// there was one.
    fn discard_detector_snapshot(&self, funnel: &str) -> Result<bool, StoreError>;

    /// Posts `entries` in order, all in one transaction: each is validated against `chart`
    /// (`validate_revenue_transaction`) and written, or, when its id is stored with the same
    /// body, answered with the stored entry. Fails with [`StoreError::Ledger`], writing
    /// nothing of the call, on the first entry refused: invalid, its id stored with another
    /// body (`IdConflict`), reversing an unknown entry (`UnknownEntry`) or one already reversed
    /// (`AlreadyReversed`). Entries later in the call see the earlier ones (a revision is a
    /// reversal and a new entry in one call). At most [`LEDGER_POST_ENTRIES_MAX`] entries.
    fn post_ledger_entries(
        &self,
        chart: &revloop_core::ledger::Chart,
        entries: &[revloop_core::ledger::JournalEntry],
        now: Timestamp,
    ) -> Result<Vec<PostOutcome>, StoreError>;

    /// One stored entry, with the id of the entry that reversed it.
    fn ledger_entry(&self, id: &str) -> Result<Option<LedgerRow>, StoreError>;

    /// A page of entries in recorded order (`seq`), read in one snapshot: what the entry list
    /// and the exports page through.
    fn ledger_entries(&self, query: &LedgerQuery) -> Result<Vec<LedgerRow>, StoreError>;

    /// Debits and credits per account and currency, summed by the database, ordered by account
    /// then currency.
    fn trial_balance(&self) -> Result<Vec<revloop_core::ledger::Balance>, StoreError>;

    /// A page of one account's lines in recorded order, each with the running balance.
    fn account_statement(&self, query: &StatementQuery) -> Result<Vec<StatementLine>, StoreError>;

    /// The highest outbox id already planned into deliveries (0 before any).
    fn delivery_cursor(&self) -> Result<i64, StoreError>;

    /// Inserts `deliveries` (each once: an already planned one is left as it is) and moves
    /// the cursor up to `through_outbox_id` (never down), in one transaction. Returns how many
    /// were new. Nodes may plan the same outbox rows at once. At most [`DELIVERY_PLAN_MAX`]
    /// deliveries per call (more is an error, writing nothing).
    fn plan_deliveries(
        &self,
        through_outbox_id: i64,
        deliveries: &[NewDelivery],
    ) -> Result<usize, StoreError>;

    /// Leases up to `limit` (at most [`DELIVERY_PAGE_MAX`]) deliveries of `channel` to `node`
    /// until `now + lease`: pending, due (`next_at <= now`), not leased (or the lease expired
    /// by `now`), and with no earlier (lower outbox id) pending delivery of the same incident
    /// to the same receiver (channel and address); oldest due first (by `next_at`, then id). Two nodes never get the
    /// same delivery while its lease lasts.
    fn claim_deliveries(
        &self,
        channel: &str,
        node: &str,
        now: Timestamp,
        lease: revloop_core::time::DurationMs,
        limit: usize,
    ) -> Result<Vec<DeliveryRow>, StoreError>;

    /// Records an attempt of a delivery `attempt.node` holds: appends it to the attempt log and
    /// sets the delivery's state, attempts, next try and last answer, releasing the lease, in
    /// one transaction. Returns `false`, writing nothing, when the node no longer holds it:
    /// another node claimed it since (the fence is the lease's owner, not its expiry; see
    /// `deliveries`), or it is already final.
    fn record_attempt(&self, attempt: &AttemptRecord) -> Result<bool, StoreError>;

    /// Deliveries by outbox id, then id, at most `query.limit` (≤ [`DELIVERY_PAGE_MAX`]).
    fn deliveries(&self, query: &DeliveryQuery) -> Result<Vec<DeliveryRow>, StoreError>;

    /// The newest `limit` (≤ [`DELIVERY_PAGE_MAX`]) attempts of one incident's deliveries,
    /// oldest first (by time, then delivery and attempt): a long retry history keeps its
    /// latest answers and its end in view.
    fn delivery_attempts(&self, incident: i64, limit: usize)
    -> Result<Vec<AttemptRow>, StoreError>;

    /// Per channel (by name, at most [`DELIVERY_PAGE_MAX`] channels): delivered, failed and
    /// pending deliveries, failed attempts, the oldest pending delivery's creation time.
    fn delivery_stats(&self) -> Result<Vec<ChannelDeliveryStats>, StoreError>;

    /// Makes every pending delivery of `channel` due at `now` (unless its receiver asked to
    /// wait: last answered 429), so that a channel back from an outage drains at once instead
    /// of on each delivery's backoff. Returns how many were moved.
    fn expedite_deliveries(&self, channel: &str, now: Timestamp) -> Result<usize, StoreError>;
}

#[cfg(test)]
mod error_tests {
    use super::StoreError;

    #[test]
    fn busy_and_locked_are_transient_and_the_rest_is_not() {
        let sqlite = |code: i32| {
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(code),
                None,
            ))
        };
        assert!(sqlite(rusqlite::ffi::SQLITE_BUSY).is_transient());
        assert!(sqlite(rusqlite::ffi::SQLITE_LOCKED).is_transient());
        assert!(!sqlite(rusqlite::ffi::SQLITE_FULL).is_transient());
        assert!(!sqlite(rusqlite::ffi::SQLITE_CORRUPT).is_transient());
        let pool = StoreError::PoolTimeout {
            size_max: 8,
            waited_ms: 10,
        };
        assert!(pool.is_transient());
        assert!(!StoreError::UnknownFunnel("x".into()).is_transient());
        assert!(!StoreError::SchemaTooNew { found: 9, known: 4 }.is_transient());
    }
}
