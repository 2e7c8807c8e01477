//! The Segment HTTP Tracking API wire format: one message object in, a [`ParsedMessage`] out.
//!
//! The parser makes a single pass over the JSON and keeps only what the config reads: the
//! message's own fields plus the dimension and filter paths, which arrive as a trie of slots.
//! Everything else is checked for well-formedness and skipped without allocating. When it
//! fails it says which field it was in. It never judges a message (identity, times,
//! admission): the ingest path does that with what it returns.

use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

use revloop_core::config::{FieldPath, PATH_ROOTS};
use revloop_core::funnel::CallKind;

/// Largest message, in bytes of JSON. Segment's own limit.
pub const MESSAGE_BYTES_MAX: usize = 32 * 1024;

/// A message as it came, before validation: every field optional, values as sent.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ParsedMessage<'a> {
    pub kind: Option<Cow<'a, str>>,
    pub event: Option<Cow<'a, str>>,
    pub name: Option<Cow<'a, str>>,
    pub message_id: Option<Cow<'a, str>>,
    pub user_id: Option<Cow<'a, str>>,
    pub anonymous_id: Option<Cow<'a, str>>,
    pub timestamp: Option<Cow<'a, str>>,
    pub sent_at: Option<Cow<'a, str>>,
    pub write_key: Option<Cow<'a, str>>,
    /// Slot values; see `revloop_core::funnel::Matcher::slots`. Strings without escapes are
    /// borrowed from the body.
    pub fields: Vec<Option<Cow<'a, str>>>,
    /// Slots whose value was sent but cannot be used as text; their `fields` entry is `None`.
    pub invalid: Vec<InvalidField>,
}

/// A slot whose value was sent but cannot be used as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidField {
    pub slot: usize,
    /// What was wrong, as a phrase: "holds a lone UTF-16 surrogate escape".
    pub reason: &'static str,
}

/// Why a message could not be read, and in which field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseProblem {
    pub field: Option<String>,
    pub message: String,
}

impl fmt::Display for ParseProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.field {
            Some(field) => write!(f, "{field}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

#[derive(Debug, Default)]
struct PathNode {
    children: Vec<(String, PathNode)>,
    slot: Option<usize>,
}

impl PathNode {
    fn child(&self, key: &str) -> Option<&PathNode> {
        self.children
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, node)| node)
    }
}

/// Parses messages for one config. Cheap to share between threads.
#[derive(Debug)]
pub struct SegmentParser {
    root: PathNode,
    n_slots: usize,
}

impl SegmentParser {
    pub fn new(slots: &[FieldPath]) -> SegmentParser {
        let mut root = PathNode::default();
        for (slot, path) in slots.iter().enumerate() {
            let mut node = &mut root;
            for segment in path.segments() {
                let index = match node.children.iter().position(|(k, _)| k == segment) {
                    Some(index) => index,
                    None => {
                        node.children.push((segment.clone(), PathNode::default()));
                        node.children.len() - 1
                    }
                };
                node = &mut node.children[index].1;
            }
            node.slot = Some(slot);
        }
        SegmentParser {
            root,
            n_slots: slots.len(),
        }
    }

    /// Parses one message object.
    pub fn parse<'a>(&self, json: &'a str) -> Result<ParsedMessage<'a>, ParseProblem> {
        let path = RefCell::new(Vec::new());
        let mut message = ParsedMessage {
            fields: vec![None; self.n_slots],
            ..ParsedMessage::default()
        };
        let mut deserializer = serde_json::Deserializer::from_str(json);
        let seed = MessageSeed {
            root: &self.root,
            path: &path,
            message: &mut message,
        };
        let result = seed
            .deserialize(&mut deserializer)
            .and_then(|()| deserializer.end());
        match result {
            Ok(()) => Ok(message),
            Err(err) => {
                let field = path.borrow().join(".");
                Err(ParseProblem {
                    field: (!field.is_empty()).then_some(field),
                    message: describe_json_error(&err),
                })
            }
        }
    }
}

/// serde_json's message, with the position kept only where it helps (syntax errors).
fn describe_json_error(err: &serde_json::Error) -> String {
    let text = err.to_string();
    match err.classify() {
        serde_json::error::Category::Syntax | serde_json::error::Category::Eof => text,
        _ => text.split(" at line ").next().unwrap_or(&text).to_owned(),
    }
}

type Path = RefCell<Vec<String>>;

struct MessageSeed<'p, 'de> {
    root: &'p PathNode,
    path: &'p Path,
    message: &'p mut ParsedMessage<'de>,
}

