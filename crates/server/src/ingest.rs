//! From request bodies to committed items: the one ingest path that `serve`, `replay`,
//! `demo` and the benchmarks all share.
//!
//! A request is all-or-nothing. Every message is validated first; if any is bad, the whole
//! request is rejected with each problem and its place (batch index, NDJSON line, field), and
//! nothing is stored. Only a request with no problems is committed. Clients can therefore retry
//! a corrected request without wondering which half of it landed.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::value::RawValue;

use revloop_core::Config;
use revloop_core::funnel::{
    CallKind, DimensionValues, Matcher, Message, StageHit, VALUE_NONE, dedup_key,
};
use revloop_core::ingest::{Admission, Cell, StageCount, admit, event_time, message_cells};
use revloop_core::money::Money;
use revloop_core::time::{MS_PER_MINUTE, Minute, Timestamp};
use revloop_store::{IngestItem, IngestReceipt};

use crate::error::{ApiError, DETAILS_LISTED_MAX, ErrorDetail};
use crate::segment::{MESSAGE_BYTES_MAX, SegmentParser};
use crate::telemetry::Telemetry;
use crate::writer::{GroupCommitter, SubmitError};

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
/// Largest count one record may carry.
pub const COUNT_VALUE_MAX: i64 = 1_000_000_000_000;
/// Longest window a pre-aggregated count may cover.
pub const COUNT_WINDOW_S_MAX: i64 = 86_400;

/// Where in a request a message stands, for error details.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    Body,
    Index(usize),
    Line(usize),
}

/// The ingest clock. Live, "now" is the receive time; in replay it is the event-time
/// watermark, the latest event time seen so far.
pub trait IngestClock {
    /// The receive time, used to correct client clock skew; `None` in replay, where events
    /// keep the time they carry.
    fn received_at(&self) -> Option<Timestamp>;
    /// "Now" for admitting an event with this event time.
    fn now_for(&mut self, event_time: Timestamp) -> Timestamp;
    /// "Now" for the commit (drives dedup window rotation).
    fn now(&self) -> Timestamp;
}

pub struct LiveClock(pub Timestamp);

impl IngestClock for LiveClock {
    fn received_at(&self) -> Option<Timestamp> {
        Some(self.0)
    }
    fn now_for(&mut self, _: Timestamp) -> Timestamp {
        self.0
    }
    fn now(&self) -> Timestamp {
        self.0
    }
}

/// Event time drives everything; see [`IngestClock`].
#[derive(Debug, Default)]
pub struct Watermark(pub Option<Timestamp>);

impl IngestClock for Watermark {
    fn received_at(&self) -> Option<Timestamp> {
        None
    }
    fn now_for(&mut self, event_time: Timestamp) -> Timestamp {
        let watermark = self.0.map_or(event_time, |w| w.max(event_time));
        self.0 = Some(watermark);
        watermark
    }
    fn now(&self) -> Timestamp {
        self.0.unwrap_or_default()
    }
}

/// Validated items of one request, ready to commit.
#[derive(Debug, Default)]
pub struct Prepared {
    pub items: Vec<IngestItem>,
    /// The write key a message body carried, when the request had no Authorization header.
    pub body_write_key: Option<String>,
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

struct Problems {
    details: Vec<ErrorDetail>,
    n_total: usize,
    first_code: Option<&'static str>,
    too_large: bool,
}

impl Problems {
    fn new() -> Problems {
        Problems {
            details: Vec::new(),
            n_total: 0,
            first_code: None,
            too_large: false,
        }
    }

    fn add(&mut self, code: &'static str, place: Place, field: Option<String>, message: String) {
        self.n_total += 1;
        self.first_code.get_or_insert(code);
        self.too_large |= code == "too_large";
        if self.details.len() < DETAILS_LISTED_MAX {
            let (index, line) = match place {
                Place::Body => (None, None),
                Place::Index(i) => (Some(i), None),
                Place::Line(l) => (None, Some(l)),
            };
            self.details.push(ErrorDetail {
                index,
                line,
                field,
                message,
            });
        }
    }

