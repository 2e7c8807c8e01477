//! Reading a journal entry from a request body, and showing ledger values on the wire: the
//! all-optional body types (so that every refusal names its field, `lines[2].amount`), the
//! decimal text of minor units, and the status and field of each enumerated ledger error.
//! It never reaches the store; the handlers in `ledger` do.

use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::Value;

use revloop_api::ledger as wire;
use revloop_core::Timestamp;
use revloop_core::ledger::{
    AccountType, ENTRY_ID_BYTES_MAX, ENTRY_LINES_MAX, EntryLink, JournalEntry, LedgerError, Line,
    RecordedEntry, Side, is_valid_entry_id,
};
use revloop_core::money::{Currency, Money};

use crate::api::body::typed_fields;
use crate::http::{ApiError, ErrorDetail, invalid};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntryBody {
    id: Option<String>,
    description: Option<String>,
    currency: Option<String>,
    effective_at: Option<String>,
    incident: Option<i64>,
    inputs: Option<Value>,
    lines: Option<Vec<Value>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LineBody {
    #[serde(alias = "accountCode")]
    account: Option<u16>,
    #[serde(alias = "accountType")]
    account_type: Option<String>,
    side: Option<String>,
    amount: Option<String>,
    amount_minor: Option<i64>,
    currency: Option<String>,
    memo: Option<String>,
}

/// What a posting needs that a validation does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// `validate`: the id and the effective time may be left out.
    Validate,
    /// `entries`: both are required, so that a retry sends the same body.
    Post,
}

/// The entry a body describes, with `shop_currency` where it names none. Refusals are 400s
/// naming the field; the ledger's own rules are left to `validate_revenue_transaction`.
pub fn entry_from_body(
    body: EntryBody,
    purpose: Purpose,
    shop_currency: Currency,
    now: Timestamp,
) -> Result<JournalEntry, ApiError> {
    let id = match (body.id, purpose) {
        (Some(id), Purpose::Post) => check_not_reserved(check_entry_id("id", id)?)?,
        (Some(id), _) => check_entry_id("id", id)?,
        // Any valid id: `validate` checks the rest of the entry, and stores nothing.
        (None, Purpose::Validate) => "unposted".to_owned(),
        (None, Purpose::Post) => {
            return Err(invalid("missing_field", "id", "is required to post"));
        }
    };
    let description = body
        .description
        .ok_or_else(|| invalid("missing_field", "description", "is required"))?;
    refuse_nul("description", &description)?;
    let currency = match body.currency {
        Some(code) => parse_currency("currency", &code)?,
        None => shop_currency,
    };
    let effective_at = match (body.effective_at, purpose) {
        (Some(text), _) => Timestamp::parse_rfc3339(&text)
            .map_err(|err| invalid("invalid_field", "effective_at", err.to_string()))?,
        (None, Purpose::Validate) => now,
        (None, Purpose::Post) => {
            return Err(invalid(
                "missing_field",
                "effective_at",
                "is required to post",
            ));
        }
    };
    // serde_json writes object keys sorted: canonical text. Its length is the ledger's rule.
    let inputs_json = body.inputs.map(|value| value.to_string());
    let values = body
        .lines
        .ok_or_else(|| invalid("missing_field", "lines", "is required"))?;
    if values.len() > ENTRY_LINES_MAX {
        return Err(invalid(
            "too_many",
            "lines",
            format!("an entry has at most {ENTRY_LINES_MAX} lines"),
        ));
    }
    let lines = values
        .into_iter()
        .enumerate()
        .map(|(index, value)| line_from_value(index, value, currency))
        .collect::<Result<_, _>>()?;
    Ok(JournalEntry {
        id,
        description,
        effective_at,
        lines,
        link: EntryLink {
            incident: body.incident,
            inputs_json,
        },
        reverses: None,
    })
}