impl<'de> DeserializeSeed<'de> for MessageSeed<'_, 'de> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for MessageSeed<'_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a message object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key_seed(KeySeed)? {
            let key = key.as_str();
            let slot: Option<&mut Option<Cow<'de, str>>> = match key {
                "type" => Some(&mut self.message.kind),
                "event" => Some(&mut self.message.event),
                "name" => Some(&mut self.message.name),
                "messageId" => Some(&mut self.message.message_id),
                "userId" => Some(&mut self.message.user_id),
                "anonymousId" => Some(&mut self.message.anonymous_id),
                "timestamp" => Some(&mut self.message.timestamp),
                "sentAt" => Some(&mut self.message.sent_at),
                "writeKey" => Some(&mut self.message.write_key),
                _ => None,
            };
            if let Some(slot) = slot {
                self.path.borrow_mut().push(key.to_owned());
                let identifier = matches!(key, "userId" | "anonymousId" | "messageId");
                *slot = map.next_value_seed(TextSeed {
                    allow_number: identifier,
                })?;
                self.path.borrow_mut().pop();
            } else if PATH_ROOTS.contains(&key) {
                self.path.borrow_mut().push(key.to_owned());
                let node = self.root.child(key);
                map.next_value_seed(ObjectSeed {
                    node,
                    path: self.path,
                    fields: &mut self.message.fields,
                    invalid: &mut self.message.invalid,
                    nested: false,
                })?;
                self.path.borrow_mut().pop();
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

/// A map key, borrowed from the input where it has no escapes.
enum Key<'de> {
    Borrowed(&'de str),
    Owned(String),
}

impl Key<'_> {
    fn as_str(&self) -> &str {
        match self {
            Key::Borrowed(s) => s,
            Key::Owned(s) => s,
        }
    }
}

struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Key<'de>;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Key<'de>, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Key<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
        Ok(Key::Borrowed(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
        Ok(Key::Owned(v.to_owned()))
    }
}

/// A string (or, for identifiers, a number rendered as text) or null.
struct TextSeed {
    allow_number: bool,
}

impl<'de> DeserializeSeed<'de> for TextSeed {
    type Value = Option<Cow<'de, str>>;

