//! A real SMTP server for the email delivery tests: Python aiosmtpd (tests/smtp/install)
//! running tests/smtp/server.py on 127.0.0.1, plain, STARTTLS or implicit TLS with a
//! self-signed certificate for `127.0.0.1` made by `openssl`. Without aiosmtpd a test skips
//! with a note, unless `REVLOOP_REQUIRE_SMTP=1` (CI), where it fails.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// How the server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpMode {
    Plain,
    StartTls,
    Implicit,
}

/// A running server; killed when dropped. See tests/smtp/server.py for what it answers.
pub struct SmtpServer {
    pub port: u16,
    pub dir: tempfile::TempDir,
    child: Child,
}

fn script() -> PathBuf {
    // This file is included by crates/server's tests and by the root crate's.
    let root = env!("CARGO_MANIFEST_DIR");
    let candidates = [
        PathBuf::from(root).join("tests/smtp/server.py"),
        PathBuf::from(root).join("../../tests/smtp/server.py"),
    ];
    candidates
        .into_iter()
        .find(|p| p.exists())
        .expect("tests/smtp/server.py")
}

impl SmtpServer {
    /// `None` (with a note) when aiosmtpd is not installed, unless REVLOOP_REQUIRE_SMTP=1.
    pub fn start(mode: SmtpMode) -> Option<SmtpServer> {
        let python =
            std::env::var("REVLOOP_AIOSMTPD_PYTHON").unwrap_or_else(|_| "python3".to_string());
        let required = std::env::var("REVLOOP_REQUIRE_SMTP").is_ok_and(|v| v == "1");
        let has_aiosmtpd = Command::new(&python)
            .args(["-c", "import aiosmtpd"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !has_aiosmtpd {
            assert!(
                !required,
                "REVLOOP_REQUIRE_SMTP=1 but {python} cannot import aiosmtpd"
            );
            eprintln!("skipped: aiosmtpd is not installed (eval \"$(tests/smtp/install)\")");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        std::fs::create_dir(&out).unwrap();
        let mut command = Command::new(&python);
        command.arg(script()).arg(&out);
        match mode {
            SmtpMode::Plain => command.arg("plain"),
            SmtpMode::StartTls => command.arg("starttls"),
            SmtpMode::Implicit => command.arg("implicit"),
        };
        if mode != SmtpMode::Plain {
            make_certificate(dir.path());
            command
                .arg(dir.path().join("cert.pem"))
                .arg(dir.path().join("key.pem"));
        }
        let mut child = command.stdout(Stdio::piped()).spawn().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("the SMTP server said {line:?}"));
        Some(SmtpServer { port, dir, child })
    }

    /// The self-signed certificate a TLS server presents (for `127.0.0.1` and `localhost`).
    pub fn certificate(&self) -> PathBuf {
        self.dir.path().join("cert.pem")
    }

    /// Every message accepted so far, raw, in arrival order.
    pub fn messages(&self) -> Vec<String> {
        let out = self.dir.path().join("out");
        let mut names: Vec<_> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "eml"))
            .collect();
        names.sort();
        names
            .iter()
            .map(|p| std::fs::read_to_string(p).unwrap())
            .collect()
    }

    /// The AUTH attempts, `<mechanism> ok|refused` a line.
    pub fn auth_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("out/auth")).unwrap_or_default()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn make_certificate(dir: &std::path::Path) {
    let status = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "2", "-subj", "/CN=revloop test SMTP"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
        // A server's certificate, not a CA's: webpki refuses a CA as an end entity.
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(dir.join("key.pem"))
        .arg("-out")
        .arg(dir.join("cert.pem"))
        .stderr(Stdio::null())
        .status()
        .expect("openssl (tests/smtp/install installs it)");
    assert!(status.success(), "openssl could not make a certificate");
}
