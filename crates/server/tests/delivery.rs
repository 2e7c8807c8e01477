//! The deliverer's reliability against real local receivers (tests/common/receiver.rs): the
//! real server on a manual clock, its `[delivery]` section built in the test, and outbox
//! entries written to the store as the incidents service writes them (one commit), so that
//! each test controls exactly what is owed. Retries are due on the manual clock: a test moves
//! it to make them due, so a wait is never guessed.
//!
//! What it shows: a restart in the middle of retries delivers each message exactly once to an
//! idempotent receiver; a dead channel (hanging, or a closed port) does not delay another; a
//! 4xx stops retries; a 429 waits as its `Retry-After` says; a receiver that hangs is a
//! visible timeout; two nodes on one PostgreSQL database deliver each message once; every
//! acknowledge and resolve reaches a receiver after its trigger.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use common::receiver::{PAGERDUTY_PATH, Receiver, Reply};
use common::{T0, TestServer};
use revloop_core::Config;
use revloop_core::config::{Channel, ChannelKind, Delivery, Route, SecretSource, Url};
use revloop_core::delivery::RetryPolicy;
use revloop_core::incident::EngineMeta;
use revloop_core::time::{DurationMs, Timestamp};
use revloop_store::{AlertWatermark, IncidentCommit, OutboxKind, OutboxRow, Store};

const SECRET: &str = "whsec-test";

/// A `[delivery]` section under construction, with its secret file.
struct Setup {
    channels: Vec<Channel>,
    targets: BTreeMap<String, Vec<Route>>,
    secrets: tempfile::TempDir,
}

impl Setup {
    fn new() -> Setup {
        let secrets = tempfile::tempdir().unwrap();
        std::fs::write(secrets.path().join("secret"), format!("{SECRET}\n")).unwrap();
        Setup {
            channels: Vec::new(),
            targets: BTreeMap::new(),
            secrets,
        }
    }

    fn secret(&self) -> SecretSource {
        let path = self.secrets.path().join("secret");
        SecretSource::File(path.to_string_lossy().into_owned())
    }

    /// A signed webhook channel to `url`, with its timeout and concurrency.
    fn webhook(mut self, name: &str, url: &str, timeout_ms: i64, concurrency: usize) -> Setup {
        let kind = ChannelKind::Webhook {
            url: Url(url.to_owned()),
            secret: self.secret(),
        };
        self.channels
            .push(channel(name, kind, timeout_ms, concurrency));
        self
    }

    fn pagerduty(mut self, name: &str, url: &str) -> Setup {
        let kind = ChannelKind::PagerDuty {
            url: Url(url.to_owned()),
            routing_key: self.secret(),
        };
        self.channels.push(channel(name, kind, 5_000, 4));
        self
    }

    fn route(mut self, target: &str, channels: &[&str]) -> Setup {
        let routes = channels.iter().map(|c| Route {
            channel: (*c).to_owned(),
            to: None,
        });
        self.targets
            .entry(target.to_owned())
            .or_default()
            .extend(routes);
        self
    }

    /// The example config with this `[delivery]`: retries after 1 to 2 s of clock time.
    fn config(&self) -> Config {
        let mut config = Config::parse(Config::example_toml()).unwrap();
        config.delivery = Some(Delivery {
            channels: self.channels.clone(),
            targets: self.targets.clone(),
            audiences: BTreeMap::new(),
            failover_after: DurationMs::from_minutes(5),
            retry: RetryPolicy {
                base: DurationMs::from_secs(1),
                cap: DurationMs::from_secs(2),
                give_up_after: DurationMs::from_hours(1),
            },
        });
        config
    }
}

fn channel(name: &str, kind: ChannelKind, timeout_ms: i64, concurrency: usize) -> Channel {
    Channel {
        name: name.to_owned(),
        kind,
        concurrency,
        timeout: DurationMs::from_millis(timeout_ms),
    }
}

