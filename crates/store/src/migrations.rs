//! Embedded schema migrations, applied in order on open. A migration is never edited once
//! released; a change of schema is a new migration at the end of the list.
//!
//! The two dialects keep the same count, segment, dimension and token tables. They differ in
//! how dedup keys are kept: SQLite, with a single ingesting process, keeps its dedup index in
//! memory over an append-only log; PostgreSQL, shared by several nodes, keeps it in tables.
//!
//! The second version adds the incident engine's state (incidents, their append-only timelines,
//! an outbox of effects, and a versioned meta row that serializes commits) and the changes log,
//! the same in both dialects.
//!
//! The third version keeps what each pre-aggregated count record with an `id` said (a hash of
//! its body beside its dedup key), so that a changed re-send is refused with 409, and keeps late
//! events per segment, so that a filtered metrics read shows its own late events.
//!
//! The fourth version adds the ingest problem log (rejected messages and notices, the newest
//! kept), the ignored event names with their counts, and one row of what both have left out.
//!
//! The fifth version keeps how far the hourly rollup of old per-minute counts has got (see
//! `retention`).
//!
//! The sixth version keeps a snapshot of each funnel's detector state (see
//! `revloop_core::detect::snapshot`), so that a restart reads only the counts after it: a
//! header row per funnel and the bytes in chunks.
//!
//! The seventh version adds the double-entry ledger (`revloop_core::ledger`): journal entries
//! and their lines, append-only (triggers refuse UPDATE and DELETE), an entry reversed at most
//! once (`reverses` is UNIQUE); see `ledger`.
//!
//! The delivery queue's version adds the deliveries (one per outbox entry and route, planned
//! once: a UNIQUE key), their attempt log, append-only (triggers refuse UPDATE and DELETE,
//! and on PostgreSQL TRUNCATE), and a one-row cursor of the outbox planned so far; see
//! `deliveries`.
//!
//! The signals version keeps inbound technical signals (Alertmanager alerts, PagerDuty-style
//! events), one row per source and key; see `signals`.
//!
//! The SQL comments name files as they were when each version was released: "sqlite.rs" is
//! now `sqlite/counts.rs` and `sqlite/ingest.rs`, "postgres.rs" is now `postgres/incidents.rs`.

