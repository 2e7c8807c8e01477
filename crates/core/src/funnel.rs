//! The funnel model at ingest: which stages a message reaches, and under which segment.
//!
//! The edge parses a Segment message into a [`Message`] that carries only the fields the config
//! reads, each in a numbered slot (see [`Matcher::slots`]). The matcher then says which funnel
//! stages the message counts toward, and [`DimensionDictionary`] folds its dimension values
//! under each dimension's cardinality cap.

use std::borrow::Cow;
use std::collections::HashMap;

use crate::config::{Config, FieldPath, Trigger};
use crate::time::Timestamp;

/// The dimension value of a message that lacks the field.
pub const VALUE_NONE: &str = "(none)";
/// The dimension value that values beyond a dimension's cap fold into.
pub const VALUE_OTHER: &str = "other";
/// The dimension value of a field that was sent but cannot be used as text: a string with a
/// lone UTF-16 surrogate escape, or an object or array.
pub const VALUE_INVALID: &str = "(invalid)";
/// The markers a sent value must never be confused with.
pub const VALUE_MARKERS: [&str; 3] = [VALUE_NONE, VALUE_OTHER, VALUE_INVALID];
/// Longest dimension value kept, in bytes; longer ones are cut at a character boundary and
/// end in [`VALUE_CUT_MARK`], the whole still within this length.
pub const DIMENSION_VALUE_LEN_MAX: usize = 128;
/// The last character of a value that was cut to [`DIMENSION_VALUE_LEN_MAX`].
pub const VALUE_CUT_MARK: char = '\u{2026}';
/// Put before a sent value that would otherwise read as a marker: one equal to a marker, one
/// ending in [`VALUE_CUT_MARK`], or one starting with this escape itself. Removing one leading
/// escape gives the value as sent.
pub const VALUE_ESCAPE: char = '\\';
/// The segment key of "every segment together".
pub const SEGMENT_ALL: i64 = 0;

/// The Segment call types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallKind {
    Track,
    Page,
    Screen,
    Identify,
    Group,
    Alias,
}

impl CallKind {
    pub fn parse(text: &str) -> Option<CallKind> {
        Some(match text {
            "track" => CallKind::Track,
            "page" => CallKind::Page,
            "screen" => CallKind::Screen,
            "identify" => CallKind::Identify,
            "group" => CallKind::Group,
            "alias" => CallKind::Alias,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CallKind::Track => "track",
            CallKind::Page => "page",
            CallKind::Screen => "screen",
            CallKind::Identify => "identify",
            CallKind::Group => "group",
            CallKind::Alias => "alias",
        }
    }
}

/// A message as the core sees it: parsed, validated and reduced to what the config reads.
#[derive(Debug, Clone, PartialEq)]
pub struct Message<'a> {
    pub kind: CallKind,
    /// The `event` of a track call, or the `name` of a page or screen call.
    pub name: Option<&'a str>,
    pub message_id: &'a str,
    /// Event time, already corrected for client clock skew.
    pub event_time: Timestamp,
    /// Field values by slot; see [`Matcher::slots`]. Scalars are rendered as text; strings
    /// are borrowed from the request body where they need no unescaping.
    pub fields: Vec<Option<Cow<'a, str>>>,
}

/// A message's dimension values in config order, packed into one string: on the ingest hot
/// path that is one allocation per message instead of one per dimension. Values never
/// contain the separator (it is replaced by a space) and are never empty (a missing value is
/// [`VALUE_NONE`]), so the packing is unambiguous.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct DimensionValues(String);

const DIMENSION_SEPARATOR: char = '\u{1f}';

impl DimensionValues {
    /// Packs values as given, cutting long ones (marked with [`VALUE_CUT_MARK`]); markers pass
    /// through unescaped. Messages go through [`Matcher::dimension_values_noted`] instead.
    pub fn new<'v>(values: impl IntoIterator<Item = &'v str>) -> DimensionValues {
        let mut packed = String::new();
        for (index, value) in values.into_iter().enumerate() {
            if index > 0 {
                packed.push(DIMENSION_SEPARATOR);
            }
            let value = if value.is_empty() { VALUE_NONE } else { value };
            push_value(&mut packed, "", value);
        }
        DimensionValues(packed)
    }

    /// The values, in config order.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        let n_values = if self.0.is_empty() { 0 } else { usize::MAX };
        self.0.split(DIMENSION_SEPARATOR).take(n_values)
    }
}

