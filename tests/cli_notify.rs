//! `check-config` with a [delivery] section (every channel built, its secrets read) and
//! `revloop notify test TARGET` against a real local receiver.

#[path = "../crates/server/tests/common/receiver.rs"]
#[allow(dead_code)]
mod receiver;
#[path = "../crates/server/tests/common/smtp.rs"]
#[allow(dead_code)]
mod smtp;

use std::process::Command;

use receiver::Receiver;
use smtp::{SmtpMode, SmtpServer};

const BIN: &str = env!("CARGO_BIN_EXE_revloop");
const SECRET: &str = "whsec_cli";

fn run(args: &[&str], dir: &std::path::Path, env: &[(&str, &str)]) -> std::process::Output {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .current_dir(dir)
        .env("REVLOOP_LOG", "warn")
        .env_remove("REVLOOP_CLI_HOOK_SECRET");
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().unwrap()
}

/// The example with a [delivery] section: the default escalation's four targets, `CTO` on the
/// webhook at `hook_url` and the log, `engineering manager` also on `dead_url`.
fn setup(hook_url: &str, dead_url: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let section = format!(
        r#"
[delivery]
[[delivery.channels]]
name = "hook"
kind = "webhook"
url = "{hook_url}"
secret_env = "REVLOOP_CLI_HOOK_SECRET"
timeout = "2s"

[[delivery.channels]]
name = "dead"
kind = "webhook"
url = "{dead_url}"
secret_env = "REVLOOP_CLI_HOOK_SECRET"
timeout = "2s"

[[delivery.channels]]
name = "log"
kind = "log"

[delivery.targets]
"on-call engineer" = [{{ channel = "log" }}]
"engineering manager" = [{{ channel = "hook" }}, {{ channel = "dead" }}]
"VP engineering" = [{{ channel = "log" }}]
"CTO" = [{{ channel = "hook" }}, {{ channel = "log" }}]

[delivery.audiences]
"executives" = [{{ channel = "hook" }}]
"#
    );
    let text = format!("{}{section}", revloop_core::Config::example_toml());
    std::fs::write(dir.path().join("revloop.toml"), text).unwrap();
    dir
}

fn closed_port_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}/hook", listener.local_addr().unwrap())
}

#[test]
fn check_config_reads_every_channels_secret() {
    let dir = setup("http://127.0.0.1:9/hook", "http://127.0.0.1:9/dead");
    let missing = run(&["check-config", "revloop.toml"], dir.path(), &[]);
    assert_eq!(missing.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&missing.stderr);
    for channel in ["hook", "dead"] {
        assert!(
            stderr.contains(&format!(
                "revloop.toml: channel {channel}: the signing secret: the environment variable REVLOOP_CLI_HOOK_SECRET is not set"
            )),
            "{stderr}"
        );
    }
    assert!(stderr.contains("2 problem(s) found"), "{stderr}");
    let env = [("REVLOOP_CLI_HOOK_SECRET", SECRET)];
    let ok = run(&["check-config", "revloop.toml"], dir.path(), &env);
    let stdout = String::from_utf8_lossy(&ok.stdout);
    assert!(
        ok.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(
        stdout.contains("3 delivery channels, their secrets read"),
        "{stdout}"
    );
}

#[test]
fn notify_test_sends_through_every_route_and_fails_if_any_fails() {
    let receiver = Receiver::start();
    receiver.set_secret(SECRET);
    let dir = setup(&receiver.url("/hook"), &closed_port_url());
    let env = [("REVLOOP_CLI_HOOK_SECRET", SECRET)];
    let config = ["--config", "revloop.toml"];

    let ok = run(
        &[&["notify", "test", "CTO"][..], &config].concat(),
        dir.path(),
        &env,
    );
    let stdout = String::from_utf8_lossy(&ok.stdout);
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(
        stdout.contains("hook (webhook)  -  200  delivered"),
        "{stdout}"
    );
    assert!(stdout.contains("log (log)  -  log  delivered"), "{stdout}");
    assert!(stdout.contains("all 2 route(s) delivered"), "{stdout}");
    let requests = receiver.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].signature_verified, Some(true));
    let body = requests[0].json();
    assert_eq!(
        (body["event"].as_str(), body["incident"].as_u64()),
        (Some("test"), Some(0))
    );
    assert_eq!(body["target"], "CTO");

    // An audience works the same way.
    let audience = run(
        &[&["notify", "test", "executives"][..], &config].concat(),
        dir.path(),
        &env,
    );
    assert_eq!(audience.status.code(), Some(0));
    assert_eq!(receiver.received(), 2);

    // One route of two failing: both tried, exit 1, the failure named.
    let failing = run(
        &[&["notify", "test", "engineering manager"][..], &config].concat(),
        dir.path(),
        &env,
    );
    let stdout = String::from_utf8_lossy(&failing.stdout);
    assert_eq!(failing.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("hook (webhook)  -  200  delivered"),
        "{stdout}"
    );
    assert!(
        stdout.contains("dead (webhook)  -  connect  failed (would retry)"),
        "{stdout}"
    );
    assert!(String::from_utf8_lossy(&failing.stderr).contains("1 of 2 route(s) failed"));

    // A missing secret: the route fails, named, without sending.
    let unset = run(
        &[&["notify", "test", "CTO"][..], &config].concat(),
        dir.path(),
        &[],
    );
    let stdout = String::from_utf8_lossy(&unset.stdout);
    assert_eq!(unset.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("REVLOOP_CLI_HOOK_SECRET is not set"),
        "{stdout}"
    );

    // An unknown target lists the known ones.
    let unknown = run(
        &[&["notify", "test", "CEO"][..], &config].concat(),
        dir.path(),
        &env,
    );
    assert_eq!(unknown.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        stderr.contains("unknown target or audience `CEO`"),
        "{stderr}"
    );
    assert!(
        stderr.contains("targets: \"CTO\", \"VP engineering\""),
        "{stderr}"
    );
    assert!(stderr.contains("audiences: \"executives\""), "{stderr}");
    assert_eq!(receiver.received(), 3);
}

