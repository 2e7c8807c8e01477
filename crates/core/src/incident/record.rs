//! One incident as it is kept: its severity, state, clocks, alerts, findings and append-only
//! timeline, with the runbook's mitigation options and root-cause checklist. It holds data and
//! the one way to append to a timeline; the rules that change an incident live beside it.

use std::collections::{BTreeMap, VecDeque};

use crate::alert::{AlertKind, Severity};
use crate::impact::Impact;
use crate::time::{DurationMs, Timestamp};

/// Most timeline entries one incident keeps; past it the engine refuses actions, and what the
/// engine itself does (alerts, timers) still changes the incident but is no longer written to
/// its timeline.
pub const TIMELINE_ENTRIES_MAX: usize = 10_000;
/// The engine's name in timelines.
pub const ENGINE_ACTOR: &str = "revloop";

/// The incident's own severity: P1 and P2 from alerts, P3 when set by a responder.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum IncidentSeverity {
    P1,
    P2,
    P3,
}

impl IncidentSeverity {
    pub fn as_str(self) -> &'static str {
        match self {
            IncidentSeverity::P1 => "P1",
            IncidentSeverity::P2 => "P2",
            IncidentSeverity::P3 => "P3",
        }
    }

    pub fn parse(text: &str) -> Option<IncidentSeverity> {
        match text {
            "P1" => Some(IncidentSeverity::P1),
            "P2" => Some(IncidentSeverity::P2),
            "P3" => Some(IncidentSeverity::P3),
            _ => None,
        }
    }

    pub(super) fn index(self) -> usize {
        self as usize
    }
}

impl From<Severity> for IncidentSeverity {
    fn from(severity: Severity) -> IncidentSeverity {
        match severity {
            Severity::P1 => IncidentSeverity::P1,
            Severity::P2 => IncidentSeverity::P2,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum IncidentState {
    Triggered,
    Acknowledged,
    Mitigated,
    Resolved,
}

impl IncidentState {
    pub fn as_str(self) -> &'static str {
        match self {
            IncidentState::Triggered => "triggered",
            IncidentState::Acknowledged => "acknowledged",
            IncidentState::Mitigated => "mitigated",
            IncidentState::Resolved => "resolved",
        }
    }
}

/// The runbook's mitigation options.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Mitigation {
    TrafficRouting,
    Rollback,
    DisableExperiment,
    BackupPaymentProcessor,
    StatusBanner,
    Other,
}

impl Mitigation {
    pub const ALL: [Mitigation; 6] = [
        Mitigation::TrafficRouting,
        Mitigation::Rollback,
        Mitigation::DisableExperiment,
        Mitigation::BackupPaymentProcessor,
        Mitigation::StatusBanner,
        Mitigation::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Mitigation::TrafficRouting => "traffic_routing",
            Mitigation::Rollback => "rollback",
            Mitigation::DisableExperiment => "disable_experiment",
            Mitigation::BackupPaymentProcessor => "backup_payment_processor",
            Mitigation::StatusBanner => "status_banner",
            Mitigation::Other => "other",
        }
    }

    pub fn parse(text: &str) -> Option<Mitigation> {
        Mitigation::ALL.into_iter().find(|m| m.as_str() == text)
    }
}

/// The runbook's root-cause checklist: (category, item).
pub const CHECKLIST: [(&str, &str); 16] = [
    ("technical", "Page load time performance"),
    ("technical", "API response times and error rates"),
    ("technical", "Payment processor integration status"),
    ("technical", "CDN and infrastructure health"),
    ("technical", "Mobile vs desktop performance differences"),
    ("product", "Recent UI/UX changes or experiments"),
    ("product", "Pricing displays and shipping costs"),
    ("product", "Product availability and inventory"),
    ("product", "Checkout form validation and errors"),
    ("external", "Marketing campaign traffic spikes"),
    ("external", "Social media mentions or viral content"),
    ("external", "Competitor actions or market changes"),
    ("external", "Seasonal or time-of-day variations"),
    ("data_quality", "Tracking pixel functionality"),
    ("data_quality", "Event attribution accuracy"),
    ("data_quality", "Data pipeline health and latency"),
];

/// What a timeline entry records. The names (`as_str`) are stable: the store keeps them in a
/// column and the API shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimelineKind {
    Opened,
    Reopened,
    Acknowledged,
    AckTimeout,
    Mitigated,
    Resolved,
    ResolutionPrompt,
    Escalated,
    EscalationSkipped,
    Upgraded,
    SeveritySet,
    ScopeSet,
    RelatedAlert,
    AlertClosed,
    Silenced,
    SlaBreached,
    Note,
    RootCause,
    ActionItem,
    Checklist,
    Recovered,
    Relapsed,
    Reminded,
}

