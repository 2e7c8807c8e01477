//! The live detector under injected store faults, with two funnels and a manual clock: a
//! failing read of one funnel leaves the other judged on time, the failed funnel retries with
//! an exponential backoff (counted in store calls) and resumes by itself once healed, a warm-up
//! retries only the chunk that failed, and the status, `/readyz` and `/metrics` say where each
//! funnel stands.

mod common;

use std::sync::Arc;

use serde_json::Value;

use revloop_api::detector::JudgingState;
use revloop_core::detect::first_unjudged;
use revloop_core::{Config, Timestamp};
use revloop_server::detection::{Detection, FailureClass, FunnelStatus, retry_backoff};
use revloop_server::http::auth::{generate_secret, hash_secret};
use revloop_server::{App, AppOptions};
use revloop_store::faults::{Call, Failure, Fault, FaultyStore};
use revloop_store::{Role, SqliteStore, Store};

use common::{ManualClock, T0, TestServer};

const SECOND: i64 = 1_000;

/// The example config with a second funnel, `signup`, and a short history (a week of
/// baselines and a day of learning), so that a warm-up reads ten chunks.
fn two_funnels() -> Config {
    let example = Config::example_toml();
    let signup = r#"
[[funnels]]
id = "signup"
name = "Sign-up"

[[funnels.stages]]
id = "started"
event = "Signup Started"

[[funnels.stages]]
id = "completed"
event = "Signup Completed"

"#;
    let at = example.find("[detection]").unwrap();
    let toml = format!("{}{signup}{}", &example[..at], &example[at..])
        .replace("learning = \"7d\"", "learning = \"1d\"")
        .replace("baseline_weeks = 4", "baseline_weeks = 1");
    Config::parse(&toml).unwrap()
}

/// A SQLite store in `dir`, behind a fault injector.
fn faulty_store(config: &Config, dir: &tempfile::TempDir) -> Arc<FaultyStore> {
    let sqlite = SqliteStore::open(&dir.path().join("test.db"), config).unwrap();
    FaultyStore::new(Arc::new(sqlite))
}

fn signup_fails() -> Fault {
    Fault::new(
        Call::SegmentMinuteCounts,
        Failure::Io("disk gone at /var/lib/secret".into()),
    )
    .funnel("signup")
}

fn status_of<'a>(status: &'a [FunnelStatus], funnel: &str) -> &'a FunnelStatus {
    status.iter().find(|s| s.funnel == funnel).unwrap()
}

#[test]
fn backoff_doubles_from_a_second_to_five_minutes() {
    let waits: Vec<i64> = (1..=12)
        .map(|n| retry_backoff(n).millis() / SECOND)
        .collect();
    assert_eq!(waits, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]);
    assert_eq!(retry_backoff(u32::MAX).millis(), 300 * SECOND);
}

