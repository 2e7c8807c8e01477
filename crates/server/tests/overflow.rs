//! Numbers with limits, through the real server on both stores: the revenue overflow attack is
//! refused message by message while other clients carry on, sums that reach the `i64` bounds
//! saturate instead of failing a commit, and a bad cell already in a database is read as 0 and
//! reported without stopping the metrics API or the detector.

mod common;

use serde_json::{Value, json};

use common::{MINUTE, T0, TestServer, on_postgresql};
use revloop_core::{Config, Timestamp};

/// The attack's amount: 9 × 10^18 minor units, so that two of them overflow `i64`.
const ATTACK_REVENUE: u64 = 90_000_000_000_000_000;

fn order(id: &str, revenue: Value) -> Value {
    json!({
        "type": "track", "event": "Order Completed", "messageId": id, "userId": "u1",
        "timestamp": Timestamp::from_millis(T0).to_string(),
        "properties": {"revenue": revenue},
    })
}

/// The checkout funnel's `order` stage over the minute of T0: (count, revenue in minor units).
fn order_minute(server: &TestServer) -> (i64, i64) {
    let reply = server.get(
        &format!(
            "/api/v1/funnels/checkout/metrics?from={}&to={}&step=1m",
            Timestamp::from_millis(T0),
            Timestamp::from_millis(T0 + MINUTE)
        ),
        &server.viewer,
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    let stages = reply.body["windows"][0]["stages"].as_array().unwrap();
    let order = stages.last().unwrap();
    (
        order["count"].as_i64().unwrap(),
        order["revenue"]["minor"].as_i64().unwrap(),
    )
}

/// Waits until the detector has judged minutes after `at`: it ticks, it did not stop.
fn detector_judges_past(server: &TestServer, at: i64) {
    server.set_clock(at + 10 * MINUTE);
    server.wait_for("/api/v1/funnels/checkout/detector", |body| {
        body["judged_until"]
            .as_str()
            .and_then(|t| Timestamp::parse_rfc3339(t).ok())
            .is_some_and(|t| t.millis() > at)
    });
}

fn assert_refused_revenue(reply: &common::Reply) {
    assert_eq!(reply.status, 400, "{}", reply.body);
    let details = reply.body["error"]["details"].as_array().unwrap();
    assert!(
        details.iter().any(|d| d["field"] == "properties.revenue"),
        "{}",
        reply.body
    );
}

/// Two out-of-range orders in one minute, sent while another client sends valid ones: each
/// attack request is refused naming `properties.revenue`, every valid request lands, and the
/// metrics API and the detector keep working.
fn check_the_attack(server: &TestServer) {
    let n_valid = 20;
    std::thread::scope(|scope| {
        let valid = scope.spawn(|| {
            for i in 0..n_valid {
                let reply = server.ingest("/v1/track", &order(&format!("valid-{i}"), json!(25)));
                assert_eq!(reply.status, 200, "{}", reply.body);
            }
        });
        for i in 0..2 {
            let attack = order(&format!("attack-{i}"), json!(ATTACK_REVENUE));
            assert_refused_revenue(&server.ingest("/v1/track", &attack));
            // As a string, too: the same amount, the same refusal.
            let attack = order(&format!("attack-s{i}"), json!(ATTACK_REVENUE.to_string()));
            assert_refused_revenue(&server.ingest("/v1/track", &attack));
        }
        // In a batch the bad message is refused by itself, named by index; the rest count.
        let batch = json!({"batch": [
            order("batch-ok", json!(25)),
            order("batch-attack", json!(ATTACK_REVENUE)),
        ]});
        let reply = server.ingest("/v1/batch", &batch);
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(reply.body["counted"], 1, "{}", reply.body);
        let rejection = &reply.body["rejections"][0];
        assert_eq!(
            (&rejection["index"], &rejection["field"], &rejection["code"]),
            (
                &json!(1),
                &json!("properties.revenue"),
                &json!("out_of_range")
            ),
            "{}",
            reply.body
        );
        valid.join().unwrap();
    });
    let n_counted = n_valid + 1;
    assert_eq!(order_minute(server), (n_counted, n_counted * 2_500));
    detector_judges_past(server, T0);
    assert_eq!(order_minute(server), (n_counted, n_counted * 2_500));
}

/// Count records at the revenue cap, committed in two requests whose sum in one row leaves
/// `i64`: the store saturates at `i64::MAX` instead of failing the commit or changing the
/// column's type. One record over the cap is refused naming `revenue`.
fn check_sums_saturate(server: &TestServer) {
    let cap_major = "10000000000000.00";
    let records = |request: usize| -> Value {
        let counts: Vec<Value> = (0..5_000)
            .map(|i| {
                json!({
                    "funnel": "checkout", "stage": "order", "count": 1,
                    "window_start": Timestamp::from_millis(T0).to_string(),
                    "revenue": cap_major, "id": format!("cap-{request}-{i}"),
                })
            })
            .collect();
        json!({ "counts": counts })
    };
    for request in 0..2 {
        let reply = server.ingest("/api/v1/counts", &records(request));
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(reply.body["counted"], 5_000, "{}", reply.body);
    }
    assert_eq!(order_minute(server), (10_000, i64::MAX));
    let over = json!({"counts": [{
        "funnel": "checkout", "stage": "order", "count": 1,
        "window_start": Timestamp::from_millis(T0).to_string(),
        "revenue": "10000000000000.01", "id": "over",
    }]});
    let reply = server.ingest("/api/v1/counts", &over);
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert_eq!(
        reply.body["error"]["details"][0]["field"], "revenue",
        "{}",
        reply.body
    );
    detector_judges_past(server, T0);
}

#[test]
fn the_revenue_overflow_attack_is_refused_on_sqlite() {
    check_the_attack(&TestServer::start());
}

#[test]
fn revenue_sums_saturate_on_sqlite() {
    check_sums_saturate(&TestServer::start());
}

#[test]
fn the_revenue_overflow_attack_is_refused_on_postgresql() {
    on_postgresql("overflow", "attack", check_the_attack);
}

#[test]
fn revenue_sums_saturate_on_postgresql() {
    on_postgresql("overflow", "saturate", check_sums_saturate);
}

/// A SQLite database where a REAL was planted by hand in `revenue_minor` (what an older revloop
/// left after an overflow) and a text in `n_revenue_events`: after a restart, which makes the
/// detector warm up from those rows, the metrics API answers with the bad cells read as 0, the
/// cells are counted in `/metrics`, and the detector keeps judging.
#[test]
fn a_real_planted_in_revenue_minor_degrades_only_that_cell() {
    let config = Config::parse(Config::example_toml()).unwrap();
    let mut server = TestServer::start_on_file(config);
    for i in 0..3 {
        let reply = server.ingest("/v1/track", &order(&format!("o{i}"), json!(25)));
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    assert_eq!(order_minute(&server), (3, 7_500));
    let path = server.dir().join("test.db");
    let planted = rusqlite::Connection::open(&path).unwrap();
    planted
        .busy_timeout(std::time::Duration::from_secs(10))
        .unwrap();
    let mut n_planted = 0;
    for table in ["stage_counts", "stage_counts_recent"] {
        n_planted += planted
            .execute(
                &format!(
                    "UPDATE {table} SET revenue_minor = 1.8e19, n_revenue_events = 'many'
                     WHERE stage = 'order'"
                ),
                [],
            )
            .unwrap();
    }
    assert!(n_planted > 0);
    drop(planted);
    server.restart();

    // The count stays; the bad revenue reads as 0.
    assert_eq!(order_minute(&server), (3, 0));
    let metrics = server.get("/metrics", &server.viewer);
    assert_eq!(metrics.status, 200);
    let text = metrics.body.as_str().unwrap();
    let n_bad_cells: u64 = text
        .lines()
        .find_map(|line| line.strip_prefix("revloop_store_bad_cells_total "))
        .expect("the counter is exported")
        .parse()
        .unwrap();
    assert!(n_bad_cells >= 2, "{text}");
    detector_judges_past(&server, T0);
    assert_eq!(order_minute(&server), (3, 0));
}

#[test]
fn sqlite_store_sums_keep_the_integer_type() {
    // The store's upsert, straight on SQLite: the cast saturates what SQLite would turn into a
    // REAL. This pins the SQLite behaviour the store relies on.
    let connection = rusqlite::Connection::open_in_memory().unwrap();
    let cases: [(i64, i64, i64); 4] = [
        (1, 2, 3),
        (i64::MAX, 1, i64::MAX),
        (
            9_000_000_000_000_000_000,
            9_000_000_000_000_000_000,
            i64::MAX,
        ),
        (i64::MIN, -1, i64::MIN),
    ];
    for (a, b, want) in cases {
        let (kind, sum): (String, i64) = connection
            .query_row(
                "SELECT typeof(CAST(?1 + ?2 AS INTEGER)), CAST(?1 + ?2 AS INTEGER)",
                [a, b],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .unwrap();
        assert_eq!((kind.as_str(), sum), ("integer", want), "{a} + {b}");
    }
}
