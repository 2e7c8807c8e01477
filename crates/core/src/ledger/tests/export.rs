use super::*;

/// A small ledger: an estimate, its revision, and a hand posting with awkward text.
fn sample() -> (Chart, Vec<RecordedEntry>) {
    let mut chart = Chart::runbook();
    chart.accounts.push(Account {
        code: 1100,
        name: "Cash, \"main\"; \\ account".to_owned(),
        account_type: AccountType::Asset,
        closed: true,
    });
    let first = entry("inc-42-est-1", 1234);
    let reversal = reversal_of(&first, "inc-42-rev-1".to_owned(), T0);
    let mut awkward = entry("manual:1", 5);
    awkward.description = "Quote \" backslash \\ semicolon; comma, new\nline".to_owned();
    awkward.link = EntryLink::default();
    awkward.lines[1].memo = Some("a \"memo\"".to_owned());
    let entries = vec![
        RecordedEntry {
            reversed_by: Some("inc-42-rev-1".to_owned()),
            ..recorded(first)
        },
        recorded(reversal),
        recorded(awkward),
    ];
    (chart, entries)
}

fn export(format: ExportFormat) -> String {
    let (chart, entries) = sample();
    let mut text = export_header(&chart, usd(), format);
    for recorded in &entries {
        text.push_str(&export_entry(recorded, format));
    }
    text
}

#[test]
fn decimal_units_are_exact() {
    let jpy = Currency::parse("JPY").unwrap();
    let kwd = Currency::parse("KWD").unwrap();
    let cases = [
        (1234, usd(), "12.34"),
        (-5, usd(), "-0.05"),
        (0, usd(), "0.00"),
        (i64::MAX, usd(), "92233720368547758.07"),
        (i64::MIN, usd(), "-92233720368547758.08"),
        (1200, jpy, "1200"),
        (-1, jpy, "-1"),
        (1234, kwd, "1.234"),
    ];
    for (minor, currency, want) in cases {
        assert_eq!(decimal_units(minor, currency), want, "{minor} {currency}");
    }
}

#[test]
fn formats_parse_back_from_their_names() {
    for format in [
        ExportFormat::Beancount,
        ExportFormat::Hledger,
        ExportFormat::Csv,
        ExportFormat::JsonLines,
    ] {
        assert_eq!(ExportFormat::parse(format.as_str()), Some(format));
    }
    assert_eq!(ExportFormat::parse("json"), None);
}

#[test]
fn beancount_opens_every_account_and_writes_postings_with_metadata() {
    let text = export(ExportFormat::Beancount);
    let want = r#"; revloop ledger export (Beancount)
option "operating_currency" "USD"

1970-01-01 open Liabilities:2300
  name: "Accrued Revenue-Loss Estimates"
  account-type: "LIABILITY"
1970-01-01 open Equity:3900
  name: "Finalised Revenue-Loss Offset"
  account-type: "EQUITY"
1970-01-01 open Income:4900
  name: "Recovered Revenue"
  account-type: "REVENUE"
1970-01-01 open Expenses:6200
  name: "Lost Revenue Expense"
  account-type: "EXPENSE"
1970-01-01 open Assets:1100
  name: "Cash, \"main\"; \\ account"
  account-type: "ASSET"
  closed: TRUE

2026-11-27 * "Revenue loss - checkout anomaly" ^incident-42
  entry-id: "inc-42-est-1"
  effective-at: "2026-11-27T10:00:00Z"
  recorded-at: "2026-11-27T10:00:00Z"
  incident: "42"
  reversed-by: "inc-42-rev-1"
  inputs: "{\"aov_minor\":8500}"
  Expenses:6200  12.34 USD
  Liabilities:2300  -12.34 USD

2026-11-27 * "Reversal of inc-42-est-1: Revenue loss - checkout anomaly" ^incident-42
  entry-id: "inc-42-rev-1"
  effective-at: "2026-11-27T10:00:00Z"
  recorded-at: "2026-11-27T10:00:00Z"
  incident: "42"
  reverses: "inc-42-est-1"
  inputs: "{\"aov_minor\":8500}"
  Expenses:6200  -12.34 USD
  Liabilities:2300  12.34 USD

2026-11-27 * "Quote \" backslash \\ semicolon; comma, new line"
  entry-id: "manual:1"
  effective-at: "2026-11-27T10:00:00Z"
  recorded-at: "2026-11-27T10:00:00Z"
  Expenses:6200  0.05 USD
  Liabilities:2300  -0.05 USD
    memo: "a \"memo\""

"#;
    assert_eq!(text, want, "got:\n{text}");
}

#[test]
fn hledger_names_accounts_by_type_and_keeps_each_line_readable() {
    let text = export(ExportFormat::Hledger);
    assert!(
        text.starts_with("; revloop ledger export (hledger journal)\ncommodity 1000.00 USD\n\n"),
        "{text}"
    );
    assert!(
        text.contains(
            "account assets:1100  ; type: A, name: Cash  \"main\"; \\ account, closed: true\n"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "2026-11-27 * Quote \" backslash \\ semicolon, comma, new line  ; entry-id: manual:1, recorded-at: 2026-11-27T10:00:00Z\n    expenses:6200  0.05 USD\n    liabilities:2300  -0.05 USD  ; memo: a \"memo\"\n\n"
        ),
        "{text}"
    );
}

