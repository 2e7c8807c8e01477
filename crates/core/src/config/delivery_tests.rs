//! The `[delivery]` section: one `check` per case, the example plus a section, and the problems
//! it must (or must not) report.

use super::{
    ChannelKind, Route, SecretSource, SmtpTls, Url, check_url, is_loopback, valid_address,
    valid_mailbox,
};
use crate::config::Config;
use crate::time::DurationMs;

/// The default escalation's four targets routed to one webhook, then `extra`.
const BASE: &str = r#"
[delivery]
[[delivery.channels]]
name = "hook"
kind = "webhook"
url = "https://hooks.example.com/revloop"
secret_env = "HOOK_SECRET"

[delivery.targets]
"on-call engineer" = [{ channel = "hook" }]
"engineering manager" = [{ channel = "hook" }]
"VP engineering" = [{ channel = "hook" }]
"CTO" = [{ channel = "hook" }]
"#;

fn parse(section: &str) -> Result<Config, String> {
    let text = format!("{}\n{section}", Config::example_toml());
    Config::parse(&text).map_err(|err| err.to_string())
}

/// `section` is refused, every expected fragment named in the problems, on the line given.
fn check_refused(section: &str, expected: &[(&str, &str)]) {
    let err = parse(section).expect_err("should be refused");
    let base_lines = Config::example_toml().lines().count() + 1;
    for (line_text, fragment) in expected {
        let line = section
            .lines()
            .position(|l| l.contains(line_text))
            .unwrap_or_else(|| panic!("no line with {line_text}"))
            + base_lines
            + 1;
        assert!(
            err.lines()
                .any(|p| p.starts_with(&format!("line {line}:")) && p.contains(fragment)),
            "expected `{fragment}` on line {line} (`{line_text}`), got:\n{err}"
        );
    }
}

fn with_base(channels_and_more: &str) -> String {
    // Channels must come before [delivery.targets] in TOML: insert them after [delivery].
    BASE.replacen(
        "[delivery]\n",
        &format!("[delivery]\n{channels_and_more}\n"),
        1,
    )
}

#[test]
fn the_example_without_a_section_delivers_to_the_log() {
    assert_eq!(parse("").unwrap().delivery, None);
}

#[test]
fn a_full_section_is_read() {
    let section = with_base(
        r#"failover_after = "2m"
[delivery.retry]
base = "1s"
cap = "1m"
give_up_after = "2h"

[[delivery.channels]]
name = "mail"
kind = "email"
smtp_host = "127.0.0.1"
tls = "none"
from = "revloop <revloop@example.com>"
concurrency = 2
timeout = "5s"

[[delivery.channels]]
name = "pd"
kind = "pagerduty"
routing_key_file = "/run/secrets/pd"

[[delivery.channels]]
name = "chat"
kind = "slack"
url_env = "SLACK_URL"

[[delivery.channels]]
name = "log"
kind = "log"
"#,
    ) + r#"
[delivery.audiences]
"executives" = [{ channel = "mail", to = "cto@example.com" }, { channel = "chat" }, { channel = "pd" }, { channel = "log" }]
"#;
    let delivery = parse(&section).unwrap().delivery.unwrap();
    assert_eq!(delivery.failover_after, DurationMs::from_minutes(2));
    assert_eq!(delivery.retry.base, DurationMs::from_secs(1));
    assert_eq!(delivery.retry.cap, DurationMs::from_minutes(1));
    assert_eq!(delivery.retry.give_up_after, DurationMs::from_hours(2));
    let names: Vec<&str> = delivery.channels.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["mail", "pd", "chat", "log", "hook"]);
    let ChannelKind::Email(smtp) = &delivery.channel("mail").unwrap().kind else {
        panic!("email");
    };
    assert_eq!(
        (smtp.port, smtp.tls, smtp.auth.clone()),
        (25, SmtpTls::None, None)
    );
    assert_eq!(delivery.channel("mail").unwrap().concurrency, 2);
    assert_eq!(
        delivery.channel("mail").unwrap().timeout,
        DurationMs::from_secs(5)
    );
    assert_eq!(
        delivery.channel("pd").unwrap().kind,
        ChannelKind::PagerDuty {
            url: Url("https://events.pagerduty.com/v2/enqueue".to_string()),
            routing_key: SecretSource::File("/run/secrets/pd".to_string()),
        }
    );
    assert_eq!(delivery.channel("hook").unwrap().concurrency, 4);
    assert_eq!(
        delivery.channel("hook").unwrap().timeout,
        DurationMs::from_secs(10)
    );
    assert_eq!(
        delivery.audiences["executives"][0],
        Route {
            channel: "mail".to_string(),
            to: Some("cto@example.com".to_string())
        }
    );
    assert_eq!(delivery.targets["CTO"].len(), 1);
}

