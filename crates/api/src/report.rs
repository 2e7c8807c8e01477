//! `GET /api/v1/incidents/report`: time to acknowledge, mitigate and resolve per severity,
//! over the resolved incidents opened in a range.

use serde::{Deserialize, Serialize};

use crate::incidents::Severity;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct IncidentReport {
    pub from: String,
    pub to: String,
    pub resolved_incidents: usize,
    pub severities: ReportSeverities,
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
    pub incidents: usize,
    pub to_acknowledge: Option<DurationSummary>,
    pub to_mitigate: Option<DurationSummary>,
    pub to_resolve: Option<DurationSummary>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DurationSummary {
    pub count: usize,
    pub mean_ms: i64,
    pub median_ms: i64,
    pub p90_ms: i64,
    pub max_ms: i64,
}
