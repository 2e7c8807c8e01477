//! The delivery service: outbox → deliveries → attempts (see the module docs of `delivery`).
//!
//! Three kinds of task run under [`run`]:
//! - the planner reads the outbox after the store's delivery cursor, a page at a time, routes
//!   each entry's targets through `[delivery]` and plans one delivery per route
//!   (`Store::plan_deliveries`, idempotent across nodes); after each pass it looks for pages
//!   nobody of their level could be reached about, and fails them over to the next level;
//! - one worker per channel claims that channel's due deliveries under a lease, up to its free
//!   concurrency slots, and sends each on a task of its own. Its own semaphore and circuit
//!   breaker mean a dead or hanging channel never delays another: the only thing channels
//!   share is the store;
//! - every attempt records its result (`Store::record_attempt`) as the lease holder; a node
//!   that lost its lease drops the result (logged), and the node that took over sends again.
//!
//! Every time comes from the injected [`Clock`]; real time is used only to wait between polls
//! and to bound an attempt. Nothing here panics on a receiver's answer or a bad row: a row
//! that cannot be read is a failed delivery, visible on the timeline, never a silent drop.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;

use revloop_api::outbox::OutboxEntry;
use revloop_core::Config;
use revloop_core::config::{Channel, Delivery};
use revloop_core::delivery::{Breaker, Message, Next, Outcome, next_attempt};
use revloop_core::time::{DurationMs, Timestamp};
use revloop_store::deliveries::lease_for;
use revloop_store::{
    AttemptRecord, DELIVERY_PAGE_MAX, DELIVERY_PLAN_MAX, DeliveryQuery, DeliveryRow, DeliveryState,
    NewDelivery, OutboxRow, Store, StoreError,
};

use super::message::{entry_of, message};
use super::sender::{Attempt, Sender, SetupError, To, read_secret};
use crate::Clock;
use crate::http::lock::lock;
use crate::http::retry::retrying;
use crate::incidents::Incidents;

/// Most outbox rows one planning read takes.
pub const PLAN_PAGE_MAX: usize = 500;
/// Most planning reads in one pass; the next pass, a poll later, goes on.
pub const PLAN_PAGES_PER_PASS_MAX: usize = 20;
/// How often the planner and each channel's worker look at the store when nothing wakes them.
pub const POLL_MS: u64 = 500;
/// Most rendered messages kept in memory (a retry renders its row again past this).
pub const MESSAGE_CACHE_MAX: usize = 1_024;
/// How many of the latest planned outbox ids the failover check looks at.
pub const FAILOVER_SCAN_OUTBOX_ROWS: i64 = 500;
/// Most pages remembered as failed over already (the oldest are forgotten past this; the
/// incidents service ignores a repeat, since the incident no longer waits at that level).
pub const FAILOVER_DONE_MAX: usize = 10_000;
/// Time an attempt is given beyond its channel's timeout before it counts as hung: the sender
/// bounds itself, and this is the guard that it does.
const ATTEMPT_GRACE_MS: i64 = 2_000;
/// What an attempt needs inside its lease beyond the channel's timeout: the grace, reading its
/// message and recording its result (each retried within a few seconds).
const LEASE_MARGIN_MS: i64 = ATTEMPT_GRACE_MS + 10_000;

/// This process's name in leases and the attempt log: the host, the process id (for humans)
/// and 32 random bits (so that two processes never share a name).
pub fn node_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().chars().take(64).collect::<String>())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "node".to_owned());
    let random = getrandom::u32().unwrap_or_else(|_| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        nanos.subsec_nanos()
    });
    format!("{host}-{}-{random:08x}", std::process::id())
}

/// The delivery service of one process. Built only with a `[delivery]` section.
pub struct Deliverer {
    delivery: Delivery,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    incidents: Arc<Incidents>,
    node: String,
    /// Each configured channel with its sender, or why it could not be set up: its deliveries
    /// then fail, visibly, and are retried (a secret may appear).
    channels: Vec<(Channel, Result<Sender, SetupError>)>,
    /// Pinged when deliveries were planned or an attempt finished.
    wake: Notify,
    messages: Mutex<BTreeMap<i64, Result<Message, String>>>,
    failed_over: Mutex<BTreeSet<i64>>,
}

