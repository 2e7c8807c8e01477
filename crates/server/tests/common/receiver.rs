//! A real local HTTP receiver for delivery tests: an axum server on `127.0.0.1:0`, in its own
//! thread and runtime, that records every request (method, path, headers, raw body, arrival
//! time) and answers as the test scripted it per path.
//!
//! - Scripts: per path, a queue of [`Reply`]s used one per request ("fail 3 times with 500"),
//!   then a standing reply (200 unless set: [`Receiver::set_default`]).
//! - Signatures: with [`Receiver::set_secret`], every request's `Revloop-Signature`
//!   (`t=<secs>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">`) is verified here, independently of
//!   the sender's code, and the result recorded; a request that fails it is answered 401.
//!   The timestamp is recorded, not judged: tests run the server on a manual clock.
//! - PagerDuty: requests to [`PAGERDUTY_PATH`] with no script are checked as Events API v2
//!   events and answered 202 like PagerDuty, or 400 with `errors` naming what is wrong.
//! - Idempotent mode ([`Receiver::set_idempotent`]): each `Idempotency-Key` is processed once;
//!   a repeat is answered 200 but not processed again. [`Receiver::received`] counts requests,
//!   [`Receiver::processed`] counts what a receiver acted on.
//!
//! Nothing here contacts another host. Dropping the receiver stops it at once, dropping any
//! request still in flight (a hanging one included).

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

/// The path PagerDuty's Events API v2 takes events on.
pub const PAGERDUTY_PATH: &str = "/v2/enqueue";
/// Most requests one receiver records; past it the test is wrong (a retry loop gone wild).
pub const REQUESTS_MAX: usize = 100_000;

/// One answer the receiver gives.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// Waits this long before answering (a receiver that hangs).
    pub delay: Duration,
}

impl Reply {
    pub fn ok() -> Reply {
        Reply::status(200)
    }

    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: String::new(),
            delay: Duration::ZERO,
        }
    }

    /// `status` with a body (e.g. 400 with a reason the sender should keep).
    pub fn with_body(status: u16, body: &str) -> Reply {
        Reply {
            body: body.to_string(),
            ..Reply::status(status)
        }
    }

    /// `status` (429 or 503) with `Retry-After: value` (seconds or an HTTP date).
    pub fn retry_after(status: u16, value: &str) -> Reply {
        Reply {
            headers: vec![("retry-after".to_string(), value.to_string())],
            ..Reply::status(status)
        }
    }

    /// Answers 200 only after `delay`: long enough, a receiver that hangs.
    pub fn hang(delay: Duration) -> Reply {
        Reply {
            delay,
            ..Reply::ok()
        }
    }
}

