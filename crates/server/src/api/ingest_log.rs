//! The ingest problem log, read side: `GET /api/v1/ingest/rejected` (the newest rejected
//! messages and notices, as Segment's debugger shows them) and `GET /api/v1/ingest/ignored`
//! (event names no stage listens to, with their counts, so a tracking-plan typo shows).
//!
//! It never writes the log: the ingest path adds to it in the group commit.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use revloop_api::ingest as wire;
use revloop_store::{
    IGNORED_NAMES_MAX, IgnoredNameRow, PROBLEM_PAGE_MAX, ProblemOutcome, ProblemQuery, ProblemRow,
    Role, StoreError,
};

use crate::api::{AppState, json_reply, require};
use crate::http::query::{invalid_query, parse_limit, unknown_parameter};
use crate::http::{ApiError, blocking};

/// Entries or names a read returns when it names no `limit`.
pub const INGEST_LOG_PAGE_DEFAULT: usize = 100;

/// Longest `code` filter taken; the codes are short identifiers.
const CODE_BYTES_MAX: usize = 64;

fn log_store_error(err: StoreError) -> ApiError {
    ApiError::store("the ingest problem log could not be read", err)
}

/// `GET /api/v1/ingest/rejected?limit=&before=&code=&outcome=`: newest first.
#[utoipa::path(
    get, path = "/api/v1/ingest/rejected", tag = "ingest",
    params(
        ("limit" = Option<usize>, Query, minimum = 1, maximum = 1000, description = "Entries to return (default 100)"),
        ("before" = Option<i64>, Query, minimum = 1, description = "Only entries older than this id: the last page's `next_before`"),
        ("code" = Option<String>, Query, min_length = 1, max_length = 64, description = "Only this problem code"),
        ("outcome" = Option<String>, Query, pattern = "^(rejected|notice)$", description = "`rejected` or `notice`"),
    ),
    responses(
        (status = 200, description = "The newest rejected messages and notices", body = revloop_api::ingest::ProblemLog),
        (status = 400, description = "A query parameter is invalid or unknown", body = revloop_api::ErrorBody),
    ),
    security(("api_token" = ["viewer"])),
)]
pub async fn rejected(
    State(state): State<AppState>,
    Query(params): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    require(&state, &headers, None, Role::Viewer, state.clock.now()).await?;
    let mut query = ProblemQuery {
        before_id: None,
        code: None,
        outcome: None,
        limit: INGEST_LOG_PAGE_DEFAULT,
    };
    for (key, value) in params {
        match key.as_str() {
            "limit" => query.limit = parse_limit(&value, PROBLEM_PAGE_MAX)?,
            "before" => {
                query.before_id = Some(
                    value
                        .parse::<i64>()
                        .ok()
                        .filter(|id| *id > 0)
                        .ok_or_else(|| {
                            invalid_query("before", "must be an entry id (1 or more)")
                        })?,
                )
            }
            "code" => {
                if value.is_empty() || value.len() > CODE_BYTES_MAX {
                    return Err(invalid_query(
                        "code",
                        format!("must be a problem code of 1 to {CODE_BYTES_MAX} bytes"),
                    ));
                }
                query.code = Some(value);
            }
            "outcome" => {
                query.outcome = Some(
                    ProblemOutcome::parse(&value)
                        .ok_or_else(|| invalid_query("outcome", "must be rejected or notice"))?,
                )
            }
            other => return Err(unknown_parameter(other, "limit, before, code or outcome")),
        }
    }
    let store = state.store.clone();
    let body = blocking(move || {
        let page = store.problem_log(&query).map_err(log_store_error)?;
        let next_before = (page.rows.len() == query.limit)
            .then(|| page.rows.last().map(|row| row.id))
            .flatten();
        Ok::<_, ApiError>(wire::ProblemLog {
            entries: page.rows.into_iter().map(logged_problem_view).collect(),
            total: page.n_held,
            dropped: page.n_dropped,
            next_before,
        })
    })
    .await?;
    Ok(json_reply(StatusCode::OK, &body))
}

/// `GET /api/v1/ingest/ignored?limit=`: most frequent first.
#[utoipa::path(
    get, path = "/api/v1/ingest/ignored", tag = "ingest",
    params(("limit" = Option<usize>, Query, minimum = 1, maximum = 1000, description = "Names to return (default 100)")),
    responses(
        (status = 200, description = "Event names no stage listens to, most frequent first", body = revloop_api::ingest::IgnoredNames),
        (status = 400, description = "A query parameter is invalid or unknown", body = revloop_api::ErrorBody),
    ),
    security(("api_token" = ["viewer"])),
)]
pub async fn ignored(
    State(state): State<AppState>,
    Query(params): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    require(&state, &headers, None, Role::Viewer, state.clock.now()).await?;
    let mut limit = INGEST_LOG_PAGE_DEFAULT;
    for (key, value) in params {
        match key.as_str() {
            "limit" => limit = parse_limit(&value, IGNORED_NAMES_MAX)?,
            other => return Err(unknown_parameter(other, "limit")),
        }
    }
    let store = state.store.clone();
    let body = blocking(move || {
        let page = store.ignored_names(limit).map_err(log_store_error)?;
        Ok::<_, ApiError>(wire::IgnoredNames {
            names: page.names.into_iter().map(ignored_name_view).collect(),
            unlisted: page.n_unlisted,
        })
    })
    .await?;
    Ok(json_reply(StatusCode::OK, &body))
}

fn logged_problem_view(row: ProblemRow) -> wire::LoggedProblem {
    wire::LoggedProblem {
        id: row.id,
        at: row.at.to_string(),
        key_name: row.key_name,
        outcome: match row.outcome {
            ProblemOutcome::Rejected => wire::ProblemOutcome::Rejected,
            ProblemOutcome::Notice => wire::ProblemOutcome::Notice,
        },
        code: row.code,
        field: row.field,
        message: row.message,
        body: row.body,
        body_cut: row.body_cut,
    }
}

fn ignored_name_view(row: IgnoredNameRow) -> wire::IgnoredName {
    wire::IgnoredName {
        kind: row.kind.as_str().to_owned(),
        name: row.name,
        count: row.n_messages,
        first_seen: row.first_seen.to_string(),
        last_seen: row.last_seen.to_string(),
    }
}