/// Writes outbox entries as the incidents service does, in one commit on the stored version,
/// and returns their ids. Each is `(incident, kind, body without id)`.
fn queue(store: &dyn Store, entries: &[(i64, &str, Value)]) -> Vec<i64> {
    let rows: Vec<OutboxRow> = entries
        .iter()
        .map(|(incident, kind, body)| OutboxRow {
            id: 0,
            incident: *incident,
            at: Timestamp::parse_rfc3339(body["at"].as_str().unwrap()).unwrap(),
            kind: outbox_kind(kind),
            body: body.to_string(),
        })
        .collect();
    for _ in 0..50 {
        let snapshot = store.load_incidents(0).unwrap();
        let meta = snapshot.meta.unwrap_or_else(|| {
            let engine = EngineMeta {
                next_id: 1_000,
                evaluated_at: Timestamp::from_millis(T0),
                added_silences: Vec::new(),
                next_silence_id: 1,
                surges: Default::default(),
            };
            revloop_store::encode_incident_meta(&engine, &AlertWatermark::NONE).unwrap()
        });
        let commit = IncidentCommit {
            expected_version: snapshot.version,
            meta,
            incidents: Vec::new(),
            timeline: Vec::new(),
            outbox: rows.clone(),
        };
        match store.commit_incidents(&commit) {
            Ok(_) => {
                let all = store.outbox(0, 10_000).unwrap();
                return all[all.len() - rows.len()..].iter().map(|r| r.id).collect();
            }
            Err(revloop_store::StoreError::Conflict { .. }) => continue,
            Err(err) => panic!("{err}"),
        }
    }
    panic!("the outbox could not be written");
}

/// The store's kind column of an entry kind.
fn outbox_kind(kind: &str) -> OutboxKind {
    match kind {
        "remind" => OutboxKind::Remind,
        "sla_breached" => OutboxKind::SlaBreached,
        "acknowledged" => OutboxKind::Acknowledged,
        "resolved" => OutboxKind::Resolved,
        _ => OutboxKind::Notify,
    }
}

fn at(ms: i64) -> String {
    Timestamp::from_millis(ms).to_string()
}

fn page(incident: i64, target: &str) -> (i64, &'static str, Value) {
    let body = json!({
        "kind": "notify", "incident": incident, "at": at(T0), "level": "L1",
        "targets": [target], "reason": "opened",
        "brief": {
            "title": format!("P1 conversion: checkout/payment #{incident}"),
            "funnel": "checkout", "stage": "payment", "severity": "P1",
            "kind": "conversion", "sigma": -5.1,
            "loss": {"minor": 12_345, "currency": "USD"},
        },
    });
    (incident, "notify", body)
}

fn update(incident: i64, kind: &'static str, target: &str) -> (i64, &'static str, Value) {
    let (_, _, mut body) = page(incident, target);
    let map = body.as_object_mut().unwrap();
    for field in ["level", "reason"] {
        map.remove(field);
    }
    map.insert("kind".into(), json!(kind));
    map.insert("by".into(), json!("alice"));
    if kind == "resolved" {
        map.insert("false_alarm".into(), json!(false));
    }
    (incident, kind, body)
}

/// A second handle on a SQLite server's database, for writing the outbox.
fn sqlite_store(server: &TestServer, config: &Config) -> Arc<dyn Store> {
    let path = server.dir().join("test.db");
    Arc::new(revloop_store::SqliteStore::open(&path, config).unwrap())
}

/// The deliveries `GET /api/v1/outbox` shows.
fn deliveries(server: &TestServer) -> Vec<Value> {
    let reply = server.get("/api/v1/outbox?limit=1000", &server.viewer);
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.body["deliveries"].as_array().unwrap().clone()
}

