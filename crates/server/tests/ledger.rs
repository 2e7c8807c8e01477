//! The ledger API against the real server: posting, retries, reversal, the reads, the
//! exports, and every rejection as a clear 4xx that leaves the trial balance as it was.

mod common;

use serde_json::{Value, json};

use common::{Reply, TestServer};
use revloop_core::Config;

/// The example config with a closed expense account, 6900.
fn config() -> Config {
    let toml = format!(
        "{}\n[[ledger.accounts]]\ncode = 6900\nname = \"Retired expense\"\nclosed = true\n",
        Config::example_toml()
    );
    Config::parse(&toml).expect("the config parses")
}

fn start() -> TestServer {
    TestServer::start_on_file(config())
}

/// A loss estimate: debit 6200, credit 2300, in the shop's currency (USD).
fn estimate(id: &str, amount: &str) -> Value {
    json!({
        "id": id,
        "description": "Revenue loss - payment anomaly",
        "effective_at": "2026-11-27T10:00:00Z",
        "incident": 1,
        "inputs": {"loss_minor": 1234, "aov": "85.00"},
        "lines": [
            {"account": 6200, "account_type": "EXPENSE", "side": "debit", "amount": amount},
            {"accountCode": 2300, "side": "credit", "amount": amount},
        ],
    })
}

fn post(server: &TestServer, body: &Value) -> Reply {
    server.post_json("/api/v1/ledger/entries", &server.admin, body)
}

fn trial_balance(server: &TestServer) -> Value {
    let reply = server.get("/api/v1/ledger/trial-balance", &server.viewer);
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.body
}

