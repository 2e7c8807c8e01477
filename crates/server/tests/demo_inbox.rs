//! The demo's webhook inbox (`/demo/inbox`) receives as a careful receiver should: a valid
//! signature only, no replay older than five minutes, each delivery once (keyed by the signed
//! body, so a replay with a fresh header is still a duplicate), a JSON error for everything
//! else; and it exists only under `revloop demo`.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};
use tower::ServiceExt;

use revloop_core::time::DurationMs;
use revloop_core::{Config, Timestamp};
use revloop_server::delivery::signature::sign;
use revloop_server::http::auth::{generate_secret, hash_secret};
use revloop_server::{App, AppOptions, Clock};
use revloop_store::{Role, SqliteStore, Store};

/// 2026-11-27T10:00:00Z.
const T0: Timestamp = Timestamp::from_millis(1_795_773_600_000);
const SECRET: &str = "demo-inbox-secret";

struct Fixed(Timestamp);

impl Clock for Fixed {
    fn now(&self) -> Timestamp {
        self.0
    }
}

/// An app with (or without) the inbox, and a viewer token.
fn app(inbox: bool) -> (axum::Router, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::parse(Config::example_toml()).unwrap();
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(&dir.path().join("t.db"), &config).unwrap());
    let viewer = generate_secret().unwrap();
    store
        .create_token("viewer", Role::Viewer, hash_secret(&viewer), T0)
        .unwrap();
    let options = AppOptions {
        demo_inbox_secret: inbox.then(|| SECRET.to_owned()),
        ..AppOptions::default()
    };
    let app = App::build(config, store, Arc::new(Fixed(T0)), options);
    (app.router(), viewer, dir)
}

fn message(delivery: &str) -> Vec<u8> {
    json!({"id": "msg-1", "delivery": delivery, "event": "trigger", "title": "P1 conversion: checkout/payment"})
        .to_string()
        .into_bytes()
}

async fn post(
    router: &axum::Router,
    body: Vec<u8>,
    signature: &str,
    key: &str,
) -> (StatusCode, Value) {
    let request = Request::post("/demo/inbox")
        .header("content-type", "application/json")
        .header("revloop-signature", signature)
        .header("idempotency-key", key)
        .body(Body::from(body))
        .unwrap();
    answer(router.clone().oneshot(request).await.unwrap()).await
}

async fn answer(response: axum::response::Response) -> (StatusCode, Value) {
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).expect("a JSON answer"),
    )
}

#[tokio::test]
async fn the_inbox_takes_each_signed_delivery_once_and_refuses_the_rest() {
    let (router, viewer, _dir) = app(true);
    let body = message("revloop-delivery-1");
    let signature = sign(&body, SECRET, T0);
    let (status, reply) = post(&router, body.clone(), &signature, "revloop-delivery-1").await;
    assert_eq!(
        (status, reply),
        (StatusCode::OK, json!({"duplicate": false}))
    );
    // A retry, and a replay with a fresh header: both the same signed delivery.
    for key in ["revloop-delivery-1", "something-else"] {
        let (status, reply) = post(&router, body.clone(), &signature, key).await;
        assert_eq!(
            (status, reply),
            (StatusCode::OK, json!({"duplicate": true}))
        );
    }
    // A wrong secret, a changed body, a signature older than five minutes: 401, kept nowhere.
    let other = message("revloop-delivery-2");
    let refusals = [
        (other.clone(), sign(&other, "another-secret", T0)),
        (other.clone(), signature.clone()),
        (
            other.clone(),
            sign(
                &other,
                SECRET,
                T0.saturating_sub(DurationMs::from_minutes(6)),
            ),
        ),
    ];
    for (body, signature) in refusals {
        let (status, reply) = post(&router, body, &signature, "revloop-delivery-2").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{reply}");
        assert_eq!(reply["error"]["code"], "unauthorized", "{reply}");
    }
    // Unsigned JSON without a delivery, and an oversized body: named 4xx errors.
    let no_key = br#"{"id":"msg-3"}"#.to_vec();
    let (status, reply) = post(&router, no_key.clone(), &sign(&no_key, SECRET, T0), "k").await;
    assert_eq!(
        (status, &reply["error"]["code"]),
        (StatusCode::BAD_REQUEST, &json!("delivery_missing"))
    );
    let huge = vec![b'x'; 70 * 1024];
    let (status, _) = post(&router, huge.clone(), &sign(&huge, SECRET, T0), "k").await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);

    let request = Request::get("/demo/inbox")
        .header("authorization", format!("Bearer {viewer}"))
        .body(Body::empty())
        .unwrap();
    let (status, page) = answer(router.clone().oneshot(request).await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["duplicates"], 2);
    let kept: Vec<&str> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["message"]["delivery"].as_str().unwrap())
        .collect();
    assert_eq!(kept, ["revloop-delivery-1"]);
}

#[tokio::test]
async fn outside_the_demo_there_is_no_inbox() {
    let (router, viewer, _dir) = app(false);
    let body = message("revloop-delivery-1");
    let (status, reply) = post(&router, body.clone(), &sign(&body, SECRET, T0), "k").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{reply}");
    let request = Request::get("/demo/inbox")
        .header("authorization", format!("Bearer {viewer}"))
        .body(Body::empty())
        .unwrap();
    let (status, _) = answer(router.oneshot(request).await.unwrap()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
