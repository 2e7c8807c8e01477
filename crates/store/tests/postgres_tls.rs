//! PostgreSQL over TLS: the URL's `sslmode` and `sslrootcert`, with libpq's meanings, against
//! the test server named by `REVLOOP_TEST_DATABASE_URL` (skipped without it). The server must
//! have `ssl = on`; the checks that need its certificate read it from `ssl_cert_file` and are
//! skipped when it is not readable.
//!
//! Whether a session is encrypted is read from `pg_stat_ssl`, from another connection, for the
//! store's backends (found by a unique `application_name`).

use std::sync::atomic::{AtomicU64, Ordering};

use postgres::{Client, NoTls};

use revloop_core::{Config, Timestamp};
use revloop_store::{PostgresStore, Role, Store, StoreError};

static N_SCHEMAS: AtomicU64 = AtomicU64::new(0);

/// The test database, and a schema (also the store's `application_name`) dropped at the end.
struct Tls {
    url: String,
    name: String,
}

impl Tls {
    fn new() -> Option<Tls> {
        let url = match std::env::var("REVLOOP_TEST_DATABASE_URL") {
            Ok(url) if !url.is_empty() => url,
            _ => {
                eprintln!("skipped: REVLOOP_TEST_DATABASE_URL is not set");
                return None;
            }
        };
        let n = N_SCHEMAS.fetch_add(1, Ordering::Relaxed);
        let tls = Tls {
            url,
            name: format!("revloop_tls_test_{}_{n}", std::process::id()),
        };
        let ssl: String = tls.plain().query_one("SHOW ssl", &[]).unwrap().get(0);
        if ssl != "on" {
            eprintln!("skipped: the test server has ssl = {ssl}");
            return None;
        }
        Some(tls)
    }

    fn plain(&self) -> Client {
        Client::connect(&self.url, NoTls).expect("connect to the test database")
    }

    /// The test URL with `params` added, and the application name that finds its sessions.
    fn url_with(&self, params: &str) -> String {
        let separator = if self.url.contains('?') { '&' } else { '?' };
        format!(
            "{}{separator}application_name={}{}{params}",
            self.url,
            self.name,
            if params.is_empty() { "" } else { "&" }
        )
    }

    fn open(&self, url: &str) -> Result<PostgresStore, StoreError> {
        PostgresStore::open_in_schema(
            url,
            &self.name,
            &Config::parse(Config::example_toml()).expect("the example config parses"),
        )
    }

    /// Whether each of the store's sessions is encrypted.
    fn sessions_encrypted(&self) -> Vec<bool> {
        self.plain()
            .query(
                "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
                 WHERE a.application_name = $1",
                &[&self.name],
            )
            .expect("read pg_stat_ssl")
            .iter()
            .map(|row| row.get(0))
            .collect()
    }

    /// The server's certificate file, when this process can read it.
    fn server_certificate(&self) -> Option<String> {
        let path: String = self
            .plain()
            .query_one("SHOW ssl_cert_file", &[])
            .unwrap()
            .get(0);
        if std::fs::read(&path).is_err() {
            eprintln!("skipped: cannot read the server's certificate {path}");
            return None;
        }
        Some(path)
    }
}

impl Drop for Tls {
    fn drop(&mut self) {
        if let Err(err) = PostgresStore::drop_schema(&self.url, &self.name) {
            eprintln!("could not drop test schema {}: {err}", self.name);
        }
    }
}

fn expect_refused(opened: Result<PostgresStore, StoreError>, expected: &str) {
    match opened {
        Ok(_) => panic!("connected, but expected a refusal: {expected}"),
        Err(err) => assert!(err.to_string().contains(expected), "{err}"),
    }
}

#[test]
fn sslmode_require_encrypts_every_session() {
    let Some(tls) = Tls::new() else {
        return;
    };
    let store = tls
        .open(&tls.url_with("sslmode=require"))
        .expect("open with sslmode=require");
    let created = store
        .create_token("ops", Role::Admin, [7; 32], Timestamp::from_millis(0))
        .expect("a write over TLS");
    let found = store.find_token(&[7; 32]).expect("a read over TLS");
    assert_eq!(found, Some(created));
    let encrypted = tls.sessions_encrypted();
    assert_eq!(
        encrypted,
        [true, true],
        "the writer and a pooled connection"
    );
}

#[test]
fn without_sslmode_or_with_disable_sessions_stay_plain() {
    let Some(tls) = Tls::new() else {
        return;
    };
    for params in ["", "sslmode=disable"] {
        let store = tls.open(&tls.url_with(params)).expect("open");
        store.ping().expect("ping");
        assert_eq!(tls.sessions_encrypted(), [false, false], "{params:?}");
    }
}