impl Deliverer {
    /// The service for `config`'s `[delivery]` section (`None` without one), its senders
    /// built with their secrets read from the environment and files. A channel whose secret
    /// is missing is logged as an error and its deliveries fail visibly.
    pub fn new(
        config: &Config,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        incidents: Arc<Incidents>,
    ) -> Option<Deliverer> {
        let delivery = config.delivery.clone()?;
        let channels = delivery
            .channels
            .iter()
            .map(|channel| {
                let sender = Sender::new(channel, &read_secret);
                if let Err(err) = &sender {
                    tracing::error!(error = %err, "a delivery channel cannot be set up");
                }
                (channel.clone(), sender)
            })
            .collect();
        Some(Deliverer {
            delivery,
            store,
            clock,
            incidents,
            node: node_id(),
            channels,
            wake: Notify::new(),
            messages: Mutex::new(BTreeMap::new()),
            failed_over: Mutex::new(BTreeSet::new()),
        })
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    /// Wakes the planner and the workers now (the incidents service may call this when it
    /// commits outbox rows); without it they look every [`POLL_MS`].
    pub fn wake(&self) {
        self.wake.notify_waiters();
    }
}

/// Runs the service until `shutdown` turns true: then the planner stops, the workers claim
/// nothing more, and attempts in flight finish (each bounded by its channel's timeout) and
/// are recorded before this returns.
pub async fn run(deliverer: Arc<Deliverer>, shutdown: watch::Receiver<bool>) {
    tracing::info!(node = %deliverer.node, "the deliverer is running");
    let mut tasks = JoinSet::new();
    tasks.spawn(plan_loop(deliverer.clone(), shutdown.clone()));
    for index in 0..deliverer.channels.len() {
        tasks.spawn(channel_worker(deliverer.clone(), index, shutdown.clone()));
    }
    while let Some(done) = tasks.join_next().await {
        if let Err(err) = done {
            tracing::error!(error = %err, "a deliverer task ended abnormally");
        }
    }
}

/// Waits `POLL_MS`, or less when woken or shut down. Returns whether to stop.
async fn pause(deliverer: &Deliverer, shutdown: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(Duration::from_millis(POLL_MS)) => {}
        _ = deliverer.wake.notified() => {}
        _ = shutdown.changed() => {}
    }
    *shutdown.borrow()
}

async fn plan_loop(deliverer: Arc<Deliverer>, mut shutdown: watch::Receiver<bool>) {
    loop {
        if *shutdown.borrow() {
            return;
        }
        let now = deliverer.clock.now();
        let planner = deliverer.clone();
        match tokio::task::spawn_blocking(move || planner.plan_pass(now)).await {
            Ok(Ok(0)) => {}
            Ok(Ok(n_planned)) => {
                tracing::debug!(n_planned, "deliveries planned");
                deliverer.wake();
            }
            Ok(Err(err)) => tracing::warn!(error = %err, "deliveries could not be planned"),
            Err(err) => tracing::error!(error = %err, "the delivery planner panicked"),
        }
        fail_over(&deliverer, now).await;
        if pause(&deliverer, &mut shutdown).await {
            return;
        }
    }
}

impl Deliverer {
    /// Plans the outbox rows after the cursor, a page at a time. Blocking.
    fn plan_pass(&self, now: Timestamp) -> Result<usize, StoreError> {
        let mut n_planned = 0;
        for _ in 0..PLAN_PAGES_PER_PASS_MAX {
            let cursor = retrying(|| self.store.delivery_cursor())?;
            let rows = retrying(|| self.store.outbox(cursor, PLAN_PAGE_MAX))?;
            if rows.is_empty() {
                break;
            }
            // One store call plans at most `DELIVERY_PLAN_MAX` deliveries, and moves the cursor
            // only past rows whose deliveries it inserted.
            let (mut batch, mut through) = (Vec::new(), cursor);
            for row in &rows {
                let planned = plan_rows(&self.delivery, std::slice::from_ref(row), now);
                if !batch.is_empty() && batch.len() + planned.len() > DELIVERY_PLAN_MAX {
                    n_planned += retrying(|| self.store.plan_deliveries(through, &batch))?;
                    batch.clear();
                }
                batch.extend(planned);
                through = row.id;
            }
            n_planned += retrying(|| self.store.plan_deliveries(through, &batch))?;
            if rows.len() < PLAN_PAGE_MAX {
                break;
            }
        }
        Ok(n_planned)
    }

