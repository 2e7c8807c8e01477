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

use serde::Deserialize;
use toml::Spanned;

use super::{Problems, duration_field, integer_field};
use crate::delivery::RetryPolicy;
use crate::time::DurationMs;

/// Most channels, targets or audiences, and most routes per target or audience.
pub const CHANNELS_MAX: usize = 32;
pub const ROUTES_MAX: usize = 8;
/// Most concurrent attempts one channel may run.
pub const CONCURRENCY_MAX: usize = 64;
/// Longest one attempt may take (a channel's `timeout`).
pub const CHANNEL_TIMEOUT_MAX: DurationMs = DurationMs::from_minutes(2);
/// Longest URL, email address, host or secret source name accepted, in bytes.
pub const ADDRESS_LEN_MAX: usize = 2_048;
/// Longest channel, target or audience name, in bytes.
pub const NAME_LEN_MAX: usize = 64;
/// Where PagerDuty's Events API v2 takes events, unless a channel's `url` says otherwise.
pub const PAGERDUTY_EVENTS_URL: &str = "https://events.pagerduty.com/v2/enqueue";

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

// The raw, spanned shape of the section. Everything is checked in `validate_delivery`.

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDelivery {
    failover_after: Option<Spanned<String>>,
    #[serde(default)]
    channels: Vec<Spanned<RawChannel>>,
    targets: RawRoutes,
    audiences: RawRoutes,
    retry: Option<RawRetry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChannel {
    name: Spanned<String>,
    kind: Spanned<String>,
    concurrency: Option<Spanned<i64>>,
    timeout: Option<Spanned<String>>,
    url: Option<Spanned<String>>,
    secret_env: Option<Spanned<String>>,
    secret_file: Option<Spanned<String>>,
    url_env: Option<Spanned<String>>,
    url_file: Option<Spanned<String>>,
    routing_key_env: Option<Spanned<String>>,
    routing_key_file: Option<Spanned<String>>,
    smtp_host: Option<Spanned<String>>,
    smtp_port: Option<Spanned<i64>>,
    tls: Option<Spanned<String>>,
    username: Option<Spanned<String>>,
    password_env: Option<Spanned<String>>,
    password_file: Option<Spanned<String>>,
    from: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    channel: Spanned<String>,
    to: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRetry {
    base: Option<Spanned<String>>,
    cap: Option<Spanned<String>>,
    give_up_after: Option<Spanned<String>>,
}

/// Names (targets or audiences) to their routes, each spanned for its line.
type RawRoutes = Option<Spanned<BTreeMap<String, Spanned<Vec<Spanned<RawRoute>>>>>>;

/// Checks the section against the escalation targets the incident policy names (`targets`),
/// reporting every problem with its line: a target with no route, a route to an unknown
/// channel, a channel without a secret source, a malformed URL or address, duplicate names.
pub(super) fn validate_delivery(
    raw: RawDelivery,
    targets: &[String],
    problems: &mut Problems,
) -> Delivery {
    let failover_after = duration_field(
        raw.failover_after,
        "5m",
        "delivery.failover_after",
        problems,
    );
    let retry = validate_retry(raw.retry, problems);
    if raw.channels.len() > CHANNELS_MAX {
        let offset = raw.channels[CHANNELS_MAX].span().start;
        problems.at(offset, format!("at most {CHANNELS_MAX} delivery channels"));
    }
    let mut channels: Vec<Channel> = Vec::new();
    for raw_channel in raw.channels.into_iter().take(CHANNELS_MAX) {
        let offset = raw_channel.span().start;
        let Some(channel) = validate_channel(raw_channel.into_inner(), problems) else {
            continue;
        };
        if channels.iter().any(|c| c.name == channel.name) {
            problems.at(
                offset,
                format!("a second delivery channel named `{}`", channel.name),
            );
            continue;
        }
        channels.push(channel);
    }
    let section_offset = raw.targets.as_ref().map(|t| t.span().start);
    let routed_targets = validate_routes(raw.targets, "target", &channels, problems);
    for target in targets {
        if !routed_targets.contains_key(target) {
            let message = format!(
                "the escalation target `{target}` has no route in [delivery.targets]: its pages would reach nobody"
            );
            match section_offset {
                Some(offset) => problems.at(offset, message),
                // No [delivery.targets] at all: no line to point at.
                None => problems
                    .found
                    .push(super::ConfigProblem { line: 0, message }),
            }
        }
    }
    let audiences = validate_routes(raw.audiences, "audience", &channels, problems);
    Delivery {
        channels,
        targets: routed_targets,
        audiences,
        failover_after,
        retry,
    }
}

fn validate_retry(raw: Option<RawRetry>, problems: &mut Problems) -> RetryPolicy {
    let default = RetryPolicy::default();
    let Some(raw) = raw else {
        return default;
    };
    let cap_offset = raw.cap.as_ref().map(|c| c.span().start);
    let duration = |field, default: DurationMs, name, problems: &mut Problems| {
        duration_field(field, &default.to_string(), name, problems)
    };
    let base = duration(raw.base, default.base, "delivery.retry.base", problems);
    let cap = duration(raw.cap, default.cap, "delivery.retry.cap", problems);
    let give_up_after = duration(
        raw.give_up_after,
        default.give_up_after,
        "delivery.retry.give_up_after",
        problems,
    );
    if base > cap {
        problems.at(
            cap_offset.unwrap_or(0),
            "delivery.retry.cap must be at least delivery.retry.base",
        );
    }
    RetryPolicy {
        base,
        cap: cap.max(base),
        give_up_after,
    }
}

/// Which kinds take each optional setting: any other kind refuses it, so that a typo'd kind
/// or a setting meant for another channel is never silently ignored.
const SETTINGS: &[(&str, &[&str])] = &[
    ("url", &["webhook", "pagerduty"]),
    ("secret_env", &["webhook"]),
    ("secret_file", &["webhook"]),
    ("url_env", &["slack"]),
    ("url_file", &["slack"]),
    ("routing_key_env", &["pagerduty"]),
    ("routing_key_file", &["pagerduty"]),
    ("smtp_host", &["email"]),
    ("smtp_port", &["email"]),
    ("tls", &["email"]),
    ("username", &["email"]),
    ("password_env", &["email"]),
    ("password_file", &["email"]),
    ("from", &["email"]),
];

fn setting_offsets(raw: &RawChannel) -> [Option<usize>; 14] {
    let offset = |s: &Option<Spanned<String>>| s.as_ref().map(|s| s.span().start);
    [
        offset(&raw.url),
        offset(&raw.secret_env),
        offset(&raw.secret_file),
        offset(&raw.url_env),
        offset(&raw.url_file),
        offset(&raw.routing_key_env),
        offset(&raw.routing_key_file),
        offset(&raw.smtp_host),
        raw.smtp_port.as_ref().map(|s| s.span().start),
        offset(&raw.tls),
        offset(&raw.username),
        offset(&raw.password_env),
        offset(&raw.password_file),
        offset(&raw.from),
    ]
}

fn validate_channel(mut raw: RawChannel, problems: &mut Problems) -> Option<Channel> {
    let name_offset = raw.name.span().start;
    let name = raw.name.get_ref().clone();
    check_name(&name, name_offset, problems);
    let kind_offset = raw.kind.span().start;
    let kind_name = raw.kind.get_ref().as_str();
    if !["webhook", "slack", "email", "pagerduty", "log"].contains(&kind_name) {
        problems.at(
            kind_offset,
            format!(
                "channel `{name}`: kind `{kind_name}` is not one of webhook, slack, email, pagerduty, log"
            ),
        );
        return None;
    }
    for ((setting, kinds), offset) in SETTINGS.iter().zip(setting_offsets(&raw)) {
        if let Some(offset) = offset
            && !kinds.contains(&kind_name)
        {
            problems.at(
                offset,
                format!("channel `{name}`: `{setting}` is not a setting of a {kind_name} channel"),
            );
        }
    }
    let concurrency = integer_field(
        raw.concurrency.take(),
        4,
        1..=CONCURRENCY_MAX as i64,
        "a channel's concurrency",
        problems,
    );
    let timeout_offset = raw.timeout.as_ref().map(|t| t.span().start);
    let timeout = duration_field(raw.timeout.take(), "10s", "a channel's timeout", problems);
    if timeout > CHANNEL_TIMEOUT_MAX {
        problems.at(
            timeout_offset.unwrap_or(name_offset),
            format!("channel `{name}`: timeout must be at most {CHANNEL_TIMEOUT_MAX}"),
        );
    }
    let what = |field: &str| format!("channel `{name}`: {field}");
    let kind = match kind_name {
        "webhook" => ChannelKind::Webhook {
            url: required_url(raw.url.take(), &what("url"), kind_offset, problems),
            secret: secret_source(
                (raw.secret_env.take(), raw.secret_file.take()),
                ("secret_env", "secret_file"),
                &what("the signing secret"),
                kind_offset,
                problems,
            ),
        },
        "slack" => ChannelKind::Slack {
            url: secret_source(
                (raw.url_env.take(), raw.url_file.take()),
                ("url_env", "url_file"),
                &what("the webhook URL (a secret)"),
                kind_offset,
                problems,
            ),
        },
        "pagerduty" => ChannelKind::PagerDuty {
            url: match raw.url.take() {
                None => Url(PAGERDUTY_EVENTS_URL.to_string()),
                some => required_url(some, &what("url"), kind_offset, problems),
            },
            routing_key: secret_source(
                (raw.routing_key_env.take(), raw.routing_key_file.take()),
                ("routing_key_env", "routing_key_file"),
                &what("the routing key"),
                kind_offset,
                problems,
            ),
        },
        "email" => ChannelKind::Email(validate_smtp(raw, &name, kind_offset, problems)),
        _ => ChannelKind::Log,
    };
    Some(Channel {
        name,
        kind,
        concurrency: concurrency as usize,
        timeout: timeout.min(CHANNEL_TIMEOUT_MAX),
    })
}

fn validate_smtp(raw: RawChannel, name: &str, offset: usize, problems: &mut Problems) -> Smtp {
    let tls = match raw
        .tls
        .as_ref()
        .map(|t| (t.get_ref().as_str(), t.span().start))
    {
        None | Some(("starttls", _)) => SmtpTls::StartTls,
        Some(("implicit", _)) => SmtpTls::Implicit,
        Some(("none", _)) => SmtpTls::None,
        Some((other, at)) => {
            problems.at(
                at,
                format!("channel `{name}`: tls `{other}` is not one of starttls, implicit, none"),
            );
            SmtpTls::StartTls
        }
    };
    let host = match raw.smtp_host {
        None => {
            problems.at(
                offset,
                format!("channel `{name}`: an email channel needs smtp_host"),
            );
            String::new()
        }
        Some(host) => {
            if !valid_host(host.get_ref()) {
                problems.at(
                    host.span().start,
                    format!(
                        "channel `{name}`: smtp_host `{}` is not a host name or IP address",
                        host.get_ref()
                    ),
                );
            } else if tls == SmtpTls::None && !is_loopback(host.get_ref()) {
                problems.at(
                    host.span().start,
                    format!(
                        "channel `{name}`: tls = \"none\" sends mail and passwords in clear text: allowed only to a loopback host, not `{}`",
                        host.get_ref()
                    ),
                );
            }
            host.into_inner()
        }
    };
    let default_port = match tls {
        SmtpTls::StartTls => 587,
        SmtpTls::Implicit => 465,
        SmtpTls::None => 25,
    };
    let port = integer_field(
        raw.smtp_port,
        default_port,
        1..=65_535,
        "smtp_port",
        problems,
    );
    let auth = match raw.username {
        None => {
            if let Some(at) = raw.password_env.as_ref().or(raw.password_file.as_ref()) {
                problems.at(
                    at.span().start,
                    format!("channel `{name}`: a password without a username"),
                );
            }
            None
        }
        Some(username) => {
            let source = secret_source(
                (raw.password_env, raw.password_file),
                ("password_env", "password_file"),
                &format!(
                    "channel `{name}`: the SMTP password of `{}`",
                    username.get_ref()
                ),
                username.span().start,
                problems,
            );
            Some((username.into_inner(), source))
        }
    };
    let from = match raw.from {
        None => {
            problems.at(
                offset,
                format!("channel `{name}`: an email channel needs from"),
            );
            String::new()
        }
        Some(from) => {
            if !valid_mailbox(from.get_ref()) {
                problems.at(
                    from.span().start,
                    format!(
                        "channel `{name}`: from `{}` is not `address` or `name <address>`",
                        from.get_ref()
                    ),
                );
            }
            from.into_inner()
        }
    };
    Smtp {
        host,
        port: port as u16,
        tls,
        auth,
        from,
    }
}

/// Exactly one of the pair must be given, and name something.
fn secret_source(
    (env, file): (Option<Spanned<String>>, Option<Spanned<String>>),
    (env_key, file_key): (&str, &str),
    what: &str,
    offset: usize,
    problems: &mut Problems,
) -> SecretSource {
    match (env, file) {
        (Some(env), Some(_)) => {
            problems.at(
                env.span().start,
                format!("{what}: give {env_key} or {file_key}, not both"),
            );
            SecretSource::Env(env.into_inner())
        }
        (Some(env), None) => {
            let valid = !env.get_ref().is_empty()
                && env.get_ref().len() <= NAME_LEN_MAX * 4
                && env
                    .get_ref()
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !valid {
                problems.at(
                    env.span().start,
                    format!(
                        "{what}: {env_key} `{}` is not an environment variable's name",
                        env.get_ref()
                    ),
                );
            }
            SecretSource::Env(env.into_inner())
        }
        (None, Some(file)) => {
            if file.get_ref().trim().is_empty() || file.get_ref().len() > ADDRESS_LEN_MAX {
                problems.at(
                    file.span().start,
                    format!("{what}: {file_key} is not a path"),
                );
            }
            SecretSource::File(file.into_inner())
        }
        (None, None) => {
            problems.at(
                offset,
                format!(
                    "{what} has no source: give {env_key} (an environment variable) or {file_key} (a file); secrets are never written in the config"
                ),
            );
            SecretSource::Env(String::new())
        }
    }
}

fn required_url(
    url: Option<Spanned<String>>,
    what: &str,
    offset: usize,
    problems: &mut Problems,
) -> Url {
    match url {
        None => {
            problems.at(offset, format!("{what} is missing"));
            Url(String::new())
        }
        Some(url) => {
            if let Err(reason) = check_url(url.get_ref()) {
                problems.at(
                    url.span().start,
                    format!("{what} `{}` is not a valid URL: {reason}", url.get_ref()),
                );
            }
            Url(url.into_inner())
        }
    }
}

/// Each name's routes: non-empty, at most [`ROUTES_MAX`], to known channels, each once, with
/// an address exactly where the channel is email.
fn validate_routes(
    raw: RawRoutes,
    what: &str,
    channels: &[Channel],
    problems: &mut Problems,
) -> BTreeMap<String, Vec<Route>> {
    let mut routed = BTreeMap::new();
    let Some(raw) = raw else {
        return routed;
    };
    let section_offset = raw.span().start;
    let raw = raw.into_inner();
    if raw.len() > CHANNELS_MAX {
        problems.at(
            section_offset,
            format!("at most {CHANNELS_MAX} {what}s may be routed"),
        );
    }
    for (name, raw_routes) in raw.into_iter().take(CHANNELS_MAX) {
        let offset = raw_routes.span().start;
        let raw_routes = raw_routes.into_inner();
        if name.trim().is_empty() || name.len() > NAME_LEN_MAX {
            problems.at(
                offset,
                format!("{what} `{name}`: a name must be 1 to {NAME_LEN_MAX} bytes"),
            );
        }
        if raw_routes.is_empty() {
            problems.at(
                offset,
                format!("{what} `{name}` has no channel: its messages would reach nobody"),
            );
        } else if raw_routes.len() > ROUTES_MAX {
            problems.at(
                offset,
                format!("{what} `{name}`: at most {ROUTES_MAX} routes"),
            );
        }
        let mut routes: Vec<Route> = Vec::new();
        for raw_route in raw_routes.into_iter().take(ROUTES_MAX) {
            let route_offset = raw_route.span().start;
            let Some(route) =
                validate_route(raw_route.into_inner(), &name, what, channels, problems)
            else {
                continue;
            };
            if routes.contains(&route) {
                problems.at(
                    route_offset,
                    format!("{what} `{name}`: the same route twice"),
                );
                continue;
            }
            routes.push(route);
        }
        routed.insert(name, routes);
    }
    routed
}

fn validate_route(
    raw: RawRoute,
    name: &str,
    what: &str,
    channels: &[Channel],
    problems: &mut Problems,
) -> Option<Route> {
    let offset = raw.channel.span().start;
    let channel_name = raw.channel.into_inner();
    let Some(channel) = channels.iter().find(|c| c.name == channel_name) else {
        let known: Vec<&str> = channels.iter().map(|c| c.name.as_str()).collect();
        problems.at(
            offset,
            format!(
                "{what} `{name}`: no delivery channel is named `{channel_name}` (known: {})",
                known.join(", ")
            ),
        );
        return None;
    };
    let is_email = matches!(channel.kind, ChannelKind::Email(_));
    let to = match (raw.to, is_email) {
        (None, true) => {
            problems.at(
                offset,
                format!("{what} `{name}`: an email route needs `to`, the address"),
            );
            return None;
        }
        (Some(to), false) => {
            problems.at(
                to.span().start,
                format!(
                    "{what} `{name}`: `to` is only for email; `{channel_name}` is a {} channel",
                    channel.kind.as_str()
                ),
            );
            return None;
        }
        (Some(to), true) => {
            if !valid_address(to.get_ref()) {
                problems.at(
                    to.span().start,
                    format!(
                        "{what} `{name}`: `{}` is not an email address",
                        to.get_ref()
                    ),
                );
                return None;
            }
            Some(to.into_inner())
        }
        (None, false) => None,
    };
    Some(Route {
        channel: channel_name,
        to,
    })
}

fn check_name(name: &str, offset: usize, problems: &mut Problems) {
    let valid = !name.is_empty()
        && name.len() <= NAME_LEN_MAX
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if !valid {
        problems.at(
            offset,
            format!("channel name `{name}` must be 1 to {NAME_LEN_MAX} of a-z, 0-9, `_` or `-`"),
        );
    }
}

/// An `http` or `https` URL with a host: `scheme://host[:port][/path][?query]`, no user
/// information (credentials belong in a secret), no whitespace or control characters, at most
/// [`ADDRESS_LEN_MAX`] bytes. What is wrong, when it is not one.
pub fn check_url(url: &str) -> Result<(), &'static str> {
    if url.len() > ADDRESS_LEN_MAX {
        return Err("too long");
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("it contains whitespace or control characters");
    }
    let lower = url.to_ascii_lowercase();
    let rest = if lower.starts_with("https://") {
        &url[8..]
    } else if lower.starts_with("http://") {
        &url[7..]
    } else {
        return Err("it must start with http:// or https://");
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') {
        return Err("user information in a URL is refused: keep credentials in a secret");
    }
    let (host, port) = split_host_port(authority);
    if host.is_empty() {
        return Err("it has no host");
    }
    if !valid_host(host) {
        return Err("its host is not a host name or IP address");
    }
    if let Some(port) = port
        && !port.parse::<u16>().is_ok_and(|p| p > 0)
    {
        return Err("its port is not a number from 1 to 65535");
    }
    Ok(())
}

/// `host[:port]` or `[ipv6][:port]`.
fn split_host_port(authority: &str) -> (&str, Option<&str>) {
    if let Some(rest) = authority.strip_prefix('[') {
        return match rest.split_once(']') {
            Some((host, "")) => (host, None),
            Some((host, port)) => (host, Some(port.strip_prefix(':').unwrap_or("x"))),
            None => ("", None),
        };
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    }
}

// Addresses are parsed with `core::net`, the pure address types: nothing here touches the
// network.

/// A DNS name (labels of letters, digits and `-`, each 1 to 63 bytes, not starting or ending
/// with `-`), an IPv4 address, or an IPv6 address (brackets stripped).
pub fn valid_host(host: &str) -> bool {
    if host.parse::<core::net::IpAddr>().is_ok() {
        return true;
    }
    let host = host.strip_suffix('.').unwrap_or(host);
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// `localhost`, or an address in 127.0.0.0/8 or `::1`.
pub fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<core::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The simple rule revloop checks email addresses by (not all of RFC 5322, on purpose):
/// `local@domain`, where `local` is 1 to 64 printable ASCII characters other than whitespace
/// and `<>()[]\,;:@"`, and `domain` is a host name ([`valid_host`], not an IP address) of at
/// least one label; at most 254 bytes in all.
pub fn valid_address(address: &str) -> bool {
    let Some((local, domain)) = address.rsplit_once('@') else {
        return false;
    };
    address.len() <= 254
        && !local.is_empty()
        && local.len() <= 64
        && local
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"<>()[]\\,;:@\"".contains(&b))
        && domain.parse::<core::net::IpAddr>().is_err()
        && valid_host(domain)
}

/// A `From` mailbox: an address ([`valid_address`]), or `display name <address>` where the
/// name has no `<`, `>`, `"` or control characters.
pub fn valid_mailbox(mailbox: &str) -> bool {
    match mailbox.trim().strip_suffix('>') {
        None => valid_address(mailbox.trim()),
        Some(rest) => match rest.split_once('<') {
            Some((name, address)) => {
                !name.contains(['>', '"'])
                    && !name.chars().any(char::is_control)
                    && valid_address(address)
            }
            None => false,
        },
    }
}

#[cfg(test)]
#[path = "delivery_tests.rs"]
mod tests;
