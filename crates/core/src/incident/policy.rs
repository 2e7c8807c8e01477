//! The incident policy: SLAs, escalation paths and resolution rules per severity, with the
//! runbook's numbers as the default. Plain data: it decides nothing by itself and never reads
//! the configuration (the configuration parses into it).

use super::record::IncidentSeverity;
use crate::time::DurationMs;

/// Most times the last escalation level is paged again.
pub const REPEATS_MAX: u32 = 10;

/// One level of an escalation path.
#[derive(Debug, Clone, PartialEq)]
pub struct EscalationLevel {
    /// "L1", "L2", ...
    pub name: String,
    /// Who is paged: people, rotations or channels, as the notifier understands them.
    pub targets: Vec<String>,
    /// How long this level has to acknowledge before the next is paged.
    pub respond_within: DurationMs,
}

/// Per severity: how long to respond and resolve, and who is paged in what order.
#[derive(Debug, Clone, PartialEq)]
pub struct SeverityPolicy {
    pub response: DurationMs,
    pub resolution: DurationMs,
    /// How often stakeholders are updated while the incident is open (the runbook's
    /// notification column); `None` for a daily summary only.
    pub update_every: Option<DurationMs>,
    /// Empty: this severity pages nobody.
    pub levels: Vec<EscalationLevel>,
    /// After the last level's window, page it again this often (at most `REPEATS_MAX` times);
    /// `None` pages it once.
    pub repeat_every: Option<DurationMs>,
    /// What a level with nobody to page does.
    pub empty_level: EmptyLevel,
}

/// What an escalation level with no targets does (a rota not yet staffed, a role vacant).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmptyLevel {
    /// Go on to the next level at once: nobody waits on a level that cannot answer.
    Skip,
    /// Keep the level's window before going on, as if it had been paged.
    Wait,
}

/// What the engine does and when; the runbook's numbers by default.
#[derive(Debug, Clone, PartialEq)]
pub struct IncidentPolicy {
    /// Indexed by `IncidentSeverity`: P1, P2, P3.
    pub severities: [SeverityPolicy; 3],
    /// An alert that returns within this long of its incident resolving reopens it.
    pub flap_hold: DurationMs,
    /// P1 resolution: no new related alert for this long.
    pub p1_quiet_for: DurationMs,
    /// P2 resolution: no escalation to P1 for this long.
    pub p2_stable_for: DurationMs,
    /// Resolve by itself when every criterion holds; otherwise prompt once.
    pub auto_resolve: bool,
    /// An acknowledged incident that is neither mitigated nor resolved after this long goes
    /// back to triggered and escalates again. `None`: an ack stops escalation for good.
    pub ack_timeout: Option<DurationMs>,
    /// A surge of entries (more shoppers arriving) opens an incident and pages like any
    /// alert. `false` (the default): a surge is recorded and attached to the incidents it
    /// overlaps as an external factor, but pages nobody, since more shoppers is not lost
    /// revenue (the runbook lists campaign spikes as a cause to check, not as an incident).
    pub page_on_surge: bool,
}

impl IncidentPolicy {
    /// The runbook's table: P1 respond in 15 min, resolve in 1 h, update every 30 min; P2 in
    /// 1 h and 4 h, every 30 min; P3 in 4 h and 24 h, daily. Escalation L1 (15 min) → L2 (30
    /// min) → L3 (1 h) → executive (2 h) for P1; L1 (1 h) → L2 (4 h) for P2.
    pub fn runbook() -> IncidentPolicy {
        let level = |name: &str, target: &str, minutes: i64| EscalationLevel {
            name: name.to_owned(),
            targets: vec![target.to_owned()],
            respond_within: DurationMs::from_minutes(minutes),
        };
        IncidentPolicy {
            severities: [
                SeverityPolicy {
                    response: DurationMs::from_minutes(15),
                    resolution: DurationMs::from_hours(1),
                    update_every: Some(DurationMs::from_minutes(30)),
                    levels: vec![
                        level("L1", "on-call engineer", 15),
                        level("L2", "engineering manager", 30),
                        level("L3", "VP engineering", 60),
                        level("executive", "CTO", 120),
                    ],
                    repeat_every: Some(DurationMs::from_hours(2)),
                    empty_level: EmptyLevel::Skip,
                },
                SeverityPolicy {
                    response: DurationMs::from_hours(1),
                    resolution: DurationMs::from_hours(4),
                    update_every: Some(DurationMs::from_minutes(30)),
                    levels: vec![
                        level("L1", "on-call engineer", 60),
                        level("L2", "engineering manager", 240),
                    ],
                    repeat_every: None,
                    empty_level: EmptyLevel::Skip,
                },
                SeverityPolicy {
                    response: DurationMs::from_hours(4),
                    resolution: DurationMs::from_hours(24),
                    update_every: None,
                    levels: Vec::new(),
                    repeat_every: None,
                    empty_level: EmptyLevel::Skip,
                },
            ],
            flap_hold: DurationMs::from_minutes(30),
            p1_quiet_for: DurationMs::from_hours(2),
            p2_stable_for: DurationMs::from_hours(4),
            auto_resolve: true,
            ack_timeout: None,
            page_on_surge: false,
        }
    }

    /// The SLAs and escalation path of `severity`.
    pub fn for_severity(&self, severity: IncidentSeverity) -> &SeverityPolicy {
        &self.severities[severity.index()]
    }

    /// Every target any escalation level names, each once, sorted: what `[delivery]` must
    /// route.
    pub fn targets(&self) -> Vec<String> {
        let mut targets: Vec<String> = self
            .severities
            .iter()
            .flat_map(|s| s.levels.iter())
            .flat_map(|l| l.targets.iter().cloned())
            .collect();
        targets.sort();
        targets.dedup();
        targets
    }
}
