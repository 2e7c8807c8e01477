//! A simulated event in the Segment HTTP Tracking API shape: one message object on one line of
//! JSON, as an SDK would send it to `/v1/track` or inside a `/v1/batch`.
//!
//! The traffic model knows nothing of JSON; this module is where its [`SimEvent`]s meet the
//! wire, for `revloop simulate`, the demo and the ingest benchmark. Dotted field paths become nested objects, decimals are written digit for digit from
//! their integer minor units (money never passes through a float), and strings are escaped as
//! RFC 8259 requires. The output depends only on the event, so a seeded simulation renders to
//! byte-identical text on every run. It only writes; the server reads with its own parser.

use std::fmt::Write as _;

use crate::{SimEvent, SimValue};
use revloop_core::config::PATH_ROOTS;
use revloop_core::funnel::CallKind;

/// Appends `event` to `out` as a single-line JSON object, without a trailing newline.
///
/// Track calls name the event in `"event"`, page and screen calls in `"name"`. The field
/// objects follow in the order `properties`, `context`, `traits`, keys inside them in the order
/// the event lists its fields. Should one path be a prefix of another (`context.device` and
/// `context.device.type`), the object wins and the shorter path's value is dropped, so that the
/// output never holds a key twice.
pub fn write_segment_json(event: &SimEvent, out: &mut String) {
    out.push_str("{\"type\":");
    write_json_string(event.kind.as_str(), out);
    match event.kind {
        CallKind::Track => {
            out.push_str(",\"event\":");
            write_json_string(&event.name, out);
        }
        CallKind::Page | CallKind::Screen => {
            out.push_str(",\"name\":");
            write_json_string(&event.name, out);
        }
        // These calls carry no event name.
        CallKind::Identify | CallKind::Group | CallKind::Alias => {}
    }
    out.push_str(",\"messageId\":");
    write_json_string(&event.message_id, out);
    out.push_str(",\"anonymousId\":");
    write_json_string(&event.anonymous_id, out);
    if let Some(user_id) = &event.user_id {
        out.push_str(",\"userId\":");
        write_json_string(user_id, out);
    }
    out.push_str(",\"timestamp\":");
    write_json_string(&event.timestamp.to_string(), out);

    let mut roots: Vec<(&str, Node)> = Vec::new();
    for (path, value) in &event.fields {
        insert(&mut roots, path.segments(), value);
    }
    // Known roots in their customary order, then any others as they came.
    let rank = |key: &str| {
        PATH_ROOTS
            .iter()
            .position(|root| *root == key)
            .unwrap_or(PATH_ROOTS.len())
    };
    roots.sort_by_key(|(key, _)| rank(key));
    for (key, node) in &roots {
        out.push(',');
        write_json_string(key, out);
        out.push(':');
        write_node(node, out);
    }
    out.push('}');
}

/// A field tree, borrowed from the event.
enum Node<'e> {
    Value(&'e SimValue),
    Object(Vec<(&'e str, Node<'e>)>),
}

fn insert<'e>(
    children: &mut Vec<(&'e str, Node<'e>)>,
    segments: &'e [String],
    value: &'e SimValue,
) {
    let Some((first, rest)) = segments.split_first() else {
        return;
    };
    let position = children.iter().position(|(key, _)| *key == first.as_str());
    if rest.is_empty() {
        match position {
            None => children.push((first.as_str(), Node::Value(value))),
            Some(index) => {
                // A later value replaces an earlier one; an object is never replaced by a value.
                if let Node::Value(_) = children[index].1 {
                    children[index].1 = Node::Value(value);
                }
            }
        }
        return;
    }
    let index = match position {
        Some(index) => index,
        None => {
            children.push((first.as_str(), Node::Object(Vec::new())));
            children.len() - 1
        }
    };
    if let Node::Value(_) = children[index].1 {
        children[index].1 = Node::Object(Vec::new());
    }
    if let Node::Object(grandchildren) = &mut children[index].1 {
        insert(grandchildren, rest, value);
    }
}

fn write_node(node: &Node, out: &mut String) {
    match node {
        Node::Value(value) => write_value(value, out),
        Node::Object(children) => {
            out.push('{');
            for (index, (key, child)) in children.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                write_json_string(key, out);
                out.push(':');
                write_node(child, out);
            }
            out.push('}');
        }
    }
}

