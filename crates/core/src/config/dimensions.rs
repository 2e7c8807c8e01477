//! The `[[dimensions]]` section: the fields every count is split by, and the dotted paths
//! into a message that name them.

use std::collections::HashSet;
use std::fmt;

use serde::Deserialize;
use toml::Spanned;

use super::{Problems, check_id};

/// How many dimensions a config may declare. Every event is counted once per combination of its
/// dimension values, so this bounds the write amplification of a single message.
pub const DIMENSIONS_MAX: usize = 8;
/// The largest cardinality cap a dimension may ask for.
pub const DIMENSION_VALUES_MAX: u32 = 1_000;
/// The cardinality cap when a dimension does not set one.
pub const DIMENSION_VALUES_DEFAULT: u32 = 50;

/// Top-level keys of a Segment message under which a dimension or filter path may look.
pub const PATH_ROOTS: &[&str] = &["properties", "context", "traits"];

/// Dimension names that would collide with the metrics API's own query parameters.
const RESERVED_DIMENSION_NAMES: &[&str] = &["from", "to", "step", "funnel", "stage"];

#[derive(Debug, Clone, PartialEq)]
pub struct Dimension {
    pub name: String,
    pub path: FieldPath,
    pub values_max: u32,
}

/// A dotted path into a message, such as `context.device.type`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FieldPath(Vec<String>);

impl FieldPath {
    pub fn parse(text: &str) -> Result<FieldPath, String> {
        let segments: Vec<String> = text.split('.').map(str::to_owned).collect();
        if segments.iter().any(String::is_empty) {
            return Err(format!("path `{text}` has an empty segment"));
        }
        if segments.len() < 2 || !PATH_ROOTS.contains(&segments[0].as_str()) {
            return Err(format!(
                "path `{text}` must start with one of {} and name a field below it",
                PATH_ROOTS.join(", ")
            ));
        }
        Ok(FieldPath(segments))
    }

    pub fn segments(&self) -> &[String] {
        &self.0
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join("."))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDimension {
    name: Spanned<String>,
    path: Spanned<String>,
    max_values: Option<Spanned<i64>>,
}

pub(super) fn validate_dimensions(
    raw_dimensions: Vec<RawDimension>,
    problems: &mut Problems,
) -> Vec<Dimension> {
    if raw_dimensions.len() > DIMENSIONS_MAX {
        let offset = raw_dimensions[DIMENSIONS_MAX].name.span().start;
        problems.at(
            offset,
            format!("at most {DIMENSIONS_MAX} dimensions are allowed"),
        );
    }
    let mut dimensions = Vec::new();
    let mut dimension_names = HashSet::new();
    for raw_dimension in raw_dimensions {
        let offset = raw_dimension.name.span().start;
        let name = raw_dimension.name.into_inner();
        check_id(&name, "dimension name", offset, problems);
        if RESERVED_DIMENSION_NAMES.contains(&name.as_str()) {
            problems.at(offset, format!("dimension name `{name}` is reserved"));
        }
        if !dimension_names.insert(name.clone()) {
            problems.at(offset, format!("dimension `{name}` is declared twice"));
        }
        let path_offset = raw_dimension.path.span().start;
        let path = match FieldPath::parse(raw_dimension.path.get_ref()) {
            Ok(path) => path,
            Err(message) => {
                problems.at(path_offset, message);
                continue;
            }
        };
        let values_max = match raw_dimension.max_values {
            None => DIMENSION_VALUES_DEFAULT,
            Some(spanned) => {
                let value = *spanned.get_ref();
                if !(1..=i64::from(DIMENSION_VALUES_MAX)).contains(&value) {
                    problems.at(
                        spanned.span().start,
                        format!("max_values must be between 1 and {DIMENSION_VALUES_MAX}"),
                    );
                }
                value.clamp(1, i64::from(DIMENSION_VALUES_MAX)) as u32
            }
        };
        dimensions.push(Dimension {
            name,
            path,
            values_max,
        });
    }
    dimensions
}