fn line_from_value(index: usize, value: Value, currency: Currency) -> Result<Line, ApiError> {
    let field = |name: &str| format!("lines[{index}].{name}");
    let Value::Object(fields) = value else {
        return Err(invalid(
            "invalid_field",
            &format!("lines[{index}]"),
            "must be an object",
        ));
    };
    let body: LineBody = typed_fields(fields).map_err(|err| {
        // Name the line as well as its field.
        let culprit = err
            .details
            .first()
            .and_then(|detail| detail.field.clone())
            .unwrap_or_default();
        invalid("invalid_field", &field(&culprit), err.message)
    })?;
    let account = body
        .account
        .ok_or_else(|| invalid("missing_field", &field("account"), "is required"))?;
    let account_type = match &body.account_type {
        Some(text) => Some(AccountType::parse(text).ok_or_else(|| {
            invalid(
                "invalid_field",
                &field("account_type"),
                "must be ASSET, LIABILITY, EQUITY, REVENUE or EXPENSE",
            )
        })?),
        None => None,
    };
    let side = match body.side.as_deref() {
        Some(text) => Side::parse(text)
            .ok_or_else(|| invalid("invalid_field", &field("side"), "must be debit or credit"))?,
        None => return Err(invalid("missing_field", &field("side"), "is required")),
    };
    let currency = match &body.currency {
        Some(code) => parse_currency(&field("currency"), code)?,
        None => currency,
    };
    let amount_minor = match (&body.amount, body.amount_minor) {
        (Some(text), None) => {
            Money::parse_decimal(text, currency)
                .map_err(|err| invalid("invalid_field", &field("amount"), err.to_string()))?
                .minor
        }
        (None, Some(minor)) => minor,
        _ => {
            return Err(invalid(
                "invalid_field",
                &field("amount"),
                "give exactly one of `amount` (decimal text) and `amount_minor` (integer)",
            ));
        }
    };
    if let Some(memo) = &body.memo {
        refuse_nul(&field("memo"), memo)?;
    }
    Ok(Line {
        account,
        account_type,
        side,
        amount_minor,
        currency,
        memo: body.memo,
    })
}

/// An entry id as the ledger takes it (`is_valid_entry_id`): 1 to [`ENTRY_ID_BYTES_MAX`]
/// ASCII letters, digits, `-`, `_`, `.` or `:`.
pub fn check_entry_id(field: &str, id: String) -> Result<String, ApiError> {
    if !is_valid_entry_id(&id) {
        return Err(invalid(
            "invalid_field",
            field,
            format!(
                "must be 1 to {ENTRY_ID_BYTES_MAX} ASCII letters, digits, `-`, `_`, `.` or `:`"
            ),
        ));
    }
    Ok(id)
}

/// An id the incident lifecycle books under (`inc-42-est-1`, `inc-42-final`: see
/// `ledger::BookingId`) is refused to a hand posting: taking one would leave that incident's
/// books refused at every step.
pub fn check_not_reserved(id: String) -> Result<String, ApiError> {
    if revloop_core::ledger::BookingId::parse(&id).is_some() {
        return Err(invalid(
            "reserved_id",
            "id",
            format!("`{id}` is an id the incident lifecycle books under; choose another"),
        ));
    }
    Ok(id)
}

/// A text holding NUL, which PostgreSQL cannot store and no description needs.
fn refuse_nul(field: &str, text: &str) -> Result<(), ApiError> {
    if text.contains('\0') {
        return Err(invalid("invalid_field", field, "must not contain NUL"));
    }
    Ok(())
}

fn parse_currency(field: &str, code: &str) -> Result<Currency, ApiError> {
    Currency::parse(code).map_err(|err| invalid("invalid_field", field, err.to_string()))
}

/// A refusal of the ledger's rules: 409 for an id posted with another body or an entry
/// already reversed, 404 for an unknown entry, 422 for an entry the rules refuse; the code is
/// the error's own and the field where it points.
pub fn ledger_error(entry: &JournalEntry, error: &LedgerError) -> ApiError {
    let status = match error {
        LedgerError::IdConflict(_) | LedgerError::AlreadyReversed(_) => StatusCode::CONFLICT,
        LedgerError::UnknownEntry(_) => StatusCode::NOT_FOUND,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    };
    let line_of = |account: u16, name: &str| {
        let index = entry.lines.iter().position(|l| l.account == account);
        index.map_or("lines".to_owned(), |i| format!("lines[{i}].{name}"))
    };
    let field = match error {
        LedgerError::UnknownAccount(code) | LedgerError::ClosedAccount(code) => {
            line_of(*code, "account")
        }
        LedgerError::TypeMismatch { code, .. } => line_of(*code, "account_type"),
        LedgerError::IdConflict(_) | LedgerError::AlreadyReversed(_) => "id".to_owned(),
        LedgerError::UnknownEntry(_) => "reverses".to_owned(),
        // The sums and currencies are the lines' together.
        other => other.field().unwrap_or_else(|| "lines".to_owned()),
    };
    let message = error.to_string();
    ApiError::new(status, error.code(), format!("{field}: {message}")).with_details(vec![
        ErrorDetail {
            index: None,
            line: None,
            field: Some(field),
            message,
        },
    ])
}

