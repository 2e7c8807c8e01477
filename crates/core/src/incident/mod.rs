//! Incidents: the runbook's response to alerts, as a state machine driven by explicit time.
//!
//! An [`IncidentEngine`] takes inputs with their time (`handle_alert`, `handle_action`,
//! `handle_measurement`, `handle_timeout`), appends every step to the incident's timeline, and
//! queues [`Effect`]s (notify someone, an SLA breached) for the caller to drain with
//! `poll_effect`. `poll_timeout` says when it next needs to wake. It does no IO and reads no
//! clock, so tests drive it on a virtual clock and jump straight to the next deadline, and a
//! restart is a snapshot of its state (it is `Clone` and holds only plain data) fed the same
//! inputs.
//!
//! The rules, from the runbook:
//!
//! - Related alerts (same funnel and stage, or same segment of the funnel) group into one
//!   incident; an alert that returns
//!   within `flap_hold` of its incident resolving reopens it instead of opening another.
//! - States: triggered → acknowledged → mitigated → resolved, with reopen. Acknowledging stops
//!   escalation: nothing pages after an ack (unless `ack_timeout` is set and runs out).
//! - Escalation walks the severity's levels (L1 on-call, L2 engineering manager, L3 VP,
//!   executive), each notified when the level before has not acknowledged within its window.
//! - SLAs per severity (response and resolution); each breach is recorded once.
//! - A P2 whose alert is upgraded becomes P1, with the evidence; severity never falls silently.
//! - When revloop itself cannot judge a funnel for longer than a configured time (the dead
//!   man's switch, `guard`), that opens a P1 guard incident of its own kind, at most one per
//!   funnel and one for causes that blind every funnel; it resolves when judging resumes.
//! - Recovery: an open incident whose every alert has closed, with its drop-off back within
//!   2σ, reads recovered and stops escalating; it still needs its root cause to resolve, and
//!   its owner is reminded at most once a day. The problem returning resumes escalation.
//! - Resolution criteria are checked on every input and timeout: for P1, drop-off back within
//!   2σ (every related alert closed), no related alert for 2 hours after that, a root cause
//!   recorded;
//!   for P2, the trend stable or improving and no escalation to P1 for 4 hours.
//!
//! - Everyone an incident paged is told when it is acknowledged and when it resolves
//!   (`Effect::Acknowledged`, `Effect::Resolved`); every effect carries a [`Brief`] of it.
//! - A responder may declare an incident by hand (`declare`), which walks the same path; the
//!   deliverer may report a level unreachable (`handle_unreachable`), which pages the next
//!   level at once.
//!
//! The module is split by concern, each re-exported here: `policy` (what the runbook says, per
//! severity), `record` (one incident and its history), `action` (what a responder may do, the
//! checks on it and its effect on one incident), `criteria` (the trend and the resolution
//! criteria), `escalation` (the rules that raise, lower, resolve and page, and the SLA
//! clocks, failover, and who is told of an ack or an end), `brief` (the incident in brief, for
//! receivers), `guard` (the dead man's switch's rule), `silences`, `report` (statistics over
//! many incidents) and `engine` (the state machine that ties them together, with
//! `engine::declare` for declarations and failover). It never reads the configuration: the configuration
//! parses into these types and builds the engine from them.

mod action;
mod brief;
mod criteria;
mod engine;
mod escalation;
mod guard;
mod policy;
mod record;
mod recovery;
mod report;
mod silences;
mod surges;

pub use action::{ACTION_ITEMS_MAX, Action, ActionError, TEXT_BYTES_MAX};
pub use brief::Brief;
pub use criteria::{Criterion, Trend};
pub use engine::{
    DECLARED_NAME_BYTES_MAX, DECLARED_SUMMARY_BYTES_MAX, Declaration, DeclareError, EngineMeta,
    IncidentEngine, RESOLVED_KEPT_MAX, TREND_POINTS_MAX,
};
pub use escalation::Effect;
pub use guard::{
    FunnelObservation, GUARD_EVERY_FUNNEL, GUARD_REASON_BYTES_MAX, GUARD_STAGE, GuardEvent,
    GuardStatus, Observations, Watch, WriterObservation, guard_headline,
};
pub use policy::{EmptyLevel, EscalationLevel, IncidentPolicy, REPEATS_MAX, SeverityPolicy};
pub use record::{
    ActionItem, CHECKLIST, ENGINE_ACTOR, Escalation, Incident, IncidentSeverity, IncidentState,
    Mitigation, Recovery, SlaClock, TIMELINE_ENTRIES_MAX, Tick, TimelineEntry, TimelineKind,
    Unsaved,
};
pub use recovery::{RECOVERED_SIGMA_MAX, RELAPSE_MEASUREMENTS, RELAPSE_SIGMA, REMIND_EVERY};
pub use report::{CensoredSummary, DurationSummary};
pub use silences::{
    ADDED_SILENCE_LENGTH_MAX, ADDED_SILENCES_MAX, AddedSilence, Silence, SilenceError,
};
pub use surges::{
    RecentSurges, SURGE_ATTACH_AFTER_CLOSE, SURGE_CHECKLIST_ITEM, SURGE_INCIDENTS_MAX,
    SURGES_KEPT_MAX, Surge,
};

#[cfg(test)]
mod tests;