/// The SQLite schema, one entry per version (version = index + 1).
pub const SQLITE: &[&str] = &[
    r#"
-- The dedup log: each commit appends its new dedup keys as one blob of little-endian i64s,
-- tagged with the generation they belong to. The index lives in memory (see dedup.rs) and is
-- rebuilt from here on start; a forgotten generation's rows are deleted.
CREATE TABLE dedup_generations (
    id         INTEGER PRIMARY KEY,
    started_ms INTEGER NOT NULL
);
CREATE TABLE dedup_log (
    id         INTEGER PRIMARY KEY,
    generation INTEGER NOT NULL,
    keys       BLOB    NOT NULL
);
CREATE INDEX dedup_log_generation ON dedup_log (generation);

-- Per-minute counts per funnel, stage and segment (0 = all segments together).
CREATE TABLE stage_counts (
    funnel           TEXT    NOT NULL,
    segment          INTEGER NOT NULL,
    minute           INTEGER NOT NULL,
    stage            TEXT    NOT NULL,
    n_events         INTEGER NOT NULL,
    revenue_minor    INTEGER NOT NULL,
    n_revenue_events INTEGER NOT NULL,
    PRIMARY KEY (funnel, segment, minute, stage)
) WITHOUT ROWID;

-- The same counts for the last minutes, keyed minute-major so that commits append instead of
-- touching a page per segment; rolled into stage_counts once a minute (see sqlite.rs).
CREATE TABLE stage_counts_recent (
    minute           INTEGER NOT NULL,
    funnel           TEXT    NOT NULL,
    stage            TEXT    NOT NULL,
    segment          INTEGER NOT NULL,
    n_events         INTEGER NOT NULL,
    revenue_minor    INTEGER NOT NULL,
    n_revenue_events INTEGER NOT NULL,
    PRIMARY KEY (minute, funnel, stage, segment)
) WITHOUT ROWID;

-- Events that arrived after the allowed lateness: accepted, reported, not counted.
CREATE TABLE late_counts (
    funnel   TEXT    NOT NULL,
    minute   INTEGER NOT NULL,
    stage    TEXT    NOT NULL,
    n_events INTEGER NOT NULL,
    PRIMARY KEY (funnel, minute, stage)
) WITHOUT ROWID;

-- What each segment key stands for: a JSON object of dimension name to value.
CREATE TABLE segments (
    key        INTEGER PRIMARY KEY,
    assignment TEXT    NOT NULL,
    n_dimensions INTEGER NOT NULL
);
-- The single-dimension segments, which the detector reads every minute, without scanning the
-- full combinations.
CREATE INDEX segments_single_dimension ON segments (key) WHERE n_dimensions = 1;

-- Values admitted under each dimension's cardinality cap.
CREATE TABLE dimension_values (
    dimension TEXT NOT NULL,
    value     TEXT NOT NULL,
    PRIMARY KEY (dimension, value)
) WITHOUT ROWID;

CREATE TABLE api_tokens (
    id            INTEGER PRIMARY KEY,
    name          TEXT    NOT NULL,
    role          TEXT    NOT NULL,
    secret_sha256 BLOB    NOT NULL UNIQUE,
    created_ms    INTEGER NOT NULL,
    revoked_ms    INTEGER
);
"#,
    r#"
-- Incidents by the id the engine gives them (the rowid, but never assigned by SQLite: every
-- insert names it). `body` is the engine's state of the incident as JSON, without its timeline.
CREATE TABLE incidents (
    id              INTEGER PRIMARY KEY,
    funnel          TEXT    NOT NULL,
    stage           TEXT    NOT NULL,
    severity        TEXT    NOT NULL,
    state           TEXT    NOT NULL,
    opened_ms       INTEGER NOT NULL,
    acknowledged_ms INTEGER,
    mitigated_ms    INTEGER,
    resolved_ms     INTEGER,
    body            TEXT    NOT NULL
);
-- The open incidents, which the engine loads and the incident list shows first, stay few
-- however many have been resolved.
CREATE INDEX incidents_open ON incidents (id) WHERE resolved_ms IS NULL;
CREATE INDEX incidents_funnel ON incidents (funnel, id);
-- Response-time reports read the resolved incidents by when they opened.
CREATE INDEX incidents_resolved_opened ON incidents (opened_ms) WHERE resolved_ms IS NOT NULL;

-- Append-only, enforced here rather than trusted to the code: the timeline is the record of
-- who did what during an incident. (An `INSERT OR REPLACE` would still delete a row without
-- firing the trigger, as recursive triggers are off; the store never issues one.)
CREATE TABLE incident_timeline (
    incident INTEGER NOT NULL,
    seq      INTEGER NOT NULL,
    at_ms    INTEGER NOT NULL,
    actor    TEXT    NOT NULL,
    kind     TEXT    NOT NULL,
    text     TEXT    NOT NULL,
    PRIMARY KEY (incident, seq)
) WITHOUT ROWID;
CREATE TRIGGER incident_timeline_no_update BEFORE UPDATE ON incident_timeline
BEGIN
    SELECT RAISE(ABORT, 'the incident timeline is append-only');
END;
CREATE TRIGGER incident_timeline_no_delete BEFORE DELETE ON incident_timeline
BEGIN
    SELECT RAISE(ABORT, 'the incident timeline is append-only');
END;

-- Effects the engine owes the outside, read by id. AUTOINCREMENT: an id is never reused, even
-- if the newest rows were ever deleted, so a reader's cursor never skips a row.
CREATE TABLE incident_outbox (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    incident INTEGER NOT NULL,
    at_ms    INTEGER NOT NULL,
    kind     TEXT    NOT NULL,
    body     TEXT    NOT NULL
);

-- The engine's own state, and the version every commit checks and increments (0: nothing
-- committed yet).
CREATE TABLE incident_meta (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL,
    body    TEXT
);
INSERT INTO incident_meta (id, version, body) VALUES (1, 0, NULL);