/// Ticks once a second for ten minutes with `signup`'s reads failing: `checkout` is judged up
/// to the minute due at every tick, `signup` is read only at 0, 1, 3, 7, ... 511 s (each wait
/// twice the last), and once healed it resumes at its next retry, by itself.
#[test]
fn a_failing_funnel_backs_off_while_the_other_is_judged_on_time() {
    let config = two_funnels();
    let dir = tempfile::tempdir().unwrap();
    let store = faulty_store(&config, &dir);
    store.inject(signup_fails());
    let detection = Detection::new(Arc::new(config.clone()));
    let settle = config.detection.settle;
    let tick = |at: i64| {
        let now = Timestamp::from_millis(at);
        detection.tick(store.as_ref(), now, &|| now)
    };

    let first = tick(T0);
    assert_eq!(first.failures.len(), 1);
    assert_eq!(first.failures[0].0, "signup");
    let status = detection.status();
    let (checkout, signup) = (status_of(&status, "checkout"), status_of(&status, "signup"));
    assert_eq!(checkout.state(), JudgingState::Live);
    assert_eq!(signup.state(), JudgingState::Failing);
    let failure = signup.failure.unwrap();
    assert_eq!(
        (failure.attempts, failure.class, failure.since.millis()),
        (1, FailureClass::Io, T0)
    );
    assert_eq!(failure.next_retry_at.millis(), T0 + SECOND);
    assert_eq!(signup.judged_until, None);

    for second in 1..=600 {
        let at = T0 + second * SECOND;
        tick(at);
        let status = detection.status();
        assert_eq!(
            status_of(&status, "checkout").judged_until,
            Some(first_unjudged(Timestamp::from_millis(at), settle)),
            "checkout is judged on time at {second} s"
        );
        assert_eq!(status_of(&status, "signup").state(), JudgingState::Failing);
    }
    // Reads at 0, 1, 3, 7, 15, 31, 63, 127, 255 and 511 s: ten, not six hundred.
    assert_eq!(store.failures(Call::SegmentMinuteCounts), 10);
    let status = detection.status();
    let signup = status_of(&status, "signup");
    assert_eq!(signup.read_failures_total, 10);
    let failure = signup.failure.unwrap();
    assert_eq!(failure.attempts, 10);
    assert_eq!(failure.since.millis(), T0);
    assert_eq!(failure.next_retry_at.millis(), T0 + 811 * SECOND);
    let judging = detection.judging();
    assert_eq!(judging[1].funnel, "signup");
    assert!(!judging[1].live);
    assert_eq!(judging[1].failing_since.map(|t| t.millis()), Some(T0));
    let error = judging[1].error.clone().unwrap();
    assert!(!error.contains("secret"), "{error}");
    assert!(judging[0].live && judging[0].error.is_none());

    // Healed: nothing happens before the retry is due, and then it warms up and goes live.
    store.heal();
    let reads_before = store.calls(Call::SegmentMinuteCounts);
    tick(T0 + 810 * SECOND);
    let status = detection.status();
    assert_eq!(status_of(&status, "signup").state(), JudgingState::Failing);
    let at = T0 + 811 * SECOND;
    assert!(tick(at).failures.is_empty());
    assert!(store.calls(Call::SegmentMinuteCounts) > reads_before);
    let status = detection.status();
    let signup = status_of(&status, "signup");
    assert_eq!(signup.state(), JudgingState::Live);
    assert_eq!(signup.live_since.map(|t| t.millis()), Some(at));
    assert_eq!(
        signup.judged_until,
        Some(first_unjudged(Timestamp::from_millis(at), settle))
    );
    assert_eq!(store.failures(Call::SegmentMinuteCounts), 10);
}

/// A read that panics fails its funnel alone, as a `store_panic`, and the other goes live.
#[test]
fn a_panicking_read_fails_only_its_funnel() {
    let config = two_funnels();
    let dir = tempfile::tempdir().unwrap();
    let store = faulty_store(&config, &dir);
    store.inject(Fault::new(Call::SegmentMinuteCounts, Failure::Panic).funnel("signup"));
    let detection = Detection::new(Arc::new(config));
    let now = Timestamp::from_millis(T0);
    let tick = detection.tick(store.as_ref(), now, &|| now);
    assert_eq!(tick.failures.len(), 1);
    let status = detection.status();
    assert_eq!(status_of(&status, "checkout").state(), JudgingState::Live);
    let failure = status_of(&status, "signup").failure.unwrap();
    assert_eq!(failure.class, FailureClass::Panic);
}

/// A warm-up whose fourth chunk fails keeps the three it read: the retry reads that chunk and
/// the rest, one read more than a clean warm-up, and judges exactly what a clean one does.
#[test]
fn a_warm_up_retries_the_chunk_that_failed_not_the_weeks() {
    let config = Arc::new(two_funnels());
    let warm_up = |fault: Option<Fault>| {
        let dir = tempfile::tempdir().unwrap();
        let store = faulty_store(&config, &dir);
        if let Some(fault) = fault {
            store.inject(fault);
        }
        let detection = Detection::new(config.clone());
        let now = Timestamp::from_millis(T0);
        let failed = detection.tick(store.as_ref(), now, &|| now).failures.len();
        // The retry is due a second later, in the same minute: nothing new to judge.
        let later = Timestamp::from_millis(T0 + SECOND);
        detection.tick(store.as_ref(), later, &|| later);
        let status = detection.status();
        assert_eq!(status_of(&status, "signup").state(), JudgingState::Live);
        let reads = store.calls(Call::SegmentMinuteCounts);
        let report = format!("{:?}", detection.report(1));
        (
            failed,
            reads,
            status_of(&status, "signup").judged_until,
            report,
        )
    };
    let clean = warm_up(None);
    let faulty = warm_up(Some(signup_fails().after(3).times(1)));
    assert_eq!(clean.0, 0);
    assert_eq!(faulty.0, 1);
    // Nine days of history per funnel, a day a read.
    assert!(clean.1 >= 18, "{}", clean.1);
    assert_eq!(faulty.1, clean.1 + 1, "only the failed chunk is read again");
    assert_eq!(faulty.2, clean.2);
    assert_eq!(faulty.3, clean.3);
}

/// The app with its detector driven by hand (no loop), on port 0.
struct HandDriven {
    base: String,
    viewer: String,
    app_state: revloop_server::api::AppState,
    store: Arc<FaultyStore>,
    _runtime: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
}