    /// `what` names the request ("message", "request"); `list` the array an index points into.
    fn into_result(self, what: &str, list: &str) -> Result<(), ApiError> {
        let Some(code) = self.first_code else {
            return Ok(());
        };
        let summary = if self.n_total == 1 && self.details.len() == 1 {
            let detail = &self.details[0];
            let place = match (detail.index, detail.line) {
                (Some(i), _) => format!("{list}[{i}]"),
                (_, Some(l)) => format!("line {l}"),
                _ => what.to_owned(),
            };
            let field = detail
                .field
                .as_deref()
                .map(|f| format!(".{f}"))
                .unwrap_or_default();
            format!("{place}{field}: {}; nothing was stored", detail.message)
        } else {
            let shown = self.details.len();
            let more = if self.n_total > shown {
                format!(" ({} more not listed)", self.n_total - shown)
            } else {
                String::new()
            };
            format!(
                "{} problems in this {what}{more}; nothing was stored",
                self.n_total
            )
        };
        let status = if self.too_large {
            StatusCode::PAYLOAD_TOO_LARGE
        } else {
            StatusCode::BAD_REQUEST
        };
        Err(ApiError::new(status, code, summary).with_details(self.details))
    }
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

    /// Validates messages and turns them into items. `implied_kind` is the call type of a
    /// single-call endpoint; `batch_sent_at` is a batch envelope's `sentAt`.
    pub fn prepare_messages<'a>(
        &self,
        messages: impl IntoIterator<Item = (Place, &'a str)>,
        implied_kind: Option<CallKind>,
        batch_sent_at: Option<&str>,
        clock: &mut dyn IngestClock,
    ) -> Result<Prepared, ApiError> {
        let mut problems = Problems::new();
        let mut prepared = Prepared::default();
        let batch_sent_at = match batch_sent_at.map(Timestamp::parse_rfc3339).transpose() {
            Ok(sent_at) => sent_at,
            Err(err) => {
                problems.add(
                    "wrong_type",
                    Place::Body,
                    Some("sentAt".into()),
                    err.to_string(),
                );
                None
            }
        };
        for (place, json) in messages {
            match self.prepare_message(json, implied_kind, batch_sent_at, clock) {
                Ok((item, write_key)) => {
                    if prepared.body_write_key.is_none() {
                        prepared.body_write_key = write_key;
                    }
                    prepared.items.push(item);
                }
                Err((code, field, message)) => problems.add(code, place, field, message),
            }
        }
        let what = if implied_kind.is_some() {
            "message"
        } else {
            "request"
        };
        problems.into_result(what, "batch")?;
        Ok(prepared)
    }