/// Waits (20 s at most) until the deliveries satisfy `done`; returns them.
fn wait_deliveries(server: &TestServer, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let now = deliveries(server);
        if done(&now) {
            return now;
        }
        assert!(Instant::now() < deadline, "deliveries: {now:#?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn all_in(state: &'static str, n: usize) -> impl Fn(&[Value]) -> bool {
    move |d: &[Value]| d.len() == n && d.iter().all(|d| d["state"] == state)
}

fn metric(server: &TestServer, line_start: &str) -> Option<f64> {
    let reply = server.get("/metrics", &server.viewer);
    let text = reply.body.as_str().map(str::to_owned).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(line_start))
        .and_then(|rest| rest.trim().parse().ok())
}

#[test]
fn a_restart_in_the_middle_of_retries_delivers_each_message_exactly_once() {
    let receiver = Receiver::start();
    receiver.set_idempotent(true);
    receiver.set_secret(SECRET);
    // Every first attempt fails, then the receiver recovers. Fewer failures than open the
    // channel's breaker (5 in a row).
    const N: usize = 4;
    receiver.fail_times("/hook", N, 503);
    let setup = Setup::new()
        .webhook("hook", &receiver.url("/hook"), 5_000, 4)
        .route("on-call engineer", &["hook"]);
    let config = setup.config();
    let mut server = TestServer::start_on_file(config.clone());
    let store = sqlite_store(&server, &config);
    let entries: Vec<_> = (1..=N as i64)
        .map(|i| page(i, "on-call engineer"))
        .collect();
    queue(store.as_ref(), &entries);
    drop(store);
    wait_deliveries(&server, |d| {
        d.len() == N
            && d.iter()
                .all(|d| d["attempts"] == 1 && d["state"] == "pending")
    });
    assert_eq!(receiver.received(), N);
    // Stopped while every delivery waits for its retry; started again (a new node) with the
    // retries due.
    server.restart_at(T0 + 10_000);
    let done = wait_deliveries(&server, all_in("delivered", N));
    std::thread::sleep(Duration::from_millis(1_500));
    let requests = receiver.requests();
    assert_eq!(requests.len(), 2 * N, "one failure and one success each");
    let mut keys: Vec<&str> = requests
        .iter()
        .map(|r| r.header("idempotency-key").unwrap())
        .collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), N);
    for key in keys {
        assert_eq!(receiver.key_counts(key), (2, 1), "{key}: processed once");
    }
    assert!(requests.iter().all(|r| r.signature_verified == Some(true)));
    assert!(
        done.iter()
            .all(|d| d["attempts"] == 2 && d["last_status"] == "200")
    );
    assert_eq!(receiver.processed(), N);
}

#[test]
fn a_dead_channel_does_not_delay_another() {
    let receiver = Receiver::start();
    receiver.set_default("/hang", Reply::hang(Duration::from_secs(60)));
    let closed_port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let setup = Setup::new()
        .webhook("hanging", &receiver.url("/hang"), 6_000, 2)
        .webhook(
            "closed",
            &format!("http://127.0.0.1:{closed_port}/hook"),
            4_000,
            2,
        )
        .webhook("live", &receiver.url("/live"), 4_000, 4)
        .route("CTO", &["hanging", "closed", "live"]);
    let config = setup.config();
    let server = TestServer::start_on_file(config.clone());
    const N: usize = 12;
    let started = Instant::now();
    let entries: Vec<_> = (1..=N as i64).map(|i| page(i, "CTO")).collect();
    queue(sqlite_store(&server, &config).as_ref(), &entries);
    let live = wait_deliveries(&server, |d| {
        d.iter()
            .filter(|d| d["channel"] == "live" && d["state"] == "delivered")
            .count()
            == N
    });
    // Every live delivery was done before the hanging channel's first attempt timed out:
    // nothing of the dead channels stood in its way.
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(receiver.requests_to("/live").len(), N);
    let hanging: Vec<_> = live.iter().filter(|d| d["channel"] == "hanging").collect();
    assert_eq!(hanging.len(), N);
    let untried = |d: &&Value| d["state"] == "pending" && d["attempts"] == 0;
    assert!(hanging.iter().all(untried), "{hanging:?}");
    assert_eq!(receiver.requests_to("/hang").len(), 2, "its two slots hang");
    // The closed port is a visible network failure, retried (until its breaker opens, after
    // five in a row, and holds the rest back).
    let closed = wait_deliveries(&server, |d| {
        let tried = d
            .iter()
            .filter(|d| d["channel"] == "closed" && d["attempts"] == 1);
        tried.count() >= 5
    });
    for delivery in closed.iter().filter(|d| d["channel"] == "closed") {
        assert_eq!(delivery["state"], "pending", "{delivery}");
        if delivery["attempts"] == 1 {
            assert!(
                delivery["last_status"]
                    .as_str()
                    .is_some_and(|s| !s.starts_with('2'))
            );
        }
    }
}