#[test]
fn sslmode_prefer_encrypts_when_the_server_offers_it() {
    let Some(tls) = Tls::new() else {
        return;
    };
    let store = tls.open(&tls.url_with("sslmode=prefer")).expect("open");
    store.ping().expect("ping");
    assert_eq!(tls.sessions_encrypted(), [true, true]);
}

/// The local server's certificate is self-signed: `verify-full` refuses it, with the reason,
/// and no session stays open. (Whether the system's store trusts it depends on the machine:
/// Debian's snakeoil sits in /etc/ssl/certs, so then the name 127.0.0.1 is what fails.)
#[test]
fn verify_full_refuses_the_local_self_signed_certificate() {
    let Some(tls) = Tls::new() else {
        return;
    };
    expect_refused(
        tls.open(&tls.url_with("sslmode=verify-full")),
        "TLS with the database failed (sslmode=verify-full): invalid peer certificate: ",
    );
    let dir = tempfile::tempdir().unwrap();
    if let Some(other_root) = another_root(dir.path()) {
        for mode in ["verify-full", "verify-ca"] {
            expect_refused(
                tls.open(&tls.url_with(&format!(
                    "sslmode={mode}&sslrootcert={}",
                    other_root.display()
                ))),
                "invalid peer certificate: UnknownIssuer",
            );
        }
    }
    assert!(tls.sessions_encrypted().is_empty(), "nothing stayed open");
}

/// A self-signed certificate that signed nothing the server has, made with the `openssl`
/// command; `None` (the checks that need it skipped) without it.
fn another_root(dir: &std::path::Path) -> Option<std::path::PathBuf> {
    let root = dir.join("other.pem");
    let made = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:P-256", "-nodes", "-days", "1"])
        .args(["-subj", "/CN=another root", "-keyout"])
        .arg(dir.join("other.key"))
        .arg("-out")
        .arg(&root)
        .output();
    if made.is_ok_and(|out| out.status.success()) {
        Some(root)
    } else {
        eprintln!("skipped: openssl could not make a certificate");
        None
    }
}

/// With the server's own certificate as the root: `verify-ca` accepts it whatever the host is
/// called; `verify-full` only under the name the certificate gives (Debian's snakeoil names
/// `localhost`), not under an address it does not list.
#[test]
fn a_private_root_checks_the_chain_and_verify_full_the_name() {
    let Some(tls) = Tls::new() else {
        return;
    };
    let Some(root) = tls.server_certificate() else {
        return;
    };
    if !tls.url.contains("@127.0.0.1") {
        eprintln!("skipped: the test URL does not name 127.0.0.1");
        return;
    }
    let root_param = format!("sslrootcert={root}");
    let store = tls
        .open(&tls.url_with(&format!("sslmode=verify-ca&{root_param}")))
        .expect("verify-ca with the server's certificate as root");
    store.ping().expect("ping");
    assert_eq!(tls.sessions_encrypted(), [true, true]);
    drop(store);

    expect_refused(
        tls.open(&tls.url_with(&format!("sslmode=verify-full&{root_param}"))),
        "invalid peer certificate: certificate not valid for name",
    );

    let names: String = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-ext", "subjectAltName", "-in", &root])
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
        .unwrap_or_default();
    if names.contains("DNS:localhost") {
        let by_name = Tls {
            url: tls.url.replace("@127.0.0.1", "@localhost"),
            name: format!("{}_by_name", tls.name),
        };
        let store = by_name
            .open(&by_name.url_with(&format!("sslmode=verify-full&{root_param}")))
            .expect("verify-full under the certificate's own name");
        store.ping().expect("ping");
        assert_eq!(by_name.sessions_encrypted(), [true, true]);
    } else {
        eprintln!("skipped the verify-full success: the certificate does not name localhost");
    }
}

/// libpq: `require` with a root certificate file checks the chain, as `verify-ca` does.
#[test]
fn require_with_a_root_file_checks_the_chain() {
    let Some(tls) = Tls::new() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let Some(other_root) = another_root(dir.path()) else {
        return;
    };
    expect_refused(
        tls.open(&tls.url_with(&format!(
            "sslmode=require&sslrootcert={}",
            other_root.display()
        ))),
        "invalid peer certificate",
    );
}

#[test]
fn bad_tls_settings_are_refused_before_connecting() {
    let Some(tls) = Tls::new() else {
        return;
    };
    expect_refused(
        tls.open(&tls.url_with("sslmode=allow")),
        "unsupported sslmode \"allow\"",
    );
    expect_refused(
        tls.open(&tls.url_with("sslmode=verify-full&sslrootcert=/nonexistent/root.crt")),
        "sslrootcert /nonexistent/root.crt",
    );
}
