//! The API's published contract: an OpenAPI 3.1 document generated from the handlers' own
//! `#[utoipa::path]` attributes and the wire types of `revloop-api`, served at
//! `GET /openapi.json` and kept in the repo as `docs/openapi.json` (a test fails when they
//! differ; `UPDATE_OPENAPI=1 cargo test -p revloop-server --test openapi` rewrites the file).
//!
//! Most replies are `revloop-api` types. The few a handler still builds with `json!` (funnels,
//! metrics, alerts, the detector's series, health) are described here by view types that only
//! the document uses; schemathesis (`tests/contract/run`) checks live replies against them, so
//! they cannot drift unnoticed. The ingest routes and the incident actions share one handler
//! each, so their operations are declared here on stub functions, one per path.
//!
//! What every authenticated operation can answer (401, 403, and 500 or 503 with
//! `Retry-After` when the store fails) is added to each by [`CommonReplies`], so the
//! attributes list only what is particular to their handler. It never changes a handler.

use std::collections::BTreeMap;

use serde_json::Value;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi, ToSchema};

use revloop_api::ErrorBody;
use revloop_api::actions::{
    ActionItemBody, ChecklistBody, MitigateBody, ReasonBody, ResolveBody, ScopeBody, SeverityBody,
    TextBody,
};
use revloop_api::incidents::Incident;
use revloop_api::ingest::IngestReply;

/// The document, as served and committed.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "revloop",
        description = "Guards an online shop's revenue funnel: Segment-compatible ingest, \
            funnel metrics, anomaly detection, incidents. Every error is \
            `{\"error\": {\"code\", \"message\", \"details\"}}`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        track, page, screen, identify, group, alias, batch, bulk, counts,
        crate::api::ingest_log::rejected,
        crate::api::ingest_log::ignored,
        crate::api::funnels::list_funnels,
        crate::api::metrics::funnel_metrics,
        crate::api::alerts::list_alerts,
        crate::api::alerts::detector_status,
        crate::api::alerts::detector_state,
        crate::api::alerts::baseline,
        crate::api::alerts::rebuild,
        crate::api::incidents::list_incidents,
        crate::api::declare::declare,
        crate::api::report::report,
        crate::api::incidents::get_incident,
        crate::api::impact::incident_impact,
        acknowledge, note, scope, severity, mitigate, root_cause, action_items, checklist,
        resolve, reopen,
        crate::api::outbox::outbox,
        crate::api::silences::list_silences,
        crate::api::silences::add_silence,
        crate::api::silences::end_silence,
        crate::api::changes::list_changes,
        crate::api::changes::add_change,
        crate::api::signals::alertmanager,
        crate::api::signals::event,
        crate::api::demo_inbox::receive,
        crate::api::demo_inbox::list,
        crate::api::ledger::validate,
        crate::api::ledger::post_entry,
        crate::api::ledger::reverse,
        crate::api::ledger::list_entries,
        crate::api::ledger::trial_balance,
        crate::api::ledger::accounts,
        crate::api::ledger::statement,
        crate::api::ledger::export,
        crate::api::health::healthz,
        crate::api::health::readyz,
        crate::api::health::prometheus,
        openapi_json,
    ),
    // Schemas a query parameter names are not collected by themselves.
    components(schemas(ErrorBody, revloop_api::incidents::StateFilter)),
    modifiers(&CommonReplies),
    tags(
        (name = "ingest", description = "Segment's HTTP tracking API, NDJSON bulk loads and pre-aggregated counts"),
        (name = "funnels", description = "Funnels and their metrics"),
        (name = "detector", description = "Alerts, series and baselines"),
        (name = "incidents", description = "Incidents, actions, the report and the outbox"),
        (name = "changes", description = "Changes and silences"),
        (name = "signals", description = "Inbound technical signals: Alertmanager webhooks and PagerDuty-style events"),
        (name = "ledger", description = "The double-entry ledger: validate, post and reverse entries; trial balance, statements, exports"),
        (name = "demo", description = "The demo's own webhook inbox (`revloop demo` only)"),
        (name = "operations", description = "Health, Prometheus metrics and this document"),
    ),
)]
pub struct ApiDoc;

