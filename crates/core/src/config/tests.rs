//! The configuration's tests: every problem reported with its line, and each section parsed
//! into what the engines use.

use super::*;
use crate::incident::{EmptyLevel, IncidentPolicy};
use crate::time::DurationMs;

#[test]
fn the_bundled_example_is_valid() {
    let config = Config::parse(Config::example_toml()).unwrap();
    let funnel = &config.funnels[0];
    let events: Vec<&str> = funnel.stages.iter().map(|s| s.trigger.name()).collect();
    assert_eq!(
        events,
        [
            "Product Viewed",
            "Product Added",
            "Checkout Started",
            "Payment Info Entered",
            "Order Completed"
        ]
    );
    assert!(
        config
            .dimensions
            .iter()
            .any(|d| d.path.to_string() == "context.device.type")
    );
}

fn check(text: &str, expected: &[(usize, &str)]) {
    let problems = match Config::parse(text) {
        Ok(_) => Vec::new(),
        Err(ConfigError(problems)) => problems,
    };
    let got: Vec<(usize, String)> = problems
        .iter()
        .map(|p| (p.line, p.message.clone()))
        .collect();
    assert_eq!(got.len(), expected.len(), "{got:#?}");
    for ((line, message), (want_line, want_fragment)) in got.iter().zip(expected) {
        assert_eq!(line, want_line, "{message}");
        assert!(
            message.contains(want_fragment),
            "`{message}` lacks `{want_fragment}`"
        );
    }
}

const TWO_STAGES: &str = "
[[funnels]]
id = \"f\"
[[funnels.stages]]
id = \"a\"
event = \"A\"
[[funnels.stages]]
id = \"b\"
page = \"B\"
";

#[test]
fn a_minimal_config_is_valid() {
    check(TWO_STAGES, &[]);
    let config = Config::parse(TWO_STAGES).unwrap();
    assert_eq!(config.shop.currency.code(), "USD");
    assert_eq!(config.ingest.dedup_window, DurationMs::from_hours(24));
    assert_eq!(
        config.funnels[0].stages[1].trigger,
        Trigger::Page("B".into())
    );
}

