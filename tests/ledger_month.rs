//! A simulated month with several incidents, replayed in event time with its books: every
//! incident's loss is booked as a live server books it (estimates, revisions every few
//! minutes, finals), the books balance, and what each incident holds in the books is exactly
//! the loss it reports. `.ci/run` sets `REVLOOP_LEDGER_BEANCOUNT_OUT` to have the same month
//! exported as Beancount for `bean-check` (tests/ledger/bean-check).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_revloop");

/// A small shop with a configured AOV, so that a month replays in seconds.
const CONFIG: &str = r#"
[shop]
time_zone = "America/New_York"
average_order_value = "42.50"

[[funnels]]
id = "checkout"
[[funnels.stages]]
id = "product_viewed"
event = "Product Viewed"
[[funnels.stages]]
id = "cart"
event = "Product Added"
[[funnels.stages]]
id = "checkout"
event = "Checkout Started"
[[funnels.stages]]
id = "payment"
event = "Payment Info Entered"
[[funnels.stages]]
id = "order"
event = "Order Completed"

[detection]
learning = "2d"
baseline_weeks = 1
segments = false
"#;

/// Four problems in the month's last two weeks (the detector learns the first ones): a
/// payment drop, a checkout drop, a cart drop, and a payment outage while the first payment
/// incident is still open (nobody records its root cause), which it joins.
const INCIDENTS: [&str; 4] = [
    "stage=payment,drop=0.6,from=2026-11-14T15:00:00Z,to=2026-11-14T17:00:00Z",
    "stage=checkout,drop=0.5,from=2026-11-16T19:00:00Z,to=2026-11-16T20:30:00Z",
    "stage=cart,drop=0.4,from=2026-11-18T14:00:00Z,to=2026-11-18T15:00:00Z",
    "stage=payment,drop=1.0,from=2026-11-22T02:00:00Z,to=2026-11-22T03:00:00Z",
];

fn revloop(args: &[&str], dir: &Path) -> std::process::Output {
    let out = Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env("REVLOOP_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "revloop {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn replay(dir: &Path, db: &str, ledger_out: &str, format: &str) {
    revloop(
        &[
            "replay",
            "--events",
            "events.ndjson",
            "--db",
            db,
            "--incidents-out",
            "incidents.ndjson",
            "--ledger-out",
            ledger_out,
            "--ledger-format",
            format,
        ],
        dir,
    );
}

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

#[test]
fn a_replayed_month_books_each_incidents_loss_and_balances() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    std::fs::write(dir.join("revloop.toml"), CONFIG).unwrap();
    let mut args = vec![
        "simulate",
        "--from",
        "2026-10-26T04:00:00Z",
        "--to",
        "2026-11-25T05:00:00Z",
        "--seed",
        "5",
        "--peak-sessions-per-minute",
        "20",
    ];
    for incident in INCIDENTS {
        args.extend(["--incident", incident]);
    }
    let out = revloop(&args, dir);
    std::fs::write(dir.join("events.ndjson"), out.stdout).unwrap();
    replay(dir, "month.db", "month.jsonl", "jsonl");

    let incidents = lines(&dir.join("incidents.ndjson"));
    let loss = |incident: &Value| incident["impact"]["loss"]["minor"].as_i64().unwrap();
    let priced: Vec<&Value> = incidents
        .iter()
        .filter(|i| !i["impact"].is_null())
        .collect();
    assert!(priced.len() >= 3, "{incidents:#?}");
    for stage in ["payment", "checkout", "cart"] {
        assert!(
            priced.iter().any(|i| i["stage"] == stage && loss(i) > 0),
            "no loss booked at {stage}: {incidents:#?}"
        );
    }

    // Per incident and account, the net debit of what the books hold.
    let entries = lines(&dir.join("month.jsonl"));
    let mut held: BTreeMap<(i64, u64), i64> = BTreeMap::new();
    for entry in &entries {
        let incident = entry["incident"].as_i64().unwrap();
        for line in entry["lines"].as_array().unwrap() {
            let amount = line["amount_minor"].as_i64().unwrap();
            let signed = if line["side"] == "debit" {
                amount
            } else {
                -amount
            };
            *held
                .entry((incident, line["account"].as_u64().unwrap()))
                .or_default() += signed;
        }
    }
    let revisions = entries.iter().filter(|e| !e["reverses"].is_null()).count();
    assert!(revisions > 0, "estimates were revised as incidents grew");
    let mut total = 0;
    for incident in &priced {
        let id = incident["id"].as_i64().unwrap();
        let expense = held.get(&(id, 6200)).copied().unwrap_or(0);
        let accrued = held.get(&(id, 2300)).copied().unwrap_or(0);
        let finalised = held.get(&(id, 3900)).copied().unwrap_or(0);
        assert_eq!(expense, loss(incident), "incident {id}'s books: {held:?}");
        if incident["state"] == "resolved" {
            assert_eq!((accrued, finalised), (0, -loss(incident)), "incident {id}");
        } else {
            assert_eq!((accrued, finalised), (-loss(incident), 0), "incident {id}");
        }
        total += loss(incident);
    }
    let net: i64 = held.values().sum();
    assert_eq!(net, 0, "the books balance");
    let expense: i64 = held
        .iter()
        .filter(|((_, account), _)| *account == 6200)
        .map(|(_, v)| v)
        .sum();
    assert_eq!(expense, total);

    // The same month as Beancount, for `.ci/run`'s bean-check.
    if let Some(path) = std::env::var_os("REVLOOP_LEDGER_BEANCOUNT_OUT") {
        let path = std::path::PathBuf::from(path);
        replay(dir, "month-2.db", path.to_str().unwrap(), "beancount");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("Expenses:6200"), "{text}");
    }
}