    /// The message of outbox row `outbox_id`, rendered once and kept; the inner `Err` names
    /// why the row can never be delivered (gone, or unreadable). Blocking.
    fn message_of(&self, outbox_id: i64) -> Result<Result<Message, String>, StoreError> {
        if let Some(cached) = lock(&self.messages).get(&outbox_id) {
            return Ok(cached.clone());
        }
        let rows = retrying(|| self.store.outbox(outbox_id - 1, 1))?;
        let rendered = match rows.first() {
            Some(row) if row.id == outbox_id => {
                entry_of(row).map(|entry| message(&entry)).ok_or_else(|| {
                    tracing::error!(outbox_id, "an outbox row is unreadable");
                    format!("outbox row {outbox_id} is unreadable")
                })
            }
            _ => Err(format!("outbox row {outbox_id} is gone")),
        };
        let mut messages = lock(&self.messages);
        if messages.len() >= MESSAGE_CACHE_MAX {
            messages.pop_first();
        }
        messages.insert(outbox_id, rendered.clone());
        Ok(rendered)
    }
}

/// The deliveries of outbox `rows`: one per route of each target (or audience) an entry
/// names. An entry older than the retry policy's `give_up_after` is not planned (it would only
/// give up: a first start on an old outbox must not page for history), and a target with no
/// route (impossible after config validation) is logged as an error.
pub fn plan_rows(delivery: &Delivery, rows: &[OutboxRow], now: Timestamp) -> Vec<NewDelivery> {
    let mut planned = Vec::new();
    for row in rows {
        let Some(entry) = entry_of(row) else {
            tracing::error!(row = row.id, "an outbox row is unreadable; not delivered");
            continue;
        };
        if now.since(row.at) > delivery.retry.give_up_after {
            tracing::info!(row = row.id, at = %row.at, "an old outbox row is not delivered");
            continue;
        }
        let level = match &entry {
            OutboxEntry::Notify { level, .. } => level.clone(),
            _ => String::new(),
        };
        for target in entry.targets() {
            let routes = delivery
                .targets
                .get(target)
                .or_else(|| delivery.audiences.get(target));
            let Some(routes) = routes else {
                tracing::error!(row = row.id, %target, "a target has no route; not delivered");
                continue;
            };
            for route in routes {
                planned.push(NewDelivery {
                    outbox_id: row.id,
                    incident: row.incident,
                    target: target.clone(),
                    channel: route.channel.clone(),
                    address: route.to.clone().unwrap_or_default(),
                    level: level.clone(),
                    created_at: now,
                });
            }
        }
    }
    planned
}

/// A delivery claimed and not yet started, with when its lease ends.
struct Held {
    row: DeliveryRow,
    lease_until: Timestamp,
}

