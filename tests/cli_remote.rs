//! The commands that talk to a running server, as a user meets them: the real server runs
//! in-process on port 0 (on the wall clock, as `serve` does) and the real binary talks to it
//! with the connection settings from the environment.
//!
//! The server's own test harness (`crates/server/tests/common`) runs a manual clock; these
//! tests run the server as `serve` does, on the wall clock, so that what the binary sends
//! ("now", "in the past") means what it means for a user; hence this small launcher.

use std::process::{Command, Output};
use std::sync::Arc;

use revloop_core::Config;
use revloop_core::time::DurationMs;
use revloop_server::http::auth::{generate_secret, hash_secret};
use revloop_server::{App, AppOptions, Clock, SystemClock};
use revloop_store::{Role, SqliteStore, Store};

const BIN: &str = env!("CARGO_BIN_EXE_revloop");

struct Server {
    url: String,
    admin: String,
    dir: tempfile::TempDir,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    fn start() -> Server {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("revloop.toml"), Config::example_toml()).unwrap();
        let config = Config::parse(Config::example_toml()).unwrap();
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open(&dir.path().join("revloop.db"), &config).unwrap());
        let admin = generate_secret().unwrap();
        store
            .create_token("ops", Role::Admin, hash_secret(&admin), SystemClock.now())
            .unwrap();
        let app = App::build(config, store, Arc::new(SystemClock), AppOptions::default());
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (shutdown, stop) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            runtime
                .block_on(app.serve(listener, async {
                    let _ = stop.await;
                }))
                .unwrap();
            runtime.shutdown_background();
        });
        Server {
            url,
            admin,
            dir,
            shutdown: Some(shutdown),
            thread: Some(thread),
        }
    }

    /// The binary with `REVLOOP_URL` and `REVLOOP_TOKEN` naming this server and its admin.
    fn run(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .args(args)
            .current_dir(self.dir.path())
            .env("REVLOOP_LOG", "warn")
            .env("REVLOOP_URL", &self.url)
            .env("REVLOOP_TOKEN", &self.admin)
            .output()
            .unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn baseline_rebuild_reads_revloop_url_and_prints_text() {
    let server = Server::start();
    let rebuilt = server.run(&["baseline", "rebuild"]);
    assert!(rebuilt.status.success(), "{}", text(&rebuilt.stderr));
    let stdout = text(&rebuilt.stdout);
    assert!(
        stdout.starts_with("rebuilt the detector from history: 0 alert events"),
        "{stdout}"
    );
    let json = server.run(&["baseline", "rebuild", "--json"]);
    let reply: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(reply["rebuilt"], true);
    // Neither the URL nor the token is required in the usage line: the environment may set
    // them.
    let help = server.run(&["baseline", "rebuild", "--help"]);
    assert!(
        text(&help.stdout).contains("Usage: revloop baseline rebuild [OPTIONS]\n"),
        "{}",
        text(&help.stdout)
    );
    let anonymous = Command::new(BIN)
        .args(["baseline", "rebuild", "--url", &server.url])
        .env_remove("REVLOOP_TOKEN")
        .output()
        .unwrap();
    assert_eq!(anonymous.status.code(), Some(1));
    assert!(
        text(&anonymous.stderr).contains("no token: pass --token or set REVLOOP_TOKEN"),
        "{}",
        text(&anonymous.stderr)
    );
}

#[test]
fn a_segment_is_dimension_equals_value_everywhere() {
    let server = Server::start();
    let recorded = server.run(&[
        "change",
        "add",
        "deploy",
        "v2",
        "--segment",
        "device=mobile",
    ]);
    assert!(recorded.status.success(), "{}", text(&recorded.stderr));
    assert!(
        text(&recorded.stdout).contains("(shop-wide device=mobile) by ops"),
        "{}",
        text(&recorded.stdout)
    );
    for args in [
        &[
            "change",
            "add",
            "deploy",
            "v3",
            "--segment",
            "device:mobile",
        ][..],
        &[
            "incident",
            "scope",
            "1",
            "--stage",
            "cart",
            "--segment",
            "mobile",
        ][..],
    ] {
        let refused = server.run(args);
        assert_eq!(refused.status.code(), Some(2), "{args:?}");
        assert!(
            text(&refused.stderr).contains("is not dimension=value, e.g. device=mobile"),
            "{}",
            text(&refused.stderr)
        );
    }
    // `baseline` reads both forms, the old one with a note; both reach the (empty) store.
    for (segment, noted) in [("device=mobile", false), ("device:mobile", true)] {
        let shown = server.run(&["baseline", "show", "--segment", segment]);
        let stderr = text(&shown.stderr);
        assert!(stderr.contains("no counts have been seen"), "{stderr}");
        assert_eq!(
            stderr.contains(
                "note: `--segment device:mobile` is deprecated; write `--segment device=mobile`"
            ),
            noted,
            "{stderr}"
        );
    }
}

#[test]
fn a_silence_ending_in_the_past_names_its_end() {
    let server = Server::start();
    let past = server.run(&[
        "silence",
        "add",
        "--to",
        "2020-01-01T00:00:00Z",
        "--reason",
        "too late",
    ]);
    assert_eq!(past.status.code(), Some(1));
    let stderr = text(&past.stderr);
    assert!(
        stderr.contains("to: 2020-01-01T00:00:00Z is in the past"),
        "{stderr}"
    );
    assert!(!stderr.contains("`from` must be before `to`"), "{stderr}");
    let listed = server.run(&["silence", "list"]);
    assert_eq!(text(&listed.stdout), "no silences\n");

    let tomorrow = SystemClock
        .now()
        .saturating_add(DurationMs::from_hours(24))
        .to_string();
    let added = server.run(&["silence", "add", "--to", &tomorrow, "--reason", "upgrade"]);
    assert!(added.status.success(), "{}", text(&added.stderr));
    assert!(
        text(&added.stdout).starts_with("silence 1: active from "),
        "{}",
        text(&added.stdout)
    );
    // An error reply is printed from the server's error body.
    let too_long = SystemClock
        .now()
        .saturating_add(DurationMs::from_days(9))
        .to_string();
    let refused = server.run(&["silence", "add", "--to", &too_long, "--reason", "long"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        text(&refused.stderr).contains("POST /api/v1/silences: 400 to: it lasts longer than 7d"),
        "{}",
        text(&refused.stderr)
    );
}

#[test]
fn ingest_rejected_and_ignored_show_the_problem_log() {
    let server = Server::start();
    let empty = server.run(&["ingest", "rejected"]);
    assert!(empty.status.success(), "{}", text(&empty.stderr));
    assert_eq!(
        text(&empty.stdout),
        "no rejected messages or notices\n0 shown; the log holds 0\n"
    );

    let now = SystemClock.now().to_string();
    let batch = serde_json::json!({"batch": [
        {"type": "track", "event": "Odrer Completed", "messageId": "typo", "userId": "u1",
         "timestamp": now},
        {"type": "track", "event": "Order Completed", "messageId": "clock", "userId": "u1",
         "timestamp": "1970-01-01T00:00:00Z"},
    ]});
    let reply = ureq::post(&format!("{}/v1/batch", server.url))
        .header("Authorization", &format!("Bearer {}", server.admin))
        .header("Content-Type", "application/json")
        .send(batch.to_string().as_bytes())
        .unwrap()
        .into_body()
        .read_to_string()
        .unwrap();
    assert!(reply.contains("\"rejected\":1"), "{reply}");

    let rejected = server.run(&["ingest", "rejected", "--code", "timestamp_out_of_range"]);
    assert!(rejected.status.success(), "{}", text(&rejected.stderr));
    let stdout = text(&rejected.stdout);
    assert!(
        stdout.contains("rejected  timestamp_out_of_range  timestamp  (key ops, #1)"),
        "{stdout}"
    );
    assert!(stdout.contains("\"messageId\":\"clock\""), "{stdout}");
    assert!(stdout.ends_with("1 shown; the log holds 1\n"), "{stdout}");
    let other_code = server.run(&["ingest", "rejected", "--code", "invalid_json", "--json"]);
    let log: serde_json::Value = serde_json::from_slice(&other_code.stdout).unwrap();
    assert_eq!(
        (&log["entries"], &log["total"]),
        (&serde_json::json!([]), &serde_json::json!(1))
    );

    let ignored = server.run(&["ingest", "ignored"]);
    assert!(ignored.status.success(), "{}", text(&ignored.stderr));
    let stdout = text(&ignored.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(lines[0].trim_start().starts_with("COUNT  KIND"), "{stdout}");
    assert!(
        lines[1].trim_start().starts_with("1  track") && lines[1].ends_with("  Odrer Completed"),
        "{stdout}"
    );
    let refused = server.run(&["ingest", "rejected", "--limit", "0"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        text(&refused.stderr).contains("400 limit: must be a number from 1 to 1000"),
        "{}",
        text(&refused.stderr)
    );
}

/// A month of incident bookings as the lifecycle plans them (`plan_booking`: estimates revised
/// as incidents grow, final figures, a false alarm), posted through the real server's API,
/// under `hand-` ids (the lifecycle's own ids are reserved to it), then read back with
/// `revloop ledger`: the trial balance balances and the exports hold every
/// entry (tests/ledger_month.rs books a replayed month through the incident lifecycle itself).
#[test]
fn a_month_of_bookings_balances_and_exports() {
    use revloop_core::Timestamp;
    use revloop_core::ledger::{BookingEvent, LossFigure, RecordedEntry, plan_booking};
    use revloop_core::money::Money;

    let server = Server::start();
    let config = Config::parse(Config::example_toml()).unwrap();
    let chart = &config.ledger.chart;
    let currency = config.shop.currency;
    let agent = ureq::Agent::new_with_defaults();
    let post = |path: &str, body: &serde_json::Value| {
        let mut reply = agent
            .post(&format!("{}{path}", server.url))
            .header("Authorization", &format!("Bearer {}", server.admin))
            .header("Content-Type", "application/json")
            .config()
            .http_status_as_error(false)
            .build()
            .send(body.to_string().as_bytes())
            .unwrap();
        let status = reply.status().as_u16();
        let text = reply.body_mut().read_to_string().unwrap();
        assert!(status == 201 || status == 200, "{path}: {status} {text}");
    };
    // 2026-10-01T00:00:00Z, and a day.
    let month_start = 1_790_812_800_000_i64;
    let day = 86_400_000_i64;
    let mut booked: Vec<RecordedEntry> = Vec::new();
    let mut n_entries = 0;
    // (incident, day it opened, estimates in minor units as it grew, how it ended)
    let incidents: [(i64, i64, &[i64], &str); 6] = [
        (1, 2, &[12_000, 30_500, 41_250], "final"),
        (2, 5, &[999], "false_alarm"),
        (3, 9, &[250_000, 610_075], "final"),
        (4, 14, &[5_000, 5_000, 7_345], "final"),
        (5, 21, &[88_800, 120_000], "open"),
        (6, 27, &[1_234_567], "false_alarm"),
    ];
    for (incident, opened_day, estimates, end) in incidents {
        let figure = |minor: i64| LossFigure {
            incident,
            funnel: "checkout".into(),
            stage: "payment".into(),
            segment: None,
            amount: Money::new(minor, currency),
            inputs_json: format!("{{\"loss_minor\":{minor}}}"),
        };
        let mut events: Vec<BookingEvent> = estimates
            .iter()
            .map(|minor| BookingEvent::Estimate(figure(*minor)))
            .collect();
        match end {
            "final" => events.push(BookingEvent::Final(figure(*estimates.last().unwrap()))),
            "false_alarm" => events.push(BookingEvent::FalseAlarm { incident }),
            _ => {}
        }
        for (step, event) in events.iter().enumerate() {
            let at =
                Timestamp::from_millis(month_start + opened_day * day + step as i64 * 10 * 60_000);
            for entry in plan_booking(chart, &booked, event, at) {
                match &entry.reverses {
                    Some(original) => {
                        let body = serde_json::json!({
                            "id": format!("hand-{}", entry.id),
                            "effective_at": entry.effective_at.to_string(),
                        });
                        post(
                            &format!("/api/v1/ledger/entries/hand-{original}/reverse"),
                            &body,
                        );
                        for recorded in booked.iter_mut() {
                            if &recorded.entry.id == original {
                                recorded.reversed_by = Some(entry.id.clone());
                            }
                        }
                    }
                    None => post("/api/v1/ledger/entries", &entry_body(&entry)),
                }
                n_entries += 1;
                booked.push(RecordedEntry {
                    entry,
                    recorded_at: at,
                    reversed_by: None,
                });
            }
        }
    }
    assert!(n_entries >= 20, "a month books some entries: {n_entries}");

    let balance = server.run(&["ledger", "trial-balance"]);
    assert!(balance.status.success(), "{}", text(&balance.stderr));
    let table = text(&balance.stdout);
    assert!(
        table.contains("balanced") && !table.contains("NOT"),
        "{table}"
    );
    assert!(table.contains("6200"), "{table}");

    let out = server.dir.path().join("month.beancount");
    let export = server.run(&[
        "ledger",
        "export",
        "--format",
        "beancount",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(export.status.success(), "{}", text(&export.stderr));
    let beancount = std::fs::read_to_string(&out).unwrap();
    assert!(beancount.contains(" * "), "{beancount}");
    let jsonl = server.run(&["ledger", "export", "--format", "jsonl"]);
    assert_eq!(text(&jsonl.stdout).lines().count(), n_entries);
    let entries = server.run(&["ledger", "entries", "--incident", "3", "--json"]);
    let listed: serde_json::Value = serde_json::from_slice(&entries.stdout).unwrap();
    assert!(listed["entries"].as_array().unwrap().len() >= 3, "{listed}");
    let statement = server.run(&["ledger", "statement", "6200"]);
    assert!(statement.status.success(), "{}", text(&statement.stderr));
}

/// A planned entry as the API's body.
fn entry_body(entry: &revloop_core::ledger::JournalEntry) -> serde_json::Value {
    let lines: Vec<serde_json::Value> = entry
        .lines
        .iter()
        .map(|line| {
            serde_json::json!({
                "account": line.account,
                "account_type": line.account_type.map(|t| t.as_str()),
                "side": line.side.as_str(),
                "amount_minor": line.amount_minor,
                "currency": line.currency.code(),
                "memo": line.memo,
            })
        })
        .collect();
    let inputs: Option<serde_json::Value> = entry
        .link
        .inputs_json
        .as_deref()
        .map(|text| serde_json::from_str(text).unwrap());
    serde_json::json!({
        "id": format!("hand-{}", entry.id),
        "description": entry.description,
        "effective_at": entry.effective_at.to_string(),
        "incident": entry.link.incident,
        "inputs": inputs,
        "lines": lines,
    })
}

#[test]
fn an_incident_declared_from_the_terminal_pages_l1_and_a_second_is_refused() {
    let server = Server::start();
    let declare = |stage: &str| {
        server.run(&[
            "incident",
            "declare",
            "--severity",
            "p1",
            "--funnel",
            "checkout",
            "--stage",
            stage,
            "--summary",
            "customers say the card form hangs",
            "--segment",
            "device=mobile",
        ])
    };
    let declared = declare("payment");
    assert!(declared.status.success(), "{}", text(&declared.stderr));
    let stdout = text(&declared.stdout);
    assert!(
        stdout.starts_with("incident 1 declared: P1 on checkout/payment (triggered)\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("P1 declared by ops on payment (device = mobile)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("paged L1 (on-call engineer): P1 incident opened"),
        "{stdout}"
    );
    let outbox = server.run(&["incident", "outbox"]);
    assert!(
        text(&outbox.stdout).contains("page L1 (on-call engineer): P1 incident opened"),
        "{}",
        text(&outbox.stdout)
    );
    // The same stage again: the server's 409 names the open incident.
    let again = declare("payment");
    assert_eq!(again.status.code(), Some(1));
    assert!(
        text(&again.stderr).contains("409 incident 1 is already open"),
        "{}",
        text(&again.stderr)
    );
    // A stage the config does not know: the 400 names the field.
    let unknown = declare("wishlist");
    assert_eq!(unknown.status.code(), Some(1));
    assert!(
        text(&unknown.stderr).contains("400 stage: no stage `wishlist`"),
        "{}",
        text(&unknown.stderr)
    );
    // An ack is told to those paged, in the outbox.
    let ack = server.run(&["incident", "ack", "1"]);
    assert!(ack.status.success(), "{}", text(&ack.stderr));
    let outbox = server.run(&["incident", "outbox"]);
    assert!(
        text(&outbox.stdout).contains("acknowledged by ops (told: on-call engineer)"),
        "{}",
        text(&outbox.stdout)
    );
}
