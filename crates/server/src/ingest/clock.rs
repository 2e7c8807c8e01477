//! The ingest clock: what "now" is when an event is admitted. Live, it is the receive time; in
//! replay, the event-time watermark.
//!
//! It never reads the wall clock itself: the live clock is handed the time by the handler.

use revloop_core::time::Timestamp;

/// The ingest clock. Live, "now" is the receive time; in replay it is the event-time
/// watermark, the latest event time seen so far.
pub trait IngestClock {
    /// The receive time, used to correct client clock skew; `None` in replay, where events
    /// keep the time they carry.
    fn received_at(&self) -> Option<Timestamp>;
    /// "Now" for admitting an event with this event time.
    fn now_for(&mut self, event_time: Timestamp) -> Timestamp;
    /// "Now" for the commit (drives dedup window rotation).
    fn now(&self) -> Timestamp;
}

pub struct LiveClock(pub Timestamp);

impl IngestClock for LiveClock {
    fn received_at(&self) -> Option<Timestamp> {
        Some(self.0)
    }
    fn now_for(&mut self, _: Timestamp) -> Timestamp {
        self.0
    }
    fn now(&self) -> Timestamp {
        self.0
    }
}

/// Event time drives everything; see [`IngestClock`].
#[derive(Debug, Default)]
pub struct Watermark(pub Option<Timestamp>);

impl IngestClock for Watermark {
    fn received_at(&self) -> Option<Timestamp> {
        None
    }
    fn now_for(&mut self, event_time: Timestamp) -> Timestamp {
        let watermark = self.0.map_or(event_time, |w| w.max(event_time));
        self.0 = Some(watermark);
        watermark
    }
    fn now(&self) -> Timestamp {
        self.0.unwrap_or_default()
    }
}