/// The document as JSON text, pretty-printed, with a final newline: what `docs/openapi.json`
/// holds.
pub fn document_json() -> String {
    let mut text = ApiDoc::openapi()
        .to_pretty_json()
        .expect("the OpenAPI document serializes");
    text.push('\n');
    text
}

/// `GET /openapi.json`: this document (no authentication).
#[utoipa::path(
    get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json", body = serde_json::Value)),
)]
pub async fn openapi_json() -> axum::response::Response {
    use axum::response::IntoResponse;
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        document_json(),
    )
        .into_response()
}

/// The security schemes, and the replies every authenticated operation can give.
pub struct CommonReplies;

/// The name of the bearer-token scheme; its scopes name the role an operation needs.
pub const API_TOKEN: &str = "api_token";
/// The name of Segment's write-key scheme: the key as the HTTP Basic username.
pub const WRITE_KEY: &str = "write_key";

impl Modify for CommonReplies {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            API_TOKEN,
            SecurityScheme::Http(
                Http::builder()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API token (`revloop token create --role ...`): `Authorization: \
                         Bearer rl_...`. The security requirement's list names the role the \
                         operation needs (admin may do everything but ingest; responder what \
                         a viewer may; an ingest key only ingests). Ingest endpoints also take \
                         a write key as a bearer token.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            WRITE_KEY,
            SecurityScheme::Http(
                Http::builder()
                    .scheme(HttpAuthScheme::Basic)
                    .description(Some(
                        "Segment's way: the write key (an ingest token) as the HTTP Basic \
                         username, password empty. A single call or a batch may instead carry \
                         it as `writeKey` in the body.",
                    ))
                    .build(),
            ),
        );
        for item in doc.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                add_common_replies(operation);
            }
        }
    }
}

/// 401, 403, 500 and 503 on an operation that needs a credential (a token lookup may read the
/// store, so each of them may find it failing), unless its attribute already says them.
fn add_common_replies(operation: &mut Operation) {
    let secured = operation
        .security
        .as_ref()
        .is_some_and(|requirements| !requirements.is_empty());
    if !secured {
        return;
    }
    let replies = [
        ("401", "No credential, or an unknown or revoked one"),
        ("403", "The credential's role may not do this"),
        ("500", "The store failed; the server log says how"),
    ];
    for (status, description) in replies {
        operation
            .responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| error_reply(description));
    }
    operation
        .responses
        .responses
        .entry("503".to_owned())
        .or_insert_with(unavailable_reply);
}

fn error_content() -> utoipa::openapi::Content {
    ContentBuilder::new()
        .schema(Some(RefOr::Ref(Ref::from_schema_name("ErrorBody"))))
        .build()
}

fn error_reply(description: &str) -> RefOr<utoipa::openapi::Response> {
    ResponseBuilder::new()
        .description(description)
        .content("application/json", error_content())
        .build()
        .into()
}

/// 503 with `Retry-After`: the store was busy, in a conflict or briefly unreachable (or, on
/// ingest, the queue was full or a commit failed); nothing was changed.
pub fn unavailable_reply() -> RefOr<utoipa::openapi::Response> {
    let retry_after = HeaderBuilder::new()
        .schema(
            utoipa::openapi::ObjectBuilder::new()
                .schema_type(utoipa::openapi::Type::Integer)
                .minimum(Some(0)),
        )
        .description(Some("Seconds to wait before trying again"))
        .build();
    ResponseBuilder::new()
        .description(
            "The store (or the ingest queue) is unavailable for a moment; nothing was changed. \
             Try again after `Retry-After` seconds.",
        )
        .header("Retry-After", retry_after)
        .content("application/json", error_content())
        .build()
        .into()
}

