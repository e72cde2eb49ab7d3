//! The OpenAPI 3.1 document of the REST API, generated from the handlers' `#[utoipa::path]`
//! annotations and the request/response types, and served at `GET /openapi.json`.
//!
//! # Adding a route
//!
//! 1. Register it in [`crate::http::router::router`] as usual: `.route("/v1/…", post(m::h))`.
//! 2. Annotate the handler with `#[utoipa::path(...)]` (copy a neighbour's): method, path,
//!    params, request body, every response status with its body and the stable error codes it
//!    can carry (`Codes: \`code\`, …` in the description), and
//!    `security(("bearer" = []), ("api_key" = []))` if the route is behind the API key. Derive
//!    `utoipa::ToSchema` on the body types and return them from the handler (never a `json!`
//!    body: the document and the answer are then one definition).
//! 3. Add the handler to `paths(...)` of [`ApiDoc`] below: **one line**.
//!
//! What every route shares is added by [`Common`], not by the annotations: `408 timeout` and
//! `503 overloaded` (the middleware in `router.rs`), and `401 unauthorized` on operations with a
//! security requirement.
//!
//! `tests/it/openapi.rs` fails until the three agree: it compares the `(method, path)` pairs of
//! `src/http/router.rs` with this document in both directions, calls every documented
//! operation on the real router, and checks each answer's status, content type, body and error
//! code against the document; it also validates the document with `openapi-spec-validator`.

use std::sync::OnceLock;

use axum::Extension;
use axum::body::Bytes;
use axum::http::header;
use axum::response::IntoResponse;
use serde::Deserialize;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Ref, Type};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::tag::TagBuilder;
use utoipa::openapi::{ContentBuilder, Header, RefOr};
use utoipa::{IntoParams, Modify, OpenApi, ToSchema};

use crate::api::ModelChoice;
use crate::api::ServiceConfig;
use crate::http::error::ErrorBody;

/// The document's derive: every documented handler is listed in `paths(...)`.
#[derive(OpenApi)]
#[openapi(
    paths(
        crate::http::queries::recommendations,
        crate::http::queries::rank,
        crate::http::queries::similar,
        crate::http::feedback::post,
        crate::http::admin::model,
        crate::http::admin::list,
        crate::http::admin::publish,
        crate::http::admin::activate,
        crate::http::admin::pause,
        crate::http::admin::resume,
        crate::http::admin::healthz,
        crate::http::admin::readyz,
        crate::http::admin::metrics,
        crate::http::history::training,
        crate::http::history::traffic,
        crate::http::search::rank,
        crate::http::search::feedback,
        crate::http::search::publish,
        crate::http::search::model,
        serve,
    ),
    components(schemas(ErrorBody)),
    modifiers(&Common),
)]
pub struct ApiDoc;

/// The document as the annotations describe it, built once: shapes without the limits of a
/// configuration (see [`json`]).
pub fn document() -> &'static utoipa::openapi::OpenApi {
    static DOC: OnceLock<utoipa::openapi::OpenApi> = OnceLock::new();
    DOC.get_or_init(ApiDoc::openapi)
}

/// The document a service with `config` serves, as JSON text: [`document`] with the limits of
/// `config` set ([`crate::http::openapi_limits`]). Built once per router ([`Served`]).
pub fn json(config: &ServiceConfig) -> String {
    let mut doc = serde_json::to_value(document()).unwrap_or_else(|e| {
        // Unreachable: the document holds only strings, maps and JSON values.
        tracing::error!(error = %e, "cannot serialise the OpenAPI document");
        serde_json::Value::Null
    });
    let missing = crate::http::openapi_limits::apply(&mut doc, config);
    if !missing.is_empty() {
        // A unit test keeps this empty; a miss leaves that limit undocumented, not wrong.
        tracing::error!(?missing, "OpenAPI limits without a place in the document");
    }
    serde_json::to_string_pretty(&doc).unwrap_or_else(|_| String::from("{}"))
}

/// The document one router serves, built once at startup from the config in effect (so that
/// `GET /openapi.json` only copies bytes). Added to the router as an `Extension`.
#[derive(Debug, Clone)]
pub struct Served(Bytes);

impl Served {
    /// Builds the document for `config`.
    pub fn new(config: &ServiceConfig) -> Self {
        Self(Bytes::from(json(config)))
    }
}

