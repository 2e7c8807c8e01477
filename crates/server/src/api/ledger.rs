//! The ledger area: validate and post journal entries, reverse one, and read the books (the
//! entries, the trial balance, an account's statement, the chart, exports). Posting goes
//! through `Store::post_ledger_entries`, which validates every entry with
//! `validate_revenue_transaction` in the call that writes it; `validate` runs the same check
//! and writes nothing.
//!
//! Reading needs the viewer role; posting and reversing need the admin role: an entry is a
//! booking in the shop's accounts, not an incident action. The incident lifecycle books on
//! the server's own authority, not through this API.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use revloop_api::ledger as wire;
use revloop_core::Config;
use revloop_core::ledger::{
    AccountNames, Balance, Chart, ENTRY_ID_BYTES_MAX, ExportFormat, Exporter, JournalEntry,
    reversal_of, validate_revenue_transaction,
};
use revloop_core::money::Currency;
use revloop_store::{
    LEDGER_PAGE_MAX, LedgerQuery, LedgerRow, PostOutcome, Role, StatementQuery, StoreError,
};

use crate::api::body::{json_body, json_object};
use crate::api::ledger_body::{
    EntryBody, Purpose, check_entry_id, check_not_reserved, decimal, entry_from_body, entry_view,
    ledger_error, side_view,
};
use crate::api::{AppState, json_reply, require};
use crate::http::query::{invalid_query, parse_limit, unknown_parameter};
use crate::http::{ApiError, blocking, invalid, retrying};

/// Entries or statement lines a page holds when `limit` is not given.
pub const LEDGER_PAGE_DEFAULT: usize = 100;

/// The chart of accounts the server books against: the config's (`[ledger]`).
pub fn ledger_chart(config: &Config) -> &Chart {
    &config.ledger.chart
}

fn ledger_store_error(err: StoreError) -> ApiError {
    ApiError::store("the ledger store failed", err)
}

/// A posting's store error: a refused entry is the client's (4xx), the rest the store's.
fn post_error(entries: &[JournalEntry], err: StoreError) -> ApiError {
    match err {
        StoreError::Ledger { index, error } => ledger_error(&entries[index], &error),
        err => ledger_store_error(err),
    }
}

/// `POST /api/v1/ledger/validate`: the runbook's `validateRevenueTransaction`.
#[utoipa::path(
    post, path = "/api/v1/ledger/validate", tag = "ledger",
    request_body(content = revloop_api::ledger::NewEntry, content_type = "application/json"),
    responses(
        (status = 200, description = "The entry is valid: as it would be posted (nothing was)", body = revloop_api::ledger::Entry),
        (status = 400, description = "A field is missing or unreadable", body = revloop_api::ErrorBody),
        (status = 413, description = "The body is over 16 KiB", body = revloop_api::ErrorBody),
        (status = 415, description = "A `Content-Encoding` other than gzip", body = revloop_api::ErrorBody),
        (status = 422, description = "The ledger's rules refuse it; `code` names the rule (`unbalanced`, `mixed_currencies`, `unknown_account`, ...) and the detail the field", body = revloop_api::ErrorBody),
    ),
    security(("api_token" = ["viewer"])),
)]
pub async fn validate(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let now = state.clock.now();
    require(&state, &headers, None, Role::Viewer, now).await?;
    let body: EntryBody = json_body(&headers, body)?;
    let entry = entry_from_body(body, Purpose::Validate, state.config.shop.currency, now)?;
    let chart = ledger_chart(&state.config).clone();
    validate_revenue_transaction(&chart, &entry).map_err(|err| ledger_error(&entry, &err))?;
    Ok(json_reply(StatusCode::OK, &entry_view(&entry, None, None)))
}

/// `POST /api/v1/ledger/entries`: posts one entry under the client's id.
#[utoipa::path(
    post, path = "/api/v1/ledger/entries", tag = "ledger",
    request_body(content = revloop_api::ledger::NewEntry, content_type = "application/json"),
    responses(
        (status = 201, description = "The entry posted", body = revloop_api::ledger::Entry),
        (status = 200, description = "Its id was posted before with the same body: the stored entry", body = revloop_api::ledger::Entry),
        (status = 400, description = "A field is missing or unreadable", body = revloop_api::ErrorBody),
        (status = 409, description = "Its id was posted with another body (`id_conflict`); nothing was stored", body = revloop_api::ErrorBody),
        (status = 413, description = "The body is over 16 KiB", body = revloop_api::ErrorBody),
        (status = 415, description = "A `Content-Encoding` other than gzip", body = revloop_api::ErrorBody),
        (status = 422, description = "The ledger's rules refuse it; `code` names the rule", body = revloop_api::ErrorBody),
    ),
    security(("api_token" = ["admin"])),
)]
pub async fn post_entry(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let now = state.clock.now();
    require(&state, &headers, None, Role::Admin, now).await?;
    let body: EntryBody = json_body(&headers, body)?;
    let entry = entry_from_body(body, Purpose::Post, state.config.shop.currency, now)?;
    post(&state, entry).await
}

