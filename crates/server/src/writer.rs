//! Group commit: many ingest requests, one transaction.
//!
//! Handlers hand their prepared items to a dedicated writer thread through a bounded queue and
//! wait. The writer takes everything queued (up to a limit), commits it in one transaction, and
//! answers each caller only after the commit returned. A 200 therefore always means durable,
//! while the fsync cost is shared by every request that arrived during the previous commit.
//! The requests' rejected messages and notices ride in the same group, so the problem log is
//! durable exactly when they are answered, at no extra transaction.
//! A commit that fails for a transient reason is tried again a few times, within a short
//! budget (`http::retry`), before its callers are answered with the failure.
//! It never validates what it is handed; the ingest path has done that.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::Instant;

use revloop_core::Timestamp;
use revloop_store::{IngestGroup, IngestItem, IngestReceipt, ProblemRow, Store, StoreError};

use crate::telemetry::Telemetry;

/// Requests that may wait for the writer; past this, ingest answers 503 with Retry-After.
pub const QUEUE_REQUESTS_MAX: usize = 512;
/// Items (messages or count records) and logged problems in one group commit. Bounds a
/// transaction's size.
pub const GROUP_ITEMS_MAX: usize = 50_000;

pub type CommitResult = Result<IngestReceipt, CommitError>;

/// Why a job's items were not committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommitError {
    /// Count records of the job (by index in it) repeat a stored id with a different body. None
    /// of the job was stored; the rest of its group was committed without it.
    CountConflict(Vec<usize>),
    /// The group's transaction failed, also when tried again; nothing of it was stored. The
    /// text describes it without the database's own words (those are logged).
    Failed(String),
}

impl std::fmt::Display for CommitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CommitError::CountConflict(items) => {
                write!(
                    f,
                    "{} count record(s) conflict with stored ones",
                    items.len()
                )
            }
            CommitError::Failed(message) => f.write_str(message),
        }
    }
}

/// What one request hands to the group commit.
#[derive(Debug, Default)]
pub struct Submission {
    pub items: Vec<IngestItem>,
    /// Its rejected messages and notices, for the problem log.
    pub problems: Vec<ProblemRow>,
}

struct Job {
    now: Timestamp,
    submission: Submission,
    reply: tokio::sync::oneshot::Sender<CommitResult>,
}

#[derive(Clone)]
pub struct GroupCommitter {
    sender: SyncSender<Job>,
    alive: Arc<AtomicBool>,
    telemetry: Arc<Telemetry>,
}

#[derive(Debug)]
pub enum SubmitError {
    QueueFull,
    WriterStopped,
}

/// A flag that goes false when it is dropped: at the end of the thread that owns it, whether
/// the thread returned or unwound.
struct ClearedOnExit(Arc<AtomicBool>);

impl Drop for ClearedOnExit {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

impl GroupCommitter {
    pub fn start(store: Arc<dyn Store>, telemetry: Arc<Telemetry>) -> GroupCommitter {
        let (sender, receiver) = sync_channel(QUEUE_REQUESTS_MAX);
        let alive = Arc::new(AtomicBool::new(true));
        let thread_alive = alive.clone();
        let thread_telemetry = telemetry.clone();
        std::thread::Builder::new()
            .name("revloop-writer".into())
            .spawn(move || {
                // Cleared however the thread ends, a panic included, so that `/readyz` tells.
                let _alive = ClearedOnExit(thread_alive);
                run(&*store, &receiver, &thread_telemetry);
            })
            .expect("spawn the writer thread");
        GroupCommitter {
            sender,
            alive,
            telemetry,
        }
    }

    pub fn is_alive(&self) -> bool {
        self.alive.load(Ordering::SeqCst)
    }

    /// Queues a submission without blocking; the receiver resolves once it is committed.
    pub fn submit(
        &self,
        now: Timestamp,
        submission: Submission,
    ) -> Result<tokio::sync::oneshot::Receiver<CommitResult>, SubmitError> {
        let (reply, receiver) = tokio::sync::oneshot::channel();
        let job = Job {
            now,
            submission,
            reply,
        };
        // Counted before it is sent: the writer may take it (and count it out) at once.
        let depth = &self.telemetry.queue_depth;
        depth.fetch_add(1, Ordering::Relaxed);
        let sent = self.sender.try_send(job);
        if sent.is_err() {
            depth.fetch_sub(1, Ordering::Relaxed);
        }
        match sent {
            Ok(()) => Ok(receiver),
            Err(TrySendError::Full(_)) => Err(SubmitError::QueueFull),
            Err(TrySendError::Disconnected(_)) => Err(SubmitError::WriterStopped),
        }
    }

