//! Opening one connection: the URL's TLS settings (which the client library does not parse),
//! the session settings every connection starts with, and the limits on how long opening and
//! using a connection may take. It knows no statement of any concern.
//!
//! `sslmode` has libpq's meanings: `disable` never encrypts; `prefer` encrypts when the server
//! offers it, without checking its certificate; `require` always encrypts, without checking the
//! certificate (unless `sslrootcert` names a file, then as `verify-ca`, as libpq does);
//! `verify-ca` also checks that a trusted root signed the certificate; `verify-full` also checks
//! that it names the host connected to. Roots come from `sslrootcert=<path>` (a PEM file), or
//! from the system's store when it is absent or `system`. Without `sslmode` nothing changes
//! from before TLS was compiled in: the connection is not encrypted.

use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use postgres::NoTls;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::{Connection, quote_identifier};
use crate::StoreError;

/// How a store connects and how long it waits: [`Default`] gives the limits a node runs with;
/// tests shorten them.
#[derive(Debug, Clone)]
pub struct PostgresOptions {
    /// The schema revloop's tables live in, created if missing; `None` keeps them wherever the
    /// URL's `search_path` puts them (by default `public`). See
    /// [`PostgresOptions::check_schema_name`] for the names allowed.
    pub schema: Option<String>,
    /// Pooled connections a node opens at most, busy or idle.
    pub pool_connections_max: usize,
    /// How long a call waits for a pooled connection when all are busy, before it fails with
    /// [`StoreError::PoolTimeout`].
    pub pool_wait_max: Duration,
    /// How long opening one connection may take in all: the socket, TLS, authentication and the
    /// session settings. The URL's `connect_timeout` (10 s when it has none) bounds each socket
    /// attempt within that.
    pub connect_total_max: Duration,
    /// The server cancels any statement running longer (`statement_timeout`), so that no call
    /// waits forever on a lock or a runaway query.
    pub statement_max: Duration,
    /// The server ends a session idle inside a transaction for longer
    /// (`idle_in_transaction_session_timeout`), so that a stalled node cannot hold locks that
    /// other nodes wait on.
    pub idle_in_transaction_max: Duration,
}

/// Pooled connections a node opens at most, busy or idle. Each PostgreSQL connection is a server
/// process and every node has its own pool, so this stays well below the server's
/// `max_connections` divided by the number of nodes.
pub const POOL_CONNECTIONS_MAX: usize = 8;
/// How long a read waits for a pooled connection when all are busy: long enough to ride out a
/// slow query or a reconnect, short enough that a stuck database shows.
pub const POOL_WAIT_MAX: Duration = Duration::from_secs(30);
/// How long a socket connection attempt may take when the URL does not say (`connect_timeout`).
const SOCKET_CONNECT_TIMEOUT_DEFAULT: Duration = Duration::from_secs(10);
/// How long opening a connection may take in all, TLS and authentication included.
pub const CONNECT_TOTAL_MAX: Duration = Duration::from_secs(30);
/// The longest any one statement may run. A group commit or a day of counts takes well under a
/// second on a healthy server; a minute means something is stuck.
pub const STATEMENT_MAX: Duration = Duration::from_secs(60);
/// The longest a session may sit idle inside a transaction. revloop never waits on anything
/// else inside one, so only a stalled or partitioned node reaches it.
pub const IDLE_IN_TRANSACTION_MAX: Duration = Duration::from_secs(60);
/// The longest a migration may take, the wait for another node's migration included: it may
/// rewrite large tables once, so it gets far more than a statement.
pub(super) const MIGRATION_MAX: Duration = Duration::from_secs(15 * 60);
/// TCP keepalive: a server that vanished (a partition, a crashed host) is noticed within about
/// idle + interval × retries, even while a reply is awaited, unless the URL says otherwise.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(30);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
const KEEPALIVE_RETRIES: u32 = 3;
/// Data sent but unacknowledged for this long closes the connection (Linux only).
const TCP_USER_TIMEOUT: Duration = Duration::from_secs(30);

/// The longest schema name PostgreSQL keeps; a longer one would be cut silently, so that two
/// names differing only past it would share a schema.
const SCHEMA_NAME_BYTES_MAX: usize = 63;

