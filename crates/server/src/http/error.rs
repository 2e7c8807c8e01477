//! One error type for the HTTP layer. Every failure a client can cause becomes a 4xx JSON body
//! that says what was wrong and where; everything else is logged and becomes a bare 5xx.
//!
//! The body is always `{"error": {"code", "message", "details": [{"index"|"line", "field",
//! "message"}]}}`, with `details` present only when there is more than one place to point at.
//! A 5xx never carries internals to the client: those go to the log.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// How many per-message problems a rejection lists; the count of the rest is given.
pub const DETAILS_LISTED_MAX: usize = 20;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ErrorDetail {
    /// Position in a `batch` array or a counts list, 0-based.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
    /// Line of an NDJSON body, 1-based.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// Dotted path of the field, e.g. `properties.revenue`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    pub message: String,
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    /// Stable machine-readable code, also the `reason` label of the reject metric.
    pub code: &'static str,
    pub message: String,
    pub details: Vec<ErrorDetail>,
    pub retry_after_s: Option<u32>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            details: Vec::new(),
            retry_after_s: None,
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn too_large(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", message)
    }

    /// A server-side failure: logged in full, reported to the client without internals.
    pub fn internal(context: &str, err: impl std::fmt::Display) -> ApiError {
        tracing::error!("{context}: {err}");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("{context}; see the server log"),
        )
    }

    /// A store failure: a 503 with Retry-After when every connection stayed busy for the
    /// pool's whole wait (load, not a fault) or the failure is transient (a lost connection, a
    /// serialization conflict, a busy database), else a logged 500 that says what failed. The
    /// database's own words go to the log only.
    pub fn store(context: &str, err: revloop_store::StoreError) -> ApiError {
        match err {
            revloop_store::StoreError::PoolTimeout { .. } => {
                ApiError::unavailable("store_busy", "the store is busy; try again shortly", 1)
            }
            err if err.is_transient() => {
                tracing::warn!("{context}: {err} (transient; answered 503)");
                ApiError::unavailable(
                    "store_unavailable",
                    format!("{context} failed for a moment; try again shortly"),
                    1,
                )
            }
            err => ApiError::internal(context, err),
        }
    }

    pub fn unavailable(
        code: &'static str,
        message: impl Into<String>,
        retry_after_s: u32,
    ) -> ApiError {
        ApiError {
            retry_after_s: Some(retry_after_s),
            ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, code, message)
        }
    }

    pub fn with_details(mut self, details: Vec<ErrorDetail>) -> ApiError {
        self.details = details;
        self
    }
}

#[derive(Serialize)]
struct Body<'a> {
    error: Inner<'a>,
}

#[derive(Serialize)]
struct Inner<'a> {
    code: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "<[ErrorDetail]>::is_empty")]
    details: &'a [ErrorDetail],
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Body {
            error: Inner {
                code: self.code,
                message: &self.message,
                details: &self.details,
            },
        };
        let json = serde_json::to_vec(&body)
            .unwrap_or_else(|_| b"{\"error\":{\"code\":\"internal\"}}".to_vec());
        let mut response = (
            self.status,
            [(header::CONTENT_TYPE, "application/json")],
            json,
        )
            .into_response();
        if let Some(seconds) = self.retry_after_s {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"revloop\""),
            );
        }
        response
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl std::error::Error for ApiError {}

/// The answer to a handler that panicked (the router's catch-panic layer calls it): a logged
/// 500 with the usual JSON body; what the panic said goes to the log only. The server keeps
/// serving: the panic ended this request's task, nothing else.
pub fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let said = panic_text(panic.as_ref());
    ApiError::internal(
        "the request failed",
        format_args!("a handler panicked: {said}"),
    )
    .into_response()
}

/// What a panic said, for the log.
pub fn panic_text(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("a panic without a message")
}

/// A refused field of a request (a query parameter or a body field): `field: message`,
/// with the field in the details.
pub fn invalid(code: &'static str, field: &str, message: impl Into<String>) -> ApiError {
    let message = message.into();
    ApiError::bad_request(code, format!("{field}: {message}")).with_details(vec![ErrorDetail {
        index: None,
        line: None,
        field: Some(field.to_owned()),
        message,
    }])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_answers_500_with_the_json_body_and_without_what_it_said() {
        let response = panic_response(Box::new(String::from("secret internals")));
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
        let body = futures_body(response);
        assert!(body.contains("\"code\":\"internal\""), "{body}");
        assert!(!body.contains("secret"), "{body}");
    }

    fn futures_body(response: Response) -> String {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let bytes = runtime
            .block_on(axum::body::to_bytes(response.into_body(), 1 << 16))
            .unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }
}

/// Outermost: a handler that panics answers the usual JSON 500, and the server serves on.
pub fn catching_panics<S: Clone + Send + Sync + 'static>(
    router: axum::Router<S>,
) -> axum::Router<S> {
    router.layer(tower_http::catch_panic::CatchPanicLayer::custom(
        panic_response,
    ))
}

#[cfg(test)]
mod panic_tests {
    use axum::Router;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use axum::routing::get;
    use tower::ServiceExt;

    use super::*;

    /// A panic on the async side of a handler (not inside `blocking`, whose join error is
    /// answered on its own) reaches the layer: 500 with the JSON error body, and the router
    /// answers the next request.
    #[tokio::test]
    async fn a_panicking_handler_answers_500_and_the_router_serves_on() {
        let router: Router = catching_panics(
            Router::new()
                .route(
                    "/panic",
                    get(|| async {
                        panic!("boom");
                        #[allow(unreachable_code)]
                        "unreachable"
                    }),
                )
                .route("/ok", get(|| async { "ok" })),
        );
        let get_of = |path: &str| Request::get(path).body(Body::empty()).unwrap();
        let reply = router.clone().oneshot(get_of("/panic")).await.unwrap();
        assert_eq!(reply.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = axum::body::to_bytes(reply.into_body(), 4096).await.unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"]["code"], "internal", "{body}");
        assert!(!body.to_string().contains("boom"), "{body}");
        let reply = router.oneshot(get_of("/ok")).await.unwrap();
        assert_eq!(reply.status(), StatusCode::OK);
    }
}