/// One channel's worker: claims due deliveries up to its free slots while its breaker lets
/// it, and starts each attempt on a task of its own.
async fn channel_worker(
    deliverer: Arc<Deliverer>,
    index: usize,
    mut shutdown: watch::Receiver<bool>,
) {
    let channel = deliverer.channels[index].0.clone();
    let concurrency = channel
        .concurrency
        .clamp(1, revloop_core::config::CONCURRENCY_MAX);
    let slots = Arc::new(Semaphore::new(concurrency));
    let breaker = Arc::new(Mutex::new(Breaker::new()));
    let lease = lease_for(channel.timeout);
    let mut held: VecDeque<Held> = VecDeque::new();
    let mut attempts = JoinSet::new();
    loop {
        if *shutdown.borrow() {
            break;
        }
        while attempts.try_join_next().is_some() {}
        let now = deliverer.clock.now();
        // A delivery held past the point where its attempt (the message read, the send with
        // its grace, the record) could still finish inside the lease is let go: its lease
        // expires and it is claimed again, so no other node sends it while this one does.
        let must_start_by = |h: &Held| {
            h.lease_until
                .saturating_sub(channel.timeout)
                .saturating_sub(DurationMs::from_millis(LEASE_MARGIN_MS))
        };
        held.retain(|h| now < must_start_by(h));
        if held.is_empty() && lock(&breaker).open_until(now).is_none() {
            let free = slots.available_permits().min(DELIVERY_PAGE_MAX);
            if free > 0 {
                let claimer = deliverer.clone();
                let name = channel.name.clone();
                let claimed = tokio::task::spawn_blocking(move || {
                    claimer
                        .store
                        .claim_deliveries(&name, &claimer.node, now, lease, free)
                })
                .await;
                match claimed {
                    Ok(Ok(rows)) => held.extend(rows.into_iter().map(|row| Held {
                        row,
                        lease_until: now.saturating_add(lease),
                    })),
                    Ok(Err(err)) => {
                        tracing::warn!(channel = %channel.name, error = %err, "deliveries could not be claimed")
                    }
                    Err(err) => {
                        tracing::error!(channel = %channel.name, error = %err, "a claim panicked")
                    }
                }
            }
        }
        while !held.is_empty() {
            let Ok(permit) = slots.clone().try_acquire_owned() else {
                break;
            };
            if !lock(&breaker).allow(now) {
                break;
            }
            if let Some(Held { row, .. }) = held.pop_front() {
                attempts.spawn(attempt_one(
                    deliverer.clone(),
                    index,
                    row,
                    breaker.clone(),
                    permit,
                ));
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(POLL_MS)) => {}
            _ = deliverer.wake.notified() => {}
            _ = shutdown.changed() => {}
            Some(_) = attempts.join_next(), if !attempts.is_empty() => {}
        }
    }
    // Attempts in flight finish and are recorded: each is bounded by the channel's timeout.
    while attempts.join_next().await.is_some() {}
}

/// One attempt of `row`: render, send within the channel's timeout, tell the breaker, compute
/// the next attempt and record it as the lease holder.
async fn attempt_one(
    deliverer: Arc<Deliverer>,
    index: usize,
    row: DeliveryRow,
    breaker: Arc<Mutex<Breaker>>,
    _slot: OwnedSemaphorePermit,
) {
    let (channel, sender) = &deliverer.channels[index];
    let started = deliverer.clock.now();
    let reader = deliverer.clone();
    let outbox_id = row.outbox_id;
    let message = tokio::task::spawn_blocking(move || reader.message_of(outbox_id))
        .await
        .map_err(|err| err.to_string())
        .and_then(|read| read.map_err(|err| err.to_string()));
    let key = format!("revloop-delivery-{}", row.id);
    let to = To {
        key: &key,
        target: &row.target,
        address: Some(row.address.as_str()).filter(|a| !a.is_empty()),
        now: started,
    };
    let attempt = match (&message, sender) {
        // The store did not answer: try again later, like a network error.
        (Err(err), _) => failed(Outcome::Transient { retry_after: None }, "store", err),
        (Ok(Err(why)), _) => failed(Outcome::Permanent, "unreadable", why),
        (Ok(Ok(_)), Err(setup)) => failed(
            Outcome::Transient { retry_after: None },
            "setup",
            &setup.reason,
        ),
        (Ok(Ok(message)), Ok(sender)) => {
            let bound_ms = channel.timeout.millis().saturating_add(ATTEMPT_GRACE_MS);
            let bound = Duration::from_millis(u64::try_from(bound_ms).unwrap_or(u64::MAX));
            tokio::time::timeout(bound, sender.send(message, to))
                .await
                .unwrap_or_else(|_| {
                    let what = format!("no answer within {}", channel.timeout);
                    failed(Outcome::Transient { retry_after: None }, "timeout", &what)
                })
        }
    };
    let now = deliverer.clock.now();
    let back = {
        let mut breaker = lock(&breaker);
        let was_open = breaker.has_opened();
        breaker.record(now, attempt.outcome);
        was_open && attempt.outcome == Outcome::Delivered
    };
    if back {
        expedite(&deliverer, &channel.name, now).await;
    }
    let record = attempt_record(&deliverer, &row, started, now, attempt);
    let (state, status) = (record.state, record.status.clone());
    let recorder = deliverer.clone();
    let recorded =
        tokio::task::spawn_blocking(move || retrying(|| recorder.store.record_attempt(&record)))
            .await;
    match recorded {
        Ok(Ok(true)) => tracing::info!(
            delivery = row.id, channel = %channel.name, target = %row.target,
            state = ?state, %status, "delivery attempt"
        ),
        Ok(Ok(false)) => tracing::warn!(
            delivery = row.id, channel = %channel.name, %status,
            "a delivery's lease was lost during its attempt: its result is dropped"
        ),
        Ok(Err(err)) => tracing::error!(
            delivery = row.id, error = %err,
            "an attempt could not be recorded; the delivery is tried again when its lease ends"
        ),
        Err(err) => tracing::error!(delivery = row.id, error = %err, "recording panicked"),
    }
    deliverer.wake();
}

