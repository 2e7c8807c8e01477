//! The ledger as text other tools read: Beancount (it passes `bean-check`), an hledger journal
//! (it passes `hledger check -s`), CSV (a row per line) and JSON Lines (an object per entry).
//!
//! An export is streamed: a header once, then each entry in recorded order, so the store never
//! holds the whole ledger in memory. By default accounts are named by their code alone
//! (`Expenses:6200`): the code is an account's identity, so renaming it in the chart never
//! splits its history across two names, and each entry can be written without the chart
//! ([`export_header`], [`export_entry`]); the chart's names are on the `open` directives. An
//! [`Exporter`] with [`AccountNames::Chart`] puts the names in the accounts too
//! (`Expenses:LostRevenueExpense:6200`). Amounts are decimal units of the currency, converted
//! exactly from minor units.

use serde::Serialize;

use super::{AccountType, Chart, ExportFormat, RecordedEntry, Side};
use crate::money::Currency;
use crate::time::Timestamp;

/// The date every account is opened on in a Beancount or hledger export: no entry may be
/// effective before the Unix epoch, so it is on or before every posting.
const OPEN_DATE: &str = "1970-01-01";

/// What an export starts with (Beancount/hledger: option lines and `open` directives for the
/// chart; CSV: the header row; JSON Lines: nothing). Streamed exports write this once, then
/// [`export_entry`] for each entry in recorded order. Accounts are named by their codes
/// ([`AccountNames::Codes`]); [`Exporter`] writes the chart's names too.
pub fn export_header(chart: &Chart, currency: Currency, format: ExportFormat) -> String {
    Exporter::new(chart, currency, format, AccountNames::Codes).header()
}

/// One entry in `format`, ending with a newline (Beancount and hledger: and a blank line),
/// accounts named by their codes, to follow [`export_header`].
pub fn export_entry(entry: &RecordedEntry, format: ExportFormat) -> String {
    write_entry(entry, format, Naming::Codes)
}

/// How a Beancount or hledger export names an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountNames {
    /// `Expenses:6200`: stable when an account is renamed, and writable without the chart.
    Codes,
    /// `Expenses:LostRevenueExpense:6200`: the chart's name (ASCII letters and digits, in
    /// CamelCase) between the type's root and the code, easier to read in Fava or hledger.
    Chart,
}

/// An export of one format, currency and naming: its [`Exporter::header`] once, then
/// [`Exporter::entry`] for each entry in recorded order.
#[derive(Debug, Clone, Copy)]
pub struct Exporter<'a> {
    chart: &'a Chart,
    currency: Currency,
    format: ExportFormat,
    names: AccountNames,
}

impl<'a> Exporter<'a> {
    pub fn new(
        chart: &'a Chart,
        currency: Currency,
        format: ExportFormat,
        names: AccountNames,
    ) -> Exporter<'a> {
        Exporter {
            chart,
            currency,
            format,
            names,
        }
    }

    fn naming(&self) -> Naming<'a> {
        match self.names {
            AccountNames::Codes => Naming::Codes,
            AccountNames::Chart => Naming::Chart(self.chart),
        }
    }

    pub fn header(&self) -> String {
        match self.format {
            ExportFormat::Beancount => beancount_header(self.chart, self.currency, self.naming()),
            ExportFormat::Hledger => hledger_header(self.chart, self.currency, self.naming()),
            ExportFormat::Csv => format!("{}\n", CSV_COLUMNS.join(",")),
            ExportFormat::JsonLines => String::new(),
        }
    }

    pub fn entry(&self, entry: &RecordedEntry) -> String {
        write_entry(entry, self.format, self.naming())
    }
}

fn write_entry(entry: &RecordedEntry, format: ExportFormat, naming: Naming) -> String {
    match format {
        ExportFormat::Beancount => beancount_entry(entry, naming),
        ExportFormat::Hledger => hledger_entry(entry, naming),
        ExportFormat::Csv => csv_entry(entry),
        ExportFormat::JsonLines => json_entry(entry),
    }
}