    fn deserialize<D: de::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Option<Cow<'de, str>>, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TextSeed {
    type Value = Option<Cow<'de, str>>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        if self.allow_number {
            f.write_str("a string or a number")
        } else {
            f.write_str("a string")
        }
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Option<Cow<'de, str>>, E> {
        Ok(Some(Cow::Borrowed(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Option<Cow<'de, str>>, E> {
        Ok(Some(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Option<Cow<'de, str>>, E> {
        Ok(Some(Cow::Owned(v)))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Option<Cow<'de, str>>, E> {
        Ok(None)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Option<Cow<'de, str>>, E> {
        if self.allow_number {
            Ok(Some(Cow::Owned(v.to_string())))
        } else {
            Err(E::invalid_type(de::Unexpected::Signed(v), &self))
        }
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Option<Cow<'de, str>>, E> {
        if self.allow_number {
            Ok(Some(Cow::Owned(v.to_string())))
        } else {
            Err(E::invalid_type(de::Unexpected::Unsigned(v), &self))
        }
    }
}

/// An object under `properties`, `context` or `traits`, or below them; fills the slots below
/// it. A root must be an object (or null); below the roots any value is allowed, and only
/// objects are descended into.
struct ObjectSeed<'p, 'de> {
    node: Option<&'p PathNode>,
    path: &'p Path,
    fields: &'p mut Vec<Option<Cow<'de, str>>>,
    invalid: &'p mut Vec<InvalidField>,
    nested: bool,
}

impl ObjectSeed<'_, '_> {
    /// A value that is not an object: skipped below the roots, wrong at a root.
    fn not_an_object<E: de::Error>(&self, unexpected: de::Unexpected) -> Result<(), E> {
        if self.nested {
            Ok(())
        } else {
            Err(E::invalid_type(unexpected, self))
        }
    }
}

impl<'de> DeserializeSeed<'de> for ObjectSeed<'_, 'de> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ObjectSeed<'_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object")
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.not_an_object::<A::Error>(de::Unexpected::Seq)?;
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(())
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.not_an_object(de::Unexpected::Str(v))
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.not_an_object(de::Unexpected::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.not_an_object(de::Unexpected::Signed(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.not_an_object(de::Unexpected::Unsigned(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.not_an_object(de::Unexpected::Float(v))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key_seed(KeySeed)? {
            let Some(child) = self.node.and_then(|node| node.child(key.as_str())) else {
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            self.path.borrow_mut().push(key.as_str().to_owned());
            if let Some(slot) = child.slot {
                // Taken raw, so that a string serde_json would refuse as `str` (a lone
                // surrogate escape) spoils this value only, not the message.
                let raw: &'de RawValue = map.next_value()?;
                match slot_value(raw.get()) {
                    Ok(value) => self.fields[slot] = value,
                    Err(reason) => {
                        self.fields[slot] = None;
                        self.invalid.push(InvalidField { slot, reason });
                    }
                }
            } else {
                map.next_value_seed(ObjectSeed {
                    node: Some(child),
                    path: self.path,
                    fields: self.fields,
                    invalid: self.invalid,
                    nested: true,
                })?;
            }
            self.path.borrow_mut().pop();
        }
        Ok(())
    }
}

/// The text of a slot's raw JSON value, which serde_json has already checked for syntax: a
/// string as sent (borrowed when it has no escapes), a number or boolean rendered as text,
/// none for null. A string that is not valid Unicode, an object or an array is an error.
fn slot_value(raw: &str) -> Result<Option<Cow<'_, str>>, &'static str> {
    let raw = raw.trim_start();
    match raw.as_bytes().first() {
        Some(b'"') => {
            let inner = &raw[1..raw.len() - 1];
            if !inner.as_bytes().contains(&b'\\') {
                return Ok(Some(Cow::Borrowed(inner)));
            }
            serde_json::from_str::<String>(raw)
                .map(|text| Some(Cow::Owned(text)))
                .map_err(|_| "holds a lone UTF-16 surrogate escape")
        }
        Some(b'{' | b'[') => Err("is an object or array where text was expected"),
        _ => ScalarSeed
            .deserialize(&mut serde_json::Deserializer::from_str(raw))
            .map_err(|_| "is not a JSON scalar"),
    }
}

/// A scalar rendered as text; null, objects and arrays give no value.
struct ScalarSeed;

impl<'de> DeserializeSeed<'de> for ScalarSeed {
    type Value = Option<Cow<'de, str>>;

    fn deserialize<D: de::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Option<Cow<'de, str>>, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ScalarSeed {
    type Value = Option<Cow<'de, str>>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Option<Cow<'de, str>>, E> {
        Ok(Some(Cow::Borrowed(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Option<Cow<'de, str>>, E> {
        Ok(Some(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Option<Cow<'de, str>>, E> {
        Ok(Some(Cow::Owned(v)))
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Option<Cow<'de, str>>, E> {
        Ok(Some(Cow::Owned(v.to_string())))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Option<Cow<'de, str>>, E> {
        Ok(Some(Cow::Owned(v.to_string())))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Option<Cow<'de, str>>, E> {
        Ok(Some(Cow::Owned(v.to_string())))
    }

    /// Rust prints the shortest text that reads back as the same `f64`, never in exponent
    /// form, so `19.99` stays `19.99` for exact decimal parsing downstream.
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Option<Cow<'de, str>>, E> {
        Ok(Some(Cow::Owned(v.to_string())))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Option<Cow<'de, str>>, E> {
        Ok(None)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<Cow<'de, str>>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(None)
    }

    fn visit_seq<A: de::SeqAccess<'de>>(
        self,
        mut seq: A,
    ) -> Result<Option<Cow<'de, str>>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }
}

impl ParsedMessage<'_> {
    /// The call type: the endpoint's for single calls, else the message's `type`.
    pub fn call_kind(&self, implied: Option<CallKind>) -> Result<CallKind, ParseProblem> {
        if let Some(kind) = implied {
            return Ok(kind);
        }
        let problem = |message: String| ParseProblem {
            field: Some("type".into()),
            message,
        };
        match self.kind.as_deref() {
            None => Err(problem(
                "is required in a batch (track, page, screen, identify, group or alias)".into(),
            )),
            Some(text) => CallKind::parse(text).ok_or_else(|| {
                problem(format!(
                    "`{}` is not a call type (track, page, screen, identify, group or alias)",
                    text.chars().take(32).collect::<String>()
                ))
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parser() -> SegmentParser {
        let slots: Vec<FieldPath> = [
            "context.device.type",
            "properties.revenue",
            "properties.tags",
            "traits.plan",
        ]
        .iter()
        .map(|p| FieldPath::parse(p).unwrap())
        .collect();
        SegmentParser::new(&slots)
    }

    #[test]
    fn extracts_configured_paths_and_skips_the_rest() {
        let json = r#"{"type":"track","event":"Order Completed","messageId":"m1","userId":42,
            "timestamp":"2026-11-27T10:00:00Z","properties":{"revenue":19.99,"tags":["a"],"x":{"y":1}},
            "context":{"device":{"type":"mobile","id":"d"},"ip":"1.2.3.4"},"integrations":{"All":true}}"#;
        let message = parser().parse(json).unwrap();
        assert_eq!(message.kind.as_deref(), Some("track"));
        assert_eq!(message.event.as_deref(), Some("Order Completed"));
        assert_eq!(message.user_id.as_deref(), Some("42"));
        assert_eq!(
            message.fields,
            [Some("mobile".into()), Some("19.99".into()), None, None]
        );
    }

    fn check_error(json: &str, field: Option<&str>, fragment: &str) {
        let problem = parser().parse(json).unwrap_err();
        assert_eq!(problem.field.as_deref(), field, "{json}: {problem}");
        assert!(
            problem.message.contains(fragment),
            "{json}: `{}` lacks `{fragment}`",
            problem.message
        );
    }

    #[test]
    fn below_the_roots_a_non_object_where_an_object_was_expected_gives_no_value() {
        for device in [r#""phone""#, "[1, 2]", "7", "1.5", "true", "null"] {
            let json = format!(r#"{{"context": {{"device": {device}}}}}"#);
            let message = parser().parse(&json).unwrap();
            assert_eq!(message.fields[0], None, "{json}");
        }
    }

    #[test]
    fn errors_name_the_field() {
        check_error(r#"{"event": 5}"#, Some("event"), "expected a string");
        check_error(
            r#"{"userId": {"a": 1}}"#,
            Some("userId"),
            "expected a string or a number",
        );
        check_error(
            r#"{"properties": "oops"}"#,
            Some("properties"),
            "expected an object",
        );
        check_error(
            r#"{"context": {"device": {"type": tru}}}"#,
            Some("context.device.type"),
            "expected",
        );
        check_error(r#"{"event": "x""#, None, "EOF");
        check_error(r#"[1, 2]"#, None, "expected a message object");
        check_error(r#"{"event": "x"} trailing"#, None, "trailing characters");
    }

    #[test]
    fn a_slot_value_that_is_not_text_spoils_that_value_only() {
        // The device type as sent, and the value (or the reason) the parser must give.
        let cases: &[(&str, Result<Option<&str>, &str>)] = &[
            (r#""mobile""#, Ok(Some("mobile"))),
            (r#""mo\"bile""#, Ok(Some("mo\"bile"))),
            (r#""\ud83d\ude00""#, Ok(Some("\u{1f600}"))),
            (r#""\ud800""#, Err("surrogate")),
            (r#""a\udc00b""#, Err("surrogate")),
            (r#"{"a": 1}"#, Err("object or array")),
            ("[]", Err("object or array")),
            ("7", Ok(Some("7"))),
            ("1.50", Ok(Some("1.5"))),
            ("true", Ok(Some("true"))),
            ("null", Ok(None)),
        ];
        for (device, want) in cases {
            let json =
                format!(r#"{{"event": "E", "context": {{"device": {{"type": {device}}}}}}}"#);
            let message = parser().parse(&json).unwrap();
            assert_eq!(message.event.as_deref(), Some("E"), "{json}");
            match want {
                Ok(value) => {
                    assert_eq!(message.fields[0].as_deref(), *value, "{json}");
                    assert!(message.invalid.is_empty(), "{json}");
                }
                Err(fragment) => {
                    assert_eq!(message.fields[0], None, "{json}");
                    assert_eq!(message.invalid.len(), 1, "{json}");
                    assert_eq!(message.invalid[0].slot, 0);
                    assert!(message.invalid[0].reason.contains(fragment), "{json}");
                }
            }
        }
        // Outside the slots a lone surrogate is skipped; in a message field it is an error.
        assert!(parser().parse(r#"{"properties": {"x": "\ud800"}}"#).is_ok());
        check_error(r#"{"event": "\ud800"}"#, Some("event"), "hex escape");
    }

    #[test]
    fn call_kind_comes_from_the_endpoint_or_the_type_field() {
        let message = ParsedMessage {
            kind: Some("page".into()),
            ..ParsedMessage::default()
        };
        assert_eq!(message.call_kind(None), Ok(CallKind::Page));
        assert_eq!(
            message.call_kind(Some(CallKind::Track)),
            Ok(CallKind::Track)
        );
        assert!(ParsedMessage::default().call_kind(None).is_err());
        let bad = ParsedMessage {
            kind: Some("purchase".into()),
            ..ParsedMessage::default()
        };
        assert_eq!(
            bad.call_kind(None).unwrap_err().field.as_deref(),
            Some("type")
        );
    }
}
