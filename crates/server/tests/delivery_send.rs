//! Each channel's sender against a real local receiver the test starts: the HTTP receiver
//! (tests/common/receiver.rs) for webhooks, Slack and PagerDuty, and a real SMTP server
//! (Python aiosmtpd, tests/smtp/install) for email. Nothing contacts another host.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::receiver::{PAGERDUTY_PATH, Receiver, Reply};
use common::smtp::{SmtpMode, SmtpServer};
use revloop_core::config::{Channel, ChannelKind, SecretSource, Smtp, SmtpTls, Url};
use revloop_core::delivery::{Message, MessageEvent, Outcome, RESPONSE_BYTES_MAX};
use revloop_core::incident::IncidentSeverity;
use revloop_core::{Currency, DurationMs, Money, Timestamp};
use revloop_server::delivery::signature::{SIGNATURE_TOLERANCE, verify_signature};
use revloop_server::delivery::{Attempt, Sender, SetupError, To};
use serde_json::json;

/// 2026-11-27T10:00:00Z.
const NOW: Timestamp = Timestamp::from_millis(1_795_773_600_000);
const SECRET: &str = "whsec_test";

fn message(event: MessageEvent) -> Message {
    Message {
        id: "msg-17".to_string(),
        event,
        incident: 12,
        at: NOW,
        title: "P1 conversion incident #12: checkout/payment drop-off 4.2σ below baseline"
            .to_string(),
        text:
            "Drop-off at payment rose to 38% (baseline 21%).\nLook at <the payment gateway> & PSP."
                .to_string(),
        severity: Some(IncidentSeverity::P1),
        level: Some("L1".to_string()),
        funnel: Some("checkout".to_string()),
        stage: Some("payment".to_string()),
        segment: Some(("country".to_string(), "DE".to_string())),
        sigma: Some(4.2),
        loss: Some(Money::new(123_456, Currency::parse("EUR").unwrap())),
        actor: None,
    }
}

fn channel(name: &str, kind: ChannelKind, timeout_ms: i64) -> Channel {
    Channel {
        name: name.to_string(),
        kind,
        concurrency: 4,
        timeout: DurationMs::from_millis(timeout_ms),
    }
}

/// Secrets from a map, as the server reads them from the environment or files.
fn secrets(map: &[(&str, &str)]) -> impl Fn(&SecretSource) -> Result<String, String> {
    let map: HashMap<String, String> = map
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |source| {
        let name = match source {
            SecretSource::Env(name) | SecretSource::File(name) => name,
        };
        map.get(name)
            .cloned()
            .ok_or_else(|| format!("the environment variable {name} is not set"))
    }
}

fn webhook(url: &str, timeout_ms: i64) -> Sender {
    let kind = ChannelKind::Webhook {
        url: Url(url.to_string()),
        secret: SecretSource::Env("HOOK_SECRET".to_string()),
    };
    Sender::new(
        &channel("hook", kind, timeout_ms),
        &secrets(&[("HOOK_SECRET", SECRET)]),
    )
    .unwrap()
}

fn to(key: &str) -> To<'_> {
    To {
        key,
        target: "on-call engineer",
        address: None,
        now: NOW,
    }
}

fn send(sender: &Sender, message: &Message, to: To<'_>) -> Attempt {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(sender.send(message, to))
}

const TRANSIENT: Outcome = Outcome::Transient { retry_after: None };