/// The channel is back from failing: its backlog becomes due now, rather than each delivery
/// on its own backoff (up to the retry cap), so that it drains at once.
async fn expedite(deliverer: &Arc<Deliverer>, channel: &str, now: Timestamp) {
    let (store, name) = (deliverer.store.clone(), channel.to_owned());
    match tokio::task::spawn_blocking(move || store.expedite_deliveries(&name, now)).await {
        Ok(Ok(0)) => {}
        Ok(Ok(n)) => tracing::info!(channel, n, "the channel is back: its backlog is due now"),
        Ok(Err(err)) => tracing::warn!(channel, error = %err, "the backlog could not be expedited"),
        Err(err) => tracing::error!(channel, error = %err, "expediting panicked"),
    }
    deliverer.wake();
}

fn failed(outcome: Outcome, status: &str, response: &str) -> Attempt {
    let mut response = response.to_owned();
    if response.len() > revloop_core::delivery::RESPONSE_BYTES_MAX {
        let mut cut = revloop_core::delivery::RESPONSE_BYTES_MAX;
        while !response.is_char_boundary(cut) {
            cut -= 1;
        }
        response.truncate(cut);
    }
    Attempt {
        outcome,
        status: status.to_owned(),
        response,
    }
}

/// What an attempt made at `started` and finished at `now` makes of `row`.
fn attempt_record(
    deliverer: &Deliverer,
    row: &DeliveryRow,
    started: Timestamp,
    now: Timestamp,
    attempt: Attempt,
) -> AttemptRecord {
    let first_attempt_at = row.first_attempt_at.unwrap_or(started);
    let jitter = getrandom::u64().unwrap_or(u64::from(now.millis().unsigned_abs() as u32));
    let next = next_attempt(
        &deliverer.delivery.retry,
        row.attempts.saturating_add(1),
        first_attempt_at,
        now,
        attempt.outcome,
        jitter,
    );
    let (state, next_at) = match next {
        Next::Done => (DeliveryState::Delivered, None),
        Next::RetryAt(at) => (DeliveryState::Pending, Some(at)),
        Next::GiveUp => (DeliveryState::Failed, None),
    };
    AttemptRecord {
        delivery: row.id,
        node: deliverer.node.clone(),
        at: now,
        state,
        next_at,
        status: attempt.status,
        response: attempt.response,
    }
}