    #[allow(clippy::type_complexity)]
    fn prepare_message(
        &self,
        json: &str,
        implied_kind: Option<CallKind>,
        batch_sent_at: Option<Timestamp>,
        clock: &mut dyn IngestClock,
    ) -> Result<(IngestItem, Option<String>), (&'static str, Option<String>, String)> {
        let field = |name: &str| Some(name.to_owned());
        if json.len() > MESSAGE_BYTES_MAX {
            return Err((
                "too_large",
                None,
                format!(
                    "message is {} bytes; at most {MESSAGE_BYTES_MAX} are allowed",
                    json.len()
                ),
            ));
        }
        let parsed = self.parser.parse(json).map_err(|problem| {
            let code = if problem.message.contains("invalid type")
                || problem.message.contains("expected a")
            {
                "wrong_type"
            } else {
                "invalid_json"
            };
            (code, problem.field, problem.message)
        })?;
        let kind = parsed
            .call_kind(implied_kind)
            .map_err(|p| ("invalid_message", p.field, p.message))?;
        let has_identity =
            |id: &Option<Cow<str>>| id.as_deref().is_some_and(|s| !s.trim().is_empty());
        if !has_identity(&parsed.user_id) && !has_identity(&parsed.anonymous_id) {
            return Err((
                "missing_identity",
                field("userId"),
                "every message needs a userId or an anonymousId".into(),
            ));
        }
        let name = match kind {
            CallKind::Track => match parsed.event.as_deref() {
                Some(event) if !event.trim().is_empty() => Some(event),
                _ => {
                    return Err((
                        "invalid_message",
                        field("event"),
                        "a track call needs a non-empty event name".into(),
                    ));
                }
            },
            CallKind::Page | CallKind::Screen => parsed.name.as_deref(),
            _ => None,
        };
        let parse_time = |text: &Option<Cow<str>>, name: &str| {
            text.as_deref()
                .map(Timestamp::parse_rfc3339)
                .transpose()
                .map_err(|err| ("wrong_type", Some(name.to_owned()), err.to_string()))
        };
        let timestamp = parse_time(&parsed.timestamp, "timestamp")?;
        let sent_at = parse_time(&parsed.sent_at, "sentAt")?.or(batch_sent_at);
        let event_time = match clock.received_at() {
            Some(received_at) => event_time(timestamp, sent_at, received_at),
            None => timestamp.or(sent_at).ok_or_else(|| {
                (
                    "invalid_message",
                    field("timestamp"),
                    "replay needs a timestamp on every message".to_owned(),
                )
            })?,
        };
        let now = clock.now_for(event_time);
        let admission = admit(event_time, now, &self.config.ingest);
        match admission {
            Admission::TooOld => {
                return Err((
                    "timestamp_out_of_range",
                    field("timestamp"),
                    format!(
                        "event time {event_time} is more than {} before now ({now}); such events are rejected",
                        self.config.ingest.max_event_age
                    ),
                ));
            }
            Admission::TooFarAhead => {
                return Err((
                    "timestamp_out_of_range",
                    field("timestamp"),
                    format!(
                        "event time {event_time} is more than {} after now ({now}) (is the client clock wrong?)",
                        self.config.ingest.max_clock_ahead
                    ),
                ));
            }
            Admission::Counted | Admission::Late => {}
        }
        let key = match &parsed.message_id {
            Some(id) if !id.is_empty() => dedup_key(id),
            // Without a messageId, a retry is recognised by its identical content.
            _ => dedup_key(&format!("content:{}:{json}", kind.as_str())),
        };
        let message = Message {
            kind,
            name,
            message_id: parsed.message_id.as_deref().unwrap_or_default(),
            event_time,
            fields: parsed.fields,
        };
        let cells = message_cells(&self.matcher, self.config.shop.currency, &message)
            .map_err(|p| ("wrong_type", Some(p.field), p.message))?;
        Ok((
            IngestItem {
                dedup_key: key,
                cells,
                late: admission == Admission::Late,
            },
            parsed.write_key.map(Cow::into_owned),
        ))
    }

    /// Parses a `/v1/batch` body.
    pub fn prepare_batch(
        &self,
        body: &str,
        clock: &mut dyn IngestClock,
    ) -> Result<Prepared, ApiError> {
        #[derive(Deserialize)]
        struct Envelope<'a> {
            #[serde(borrow)]
            batch: Vec<&'a RawValue>,
            #[serde(rename = "writeKey", default)]
            write_key: Option<String>,
            #[serde(rename = "sentAt", default)]
            sent_at: Option<String>,
        }
        let envelope: Envelope = serde_json::from_str(body).map_err(|err| {
            let code = if err.is_data() {
                "wrong_type"
            } else {
                "invalid_json"
            };
            ApiError::bad_request(code, format!("batch body: {err}; nothing was stored"))
        })?;
        if envelope.batch.len() > BATCH_MESSAGES_MAX {
            return Err(ApiError::bad_request(
                "too_many_messages",
                format!(
                    "batch holds {} messages; at most {BATCH_MESSAGES_MAX} are allowed; nothing was stored",
                    envelope.batch.len()
                ),
            ));
        }
        let messages = envelope
            .batch
            .iter()
            .enumerate()
            .map(|(i, raw)| (Place::Index(i), raw.get()));
        let mut prepared =
            self.prepare_messages(messages, None, envelope.sent_at.as_deref(), clock)?;
        if envelope.write_key.is_some() {
            prepared.body_write_key = envelope.write_key;
        }
        Ok(prepared)
    }

    /// Parses an NDJSON body of Segment messages, one per line; blank lines are skipped.
    pub fn prepare_ndjson(
        &self,
        body: &str,
        clock: &mut dyn IngestClock,
    ) -> Result<Prepared, ApiError> {
        let lines = non_blank_lines(body)?;
        self.prepare_messages(lines, None, None, clock)
    }