-- Changes to the shop (deploys, experiments, prices) that may explain an incident.
CREATE TABLE changes (
    id          INTEGER PRIMARY KEY,
    at_ms       INTEGER NOT NULL,
    kind        TEXT    NOT NULL,
    summary     TEXT    NOT NULL,
    detail      TEXT    NOT NULL,
    funnel      TEXT,
    stage       TEXT,
    dimension   TEXT,
    value       TEXT,
    author      TEXT    NOT NULL,
    external_id TEXT    UNIQUE,
    recorded_ms INTEGER NOT NULL,
    CHECK ((dimension IS NULL) = (value IS NULL))
);
-- Holds the rowid too, so it serves `ORDER BY at_ms DESC, id DESC` as it is.
CREATE INDEX changes_at ON changes (at_ms);
"#,
    r#"
-- Version 3: count bodies and late events per segment.
--
-- What each pre-aggregated count record with an `id` said, by its dedup key, so a
-- re-send with the same id and a different body is refused (409) instead of dropped as a
-- duplicate. A row lives as long as its dedup key (see `dedup.rs`); `at_ms` drives that.
CREATE TABLE count_bodies (
    key      INTEGER PRIMARY KEY,
    body_key INTEGER NOT NULL,
    at_ms    INTEGER NOT NULL
);
CREATE INDEX count_bodies_at ON count_bodies (at_ms);

-- Late events per segment, so that a filtered metrics read shows the filter's late events.
-- `late_counts` keeps the all-segments total (it holds the late events of earlier versions).
CREATE TABLE late_segment_counts (
    funnel   TEXT    NOT NULL,
    segment  INTEGER NOT NULL,
    minute   INTEGER NOT NULL,
    stage    TEXT    NOT NULL,
    n_events INTEGER NOT NULL,
    PRIMARY KEY (funnel, segment, minute, stage)
) WITHOUT ROWID;
"#,
    r#"
-- Version 4: the ingest problem log.
--
-- The ingest problem log: the newest rejected messages and notices (see problems.rs for the
-- bound). AUTOINCREMENT: ids are never reused, so they order entries and page them.
CREATE TABLE ingest_problems (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms    INTEGER NOT NULL,
    key_name TEXT    NOT NULL,
    outcome  TEXT    NOT NULL,
    code     TEXT    NOT NULL,
    field    TEXT,
    message  TEXT    NOT NULL,
    body     TEXT    NOT NULL,
    body_cut INTEGER NOT NULL
);
CREATE INDEX ingest_problems_code ON ingest_problems (code, id);

-- Event names no funnel stage listens to, counted once per new message.
CREATE TABLE ignored_names (
    kind          TEXT    NOT NULL,
    name          TEXT    NOT NULL,
    n_messages    INTEGER NOT NULL,
    first_seen_ms INTEGER NOT NULL,
    last_seen_ms  INTEGER NOT NULL,
    PRIMARY KEY (kind, name)
) WITHOUT ROWID;

-- What the two bounded tables above have left out: entries dropped from the log, and ignored
-- messages whose name found the list full.
CREATE TABLE ingest_log_meta (
    id                 INTEGER PRIMARY KEY CHECK (id = 1),
    n_problems_dropped INTEGER NOT NULL,
    n_ignored_unlisted INTEGER NOT NULL
);
INSERT INTO ingest_log_meta (id, n_problems_dropped, n_ignored_unlisted) VALUES (1, 0, 0);
"#,
    r#"
-- Version 5: the hourly rollup (see retention.rs). Counts of minutes before `hourly_before`
-- (a minute index) are kept one row per hour, at the hour's first minute. 0: none yet.
CREATE TABLE count_rollup (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    hourly_before INTEGER NOT NULL
);
INSERT INTO count_rollup (id, hourly_before) VALUES (1, 0);
"#,
    r#"
