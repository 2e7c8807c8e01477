//! The error body every 4xx and 5xx carries: `{"error": {"code", "message", "details": [...]}}`.
//! It must stay the one shape of every failure the API reports.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorInfo,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorInfo {
    /// Stable and machine-readable: `invalid_field`, `not_found`, `unauthorized`, ...
    pub code: String,
    pub message: String,
    /// Where exactly, when there is more than one place to point at; absent when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<ErrorDetail>,
}

/// One place a request went wrong.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Position in a `batch` array or a counts list, 0-based.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
    /// Line of an NDJSON body, 1-based.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// Dotted path of the field, e.g. `properties.revenue`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    pub message: String,
}

impl ErrorDetail {
    /// Where, for people: `field stage`, `line 3`, `index 2`, or nothing.
    pub fn place(&self) -> Option<String> {
        match (&self.field, self.line, self.index) {
            (Some(field), Some(line), _) => Some(format!("line {line}, {field}")),
            (Some(field), None, Some(index)) => Some(format!("index {index}, {field}")),
            (Some(field), None, None) => Some(field.clone()),
            (None, Some(line), _) => Some(format!("line {line}")),
            (None, None, Some(index)) => Some(format!("index {index}")),
            (None, None, None) => None,
        }
    }
}

impl std::fmt::Display for ErrorInfo {
    /// The message, then each detail on its own line (but not one that only repeats the
    /// message, as the one detail of a bad field does).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)?;
        for detail in &self.details {
            let line = match detail.place() {
                Some(place) => format!("{place}: {}", detail.message),
                None => detail.message.clone(),
            };
            if line != self.message {
                write!(f, "\n  {line}")?;
            }
        }
        Ok(())
    }
}