#[test]
fn every_escalation_target_must_be_routed() {
    let section = BASE.replace("\"CTO\" = [{ channel = \"hook\" }]\n", "");
    check_refused(&section, &[("[delivery.targets]", "`CTO` has no route")]);
    // Without [delivery.targets] at all, every target is named, with no line to point at.
    let err = parse("[delivery]\n").unwrap_err();
    for target in [
        "on-call engineer",
        "engineering manager",
        "VP engineering",
        "CTO",
    ] {
        let expected = format!("the escalation target `{target}` has no route");
        assert!(err.lines().any(|l| l.starts_with(&expected)), "{err}");
    }
    check_refused(
        &BASE.replace("\"CTO\" = [{ channel = \"hook\" }]", "\"CTO\" = []"),
        &[("\"CTO\"", "`CTO` has no channel")],
    );
}

#[test]
fn a_route_to_an_unknown_channel_is_refused() {
    check_refused(
        &BASE.replace(
            "\"CTO\" = [{ channel = \"hook\" }]",
            "\"CTO\" = [{ channel = \"hok\" }]",
        ),
        &[(
            "\"CTO\"",
            "no delivery channel is named `hok` (known: hook)",
        )],
    );
}

#[test]
fn to_is_required_for_email_and_refused_elsewhere() {
    let mail = r#"[[delivery.channels]]
name = "mail"
kind = "email"
smtp_host = "smtp.example.com"
from = "revloop@example.com"
"#;
    let section = with_base(mail).replace(
        "\"CTO\" = [{ channel = \"hook\" }]",
        "\"CTO\" = [{ channel = \"mail\" }, { channel = \"hook\", to = \"a@example.com\" }]",
    );
    check_refused(
        &section,
        &[
            ("\"CTO\"", "an email route needs `to`"),
            ("\"CTO\"", "`to` is only for email"),
        ],
    );
    let section = with_base(mail).replace(
        "\"CTO\" = [{ channel = \"hook\" }]",
        "\"CTO\" = [{ channel = \"mail\", to = \"not an address\" }]",
    );
    check_refused(
        &section,
        &[("\"CTO\"", "`not an address` is not an email address")],
    );
}

#[test]
fn each_kind_needs_its_secret_source_and_only_one() {
    let cases = [
        (
            "kind = \"webhook\"\nurl = \"https://x.example\"",
            "the signing secret has no source",
        ),
        (
            "kind = \"slack\"",
            "the webhook URL (a secret) has no source",
        ),
        ("kind = \"pagerduty\"", "the routing key has no source"),
    ];
    for (kind, fragment) in cases {
        let section = with_base(&format!("[[delivery.channels]]\nname = \"c\"\n{kind}\n"));
        let line = kind.lines().next().unwrap();
        check_refused(&section, &[(line, fragment)]);
    }
    let both = with_base(
        "[[delivery.channels]]\nname = \"c\"\nkind = \"slack\"\nurl_env = \"A\"\nurl_file = \"/f\"\n",
    );
    check_refused(&both, &[("url_env", "give url_env or url_file, not both")]);
    let password = with_base(
        "[[delivery.channels]]\nname = \"c\"\nkind = \"email\"\nsmtp_host = \"smtp.example.com\"\nfrom = \"a@b.example\"\nusername = \"me\"\n",
    );
    check_refused(
        &password,
        &[("username", "the SMTP password of `me` has no source")],
    );
    let bad_env = with_base(
        "[[delivery.channels]]\nname = \"c\"\nkind = \"slack\"\nurl_env = \"not a name\"\n",
    );
    check_refused(
        &bad_env,
        &[("url_env", "not an environment variable's name")],
    );
}

