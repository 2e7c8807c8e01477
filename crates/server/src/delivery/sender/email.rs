//! Email over SMTP with lettre: STARTTLS, implicit TLS, or plain SMTP to a loopback relay;
//! AUTH when configured; `multipart/alternative` plain text + HTML; a `Message-ID` from the
//! delivery's key and `In-Reply-To`/`References` to the incident's thread id, so that an
//! incident's emails thread.

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use revloop_core::config::{Smtp, SmtpTls};
use revloop_core::delivery::{Message, Outcome, classify_smtp};

use super::render::{email_html, email_subject, email_text, email_thread_id};
use super::{Attempt, To, cut_response};

/// A channel's SMTP relay, ready to send. One connection per message (no pool): pages are
/// few, and a fresh connection never inherits a broken one's state.
pub(super) struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl Mailer {
    /// The relay as configured; `password` is the secret read for `auth`.
    pub(super) fn new(
        smtp: &Smtp,
        password: Option<String>,
        timeout: Duration,
    ) -> Result<Mailer, String> {
        let from: Mailbox = smtp
            .from
            .parse()
            .map_err(|e| format!("from `{}` is not a mailbox: {e}", smtp.from))?;
        let tls = || {
            TlsParameters::new(smtp.host.clone()).map_err(|e| format!("TLS for {}: {e}", smtp.host))
        };
        let tls = match smtp.tls {
            SmtpTls::StartTls => Tls::Required(tls()?),
            SmtpTls::Implicit => Tls::Wrapper(tls()?),
            SmtpTls::None => Tls::None,
        };
        let mut builder =
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(smtp.host.clone())
                .port(smtp.port)
                .tls(tls)
                .timeout(Some(timeout));
        if let (Some((username, _)), Some(password)) = (&smtp.auth, password) {
            builder = builder.credentials(Credentials::new(username.clone(), password));
        }
        Ok(Mailer {
            transport: builder.build(),
            from,
        })
    }

    /// One attempt: build the email, hand it to the relay, judge its reply.
    pub(super) async fn send(&self, message: &Message, to: To<'_>) -> Attempt {
        let email = match self.build(message, to) {
            Ok(email) => email,
            // An address or a message the relay can never take: no retry helps.
            Err(reason) => return attempt(Outcome::Permanent, "invalid", &reason),
        };
        match self.transport.send(email).await {
            Ok(response) => {
                let code = u16::from(response.code());
                let text: Vec<&str> = response.message().collect();
                attempt(classify_smtp(code), &code.to_string(), &text.join(" "))
            }
            Err(err) => match err.status() {
                Some(code) => {
                    let code = u16::from(code);
                    attempt(classify_smtp(code), &code.to_string(), &err.to_string())
                }
                None => {
                    let chain = error_chain(&err);
                    // lettre reports a refused certificate as a connection error (a rustls
                    // error inside), and a relay without STARTTLS as a client error: both
                    // are TLS failures to a reader.
                    let status = if err.is_timeout() {
                        "timeout"
                    } else if err.is_tls()
                        || super::is_tls_error(&err)
                        || chain.to_ascii_lowercase().contains("starttls")
                    {
                        "tls"
                    } else {
                        "connect"
                    };
                    let outcome = Outcome::Transient { retry_after: None };
                    attempt(outcome, status, &chain)
                }
            },
        }
    }

    fn build(&self, message: &Message, to: To<'_>) -> Result<lettre::Message, String> {
        let address = to.address.ok_or("an email delivery without an address")?;
        let recipient: Mailbox = address
            .parse()
            .map_err(|e| format!("`{address}` is not an address: {e}"))?;
        let html = email_html(message)?;
        let mut builder = lettre::Message::builder()
            .from(self.from.clone())
            .to(recipient)
            .subject(email_subject(message))
            .message_id(Some(format!("<{}@revloop>", sanitize_id(to.key))))
            .date(std::time::UNIX_EPOCH + Duration::from_millis(to.now.millis().max(0) as u64));
        if let Some(thread) = email_thread_id(message) {
            builder = builder.in_reply_to(thread.clone()).references(thread);
        }
        builder
            .multipart(
                MultiPart::alternative()
                    .singlepart(
                        SinglePart::builder()
                            .header(ContentType::TEXT_PLAIN)
                            .body(email_text(message)),
                    )
                    .singlepart(
                        SinglePart::builder()
                            .header(ContentType::TEXT_HTML)
                            .body(html),
                    ),
            )
            .map_err(|e| e.to_string())
    }
}

/// A `Message-ID`'s local part: the key's characters that are safe in one (`dot-atom-text`
/// letters, digits and `.-_+`), others as `_`.
fn sanitize_id(key: &str) -> String {
    key.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.+".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn attempt(outcome: Outcome, status: &str, response: &str) -> Attempt {
    Attempt {
        outcome,
        status: status.to_string(),
        response: cut_response(response),
    }
}
