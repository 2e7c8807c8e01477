//! Group commit: many ingest requests, one transaction.
//!
//! Handlers hand their prepared items to a dedicated writer thread through a bounded queue and
//! wait. The writer takes everything queued (up to a limit), commits it in one transaction, and
//! answers each caller only after the commit returned. A 200 therefore always means durable,
//! while the fsync cost is shared by every request that arrived during the previous commit.
//! The requests' rejected messages and notices ride in the same group, so the problem log is
//! durable exactly when they are answered, at no extra transaction.
//! It never validates what it is handed; the ingest path has done that.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::Instant;

use revloop_core::Timestamp;
use revloop_store::{IngestGroup, IngestItem, IngestReceipt, ProblemRow, Store};

use crate::telemetry::Telemetry;

/// Requests that may wait for the writer; past this, ingest answers 503 with Retry-After.
pub const QUEUE_REQUESTS_MAX: usize = 512;
/// Items (messages or count records) and logged problems in one group commit. Bounds a
/// transaction's size.
pub const GROUP_ITEMS_MAX: usize = 50_000;

pub type CommitResult = Result<IngestReceipt, String>;

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

impl GroupCommitter {
    pub fn start(store: Arc<dyn Store>, telemetry: Arc<Telemetry>) -> GroupCommitter {
        let (sender, receiver) = sync_channel(QUEUE_REQUESTS_MAX);
        let alive = Arc::new(AtomicBool::new(true));
        let thread_alive = alive.clone();
        let thread_telemetry = telemetry.clone();
        std::thread::Builder::new()
            .name("revloop-writer".into())
            .spawn(move || {
                run(&*store, &receiver, &thread_telemetry);
                thread_alive.store(false, Ordering::SeqCst);
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
        match self.sender.try_send(job) {
            Ok(()) => {
                self.telemetry.queue_depth.fetch_add(1, Ordering::Relaxed);
                Ok(receiver)
            }
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
        self.sender
            .send(job)
            .map_err(|_| SubmitError::WriterStopped)?;
        self.telemetry.queue_depth.fetch_add(1, Ordering::Relaxed);
        Ok(receiver)
    }
}

fn run(store: &dyn Store, receiver: &Receiver<Job>, telemetry: &Telemetry) {
    while let Ok(first) = receiver.recv() {
        let mut jobs = vec![first];
        let mut n_items = jobs[0].submission.items.len();
        let mut n_rows = n_items + jobs[0].submission.problems.len();
        while n_rows < GROUP_ITEMS_MAX {
            match receiver.try_recv() {
                Ok(job) => {
                    n_items += job.submission.items.len();
                    n_rows += job.submission.items.len() + job.submission.problems.len();
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
        let mut items = Vec::with_capacity(n_items);
        let mut problems = Vec::new();
        let mut lengths = Vec::with_capacity(jobs.len());
        let mut replies = Vec::with_capacity(jobs.len());
        for job in jobs {
            lengths.push(job.submission.items.len());
            items.extend(job.submission.items);
            problems.extend(job.submission.problems);
            replies.push(job.reply);
        }
        let started = Instant::now();
        let result = store.commit_ingest(&IngestGroup {
            now,
            items,
            problems,
        });
        telemetry.record_commit(started.elapsed(), n_items, result.is_ok());
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
                tracing::error!("group commit of {n_items} items failed: {err}");
                for reply in replies {
                    let _ = reply.send(Err(err.to_string()));
                }
            }
        }
    }
}