// ---------------------------------------------------------------------------------------------
// Views the handlers build with `json!`, described for the document only.

/// `GET /healthz`.
#[derive(ToSchema)]
pub struct Health {
    /// Always `ok`: the process answers.
    pub status: String,
}

/// `GET /readyz`: each part, and whether it works.
#[derive(ToSchema)]
pub struct Readiness {
    /// The database answers.
    pub store: bool,
    /// The group-commit writer is alive.
    pub writer: bool,
    /// `warming_up`, `live` or `stalled`.
    pub detector: revloop_api::detector::DetectorHealth,
    /// Funnels whose reads fail; they do not fail readiness.
    pub failing_funnels: Vec<String>,
    /// The incident service: `ok`, `dead` (its thread ended) or `stalled` (its timers have not
    /// run for a minute).
    pub incidents: String,
}

/// `GET /api/v1/funnels`.
#[derive(ToSchema)]
pub struct FunnelList {
    /// ISO 4217 code of the shop currency.
    pub currency: String,
    pub time_zone: String,
    pub funnels: Vec<FunnelView>,
    pub dimensions: Vec<DimensionView>,
}

#[derive(ToSchema)]
pub struct FunnelView {
    pub id: String,
    pub name: String,
    pub stages: Vec<StageView>,
    /// The configured average order value, else the one measured over the last week; `null`
    /// without revenue.
    pub average_order_value: Option<AverageOrderValue>,
}

#[derive(ToSchema)]
pub struct StageView {
    pub id: String,
    pub name: String,
    /// The Segment call that reaches it: `track`, `page` or `screen`.
    pub call: String,
    /// The event (or page, screen) name.
    pub event: String,
    /// Property filters, path to value.
    pub r#where: BTreeMap<String, Value>,
}

#[derive(ToSchema)]
pub struct AverageOrderValue {
    /// Integer minor units.
    pub minor: i64,
    pub currency: String,
    pub display: String,
    /// `config` or `measured over the last 7 days`.
    pub source: String,
}

#[derive(ToSchema)]
pub struct DimensionView {
    pub name: String,
    /// The path into the message, e.g. `context.device.type`.
    pub path: String,
    pub max_values: u32,
    /// The values admitted so far.
    pub values: Vec<String>,
}

/// `GET /api/v1/funnels/{id}/metrics`.
#[derive(ToSchema)]
pub struct FunnelMetrics {
    pub funnel: String,
    pub from: String,
    pub to: String,
    /// The window length, e.g. `1h`.
    pub step: String,
    /// The dimension filters as given.
    pub filter: BTreeMap<String, String>,
    pub segment: SegmentStatus,
    pub dimensions: Vec<DimensionFill>,
    /// The stage ids in order.
    pub stages: Vec<String>,
    pub windows: Vec<MetricsWindow>,
    pub resolution: Resolution,
}

/// Where counts may have been rolled up to hourly by the maintenance (`[retention]`).
#[derive(ToSchema)]
pub struct Resolution {
    /// Counts of minutes before this may be hourly, each hour's in the window holding its
    /// first minute.
    pub hourly_before: String,
    /// Whether the range reaches back there.
    pub hourly: bool,
}

/// Whether the filtered values are counted as sent: `tracked`, `unseen` or `folded`.
#[derive(ToSchema)]
pub struct SegmentStatus {
    pub status: String,
    pub message: String,
    pub values: Vec<ValueStatusView>,
}

#[derive(ToSchema)]
pub struct ValueStatusView {
    pub dimension: String,
    pub value: String,
    pub status: String,
    pub message: String,
}

#[derive(ToSchema)]
pub struct DimensionFill {
    pub name: String,
    pub values_tracked: u64,
    pub values_max: u32,
    /// New values fold into `other`.
    pub full: bool,
}