impl TimelineKind {
    pub const ALL: [TimelineKind; 23] = [
        TimelineKind::Opened,
        TimelineKind::Reopened,
        TimelineKind::Acknowledged,
        TimelineKind::AckTimeout,
        TimelineKind::Mitigated,
        TimelineKind::Resolved,
        TimelineKind::ResolutionPrompt,
        TimelineKind::Escalated,
        TimelineKind::EscalationSkipped,
        TimelineKind::Upgraded,
        TimelineKind::SeveritySet,
        TimelineKind::ScopeSet,
        TimelineKind::RelatedAlert,
        TimelineKind::AlertClosed,
        TimelineKind::Silenced,
        TimelineKind::SlaBreached,
        TimelineKind::Note,
        TimelineKind::RootCause,
        TimelineKind::ActionItem,
        TimelineKind::Checklist,
        TimelineKind::Recovered,
        TimelineKind::Relapsed,
        TimelineKind::Reminded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TimelineKind::Opened => "opened",
            TimelineKind::Reopened => "reopened",
            TimelineKind::Acknowledged => "acknowledged",
            TimelineKind::AckTimeout => "ack_timeout",
            TimelineKind::Mitigated => "mitigated",
            TimelineKind::Resolved => "resolved",
            TimelineKind::ResolutionPrompt => "resolution_prompt",
            TimelineKind::Escalated => "escalated",
            TimelineKind::EscalationSkipped => "escalation_skipped",
            TimelineKind::Upgraded => "upgraded",
            TimelineKind::SeveritySet => "severity_set",
            TimelineKind::ScopeSet => "scope_set",
            TimelineKind::RelatedAlert => "related_alert",
            TimelineKind::AlertClosed => "alert_closed",
            TimelineKind::Silenced => "silenced",
            TimelineKind::SlaBreached => "sla_breached",
            TimelineKind::Note => "note",
            TimelineKind::RootCause => "root_cause",
            TimelineKind::ActionItem => "action_item",
            TimelineKind::Checklist => "checklist",
            TimelineKind::Recovered => "recovered",
            TimelineKind::Relapsed => "relapsed",
            TimelineKind::Reminded => "reminded",
        }
    }

    pub fn parse(text: &str) -> Option<TimelineKind> {
        TimelineKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == text)
    }
}

impl std::fmt::Display for TimelineKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One step of an incident's history. Append-only.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TimelineEntry {
    pub at: Timestamp,
    /// Who: a responder's name, or `revloop` for the engine itself.
    pub actor: String,
    pub kind: TimelineKind,
    /// What, for people.
    pub text: String,
}

/// A checklist item ticked.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Tick {
    pub by: String,
    pub at: Timestamp,
    pub finding: String,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ActionItem {
    pub text: String,
    pub owner: String,
    pub due: Timestamp,
    pub added_by: String,
    pub added_at: Timestamp,
}

/// Where an incident's escalation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Escalation {
    /// The next level to page.
    pub next_level: usize,
    /// When; `None` once escalation has stopped (an ack, the path's end, no levels).
    pub next_at: Option<Timestamp>,
    /// Pages of the last level after its first.
    pub repeats: u32,
}

/// An open incident whose problem is over: every related alert closed and the drop-off back
/// within 2σ. Nothing pages it while it lasts (`recovery`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Recovery {
    /// When it recovered.
    pub at: Timestamp,
    /// What was left of the wait for the next page when it recovered: a relapse resumes the
    /// path with it. `None`: nothing was going to page.
    pub escalation_left: Option<DurationMs>,
    /// When its owner was last reminded; `None` before the first reminder.
    pub reminded_at: Option<Timestamp>,
}