/// Posts one entry: 201 when new, 200 when stored before.
async fn post(state: &AppState, entry: JournalEntry) -> Result<Response, ApiError> {
    let now = state.clock.now();
    let chart = ledger_chart(&state.config).clone();
    let store = state.store.clone();
    let entries = vec![entry];
    let outcome = blocking(move || {
        let mut outcomes = store
            .post_ledger_entries(&chart, &entries, now)
            .map_err(|err| post_error(&entries, err))?;
        Ok(outcomes.remove(0))
    })
    .await?;
    let status = match outcome {
        PostOutcome::New(_) => StatusCode::CREATED,
        PostOutcome::Existing(_) => StatusCode::OK,
    };
    Ok(json_reply(status, &row_view(outcome.row())))
}

/// `POST /api/v1/ledger/entries/{id}/reverse`: posts the entry that reverses `id`.
#[utoipa::path(
    post, path = "/api/v1/ledger/entries/{id}/reverse", tag = "ledger",
    params(("id" = String, Path, description = "The id of the entry to reverse")),
    request_body(content = Option<revloop_api::ledger::ReverseBody>, content_type = "application/json"),
    responses(
        (status = 201, description = "The reversal posted", body = revloop_api::ledger::Entry),
        (status = 200, description = "This reversal was posted before: the stored one", body = revloop_api::ledger::Entry),
        (status = 400, description = "A field is missing or unreadable", body = revloop_api::ErrorBody),
        (status = 404, description = "No such entry", body = revloop_api::ErrorBody),
        (status = 409, description = "The entry was already reversed (`already_reversed`), or the reversal's id was posted with another body", body = revloop_api::ErrorBody),
        (status = 413, description = "The body is over 16 KiB", body = revloop_api::ErrorBody),
        (status = 415, description = "A `Content-Encoding` other than gzip", body = revloop_api::ErrorBody),
        (status = 422, description = "The ledger's rules refuse the reversal (`reversal_of_reversal`: the entry is itself a reversal)", body = revloop_api::ErrorBody),
    ),
    security(("api_token" = ["admin"])),
)]
pub async fn reverse(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let now = state.clock.now();
    require(&state, &headers, None, Role::Admin, now).await?;
    let body: ReverseFields = match json_object(&headers, body)? {
        Some(fields) => crate::api::body::typed_fields(fields)?,
        None => ReverseFields::default(),
    };
    let preview = id_preview(&id);
    let id = check_entry_id("id", id).map_err(|_| no_entry(&preview))?;
    let reversal_id = match body.id {
        Some(given) => check_not_reserved(check_entry_id("id", given)?)?,
        None => {
            let derived = format!("{id}.reversal");
            if derived.len() > ENTRY_ID_BYTES_MAX {
                return Err(invalid(
                    "missing_field",
                    "id",
                    format!(
                        "`{id}.reversal` is over {ENTRY_ID_BYTES_MAX} bytes: give the reversal an id"
                    ),
                ));
            }
            derived
        }
    };
    let effective_at = match body.effective_at {
        Some(text) => Some(
            revloop_core::Timestamp::parse_rfc3339(&text)
                .map_err(|err| invalid("invalid_field", "effective_at", err.to_string()))?,
        ),
        None => None,
    };
    let store = state.store.clone();
    let wanted = id.clone();
    let original =
        blocking(move || retrying(|| store.ledger_entry(&wanted)).map_err(ledger_store_error))
            .await?
            .ok_or_else(|| no_entry(&id))?;
    let original = original.recorded.entry;
    let at = effective_at.unwrap_or(original.effective_at);
    post(&state, reversal_of(&original, reversal_id, at)).await
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ReverseFields {
    id: Option<String>,
    effective_at: Option<String>,
}

fn no_entry(id: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "unknown_entry",
        format!("no ledger entry `{id}`"),
    )
}

