//! The real server, started in-process on port 0 with a manual clock, and a blocking client
//! for it: what every HTTP test binary shares.

#![allow(dead_code)]

pub mod receiver;
pub mod smtp;

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use serde_json::{Value, json};

use revloop_core::{Config, Timestamp};
use revloop_server::http::auth::{base64_encode, generate_secret, hash_secret};
use revloop_server::{App, AppOptions, Clock};
use revloop_store::{Role, SqliteStore, Store};

/// 2026-11-27T10:00:00Z.
pub const T0: i64 = 1_795_773_600_000;
pub const MINUTE: i64 = 60_000;

pub struct ManualClock(pub AtomicI64);

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_millis(self.0.load(Ordering::SeqCst))
    }
}

pub struct TestServer {
    pub base: String,
    pub write_key: String,
    pub admin: String,
    pub viewer: String,
    /// A responder token named `responder`.
    pub responder: String,
    pub clock: Arc<ManualClock>,
    pub agent: ureq::Agent,
    config: Config,
    /// Opens the store again, for a restart.
    reopen: Option<Box<Reopen>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

pub struct Reply {
    pub status: u16,
    pub body: Value,
}

/// Opens a server's store again.
type Reopen = dyn Fn(&Config) -> Arc<dyn Store> + Send + Sync;

type Running = (
    String,
    tokio::sync::oneshot::Sender<()>,
    std::thread::JoinHandle<()>,
);

impl TestServer {
    pub fn start() -> TestServer {
        TestServer::start_on_file(Config::parse(Config::example_toml()).unwrap())
    }

    /// A server on a SQLite file that [`TestServer::restart`] opens again.
    pub fn start_on_file(config: Config) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("test.db");
        let reopen = move |config: &Config| -> Arc<dyn Store> {
            Arc::new(SqliteStore::open(&path, config).unwrap())
        };
        let store = reopen(&config);
        let mut server = TestServer::start_with(config, store, dir);
        server.reopen = Some(Box::new(reopen));
        server
    }

    pub fn start_with(config: Config, store: Arc<dyn Store>, dir: tempfile::TempDir) -> TestServer {
        let clock = Arc::new(ManualClock(AtomicI64::new(T0)));
        let secret = |role: Role| {
            let secret = generate_secret().unwrap();
            store
                .create_token(
                    role.as_str(),
                    role,
                    hash_secret(&secret),
                    Timestamp::from_millis(T0),
                )
                .unwrap();
            secret
        };
        let (write_key, admin, viewer, responder) = (
            secret(Role::Ingest),
            secret(Role::Admin),
            secret(Role::Viewer),
            secret(Role::Responder),
        );
        let (base, shutdown, thread) = TestServer::launch(config.clone(), store, clock.clone());
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        TestServer {
            base,
            write_key,
            admin,
            viewer,
            responder,
            clock,
            agent,
            config,
            reopen: None,
            shutdown: Some(shutdown),
            thread: Some(thread),
            _dir: dir,
        }
    }