/// [`AccountNames`] with the chart at hand.
#[derive(Debug, Clone, Copy)]
enum Naming<'a> {
    Codes,
    Chart(&'a Chart),
}

impl Naming<'_> {
    /// The path below the type's root: `6200` or `LostRevenueExpense:6200`.
    fn below_root(self, code: u16) -> String {
        let name = match self {
            Naming::Codes => String::new(),
            Naming::Chart(chart) => chart
                .account(code)
                .map(|a| camel_case(&a.name))
                .unwrap_or_default(),
        };
        if name.is_empty() {
            code.to_string()
        } else {
            format!("{name}:{code}")
        }
    }

    fn beancount(self, code: u16) -> String {
        format!(
            "{}:{}",
            account_type(code).beancount_root(),
            self.below_root(code)
        )
    }

    fn hledger(self, code: u16) -> String {
        format!(
            "{}:{}",
            account_type(code).beancount_root().to_ascii_lowercase(),
            self.below_root(code)
        )
    }
}

/// `Accrued Revenue-Loss Estimates` as `AccruedRevenueLossEstimates`: ASCII letters and
/// digits only, each word capitalised, so that it is a valid Beancount account component.
fn camel_case(name: &str) -> String {
    name.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|word| !word.is_empty())
        .map(|word| {
            let mut chars = word.chars();
            let first = chars.next().expect("words are not empty");
            format!("{}{}", first.to_ascii_uppercase(), chars.as_str())
        })
        .collect()
}

impl ExportFormat {
    /// `beancount`, `hledger`, `csv`, `jsonl`: as `revloop ledger export --format` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            ExportFormat::Beancount => "beancount",
            ExportFormat::Hledger => "hledger",
            ExportFormat::Csv => "csv",
            ExportFormat::JsonLines => "jsonl",
        }
    }

    pub fn parse(text: &str) -> Option<ExportFormat> {
        [
            ExportFormat::Beancount,
            ExportFormat::Hledger,
            ExportFormat::Csv,
            ExportFormat::JsonLines,
        ]
        .into_iter()
        .find(|format| format.as_str() == text)
    }
}

/// `minor` in decimal units of a currency with `exponent` decimal places, exactly: `1234`
/// with 2 is `12.34`, `-5` is `-0.05`, with 0 `1234`.
pub fn decimal_units(minor: i64, currency: Currency) -> String {
    let exponent = currency.exponent();
    let sign = if minor < 0 { "-" } else { "" };
    let magnitude = minor.unsigned_abs();
    if exponent == 0 {
        return format!("{sign}{magnitude}");
    }
    let scale = 10_u64.pow(exponent);
    format!(
        "{sign}{}.{:0width$}",
        magnitude / scale,
        magnitude % scale,
        width = exponent as usize
    )
}

/// The root a code's range puts it under; a code outside every range (never in a valid
/// entry) goes under `Equity` so that the export still parses and the problem shows.
fn account_type(code: u16) -> AccountType {
    AccountType::of_code(code).unwrap_or(AccountType::Equity)
}

/// `Expenses:6200`: an account in a Beancount export named by codes.
pub fn beancount_account(code: u16) -> String {
    Naming::Codes.beancount(code)
}

/// `expenses:6200`: an account in an hledger export named by codes.
pub fn hledger_account(code: u16) -> String {
    Naming::Codes.hledger(code)
}

/// The UTC date of an instant, `YYYY-MM-DD`.
fn date(at: Timestamp) -> String {
    at.to_string().chars().take(10).collect()
}

