//! What the incident-area endpoints that take a body share: the JSON body reader that names
//! the culprit field, the segment object, a required field, and the check that a funnel and
//! stage are configured. It never knows an endpoint's own fields.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::HeaderMap;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::api::{AppState, no_funnel, no_stage};
use crate::http::{ApiError, ErrorDetail, decode_body, invalid, is_gzip, read_body};

/// Largest body of an incident action or a change.
pub const ACTION_BYTES_MAX: usize = 16 * 1024;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegmentBody {
    pub dimension: String,
    pub value: String,
}

/// A JSON body (gzip or not, at most `ACTION_BYTES_MAX`) read into `T`, whose fields are all
/// optional; an empty body is the default.
pub fn json_body<T: for<'de> Deserialize<'de> + Default>(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    match json_object(headers, body)? {
        Some(fields) => typed_fields(fields),
        None => Ok(T::default()),
    }
}

/// A JSON object body (gzip or not, at most `ACTION_BYTES_MAX`); `None` for an empty body.
pub fn json_object(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Option<Map<String, Value>>, ApiError> {
    let bytes = read_body(body, ACTION_BYTES_MAX)?;
    let text = decode_body(&bytes, is_gzip(headers)?, ACTION_BYTES_MAX)?;
    if text.trim().is_empty() {
        return Ok(None);
    }
    let value: Value = serde_json::from_str(&text).map_err(|err| {
        ApiError::bad_request("invalid_json", format!("the body is not JSON: {err}")).with_details(
            vec![ErrorDetail {
                index: None,
                line: Some(err.line()),
                field: None,
                message: err.to_string(),
            }],
        )
    })?;
    match value {
        Value::Object(fields) => Ok(Some(fields)),
        _ => Err(ApiError::bad_request(
            "invalid_json",
            "the body must be a JSON object",
        )),
    }
}

/// A body's fields read into `T`, whose fields are all optional; a refusal names the field.
pub fn typed_fields<T: for<'de> Deserialize<'de>>(
    fields: Map<String, Value>,
) -> Result<T, ApiError> {
    serde_json::from_value(Value::Object(fields.clone())).map_err(|err| {
        // Every field is optional, so the first field that cannot stand alone is the culprit:
        // name it.
        let culprit = fields.iter().find(|(key, field)| {
            let alone = Value::Object([((*key).clone(), (*field).clone())].into_iter().collect());
            serde_json::from_value::<T>(alone).is_err()
        });
        let message = err.to_string().replace(
            "struct SegmentBody",
            "an object with `dimension` and `value`",
        );
        match culprit {
            Some((key, _)) => invalid("invalid_field", key, message),
            None => ApiError::bad_request("invalid_json", message),
        }
    })
}

/// A field the request needs.
pub fn needed(field: &str, value: Option<String>) -> Result<String, ApiError> {
    value.ok_or_else(|| invalid("missing_field", field, "is required for this action"))
}

/// A change's or silence's funnel and stage, where given, must be configured (a stage in the
/// funnel given, or in any funnel).
pub fn check_scope(
    state: &AppState,
    funnel: Option<&str>,
    stage: Option<&str>,
) -> Result<(), ApiError> {
    if let Some(id) = funnel
        && !state.config.funnels.iter().any(|f| f.id == id)
    {
        return Err(invalid(
            "invalid_field",
            "funnel",
            no_funnel(&state.config, id),
        ));
    }
    if let Some(stage) = stage {
        let known = state
            .config
            .funnels
            .iter()
            .filter(|f| funnel.is_none_or(|id| f.id == id))
            .any(|f| f.stages.iter().any(|s| s.id == stage));
        if !known {
            return Err(invalid(
                "invalid_field",
                "stage",
                no_stage(&state.config, funnel, stage),
            ));
        }
    }
    Ok(())
}

/// A segment's dimension, where given, must be configured.
pub fn check_segment(state: &AppState, segment: &SegmentBody) -> Result<(), ApiError> {
    if state.config.has_dimension(&segment.dimension) {
        return Ok(());
    }
    Err(invalid(
        "invalid_field",
        "segment.dimension",
        format!(
            "no dimension `{}`; configured: {}",
            segment.dimension,
            state.config.dimension_list()
        ),
    ))
}
