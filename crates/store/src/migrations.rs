//! Embedded schema migrations, applied in order on open. A migration is never edited once
//! released; a change of schema is a new migration at the end of the list.
//!
//! The two dialects keep the same tables and columns, so that the SQL in the two stores reads
//! alike and a dump of one could be loaded into the other.

/// The SQLite schema, one entry per version (version = index + 1).
pub const SQLITE: &[&str] = &[r#"
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO meta (key, value) VALUES ('dedup_current', 0), ('dedup_started_ms', -1);

-- Two generations of remembered dedup keys. New keys go into the current one; when it is a
-- window old, the previous generation is emptied and becomes current. A key is therefore
-- remembered for at least one window and at most two.
CREATE TABLE dedup_0 (key INTEGER PRIMARY KEY);
CREATE TABLE dedup_1 (key INTEGER PRIMARY KEY);

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

/// The PostgreSQL schema, version for version the same as [`SQLITE`].
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