/// Pages nobody of their level could be reached about, among the latest planned outbox
/// rows: the incidents service pages the next level, once per page.
async fn fail_over(deliverer: &Arc<Deliverer>, now: Timestamp) {
    let reader = deliverer.clone();
    let read = tokio::task::spawn_blocking(move || {
        let cursor = retrying(|| reader.store.delivery_cursor())?;
        let from = cursor.saturating_sub(FAILOVER_SCAN_OUTBOX_ROWS - 1).max(1);
        scan_deliveries(reader.store.as_ref(), from, cursor)
    })
    .await;
    let rows = match read {
        Ok(Ok(rows)) => rows,
        Ok(Err(err)) => {
            tracing::warn!(error = %err, "deliveries could not be read for failover");
            return;
        }
        Err(err) => {
            tracing::error!(error = %err, "the failover read panicked");
            return;
        }
    };
    let failover_after = deliverer.delivery.failover_after;
    for page in unreachable_pages(&rows, now, failover_after) {
        if lock(&deliverer.failed_over).contains(&page.outbox_id) {
            continue;
        }
        let incident = u64::try_from(page.incident).unwrap_or_default();
        match deliverer
            .incidents
            .level_unreachable(incident, &page.level, now)
            .await
        {
            Ok(()) => {
                tracing::warn!(
                    incident, level = %page.level, outbox_id = page.outbox_id,
                    "nobody of the level could be reached: the next level is paged"
                );
                let mut done = lock(&deliverer.failed_over);
                if done.len() >= FAILOVER_DONE_MAX {
                    done.pop_first();
                }
                done.insert(page.outbox_id);
            }
            Err(err) => tracing::warn!(incident, error = %err, "failover could not commit"),
        }
    }
}

/// Every delivery of the outbox rows `from..=through`, read a page at a time so that no page
/// of the scan is cut short or split: a full page's last outbox row is read again whole with
/// the next page (an outbox row has far fewer than `DELIVERY_PAGE_MAX` deliveries).
fn scan_deliveries(
    store: &dyn Store,
    from: i64,
    through: i64,
) -> Result<Vec<DeliveryRow>, StoreError> {
    let mut rows = Vec::new();
    let mut next = from;
    while next <= through {
        let query = DeliveryQuery {
            incident: None,
            outbox_ids: Some((next, through)),
            limit: DELIVERY_PAGE_MAX,
        };
        let mut page = retrying(|| store.deliveries(&query))?;
        if page.len() < DELIVERY_PAGE_MAX {
            rows.append(&mut page);
            break;
        }
        let last = page.last().map_or(through, |row| row.outbox_id);
        if last == next {
            // One outbox row with a full page of deliveries: take it as read.
            rows.append(&mut page);
            next = last.saturating_add(1);
            continue;
        }
        page.retain(|row| row.outbox_id != last);
        rows.append(&mut page);
        next = last;
    }
    Ok(rows)
}

/// A page whose every delivery failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnreachablePage {
    pub outbox_id: i64,
    pub incident: i64,
    pub level: String,
}

