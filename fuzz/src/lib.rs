//! The fuzz targets' bodies: each takes the raw bytes AFL++ hands it and drives one parser
//! through the same function that a request or the command line uses, with the real limits.
//! The binaries in `src/bin/` only wrap these in `afl::fuzz!`, so a crashing input can also be
//! replayed without AFL (`cargo run --bin <target> < input`) and by `tests/corpus.rs`.
//!
//! A target passes when the parser answers `Ok` or `Err` for every input; a panic, an abort or
//! a hang is a finding. Where a parser promises more (a duration or timestamp that prints the
//! way it parses), the target asserts that too, so such a bug is a crash as well.
//!
//! It never commits anything: the ingest targets stop at the `prepare_*` functions, which
//! validate but do not write, over an in-memory SQLite store that no item ever reaches.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use axum::response::IntoResponse;

use revloop_core::funnel::{CallKind, Matcher};
use revloop_core::{Config, DurationMs, Timestamp};
use revloop_server::http::{ApiError, decode_body};
use revloop_server::ingest::{
    BATCH_BYTES_MAX, BULK_BYTES_MAX, COUNTS_BYTES_MAX, Ingestor, LiveClock, Place, Prepared,
    Watermark,
};
use revloop_server::segment::{MESSAGE_BYTES_MAX, SegmentParser};
use revloop_server::telemetry::Telemetry;
use revloop_server::writer::GroupCommitter;
use revloop_store::sqlite::SqliteStore;

/// A target's body: one input, and a panic for a finding.
pub type Target = fn(&[u8]);

/// The targets, by the name of their binary and corpus folder.
pub const TARGETS: &[(&str, Target)] = &[
    ("segment_message", segment_message),
    ("batch", batch),
    ("ndjson", ndjson),
    ("counts", counts),
    ("config", config),
    ("durations_timestamps", durations_timestamps),
];

/// "Now" for every live request: fixed, so that a run is repeatable and the seeds' timestamps
/// (a minute before it) are admitted rather than rejected as too old.
pub const NOW_RFC3339: &str = "2026-11-20T12:00:00Z";

/// The single-call endpoints `/v1/track`, `/v1/page`... each imply a call kind.
const CALL_KINDS: [CallKind; 6] = [
    CallKind::Track,
    CallKind::Page,
    CallKind::Screen,
    CallKind::Identify,
    CallKind::Group,
    CallKind::Alias,
];

/// The ingest path over the example config (five dimensions, one five-stage funnel), built
/// once per process. Its group committer's writer thread idles: nothing is ever submitted.
fn ingestor() -> &'static Ingestor {
    static INGESTOR: OnceLock<Ingestor> = OnceLock::new();
    INGESTOR.get_or_init(|| {
        let config = Config::parse(Config::example_toml()).expect("the example config parses");
        let store = SqliteStore::open(Path::new(":memory:"), &config)
            .expect("an in-memory SQLite store opens");
        let telemetry = Arc::new(Telemetry::default());
        let committer = GroupCommitter::start(Arc::new(store), telemetry.clone());
        Ingestor::new(Arc::new(config), committer, telemetry)
    })
}

fn now() -> Timestamp {
    Timestamp::parse_rfc3339(NOW_RFC3339).expect("NOW_RFC3339 parses")
}

/// What the handler does with a request's outcome: a refusal becomes a JSON error response.
fn answer(result: Result<Prepared, ApiError>) {
    if let Err(err) = result {
        drop(err.into_response());
    }
}

/// The body as the handlers decode it (size limit, UTF-8), or `None` where they refuse it.
fn request_text(data: &[u8], limit: usize) -> Option<&str> {
    match decode_body(data, false, limit) {
        Ok(text) => match text {
            std::borrow::Cow::Borrowed(text) => Some(text),
            std::borrow::Cow::Owned(_) => unreachable!("an identity body is borrowed"),
        },
        Err(err) => {
            drop(err.into_response());
            None
        }
    }
}

/// One message to each single-call endpoint (`/v1/track`, ...), then as a `replay` line, which
/// admits by the event-time watermark instead of the receive time.
pub fn segment_message(data: &[u8]) {
    let Some(text) = request_text(data, MESSAGE_BYTES_MAX) else {
        return;
    };
    for kind in CALL_KINDS {
        let mut clock = LiveClock(now());
        answer(ingestor().prepare_messages([(Place::Body, text)], Some(kind), None, &mut clock));
    }
    let mut clock = Watermark::default();
    answer(ingestor().prepare_messages([(Place::Line(1), text)], None, None, &mut clock));
}

/// A `/v1/batch` body.
pub fn batch(data: &[u8]) {
    let Some(text) = request_text(data, BATCH_BYTES_MAX) else {
        return;
    };
    answer(ingestor().prepare_batch(text, &mut LiveClock(now())));
}

/// An NDJSON bulk body (`/api/v1/events/bulk`), live and as `replay` reads a file.
pub fn ndjson(data: &[u8]) {
    let Some(text) = request_text(data, BULK_BYTES_MAX) else {
        return;
    };
    answer(ingestor().prepare_ndjson(text, &mut LiveClock(now())));
    answer(ingestor().prepare_ndjson(text, &mut Watermark::default()));
}

/// A `/api/v1/counts` body, read both as `{"counts": [...]}` and as NDJSON records (live),
/// and as `replay` reads a counts file.
pub fn counts(data: &[u8]) {
    let Some(text) = request_text(data, COUNTS_BYTES_MAX) else {
        return;
    };
    for ndjson in [false, true] {
        let mut clock = LiveClock(now());
        answer(ingestor().prepare_counts(text, ndjson, &mut clock));
    }
    answer(ingestor().prepare_counts(text, true, &mut Watermark::default()));
}

/// A config file as `serve` and `check-config` read it; a config that validates must also
/// build the funnel matcher and the message parser that `serve` builds from it.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Config::parse(text) {
        Ok(config) => {
            let matcher = Matcher::new(&config);
            let _parser = SegmentParser::new(matcher.slots());
        }
        Err(err) => drop(err.to_string()),
    }
}

/// The small parsers of the config and the command line: RFC 3339 timestamps, durations
/// (`90s`, `1h30m`), `--segment dimension=value` and `simulate --incident` specs. A timestamp
/// or duration that parses must print as text that parses back to the same value.
pub fn durations_timestamps(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(timestamp) = Timestamp::parse_rfc3339(text) {
        let printed = timestamp.to_string();
        assert_eq!(
            Timestamp::parse_rfc3339(&printed),
            Ok(timestamp),
            "{text:?} printed as {printed:?}"
        );
    }
    if let Ok(duration) = DurationMs::parse(text) {
        let printed = duration.to_string();
        assert_eq!(
            DurationMs::parse(&printed),
            Ok(duration),
            "{text:?} printed as {printed:?}"
        );
    }
    if let Ok(parsed) = revloop_sim::InjectedIncident::parse_noting_old_form(text) {
        drop(format!("{:?}", parsed.incident));
    }
    if let Ok(segment) = revloop_api::Segment::parse(text) {
        drop(segment.to_string());
    }
}
