//! Incidents as the API shows them: `GET /api/v1/incidents` (a page of headlines),
//! `GET /api/v1/incidents/{id}` and every action's reply (one incident in full). The actions'
//! bodies are in `actions`.
//!
//! Field names and optional fields are exactly the server's; the engine's own types never
//! appear here.

use serde::{Deserialize, Serialize};

use crate::Segment;
use crate::changes::Change;
use crate::names::names;
use crate::signals::Signal;

names! {
    /// How bad an incident is: P1 pages most urgently. Closed, unlike the display-only names:
    /// the report has one fixed key per severity and the CLI sends severities, so a new one
    /// is a change of the API's shape that a CLI must be rebuilt for.
    pub enum Severity("severity") {
        P1 = "P1",
        P2 = "P2",
        P3 = "P3",
    }
}

impl Severity {
    /// A severity as a person types it: `p2` is `P2`.
    pub fn parse_loose(text: &str) -> Result<Severity, crate::UnknownName> {
        text.to_ascii_uppercase()
            .parse()
            .map_err(|_| crate::UnknownName {
                what: "severity",
                given: text.to_owned(),
                valid: Severity::NAMES,
            })
    }
}

names! {
    /// Where an incident is in its life.
    pub enum IncidentState("state") open {
        Triggered = "triggered",
        Acknowledged = "acknowledged",
        Mitigated = "mitigated",
        Resolved = "resolved",
    }
}

names! {
    /// Which incidents a list returns (`?state=`); the API's default is `all`.
    pub enum StateFilter("state") {
        Open = "open",
        Resolved = "resolved",
        All = "all",
    }
}

names! {
    /// What the alert behind an incident measured.
    pub enum IncidentKind("incident kind") open {
        /// Shoppers at a stage stopped going on to the next.
        Conversion = "conversion",
        /// A stage's events vanished or surged.
        Volume = "volume",
        /// revloop itself cannot judge the funnel (the dead man's switch); its `reason` says
        /// why. Its stage is `*`, and its funnel `*` when every funnel is blind.
        Guard = "guard",
        /// Declared by a responder (`POST /api/v1/incidents`), not detected; a detector alert
        /// that raises its severity names it by its own kind from then on.
        Declared = "declared",
    }
}

names! {
    /// Whether the deviation is growing, over the last measurements.
    pub enum Trend("trend") open {
        Increasing = "increasing",
        Stable = "stable",
        Decreasing = "decreasing",
    }
}

names! {
    /// An SLA clock: running until met, or breached once it ran out (and breached it stays).
    pub enum SlaState("SLA state") open {
        Running = "running",
        Met = "met",
        Breached = "breached",
    }
}

names! {
    /// What a responder did to stop the bleeding.
    pub enum Mitigation("mitigation") open {
        TrafficRouting = "traffic_routing",
        Rollback = "rollback",
        DisableExperiment = "disable_experiment",
        BackupPaymentProcessor = "backup_payment_processor",
        StatusBanner = "status_banner",
        Other = "other",
    }
}

names! {
    /// What a timeline entry records, as a stable machine name.
    pub enum TimelineKind("timeline kind") open {
        Opened = "opened",
        Silenced = "silenced",
        Upgraded = "upgraded",
        RelatedAlert = "related_alert",
        AlertClosed = "alert_closed",
        Acknowledged = "acknowledged",
        Note = "note",
        ScopeSet = "scope_set",
        SeveritySet = "severity_set",
        Mitigated = "mitigated",
        RootCause = "root_cause",
        ActionItem = "action_item",
        Checklist = "checklist",
        Resolved = "resolved",
        Reopened = "reopened",
        ResolutionPrompt = "resolution_prompt",
        SlaBreached = "sla_breached",
        AckTimeout = "ack_timeout",
        EscalationSkipped = "escalation_skipped",
        Escalated = "escalated",
        Recovered = "recovered",
        Relapsed = "relapsed",
        Reminded = "reminded",
        /// A delivery attempt of a page or an update: delivered, failed and retrying, or given up.
        Delivery = "delivery",
    }
}

/// `GET /api/v1/incidents`: newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct IncidentList {
    pub incidents: Vec<IncidentSummary>,
    /// The `before` of the next page; `null` on the last page.
    pub next_before: Option<i64>,
}