#[test]
fn csv_has_a_row_per_line_quoted_as_rfc_4180_says() {
    let text = export(ExportFormat::Csv);
    let rows: Vec<&str> = text.lines().collect();
    assert_eq!(rows[0], CSV_COLUMNS.join(","));
    assert_eq!(
        rows[1],
        "inc-42-est-1,2026-11-27T10:00:00Z,2026-11-27T10:00:00Z,Revenue loss - checkout anomaly,42,,inc-42-rev-1,0,6200,EXPENSE,debit,1234,12.34,USD,"
    );
    assert!(
        text.contains(",\"Quote \"\" backslash \\ semicolon; comma, new\nline\",,,,1,2300,LIABILITY,credit,5,0.05,USD,\"a \"\"memo\"\"\"\n"),
        "{text}"
    );
    // Two lines per entry, one header.
    assert_eq!(text.matches("USD,").count(), 6);
}

#[test]
fn json_lines_hold_one_entry_each_with_amounts_as_minor_units_and_exact_decimals() {
    let text = export(ExportFormat::JsonLines);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    let first: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(first["id"], "inc-42-est-1");
    assert_eq!(first["incident"], 42);
    assert_eq!(first["reversed_by"], "inc-42-rev-1");
    assert_eq!(first["inputs_json"], "{\"aov_minor\":8500}");
    assert_eq!(first["lines"][1]["side"], "credit");
    assert_eq!(first["lines"][1]["amount_minor"], 1234);
    assert_eq!(first["lines"][1]["amount"], "12.34");
    assert_eq!(first["lines"][1]["account_type"], "LIABILITY");
    let awkward: serde_json::Value = serde_json::from_str(lines[2]).unwrap();
    assert_eq!(
        awkward["description"],
        "Quote \" backslash \\ semicolon; comma, new\nline"
    );
    assert_eq!(awkward["incident"], serde_json::Value::Null);
}

proptest::proptest! {
    #[test]
    fn any_entry_exports_in_every_format_and_amounts_read_back_exactly(
        description in "\\PC{0,40}|[\"\\\\;,\n\r\t =+-]{0,10}",
        memo in proptest::option::of("\\PC{0,20}"),
        amount_minor in (i64::MIN + 1)..=i64::MAX,
        millis in proptest::num::i64::ANY,
        yen in proptest::bool::ANY,
    ) {
        let currency = if yen { Currency::parse("JPY").unwrap() } else { usd() };
        let decimal = decimal_units(amount_minor, currency);
        proptest::prop_assert_eq!(
            crate::money::Money::parse_decimal(&decimal, currency).map(|m| m.minor),
            Ok(amount_minor)
        );
        let mut proposed = entry("p", 1);
        proposed.description = description.clone();
        proposed.effective_at = Timestamp::from_millis(millis);
        for line in &mut proposed.lines {
            line.amount_minor = amount_minor;
            line.currency = currency;
            line.memo = memo.clone();
        }
        let held = recorded(proposed);
        for format in [ExportFormat::Beancount, ExportFormat::Hledger, ExportFormat::Csv] {
            let text = export_entry(&held, format);
            proptest::prop_assert!(text.ends_with('\n'));
            if format != ExportFormat::Csv {
                // Every line of a Beancount or hledger entry stays its own line.
                proptest::prop_assert_eq!(text.trim_end().lines().count(), if format == ExportFormat::Beancount {
                    8 + 2 * usize::from(memo.is_some())
                } else {
                    3
                });
            }
        }
        let json: serde_json::Value =
            serde_json::from_str(&export_entry(&held, ExportFormat::JsonLines)).unwrap();
        proptest::prop_assert_eq!(json["description"].as_str(), Some(description.as_str()));
        proptest::prop_assert_eq!(json["lines"][0]["amount"].as_str(), Some(decimal.as_str()));
    }
}

#[test]
fn an_exporter_can_name_accounts_from_the_chart() {
    let (chart, entries) = sample();
    let exporter = Exporter::new(&chart, usd(), ExportFormat::Beancount, AccountNames::Chart);
    let mut text = exporter.header();
    for recorded in &entries {
        text.push_str(&exporter.entry(recorded));
    }
    for want in [
        "1970-01-01 open Liabilities:AccruedRevenueLossEstimates:2300\n",
        "1970-01-01 open Expenses:LostRevenueExpense:6200\n",
        "1970-01-01 open Assets:CashMainAccount:1100\n",
        "  Expenses:LostRevenueExpense:6200  12.34 USD\n",
    ] {
        assert!(text.contains(want), "no `{want}` in\n{text}");
    }
    let hledger = Exporter::new(&chart, usd(), ExportFormat::Hledger, AccountNames::Chart);
    assert!(
        hledger
            .header()
            .contains("account income:RecoveredRevenue:4900  ; type: R, name: Recovered Revenue\n")
    );
    // By codes, the exporter writes what the two functions write.
    let by_codes = Exporter::new(&chart, usd(), ExportFormat::Beancount, AccountNames::Codes);
    assert_eq!(
        by_codes.header(),
        export_header(&chart, usd(), ExportFormat::Beancount)
    );
    assert_eq!(
        by_codes.entry(&entries[0]),
        export_entry(&entries[0], ExportFormat::Beancount)
    );
    // A name without ASCII letters or digits leaves the code alone.
    let mut odd = chart.clone();
    odd.accounts[0].name = "—".to_owned();
    let odd_exporter = Exporter::new(&odd, usd(), ExportFormat::Beancount, AccountNames::Chart);
    assert!(odd_exporter.header().contains("open Liabilities:2300\n"));
}
