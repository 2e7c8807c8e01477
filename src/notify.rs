//! `revloop notify test TARGET`: sends a test message through every route of an escalation
//! target or an audience, as the server would (same senders, same secrets), and reports each
//! result. Exit codes: 0 every route delivered, 1 any failed (or could not be set up), 2 an
//! unknown target or an invalid config.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use revloop_core::Timestamp;
use revloop_core::config::{Delivery, Route};
use revloop_core::delivery::{Message, MessageEvent, Outcome};
use revloop_server::delivery::sender::{Sender, To, read_secret};

#[derive(clap::Args, Debug)]
pub struct NotifyArgs {
    #[command(subcommand)]
    command: NotifyCommand,
}

#[derive(Subcommand, Debug)]
enum NotifyCommand {
    /// Send a test message through every channel of a target ("CTO") or an audience
    /// ("revenue team"); print each result; exit 1 if any failed.
    Test {
        /// The escalation target or audience, as named in [delivery.targets] or
        /// [delivery.audiences].
        target: String,
        /// The config file.
        #[arg(long, default_value = "revloop.toml")]
        config: PathBuf,
    },
}

pub fn run(args: NotifyArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        NotifyCommand::Test { target, config } => test(&target, &config),
    }
}

fn test(target: &str, config: &std::path::Path) -> anyhow::Result<ExitCode> {
    let config = crate::load_config(config)?;
    let Some(delivery) = &config.delivery else {
        eprintln!(
            "the config has no [delivery] section: every page goes to the log only (see revloop.example.toml)"
        );
        return Ok(ExitCode::from(2));
    };
    let Some(routes) = routes_of(delivery, target) else {
        eprintln!("unknown target or audience `{target}`");
        eprintln!("targets: {}", names(delivery.targets.keys()));
        eprintln!("audiences: {}", names(delivery.audiences.keys()));
        return Ok(ExitCode::from(2));
    };
    let now = system_now();
    let message = test_message(target, now);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut n_failed = 0;
    println!("test message {} to {target}", message.id);
    for (index, route) in routes.iter().enumerate() {
        let to = route.to.as_deref().unwrap_or("-");
        let Some(channel) = delivery.channel(&route.channel) else {
            // The config's check makes this unreachable; reported rather than assumed.
            println!("{}  {to}  -  failed  no such channel", route.channel);
            n_failed += 1;
            continue;
        };
        let attempt = match Sender::new(channel, &read_secret) {
            Ok(sender) => {
                let key = format!("{}-{index}", message.id);
                let to = To {
                    key: &key,
                    target,
                    address: route.to.as_deref(),
                    now,
                };
                runtime.block_on(sender.send(&message, to))
            }
            Err(err) => {
                println!("{}  {to}  setup  failed  {}", route.channel, err.reason);
                n_failed += 1;
                continue;
            }
        };
        let outcome = match attempt.outcome {
            Outcome::Delivered => "delivered",
            Outcome::Transient { .. } => "failed (would retry)",
            Outcome::Permanent => "failed (final)",
        };
        if attempt.outcome != Outcome::Delivered {
            n_failed += 1;
        }
        println!(
            "{} ({})  {to}  {}  {outcome}  {}",
            route.channel,
            channel.kind.as_str(),
            attempt.status,
            attempt.response.replace(['\n', '\r'], " ")
        );
    }
    if n_failed == 0 {
        println!("all {} route(s) delivered", routes.len());
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("{n_failed} of {} route(s) failed", routes.len());
        Ok(ExitCode::from(1))
    }
}

fn routes_of<'a>(delivery: &'a Delivery, target: &str) -> Option<&'a Vec<Route>> {
    delivery
        .targets
        .get(target)
        .or_else(|| delivery.audiences.get(target))
}

fn names<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let names: Vec<String> = names.map(|n| format!("\"{n}\"")).collect();
    if names.is_empty() {
        "(none)".to_string()
    } else {
        names.join(", ")
    }
}

/// The message every route of the test gets: not about an incident (`incident` 0).
fn test_message(target: &str, now: Timestamp) -> Message {
    Message {
        id: format!("msg-test-{}", now.millis()),
        event: MessageEvent::Test,
        incident: 0,
        at: now,
        title: format!("revloop test message for {target}"),
        text: format!(
            "This is a test sent by `revloop notify test` at {now}. If you read it, this channel reaches {target}. Nothing is wrong."
        ),
        severity: None,
        level: None,
        funnel: None,
        stage: None,
        segment: None,
        sigma: None,
        loss: None,
        actor: None,
    }
}

/// The wall clock, read here at the edge (the core never reads it).
fn system_now() -> Timestamp {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    Timestamp::from_millis(millis)
}
