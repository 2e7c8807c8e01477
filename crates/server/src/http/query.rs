//! Query parameters: the one shape of a refused parameter, `400 invalid_query` with a detail
//! naming the field, and the small parsers every read endpoint repeats.
//!
//! It never knows which parameters an endpoint takes; the handler's own loop does.

use crate::http::error::{ApiError, ErrorDetail};

/// A refused query parameter: `field: message`, with the field in the details.
pub fn invalid_query(field: &str, message: impl Into<String>) -> ApiError {
    let message = message.into();
    ApiError::bad_request("invalid_query", format!("{field}: {message}")).with_details(vec![
        ErrorDetail {
            index: None,
            line: None,
            field: Some(field.to_owned()),
            message,
        },
    ])
}

/// `true` or `false`, and nothing else.
pub fn parse_bool(field: &str, value: &str) -> Result<bool, ApiError> {
    match value {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(invalid_query(field, "must be true or false")),
    }
}