-- Version 6: a snapshot of each funnel's detector state. One header row per funnel (the first
-- minute the state has not judged, the fingerprint of the config it was taken under, its
-- size) and its bytes in chunks of at most 4 MiB, replaced together in one transaction (see
-- sqlite/snapshots.rs). A snapshot of an older minute never replaces a newer one.
CREATE TABLE detector_snapshots (
    funnel      TEXT    PRIMARY KEY,
    next_minute INTEGER NOT NULL,
    fingerprint INTEGER NOT NULL,
    saved_ms    INTEGER NOT NULL,
    n_bytes     INTEGER NOT NULL,
    n_chunks    INTEGER NOT NULL
);
CREATE TABLE detector_snapshot_chunks (
    funnel TEXT    NOT NULL,
    chunk  INTEGER NOT NULL,
    bytes  BLOB    NOT NULL,
    PRIMARY KEY (funnel, chunk)
);
"#,
    r#"
-- Version 7: the double-entry ledger (see ledger.rs). `seq` is the recorded order (1, 2, ...
-- with no gaps, drawn inside the posting transaction), by which readers page and exports run.
-- `body_sha256` is the hash of everything the entry says but its id: a post of a stored id
-- with another body is refused. `reverses` is UNIQUE, so an entry is reversed at most once.
CREATE TABLE ledger_entries (
    id           TEXT    PRIMARY KEY,
    seq          INTEGER NOT NULL UNIQUE,
    body_sha256  TEXT    NOT NULL,
    description  TEXT    NOT NULL,
    currency     TEXT    NOT NULL,
    effective_ms INTEGER NOT NULL,
    recorded_ms  INTEGER NOT NULL,
    incident     INTEGER,
    inputs_json  TEXT,
    reverses     TEXT    UNIQUE REFERENCES ledger_entries (id)
);
CREATE INDEX ledger_entries_incident ON ledger_entries (incident, seq) WHERE incident IS NOT NULL;

CREATE TABLE ledger_lines (
    entry        TEXT    NOT NULL REFERENCES ledger_entries (id),
    line         INTEGER NOT NULL,
    seq          INTEGER NOT NULL,
    account      INTEGER NOT NULL,
    account_type TEXT,
    side         TEXT    NOT NULL CHECK (side IN ('debit', 'credit')),
    amount_minor INTEGER NOT NULL CHECK (amount_minor > 0),
    memo         TEXT,
    PRIMARY KEY (entry, line)
) WITHOUT ROWID;
CREATE INDEX ledger_lines_seq ON ledger_lines (seq, line);
CREATE INDEX ledger_lines_account ON ledger_lines (account, seq, line);

-- Entries are never edited or deleted: a correction is a reversal plus a new entry.
CREATE TRIGGER ledger_entries_no_update BEFORE UPDATE ON ledger_entries
BEGIN
    SELECT RAISE(ABORT, 'ledger entries are append-only');
END;
CREATE TRIGGER ledger_entries_no_delete BEFORE DELETE ON ledger_entries
BEGIN
    SELECT RAISE(ABORT, 'ledger entries are append-only');
END;
CREATE TRIGGER ledger_lines_no_update BEFORE UPDATE ON ledger_lines
BEGIN
    SELECT RAISE(ABORT, 'ledger entries are append-only');
END;
CREATE TRIGGER ledger_lines_no_delete BEFORE DELETE ON ledger_lines
BEGIN
    SELECT RAISE(ABORT, 'ledger entries are append-only');
END;
"#,
    r#"
-- The delivery queue (see deliveries.rs). One row per outbox entry and route; `state` is
-- 'pending', 'delivered' or 'failed' (see kinds.rs). A lease is an owner and an expiry, both
-- set or both null. AUTOINCREMENT: ids are never reused, so attempts never name a stranger.
CREATE TABLE deliveries (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    outbox_id        INTEGER NOT NULL,
    incident         INTEGER NOT NULL,
    target           TEXT    NOT NULL,
    channel          TEXT    NOT NULL,
    address          TEXT    NOT NULL,
    level            TEXT    NOT NULL,
    state            TEXT    NOT NULL,
    attempts         INTEGER NOT NULL CHECK (attempts >= 0),
    created_ms       INTEGER NOT NULL,
    first_attempt_ms INTEGER,
    next_ms          INTEGER NOT NULL,
    lease_owner      TEXT,
    lease_until_ms   INTEGER,
    last_status      TEXT,
    last_response    TEXT,
    finished_ms      INTEGER,
    UNIQUE (outbox_id, target, channel, address),
    CHECK ((lease_owner IS NULL) = (lease_until_ms IS NULL))
);
-- The claim: a channel's pending deliveries by when they are due.
CREATE INDEX deliveries_claim ON deliveries (channel, state, next_ms);
-- The ordering rule (an earlier pending delivery of the same incident, channel and address)
-- and the reads by incident.
CREATE INDEX deliveries_incident ON deliveries (incident, channel, address, outbox_id);

