//! Query parameters: the one shape of a refused parameter, `400 invalid_query` with a detail
//! naming the field, and the small parsers every read endpoint repeats.
//!
//! It never knows which parameters an endpoint takes; the handler's own loop does.

use revloop_core::time::Timestamp;

use crate::http::error::{ApiError, invalid};

/// A refused query parameter: `field: message`, with the field in the details.
pub fn invalid_query(field: &str, message: impl Into<String>) -> ApiError {
    invalid("invalid_query", field, message)
}

/// A parameter the endpoint does not take; `known` lists those it does.
pub fn unknown_parameter(name: &str, known: &str) -> ApiError {
    invalid(
        "invalid_query",
        name,
        format!("not a query parameter; use {known}"),
    )
}

/// A page size from 1 to `max`.
pub fn parse_limit(value: &str, max: usize) -> Result<usize, ApiError> {
    value
        .parse::<usize>()
        .ok()
        .filter(|n| (1..=max).contains(n))
        .ok_or_else(|| {
            invalid(
                "invalid_query",
                "limit",
                format!("must be a number from 1 to {max}"),
            )
        })
}

/// An RFC 3339 instant.
pub fn parse_time(field: &str, value: &str) -> Result<Timestamp, ApiError> {
    Timestamp::parse_rfc3339(value).map_err(|err| invalid("invalid_query", field, err.to_string()))
}

/// `true` or `false`, and nothing else.
pub fn parse_bool(field: &str, value: &str) -> Result<bool, ApiError> {
    match value {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(invalid_query(field, "must be true or false")),
    }
}
