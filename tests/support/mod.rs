//! `revloop serve` as a user runs it: the real binary in a child process on a free loopback
//! port, with the example config and tokens made by `revloop token create`. Shared by the test
//! binaries that need the whole program rather than the in-process server.

#![allow(dead_code)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_revloop");

pub struct Server {
    child: Child,
    pub base: String,
}

impl Server {
    pub fn start(dir: &Path, port: u16) -> Server {
        let child = Command::new(BIN)
            .arg("serve")
            .arg("--config")
            .arg(dir.join("revloop.toml"))
            .arg("--db")
            .arg(dir.join("revloop.db"))
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .env("REVLOOP_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("start revloop serve");
        let base = format!("http://127.0.0.1:{port}");
        let server = Server { child, base };
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(20) {
            if let Ok(response) = agent().get(&format!("{}/readyz", server.base)).call()
                && response.status() == 200
            {
                return server;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("revloop serve did not become ready");
    }

    pub fn kill_9(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reap");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into()
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A fresh directory with the example config and a token of each given role.
pub fn setup(roles: &[&str]) -> (tempfile::TempDir, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("revloop.toml"),
        revloop_core::Config::example_toml(),
    )
    .unwrap();
    let secrets = roles
        .iter()
        .map(|role| {
            let output = Command::new(BIN)
                .args(["token", "create", "--role", role, "--config"])
                .arg(dir.path().join("revloop.toml"))
                .arg("--db")
                .arg(dir.path().join("revloop.db"))
                .output()
                .unwrap();
            assert!(
                output.status.success(),
                "{}",
                String::from_utf8_lossy(&output.stderr)
            );
            String::from_utf8(output.stdout).unwrap().trim().to_owned()
        })
        .collect();
    (dir, secrets)
}