#[test]
fn a_webhook_is_signed_keyed_and_carries_the_message() {
    let receiver = Receiver::start();
    receiver.set_secret(SECRET);
    let sender = webhook(&receiver.url("/hook"), 5_000);
    let attempt = send(&sender, &message(MessageEvent::Trigger), to("dlv-17-1"));
    assert_eq!(attempt.outcome, Outcome::Delivered, "{attempt:?}");
    assert_eq!(attempt.status, "200");
    let request = &receiver.requests()[0];
    assert_eq!(request.signature_verified, Some(true));
    assert_eq!(request.signed_at, Some(NOW.millis() / 1_000));
    assert_eq!(request.header("idempotency-key"), Some("dlv-17-1"));
    assert_eq!(request.header("content-type"), Some("application/json"));
    // Our own verifier agrees, and refuses the same request five minutes and a second later.
    let header = request.header("revloop-signature").unwrap();
    assert_eq!(
        verify_signature(header, &request.body, SECRET, NOW, SIGNATURE_TOLERANCE),
        Ok(())
    );
    let late = Timestamp::from_millis(NOW.millis() + 301_000);
    assert!(verify_signature(header, &request.body, SECRET, late, SIGNATURE_TOLERANCE).is_err());
    let body = request.json();
    let expected = json!({
        "id": "msg-17", "delivery": "dlv-17-1", "target": "on-call engineer",
        "event": "trigger", "incident": 12, "at": "2026-11-27T10:00:00Z",
        "severity": "P1", "level": "L1", "funnel": "checkout", "stage": "payment",
        "segment": {"dimension": "country", "value": "DE"}, "sigma": 4.2,
        "loss": {"minor": 123456, "currency": "EUR"}, "actor": null,
    });
    for (field, value) in expected.as_object().unwrap() {
        assert_eq!(&body[field], value, "{field} in {body}");
    }
    assert!(
        body["title"]
            .as_str()
            .unwrap()
            .starts_with("P1 conversion incident #12")
    );
    // The same delivery again (a retry) carries the same key: an idempotent receiver acts once.
    receiver.set_idempotent(true);
    send(&sender, &message(MessageEvent::Trigger), to("dlv-17-1"));
    assert_eq!(receiver.key_counts("dlv-17-1"), (2, 1));
}

#[test]
fn http_answers_are_judged_by_the_receiver_rule() {
    let receiver = Receiver::start();
    receiver.script(
        "/hook",
        vec![
            Reply::with_body(400, "unknown field `incident`"),
            Reply::status(404),
            Reply::status(500),
            Reply::status(408),
            Reply::retry_after(429, "7"),
            Reply::retry_after(503, "Fri, 27 Nov 2026 10:01:00 GMT"),
            Reply::status(301),
        ],
    );
    let sender = webhook(&receiver.url("/hook"), 5_000);
    let attempts: Vec<(String, Outcome)> = (0..7)
        .map(|_| send(&sender, &message(MessageEvent::Trigger), to("k")))
        .map(|a| (a.status, a.outcome))
        .collect();
    let secs = |s| Outcome::Transient {
        retry_after: Some(DurationMs::from_secs(s)),
    };
    let expected = [
        ("400", Outcome::Permanent),
        ("404", Outcome::Permanent),
        ("500", TRANSIENT),
        ("408", TRANSIENT),
        ("429", secs(7)),
        ("503", secs(60)),
        ("301", Outcome::Permanent),
    ];
    let expected: Vec<(String, Outcome)> =
        expected.iter().map(|(s, o)| (s.to_string(), *o)).collect();
    assert_eq!(attempts, expected);
    // The receiver's reason is kept with the attempt.
    receiver.script(
        "/hook",
        vec![Reply::with_body(422, "unknown field `incident`")],
    );
    let attempt = send(&sender, &message(MessageEvent::Trigger), to("k"));
    assert_eq!(attempt.response, "unknown field `incident`");
}

#[test]
fn a_long_answer_is_cut_at_a_char_boundary() {
    let receiver = Receiver::start();
    let long = "é".repeat(5 * RESPONSE_BYTES_MAX);
    receiver.set_default("/hook", Reply::with_body(500, &long));
    let attempt = send(
        &webhook(&receiver.url("/hook"), 5_000),
        &message(MessageEvent::Trigger),
        to("k"),
    );
    assert!(attempt.response.len() <= RESPONSE_BYTES_MAX);
    assert!(attempt.response.len() >= RESPONSE_BYTES_MAX - 1);
    assert!(attempt.response.chars().all(|c| c == 'é'));
}

