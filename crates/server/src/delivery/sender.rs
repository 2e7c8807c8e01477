//! One sender per configured channel, with its secrets read (environment or file) when it is
//! built, so that a missing secret is a start-up error naming the channel, never a silent drop.
//!
//! Every attempt runs within the channel's `timeout`, whatever the receiver does (a receiver
//! that accepts the connection and never answers is a `"timeout"`), keeps at most
//! [`RESPONSE_BYTES_MAX`] of the answer, and is judged by the core's rules
//! ([`classify_http`], [`classify_smtp`]). HTTP channels share one client (HTTP/1, rustls on
//! the ring provider with the platform's roots, no redirects followed, no proxy).

mod email;
pub mod render;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use std::collections::BTreeMap;

use revloop_core::config::{Channel, ChannelKind, Delivery, SecretSource, check_url};
use revloop_core::delivery::{
    Message, Outcome, RESPONSE_BYTES_MAX, classify_http, parse_retry_after,
};
use revloop_core::time::Timestamp;

use super::signature::{SIGNATURE_HEADER, sign};
use email::Mailer;

/// Largest secret file read, in bytes: a secret is a key or a URL, never a large file.
pub const SECRET_FILE_BYTES_MAX: u64 = 64 * 1_024;

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
    channel: String,
    timeout: Duration,
    kind: Arc<Kind>,
}

enum Kind {
    Webhook {
        client: reqwest::Client,
        url: String,
        secret: String,
    },
    Slack {
        client: reqwest::Client,
        url: String,
    },
    PagerDuty {
        client: reqwest::Client,
        url: String,
        routing_key: String,
    },
    Email(Mailer),
    Log,
}

impl Sender {
    /// Builds the channel's sender, reading its secrets through `secret` (the environment and
    /// the file system in production; a map in tests).
    pub fn new(
        channel: &Channel,
        secret: &dyn Fn(&SecretSource) -> Result<String, String>,
    ) -> Result<Sender, SetupError> {
        let fail = |reason: String| SetupError {
            channel: channel.name.clone(),
            reason,
        };
        let read = |what: &str, source: &SecretSource| {
            secret(source).map_err(|reason| fail(format!("{what}: {reason}")))
        };
        let timeout = Duration::from_millis(channel.timeout.millis().max(1) as u64);
        let kind = match &channel.kind {
            ChannelKind::Webhook { url, secret } => Kind::Webhook {
                client: http_client().map_err(fail)?,
                url: url.0.clone(),
                secret: read("the signing secret", secret)?,
            },
            ChannelKind::Slack { url } => {
                let url = read("the Slack webhook URL", url)?;
                check_url(&url).map_err(|reason| {
                    fail(format!(
                        "the Slack webhook URL read is not a valid URL: {reason}"
                    ))
                })?;
                Kind::Slack {
                    client: http_client().map_err(fail)?,
                    url,
                }
            }
            ChannelKind::PagerDuty { url, routing_key } => Kind::PagerDuty {
                client: http_client().map_err(fail)?,
                url: url.0.clone(),
                routing_key: read("the PagerDuty routing key", routing_key)?,
            },
            ChannelKind::Email(smtp) => {
                let password = match &smtp.auth {
                    Some((username, source)) => {
                        Some(read(&format!("the SMTP password of `{username}`"), source)?)
                    }
                    None => None,
                };
                Kind::Email(Mailer::new(smtp, password, timeout).map_err(fail)?)
            }
            ChannelKind::Log => Kind::Log,
        };
        Ok(Sender {
            channel: channel.name.clone(),
            timeout,
            kind: Arc::new(kind),
        })
    }

    /// The channel's name.
    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// One attempt, within the channel's timeout. Never panics, never waits longer.
    pub async fn send(&self, message: &Message, to: To<'_>) -> Attempt {
        match tokio::time::timeout(self.timeout, self.attempt(message, to)).await {
            Ok(attempt) => attempt,
            Err(_) => Attempt {
                outcome: Outcome::Transient { retry_after: None },
                status: "timeout".to_string(),
                response: format!("no answer within {} ms", self.timeout.as_millis()),
            },
        }
    }

