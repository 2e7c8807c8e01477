//! Revenue impact through the real server: a checkout outage in live traffic opens an
//! incident priced at the configured AOV, `GET /api/v1/incidents/{id}/impact` lists every
//! window's inputs so that the arithmetic can be redone by hand, a responder resolves it as a
//! false alarm (a bad body is a 400), and the report then leaves its loss out.

mod common;

use serde_json::{Value, json};

use common::*;
use revloop_core::rng::Rng;

/// Fifteen clean days, then live minutes with checkout broken until the incident opens, and
/// `more` broken minutes after. Returns the incident's id.
fn a_priced_incident(server: &TestServer, more: i64) -> u64 {
    let mut rng = Rng::new(11);
    let windows = 15 * 24 * 12;
    server.post_counts(&count_records(
        &mut rng,
        T0 - windows * 5 * MINUTE,
        windows,
        300,
        80.0,
        |_| false,
    ));
    let reply = server.post_json("/api/v1/detector/rebuild", &server.admin, &json!({}));
    assert_eq!(reply.status, 200, "{}", reply.body);
    server.set_clock(T0 + MINUTE);
    server.wait_until_judged(T0);
    let mut opened_at: Option<i64> = None;
    let mut id = None;
    for minute in 0..40 {
        let start = T0 + minute * MINUTE;
        server.set_clock(start + 30_000);
        server.post_counts(&count_records(&mut rng, start, 1, 60, 80.0, |_| true));
        server.set_clock(start + 2 * MINUTE);
        server.wait_until_judged(start + MINUTE);
        if id.is_none() {
            let open = server.get("/api/v1/incidents?state=open", &server.viewer);
            id = open.body["incidents"][0]["id"].as_u64();
            if id.is_some() {
                opened_at = Some(minute);
            }
        }
        if opened_at.is_some_and(|at| minute >= at + more) {
            return id.unwrap();
        }
    }
    panic!("no incident after forty broken minutes");
}

fn minor(value: &Value) -> i64 {
    value["minor"].as_i64().unwrap()
}

