//! `revloop.toml`: the shop, ingest settings, dimensions and funnels.
//!
//! [`Config::parse`] turns text into a validated [`Config`] or into every problem it found, each
//! with its line, so that `revloop check-config` can print them all at once. Parsing reads no
//! files: the caller hands in the text.

use std::collections::HashSet;
use std::fmt;

use serde::Deserialize;
use toml::Spanned;

use crate::incident::{EmptyLevel, EscalationLevel, IncidentPolicy};
use crate::money::{Currency, Money};
use crate::time::{DurationMs, MS_PER_MINUTE};

/// How many dimensions a config may declare. Every event is counted once per combination of its
/// dimension values, so this bounds the write amplification of a single message.
pub const DIMENSIONS_MAX: usize = 8;
/// The largest cardinality cap a dimension may ask for.
pub const DIMENSION_VALUES_MAX: u32 = 1_000;
/// The cardinality cap when a dimension does not set one.
pub const DIMENSION_VALUES_DEFAULT: u32 = 50;
/// How many funnels, and stages per funnel, a config may declare.
pub const FUNNELS_MAX: usize = 32;
pub const STAGES_MAX: usize = 16;
/// Longest identifier (funnel, stage, dimension) in bytes.
pub const ID_LEN_MAX: usize = 64;

/// Dedup keys remembered at once by default: about 320 MiB of memory.
pub const DEDUP_KEYS_DEFAULT: u64 = 20_000_000;
pub const DEDUP_KEYS_MIN: u64 = 1_000;
pub const DEDUP_KEYS_MAX: u64 = 2_000_000_000;

/// Top-level keys of a Segment message under which a dimension or filter path may look.
pub const PATH_ROOTS: &[&str] = &["properties", "context", "traits"];

/// Dimension names that would collide with the metrics API's own query parameters.
const RESERVED_DIMENSION_NAMES: &[&str] = &["from", "to", "step", "funnel", "stage"];

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
}

/// A maintenance window or silence, in local time (the funnel's time zone, or the shop's
/// when it names no funnel), so that "Saturday 02:00–04:00" stays that across a DST change.
#[derive(Debug, Clone, PartialEq)]
pub struct SilenceWindow {
    pub funnel: Option<String>,
    pub stage: Option<String>,
    pub from: jiff::civil::DateTime,
    pub to: jiff::civil::DateTime,
    pub reason: String,
}

/// Most silences a config may declare.
pub const SILENCES_MAX: usize = 1_000;
/// Most escalation levels per severity, and most targets per level.
pub const ESCALATION_LEVELS_MAX: usize = 10;
pub const LEVEL_TARGETS_MAX: usize = 20;

