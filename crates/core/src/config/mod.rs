//! `revloop.toml`: the shop, ingest settings, dimensions, funnels, detection, incidents,
//! retention and the ledger's chart of accounts.
//!
//! [`Config::parse`] turns text into a validated [`Config`] or into every problem it found, each
//! with its line, so that `revloop check-config` can print them all at once. Parsing reads no
//! files: the caller hands in the text. Each section has its own module with its types, its raw
//! (spanned) shape and its validation; this one holds the whole, the problems and the field
//! helpers they share. The incident engine owns its policy types and never reads the
//! configuration: `incidents` parses into them.

use std::fmt;

use serde::Deserialize;
use toml::Spanned;

use crate::incident::IncidentPolicy;
use crate::time::DurationMs;
use delivery::RawDelivery;
use detection::RawDetection;
use dimensions::RawDimension;
use funnels::RawFunnel;
use incidents::RawIncidents;
use ingest::RawIngest;
use ledger::RawLedger;
use retention::RawRetention;
use shop::RawShop;

mod delivery;
mod detection;
mod dimensions;
mod funnels;
mod incidents;
mod ingest;
mod ledger;
mod retention;
mod shop;
#[cfg(test)]
mod tests;

pub use delivery::{CHANNEL_TIMEOUT_MAX, PAGERDUTY_EVENTS_URL, check_url, valid_address};
pub use delivery::{
    CHANNELS_MAX, CONCURRENCY_MAX, Channel, ChannelKind, Delivery, ROUTES_MAX, Route, SecretSource,
    Smtp, SmtpTls, Url,
};
pub use detection::{Detection, MASKS_MAX, Mask};
pub use dimensions::{
    DIMENSION_VALUES_DEFAULT, DIMENSION_VALUES_MAX, DIMENSIONS_MAX, Dimension, FieldPath,
    PATH_ROOTS,
};
pub use funnels::{FUNNELS_MAX, Funnel, STAGES_MAX, Stage, Trigger};
pub use incidents::SilenceWindow;
pub use incidents::{ESCALATION_LEVELS_MAX, LEVEL_TARGETS_MAX, SILENCES_MAX};
pub use ingest::{DEDUP_KEYS_DEFAULT, DEDUP_KEYS_MAX, DEDUP_KEYS_MIN, Ingest};
pub use ledger::Ledger;
pub use retention::{MINUTE_COUNTS_MARGIN_MS, Retention, detector_history};
pub use shop::Shop;

/// Longest identifier (funnel, stage, dimension) in bytes.
pub const ID_LEN_MAX: usize = 64;

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub shop: Shop,
    pub ingest: Ingest,
    pub dimensions: Vec<Dimension>,
    pub funnels: Vec<Funnel>,
    pub detection: Detection,
    /// SLAs, escalation paths and resolution rules; the runbook's table by default.
    pub incidents: IncidentPolicy,
    /// Maintenance windows: incidents opened in one page nobody.
    pub silences: Vec<SilenceWindow>,
    /// How long per-minute counts are kept, and how often maintenance runs.
    pub retention: Retention,
    /// The ledger's chart of accounts: the runbook's seed and the configured accounts.
    pub ledger: Ledger,
    /// Where pages go: channels, and the routes of each target and audience. `None` without a
    /// `[delivery]` section: pages go to the log only.
    pub delivery: Option<Delivery>,
}

/// One thing wrong with a config, and the 1-based line it is on (0 when unknown).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    pub line: usize,
    pub message: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.message)
        } else {
            write!(f, "line {}: {}", self.line, self.message)
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", display_problems(.0))]
pub struct ConfigError(pub Vec<ConfigProblem>);

fn display_problems(problems: &[ConfigProblem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

// The raw, spanned shape of the file. Everything is checked in `validate`.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    shop: Option<RawShop>,
    ingest: Option<RawIngest>,
    #[serde(default)]
    dimensions: Vec<RawDimension>,
    #[serde(default)]
    funnels: Vec<Spanned<RawFunnel>>,
    detection: Option<RawDetection>,
    incidents: Option<RawIncidents>,
    retention: Option<RawRetention>,
    ledger: Option<RawLedger>,
    delivery: Option<RawDelivery>,
}

impl Config {
    /// Parses and validates a config, reporting every problem found.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let lines = LineIndex::new(text);
        let raw: RawConfig = toml::from_str(text).map_err(|err| {
            let line = err.span().map_or(0, |span| lines.line(span.start));
            let message = err.message().trim().to_owned();
            ConfigError(vec![ConfigProblem { line, message }])
        })?;
        let mut problems = Problems {
            lines: &lines,
            found: Vec::new(),
        };
        let config = validate(raw, &mut problems);
        if problems.found.is_empty() {
            Ok(config)
        } else {
            problems.found.sort_by_key(|p| p.line);
            Err(ConfigError(problems.found))
        }
    }

    pub fn funnel(&self, id: &str) -> Option<&Funnel> {
        self.funnels.iter().find(|f| f.id == id)
    }

    pub fn has_dimension(&self, name: &str) -> bool {
        self.dimensions.iter().any(|d| d.name == name)
    }

    /// The dimension names, comma-separated, for error messages.
    pub fn dimension_list(&self) -> String {
        let names: Vec<&str> = self.dimensions.iter().map(|d| d.name.as_str()).collect();
        names.join(", ")
    }

    /// The configured funnels' ids, for an error that names the valid ones.
    pub fn funnel_list(&self) -> String {
        let ids: Vec<&str> = self.funnels.iter().map(|f| f.id.as_str()).collect();
        ids.join(", ")
    }

    /// The stages of `funnel` (of every funnel, each once, where `None`), for an error that
    /// names the valid ones.
    pub fn stage_list(&self, funnel: Option<&str>) -> String {
        let mut ids: Vec<&str> = Vec::new();
        for f in self
            .funnels
            .iter()
            .filter(|f| funnel.is_none_or(|id| f.id == id))
        {
            for stage in &f.stages {
                if !ids.contains(&stage.id.as_str()) {
                    ids.push(&stage.id);
                }
            }
        }
        ids.join(", ")
    }

    /// The bundled example: a Segment e-commerce spec checkout funnel.
    pub fn example_toml() -> &'static str {
        include_str!("../../../../revloop.example.toml")
    }
}

