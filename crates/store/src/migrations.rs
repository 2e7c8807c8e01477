//! Embedded schema migrations, applied in order on open. A migration is never edited once
//! released; a change of schema is a new migration at the end of the list.
//!
//! The two dialects keep the same count, segment, dimension and token tables. They differ in
//! how dedup keys are kept: SQLite, with a single ingesting process, keeps its dedup index in
//! memory over an append-only log; PostgreSQL, shared by several nodes, keeps it in tables.

/// The SQLite schema, one entry per version (version = index + 1).
pub const SQLITE: &[&str] = &[r#"
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
"#];

/// The PostgreSQL schema.
pub const POSTGRES: &[&str] = &[r#"
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
"#];