/// One request as it arrived.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    /// Header names lower-cased, in arrival order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub at: Instant,
    pub at_system: SystemTime,
    /// Whether `Revloop-Signature` verified with the receiver's secret; `None` without a secret.
    pub signature_verified: Option<bool>,
    /// The signature's `t=`, when it had one.
    pub signed_at: Option<i64>,
    /// The status the receiver answered.
    pub answered: u16,
    /// Whether the receiver acted on it (a 2xx, and in idempotent mode a key not seen before).
    pub processed: bool,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON (`Value::Null` when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

#[derive(Default)]
struct State {
    requests: Vec<Recorded>,
    scripts: HashMap<String, VecDeque<Reply>>,
    defaults: HashMap<String, Reply>,
    secret: Option<String>,
    idempotent: bool,
    keys_processed: HashSet<String>,
}

/// A running receiver. See the module docs.
pub struct Receiver {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Receiver {
    pub fn start() -> Receiver {
        let state = Arc::new(Mutex::new(State::default()));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(state.clone());
        let (shutdown, stop) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            runtime.block_on(async {
                tokio::select! {
                    _ = axum::serve(listener, app) => {}
                    _ = stop => {}
                }
            });
            // In-flight requests (a hanging one) are dropped, not waited for.
            runtime.shutdown_background();
        });
        Receiver {
            base: format!("http://{addr}"),
            addr,
            state,
            shutdown: Some(shutdown),
            thread: Some(thread),
        }
    }

    /// `base` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Verifies every request's `Revloop-Signature` with `secret`, answering 401 when it fails.
    pub fn set_secret(&self, secret: &str) {
        self.lock().secret = Some(secret.to_string());
    }

    /// Processes each `Idempotency-Key` once (see the module docs).
    pub fn set_idempotent(&self, idempotent: bool) {
        self.lock().idempotent = idempotent;
    }

    /// The replies the next requests to `path` get, one each, before the standing reply.
    pub fn script(&self, path: &str, replies: Vec<Reply>) {
        self.lock()
            .scripts
            .entry(path.to_string())
            .or_default()
            .extend(replies);
    }

    /// `n` answers of `status`, then the standing reply.
    pub fn fail_times(&self, path: &str, n: usize, status: u16) {
        self.script(path, vec![Reply::status(status); n]);
    }

    /// The reply `path` gets once its script is used up (200, or PagerDuty's check, unless set).
    pub fn set_default(&self, path: &str, reply: Reply) {
        self.lock().defaults.insert(path.to_string(), reply);
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.lock().requests.clone()
    }

    /// The requests to `path`.
    pub fn requests_to(&self, path: &str) -> Vec<Recorded> {
        self.lock()
            .requests
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }

    /// How many requests arrived.
    pub fn received(&self) -> usize {
        self.lock().requests.len()
    }

    /// How many requests the receiver acted on.
    pub fn processed(&self) -> usize {
        self.lock().requests.iter().filter(|r| r.processed).count()
    }

    /// How many requests with this `Idempotency-Key` arrived, and how many were acted on.
    pub fn key_counts(&self, key: &str) -> (usize, usize) {
        let state = self.lock();
        let with_key = state
            .requests
            .iter()
            .filter(|r| r.header("idempotency-key") == Some(key));
        with_key.fold((0, 0), |(n, p), r| (n + 1, p + usize::from(r.processed)))
    }

    /// Waits until at least `n` requests arrived, or `timeout` passed; the requests either way.
    pub fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Recorded> {
        let deadline = Instant::now() + timeout;
        loop {
            let requests = self.requests();
            if requests.len() >= n || Instant::now() >= deadline {
                return requests;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn handle(
    axum::extract::State(state): axum::extract::State<Arc<Mutex<State>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let at = (Instant::now(), SystemTime::now());
    let path = uri.path().to_string();
    let headers: Vec<(String, String)> = headers
        .iter()
        .map(|(n, v)| {
            let value = String::from_utf8_lossy(v.as_bytes()).into_owned();
            (n.as_str().to_ascii_lowercase(), value)
        })
        .collect();
    let mut recorded = Recorded {
        method: method.to_string(),
        path: path.clone(),
        headers,
        body: body.to_vec(),
        at: at.0,
        at_system: at.1,
        signature_verified: None,
        signed_at: None,
        answered: 0,
        processed: false,
    };
    let reply = {
        let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
        assert!(state.requests.len() < REQUESTS_MAX, "too many requests");
        let reply = decide(&mut state, &mut recorded);
        recorded.answered = reply.status;
        state.requests.push(recorded);
        reply
    };
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let mut response = (StatusCode::from_u16(reply.status).unwrap(), reply.body).into_response();
    for (name, value) in reply.headers {
        response.headers_mut().insert(
            axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
    }
    response
}

/// The reply to one request; fills in what the receiver found (signature, processed).
fn decide(state: &mut State, recorded: &mut Recorded) -> Reply {
    if let Some(secret) = &state.secret {
        let header = recorded.header("revloop-signature").unwrap_or("");
        let (verified, t) = verify(header, &recorded.body, secret);
        recorded.signature_verified = Some(verified);
        recorded.signed_at = t;
        if !verified {
            return Reply::with_body(401, "bad signature");
        }
    }
    let scripted = state
        .scripts
        .get_mut(&recorded.path)
        .and_then(|s| s.pop_front());
    let reply = scripted
        .or_else(|| state.defaults.get(&recorded.path).cloned())
        .unwrap_or_else(|| {
            if recorded.path == PAGERDUTY_PATH {
                pagerduty(&recorded.json())
            } else {
                Reply::ok()
            }
        });
    if (200..300).contains(&reply.status) {
        let key = recorded.header("idempotency-key").map(str::to_string);
        // Keys are remembered in either mode, so that idempotent mode may be switched on
        // after a first delivery.
        let first = key.is_none_or(|key| state.keys_processed.insert(key));
        recorded.processed = first || !state.idempotent;
    }
    reply
}

/// Verifies `t=<secs>,v1=<hex>[,v1=<hex>...]` over `"<t>.<body>"`; whether it did, and `t`.
fn verify(header: &str, body: &[u8], secret: &str) -> (bool, Option<i64>) {
    let mut t = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", value)) => t = value.parse::<i64>().ok(),
            Some(("v1", value)) => signatures.push(value.to_string()),
            _ => {}
        }
    }
    let Some(t) = t else {
        return (false, None);
    };
    let verified = signatures.iter().any(|hex| {
        let Some(expected) = decode_hex(hex) else {
            return false;
        };
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("{t}.").as_bytes());
        mac.update(body);
        mac.verify_slice(&expected).is_ok()
    });
    (verified, Some(t))
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) || !hex.is_ascii() {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok())
        .collect()
}

/// PagerDuty's Events API v2 check: 202 for a valid event, else 400 naming each fault.
fn pagerduty(event: &Value) -> Reply {
    let errors = pagerduty_errors(event);
    if errors.is_empty() {
        let body = json!({
            "status": "success",
            "message": "Event processed",
            "dedup_key": event["dedup_key"],
        });
        Reply::with_body(202, &body.to_string())
    } else {
        let body = json!({
            "status": "invalid event",
            "message": "Event object is invalid",
            "errors": errors,
        });
        Reply::with_body(400, &body.to_string())
    }
}

/// What is wrong with an Events API v2 event, each as PagerDuty would name it.
pub fn pagerduty_errors(event: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    let non_empty = |v: &Value| v.as_str().is_some_and(|s| !s.trim().is_empty());
    if !event.is_object() {
        return vec!["the body is not a JSON object".to_string()];
    }
    if !non_empty(&event["routing_key"]) {
        errors.push("'routing_key' is missing or blank".to_string());
    }
    let action = event["event_action"].as_str().unwrap_or("");
    if !["trigger", "acknowledge", "resolve"].contains(&action) {
        errors.push("'event_action' must be trigger, acknowledge or resolve".to_string());
    }
    match event["dedup_key"].as_str() {
        Some(key) if !key.is_empty() && key.len() <= 255 => {}
        _ => errors.push("'dedup_key' is missing, blank or longer than 255".to_string()),
    }
    if action == "trigger" {
        let payload = &event["payload"];
        match payload["summary"].as_str() {
            Some(s) if !s.trim().is_empty() && s.chars().count() <= 1024 => {}
            _ => errors.push("'payload.summary' is missing or longer than 1024".to_string()),
        }
        if !non_empty(&payload["source"]) {
            errors.push("'payload.source' is missing or blank".to_string());
        }
        let severity = payload["severity"].as_str().unwrap_or("");
        if !["critical", "error", "warning", "info"].contains(&severity) {
            errors.push("'payload.severity' must be critical, error, warning or info".to_string());
        }
        if !payload["timestamp"].is_null() && !payload["timestamp"].is_string() {
            errors.push("'payload.timestamp' must be a string".to_string());
        }
        if !payload["custom_details"].is_null() && !payload["custom_details"].is_object() {
            errors.push("'payload.custom_details' must be an object".to_string());
        }
    }
    errors
}
