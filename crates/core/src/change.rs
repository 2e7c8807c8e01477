//! Changes to the shop, and which of them may explain an incident.
//!
//! The runbook's INVESTIGATE step starts with "review recent deployments and changes". Changes
//! are recorded as they happen (deploys, experiments, prices, the payment processor, the CDN);
//! an incident ranks the ones from the 24 hours before its onset by how close in time they are
//! and by how much they overlap its stage and segment. The ranking explains itself: every
//! suspect carries the reasons for its score.

use crate::time::{DurationMs, MS_PER_HOUR, Timestamp};

/// How far before an incident's onset a change is a suspect.
pub const SUSPECT_LOOKBACK: DurationMs = DurationMs::from_hours(24);
/// How far after the estimated onset a change is still a suspect: the onset is estimated from
/// per-minute windows and can be a few minutes early.
pub const SUSPECT_GRACE: DurationMs = DurationMs::from_minutes(10);
/// Most suspects listed per incident.
pub const SUSPECTS_MAX: usize = 10;
/// A change's time score halves with every this much between it and the onset.
const PROXIMITY_HALF_LIFE_MS: f64 = 2.0 * MS_PER_HOUR as f64;

/// What kind of change. The names are the API's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChangeKind {
    Deploy,
    ExperimentStart,
    ExperimentStop,
    Pricing,
    Promotion,
    PaymentProcessor,
    Cdn,
    Infrastructure,
    Config,
    Other,
}

impl ChangeKind {
    pub const ALL: [ChangeKind; 10] = [
        ChangeKind::Deploy,
        ChangeKind::ExperimentStart,
        ChangeKind::ExperimentStop,
        ChangeKind::Pricing,
        ChangeKind::Promotion,
        ChangeKind::PaymentProcessor,
        ChangeKind::Cdn,
        ChangeKind::Infrastructure,
        ChangeKind::Config,
        ChangeKind::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Deploy => "deploy",
            ChangeKind::ExperimentStart => "experiment_start",
            ChangeKind::ExperimentStop => "experiment_stop",
            ChangeKind::Pricing => "pricing",
            ChangeKind::Promotion => "promotion",
            ChangeKind::PaymentProcessor => "payment_processor",
            ChangeKind::Cdn => "cdn",
            ChangeKind::Infrastructure => "infrastructure",
            ChangeKind::Config => "config",
            ChangeKind::Other => "other",
        }
    }

    pub fn parse(text: &str) -> Option<ChangeKind> {
        ChangeKind::ALL.into_iter().find(|k| k.as_str() == text)
    }
}

/// A change as the ranking sees it. `None` scopes mean "the whole shop".
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub id: i64,
    pub at: Timestamp,
    pub kind: ChangeKind,
    pub funnel: Option<String>,
    pub stage: Option<String>,
    pub segment: Option<(String, String)>,
}

/// What went wrong, as the ranking needs it.
#[derive(Debug, Clone, Copy)]
pub struct Affected<'a> {
    pub funnel: &'a str,
    pub stage: &'a str,
    pub segment: Option<(&'a str, &'a str)>,
    pub onset: Timestamp,
}

/// A change that may explain an incident.
#[derive(Debug, Clone, PartialEq)]
pub struct Suspect {
    pub change_id: i64,
    /// In (0, 1.5]: proximity times overlap. Higher is more suspect.
    pub score: f64,
    /// How long before the onset the change took effect (negative: after it).
    pub before_onset: DurationMs,
    pub reasons: Vec<String>,
}

/// The changes that may explain what went wrong, most suspect first: those from
/// [`SUSPECT_LOOKBACK`] before the onset to [`SUSPECT_GRACE`] after it, scored by time
/// proximity (halving every 2 hours) times scope overlap (stage and segment).
pub fn rank_suspects(affected: Affected<'_>, changes: &[Change]) -> Vec<Suspect> {
    let mut suspects: Vec<Suspect> = changes
        .iter()
        .filter(|c| {
            let before = affected.onset.since(c.at);
            before <= SUSPECT_LOOKBACK && before >= SUSPECT_GRACE.negated()
        })
        .filter_map(|c| suspect(affected, c))
        .collect();
    suspects.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then(a.before_onset.cmp(&b.before_onset))
            .then(b.change_id.cmp(&a.change_id))
    });
    suspects.truncate(SUSPECTS_MAX);
    suspects
}