#[test]
fn a_4xx_stops_retries_and_a_429_waits_as_told() {
    let receiver = Receiver::start();
    receiver.set_default("/refuses", Reply::with_body(400, "unknown routing key"));
    receiver.script("/busy", vec![Reply::retry_after(429, "120")]);
    let setup = Setup::new()
        .webhook("refuses", &receiver.url("/refuses"), 5_000, 4)
        .webhook("busy", &receiver.url("/busy"), 5_000, 4)
        .route("CTO", &["refuses", "busy"]);
    let config = setup.config();
    let server = TestServer::start_on_file(config.clone());
    queue(sqlite_store(&server, &config).as_ref(), &[page(1, "CTO")]);
    let first = wait_deliveries(&server, |d| {
        d.len() == 2 && d.iter().all(|d| d["attempts"] == 1)
    });
    let of = |all: &[Value], channel: &str| -> Value {
        all.iter()
            .find(|d| d["channel"] == channel)
            .unwrap()
            .clone()
    };
    let refused = of(&first, "refuses");
    assert_eq!(refused["state"], "failed", "{refused}");
    assert_eq!(refused["last_status"], "400");
    assert!(
        refused["last_response"]
            .as_str()
            .unwrap()
            .contains("unknown routing key")
    );
    let busy = of(&first, "busy");
    assert_eq!(busy["state"], "pending", "{busy}");
    assert_eq!(busy["last_status"], "429");
    // Retry-After: 120 from the attempt's time (the manual clock stands at T0).
    assert_eq!(busy["next_at"], at(T0 + 120_000), "{busy}");
    // A minute on: nothing is due.
    server.set_clock(T0 + 60_000);
    std::thread::sleep(Duration::from_millis(1_500));
    assert_eq!(receiver.requests_to("/busy").len(), 1);
    // Past the two minutes: the 429 is retried and delivered; the 400 never is.
    server.set_clock(T0 + 121_000);
    let done = wait_deliveries(&server, |d| of(d, "busy")["state"] == "delivered");
    assert_eq!(of(&done, "busy")["attempts"], 2);
    server.set_clock(T0 + 3_600_000);
    std::thread::sleep(Duration::from_millis(1_500));
    assert_eq!(receiver.requests_to("/refuses").len(), 1);
    assert_eq!(of(&deliveries(&server), "refuses")["attempts"], 1);
    assert_eq!(
        metric(
            &server,
            "revloop_deliveries_total{channel=\"refuses\",result=\"failed\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &server,
            "revloop_deliveries_total{channel=\"busy\",result=\"delivered\"}"
        ),
        Some(1.0)
    );
}