#[derive(ToSchema)]
pub struct MetricsWindow {
    pub start: String,
    pub stages: Vec<StageFigures>,
}

#[derive(ToSchema)]
pub struct StageFigures {
    pub stage: String,
    pub count: i64,
    pub step_conversion: Option<f64>,
    pub drop_off_rate: Option<f64>,
    pub overall_conversion: Option<f64>,
    pub excess: i64,
    pub late: i64,
    pub revenue: Revenue,
}

#[derive(ToSchema)]
pub struct Revenue {
    /// Integer minor units.
    pub minor: i64,
    pub currency: String,
}

/// `GET /api/v1/alerts`: alert events, oldest first.
#[derive(ToSchema)]
pub struct AlertList {
    pub alerts: Vec<AlertEventView>,
    /// When judging went live; `null` while the detector warms up.
    pub live_since: Option<String>,
    /// The first minute not yet judged.
    pub judged_until: Option<String>,
}

/// One alert event: the shape `replay --alerts-out` writes (docs/detection.md).
#[derive(ToSchema)]
pub struct AlertEventView {
    /// Sixteen hex digits.
    pub alert_id: String,
    pub funnel: String,
    pub stage: String,
    /// `conversion` or `volume`.
    pub kind: String,
    /// `P1` or `P2`.
    pub severity: String,
    /// `opened`, `upgraded` or `closed`.
    pub event: String,
    /// `worse` or `surge`.
    pub direction: String,
    pub at: String,
    pub onset: String,
    pub segment: Option<revloop_api::Segment>,
    pub baseline_rate: f64,
    pub observed_rate: f64,
    pub sigma: f64,
    pub n: i64,
    pub top_segments: Vec<TopSegment>,
}

#[derive(ToSchema)]
pub struct TopSegment {
    pub dimension: String,
    pub value: String,
    pub share: f64,
    pub traffic_share: f64,
}

/// `GET /api/v1/funnels/{id}/detector`: every conversion series now.
#[derive(ToSchema)]
pub struct DetectorState {
    pub funnel: String,
    pub judged_until: Option<String>,
    /// Where the funnel's judging stands, as `GET /api/v1/detector` lists it.
    pub state: revloop_api::detector::JudgingState,
    /// When judging went live: stamped after the warm-up finished.
    pub live_since: Option<String>,
    pub last_judged_minute: Option<String>,
    pub lag_seconds: Option<i64>,
    pub read_failures_total: u64,
    /// Present while the funnel is failing.
    pub failure: Option<revloop_api::detector::ReadFailure>,
    pub arl0_p2_minutes: Option<f64>,
    pub arl0_p1_minutes: Option<f64>,
    pub series: Vec<SeriesView>,
}

#[derive(ToSchema)]
pub struct SeriesView {
    pub stage: String,
    pub next_stage: String,
    pub segment: Option<revloop_api::Segment>,
    /// `learning`, `normal`, `too_few_shoppers`, `degenerate`, `improved`, `surge`,
    /// `baseline_suspect` (relearned today after alerting at this hour on several days: not
    /// judged until tomorrow), `alerting_p1` or `alerting_p2`.
    pub status: String,
    pub baseline_drop_off: Option<f64>,
    pub window_drop_off: Option<f64>,
    pub window_sd: Option<f64>,
    pub window_sigma: Option<f64>,
    pub expected_shoppers_per_minute: Option<f64>,
    pub overdispersion: Option<f64>,
    pub cusum_p2: Option<f64>,
    pub threshold_p2: Option<f64>,
    pub cusum_p1: Option<f64>,
    pub threshold_p1: Option<f64>,
}

// ---------------------------------------------------------------------------------------------
// Ingest request bodies, as Segment's HTTP tracking API defines them. Only what revloop reads
// is named; a message may carry anything else.

