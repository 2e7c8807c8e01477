//! Delivery: the outbox to the tools on-call people use (docs/delivery.md).
//!
//! - [`sender`]: one [`Sender`] per configured channel, its secrets read at start: a signed
//!   webhook, a Slack-compatible webhook, SMTP email, PagerDuty Events v2, the log. One
//!   attempt each, judged by the core's rules (`revloop_core::delivery`).
//! - [`deliverer`]: the service. It plans each outbox entry into deliveries (one per route of
//!   each of its targets), then per channel claims due deliveries under a lease, sends them
//!   with the channel's own concurrency and circuit breaker, and records every attempt. A
//!   page whose every delivery failed for `failover_after` pages the next level at once.
//! - [`message`]: an outbox entry as the [`Message`](revloop_core::delivery::Message) every
//!   channel renders.

pub mod deliverer;
pub mod message;
pub mod sender;
pub mod signature;

pub use sender::{Attempt, Sender, SetupError, To};
