//! The ingest problem log, backend-neutral: what it holds (the newest rejected messages and
//! notices, and the event names no stage listens to, with their counts), its bounds, and what a
//! group commit adds to it. Each backend writes it in the group's own transaction, so it is
//! durable exactly when the requests it describes are answered.
//!
//! It must not know SQL or a wire format: the backends' `problems` modules hold the statements,
//! and the server turns these rows into `revloop_api::ingest` views.

use std::borrow::Cow;
use std::collections::HashMap;

use revloop_core::Timestamp;
use revloop_core::funnel::CallKind;

use crate::IngestItem;
use crate::kinds::ColumnText;

/// Entries the problem log keeps; a commit that goes past it drops the oldest, counting them.
pub const PROBLEM_LOG_ENTRIES_MAX: usize = 10_000;
/// Distinct ignored event names kept; messages of a name that finds the list full are counted
/// as `unlisted` only, so that a sender of random names cannot grow the table.
pub const IGNORED_NAMES_MAX: usize = 1_000;
/// Longest ignored event name kept, in bytes; a longer one is cut at a character boundary.
pub const IGNORED_NAME_BYTES_MAX: usize = 256;
/// Most entries or names one read returns.
pub const PROBLEM_PAGE_MAX: usize = 1_000;
/// What the log writes in place of a NUL character. Client text reaches the log (an ignored
/// event name, a message quoting a field, a raw NDJSON line), PostgreSQL `text` cannot hold
/// `\0`, and one refused row would fail the whole group commit; both stores replace it so
/// that they read back the same text.
pub const NUL_REPLACEMENT: char = char::REPLACEMENT_CHARACTER;

/// What became of a message with a problem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProblemOutcome {
    /// Not counted.
    Rejected,
    /// Counted, with a part folded, cut or dropped.
    Notice,
}

impl ProblemOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            ProblemOutcome::Rejected => "rejected",
            ProblemOutcome::Notice => "notice",
        }
    }

    pub fn parse(text: &str) -> Option<ProblemOutcome> {
        [ProblemOutcome::Rejected, ProblemOutcome::Notice]
            .into_iter()
            .find(|outcome| outcome.as_str() == text)
    }
}

impl ColumnText for ProblemOutcome {
    const COLUMN: &'static str = "ingest_problems.outcome";

    fn to_text(self) -> &'static str {
        self.as_str()
    }

    fn from_text(text: &str) -> Option<ProblemOutcome> {
        ProblemOutcome::parse(text)
    }
}

impl ColumnText for CallKind {
    const COLUMN: &'static str = "ignored_names.kind";

    fn to_text(self) -> &'static str {
        self.as_str()
    }

    fn from_text(text: &str) -> Option<CallKind> {
        CallKind::parse(text)
    }
}

/// One entry of the problem log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProblemRow {
    /// Assigned by the store on commit, increasing; ignored in an [`crate::IngestGroup`].
    pub id: i64,
    /// When the request was received.
    pub at: Timestamp,
    /// The name of the write key or token that sent it.
    pub key_name: String,
    pub outcome: ProblemOutcome,
    /// Stable and machine-readable, e.g. `timestamp_out_of_range`.
    pub code: String,
    pub field: Option<String>,
    pub message: String,
    /// The message as sent, already cut by the caller to a few KiB.
    pub body: String,
    pub body_cut: bool,
}

/// A page of the problem log, newest (highest id) first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProblemQuery {
    /// Only entries with an id below this (for paging).
    pub before_id: Option<i64>,
    pub code: Option<String>,
    pub outcome: Option<ProblemOutcome>,
    /// At most [`PROBLEM_PAGE_MAX`].
    pub limit: usize,
}

/// What a read of the problem log returns.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProblemPage {
    pub rows: Vec<ProblemRow>,
    /// Entries the log holds now, matching the query's filters or not.
    pub n_held: u64,
    /// Entries dropped to keep the log under [`PROBLEM_LOG_ENTRIES_MAX`], since it began.
    pub n_dropped: u64,
}

