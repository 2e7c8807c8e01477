//! revloop's server: the HTTP API (Segment-compatible ingest, counts, read API), auth, group
//! commit, and Prometheus metrics. The only crate that knows HTTP and JSON wire formats.
//!
//! [`App::build`] wires a config and a store into a router; [`App::serve`] runs it on a
//! listener, so tests start the real server on port 0.
//!
//! The layout, each module importing only those below it in this list (the services and
//! `ingest` share one level: `ingest` hands its groups to `writer`):
//! - [`routes`]: the router, listing every endpoint and its handler.
//! - [`api`]: one module per API area, each with its handlers and JSON views, and the state
//!   they share.
//! - The long-running services: [`incidents`] (the durable incident engine), [`detection`]
//!   (the live detector, which hands its alerts to a callback rather than to the incidents)
//!   and, below the ingest path, [`writer`] (group commit). [`event_time`] drives the detector
//!   and the core's incident engine together in event time, for `replay` and `demo`.
//!   [`suspects`] ranks the stored changes that may explain an incident. [`watchdog`] (the
//!   dead man's switch) watches the others and feeds the incidents what it sees.
//!   [`delivery`] delivers the outbox to the channels people use, and tells the incidents
//!   when nobody of a level could be reached.
//! - [`ingest`]: from request bodies to committed items, shared with `replay`; it uses the
//!   wire parser [`segment`] and the [`writer`].
//! - [`http`]: plumbing every handler shares (auth, bodies, errors, query parameters); it
//!   imports nothing of this crate.
//! - [`telemetry`] (process counters).
//! - [`maintenance`]: the service that keeps the disk bounded (hourly rollup of old counts, WAL
//!   checkpoints), started by [`App::serve`] beside the detector.
//!
//! The workspace's `tests/layout.rs` (`cargo test --test layout`) fails on an import circle
//! between these modules, or on `http` importing any of them.

use std::sync::Arc;

use revloop_core::pipeline::Measured;
use revloop_core::{Config, Timestamp};
use revloop_store::Store;

pub mod aov;
pub mod api;
pub mod booking;
pub mod delivery;
pub mod detection;
pub mod event_time;
pub mod http;
pub mod incidents;
pub mod ingest;
pub mod maintenance;
pub mod routes;
pub mod segment;
pub mod suspects;
pub mod telemetry;
pub mod watchdog;
pub mod writer;

/// Where the server reads the time. The core never does; the server asks this once per
/// request and passes the answer down.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Timestamp;
}

/// The wall clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let since_epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp::from_millis(since_epoch.as_millis() as i64)
    }
}

#[derive(Debug, Clone, Default)]
pub struct AppOptions {
    /// Serve `/metrics` without a token (for a scraper on a trusted network).
    pub metrics_public: bool,
    /// Serve the demo's webhook inbox (`/demo/inbox`), verifying signatures with this secret.
    /// Only `revloop demo` sets it.
    pub demo_inbox_secret: Option<String>,
}

pub struct App {
    pub state: api::AppState,
}

impl App {
    pub fn build(
        config: Config,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        options: AppOptions,
    ) -> App {
        let config = Arc::new(config);
        let telemetry = Arc::new(telemetry::Telemetry::default());
        let committer = writer::GroupCommitter::start(store.clone(), telemetry.clone());
        let ingestor = Arc::new(ingest::Ingestor::new(
            config.clone(),
            committer,
            telemetry.clone(),
        ));
        let auth = http::auth::Authenticator::new(store.clone());
        let detection = Arc::new(detection::Detection::new(config.clone()));
        let incidents = Arc::new(incidents::Incidents::new(config.clone(), store.clone()));
        App {
            state: api::AppState {
                detection,
                incidents,
                config,
                store,
                ingestor,
                auth,
                clock,
                telemetry,
                metrics_public: options.metrics_public,
                demo_inbox: options
                    .demo_inbox_secret
                    .map(|secret| Arc::new(api::demo_inbox::DemoInbox::new(secret))),
            },
        }
    }

    pub fn router(&self) -> axum::Router {
        routes::router(self.state.clone())
    }

