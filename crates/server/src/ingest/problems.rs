//! The error accumulator of one request: every problem with its place, the first few listed,
//! the rest counted, turned into one `ApiError` when validation is done.
//!
//! It never decides what is a problem; the validators do.

use axum::http::StatusCode;

use crate::http::{ApiError, DETAILS_LISTED_MAX, ErrorDetail};
use crate::ingest::{MessageProblem, PROBLEM_BODY_BYTES_MAX, Place};

impl MessageProblem {
    /// A problem of the message `body`, which is kept cut to [`PROBLEM_BODY_BYTES_MAX`].
    pub fn new(
        place: Place,
        code: &'static str,
        field: Option<String>,
        message: String,
        body: &str,
    ) -> MessageProblem {
        let mut end = body.len().min(PROBLEM_BODY_BYTES_MAX);
        while !body.is_char_boundary(end) {
            end -= 1;
        }
        MessageProblem {
            place,
            code,
            field,
            message,
            body: body[..end].to_owned(),
            body_cut: end < body.len(),
        }
    }
}

/// What one message or record got wrong: the error code, the field, and the message.
pub(super) type Problem = (&'static str, Option<String>, String);

pub(super) struct Problems {
    details: Vec<ErrorDetail>,
    n_total: usize,
    first_code: Option<&'static str>,
    too_large: bool,
}

impl Problems {
    pub(super) fn new() -> Problems {
        Problems {
            details: Vec::new(),
            n_total: 0,
            first_code: None,
            too_large: false,
        }
    }

    pub(super) fn add(
        &mut self,
        code: &'static str,
        place: Place,
        field: Option<String>,
        message: String,
    ) {
        self.n_total += 1;
        self.first_code.get_or_insert(code);
        self.too_large |= code == "too_large";
        if self.details.len() < DETAILS_LISTED_MAX {
            let (index, line) = match place {
                Place::Body => (None, None),
                Place::Index(i) => (Some(i), None),
                Place::Line(l) => (None, Some(l)),
            };
            self.details.push(ErrorDetail {
                index,
                line,
                field,
                message,
            });
        }
    }

    /// `what` names the request ("message", "request"); `list` the array an index points into.
    pub(super) fn into_result(self, what: &str, list: &str) -> Result<(), ApiError> {
        let Some(code) = self.first_code else {
            return Ok(());
        };
        let summary = if self.n_total == 1 && self.details.len() == 1 {
            let detail = &self.details[0];
            let place = match (detail.index, detail.line) {
                (Some(i), _) => format!("{list}[{i}]"),
                (_, Some(l)) => format!("line {l}"),
                _ => what.to_owned(),
            };
            let field = detail
                .field
                .as_deref()
                .map(|f| format!(".{f}"))
                .unwrap_or_default();
            format!("{place}{field}: {}; nothing was stored", detail.message)
        } else {
            let shown = self.details.len();
            let more = if self.n_total > shown {
                format!(" ({} more not listed)", self.n_total - shown)
            } else {
                String::new()
            };
            format!(
                "{} problems in this {what}{more}; nothing was stored",
                self.n_total
            )
        };
        let status = if self.too_large {
            StatusCode::PAYLOAD_TOO_LARGE
        } else {
            StatusCode::BAD_REQUEST
        };
        Err(ApiError::new(status, code, summary).with_details(self.details))
    }
}