fn suspect(affected: Affected<'_>, change: &Change) -> Option<Suspect> {
    let before = affected.onset.since(change.at);
    let mut reasons = Vec::new();
    let proximity = 0.5_f64.powf(before.millis().max(0) as f64 / PROXIMITY_HALF_LIFE_MS);
    reasons.push(if before >= DurationMs::ZERO {
        format!("{before} before the onset")
    } else {
        format!("{} after the estimated onset", before.negated())
    });
    let mut overlap = 1.0;
    match &change.funnel {
        Some(funnel) if funnel != affected.funnel => return None,
        Some(_) => reasons.push("same funnel".into()),
        None => {}
    }
    match &change.stage {
        Some(stage) if stage == affected.stage => reasons.push(format!("at stage {stage}")),
        Some(stage) => {
            overlap *= 0.25;
            reasons.push(format!("at another stage ({stage})"));
        }
        None => {
            overlap *= 0.6;
            reasons.push("shop-wide".into());
        }
    }
    match (&change.segment, affected.segment) {
        (Some((d, v)), Some((ad, av))) if d == ad && v == av => {
            overlap *= 1.5;
            reasons.push(format!("same segment ({d} = {v})"));
        }
        (Some((d, v)), Some(_)) => {
            overlap *= 0.3;
            reasons.push(format!("another segment ({d} = {v})"));
        }
        (Some((d, v)), None) => {
            overlap *= 0.8;
            reasons.push(format!("only {d} = {v}, the incident is every shopper"));
        }
        (None, _) => {}
    }
    Some(Suspect {
        change_id: change.id,
        score: proximity * overlap,
        before_onset: before,
        reasons,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONSET: Timestamp = Timestamp::from_millis(1_795_773_600_000);

    fn change(id: i64, minutes_before: i64, stage: Option<&str>) -> Change {
        Change {
            id,
            at: ONSET.saturating_sub(DurationMs::from_minutes(minutes_before)),
            kind: ChangeKind::Deploy,
            funnel: None,
            stage: stage.map(str::to_owned),
            segment: None,
        }
    }

    fn affected(segment: Option<(&'static str, &'static str)>) -> Affected<'static> {
        Affected {
            funnel: "checkout",
            stage: "payment",
            segment,
            onset: ONSET,
        }
    }

    fn ids(suspects: &[Suspect]) -> Vec<i64> {
        suspects.iter().map(|s| s.change_id).collect()
    }

    #[test]
    fn only_changes_from_the_day_before_the_onset_are_suspects() {
        let changes = [
            change(1, 25 * 60, None),
            change(2, 23 * 60, None),
            change(3, 5, None),
            change(4, -5, None),
            change(5, -30, None),
        ];
        let suspects = rank_suspects(affected(None), &changes);
        assert_eq!(ids(&suspects), [4, 3, 2]);
        assert!(suspects[0].reasons[0].contains("after the estimated onset"));
    }

    #[test]
    fn closer_changes_and_overlapping_scopes_rank_first() {
        let changes = [
            change(1, 10, Some("cart")),
            change(2, 60, Some("payment")),
            change(3, 30, None),
            change(4, 120, Some("payment")),
        ];
        let suspects = rank_suspects(affected(None), &changes);
        // 2: 0.71 × 1; 3: 0.84 × 0.6 = 0.50; 4: 0.5 × 1; 1: 0.94 × 0.25.
        assert_eq!(ids(&suspects), [2, 3, 4, 1]);
        assert!(suspects[0].reasons.iter().any(|r| r == "at stage payment"));
    }

    #[test]
    fn segments_and_funnels_narrow_the_suspects() {
        let scoped = |id, funnel: Option<&str>, segment: Option<(&str, &str)>| Change {
            funnel: funnel.map(str::to_owned),
            segment: segment.map(|(d, v)| (d.to_owned(), v.to_owned())),
            ..change(id, 20, Some("payment"))
        };
        let changes = [
            scoped(1, Some("b2b"), None),
            scoped(2, Some("checkout"), Some(("device", "desktop"))),
            scoped(3, None, Some(("device", "mobile"))),
            scoped(4, None, None),
        ];
        let suspects = rank_suspects(affected(Some(("device", "mobile"))), &changes);
        assert_eq!(ids(&suspects), [3, 4, 2]);
        assert!(suspects[0].score > 1.0);
        // For every shopper, a segment's change counts less; 2 and 3 tie, the newer first.
        let whole = rank_suspects(affected(None), &changes);
        assert_eq!(ids(&whole), [4, 3, 2]);
    }

    #[test]
    fn the_list_is_bounded() {
        let changes: Vec<Change> = (0..50).map(|i| change(i, i * 10, None)).collect();
        assert_eq!(rank_suspects(affected(None), &changes).len(), SUSPECTS_MAX);
    }
}