/// An id as a message may quote it: cut, without control characters.
fn id_preview(id: &str) -> String {
    id.chars()
        .filter(|c| !c.is_control())
        .take(ENTRY_ID_BYTES_MAX)
        .collect()
}

/// `after` and `limit`, which every paged ledger read takes.
fn page_param(key: &str, value: &str, page: &mut (i64, usize)) -> Result<bool, ApiError> {
    match key {
        "after" => {
            page.0 = value
                .parse::<i64>()
                .ok()
                .filter(|after| *after >= 0)
                .ok_or_else(|| invalid_query("after", "must be a seq, 0 or more"))?;
        }
        "limit" => page.1 = parse_limit(value, LEDGER_PAGE_MAX)?,
        _ => return Ok(false),
    }
    Ok(true)
}

/// The cursor for the page after one of `n` rows ending at `last_seq`.
fn next_after(n: usize, limit: usize, last_seq: Option<i64>) -> Option<i64> {
    if n < limit { None } else { last_seq }
}

/// `GET /api/v1/ledger/entries?incident=&after=&limit=`: entries in recorded order.
#[utoipa::path(
    get, path = "/api/v1/ledger/entries", tag = "ledger",
    params(
        ("incident" = Option<i64>, Query, description = "Only the entries of this incident"),
        ("after" = Option<i64>, Query, minimum = 0, description = "Only entries recorded after this seq (a page's `next_after`)"),
        ("limit" = Option<usize>, Query, minimum = 1, maximum = 1000, description = "Entries to return (default 100)"),
    ),
    responses(
        (status = 200, description = "Entries in recorded order", body = revloop_api::ledger::EntryList),
        (status = 400, description = "A query parameter is invalid or unknown", body = revloop_api::ErrorBody),
    ),
    security(("api_token" = ["viewer"])),
)]
pub async fn list_entries(
    State(state): State<AppState>,
    Query(params): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let now = state.clock.now();
    require(&state, &headers, None, Role::Viewer, now).await?;
    let mut page = (0, LEDGER_PAGE_DEFAULT);
    let mut incident = None;
    for (key, value) in params {
        if page_param(&key, &value, &mut page)? {
            continue;
        }
        match key.as_str() {
            "incident" => {
                incident = Some(
                    value
                        .parse::<i64>()
                        .map_err(|_| invalid_query("incident", "must be an incident id"))?,
                );
            }
            other => return Err(unknown_parameter(other, "incident, after or limit")),
        }
    }
    let query = LedgerQuery {
        incident,
        after_seq: page.0,
        limit: page.1,
    };
    let store = state.store.clone();
    let rows =
        blocking(move || retrying(|| store.ledger_entries(&query)).map_err(ledger_store_error))
            .await?;
    let body = wire::EntryList {
        next_after: next_after(rows.len(), page.1, rows.last().map(|r| r.seq)),
        entries: rows.iter().map(row_view).collect(),
    };
    Ok(json_reply(StatusCode::OK, &body))
}

fn row_view(row: &LedgerRow) -> wire::Entry {
    entry_view(&row.recorded.entry, Some(row.seq), Some(&row.recorded))
}

/// `GET /api/v1/ledger/trial-balance`: every account's totals, summed by the database.
#[utoipa::path(
    get, path = "/api/v1/ledger/trial-balance", tag = "ledger",
    responses((status = 200, description = "Totals per account and currency", body = revloop_api::ledger::TrialBalance)),
    security(("api_token" = ["viewer"])),
)]
pub async fn trial_balance(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let now = state.clock.now();
    require(&state, &headers, None, Role::Viewer, now).await?;
    let store = state.store.clone();
    let balances =
        blocking(move || retrying(|| store.trial_balance()).map_err(ledger_store_error)).await?;
    let chart = ledger_chart(&state.config).clone();
    Ok(json_reply(
        StatusCode::OK,
        &trial_balance_view(&chart, &balances),
    ))
}

