//! The demo's own webhook receiver, `/demo/inbox`: `revloop demo` routes every escalation
//! target to it, so that a newcomer sees pages, acknowledgements and resolutions arrive the way
//! a real receiver would take them. It does what a careful receiver does: it verifies the
//! `Revloop-Signature` (refusing a bad signature and one older than five minutes), and takes
//! each delivery once (a retry of a message it already took is answered 200 and not kept
//! twice), keyed by the signed body's `delivery`, which the `Idempotency-Key` header repeats. Mounted only by the demo (`AppOptions::demo_inbox_secret`); 404 otherwise.

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Serialize;
use serde_json::Value;

use revloop_store::Role;

use crate::api::{AppState, json_reply, require};
use crate::delivery::signature::{SIGNATURE_TOLERANCE, verify_signature};
use crate::http::{ApiError, read_body};

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

/// One message the inbox took.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Received {
    received_at: String,
    idempotency_key: String,
    /// The message as sent (the webhook body: docs/delivery.md).
    #[schema(value_type = Object)]
    message: Value,
}

/// What the inbox holds.
#[derive(Serialize, utoipa::ToSchema)]
pub struct InboxPage {
    /// Messages kept, oldest first (at most 1,000).
    messages: Vec<Received>,
    /// Retries of a message already kept, answered 200 and not kept again.
    duplicates: u64,
}

/// The inbox's answer to a delivery.
#[derive(Serialize, utoipa::ToSchema)]
pub struct InboxReceipt {
    /// The `Idempotency-Key` was taken before: not kept again.
    duplicate: bool,
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
#[utoipa::path(
    post, path = "/demo/inbox", tag = "demo",
    params(
        ("Revloop-Signature" = String, Header, description = "`t=<unix seconds>,v1=<hex HMAC-SHA256 of \"<t>.<body>\">`"),
        ("Idempotency-Key" = Option<String>, Header, description = "The delivery's key, as the body's `delivery`: a retry is answered and not kept twice"),
    ),
    request_body(content = Object, content_type = "application/json", description = "A webhook message (docs/delivery.md)"),
    responses(
        (status = 200, description = "Taken (or a retry of one taken before)", body = InboxReceipt),
        (status = 400, description = "The body is not JSON, or has no `delivery`", body = revloop_api::ErrorBody),
        (status = 401, description = "The signature is missing, wrong or older than five minutes", body = revloop_api::ErrorBody),
        (status = 404, description = "Not running under `revloop demo`", body = revloop_api::ErrorBody),
        (status = 413, description = "The body is over 64 KiB", body = revloop_api::ErrorBody),
    ),
    security(()),
)]
pub async fn receive(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let Some(inbox) = state.demo_inbox.as_ref() else {
        return Err(ApiError::not_found(
            "the demo inbox runs only under `revloop demo`",
        ));
    };
    // Over the route's limit, axum's own rejection would be plain text: a JSON 413 instead.
    let body = read_body(body, DEMO_INBOX_BODY_BYTES_MAX)?;
    let now = state.clock.now();
    let signature = header(&headers, "revloop-signature")
        .ok_or_else(|| ApiError::unauthorized("Revloop-Signature: missing"))?;
    verify_signature(signature, &body, &inbox.secret, now, SIGNATURE_TOLERANCE)
        .map_err(|err| ApiError::unauthorized(format!("Revloop-Signature: {err}")))?;
    let message: Value = serde_json::from_slice(&body)
        .map_err(|err| ApiError::bad_request("invalid_json", format!("body: {err}")))?;
    // Deduplicated on the body's `delivery` (the same as the Idempotency-Key header), because
    // the body is signed and the header is not: a replayed request with a fresh header is
    // still a duplicate.
    let key = message
        .get("delivery")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            ApiError::bad_request("delivery_missing", "delivery: missing from the body")
        })?
        .to_owned();
    let mut kept = inbox.kept.lock().unwrap_or_else(|p| p.into_inner());
    if !kept.keys.insert(key.clone()) {
        kept.duplicates += 1;
        return Ok(json_reply(
            StatusCode::OK,
            &InboxReceipt { duplicate: true },
        ));
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
    Ok(json_reply(
        StatusCode::OK,
        &InboxReceipt { duplicate: false },
    ))
}

/// `GET /demo/inbox`: what the inbox received, oldest first (a viewer token).
#[utoipa::path(
    get, path = "/demo/inbox", tag = "demo",
    responses(
        (status = 200, description = "The messages taken, oldest first", body = InboxPage),
        (status = 404, description = "Not running under `revloop demo`", body = revloop_api::ErrorBody),
    ),
    security(("api_token" = ["viewer"])),
)]
pub async fn list(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    require(&state, &headers, None, Role::Viewer, state.clock.now()).await?;
    let Some(inbox) = state.demo_inbox.as_ref() else {
        return Err(ApiError::not_found(
            "the demo inbox runs only under `revloop demo`",
        ));
    };
    let kept = inbox.kept.lock().unwrap_or_else(|p| p.into_inner());
    let page = InboxPage {
        messages: kept.messages.iter().cloned().collect(),
        duplicates: kept.duplicates,
    };
    Ok(json_reply(StatusCode::OK, &page))
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}