/// The pages (deliveries with a level) whose every delivery has failed for good, or is still
/// pending though it was first tried (or, never tried, planned) `failover_after` ago or more.
/// One delivered route means somebody was reached: no failover.
pub fn unreachable_pages(
    rows: &[DeliveryRow],
    now: Timestamp,
    failover_after: DurationMs,
) -> Vec<UnreachablePage> {
    let mut by_page: BTreeMap<i64, (bool, &DeliveryRow)> = BTreeMap::new();
    for row in rows.iter().filter(|r| !r.level.is_empty()) {
        let unreachable = match row.state {
            DeliveryState::Delivered => false,
            DeliveryState::Failed => true,
            DeliveryState::Pending => {
                let since = row.first_attempt_at.unwrap_or(row.created_at);
                now.since(since) >= failover_after
            }
        };
        by_page
            .entry(row.outbox_id)
            .and_modify(|(all, _)| *all &= unreachable)
            .or_insert((unreachable, row));
    }
    by_page
        .into_iter()
        .filter(|(_, (all, _))| *all)
        .map(|(outbox_id, (_, row))| UnreachablePage {
            outbox_id,
            incident: row.incident,
            level: row.level.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use revloop_core::config::Route;

    use super::*;

    const T0: i64 = 1_795_773_600_000;

    fn delivery_row(outbox_id: i64, state: DeliveryState, first_s: Option<i64>) -> DeliveryRow {
        DeliveryRow {
            id: outbox_id * 10,
            outbox_id,
            incident: 4,
            target: "on-call engineer".into(),
            channel: "hook".into(),
            address: String::new(),
            level: "L1".into(),
            state,
            attempts: 1,
            created_at: Timestamp::from_millis(T0),
            first_attempt_at: first_s.map(|s| Timestamp::from_millis(T0 + s * 1000)),
            next_at: Timestamp::from_millis(T0),
            lease: None,
            last_status: None,
            last_response: None,
            finished_at: None,
        }
    }

    #[test]
    fn a_page_fails_over_only_when_every_route_failed_or_failed_long_enough() {
        use DeliveryState::*;
        let now = Timestamp::from_millis(T0 + 400_000);
        let window = DurationMs::from_minutes(5);
        let check = |rows: Vec<DeliveryRow>| -> Vec<i64> {
            unreachable_pages(&rows, now, window)
                .into_iter()
                .map(|p| p.outbox_id)
                .collect()
        };
        assert_eq!(check(vec![delivery_row(1, Failed, Some(0))]), [1]);
        // Pending, first tried 400 s ago (over 5 min) and 200 s ago (under).
        assert_eq!(check(vec![delivery_row(1, Pending, Some(0))]), [1]);
        assert!(check(vec![delivery_row(1, Pending, Some(200))]).is_empty());
        // Never tried: counted from when it was planned.
        assert_eq!(check(vec![delivery_row(1, Pending, None)]), [1]);
        // One route delivered: somebody was reached.
        assert!(
            check(vec![
                delivery_row(1, Failed, Some(0)),
                delivery_row(1, Delivered, Some(0))
            ])
            .is_empty()
        );
        // Not a page (no level): never failed over.
        let mut ack = delivery_row(2, Failed, Some(0));
        ack.level.clear();
        assert!(check(vec![ack]).is_empty());
        let page = &unreachable_pages(&[delivery_row(3, Failed, Some(0))], now, window)[0];
        assert_eq!((page.incident, page.level.as_str()), (4, "L1"));
    }

    #[test]
    fn each_target_is_planned_once_per_route_and_an_unrouted_or_old_row_is_not() {
        let mut delivery = Delivery {
            channels: vec![],
            targets: BTreeMap::new(),
            audiences: BTreeMap::new(),
            failover_after: DurationMs::from_minutes(5),
            retry: Default::default(),
        };
        let route = |channel: &str, to: Option<&str>| Route {
            channel: channel.into(),
            to: to.map(str::to_owned),
        };
        delivery.targets.insert(
            "CTO".into(),
            vec![route("hook", None), route("mail", Some("cto@example.com"))],
        );
        delivery.audiences.insert(
            "executives".into(),
            vec![route("mail", Some("x@example.com"))],
        );
        let row = |id: i64, at: i64, targets: &str| OutboxRow {
            id,
            incident: 9,
            at: Timestamp::from_millis(at),
            kind: revloop_store::OutboxKind::Notify,
            body: format!(
                r#"{{"kind":"notify","incident":9,"at":"2026-11-27T10:00:00Z","level":"L2","targets":{targets},"reason":"r"}}"#
            ),
        };
        let now = Timestamp::from_millis(T0);
        let rows = [
            row(1, T0, r#"["CTO","executives","nobody"]"#),
            row(2, T0 - 25 * 3_600_000, r#"["CTO"]"#),
            OutboxRow {
                body: "garbage".into(),
                ..row(3, T0, "[]")
            },
        ];
        let planned = plan_rows(&delivery, &rows, now);
        let seen: Vec<(i64, &str, &str, &str, &str)> = planned
            .iter()
            .map(|d| {
                let (target, channel) = (d.target.as_str(), d.channel.as_str());
                (
                    d.outbox_id,
                    target,
                    channel,
                    d.address.as_str(),
                    d.level.as_str(),
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                (1, "CTO", "hook", "", "L2"),
                (1, "CTO", "mail", "cto@example.com", "L2"),
                (1, "executives", "mail", "x@example.com", "L2"),
            ]
        );
        assert!(
            planned
                .iter()
                .all(|d| d.incident == 9 && d.created_at == now)
        );
    }

    #[test]
    fn node_ids_differ_between_calls() {
        assert_ne!(node_id(), node_id());
        assert!(node_id().contains(&std::process::id().to_string()));
    }
}
