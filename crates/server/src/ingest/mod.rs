//! From request bodies to committed items: the one ingest path that `serve`, `replay`,
//! `demo` and the benchmarks all share.
//!
//! A batch (`/v1/batch`, NDJSON bulk, `replay`) is judged message by message, as Segment's
//! own API does: a bad message is refused by itself ([`Prepared::rejected`], with its place,
//! field and code) and the rest are committed. The SDKs treat a 4xx as final, so one phone with
//! a wrong clock must not cost its neighbours their events. A batch is refused whole only when
//! it cannot be read at all: authentication, size, encoding, an unparseable envelope, too many
//! messages. A single call is refused whole with its one message, and pre-aggregated counts
//! stay all-or-nothing, because loaders retry a corrected request on a 4xx. A problem confined
//! to a dimension value never costs a message its count: the value is counted under a marker
//! and listed in [`Prepared::notices`].
//!
//! The rooms: `problems` gathers what was wrong, [`clock`] says what "now" is (live or in
//! event time), [`messages`] validates Segment messages, [`counts`] validates pre-aggregated
//! counts and splits their windows into minutes, and [`accounting`] commits and tallies.
//! It never reads HTTP headers or authorizes: the handlers do, before and after.

use std::sync::Arc;

use revloop_core::Config;
use revloop_core::funnel::Matcher;
use revloop_store::IngestItem;

use crate::http::ApiError;
use crate::segment::SegmentParser;
use crate::telemetry::Telemetry;
use crate::writer::GroupCommitter;

pub mod accounting;
pub mod clock;
pub mod counts;
pub mod messages;
mod problems;

pub use accounting::PendingCommit;
pub use clock::{IngestClock, LiveClock, Watermark};

/// Largest `/v1/batch` body, decompressed. Segment's limit.
pub const BATCH_BYTES_MAX: usize = 500 * 1024;
/// Most messages in one `/v1/batch`. Segment's limit.
pub const BATCH_MESSAGES_MAX: usize = 2_500;
/// Largest NDJSON bulk body, decompressed.
pub const BULK_BYTES_MAX: usize = 16 * 1024 * 1024;
/// Most lines in one NDJSON bulk body.
pub const BULK_LINES_MAX: usize = 100_000;
/// Largest `/api/v1/counts` body, decompressed.
pub const COUNTS_BYTES_MAX: usize = 4 * 1024 * 1024;
/// Most records in one counts body.
pub const COUNTS_RECORDS_MAX: usize = 10_000;
/// Largest count one record may carry. About 9.2 million records at the cap must land in one
/// stage, minute and segment before a sum could leave `i64`; the stores saturate such a sum.
pub const COUNT_VALUE_MAX: i64 = 1_000_000_000_000;
/// Largest revenue, in minor units and either sign, that one count record may carry: the sum of
/// its window, so a thousand times a message's `REVENUE_MINOR_MAX`. About 9,200 records at the
/// cap must land in one row before a sum could leave `i64`; the stores saturate such a sum.
pub const COUNT_REVENUE_MINOR_MAX: i64 = 1_000 * revloop_core::ingest::REVENUE_MINOR_MAX;
/// Longest window a pre-aggregated count may cover.
pub const COUNT_WINDOW_S_MAX: i64 = 86_400;

/// Where in a request a message stands, for error details.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    Body,
    Index(usize),
    Line(usize),
}

/// Longest excerpt of a message kept with its problem, in bytes; cut at a character boundary.
pub const PROBLEM_BODY_BYTES_MAX: usize = 4 * 1024;
/// Most rejections, and separately most notices, one ingest reply lists; the rest are counted
/// as `unlisted`. A full `/v1/batch` therefore lists every one of its rejections.
pub const PROBLEMS_LISTED_MAX: usize = BATCH_MESSAGES_MAX;

/// Validated items of one request, ready to commit, and the messages that were refused or
/// kept only in part.
#[derive(Debug, Default)]
pub struct Prepared {
    pub items: Vec<IngestItem>,
    /// The write key a message body carried, when the request had no Authorization header.
    pub body_write_key: Option<String>,
    /// Messages refused one by one, in request order; the items hold the rest.
    pub rejected: Vec<MessageProblem>,
    /// Messages counted with a part folded, cut or dropped, in request order.
    pub notices: Vec<MessageProblem>,
}

/// What was wrong with one message of a request, with the message itself for the problem log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageProblem {
    pub place: Place,
    /// Stable and machine-readable: `timestamp_out_of_range`, `invalid_json`, `value_cut`...
    pub code: &'static str,
    pub field: Option<String>,
    pub message: String,
    /// The message as sent, cut to [`PROBLEM_BODY_BYTES_MAX`].
    pub body: String,
    pub body_cut: bool,
}

/// What became of an accepted request.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Outcome {
    /// New messages (or count records) that updated counts.
    pub counted: usize,
    /// Already seen within the dedup window: nothing added.
    pub duplicates: usize,
    /// Older than the allowed lateness: tallied as late, counts unchanged.
    pub late: usize,
    /// New, but no funnel stage listens to them.
    pub ignored: usize,
}

pub struct Ingestor {
    pub config: Arc<Config>,
    matcher: Matcher,
    parser: SegmentParser,
    committer: GroupCommitter,
    telemetry: Arc<Telemetry>,
}

impl Ingestor {
    pub fn new(
        config: Arc<Config>,
        committer: GroupCommitter,
        telemetry: Arc<Telemetry>,
    ) -> Ingestor {
        let matcher = Matcher::new(&config);
        let parser = SegmentParser::new(matcher.slots());
        Ingestor {
            config,
            matcher,
            parser,
            committer,
            telemetry,
        }
    }

    pub fn telemetry(&self) -> &Telemetry {
        &self.telemetry
    }

    pub fn committer(&self) -> &GroupCommitter {
        &self.committer
    }
}

/// The non-blank lines of an NDJSON body, numbered from 1.
fn non_blank_lines(body: &str) -> Result<Vec<(Place, &str)>, ApiError> {
    let lines: Vec<(Place, &str)> = body
        .split('\n')
        .enumerate()
        .map(|(i, line)| (Place::Line(i + 1), line.trim_end_matches('\r')))
        .filter(|(_, line)| !line.trim().is_empty())
        .collect();
    if lines.len() > BULK_LINES_MAX {
        return Err(ApiError::bad_request(
            "too_many_messages",
            format!(
                "{} lines; at most {BULK_LINES_MAX} are allowed per request; nothing was stored",
                lines.len()
            ),
        ));
    }
    Ok(lines)
}