    async fn attempt(&self, message: &Message, to: To<'_>) -> Attempt {
        match &*self.kind {
            Kind::Webhook {
                client,
                url,
                secret,
            } => {
                let body = render::webhook_body(message, to.key, to.target).to_string();
                let signature = sign(body.as_bytes(), secret, to.now);
                let headers = [
                    ("Idempotency-Key", to.key.to_string()),
                    (SIGNATURE_HEADER, signature),
                ];
                post_json(client, url, body, &headers, to.now).await
            }
            Kind::Slack { client, url } => {
                let body = render::slack_body(message).to_string();
                post_json(client, url, body, &[], to.now).await
            }
            Kind::PagerDuty {
                client,
                url,
                routing_key,
            } => {
                let mut last = None;
                for event in render::pagerduty_events(message, routing_key) {
                    let attempt = post_json(client, url, event.to_string(), &[], to.now).await;
                    if attempt.outcome != Outcome::Delivered {
                        return attempt;
                    }
                    last = Some(attempt);
                }
                last.expect("every message is at least one event")
            }
            Kind::Email(mailer) => mailer.send(message, to).await,
            Kind::Log => {
                tracing::info!(
                    channel = %self.channel,
                    target = to.target,
                    key = to.key,
                    event = message.event.as_str(),
                    incident = message.incident,
                    "{}",
                    message.title
                );
                Attempt {
                    outcome: Outcome::Delivered,
                    status: "log".to_string(),
                    response: String::new(),
                }
            }
        }
    }
}

/// Every channel's sender, by channel name; or every channel that cannot be set up (each
/// missing secret named), so that start-up and `check-config` report them all at once.
pub fn senders(
    delivery: &Delivery,
    secret: &dyn Fn(&SecretSource) -> Result<String, String>,
) -> Result<BTreeMap<String, Sender>, Vec<SetupError>> {
    let mut senders = BTreeMap::new();
    let mut errors = Vec::new();
    for channel in &delivery.channels {
        match Sender::new(channel, secret) {
            Ok(sender) => {
                senders.insert(channel.name.clone(), sender);
            }
            Err(err) => errors.push(err),
        }
    }
    if errors.is_empty() {
        Ok(senders)
    } else {
        Err(errors)
    }
}

/// Reads a secret from the process environment or a file (content, trailing newline trimmed).
pub fn read_secret(source: &SecretSource) -> Result<String, String> {
    let value = match source {
        SecretSource::Env(name) => match std::env::var(name) {
            Ok(value) => value,
            Err(std::env::VarError::NotPresent) => {
                return Err(format!("the environment variable {name} is not set"));
            }
            Err(std::env::VarError::NotUnicode(_)) => {
                return Err(format!("the environment variable {name} is not UTF-8"));
            }
        },
        SecretSource::File(path) => read_secret_file(path)?,
    };
    let value = value.trim_end_matches(['\n', '\r']).to_string();
    if value.trim().is_empty() {
        return Err(match source {
            SecretSource::Env(name) => format!("the environment variable {name} is empty"),
            SecretSource::File(path) => format!("the secret file {path} is empty"),
        });
    }
    Ok(value)
}

fn read_secret_file(path: &str) -> Result<String, String> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| format!("the secret file {path}: {e}"))?;
    let mut text = String::new();
    file.take(SECRET_FILE_BYTES_MAX + 1)
        .read_to_string(&mut text)
        .map_err(|e| format!("the secret file {path}: {e}"))?;
    if text.len() as u64 > SECRET_FILE_BYTES_MAX {
        return Err(format!(
            "the secret file {path} is larger than {SECRET_FILE_BYTES_MAX} bytes"
        ));
    }
    Ok(text)
}

/// The one HTTP client every HTTP channel shares (its connection pool included).
fn http_client() -> Result<reqwest::Client, String> {
    static CLIENT: OnceLock<Result<reqwest::Client, String>> = OnceLock::new();
    CLIENT.get_or_init(build_http_client).clone()
}

fn build_http_client() -> Result<reqwest::Client, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    // Unreadable platform certificates are skipped: an https receiver then fails with "tls",
    // visibly, on its attempts; plain-http receivers are unaffected.
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("revloop/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("the HTTP client: {e}"))
}