/// A stage a message reached, by position in the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StageHit {
    pub funnel: usize,
    pub stage: usize,
}

#[derive(Debug, Clone)]
struct StageRule {
    hit: StageHit,
    filters: Vec<(usize, String)>,
}

/// Says which stages a message counts toward. Built once per config.
#[derive(Debug, Clone)]
pub struct Matcher {
    slots: Vec<FieldPath>,
    /// Call kind → event or page name → the stages it may reach.
    rules: HashMap<CallKind, HashMap<String, Vec<StageRule>>>,
    dimension_slots: Vec<usize>,
    revenue_slot: usize,
    total_slot: usize,
    currency_slot: usize,
}

impl Matcher {
    pub fn new(config: &Config) -> Matcher {
        let mut slots: Vec<FieldPath> = Vec::new();
        let mut slot_of = |path: &FieldPath| -> usize {
            if let Some(index) = slots.iter().position(|p| p == path) {
                return index;
            }
            slots.push(path.clone());
            slots.len() - 1
        };
        let dimension_slots = config.dimensions.iter().map(|d| slot_of(&d.path)).collect();
        let revenue_slot = slot_of(&FieldPath::parse("properties.revenue").expect("valid path"));
        let total_slot = slot_of(&FieldPath::parse("properties.total").expect("valid path"));
        let currency_slot = slot_of(&FieldPath::parse("properties.currency").expect("valid path"));
        let mut rules: HashMap<CallKind, HashMap<String, Vec<StageRule>>> = HashMap::new();
        for (funnel_index, funnel) in config.funnels.iter().enumerate() {
            for (stage_index, stage) in funnel.stages.iter().enumerate() {
                let (kind, name) = match &stage.trigger {
                    Trigger::Track(name) => (CallKind::Track, name),
                    Trigger::Page(name) => (CallKind::Page, name),
                    Trigger::Screen(name) => (CallKind::Screen, name),
                };
                let filters = stage
                    .filters
                    .iter()
                    .map(|(path, value)| (slot_of(path), value.clone()))
                    .collect();
                rules
                    .entry(kind)
                    .or_default()
                    .entry(name.clone())
                    .or_default()
                    .push(StageRule {
                        hit: StageHit {
                            funnel: funnel_index,
                            stage: stage_index,
                        },
                        filters,
                    });
            }
        }
        Matcher {
            slots,
            rules,
            dimension_slots,
            revenue_slot,
            total_slot,
            currency_slot,
        }
    }

    /// Every path the edge must extract, in slot order.
    pub fn slots(&self) -> &[FieldPath] {
        &self.slots
    }

    /// Whether any funnel stage listens to this call; the edge may skip the rest otherwise.
    pub fn is_relevant(&self, kind: CallKind, name: &str) -> bool {
        self.rules
            .get(&kind)
            .is_some_and(|names| names.contains_key(name))
    }

    /// Appends the stages `message` reaches to `hits`.
    pub fn stage_hits(&self, message: &Message, hits: &mut Vec<StageHit>) {
        let Some(name) = message.name else { return };
        let Some(rules) = self
            .rules
            .get(&message.kind)
            .and_then(|names| names.get(name))
        else {
            return;
        };
        for rule in rules {
            let passes = rule.filters.iter().all(|(slot, want)| {
                message.fields.get(*slot).and_then(Option::as_deref) == Some(want.as_str())
            });
            if passes {
                hits.push(rule.hit);
            }
        }
    }

    /// The raw (not yet folded) dimension values of a message, in config order.
    pub fn dimension_values(&self, message: &Message) -> DimensionValues {
        self.dimension_values_noted(message, &[], &mut Vec::new())
    }