#[test]
fn a_receiver_that_hangs_is_a_visible_timeout_failure() {
    let receiver = Receiver::start();
    receiver.set_default("/hang", Reply::hang(Duration::from_secs(60)));
    let setup = Setup::new()
        .webhook("hanging", &receiver.url("/hang"), 1_000, 1)
        .route("CTO", &["hanging"]);
    let config = setup.config();
    let server = TestServer::start_on_file(config.clone());
    queue(sqlite_store(&server, &config).as_ref(), &[page(1, "CTO")]);
    let started = Instant::now();
    let timed_out = wait_deliveries(&server, |d| d.len() == 1 && d[0]["attempts"] == 1);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(timed_out[0]["state"], "pending");
    assert_eq!(timed_out[0]["last_status"], "timeout", "{}", timed_out[0]);
    assert!(timed_out[0]["next_at"].is_string());
    assert_eq!(
        metric(
            &server,
            "revloop_delivery_attempts_failed_total{channel=\"hanging\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(&server, "revloop_deliveries_pending{channel=\"hanging\"}"),
        Some(1.0)
    );
}

/// Per incident, the event order a receiver saw: each message's outbox id, in arrival order,
/// of the requests it processed.
fn order_seen(
    requests: &[common::receiver::Recorded],
    kinds: &BTreeMap<String, &str>,
) -> Vec<String> {
    requests
        .iter()
        .filter(|r| r.processed)
        .filter_map(|r| {
            r.json()["id"]
                .as_str()
                .and_then(|id| kinds.get(id))
                .map(|k| k.to_string())
        })
        .collect()
}

#[test]
fn every_resolve_follows_its_trigger() {
    let receiver = Receiver::start();
    // The triggers' first attempts fail: the updates queued behind them must wait.
    receiver.fail_times("/hook", 3, 500);
    let setup = Setup::new()
        .webhook("hook", &receiver.url("/hook"), 5_000, 8)
        .pagerduty("pd", &receiver.url(PAGERDUTY_PATH))
        .route("on-call engineer", &["hook", "pd"]);
    let config = setup.config();
    let server = TestServer::start_on_file(config.clone());
    let mut entries = Vec::new();
    for incident in 1..=3 {
        entries.push(page(incident, "on-call engineer"));
        entries.push(update(incident, "acknowledged", "on-call engineer"));
        entries.push(update(incident, "resolved", "on-call engineer"));
    }
    let ids = queue(sqlite_store(&server, &config).as_ref(), &entries);
    // PagerDuty takes all nine in order; the webhook's triggers wait for their retries, and
    // the updates behind them.
    wait_deliveries(&server, |d| {
        let pd_done = d
            .iter()
            .filter(|d| d["channel"] == "pd" && d["state"] == "delivered");
        let hook_tried = d
            .iter()
            .filter(|d| d["channel"] == "hook" && d["attempts"] == 1);
        pd_done.count() == 9 && hook_tried.count() == 3
    });
    assert_eq!(receiver.requests_to("/hook").len(), 3);
    // Retries after the failures come due.
    server.set_clock(T0 + 10_000);
    wait_deliveries(&server, all_in("delivered", 18));
    for incident in 1..=3usize {
        let mut kinds = BTreeMap::new();
        for (n, kind) in ["trigger", "acknowledge", "resolve"].iter().enumerate() {
            kinds.insert(format!("msg-{}", ids[(incident - 1) * 3 + n]), *kind);
        }
        let seen = order_seen(&receiver.requests_to("/hook"), &kinds);
        assert_eq!(
            seen,
            ["trigger", "acknowledge", "resolve"],
            "incident {incident}"
        );
    }
    // PagerDuty: per dedup key, trigger then acknowledge then resolve, each a valid v2 event.
    let mut actions: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for request in receiver.requests_to(PAGERDUTY_PATH) {
        assert_eq!(request.answered, 202, "{}", request.text());
        let event = request.json();
        let key = event["dedup_key"].as_str().unwrap().to_owned();
        let action = event["event_action"].as_str().unwrap().to_owned();
        actions.entry(key).or_default().push(action);
    }
    assert_eq!(actions.len(), 3, "{actions:?}");
    for sequence in actions.values() {
        assert_eq!(sequence, &["trigger", "acknowledge", "resolve"]);
    }
}

/// Two nodes share one PostgreSQL database: each of many messages is delivered once, and both
/// nodes take part.
#[test]
fn two_nodes_on_postgresql_deliver_each_message_once() {
    let Ok(url) = std::env::var("REVLOOP_TEST_DATABASE_URL") else {
        eprintln!("skipped: REVLOOP_TEST_DATABASE_URL is not set");
        return;
    };
    let receiver = Receiver::start();
    // A receiver that takes its time, so that neither node can drain the queue alone between
    // two looks of the other.
    receiver.set_default("/hook", Reply::hang(Duration::from_millis(40)));
    let setup = Setup::new()
        .webhook("hook", &receiver.url("/hook"), 5_000, 4)
        .route("on-call engineer", &["hook"]);
    let config = setup.config();
    let schema = format!("revloop_delivery_test_two_nodes_{}", std::process::id());
    let open = || -> Arc<dyn Store> {
        Arc::new(revloop_store::PostgresStore::open_in_schema(&url, &schema, &config).unwrap())
    };
    let first = TestServer::start_with(config.clone(), open(), tempfile::tempdir().unwrap());
    let second = TestServer::start_with(config.clone(), open(), tempfile::tempdir().unwrap());
    const N: usize = 200;
    let entries: Vec<_> = (1..=N as i64)
        .map(|i| page(i, "on-call engineer"))
        .collect();
    let writer = open();
    for chunk in entries.chunks(50) {
        queue(writer.as_ref(), chunk);
    }
    wait_deliveries(&first, all_in("delivered", N));
    std::thread::sleep(Duration::from_millis(1_500));
    let requests = receiver.requests_to("/hook");
    let mut keys: Vec<String> = requests
        .iter()
        .map(|r| r.header("idempotency-key").unwrap().to_owned())
        .collect();
    assert_eq!(keys.len(), N, "one request per message");
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), N);
    // The attempt log agrees: one attempt per delivery, by whichever node held its lease.
    let mut nodes = BTreeMap::<String, usize>::new();
    for incident in 1..=N as i64 {
        let attempts = writer.delivery_attempts(incident, 10).unwrap();
        assert_eq!(attempts.len(), 1, "incident {incident}: {attempts:?}");
        *nodes.entry(attempts[0].node.clone()).or_default() += 1;
    }
    assert_eq!(nodes.len(), 2, "both nodes delivered: {nodes:?}");
    drop(writer);
    drop((first, second));
    revloop_store::PostgresStore::drop_schema(&url, &schema).unwrap();
}

