//! `revloop baseline show|rebuild`: the detector's time-of-week baselines.
//!
//! `show` rebuilds the detector from the store's history, exactly as `serve` does at start, and
//! prints one step's baseline as a week grid in the funnel's local time. `rebuild` asks a
//! running server to forget its detector state and learn it again from history (after masks
//! changed, say), reading the same connection settings as every command that talks HTTP.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Subcommand;

use revloop_api::Segment;
use revloop_api::detector::{Baseline, Rebuilt, Weekday};
use revloop_core::Timestamp;
use revloop_server::api::alerts::baseline_slots_view;
use revloop_server::detection::Detection;
use revloop_server::{Clock, SystemClock};

use crate::StoreArgs;
use crate::remote::{Remote, print_json, segment_arg_or_legacy};

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
        /// A single-dimension segment, `dimension=value`; the whole funnel when absent.
        /// (`dimension:value` is still read, with a note that it is deprecated.)
        #[arg(long, value_parser = segment_arg_or_legacy)]
        segment: Option<Segment>,
        /// Learn up to this instant (RFC 3339) instead of now.
        #[arg(long)]
        at: Option<String>,
        /// Print JSON (as `GET /api/v1/funnels/{id}/baseline` returns) instead of a grid.
        #[arg(long)]
        json: bool,
    },
    /// Ask a running server to rebuild its detector from history (admin token).
    Rebuild {
        #[command(flatten)]
        remote: Remote,
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
            segment.as_ref(),
            at.as_deref(),
            json,
        ),
        Action::Rebuild { remote } => {
            let reply: Rebuilt = remote.post_empty("/api/v1/detector/rebuild")?;
            if remote.json {
                print_json(&reply)?;
            } else {
                println!(
                    "rebuilt the detector from history: {} alert events, judged until {}",
                    reply.alert_events,
                    reply
                        .judged_until
                        .as_deref()
                        .unwrap_or("- (no history yet)")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn show(
    config_path: &std::path::Path,
    store_args: &StoreArgs,
    funnel: Option<&str>,
    stage: Option<&str>,
    segment: Option<&Segment>,
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
    if let Some(segment) = segment
        && !config.has_dimension(&segment.dimension)
    {
        bail!(
            "no dimension `{}`; dimensions are: {}",
            segment.dimension,
            config.dimension_list()
        );
    }
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
    detection.tick(store.as_ref(), now, &|| now).into_result()?;
    let pair = segment.map(|s| (s.dimension.as_str(), s.value.as_str()));
    let Some(slots) = detection.baseline(funnel_index, pair, stage_index) else {
        bail!("no counts have been seen for that value of the dimension");
    };
    let step = format!(
        "{} → {}",
        funnel.stages[stage_index].id,
        funnel.stages[stage_index + 1].id
    );
    if json {
        let view = Baseline {
            funnel: funnel.id.clone(),
            stage: funnel.stages[stage_index].id.clone(),
            segment: segment.cloned(),
            time_zone: funnel.time_zone.to_string(),
            slots: baseline_slots_view(&slots),
        };
        // Through a `Value`, whose keys are sorted: the bytes the API answers with.
        println!("{}", serde_json::to_value(&view)?);
        return Ok(ExitCode::SUCCESS);
    }
    let who = segment.map_or("every shopper".to_owned(), |s| {
        format!("{} = {}", s.dimension, s.value)
    });
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
    for (day, name) in Weekday::ALL.iter().enumerate() {
        print!("{}  ", name.as_str());
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
