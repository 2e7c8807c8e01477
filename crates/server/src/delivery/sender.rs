//! One sender per configured channel, with its secrets read (environment or file) when it is
//! built, so that a missing secret is a start-up error naming the channel, never a silent drop.

use revloop_core::config::Channel;
use revloop_core::delivery::{Message, Outcome};
use revloop_core::time::Timestamp;

/// A channel that cannot be set up: which one, and why (a missing environment variable, an
/// unreadable secret file, an SMTP relay that cannot be configured).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("channel {channel}: {reason}")]
pub struct SetupError {
    pub channel: String,
    pub reason: String,
}

/// Where one delivery goes, beyond its channel.
#[derive(Debug, Clone, Copy)]
pub struct To<'a> {
    /// The idempotency key: stable per delivery across retries and restarts
    /// (`Idempotency-Key`, the email's `Message-ID` local part).
    pub key: &'a str,
    /// The target or audience ("CTO").
    pub target: &'a str,
    /// The route's address (email).
    pub address: Option<&'a str>,
    /// The signing time (`Revloop-Signature: t=`): the server's clock when the attempt starts.
    pub now: Timestamp,
}

/// One attempt's result.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    pub outcome: Outcome,
    /// An HTTP or SMTP status (`"200"`, `"550"`), `"timeout"`, or a network error's kind
    /// (`"connect"`, `"tls"`, `"dns"`).
    pub status: String,
    /// The start of the receiver's answer, at most `RESPONSE_BYTES_MAX` bytes.
    pub response: String,
}

/// A configured channel, ready to send. Cheap to clone (shares its HTTP client).
#[derive(Clone)]
pub struct Sender {
    // H4
}

impl Sender {
    /// Builds the channel's sender, reading its secrets through `secret` (the environment and
    /// the file system in production; a map in tests).
    pub fn new(
        channel: &Channel,
        secret: &dyn Fn(&revloop_core::config::SecretSource) -> Result<String, String>,
    ) -> Result<Sender, SetupError> {
        let _ = (channel, secret);
        todo!("H4")
    }

    /// One attempt, within the channel's timeout. Never panics, never waits longer.
    pub async fn send(&self, message: &Message, to: To<'_>) -> Attempt {
        let _ = (message, to);
        todo!("H4")
    }
}

/// Reads a secret from the process environment or a file (content, trailing newline trimmed).
pub fn read_secret(source: &revloop_core::config::SecretSource) -> Result<String, String> {
    let _ = source;
    todo!("H4")
}