/// Text as a quoted Beancount string: `\` and `"` escaped, control characters (a newline, a
/// tab) written as spaces so that every string stays on its line.
fn beancount_string(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('"');
    for c in text.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            c if c.is_control() => quoted.push(' '),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

fn beancount_header(chart: &Chart, currency: Currency, naming: Naming) -> String {
    let mut out = String::from("; revloop ledger export (Beancount)\n");
    out.push_str(&format!(
        "option \"operating_currency\" {}\n\n",
        beancount_string(currency.code())
    ));
    for account in &chart.accounts {
        out.push_str(&format!(
            "{OPEN_DATE} open {}\n  name: {}\n  account-type: {}\n",
            naming.beancount(account.code),
            beancount_string(&account.name),
            beancount_string(account.account_type.as_str()),
        ));
        if account.closed {
            // Closed for new postings; its history still needs it open in the export.
            out.push_str("  closed: TRUE\n");
        }
    }
    out.push('\n');
    out
}

fn beancount_entry(recorded: &RecordedEntry, naming: Naming) -> String {
    let entry = &recorded.entry;
    let mut out = format!(
        "{} * {}",
        date(entry.effective_at),
        beancount_string(&entry.description)
    );
    if let Some(incident) = entry.link.incident {
        out.push_str(&format!(" ^incident-{incident}"));
    }
    out.push('\n');
    let mut meta = |key: &str, value: &str| {
        out.push_str(&format!("  {key}: {}\n", beancount_string(value)));
    };
    meta("entry-id", &entry.id);
    meta("effective-at", &entry.effective_at.to_string());
    meta("recorded-at", &recorded.recorded_at.to_string());
    if let Some(incident) = entry.link.incident {
        meta("incident", &incident.to_string());
    }
    if let Some(reversed) = &entry.reverses {
        meta("reverses", reversed);
    }
    if let Some(by) = &recorded.reversed_by {
        meta("reversed-by", by);
    }
    if let Some(inputs) = &entry.link.inputs_json {
        meta("inputs", inputs);
    }
    for line in &entry.lines {
        let signed = match line.side {
            Side::Debit => line.amount_minor,
            Side::Credit => -line.amount_minor,
        };
        out.push_str(&format!(
            "  {}  {} {}\n",
            naming.beancount(line.account),
            decimal_units(signed, line.currency),
            line.currency
        ));
        if let Some(memo) = &line.memo {
            out.push_str(&format!("    memo: {}\n", beancount_string(memo)));
        }
    }
    out.push('\n');
    out
}

/// Text for an hledger description: control characters become spaces and `;` (which would
/// start a comment) a comma.
fn hledger_description(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            ';' => ',',
            c if c.is_control() => ' ',
            c => c,
        })
        .collect::<String>()
        .trim()
        .to_owned()
}

