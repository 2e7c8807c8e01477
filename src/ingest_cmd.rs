//! `revloop ingest rejected|ignored`: what a running server refused or ignored, read from its
//! problem log. Replies are read into their `revloop-api` types; this module must never parse
//! a reply by hand.

use std::process::ExitCode;

use clap::Subcommand;

use revloop_api::ingest::{IgnoredNames, LoggedProblem, ProblemLog, ProblemOutcome};

use crate::remote::{Remote, show, when, with_query};

/// Characters of a logged message's body a text line shows; `--json` shows it whole.
const BODY_SHOWN_CHARS_MAX: usize = 160;

#[derive(clap::Args, Debug)]
pub struct IngestArgs {
    #[command(flatten)]
    remote: Remote,
    #[command(subcommand)]
    command: IngestCommand,
}

#[derive(Subcommand, Debug)]
enum IngestCommand {
    /// The newest rejected messages and notices (messages counted with a part folded, cut or
    /// dropped), newest first, each with its reason, field, sender and the message itself.
    Rejected {
        /// How many entries to show (1 to 1000).
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Only entries with this code, e.g. `timestamp_out_of_range`.
        #[arg(long)]
        code: Option<String>,
        /// Only `rejected` or only `notice` entries.
        #[arg(long, value_parser = ["rejected", "notice"])]
        outcome: Option<String>,
        /// Only entries older than this id (the next page, as the last page's footer says).
        #[arg(long)]
        before: Option<i64>,
    },
    /// Event names no funnel stage listens to, most frequent first: a typo in a tracking plan
    /// shows here.
    Ignored {
        /// How many names to show (1 to 1000).
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
}

pub fn run(args: IngestArgs) -> anyhow::Result<ExitCode> {
    let remote = &args.remote;
    match args.command {
        IngestCommand::Rejected {
            limit,
            code,
            outcome,
            before,
        } => {
            let mut query = vec![("limit", limit.to_string())];
            query.extend(code.map(|code| ("code", code)));
            query.extend(outcome.map(|outcome| ("outcome", outcome)));
            query.extend(before.map(|id| ("before", id.to_string())));
            let log: ProblemLog = remote.get(&with_query("/api/v1/ingest/rejected", &query))?;
            show(remote, &log, print_log)
        }
        IngestCommand::Ignored { limit } => {
            let query = [("limit", limit.to_string())];
            let names: IgnoredNames = remote.get(&with_query("/api/v1/ingest/ignored", &query))?;
            show(remote, &names, print_ignored)
        }
    }
}

fn print_log(log: &ProblemLog) {
    if log.entries.is_empty() {
        println!("no rejected messages or notices");
    }
    for entry in &log.entries {
        print_entry(entry);
    }
    let dropped = if log.dropped > 0 {
        format!(", {} older dropped", log.dropped)
    } else {
        String::new()
    };
    println!(
        "{} shown; the log holds {}{dropped}",
        log.entries.len(),
        log.total
    );
    if let Some(before) = log.next_before {
        println!("older: --before {before}");
    }
}

fn print_entry(entry: &LoggedProblem) {
    let outcome = match entry.outcome {
        ProblemOutcome::Rejected => "rejected",
        ProblemOutcome::Notice => "notice",
    };
    println!(
        "{}  {outcome:<8}  {}  {}  (key {}, #{})",
        when(&entry.at),
        entry.code,
        entry.field.as_deref().unwrap_or("-"),
        entry.key_name,
        entry.id
    );
    println!("    {}", entry.message);
    let body: String = entry
        .body
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(BODY_SHOWN_CHARS_MAX)
        .collect();
    let more = entry.body_cut || entry.body.chars().count() > BODY_SHOWN_CHARS_MAX;
    println!("    {body}{}", if more { " ..." } else { "" });
}

fn print_ignored(names: &IgnoredNames) {
    if names.names.is_empty() {
        println!("no ignored event names");
    } else {
        println!(
            "{:>10}  {:<6}  {:<20}  {:<20}  NAME",
            "COUNT", "KIND", "FIRST SEEN", "LAST SEEN"
        );
    }
    for name in &names.names {
        println!(
            "{:>10}  {:<6}  {:<20}  {:<20}  {}",
            name.count,
            name.kind,
            when(&name.first_seen),
            when(&name.last_seen),
            name.name
        );
    }
    if names.unlisted > 0 {
        println!(
            "{} more ignored messages had names past the list's bound",
            names.unlisted
        );
    }
}