    /// Serves until `shutdown` resolves, then finishes in-flight requests. The detector runs
    /// alongside, judging each minute once it has settled and handing its alerts to the
    /// incidents, whose timers run alongside too.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let incidents = self.state.incidents.clone();
        let (store, aov_book) = (
            self.state.store.clone(),
            Arc::new(aov::AovBook::new(self.state.config.clone())),
        );
        let detector = tokio::spawn(detection::run(
            self.state.detection.clone(),
            self.state.store.clone(),
            self.state.clock.clone(),
            Arc::new(move |detection, events, now| {
                // Called on the detector's blocking thread: the AOV may read the store.
                incidents.feed_measured(
                    events,
                    &|incident| Measured {
                        sigma: detection.deviation(incident),
                        impact: aov_book
                            .for_incident(store.as_ref(), incident, now)
                            .and_then(|aov| detection.impact(incident, now, aov)),
                    },
                    now,
                )
            }),
        ));
        let incident_timers = tokio::spawn(incidents::run(
            self.state.incidents.clone(),
            self.state.clock.clone(),
        ));
        let maintenance = tokio::spawn(maintenance::run(
            self.state.config.clone(),
            self.state.store.clone(),
            self.state.clock.clone(),
            self.state.telemetry.maintenance.clone(),
        ));
        let watch = revloop_core::incident::Watch {
            cannot_judge_after: self.state.config.detection.cannot_judge_after,
            settle: self.state.config.detection.settle,
            started_at: self.state.clock.now(),
        };
        let watchdog = Arc::new(watchdog::Watchdog::new(
            watch,
            Box::new(guard_inputs(&self.state)),
            self.state.incidents.clone(),
        ));
        let watchdog = tokio::spawn(watchdog::run(watchdog, self.state.clock.clone()));
        let (stop_delivering, delivering) = tokio::sync::watch::channel(false);
        let deliverer = delivery::deliverer::Deliverer::new(
            &self.state.config,
            self.state.store.clone(),
            self.state.clock.clone(),
            self.state.incidents.clone(),
        )
        .map(|deliverer| tokio::spawn(delivery::deliverer::run(Arc::new(deliverer), delivering)));
        let served = axum::serve(listener, self.router())
            .with_graceful_shutdown(shutdown)
            .await;
        // The deliverer stops claiming and records its attempts in flight (each bounded by its
        // channel's timeout), so that a restart resends nothing it knows the answer to.
        let _ = stop_delivering.send(true);
        if let Some(deliverer) = deliverer {
            let _ = deliverer.await;
        }
        detector.abort();
        incident_timers.abort();
        maintenance.abort();
        watchdog.abort();
        let _ = detector.await;
        let _ = incident_timers.await;
        let _ = maintenance.await;
        let _ = watchdog.await;
        // Save each live funnel's detector state, so that the next start reads only the counts
        // after it. It waits for a tick still running on the blocking pool.
        let (detection, store, clock) = (
            self.state.detection.clone(),
            self.state.store.clone(),
            self.state.clock.clone(),
        );
        let _ = tokio::task::spawn_blocking(move || {
            detection.save_snapshots(store.as_ref(), clock.now())
        })
        .await;
        // Let the state go on the blocking pool: it ends the writer thread, and the drop may
        // close database connections, which blocks. This need not be the last reference to the
        // store (an HTTP connection task can still hold the router for a moment after
        // `axum::serve` returns, and a detector tick may still be running), so the store must
        // be safe to drop on an async worker too; `PostgresStore` closes its connections on a
        // thread of their own for that reason.
        let state = self.state;
        let _ = tokio::task::spawn_blocking(move || drop(state)).await;
        served
    }
}

/// What the watchdog observes, from what the services expose: each funnel's judging (the end
/// of its last minute judged live, and while its reads fail, since when and the failure's
/// class), the writer's progress, and since when an incident timer has been due.
fn guard_inputs(state: &api::AppState) -> impl watchdog::GuardInputs {
    use revloop_core::incident::{FunnelObservation, Observations};
    let detection = state.detection.clone();
    let incidents = state.incidents.clone();
    let ingestor = state.ingestor.clone();
    let telemetry = state.telemetry.clone();
    let writer = watchdog::WriterProgress::default();
    move |now: Timestamp| Observations {
        funnels: detection
            .judging()
            .into_iter()
            .map(|judging| FunnelObservation {
                funnel: judging.funnel,
                judged_until: judging.judged_until.map(|minute| minute.start()),
                failing_since: judging.failing_since,
                error: judging.error,
            })
            .collect(),
        writer: writer.observe(
            now,
            ingestor.committer().is_alive(),
            telemetry.last_commit_unix_ms(),
            telemetry
                .queue_depth
                .load(std::sync::atomic::Ordering::Relaxed),
        ),
        timers_due_since: incidents.wake_at().filter(|wake| *wake <= now),
    }
}