    /// Parses pre-aggregated counts: `{"counts": [...]}` or NDJSON records.
    pub fn prepare_counts(
        &self,
        body: &str,
        ndjson: bool,
        clock: &mut dyn IngestClock,
    ) -> Result<Prepared, ApiError> {
        let records: Vec<(Place, &str)> = if ndjson {
            non_blank_lines(body)?
        } else {
            #[derive(Deserialize)]
            struct Envelope<'a> {
                #[serde(borrow)]
                counts: Vec<&'a RawValue>,
            }
            let envelope: Envelope = serde_json::from_str(body).map_err(|err| {
                let code = if err.is_data() {
                    "wrong_type"
                } else {
                    "invalid_json"
                };
                ApiError::bad_request(code, format!("counts body: {err}; nothing was stored"))
            })?;
            envelope
                .counts
                .iter()
                .enumerate()
                .map(|(i, raw)| (Place::Index(i), raw.get()))
                .collect()
        };
        if records.len() > COUNTS_RECORDS_MAX {
            return Err(ApiError::bad_request(
                "too_many_messages",
                format!(
                    "{} count records; at most {COUNTS_RECORDS_MAX} are allowed per request; nothing was stored",
                    records.len()
                ),
            ));
        }
        let mut problems = Problems::new();
        let mut prepared = Prepared::default();
        for (place, json) in records {
            match self.prepare_count(json, clock) {
                Ok(item) => prepared.items.push(item),
                Err((code, field, message)) => problems.add(code, place, field, message),
            }
        }
        problems.into_result("request", "counts")?;
        Ok(prepared)
    }

    #[allow(clippy::type_complexity)]
    fn prepare_count(
        &self,
        json: &str,
        clock: &mut dyn IngestClock,
    ) -> Result<IngestItem, (&'static str, Option<String>, String)> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Record {
            funnel: String,
            stage: String,
            window_start: String,
            #[serde(default = "one_minute")]
            window_s: i64,
            count: i64,
            #[serde(default)]
            dimensions: BTreeMap<String, String>,
            #[serde(default)]
            revenue: Option<serde_json::Value>,
            #[serde(default)]
            id: Option<String>,
        }
        fn one_minute() -> i64 {
            60
        }
        let field = |name: &str| Some(name.to_owned());
        let record: Record = serde_json::from_str(json).map_err(|err| {
            let code = if err.is_data() {
                "wrong_type"
            } else {
                "invalid_json"
            };
            let text = err.to_string();
            (
                code,
                None,
                text.split(" at line ").next().unwrap_or(&text).to_owned(),
            )
        })?;
        let (funnel_index, funnel) = self
            .config
            .funnels
            .iter()
            .enumerate()
            .find(|(_, f)| f.id == record.funnel)
            .ok_or_else(|| {
                (
                    "invalid_message",
                    field("funnel"),
                    format!("no funnel `{}` in the config", record.funnel),
                )
            })?;
        let stage_index = funnel
            .stages
            .iter()
            .position(|s| s.id == record.stage)
            .ok_or_else(|| {
                (
                    "invalid_message",
                    field("stage"),
                    format!("funnel `{}` has no stage `{}`", funnel.id, record.stage),
                )
            })?;
        let window_start = Timestamp::parse_rfc3339(&record.window_start)
            .map_err(|err| ("wrong_type", field("window_start"), err.to_string()))?;
        if window_start.millis() % MS_PER_MINUTE != 0 {
            return Err((
                "invalid_message",
                field("window_start"),
                "must start on a whole minute".into(),
            ));
        }
        if record.window_s < 60 || record.window_s % 60 != 0 || record.window_s > COUNT_WINDOW_S_MAX
        {
            return Err((
                "invalid_message",
                field("window_s"),
                format!("must be a whole number of minutes, from 60 to {COUNT_WINDOW_S_MAX}"),
            ));
        }
        if !(0..=COUNT_VALUE_MAX).contains(&record.count) {
            return Err((
                "invalid_message",
                field("count"),
                format!("must be from 0 to {COUNT_VALUE_MAX}"),
            ));
        }
        let mut values = vec![VALUE_NONE; self.config.dimensions.len()];
        for (name, value) in &record.dimensions {
            let index = self
                .config
                .dimensions
                .iter()
                .position(|d| d.name == *name)
                .ok_or_else(|| {
                    (
                        "invalid_message",
                        Some(format!("dimensions.{name}")),
                        "no such dimension in the config".to_owned(),
                    )
                })?;
            values[index] = value;
        }
        let dimension_values = DimensionValues::new(values);
        let revenue_minor = match &record.revenue {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::Number(n)) => Some(n.to_string()),
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(_) => {
                return Err((
                    "wrong_type",
                    field("revenue"),
                    "must be a decimal number or string".into(),
                ));
            }
        }
        .map(|text| {
            Money::parse_decimal(&text, self.config.shop.currency)
                .map(|m| m.minor)
                .map_err(|err| ("wrong_type", field("revenue"), err.to_string()))
        })
        .transpose()?;
        // Counts are authoritative aggregates, often loaded hours later: they are exempt from
        // the allowed lateness, but not from the accepted range of event times.
        let now = clock.now_for(window_start);
        match admit(window_start, now, &self.config.ingest) {
            Admission::TooOld | Admission::TooFarAhead => {
                return Err((
                    "timestamp_out_of_range",
                    field("window_start"),
                    format!("{window_start} is outside the accepted range around now ({now})"),
                ));
            }
            Admission::Counted | Admission::Late => {}
        }
        let key = match &record.id {
            Some(id) => dedup_key(&format!("count-id:{id}")),
            None => dedup_key(&format!(
                "count:{}|{}|{}|{}|{:?}",
                record.funnel,
                record.stage,
                window_start.millis(),
                record.window_s,
                record.dimensions
            )),
        };
        let n_minutes = record.window_s / 60;
        let hit = StageHit {
            funnel: funnel_index,
            stage: stage_index,
        };
        let cells = (0..n_minutes)
            .map(|offset| {
                let share = |total: i64| total / n_minutes + i64::from(offset < total % n_minutes);
                let count = StageCount {
                    n_events: share(record.count),
                    revenue_minor: revenue_minor.map_or(0, share),
                    n_revenue_events: if revenue_minor.is_some() {
                        share(record.count)
                    } else {
                        0
                    },
                };
                let cell = Cell {
                    hit,
                    minute: Minute(window_start.minute().0 + offset),
                    dimension_values: dimension_values.clone(),
                };
                (cell, count)
            })
            .filter(|(_, count)| count.n_events != 0 || count.revenue_minor != 0)
            .collect();
        Ok(IngestItem {
            dedup_key: key,
            cells,
            late: false,
        })
    }

    /// Commits prepared items, waiting for the group commit.
    pub async fn commit(&self, now: Timestamp, prepared: Prepared) -> Result<Outcome, ApiError> {
        let kinds = ItemKinds::of(&prepared.items);
        let receiver = self
            .committer
            .submit(now, prepared.items)
            .map_err(|err| self.submit_error(err))?;
        let receipt = receiver
            .await
            .map_err(|_| ApiError::internal("the writer stopped", "reply channel closed"))?
            .map_err(|err| {
                self.telemetry.reject("commit_failed");
                ApiError::unavailable(
                    "commit_failed",
                    format!("could not store the events ({err}); nothing was stored, retry"),
                    1,
                )
            })?;
        Ok(self.account(&kinds, &receipt))
    }

    /// Queues prepared items from a non-async thread, waiting for room in the queue. The
    /// returned handle waits for the commit, so a caller can prepare the next batch meanwhile.
    pub fn enqueue_blocking(
        &self,
        now: Timestamp,
        prepared: Prepared,
    ) -> Result<PendingCommit<'_>, ApiError> {
        let kinds = ItemKinds::of(&prepared.items);
        let receiver = self
            .committer
            .submit_waiting(now, prepared.items)
            .map_err(|err| self.submit_error(err))?;
        Ok(PendingCommit {
            ingestor: self,
            kinds,
            receiver,
        })
    }

    fn submit_error(&self, err: SubmitError) -> ApiError {
        match err {
            SubmitError::QueueFull => {
                self.telemetry.reject("queue_full");
                ApiError::unavailable(
                    "queue_full",
                    "the ingest queue is full; nothing was stored, retry shortly",
                    1,
                )
            }
            SubmitError::WriterStopped => {
                ApiError::internal("the writer stopped", "channel closed")
            }
        }
    }

    fn account(&self, kinds: &ItemKinds, receipt: &IngestReceipt) -> Outcome {
        let mut outcome = Outcome::default();
        for (index, is_new) in receipt.is_new.iter().enumerate() {
            if !is_new {
                outcome.duplicates += 1;
            } else if kinds.late[index] {
                outcome.late += 1;
            } else if kinds.ignored[index] {
                outcome.ignored += 1;
            } else {
                outcome.counted += 1;
            }
        }
        let add = |counter: &std::sync::atomic::AtomicU64, n: usize| {
            counter.fetch_add(n as u64, Ordering::Relaxed)
        };
        add(&self.telemetry.messages_counted, outcome.counted);
        add(&self.telemetry.messages_duplicate, outcome.duplicates);
        add(&self.telemetry.messages_late, outcome.late);
        add(&self.telemetry.messages_ignored, outcome.ignored);
        outcome
    }
}