/// An event name no funnel stage listens to, with how many new messages carried it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IgnoredNameRow {
    pub kind: CallKind,
    pub name: String,
    pub n_messages: u64,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
}

/// What a read of the ignored names returns: most frequent first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IgnoredNamesPage {
    pub names: Vec<IgnoredNameRow>,
    /// Ignored messages whose name was not kept because the list was full.
    pub n_unlisted: u64,
}

/// A (call, event name) and how many new messages carried it in one group.
pub(crate) type NameTally = ((CallKind, String), u64);

/// The group's new ignored messages, tallied by (kind, name) in key order: the order the
/// backends write (and, on PostgreSQL, lock) the rows in.
pub(crate) fn tally_ignored(
    items: &[IngestItem],
    is_new: &[bool],
) -> Vec<((CallKind, String), u64)> {
    let mut tally: HashMap<(CallKind, Cow<str>), u64> = HashMap::new();
    for (item, is_new) in items.iter().zip(is_new) {
        if let (true, Some((kind, name))) = (*is_new, &item.ignored_name) {
            // Replaced before the cut, so that the kept name stays within the bound, and before
            // the tally, so that two names the replacement makes equal share one row.
            let name = match without_nul(name) {
                Cow::Borrowed(name) => Cow::Borrowed(cut_name(name)),
                Cow::Owned(name) => Cow::Owned(cut_name(&name).to_owned()),
            };
            *tally.entry((*kind, name)).or_default() += 1;
        }
    }
    let mut tally: Vec<NameTally> = tally
        .into_iter()
        .map(|((kind, name), n)| ((kind, name.into_owned()), n))
        .collect();
    tally.sort_unstable_by(|((kind_a, name_a), _), ((kind_b, name_b), _)| {
        (kind_a.as_str(), name_a).cmp(&(kind_b.as_str(), name_b))
    });
    tally
}

/// The problems of a group that the log keeps, as written: the newest
/// [`PROBLEM_LOG_ENTRIES_MAX`], their text with every NUL replaced by [`NUL_REPLACEMENT`]. The
/// rest are dropped before they are written, and their number returned.
pub(crate) fn problems_kept(problems: &[ProblemRow]) -> (Cow<'_, [ProblemRow]>, u64) {
    let n_skipped = problems.len().saturating_sub(PROBLEM_LOG_ENTRIES_MAX);
    let kept = &problems[n_skipped..];
    let has_nul = |problem: &ProblemRow| {
        [
            &problem.key_name,
            &problem.code,
            &problem.message,
            &problem.body,
        ]
        .into_iter()
        .chain(&problem.field)
        .any(|text| text.contains('\0'))
    };
    if !kept.iter().any(has_nul) {
        return (Cow::Borrowed(kept), n_skipped as u64);
    }
    let stored = |text: &String| without_nul(text).into_owned();
    let kept = kept
        .iter()
        .map(|problem| ProblemRow {
            key_name: stored(&problem.key_name),
            code: stored(&problem.code),
            field: problem.field.as_ref().map(stored),
            message: stored(&problem.message),
            body: stored(&problem.body),
            ..problem.clone()
        })
        .collect();
    (Cow::Owned(kept), n_skipped as u64)
}

/// `text` with every NUL replaced by [`NUL_REPLACEMENT`]; borrowed when it has none.
fn without_nul(text: &str) -> Cow<'_, str> {
    if text.contains('\0') {
        Cow::Owned(text.replace('\0', NUL_REPLACEMENT.encode_utf8(&mut [0; 4])))
    } else {
        Cow::Borrowed(text)
    }
}