/// One JSON POST; the caller bounds its time.
async fn post_json(
    client: &reqwest::Client,
    url: &str,
    body: String,
    headers: &[(&str, String)],
    now: Timestamp,
) -> Attempt {
    let mut request = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body);
    for (name, value) in headers {
        request = request.header(*name, value.as_str());
    }
    let mut response = match request.send().await {
        Ok(response) => response,
        Err(err) => return network_failure(&err),
    };
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, now));
    // Only the start of the answer is kept; the rest is never read.
    let mut bytes: Vec<u8> = Vec::new();
    while bytes.len() < RESPONSE_BYTES_MAX {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            Ok(None) | Err(_) => break,
        }
    }
    Attempt {
        outcome: classify_http(status, retry_after),
        status: status.to_string(),
        response: cut_response(&String::from_utf8_lossy(&bytes)),
    }
}

/// A request that got no answer: transient, named by its kind, its text without the URL.
fn network_failure(err: &reqwest::Error) -> Attempt {
    let mut chain = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        chain.push_str(": ");
        chain.push_str(&cause.to_string());
        source = cause.source();
    }
    // reqwest names the URL in its errors, and a Slack URL is the channel's secret: what is
    // stored and shown (the outbox, the timeline, `notify test`) never holds it.
    if let Some(url) = err.url() {
        chain = chain.replace(url.as_str(), "[the channel's URL]");
    }
    let lower = chain.to_ascii_lowercase();
    let status = if err.is_timeout() {
        "timeout"
    } else if lower.contains("dns error") || lower.contains("failed to lookup") {
        "dns"
    } else if is_tls_error(err) {
        "tls"
    } else if err.is_connect() {
        "connect"
    } else {
        "network"
    };
    Attempt {
        outcome: Outcome::Transient { retry_after: None },
        status: status.to_string(),
        response: cut_response(&chain),
    }
}

/// Whether a rustls error is anywhere in the chain (also inside an `io::Error`, whose
/// `source` skips the error it wraps).
pub(crate) fn is_tls_error(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(err);
    while let Some(cause) = next {
        let inner = cause
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .map(|inner| inner as &(dyn std::error::Error + 'static));
        if cause.is::<rustls::Error>() || inner.is_some_and(|e| e.is::<rustls::Error>()) {
            return true;
        }
        next = inner.or_else(|| cause.source());
    }
    false
}

/// At most [`RESPONSE_BYTES_MAX`] bytes of `text`, cut at a char boundary.
pub(crate) fn cut_response(text: &str) -> String {
    if text.len() <= RESPONSE_BYTES_MAX {
        return text.to_string();
    }
    let mut end = RESPONSE_BYTES_MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_are_cut_at_a_char_boundary() {
        assert_eq!(cut_response("short"), "short");
        let long = "é".repeat(RESPONSE_BYTES_MAX);
        let cut = cut_response(&long);
        assert!(cut.len() <= RESPONSE_BYTES_MAX && cut.len() >= RESPONSE_BYTES_MAX - 1);
        assert!(cut.chars().all(|c| c == 'é'));
    }

    #[test]
    fn secrets_are_read_from_files_trimmed_and_refused_when_missing_or_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, "s3cret\n").unwrap();
        let file = SecretSource::File(path.display().to_string());
        assert_eq!(read_secret(&file).unwrap(), "s3cret");
        std::fs::write(&path, "\n").unwrap();
        assert!(read_secret(&file).unwrap_err().contains("is empty"));
        std::fs::write(&path, vec![b'a'; SECRET_FILE_BYTES_MAX as usize + 1]).unwrap();
        assert!(read_secret(&file).unwrap_err().contains("larger than"));
        let missing = SecretSource::File(dir.path().join("nope").display().to_string());
        assert!(read_secret(&missing).unwrap_err().contains("nope"));
        let env = SecretSource::Env("REVLOOP_TEST_SURELY_UNSET_SECRET".to_string());
        assert_eq!(
            read_secret(&env).unwrap_err(),
            "the environment variable REVLOOP_TEST_SURELY_UNSET_SECRET is not set"
        );
    }
}