impl Default for PostgresOptions {
    fn default() -> PostgresOptions {
        PostgresOptions {
            schema: None,
            pool_connections_max: POOL_CONNECTIONS_MAX,
            pool_wait_max: POOL_WAIT_MAX,
            connect_total_max: CONNECT_TOTAL_MAX,
            statement_max: STATEMENT_MAX,
            idle_in_transaction_max: IDLE_IN_TRANSACTION_MAX,
        }
    }
}

impl PostgresOptions {
    /// The default limits, with revloop's tables in `schema`.
    pub fn in_schema(schema: &str) -> PostgresOptions {
        PostgresOptions {
            schema: Some(schema.to_owned()),
            ..PostgresOptions::default()
        }
    }

    /// A schema name revloop accepts: 1 to 63 lowercase ASCII letters, digits and underscores,
    /// not starting with a digit, and not starting with `pg_` (PostgreSQL reserves those). The
    /// name is the same quoted or not, so `psql` users can type it as it is, and it is always
    /// quoted in SQL besides.
    pub fn check_schema_name(name: &str) -> Result<(), StoreError> {
        let invalid = |why: &str| {
            Err(StoreError::Settings(format!(
                "invalid schema name {name:?}: {why}"
            )))
        };
        let Some(first) = name.chars().next() else {
            return invalid("it is empty");
        };
        if name.len() > SCHEMA_NAME_BYTES_MAX {
            return invalid("longer than 63 bytes");
        }
        if !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            return invalid("use only lowercase ASCII letters, digits and underscores");
        }
        if first.is_ascii_digit() {
            return invalid("it starts with a digit");
        }
        if name.starts_with("pg_") {
            return invalid("names starting with pg_ are reserved by PostgreSQL");
        }
        Ok(())
    }
}

/// libpq's `sslmode` values (`allow` is not supported: it would try without TLS first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn name(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    fn parse(text: &str) -> Result<SslMode, StoreError> {
        Ok(match text {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(StoreError::Settings(format!(
                    "unsupported sslmode {other:?} in the database URL (use disable, prefer, \
                     require, verify-ca or verify-full)"
                )));
            }
        })
    }
}

/// The URL's TLS settings, taken out of it.
#[derive(Debug, Default, PartialEq)]
struct TlsSettings {
    mode: Option<SslMode>,
    root_cert: Option<String>,
}

/// Opens one more connection, TLS and session settings included, within
/// [`PostgresOptions::connect_total_max`].
pub(super) struct Connector {
    config: postgres::Config,
    tls: Option<MakeRustlsConnect>,
    /// The URL's `sslmode`, for errors.
    ssl_mode: &'static str,
    /// Run on every new connection: durability, the limits, the search path.
    session_sql: String,
    connect_total_max: Duration,
}

