//! Segment messages: single calls, `/v1/batch` envelopes and NDJSON bulk bodies, validated
//! into items. Identity, event name, timestamps and admission are checked here; the wire
//! parsing is [`crate::segment`]'s and the cells are the core's.
//!
//! It never commits; [`crate::ingest::accounting`] does.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use revloop_core::funnel::{
    CallKind, DIMENSION_VALUE_LEN_MAX, Message, VALUE_CUT_MARK, VALUE_ESCAPE, VALUE_INVALID,
    VALUE_NONE, VALUE_OTHER, ValueNote, ValueNoteKind, dedup_key,
};
use revloop_core::ingest::{Admission, admit, event_time, message_cells_noted};
use revloop_core::time::Timestamp;
use revloop_store::IngestItem;

use crate::http::ApiError;
use crate::ingest::problems::{Problem, Problems};
use crate::ingest::{
    BATCH_MESSAGES_MAX, IngestClock, Ingestor, MessageProblem, Place, Prepared, non_blank_lines,
};
use crate::segment::{InvalidField, MESSAGE_BYTES_MAX};

/// A message that will be counted, with what of it could not be kept as sent.
struct Accepted {
    item: IngestItem,
    write_key: Option<String>,
    notices: Vec<Problem>,
}

impl Ingestor {
    /// Validates messages and turns them into items. `implied_kind` is the call type of a
    /// single-call endpoint; `batch_sent_at` is a batch envelope's `sentAt`.
    ///
    /// A single call (with an `implied_kind`) is refused whole when its message is bad, since
    /// nothing valid is lost. Messages of a batch or NDJSON body are judged one by one: a bad
    /// one lands in [`Prepared::rejected`] and the rest are still prepared. Either way, a
    /// message counted with a part not kept as sent adds to [`Prepared::notices`].
    pub fn prepare_messages<'a>(
        &self,
        messages: impl IntoIterator<Item = (Place, &'a str)>,
        implied_kind: Option<CallKind>,
        batch_sent_at: Option<&str>,
        clock: &mut dyn IngestClock,
    ) -> Result<Prepared, ApiError> {
        // The envelope's own `sentAt` concerns every message: it refuses the request.
        let batch_sent_at = match batch_sent_at.map(Timestamp::parse_rfc3339).transpose() {
            Ok(sent_at) => sent_at,
            Err(err) => {
                let mut envelope = Problems::new();
                envelope.add(
                    "wrong_type",
                    Place::Body,
                    Some("sentAt".into()),
                    err.to_string(),
                );
                envelope.into_result("request", "batch")?;
                None
            }
        };
        let mut problems = Problems::new();
        let mut prepared = Prepared::default();
        let one_by_one = implied_kind.is_none();
        for (place, json) in messages {
            match self.prepare_message(json, implied_kind, batch_sent_at, clock) {
                Ok(accepted) => {
                    if prepared.body_write_key.is_none() {
                        prepared.body_write_key = accepted.write_key;
                    }
                    prepared.items.push(accepted.item);
                    let notices = accepted.notices.into_iter();
                    prepared
                        .notices
                        .extend(notices.map(|(code, field, message)| {
                            MessageProblem::new(place, code, field, message, json)
                        }));
                }
                Err((code, field, message)) if one_by_one => prepared
                    .rejected
                    .push(MessageProblem::new(place, code, field, message, json)),
                Err((code, field, message)) => problems.add(code, place, field, message),
            }
        }
        // Only a single call gathers problems here (a batch takes message by message), and its one
        // message stands at `Place::Body`: no list is named.
        problems.into_result("message", "")?;
        Ok(prepared)
    }

    fn prepare_message(
        &self,
        json: &str,
        implied_kind: Option<CallKind>,
        batch_sent_at: Option<Timestamp>,
        clock: &mut dyn IngestClock,
    ) -> Result<Accepted, Problem> {
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
        let admission = self.admit_message(event_time, clock)?;
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
        let invalid_slots: Vec<usize> = parsed.invalid.iter().map(|f| f.slot).collect();
        let mut notes = Vec::new();
        let cells = message_cells_noted(
            &self.matcher,
            self.config.shop.currency,
            &message,
            &invalid_slots,
            &mut notes,
        )
        .map_err(|p| (p.code, Some(p.field), p.message))?;
        let notices = notes
            .iter()
            .map(|note| self.value_notice(note, &parsed.invalid))
            .collect();
        // A named call no stage listens to, for the ignored-names list.
        let ignored_name = name
            .filter(|_| cells.is_empty())
            .map(|name| (kind, name.to_owned()));
        Ok(Accepted {
            item: IngestItem {
                dedup_key: key,
                cells,
                late: admission == Admission::Late,
                ignored_name,
                count_body: None,
            },
            write_key: parsed.write_key.map(Cow::into_owned),
            notices,
        })
    }

    /// The notice of a field value not kept as sent.
    fn value_notice(&self, note: &ValueNote, invalid: &[InvalidField]) -> Problem {
        let field = self.matcher.slot_path(note.slot).to_string();
        let reason = invalid
            .iter()
            .find(|f| f.slot == note.slot)
            .map(|f| f.reason);
        let message = match note.kind {
            ValueNoteKind::Invalid => format!(
                "{}; counted as `{VALUE_INVALID}`",
                reason.unwrap_or("holds a NUL character")
            ),
            ValueNoteKind::RevenueDropped => format!(
                "{}; the event is counted without revenue",
                reason.unwrap_or("is not an amount in the shop currency")
            ),
            ValueNoteKind::Cut => format!(
                "is longer than {DIMENSION_VALUE_LEN_MAX} bytes; counted cut, ending in \
                 `{VALUE_CUT_MARK}`"
            ),
            ValueNoteKind::Escaped => format!(
                "reads like a marker (`{VALUE_NONE}`, `{VALUE_OTHER}`, `{VALUE_INVALID}`, a \
                 leading `{VALUE_ESCAPE}` or a trailing `{VALUE_CUT_MARK}`); counted with a \
                 leading `{VALUE_ESCAPE}`"
            ),
        };
        (note.kind.code(), Some(field), message)
    }

    /// Whether a message with this event time is counted or late; one outside the accepted
    /// range around now is a problem.
    fn admit_message(
        &self,
        event_time: Timestamp,
        clock: &mut dyn IngestClock,
    ) -> Result<Admission, Problem> {
        let field = |name: &str| Some(name.to_owned());
        let now = clock.now_for(event_time);
        let admission = admit(event_time, now, &self.config.ingest);
        match admission {
            Admission::TooOld => Err((
                "timestamp_out_of_range",
                field("timestamp"),
                format!(
                    "event time {event_time} is more than {} before now ({now}); such events are rejected",
                    self.config.ingest.max_event_age
                ),
            )),
            Admission::TooFarAhead => Err((
                "timestamp_out_of_range",
                field("timestamp"),
                format!(
                    "event time {event_time} is more than {} after now ({now}) (is the client clock wrong?)",
                    self.config.ingest.max_clock_ahead
                ),
            )),
            Admission::Counted | Admission::Late => Ok(admission),
        }
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
}