/// One Segment call (`/v1/track`, `/v1/page`, ...). revloop reads the paths its config names;
/// docs/ingest.md lists what it refuses.
#[derive(ToSchema)]
#[allow(non_snake_case, dead_code)]
pub struct SegmentMessage {
    /// `track`, `page`, `screen`, `identify`, `group` or `alias`: needed in a batch, implied
    /// by the path of a single call.
    pub r#type: Option<String>,
    /// A track call's event name.
    pub event: Option<String>,
    /// A page's or screen's name.
    pub name: Option<String>,
    pub userId: Option<Value>,
    pub anonymousId: Option<Value>,
    /// Deduplicates the message; without one, its content does.
    pub messageId: Option<String>,
    /// RFC 3339.
    pub timestamp: Option<String>,
    /// RFC 3339: when the client sent it, to correct its clock's skew.
    pub sentAt: Option<String>,
    pub properties: Option<BTreeMap<String, Value>>,
    pub context: Option<BTreeMap<String, Value>>,
    /// The write key, when not in the Authorization header.
    pub writeKey: Option<String>,
}

/// `POST /v1/batch`.
#[derive(ToSchema)]
#[allow(non_snake_case, dead_code)]
pub struct SegmentBatch {
    /// At most 2,500 messages.
    #[schema(value_type = Vec<SegmentMessage>)]
    pub batch: Vec<Value>,
    pub sentAt: Option<String>,
    pub context: Option<BTreeMap<String, Value>>,
    pub writeKey: Option<String>,
}

/// One pre-aggregated count record.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct CountRecord {
    pub funnel: String,
    pub stage: String,
    /// RFC 3339, on a minute.
    pub window_start: String,
    /// A whole number of minutes, up to a day.
    pub window_s: i64,
    pub count: i64,
    /// Dimension name to value.
    pub dimensions: Option<BTreeMap<String, Value>>,
    /// An amount in the shop currency, e.g. `"1234.50"`.
    pub revenue: Option<Value>,
    /// Deduplicates the record; re-sent with another body, it is refused (409).
    pub id: Option<String>,
}

/// `POST /api/v1/counts` as JSON (NDJSON of records is taken too).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct CountsBody {
    /// At most 10,000 records.
    pub counts: Vec<CountRecord>,
}

// ---------------------------------------------------------------------------------------------
// The ingest operations: one route handler serves them all (`api::ingest::ingest_route`), so
// each is declared on a stub here.

macro_rules! ingest_operation {
    ($fn:ident, $path:literal, $summary:literal, $body:ty, $media:literal, $batched:literal $(, $extra:tt)*) => {
        #[doc = $summary]
        #[utoipa::path(
            post, path = $path, tag = "ingest",
            request_body(content = $body, content_type = $media),
            responses(
                (status = 200, description = $batched, body = IngestReply),
                (status = 400, description = "Malformed: JSON, encoding, envelope, or (for a single call or counts) an invalid message", body = ErrorBody),
                (status = 413, description = "The body or a message is over its limit", body = ErrorBody),
                (status = 415, description = "A `Content-Encoding` other than gzip", body = ErrorBody),
                $($extra,)*
            ),
            security(("write_key" = ["ingest"]), ("api_token" = ["ingest"]), ()),
        )]
        #[allow(dead_code)]
        fn $fn() {}
    };
}