#[test]
fn reports_every_problem_with_its_line() {
    let text = "
[shop]
currency = \"DOLLARS\"
average_order_value = \"12.345\"
time_zone = \"Mars/Olympus\"

[ingest]
dedup_window = \"forever\"

[[dimensions]]
name = \"from\"
path = \"device.type\"

[[funnels]]
id = \"f\"
[[funnels.stages]]
id = \"a\"
event = \"A\"
page = \"A\"
[[funnels.stages]]
id = \"a\"
event = \"B\"
where = { \"properties.x\" = 1.5 }
";
    check(
        text,
        &[
            (3, "not a currency code"),
            (4, "not an amount in USD"),
            (5, "not an IANA time zone"),
            (8, "dedup_window"),
            (11, "reserved"),
            (12, "must start with one of"),
            (16, "exactly one of"),
            (21, "appears twice"),
            (23, "must compare with"),
        ],
    );
}

#[test]
fn syntax_errors_and_unknown_keys_have_lines() {
    check(
        "[shop]\ncurrency = \"USD\"\ncolour = 1\n",
        &[(3, "unknown field")],
    );
    check("[shop\n", &[(1, "")]);
    check("", &[(0, "no funnels")]);
}

#[test]
fn funnels_need_two_stages_and_unique_ids() {
    let text = "
[[funnels]]
id = \"f\"
[[funnels.stages]]
id = \"a\"
event = \"A\"
[[funnels]]
id = \"f\"
[[funnels.stages]]
id = \"a\"
event = \"A\"
[[funnels.stages]]
id = \"b\"
event = \"B\"
";
    check(text, &[(2, "at least two stages"), (8, "declared twice")]);
}

#[test]
fn the_config_sets_the_policy_and_silences_stay_in_local_time_across_dst() {
    // The example without its own (default) [incidents] table, which comes last.
    let base = Config::example_toml()
        .split("\n[incidents]")
        .next()
        .unwrap();
    let text = format!(
        "{base}\n[incidents]\nauto_resolve = false\nack_timeout = \"45m\"\n\
         [incidents.p1]\nresponse = \"10m\"\n\
         [incidents.p2]\nupdate_every = \"daily\"\nempty_level = \"wait\"\n\
         [[incidents.p2.levels]]\nname = \"L1\"\ntargets = [\"ana\"]\nrespond_within = \"20m\"\n\
         [[incidents.p2.levels]]\nname = \"L2\"\nrespond_within = \"1h\"\n\
         [[incidents.silences]]\nfrom = \"2026-03-07T23:00\"\nto = \"2026-03-08T04:00\"\nreason = \"deploy\"\n"
    );
    let config = Config::parse(&text).unwrap();
    assert!(!config.incidents.auto_resolve);
    assert!(
        !config.incidents.page_on_surge,
        "surges page nobody by default"
    );
    let paging = Config::parse(&format!("{base}\n[incidents]\npage_on_surge = true\n")).unwrap();
    assert!(paging.incidents.page_on_surge);
    assert!(Config::parse(&format!("{base}\n[incidents]\npage_on_surge = \"yes\"\n")).is_err());
    assert_eq!(
        config.incidents.ack_timeout,
        Some(DurationMs::from_minutes(45))
    );
    let p2 = &config.incidents.severities[1];
    assert_eq!(p2.update_every, None);
    assert_eq!(p2.empty_level, EmptyLevel::Wait);
    assert_eq!(p2.levels.len(), 2);
    assert!(p2.levels[1].targets.is_empty());
    // Only what P1 overrides changes: its path and repeats are the runbook's.
    let mut p1 = IncidentPolicy::runbook().severities[0].clone();
    p1.response = DurationMs::from_minutes(10);
    assert_eq!(config.incidents.severities[0], p1);
    let silences = config.silences();
    // The example shop is in New York: 23:00 EST (UTC-5) to 04:00 EDT (UTC-4) across the
    // spring-forward night is five local hours and four real ones.
    assert_eq!(config.shop.time_zone, "America/New_York");
    assert_eq!(silences[0].from.to_string(), "2026-03-08T04:00:00Z");
    assert_eq!(silences[0].to.to_string(), "2026-03-08T08:00:00Z");
    let bad = format!(
        "{base}\n[incidents]\nflap_hold = \"soon\"\n\
         [incidents.p1]\nresponse = \"2h\"\n\
         [[incidents.p1.levels]]\nname = \"L1\"\ntargets = [\"\"]\nrespond_within = \"0s\"\n\
         [[incidents.p1.levels]]\nname = \"L1\"\ntargets = [\"ana\"]\nrespond_within = \"15m\"\n\
         [[incidents.silences]]\nfunnel = \"nope\"\nstage = \"payment\"\nfrom = \"2026-03-29T04:00\"\nto = \"2026-03-29T01:00\"\n"
    );
    let problems = Config::parse(&bad).unwrap_err().to_string();
    for expected in [
        "incidents.flap_hold",
        "unknown funnel `nope`",
        "`from` must be before",
        "target must not be empty",
        "respond_within must be positive",
        "`L1` is declared twice",
        "response time (2h) is longer than the resolution time (1h)",
        "needs a `reason`",
    ] {
        assert!(problems.contains(expected), "{expected}: {problems}");
    }
    // An unknown funnel is reported once, not again for its stage.
    assert!(!problems.contains("unknown stage"), "{problems}");
}

#[test]
fn the_currency_is_an_upper_case_iso_4217_code() {
    let with_currency = |code: &str| format!("[shop]\ncurrency = \"{code}\"\n{TWO_STAGES}");
    check(
        &with_currency("XYZ"),
        &[(2, "`XYZ` is not an ISO 4217 currency code")],
    );
    check(&with_currency("usd"), &[(2, "did you mean USD?")]);
    check(&with_currency("XAU"), &[(2, "no minor unit")]);
    let config = Config::parse(&with_currency("JPY")).unwrap();
    assert_eq!(config.shop.currency.exponent(), 0);
}

#[test]
fn two_stages_of_a_funnel_may_not_share_an_event() {
    let stages = |second: &str, third: &str| {
        format!(
            "
[[funnels]]
id = \"f\"
[[funnels.stages]]
id = \"viewed\"
event = \"Product Viewed\"
[[funnels.stages]]
id = \"added\"
{second}
[[funnels.stages]]
id = \"ordered\"
{third}
"
        )
    };
    // The same event twice: the later stage's line, naming the earlier one and its line.
    check(
        &stages("event = \"Product Viewed\"", "event = \"Order Completed\""),
        &[(
            7,
            "stages `viewed` (line 4) and `added` of funnel `f` are bound to the same event \
             (track `Product Viewed` with no filters)",
        )],
    );
    // Same filters too; a page with the event's name is another call.
    let filtered = "event = \"Order Completed\"\nwhere = { \"properties.step\" = 2 }";
    check(
        &stages(filtered, filtered),
        &[(11, "stages `added` (line 7) and `ordered`")],
    );
    check(
        &stages("page = \"Product Viewed\"", "event = \"Order Completed\""),
        &[],
    );
    // Different filters, or the same event in another funnel: allowed.
    check(
        &stages(
            "event = \"Order Completed\"\nwhere = { \"properties.step\" = 1 }",
            filtered,
        ),
        &[],
    );
    let two_funnels = format!("{TWO_STAGES}{}", TWO_STAGES.replace("\"f\"", "\"g\""));
    check(&two_funnels, &[]);
}

#[test]
fn cannot_judge_after_defaults_to_ten_minutes_and_must_exceed_a_healthy_minute() {
    let config = Config::parse(TWO_STAGES).unwrap();
    assert_eq!(
        config.detection.cannot_judge_after,
        DurationMs::from_minutes(10)
    );
    let with = |value: &str| format!("[detection]\ncannot_judge_after = \"{value}\"\n{TWO_STAGES}");
    let config = Config::parse(&with("30m")).unwrap();
    assert_eq!(
        config.detection.cannot_judge_after,
        DurationMs::from_minutes(30)
    );
    check(
        &with("2m"),
        &[(
            2,
            "cannot_judge_after must be at least detection.settle + 2m (3m)",
        )],
    );
    check(&with("soon"), &[(2, "detection.cannot_judge_after:")]);
    check(
        &with("0s"),
        &[(2, "detection.cannot_judge_after must be positive")],
    );
}

#[test]
fn the_ledger_chart_is_the_runbooks_seed_by_default() {
    let config = Config::parse(TWO_STAGES).unwrap();
    assert_eq!(config.ledger.chart, crate::ledger::Chart::runbook());
    // The example's commented ledger settings are valid as they stand.
    let uncommented = Config::example_toml()
        .replace("# loss_expense", "loss_expense")
        .replace("# accrued_estimates", "accrued_estimates")
        .replace("# finalised_offset", "finalised_offset")
        .replace("# recovered_revenue", "recovered_revenue")
        .replace("# [[ledger.accounts]]", "[[ledger.accounts]]")
        .replace("# code = 6210", "code = 6210")
        .replace("# name = \"Lost", "name = \"Lost")
        .replace("# type = \"EXPENSE\"", "type = \"EXPENSE\"");
    let config = Config::parse(&uncommented).unwrap();
    assert_eq!(config.ledger.chart.accounts.len(), 5);
    assert_eq!(
        config.ledger.chart.booking,
        crate::ledger::BookingAccounts::RUNBOOK
    );
}

#[test]
fn the_ledger_section_adds_renames_and_closes_accounts() {
    use crate::ledger::{Account, AccountType, BookingAccounts};
    let text = format!(
        "{TWO_STAGES}
[ledger]
loss_expense = 6210

[[ledger.accounts]]
code = 6210
name = \"Lost Revenue: Payments\"
type = \"EXPENSE\"

[[ledger.accounts]]
code = 6200
closed = true

[[ledger.accounts]]
code = 4900
name = \"  Won-Back Revenue \"

[[ledger.accounts]]
code = 1100
name = \"Cash\"
closed = true
"
    );
    let config = Config::parse(&text).unwrap();
    let chart = &config.ledger.chart;
    let codes: Vec<u16> = chart.accounts.iter().map(|a| a.code).collect();
    assert_eq!(codes, [1100, 2300, 3900, 4900, 6200, 6210]);
    assert_eq!(chart.account(4900).unwrap().name, "Won-Back Revenue");
    assert!(chart.account(6200).unwrap().closed);
    assert_eq!(
        chart.account(1100),
        Some(&Account {
            code: 1100,
            name: "Cash".to_owned(),
            account_type: AccountType::Asset,
            closed: true
        })
    );
    assert_eq!(
        chart.booking,
        BookingAccounts {
            loss_expense: 6210,
            ..BookingAccounts::RUNBOOK
        }
    );
}

#[test]
fn ledger_problems_have_their_lines() {
    let text = format!(
        "{TWO_STAGES}
[ledger]
accrued_estimates = 2400
finalised_offset = 4900

[[ledger.accounts]]
code = 999
name = \"Too short\"

[[ledger.accounts]]
code = 5100
name = \"Shipping\"
type = \"REVENUE\"

[[ledger.accounts]]
code = 5100
name = \"Again\"

[[ledger.accounts]]
code = 2300
type = \"liability\"

[[ledger.accounts]]
code = 7000

[[ledger.accounts]]
code = 6200
closed = true

[[ledger.accounts]]
code = 1200
name = \"\"
"
    );
    check(
        &text,
        &[
            (12, "not in the chart"),
            (13, "must be an account of type EQUITY; 4900 is REVENUE"),
            (16, "must be four digits"),
            (22, "5100 is EXPENSE by its code (5000–9999), not REVENUE"),
            (24, "5100 is configured twice"),
            (30, "not an account type"),
            (33, "7000 is new, so it needs a name"),
            (35, "it cannot be closed"),
            (41, "name must be 1 to 64 bytes"),
        ],
    );
}