#[test]
fn settings_of_another_kind_and_unknown_kinds_are_refused() {
    let section = with_base(
        "[[delivery.channels]]\nname = \"c\"\nkind = \"slack\"\nurl_env = \"A\"\nurl = \"https://hooks.slack.com/x\"\n",
    );
    check_refused(
        &section,
        &[("url = ", "`url` is not a setting of a slack channel")],
    );
    let section = with_base("[[delivery.channels]]\nname = \"c\"\nkind = \"sms\"\n");
    check_refused(&section, &[("kind = \"sms\"", "kind `sms` is not one of")]);
    let section =
        with_base("[[delivery.channels]]\nname = \"c\"\nkind = \"log\"\nsecrit_env = \"A\"\n");
    assert!(parse(&section).unwrap_err().contains("secrit_env"));
}

#[test]
fn channel_names_are_unique_and_plain() {
    let section = with_base(
        "[[delivery.channels]]\nname = \"hook\"\nkind = \"log\"\n[[delivery.channels]]\nname = \"On Call\"\nkind = \"log\"\n",
    );
    check_refused(
        &section,
        &[(
            "name = \"On Call\"",
            "channel name `On Call` must be 1 to 64 of a-z",
        )],
    );
    // The later of the two is the one refused: the base's own `hook`, after the inserted ones.
    let err = parse(&section).unwrap_err();
    let line = Config::example_toml().lines().count()
        + 2
        + section
            .find("kind = \"webhook\"")
            .map(|i| section[..i].lines().count())
            .unwrap()
        - 2;
    assert!(
        err.contains(&format!(
            "line {line}: a second delivery channel named `hook`"
        )),
        "{err}"
    );
}

#[test]
fn urls_are_checked() {
    let section = with_base(
        "[[delivery.channels]]\nname = \"c\"\nkind = \"webhook\"\nurl = \"ftp://x.example\"\nsecret_env = \"S\"\n",
    );
    check_refused(
        &section,
        &[("ftp://", "must start with http:// or https://")],
    );
    let good = [
        "https://hooks.example.com/revloop?x=1",
        "http://127.0.0.1:8080/inbox",
        "http://[::1]:9/x",
        "HTTPS://Example.COM",
        "http://localhost",
    ];
    for url in good {
        assert_eq!(check_url(url), Ok(()), "{url}");
    }
    let bad = [
        ("https://", "no host"),
        ("https:///path", "no host"),
        ("https://user:pw@x.example/", "user information"),
        ("https://x.example:0/", "port"),
        ("https://x.example:99999/", "port"),
        ("https://x.example:port/", "port"),
        ("https://exa mple.com/", "whitespace"),
        ("https://-x.example/", "host"),
        ("https://x_y.example/", "host"),
        ("mailto:a@b", "http://"),
        ("", "http://"),
    ];
    for (url, reason) in bad {
        let err = check_url(url).expect_err(url);
        assert!(err.contains(reason), "{url}: {err}");
    }
    assert!(check_url(&format!("https://x.example/{}", "a".repeat(3000))).is_err());
}

#[test]
fn addresses_follow_the_simple_rule() {
    for good in [
        "oncall@example.com",
        "a.b+tag@mail.example.co",
        "root@localhost",
    ] {
        assert!(valid_address(good), "{good}");
    }
    for bad in [
        "",
        "example.com",
        "@example.com",
        "a@",
        "a b@example.com",
        "a@exa mple.com",
        "a@127.0.0.1",
        "<a@example.com>",
        "a@-x.example",
        "a,b@example.com",
    ] {
        assert!(!valid_address(bad), "{bad}");
    }
    assert!(valid_address(&format!("{}@example.com", "a".repeat(64))));
    assert!(!valid_address(&format!("{}@example.com", "a".repeat(65))));
    for good in [
        "revloop <revloop@example.com>",
        "revloop@example.com",
        "<r@example.com>",
    ] {
        assert!(valid_mailbox(good), "{good}");
    }
    for bad in [
        "revloop <revloop@example.com",
        "\"x\" <r@example.com>",
        "r <nope>",
    ] {
        assert!(!valid_mailbox(bad), "{bad}");
    }
}

