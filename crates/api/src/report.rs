//! `GET /api/v1/incidents/report`: time to acknowledge, mitigate and resolve per severity,
//! over the incidents opened in a range, resolved or still open. Incidents still open count
//! apart in `open_incidents`, and as censored observations ("at least" figures) in `at_least`.

use serde::{Deserialize, Serialize};

use crate::incidents::Severity;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct IncidentReport {
    pub from: String,
    pub to: String,
    pub resolved_incidents: usize,
    /// Incidents opened in the range that are still open at the report's time.
    #[serde(default)]
    pub open_incidents: usize,
    pub severities: ReportSeverities,
    /// Estimated revenue lost by the report's incidents (docs/impact.md); false alarms are
    /// left out. Absent from servers before impact existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss: Option<LossReport>,
}

/// Loss totals: each incident's estimated loss (rounded once) summed, in integer minor units.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LossReport {
    pub currency: String,
    pub total: crate::incidents::Amount,
    /// Incidents whose loss is counted (priced, not false alarms).
    pub incidents_priced: usize,
    /// Incidents resolved as false alarms: their loss is not counted.
    pub false_alarms: usize,
    /// False alarms' estimated loss, counted nowhere else.
    pub false_alarm_loss: crate::incidents::Amount,
    /// Per stage (`funnel/stage`), per segment (`dimension=value`, or `all` for incidents of
    /// the whole funnel) and per month of opening (`YYYY-MM`, UTC); largest first, months in
    /// order.
    pub by_stage: Vec<LossTotal>,
    pub by_segment: Vec<LossTotal>,
    pub by_month: Vec<LossTotal>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LossTotal {
    pub key: String,
    pub incidents: usize,
    pub loss: crate::incidents::Amount,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReportSeverities {
    #[serde(rename = "P1")]
    pub p1: SeverityReport,
    #[serde(rename = "P2")]
    pub p2: SeverityReport,
    #[serde(rename = "P3")]
    pub p3: SeverityReport,
}

impl ReportSeverities {
    pub fn of(&self, severity: Severity) -> &SeverityReport {
        match severity {
            Severity::P1 => &self.p1,
            Severity::P2 => &self.p2,
            Severity::P3 => &self.p3,
        }
    }
}

/// One severity's row; a summary is `null` when no incident reached that milestone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SeverityReport {
    /// Incidents opened in the range, resolved or still open.
    pub incidents: usize,
    /// Of those, still open.
    #[serde(default)]
    pub open: usize,
    /// Over the incidents that reached the milestone, open or resolved.
    pub to_acknowledge: Option<DurationSummary>,
    pub to_mitigate: Option<DurationSummary>,
    pub to_resolve: Option<DurationSummary>,
    /// The same milestones with the open incidents that have not reached them counted as
    /// censored: at the time they have waited so far. Every figure is a lower bound.
    #[serde(default)]
    pub at_least: CensoredMilestones,
}

/// Per milestone, the "at least" spread; `null` when there is no incident to count.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CensoredMilestones {
    pub to_acknowledge: Option<CensoredSummary>,
    pub to_mitigate: Option<CensoredSummary>,
    pub to_resolve: Option<CensoredSummary>,
}

/// A spread over incidents that reached a milestone and open ones still waiting for it, each
/// waiting one counted at the time it has waited so far: the true figures are at least these.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CensoredSummary {
    pub reached: usize,
    /// Still open and not reached yet (censored).
    pub waiting: usize,
    pub mean_ms_at_least: i64,
    pub median_ms_at_least: i64,
    pub p90_ms_at_least: i64,
    pub max_ms_at_least: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DurationSummary {
    pub count: usize,
    pub mean_ms: i64,
    pub median_ms: i64,
    pub p90_ms: i64,
    pub max_ms: i64,
}