pub(super) struct Problems<'a> {
    lines: &'a LineIndex,
    pub(super) found: Vec<ConfigProblem>,
}

impl Problems<'_> {
    pub(super) fn at(&mut self, offset: usize, message: impl Into<String>) {
        let line = self.lines.line(offset);
        self.found.push(ConfigProblem {
            line,
            message: message.into(),
        });
    }
}

/// Every section, in the order their problems are reported within a line.
fn validate(raw: RawConfig, problems: &mut Problems) -> Config {
    let shop = shop::validate_shop(raw.shop, problems);
    let ingest = ingest::validate_ingest(raw.ingest, problems);
    let dimensions = dimensions::validate_dimensions(raw.dimensions, problems);
    let (funnels, funnel_ids) = funnels::validate_funnels(raw.funnels, &shop, problems);
    let detection =
        detection::validate_detection(raw.detection.unwrap_or_default(), &funnel_ids, problems);
    let (incidents, silences) =
        incidents::validate_incidents(raw.incidents.unwrap_or_default(), &funnels, problems);
    let retention =
        retention::validate_retention(raw.retention.unwrap_or_default(), &detection, problems);
    let ledger = ledger::validate_ledger(raw.ledger.unwrap_or_default(), problems);
    let delivery = raw
        .delivery
        .map(|raw| delivery::validate_delivery(raw, &incidents.targets(), problems));
    Config {
        shop,
        ingest,
        dimensions,
        funnels,
        detection,
        incidents,
        silences,
        retention,
        ledger,
        delivery,
    }
}

/// A positive duration, or the default (with a problem noted) when absent or bad.
pub(super) fn duration_field(
    field: Option<Spanned<String>>,
    default: &str,
    name: &str,
    problems: &mut Problems,
) -> DurationMs {
    let default = DurationMs::parse(default).expect("defaults parse");
    match field {
        None => default,
        Some(spanned) => match DurationMs::parse(spanned.get_ref()) {
            Ok(d) if d.millis() > 0 => d,
            Ok(_) => {
                problems.at(spanned.span().start, format!("{name} must be positive"));
                default
            }
            Err(err) => {
                problems.at(spanned.span().start, format!("{name}: {err}"));
                default
            }
        },
    }
}

/// An integer within `range`, or the default (with a problem noted).
pub(super) fn integer_field(
    field: Option<Spanned<i64>>,
    default: i64,
    range: std::ops::RangeInclusive<i64>,
    name: &str,
    problems: &mut Problems,
) -> i64 {
    match field {
        None => default,
        Some(spanned) => {
            let value = *spanned.get_ref();
            if !range.contains(&value) {
                problems.at(
                    spanned.span().start,
                    format!(
                        "{name} must be between {} and {}",
                        range.start(),
                        range.end()
                    ),
                );
            }
            value.clamp(*range.start(), *range.end())
        }
    }
}

/// A `from`–`to` pair of local date-times (a mask's, a silence's), `None` with a problem
/// noted where either does not parse or `from` is not before `to`.
pub(super) fn local_window(
    from: &Spanned<String>,
    to: &Spanned<String>,
    what: &str,
    problems: &mut Problems,
) -> Option<(jiff::civil::DateTime, jiff::civil::DateTime)> {
    let mut civil = |spanned: &Spanned<String>| {
        let parsed = spanned.get_ref().parse::<jiff::civil::DateTime>();
        if parsed.is_err() {
            problems.at(
                spanned.span().start,
                format!(
                    "`{}` is not a local date and time such as 2026-11-27T00:00 ({what}s are in the funnel's time zone)",
                    spanned.get_ref()
                ),
            );
        }
        parsed.ok()
    };
    // Both parsed before either is given up on, so that both problems are reported.
    let (from_time, to_time) = (civil(from), civil(to));
    let (from_time, to_time) = (from_time?, to_time?);
    if from_time >= to_time {
        problems.at(
            from.span().start,
            format!("a {what}'s `from` must be before its `to`"),
        );
        return None;
    }
    Some((from_time, to_time))
}

pub(super) fn check_id(id: &str, what: &str, offset: usize, problems: &mut Problems) {
    let valid = !id.is_empty()
        && id.len() <= ID_LEN_MAX
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !valid {
        problems.at(
            offset,
            format!("{what} `{id}` must be 1 to {ID_LEN_MAX} letters, digits, `_` or `-`"),
        );
    }
}

/// Maps byte offsets to 1-based line numbers.
struct LineIndex {
    line_starts: Vec<usize>,
}

impl LineIndex {
    fn new(text: &str) -> LineIndex {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { line_starts }
    }

    fn line(&self, offset: usize) -> usize {
        match self.line_starts.binary_search(&offset) {
            Ok(index) => index + 1,
            Err(index) => index,
        }
    }
}