impl HandDriven {
    fn start() -> HandDriven {
        let config = two_funnels();
        let dir = tempfile::tempdir().unwrap();
        let store = faulty_store(&config, &dir);
        let secret = generate_secret().unwrap();
        store
            .create_token(
                "viewer",
                Role::Viewer,
                hash_secret(&secret),
                Timestamp::from_millis(T0),
            )
            .unwrap();
        let clock = Arc::new(ManualClock(T0.into()));
        let app = App::build(
            config,
            store.clone(),
            clock,
            AppOptions {
                metrics_public: true,
                ..AppOptions::default()
            },
        );
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let router = app.router();
        runtime.spawn(async move { axum::serve(listener, router).await });
        HandDriven {
            base,
            viewer: secret,
            app_state: app.state,
            store,
            _runtime: runtime,
            _dir: dir,
        }
    }

    fn get(&self, path: &str) -> (u16, Value) {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let mut response = agent
            .get(&format!("{}{path}", self.base))
            .header("Authorization", &format!("Bearer {}", self.viewer))
            .call()
            .unwrap();
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    fn tick(&self, at: i64, clock_after: i64) -> usize {
        let now = Timestamp::from_millis(at);
        let after = Timestamp::from_millis(clock_after);
        let store: &dyn Store = self.store.as_ref();
        self.app_state
            .detection
            .tick(store, now, &|| after)
            .failures
            .len()
    }
}

/// Before the first tick every funnel is warming up and `/readyz` answers 503 saying so; a
/// warm-up that took 40 s (by the clock) makes `live_since` the end of it, not its start; a
/// funnel failing after that shows on the status and in `/metrics`, with its error as a class
/// and no database text, and does not fail readiness.
#[test]
fn status_and_readyz_say_warming_up_then_live_then_failing() {
    let server = HandDriven::start();
    let (status, ready) = server.get("/readyz");
    assert_eq!(status, 503, "{ready}");
    assert_eq!(ready["detector"], "warming_up", "{ready}");
    assert_eq!(ready["store"], true);
    assert_eq!(ready["writer"], true);
    let (status, detector) = server.get("/api/v1/detector");
    assert_eq!(status, 200, "{detector}");
    assert_eq!(detector["state"], "warming_up");
    assert_eq!(detector["live_since"], Value::Null);
    for funnel in detector["funnels"].as_array().unwrap() {
        assert_eq!(funnel["state"], "warming_up", "{funnel}");
        assert_eq!(funnel["live_since"], Value::Null, "{funnel}");
        assert_eq!(funnel["last_judged_minute"], Value::Null, "{funnel}");
    }

    assert_eq!(server.tick(T0, T0 + 40 * SECOND), 0);
    let (status, ready) = server.get("/readyz");
    assert_eq!(
        (status, &ready["detector"]),
        (200, &Value::from("live")),
        "{ready}"
    );
    let (_, funnel) = server.get("/api/v1/funnels/checkout/detector");
    assert_eq!(funnel["state"], "live", "{funnel}");
    let live_since = Timestamp::from_millis(T0 + 40 * SECOND).to_string();
    assert_eq!(funnel["live_since"], live_since.as_str(), "{funnel}");
    // At 10:00:00 with a settle time of a minute, 09:58 is the last minute judged.
    assert_eq!(
        funnel["last_judged_minute"], "2026-11-27T09:58:00Z",
        "{funnel}"
    );
    assert_eq!(funnel["lag_seconds"], 60, "{funnel}");
    assert!(funnel["series"].is_array(), "{funnel}");

    server.store.inject(signup_fails());
    assert_eq!(server.tick(T0 + 120 * SECOND, T0 + 120 * SECOND), 1);
    let (status, ready) = server.get("/readyz");
    assert_eq!(
        status, 200,
        "one failing funnel does not fail readiness: {ready}"
    );
    assert_eq!(ready["failing_funnels"], serde_json::json!(["signup"]));
    let (_, detector) = server.get("/api/v1/detector");
    assert_eq!(detector["state"], "live", "{detector}");
    let signup = &detector["funnels"][1];
    assert_eq!(signup["funnel"], "signup");
    assert_eq!(signup["state"], "failing", "{signup}");
    assert_eq!(signup["live_since"], live_since.as_str(), "{signup}");
    assert_eq!(signup["failure"]["attempts"], 1, "{signup}");
    assert_eq!(signup["failure"]["error"], "store_io", "{signup}");
    assert_eq!(
        signup["failure"]["next_retry_at"],
        Timestamp::from_millis(T0 + 121 * SECOND)
            .to_string()
            .as_str()
    );
    assert!(!signup.to_string().contains("secret"), "{signup}");
    assert_eq!(detector["funnels"][0]["state"], "live");
    let typed: revloop_api::detector::DetectorStatus =
        serde_json::from_value(detector.clone()).unwrap();
    assert_eq!(typed.funnels.len(), 2);

    let (_, metrics) = server.get("/metrics");
    let metrics = metrics.as_str().unwrap();
    for line in [
        "revloop_detector_live{funnel=\"checkout\"} 1",
        "revloop_detector_live{funnel=\"signup\"} 0",
        "revloop_detector_failing{funnel=\"signup\"} 1",
        "revloop_detector_failing{funnel=\"checkout\"} 0",
        "revloop_detector_read_failures_total{funnel=\"signup\"} 1",
        "revloop_detector_stalled 0",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line}\n{metrics}");
    }
    assert!(
        metrics.contains("revloop_detector_lag_seconds{funnel=\"checkout\"} "),
        "{metrics}"
    );
}