    /// The raw (not yet folded) dimension values of a message, in config order, with a note
    /// for each value not kept as sent. A slot in `invalid_slots` was sent but unusable and
    /// becomes [`VALUE_INVALID`]; a missing or empty value is [`VALUE_NONE`] without a note; a
    /// sent value that reads like a marker is escaped with [`VALUE_ESCAPE`]; a long one is cut.
    pub fn dimension_values_noted(
        &self,
        message: &Message,
        invalid_slots: &[usize],
        notes: &mut Vec<ValueNote>,
    ) -> DimensionValues {
        let mut packed = String::new();
        for (dimension, &slot) in self.dimension_slots.iter().enumerate() {
            if dimension > 0 {
                packed.push(DIMENSION_SEPARATOR);
            }
            let mut note = |kind| notes.push(ValueNote { slot, kind });
            if invalid_slots.contains(&slot) {
                packed.push_str(VALUE_INVALID);
                note(ValueNoteKind::Invalid);
                continue;
            }
            let sent = message.fields.get(slot).and_then(Option::as_deref);
            let Some(value) = sent.filter(|v| !v.is_empty()) else {
                packed.push_str(VALUE_NONE);
                continue;
            };
            if value.contains('\0') {
                // Not text anyone means, and PostgreSQL cannot store it.
                packed.push_str(VALUE_INVALID);
                note(ValueNoteKind::Invalid);
                continue;
            }
            let escape = if needs_escape(value) {
                note(ValueNoteKind::Escaped);
                "\\"
            } else {
                ""
            };
            if push_value(&mut packed, escape, value) {
                note(ValueNoteKind::Cut);
            }
        }
        DimensionValues(packed)
    }

    /// The field path of a slot.
    pub fn slot_path(&self, slot: usize) -> &FieldPath {
        &self.slots[slot]
    }

    /// The revenue the message reports: `properties.revenue`, else `properties.total`, as
    /// decimal text with the slot it came from, and `properties.currency` if given. A slot in
    /// `invalid_slots` was sent but unusable: when it is the amount this message would report,
    /// or its currency, the error is that slot (the revenue is dropped, not the message).
    pub fn revenue<'m>(
        &self,
        message: &'m Message,
        invalid_slots: &[usize],
    ) -> Result<Option<ReportedRevenue<'m>>, usize> {
        let field = |slot: usize| message.fields.get(slot).and_then(Option::as_deref);
        let sent = |slot: usize| invalid_slots.contains(&slot) || field(slot).is_some();
        let Some(amount_slot) = [self.revenue_slot, self.total_slot]
            .into_iter()
            .find(|slot| sent(*slot))
        else {
            return Ok(None);
        };
        for slot in [amount_slot, self.currency_slot] {
            if invalid_slots.contains(&slot) {
                return Err(slot);
            }
        }
        Ok(Some(ReportedRevenue {
            amount: field(amount_slot).unwrap_or_default(),
            amount_slot,
            currency: field(self.currency_slot),
        }))
    }
}

/// What a message says it earned, as sent; see [`Matcher::revenue`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportedRevenue<'m> {
    /// Decimal text, not yet checked.
    pub amount: &'m str,
    /// Where the amount came from: `properties.revenue` or `properties.total`.
    pub amount_slot: usize,
    pub currency: Option<&'m str>,
}

/// A field value not kept as sent (a dimension value, or a revenue), and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValueNote {
    /// Its slot; see [`Matcher::slot_path`].
    pub slot: usize,
    pub kind: ValueNoteKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueNoteKind {
    /// Sent, but not usable as text: counted as [`VALUE_INVALID`].
    Invalid,
    /// Longer than [`DIMENSION_VALUE_LEN_MAX`]: cut, ending in [`VALUE_CUT_MARK`].
    Cut,
    /// Read like a marker: kept with a leading [`VALUE_ESCAPE`].
    Escaped,
    /// A revenue, total or currency that is not usable: the event is counted without revenue.
    RevenueDropped,
}

impl ValueNoteKind {
    /// The stable code of the notice.
    pub fn code(self) -> &'static str {
        match self {
            ValueNoteKind::Invalid => "invalid_value",
            ValueNoteKind::Cut => "value_cut",
            ValueNoteKind::Escaped => "value_escaped",
            ValueNoteKind::RevenueDropped => "revenue_dropped",
        }
    }
}

/// Whether a sent value must be escaped so as not to read as a marker.
fn needs_escape(value: &str) -> bool {
    VALUE_MARKERS.contains(&value)
        || value.starts_with(VALUE_ESCAPE)
        || value.ends_with(VALUE_CUT_MARK)
}

