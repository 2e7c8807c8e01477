//! `revloop silence add|list|end`: maintenance windows on a running server. Replies are read
//! into their `revloop-api` types; this module must never parse a reply by hand.

use std::process::ExitCode;

use clap::Subcommand;

use revloop_api::silences::{NewSilence, Silence, SilenceList};

use crate::remote::{Remote, scope_text, show, time_arg, when};

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

pub fn run(args: SilenceArgs) -> anyhow::Result<ExitCode> {
    let remote = &args.remote;
    let reply: Silence = match args.command {
        SilenceCommand::Add {
            to,
            from,
            reason,
            funnel,
            stage,
        } => {
            let body = NewSilence {
                to: time_arg(&to),
                from: from.as_deref().map(time_arg),
                reason,
                funnel,
                stage,
            };
            remote.post("/api/v1/silences", &body)?
        }
        SilenceCommand::List => {
            let reply: SilenceList = remote.get("/api/v1/silences")?;
            return show(remote, &reply, |reply| {
                if reply.silences.is_empty() {
                    println!("no silences");
                }
                for silence in &reply.silences {
                    print_silence(silence);
                }
            });
        }
        SilenceCommand::End { id } => remote.delete(&format!("/api/v1/silences/{id}"))?,
    };
    show(remote, &reply, print_silence)
}

fn print_silence(silence: &Silence) {
    let id = silence.id.map_or("config".to_owned(), |id| id.to_string());
    let scope = scope_text(silence.funnel.as_deref(), silence.stage.as_deref());
    println!(
        "silence {id}: {} from {} to {} ({}): {}",
        silence.state,
        when(&silence.from),
        when(&silence.to),
        if scope.is_empty() {
            "everything"
        } else {
            &scope
        },
        silence.reason,
    );
}
