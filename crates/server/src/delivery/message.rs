//! An outbox entry as the message every channel renders.

use revloop_api::outbox::OutboxEntry;
use revloop_core::delivery::Message;

/// The message of an outbox entry: its title and plain text from the entry's brief (entries
/// written before delivery existed have none: the title then names the incident only).
pub fn message(entry: &OutboxEntry) -> Message {
    let _ = entry;
    todo!("H5")
}