/// Appends `prefix` and `value` to `packed`, the separator replaced by a space and a NUL by
/// U+FFFD, cut to [`DIMENSION_VALUE_LEN_MAX`] bytes with [`VALUE_CUT_MARK`] last. Says whether
/// it cut.
fn push_value(packed: &mut String, prefix: &str, value: &str) -> bool {
    let start = packed.len();
    packed.push_str(prefix);
    if value.contains([DIMENSION_SEPARATOR, '\0']) {
        // The separator would split the value; a NUL cannot be stored in PostgreSQL text.
        packed.push_str(
            &value
                .replace(DIMENSION_SEPARATOR, " ")
                .replace('\0', "\u{fffd}"),
        );
    } else {
        packed.push_str(value);
    }
    if packed.len() - start <= DIMENSION_VALUE_LEN_MAX {
        return false;
    }
    let mut end = start + DIMENSION_VALUE_LEN_MAX - VALUE_CUT_MARK.len_utf8();
    while !packed.is_char_boundary(end) {
        end -= 1;
    }
    packed.truncate(end);
    packed.push(VALUE_CUT_MARK);
    true
}

/// The distinct values admitted so far for each dimension, first come first served up to the
/// dimension's cap. Values beyond the cap fold into [`VALUE_OTHER`]. The store persists the
/// admitted values so that folding is stable across restarts.
#[derive(Debug, Clone, Default)]
pub struct DimensionDictionary {
    caps: Vec<u32>,
    admitted: Vec<rustc_hash::FxHashSet<String>>,
}

/// What folding a value decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fold {
    /// Already admitted.
    Known,
    /// Admitted just now; the store must persist it.
    Admitted,
    /// Over the cap: counted as [`VALUE_OTHER`].
    Other,
}

impl DimensionDictionary {
    pub fn new(config: &Config) -> DimensionDictionary {
        DimensionDictionary {
            caps: config.dimensions.iter().map(|d| d.values_max).collect(),
            admitted: vec![Default::default(); config.dimensions.len()],
        }
    }

    /// Loads a value admitted earlier. Values of dimensions no longer configured are ignored.
    pub fn load(&mut self, dimension: usize, value: &str) {
        if let Some(set) = self.admitted.get_mut(dimension) {
            set.insert(value.to_owned());
        }
    }

    pub fn fold(&mut self, dimension: usize, value: &str) -> Fold {
        let set = &mut self.admitted[dimension];
        // The sentinels never use up a slot of the cap.
        if VALUE_MARKERS.contains(&value) || set.contains(value) {
            return Fold::Known;
        }
        if set.len() < self.caps[dimension] as usize {
            set.insert(value.to_owned());
            return Fold::Admitted;
        }
        Fold::Other
    }

    /// Takes back an admission whose commit failed.
    pub fn forget(&mut self, dimension: usize, value: &str) {
        if let Some(set) = self.admitted.get_mut(dimension) {
            set.remove(value);
        }
    }

    pub fn n_dimensions(&self) -> usize {
        self.caps.len()
    }

    /// Folds a message's raw dimension values under the caps, in config order: a value already
    /// admitted, or admitted now because its dimension is under its cap, is kept; any other
    /// becomes [`VALUE_OTHER`]. `on_admitted(dimension, value)` hears of each value admitted
    /// just now (the store persists them). Values past the configured dimensions are dropped.
    /// Ingest's writer and the simulated suite both fold through here.
    pub fn fold_values<'v>(
        &mut self,
        raw_values: &'v DimensionValues,
        mut on_admitted: impl FnMut(usize, &'v str),
    ) -> Vec<&'v str> {
        raw_values
            .iter()
            .enumerate()
            .take(self.n_dimensions())
            .map(|(dimension, value)| match self.fold(dimension, value) {
                Fold::Known => value,
                Fold::Admitted => {
                    on_admitted(dimension, value);
                    value
                }
                Fold::Other => VALUE_OTHER,
            })
            .collect()
    }
}

/// A stable 63-bit key for a segment: an assignment of values to some of the dimensions, in
/// config order. The empty assignment is [`SEGMENT_ALL`]; no other assignment hashes to it.
pub fn segment_key(assignment: &[(&str, &str)]) -> i64 {
    if assignment.is_empty() {
        return SEGMENT_ALL;
    }
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    for (dimension, value) in assignment {
        for part in [dimension, value] {
            hasher.update(&(part.len() as u32).to_le_bytes());
            hasher.update(part.as_bytes());
        }
    }
    let key = (hasher.digest() >> 1) as i64;
    if key == SEGMENT_ALL { 1 } else { key }
}

