//! Commit accounting: prepared items handed to the group commit, with the request's rejected
//! messages and notices for the problem log, and each item's fate (counted, duplicate, late,
//! ignored) tallied into the reply and the process counters.
//!
//! It never validates; what reaches it has been prepared.

use std::sync::atomic::Ordering;

use revloop_core::time::Timestamp;
use revloop_store::{IngestItem, IngestReceipt, ProblemOutcome, ProblemRow};

use axum::http::StatusCode;

use crate::http::{ApiError, ErrorDetail};
use crate::ingest::{Ingestor, MessageProblem, Outcome, Place, Prepared};
use crate::writer::{CommitError, CommitResult, Submission, SubmitError};

impl Ingestor {
    /// Commits prepared items, with the request's problems logged under `key_name` (the write
    /// key or token that sent it), waiting for the group commit.
    pub async fn commit(
        &self,
        now: Timestamp,
        prepared: Prepared,
        key_name: &str,
    ) -> Result<Outcome, ApiError> {
        let kinds = ItemKinds::of(&prepared.items);
        let reasons = ProblemReasons::of(&prepared);
        let submission = Submission {
            problems: logged_problems(&prepared, now, key_name),
            items: prepared.items,
        };
        let receiver = self
            .committer
            .submit(now, submission)
            .map_err(|err| self.submit_error(err))?;
        let receipt = receiver
            .await
            .map_err(|_| ApiError::internal("the writer stopped", "reply channel closed"))?
            .map_err(|err| match err {
                CommitError::CountConflict(items) => count_conflict(&items, &kinds.count_ids),
                CommitError::Failed(err) => {
                    // The database's own words go to the log, never to the caller.
                    tracing::error!("an ingest commit failed: {err}");
                    ApiError::unavailable(
                        "commit_failed",
                        "could not store the events; nothing was stored, retry",
                        1,
                    )
                }
            })?;
        // Counted once committed: a request answered 503 is retried, and would count twice.
        self.telemetry
            .message_problems(reasons.rejected, reasons.notices);
        Ok(self.account(&kinds, &receipt))
    }

    /// Queues prepared items from a non-async thread, waiting for room in the queue. The
    /// returned handle waits for the commit, so a caller can prepare the next batch meanwhile.
    /// Replay reports its own problems: none go to the problem log.
    pub fn enqueue_blocking(
        &self,
        now: Timestamp,
        prepared: Prepared,
    ) -> Result<PendingCommit<'_>, ApiError> {
        let kinds = ItemKinds::of(&prepared.items);
        let receiver = self
            .committer
            .submit_waiting(
                now,
                Submission {
                    items: prepared.items,
                    problems: Vec::new(),
                },
            )
            .map_err(|err| self.submit_error(err))?;
        Ok(PendingCommit {
            ingestor: self,
            kinds,
            receiver,
        })
    }

    fn submit_error(&self, err: SubmitError) -> ApiError {
        match err {
            SubmitError::QueueFull => ApiError::unavailable(
                "queue_full",
                "the ingest queue is full; nothing was stored, retry shortly",
                1,
            ),
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

/// The 409 for count records that repeat a stored id with a different body, naming each by its
/// index among the request's records and its id.
fn count_conflict(items: &[usize], count_ids: &[Option<String>]) -> ApiError {
    let details = items
        .iter()
        .map(|index| {
            let id = count_ids[*index].as_deref().unwrap_or_default();
            ErrorDetail {
                index: Some(*index),
                line: None,
                field: Some("id".into()),
                message: format!(
                    "id `{id}` was already stored with a different body; a stored count is \
                     never replaced: send the difference under a new id"
                ),
            }
        })
        .collect();
    let ids: Vec<&str> = items
        .iter()
        .filter_map(|index| count_ids[*index].as_deref())
        .collect();
    ApiError::new(
        StatusCode::CONFLICT,
        "count_conflict",
        format!(
            "count record id(s) {} already stored with a different body; nothing in this \
             request was stored",
            ids.join(", ")
        ),
    )
    .with_details(details)
}

/// A commit under way; see [`Ingestor::enqueue_blocking`].
pub struct PendingCommit<'a> {
    ingestor: &'a Ingestor,
    kinds: ItemKinds,
    receiver: tokio::sync::oneshot::Receiver<CommitResult>,
}

impl PendingCommit<'_> {
    /// Blocks the calling (non-async) thread until the commit is durable.
    pub fn wait(self) -> Result<Outcome, ApiError> {
        let receipt = self
            .receiver
            .blocking_recv()
            .map_err(|_| ApiError::internal("the writer stopped", "reply channel closed"))?
            .map_err(|err| match err {
                CommitError::CountConflict(items) => count_conflict(&items, &self.kinds.count_ids),
                CommitError::Failed(err) => ApiError::unavailable(
                    "commit_failed",
                    format!("could not store the events: {err}"),
                    1,
                ),
            })?;
        Ok(self.ingestor.account(&self.kinds, &receipt))
    }
}

struct ItemKinds {
    late: Vec<bool>,
    ignored: Vec<bool>,
    /// The id of each count record that has one, to name it in a conflict.
    count_ids: Vec<Option<String>>,
}

impl ItemKinds {
    fn of(items: &[IngestItem]) -> ItemKinds {
        ItemKinds {
            late: items.iter().map(|item| item.late).collect(),
            ignored: items.iter().map(|item| item.cells.is_empty()).collect(),
            count_ids: items
                .iter()
                .map(|item| item.count_body.as_ref().map(|body| body.id.clone()))
                .collect(),
        }
    }
}

/// The reasons of a request's problems, for the process counters.
struct ProblemReasons {
    rejected: Vec<&'static str>,
    notices: Vec<&'static str>,
}

impl ProblemReasons {
    fn of(prepared: &Prepared) -> ProblemReasons {
        let codes = |problems: &[MessageProblem]| problems.iter().map(|p| p.code).collect();
        ProblemReasons {
            rejected: codes(&prepared.rejected),
            notices: codes(&prepared.notices),
        }
    }
}

/// A request's rejected messages and notices as problem log entries, in request order.
fn logged_problems(prepared: &Prepared, now: Timestamp, key_name: &str) -> Vec<ProblemRow> {
    let entry = |outcome: ProblemOutcome, problem: &MessageProblem| ProblemRow {
        id: 0,
        at: now,
        key_name: key_name.to_owned(),
        outcome,
        code: problem.code.to_owned(),
        field: problem.field.clone(),
        message: problem.message.clone(),
        body: problem.body.clone(),
        body_cut: problem.body_cut,
    };
    let mut problems: Vec<(Place, ProblemRow)> = prepared
        .rejected
        .iter()
        .map(|p| (p.place, entry(ProblemOutcome::Rejected, p)))
        .chain(
            prepared
                .notices
                .iter()
                .map(|p| (p.place, entry(ProblemOutcome::Notice, p))),
        )
        .collect();
    problems.sort_by_key(|(place, _)| match place {
        Place::Body => 0,
        Place::Index(n) | Place::Line(n) => *n,
    });
    problems.into_iter().map(|(_, row)| row).collect()
}