impl Connector {
    pub(super) fn new(url: &str, options: &PostgresOptions) -> Result<Connector, StoreError> {
        if let Some(schema) = &options.schema {
            PostgresOptions::check_schema_name(schema)?;
        }
        let (url, tls_settings) = take_tls_settings(url)?;
        let mut config: postgres::Config = url.parse()?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(SOCKET_CONNECT_TIMEOUT_DEFAULT);
        }
        if config.get_application_name().is_none() {
            config.application_name("revloop");
        }
        if config.get_tcp_user_timeout().is_none() {
            config.tcp_user_timeout(TCP_USER_TIMEOUT);
        }
        if config.get_keepalives_interval().is_none() && config.get_keepalives_retries().is_none() {
            config
                .keepalives_idle(KEEPALIVE_IDLE)
                .keepalives_interval(KEEPALIVE_INTERVAL)
                .keepalives_retries(KEEPALIVE_RETRIES);
        }
        // libpq ignores sslmode on a Unix socket, where the server never offers TLS.
        let hosts = config.get_hosts();
        let unix_sockets_only = !hosts.is_empty()
            && hosts
                .iter()
                .all(|host| matches!(host, postgres::config::Host::Unix(_)));
        let tls = match tls_settings.mode {
            None | Some(SslMode::Disable) => None,
            Some(_) if unix_sockets_only => None,
            Some(mode) => {
                let client_config = tls_client_config(mode, tls_settings.root_cert.as_deref())?;
                config.ssl_mode(if mode == SslMode::Prefer {
                    postgres::config::SslMode::Prefer
                } else {
                    postgres::config::SslMode::Require
                });
                Some(MakeRustlsConnect::new(client_config))
            }
        };
        if tls.is_none() {
            config.ssl_mode(postgres::config::SslMode::Disable);
        }
        // An acknowledged batch must survive a crash of the database server too: durability
        // does not rest on the server's default, which a managed database may have turned off.
        let mut session_sql = format!(
            "SET synchronous_commit TO on; SET statement_timeout TO {}; \
             SET idle_in_transaction_session_timeout TO {};",
            options.statement_max.as_millis(),
            options.idle_in_transaction_max.as_millis()
        );
        if let Some(schema) = &options.schema {
            // A session setting, so it outlives every transaction on this connection. The schema
            // need not exist yet: the migration creates it.
            session_sql.push_str(&format!(
                " SET search_path TO {};",
                quote_identifier(schema)
            ));
        }
        let socket_timeout = config
            .get_connect_timeout()
            .copied()
            .unwrap_or(SOCKET_CONNECT_TIMEOUT_DEFAULT);
        Ok(Connector {
            config,
            tls,
            ssl_mode: tls_settings.mode.map_or("disable", SslMode::name),
            session_sql,
            connect_total_max: options.connect_total_max.max(socket_timeout),
        })
    }

    /// A new connection, or an error within `connect_total_max`. The client bounds only the
    /// socket's connect; a server that accepts and then never answers would hold it forever. So
    /// it opens on a thread of its own, and a caller that stops waiting leaves that thread to
    /// close whatever it gets.
    pub(super) fn connect(&self) -> Result<Connection, StoreError> {
        let (config, tls, session_sql, ssl_mode) = (
            self.config.clone(),
            self.tls.clone(),
            self.session_sql.clone(),
            self.ssl_mode,
        );
        let (sender, receiver) = mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("revloop-pg-connect".into())
            .spawn(move || {
                let _ = sender.send(open(&config, tls, ssl_mode, &session_sql));
            })
            .map_err(|err| StoreError::Io(format!("cannot start a thread to connect: {err}")))?;
        match receiver.recv_timeout(self.connect_total_max) {
            Ok(opened) => opened,
            Err(mpsc::RecvTimeoutError::Timeout) => Err(StoreError::ConnectTimeout {
                waited_ms: u64::try_from(self.connect_total_max.as_millis()).unwrap_or(u64::MAX),
            }),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(StoreError::Io(
                "the thread opening a PostgreSQL connection panicked".into(),
            )),
        }
    }
}

fn open(
    config: &postgres::Config,
    tls: Option<MakeRustlsConnect>,
    ssl_mode: &str,
    session_sql: &str,
) -> Result<Connection, StoreError> {
    let client = match tls {
        None => config.connect(NoTls),
        Some(tls) => config.connect(tls),
    }
    .map_err(|err| match tls_refusal(&err) {
        Some(refusal) => StoreError::Settings(format!(
            "TLS with the database failed (sslmode={ssl_mode}): {refusal}"
        )),
        None => StoreError::Postgres(err),
    })?;
    let mut connection = Connection::new(client);
    connection.batch_execute(session_sql)?;
    Ok(connection)
}

/// Why the TLS handshake was refused, if that is why a connect failed (a certificate the
/// `sslmode` does not accept, a server without TLS, no common protocol): retrying will not help,
/// and the client's own message ("error performing TLS handshake") does not say why. `None` for
/// any other failure, a network error during the handshake included (that one is transient).
fn tls_refusal(err: &postgres::Error) -> Option<String> {
    // The client's wording for its TLS errors; it has no public kind to match.
    if !err
        .to_string()
        .starts_with("error performing TLS handshake")
    {
        return None;
    }
    let cause = std::error::Error::source(err)?;
    match cause.downcast_ref::<std::io::Error>() {
        // An io::Error's `source` skips the error it wraps: look inside.
        Some(io) => io
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            .map(ToString::to_string),
        None => Some(cause.to_string()),
    }
}