fn write_value(value: &SimValue, out: &mut String) {
    match value {
        SimValue::Text(text) => write_json_string(text, out),
        // `SimValue`'s display of numbers is plain digits with an optional sign and point,
        // which is a JSON number: `85.12`, `-0.05`, `1200`.
        SimValue::Integer(_) | SimValue::Decimal { .. } => {
            write!(out, "{value}").expect("writing to a String cannot fail");
        }
    }
}

/// Appends `text` as a JSON string: quotes, backslashes and control characters escaped,
/// everything else (including non-ASCII) as is, copied in runs.
fn write_json_string(text: &str, out: &mut String) {
    out.push('"');
    let mut run_start = 0;
    for (index, byte) in text.bytes().enumerate() {
        let escape = match byte {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0C => "\\f",
            0x00..=0x1F => "",
            _ => continue,
        };
        // Every escaped byte is ASCII, so the run boundaries are character boundaries.
        out.push_str(&text[run_start..index]);
        if escape.is_empty() {
            write!(out, "\\u{byte:04x}").expect("writing to a String cannot fail");
        } else {
            out.push_str(escape);
        }
        run_start = index + 1;
    }
    out.push_str(&text[run_start..]);
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Scenario, simulate};
    use revloop_core::config::{Config, FieldPath};
    use revloop_core::time::Timestamp;

    fn event(kind: CallKind, name: &str, fields: &[(&str, SimValue)]) -> SimEvent {
        SimEvent {
            kind,
            name: name.to_owned(),
            message_id: "m-1".to_owned(),
            anonymous_id: "a-1".to_owned(),
            user_id: None,
            timestamp: Timestamp::parse_rfc3339("2026-11-20T10:00:03.120Z").unwrap(),
            fields: fields
                .iter()
                .map(|(path, value)| (FieldPath::parse(path).unwrap(), value.clone()))
                .collect(),
        }
    }

    fn text(value: &str) -> SimValue {
        SimValue::Text(value.to_owned())
    }

    fn json(event: &SimEvent) -> String {
        let mut out = String::new();
        write_segment_json(event, &mut out);
        out
    }

    #[test]
    fn renders_calls_as_the_tracking_api_expects() {
        let mut order = event(
            CallKind::Track,
            "Order Completed",
            &[
                ("context.device.type", text("mobile")),
                (
                    "properties.revenue",
                    SimValue::Decimal {
                        minor: 8512,
                        exponent: 2,
                    },
                ),
                ("context.location.country", text("US")),
                ("properties.currency", text("USD")),
                ("properties.payment_method", text("card")),
            ],
        );
        order.user_id = Some("user-1".to_owned());
        let cases = [
            (
                order,
                r#"{"type":"track","event":"Order Completed","messageId":"m-1","anonymousId":"a-1","userId":"user-1","timestamp":"2026-11-20T10:00:03.12Z","properties":{"revenue":85.12,"currency":"USD","payment_method":"card"},"context":{"device":{"type":"mobile"},"location":{"country":"US"}}}"#,
            ),
            (
                event(CallKind::Page, "Thanks", &[("traits.plan", text("v1"))]),
                r#"{"type":"page","name":"Thanks","messageId":"m-1","anonymousId":"a-1","timestamp":"2026-11-20T10:00:03.12Z","traits":{"plan":"v1"}}"#,
            ),
            (
                event(CallKind::Screen, "Home", &[]),
                r#"{"type":"screen","name":"Home","messageId":"m-1","anonymousId":"a-1","timestamp":"2026-11-20T10:00:03.12Z"}"#,
            ),
            (
                event(
                    CallKind::Identify,
                    "ignored",
                    &[("traits.plan", text("pro"))],
                ),
                r#"{"type":"identify","messageId":"m-1","anonymousId":"a-1","timestamp":"2026-11-20T10:00:03.12Z","traits":{"plan":"pro"}}"#,
            ),
        ];
        for (event, want) in cases {
            assert_eq!(json(&event), want);
        }
    }

    #[test]
    fn numbers_are_written_exactly() {
        let cases = [
            (
                SimValue::Decimal {
                    minor: 8512,
                    exponent: 2,
                },
                "85.12",
            ),
            (
                SimValue::Decimal {
                    minor: 8500,
                    exponent: 2,
                },
                "85.00",
            ),
            (
                SimValue::Decimal {
                    minor: 1200,
                    exponent: 0,
                },
                "1200",
            ),
            (
                SimValue::Decimal {
                    minor: 5,
                    exponent: 2,
                },
                "0.05",
            ),
            (
                SimValue::Decimal {
                    minor: -5,
                    exponent: 2,
                },
                "-0.05",
            ),
            (
                SimValue::Decimal {
                    minor: 1234,
                    exponent: 3,
                },
                "1.234",
            ),
            (SimValue::Integer(-42), "-42"),
            (text("42"), "\"42\""),
        ];
        for (value, want) in cases {
            let rendered = json(&event(CallKind::Track, "E", &[("properties.x", value)]));
            let want = format!(r#""properties":{{"x":{want}}}}}"#);
            assert!(rendered.ends_with(&want), "{rendered} lacks {want}");
            serde_json::from_str::<serde_json::Value>(&rendered).unwrap();
        }
    }

    #[test]
    fn strings_are_escaped() {
        let cases = [
            "plain",
            "",
            "say \"hi\"",
            "back\\slash",
            "line\nbreak\r\ttab",
            "\u{0}\u{1}\u{8}\u{c}\u{1f}\u{7f}",
            "Zürich 東京 🎉",
            "\u{2028}\u{2029}",
            "ends with \\",
        ];
        for original in cases {
            let mut out = String::new();
            write_json_string(original, &mut out);
            assert!(!out.contains('\n'), "{out}");
            let parsed: String = serde_json::from_str(&out).unwrap();
            assert_eq!(parsed, original);
        }
    }

    #[test]
    fn a_path_that_prefixes_another_yields_to_the_object() {
        let cases = [
            [
                ("context.device", "phone"),
                ("context.device.type", "mobile"),
            ],
            [
                ("context.device.type", "mobile"),
                ("context.device", "phone"),
            ],
        ];
        for fields in cases {
            let fields: Vec<(&str, SimValue)> = fields
                .iter()
                .map(|(path, value)| (*path, text(value)))
                .collect();
            let rendered = json(&event(CallKind::Track, "E", &fields));
            assert!(
                rendered.ends_with(r#""context":{"device":{"type":"mobile"}}}"#),
                "{rendered}"
            );
        }
    }

    /// Looks a dotted path up in parsed JSON and renders the scalar as text, as ingest does.
    fn scalar_at(message: &serde_json::Value, path: &FieldPath) -> Option<String> {
        let mut node = message;
        for segment in path.segments() {
            node = node.get(segment)?;
        }
        match node {
            serde_json::Value::String(text) => Some(text.clone()),
            serde_json::Value::Number(number) => Some(number.to_string()),
            _ => None,
        }
    }

    #[test]
    fn simulated_traffic_renders_to_valid_messages_carrying_every_field() {
        let config = Config::parse(Config::example_toml()).unwrap();
        let scenario = Scenario {
            conversion_swing: Default::default(),
            from: Timestamp::parse_rfc3339("2026-11-18T15:00:00Z").unwrap(),
            to: Timestamp::parse_rfc3339("2026-11-18T15:30:00Z").unwrap(),
            seed: 7,
            peak_sessions_per_minute: 20.0,
            incidents: Vec::new(),
        };
        let mut n_events = 0;
        simulate(&config, &scenario, |event| {
            let line = json(&event);
            assert!(!line.contains('\n'));
            let message: serde_json::Value = serde_json::from_str(&line).unwrap();
            assert_eq!(message["type"], "track");
            assert_eq!(message["event"], event.name.as_str());
            assert_eq!(message["messageId"], event.message_id.as_str());
            let timestamp = message["timestamp"].as_str().unwrap();
            assert_eq!(Timestamp::parse_rfc3339(timestamp), Ok(event.timestamp));
            for (path, value) in &event.fields {
                let want = match value {
                    // serde_json reads 85.00 as the float 85.0.
                    SimValue::Decimal { .. } => {
                        let float: f64 = value.to_string().parse().unwrap();
                        serde_json::Number::from_f64(float).unwrap().to_string()
                    }
                    _ => value.to_string(),
                };
                assert_eq!(scalar_at(&message, path), Some(want), "{path} in {line}");
            }
            n_events += 1;
        })
        .unwrap();
        assert!(n_events > 100, "{n_events}");
    }
}
