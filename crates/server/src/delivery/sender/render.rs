//! What each channel sends for a [`Message`]: the webhook's JSON, Slack's `text` + `blocks`,
//! PagerDuty's Events v2 events, an email's subject, plain text and HTML. Pure: no IO.

use revloop_core::delivery::{Message, MessageEvent};
use revloop_core::incident::IncidentSeverity;
use serde_json::{Value, json};

/// PagerDuty's longest `payload.summary`, in characters.
pub const PAGERDUTY_SUMMARY_MAX: usize = 1_024;
/// Slack's longest text in a section block, in characters.
pub const SLACK_TEXT_MAX: usize = 3_000;
/// Slack's longest header block text, in characters.
pub const SLACK_HEADER_MAX: usize = 150;

/// The generic webhook's body. `delivery` is the delivery's idempotency key (also the
/// `Idempotency-Key` header); `id` is the message's, the same for every target.
pub fn webhook_body(message: &Message, key: &str, target: &str) -> Value {
    json!({
        "id": message.id,
        "delivery": key,
        "target": target,
        "event": message.event.as_str(),
        "incident": message.incident,
        "at": message.at.to_string(),
        "title": message.title,
        "text": message.text,
        "severity": message.severity.map(IncidentSeverity::as_str),
        "level": message.level,
        "funnel": message.funnel,
        "stage": message.stage,
        "segment": message.segment.as_ref().map(|(k, v)| json!({"dimension": k, "value": v})),
        "sigma": message.sigma.filter(|s| s.is_finite()),
        "loss": message.loss.map(|m| json!({"minor": m.minor, "currency": m.currency.code()})),
        "actor": message.actor,
    })
}

/// A Slack-compatible incoming webhook's body: `text` (the notification's fallback) and a
/// header block with the title, a section with the text, and one with the fields.
pub fn slack_body(message: &Message) -> Value {
    let mut fields = Vec::new();
    let mut field = |name: &str, value: Option<String>| {
        if let Some(value) = value {
            fields.push(
                json!({"type": "mrkdwn", "text": format!("*{name}*\n{}", slack_escape(&value))}),
            );
        }
    };
    field("Event", Some(message.event.as_str().to_string()));
    field("Severity", message.severity.map(|s| s.as_str().to_string()));
    field("Level", message.level.clone());
    field("Funnel", message.funnel.clone());
    field("Stage", message.stage.clone());
    field(
        "Segment",
        message.segment.as_ref().map(|(k, v)| format!("{k}={v}")),
    );
    field(
        "Deviation",
        message
            .sigma
            .filter(|s| s.is_finite())
            .map(|s| format!("{s:.1}σ")),
    );
    field("Loss so far", message.loss.map(|m| m.to_string()));
    field("By", message.actor.clone());
    // Slack takes at most 10 fields in a section.
    fields.truncate(10);
    let mut blocks = vec![json!({
        "type": "header",
        "text": {"type": "plain_text", "text": cut_chars(&message.title, SLACK_HEADER_MAX)},
    })];
    if !message.text.is_empty() {
        blocks.push(json!({
            "type": "section",
            "text": {"type": "mrkdwn", "text": cut_chars(&slack_escape(&message.text), SLACK_TEXT_MAX)},
        }));
    }
    blocks.push(json!({"type": "section", "fields": fields}));
    json!({
        "text": cut_chars(
            &slack_escape(&format!("{}\n{}", message.title, message.text)),
            SLACK_TEXT_MAX
        ),
        "blocks": blocks,
    })
}

/// Slack's three control characters in text (`&`, `<`, `>`), escaped as its docs ask.
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The incident's dedup key: the same for every event of an incident, so PagerDuty folds
/// triggers, acknowledgements and the resolve into one of its incidents.
pub fn pagerduty_dedup_key(message: &Message) -> String {
    if message.event == MessageEvent::Test {
        // A test never touches a real incident's PagerDuty incident.
        format!("revloop-test-{}", message.id)
    } else {
        format!("revloop-incident-{}", message.incident)
    }
}

/// PagerDuty's severity for an incident's: critical P1, error P2, warning P3, info otherwise.
pub fn pagerduty_severity(severity: Option<IncidentSeverity>) -> &'static str {
    match severity {
        Some(IncidentSeverity::P1) => "critical",
        Some(IncidentSeverity::P2) => "error",
        Some(IncidentSeverity::P3) => "warning",
        None => "info",
    }
}

/// The events a message is sent as, in order: one, except a test, which triggers and at once
/// resolves its own dedup key, so that it leaves no PagerDuty incident open.
pub fn pagerduty_events(message: &Message, routing_key: &str) -> Vec<Value> {
    let dedup_key = pagerduty_dedup_key(message);
    let event = |action: &str| json!({"routing_key": routing_key, "event_action": action, "dedup_key": dedup_key});
    match message.event {
        MessageEvent::Trigger | MessageEvent::Remind | MessageEvent::SlaBreached => {
            vec![pagerduty_trigger(message, event("trigger"))]
        }
        MessageEvent::Acknowledge => vec![event("acknowledge")],
        MessageEvent::Resolve => vec![event("resolve")],
        MessageEvent::Test => vec![
            pagerduty_trigger(message, event("trigger")),
            event("resolve"),
        ],
    }
}