/// The URL without `sslmode` and `sslrootcert`, and what they said. Both URL forms are read:
/// `postgres://…?sslmode=…` and `key=value` strings.
fn take_tls_settings(url: &str) -> Result<(String, TlsSettings), StoreError> {
    let mut settings = TlsSettings::default();
    let mut take = |key: &str, value: String| -> Result<bool, StoreError> {
        match key {
            "sslmode" => settings.mode = Some(SslMode::parse(&value)?),
            "sslrootcert" => settings.root_cert = Some(value),
            _ => return Ok(false),
        }
        Ok(true)
    };
    let rest = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let Some((base, query)) = url.split_once('?') else {
            return Ok((url.to_owned(), settings));
        };
        let mut kept = Vec::new();
        for pair in query.split('&') {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_decode(value)?;
            if !take(&percent_decode(key)?, value)? {
                kept.push(pair);
            }
        }
        if kept.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", kept.join("&"))
        }
    } else {
        let mut kept = String::new();
        for (key, value, text) in key_value_pairs(url)? {
            if !take(key, value)? {
                kept.push_str(text);
                kept.push(' ');
            }
        }
        kept
    };
    Ok((rest, settings))
}

fn percent_decode(text: &str) -> Result<String, StoreError> {
    percent_encoding::percent_decode_str(text)
        .decode_utf8()
        .map(|decoded| decoded.into_owned())
        .map_err(|_| StoreError::Settings("the database URL is not valid UTF-8".into()))
}

/// The pairs of a `key=value` connection string, each with its text as written, in libpq's
/// syntax: spaces around `=` allowed, values bare or in single quotes, `\` escaping the next
/// character.
fn key_value_pairs(text: &str) -> Result<Vec<(&str, String, &str)>, StoreError> {
    let malformed = || StoreError::Settings("malformed key=value database URL".into());
    let mut pairs = Vec::new();
    let mut rest = text.trim_start();
    while !rest.is_empty() {
        let start = rest;
        let key_len = rest
            .find(|c: char| c == '=' || c.is_whitespace())
            .unwrap_or(rest.len());
        let key = &rest[..key_len];
        rest = rest[key_len..]
            .trim_start()
            .strip_prefix('=')
            .ok_or_else(malformed)?
            .trim_start();
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let quoted = rest.starts_with('\'');
        if quoted {
            chars.next();
        }
        let mut end = None;
        while let Some((at, c)) = chars.next() {
            match c {
                '\\' => value.push(chars.next().ok_or_else(malformed)?.1),
                '\'' if quoted => {
                    end = Some(at + 1);
                    break;
                }
                c if !quoted && c.is_whitespace() => {
                    end = Some(at);
                    break;
                }
                c => value.push(c),
            }
        }
        let end = match end {
            Some(end) => end,
            None if quoted => return Err(malformed()),
            None => rest.len(),
        };
        rest = &rest[end..];
        let written = &start[..start.len() - rest.len()];
        pairs.push((key, value, written));
        rest = rest.trim_start();
    }
    Ok(pairs)
}

fn tls_client_config(mode: SslMode, root_cert: Option<&str>) -> Result<ClientConfig, StoreError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|err| StoreError::Settings(format!("TLS: {err}")))?;
    // libpq: "require" with a root certificate file checks the chain, as "verify-ca" does.
    let mode = match (mode, root_cert) {
        (SslMode::Require, Some(_)) => SslMode::VerifyCa,
        (mode, _) => mode,
    };
    let verifier: Arc<dyn ServerCertVerifier> = match mode {
        SslMode::Disable | SslMode::Prefer | SslMode::Require => {
            Arc::new(EncryptOnly(provider.clone()))
        }
        SslMode::VerifyCa | SslMode::VerifyFull => {
            let roots = Arc::new(root_certificates(root_cert)?);
            let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                .build()
                .map_err(|err| StoreError::Settings(format!("TLS: {err}")))?;
            if mode == SslMode::VerifyCa {
                Arc::new(ChainOnly(webpki))
            } else {
                webpki
            }
        }
    };
    Ok(builder
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth())
}

/// The roots a `verify-*` connection trusts: the PEM file `sslrootcert` names, or the system's.
fn root_certificates(root_cert: Option<&str>) -> Result<RootCertStore, StoreError> {
    let mut roots = RootCertStore::empty();
    match root_cert {
        Some(path) if path != "system" => {
            let unreadable = |err: &dyn std::fmt::Display| {
                StoreError::Settings(format!("sslrootcert {path}: {err}"))
            };
            for cert in CertificateDer::pem_file_iter(path).map_err(|err| unreadable(&err))? {
                let cert = cert.map_err(|err| unreadable(&err))?;
                roots.add(cert).map_err(|err| unreadable(&err))?;
            }
            if roots.is_empty() {
                return Err(unreadable(&"no certificate in the file"));
            }
        }
        _ => {
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
            if roots.is_empty() {
                return Err(StoreError::Settings(
                    "no system root certificates found for sslmode=verify-ca/verify-full; \
                     name a PEM file with sslrootcert"
                        .into(),
                ));
            }
        }
    }
    Ok(roots)
}