/// The real loop, on the manual clock: `signup` fails from the start, `checkout` goes live and
/// `/readyz` turns ready; healed, `signup` resumes by itself at its next retry.
#[test]
fn the_live_loop_resumes_a_healed_funnel_by_itself() {
    let config = two_funnels();
    let dir = tempfile::tempdir().unwrap();
    let store = faulty_store(&config, &dir);
    store.inject(signup_fails());
    let server = TestServer::start_with(config, store.clone(), dir);
    let funnel_state = |body: &Value, index: usize| body["funnels"][index]["state"].clone();
    server.wait_for("/api/v1/detector", |body| {
        funnel_state(body, 0) == "live" && funnel_state(body, 1) == "failing"
    });
    let ready = server.wait_for("/readyz", |body| body["detector"] == "live");
    assert_eq!(ready["failing_funnels"], serde_json::json!(["signup"]));
    let failures = store.failures(Call::SegmentMinuteCounts);
    // The clock stands still: the loop waits for the retry instead of reading every second.
    std::thread::sleep(std::time::Duration::from_millis(2_500));
    assert!(
        store.failures(Call::SegmentMinuteCounts) <= failures + 1,
        "{failures} then {}",
        store.failures(Call::SegmentMinuteCounts)
    );

    store.heal();
    server.set_clock(T0 + 10 * 60 * SECOND);
    let body = server.wait_for("/api/v1/detector", |body| funnel_state(body, 1) == "live");
    let live_since = body["funnels"][1]["live_since"].as_str().unwrap();
    assert!(
        Timestamp::parse_rfc3339(live_since).unwrap().millis() >= T0 + 10 * 60 * SECOND,
        "{body}"
    );
    assert_eq!(body["funnels"][1]["failure"], Value::Null);
}

/// A read that hangs rather than fails (up to the store's statement limit) holds up only its
/// own funnel: each funnel has its own loop, so the other is judged on time meanwhile.
#[test]
fn a_hanging_read_of_one_funnel_delays_no_other() {
    let config = two_funnels();
    let dir = tempfile::tempdir().unwrap();
    let store = faulty_store(&config, &dir);
    let server = TestServer::start_with(config, store.clone(), dir);
    let funnel_state = |body: &Value, index: usize| body["funnels"][index]["state"].clone();
    server.wait_for("/api/v1/detector", |body| {
        funnel_state(body, 0) == "live" && funnel_state(body, 1) == "live"
    });
    let hang = std::time::Duration::from_secs(15);
    store.inject(
        Fault::new(Call::SegmentMinuteCounts, Failure::Stall(hang))
            .funnel("signup")
            .times(1),
    );
    let started = std::time::Instant::now();
    let settle = Config::parse(Config::example_toml())
        .unwrap()
        .detection
        .settle;
    let last_judged = |at: i64| first_unjudged(Timestamp::from_millis(at), settle).plus(-1);
    // Two steps of the clock: in the first, signup's read hangs; in the second, checkout is
    // judged again while it still does.
    for later in [T0 + 10 * 60 * SECOND, T0 + 12 * 60 * SECOND] {
        server.set_clock(later);
        let minute = last_judged(later).start().to_string();
        let body = server.wait_for("/api/v1/detector", |body| {
            body["funnels"][0]["last_judged_minute"].as_str() == Some(minute.as_str())
        });
        assert!(
            started.elapsed() < hang,
            "checkout waited for signup's read: {body}"
        );
    }
    assert_eq!(
        store.failures(Call::SegmentMinuteCounts),
        1,
        "signup's read is still held"
    );
}