    /// Queues a submission, waiting for room: the back-pressure replay wants.
    pub fn submit_waiting(
        &self,
        now: Timestamp,
        submission: Submission,
    ) -> Result<tokio::sync::oneshot::Receiver<CommitResult>, SubmitError> {
        let (reply, receiver) = tokio::sync::oneshot::channel();
        let job = Job {
            now,
            submission,
            reply,
        };
        let depth = &self.telemetry.queue_depth;
        depth.fetch_add(1, Ordering::Relaxed);
        if self.sender.send(job).is_err() {
            depth.fetch_sub(1, Ordering::Relaxed);
            return Err(SubmitError::WriterStopped);
        }
        Ok(receiver)
    }
}

fn run(store: &dyn Store, receiver: &Receiver<Job>, telemetry: &Telemetry) {
    while let Ok(first) = receiver.recv() {
        let mut jobs = vec![first];
        let rows = |job: &Job| job.submission.items.len() + job.submission.problems.len();
        let mut n_rows = rows(&jobs[0]);
        while n_rows < GROUP_ITEMS_MAX {
            match receiver.try_recv() {
                Ok(job) => {
                    n_rows += rows(&job);
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        telemetry
            .queue_depth
            .fetch_sub(jobs.len() as u64, Ordering::Relaxed);
        let now = jobs
            .iter()
            .map(|job| job.now)
            .max()
            .expect("at least one job");
        commit_jobs(store, telemetry, now, jobs);
    }
}

/// Commits jobs as one group. A job with a conflicting count record is answered with the
/// conflict and dropped, and the group is tried again without it: each try drops at least one
/// job, so this ends.
fn commit_jobs(store: &dyn Store, telemetry: &Telemetry, now: Timestamp, mut jobs: Vec<Job>) {
    while !jobs.is_empty() {
        let n_items: usize = jobs.iter().map(|job| job.submission.items.len()).sum();
        let mut items = Vec::with_capacity(n_items);
        let mut problems = Vec::new();
        let n_jobs = jobs.len();
        let mut lengths = Vec::with_capacity(n_jobs);
        let mut problem_lengths = Vec::with_capacity(n_jobs);
        for job in &mut jobs {
            lengths.push(job.submission.items.len());
            problem_lengths.push(job.submission.problems.len());
            items.append(&mut job.submission.items);
            problems.append(&mut job.submission.problems);
        }
        let started = Instant::now();
        let group = IngestGroup {
            now,
            items,
            problems,
        };
        // A transient failure (a busy database, a lost connection) is tried again, briefly:
        // the dedup keys make a repeat of a group that did commit count nothing twice.
        let result = crate::http::retrying(|| store.commit_ingest(&group));
        // A refused count record is the sender's conflict, not a failed commit: the group is
        // tried again without it, and that try is recorded.
        if !matches!(result, Err(StoreError::CountConflict { .. })) {
            telemetry.record_commit(started.elapsed(), n_items, result.is_ok());
        }
        let conflicts = match result {
            Err(StoreError::CountConflict { items: conflicts }) => conflicts,
            result => {
                let replies = jobs.into_iter().map(|job| job.reply).collect();
                answer(result, replies, &lengths, n_items);
                return;
            }
        };
        // Give each job its items and problems back, and answer those with a conflict (whose
        // problems are then not logged: nothing of their request was stored).
        let mut items = group.items.into_iter();
        let mut problems = group.problems.into_iter();
        let mut kept = Vec::with_capacity(jobs.len());
        let mut offset = 0;
        for ((mut job, length), n_problems) in jobs.into_iter().zip(lengths).zip(problem_lengths) {
            job.submission.items = items.by_ref().take(length).collect();
            job.submission.problems = problems.by_ref().take(n_problems).collect();
            let own: Vec<usize> = conflicts
                .iter()
                .filter(|index| (offset..offset + length).contains(*index))
                .map(|index| index - offset)
                .collect();
            offset += length;
            if own.is_empty() {
                kept.push(job);
            } else {
                let _ = job.reply.send(Err(CommitError::CountConflict(own)));
            }
        }
        assert!(kept.len() < n_jobs, "a conflict names an item of the group");
        jobs = kept;
    }
}

fn answer(
    result: Result<IngestReceipt, StoreError>,
    replies: Vec<tokio::sync::oneshot::Sender<CommitResult>>,
    lengths: &[usize],
    n_items: usize,
) {
    match result {
        Ok(receipt) => {
            let mut offset = 0;
            for (reply, length) in replies.into_iter().zip(lengths) {
                let is_new = receipt.is_new[offset..offset + length].to_vec();
                offset += length;
                // A caller that went away (client disconnected) still had its items committed.
                let _ = reply.send(Ok(IngestReceipt { is_new }));
            }
        }
        Err(err) => {
            // The database's own words go to the log; callers get a plain description.
            tracing::error!("group commit of {n_items} items failed: {err}");
            let said = if err.is_transient() {
                "the database stayed busy or unreachable; see the server log"
            } else {
                "the database failed; see the server log"
            };
            for reply in replies {
                let _ = reply.send(Err(CommitError::Failed(said.to_owned())));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_that_panics_clears_its_alive_flag() {
        let alive = Arc::new(AtomicBool::new(true));
        let flag = alive.clone();
        let ended = std::thread::spawn(move || {
            let _alive = ClearedOnExit(flag);
            panic!("the writer died");
        })
        .join();
        assert!(ended.is_err());
        assert!(!alive.load(Ordering::SeqCst));
    }
}