/// `GET /openapi.json`: this document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    summary = "This OpenAPI document",
    responses(
        (status = 200, description = "The OpenAPI 3.1 document of this API, with the limits of \
            the configuration in effect.", body = Object, content_type = "application/json"),
    ),
)]
pub async fn serve(Extension(doc): Extension<Served>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], doc.0)
}

const DESCRIPTION: &str = "\
Recommendations from an IRGAN model pair: the generator G (a softmax policy over items) and the \
discriminator D (a sigmoid critic), or a blend of both; durable feedback that a background \
trainer learns from; gated, versioned snapshots that are hot-swapped.

**Errors.** Every error is JSON `{\"code\": ..., \"message\": ...}` (`ErrorBody`) with a stable \
`code`; each response lists the codes it can carry. Besides the documented responses, any path \
may answer `404 not_found` (no such route) or `405 method_not_allowed` (the path exists, not \
with this method), and every operation `408 timeout` (over `server.request_timeout_ms`) or \
`503 overloaded` (over `server.concurrency_limit` requests in flight, or the query pool's queue \
of `server.query_queue` full; with `Retry-After`).

**Authentication.** When `server.api_key` is set, the write and admin operations (those with a \
security requirement) need `Authorization: Bearer KEY` or `X-API-Key: KEY`, else `401 \
unauthorized`. With no key configured they are open: this document then lists the empty \
requirement `{}` first on each of them and no 401. Read routes are always open.

**Limits.** The ranges, lengths, enums and array sizes in the schemas are those of the \
configuration in effect (`server.max_k`, `feedback.types`, `feedback.max_events_per_request`, \
`search.n_features`, `search.max_documents`). Two rules no schema states: the documents of one \
search list have distinct ids (`duplicate_document`), and no body may exceed \
`server.body_limit_bytes` (`413 body_too_large`).";

/// Adds what the middleware does to every operation, the security schemes, the tags and the
/// info block.
#[derive(Debug)]
pub struct Common;

impl Modify for Common {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        doc.info.title = "irgan".into();
        doc.info.version = env!("CARGO_PKG_VERSION").into();
        doc.info.description = Some(DESCRIPTION.into());
        doc.tags = Some(
            [
                (
                    "rankings",
                    "Recommendations, re-ranking and similar items (open).",
                ),
                ("feedback", "User feedback events (API key)."),
                ("admin", "The live model, snapshots and training."),
                (
                    "search",
                    "Learning to rank on feature vectors: rank candidates, log impressions, \
                     the live search pair.",
                ),
                ("operations", "Probes, metrics and this document (open)."),
            ]
            .into_iter()
            .map(|(name, d)| TagBuilder::new().name(name).description(Some(d)).build())
            .collect(),
        );
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("`Authorization: Bearer KEY` with `server.api_key`."))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-API-Key",
                "`X-API-Key: KEY` with `server.api_key`.",
            ))),
        );
        for item in doc.paths.paths.values_mut() {
            for op in operations_mut(item) {
                if op.security.as_ref().is_some_and(|s| !s.is_empty()) {
                    add_error(
                        op,
                        "401",
                        "Codes: `unauthorized` (`server.api_key` is set and the request has \
                         neither `Authorization: Bearer KEY` nor `X-API-Key: KEY` with it).",
                    );
                }
                add_error(
                    op,
                    "408",
                    "Codes: `timeout` (the request took over `server.request_timeout_ms`).",
                );
                add_error(
                    op,
                    "503",
                    "Codes: `overloaded` (over `server.concurrency_limit` requests in flight, \
                     or the query pool's queue full; retry after `Retry-After` seconds).",
                );
            }
        }
    }
}

/// Every operation of a path item.
pub fn operations_mut(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.options,
        &mut item.head,
        &mut item.patch,
        &mut item.trace,
    ]
    .into_iter()
    .filter_map(Option::as_mut)
}

