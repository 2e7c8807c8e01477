//! `revloop ledger trial-balance|statement|entries|export|accounts`: the double-entry ledger of
//! a running server, read through its API. Replies are read into their `revloop-api` types;
//! this module must never parse a reply by hand. Tables for people, `--json` for programs.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Subcommand, ValueEnum};

use revloop_api::ledger::{Chart, EntryList, Statement, TrialBalance};

use crate::remote::{Remote, show, when, with_query};

#[derive(clap::Args, Debug)]
pub struct LedgerArgs {
    #[command(flatten)]
    remote: Remote,
    #[command(subcommand)]
    command: LedgerCommand,
}

#[derive(Subcommand, Debug)]
enum LedgerCommand {
    /// Debits, credits and balance of every account, and whether the books balance.
    TrialBalance,
    /// One account's lines with the running balance.
    Statement {
        /// The four-digit account code, e.g. 6200.
        code: u16,
        /// Only lines of entries recorded after this seq.
        #[arg(long, default_value_t = 0)]
        after: i64,
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Journal entries in recorded order.
    Entries {
        /// Only the entries of this incident.
        #[arg(long)]
        incident: Option<i64>,
        /// Only entries recorded after this seq.
        #[arg(long, default_value_t = 0)]
        after: i64,
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// The chart of accounts.
    Accounts,
    /// The whole ledger as Beancount, hledger, CSV or JSON Lines.
    Export {
        #[arg(long, value_enum)]
        format: Format,
        /// Write to this file instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Beancount and hledger: name accounts by the chart's names too
        /// (`Expenses:LostRevenueExpense:6200`) rather than by code alone (`Expenses:6200`).
        #[arg(long)]
        chart_names: bool,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    Beancount,
    Hledger,
    Csv,
    Jsonl,
}

impl Format {
    fn as_str(self) -> &'static str {
        match self {
            Format::Beancount => "beancount",
            Format::Hledger => "hledger",
            Format::Csv => "csv",
            Format::Jsonl => "jsonl",
        }
    }
}

pub fn run(args: LedgerArgs) -> anyhow::Result<ExitCode> {
    let remote = &args.remote;
    match args.command {
        LedgerCommand::TrialBalance => {
            let reply: TrialBalance = remote.get("/api/v1/ledger/trial-balance")?;
            show(remote, &reply, print_trial_balance)?;
            // A ledger that does not balance is a finding: say so in the exit code.
            Ok(if reply.balanced {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        LedgerCommand::Statement { code, after, limit } => {
            let query = [("after", after.to_string()), ("limit", limit.to_string())];
            let path = format!("/api/v1/ledger/accounts/{code}/statement");
            let reply: Statement = remote.get(&with_query(&path, &query))?;
            show(remote, &reply, print_statement)
        }
        LedgerCommand::Entries {
            incident,
            after,
            limit,
        } => {
            let mut query = vec![("after", after.to_string()), ("limit", limit.to_string())];
            query.extend(incident.map(|id| ("incident", id.to_string())));
            let reply: EntryList = remote.get(&with_query("/api/v1/ledger/entries", &query))?;
            show(remote, &reply, print_entries)
        }
        LedgerCommand::Accounts => {
            let reply: Chart = remote.get("/api/v1/ledger/accounts")?;
            show(remote, &reply, |chart| {
                println!("{:<6} {:<10} {:<8} NAME", "CODE", "TYPE", "STATE");
                for account in &chart.accounts {
                    let state = if account.closed { "closed" } else { "open" };
                    println!(
                        "{:<6} {:<10} {:<8} {}",
                        account.code, account.account_type, state, account.name
                    );
                }
            })
        }
        LedgerCommand::Export {
            format,
            out,
            chart_names,
        } => {
            let names = if chart_names { "chart" } else { "codes" };
            let path = with_query(
                "/api/v1/ledger/export",
                &[
                    ("format", format.as_str().to_owned()),
                    ("names", names.to_owned()),
                ],
            );
            let text = remote.get_text(&path)?;
            match out {
                Some(file) => std::fs::write(&file, text)
                    .with_context(|| format!("writing {}", file.display()))?,
                None => print!("{text}"),
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn print_trial_balance(reply: &TrialBalance) {
    if reply.accounts.is_empty() {
        println!("no postings");
    }
    println!(
        "{:<6} {:<36} {:<4} {:>16} {:>16} {:>16}",
        "CODE", "NAME", "CUR", "DEBITS", "CREDITS", "BALANCE"
    );
    for row in &reply.accounts {
        println!(
            "{:<6} {:<36} {:<4} {:>16} {:>16} {:>16}",
            row.account,
            row.name.as_deref().unwrap_or("(not in the chart)"),
            row.currency,
            row.debits,
            row.credits,
            row.balance
        );
    }
    for total in &reply.totals {
        let verdict = if total.balanced {
            "balanced"
        } else {
            "NOT BALANCED"
        };
        println!(
            "{:<6} {:<36} {:<4} {:>16} {:>16} {:>16}",
            "", "total", total.currency, total.debits, total.credits, verdict
        );
    }
}

fn print_statement(reply: &Statement) {
    println!(
        "account {} {}",
        reply.account,
        reply.name.as_deref().unwrap_or("")
    );
    if reply.lines.is_empty() {
        println!("no lines");
    }
    for line in &reply.lines {
        let (debit, credit) = match line.side {
            revloop_api::ledger::Side::Debit => (line.amount.as_str(), ""),
            revloop_api::ledger::Side::Credit => ("", line.amount.as_str()),
        };
        println!(
            "{:>5} {:<20} {:<24} {:>14} {:>14} {:>16} {} {}",
            line.seq,
            when(&line.effective_at),
            line.entry,
            debit,
            credit,
            line.balance,
            line.currency,
            line.description
        );
    }
    if let Some(next) = reply.next_after {
        println!("more: --after {next}");
    }
}

fn print_entries(reply: &EntryList) {
    if reply.entries.is_empty() {
        println!("no entries");
    }
    for entry in &reply.entries {
        let incident = entry
            .incident
            .map_or(String::new(), |id| format!(" incident {id}"));
        let reversal = match (&entry.reverses, &entry.reversed_by) {
            (Some(of), _) => format!(" (reverses {of})"),
            (None, Some(by)) => format!(" (reversed by {by})"),
            (None, None) => String::new(),
        };
        println!(
            "#{} {} {} {}{}{}: {}",
            entry.seq.unwrap_or(0),
            entry.id,
            when(&entry.effective_at),
            entry.currency,
            incident,
            reversal,
            entry.description
        );
        for line in &entry.lines {
            println!(
                "    {:<6} {:<6} {:>16}",
                line.account, line.side, line.amount
            );
        }
    }
    if let Some(next) = reply.next_after {
        println!("more: --after {next}");
    }
}