fn trial_balance_view(chart: &Chart, balances: &[Balance]) -> wire::TrialBalance {
    let mut totals: Vec<(Currency, i128, i128)> = Vec::new();
    for balance in balances {
        match totals.iter_mut().find(|t| t.0 == balance.currency) {
            Some(total) => {
                total.1 += balance.debits;
                total.2 += balance.credits;
            }
            None => totals.push((balance.currency, balance.debits, balance.credits)),
        }
    }
    totals.sort_by_key(|t| t.0);
    let accounts = balances
        .iter()
        .map(|b| {
            let account = chart.account(b.account);
            wire::BalanceRow {
                account: b.account,
                name: account.map(|a| a.name.clone()),
                account_type: account.map(|a| a.account_type.as_str().to_owned()),
                currency: b.currency.code().to_owned(),
                debits: decimal(b.debits, b.currency),
                debits_minor: b.debits.to_string(),
                credits: decimal(b.credits, b.currency),
                credits_minor: b.credits.to_string(),
                balance: decimal(b.debits - b.credits, b.currency),
                balance_minor: (b.debits - b.credits).to_string(),
            }
        })
        .collect();
    let totals: Vec<wire::CurrencyTotal> = totals
        .into_iter()
        .map(|(currency, debits, credits)| wire::CurrencyTotal {
            currency: currency.code().to_owned(),
            debits: decimal(debits, currency),
            debits_minor: debits.to_string(),
            credits: decimal(credits, currency),
            credits_minor: credits.to_string(),
            balanced: debits == credits,
        })
        .collect();
    wire::TrialBalance {
        balanced: totals.iter().all(|t| t.balanced),
        accounts,
        totals,
    }
}

/// `GET /api/v1/ledger/accounts`: the chart of accounts.
#[utoipa::path(
    get, path = "/api/v1/ledger/accounts", tag = "ledger",
    responses((status = 200, description = "The chart of accounts", body = revloop_api::ledger::Chart)),
    security(("api_token" = ["viewer"])),
)]
pub async fn accounts(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let now = state.clock.now();
    require(&state, &headers, None, Role::Viewer, now).await?;
    let chart = ledger_chart(&state.config).clone();
    let body = wire::Chart {
        accounts: chart
            .accounts
            .iter()
            .map(|a| wire::Account {
                code: a.code,
                name: a.name.clone(),
                account_type: a.account_type.as_str().to_owned(),
                closed: a.closed,
            })
            .collect(),
    };
    Ok(json_reply(StatusCode::OK, &body))
}

/// `GET /api/v1/ledger/accounts/{code}/statement?after=&limit=`.
#[utoipa::path(
    get, path = "/api/v1/ledger/accounts/{code}/statement", tag = "ledger",
    params(
        ("code" = u16, Path, example = 6200, description = "The account's four-digit code"),
        ("after" = Option<i64>, Query, minimum = 0, description = "Only lines of entries recorded after this seq (a page's `next_after`)"),
        ("limit" = Option<usize>, Query, minimum = 1, maximum = 1000, description = "Lines to return (default 100)"),
    ),
    responses(
        (status = 200, description = "The account's lines with the running balance", body = revloop_api::ledger::Statement),
        (status = 400, description = "A query parameter is invalid or unknown", body = revloop_api::ErrorBody),
        (status = 404, description = "No such account in the chart", body = revloop_api::ErrorBody),
    ),
    security(("api_token" = ["viewer"])),
)]
pub async fn statement(
    State(state): State<AppState>,
    Path(code): Path<String>,
    Query(params): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let now = state.clock.now();
    require(&state, &headers, None, Role::Viewer, now).await?;
    let mut page = (0, LEDGER_PAGE_DEFAULT);
    for (key, value) in params {
        if !page_param(&key, &value, &mut page)? {
            return Err(unknown_parameter(&key, "after or limit"));
        }
    }
    let chart = ledger_chart(&state.config).clone();
    let account = code
        .parse::<u16>()
        .ok()
        .and_then(|code| chart.account(code))
        .cloned()
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "no account `{}` in the chart; see GET /api/v1/ledger/accounts",
                id_preview(&code)
            ))
        })?;
    let query = StatementQuery {
        account: account.code,
        after_seq: page.0,
        limit: page.1,
    };
    let store = state.store.clone();
    let lines =
        blocking(move || retrying(|| store.account_statement(&query)).map_err(ledger_store_error))
            .await?;
    let body = wire::Statement {
        account: account.code,
        name: Some(account.name.clone()),
        account_type: Some(account.account_type.as_str().to_owned()),
        next_after: next_after(lines.len(), page.1, lines.last().map(|l| l.seq)),
        lines: lines
            .iter()
            .map(|l| wire::StatementLine {
                seq: l.seq,
                entry: l.entry.clone(),
                line: l.line,
                effective_at: l.effective_at.to_string(),
                recorded_at: l.recorded_at.to_string(),
                description: l.description.clone(),
                side: side_view(l.side),
                currency: l.currency.code().to_owned(),
                amount: decimal(i128::from(l.amount_minor), l.currency),
                amount_minor: l.amount_minor,
                balance: decimal(l.balance_minor, l.currency),
                balance_minor: l.balance_minor.to_string(),
            })
            .collect(),
    };
    Ok(json_reply(StatusCode::OK, &body))
}