/// Documents an `ErrorBody` response with `status` on `op`, merged into an existing response
/// with that status: its description gets `codes` appended, and a non-error body becomes
/// "that body or an `ErrorBody`".
fn add_error(op: &mut Operation, status: &str, codes: &str) {
    let error_ref = || RefOr::Ref(Ref::from_schema_name("ErrorBody"));
    let retry_after = (status == "503").then(|| {
        Header::new(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(0)),
        )
    });
    match op.responses.responses.get_mut(status) {
        Some(RefOr::T(r)) => {
            r.description = format!("{} Or {}", r.description, lowercase_first(codes));
            let json = r.content.entry("application/json".into()).or_default();
            let is_error = matches!(&json.schema, Some(RefOr::Ref(x)) if x.ref_location.ends_with("/ErrorBody"));
            if !is_error {
                let mut one_of = OneOfBuilder::new();
                if let Some(s) = json.schema.take() {
                    one_of = one_of.item(s);
                }
                json.schema = Some(one_of.item(error_ref()).into());
            }
            if let Some(h) = retry_after {
                r.headers
                    .insert("Retry-After".into(), with_retry_description(h));
            }
        }
        Some(RefOr::Ref(_)) => {}
        None => {
            let mut r: ResponseBuilder = Response::builder().description(codes).content(
                "application/json",
                ContentBuilder::new().schema(Some(error_ref())).build(),
            );
            if let Some(h) = retry_after {
                r = r.header("Retry-After", with_retry_description(h));
            }
            op.responses
                .responses
                .insert(status.into(), r.build().into());
        }
    }
}

fn with_retry_description(mut h: Header) -> Header {
    h.description = Some("Seconds to wait before retrying (sent with error bodies).".into());
    h
}

fn lowercase_first(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_lowercase().chain(c).collect())
        .unwrap_or_default()
}

// ---- Query parameters (the handlers read them from a map; these types describe them) ----

/// Query parameters of `GET /v1/users/{user}/recommendations`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RecommendationsQuery {
    /// How many items: 1 to `server.max_k` (default 1000); default `server.default_k`
    /// (default 10).
    #[param(required = false, minimum = 1, example = 5)]
    pub k: usize,
    /// Which model ranks (ignored with `explore` > 0). ASCII case is ignored.
    #[param(required = false, default = "generator")]
    pub model: ModelChoice,
    /// Leave out the items the user has interacted with.
    #[param(required = false, default = true)]
    pub exclude_seen: bool,
    /// Temperature of G's policy to sample from instead of ranking (0 = rank). The result
    /// carries each item's first-draw `propensity`; `model` becomes `explore`.
    #[param(required = false, minimum = 0.0, default = 0.0, example = 0.5)]
    pub explore: f64,
    /// Seed of the exploration draw (default: the current time in ms). The same seed, user and
    /// snapshot give the same items.
    #[param(required = false, example = 7)]
    pub seed: u64,
}

/// Query parameters of `GET /v1/items/{item}/similar`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SimilarQuery {
    /// How many items: 1 to `server.max_k` (default 1000); default `server.default_k`
    /// (default 10).
    #[param(required = false, minimum = 1, example = 5)]
    pub k: usize,
    /// Whose item factors: G's, D's, or the mean of both cosines (`blend`). ASCII case is
    /// ignored.
    #[param(required = false, default = "generator")]
    pub model: ModelChoice,
}

// ---- The feedback request (the handler validates raw JSON values; this describes them) ----

/// An external user or item id: a string of 1 to 256 printable characters, or an integer
/// (stored as its decimal string).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum ExternalId {
    /// A string id.
    Text(String),
    /// An integer id.
    Integer(i64),
}

/// One feedback event.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(json!({"id": "e1", "user": "ann", "item": "i3", "type": "like"})))]
pub struct FeedbackEvent {
    /// Idempotency key: an event whose id is already logged is acknowledged as a duplicate and
    /// not stored again.
    pub id: Option<ExternalId>,
    /// External user id.
    pub user: ExternalId,
    /// External item id.
    pub item: ExternalId,
    /// Event type: one of the keys of `feedback.types` (in the default config `click`,
    /// `dislike`, `import`, `like`, `purchase`, `view`); its weight, scaled by `value`, adds to
    /// the (user, item) pair. Unknown types are rejected.
    #[serde(rename = "type")]
    pub kind: String,
    /// Scales the type's weight (|value| ≤ 1e6).
    #[schema(minimum = -1e6, maximum = 1e6)]
    pub value: Option<f64>,
    /// When it happened, in ms since the Unix epoch (default: when it was logged).
    pub timestamp: Option<i64>,
}

/// The JSON body of `POST /v1/feedback`: one event or an array of events. (As NDJSON, the
/// array's events one per line.)
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum FeedbackBatch {
    /// One event.
    One(FeedbackEvent),
    /// Several events, stored in order.
    Many(Vec<FeedbackEvent>),
}

// ---- The search feedback request ----

/// The body of `POST /v1/search/feedback`: one impression or an array of impressions.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum ImpressionBatch {
    /// One impression.
    One(crate::api::search::Impression),
    /// Several impressions, stored in order.
    Many(Vec<crate::api::search::Impression>),
}
