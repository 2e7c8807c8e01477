//! `revloop bench ledger`: durable ledger postings per second, committed to a real store
//! (SQLite, or PostgreSQL with `--database-url`): single entries (one estimate per call), and
//! revision pairs (a reversal and the new estimate, atomically in one call), each call one
//! transaction with its fsync, validated as every posting is.

use std::process::ExitCode;
use std::time::Instant;

use revloop_core::Config;
use revloop_core::ledger::{EntryLink, JournalEntry, Line, Side, reversal_of};
use revloop_core::time::{DurationMs, Timestamp};
use revloop_store::{SqliteStore, Store};

use super::support::TempDir;

/// 2026-11-27T10:00:00Z.
const T0: Timestamp = Timestamp::from_millis(1_795_773_600_000);

fn estimate(config: &Config, id: String, incident: i64, minor: i64, at: Timestamp) -> JournalEntry {
    let booking = &config.ledger.chart.booking;
    let line = |account, side| Line {
        account,
        account_type: None,
        side,
        amount_minor: minor,
        currency: config.shop.currency,
        memo: None,
    };
    JournalEntry {
        id,
        description: format!("Revenue loss - payment anomaly (incident {incident})"),
        effective_at: at,
        lines: vec![
            line(booking.loss_expense, Side::Debit),
            line(booking.accrued_estimates, Side::Credit),
        ],
        link: EntryLink {
            incident: Some(incident),
            inputs_json: Some(format!("{{\"loss_minor\":{minor}}}")),
        },
        reverses: None,
    }
}

pub fn run(calls: usize, database_url: Option<&str>) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(calls >= 1, "--calls must be at least 1");
    let config = Config::parse(Config::example_toml())
        .map_err(|err| anyhow::anyhow!("the example config is invalid: {err}"))?;
    let dir =
        TempDir(std::env::temp_dir().join(format!("revloop-bench-ledger-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0)?;
    let schema = format!("revloop_bench_ledger_{}", std::process::id());
    let store: Box<dyn Store> = match database_url {
        Some(url) => Box::new(revloop_store::PostgresStore::open_in_schema(
            url, &schema, &config,
        )?),
        None => Box::new(SqliteStore::open(&dir.0.join("bench.db"), &config)?),
    };
    let chart = &config.ledger.chart;
    let at = |n: usize| T0.saturating_add(DurationMs::from_millis(n as i64));

    // Single entries: each call posts one new estimate.
    let started = Instant::now();
    for n in 0..calls {
        let entry = estimate(
            &config,
            format!("single-{n}"),
            n as i64,
            1_000 + n as i64,
            at(n),
        );
        store.post_ledger_entries(chart, &[entry], at(n))?;
    }
    let singles_s = started.elapsed().as_secs_f64();

    // Revision pairs: one incident's estimate revised `calls` times, each revision the
    // reversal of the standing estimate and the new one, in one call.
    let incident = 1_000_000;
    let mut standing = estimate(&config, "rev-0".into(), incident, 1_000, at(0));
    store.post_ledger_entries(chart, std::slice::from_ref(&standing), at(0))?;
    let started = Instant::now();
    for n in 1..=calls {
        let reversal = reversal_of(&standing, format!("rev-{n}-reversal"), at(n));
        let next = estimate(
            &config,
            format!("rev-{n}"),
            incident,
            1_000 + n as i64,
            at(n),
        );
        store.post_ledger_entries(chart, &[reversal, next.clone()], at(n))?;
        standing = next;
    }
    let pairs_s = started.elapsed().as_secs_f64();

    // Retries: the last single entry again, answered from the store without a write.
    let last = estimate(
        &config,
        format!("single-{}", calls - 1),
        calls as i64 - 1,
        1_000 + calls as i64 - 1,
        at(calls - 1),
    );
    let started = Instant::now();
    for _ in 0..calls {
        store.post_ledger_entries(chart, std::slice::from_ref(&last), at(calls))?;
    }
    let retries_s = started.elapsed().as_secs_f64();

    let balance = store.trial_balance()?;
    anyhow::ensure!(
        balance.iter().map(|b| b.debits).sum::<i128>()
            == balance.iter().map(|b| b.credits).sum::<i128>(),
        "the books do not balance after the run"
    );
    let store_name = if database_url.is_some() {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    let per_s = |seconds: f64| calls as f64 / seconds;
    println!(
        "{store_name}: {calls} calls each: single entries {:.0}/s ({:.2} ms each); revision pairs {:.0} calls/s = {:.0} entries/s ({:.2} ms each); retries of a stored id {:.0}/s",
        per_s(singles_s),
        singles_s * 1e3 / calls as f64,
        per_s(pairs_s),
        2.0 * per_s(pairs_s),
        pairs_s * 1e3 / calls as f64,
        per_s(retries_s),
    );
    drop(store);
    if let Some(url) = database_url {
        revloop_store::PostgresStore::drop_schema(url, &schema)?;
    }
    Ok(ExitCode::SUCCESS)
}
