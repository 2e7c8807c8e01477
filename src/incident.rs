//! `revloop incident ...` and `revloop change ...`: a responder's side of the incidents API,
//! from a terminal. Every command is one HTTP request to a running server; the token names
//! who acted on the incident's timeline.

use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use serde_json::{Value, json};

use crate::client::Client;

/// Where the server is and who is asking.
#[derive(clap::Args, Debug)]
pub struct Remote {
    /// The server's base URL.
    #[arg(
        long,
        env = "REVLOOP_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    url: String,
    /// An API token: viewer to read, responder to act.
    #[arg(long, env = "REVLOOP_TOKEN", global = true, hide_env_values = true)]
    token: Option<String>,
    /// Print the server's JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
}

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
        #[arg(long, default_value = "open")]
        state: String,
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
        #[arg(long)]
        segment: Option<String>,
        /// Why, for the timeline.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Set the severity (P1, P2, P3); lowering it needs --reason.
    Severity {
        /// The incident's id.
        id: u64,
        severity: String,
        /// Why; required to lower the severity.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Record a mitigation: traffic_routing, rollback, disable_experiment,
    /// backup_payment_processor, status_banner or other.
    Mitigate {
        /// The incident's id.
        id: u64,
        mitigation: String,
        /// What was done.
        #[arg(long, default_value = "")]
        detail: String,
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
    /// Resolve. Before the runbook's criteria hold (see `show`), --reason is required.
    Resolve {
        /// The incident's id.
        id: u64,
        /// Why, for the timeline.
        #[arg(long)]
        reason: Option<String>,
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

#[derive(clap::Args, Debug)]
pub struct ChangeArgs {
    #[command(flatten)]
    remote: Remote,
    #[command(subcommand)]
    command: ChangeCommand,
}

#[derive(Subcommand, Debug)]
enum ChangeCommand {
    /// Record a change: deploy, experiment_start, experiment_stop, pricing, promotion,
    /// payment_processor, cdn, infrastructure, config or other.
    Add {
        kind: String,
        /// One line, at most 200 bytes.
        summary: String,
        #[arg(long)]
        detail: Option<String>,
        /// When it took effect (RFC 3339); now if not given.
        #[arg(long)]
        at: Option<String>,
        /// The funnel it affects; every funnel if not given.
        #[arg(long)]
        funnel: Option<String>,
        /// The stage it affects; shop-wide if not given.
        #[arg(long)]
        stage: Option<String>,
        /// dimension=value
        #[arg(long)]
        segment: Option<String>,
        /// Your own id for the change: recording it twice stores it once.
        #[arg(long)]
        external_id: Option<String>,
    },
    /// Changes, newest first (default: the last 7 days).
    List {
        /// RFC 3339 or a date (midnight UTC).
        #[arg(long)]
        from: Option<String>,
        /// RFC 3339 or a date (midnight UTC).
        #[arg(long)]
        to: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
}

#[derive(clap::Args, Debug)]
pub struct SilenceArgs {
    #[command(flatten)]
    remote: Remote,
    #[command(subcommand)]
    command: SilenceCommand,
}

#[derive(Subcommand, Debug)]
enum SilenceCommand {
    /// Add a maintenance window: incidents opened in it page nobody until it ends.
    Add {
        /// When it ends: RFC 3339 with its offset (2026-12-01T04:00:00+01:00), so daylight
        /// saving cannot move it. At most a week after `--from`.
        #[arg(long)]
        to: String,
        /// When it starts (RFC 3339); now if not given.
        #[arg(long)]
        from: Option<String>,
        /// Why: shown on every incident it holds.
        #[arg(long)]
        reason: String,
        /// Only this funnel; every funnel if not given.
        #[arg(long)]
        funnel: Option<String>,
        /// Only this stage; every stage if not given.
        #[arg(long)]
        stage: Option<String>,
    },
    /// The config's silences and those added here, with their state.
    List,
    /// End an added silence now: incidents it held escalate at once.
    End {
        /// The silence's id (see `list`).
        id: u64,
    },
}

pub fn run_silence(args: SilenceArgs) -> anyhow::Result<ExitCode> {
    let remote = &args.remote;
    let reply = match args.command {
        SilenceCommand::Add {
            to,
            from,
            reason,
            funnel,
            stage,
        } => request(
            remote,
            "POST",
            "/api/v1/silences",
            Some(json!({
                "to": time_arg(&to),
                "from": from.as_deref().map(time_arg),
                "reason": reason,
                "funnel": funnel,
                "stage": stage,
            })),
        )?,
        SilenceCommand::List => {
            let reply = request(remote, "GET", "/api/v1/silences", None)?;
            if !remote.json {
                let silences = reply["silences"].as_array().cloned().unwrap_or_default();
                if silences.is_empty() {
                    println!("no silences");
                }
                for silence in &silences {
                    print_silence(silence);
                }
                return Ok(ExitCode::SUCCESS);
            }
            reply
        }
        SilenceCommand::End { id } => {
            request(remote, "DELETE", &format!("/api/v1/silences/{id}"), None)?
        }
    };
    if remote.json {
        println!("{}", serde_json::to_string_pretty(&reply)?);
    } else {
        print_silence(&reply);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_silence(silence: &Value) {
    let id = silence["id"]
        .as_u64()
        .map_or("config".to_owned(), |id| id.to_string());
    let scope = [silence["funnel"].as_str(), silence["stage"].as_str()]
        .iter()
        .flatten()
        .copied()
        .collect::<Vec<_>>()
        .join("/");
    println!(
        "silence {id}: {} from {} to {} ({}): {}",
        text(&silence["state"]),
        when(&silence["from"]),
        when(&silence["to"]),
        if scope.is_empty() {
            "everything"
        } else {
            &scope
        },
        text(&silence["reason"]),
    );
}

pub fn run_incident(args: IncidentArgs) -> anyhow::Result<ExitCode> {
    let remote = &args.remote;
    let action_kind = match &args.command {
        IncidentCommand::Ack { .. } => "acknowledged",
        IncidentCommand::Note { .. } => "note",
        IncidentCommand::Scope { .. } => "scope_set",
        IncidentCommand::Severity { .. } => "severity_set",
        IncidentCommand::Mitigate { .. } => "mitigated",
        IncidentCommand::RootCause { .. } => "root_cause",
        IncidentCommand::ActionItem { .. } => "action_item",
        IncidentCommand::Check { .. } => "checklist",
        IncidentCommand::Resolve { .. } => "resolved",
        IncidentCommand::Reopen { .. } => "reopened",
        _ => "",
    };
    let act = |id: u64, action: &str, body: Value| {
        request(
            remote,
            "POST",
            &format!("/api/v1/incidents/{id}/{action}"),
            Some(body),
        )
    };
    let reason = |reason: Option<String>| json!({ "reason": reason });
    let reply = match args.command {
        IncidentCommand::List {
            state,
            funnel,
            limit,
            before,
        } => {
            let mut query = vec![("state", state), ("limit", limit.to_string())];
            query.extend(funnel.map(|f| ("funnel", f)));
            query.extend(before.map(|b| ("before", b.to_string())));
            let reply = request(
                remote,
                "GET",
                &with_query("/api/v1/incidents", &query),
                None,
            )?;
            if !remote.json {
                print_list(&reply);
                return Ok(ExitCode::SUCCESS);
            }
            reply
        }
        IncidentCommand::Show { id } => {
            let reply = request(remote, "GET", &format!("/api/v1/incidents/{id}"), None)?;
            if !remote.json {
                print_incident(&reply);
                return Ok(ExitCode::SUCCESS);
            }
            reply
        }
        IncidentCommand::Ack { id, reason: why } => act(id, "acknowledge", reason(why))?,
        IncidentCommand::Note { id, text } => act(id, "note", json!({ "text": text }))?,
        IncidentCommand::Scope {
            id,
            stage,
            segment,
            reason,
        } => {
            let segment = segment.map(|s| parse_segment(&s)).transpose()?;
            act(
                id,
                "scope",
                json!({ "stage": stage, "segment": segment, "reason": reason }),
            )?
        }
        IncidentCommand::Severity {
            id,
            severity,
            reason,
        } => act(
            id,
            "severity",
            json!({ "severity": severity, "reason": reason }),
        )?,
        IncidentCommand::Mitigate {
            id,
            mitigation,
            detail,
        } => act(
            id,
            "mitigate",
            json!({ "mitigation": mitigation, "detail": detail }),
        )?,
        IncidentCommand::RootCause { id, text } => act(id, "root-cause", json!({ "text": text }))?,
        IncidentCommand::ActionItem {
            id,
            text,
            owner,
            due,
        } => act(
            id,
            "action-items",
            json!({ "text": text, "owner": owner, "due": time_arg(&due) }),
        )?,
        IncidentCommand::Check { id, index, finding } => act(
            id,
            "checklist",
            json!({ "index": index, "finding": finding }),
        )?,
        IncidentCommand::Resolve { id, reason: why } => act(id, "resolve", reason(why))?,
        IncidentCommand::Reopen { id, reason: why } => act(id, "reopen", reason(why))?,
        IncidentCommand::Report { from, to } => {
            let mut query = Vec::new();
            query.extend(from.map(|f| ("from", time_arg(&f))));
            query.extend(to.map(|t| ("to", time_arg(&t))));
            let reply = request(
                remote,
                "GET",
                &with_query("/api/v1/incidents/report", &query),
                None,
            )?;
            if !remote.json {
                print_report(&reply);
                return Ok(ExitCode::SUCCESS);
            }
            reply
        }
        IncidentCommand::Outbox { after, limit } => {
            let reply = request(
                remote,
                "GET",
                &with_query(
                    "/api/v1/outbox",
                    &[("after", after.to_string()), ("limit", limit.to_string())],
                ),
                None,
            )?;
            if !remote.json {
                print_outbox(&reply, limit);
                return Ok(ExitCode::SUCCESS);
            }
            reply
        }
    };
    if remote.json || reply.get("timeline").is_none() {
        println!("{}", serde_json::to_string_pretty(&reply)?);
    } else {
        // What this action wrote, and what the engine did because of it (a page, a
        // resolution): the entries from the last one by this action's kind on.
        let timeline = reply["timeline"].as_array().cloned().unwrap_or_default();
        let from = timeline
            .iter()
            .rposition(|e| e["kind"] == action_kind)
            .unwrap_or(timeline.len().saturating_sub(1));
        println!(
            "incident {} is {} ({})",
            reply["id"],
            text(&reply["state"]),
            text(&reply["severity"])
        );
        for entry in &timeline[from..] {
            println!("  {}", text(&entry["text"]));
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn run_change(args: ChangeArgs) -> anyhow::Result<ExitCode> {
    let remote = &args.remote;
    let reply = match args.command {
        ChangeCommand::Add {
            kind,
            summary,
            detail,
            at,
            funnel,
            stage,
            segment,
            external_id,
        } => {
            let segment = segment.map(|s| parse_segment(&s)).transpose()?;
            request(
                remote,
                "POST",
                "/api/v1/changes",
                Some(json!({
                    "kind": kind,
                    "summary": summary,
                    "detail": detail,
                    "at": at.as_deref().map(time_arg),
                    "funnel": funnel,
                    "stage": stage,
                    "segment": segment,
                    "external_id": external_id,
                })),
            )?
        }
        ChangeCommand::List { from, to, limit } => {
            let mut query = vec![("limit", limit.to_string())];
            query.extend(from.map(|f| ("from", time_arg(&f))));
            query.extend(to.map(|t| ("to", time_arg(&t))));
            let reply = request(remote, "GET", &with_query("/api/v1/changes", &query), None)?;
            if !remote.json {
                let changes = reply["changes"].as_array().cloned().unwrap_or_default();
                if changes.is_empty() {
                    println!("no changes");
                }
                for change in changes {
                    print_change(&change);
                }
                return Ok(ExitCode::SUCCESS);
            }
            reply
        }
    };
    if remote.json || reply.get("id").is_none() {
        println!("{}", serde_json::to_string_pretty(&reply)?);
    } else {
        print!("recorded ");
        print_change(&reply);
    }
    Ok(ExitCode::SUCCESS)
}

/// A time for the API: RFC 3339 as given, or a bare date as its midnight UTC.
fn time_arg(text: &str) -> String {
    let is_date = text.len() == 10 && text.as_bytes()[4] == b'-' && text.as_bytes()[7] == b'-';
    if is_date {
        format!("{text}T00:00:00Z")
    } else {
        text.to_owned()
    }
}

fn print_change(change: &Value) {
    let scope = [change["funnel"].as_str(), change["stage"].as_str()]
        .iter()
        .flatten()
        .copied()
        .collect::<Vec<_>>()
        .join("/");
    let segment = change["segment"].as_object().map_or(String::new(), |s| {
        format!(" {}={}", text(&s["dimension"]), text(&s["value"]))
    });
    println!(
        "change {}: {} {} at {} ({}{}) by {}",
        change["id"],
        text(&change["kind"]),
        text(&change["summary"]),
        when(&change["at"]),
        if scope.is_empty() {
            "shop-wide"
        } else {
            &scope
        },
        segment,
        text(&change["author"]),
    );
}

fn print_outbox(reply: &Value, limit: usize) {
    let entries = reply["outbox"].as_array().cloned().unwrap_or_default();
    if entries.is_empty() {
        println!("the outbox is empty after {}", reply["next_after"]);
        return;
    }
    println!("{:>6}  {:<20}  {:>8}  what", "id", "at", "incident");
    for entry in &entries {
        let what = if entry["kind"] == "notify" {
            format!(
                "page {} ({}): {}",
                text(&entry["level"]),
                entry["targets"]
                    .as_array()
                    .map(|t| t.iter().map(text).collect::<Vec<_>>().join(", "))
                    .unwrap_or_default(),
                text(&entry["reason"])
            )
        } else {
            format!("{} SLA breached", text(&entry["sla"]))
        };
        println!(
            "{:>6}  {:<20}  {:>8}  {what}",
            number(&entry["id"]),
            when(&entry["at"]),
            number(&entry["incident"])
        );
    }
    if entries.len() == limit {
        println!("(more: --after {})", reply["next_after"]);
    }
}

fn print_report(reply: &Value) {
    println!(
        "incidents opened {} to {}, resolved: {}",
        text(&reply["from"]),
        text(&reply["to"]),
        reply["resolved_incidents"]
    );
    let minutes = |ms: &Value| {
        ms.as_i64()
            .map_or("-".to_owned(), |ms| format!("{:.1}", ms as f64 / 60_000.0))
    };
    println!("minutes from opening: count / mean / median / 90th percentile / max");
    println!(
        "{:<4} {:>9}  {:<40} {:<40} {:<40}",
        "", "incidents", "to acknowledge", "to mitigate", "to resolve"
    );
    for severity in ["P1", "P2", "P3"] {
        let row = &reply["severities"][severity];
        let cell = |summary: &Value| {
            if summary.is_null() {
                "-".to_owned()
            } else {
                format!(
                    "{} / {} / {} / {} / {}",
                    number(&summary["count"]),
                    minutes(&summary["mean_ms"]),
                    minutes(&summary["median_ms"]),
                    minutes(&summary["p90_ms"]),
                    minutes(&summary["max_ms"])
                )
            }
        };
        println!(
            "{severity:<4} {:>9}  {:<40} {:<40} {:<40}",
            number(&row["incidents"]),
            cell(&row["to_acknowledge"]),
            cell(&row["to_mitigate"]),
            cell(&row["to_resolve"])
        );
    }
}

fn parse_segment(text: &str) -> anyhow::Result<Value> {
    let (dimension, value) = text
        .split_once('=')
        .with_context(|| format!("--segment `{text}` is not dimension=value"))?;
    Ok(json!({ "dimension": dimension, "value": value }))
}

/// One request; a 4xx or 5xx becomes an error carrying the server's message.
fn request(
    remote: &Remote,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> anyhow::Result<Value> {
    let url = format!("{}{path}", remote.url.trim_end_matches('/'));
    let token = remote.token.as_deref().context(
        "no token: pass --token or set REVLOOP_TOKEN (create one with `revloop token create`)",
    )?;
    let auth = format!("Bearer {token}");
    let mut headers = vec![("Authorization", auth.as_str())];
    let client = Client::new();
    let reply = match body {
        Some(body) => {
            headers.push(("Content-Type", "application/json"));
            client.post(&url, &headers, body.to_string().as_bytes())
        }
        None if method == "DELETE" => client.delete(&url, &headers),
        None => client.get(&url, &headers),
    }
    .with_context(|| format!("reaching {}", remote.url))?;
    let value: Value = serde_json::from_str(&reply.body).unwrap_or(Value::String(reply.body));
    if reply.status >= 400 {
        let message = value["error"]["message"]
            .as_str()
            .map_or_else(|| value.to_string(), str::to_owned);
        anyhow::bail!("{method} {path}: {} {message}", reply.status);
    }
    Ok(value)
}

fn with_query(path: &str, query: &[(&str, String)]) -> String {
    if query.is_empty() {
        return path.to_owned();
    }
    let pairs: Vec<String> = query
        .iter()
        .map(|(k, v)| format!("{k}={}", percent_encode(v)))
        .collect();
    format!("{path}?{}", pairs.join("&"))
}

fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~:".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// A time to the second, so that columns line up (the API gives milliseconds when it has
/// them).
fn when(value: &Value) -> String {
    let text = text(value);
    match (text.find('.'), text.ends_with('Z')) {
        (Some(dot), true) => format!("{}Z", &text[..dot]),
        _ => text,
    }
}

/// A JSON number as an integer, so that column widths apply (a `Value` ignores them).
fn number(value: &Value) -> i64 {
    value.as_i64().unwrap_or_default()
}

/// A JSON string as text, anything else as JSON.
fn text(value: &Value) -> String {
    value
        .as_str()
        .map_or_else(|| value.to_string(), str::to_owned)
}

fn print_list(reply: &Value) {
    let incidents = reply["incidents"].as_array().cloned().unwrap_or_default();
    if incidents.is_empty() {
        println!("no incidents");
        return;
    }
    println!(
        "{:>5}  {:<3}  {:<12}  {:<36}  {:<20}  response",
        "id", "sev", "state", "funnel/stage (segment)", "opened"
    );
    let shown = incidents.len();
    let last_id = incidents.last().map(|i| i["id"].clone());
    for incident in incidents {
        let segment = incident["segment"].as_object().map_or(String::new(), |s| {
            format!(" ({}={})", text(&s["dimension"]), text(&s["value"]))
        });
        println!(
            "{:>5}  {:<3}  {:<12}  {:<36}  {:<20}  {}",
            number(&incident["id"]),
            text(&incident["severity"]),
            text(&incident["state"]),
            format!(
                "{}/{}{segment}",
                text(&incident["funnel"]),
                text(&incident["stage"])
            ),
            when(&incident["opened_at"]),
            text(&incident["sla"]["response"]["state"]),
        );
    }
    if let Some(id) = last_id.filter(|_| !reply["next_before"].is_null()) {
        println!("({shown} shown; more with --before {id})");
    }
}

fn print_incident(incident: &Value) {
    println!(
        "incident {}: {} {} {} at {}/{} ({})",
        incident["id"],
        text(&incident["severity"]),
        text(&incident["kind"]),
        text(&incident["state"]),
        text(&incident["funnel"]),
        text(&incident["stage"]),
        incident["segment"]
            .as_object()
            .map_or("every shopper".to_owned(), |s| format!(
                "{} = {}",
                text(&s["dimension"]),
                text(&s["value"])
            )),
    );
    println!(
        "  onset {}, opened {}",
        when(&incident["onset"]),
        when(&incident["opened_at"])
    );
    for sla in ["response", "resolution"] {
        let clock = &incident["sla"][sla];
        println!(
            "  {sla} SLA: {} (due {})",
            text(&clock["state"]),
            when(&clock["due"])
        );
    }
    if let Some(next) = incident["escalation"]["next_at"].as_str() {
        println!(
            "  next page: {} at {next}",
            text(&incident["escalation"]["next_level"])
        );
    }
    if let Some(scope) = incident["scope"].as_object() {
        println!(
            "  scope (as judged): {}{}",
            text(&scope["stage"]),
            scope["segment"]
                .as_object()
                .map_or(String::new(), |s| format!(
                    ", {} = {}",
                    text(&s["dimension"]),
                    text(&s["value"])
                ))
        );
    }
    if let Some(cause) = incident["root_cause"].as_str() {
        println!("  root cause: {cause}");
    }
    for mitigation in incident["mitigations"].as_array().into_iter().flatten() {
        println!(
            "  mitigation: {} {}",
            text(&mitigation["mitigation"]),
            text(&mitigation["detail"])
        );
    }
    for item in incident["action_items"].as_array().into_iter().flatten() {
        println!(
            "  action item: {} (owner {}, due {})",
            text(&item["text"]),
            text(&item["owner"]),
            when(&item["due"])
        );
    }
    println!("  trend: {}", text(&incident["trend"]));
    println!("  resolution criteria:");
    for criterion in incident["criteria"].as_array().into_iter().flatten() {
        let mark = if criterion["holds"] == true { "x" } else { " " };
        println!(
            "    [{mark}] {}: {}",
            text(&criterion["name"]),
            text(&criterion["detail"])
        );
    }
    let suspects = incident["suspects"].as_array().cloned().unwrap_or_default();
    if !suspects.is_empty() {
        println!(
            "  suspect changes (score: halves for every 2h before the onset, times stage and segment overlap):"
        );
        for suspect in suspects {
            let change = &suspect["change"];
            println!(
                "    {:.2}  {} {} at {} ({})",
                suspect["score"].as_f64().unwrap_or(0.0),
                text(&change["kind"]),
                text(&change["summary"]),
                when(&change["at"]),
                suspect["reasons"]
                    .as_array()
                    .map(|r| r.iter().map(text).collect::<Vec<_>>().join("; "))
                    .unwrap_or_default()
            );
        }
    }
    println!("  root-cause checklist:");
    for item in incident["checklist"].as_array().into_iter().flatten() {
        let checked = item["checked_by"].as_str().map_or(String::new(), |by| {
            format!(
                " (by {by} at {}: {})",
                when(&item["checked_at"]),
                text(&item["finding"])
            )
        });
        let mark = if checked.is_empty() { " " } else { "x" };
        println!(
            "    [{mark}] {:>2} {}: {}{checked}",
            item["index"],
            text(&item["category"]),
            text(&item["item"])
        );
    }
    println!("  timeline:");
    for entry in incident["timeline"].as_array().into_iter().flatten() {
        println!(
            "    {}  {:<10} {:<18} {}",
            when(&entry["at"]),
            text(&entry["actor"]),
            text(&entry["kind"]),
            text(&entry["text"])
        );
    }
}