/// An incident's headline, as lists show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct IncidentSummary {
    pub id: u64,
    pub funnel: String,
    pub stage: String,
    pub kind: IncidentKind,
    pub segment: Option<Segment>,
    pub severity: Severity,
    pub state: IncidentState,
    /// Opened in a maintenance window: it pages nobody until the window ends.
    pub silenced: bool,
    pub onset: String,
    pub opened_at: String,
    pub acknowledged_at: Option<String>,
    pub mitigated_at: Option<String>,
    pub resolved_at: Option<String>,
    pub sla: SlaClocks,
    pub times: ResponseTimes,
    pub trend: Trend,
    /// Open, and every resolution criterion holds.
    pub resolvable: bool,
    /// Open and recovered since then: every related alert closed and the drop-off back
    /// within 2σ. Nothing pages it; it still needs its resolution criteria (a P1's root
    /// cause) to resolve, and its owner is reminded at most once a day. Absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovered_at: Option<String>,
    /// Why revloop cannot judge, for a `guard` incident (as last seen); absent for the
    /// other kinds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Resolved by a responder as a false alarm: its loss counts in no total. Absent when
    /// false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub false_alarm: bool,
    /// What it has cost so far (docs/impact.md); absent until its first priced minute, and
    /// for volume and guard incidents, which are not priced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub impact: Option<ImpactSummary>,
}

/// An amount in integer minor units of a currency, with its display.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Amount {
    pub minor: i64,
    pub currency: String,
    /// `4250.00 USD`.
    pub display: String,
}

/// An incident's revenue impact now (docs/impact.md): every amount rounded once, half to even,
/// from the exact sum of its windows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ImpactSummary {
    /// Estimated loss so far, over the closed windows.
    pub loss: Amount,
    /// The newest closed window's loss, per hour, while the incident is losing: zero once it
    /// has recovered or resolved.
    pub loss_per_hour: Amount,
    /// `loss_per_hour × 24 × duration_factor` (zero likewise).
    pub daily_projection: Amount,
    /// Half-width of the uncertainty band on `loss`, from the baseline's own noise (2σ).
    pub band: Amount,
    /// The loss is no larger than the band: it may be noise.
    pub within_noise: bool,
    /// Orders lost (a statistic, to a millionth).
    pub orders_lost: f64,
    /// Shoppers who reached the stage in windows that booked a loss.
    pub shoppers_affected: f64,
    /// The AOV of the newest minute, and where it came from (`config`, `measured_segment`,
    /// `measured_funnel`).
    pub aov: Amount,
    pub aov_source: String,
    pub duration_factor: f64,
    pub window_minutes: u32,
    pub n_windows: u64,
    pub n_windows_booked: u64,
    /// Why the booking stopped (`overflow`, ...); absent while it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One closed window of an incident's impact, with every input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ImpactWindow {
    pub from: String,
    pub to: String,
    pub minutes: u32,
    /// Shoppers who reached the stage.
    pub shoppers: f64,
    /// Of them, how many went on to the next stage.
    pub went_on: f64,
    pub baseline_drop_off: f64,
    pub observed_drop_off: f64,
    /// Baseline chance that a shopper at the next stage orders.
    pub downstream_conversion: f64,
    /// σ of the window's drop-off rate.
    pub window_sd: f64,
    /// `max(0, (observed − baseline) × shoppers × downstream_conversion)`, in millionths of
    /// an order (per minute, summed).
    pub lost_micro_orders: i64,
    pub aov_minor: i64,
    /// `lost_micro_orders × aov_minor`, exact, as a decimal string (it may exceed 2^53).
    pub loss_micro_minor: String,
    /// σ of the window's lost orders.
    pub sd_orders: f64,
}