-- Every attempt, appended by the lease holder in the transaction that updates its delivery.
CREATE TABLE delivery_attempts (
    delivery INTEGER NOT NULL REFERENCES deliveries (id),
    attempt  INTEGER NOT NULL,
    node     TEXT    NOT NULL,
    at_ms    INTEGER NOT NULL,
    state    TEXT    NOT NULL,
    status   TEXT    NOT NULL,
    response TEXT    NOT NULL,
    PRIMARY KEY (delivery, attempt)
) WITHOUT ROWID;
CREATE TRIGGER delivery_attempts_no_update BEFORE UPDATE ON delivery_attempts
BEGIN
    SELECT RAISE(ABORT, 'the delivery attempt log is append-only');
END;
CREATE TRIGGER delivery_attempts_no_delete BEFORE DELETE ON delivery_attempts
BEGIN
    SELECT RAISE(ABORT, 'the delivery attempt log is append-only');
END;

-- The highest outbox id planned into deliveries; it only goes up.
CREATE TABLE delivery_cursor (
    id                INTEGER PRIMARY KEY CHECK (id = 1),
    through_outbox_id INTEGER NOT NULL
);
INSERT INTO delivery_cursor (id, through_outbox_id) VALUES (1, 0);
"#,
    r#"
-- Version 9 (signals): inbound technical signals (Alertmanager alerts, PagerDuty-style
-- events), one row per (source, key), upserted as re-sent (see signals.rs). Times in ms.
CREATE TABLE signals (
    id          INTEGER PRIMARY KEY,
    source      TEXT    NOT NULL,
    key         TEXT    NOT NULL,
    status      TEXT    NOT NULL CHECK (status IN ('firing', 'resolved')),
    starts_ms   INTEGER NOT NULL,
    ends_ms     INTEGER,
    summary     TEXT    NOT NULL,
    severity    TEXT,
    funnel      TEXT,
    stage       TEXT,
    labels_json TEXT    NOT NULL,
    received_ms INTEGER NOT NULL,
    n_received  INTEGER NOT NULL,
    UNIQUE (source, key)
);
CREATE INDEX signals_starts ON signals (starts_ms, id);
"#,
];

