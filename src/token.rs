//! `revloop token create|list|revoke`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;

use revloop_server::Clock;
use revloop_store::Role;

use crate::StoreArgs;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
    /// The config file (the store is opened with its layout).
    #[arg(long, default_value = "revloop.toml", global = true)]
    config: PathBuf,
    #[command(flatten)]
    store: StoreArgs,
}

#[derive(Subcommand)]
enum Action {
    /// Create a token and print its secret once. Only its hash is stored.
    Create {
        /// ingest (a write key), viewer, responder or admin.
        #[arg(long)]
        role: String,
        /// A name to recognise it by.
        #[arg(long, default_value = "unnamed")]
        name: String,
    },
    /// List tokens (never their secrets).
    List,
    /// Revoke a token by id.
    Revoke { id: i64 },
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config = crate::load_config(&args.config)?;
    let store = crate::open_store(&args.store, &config)?;
    let now = revloop_server::SystemClock.now();
    match args.action {
        Action::Create { role, name } => {
            let Some(role) = Role::parse(&role) else {
                eprintln!("error: --role must be one of ingest, viewer, responder, admin");
                return Ok(ExitCode::from(2));
            };
            let secret =
                revloop_server::http::auth::generate_secret().context("drawing a random secret")?;
            let record = store.create_token(
                &name,
                role,
                revloop_server::http::auth::hash_secret(&secret),
                now,
            )?;
            eprintln!(
                "created {} token #{} `{}`; its secret is shown only now:",
                role.as_str(),
                record.id,
                name
            );
            println!("{secret}");
        }
        Action::List => {
            println!(
                "{:>4}  {:<10}  {:<24}  {:<24}  name",
                "id", "role", "created", "revoked"
            );
            for token in store.list_tokens()? {
                let revoked = token
                    .revoked_at
                    .map(|t| t.to_string())
                    .unwrap_or_else(|| "-".into());
                println!(
                    "{:>4}  {:<10}  {:<24}  {:<24}  {}",
                    token.id,
                    token.role.as_str(),
                    token.created_at.to_string(),
                    revoked,
                    token.name
                );
            }
        }
        Action::Revoke { id } => {
            if store.revoke_token(id, now)? {
                println!("revoked token #{id}");
            } else {
                eprintln!("error: no live token #{id}");
                return Ok(ExitCode::from(1));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