/// Email over STARTTLS and implicit TLS to real SMTP servers, their self-signed certificate
/// trusted through `SSL_CERT_FILE` (read with the platform's roots), with AUTH.
#[test]
fn notify_test_delivers_email_over_starttls_and_implicit_tls() {
    let Some(starttls) = SmtpServer::start(SmtpMode::StartTls) else {
        return;
    };
    let Some(implicit) = SmtpServer::start(SmtpMode::Implicit) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let channel = |name: &str, tls: &str, port: u16| {
        format!(
            "[[delivery.channels]]\nname = \"{name}\"\nkind = \"email\"\nsmtp_host = \"127.0.0.1\"\n\
             smtp_port = {port}\ntls = \"{tls}\"\nusername = \"revloop\"\n\
             password_env = \"REVLOOP_CLI_SMTP_PASSWORD\"\nfrom = \"revloop <revloop@example.com>\"\n"
        )
    };
    let routes = r#"[{ channel = "starttls", to = "cto@example.com" }, { channel = "implicit", to = "cto@example.com" }]"#;
    let section = format!(
        "\n[delivery]\n{}{}[delivery.targets]\n\"on-call engineer\" = {routes}\n\
         \"engineering manager\" = {routes}\n\"VP engineering\" = {routes}\n\"CTO\" = {routes}\n",
        channel("starttls", "starttls", starttls.port),
        channel("implicit", "implicit", implicit.port),
    );
    let text = format!("{}{section}", revloop_core::Config::example_toml());
    std::fs::write(dir.path().join("revloop.toml"), text).unwrap();
    let certificate = starttls.certificate();
    let implicit_certificate = implicit.certificate();
    // Both servers' certificates in one bundle.
    let bundle = dir.path().join("roots.pem");
    let pem = std::fs::read_to_string(&certificate).unwrap()
        + &std::fs::read_to_string(&implicit_certificate).unwrap();
    std::fs::write(&bundle, pem).unwrap();
    let env = [
        ("REVLOOP_CLI_SMTP_PASSWORD", "pw"),
        ("SSL_CERT_FILE", bundle.to_str().unwrap()),
    ];
    let ok = run(
        &["notify", "test", "CTO", "--config", "revloop.toml"],
        dir.path(),
        &env,
    );
    let stdout = String::from_utf8_lossy(&ok.stdout);
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(
        stdout.contains("starttls (email)  cto@example.com  250  delivered"),
        "{stdout}"
    );
    assert!(
        stdout.contains("implicit (email)  cto@example.com  250  delivered"),
        "{stdout}"
    );
    for server in [&starttls, &implicit] {
        let messages = server.messages();
        assert_eq!(messages.len(), 1);
        assert!(messages[0].contains("Subject: [revloop test] revloop test message for CTO"));
        assert_eq!(server.auth_log().trim(), "PLAIN ok");
    }
}
