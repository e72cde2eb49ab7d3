//! The search routes: thin adapters over [`crate::online::search::SearchService`].
//!
//! - `POST /v1/search/rank`: order candidate documents (id + feature vector) by G, D or a blend.
//! - `POST /v1/search/feedback`: one impression or an array of them (a shown list with clicks
//!   or judgements); durable before acknowledged.
//! - `POST /v1/search/snapshots`: gate and publish the search trainer's candidate now.
//! - `GET /v1/search/model`: the live search pair and the trainer's status.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::http::error::ApiError;
use crate::http::json::{JsonBody, read_body};
use crate::http::state::AppState;
use crate::online::search::{
    IngestResponse, RankRequest, RankResponse, SearchApiError, SearchService,
};
use crate::store::impression_log::Impression;

impl From<SearchApiError> for ApiError {
    fn from(e: SearchApiError) -> Self {
        let status = if e.unavailable {
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            StatusCode::BAD_REQUEST
        };
        Self {
            status,
            code: e.code,
            message: e.message,
        }
    }
}

fn service(state: &AppState) -> Result<Arc<SearchService>, ApiError> {
    state.search.clone().ok_or_else(|| {
        ApiError::not_found(
            "search_disabled",
            "the search task is off on this service (search.enabled = false)",
        )
    })
}

/// `POST /v1/search/rank`.
pub async fn rank(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<RankRequest>,
) -> Result<Json<RankResponse>, ApiError> {
    let search = service(&state)?;
    // Scoring a list is O(documents · parameters): small enough for the async worker at the
    // documented max_documents, but keep it off the reactor for large lists.
    let response = if req.documents.len() > 64 {
        tokio::task::spawn_blocking(move || search.rank(&req))
            .await
            .map_err(ApiError::internal)?
    } else {
        search.rank(&req)
    }?;
    Ok(Json(response))
}

/// `POST /v1/search/feedback`.
pub async fn feedback(
    State(state): State<AppState>,
    req: Request,
) -> Result<Json<IngestResponse>, ApiError> {
    let search = service(&state)?;
    let bytes = read_body(req, &state).await?;
    let value: Value = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request("invalid_body", format!("invalid JSON body: {e}")))?;
    let items = match value {
        Value::Array(items) => items,
        one @ Value::Object(_) => vec![one],
        _ => {
            return Err(ApiError::bad_request(
                "invalid_body",
                "expected an impression object or an array of them",
            ));
        }
    };
    let impressions = items
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            serde_json::from_value::<Impression>(v).map_err(|e| {
                ApiError::bad_request("invalid_impression", format!("impressions[{i}]: {e}"))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let out = tokio::task::spawn_blocking(move || search.ingest(impressions))
        .await
        .map_err(ApiError::internal)??;
    Ok(Json(out))
}

/// `POST /v1/search/snapshots`: 200 with the new version, or 409 with the gate's reason.
pub async fn publish(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let search = service(&state)?;
    match search.publish().await {
        Ok(version) => Ok(Json(json!({ "version": version }))),
        Err(reason) => Err(ApiError {
            status: StatusCode::CONFLICT,
            code: "publish_refused",
            message: reason,
        }),
    }
}

/// `GET /v1/search/model`.
pub async fn model(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    Ok(Json(service(&state)?.info()))
}