fn pagerduty_trigger(message: &Message, mut event: Value) -> Value {
    let summary = if message.title.trim().is_empty() {
        format!("revloop incident #{}", message.incident)
    } else {
        message.title.clone()
    };
    let mut payload = json!({
        "summary": cut_chars(&summary, PAGERDUTY_SUMMARY_MAX),
        "source": "revloop",
        "severity": pagerduty_severity(message.severity),
        "timestamp": message.at.to_string(),
        "class": "conversion drop-off",
        "custom_details": {
            "incident": message.incident,
            "event": message.event.as_str(),
            "stage": message.stage,
            "funnel": message.funnel,
            "segment": message.segment.as_ref().map(|(k, v)| format!("{k}={v}")),
            "sigma": message.sigma.filter(|s| s.is_finite()),
            "loss": message.loss.map(|m| m.to_string()),
            "loss_minor": message.loss.map(|m| m.minor),
            "level": message.level,
            "text": message.text,
        },
    });
    if let Some(stage) = &message.stage {
        payload["component"] = json!(stage);
    }
    if let Some(funnel) = &message.funnel {
        payload["group"] = json!(funnel);
    }
    event["payload"] = payload;
    event["client"] = json!("revloop");
    event
}

/// `[revloop #<incident>] <title>`: the incident number in brackets, so that mail clients and
/// filters group an incident's emails (with the threading headers).
pub fn email_subject(message: &Message) -> String {
    let title = cut_chars(&message.title.replace(['\r', '\n'], " "), 200);
    if message.event == MessageEvent::Test {
        format!("[revloop test] {title}")
    } else {
        format!("[revloop #{}] {title}", message.incident)
    }
}

/// The message id every email of an incident refers to (`In-Reply-To`, `References`), so that
/// they thread: the incident's, not any one email's.
pub fn email_thread_id(message: &Message) -> Option<String> {
    (message.event != MessageEvent::Test)
        .then(|| format!("<incident-{}@revloop>", message.incident))
}

/// The plain-text part: the title, the text, then the facts.
pub fn email_text(message: &Message) -> String {
    let mut text = format!("{}\n\n{}\n\n", message.title, message.text);
    for (name, value) in facts(message) {
        text.push_str(&format!("{name}: {value}\n"));
    }
    text
}

const EMAIL_HTML: &str = r#"<!doctype html>
<html><body style="font-family: sans-serif">
<h2>{{ title }}</h2>
{% for line in lines %}<p>{{ line }}</p>
{% endfor %}<table>
{% for fact in facts %}<tr><th align="left">{{ fact[0] }}</th><td>{{ fact[1] }}</td></tr>
{% endfor %}</table>
</body></html>
"#;

/// The HTML alternative, every value escaped by the template engine's HTML autoescape.
pub fn email_html(message: &Message) -> Result<String, String> {
    let mut env = minijinja::Environment::new();
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::Html);
    env.add_template("email.html", EMAIL_HTML)
        .map_err(|e| e.to_string())?;
    let lines: Vec<&str> = message
        .text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    let facts: Vec<(String, String)> = facts(message)
        .into_iter()
        .map(|(name, value)| (name.to_string(), value))
        .collect();
    env.get_template("email.html")
        .and_then(|t| {
            t.render(minijinja::context! { title => message.title, lines => lines, facts => facts })
        })
        .map_err(|e| e.to_string())
}

fn facts(message: &Message) -> Vec<(&'static str, String)> {
    let mut facts = vec![("Event", message.event.as_str().to_string())];
    if message.incident != 0 {
        facts.push(("Incident", format!("#{}", message.incident)));
    }
    let optional = [
        ("Severity", message.severity.map(|s| s.as_str().to_string())),
        ("Level", message.level.clone()),
        ("Funnel", message.funnel.clone()),
        ("Stage", message.stage.clone()),
        (
            "Segment",
            message.segment.as_ref().map(|(k, v)| format!("{k}={v}")),
        ),
        (
            "Deviation",
            message
                .sigma
                .filter(|s| s.is_finite())
                .map(|s| format!("{s:.1}σ")),
        ),
        ("Loss so far", message.loss.map(|m| m.to_string())),
        ("By", message.actor.clone()),
    ];
    facts.extend(optional.into_iter().filter_map(|(n, v)| v.map(|v| (n, v))));
    facts.push(("At", message.at.to_string()));
    facts
}

/// At most `max` characters of `text`, with `…` where it was cut.
pub fn cut_chars(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}
