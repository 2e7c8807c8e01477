//! The ingest endpoints: Segment's `/v1/*` single calls and `/v1/batch`, the NDJSON bulk load,
//! and pre-aggregated counts. Each reads its body under its own limit, authorizes (from the
//! header, or else from a write key in the body), and hands the text to the ingest path.
//!
//! It never validates messages itself: that is [`crate::ingest`]'s job, shared with `replay`.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, post};
use revloop_api::ingest::{IngestReply, MessageProblem as WireProblem};
use revloop_core::funnel::CallKind;
use revloop_store::Role;

use crate::api::{AppState, identify};
use crate::http::auth::credential;
use crate::http::{ApiError, decode_body, is_gzip, read_body};
use crate::ingest::{
    BATCH_BYTES_MAX, BULK_BYTES_MAX, COUNTS_BYTES_MAX, LiveClock, MessageProblem, Outcome,
    PROBLEMS_LISTED_MAX, Place, Prepared,
};
use crate::segment::MESSAGE_BYTES_MAX;

/// What an ingest endpoint takes.
#[derive(Debug, Clone, Copy)]
pub enum BodyKind {
    Single(CallKind),
    Batch,
    Ndjson,
    Counts,
}

impl BodyKind {
    fn limit(self) -> usize {
        match self {
            BodyKind::Single(_) => MESSAGE_BYTES_MAX,
            BodyKind::Batch => BATCH_BYTES_MAX,
            BodyKind::Ndjson => BULK_BYTES_MAX,
            BodyKind::Counts => COUNTS_BYTES_MAX,
        }
    }
}

/// A POST route for one kind of ingest body, with that kind's body limit.
pub fn ingest_route(kind: BodyKind) -> MethodRouter<AppState> {
    post(move |state: State<AppState>, headers: HeaderMap, body: Result<Bytes, BytesRejection>| async move {
        ingest(state, headers, body, kind).await
    })
    .layer(DefaultBodyLimit::max(kind.limit()))
}

async fn ingest(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
    kind: BodyKind,
) -> Response {
    match ingest_inner(&state, &headers, body, kind).await {
        Ok(reply) => axum::Json(reply).into_response(),
        Err(err) => {
            state.telemetry.reject(err.code);
            err.into_response()
        }
    }
}

async fn ingest_inner(
    state: &AppState,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    kind: BodyKind,
) -> Result<IngestReply, ApiError> {
    let now = state.clock.now();
    // Segment lets a single message or a batch carry its write key in the body, so those are
    // read before they are authorized. Every other body is authorized before a byte of it is
    // decoded: an unauthenticated caller learns nothing from its errors (which name the
    // configured funnels and stages) and costs no decompression.
    let body_may_hold_key = matches!(kind, BodyKind::Single(_) | BodyKind::Batch);
    let authorized_first = credential(headers)?.is_some() || !body_may_hold_key;
    let mut key_name = None;
    if authorized_first {
        key_name = Some(identify(state, headers, None, Role::Ingest, now).await?);
    }
    let limit = kind.limit();
    let bytes = read_body(body, limit)?;
    let text = decode_body(&bytes, is_gzip(headers)?, limit)?;
    let ndjson = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-ndjson"));
    let mut clock = LiveClock(now);
    let ingestor = &state.ingestor;
    let prepared: Prepared = match kind {
        BodyKind::Single(call) => {
            ingestor.prepare_messages([(Place::Body, &*text)], Some(call), None, &mut clock)?
        }
        BodyKind::Batch => ingestor.prepare_batch(&text, &mut clock)?,
        BodyKind::Ndjson => ingestor.prepare_ndjson(&text, &mut clock)?,
        BodyKind::Counts => ingestor.prepare_counts(&text, ndjson, &mut clock)?,
    };
    let key_name = match key_name {
        Some(name) => name,
        None => {
            identify(
                state,
                headers,
                prepared.body_write_key.as_deref(),
                Role::Ingest,
                now,
            )
            .await?
        }
    };
    // Rejected messages are counted by reason in the commit (`Ingestor::commit`), with the
    // problem log; `revloop_ingest_rejected_total` counts whole requests refused.
    let listing = ProblemListing::of(&prepared);
    let outcome = ingestor.commit(now, prepared, &key_name).await?;
    if matches!(kind, BodyKind::Counts) {
        let records = &state.telemetry.count_records;
        records.fetch_add(outcome.counted as u64, std::sync::atomic::Ordering::Relaxed);
    }
    Ok(listing.reply(outcome))
}

/// The problems a reply lists: every rejection and every notice up to
/// [`PROBLEMS_LISTED_MAX`] each, the rest only counted. Made before the commit, which takes
/// the prepared request.
struct ProblemListing {
    n_rejected: usize,
    rejections: Vec<WireProblem>,
    notices: Vec<WireProblem>,
    n_unlisted: usize,
}

impl ProblemListing {
    fn of(prepared: &Prepared) -> ProblemListing {
        let list = |problems: &[MessageProblem]| -> Vec<WireProblem> {
            let listed = &problems[..problems.len().min(PROBLEMS_LISTED_MAX)];
            listed.iter().map(wire_problem).collect()
        };
        let rejections = list(&prepared.rejected);
        let notices = list(&prepared.notices);
        let n_listed = rejections.len() + notices.len();
        ProblemListing {
            n_rejected: prepared.rejected.len(),
            rejections,
            notices,
            n_unlisted: prepared.rejected.len() + prepared.notices.len() - n_listed,
        }
    }

    fn reply(self, outcome: Outcome) -> IngestReply {
        IngestReply {
            success: true,
            counted: outcome.counted,
            duplicates: outcome.duplicates,
            late: outcome.late,
            ignored: outcome.ignored,
            rejected: self.n_rejected,
            rejections: self.rejections,
            notices: self.notices,
            unlisted: self.n_unlisted,
        }
    }
}

fn wire_problem(problem: &MessageProblem) -> WireProblem {
    let (index, line) = match problem.place {
        Place::Body => (None, None),
        Place::Index(i) => (Some(i), None),
        Place::Line(l) => (None, Some(l)),
    };
    WireProblem {
        index,
        line,
        field: problem.field.clone(),
        code: problem.code.to_owned(),
        message: problem.message.clone(),
    }
}
