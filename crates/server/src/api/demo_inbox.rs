//! The demo's own webhook receiver, `/demo/inbox`: `revloop demo` routes every escalation
//! target to it, so that a newcomer sees pages, acknowledgements and resolutions arrive the way
//! a real receiver would take them. It does what a careful receiver does: it verifies the
//! `Revloop-Signature` (refusing a bad signature and one older than five minutes), and takes
//! each `Idempotency-Key` once (a retry of a message it already took is answered 200 and not
//! kept twice). Mounted only by the demo (`AppOptions::demo_inbox_secret`); 404 otherwise.

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Serialize;
use serde_json::Value;

use revloop_store::Role;

use crate::api::{AppState, json_reply, require};
use crate::delivery::signature::{SIGNATURE_TOLERANCE, verify_signature};
use crate::http::ApiError;

/// Most messages the inbox keeps (the oldest go first), and most keys it remembers.
pub const DEMO_INBOX_MAX: usize = 1_000;
/// Largest message body the inbox takes.
pub const DEMO_INBOX_BODY_BYTES_MAX: usize = 64 * 1024;

/// What the inbox received, newest last.
pub struct DemoInbox {
    secret: String,
    kept: Mutex<Kept>,
}

#[derive(Default)]
struct Kept {
    messages: VecDeque<Received>,
    keys: HashSet<String>,
    /// Retries answered without keeping them again.
    duplicates: u64,
}

#[derive(Debug, Clone, Serialize)]
struct Received {
    received_at: String,
    idempotency_key: String,
    /// The message as sent (the webhook body).
    message: Value,
}

#[derive(Serialize)]
struct InboxPage<'a> {
    /// Messages kept, oldest first.
    messages: Vec<&'a Received>,
    /// Retries of a message already kept, answered 200 and not kept again.
    duplicates: u64,
}

impl DemoInbox {
    pub fn new(secret: String) -> DemoInbox {
        DemoInbox {
            secret,
            kept: Mutex::new(Kept::default()),
        }
    }
}

/// `POST /demo/inbox`: a signed webhook delivery.
pub async fn receive(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let Some(inbox) = state.demo_inbox.as_ref() else {
        return Err(ApiError::not_found("the demo inbox runs only under `revloop demo`"));
    };
    if body.len() > DEMO_INBOX_BODY_BYTES_MAX {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("a message is at most {DEMO_INBOX_BODY_BYTES_MAX} bytes"),
        ));
    }
    let now = state.clock.now();
    let signature = header(&headers, "revloop-signature")
        .ok_or_else(|| ApiError::unauthorized("Revloop-Signature: missing"))?;
    verify_signature(signature, &body, &inbox.secret, now, SIGNATURE_TOLERANCE)
        .map_err(|err| ApiError::unauthorized(format!("Revloop-Signature: {err}")))?;
    let key = header(&headers, "idempotency-key")
        .ok_or_else(|| {
            ApiError::bad_request("idempotency_key_missing", "Idempotency-Key: missing")
        })?
        .to_owned();
    let message: Value = serde_json::from_slice(&body)
        .map_err(|err| ApiError::bad_request("invalid_json", format!("body: {err}")))?;
    let mut kept = inbox.kept.lock().unwrap_or_else(|p| p.into_inner());
    if !kept.keys.insert(key.clone()) {
        kept.duplicates += 1;
        return Ok(json_reply(StatusCode::OK, &serde_json::json!({"duplicate": true})));
    }
    tracing::info!(
        key = %key,
        title = message.get("title").and_then(serde_json::Value::as_str).unwrap_or(""),
        "demo inbox: received"
    );
    kept.messages.push_back(Received {
        received_at: now.to_string(),
        idempotency_key: key,
        message,
    });
    while kept.messages.len() > DEMO_INBOX_MAX {
        if let Some(oldest) = kept.messages.pop_front() {
            kept.keys.remove(&oldest.idempotency_key);
        }
    }
    Ok(json_reply(StatusCode::OK, &serde_json::json!({"duplicate": false})))
}

/// `GET /demo/inbox`: what the inbox received, oldest first (a viewer token).
pub async fn list(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    require(&state, &headers, None, Role::Viewer, state.clock.now()).await?;
    let Some(inbox) = state.demo_inbox.as_ref() else {
        return Err(ApiError::not_found("the demo inbox runs only under `revloop demo`"));
    };
    let kept = inbox.kept.lock().unwrap_or_else(|p| p.into_inner());
    let page = InboxPage {
        messages: kept.messages.iter().collect(),
        duplicates: kept.duplicates,
    };
    Ok(json_reply(StatusCode::OK, &page))
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}
