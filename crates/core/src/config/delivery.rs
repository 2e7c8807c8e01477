//! The `[delivery]` section: the channels pages go out on, and which channels (and addresses)
//! each escalation target and each audience is reached on. docs/delivery.md shows a full one.
//!
//! ```toml
//! [delivery]
//! failover_after = "5m"          # every channel of a level failing this long pages the next
//!
//! [[delivery.channels]]
//! name = "oncall-hook"
//! kind = "webhook"                # webhook | slack | email | pagerduty | log
//! url = "https://hooks.example.com/revloop"
//! secret_env = "REVLOOP_ONCALL_HOOK_SECRET"   # or secret_file = "/run/secrets/hook"
//!
//! [[delivery.channels]]
//! name = "mail"
//! kind = "email"
//! smtp_host = "smtp.example.com"
//! smtp_port = 587
//! tls = "starttls"                # starttls | implicit | none (loopback only)
//! username = "revloop"
//! password_env = "REVLOOP_SMTP_PASSWORD"
//! from = "revloop <revloop@example.com>"
//!
//! [delivery.targets]
//! "on-call engineer" = [{ channel = "oncall-hook" }, { channel = "mail", to = "oncall@example.com" }]
//!
//! [delivery.audiences]
//! "revenue team" = [{ channel = "mail", to = "revenue@example.com" }]
//! ```
//!
//! Secrets (a webhook's signing secret, a Slack URL, a PagerDuty routing key, an SMTP
//! password) are never written in the config: only where to read them ([`SecretSource`]). The
//! core never reads them; the server does, at start and in `check-config`.
//!
//! Without a `[delivery]` section every page goes to the log only, as before delivery existed.
//! With one, every target the escalation paths name must be routed (the config is refused
//! otherwise), so that no page is silently dropped.

use std::collections::BTreeMap;

use super::Problems;
use crate::delivery::RetryPolicy;
use crate::time::DurationMs;

/// Most channels, targets or audiences, and most routes per target or audience.
pub const CHANNELS_MAX: usize = 32;
pub const ROUTES_MAX: usize = 8;
/// Most concurrent attempts one channel may run.
pub const CONCURRENCY_MAX: usize = 64;

/// The `[delivery]` section, validated. `None` in [`super::Config`] when the section is absent.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub channels: Vec<Channel>,
    /// Escalation targets ("on-call engineer", "CTO", ...) to their routes, each non-empty.
    pub targets: BTreeMap<String, Vec<Route>>,
    /// Audiences ("revenue team", "engineering", "executives", "product") to their routes.
    pub audiences: BTreeMap<String, Vec<Route>>,
    /// A page whose every delivery has failed (finally, or for this long) pages the next level
    /// at once. Default 5 minutes.
    pub failover_after: DurationMs,
    pub retry: RetryPolicy,
}

impl Delivery {
    pub fn channel(&self, name: &str) -> Option<&Channel> {
        self.channels.iter().find(|c| c.name == name)
    }
}

/// One channel: how to reach a kind of receiver, with its own queue, concurrency and breaker.
#[derive(Debug, Clone, PartialEq)]
pub struct Channel {
    /// Unique, `[a-z0-9_-]`, at most 64 bytes: used in metrics labels and the outbox view.
    pub name: String,
    pub kind: ChannelKind,
    /// Attempts in flight at once on this channel. Default 4.
    pub concurrency: usize,
    /// One attempt's whole time limit (connect, send, answer). Default 10 s.
    pub timeout: DurationMs,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ChannelKind {
    /// A JSON POST signed `Revloop-Signature: t=..,v1=..` (HMAC-SHA256 with `secret`).
    Webhook { url: Url, secret: SecretSource },
    /// A Slack-compatible incoming webhook; its URL is the secret.
    Slack { url: SecretSource },
    /// Email over SMTP; a route's `to` is the address.
    Email(Smtp),
    /// PagerDuty Events API v2 (`url` defaults to `https://events.pagerduty.com/v2/enqueue`).
    PagerDuty { url: Url, routing_key: SecretSource },
    /// The server's log at info level: what revloop did before delivery existed.
    Log,
}

impl ChannelKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            ChannelKind::Webhook { .. } => "webhook",
            ChannelKind::Slack { .. } => "slack",
            ChannelKind::Email(_) => "email",
            ChannelKind::PagerDuty { .. } => "pagerduty",
            ChannelKind::Log => "log",
        }
    }
}

/// An `http` or `https` URL with a host, checked when the config is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url(pub String);

/// Where a secret is read: never the config itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// An environment variable's name.
    Env(String),
    /// A file's path; its content, trailing newline trimmed.
    File(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Smtp {
    pub host: String,
    /// Default 587 for STARTTLS, 465 for implicit TLS, 25 for none.
    pub port: u16,
    pub tls: SmtpTls,
    /// Authentication, when configured: the user name and where its password is read.
    pub auth: Option<(String, SecretSource)>,
    /// The `From` mailbox, checked as an address (`name <addr>` or `addr`).
    pub from: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    StartTls,
    Implicit,
    /// Plain SMTP: allowed only to a loopback host (tests, a local relay).
    None,
}

/// One way to reach a target or audience: a channel, and for email the address.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Route {
    pub channel: String,
    /// The email address (required for an email channel, refused for the others).
    pub to: Option<String>,
}

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDelivery {
    // H3: the raw, spanned shape.
}

/// Checks the section against the escalation targets the incident policy names (`targets`),
/// reporting every problem with its line: a target with no route, a route to an unknown
/// channel, a channel without a secret source, a malformed URL or address, duplicate names.
pub(super) fn validate_delivery(
    raw: RawDelivery,
    targets: &[String],
    problems: &mut Problems,
) -> Delivery {
    let _ = (raw, targets, problems);
    todo!("H3")
}
