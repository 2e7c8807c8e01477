//! The `[incidents]` section: the incident policy (SLAs, escalation paths, resolution rules)
//! and the silences, parsed into the incident engine's own types. The dependency runs this way
//! only: the engine never names the configuration, so what joins the two (the engine for a
//! configuration, its silences' time zones) lives here.

use serde::Deserialize;
use toml::Spanned;

use super::funnels::Funnel;
use super::{Config, ConfigProblem, Problems, local_window};
use crate::incident::{
    EmptyLevel, EscalationLevel, IncidentEngine, IncidentPolicy, SeverityPolicy, Silence,
};
use crate::time::{DurationMs, Timestamp};

/// A silence as declared in a configuration, in local time (the funnel's time zone, or the
/// shop's when it names no funnel), so that "Saturday 02:00–04:00" stays that across a DST
/// change.
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

impl Config {
    /// The IANA time zone of `funnel` (the shop's for `None` or a funnel it does not know).
    fn time_zone_of(&self, funnel: Option<&str>) -> &str {
        funnel
            .and_then(|id| self.funnels.iter().find(|f| f.id == id))
            .map_or(&self.shop.time_zone, |f| &f.time_zone)
    }

    /// The declared silences in UTC: each in its funnel's time zone (the shop's when it names
    /// no funnel). A local time that does not exist (in a spring-forward gap) is shifted
    /// forward by the gap, and a repeated one is its first occurrence.
    pub fn silences(&self) -> Vec<Silence> {
        self.silences
            .iter()
            .filter_map(|window| {
                let zone_name = self.time_zone_of(window.funnel.as_deref());
                let zone = jiff::tz::TimeZone::get(zone_name).unwrap_or(jiff::tz::TimeZone::UTC);
                let utc = |civil| {
                    zone.to_ambiguous_timestamp(civil)
                        .compatible()
                        .ok()
                        .map(|t| Timestamp::from_millis(t.as_millisecond()))
                };
                Some(Silence {
                    funnel: window.funnel.clone(),
                    stage: window.stage.clone(),
                    from: utc(window.from)?,
                    to: utc(window.to)?,
                    reason: window.reason.clone(),
                })
            })
            .collect()
    }
}

impl IncidentEngine {
    /// An empty engine with the config's policy and silences.
    pub fn for_config(config: &Config) -> IncidentEngine {
        IncidentEngine::new(config.incidents.clone(), config.silences())
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawIncidents {
    flap_hold: Option<Spanned<String>>,
    p1_quiet_for: Option<Spanned<String>>,
    p2_stable_for: Option<Spanned<String>>,
    ack_timeout: Option<Spanned<String>>,
    auto_resolve: Option<bool>,
    page_on_surge: Option<bool>,
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

pub(super) fn validate_incidents(
    raw: RawIncidents,
    funnels: &[Funnel],
    problems: &mut Problems,
) -> (IncidentPolicy, Vec<SilenceWindow>) {
    let mut policy = IncidentPolicy::runbook();
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
    policy.page_on_surge = raw.page_on_surge.unwrap_or(policy.page_on_surge);
    for (index, (raw_severity, name)) in [(raw.p1, "p1"), (raw.p2, "p2"), (raw.p3, "p3")]
        .into_iter()
        .enumerate()
    {
        if let Some(raw_severity) = raw_severity {
            validate_severity(raw_severity, name, &mut policy.severities[index], problems);
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
    let silences = validate_silences(raw.silences, funnels, problems);
    (policy, silences)
}

/// A positive duration, or `None` (with a problem noted when present but bad).
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

/// A positive duration, or `default` (with a problem noted when present but bad).
fn duration(
    field: Option<Spanned<String>>,
    default: DurationMs,
    name: &str,
    problems: &mut Problems,
) -> DurationMs {
    optional(field, name, problems).unwrap_or(default)
}

/// What `[incidents.pN]` overrides of the runbook's policy for one severity.
fn validate_severity(
    raw_severity: RawSeverityPolicy,
    name: &str,
    severity: &mut SeverityPolicy,
    problems: &mut Problems,
) {
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
        severity.levels = validate_levels(levels, name, problems);
    }
}

/// The escalation path of severity `name` (`p1`, ...).
fn validate_levels(
    levels: Vec<RawLevel>,
    name: &str,
    problems: &mut Problems,
) -> Vec<EscalationLevel> {
    let field = |f: &str| format!("incidents.{name}.{f}");
    if levels.len() > ESCALATION_LEVELS_MAX {
        problems.at(
            levels[ESCALATION_LEVELS_MAX].name.span().start,
            format!("at most {ESCALATION_LEVELS_MAX} escalation levels are allowed"),
        );
    }
    let mut validated: Vec<EscalationLevel> = Vec::new();
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
        if validated.iter().any(|l| l.name == *level.name.get_ref()) {
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
        validated.push(EscalationLevel {
            name: level.name.into_inner(),
            targets: level.targets.into_iter().take(LEVEL_TARGETS_MAX).collect(),
            respond_within,
        });
    }
    validated
}

/// The silences, in local time, checked against the funnels and stages they name.
fn validate_silences(
    raw_silences: Vec<RawSilence>,
    funnels: &[Funnel],
    problems: &mut Problems,
) -> Vec<SilenceWindow> {
    let mut silences = Vec::new();
    if raw_silences.len() > SILENCES_MAX {
        problems.at(
            raw_silences[SILENCES_MAX].from.span().start,
            format!("at most {SILENCES_MAX} silences are allowed"),
        );
    }
    for raw_silence in raw_silences.into_iter().take(SILENCES_MAX) {
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
    silences
}
