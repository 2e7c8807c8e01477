//! Request bodies: the encoding a client declared, the size limit of the route, gunzipping
//! without letting a gzip bomb through, and UTF-8. Also where handlers hand store work to the
//! blocking pool.
//!
//! It never parses what a body says: that is the ingest path's and the handlers' job.

use std::borrow::Cow;
use std::io::Read;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};

use crate::http::error::ApiError;

/// Whether the body is gzip (`Content-Encoding: gzip`); any encoding but gzip and identity is
/// a 415.
pub fn is_gzip(headers: &HeaderMap) -> Result<bool, ApiError> {
    match headers
        .get(header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("?"))
    {
        None => Ok(false),
        Some(encoding) if encoding.eq_ignore_ascii_case("gzip") => Ok(true),
        Some(encoding) if encoding.eq_ignore_ascii_case("identity") => Ok(false),
        Some(encoding) => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_encoding",
            format!(
                "Content-Encoding `{encoding}` is not supported; send gzip or no encoding; nothing was stored"
            ),
        )),
    }
}

/// The body, or a JSON error when it was over `limit` or could not be read.
pub fn read_body(body: Result<Bytes, BytesRejection>, limit: usize) -> Result<Bytes, ApiError> {
    body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::too_large(format!(
                "body is larger than {limit} bytes; nothing was stored"
            ))
        } else {
            ApiError::bad_request(
                "unreadable_body",
                format!("could not read the body: {rejection}"),
            )
        }
    })
}

/// Decodes a request body: gunzips when asked, with the decompressed size bounded by `limit`
/// (a gzip bomb is a 413, not an out-of-memory), then checks it is UTF-8.
pub fn decode_body(bytes: &[u8], gzip: bool, limit: usize) -> Result<Cow<'_, str>, ApiError> {
    let too_large = |size: String| {
        ApiError::too_large(format!(
            "body is {size}; at most {limit} bytes are allowed; nothing was stored"
        ))
    };
    let decoded: Cow<[u8]> = if gzip {
        let mut out = Vec::with_capacity(bytes.len().saturating_mul(4).min(limit));
        let mut decoder = flate2::read::GzDecoder::new(bytes).take(limit as u64 + 1);
        decoder.read_to_end(&mut out).map_err(|err| {
            ApiError::bad_request(
                "bad_gzip",
                format!("the gzip body is truncated or corrupt ({err}); nothing was stored"),
            )
        })?;
        if out.len() > limit {
            return Err(too_large(format!(
                "more than {limit} bytes once decompressed"
            )));
        }
        Cow::Owned(out)
    } else {
        if bytes.len() > limit {
            return Err(too_large(format!("{} bytes", bytes.len())));
        }
        Cow::Borrowed(bytes)
    };
    match decoded {
        Cow::Borrowed(b) => std::str::from_utf8(b)
            .map(Cow::Borrowed)
            .map_err(utf8_error),
        Cow::Owned(v) => String::from_utf8(v)
            .map(Cow::Owned)
            .map_err(|e| utf8_error(e.utf8_error())),
    }
}

fn utf8_error(err: std::str::Utf8Error) -> ApiError {
    ApiError::bad_request(
        "invalid_utf8",
        format!(
            "the body is not valid UTF-8 (at byte {}); nothing was stored",
            err.valid_up_to()
        ),
    )
}

/// Runs store work on the blocking pool, never on the async workers. Work that panics answers
/// the usual 500 (see [`crate::http::panic_response`]); the pool and the server carry on.
pub async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result,
        Err(err) if err.is_panic() => {
            let panic = err.into_panic();
            let said = crate::http::error::panic_text(panic.as_ref());
            Err(ApiError::internal(
                "the request failed",
                format_args!("a blocking task panicked: {said}"),
            ))
        }
        Err(err) => Err(ApiError::internal("a blocking task failed", err)),
    }
}