/// Declares a P1 incident by hand, as a responder would (`POST /api/v1/incidents`); its id.
fn declare(server: &TestServer) -> u64 {
    let body = json!({
        "severity": "P1", "funnel": "checkout", "stage": "payment",
        "summary": "card payments failing",
    });
    let reply = server.post_json("/api/v1/incidents", &server.responder, &body);
    assert!(reply.status == 200 || reply.status == 201, "{}", reply.body);
    reply.body["id"].as_u64().unwrap()
}

/// The levels paged for `incident`, in outbox order, with the time of each page.
fn levels_paged(server: &TestServer, incident: u64) -> Vec<(String, String)> {
    let reply = server.get("/api/v1/outbox?limit=1000", &server.viewer);
    reply.body["outbox"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["incident"] == incident && e["kind"] == "notify")
        .map(|e| {
            (
                e["level"].as_str().unwrap().to_owned(),
                e["at"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Every channel of L1 failing for `failover_after` pages L2 at once (not at its 15 minutes);
/// L2's only route refusing for good (a 400: one attempt, on the timeline) pages L3 at once.
#[test]
fn a_level_nobody_could_be_reached_at_pages_the_next_at_once() {
    let receiver = Receiver::start();
    receiver.set_default("/l1", Reply::status(503));
    receiver.set_default("/l2", Reply::with_body(400, "no such user"));
    let setup = Setup::new()
        .webhook("l1", &receiver.url("/l1"), 5_000, 4)
        .webhook("l2", &receiver.url("/l2"), 5_000, 4)
        .webhook("rest", &receiver.url("/rest"), 5_000, 4)
        .route("on-call engineer", &["l1"])
        .route("engineering manager", &["l2"])
        .route("VP engineering", &["rest"])
        .route("CTO", &["rest"]);
    let server = TestServer::start_on_file(setup.config());
    let id = declare(&server);
    receiver.wait_for(1, Duration::from_secs(10));
    assert_eq!(receiver.requests_to("/l1").len(), 1);
    // Four minutes of failing: not yet.
    server.set_clock(T0 + 4 * 60_000);
    std::thread::sleep(Duration::from_millis(1_500));
    assert_eq!(
        levels_paged(&server, id).len(),
        1,
        "{:?}",
        levels_paged(&server, id)
    );
    // Past five minutes: L2 at once, whose 400 fails it for good, so L3 at once too.
    let failover_at = T0 + 5 * 60_000 + 1_000;
    server.set_clock(failover_at);
    // Generous: two failovers, each a planner pass, a claim and an attempt, on a loaded CI.
    let deadline = Instant::now() + Duration::from_secs(60);
    while receiver.requests_to("/rest").is_empty() {
        assert!(Instant::now() < deadline, "{:?}", levels_paged(&server, id));
        std::thread::sleep(Duration::from_millis(50));
    }
    let levels: Vec<String> = levels_paged(&server, id)
        .into_iter()
        .map(|(l, _)| l)
        .collect();
    assert_eq!(levels, ["L1", "L2", "L3"]);
    for (level, paged_at) in levels_paged(&server, id).into_iter().skip(1) {
        assert_eq!(
            paged_at,
            at(failover_at),
            "{level} was paged at the failover"
        );
    }
    assert_eq!(receiver.requests_to("/l2").len(), 1, "a 400 is not retried");
    let incident = server.get(&format!("/api/v1/incidents/{id}"), &server.viewer);
    let timeline: Vec<&str> = incident.body["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "delivery")
        .map(|e| e["text"].as_str().unwrap())
        .collect();
    assert!(
        timeline.iter().any(|t| t
            .starts_with("gave up reaching engineering manager by webhook (l2): 400 no such user")),
        "{timeline:#?}"
    );
    assert!(
        timeline
            .iter()
            .any(|t| t.starts_with("failed to reach on-call engineer by webhook (l1): 503")),
        "{timeline:#?}"
    );
    assert!(
        timeline
            .iter()
            .any(|t| t.starts_with("delivered to VP engineering by webhook (rest) (200)")),
        "{timeline:#?}"
    );
}

/// A channel whose secret is missing at start (the file was removed after `check-config`)
/// fails its deliveries visibly, status `setup`, and keeps them for when the secret appears;
/// the other channels deliver as usual.
#[test]
fn a_missing_secret_is_a_visible_failure_and_stalls_no_other_channel() {
    let receiver = Receiver::start();
    let mut setup = Setup::new()
        .webhook("live", &receiver.url("/live"), 5_000, 4)
        .route("CTO", &["live", "unkeyed"]);
    let missing = setup.secrets.path().join("no-such-secret");
    setup.channels.push(channel(
        "unkeyed",
        ChannelKind::Webhook {
            url: Url(receiver.url("/unkeyed")),
            secret: SecretSource::File(missing.to_string_lossy().into_owned()),
        },
        5_000,
        4,
    ));
    let config = setup.config();
    let server = TestServer::start_on_file(config.clone());
    queue(sqlite_store(&server, &config).as_ref(), &[page(1, "CTO")]);
    let done = wait_deliveries(&server, |d| {
        d.len() == 2 && d.iter().all(|d| d["attempts"] == 1)
    });
    let of = |channel: &str| done.iter().find(|d| d["channel"] == channel).unwrap();
    assert_eq!(of("live")["state"], "delivered");
    let unkeyed = of("unkeyed");
    assert_eq!(unkeyed["state"], "pending", "{unkeyed}");
    assert_eq!(unkeyed["last_status"], "setup", "{unkeyed}");
    assert!(
        unkeyed["last_response"]
            .as_str()
            .unwrap()
            .contains("no-such-secret"),
        "the answer names what is missing: {unkeyed}"
    );
    assert!(receiver.requests_to("/unkeyed").is_empty());
}