    fn launch(config: Config, store: Arc<dyn Store>, clock: Arc<ManualClock>) -> Running {
        let store_in_use = Arc::downgrade(&store);
        let app = App::build(config, store, clock, AppOptions::default());
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (shutdown, stop) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            runtime
                .block_on(app.serve(listener, async {
                    let _ = stop.await;
                }))
                .unwrap();
            // Whatever was running is dropped mid-flight, as in a crash: only what was
            // committed survives.
            runtime.shutdown_background();
            TestServer::wait_until_dropped(&store_in_use);
        });
        (base, shutdown, thread)
    }

    /// Waits until nothing holds the store any more. `serve` can return while an HTTP
    /// connection task still holds the app state, and `shutdown_background` leaves blocking
    /// work (a detector tick) running, each with its own reference to the store. Until they let
    /// go, the store's connections may still be in a transaction: a restart would find the
    /// database busy, and a test's `DROP SCHEMA` could deadlock with an incident commit.
    fn wait_until_dropped(store: &std::sync::Weak<dyn Store>) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while store.strong_count() > 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "the store was still in use 30 s after the server stopped"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    /// Stops the server and starts a new one on the same database and clock: nothing but the
    /// store carries over.
    pub fn restart(&mut self) {
        self.stop();
        self.start_again();
    }

    /// Stops the server, moves the clock to `at` while it is down, and starts a new one. Setting
    /// the clock before [`TestServer::restart`] would let the running server see the jump (and
    /// page what came due, at its due time) before it stops.
    pub fn restart_at(&mut self, at: i64) {
        self.stop();
        self.set_clock(at);
        self.start_again();
    }

    fn start_again(&mut self) {
        let store = (self.reopen.as_ref().expect("started on a file"))(&self.config);
        let (base, shutdown, thread) =
            TestServer::launch(self.config.clone(), store, self.clock.clone());
        self.base = base;
        self.shutdown = Some(shutdown);
        self.thread = Some(thread);
    }

    fn stop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }

    /// The temporary directory the server's files live in (`test.db` for a SQLite file).
    pub fn dir(&self) -> &std::path::Path {
        self._dir.path()
    }

    pub fn set_clock(&self, at: i64) {
        self.clock.0.store(at, Ordering::SeqCst);
    }

    /// POSTs JSON with a bearer token.
    pub fn post_json(&self, path: &str, token: &str, body: &Value) -> Reply {
        self.post(
            path,
            &[
                ("Authorization", &format!("Bearer {token}")),
                ("Content-Type", "application/json"),
            ],
            body.to_string().as_bytes(),
        )
    }

    /// Polls `path` until `done` holds for its body, for at most 20 seconds.
    pub fn wait_for(&self, path: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let reply = self.get(path, &self.viewer);
            if reply.status == 200 && done(&reply.body) {
                return reply.body;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "gave up waiting on {path}: {} {}",
                reply.status,
                reply.body
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    pub fn basic(&self) -> String {
        format!(
            "Basic {}",
            base64_encode(format!("{}:", self.write_key).as_bytes())
        )
    }

    pub fn post(&self, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
        let mut request = self.agent.post(&format!("{}{path}", self.base));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let mut response = request.send(body).unwrap();
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap();
        Reply {
            status,
            body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
        }
    }

    pub fn ingest(&self, path: &str, body: &Value) -> Reply {
        self.post(
            path,
            &[
                ("Authorization", &self.basic()),
                ("Content-Type", "application/json"),
            ],
            body.to_string().as_bytes(),
        )
    }

    pub fn get(&self, path_and_query: &str, token: &str) -> Reply {
        let mut response = self
            .agent
            .get(&format!("{}{path_and_query}", self.base))
            .header("Authorization", &format!("Bearer {token}"))
            .call()
            .unwrap();
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap();
        Reply {
            status,
            body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
        }
    }

    /// Stage counts of the checkout funnel summed over `[from, to)` at one window.
    pub fn stage_counts(&self, from: i64, to: i64, filter: &str) -> Vec<i64> {
        let reply = self.get(
            &format!(
                "/api/v1/funnels/checkout/metrics?from={}&to={}&step=1d{filter}",
                Timestamp::from_millis(from),
                Timestamp::from_millis(to)
            ),
            &self.viewer,
        );
        assert_eq!(reply.status, 200, "{}", reply.body);
        let windows = reply.body["windows"].as_array().unwrap();
        let mut sums = vec![0; 5];
        for window in windows {
            for (i, stage) in window["stages"].as_array().unwrap().iter().enumerate() {
                sums[i] += stage["count"].as_i64().unwrap();
            }
        }
        sums
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop();
    }
}

pub fn track(event: &str, id: &str, at: i64) -> Value {
    json!({"type": "track", "event": event, "messageId": id, "userId": "u1", "timestamp": Timestamp::from_millis(at).to_string()})
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// Pre-aggregated count records of the example checkout funnel: `windows` windows of
/// `window_s` seconds from `from`, about `per_minute` shoppers a minute at the top of a daily
/// rhythm, with checkout converting to payment at 10% instead of 75% where `broken(at)`.
pub fn count_records(
    rng: &mut revloop_core::rng::Rng,
    from: i64,
    windows: i64,
    window_s: i64,
    per_minute: f64,
    broken: impl Fn(i64) -> bool,
) -> Vec<String> {
    let mut records = Vec::new();
    for window in 0..windows {
        let at = from + window * window_s * 1_000;
        let hour = (at / (60 * MINUTE)) % 24;
        let rhythm = 1.0 + 0.6 * (((hour as f64) - 8.0) / 24.0 * std::f64::consts::TAU).sin();
        let mut n = rng.poisson(per_minute * (window_s as f64 / 60.0) * rhythm);
        for (stage, conversion) in [
            ("product_viewed", 0.3),
            ("cart", 0.55),
            ("checkout", if broken(at) { 0.1 } else { 0.75 }),
            ("payment", 0.85),
            ("order", 1.0),
        ] {
            records.push(json!({"funnel": "checkout", "stage": stage, "window_start": Timestamp::from_millis(at).to_string(), "window_s": window_s, "count": n}).to_string());
            n = (0..n).filter(|_| rng.bernoulli(conversion)).count() as u64;
        }
    }
    records
}

impl TestServer {
    /// Posts count records as NDJSON, in chunks the endpoint takes.
    pub fn post_counts(&self, records: &[String]) {
        for chunk in records.chunks(9_000) {
            let reply = self.post(
                "/api/v1/counts",
                &[
                    ("Authorization", &self.basic()),
                    ("Content-Type", "application/x-ndjson"),
                ],
                chunk.join("\n").as_bytes(),
            );
            assert_eq!(reply.status, 200, "{}", reply.body);
        }
    }

    /// Waits until the live detector has judged every minute before `minute_end`.
    pub fn wait_until_judged(&self, minute_end: i64) {
        self.wait_for("/api/v1/alerts?limit=1", |body| {
            body["judged_until"]
                .as_str()
                .and_then(|t| Timestamp::parse_rfc3339(t).ok())
                .is_some_and(|t| t.millis() >= minute_end)
        });
    }
}

/// A server on a PostgreSQL schema of its own (`{file}_{test}` and the process id), handed to
/// `check`, the schema dropped after. Skips when `REVLOOP_TEST_DATABASE_URL` is not set.
pub fn on_postgresql(file: &str, test: &str, check: impl FnOnce(&TestServer)) {
    let config = Config::parse(Config::example_toml()).unwrap();
    on_postgresql_with(file, test, config, check);
}

/// [`on_postgresql`] with a config of the test's own.
pub fn on_postgresql_with(file: &str, test: &str, config: Config, check: impl FnOnce(&TestServer)) {
    let Ok(url) = std::env::var("REVLOOP_TEST_DATABASE_URL") else {
        eprintln!("skipped: REVLOOP_TEST_DATABASE_URL is not set");
        return;
    };
    let schema = format!("revloop_{file}_test_{test}_{}", std::process::id());
    let store =
        Arc::new(revloop_store::PostgresStore::open_in_schema(&url, &schema, &config).unwrap());
    let server = TestServer::start_with(config, store, tempfile::tempdir().unwrap());
    check(&server);
    drop(server);
    revloop_store::PostgresStore::drop_schema(&url, &schema).unwrap();
}
