//! Incidents a responder raises by hand ([`IncidentEngine::declare`]), and failover
//! ([`IncidentEngine::handle_unreachable`]): the two inputs that come from people and from the
//! deliverer rather than from the detector. A child of `engine`, so that they open and page
//! through the engine's own path.

use super::{IncidentEngine, Opening};
use crate::alert::AlertKind;
use crate::incident::escalation::fail_over;
use crate::incident::record::IncidentSeverity;
use crate::time::Timestamp;

/// Longest summary of a declared incident, in bytes: one line for the page's reader, not a
/// report (notes and the root cause take the rest).
pub const DECLARED_SUMMARY_BYTES_MAX: usize = 1_024;
/// Longest funnel, stage, dimension or value named by a declaration, in bytes.
pub const DECLARED_NAME_BYTES_MAX: usize = 256;

/// What a responder declares: where the problem is, how bad, and what they see.
#[derive(Debug, Clone, PartialEq)]
pub struct Declaration {
    pub funnel: String,
    pub stage: String,
    /// `(dimension, value)` when one segment is affected; `None`: every shopper.
    pub segment: Option<(String, String)>,
    pub severity: IncidentSeverity,
    /// What they see, one line.
    pub summary: String,
}

/// Why a declaration was refused. Nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeclareError {
    #[error("{field} must not be empty")]
    Empty { field: &'static str },
    #[error("{field} is longer than {max} bytes")]
    TooLong { field: &'static str, max: usize },
    #[error("incident {0} is already open for this funnel and stage")]
    AnotherIsOpen(u64),
}

impl IncidentEngine {
    /// Opens an incident by hand, at `now`, by `actor`, and returns its id. It walks the path
    /// of a detected one: its severity's SLAs and escalation (L1 paged at once, unless a
    /// silence covers it), related alerts of its stage attach to it, and it resolves by its
    /// severity's criteria plus a root cause (`criteria`). Refused when an open incident
    /// already holds the funnel and stage: a second would split the response.
    pub fn declare(
        &mut self,
        now: Timestamp,
        declaration: &Declaration,
        actor: &str,
    ) -> Result<u64, DeclareError> {
        check_declaration(declaration, actor)?;
        if let Some(open) = self
            .incidents
            .values()
            .find(|i| i.is_open() && i.funnel == declaration.funnel && i.stage == declaration.stage)
        {
            return Err(DeclareError::AnotherIsOpen(open.id));
        }
        let severity = declaration.severity;
        let text = format!(
            "{} declared by {actor} on {} ({}): {}",
            severity.as_str(),
            declaration.stage,
            declaration
                .segment
                .as_ref()
                .map_or("every shopper".to_owned(), |(d, v)| format!("{d} = {v}")),
            declaration.summary.trim()
        );
        let opening = Opening {
            funnel: &declaration.funnel,
            stage: &declaration.stage,
            kind: AlertKind::Declared,
            segment: declaration.segment.clone(),
            severity,
            onset: now,
            actor,
        };
        let id = self.open_incident(now, opening, text);
        if let Some(incident) = self.incidents.get_mut(&id) {
            // Before `evaluate` pages L1: the page carries it.
            incident.declared_summary = Some(declaration.summary.trim().to_owned());
        }
        self.evaluate(now);
        Ok(id)
    }

    /// The deliverer's report that nobody at `level` could be reached about incident `id`
    /// (every delivery of its page failed): if the incident still waits on that level (the
    /// last it paged, triggered, not recovered, the next level's window still running), the
    /// next level is paged now. Returns whether it paged; anything else (acknowledged,
    /// escalated past it, an unknown incident or level, the path's end) changes nothing, so
    /// the report is idempotent. Timers due at `now` fire after it.
    pub fn handle_unreachable(&mut self, now: Timestamp, id: u64, level: &str) -> bool {
        let paged = match self.incidents.get_mut(&id) {
            Some(incident) => fail_over(incident, &self.policy, level, now, &mut self.outbox),
            None => false,
        };
        self.evaluate(now);
        paged
    }
}

fn check_declaration(declaration: &Declaration, actor: &str) -> Result<(), DeclareError> {
    let names = [
        ("funnel", declaration.funnel.as_str()),
        ("stage", declaration.stage.as_str()),
        ("actor", actor),
    ]
    .into_iter()
    .chain(declaration.segment.iter().flat_map(|(dimension, value)| {
        [
            ("segment.dimension", dimension.as_str()),
            ("segment.value", value.as_str()),
        ]
    }));
    for (field, name) in names {
        if name.trim().is_empty() {
            return Err(DeclareError::Empty { field });
        }
        if name.len() > DECLARED_NAME_BYTES_MAX {
            return Err(DeclareError::TooLong {
                field,
                max: DECLARED_NAME_BYTES_MAX,
            });
        }
    }
    if declaration.summary.trim().is_empty() {
        return Err(DeclareError::Empty { field: "summary" });
    }
    if declaration.summary.len() > DECLARED_SUMMARY_BYTES_MAX {
        return Err(DeclareError::TooLong {
            field: "summary",
            max: DECLARED_SUMMARY_BYTES_MAX,
        });
    }
    Ok(())
}