ingest_operation!(
    track,
    "/v1/track",
    "Segment `track`: one event.",
    SegmentMessage,
    "application/json",
    "Counted (or a duplicate, late or ignored)"
);
ingest_operation!(
    page,
    "/v1/page",
    "Segment `page`.",
    SegmentMessage,
    "application/json",
    "Counted (or a duplicate, late or ignored)"
);
ingest_operation!(
    screen,
    "/v1/screen",
    "Segment `screen`.",
    SegmentMessage,
    "application/json",
    "Counted (or a duplicate, late or ignored)"
);
ingest_operation!(
    identify,
    "/v1/identify",
    "Segment `identify`: taken and ignored.",
    SegmentMessage,
    "application/json",
    "Taken (identify calls reach no stage)"
);
ingest_operation!(
    group,
    "/v1/group",
    "Segment `group`: taken and ignored.",
    SegmentMessage,
    "application/json",
    "Taken (group calls reach no stage)"
);
ingest_operation!(
    alias,
    "/v1/alias",
    "Segment `alias`: taken and ignored.",
    SegmentMessage,
    "application/json",
    "Taken (alias calls reach no stage)"
);
ingest_operation!(
    batch,
    "/v1/batch",
    "Segment `batch`: judged message by message.",
    SegmentBatch,
    "application/json",
    "Every valid message committed; the invalid ones listed in `rejections`"
);
ingest_operation!(
    bulk,
    "/api/v1/events/bulk",
    "NDJSON of Segment messages, judged line by line.",
    String,
    "application/x-ndjson",
    "Every valid line committed; the invalid ones listed in `rejections`"
);
ingest_operation!(
    counts,
    "/api/v1/counts",
    "Pre-aggregated counts, all or nothing.",
    CountsBody,
    "application/json",
    "Every record committed (or a duplicate)",
    (
        status = 409,
        description = "A record's id was recorded with another body; nothing was stored",
        body = ErrorBody
    )
);

// ---------------------------------------------------------------------------------------------
// The incident actions: one handler (`api::actions::act`) reads the action from the path, so
// each action is declared on a stub with its own body.

macro_rules! action_operation {
    ($fn:ident, $path:literal, $summary:literal, $body:ty) => {
        #[doc = $summary]
        #[utoipa::path(
            post, path = $path, tag = "incidents",
            params(("id" = u64, Path, example = 1, description = "The incident's id")),
            request_body(content = $body, content_type = "application/json"),
            responses(
                (status = 200, description = "The incident as it is after the action", body = Incident),
                (status = 400, description = "A field is missing, invalid, or not one this action takes", body = ErrorBody),
                (status = 404, description = "No such incident", body = ErrorBody),
                (status = 409, description = "The incident's state does not allow this action", body = ErrorBody),
                (status = 413, description = "The body is over 16 KiB", body = ErrorBody),
                (status = 415, description = "A `Content-Encoding` other than gzip", body = ErrorBody),
            ),
            security(("api_token" = ["responder"])),
        )]
        #[allow(dead_code)]
        fn $fn() {}
    };
}

action_operation!(
    acknowledge,
    "/api/v1/incidents/{id}/acknowledge",
    "Acknowledge: paging stops.",
    ReasonBody
);
action_operation!(
    note,
    "/api/v1/incidents/{id}/note",
    "Add a note to the timeline.",
    TextBody
);
action_operation!(
    scope,
    "/api/v1/incidents/{id}/scope",
    "Set the stage and segment as judged.",
    ScopeBody
);
action_operation!(
    severity,
    "/api/v1/incidents/{id}/severity",
    "Raise or lower the severity (lowering needs a reason).",
    SeverityBody
);
action_operation!(
    mitigate,
    "/api/v1/incidents/{id}/mitigate",
    "Record a mitigation.",
    MitigateBody
);
action_operation!(
    root_cause,
    "/api/v1/incidents/{id}/root-cause",
    "Record the root cause.",
    TextBody
);
action_operation!(
    action_items,
    "/api/v1/incidents/{id}/action-items",
    "Add an action item.",
    ActionItemBody
);
action_operation!(
    checklist,
    "/api/v1/incidents/{id}/checklist",
    "Tick a root-cause checklist item.",
    ChecklistBody
);
action_operation!(
    resolve,
    "/api/v1/incidents/{id}/resolve",
    "Resolve (`false_alarm: true`: as a false alarm, whose loss counts in no total).",
    ResolveBody
);
action_operation!(
    reopen,
    "/api/v1/incidents/{id}/reopen",
    "Reopen a resolved incident.",
    ReasonBody
);