/// `GET /api/v1/incidents/{id}/impact`: the figures and the newest windows with their inputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct IncidentImpact {
    pub id: u64,
    pub false_alarm: bool,
    /// `null` until the incident's first priced minute.
    pub impact: Option<ImpactSummary>,
    /// Σ over every closed window of `loss_micro_minor`, exact; `loss` is it divided by a
    /// million, rounded half to even.
    pub loss_micro_minor: Option<String>,
    pub rounding: String,
    /// The newest windows, oldest first: at most `limit` of them.
    pub windows: Vec<ImpactWindow>,
    /// Closed windows older than those listed (their sum is in the totals).
    pub windows_omitted: u64,
    /// The impact inputs as canonical JSON text, as the ledger links them.
    pub inputs_json: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SlaClocks {
    pub response: SlaClock,
    pub resolution: SlaClock,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SlaClock {
    pub state: SlaState,
    pub due: String,
    pub met_at: Option<String>,
    /// While running: milliseconds left (negative once overdue but not yet breached).
    pub remaining_ms: Option<i64>,
}

/// Milliseconds from opening to each milestone reached.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ResponseTimes {
    pub to_acknowledge_ms: Option<i64>,
    pub to_mitigate_ms: Option<i64>,
    pub to_resolve_ms: Option<i64>,
}

/// `GET /api/v1/incidents/{id}`, and the reply to every action: the incident in full.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Incident {
    #[serde(flatten)]
    pub summary: IncidentSummary,
    pub escalation: Escalation,
    pub criteria: Vec<Criterion>,
    pub alerts: Vec<AlertLink>,
    /// The stage and segment as a responder judged them.
    pub scope: Option<Scope>,
    /// Every breach, including those of clocks a reopen has since restarted.
    pub sla_breaches: Vec<SlaBreach>,
    pub root_cause: Option<String>,
    pub mitigations: Vec<MitigationEntry>,
    pub action_items: Vec<ActionItem>,
    pub checklist: Vec<ChecklistItem>,
    /// Changes that may explain it, most suspect first.
    pub suspects: Vec<Suspect>,
    /// Technical signals (Alertmanager alerts, PagerDuty-style events) that overlap it in time,
    /// and in funnel and stage where they name one: suspects of another kind, latest start
    /// first. Each is also listed under the checklist's technical items it speaks to. Absent
    /// when none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signals: Vec<Signal>,
    pub timeline: Vec<TimelineEntry>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Escalation {
    /// The level paged next (`L2`, ...); `null` once escalation has stopped.
    pub next_level: Option<String>,
    pub next_at: Option<String>,
    pub repeats: u32,
}

/// One resolution criterion and whether it holds now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Criterion {
    /// `within_2_sigma`, `quiet`, `root_cause`, ...
    pub name: String,
    pub holds: bool,
    pub detail: String,
}

/// An alert grouped into the incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AlertLink {
    /// Sixteen hex digits, as the alerts API writes them.
    pub alert_id: String,
    pub open: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Scope {
    pub stage: String,
    pub segment: Option<Segment>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SlaBreach {
    pub at: String,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MitigationEntry {
    pub mitigation: Mitigation,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ActionItem {
    pub text: String,
    pub owner: String,
    pub due: String,
    pub added_by: String,
    pub added_at: String,
}

/// One item of the root-cause checklist; the three last fields are set once it is ticked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChecklistItem {
    pub index: usize,
    pub category: String,
    pub item: String,
    pub checked_by: Option<String>,
    pub checked_at: Option<String>,
    pub finding: Option<String>,
    /// The ids of the incident's `signals` under this item (technical items only); absent
    /// when none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signals: Vec<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Suspect {
    /// Proximity times overlap, to three decimals.
    pub score: f64,
    /// How long before the onset the change took effect (negative: after it).
    pub before_onset_ms: i64,
    pub reasons: Vec<String>,
    pub change: Change,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TimelineEntry {
    pub at: String,
    /// A responder's token name, or `revloop` for the engine itself.
    pub actor: String,
    pub kind: TimelineKind,
    pub text: String,
}

/// The body of `POST /api/v1/incidents`: a responder declares an incident by hand. The reply
/// (201) is the incident in full, as `GET /api/v1/incidents/{id}` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewIncident {
    /// A configured funnel's id.
    pub funnel: String,
    /// A stage of that funnel.
    pub stage: String,
    pub severity: Severity,
    /// What the responder sees, one line (at most 1,024 bytes).
    pub summary: String,
    /// One segment affected; every shopper when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment: Option<Segment>,
}