/// `sslmode=require` (and `prefer`): the session is encrypted and the handshake's signatures are
/// checked against the certificate presented, but who signed the certificate is not (libpq's
/// meaning: it protects against eavesdropping, not against an impostor).
#[derive(Debug)]
struct EncryptOnly(Arc<CryptoProvider>);

impl ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `sslmode=verify-ca`: the chain must lead to a trusted root; the host name is not checked.
/// Webpki checks the chain before the name, so a name error means the chain was good.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            verified => verified,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(url: &str, rest: &str, mode: Option<SslMode>, root_cert: Option<&str>) {
        let (found_rest, settings) = take_tls_settings(url).expect(url);
        assert_eq!(
            (found_rest.as_str(), settings),
            (
                rest,
                TlsSettings {
                    mode,
                    root_cert: root_cert.map(str::to_owned)
                }
            ),
            "{url}"
        );
    }

    #[test]
    fn tls_settings_are_taken_out_of_both_url_forms() {
        use SslMode::*;
        check("postgres://u@h/db", "postgres://u@h/db", None, None);
        check(
            "postgres://u@h/db?sslmode=verify-full",
            "postgres://u@h/db",
            Some(VerifyFull),
            None,
        );
        check(
            "postgresql://u@h/db?connect_timeout=3&sslmode=require&sslrootcert=%2Fetc%2Fca.pem&application_name=x",
            "postgresql://u@h/db?connect_timeout=3&application_name=x",
            Some(Require),
            Some("/etc/ca.pem"),
        );
        check(
            "host=h sslmode = verify-ca  user=u sslrootcert='/a b/c\\'s.pem'",
            "host=h user=u ",
            Some(VerifyCa),
            Some("/a b/c's.pem"),
        );
        check("host=h dbname=d", "host=h dbname=d ", None, None);
        check("sslmode=disable", "", Some(Disable), None);
    }

    #[test]
    fn bad_tls_settings_are_refused_with_their_reason() {
        for (url, expected) in [
            (
                "postgres://h/db?sslmode=allow",
                "unsupported sslmode \"allow\"",
            ),
            ("host=h sslmode=bogus", "unsupported sslmode \"bogus\""),
            ("host=h sslrootcert='unterminated", "malformed key=value"),
            ("host", "malformed key=value"),
        ] {
            let err = take_tls_settings(url).expect_err(url).to_string();
            assert!(err.contains(expected), "{url}: {err}");
        }
        let err = tls_client_config(SslMode::VerifyFull, Some("/nonexistent/root.crt"))
            .expect_err("no such file")
            .to_string();
        assert!(
            err.starts_with("sslrootcert /nonexistent/root.crt: "),
            "{err}"
        );
    }

    #[test]
    fn tls_is_used_as_the_url_says_but_never_on_a_unix_socket() {
        for (url, tls) in [
            ("postgres://u@h/db", false),
            ("postgres://u@h/db?sslmode=disable", false),
            ("postgres://u@h/db?sslmode=require", true),
            ("host=h sslmode=verify-full sslrootcert=system", true),
            ("host=/run/postgresql sslmode=verify-full", false),
        ] {
            let connector = Connector::new(url, &PostgresOptions::default()).expect(url);
            assert_eq!(connector.tls.is_some(), tls, "{url}");
        }
    }

    #[test]
    fn schema_names_follow_identifier_rules() {
        for good in ["revloop", "shop_2", "_x", &"a".repeat(63)] {
            PostgresOptions::check_schema_name(good).expect(good);
        }
        for (bad, why) in [
            ("", "empty"),
            ("Revloop", "lowercase"),
            ("a-b", "lowercase"),
            ("x\"; DROP TABLE t; --", "lowercase"),
            ("shop schema", "lowercase"),
            ("2shop", "digit"),
            ("pg_revloop", "reserved"),
            (&"a".repeat(64), "63 bytes"),
            ("é", "lowercase"),
        ] {
            let err = PostgresOptions::check_schema_name(bad)
                .expect_err(bad)
                .to_string();
            assert!(err.contains(why), "{bad:?}: {err}");
        }
    }
}