/// The PostgreSQL schema.
pub const POSTGRES: &[&str] = &[
    r#"
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO meta (key, value) VALUES ('dedup_current', 0), ('dedup_started_ms', -1);

CREATE TABLE dedup_0 (key BIGINT PRIMARY KEY);
CREATE TABLE dedup_1 (key BIGINT PRIMARY KEY);

CREATE TABLE stage_counts (
    funnel           TEXT   NOT NULL,
    segment          BIGINT NOT NULL,
    minute           BIGINT NOT NULL,
    stage            TEXT   NOT NULL,
    n_events         BIGINT NOT NULL,
    revenue_minor    BIGINT NOT NULL,
    n_revenue_events BIGINT NOT NULL,
    PRIMARY KEY (funnel, segment, minute, stage)
);

CREATE TABLE late_counts (
    funnel   TEXT   NOT NULL,
    minute   BIGINT NOT NULL,
    stage    TEXT   NOT NULL,
    n_events BIGINT NOT NULL,
    PRIMARY KEY (funnel, minute, stage)
);

CREATE TABLE segments (
    key          BIGINT PRIMARY KEY,
    assignment   TEXT   NOT NULL,
    n_dimensions INTEGER NOT NULL
);
CREATE INDEX segments_single_dimension ON segments (key) WHERE n_dimensions = 1;

CREATE TABLE dimension_values (
    dimension TEXT NOT NULL,
    value     TEXT NOT NULL,
    PRIMARY KEY (dimension, value)
);

CREATE TABLE api_tokens (
    id            BIGSERIAL PRIMARY KEY,
    name          TEXT   NOT NULL,
    role          TEXT   NOT NULL,
    secret_sha256 BYTEA  NOT NULL UNIQUE,
    created_ms    BIGINT NOT NULL,
    revoked_ms    BIGINT
);
"#,
    r#"
CREATE TABLE incidents (
    id              BIGINT PRIMARY KEY,
    funnel          TEXT   NOT NULL,
    stage           TEXT   NOT NULL,
    severity        TEXT   NOT NULL,
    state           TEXT   NOT NULL,
    opened_ms       BIGINT NOT NULL,
    acknowledged_ms BIGINT,
    mitigated_ms    BIGINT,
    resolved_ms     BIGINT,
    body            TEXT   NOT NULL
);
CREATE INDEX incidents_open ON incidents (id) WHERE resolved_ms IS NULL;
CREATE INDEX incidents_funnel ON incidents (funnel, id);
CREATE INDEX incidents_resolved_opened ON incidents (opened_ms) WHERE resolved_ms IS NOT NULL;

-- Append-only, enforced by the database for every client: row triggers refuse UPDATE and
-- DELETE, and a statement trigger refuses TRUNCATE, which row triggers do not see.
CREATE TABLE incident_timeline (
    incident BIGINT NOT NULL,
    seq      BIGINT NOT NULL,
    at_ms    BIGINT NOT NULL,
    actor    TEXT   NOT NULL,
    kind     TEXT   NOT NULL,
    text     TEXT   NOT NULL,
    PRIMARY KEY (incident, seq)
);
CREATE FUNCTION incident_timeline_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the incident timeline is append-only';
END
$$;
CREATE TRIGGER incident_timeline_no_change BEFORE UPDATE OR DELETE ON incident_timeline
    FOR EACH ROW EXECUTE FUNCTION incident_timeline_append_only();
CREATE TRIGGER incident_timeline_no_truncate BEFORE TRUNCATE ON incident_timeline
    FOR EACH STATEMENT EXECUTE FUNCTION incident_timeline_append_only();

-- Ids come from a sequence, which does not order them by commit. They still increase in commit
-- order because every commit draws them while holding the `incident_meta` row (see
-- postgres.rs), so a reader's cursor never skips a row committed later with a lower id.
CREATE TABLE incident_outbox (
    id       BIGSERIAL PRIMARY KEY,
    incident BIGINT NOT NULL,
    at_ms    BIGINT NOT NULL,
    kind     TEXT   NOT NULL,
    body     TEXT   NOT NULL
);

CREATE TABLE incident_meta (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version BIGINT  NOT NULL,
    body    TEXT
);
INSERT INTO incident_meta (id, version, body) VALUES (1, 0, NULL);

CREATE TABLE changes (
    id          BIGSERIAL PRIMARY KEY,
    at_ms       BIGINT NOT NULL,
    kind        TEXT   NOT NULL,
    summary     TEXT   NOT NULL,
    detail      TEXT   NOT NULL,
    funnel      TEXT,
    stage       TEXT,
    dimension   TEXT,
    value       TEXT,
    author      TEXT   NOT NULL,
    external_id TEXT   UNIQUE,
    recorded_ms BIGINT NOT NULL,
    CHECK ((dimension IS NULL) = (value IS NULL))
);
CREATE INDEX changes_at ON changes (at_ms, id);
"#,
    r#"
-- Version 3: see the SQLite schema's version 3.
CREATE TABLE count_bodies (
    key      BIGINT PRIMARY KEY,
    body_key BIGINT NOT NULL,
    at_ms    BIGINT NOT NULL
);
CREATE INDEX count_bodies_at ON count_bodies (at_ms);
CREATE TABLE late_segment_counts (
    funnel   TEXT   NOT NULL,
    segment  BIGINT NOT NULL,
    minute   BIGINT NOT NULL,
    stage    TEXT   NOT NULL,
    n_events BIGINT NOT NULL,
    PRIMARY KEY (funnel, segment, minute, stage)
);
"#,
    r#"
-- Version 4: see the SQLite schema's version 4.
-- Ids are drawn while holding the problem log's advisory lock (see postgres/problems.rs), so
-- they increase in commit order across nodes.
CREATE TABLE ingest_problems (
    id       BIGSERIAL PRIMARY KEY,
    at_ms    BIGINT  NOT NULL,
    key_name TEXT    NOT NULL,
    outcome  TEXT    NOT NULL,
    code     TEXT    NOT NULL,
    field    TEXT,
    message  TEXT    NOT NULL,
    body     TEXT    NOT NULL,
    body_cut BOOLEAN NOT NULL
);
CREATE INDEX ingest_problems_code ON ingest_problems (code, id);

CREATE TABLE ignored_names (
    kind          TEXT   NOT NULL,
    name          TEXT   NOT NULL,
    n_messages    BIGINT NOT NULL,
    first_seen_ms BIGINT NOT NULL,
    last_seen_ms  BIGINT NOT NULL,
    PRIMARY KEY (kind, name)
);

CREATE TABLE ingest_log_meta (
    id                 INTEGER PRIMARY KEY CHECK (id = 1),
    n_problems_dropped BIGINT NOT NULL,
    n_ignored_unlisted BIGINT NOT NULL
);
INSERT INTO ingest_log_meta (id, n_problems_dropped, n_ignored_unlisted) VALUES (1, 0, 0);
"#,
    r#"
-- Version 5: see the SQLite schema's version 5.
CREATE TABLE count_rollup (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    hourly_before BIGINT  NOT NULL
);
INSERT INTO count_rollup (id, hourly_before) VALUES (1, 0);
"#,
    r#"
-- Version 6: see the SQLite schema's version 6. The fingerprint is the u64's bits as BIGINT.
CREATE TABLE detector_snapshots (
    funnel      TEXT   PRIMARY KEY,
    next_minute BIGINT NOT NULL,
    fingerprint BIGINT NOT NULL,
    saved_ms    BIGINT NOT NULL,
    n_bytes     BIGINT NOT NULL,
    n_chunks    BIGINT NOT NULL
);
CREATE TABLE detector_snapshot_chunks (
    funnel TEXT   NOT NULL,
    chunk  BIGINT NOT NULL,
    bytes  BYTEA  NOT NULL,
    PRIMARY KEY (funnel, chunk)
);
"#,
    r#"
-- Version 7: see the SQLite schema's version 7. `seq` is drawn under the ledger's advisory
-- lock (see postgres/ledger.rs), so it increases in commit order across nodes.
CREATE TABLE ledger_entries (
    id           TEXT   PRIMARY KEY,
    seq          BIGINT NOT NULL UNIQUE,
    body_sha256  TEXT   NOT NULL,
    description  TEXT   NOT NULL,
    currency     TEXT   NOT NULL,
    effective_ms BIGINT NOT NULL,
    recorded_ms  BIGINT NOT NULL,
    incident     BIGINT,
    inputs_json  TEXT,
    reverses     TEXT   UNIQUE REFERENCES ledger_entries (id)
);
CREATE INDEX ledger_entries_incident ON ledger_entries (incident, seq) WHERE incident IS NOT NULL;

CREATE TABLE ledger_lines (
    entry        TEXT   NOT NULL REFERENCES ledger_entries (id),
    line         INTEGER NOT NULL,
    seq          BIGINT NOT NULL,
    account      INTEGER NOT NULL,
    account_type TEXT,
    side         TEXT   NOT NULL CHECK (side IN ('debit', 'credit')),
    amount_minor BIGINT NOT NULL CHECK (amount_minor > 0),
    memo         TEXT,
    PRIMARY KEY (entry, line)
);
CREATE INDEX ledger_lines_seq ON ledger_lines (seq, line);
CREATE INDEX ledger_lines_account ON ledger_lines (account, seq, line);

CREATE FUNCTION ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger entries are append-only';
END
$$;
CREATE TRIGGER ledger_entries_no_change BEFORE UPDATE OR DELETE ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION ledger_append_only();
CREATE TRIGGER ledger_entries_no_truncate BEFORE TRUNCATE ON ledger_entries
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only();
CREATE TRIGGER ledger_lines_no_change BEFORE UPDATE OR DELETE ON ledger_lines
    FOR EACH ROW EXECUTE FUNCTION ledger_append_only();
CREATE TRIGGER ledger_lines_no_truncate BEFORE TRUNCATE ON ledger_lines
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only();
"#,
    r#"
-- The delivery queue: see the SQLite schema's. Claims lock rows `FOR UPDATE SKIP LOCKED`
-- (see postgres/deliveries.rs), so two nodes never lease one delivery at once.
CREATE TABLE deliveries (
    id               BIGSERIAL PRIMARY KEY,
    outbox_id        BIGINT  NOT NULL,
    incident         BIGINT  NOT NULL,
    target           TEXT    NOT NULL,
    channel          TEXT    NOT NULL,
    address          TEXT    NOT NULL,
    level            TEXT    NOT NULL,
    state            TEXT    NOT NULL,
    attempts         INTEGER NOT NULL CHECK (attempts >= 0),
    created_ms       BIGINT  NOT NULL,
    first_attempt_ms BIGINT,
    next_ms          BIGINT  NOT NULL,
    lease_owner      TEXT,
    lease_until_ms   BIGINT,
    last_status      TEXT,
    last_response    TEXT,
    finished_ms      BIGINT,
    UNIQUE (outbox_id, target, channel, address),
    CHECK ((lease_owner IS NULL) = (lease_until_ms IS NULL))
);
CREATE INDEX deliveries_claim ON deliveries (channel, state, next_ms);
CREATE INDEX deliveries_incident ON deliveries (incident, channel, address, outbox_id);

CREATE TABLE delivery_attempts (
    delivery BIGINT  NOT NULL REFERENCES deliveries (id),
    attempt  INTEGER NOT NULL,
    node     TEXT    NOT NULL,
    at_ms    BIGINT  NOT NULL,
    state    TEXT    NOT NULL,
    status   TEXT    NOT NULL,
    response TEXT    NOT NULL,
    PRIMARY KEY (delivery, attempt)
);
CREATE FUNCTION delivery_attempts_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the delivery attempt log is append-only';
END
$$;
CREATE TRIGGER delivery_attempts_no_change BEFORE UPDATE OR DELETE ON delivery_attempts
    FOR EACH ROW EXECUTE FUNCTION delivery_attempts_append_only();
CREATE TRIGGER delivery_attempts_no_truncate BEFORE TRUNCATE ON delivery_attempts
    FOR EACH STATEMENT EXECUTE FUNCTION delivery_attempts_append_only();

CREATE TABLE delivery_cursor (
    id                INTEGER PRIMARY KEY CHECK (id = 1),
    through_outbox_id BIGINT  NOT NULL
);
INSERT INTO delivery_cursor (id, through_outbox_id) VALUES (1, 0);
"#,
    r#"
-- Version 9 (signals): see the SQLite schema's signals version (9).
CREATE TABLE signals (
    id          BIGSERIAL PRIMARY KEY,
    source      TEXT   NOT NULL,
    key         TEXT   NOT NULL,
    status      TEXT   NOT NULL CHECK (status IN ('firing', 'resolved')),
    starts_ms   BIGINT NOT NULL,
    ends_ms     BIGINT,
    summary     TEXT   NOT NULL,
    severity    TEXT,
    funnel      TEXT,
    stage       TEXT,
    labels_json TEXT   NOT NULL,
    received_ms BIGINT NOT NULL,
    n_received  BIGINT NOT NULL,
    UNIQUE (source, key)
);
CREATE INDEX signals_starts ON signals (starts_ms, id);
"#,
];