/// Whether an SLA was met, breached, or is still running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SlaClock {
    pub due: Timestamp,
    pub met_at: Option<Timestamp>,
    pub breached: bool,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Incident {
    pub id: u64,
    pub funnel: String,
    pub stage: String,
    /// The kind of the alert that set its severity: the opening alert's, then that of each
    /// alert that raised it. Headers read "P1 conversion" from severity and kind, so they
    /// name the evidence behind the severity.
    pub kind: AlertKind,
    pub segment: Option<(String, String)>,
    /// The affected stage and segment as a responder judged them; the incident still groups
    /// and measures by its alert's stage and segment.
    pub scope: Option<(String, Option<(String, String)>)>,
    pub severity: IncidentSeverity,
    pub state: IncidentState,
    /// When the first alert's series started to deviate, as the detector estimated it.
    pub onset: Timestamp,
    pub opened_at: Timestamp,
    pub acknowledged_at: Option<Timestamp>,
    pub mitigated_at: Option<Timestamp>,
    pub resolved_at: Option<Timestamp>,
    /// When severity last rose, or the incident opened or reopened.
    pub severity_since: Timestamp,
    pub escalation: Escalation,
    pub response: SlaClock,
    pub resolution: SlaClock,
    /// Alert ids attached, and whether each is still open.
    pub alerts: BTreeMap<u64, bool>,
    /// The last time a related alert opened, upgraded or closed: the P1 quiet period counts
    /// from here, so it starts once the drop-off is back within 2σ, not while it is still off.
    pub last_alert_at: Timestamp,
    pub root_cause: Option<String>,
    pub mitigations: Vec<(Mitigation, String)>,
    pub action_items: Vec<ActionItem>,
    pub checklist: Vec<Option<Tick>>,
    /// Opened during a silence: nobody was paged until it ended.
    pub silenced: bool,
    /// `(at, sigma)` of the incident's series, newest last.
    pub measurements: VecDeque<(Timestamp, f64)>,
    /// Whether the prompt to resolve has been given since the criteria last changed.
    pub prompted: bool,
    /// For a guard incident ([`AlertKind::Guard`]): why revloop cannot judge, as last seen.
    /// `None` for every other kind.
    pub guard_reason: Option<String>,
    /// Recovered while open: the problem is over, escalation has stopped, a root cause (or
    /// whatever else the criteria ask) is still owed. `None` otherwise, and for records
    /// written before recovery existed.
    #[serde(default)]
    pub recovered: Option<Recovery>,
    /// What it has cost so far (`impact`), conversion incidents only: `None` before its first
    /// priced minute, for the other kinds, and for records written before impact existed.
    #[serde(default)]
    pub impact: Option<Impact>,
    /// Resolved by a responder as a false alarm: its loss counts in no total. A reopen clears
    /// it.
    #[serde(default)]
    pub false_alarm: bool,
    /// The targets paged since it opened or last reopened, each once, in the order first
    /// paged: who is told of an SLA breach, an acknowledgement and the resolution. Bounded by
    /// the policy's targets (each appears once). Empty when it paged nobody, and in records
    /// written before delivery existed.
    #[serde(default)]
    pub paged: Vec<String>,
    /// What the responder who declared it by hand said (`IncidentEngine::declare`), carried
    /// in every page's brief; `None` for a detected incident.
    #[serde(default)]
    pub declared_summary: Option<String>,
    /// Kept apart by the store, row by row (append-only), not in the incident's stored record.
    #[serde(skip)]
    pub timeline: Vec<TimelineEntry>,
    /// Changed since the caller last took the changed incidents; not state.
    #[serde(skip)]
    pub unsaved: Unsaved,
}

/// Whether an incident changed since the engine's caller last took the changed incidents
/// ([`IncidentEngine::take_changed`](super::IncidentEngine::take_changed)). Only the engine
/// sets or clears it; anyone restoring an incident (the store) starts it clear with
/// `Unsaved::default()`, so that the whole `Incident` can be written out field by field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Unsaved(pub(super) bool);

impl Incident {
    pub fn is_open(&self) -> bool {
        self.state != IncidentState::Resolved
    }

    /// Open and recovered: nothing pages it until it relapses or resolves.
    pub fn is_recovered(&self) -> bool {
        self.is_open() && self.recovered.is_some()
    }

    /// Whether it is revloop's own blindness (the dead man's switch) rather than a funnel's.
    pub fn is_guard(&self) -> bool {
        self.kind == AlertKind::Guard
    }

    /// Whether a responder declared it by hand and no detector alert has joined it since (an
    /// alert that joins it names it by its own kind): nothing measured opened it, so nothing
    /// measured alone may say it is over (`criteria`).
    pub fn is_declared(&self) -> bool {
        self.kind == AlertKind::Declared
    }
}

pub(super) fn push(
    incident: &mut Incident,
    at: Timestamp,
    actor: &str,
    kind: TimelineKind,
    text: String,
) {
    incident.unsaved = Unsaved(true);
    if incident.timeline.len() < TIMELINE_ENTRIES_MAX {
        incident.timeline.push(TimelineEntry {
            at,
            actor: actor.to_owned(),
            kind,
            text,
        });
    }
}