#[derive(Debug, Clone, PartialEq)]
pub struct Shop {
    pub currency: Currency,
    /// `None` means: measure it from `Order Completed` revenue.
    pub average_order_value: Option<Money>,
    /// IANA time zone name, used for time-of-week baselines.
    pub time_zone: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Ingest {
    /// How long a `messageId` is remembered. SDKs retry for hours.
    pub dedup_window: DurationMs,
    /// Events at most this much older than "now" still update their window.
    pub allowed_lateness: DurationMs,
    /// Events further in the future than this (after skew correction) are rejected.
    pub max_clock_ahead: DurationMs,
    /// Events older than this are rejected rather than tallied as late.
    pub max_event_age: DurationMs,
    /// Most dedup keys remembered at once (about 16 bytes of memory each). Past it, the oldest
    /// are forgotten before the window ends, and `/metrics` says so.
    pub dedup_keys_max: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Dimension {
    pub name: String,
    pub path: FieldPath,
    pub values_max: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Funnel {
    pub id: String,
    pub name: String,
    pub stages: Vec<Stage>,
    /// IANA time zone of this funnel's time-of-week baselines; the shop's unless set.
    pub time_zone: String,
}

/// How the anomaly detector judges drop-off; see `docs/detection.md`.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    /// The window the runbook's σ refers to: deviations are measured in standard deviations of
    /// a window of this length. Whole minutes, 1 to 60.
    pub window: DurationMs,
    /// How long after a minute ends it is judged, so that its events have arrived.
    pub settle: DurationMs,
    /// A new series learns for this long before it may page.
    pub learning: DurationMs,
    /// Effective memory of the time-of-week baselines, in weeks.
    pub baseline_weeks: u32,
    /// False-alarm budgets on clean traffic: at most one false P1 per funnel in this time,
    /// and one false P2.
    pub false_p1_every: DurationMs,
    pub false_p2_every: DurationMs,
    /// Fewest shoppers expected at a stage in one window for it to be judged at all.
    pub min_shoppers: u32,
    /// An alert closes once drop-off has been within 2σ of baseline for this long.
    pub close_after: DurationMs,
    /// Whether single-dimension segments are watched as well as every funnel as a whole.
    pub segments: bool,
    /// Known unusual periods (a sale day) kept out of the baselines.
    pub masks: Vec<Mask>,
}

/// A period kept out of the baselines, in the funnel's local time, so that a mask written as
/// a calendar day stays that day across a daylight-saving change.
#[derive(Debug, Clone, PartialEq)]
pub struct Mask {
    /// A funnel id; `None` masks every funnel.
    pub funnel: Option<String>,
    pub from: jiff::civil::DateTime,
    pub to: jiff::civil::DateTime,
    pub reason: String,
}

/// Most masks a config may declare.
pub const MASKS_MAX: usize = 1_000;

#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    pub id: String,
    pub name: String,
    pub trigger: Trigger,
    /// All must hold: the value at the path, rendered as text, equals the given text.
    pub filters: Vec<(FieldPath, String)>,
}

/// Which call marks a shopper reaching a stage.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Trigger {
    /// A `track` call with this `event` name.
    Track(String),
    /// A `page` call with this `name`.
    Page(String),
    /// A `screen` call with this `name`.
    Screen(String),
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
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawIncidents {
    flap_hold: Option<Spanned<String>>,
    p1_quiet_for: Option<Spanned<String>>,
    p2_stable_for: Option<Spanned<String>>,
    ack_timeout: Option<Spanned<String>>,
    auto_resolve: Option<bool>,
    p1: Option<RawSeverityPolicy>,
    p2: Option<RawSeverityPolicy>,
    p3: Option<RawSeverityPolicy>,
    #[serde(default)]
    silences: Vec<RawSilence>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSeverityPolicy {
    response: Option<Spanned<String>>,
    resolution: Option<Spanned<String>>,
    update_every: Option<Spanned<String>>,
    repeat_every: Option<Spanned<String>>,
    empty_level: Option<Spanned<String>>,
    levels: Option<Vec<RawLevel>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLevel {
    name: Spanned<String>,
    #[serde(default)]
    targets: Vec<String>,
    respond_within: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSilence {
    funnel: Option<Spanned<String>>,
    stage: Option<Spanned<String>>,
    from: Spanned<String>,
    to: Spanned<String>,
    reason: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDetection {
    window: Option<Spanned<String>>,
    settle: Option<Spanned<String>>,
    learning: Option<Spanned<String>>,
    baseline_weeks: Option<Spanned<i64>>,
    false_p1_every: Option<Spanned<String>>,
    false_p2_every: Option<Spanned<String>>,
    min_shoppers: Option<Spanned<i64>>,
    close_after: Option<Spanned<String>>,
    segments: Option<bool>,
    #[serde(default)]
    masks: Vec<RawMask>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMask {
    funnel: Option<Spanned<String>>,
    from: Spanned<String>,
    to: Spanned<String>,
    reason: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawShop {
    currency: Option<Spanned<String>>,
    average_order_value: Option<Spanned<String>>,
    time_zone: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIngest {
    dedup_window: Option<Spanned<String>>,
    allowed_lateness: Option<Spanned<String>>,
    max_clock_ahead: Option<Spanned<String>>,
    max_event_age: Option<Spanned<String>>,
    dedup_keys_max: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDimension {
    name: Spanned<String>,
    path: Spanned<String>,
    max_values: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFunnel {
    id: Spanned<String>,
    name: Option<String>,
    time_zone: Option<Spanned<String>>,
    #[serde(default)]
    stages: Vec<Spanned<RawStage>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStage {
    id: Spanned<String>,
    name: Option<String>,
    event: Option<Spanned<String>>,
    page: Option<Spanned<String>>,
    screen: Option<Spanned<String>>,
    #[serde(default, rename = "where")]
    filters: std::collections::BTreeMap<String, Spanned<toml::Value>>,
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

    /// The bundled example: a Segment e-commerce spec checkout funnel.
    pub fn example_toml() -> &'static str {
        include_str!("../../../revloop.example.toml")
    }
}

struct Problems<'a> {
    lines: &'a LineIndex,
    found: Vec<ConfigProblem>,
}

impl Problems<'_> {
    fn at(&mut self, offset: usize, message: impl Into<String>) {
        let line = self.lines.line(offset);
        self.found.push(ConfigProblem {
            line,
            message: message.into(),
        });
    }
}

fn validate(raw: RawConfig, problems: &mut Problems) -> Config {
    let shop = validate_shop(raw.shop, problems);
    let ingest = validate_ingest(raw.ingest, problems);

    if raw.dimensions.len() > DIMENSIONS_MAX {
        let offset = raw.dimensions[DIMENSIONS_MAX].name.span().start;
        problems.at(
            offset,
            format!("at most {DIMENSIONS_MAX} dimensions are allowed"),
        );
    }
    let mut dimensions = Vec::new();
    let mut dimension_names = HashSet::new();
    for raw_dimension in raw.dimensions {
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

    if raw.funnels.is_empty() {
        problems.found.push(ConfigProblem {
            line: 0,
            message: "no funnels: declare at least one [[funnels]] with two or more stages".into(),
        });
    }
    if raw.funnels.len() > FUNNELS_MAX {
        problems.at(
            raw.funnels[FUNNELS_MAX].span().start,
            format!("at most {FUNNELS_MAX} funnels are allowed"),
        );
    }
    let mut funnels = Vec::new();
    let mut funnel_ids = HashSet::new();
    for spanned_funnel in raw.funnels {
        let funnel_offset = spanned_funnel.span().start;
        let raw_funnel = spanned_funnel.into_inner();
        let id_offset = raw_funnel.id.span().start;
        let id = raw_funnel.id.into_inner();
        check_id(&id, "funnel id", id_offset, problems);
        if !funnel_ids.insert(id.clone()) {
            problems.at(id_offset, format!("funnel `{id}` is declared twice"));
        }
        if raw_funnel.stages.len() < 2 {
            problems.at(
                funnel_offset,
                format!("funnel `{id}` needs at least two stages"),
            );
        }
        if raw_funnel.stages.len() > STAGES_MAX {
            problems.at(
                funnel_offset,
                format!("funnel `{id}` has more than {STAGES_MAX} stages"),
            );
        }
        let mut stages = Vec::new();
        let mut stage_ids = HashSet::new();
        for spanned_stage in raw_funnel.stages {
            let stage_offset = spanned_stage.span().start;
            let raw_stage = spanned_stage.into_inner();
            let stage_id_offset = raw_stage.id.span().start;
            let stage_id = raw_stage.id.into_inner();
            check_id(&stage_id, "stage id", stage_id_offset, problems);
            if !stage_ids.insert(stage_id.clone()) {
                problems.at(
                    stage_id_offset,
                    format!("stage `{stage_id}` appears twice in funnel `{id}`"),
                );
            }
            let triggers: Vec<Trigger> = [
                raw_stage
                    .event
                    .as_ref()
                    .map(|e| Trigger::Track(e.get_ref().clone())),
                raw_stage
                    .page
                    .as_ref()
                    .map(|p| Trigger::Page(p.get_ref().clone())),
                raw_stage
                    .screen
                    .as_ref()
                    .map(|s| Trigger::Screen(s.get_ref().clone())),
            ]
            .into_iter()
            .flatten()
            .collect();
            if triggers.len() != 1 {
                problems.at(
                    stage_offset,
                    format!(
                        "stage `{stage_id}` must set exactly one of `event`, `page` or `screen`"
                    ),
                );
            }
            if triggers.iter().any(|t| t.name().trim().is_empty()) {
                problems.at(
                    stage_offset,
                    format!("stage `{stage_id}` has an empty event or page name"),
                );
            }
            let mut filters = Vec::new();
            for (path_text, spanned_value) in raw_stage.filters {
                let value_offset = spanned_value.span().start;
                let path = match FieldPath::parse(&path_text) {
                    Ok(path) => path,
                    Err(message) => {
                        problems.at(value_offset, message);
                        continue;
                    }
                };
                let text = match spanned_value.into_inner() {
                    toml::Value::String(s) => s,
                    toml::Value::Integer(i) => i.to_string(),
                    toml::Value::Boolean(b) => b.to_string(),
                    _ => {
                        problems.at(value_offset, format!("filter `{path_text}` must compare with a string, integer or boolean"));
                        continue;
                    }
                };
                filters.push((path, text));
            }
            let name = raw_stage.name.unwrap_or_else(|| {
                triggers
                    .first()
                    .map_or_else(|| stage_id.clone(), |t| t.name().to_owned())
            });
            if let Some(trigger) = triggers.into_iter().next() {
                stages.push(Stage {
                    id: stage_id,
                    name,
                    trigger,
                    filters,
                });
            }
        }
        let name = raw_funnel.name.unwrap_or_else(|| id.clone());
        let time_zone = match raw_funnel.time_zone {
            None => shop.time_zone.clone(),
            Some(spanned) => check_time_zone(spanned, problems),
        };
        funnels.push(Funnel {
            id,
            name,
            stages,
            time_zone,
        });
    }
    let detection = validate_detection(raw.detection.unwrap_or_default(), &funnel_ids, problems);
    let (incidents, silences) =
        validate_incidents(raw.incidents.unwrap_or_default(), &funnels, problems);
    Config {
        shop,
        ingest,
        dimensions,
        funnels,
        detection,
        incidents,
        silences,
    }
}

fn check_time_zone(spanned: Spanned<String>, problems: &mut Problems) -> String {
    let name = spanned.get_ref().clone();
    if jiff::tz::TimeZone::get(&name).is_err() {
        problems.at(
            spanned.span().start,
            format!("`{name}` is not an IANA time zone name (e.g. Europe/Berlin)"),
        );
    }
    name
}

/// A positive duration, or the default (with a problem noted) when absent or bad.
fn duration_field(
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
fn integer_field(
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

fn validate_detection(
    raw: RawDetection,
    funnel_ids: &HashSet<String>,
    problems: &mut Problems,
) -> Detection {
    let window_offset = raw.window.as_ref().map(|w| w.span().start);
    let window = duration_field(raw.window, "5m", "detection.window", problems);
    if let Some(offset) = window_offset
        && (window.millis() % MS_PER_MINUTE != 0 || window.millis() > 60 * MS_PER_MINUTE)
    {
        problems.at(
            offset,
            "detection.window must be whole minutes, at most 60m",
        );
    }
    let settle_offset = raw.settle.as_ref().map(|w| w.span().start);
    let settle = duration_field(raw.settle, "1m", "detection.settle", problems);
    if let Some(offset) = settle_offset
        && settle.millis() > 60 * MS_PER_MINUTE
    {
        problems.at(offset, "detection.settle must be at most 60m");
    }
    let mut masks = Vec::new();
    if raw.masks.len() > MASKS_MAX {
        problems.at(
            raw.masks[MASKS_MAX].from.span().start,
            format!("at most {MASKS_MAX} masks are allowed"),
        );
    }
    for raw_mask in raw.masks.into_iter().take(MASKS_MAX) {
        let funnel = raw_mask.funnel.map(|spanned| {
            if !funnel_ids.contains(spanned.get_ref()) {
                problems.at(
                    spanned.span().start,
                    format!("mask names unknown funnel `{}`", spanned.get_ref()),
                );
            }
            spanned.into_inner()
        });
        let Some((from, to)) = local_window(&raw_mask.from, &raw_mask.to, "mask", problems) else {
            continue;
        };
        masks.push(Mask {
            funnel,
            from,
            to,
            reason: raw_mask.reason.unwrap_or_default(),
        });
    }
    Detection {
        window,
        settle,
        learning: duration_field(raw.learning, "7d", "detection.learning", problems),
        baseline_weeks: integer_field(
            raw.baseline_weeks,
            4,
            1..=52,
            "detection.baseline_weeks",
            problems,
        ) as u32,
        false_p1_every: duration_field(
            raw.false_p1_every,
            "30d",
            "detection.false_p1_every",
            problems,
        ),
        false_p2_every: duration_field(
            raw.false_p2_every,
            "7d",
            "detection.false_p2_every",
            problems,
        ),
        min_shoppers: integer_field(
            raw.min_shoppers,
            5,
            1..=1_000_000,
            "detection.min_shoppers",
            problems,
        ) as u32,
        close_after: duration_field(raw.close_after, "15m", "detection.close_after", problems),
        segments: raw.segments.unwrap_or(true),
        masks,
    }
}

fn validate_incidents(
    raw: RawIncidents,
    funnels: &[Funnel],
    problems: &mut Problems,
) -> (IncidentPolicy, Vec<SilenceWindow>) {
    let mut policy = IncidentPolicy::runbook();
    fn optional(
        field: Option<Spanned<String>>,
        name: &str,
        problems: &mut Problems,
    ) -> Option<DurationMs> {
        field.and_then(|spanned| match DurationMs::parse(spanned.get_ref()) {
            Ok(d) if d.millis() > 0 => Some(d),
            Ok(_) => {
                problems.at(spanned.span().start, format!("{name} must be positive"));
                None
            }
            Err(err) => {
                problems.at(spanned.span().start, format!("{name}: {err}"));
                None
            }
        })
    }
    fn duration(
        field: Option<Spanned<String>>,
        default: DurationMs,
        name: &str,
        problems: &mut Problems,
    ) -> DurationMs {
        optional(field, name, problems).unwrap_or(default)
    }
    policy.flap_hold = duration(
        raw.flap_hold,
        policy.flap_hold,
        "incidents.flap_hold",
        problems,
    );
    policy.p1_quiet_for = duration(
        raw.p1_quiet_for,
        policy.p1_quiet_for,
        "incidents.p1_quiet_for",
        problems,
    );
    policy.p2_stable_for = duration(
        raw.p2_stable_for,
        policy.p2_stable_for,
        "incidents.p2_stable_for",
        problems,
    );
    policy.ack_timeout = optional(raw.ack_timeout, "incidents.ack_timeout", problems);
    policy.auto_resolve = raw.auto_resolve.unwrap_or(policy.auto_resolve);
    for (index, (raw_severity, name)) in [(raw.p1, "p1"), (raw.p2, "p2"), (raw.p3, "p3")]
        .into_iter()
        .enumerate()
    {
        let Some(raw_severity) = raw_severity else {
            continue;
        };
        let severity = &mut policy.severities[index];
        let field = |f: &str| format!("incidents.{name}.{f}");
        severity.response = duration(
            raw_severity.response,
            severity.response,
            &field("response"),
            problems,
        );
        severity.resolution = duration(
            raw_severity.resolution,
            severity.resolution,
            &field("resolution"),
            problems,
        );
        if let Some(spanned) = raw_severity.update_every {
            // "daily": no updates while open, the daily summary only.
            severity.update_every = if spanned.get_ref() == "daily" {
                None
            } else {
                optional(Some(spanned), &field("update_every"), problems)
            };
        }
        if let Some(spanned) = raw_severity.empty_level {
            severity.empty_level = match spanned.get_ref().as_str() {
                "skip" => EmptyLevel::Skip,
                "wait" => EmptyLevel::Wait,
                other => {
                    problems.at(
                        spanned.span().start,
                        format!("{}: `{other}` is not skip or wait", field("empty_level")),
                    );
                    severity.empty_level
                }
            };
        }
        if let Some(spanned) = raw_severity.repeat_every {
            // "never": the last level is paged once.
            severity.repeat_every = if spanned.get_ref() == "never" {
                None
            } else {
                optional(Some(spanned), &field("repeat_every"), problems).or(severity.repeat_every)
            };
        }
        if let Some(levels) = raw_severity.levels {
            if levels.len() > ESCALATION_LEVELS_MAX {
                problems.at(
                    levels[ESCALATION_LEVELS_MAX].name.span().start,
                    format!("at most {ESCALATION_LEVELS_MAX} escalation levels are allowed"),
                );
            }
            severity.levels = Vec::new();
            let any_targets = levels.iter().any(|l| !l.targets.is_empty());
            if let Some(first) = levels.first()
                && !any_targets
            {
                problems.at(
                    first.name.span().start,
                    format!(
                        "no level of incidents.{name}.levels has a target, so it pages nobody (for a severity that pages nobody, use `levels = []`)"
                    ),
                );
            }
            for level in levels.into_iter().take(ESCALATION_LEVELS_MAX) {
                let offset = level.name.span().start;
                if level.targets.len() > LEVEL_TARGETS_MAX {
                    problems.at(
                        offset,
                        format!("at most {LEVEL_TARGETS_MAX} targets per level are allowed"),
                    );
                }
                if level.targets.iter().any(|t| t.trim().is_empty()) {
                    problems.at(offset, "an escalation target must not be empty");
                }
                if level.name.get_ref().trim().is_empty() {
                    problems.at(offset, "an escalation level needs a name");
                }
                if severity
                    .levels
                    .iter()
                    .any(|l| l.name == *level.name.get_ref())
                {
                    problems.at(
                        offset,
                        format!(
                            "escalation level `{}` is declared twice",
                            level.name.get_ref()
                        ),
                    );
                }
                // Positive, or a problem (and 15m, so that validation goes on).
                let respond_within = duration(
                    Some(level.respond_within),
                    DurationMs::from_minutes(15),
                    &field("levels.respond_within"),
                    problems,
                );
                severity.levels.push(EscalationLevel {
                    name: level.name.into_inner(),
                    targets: level.targets.into_iter().take(LEVEL_TARGETS_MAX).collect(),
                    respond_within,
                });
            }
        }
    }
    for (severity, name) in policy.severities.iter().zip(["p1", "p2", "p3"]) {
        if severity.response > severity.resolution {
            problems.found.push(ConfigProblem {
                line: 0,
                message: format!(
                    "incidents.{name}: the response time ({}) is longer than the resolution time ({})",
                    severity.response, severity.resolution
                ),
            });
        }
    }
    let mut silences = Vec::new();
    if raw.silences.len() > SILENCES_MAX {
        problems.at(
            raw.silences[SILENCES_MAX].from.span().start,
            format!("at most {SILENCES_MAX} silences are allowed"),
        );
    }
    for raw_silence in raw.silences.into_iter().take(SILENCES_MAX) {
        let funnel = raw_silence.funnel.map(|spanned| {
            if !funnels.iter().any(|f| f.id == *spanned.get_ref()) {
                problems.at(
                    spanned.span().start,
                    format!("silence names unknown funnel `{}`", spanned.get_ref()),
                );
            }
            spanned.into_inner()
        });
        let funnel_known = funnel
            .as_ref()
            .is_none_or(|id| funnels.iter().any(|f| f.id == *id));
        let stage = raw_silence.stage.map(|spanned| {
            let known = funnels
                .iter()
                .filter(|f| funnel.as_ref().is_none_or(|id| f.id == *id))
                .any(|f| f.stages.iter().any(|s| s.id == *spanned.get_ref()));
            // An unknown funnel is reported once, not again for each of its stages.
            if funnel_known && !known {
                problems.at(
                    spanned.span().start,
                    format!("silence names unknown stage `{}`", spanned.get_ref()),
                );
            }
            spanned.into_inner()
        });
        let reason = match raw_silence.reason {
            Some(reason) if !reason.trim().is_empty() => reason,
            _ => {
                problems.at(
                    raw_silence.from.span().start,
                    "a silence needs a `reason`: it is shown on every incident it holds",
                );
                String::new()
            }
        };
        let Some((from, to)) =
            local_window(&raw_silence.from, &raw_silence.to, "silence", problems)
        else {
            continue;
        };
        silences.push(SilenceWindow {
            funnel,
            stage,
            from,
            to,
            reason,
        });
    }
    (policy, silences)
}

/// A `from`–`to` pair of local date-times (a mask's, a silence's), `None` with a problem
/// noted where either does not parse or `from` is not before `to`.
fn local_window(
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

fn validate_shop(raw: Option<RawShop>, problems: &mut Problems) -> Shop {
    let raw = raw.unwrap_or(RawShop {
        currency: None,
        average_order_value: None,
        time_zone: None,
    });
    let currency = match raw.currency {
        None => Currency::parse("USD").expect("USD is a currency"),
        Some(spanned) => Currency::parse(spanned.get_ref()).unwrap_or_else(|err| {
            problems.at(spanned.span().start, err.to_string());
            Currency::parse("USD").expect("USD is a currency")
        }),
    };
    let average_order_value =
        raw.average_order_value.and_then(|spanned| {
            match Money::parse_decimal(spanned.get_ref(), currency) {
                Ok(money) if money.minor > 0 => Some(money),
                Ok(_) => {
                    problems.at(spanned.span().start, "average_order_value must be positive");
                    None
                }
                Err(err) => {
                    problems.at(spanned.span().start, err.to_string());
                    None
                }
            }
        });
    let time_zone = match raw.time_zone {
        None => "UTC".to_owned(),
        Some(spanned) => check_time_zone(spanned, problems),
    };
    Shop {
        currency,
        average_order_value,
        time_zone,
    }
}

fn validate_ingest(raw: Option<RawIngest>, problems: &mut Problems) -> Ingest {
    let raw = raw.unwrap_or(RawIngest {
        dedup_window: None,
        allowed_lateness: None,
        max_clock_ahead: None,
        max_event_age: None,
        dedup_keys_max: None,
    });
    let ingest = Ingest {
        dedup_window: duration_field(raw.dedup_window, "24h", "dedup_window", problems),
        allowed_lateness: duration_field(raw.allowed_lateness, "1h", "allowed_lateness", problems),
        max_clock_ahead: duration_field(raw.max_clock_ahead, "24h", "max_clock_ahead", problems),
        max_event_age: duration_field(raw.max_event_age, "30d", "max_event_age", problems),
        dedup_keys_max: match raw.dedup_keys_max {
            None => DEDUP_KEYS_DEFAULT,
            Some(spanned) => {
                let value = *spanned.get_ref();
                if !(DEDUP_KEYS_MIN as i64..=DEDUP_KEYS_MAX as i64).contains(&value) {
                    problems.at(
                        spanned.span().start,
                        format!(
                            "dedup_keys_max must be between {DEDUP_KEYS_MIN} and {DEDUP_KEYS_MAX}"
                        ),
                    );
                }
                value.clamp(DEDUP_KEYS_MIN as i64, DEDUP_KEYS_MAX as i64) as u64
            }
        },
    };
    if ingest.allowed_lateness > ingest.max_event_age {
        problems.found.push(ConfigProblem {
            line: 0,
            message: "ingest.allowed_lateness must not exceed ingest.max_event_age".into(),
        });
    }
    ingest
}

fn check_id(id: &str, what: &str, offset: usize, problems: &mut Problems) {
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

impl Trigger {
    pub fn name(&self) -> &str {
        match self {
            Trigger::Track(name) | Trigger::Page(name) | Trigger::Screen(name) => name,
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundled_example_is_valid() {
        let config = Config::parse(Config::example_toml()).unwrap();
        let funnel = &config.funnels[0];
        let events: Vec<&str> = funnel.stages.iter().map(|s| s.trigger.name()).collect();
        assert_eq!(
            events,
            [
                "Product Viewed",
                "Product Added",
                "Checkout Started",
                "Payment Info Entered",
                "Order Completed"
            ]
        );
        assert!(
            config
                .dimensions
                .iter()
                .any(|d| d.path.to_string() == "context.device.type")
        );
    }

    fn check(text: &str, expected: &[(usize, &str)]) {
        let problems = match Config::parse(text) {
            Ok(_) => Vec::new(),
            Err(ConfigError(problems)) => problems,
        };
        let got: Vec<(usize, String)> = problems
            .iter()
            .map(|p| (p.line, p.message.clone()))
            .collect();
        assert_eq!(got.len(), expected.len(), "{got:#?}");
        for ((line, message), (want_line, want_fragment)) in got.iter().zip(expected) {
            assert_eq!(line, want_line, "{message}");
            assert!(
                message.contains(want_fragment),
                "`{message}` lacks `{want_fragment}`"
            );
        }
    }

    const TWO_STAGES: &str = "
[[funnels]]
id = \"f\"
[[funnels.stages]]
id = \"a\"
event = \"A\"
[[funnels.stages]]
id = \"b\"
page = \"B\"
";

    #[test]
    fn a_minimal_config_is_valid() {
        check(TWO_STAGES, &[]);
        let config = Config::parse(TWO_STAGES).unwrap();
        assert_eq!(config.shop.currency.code(), "USD");
        assert_eq!(config.ingest.dedup_window, DurationMs::from_hours(24));
        assert_eq!(
            config.funnels[0].stages[1].trigger,
            Trigger::Page("B".into())
        );
    }

    #[test]
    fn reports_every_problem_with_its_line() {
        let text = "
[shop]
currency = \"DOLLARS\"
average_order_value = \"12.345\"
time_zone = \"Mars/Olympus\"

[ingest]
dedup_window = \"forever\"

[[dimensions]]
name = \"from\"
path = \"device.type\"

[[funnels]]
id = \"f\"
[[funnels.stages]]
id = \"a\"
event = \"A\"
page = \"A\"
[[funnels.stages]]
id = \"a\"
event = \"B\"
where = { \"properties.x\" = 1.5 }
";
        check(
            text,
            &[
                (3, "not a currency code"),
                (4, "not an amount in USD"),
                (5, "not an IANA time zone"),
                (8, "dedup_window"),
                (11, "reserved"),
                (12, "must start with one of"),
                (16, "exactly one of"),
                (21, "appears twice"),
                (23, "must compare with"),
            ],
        );
    }

    #[test]
    fn syntax_errors_and_unknown_keys_have_lines() {
        check(
            "[shop]\ncurrency = \"USD\"\ncolour = 1\n",
            &[(3, "unknown field")],
        );
        check("[shop\n", &[(1, "")]);
        check("", &[(0, "no funnels")]);
    }

    #[test]
    fn funnels_need_two_stages_and_unique_ids() {
        let text = "
[[funnels]]
id = \"f\"
[[funnels.stages]]
id = \"a\"
event = \"A\"
[[funnels]]
id = \"f\"
[[funnels.stages]]
id = \"a\"
event = \"A\"
[[funnels.stages]]
id = \"b\"
event = \"B\"
";
        check(text, &[(2, "at least two stages"), (8, "declared twice")]);
    }
}