/// Minor units as decimal text in `currency`: `-1234` USD is `-12.34`.
pub fn decimal(minor: i128, currency: Currency) -> String {
    let exponent = currency.exponent();
    let sign = if minor < 0 { "-" } else { "" };
    let magnitude = minor.unsigned_abs();
    if exponent == 0 {
        return format!("{sign}{magnitude}");
    }
    let scale = 10_u128.pow(exponent);
    format!(
        "{sign}{}.{:0width$}",
        magnitude / scale,
        magnitude % scale,
        width = exponent as usize
    )
}

pub fn side_view(side: Side) -> wire::Side {
    match side {
        Side::Debit => wire::Side::Debit,
        Side::Credit => wire::Side::Credit,
    }
}

/// An entry as the API shows it; `seq` and `recorded` are absent for an entry only validated.
pub fn entry_view(
    entry: &JournalEntry,
    seq: Option<i64>,
    recorded: Option<&RecordedEntry>,
) -> wire::Entry {
    let currency = entry.lines.first().map(|l| l.currency);
    wire::Entry {
        id: entry.id.clone(),
        seq,
        description: entry.description.clone(),
        currency: currency.map(|c| c.code().to_owned()).unwrap_or_default(),
        effective_at: entry.effective_at.to_string(),
        recorded_at: recorded.map(|r| r.recorded_at.to_string()),
        incident: entry.link.incident,
        inputs_json: entry.link.inputs_json.clone(),
        reverses: entry.reverses.clone(),
        reversed_by: recorded.and_then(|r| r.reversed_by.clone()),
        lines: entry
            .lines
            .iter()
            .map(|line| wire::EntryLine {
                account: line.account,
                account_type: line.account_type.map(|t| t.as_str().to_owned()),
                side: side_view(line.side),
                amount: decimal(i128::from(line.amount_minor), line.currency),
                amount_minor: line.amount_minor,
                memo: line.memo.clone(),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_of_minor_units() {
        let usd = Currency::parse("USD").unwrap();
        let jpy = Currency::parse("JPY").unwrap();
        let bhd = Currency::parse("BHD").unwrap();
        let cases: [(i128, Currency, &str); 7] = [
            (0, usd, "0.00"),
            (5, usd, "0.05"),
            (-1234, usd, "-12.34"),
            (1234, jpy, "1234"),
            (1234, bhd, "1.234"),
            (i128::from(i64::MAX) * 3, usd, "276701161105643274.21"),
            (-1, usd, "-0.01"),
        ];
        for (minor, currency, text) in cases {
            assert_eq!(decimal(minor, currency), text, "{minor} {currency}");
        }
    }

    /// The server reads every field of the wire type the CLI and clients send.
    #[test]
    fn the_server_reads_every_field_of_a_new_entry() {
        let sent = wire::NewEntry {
            id: Some("e-1".into()),
            description: "d".into(),
            currency: Some("USD".into()),
            effective_at: Some("2026-11-27T10:00:00Z".into()),
            incident: Some(3),
            inputs: Some(serde_json::json!({"b": 1, "a": 2})),
            lines: vec![wire::NewLine {
                account: 6200,
                account_type: Some("EXPENSE".into()),
                side: wire::Side::Debit,
                amount: Some("1.50".into()),
                amount_minor: None,
                currency: None,
                memo: Some("m".into()),
            }],
        };
        let body: EntryBody = serde_json::from_value(serde_json::to_value(&sent).unwrap()).unwrap();
        assert_eq!(body.id.as_deref(), Some("e-1"));
        assert_eq!(body.incident, Some(3));
        let lines = body.lines.unwrap();
        let line: LineBody = serde_json::from_value(lines[0].clone()).unwrap();
        assert_eq!(line.account, Some(6200));
        assert_eq!(line.amount.as_deref(), Some("1.50"));
    }
}
