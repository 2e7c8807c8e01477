//! `revloop serve`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;

use revloop_server::{App, AppOptions, SystemClock};

use crate::StoreArgs;

#[derive(clap::Args)]
pub struct Args {
    /// The config file.
    #[arg(long, default_value = "revloop.toml")]
    config: PathBuf,
    #[command(flatten)]
    store: StoreArgs,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Serve /metrics without a token, for a Prometheus on a trusted network.
    #[arg(long)]
    metrics_public: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config = crate::load_config(&args.config)?;
    let store = crate::open_store_for_ingest(&args.store, &config)?;
    let app = App::build(
        config,
        store,
        Arc::new(SystemClock),
        AppOptions {
            metrics_public: args.metrics_public,
            ..AppOptions::default()
        },
    );
    let store = app.state.store.clone();
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("listening on {}", args.listen))?;
        tracing::info!("revloop listening on http://{}", listener.local_addr()?);
        app.serve(listener, shutdown_signal())
            .await
            .context("serving")
    })?;
    checkpoint_on_exit(store.as_ref());
    Ok(ExitCode::SUCCESS)
}

/// After a clean stop: empties SQLite's write-ahead log into the database, so that a stopped
/// revloop leaves one file of its real size. A failure is only logged: nothing is lost, the
/// next start reads the log.
pub fn checkpoint_on_exit(store: &dyn revloop_store::Store) {
    if let Err(err) = store.checkpoint() {
        tracing::warn!("could not checkpoint the database on exit: {err}");
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
    tracing::info!("shutting down");
}
