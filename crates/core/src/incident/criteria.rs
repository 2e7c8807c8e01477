//! When an incident may be resolved: the trend of its series' deviation and the runbook's
//! resolution criteria per severity. Read-only: it judges an incident and never changes one.

use super::policy::IncidentPolicy;
use super::record::{Incident, IncidentSeverity};
use crate::time::{DurationMs, MS_PER_HOUR, Timestamp};

/// How the deviation of an incident's series is moving, from the last measurements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trend {
    Increasing,
    Stable,
    Decreasing,
}

impl Trend {
    pub fn as_str(self) -> &'static str {
        match self {
            Trend::Increasing => "increasing",
            Trend::Stable => "stable",
            Trend::Decreasing => "decreasing",
        }
    }
}

/// One resolution criterion and whether it holds now.
#[derive(Debug, Clone, PartialEq)]
pub struct Criterion {
    pub name: &'static str,
    pub holds: bool,
    pub detail: String,
}

impl Incident {
    /// The trend of the series' deviation over the measurements of the last hour: the
    /// least-squares slope in σ per hour, moving where it is beyond ±1σ an hour and 2.5 times its
    /// standard error (so noise is stable, not a trend). Without recent
    /// measurements (a series too thin to judge), stable while an alert is open, else
    /// decreasing.
    pub fn trend(&self, now: Timestamp) -> Trend {
        let recent = now.saturating_sub(TREND_WINDOW);
        let points: Vec<(Timestamp, f64)> = self
            .measurements
            .iter()
            .filter(|(at, _)| *at > recent)
            .copied()
            .collect();
        let points = &points;
        if points.len() < 3 {
            return if self.alerts.values().any(|open| *open) {
                Trend::Stable
            } else {
                Trend::Decreasing
            };
        }
        let t0 = points[0].0.millis() as f64;
        let n = points.len() as f64;
        let xs: Vec<f64> = points
            .iter()
            .map(|(t, _)| (t.millis() as f64 - t0) / MS_PER_HOUR as f64)
            .collect();
        let mean_x = xs.iter().sum::<f64>() / n;
        let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n;
        let sxx: f64 = xs.iter().map(|x| (x - mean_x) * (x - mean_x)).sum();
        let sxy: f64 = xs
            .iter()
            .zip(points)
            .map(|(x, p)| (x - mean_x) * (p.1 - mean_y))
            .sum();
        if sxx <= 0.0 {
            return Trend::Stable;
        }
        let slope = sxy / sxx;
        // Its standard error, from the residuals. Measurements a minute apart over windows of
        // several minutes overlap, so they count as one per `TREND_OVERLAP_MINUTES`.
        let residual_ss: f64 = xs
            .iter()
            .zip(points)
            .map(|(x, p)| {
                let fitted = mean_y + slope * (x - mean_x);
                (p.1 - fitted) * (p.1 - fitted)
            })
            .sum();
        let residual_sd = (residual_ss / (n - 2.0).max(1.0)).sqrt();
        let standard_error = residual_sd / sxx.sqrt() * TREND_OVERLAP_MINUTES.sqrt();
        let moving = slope.abs() > TREND_SIGMA_PER_HOUR
            && slope.abs() > TREND_STANDARD_ERRORS * standard_error;
        match (moving, slope > 0.0) {
            (true, true) => Trend::Increasing,
            (true, false) => Trend::Decreasing,
            (false, _) => Trend::Stable,
        }
    }

    /// The runbook's resolution criteria for this incident's severity, now.
    pub fn criteria(&self, policy: &IncidentPolicy, now: Timestamp) -> Vec<Criterion> {
        let all_closed = self.alerts.values().all(|open| !open);
        let open_alerts = self.alerts.values().filter(|open| **open).count();
        if self.is_guard() {
            // revloop's own blindness: there is no metric to recover, no quiet period to
            // wait for and no root cause to ask before judging resumes; it resumed is all.
            return vec![Criterion {
                name: "judging",
                holds: all_closed,
                detail: if all_closed {
                    "revloop judges again".into()
                } else {
                    format!(
                        "revloop still cannot judge: {}",
                        self.guard_reason.as_deref().unwrap_or("no reason recorded")
                    )
                },
            }];
        }
        let mut criteria = self.severity_criteria(policy, now, all_closed, open_alerts);
        // A declared incident's severity criteria can hold without anyone doing anything (no
        // alert to close, a flat series): the responder who saw what the detector did not must
        // say what it was. A P1 asks for its root cause already.
        if self.is_declared() && !criteria.iter().any(|c| c.name == "root_cause") {
            criteria.push(root_cause(self));
        }
        criteria
    }

    /// The runbook's criteria for the incident's severity.
    fn severity_criteria(
        &self,
        policy: &IncidentPolicy,
        now: Timestamp,
        all_closed: bool,
        open_alerts: usize,
    ) -> Vec<Criterion> {
        match self.severity {
            IncidentSeverity::P1 => {
                let quiet_since = now.since(self.last_alert_at).floor_to_minute();
                vec![
                    Criterion {
                        name: "within_2_sigma",
                        holds: all_closed,
                        detail: if all_closed {
                            "drop-off is back within 2σ of baseline".into()
                        } else {
                            format!("{open_alerts} related alert(s) still open")
                        },
                    },
                    Criterion {
                        name: "quiet",
                        holds: quiet_since >= policy.p1_quiet_for,
                        detail: format!(
                            "quiet for {} since the last related alert (needs {})",
                            quiet_since, policy.p1_quiet_for
                        ),
                    },
                    root_cause(self),
                ]
            }
            IncidentSeverity::P2 | IncidentSeverity::P3 => {
                let trend = self.trend(now);
                let stable_for = now.since(self.severity_since).floor_to_minute();
                vec![
                    Criterion {
                        name: "trend",
                        holds: trend != Trend::Increasing,
                        detail: format!("the deviation is {}", trend.as_str()),
                    },
                    Criterion {
                        name: "no_escalation",
                        holds: stable_for >= policy.p2_stable_for,
                        detail: format!(
                            "no escalation to P1 (or reopening) for {} (needs {})",
                            stable_for, policy.p2_stable_for
                        ),
                    },
                ]
            }
        }
    }
}

fn root_cause(incident: &Incident) -> Criterion {
    Criterion {
        name: "root_cause",
        holds: incident.root_cause.is_some(),
        detail: if incident.root_cause.is_some() {
            "root cause recorded".into()
        } else {
            "no root cause recorded yet".into()
        },
    }
}

/// Measurements whose windows overlap count as one per this many minutes, for the trend's
/// standard error (the detector's window is five minutes by default).
const TREND_OVERLAP_MINUTES: f64 = 5.0;
/// How many standard errors a slope must be to count as moving (about 3% of noise-only hours
/// read as a trend, with the few independent windows an hour holds).
const TREND_STANDARD_ERRORS: f64 = 2.5;
/// How far back the trend looks.
const TREND_WINDOW: DurationMs = DurationMs::from_hours(1);
/// Slope of the deviation, in σ per hour, beyond which a trend is rising or falling.
const TREND_SIGMA_PER_HOUR: f64 = 1.0;