/// A commit under way; see [`Ingestor::enqueue_blocking`].
pub struct PendingCommit<'a> {
    ingestor: &'a Ingestor,
    kinds: ItemKinds,
    receiver: tokio::sync::oneshot::Receiver<crate::writer::CommitResult>,
}

impl PendingCommit<'_> {
    /// Blocks the calling (non-async) thread until the commit is durable.
    pub fn wait(self) -> Result<Outcome, ApiError> {
        let receipt = self
            .receiver
            .blocking_recv()
            .map_err(|_| ApiError::internal("the writer stopped", "reply channel closed"))?
            .map_err(|err| {
                ApiError::unavailable(
                    "commit_failed",
                    format!("could not store the events: {err}"),
                    1,
                )
            })?;
        Ok(self.ingestor.account(&self.kinds, &receipt))
    }
}

struct ItemKinds {
    late: Vec<bool>,
    ignored: Vec<bool>,
}

impl ItemKinds {
    fn of(items: &[IngestItem]) -> ItemKinds {
        ItemKinds {
            late: items.iter().map(|item| item.late).collect(),
            ignored: items.iter().map(|item| item.cells.is_empty()).collect(),
        }
    }
}

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

/// Decodes a request body: gunzips when asked, with the decompressed size bounded by `limit`
/// (a gzip bomb is a 413, not an out-of-memory), then checks it is UTF-8.
pub fn decode_body(
    bytes: &[u8],
    gzip: bool,
    limit: usize,
) -> Result<std::borrow::Cow<'_, str>, ApiError> {
    let too_large = |size: String| {
        ApiError::too_large(format!(
            "body is {size}; at most {limit} bytes are allowed; nothing was stored"
        ))
    };
    let decoded: std::borrow::Cow<[u8]> = if gzip {
        let mut out = Vec::with_capacity(bytes.len().saturating_mul(4).min(limit));
        let mut decoder = flate2::read::GzDecoder::new(bytes).take(limit as u64 + 1);
        decoder.read_to_end(&mut out).map_err(|err| {
            ApiError::bad_request(
                "bad_gzip",
                format!("the gzip body is truncated or corrupt ({err}); nothing was stored"),
            )
        })?;
        if out.len() > limit {
            return Err(too_large(format!(
                "more than {limit} bytes once decompressed"
            )));
        }
        std::borrow::Cow::Owned(out)
    } else {
        if bytes.len() > limit {
            return Err(too_large(format!("{} bytes", bytes.len())));
        }
        std::borrow::Cow::Borrowed(bytes)
    };
    match decoded {
        std::borrow::Cow::Borrowed(b) => std::str::from_utf8(b)
            .map(std::borrow::Cow::Borrowed)
            .map_err(utf8_error),
        std::borrow::Cow::Owned(v) => String::from_utf8(v)
            .map(std::borrow::Cow::Owned)
            .map_err(|e| utf8_error(e.utf8_error())),
    }
}

fn utf8_error(err: std::str::Utf8Error) -> ApiError {
    ApiError::bad_request(
        "invalid_utf8",
        format!(
            "the body is not valid UTF-8 (at byte {}); nothing was stored",
            err.valid_up_to()
        ),
    )
}
