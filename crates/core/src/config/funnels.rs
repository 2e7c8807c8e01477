//! The `[[funnels]]` section: each funnel's stages, the call that marks a shopper reaching
//! each, and the funnel's time zone.

use std::collections::HashSet;

use serde::Deserialize;
use toml::Spanned;

use super::dimensions::FieldPath;
use super::shop::{Shop, check_time_zone};
use super::{ConfigProblem, Problems, check_id};

/// How many funnels, and stages per funnel, a config may declare.
pub const FUNNELS_MAX: usize = 32;
pub const STAGES_MAX: usize = 16;

#[derive(Debug, Clone, PartialEq)]
pub struct Funnel {
    pub id: String,
    pub name: String,
    pub stages: Vec<Stage>,
    /// IANA time zone of this funnel's time-of-week baselines; the shop's unless set.
    pub time_zone: String,
}

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

impl Trigger {
    pub fn name(&self) -> &str {
        match self {
            Trigger::Track(name) | Trigger::Page(name) | Trigger::Screen(name) => name,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFunnel {
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

/// Every funnel, and the set of their ids for the sections that name them.
pub(super) fn validate_funnels(
    raw_funnels: Vec<Spanned<RawFunnel>>,
    shop: &Shop,
    problems: &mut Problems,
) -> (Vec<Funnel>, HashSet<String>) {
    if raw_funnels.is_empty() {
        problems.found.push(ConfigProblem {
            line: 0,
            message: "no funnels: declare at least one [[funnels]] with two or more stages".into(),
        });
    }
    if raw_funnels.len() > FUNNELS_MAX {
        problems.at(
            raw_funnels[FUNNELS_MAX].span().start,
            format!("at most {FUNNELS_MAX} funnels are allowed"),
        );
    }
    let mut funnels = Vec::new();
    let mut funnel_ids = HashSet::new();
    for spanned_funnel in raw_funnels {
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
        let mut stage_offsets = Vec::new();
        let mut stage_ids = HashSet::new();
        for spanned_stage in raw_funnel.stages {
            let stage_offset = spanned_stage.span().start;
            if let Some(stage) = validate_stage(spanned_stage, &id, &mut stage_ids, problems) {
                stages.push(stage);
                stage_offsets.push(stage_offset);
            }
        }
        check_distinct_bindings(&id, &stages, &stage_offsets, problems);
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
    (funnels, funnel_ids)
}

/// Two stages of one funnel bound to the same event (the same call, name and filters) would
/// both count every such message, which is never what a funnel means: each later one is a
/// problem at its line, naming the earlier one and its line. Funnels may share events.
fn check_distinct_bindings(
    funnel_id: &str,
    stages: &[Stage],
    offsets: &[usize],
    problems: &mut Problems,
) {
    for (later, stage) in stages.iter().enumerate() {
        let Some(earlier) = stages[..later]
            .iter()
            .position(|e| e.trigger == stage.trigger && e.filters == stage.filters)
        else {
            continue;
        };
        let call = match &stage.trigger {
            Trigger::Track(name) => format!("track `{name}`"),
            Trigger::Page(name) => format!("page `{name}`"),
            Trigger::Screen(name) => format!("screen `{name}`"),
        };
        let filters = if stage.filters.is_empty() {
            "no filters"
        } else {
            "the same filters"
        };
        problems.at(
            offsets[later],
            format!(
                "stages `{}` (line {}) and `{}` of funnel `{funnel_id}` are bound to the same \
                 event ({call} with {filters}), so every such message would count for both; \
                 give one a distinguishing `where` filter or bind it to another event",
                stages[earlier].id,
                problems.lines.line(offsets[earlier]),
                stage.id,
            ),
        );
    }
}

/// One stage of funnel `funnel_id`; `None` (with problems noted) when it names no trigger.
fn validate_stage(
    spanned_stage: Spanned<RawStage>,
    funnel_id: &str,
    stage_ids: &mut HashSet<String>,
    problems: &mut Problems,
) -> Option<Stage> {
    let stage_offset = spanned_stage.span().start;
    let raw_stage = spanned_stage.into_inner();
    let stage_id_offset = raw_stage.id.span().start;
    let stage_id = raw_stage.id.into_inner();
    check_id(&stage_id, "stage id", stage_id_offset, problems);
    if !stage_ids.insert(stage_id.clone()) {
        problems.at(
            stage_id_offset,
            format!("stage `{stage_id}` appears twice in funnel `{funnel_id}`"),
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
            format!("stage `{stage_id}` must set exactly one of `event`, `page` or `screen`"),
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
                problems.at(
                    value_offset,
                    format!("filter `{path_text}` must compare with a string, integer or boolean"),
                );
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
    let trigger = triggers.into_iter().next()?;
    Some(Stage {
        id: stage_id,
        name,
        trigger,
        filters,
    })
}
