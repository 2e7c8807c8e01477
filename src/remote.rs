//! What every command that talks to a running server shares: the connection settings
//! (`--url`/`REVLOOP_URL`, `--token`/`REVLOOP_TOKEN`, `--json`), one typed request (a body
//! serialized from its `revloop-api` type, a reply deserialized into its type, an error
//! reply printed from the typed error body), and the command line's one segment syntax.
//!
//! It must never parse a reply by hand: every shape lives in `revloop-api`.

use anyhow::Context;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Serialize;
use serde::de::DeserializeOwned;

use revloop_api::{ErrorBody, Segment};

use crate::client::Client;

/// Where the server is and who is asking: read by every command that talks HTTP.
#[derive(clap::Args, Debug)]
pub struct Remote {
    /// The server's base URL.
    #[arg(
        long,
        env = "REVLOOP_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub url: String,
    /// An API token: viewer to read, responder to act, admin to rebuild.
    #[arg(long, env = "REVLOOP_TOKEN", global = true, hide_env_values = true)]
    pub token: Option<String>,
    /// Print the server's JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
}

/// An HTTP method the CLI uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Delete,
}

impl Method {
    fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Delete => "DELETE",
        }
    }
}

impl Remote {
    /// `GET path` into its reply type.
    pub fn get<R: DeserializeOwned>(&self, path: &str) -> anyhow::Result<R> {
        self.send(Method::Get, path, None)
    }

    /// `DELETE path` into its reply type.
    pub fn delete<R: DeserializeOwned>(&self, path: &str) -> anyhow::Result<R> {
        self.send(Method::Delete, path, None)
    }

    /// `POST path` with a JSON body, into its reply type.
    pub fn post<B: Serialize, R: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> anyhow::Result<R> {
        let body = serde_json::to_vec(body).context("writing the request body")?;
        self.send(Method::Post, path, Some(body))
    }

    /// `POST path` without a body, into its reply type.
    pub fn post_empty<R: DeserializeOwned>(&self, path: &str) -> anyhow::Result<R> {
        self.send(Method::Post, path, None)
    }

    /// `GET path` as text (an export), not JSON.
    pub fn get_text(&self, path: &str) -> anyhow::Result<String> {
        self.send_raw(Method::Get, path, None)
    }

    /// One request into its reply type.
    fn send<R: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> anyhow::Result<R> {
        let text = self.send_raw(method, path, body)?;
        serde_json::from_str(&text).with_context(|| {
            format!(
                "{} {path}: the server's reply is not what this revloop reads: {text}",
                method.as_str()
            )
        })
    }

    /// One request; a 4xx or 5xx becomes an error with the server's message and details.
    fn send_raw(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> anyhow::Result<String> {
        let url = format!("{}{path}", self.url.trim_end_matches('/'));
        let token = self.token.as_deref().context(
            "no token: pass --token or set REVLOOP_TOKEN (create one with `revloop token create`)",
        )?;
        let auth = format!("Bearer {token}");
        let mut headers = vec![("Authorization", auth.as_str())];
        let client = Client::new();
        let reply = match (method, body) {
            (Method::Post, Some(body)) => {
                headers.push(("Content-Type", "application/json"));
                client.post(&url, &headers, &body)
            }
            (Method::Post, None) => client.post(&url, &headers, b""),
            (Method::Delete, _) => client.delete(&url, &headers),
            (Method::Get, _) => client.get(&url, &headers),
        }
        .with_context(|| format!("reaching {}", self.url))?;
        let method = method.as_str();
        if reply.status >= 400 {
            let message = match serde_json::from_str::<ErrorBody>(&reply.body) {
                Ok(body) => body.error.to_string(),
                Err(_) => reply.body,
            };
            anyhow::bail!("{method} {path}: {} {message}", reply.status);
        }
        Ok(reply.body)
    }
}

/// Prints a reply as the server's JSON, pretty.
pub fn print_json<T: Serialize>(reply: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(reply)?);
    Ok(())
}

/// Prints a reply as JSON with `--json`, else as text.
pub fn show<T: Serialize>(
    remote: &Remote,
    reply: &T,
    print: impl FnOnce(&T),
) -> anyhow::Result<std::process::ExitCode> {
    if remote.json {
        print_json(reply)?;
    } else {
        print(reply);
    }
    Ok(std::process::ExitCode::SUCCESS)
}

/// What a query value may hold unescaped: RFC 3986's unreserved characters, plus `:` so that
/// RFC 3339 times stay readable in logs.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b':');

/// A path with its query, percent-encoded.
pub fn with_query(path: &str, query: &[(&str, String)]) -> String {
    if query.is_empty() {
        return path.to_owned();
    }
    let pairs: Vec<String> = query
        .iter()
        .map(|(k, v)| format!("{k}={}", utf8_percent_encode(v, QUERY_VALUE)))
        .collect();
    format!("{path}?{}", pairs.join("&"))
}

/// A time for the API: RFC 3339 as given, or a bare date as its midnight UTC.
pub fn time_arg(text: &str) -> String {
    let is_date = text.len() == 10 && text.as_bytes()[4] == b'-' && text.as_bytes()[7] == b'-';
    if is_date {
        format!("{text}T00:00:00Z")
    } else {
        text.to_owned()
    }
}

/// `--segment dimension=value`: the command line's one segment syntax (a clap value parser).
pub fn segment_arg(text: &str) -> Result<Segment, String> {
    Segment::parse(text)
}

/// `baseline --segment`: `dimension=value`, or the older `dimension:value` with a note on
/// stderr that it is deprecated.
pub fn segment_arg_or_legacy(text: &str) -> Result<Segment, String> {
    if !text.contains('=')
        && let Some((dimension, value)) = text.split_once(':')
    {
        let segment = Segment::parse(&format!("{dimension}={value}"))?;
        eprintln!(
            "note: `--segment {text}` is deprecated; write `--segment {segment}` ({})",
            Segment::SYNTAX
        );
        return Ok(segment);
    }
    Segment::parse(text)
}

/// A time to the second, so that columns line up (the API gives milliseconds when it has
/// them).
pub fn when(text: &str) -> String {
    match (text.find('.'), text.ends_with('Z')) {
        (Some(dot), true) => format!("{}Z", &text[..dot]),
        _ => text.to_owned(),
    }
}

/// `funnel/stage` of what is given, for a change's or silence's scope; empty for everything.
pub fn scope_text(funnel: Option<&str>, stage: Option<&str>) -> String {
    [funnel, stage]
        .iter()
        .flatten()
        .copied()
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::with_query;

    #[test]
    fn query_values_are_percent_encoded_but_times_stay_readable() {
        let query = [
            ("from", "2026-11-28T10:00:00+01:00".to_owned()),
            ("funnel", "a b&c=d/é".to_owned()),
        ];
        assert_eq!(
            with_query("/api/v1/incidents", &query),
            "/api/v1/incidents?from=2026-11-28T10:00:00%2B01:00&funnel=a%20b%26c%3Dd%2F%C3%A9"
        );
        assert_eq!(with_query("/api/v1/outbox", &[]), "/api/v1/outbox");
    }
}