/// The segments one message is counted under, given its folded dimension values: every
/// segment together, each dimension on its own (so that a one-dimension filter or drill-down
/// reads one series), and the full combination (so that any other filter can be summed).
pub fn counted_segments<'a>(
    dimension_names: &'a [String],
    folded_values: &'a [&'a str],
) -> Vec<Vec<(&'a str, &'a str)>> {
    let full: Vec<(&str, &str)> = dimension_names
        .iter()
        .map(String::as_str)
        .zip(folded_values.iter().copied())
        .collect();
    let mut segments = vec![Vec::new()];
    if full.len() > 1 {
        segments.extend(full.iter().map(|pair| vec![*pair]));
    }
    if !full.is_empty() {
        segments.push(full);
    }
    segments
}

/// A stable 63-bit key for deduplicating a message id (or any idempotency key).
pub fn dedup_key(id: &str) -> i64 {
    (xxhash_rust::xxh3::xxh3_64(id.as_bytes()) >> 1) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"
[[dimensions]]
name = "device"
path = "context.device.type"
max_values = 2

[[funnels]]
id = "web"
[[funnels.stages]]
id = "viewed"
page = "Product"
[[funnels.stages]]
id = "added"
event = "Product Added"
where = { "properties.category" = "shoes" }

[[funnels]]
id = "all"
[[funnels.stages]]
id = "added"
event = "Product Added"
[[funnels.stages]]
id = "ordered"
event = "Order Completed"
"#;

    fn message<'a>(
        matcher: &Matcher,
        kind: CallKind,
        name: &'a str,
        fields: &[(&str, &'a str)],
    ) -> Message<'a> {
        let mut values = vec![None; matcher.slots().len()];
        for (path, value) in fields {
            let slot = matcher
                .slots()
                .iter()
                .position(|p| p.to_string() == *path)
                .unwrap();
            values[slot] = Some(Cow::Borrowed(*value));
        }
        Message {
            kind,
            name: Some(name),
            message_id: "m",
            event_time: Timestamp::from_millis(0),
            fields: values,
        }
    }

    #[test]
    fn matches_by_call_name_and_filter() {
        let config = Config::parse(CONFIG).unwrap();
        let matcher = Matcher::new(&config);
        // Call, name, fields, and the (funnel, stage) hits it must give.
        type Case<'a> = (
            CallKind,
            &'a str,
            &'a [(&'a str, &'a str)],
            &'a [(usize, usize)],
        );
        let cases: &[Case] = &[
            (CallKind::Page, "Product", &[], &[(0, 0)]),
            (CallKind::Track, "Product", &[], &[]),
            (
                CallKind::Track,
                "Product Added",
                &[("properties.category", "shoes")],
                &[(0, 1), (1, 0)],
            ),
            (
                CallKind::Track,
                "Product Added",
                &[("properties.category", "hats")],
                &[(1, 0)],
            ),
            (CallKind::Track, "Order Completed", &[], &[(1, 1)]),
            (CallKind::Identify, "Order Completed", &[], &[]),
        ];
        for (kind, name, fields, want) in cases {
            let mut hits = Vec::new();
            matcher.stage_hits(&message(&matcher, *kind, name, fields), &mut hits);
            let got: Vec<(usize, usize)> = hits.iter().map(|h| (h.funnel, h.stage)).collect();
            assert_eq!(&got, want, "{kind:?} {name} {fields:?}");
        }
    }

    #[test]
    fn dimension_values_default_to_none_and_fold_over_the_cap() {
        let config = Config::parse(CONFIG).unwrap();
        let matcher = Matcher::new(&config);
        let bare = message(&matcher, CallKind::Track, "x", &[]);
        assert_eq!(
            matcher.dimension_values(&bare).iter().collect::<Vec<_>>(),
            [VALUE_NONE]
        );
        let mut dictionary = DimensionDictionary::new(&config);
        assert_eq!(dictionary.fold(0, "mobile"), Fold::Admitted);
        assert_eq!(dictionary.fold(0, "mobile"), Fold::Known);
        assert_eq!(dictionary.fold(0, VALUE_NONE), Fold::Known);
        assert_eq!(dictionary.fold(0, "desktop"), Fold::Admitted);
        assert_eq!(dictionary.fold(0, "tablet"), Fold::Other);
    }

    #[test]
    fn sent_values_never_read_as_markers_and_long_ones_are_cut_visibly() {
        let config = Config::parse(CONFIG).unwrap();
        let matcher = Matcher::new(&config);
        let slot = matcher
            .slots()
            .iter()
            .position(|p| p.to_string() == "context.device.type")
            .unwrap();
        let long = "ab".repeat(100);
        let cut = format!("{}{VALUE_CUT_MARK}", &long[..DIMENSION_VALUE_LEN_MAX - 3]);
        let escaped_long = format!(
            "\\\\{}{VALUE_CUT_MARK}",
            &long[..DIMENSION_VALUE_LEN_MAX - 5]
        );
        let wide = "\u{e9}".repeat(100);
        let wide_cut = format!("{}{VALUE_CUT_MARK}", "\u{e9}".repeat(62));
        // The value sent (None: missing), whether the slot was unusable, the value counted,
        // and the notes.
        type Case<'a> = (Option<&'a str>, bool, &'a str, &'a [ValueNoteKind]);
        use ValueNoteKind::{Cut, Escaped, Invalid};
        let cases: &[Case] = &[
            (Some("mobile"), false, "mobile", &[]),
            (None, false, VALUE_NONE, &[]),
            (Some(""), false, VALUE_NONE, &[]),
            (None, true, VALUE_INVALID, &[Invalid]),
            (Some("other"), false, "\\other", &[Escaped]),
            (Some("(none)"), false, "\\(none)", &[Escaped]),
            (Some("(invalid)"), false, "\\(invalid)", &[Escaped]),
            (Some("\\other"), false, "\\\\other", &[Escaped]),
            (
                Some("to be continued\u{2026}"),
                false,
                "\\to be continued\u{2026}",
                &[Escaped],
            ),
            (Some("Other"), false, "Other", &[]),
            (Some(&long), false, &cut, &[Cut]),
            (Some(&wide), false, &wide_cut, &[Cut]),
            (
                Some(&format!("\\{long}")),
                false,
                &escaped_long,
                &[Escaped, Cut],
            ),
        ];
        for (sent, invalid, want, want_notes) in cases {
            let mut message = message(&matcher, CallKind::Track, "x", &[]);
            message.fields[slot] = sent.map(Cow::Borrowed);
            let invalid_slots: &[usize] = if *invalid { &[slot] } else { &[] };
            let mut notes = Vec::new();
            let values = matcher.dimension_values_noted(&message, invalid_slots, &mut notes);
            let got: Vec<&str> = values.iter().collect();
            assert_eq!(got, [*want], "{sent:?}");
            assert!(got[0].len() <= DIMENSION_VALUE_LEN_MAX, "{sent:?}");
            let kinds: Vec<ValueNoteKind> = notes.iter().map(|n| n.kind).collect();
            assert_eq!(kinds, *want_notes, "{sent:?}");
        }
        let mut dictionary = DimensionDictionary::new(&config);
        assert_eq!(dictionary.fold(0, VALUE_INVALID), Fold::Known);
    }

    #[test]
    fn dimension_values_pack_unambiguously() {
        let cases: &[(&[&str], &[&str])] = &[
            (&[], &[]),
            (&["mobile"], &["mobile"]),
            (&["mobile", "", "US"], &["mobile", VALUE_NONE, "US"]),
            (&["a\u{1f}b", "c"], &["a b", "c"]),
        ];
        for (values, want) in cases {
            let packed = DimensionValues::new(values.iter().copied());
            assert_eq!(packed.iter().collect::<Vec<_>>(), *want, "{values:?}");
        }
    }

    #[test]
    fn segment_keys_are_stable_and_distinguish_boundaries() {
        let mobile_us = [("device", "mobile"), ("country", "US")];
        assert_eq!(segment_key(&mobile_us), segment_key(&mobile_us));
        assert_ne!(segment_key(&[("d", "ab")]), segment_key(&[("da", "b")]));
        assert_eq!(segment_key(&[]), SEGMENT_ALL);
        assert!(segment_key(&[("device", "mobile")]) > 0);
        assert!(dedup_key("message-1") >= 0);
    }

    #[test]
    fn a_message_counts_under_all_each_dimension_and_the_combination() {
        let names = ["device".to_owned(), "country".to_owned()];
        let segments = counted_segments(&names, &["mobile", "US"]);
        assert_eq!(
            segments,
            [
                vec![],
                vec![("device", "mobile")],
                vec![("country", "US")],
                vec![("device", "mobile"), ("country", "US")],
            ]
        );
        let one = ["device".to_owned()];
        assert_eq!(counted_segments(&one, &["mobile"]).len(), 2);
        assert_eq!(counted_segments(&[], &[]).len(), 1);
    }
}
