//! Durability against the real binary: `revloop serve` in a child process, killed with
//! SIGKILL in the middle of a stream of acknowledged batches, then restarted. What was
//! acknowledged must be counted, exactly once, once unacknowledged batches are retried as any
//! SDK would. Dedup must hold across the restart.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod support;

use support::{Server, agent, free_port, setup};

fn now_rfc3339() -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    revloop_core::Timestamp::from_millis(ms).to_string()
}

fn batch(ids: std::ops::Range<usize>, timestamp: &str) -> String {
    let messages: Vec<Value> = ids
        .map(|i| json!({"type": "track", "event": "Product Viewed", "messageId": format!("crash-{i}"), "anonymousId": "a", "timestamp": timestamp}))
        .collect();
    json!({ "batch": messages }).to_string()
}

fn post_batch(base: &str, write_key: &str, body: &str) -> Option<u16> {
    agent()
        .post(&format!("{base}/v1/batch"))
        .header("Authorization", &format!("Bearer {write_key}"))
        .header("Content-Type", "application/json")
        .send(body)
        .ok()
        .map(|response| response.status().as_u16())
}

fn product_views(base: &str, token: &str) -> i64 {
    let mut response = agent()
        .get(&format!("{base}/api/v1/funnels/checkout/metrics?step=1d"))
        .header("Authorization", &format!("Bearer {token}"))
        .call()
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap();
    body["windows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["stages"][0]["count"].as_i64().unwrap())
        .sum()
}

#[test]
fn kill_9_mid_stream_loses_nothing_acknowledged_and_counts_nothing_twice() {
    const BATCH_MESSAGES: usize = 200;
    const N_SENDERS: usize = 3;
    let (dir, secrets) = setup(&["ingest", "viewer"]);
    let (write_key, viewer) = (&secrets[0], &secrets[1]);
    let port = free_port();
    let server = Server::start(dir.path(), port);
    let timestamp = now_rfc3339();
    let next_batch = Arc::new(AtomicUsize::new(0));
    let acknowledged: Arc<Mutex<Vec<usize>>> = Arc::default();
    let unacknowledged: Arc<Mutex<Vec<usize>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let senders: Vec<_> = (0..N_SENDERS)
        .map(|_| {
            let (base, write_key, timestamp) =
                (server.base.clone(), write_key.clone(), timestamp.clone());
            let (next_batch, acknowledged, unacknowledged, stop) = (
                next_batch.clone(),
                acknowledged.clone(),
                unacknowledged.clone(),
                stop.clone(),
            );
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let index = next_batch.fetch_add(1, Ordering::SeqCst);
                    let body = batch(
                        index * BATCH_MESSAGES..(index + 1) * BATCH_MESSAGES,
                        &timestamp,
                    );
                    match post_batch(&base, &write_key, &body) {
                        Some(200) => acknowledged.lock().unwrap().push(index),
                        _ => {
                            unacknowledged.lock().unwrap().push(index);
                            return;
                        }
                    }
                }
            })
        })
        .collect();
    // Let a stream of acknowledged batches build up, then pull the plug mid-stream.
    let started = Instant::now();
    while acknowledged.lock().unwrap().len() < 30 && started.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(5));
    }
    server.kill_9();
    stop.store(true, Ordering::SeqCst);
    for sender in senders {
        sender.join().unwrap();
    }
    let n_acknowledged = acknowledged.lock().unwrap().len();
    assert!(
        n_acknowledged >= 30,
        "only {n_acknowledged} batches were acknowledged before the kill"
    );

    let server = Server::start(dir.path(), free_port());
    let counted_after_crash = product_views(&server.base, viewer);
    let acknowledged_events = (n_acknowledged * BATCH_MESSAGES) as i64;
    let in_flight_events = (unacknowledged.lock().unwrap().len() * BATCH_MESSAGES) as i64;
    assert!(
        counted_after_crash >= acknowledged_events
            && counted_after_crash <= acknowledged_events + in_flight_events,
        "after the crash {counted_after_crash} events are counted; {acknowledged_events} were acknowledged and {in_flight_events} in flight"
    );
    // An SDK retries what was never acknowledged, and anything it is unsure of: everything.
    for index in unacknowledged
        .lock()
        .unwrap()
        .iter()
        .chain(acknowledged.lock().unwrap().iter())
    {
        let body = batch(
            index * BATCH_MESSAGES..(index + 1) * BATCH_MESSAGES,
            &timestamp,
        );
        assert_eq!(post_batch(&server.base, write_key, &body), Some(200));
    }
    let n_batches = n_acknowledged + unacknowledged.lock().unwrap().len();
    assert_eq!(
        product_views(&server.base, viewer),
        (n_batches * BATCH_MESSAGES) as i64
    );
}

#[test]
fn dedup_holds_across_a_restart() {
    let (dir, secrets) = setup(&["ingest", "viewer"]);
    let (write_key, viewer) = (&secrets[0], &secrets[1]);
    let timestamp = now_rfc3339();
    let body = batch(0..50, &timestamp);
    let server = Server::start(dir.path(), free_port());
    assert_eq!(post_batch(&server.base, write_key, &body), Some(200));
    drop(server);
    let server = Server::start(dir.path(), free_port());
    let mut response = agent()
        .post(&format!("{}/v1/batch", server.base))
        .header("Authorization", &format!("Bearer {write_key}"))
        .send(&body)
        .unwrap();
    let reply: Value =
        serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap();
    assert_eq!(
        (reply["counted"].as_i64(), reply["duplicates"].as_i64()),
        (Some(0), Some(50)),
        "{reply}"
    );
    assert_eq!(product_views(&server.base, viewer), 50);
}