/// Text for an hledger tag value: control characters and `,` (which would end the value)
/// become spaces.
fn hledger_tag_value(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() || c == ',' { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_owned()
}

fn hledger_type_letter(account_type: AccountType) -> char {
    match account_type {
        AccountType::Asset => 'A',
        AccountType::Liability => 'L',
        AccountType::Equity => 'E',
        AccountType::Revenue => 'R',
        AccountType::Expense => 'X',
    }
}

fn hledger_header(chart: &Chart, currency: Currency, naming: Naming) -> String {
    let mut out = String::from("; revloop ledger export (hledger journal)\n");
    out.push_str(&format!(
        "commodity {} {currency}\n\n",
        decimal_units(100_000, currency)
    ));
    for account in &chart.accounts {
        let closed = if account.closed { ", closed: true" } else { "" };
        out.push_str(&format!(
            "account {}  ; type: {}, name: {}{closed}\n",
            naming.hledger(account.code),
            hledger_type_letter(account.account_type),
            hledger_tag_value(&account.name),
        ));
    }
    out.push('\n');
    out
}

fn hledger_entry(recorded: &RecordedEntry, naming: Naming) -> String {
    let entry = &recorded.entry;
    let mut tags = vec![
        format!("entry-id: {}", entry.id),
        format!("recorded-at: {}", recorded.recorded_at),
    ];
    if let Some(incident) = entry.link.incident {
        tags.push(format!("incident: {incident}"));
    }
    if let Some(reversed) = &entry.reverses {
        tags.push(format!("reverses: {reversed}"));
    }
    if let Some(by) = &recorded.reversed_by {
        tags.push(format!("reversed-by: {by}"));
    }
    let mut out = format!(
        "{} * {}  ; {}\n",
        date(entry.effective_at),
        hledger_description(&entry.description),
        tags.join(", ")
    );
    for line in &entry.lines {
        let signed = match line.side {
            Side::Debit => line.amount_minor,
            Side::Credit => -line.amount_minor,
        };
        out.push_str(&format!(
            "    {}  {} {}",
            naming.hledger(line.account),
            decimal_units(signed, line.currency),
            line.currency
        ));
        if let Some(memo) = &line.memo {
            out.push_str(&format!("  ; memo: {}", hledger_tag_value(memo)));
        }
        out.push('\n');
    }
    out.push('\n');
    out
}

/// The CSV columns: one row per line of an entry.
pub const CSV_COLUMNS: [&str; 15] = [
    "entry_id",
    "effective_at",
    "recorded_at",
    "description",
    "incident",
    "reverses",
    "reversed_by",
    "line",
    "account",
    "account_type",
    "side",
    "amount_minor",
    "amount",
    "currency",
    "memo",
];

/// A CSV field as RFC 4180 writes it: quoted (with `"` doubled) when it holds a comma, a
/// quote, a line break or edge spaces.
fn csv_field(text: &str) -> String {
    let needs_quotes =
        text.contains([',', '"', '\n', '\r']) || text.starts_with(' ') || text.ends_with(' ');
    if needs_quotes {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

fn csv_entry(recorded: &RecordedEntry) -> String {
    let entry = &recorded.entry;
    let mut out = String::new();
    for (index, line) in entry.lines.iter().enumerate() {
        let fields = [
            entry.id.clone(),
            entry.effective_at.to_string(),
            recorded.recorded_at.to_string(),
            entry.description.clone(),
            entry
                .link
                .incident
                .map(|i| i.to_string())
                .unwrap_or_default(),
            entry.reverses.clone().unwrap_or_default(),
            recorded.reversed_by.clone().unwrap_or_default(),
            index.to_string(),
            line.account.to_string(),
            account_type(line.account).as_str().to_owned(),
            line.side.as_str().to_owned(),
            line.amount_minor.to_string(),
            decimal_units(line.amount_minor, line.currency),
            line.currency.to_string(),
            line.memo.clone().unwrap_or_default(),
        ];
        let row: Vec<String> = fields.iter().map(|field| csv_field(field)).collect();
        out.push_str(&row.join(","));
        out.push('\n');
    }
    out
}

#[derive(Serialize)]
struct JsonEntry<'a> {
    id: &'a str,
    description: &'a str,
    effective_at: String,
    recorded_at: String,
    incident: Option<i64>,
    /// The impact inputs, as the text they were recorded with.
    inputs_json: Option<&'a str>,
    reverses: Option<&'a str>,
    reversed_by: Option<&'a str>,
    lines: Vec<JsonLine<'a>>,
}

#[derive(Serialize)]
struct JsonLine<'a> {
    account: u16,
    account_type: &'static str,
    side: &'static str,
    amount_minor: i64,
    /// Decimal units, as a string so that no reader turns it into a float.
    amount: String,
    currency: &'a str,
    memo: Option<&'a str>,
}

fn json_entry(recorded: &RecordedEntry) -> String {
    let entry = &recorded.entry;
    let view = JsonEntry {
        id: &entry.id,
        description: &entry.description,
        effective_at: entry.effective_at.to_string(),
        recorded_at: recorded.recorded_at.to_string(),
        incident: entry.link.incident,
        inputs_json: entry.link.inputs_json.as_deref(),
        reverses: entry.reverses.as_deref(),
        reversed_by: recorded.reversed_by.as_deref(),
        lines: entry
            .lines
            .iter()
            .map(|line| JsonLine {
                account: line.account,
                account_type: account_type(line.account).as_str(),
                side: line.side.as_str(),
                amount_minor: line.amount_minor,
                amount: decimal_units(line.amount_minor, line.currency),
                currency: line.currency.code(),
                memo: line.memo.as_deref(),
            })
            .collect(),
    };
    let mut text = serde_json::to_string(&view).expect("a view of strings and numbers serializes");
    text.push('\n');
    text
}