#[test]
fn impact_lists_every_input_and_a_false_alarm_leaves_the_totals() {
    let server = TestServer::start();
    let id = a_priced_incident(&server, 12);
    let reply = server.get(&format!("/api/v1/incidents/{id}/impact"), &server.viewer);
    assert_eq!(reply.status, 200, "{}", reply.body);
    let body = &reply.body;
    let impact = &body["impact"];
    assert_eq!(minor(&impact["aov"]), 8_500, "{body}");
    assert_eq!(impact["aov_source"], "config");
    assert_eq!(body["rounding"], "half_even");
    assert!(minor(&impact["loss"]) > 0, "{body}");
    assert_eq!(impact["within_noise"], false, "{body}");
    // Every window by hand: its lost orders are its excess drop-offs weighted by the chance
    // to order after payment (0.85 in this shop), clipped at zero, in millionths; its loss is
    // those times the AOV; the total is their sum, rounded once.
    let windows = body["windows"].as_array().unwrap();
    assert!(!windows.is_empty(), "{body}");
    assert_eq!(body["windows_omitted"], 0, "{body}");
    let mut total: i128 = 0;
    for window in windows {
        let shoppers = window["shoppers"].as_f64().unwrap();
        let went_on = window["went_on"].as_f64().unwrap();
        let baseline = window["baseline_drop_off"].as_f64().unwrap();
        let downstream = window["downstream_conversion"].as_f64().unwrap();
        assert!((downstream - 0.85).abs() < 0.05, "{window}");
        let by_hand = (((shoppers - went_on) - shoppers * baseline) * downstream).max(0.0);
        let lost = window["lost_micro_orders"].as_i64().unwrap();
        assert!(
            (lost as f64 / 1e6 - by_hand).abs() < 1e-3,
            "{lost} vs {by_hand}: {window}"
        );
        let loss: i128 = window["loss_micro_minor"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(loss, i128::from(lost) * 8_500, "{window}");
        total += loss;
    }
    assert_eq!(body["loss_micro_minor"], total.to_string());
    let rounded = (total + 500_000) / 1_000_000;
    assert!(
        (minor(&impact["loss"]) as i128 - rounded).abs() <= 1,
        "{body}"
    );
    assert!(body["inputs_json"].as_str().unwrap().starts_with('{'));
    // The incident's own body carries the same figures.
    let incident = server.get(&format!("/api/v1/incidents/{id}"), &server.viewer);
    assert_eq!(incident.body["impact"]["loss"], impact["loss"]);

    // Bad requests: each a clear 4xx.
    for (path, status) in [
        (format!("/api/v1/incidents/{id}/impact?limit=0"), 400),
        (format!("/api/v1/incidents/{id}/impact?limit=241"), 400),
        (format!("/api/v1/incidents/{id}/impact?page=2"), 400),
        ("/api/v1/incidents/999/impact".to_owned(), 404),
        ("/api/v1/incidents/abc/impact".to_owned(), 404),
    ] {
        assert_eq!(server.get(&path, &server.viewer).status, status, "{path}");
    }
    let limited = server.get(
        &format!("/api/v1/incidents/{id}/impact?limit=1"),
        &server.viewer,
    );
    assert_eq!(limited.body["windows"].as_array().unwrap().len(), 1);
    assert_eq!(
        limited.body["windows_omitted"].as_u64().unwrap(),
        windows.len() as u64 - 1
    );

    // The live service booked the estimate in the ledger, linked to the incident.
    let booked = server.get(
        &format!("/api/v1/ledger/entries?incident={id}"),
        &server.viewer,
    );
    assert_eq!(booked.status, 200, "{}", booked.body);
    let first = &booked.body["entries"][0];
    assert_eq!(first["id"], format!("inc-{id}-est-1"), "{}", booked.body);
    assert!(first["inputs_json"].as_str().unwrap().contains("aov_minor"));
    assert!(expense(&server) > 0);

    // Resolving as a false alarm: a bad body is refused, and nothing changes.
    let resolve = format!("/api/v1/incidents/{id}/resolve");
    for bad in [
        json!({"false_alarm": "yes"}),
        json!({"false_alarm": 1}),
        json!({"false_alarm": true, "text": "x"}),
    ] {
        let reply = server.post_json(&resolve, &server.responder, &bad);
        assert_eq!(reply.status, 400, "{bad}: {}", reply.body);
    }
    let still = server.get(&format!("/api/v1/incidents/{id}"), &server.viewer);
    assert_eq!(still.body["state"], "triggered");
    let reply = server.post_json(
        &resolve,
        &server.responder,
        &json!({"false_alarm": true, "reason": "a load test"}),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["state"], "resolved");
    assert_eq!(reply.body["false_alarm"], true);
    let last = reply.body["timeline"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["kind"], "resolved");
    assert_eq!(last["text"], "resolved as a false alarm (a load test)");
    // The report counts its loss apart, in no total.
    let report = server.get("/api/v1/incidents/report", &server.viewer);
    assert_eq!(report.status, 200, "{}", report.body);
    let loss = &report.body["loss"];
    assert_eq!(loss["false_alarms"], 1, "{loss}");
    assert_eq!(loss["incidents_priced"], 0, "{loss}");
    assert_eq!(minor(&loss["total"]), 0, "{loss}");
    assert!(
        minor(&loss["false_alarm_loss"]) >= minor(&impact["loss"]),
        "{loss}"
    );
    assert!(loss["by_stage"].as_array().unwrap().is_empty(), "{loss}");
    // And the books take back every estimate: nothing stays booked as lost.
    assert_eq!(expense(&server), 0);
}

/// The net debit of 6200 Lost Revenue Expense, from a trial balance that balances.
fn expense(server: &TestServer) -> i64 {
    let reply = server.get("/api/v1/ledger/trial-balance", &server.viewer);
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["balanced"], true, "{}", reply.body);
    reply.body["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|row| row["account"] == 6200)
        .map(|row| {
            row["balance_minor"]
                .as_str()
                .unwrap()
                .parse::<i64>()
                .unwrap()
        })
        .sum()
}