#[test]
fn a_hanging_receiver_times_out_within_the_channel_limit() {
    let receiver = Receiver::start();
    receiver.set_default("/hook", Reply::hang(Duration::from_secs(60)));
    let sender = webhook(&receiver.url("/hook"), 300);
    let started = Instant::now();
    let attempt = send(&sender, &message(MessageEvent::Trigger), to("k"));
    let elapsed = started.elapsed();
    assert_eq!(
        (attempt.status.as_str(), attempt.outcome),
        ("timeout", TRANSIENT)
    );
    assert!(elapsed >= Duration::from_millis(300), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
    assert_eq!(receiver.received(), 1);
}

/// A port on 127.0.0.1 that nothing listens on (bound, then released).
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[test]
fn an_unreachable_receiver_is_a_transient_connect_failure() {
    let sender = webhook(&format!("http://127.0.0.1:{}/hook", closed_port()), 5_000);
    let attempt = send(&sender, &message(MessageEvent::Trigger), to("k"));
    assert_eq!(
        (attempt.status.as_str(), attempt.outcome),
        ("connect", TRANSIENT),
        "{attempt:?}"
    );
    assert!(!attempt.response.is_empty());
}

#[test]
fn a_slack_url_never_shows_in_a_failure() {
    // The URL is the channel's secret: an unreachable one must not be named in the answer
    // that the outbox, the timeline and `notify test` show.
    let url = format!(
        "http://127.0.0.1:{}/services/T000/B000/SECRETPART",
        closed_port()
    );
    let kind = ChannelKind::Slack {
        url: SecretSource::Env("SLACK_URL".to_string()),
    };
    let sender = Sender::new(
        &channel("chat", kind, 5_000),
        &secrets(&[("SLACK_URL", &url)]),
    )
    .unwrap();
    let attempt = send(&sender, &message(MessageEvent::Trigger), to("k"));
    assert_eq!(attempt.status, "connect", "{attempt:?}");
    assert!(!attempt.response.contains("SECRETPART"), "{attempt:?}");
    assert!(!attempt.response.is_empty());
}

#[test]
fn https_to_a_receiver_that_speaks_no_tls_is_a_tls_failure() {
    let receiver = Receiver::start();
    let url = format!("https://127.0.0.1:{}/hook", receiver.addr.port());
    let attempt = send(
        &webhook(&url, 5_000),
        &message(MessageEvent::Trigger),
        to("k"),
    );
    assert_eq!(
        (attempt.status.as_str(), attempt.outcome),
        ("tls", TRANSIENT),
        "{attempt:?}"
    );
}

#[test]
fn slack_gets_text_and_blocks() {
    let receiver = Receiver::start();
    let kind = ChannelKind::Slack {
        url: SecretSource::File("/run/secrets/slack".to_string()),
    };
    let url = receiver.url("/services/T000/B000/XXXX");
    let sender = Sender::new(
        &channel("chat", kind, 5_000),
        &secrets(&[("/run/secrets/slack", &url)]),
    )
    .unwrap();
    let attempt = send(&sender, &message(MessageEvent::Trigger), to("k"));
    assert_eq!(attempt.outcome, Outcome::Delivered);
    let body = receiver.requests()[0].json();
    assert!(
        body["text"]
            .as_str()
            .unwrap()
            .starts_with("P1 conversion incident #12")
    );
    let blocks = body["blocks"].as_array().unwrap();
    assert_eq!(blocks[0]["type"], "header");
    assert_eq!(blocks[0]["text"]["type"], "plain_text");
    assert_eq!(blocks[1]["type"], "section");
    // Slack's control characters are escaped in mrkdwn.
    let text = blocks[1]["text"]["text"].as_str().unwrap();
    assert!(
        text.contains("&lt;the payment gateway&gt; &amp; PSP"),
        "{text}"
    );
    let fields = blocks[2]["fields"].as_array().unwrap();
    assert!(
        fields.iter().any(|f| f["text"] == "*Stage*\npayment"),
        "{fields:?}"
    );
    assert!(
        fields
            .iter()
            .any(|f| f["text"] == "*Loss so far*\n1234.56 EUR"),
        "{fields:?}"
    );
    // A Slack URL read from its secret must still be a URL.
    let kind = ChannelKind::Slack {
        url: SecretSource::Env("SLACK_URL".to_string()),
    };
    let err = Sender::new(
        &channel("chat", kind, 5_000),
        &secrets(&[("SLACK_URL", "not a url")]),
    )
    .err()
    .unwrap();
    assert!(
        err.to_string()
            .starts_with("channel chat: the Slack webhook URL read is not a valid URL"),
        "{err}"
    );
}

fn pagerduty(receiver: &Receiver) -> Sender {
    let kind = ChannelKind::PagerDuty {
        url: Url(receiver.url(PAGERDUTY_PATH)),
        routing_key: SecretSource::Env("PD_KEY".to_string()),
    };
    let key = "R0UT1NGKEY00000000000000000000AB";
    Sender::new(&channel("pd", kind, 5_000), &secrets(&[("PD_KEY", key)])).unwrap()
}

#[test]
fn pagerduty_gets_trigger_acknowledge_and_resolve_on_one_dedup_key() {
    let receiver = Receiver::start();
    let sender = pagerduty(&receiver);
    let mut acknowledged = message(MessageEvent::Acknowledge);
    acknowledged.actor = Some("alice".to_string());
    for event in [
        message(MessageEvent::Trigger),
        acknowledged,
        message(MessageEvent::Resolve),
    ] {
        let attempt = send(&sender, &event, to("k"));
        assert_eq!(
            (attempt.status.as_str(), attempt.outcome),
            ("202", Outcome::Delivered),
            "{attempt:?}"
        );
    }
    let events: Vec<serde_json::Value> = receiver.requests().iter().map(|r| r.json()).collect();
    let actions: Vec<&str> = events
        .iter()
        .map(|e| e["event_action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["trigger", "acknowledge", "resolve"]);
    assert!(
        events
            .iter()
            .all(|e| e["dedup_key"] == "revloop-incident-12")
    );
    assert!(
        events
            .iter()
            .all(|e| e["routing_key"] == "R0UT1NGKEY00000000000000000000AB")
    );
    let payload = &events[0]["payload"];
    assert_eq!(payload["severity"], "critical");
    assert_eq!(payload["source"], "revloop");
    assert_eq!(payload["component"], "payment");
    assert_eq!(payload["group"], "checkout");
    assert_eq!(payload["class"], "conversion drop-off");
    assert_eq!(payload["timestamp"], "2026-11-27T10:00:00Z");
    let details = &payload["custom_details"];
    assert_eq!(
        (details["stage"].clone(), details["sigma"].clone()),
        (json!("payment"), json!(4.2))
    );
    assert_eq!(details["loss"], "1234.56 EUR");
    // P2 is error, P3 warning, no severity info; a long title is cut to PagerDuty's 1024.
    for (severity, expected) in [
        (Some(IncidentSeverity::P2), "error"),
        (Some(IncidentSeverity::P3), "warning"),
        (None, "info"),
    ] {
        let mut m = message(MessageEvent::Remind);
        m.severity = severity;
        m.title = "x".repeat(2_000);
        assert_eq!(send(&sender, &m, to("k")).outcome, Outcome::Delivered);
        let event = receiver.requests().last().unwrap().json();
        assert_eq!(event["payload"]["severity"], expected);
        assert_eq!(
            event["payload"]["summary"]
                .as_str()
                .unwrap()
                .chars()
                .count(),
            1_024
        );
    }
}

#[test]
fn a_pagerduty_test_triggers_then_resolves_its_own_key() {
    let receiver = Receiver::start();
    let sender = pagerduty(&receiver);
    let mut test = message(MessageEvent::Test);
    test.id = "msg-test-1".to_string();
    test.incident = 0;
    assert_eq!(send(&sender, &test, to("k")).outcome, Outcome::Delivered);
    let events: Vec<serde_json::Value> = receiver.requests().iter().map(|r| r.json()).collect();
    let actions: Vec<&str> = events
        .iter()
        .map(|e| e["event_action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["trigger", "resolve"]);
    assert!(
        events
            .iter()
            .all(|e| e["dedup_key"] == "revloop-test-msg-test-1")
    );
    // A refused trigger is reported, and nothing is resolved after it.
    receiver.script(
        PAGERDUTY_PATH,
        vec![Reply::with_body(400, "{\"status\":\"invalid event\"}")],
    );
    let attempt = send(&sender, &test, to("k"));
    assert_eq!(
        (attempt.status.as_str(), attempt.outcome),
        ("400", Outcome::Permanent)
    );
    assert_eq!(receiver.received(), 3);
}

#[test]
fn a_missing_secret_names_the_channel_and_the_source() {
    let kind = ChannelKind::Webhook {
        url: Url("https://hooks.example.com/x".to_string()),
        secret: SecretSource::Env("REVLOOP_HOOK_SECRET".to_string()),
    };
    let err = Sender::new(&channel("oncall-hook", kind, 5_000), &secrets(&[]))
        .err()
        .unwrap();
    assert_eq!(
        err,
        SetupError {
            channel: "oncall-hook".to_string(),
            reason: "the signing secret: the environment variable REVLOOP_HOOK_SECRET is not set"
                .to_string(),
        }
    );
    let smtp = Smtp {
        host: "smtp.example.com".to_string(),
        port: 587,
        tls: SmtpTls::StartTls,
        auth: Some((
            "revloop".to_string(),
            SecretSource::File("/run/secrets/smtp".to_string()),
        )),
        from: "revloop <revloop@example.com>".to_string(),
    };
    let err = Sender::new(
        &channel("mail", ChannelKind::Email(smtp), 5_000),
        &secrets(&[]),
    )
    .err()
    .unwrap();
    assert!(
        err.to_string()
            .starts_with("channel mail: the SMTP password of `revloop`"),
        "{err}"
    );
}

#[test]
fn the_log_channel_always_delivers() {
    let sender = Sender::new(&channel("log", ChannelKind::Log, 1_000), &secrets(&[])).unwrap();
    let attempt = send(&sender, &message(MessageEvent::Trigger), to("k"));
    assert_eq!(
        (attempt.status.as_str(), attempt.outcome),
        ("log", Outcome::Delivered)
    );
}

// Email against a real SMTP server.

fn mail_sender(port: u16, auth: bool, password: &str) -> Sender {
    tls_mail_sender(port, SmtpTls::None, auth, password)
}

fn tls_mail_sender(port: u16, tls: SmtpTls, auth: bool, password: &str) -> Sender {
    let smtp = Smtp {
        host: "127.0.0.1".to_string(),
        port,
        tls,
        auth: auth.then(|| {
            (
                "revloop".to_string(),
                SecretSource::Env("SMTP_PW".to_string()),
            )
        }),
        from: "revloop <revloop@example.com>".to_string(),
    };
    let channel = channel("mail", ChannelKind::Email(smtp), 5_000);
    Sender::new(&channel, &secrets(&[("SMTP_PW", password)])).unwrap()
}

fn mail_to<'a>(key: &'a str, address: &'a str) -> To<'a> {
    To {
        key,
        target: "CTO",
        address: Some(address),
        now: NOW,
    }
}

/// A header's value in a raw email (unfolded), `None` when absent.
fn header(email: &str, name: &str) -> Option<String> {
    let head = email.split("\r\n\r\n").next().unwrap_or(email);
    let unfolded = head.replace("\r\n ", " ").replace("\r\n\t", " ");
    let prefix = format!("{}: ", name.to_ascii_lowercase());
    unfolded.split("\r\n").find_map(|line| {
        line.to_ascii_lowercase()
            .starts_with(&prefix)
            .then(|| line[prefix.len()..].trim().to_string())
    })
}

#[test]
fn an_email_is_multipart_threaded_and_authenticated() {
    let Some(server) = SmtpServer::start(SmtpMode::Plain) else {
        return;
    };
    let sender = mail_sender(server.port, true, "pw");
    let attempt = send(
        &sender,
        &message(MessageEvent::Trigger),
        mail_to("dlv-17-3", "cto@example.com"),
    );
    assert_eq!(
        (attempt.status.as_str(), attempt.outcome),
        ("250", Outcome::Delivered),
        "{attempt:?}"
    );
    assert!(attempt.response.contains("Message accepted"), "{attempt:?}");
    let mut resolved = message(MessageEvent::Resolve);
    resolved.title = "Resolved: P1 conversion incident #12".to_string();
    send(&sender, &resolved, mail_to("dlv-18-3", "cto@example.com"));
    let emails = server.messages();
    assert_eq!(emails.len(), 2);
    let auth = server.auth_log();
    assert!(
        auth.lines().all(|l| l.ends_with(" ok")) && !auth.is_empty(),
        "{auth}"
    );
    let first = &emails[0];
    assert_eq!(
        header(first, "Message-ID").as_deref(),
        Some("<dlv-17-3@revloop>")
    );
    assert_eq!(
        header(&emails[1], "Message-ID").as_deref(),
        Some("<dlv-18-3@revloop>")
    );
    for email in &emails {
        assert_eq!(
            header(email, "In-Reply-To").as_deref(),
            Some("<incident-12@revloop>")
        );
        assert_eq!(
            header(email, "References").as_deref(),
            Some("<incident-12@revloop>")
        );
        assert!(
            header(email, "Subject").unwrap().contains("[revloop #12]"),
            "{email}"
        );
        assert_eq!(header(email, "To").as_deref(), Some("cto@example.com"));
    }
    assert!(
        header(first, "From")
            .unwrap()
            .contains("revloop@example.com")
    );
    let content_type = header(first, "Content-Type").unwrap();
    assert!(
        content_type.starts_with("multipart/alternative"),
        "{content_type}"
    );
    assert!(
        first.contains("Content-Type: text/plain; charset=utf-8"),
        "{first}"
    );
    assert!(
        first.contains("Content-Type: text/html; charset=utf-8"),
        "{first}"
    );
    // The HTML part is escaped by the template engine; the text part is as written.
    let decoded = decode_quoted_printable(first);
    assert!(
        decoded.contains("&lt;the payment gateway&gt; &amp; PSP"),
        "{decoded}"
    );
    assert!(
        decoded.contains("Look at <the payment gateway> & PSP."),
        "{decoded}"
    );
}

/// Quoted-printable soft breaks and `=XX` escapes undone (enough to search a body).
fn decode_quoted_printable(text: &str) -> String {
    let joined = text.replace("=\r\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'=', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn smtp_replies_are_judged_by_rfc_5321() {
    let Some(server) = SmtpServer::start(SmtpMode::Plain) else {
        return;
    };
    let sender = mail_sender(server.port, false, "");
    let m = message(MessageEvent::Trigger);
    let attempt = send(&sender, &m, mail_to("k1", "reject@example.com"));
    assert_eq!(
        (attempt.status.as_str(), attempt.outcome),
        ("550", Outcome::Permanent),
        "{attempt:?}"
    );
    assert!(attempt.response.contains("no such user"), "{attempt:?}");
    let attempt = send(&sender, &m, mail_to("k2", "busy@example.com"));
    assert_eq!(
        (attempt.status.as_str(), attempt.outcome),
        ("451", TRANSIENT),
        "{attempt:?}"
    );
    // A wrong password is refused by the server: 535, permanent until the config changes.
    let attempt = send(
        &mail_sender(server.port, true, "wrong"),
        &m,
        mail_to("k3", "cto@example.com"),
    );
    assert_eq!(
        (attempt.status.as_str(), attempt.outcome),
        ("535", Outcome::Permanent),
        "{attempt:?}"
    );
    assert!(server.messages().is_empty());
}

#[test]
fn an_unreachable_smtp_server_is_a_transient_connect_failure() {
    // No SMTP server is needed: nothing listens on the port.
    let sender = mail_sender(closed_port(), false, "");
    let started = Instant::now();
    let attempt = send(
        &sender,
        &message(MessageEvent::Trigger),
        mail_to("k", "cto@example.com"),
    );
    assert_eq!(
        (attempt.status.as_str(), attempt.outcome),
        ("connect", TRANSIENT),
        "{attempt:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    // An SMTP server that accepts the connection and never speaks: the channel's timeout.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let smtp = Smtp {
        host: "127.0.0.1".to_string(),
        port,
        tls: SmtpTls::None,
        auth: None,
        from: "revloop@example.com".to_string(),
    };
    let sender = Sender::new(
        &channel("mail", ChannelKind::Email(smtp), 300),
        &secrets(&[]),
    )
    .unwrap();
    let started = Instant::now();
    let attempt = send(
        &sender,
        &message(MessageEvent::Trigger),
        mail_to("k", "cto@example.com"),
    );
    assert_eq!(
        (attempt.status.as_str(), attempt.outcome),
        ("timeout", TRANSIENT),
        "{attempt:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[test]
fn tls_is_never_given_up_for_plain_text() {
    // The servers' certificates are self-signed and not trusted here: each TLS mode must fail
    // as "tls" rather than send in clear. (tests/cli_notify.rs trusts them and delivers.)
    let m = message(MessageEvent::Trigger);
    for (mode, tls) in [
        (SmtpMode::StartTls, SmtpTls::StartTls),
        (SmtpMode::Implicit, SmtpTls::Implicit),
    ] {
        let Some(server) = SmtpServer::start(mode) else {
            return;
        };
        let sender = tls_mail_sender(server.port, tls, true, "pw");
        let attempt = send(&sender, &m, mail_to("k", "cto@example.com"));
        assert_eq!(
            (attempt.status.as_str(), attempt.outcome),
            ("tls", TRANSIENT),
            "{mode:?}: {attempt:?}"
        );
        assert!(server.messages().is_empty() && server.auth_log().is_empty());
    }
    // A server that offers no STARTTLS, when STARTTLS is required: refused, nothing sent.
    let Some(plain) = SmtpServer::start(SmtpMode::Plain) else {
        return;
    };
    let sender = tls_mail_sender(plain.port, SmtpTls::StartTls, true, "pw");
    let attempt = send(&sender, &m, mail_to("k", "cto@example.com"));
    assert_eq!(
        (attempt.status.as_str(), attempt.outcome),
        ("tls", TRANSIENT),
        "{attempt:?}"
    );
    assert!(plain.messages().is_empty() && plain.auth_log().is_empty());
}
