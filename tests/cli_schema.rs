//! `--schema`: the commands that open a PostgreSQL database keep revloop's tables in the schema
//! named, and refuse a name outside the rules before connecting. The PostgreSQL checks run
//! against `REVLOOP_TEST_DATABASE_URL` and are skipped without it.

use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_revloop");

fn run(args: &[&str], dir: &std::path::Path) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env("REVLOOP_LOG", "warn")
        .env_remove("REVLOOP_DATABASE_URL")
        .env_remove("REVLOOP_DATABASE_SCHEMA")
        .output()
        .unwrap()
}

fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("revloop.toml"),
        revloop_core::Config::example_toml(),
    )
    .unwrap();
    dir
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn a_schema_name_outside_the_rules_is_refused_before_connecting() {
    let dir = setup();
    let output = run(
        &[
            "token",
            "list",
            "--database-url",
            "postgres://nobody@127.0.0.1:1/none",
            "--schema",
            "Shop; DROP TABLE x",
        ],
        dir.path(),
    );
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("invalid schema name"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn schema_without_a_database_url_is_an_error() {
    let dir = setup();
    let output = run(&["token", "list", "--schema", "shop"], dir.path());
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("--schema applies to PostgreSQL only"),
        "{}",
        stderr(&output)
    );
    assert!(
        !dir.path().join("revloop.db").exists(),
        "no SQLite file made"
    );
}

#[test]
fn tokens_live_in_the_schema_named() {
    let Ok(url) = std::env::var("REVLOOP_TEST_DATABASE_URL") else {
        eprintln!("skipped: REVLOOP_TEST_DATABASE_URL is not set");
        return;
    };
    let dir = setup();
    let schemas = [
        format!("revloop_cli_a_{}", std::process::id()),
        format!("revloop_cli_b_{}", std::process::id()),
    ];
    let token = |schema: &str, action: &[&str]| {
        let mut args = vec!["token"];
        args.extend_from_slice(action);
        args.extend_from_slice(&["--database-url", &url, "--schema", schema]);
        let output = run(&args, dir.path());
        assert!(output.status.success(), "{args:?}: {}", stderr(&output));
        stdout(&output)
    };
    token(
        &schemas[0],
        &["create", "--role", "viewer", "--name", "in-a"],
    );
    let listed_a = token(&schemas[0], &["list"]);
    let listed_b = token(&schemas[1], &["list"]);
    for schema in &schemas {
        revloop_store::PostgresStore::drop_schema(&url, schema).unwrap();
    }
    assert!(listed_a.contains("in-a"), "{listed_a}");
    assert!(!listed_b.contains("in-a"), "{listed_b}");
}