#[test]
fn post_retry_conflict_and_read_back() {
    let server = start();
    let created = post(&server, &estimate("hand-1-est-1", "12.34"));
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.body["seq"], 1);
    assert_eq!(created.body["currency"], "USD");
    assert_eq!(created.body["lines"][0]["amount"], "12.34");
    assert_eq!(created.body["lines"][0]["amount_minor"], 1234);
    assert_eq!(
        created.body["inputs_json"],
        r#"{"aov":"85.00","loss_minor":1234}"#
    );
    // A retry answers the stored entry.
    let again = post(&server, &estimate("hand-1-est-1", "12.34"));
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.body, created.body);
    let balance = trial_balance(&server);
    assert_eq!(balance["balanced"], true);
    assert_eq!(balance["totals"][0]["debits"], "12.34");
    let accounts: Vec<(u64, &str)> = balance["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["account"].as_u64().unwrap(),
                a["balance"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(accounts, [(2300, "-12.34"), (6200, "12.34")]);

    let list = server.get("/api/v1/ledger/entries?incident=1", &server.viewer);
    assert_eq!(list.status, 200, "{}", list.body);
    assert_eq!(list.body["entries"][0]["id"], "hand-1-est-1");
    assert_eq!(list.body["next_after"], Value::Null);
    let none = server.get("/api/v1/ledger/entries?incident=2", &server.viewer);
    assert_eq!(none.body["entries"], json!([]));

    post(&server, &estimate("hand-1-est-2", "1.00"));
    let statement = server.get(
        "/api/v1/ledger/accounts/6200/statement?limit=1",
        &server.viewer,
    );
    assert_eq!(statement.status, 200, "{}", statement.body);
    assert_eq!(statement.body["lines"][0]["balance"], "12.34");
    assert_eq!(statement.body["next_after"], 1);
    let rest = server.get(
        "/api/v1/ledger/accounts/6200/statement?after=1",
        &server.viewer,
    );
    assert_eq!(rest.body["lines"][0]["balance"], "13.34");
    assert_eq!(rest.body["lines"][0]["balance_minor"], "1334");

    let chart = server.get("/api/v1/ledger/accounts", &server.viewer);
    let codes: Vec<u64> = chart.body["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["code"].as_u64().unwrap())
        .collect();
    assert!(codes.contains(&6200) && codes.contains(&6900), "{codes:?}");
}

#[test]
fn reversal_once() {
    let server = start();
    assert_eq!(post(&server, &estimate("e1", "5.00")).status, 201);
    let path = "/api/v1/ledger/entries/e1/reverse";
    let reversed = server.post_json(path, &server.admin, &json!({}));
    assert_eq!(reversed.status, 201, "{}", reversed.body);
    assert_eq!(reversed.body["id"], "e1.reversal");
    assert_eq!(reversed.body["reverses"], "e1");
    assert_eq!(reversed.body["lines"][0]["side"], "credit");
    // The same reversal again is a retry: the stored one.
    let again = server.post_json(path, &server.admin, &json!({}));
    assert_eq!(again.status, 200, "{}", again.body);
    let before = trial_balance(&server);
    assert!(
        before["accounts"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["balance_minor"] == "0"),
        "{before}"
    );
    // Another reversal of it is refused.
    let second = server.post_json(path, &server.admin, &json!({"id": "e1-rev-2"}));
    assert_eq!(second.status, 409, "{}", second.body);
    assert_eq!(second.body["error"]["code"], "already_reversed");
    assert_eq!(trial_balance(&server), before);
    // A reversal is not reversed in turn: that would book the estimate again behind the
    // back of whoever reads it as reversed.
    let undo = server.post_json(
        "/api/v1/ledger/entries/e1.reversal/reverse",
        &server.admin,
        &json!({}),
    );
    assert_eq!(undo.status, 422, "{}", undo.body);
    assert_eq!(undo.body["error"]["code"], "reversal_of_reversal");
    assert_eq!(trial_balance(&server), before);
    // The incident lifecycle's ids are its own.
    for id in ["inc-7-est-1", "inc-7-final"] {
        let taken = post(&server, &estimate(id, "5.00"));
        assert_eq!(taken.status, 400, "{}", taken.body);
        assert_eq!(taken.body["error"]["code"], "reserved_id", "{}", taken.body);
    }
    let taken = server.post_json(path, &server.admin, &json!({"id": "inc-7-rev-1"}));
    assert_eq!(taken.status, 400, "{}", taken.body);
    assert_eq!(trial_balance(&server), before);
    let unknown = server.post_json(
        "/api/v1/ledger/entries/nope/reverse",
        &server.admin,
        &json!({}),
    );
    assert_eq!(unknown.status, 404, "{}", unknown.body);
    assert_eq!(unknown.body["error"]["code"], "unknown_entry");
    let entry = server.get("/api/v1/ledger/entries", &server.viewer);
    assert_eq!(entry.body["entries"][0]["reversed_by"], "e1.reversal");
}

/// Each rejection: its status, its enumerated code, the field it names, and no change to the
/// books. `validate` answers the same code for the rule refusals.
#[test]
fn every_rejection_is_a_clear_4xx_and_changes_nothing() {
    let server = start();
    assert_eq!(post(&server, &estimate("kept", "1.00")).status, 201);
    let before = trial_balance(&server);
    let with = |edit: &dyn Fn(&mut Value)| {
        let mut body = estimate("new-1", "2.00");
        edit(&mut body);
        body
    };
    let cases: Vec<(&str, Value, u16, &str, &str)> = vec![
        (
            "unbalanced",
            with(&|b| b["lines"][1]["amount"] = json!("1.99")),
            422,
            "unbalanced",
            "lines",
        ),
        (
            "mixed currencies",
            with(&|b| b["lines"][1]["currency"] = json!("EUR")),
            422,
            "mixed_currencies",
            "lines",
        ),
        (
            "unknown account",
            with(&|b| b["lines"][0]["account"] = json!(6300)),
            422,
            "unknown_account",
            "lines[0].account",
        ),
        (
            "closed account",
            with(&|b| b["lines"][0]["account"] = json!(6900)),
            422,
            "closed_account",
            "lines[0].account",
        ),
        (
            "zero amount",
            with(&|b| {
                b["lines"][0] = json!({"account": 6200, "side": "debit", "amount_minor": 0});
                b["lines"][1] = json!({"account": 2300, "side": "credit", "amount_minor": 0});
            }),
            422,
            "non_positive_amount",
            "lines[0].amount_minor",
        ),
        (
            "negative amount",
            with(&|b| {
                b["lines"][0] = json!({"account": 6200, "side": "debit", "amount": "-2.00"});
                b["lines"][1] = json!({"account": 2300, "side": "credit", "amount": "-2.00"});
            }),
            422,
            "non_positive_amount",
            "lines[0].amount_minor",
        ),
        (
            "type mismatch",
            with(&|b| b["lines"][0]["account_type"] = json!("REVENUE")),
            422,
            "type_mismatch",
            "lines[0].account_type",
        ),
        (
            "one line",
            with(&|b| b["lines"] = json!([b["lines"][0].clone()])),
            422,
            "too_few_lines",
            "lines",
        ),
        (
            "empty description",
            with(&|b| b["description"] = json!("")),
            422,
            "empty_description",
            "description",
        ),
        (
            "overflow",
            with(&|b| {
                b["lines"] = json!([
                    {"account": 6200, "side": "debit", "amount_minor": i64::MAX},
                    {"account": 6200, "side": "debit", "amount_minor": 1},
                    {"account": 2300, "side": "credit", "amount_minor": 1},
                ]);
            }),
            422,
            "overflow",
            "lines",
        ),
        (
            "same id, other body",
            {
                let mut body = estimate("kept", "1.01");
                body["id"] = json!("kept");
                body
            },
            409,
            "id_conflict",
            "id",
        ),
        (
            "no id",
            with(&|b| b.as_object_mut().unwrap().remove("id").map(drop).unwrap()),
            400,
            "missing_field",
            "id",
        ),
        (
            "bad side",
            with(&|b| b["lines"][0]["side"] = json!("left")),
            400,
            "invalid_field",
            "lines[0].side",
        ),
        (
            "both amounts",
            with(&|b| b["lines"][0]["amount_minor"] = json!(200)),
            400,
            "invalid_field",
            "lines[0].amount",
        ),
        (
            "unknown field",
            with(&|b| b["lines"][0]["colour"] = json!("red")),
            400,
            "invalid_field",
            "lines[0].colour",
        ),
        (
            "NUL in the description",
            with(&|b| b["description"] = json!("loss\u{0}")),
            400,
            "invalid_field",
            "description",
        ),
        (
            "bad id",
            with(&|b| b["id"] = json!("has space")),
            400,
            "invalid_field",
            "id",
        ),
    ];
    for (name, body, status, code, field) in cases {
        let reply = post(&server, &body);
        assert_eq!(reply.status, status, "{name}: {}", reply.body);
        assert_eq!(reply.body["error"]["code"], code, "{name}: {}", reply.body);
        assert_eq!(
            reply.body["error"]["details"][0]["field"], field,
            "{name}: {}",
            reply.body
        );
        assert_eq!(trial_balance(&server), before, "{name}");
        if status == 422 {
            let validated = server.post_json("/api/v1/ledger/validate", &server.viewer, &body);
            assert_eq!(validated.status, 422, "{name}: {}", validated.body);
            assert_eq!(validated.body["error"]["code"], code, "{name}");
        }
    }
    let listed = server.get("/api/v1/ledger/entries", &server.viewer);
    assert_eq!(listed.body["entries"].as_array().unwrap().len(), 1);
}

#[test]
fn validate_changes_nothing_and_follows_the_runbook_shape() {
    let server = start();
    let body = json!({
        "description": "Revenue loss - checkout anomaly",
        "lines": [
            {"accountCode": 6200, "accountType": "EXPENSE", "side": "debit", "amount": "99.95"},
            {"accountCode": 2300, "accountType": "LIABILITY", "side": "credit", "amount": "99.95"},
        ],
    });
    let reply = server.post_json("/api/v1/ledger/validate", &server.viewer, &body);
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["seq"], Value::Null);
    assert_eq!(reply.body["lines"][1]["amount_minor"], 9995);
    assert_eq!(trial_balance(&server)["accounts"], json!([]));
}

#[test]
fn roles() {
    let server = start();
    let viewer = server.post_json(
        "/api/v1/ledger/entries",
        &server.viewer,
        &estimate("x", "1.00"),
    );
    assert_eq!(viewer.status, 403, "{}", viewer.body);
    let responder = server.post_json(
        "/api/v1/ledger/entries",
        &server.responder,
        &estimate("x", "1.00"),
    );
    assert_eq!(responder.status, 403, "{}", responder.body);
    let reader = server.get("/api/v1/ledger/trial-balance", &server.write_key);
    assert_eq!(reader.status, 403, "{}", reader.body);
}

#[test]
fn exports_stream_every_entry() {
    let server = start();
    for n in 0..3 {
        let reply = post(&server, &estimate(&format!("e{n}"), "1.50"));
        assert_eq!(reply.status, 201, "{}", reply.body);
    }
    let get_text = |format: &str| {
        let reply = server.get(
            &format!("/api/v1/ledger/export?format={format}"),
            &server.viewer,
        );
        assert_eq!(reply.status, 200, "{format}");
        reply.body
    };
    let jsonl = get_text("jsonl");
    let text = match &jsonl {
        Value::String(text) => text.clone(),
        // A single entry would parse as JSON by itself; three lines do not.
        other => other.to_string(),
    };
    assert_eq!(text.lines().count(), 3, "{text}");
    let beancount = get_text("beancount");
    let beancount = beancount.as_str().unwrap();
    assert!(beancount.contains("open"), "{beancount}");
    assert!(beancount.contains("e1"), "{beancount}");
    let csv = get_text("csv");
    assert!(csv.as_str().unwrap().lines().count() >= 4, "{csv}");
    let named = server.get(
        "/api/v1/ledger/export?format=beancount&names=chart",
        &server.viewer,
    );
    let named = named.body.as_str().unwrap().to_owned();
    assert!(
        named.contains("Expenses:LostRevenueExpense:6200"),
        "{named}"
    );
    let bad = server.get("/api/v1/ledger/export?format=xml", &server.viewer);
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert_eq!(bad.body["error"]["details"][0]["field"], "format");
}
