//! `revloop baseline show|rebuild`: the detector's time-of-week baselines.
//!
//! `show` rebuilds the detector from the store's history, exactly as `serve` does at start, and
//! prints one step's baseline as a week grid in the funnel's local time. `rebuild` asks a
//! running server to forget its detector state and learn it again from history (after masks
//! changed, say).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Subcommand;

use revloop_core::Timestamp;
use revloop_server::api::alerts::{WEEKDAYS, baseline_slots_json};
use revloop_server::detection::Detection;
use revloop_server::{Clock, SystemClock};

use crate::StoreArgs;
use crate::client::Client;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(Subcommand)]
enum Action {
    /// Print one step's baseline from the stored history.
    Show {
        #[arg(long, default_value = "revloop.toml")]
        config: PathBuf,
        #[command(flatten)]
        store: StoreArgs,
        /// Funnel id; the first funnel when absent.
        #[arg(long)]
        funnel: Option<String>,
        /// The stage whose shoppers drop off; the first when absent.
        #[arg(long)]
        stage: Option<String>,
        /// A single-dimension segment, `dimension:value`; the whole funnel when absent.
        #[arg(long)]
        segment: Option<String>,
        /// Learn up to this instant (RFC 3339) instead of now.
        #[arg(long)]
        at: Option<String>,
        /// Print JSON (as `GET /api/v1/funnels/{id}/baseline` returns) instead of a grid.
        #[arg(long)]
        json: bool,
    },
    /// Ask a running server to rebuild its detector from history (admin token).
    Rebuild {
        /// The server's base URL.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        url: String,
        /// An admin API token.
        #[arg(long, env = "REVLOOP_TOKEN")]
        token: String,
    },
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.action {
        Action::Show {
            config,
            store,
            funnel,
            stage,
            segment,
            at,
            json,
        } => show(
            &config,
            &store,
            funnel.as_deref(),
            stage.as_deref(),
            segment.as_deref(),
            at.as_deref(),
            json,
        ),
        Action::Rebuild { url, token } => {
            let reply = Client::new()
                .post(
                    &format!("{}/api/v1/detector/rebuild", url.trim_end_matches('/')),
                    &[("Authorization", &format!("Bearer {token}"))],
                    b"",
                )
                .with_context(|| format!("reaching {url}"))?;
            println!("{}", reply.body);
            Ok(if reply.status == 200 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
    }
}

fn show(
    config_path: &std::path::Path,
    store_args: &StoreArgs,
    funnel: Option<&str>,
    stage: Option<&str>,
    segment: Option<&str>,
    at: Option<&str>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let config = Arc::new(crate::load_config(config_path)?);
    let funnel_index = match funnel {
        None => 0,
        Some(id) => config
            .funnels
            .iter()
            .position(|f| f.id == id)
            .with_context(|| format!("no funnel `{id}` in {}", config_path.display()))?,
    };
    let funnel = &config.funnels[funnel_index];
    let stage_index = match stage {
        None => 0,
        Some(id) => match funnel.stages.iter().position(|s| s.id == id) {
            Some(index) if index + 1 < funnel.stages.len() => index,
            Some(_) => bail!(
                "`{id}` is the last stage of `{}`: it has no drop-off",
                funnel.id
            ),
            None => bail!("no stage `{id}` in funnel `{}`", funnel.id),
        },
    };
    let segment = match segment {
        None => None,
        Some(text) => {
            let (dimension, value) = text
                .split_once(':')
                .context("--segment must be dimension:value, e.g. device:mobile")?;
            if !config.has_dimension(dimension) {
                bail!(
                    "no dimension `{dimension}`; dimensions are: {}",
                    config.dimension_list()
                );
            }
            Some((dimension, value))
        }
    };
    let now = match at {
        None => SystemClock.now(),
        Some(text) => Timestamp::parse_rfc3339(text)?,
    };
    if store_args.database_url.is_none() && !store_args.db.exists() {
        bail!(
            "no database at {} (pass --db, or --database-url for PostgreSQL)",
            store_args.db.display()
        );
    }
    let store = crate::open_store(store_args, &config)?;
    let detection = Detection::new(config.clone());
    detection.tick(store.as_ref(), now)?;
    let Some(slots) = detection.baseline(funnel_index, segment, stage_index) else {
        bail!("no counts have been seen for that value of the dimension");
    };
    let step = format!(
        "{} → {}",
        funnel.stages[stage_index].id,
        funnel.stages[stage_index + 1].id
    );
    if json {
        let slots = baseline_slots_json(&slots);
        println!(
            "{}",
            serde_json::json!({"funnel": funnel.id, "stage": funnel.stages[stage_index].id, "time_zone": funnel.time_zone, "slots": slots})
        );
        return Ok(ExitCode::SUCCESS);
    }
    let who = segment.map_or("every shopper".to_owned(), |(d, v)| format!("{d} = {v}"));
    println!(
        "Baseline drop-off of {} step {step}, {who}, by local hour of the week ({}), learned up to {now}.\n\
         Percent of shoppers who leave; `-` where the hour has no history yet.\n",
        funnel.id, funnel.time_zone
    );
    print!("     ");
    for hour in 0..24 {
        print!("{hour:>5}");
    }
    println!();
    for (day, name) in WEEKDAYS.iter().enumerate() {
        print!("{name}  ");
        for slot in &slots[day * 24..day * 24 + 24] {
            match slot.drop_off_rate {
                Some(rate) => print!("{:>5.1}", 100.0 * rate),
                None => print!("{:>5}", "-"),
            }
        }
        println!();
    }
    let busiest = slots
        .iter()
        .filter_map(|s| s.shoppers_per_minute)
        .fold(0.0, f64::max);
    println!("\nBusiest hour: {busiest:.1} shoppers a minute at this stage.");
    Ok(ExitCode::SUCCESS)
}
