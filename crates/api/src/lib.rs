//! The wire types of revloop's HTTP API: every request body the CLI sends and every reply it
//! reads, with the field names, optional fields and string spellings exactly as the server
//! emits them. Closed sets (severities, states, timeline kinds, outbox kinds...) are enums
//! that serialize to the strings the API has always used.
//!
//! This crate is plain data: it must never depend on the engine (`revloop-core`), the store
//! or the server. The server converts its own types into these explicitly, so that renaming
//! an engine field can never silently change the API. Times are RFC 3339 text, as on the wire.

pub mod actions;
pub mod changes;
pub mod detector;
pub mod error;
pub mod incidents;
pub mod ingest;
pub mod ledger;
pub mod outbox;
pub mod report;
pub mod signals;
pub mod silences;

mod names;

pub use error::{ErrorBody, ErrorDetail, ErrorInfo};
pub use names::UnknownName;

/// A single-dimension segment: `{"dimension": "device", "value": "mobile"}`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Segment {
    pub dimension: String,
    pub value: String,
}

impl Segment {
    /// The command-line form of a segment, and the only one: `dimension=value`.
    pub const SYNTAX: &'static str = "dimension=value, e.g. device=mobile";

    /// Reads `dimension=value`; both sides must be non-empty. The error shows the form.
    pub fn parse(text: &str) -> Result<Segment, String> {
        match text.split_once('=') {
            Some((dimension, value)) if !dimension.is_empty() && !value.is_empty() => Ok(Segment {
                dimension: dimension.to_owned(),
                value: value.to_owned(),
            }),
            _ => Err(format!("`{text}` is not {}", Segment::SYNTAX)),
        }
    }
}

impl std::fmt::Display for Segment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}={}", self.dimension, self.value)
    }
}
