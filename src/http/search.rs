//! The search routes: thin adapters over [`crate::api::search`].
//!
//! - `POST /v1/search/rank`: order candidate documents (id + feature vector) by G, D or a blend.
//! - `POST /v1/search/feedback`: one impression or an array of them (a shown list with clicks
//!   or judgements); durable before acknowledged.
//! - `POST /v1/search/snapshots`: gate and publish the search trainer's candidate now.
//! - `GET /v1/search/model`: the live search pair and the trainer's status.

use axum::Json;
use axum::extract::{Request, State};
use serde_json::Value;

use crate::api::ErrorCode;
use crate::api::search::{
    self as api, Impression, IngestResponse, RankRequest, RankResponse, SearchInfo,
};
use crate::http::error::{ApiError, ErrorBody};
use crate::http::json::{JsonBody, read_body};
use crate::http::state::AppState;

/// A feature vector for the documentation's examples (the default `search.n_features`).
pub fn example_features(shift: f64) -> Vec<f64> {
    (0..46)
        .map(|f| ((f as f64 * 0.37 + shift) % 1.0 * 1000.0).round() / 1000.0)
        .collect()
}

/// `POST /v1/search/rank`.
#[utoipa::path(
    post,
    path = "/v1/search/rank",
    operation_id = "search_rank",
    tag = "search",
    summary = "Order a query's candidate documents",
    description = "Scores every candidate's feature vector with the live search pair and returns         them best first by G, D or the blend of their z-scored scores (`model`; default: the         snapshot's ranker, D for pairwise IRGAN). Each result carries both scores and G's policy         probability among the candidates. Equal scores keep the request's order.",
    request_body(
        content = RankRequest,
        content_type = "application/json",
        example = json!({"query": "q1", "documents": [
            {"id": "d1", "features": example_features(0.1)},
            {"id": "d2", "features": example_features(0.6)}
        ], "model": "discriminator", "k": 10}),
    ),
    responses(
        (status = 200, description = "The candidates, best first (the first `k`).", body = RankResponse),
        (status = 400, description = "Codes: `invalid_body` (not JSON, an unknown field, a wrong             type), `invalid_query` (empty or over-long query id), `empty_documents`,             `too_many_documents` (over `search.max_documents`), `invalid_document_id`,             `duplicate_document`, `feature_length` (not `search.n_features` features),             `non_finite_feature` (not a finite 32-bit number), `invalid_k` (k = 0).", body = ErrorBody),
        (status = 404, description = "Codes: `search_disabled` (`search.enabled = false`).", body = ErrorBody),
        (status = 413, description = "Codes: `body_too_large` (over `server.body_limit_bytes`).", body = ErrorBody),
        (status = 503, description = "Codes: `no_search_model` (nothing published yet; retry             after feedback or start with `search.initial_snapshot`).", body = ErrorBody),
    ),
)]
pub async fn rank(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<RankRequest>,
) -> Result<Json<RankResponse>, ApiError> {
    let search = api::service(&state)?;
    // Scoring a list is O(documents · parameters): small enough for the async worker at the
    // documented max_documents, but keep it off the reactor for large lists.
    let response = if req.documents.len() > 64 {
        tokio::task::spawn_blocking(move || api::rank(&search, req))
            .await
            .map_err(ApiError::internal)?
    } else {
        api::rank(&search, req)
    }?;
    Ok(Json(response))
}