/// `GET /api/v1/ledger/export?format=`: the whole ledger, streamed a page at a time.
#[utoipa::path(
    get, path = "/api/v1/ledger/export", tag = "ledger",
    params(
        ("format" = String, Query, description = "`beancount`, `hledger`, `csv` or `jsonl`"),
        ("names" = Option<String>, Query, description = "How Beancount and hledger name accounts: `codes` (`Expenses:6200`, the default) or `chart` (`Expenses:LostRevenueExpense:6200`)"),
    ),
    responses(
        (status = 200, description = "Every entry in recorded order, in the format asked for: Beancount and hledger as text/plain, CSV as text/csv, JSON Lines as application/x-ndjson", content(
            (String = "text/plain"),
            (String = "text/csv"),
            (String = "application/x-ndjson"),
        )),
        (status = 400, description = "The format is missing or unknown, `names` unknown, or a parameter unknown", body = revloop_api::ErrorBody),
    ),
    security(("api_token" = ["viewer"])),
)]
pub async fn export(
    State(state): State<AppState>,
    Query(params): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let now = state.clock.now();
    require(&state, &headers, None, Role::Viewer, now).await?;
    let mut format = None;
    let mut names = AccountNames::Codes;
    for (key, value) in params {
        match key.as_str() {
            "format" => format = Some(parse_format(&value)?),
            "names" => {
                names = match value.as_str() {
                    "codes" => AccountNames::Codes,
                    "chart" => AccountNames::Chart,
                    _ => return Err(invalid_query("names", "must be codes or chart")),
                }
            }
            other => return Err(unknown_parameter(other, "format or names")),
        }
    }
    let format = format
        .ok_or_else(|| invalid_query("format", "is required: beancount, hledger, csv or jsonl"))?;
    let chart = Arc::new(ledger_chart(&state.config).clone());
    let currency = state.config.shop.currency;
    let header_text = Exporter::new(&chart, currency, format, names).header();
    let content_type = match format {
        ExportFormat::Csv => "text/csv; charset=utf-8",
        ExportFormat::JsonLines => "application/x-ndjson",
        ExportFormat::Beancount | ExportFormat::Hledger => "text/plain; charset=utf-8",
    };
    let store = state.store.clone();
    let pages = futures_util::stream::unfold(Some(0_i64), move |after| {
        let store = store.clone();
        let chart = chart.clone();
        async move {
            let after = after?;
            let query = LedgerQuery {
                incident: None,
                after_seq: after,
                limit: LEDGER_PAGE_MAX,
            };
            let read =
                tokio::task::spawn_blocking(move || retrying(|| store.ledger_entries(&query)))
                    .await;
            match read {
                Ok(Ok(rows)) => {
                    let next = next_after(rows.len(), LEDGER_PAGE_MAX, rows.last().map(|r| r.seq));
                    let exporter = Exporter::new(&chart, currency, format, names);
                    let text: String = rows
                        .iter()
                        .map(|row| exporter.entry(&row.recorded))
                        .collect();
                    Some((Ok::<_, std::io::Error>(Bytes::from(text)), next))
                }
                // The reply has started: cutting it short is all that is left. The export
                // then lacks entries, which a reader notices (see docs/ledger-api.md).
                Ok(Err(err)) => {
                    tracing::error!("the ledger export failed: {err}");
                    Some((Err(std::io::Error::other(err.to_string())), None))
                }
                Err(err) => {
                    tracing::error!("the ledger export failed: {err}");
                    Some((Err(std::io::Error::other(err.to_string())), None))
                }
            }
        }
    });
    let first = futures_util::stream::once(async move { Ok(Bytes::from(header_text)) });
    let body = Body::from_stream(futures_util::StreamExt::chain(first, pages));
    Ok(([(header::CONTENT_TYPE, content_type)], body).into_response())
}

fn parse_format(value: &str) -> Result<ExportFormat, ApiError> {
    ExportFormat::parse(value)
        .ok_or_else(|| invalid_query("format", "must be beancount, hledger, csv or jsonl"))
}
