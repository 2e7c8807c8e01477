//! Inbound technical signals (Alertmanager alerts, PagerDuty-style events): one row per
//! `(source, key)`, upserted as its sender re-sends it, and read by the time range they
//! overlap. The dialect-free part lives here; `sqlite/signals.rs` and `postgres/signals.rs`
//! run the statements.
//!
//! Invariants:
//! - One row per `(source, key)` (a UNIQUE constraint): a re-send updates it, never adds one.
//! - A row's `starts_at` only moves back, except when a resolved signal fires again: then it
//!   starts anew. An update without a summary (a PagerDuty `acknowledge`) never fires a
//!   resolved signal again: it stays resolved, with its end.
//! - An update keeps what it does not say: an empty summary, `{}` labels, or no severity,
//!   funnel or stage keep the stored ones (a PagerDuty `resolve` carries no payload).

use revloop_core::signal::{SignalSource, SignalStatus};
use revloop_core::time::Timestamp;

use crate::kinds::ColumnText;

/// Most signals one read returns.
pub const SIGNAL_PAGE_MAX: usize = 1_000;

/// A stored signal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignalRow {
    /// Assigned by the store; ignored by [`crate::Store::upsert_signal`].
    pub id: i64,
    pub source: SignalSource,
    /// The Alertmanager fingerprint or the event's dedup key; unique within `source`.
    pub key: String,
    pub status: SignalStatus,
    pub starts_at: Timestamp,
    /// When it stopped; `None` while it fires.
    pub ends_at: Option<Timestamp>,
    /// One line for people: the alert's `summary` annotation or the event's summary.
    pub summary: String,
    /// As the sender said it (`critical`, `warning`, ...).
    pub severity: Option<String>,
    /// The funnel and stage its labels name (`funnel`/`stage` or `revloop_funnel`/...).
    pub funnel: Option<String>,
    pub stage: Option<String>,
    /// Its labels (or an event's fields) as a JSON object, text.
    pub labels_json: String,
    /// When it was last received.
    pub received_at: Timestamp,
    /// How many times it was received; 1 when new. Ignored by the upsert.
    pub n_received: i64,
}

impl ColumnText for SignalStatus {
    const COLUMN: &'static str = "signals.status";

    fn to_text(self) -> &'static str {
        self.as_str()
    }

    fn from_text(text: &str) -> Option<SignalStatus> {
        SignalStatus::parse(text)
    }
}

impl ColumnText for SignalSource {
    const COLUMN: &'static str = "signals.source";

    fn to_text(self) -> &'static str {
        self.as_str()
    }

    fn from_text(text: &str) -> Option<SignalSource> {
        SignalSource::parse(text)
    }
}

/// The columns both dialects read a row from, in [`SignalRow`]'s order.
pub(crate) const SIGNAL_COLUMNS: &str = "id, source, key, status, starts_ms, ends_ms, summary, \
     severity, funnel, stage, labels_json, received_ms, n_received";