#[test]
fn plain_smtp_only_to_a_loopback_host() {
    let section = with_base(
        "[[delivery.channels]]\nname = \"m\"\nkind = \"email\"\nsmtp_host = \"smtp.example.com\"\ntls = \"none\"\nfrom = \"a@example.com\"\n",
    );
    check_refused(
        &section,
        &[("smtp_host", "allowed only to a loopback host")],
    );
    for host in ["localhost", "127.0.0.1", "127.1.2.3", "::1", "[::1]"] {
        assert!(is_loopback(host), "{host}");
    }
    for host in ["10.0.0.1", "example.com", "localhost.example.com"] {
        assert!(!is_loopback(host), "{host}");
    }
    let section = with_base(
        "[[delivery.channels]]\nname = \"m\"\nkind = \"email\"\nsmtp_host = \"smtp.example.com\"\ntls = \"implicit\"\nfrom = \"a@example.com\"\n",
    );
    let delivery = parse(&section).unwrap().delivery.unwrap();
    let ChannelKind::Email(smtp) = &delivery.channel("m").unwrap().kind else {
        panic!("email");
    };
    assert_eq!((smtp.port, smtp.tls), (465, SmtpTls::Implicit));
}

#[test]
fn limits_and_durations_are_enforced() {
    let section = with_base(
        "[[delivery.channels]]\nname = \"c\"\nkind = \"log\"\nconcurrency = 65\ntimeout = \"10m\"\n[[delivery.channels]]\nname = \"d\"\nkind = \"log\"\ntimeout = \"soon\"\n",
    );
    check_refused(
        &section,
        &[
            ("concurrency = 65", "concurrency must be between 1 and 64"),
            ("timeout = \"10m\"", "timeout must be at most"),
            ("timeout = \"soon\"", "timeout"),
        ],
    );
    let many: String = (0..33)
        .map(|n| format!("[[delivery.channels]]\nname = \"c{n}\"\nkind = \"log\"\n"))
        .collect();
    assert!(
        parse(&with_base(&many))
            .unwrap_err()
            .contains("at most 32 delivery channels")
    );
    let routes: Vec<String> = (0..9)
        .map(|n| format!("{{ channel = \"c{n}\" }}"))
        .collect();
    let channels: String = (0..9)
        .map(|n| format!("[[delivery.channels]]\nname = \"c{n}\"\nkind = \"log\"\n"))
        .collect();
    let section = with_base(&channels).replace(
        "\"CTO\" = [{ channel = \"hook\" }]",
        &format!("\"CTO\" = [{}]", routes.join(", ")),
    );
    check_refused(&section, &[("\"CTO\"", "at most 8 routes")]);
    let retry = BASE.to_string() + "[delivery.retry]\nbase = \"1m\"\ncap = \"10s\"\n";
    check_refused(
        &retry,
        &[("cap = ", "cap must be at least delivery.retry.base")],
    );
}

#[test]
fn the_commented_example_parses_when_uncommented() {
    let example = Config::example_toml();
    let start = example
        .find("# [delivery]\n")
        .expect("the example shows the section");
    let section: String = example[start..]
        .lines()
        .filter(|l| !l.starts_with("# #"))
        .map(|l| {
            format!(
                "{}\n",
                l.strip_prefix("# ").unwrap_or(l.trim_start_matches('#'))
            )
        })
        .collect();
    let delivery = parse(&section).unwrap().delivery.unwrap();
    assert_eq!(delivery.channels.len(), 4);
    assert_eq!(delivery.targets.len(), 4);
    assert_eq!(delivery.audiences.len(), 4);
}