/// A count as the databases keep it (the log's counts stay far below `i64::MAX`).
pub(crate) fn db_count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A count read back; a negative cell (a damaged row) reads as 0.
pub(crate) fn count_of(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

fn cut_name(name: &str) -> &str {
    if name.len() <= IGNORED_NAME_BYTES_MAX {
        return name;
    }
    let mut end = IGNORED_NAME_BYTES_MAX;
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    &name[..end]
}

/// Splits the names a commit found no row for into those that get a row (while the list has
/// room) and the number of messages left unlisted.
pub(crate) fn admit_new_names(missing: Vec<NameTally>, n_names_held: u64) -> (Vec<NameTally>, u64) {
    let room = (IGNORED_NAMES_MAX as u64).saturating_sub(n_names_held) as usize;
    let mut admitted = missing;
    let unlisted = admitted.split_off(room.min(admitted.len()));
    (admitted, unlisted.iter().map(|(_, n)| n).sum())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_name_is_cut_at_a_character_boundary() {
        let name = "é".repeat(IGNORED_NAME_BYTES_MAX);
        let cut = cut_name(&name);
        assert!(cut.len() <= IGNORED_NAME_BYTES_MAX);
        assert_eq!(cut.len(), IGNORED_NAME_BYTES_MAX);
        assert_eq!(cut_name("Order Completed"), "Order Completed");
    }

    #[test]
    fn a_nul_is_replaced_in_every_text_the_log_writes() {
        let row = ProblemRow {
            id: 0,
            at: Timestamp::from_millis(0),
            key_name: "k\0".to_owned(),
            outcome: ProblemOutcome::Rejected,
            code: "c\0".to_owned(),
            field: Some("f\0".to_owned()),
            message: "m\0\0".to_owned(),
            body: "b\0".to_owned(),
            body_cut: false,
        };
        let (kept, n_dropped) = problems_kept(std::slice::from_ref(&row));
        assert_eq!(n_dropped, 0);
        assert_eq!(kept[0].key_name, "k\u{fffd}");
        assert_eq!(kept[0].code, "c\u{fffd}");
        assert_eq!(kept[0].field.as_deref(), Some("f\u{fffd}"));
        assert_eq!(kept[0].message, "m\u{fffd}\u{fffd}");
        assert_eq!(kept[0].body, "b\u{fffd}");
        let clean = ProblemRow {
            key_name: "k".to_owned(),
            ..row.clone()
        };
        let clean = ProblemRow {
            code: "c".to_owned(),
            field: None,
            message: "m".to_owned(),
            body: "b".to_owned(),
            ..clean
        };
        assert!(matches!(
            problems_kept(std::slice::from_ref(&clean)).0,
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn a_nul_in_an_ignored_name_is_replaced_before_the_tally_and_the_cut() {
        let item = |name: &str| IngestItem {
            dedup_key: 0,
            cells: Vec::new(),
            late: false,
            ignored_name: Some((CallKind::Track, name.to_owned())),
            count_body: None,
        };
        let long = format!("{}\0", "a".repeat(IGNORED_NAME_BYTES_MAX - 1));
        let items = [item("a\0"), item("a\u{fffd}"), item(&long)];
        let tally = tally_ignored(&items, &[true, true, true]);
        let a = "a".repeat(IGNORED_NAME_BYTES_MAX - 1);
        assert_eq!(
            tally,
            vec![
                ((CallKind::Track, a), 1),
                ((CallKind::Track, "a\u{fffd}".to_owned()), 2),
            ]
        );
    }

    #[test]
    fn new_names_past_the_bound_are_counted_unlisted() {
        let names = |n: usize| -> Vec<NameTally> {
            (0..n)
                .map(|i| ((CallKind::Track, format!("e{i}")), 2))
                .collect()
        };
        let (admitted, unlisted) = admit_new_names(names(3), IGNORED_NAMES_MAX as u64 - 1);
        assert_eq!((admitted.len(), unlisted), (1, 4));
        let (admitted, unlisted) = admit_new_names(names(3), 0);
        assert_eq!((admitted.len(), unlisted), (3, 0));
        let (admitted, unlisted) = admit_new_names(names(3), IGNORED_NAMES_MAX as u64 + 5);
        assert_eq!((admitted.len(), unlisted), (0, 6));
    }
}
