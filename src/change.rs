//! `revloop change add|list`: the changes (deploys, experiments, prices...) that may explain
//! incidents, recorded on and read from a running server. Replies are read into their
//! `revloop-api` types; this module must never parse a reply by hand.

use std::process::ExitCode;
use std::str::FromStr;

use clap::Subcommand;

use revloop_api::Segment;
use revloop_api::changes::{Change, ChangeKind, ChangeList, NewChange};

use crate::remote::{Remote, scope_text, segment_arg, show, time_arg, when, with_query};

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
        #[arg(value_parser = ChangeKind::from_str)]
        kind: ChangeKind,
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
        /// dimension=value, e.g. device=mobile.
        #[arg(long, value_parser = segment_arg)]
        segment: Option<Segment>,
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

pub fn run(args: ChangeArgs) -> anyhow::Result<ExitCode> {
    let remote = &args.remote;
    match args.command {
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
            let body = NewChange {
                kind,
                summary,
                detail,
                at: at.as_deref().map(time_arg),
                funnel,
                stage,
                segment,
                external_id,
            };
            let reply: Change = remote.post("/api/v1/changes", &body)?;
            show(remote, &reply, |change| {
                print!("recorded ");
                print_change(change);
            })
        }
        ChangeCommand::List { from, to, limit } => {
            let mut query = vec![("limit", limit.to_string())];
            query.extend(from.map(|f| ("from", time_arg(&f))));
            query.extend(to.map(|t| ("to", time_arg(&t))));
            let reply: ChangeList = remote.get(&with_query("/api/v1/changes", &query))?;
            show(remote, &reply, |reply| {
                if reply.changes.is_empty() {
                    println!("no changes");
                }
                for change in &reply.changes {
                    print_change(change);
                }
            })
        }
    }
}

fn print_change(change: &Change) {
    let scope = scope_text(change.funnel.as_deref(), change.stage.as_deref());
    let segment = change
        .segment
        .as_ref()
        .map_or(String::new(), |s| format!(" {s}"));
    println!(
        "change {}: {} {} at {} ({}{}) by {}",
        change.id,
        change.kind,
        change.summary,
        when(&change.at),
        if scope.is_empty() {
            "shop-wide"
        } else {
            &scope
        },
        segment,
        change.author,
    );
}