/// `POST /v1/search/feedback`.
#[utoipa::path(
    post,
    path = "/v1/search/feedback",
    operation_id = "search_feedback",
    tag = "search",
    summary = "Log search impressions",
    description = "Appends impressions (a query, the documents shown with their feature vectors,         and per document a relevance `label` or a `clicked` flag) to the durable impression log;         the answer comes after they are committed. The body is one impression object or an         array of them. Impressions are idempotent on `id`. Invalid impressions are listed in         `rejected` while the valid ones are stored; if none is valid, nothing is stored and the         answer is a 400 naming the first problem. The search trainer learns from impressions         with at least one relevant document.",
    request_body(
        content = crate::http::openapi::ImpressionBatch,
        content_type = "application/json",
        example = json!([{"id": "imp-1", "query": "q1", "documents": [
            {"id": "d1", "features": example_features(0.1), "label": 2},
            {"id": "d2", "features": example_features(0.6), "clicked": false}
        ]}]),
    ),
    responses(
        (status = 200, description = "The valid impressions are durable.", body = IngestResponse),
        (status = 400, description = "Codes: `invalid_body` (not JSON, or neither an object nor             an array), `invalid_impression` (an impression of the wrong shape), `empty_batch`,             and when no impression is valid the first one's problem: `invalid_query`,             `invalid_id`, `empty_documents`, `too_many_documents`, `invalid_document_id`,             `duplicate_document`, `feature_length`, `non_finite_feature`, `invalid_label`             (a label above 31).", body = ErrorBody),
        (status = 404, description = "Codes: `search_disabled`.", body = ErrorBody),
        (status = 413, description = "Codes: `body_too_large`.", body = ErrorBody),
        (status = 503, description = "Codes: `storage_error` (the log could not be written;             nothing was acknowledged).", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
pub async fn feedback(
    State(state): State<AppState>,
    req: Request,
) -> Result<Json<IngestResponse>, ApiError> {
    let search = api::service(&state)?;
    let bytes = read_body(req, &state).await?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::bad_request(ErrorCode::InvalidBody, format!("invalid JSON body: {e}"))
    })?;
    let items = match value {
        Value::Array(items) => items,
        one @ Value::Object(_) => vec![one],
        _ => {
            return Err(ApiError::bad_request(
                ErrorCode::InvalidBody,
                "expected an impression object or an array of them",
            ));
        }
    };
    let impressions = items
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            serde_json::from_value::<Impression>(v).map_err(|e| {
                ApiError::bad_request(
                    ErrorCode::InvalidImpression,
                    format!("impressions[{i}]: {e}"),
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let out = tokio::task::spawn_blocking(move || api::ingest(&search, impressions))
        .await
        .map_err(ApiError::internal)??;
    Ok(Json(out))
}

/// The version a publish produced.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct SearchPublished {
    /// The new live search snapshot version.
    pub version: u64,
}

/// `POST /v1/search/snapshots`: 200 with the new version, or 409 with the gate's reason.
#[utoipa::path(
    post,
    path = "/v1/search/snapshots",
    operation_id = "search_publish",
    tag = "search",
    summary = "Publish the search candidate now",
    description = "Gates the search trainer's current candidate (finite parameters; hold-out         NDCG@10 of its ranker not below the live one's by more than `search.tolerance`) and         publishes it as the next version.",
    responses(
        (status = 200, description = "Published.", body = SearchPublished),
        (status = 404, description = "Codes: `search_disabled`.", body = ErrorBody),
        (status = 409, description = "Codes: `publish_refused` (not enough judged queries yet,             nothing new since the last publish, non-finite parameters, or worse than the live             pair; the message says which), `no_trainer` (a serving replica, role `serve`: publish on             the trainer).", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
pub async fn publish(State(state): State<AppState>) -> Result<Json<SearchPublished>, ApiError> {
    let search = api::service(&state)?;
    let version = api::publish(&search).await?;
    Ok(Json(SearchPublished { version }))
}

/// `GET /v1/search/model`.
#[utoipa::path(
    get,
    path = "/v1/search/model",
    operation_id = "search_model",
    tag = "search",
    summary = "The live search pair and its trainer",
    responses(
        (status = 200, description = "The live pair (null before the first publish) and the             trainer's counters.", body = SearchInfo),
        (status = 404, description = "Codes: `search_disabled`.", body = ErrorBody),
    ),
)]
pub async fn model(State(state): State<AppState>) -> Result<Json<SearchInfo>, ApiError> {
    let search = api::service(&state)?;
    Ok(Json(api::info(&search)))
}
