//! `revloop incident ...`: a responder's side of the incidents API, from a terminal. Every
//! command is one HTTP request to a running server; the token names who acted on the
//! incident's timeline. Replies are read into their `revloop-api` types and printed as text
//! (or as JSON with `--json`); this module must never parse a reply by hand.

use std::process::ExitCode;
use std::str::FromStr;

use clap::Subcommand;

use revloop_api::Segment;
use revloop_api::actions::{
    ActionItemBody, ChecklistBody, IncidentAction, MitigateBody, ReasonBody, ResolveBody,
    ScopeBody, SeverityBody, TextBody,
};
use revloop_api::incidents::{
    Incident, IncidentList, Mitigation, NewIncident, Severity, StateFilter,
};
use revloop_api::outbox::{OutboxEntry, OutboxPage};
use revloop_api::report::{CensoredSummary, DurationSummary, IncidentReport, SeverityReport};

use crate::remote::{Remote, print_json, segment_arg, show, time_arg, when, with_query};

#[derive(clap::Args, Debug)]
pub struct IncidentArgs {
    #[command(flatten)]
    remote: Remote,
    #[command(subcommand)]
    command: IncidentCommand,
}

#[derive(Subcommand, Debug)]
enum IncidentCommand {
    /// Incidents, newest first.
    List {
        /// open, resolved or all.
        #[arg(long, default_value = "open", value_parser = StateFilter::from_str)]
        state: StateFilter,
        /// Only this funnel's.
        #[arg(long)]
        funnel: Option<String>,
        /// At most this many (up to 200).
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Only incidents with a lower id: the next page.
        #[arg(long)]
        before: Option<u64>,
    },
    /// One incident in full: clocks, criteria, suspects, checklist, timeline.
    Show {
        /// The incident's id (see `list`).
        id: u64,
    },
    /// Declare an incident by hand, before (or without) the detector: it pages and escalates
    /// as a detected one does. Refused while another is open on the same stage.
    Declare {
        /// P1, P2 or P3.
        #[arg(long, value_parser = Severity::parse_loose)]
        severity: Severity,
        /// A configured funnel's id.
        #[arg(long)]
        funnel: String,
        /// A stage of that funnel.
        #[arg(long)]
        stage: String,
        /// What you see, one line (at most 1,024 bytes).
        #[arg(long)]
        summary: String,
        /// dimension=value, e.g. device=mobile, when one segment is affected.
        #[arg(long, value_parser = segment_arg)]
        segment: Option<Segment>,
    },
    /// Acknowledge: stops escalation.
    Ack {
        /// The incident's id.
        id: u64,
        /// Why, for the timeline.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Add a note to the timeline.
    Note {
        /// The incident's id.
        id: u64,
        text: String,
    },
    /// Record the affected stage and, optionally, segment as you judge them.
    Scope {
        /// The incident's id.
        id: u64,
        #[arg(long)]
        stage: String,
        /// dimension=value, e.g. device=mobile.
        #[arg(long, value_parser = segment_arg)]
        segment: Option<Segment>,
        /// Why, for the timeline.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Set the severity (P1, P2, P3); lowering it needs --reason.
    Severity {
        /// The incident's id.
        id: u64,
        #[arg(value_parser = Severity::parse_loose)]
        severity: Severity,
        /// Why; required to lower the severity.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Record a mitigation: traffic_routing, rollback, disable_experiment,
    /// backup_payment_processor, status_banner or other.
    Mitigate {
        /// The incident's id.
        id: u64,
        #[arg(value_parser = Mitigation::from_str)]
        mitigation: Mitigation,
        /// What was done.
        #[arg(long, default_value = "")]
        detail: String,
        /// Why this mitigation, for the timeline.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Record the root cause. For a P1 it is one of the criteria to resolve.
    RootCause {
        /// The incident's id.
        id: u64,
        text: String,
    },
    /// Add an action item with an owner and a due time.
    ActionItem {
        /// The incident's id.
        id: u64,
        text: String,
        #[arg(long)]
        owner: String,
        /// RFC 3339 (2026-12-01T10:00:00Z) or a date (2026-12-01, midnight UTC).
        #[arg(long)]
        due: String,
    },
    /// Tick an item of the root-cause checklist (`show` lists them with their numbers).
    Check {
        /// The incident's id.
        id: u64,
        /// The item's number, 0 to 15.
        index: usize,
        /// What you found.
        #[arg(long, default_value = "")]
        finding: String,
    },
    /// Resolve. Before the runbook's criteria hold (see `show`), --reason is required,
    /// unless it was a false alarm.
    Resolve {
        /// The incident's id.
        id: u64,
        /// Why, for the timeline.
        #[arg(long)]
        reason: Option<String>,
        /// Nothing was wrong: resolve it as a false alarm, whose loss counts in no total.
        #[arg(long)]
        false_alarm: bool,
    },
    /// Reopen a resolved incident: it is triggered again and escalates from L1.
    Reopen {
        /// The incident's id.
        id: u64,
        /// Why, for the timeline.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Time to acknowledge, mitigate and resolve per severity (default: the last 30 days).
    Report {
        /// RFC 3339 or a date (midnight UTC).
        #[arg(long)]
        from: Option<String>,
        /// RFC 3339 or a date (midnight UTC).
        #[arg(long)]
        to: Option<String>,
    },
    /// What the incidents owe the outside (pages, SLA breaches), oldest first.
    Outbox {
        /// Only entries after this id: where the last read stopped.
        #[arg(long, default_value_t = 0)]
        after: i64,
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
}

pub fn run_incident(args: IncidentArgs) -> anyhow::Result<ExitCode> {
    let remote = &args.remote;
    let action = match args.command {
        IncidentCommand::List {
            state,
            funnel,
            limit,
            before,
        } => {
            let mut query = vec![("state", state.to_string()), ("limit", limit.to_string())];
            query.extend(funnel.map(|f| ("funnel", f)));
            query.extend(before.map(|b| ("before", b.to_string())));
            let reply: IncidentList = remote.get(&with_query("/api/v1/incidents", &query))?;
            return show(remote, &reply, print_list);
        }
        IncidentCommand::Show { id } => {
            let reply: Incident = remote.get(&format!("/api/v1/incidents/{id}"))?;
            return show(remote, &reply, print_incident);
        }
        IncidentCommand::Report { from, to } => {
            let mut query = Vec::new();
            query.extend(from.map(|f| ("from", time_arg(&f))));
            query.extend(to.map(|t| ("to", time_arg(&t))));
            let reply: IncidentReport =
                remote.get(&with_query("/api/v1/incidents/report", &query))?;
            return show(remote, &reply, print_report);
        }
        IncidentCommand::Outbox { after, limit } => {
            let query = [("after", after.to_string()), ("limit", limit.to_string())];
            let reply: OutboxPage = remote.get(&with_query("/api/v1/outbox", &query))?;
            return show(remote, &reply, |reply| print_outbox(reply, limit));
        }
        IncidentCommand::Declare {
            severity,
            funnel,
            stage,
            summary,
            segment,
        } => {
            let body = NewIncident {
                funnel,
                stage,
                severity,
                summary,
                segment,
            };
            let reply: Incident = remote.post("/api/v1/incidents", &body)?;
            return show(remote, &reply, print_declared);
        }
        command => action_of(command),
    };
    let Some((id, action)) = action else {
        unreachable!("every other command is an action")
    };
    let reply: Incident = remote.post(
        &format!("/api/v1/incidents/{id}/{}", action.path()),
        &action.body(),
    )?;
    if remote.json {
        print_json(&reply)?;
        return Ok(ExitCode::SUCCESS);
    }
    // What this action wrote, and what the engine did because of it (a page, a resolution):
    // the entries from the last one by this action's kind on.
    let timeline = &reply.timeline;
    let from = timeline
        .iter()
        .rposition(|e| e.kind == action.timeline_kind())
        .unwrap_or(timeline.len().saturating_sub(1));
    let summary = &reply.summary;
    println!(
        "incident {} is {} ({})",
        summary.id, summary.state, summary.severity
    );
    for entry in &timeline[from..] {
        println!("  {}", entry.text);
    }
    Ok(ExitCode::SUCCESS)
}

/// The incident and the action a command asks for; `None` for the commands that only read.
fn action_of(command: IncidentCommand) -> Option<(u64, IncidentAction)> {
    Some(match command {
        IncidentCommand::Ack { id, reason } => {
            (id, IncidentAction::Acknowledge(ReasonBody { reason }))
        }
        IncidentCommand::Note { id, text } => (id, IncidentAction::Note(TextBody { text })),
        IncidentCommand::Scope {
            id,
            stage,
            segment,
            reason,
        } => (
            id,
            IncidentAction::Scope(ScopeBody {
                stage,
                segment,
                reason,
            }),
        ),
        IncidentCommand::Severity {
            id,
            severity,
            reason,
        } => (
            id,
            IncidentAction::Severity(SeverityBody { severity, reason }),
        ),
        IncidentCommand::Mitigate {
            id,
            mitigation,
            detail,
            reason,
        } => (
            id,
            IncidentAction::Mitigate(MitigateBody {
                mitigation,
                detail,
                reason,
            }),
        ),
        IncidentCommand::RootCause { id, text } => {
            (id, IncidentAction::RootCause(TextBody { text }))
        }
        IncidentCommand::ActionItem {
            id,
            text,
            owner,
            due,
        } => (
            id,
            IncidentAction::ActionItem(ActionItemBody {
                text,
                owner,
                due: time_arg(&due),
            }),
        ),
        IncidentCommand::Check { id, index, finding } => (
            id,
            IncidentAction::Checklist(ChecklistBody { index, finding }),
        ),
        IncidentCommand::Resolve {
            id,
            reason,
            false_alarm,
        } => (
            id,
            IncidentAction::Resolve(ResolveBody {
                reason,
                false_alarm,
            }),
        ),
        IncidentCommand::Reopen { id, reason } => {
            (id, IncidentAction::Reopen(ReasonBody { reason }))
        }
        IncidentCommand::List { .. }
        | IncidentCommand::Declare { .. }
        | IncidentCommand::Show { .. }
        | IncidentCommand::Report { .. }
        | IncidentCommand::Outbox { .. } => return None,
    })
}

/// A declared incident: its id, and what opening it did (the first page, or the silence
/// that holds it).
fn print_declared(reply: &Incident) {
    let summary = &reply.summary;
    println!(
        "incident {} declared: {} on {}/{} ({})",
        summary.id, summary.severity, summary.funnel, summary.stage, summary.state
    );
    for entry in &reply.timeline {
        println!("  {}", entry.text);
    }
}

fn print_outbox(reply: &OutboxPage, limit: usize) {
    let entries = &reply.outbox;
    if entries.is_empty() {
        println!("the outbox is empty after {}", reply.next_after);
        return;
    }
    println!("{:>6}  {:<20}  {:>8}  what", "id", "at", "incident");
    for entry in entries {
        let what = match entry {
            OutboxEntry::Notify {
                level,
                targets,
                reason,
                ..
            } => format!("page {level} ({}): {reason}", targets.join(", ")),
            OutboxEntry::Remind {
                targets, reason, ..
            } => format!("remind ({}): {reason}", targets.join(", ")),
            OutboxEntry::SlaBreached { sla, .. } => format!("{sla} SLA breached"),
            OutboxEntry::Acknowledged { by, targets, .. } => {
                format!("acknowledged by {by} (told: {})", targets.join(", "))
            }
            OutboxEntry::Resolved {
                by,
                false_alarm,
                targets,
                ..
            } => format!(
                "resolved{} by {by} (told: {})",
                if *false_alarm {
                    " as a false alarm"
                } else {
                    ""
                },
                targets.join(", ")
            ),
        };
        println!(
            "{:>6}  {:<20}  {:>8}  {what}",
            entry.id(),
            when(entry.at()),
            entry.incident()
        );
    }
    if entries.len() == limit {
        println!("(more: --after {})", reply.next_after);
    }
}

fn print_report(reply: &IncidentReport) {
    println!(
        "incidents opened {} to {}: {} resolved, {} still open",
        reply.from, reply.to, reply.resolved_incidents, reply.open_incidents
    );
    if let Some(loss) = &reply.loss {
        crate::impact::print_loss(loss);
    }
    let minutes = |ms: i64| format!("{:.1}", ms as f64 / 60_000.0);
    println!("minutes from opening: count / mean / median / 90th percentile / max");
    println!(
        "{:<4} {:>12}  {:<40} {:<40} {:<40}",
        "", "incidents", "to acknowledge", "to mitigate", "to resolve"
    );
    let cell = |summary: &Option<DurationSummary>| match summary {
        None => "-".to_owned(),
        Some(s) => format!(
            "{} / {} / {} / {} / {}",
            s.count,
            minutes(s.mean_ms),
            minutes(s.median_ms),
            minutes(s.p90_ms),
            minutes(s.max_ms)
        ),
    };
    let count = |row: &SeverityReport| {
        if row.open == 0 {
            row.incidents.to_string()
        } else {
            format!("{} ({} open)", row.incidents, row.open)
        }
    };
    for severity in Severity::ALL {
        let row = reply.severities.of(*severity);
        println!(
            "{severity:<4} {:>12}  {:<40} {:<40} {:<40}",
            count(row),
            cell(&row.to_acknowledge),
            cell(&row.to_mitigate),
            cell(&row.to_resolve)
        );
    }
    if reply.open_incidents == 0 {
        return;
    }
    // The open incidents as censored observations: each one that has not reached a milestone
    // counts at the time it has waited so far, so the figures are lower bounds.
    println!();
    println!(
        "with the open incidents still waiting counted at the time waited so far (censored), \
         at least:"
    );
    println!("minutes from opening: reached + waiting / mean / median / 90th percentile / max");
    println!(
        "{:<4} {:>12}  {:<48} {:<48} {:<48}",
        "", "incidents", "to acknowledge", "to mitigate", "to resolve"
    );
    let at_least = |summary: &Option<CensoredSummary>| match summary {
        None => "-".to_owned(),
        Some(s) => format!(
            "{} + {} / ≥{} / ≥{} / ≥{} / ≥{}",
            s.reached,
            s.waiting,
            minutes(s.mean_ms_at_least),
            minutes(s.median_ms_at_least),
            minutes(s.p90_ms_at_least),
            minutes(s.max_ms_at_least)
        ),
    };
    for severity in Severity::ALL {
        let row = reply.severities.of(*severity);
        println!(
            "{severity:<4} {:>12}  {:<48} {:<48} {:<48}",
            count(row),
            at_least(&row.at_least.to_acknowledge),
            at_least(&row.at_least.to_mitigate),
            at_least(&row.at_least.to_resolve)
        );
    }
}

fn print_list(reply: &IncidentList) {
    let incidents = &reply.incidents;
    if incidents.is_empty() {
        println!("no incidents");
        return;
    }
    println!(
        "{:>5}  {:<3}  {:<12}  {:<36}  {:<20}  response",
        "id", "sev", "state", "funnel/stage (segment)", "opened"
    );
    for incident in incidents {
        let segment = incident
            .segment
            .as_ref()
            .map_or(String::new(), |s| format!(" ({s})"));
        // A recovered incident reads so beside its state ("triggered, recovered").
        let state = if incident.recovered_at.is_some() {
            format!("{}*", incident.state.as_str())
        } else {
            incident.state.as_str().to_owned()
        };
        println!(
            "{:>5}  {:<3}  {:<12}  {:<36}  {:<20}  {}",
            incident.id,
            incident.severity.as_str(),
            state,
            format!("{}/{}{segment}", incident.funnel, incident.stage),
            when(&incident.opened_at),
            incident.sla.response.state,
        );
    }
    if incidents.iter().any(|i| i.recovered_at.is_some()) {
        println!("(* recovered: the problem is over and nobody is paged; still open)");
    }
    if let Some(last) = incidents.last().filter(|_| reply.next_before.is_some()) {
        println!(
            "({} shown; more with --before {})",
            incidents.len(),
            last.id
        );
    }
}

/// `dimension = value`, or who an incident without a segment concerns.
fn segment_words(segment: Option<&Segment>) -> String {
    segment.map_or("every shopper".to_owned(), |s| {
        format!("{} = {}", s.dimension, s.value)
    })
}

fn print_incident(incident: &Incident) {
    let summary = &incident.summary;
    println!(
        "incident {}: {} {} {} at {}/{} ({})",
        summary.id,
        summary.severity,
        summary.kind,
        summary.state,
        summary.funnel,
        summary.stage,
        segment_words(summary.segment.as_ref()),
    );
    if let Some(reason) = &summary.reason {
        println!("  revloop cannot judge: {reason}");
    }
    if let Some(at) = &summary.recovered_at {
        println!(
            "  recovered at {}: nobody is paged; resolve it once its criteria hold",
            when(at)
        );
    }
    println!(
        "  onset {}, opened {}",
        when(&summary.onset),
        when(&summary.opened_at)
    );
    crate::impact::print_impact(summary.impact.as_ref(), summary.false_alarm);
    for (name, clock) in [
        ("response", &summary.sla.response),
        ("resolution", &summary.sla.resolution),
    ] {
        println!("  {name} SLA: {} (due {})", clock.state, when(&clock.due));
    }
    if let Some(next) = &incident.escalation.next_at {
        let level = incident.escalation.next_level.as_deref();
        println!("  next page: {} at {next}", level.unwrap_or("null"));
    }
    if let Some(scope) = &incident.scope {
        let segment = scope.segment.as_ref().map_or(String::new(), |s| {
            format!(", {} = {}", s.dimension, s.value)
        });
        println!("  scope (as judged): {}{segment}", scope.stage);
    }
    if let Some(cause) = &incident.root_cause {
        println!("  root cause: {cause}");
    }
    for mitigation in &incident.mitigations {
        println!(
            "  mitigation: {} {}",
            mitigation.mitigation, mitigation.detail
        );
    }
    for item in &incident.action_items {
        println!(
            "  action item: {} (owner {}, due {})",
            item.text,
            item.owner,
            when(&item.due)
        );
    }
    println!("  trend: {}", summary.trend);
    println!("  resolution criteria:");
    for criterion in &incident.criteria {
        let mark = if criterion.holds { "x" } else { " " };
        println!("    [{mark}] {}: {}", criterion.name, criterion.detail);
    }
    print_suspects(incident);
    print_signals(incident);
    println!("  root-cause checklist:");
    for item in &incident.checklist {
        let checked = item.checked_by.as_ref().map_or(String::new(), |by| {
            format!(
                " (by {by} at {}: {})",
                when(item.checked_at.as_deref().unwrap_or("null")),
                item.finding.as_deref().unwrap_or("null")
            )
        });
        let mark = if checked.is_empty() { " " } else { "x" };
        println!(
            "    [{mark}] {:>2} {}: {}{checked}{}",
            item.index,
            item.category,
            item.item,
            signal_marks(&item.signals)
        );
    }
    println!("  timeline:");
    for entry in &incident.timeline {
        println!(
            "    {}  {:<10} {:<18} {}",
            when(&entry.at),
            entry.actor,
            entry.kind.as_str(),
            entry.text
        );
    }
}

/// The technical signals that attach to the incident, latest start first.
fn print_signals(incident: &Incident) {
    if incident.signals.is_empty() {
        return;
    }
    println!("  technical signals (overlapping it in time, and in stage where they name one):");
    for signal in &incident.signals {
        let until = signal.ends_at.as_deref().map_or("now".to_owned(), when);
        println!(
            "    signal {}  {} {} {}: {} ({} to {until}{})",
            signal.id,
            signal.source,
            signal.status,
            signal.severity.as_deref().unwrap_or("-"),
            signal.summary,
            when(&signal.starts_at),
            signal
                .stage
                .as_ref()
                .map_or(String::new(), |stage| format!(", stage {stage}"))
        );
    }
}

/// ` (signals 3, 5)` after a checklist item that signals speak to; empty otherwise.
fn signal_marks(ids: &[i64]) -> String {
    if ids.is_empty() {
        return String::new();
    }
    let ids: Vec<String> = ids.iter().map(i64::to_string).collect();
    format!(" (signals {})", ids.join(", "))
}

fn print_suspects(incident: &Incident) {
    if incident.suspects.is_empty() {
        return;
    }
    println!(
        "  suspect changes (score: halves for every 2h before the onset, times stage and segment overlap):"
    );
    for suspect in &incident.suspects {
        let change = &suspect.change;
        println!(
            "    {:.2}  {} {} at {} ({})",
            suspect.score,
            change.kind,
            change.summary,
            when(&change.at),
            suspect.reasons.join("; ")
        );
    }
}
