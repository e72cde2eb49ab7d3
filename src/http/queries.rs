//! Read routes: recommendations, rank, similar items.

use std::io::Write;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{Uri, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::queries::{self as api, Ranked, RankedItem, Similar};
use crate::api::{ErrorCode, ModelChoice};
use crate::http::chunks::Chunks;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::json::JsonBody;
use crate::http::query_string::QueryString;
use crate::http::state::AppState;

/// Response of the ranking routes.
#[derive(Debug, Serialize, ToSchema)]
pub struct RankingOut {
    /// External user id, when the request had one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Which model ranked: `generator`, `discriminator`, `blend`, `popularity` (cold start) or
    /// `explore` (sampled).
    pub model: String,
    /// Snapshot version every score came from.
    pub version: u64,
    /// The user is unknown to the model: popularity / prior results.
    pub cold_start: bool,
    /// Ranked items, best first.
    pub items: Vec<RankedItem>,
}

/// The path parameter, or the API error for an undecodable one.
pub fn path_param(p: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    p.map(|Path(v)| v)
        .map_err(|e| ApiError::bad_request(ErrorCode::InvalidPath, e.body_text()))
}

fn model_of(q: &QueryString<'_>) -> Result<ModelChoice, ApiError> {
    match q.get("model") {
        Some(name) => Ok(api::parse_model(name)?),
        None => Ok(ModelChoice::default()),
    }
}

/// `GET /v1/users/{user}/recommendations?k=&model=&exclude_seen=&explore=&seed=`
#[utoipa::path(
    get,
    path = "/v1/users/{user}/recommendations",
    tag = "rankings",
    summary = "Top k items for a user",
    description = "The user's top `k` items from G, D or the blend (`model`), or `k` items \
        sampled from G's policy with their propensities (`explore` > 0). A user the live model \
        does not know gets the most popular items (`cold_start: true`, `model: \"popularity\"`; \
        with `explore`, G's prior is sampled). Every score comes from one snapshot (`version`).",
    params(
        ("user" = String, Path, description = "External user id (any string; unknown users are cold starts)."),
        crate::http::openapi::RecommendationsQuery,
    ),
    responses(
        (status = 200, description = "The ranking, best first (in draw order with `explore`).", body = RankingOut),
        (status = 400, description = "Codes: `invalid_path` (the user id is not valid UTF-8 after \
            percent-decoding), `invalid_query` (the query string cannot be decoded), \
            `invalid_parameter` (`k` outside 1..=`server.max_k`, an unknown `model`, a negative \
            or non-finite `explore`, or a value that does not parse).", body = ErrorBody),
    ),
)]
pub async fn recommendations(
    State(state): State<AppState>,
    user: Result<Path<String>, PathRejection>,
    uri: Uri,
) -> Result<Response, ApiError> {
    let user = path_param(user)?;
    let q = QueryString::of(&uri)?;
    let req = api::RecommendRequest {
        user,
        k: q.parse::<usize>("k")?,
        model: model_of(&q)?,
        exclude_seen: q.parse::<bool>("exclude_seen")?.unwrap_or(true),
        explore: q.parse::<f64>("explore")?.unwrap_or(0.0),
        seed: q.parse::<u64>("seed")?,
    };
    // One snapshot from start to end: G and D never mix versions.
    let live = state.models.current();
    if let Some(items) = api::rendered_default(&state, &live, &req) {
        let model = ModelChoice::Generator.as_str();
        return Ok(ranking_body(&req.user, model, live.version(), false, items));
    }
    let r = api::recommend_on(&state, live, req).await?;
    let items = serde_json::to_vec(&r.items)
        .map_err(|e| ApiError::internal(format!("cannot write the answer: {e}")))?;
    Ok(ranking_body(
        &r.user,
        r.model,
        r.version,
        r.cold_start,
        Bytes::from(items),
    ))
}

/// A [`RankingOut`] answer around `items`, a JSON array already written: the same bytes as
/// serialising the struct, without formatting the items again. The items go out as their own
/// chunk, so kept answers are not copied.
fn ranking_body(user: &str, model: &str, version: u64, cold_start: bool, items: Bytes) -> Response {
    let mut head = Vec::with_capacity(user.len() + 96);
    head.extend_from_slice(b"{\"user\":");
    // Writing a string into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut head, user);
    head.extend_from_slice(b",\"model\":");
    let _ = serde_json::to_writer(&mut head, model);
    let _ = write!(
        head,
        ",\"version\":{version},\"cold_start\":{cold_start},\"items\":"
    );
    let body = Chunks::new([Bytes::from(head), items, Bytes::from_static(b"}")]);
    (
        [(header::CONTENT_TYPE, "application/json")],
        Body::new(body),
    )
        .into_response()
}

/// Body of `POST /v1/rank`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RankIn {
    /// External user id (optional).
    pub user: Option<String>,
    /// Candidate external item ids.
    pub items: Vec<String>,
    /// `generator`, `discriminator` or `blend`.
    #[serde(default)]
    pub model: ModelChoice,
}

/// `POST /v1/rank`: orders the given candidates; unknown items are listed separately.
#[utoipa::path(
    post,
    path = "/v1/rank",
    tag = "rankings",
    summary = "Order given candidate items",
    description = "Orders the candidates by the chosen model's score for the user (or for the \
        zero user when the user is absent or unknown, `cold_start: true`). Duplicates are \
        listed once; ids not in the catalogue are returned in `unknown_items`.",
    request_body(
        content = RankIn,
        content_type = "application/json",
        example = json!({"user": "u3", "items": ["i3", "i8", "i1", "i42"], "model": "blend"}),
    ),
    responses(
        (status = 200, description = "The candidates, best first.", body = Ranked),
        (status = 400, description = "Codes: `invalid_body` (not JSON, an unknown field, a wrong \
            type, no `items`, an empty `items` list, or more than max(`server.max_k`, 10000) items).", body = ErrorBody),
        (status = 413, description = "Codes: `body_too_large` (over `server.body_limit_bytes`).", body = ErrorBody),
    ),
)]
pub async fn rank(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<RankIn>,
) -> Result<Json<Ranked>, ApiError> {
    let r = api::rank(
        &state,
        api::RankRequest {
            user: body.user,
            items: body.items,
            model: body.model,
        },
    )
    .await?;
    Ok(Json(r))
}

/// `GET /v1/items/{item}/similar?k=&model=`
#[utoipa::path(
    get,
    path = "/v1/items/{item}/similar",
    tag = "rankings",
    summary = "Items similar to an item",
    description = "The `k` items whose factor rows are most similar (cosine) to the item's, in \
        G's space, D's space or the mean of both (`model = blend`); the item itself is excluded.",
    params(
        ("item" = String, Path, description = "External item id."),
        crate::http::openapi::SimilarQuery,
    ),
    responses(
        (status = 200, description = "The neighbours, most similar first.", body = Similar),
        (status = 400, description = "Codes: `invalid_path`, `invalid_query`, `invalid_parameter` \
            (as for recommendations).", body = ErrorBody),
        (status = 404, description = "Codes: `unknown_item` (the item is not in the live catalogue).", body = ErrorBody),
    ),
)]
pub async fn similar(
    State(state): State<AppState>,
    item: Result<Path<String>, PathRejection>,
    uri: Uri,
) -> Result<Json<Similar>, ApiError> {
    let item = path_param(item)?;
    let q = QueryString::of(&uri)?;
    let req = api::SimilarRequest {
        item,
        k: q.parse::<usize>("k")?,
        model: model_of(&q)?,
    };
    let r = api::similar(&state, req).await?;
    Ok(Json(r))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    /// The hand-written envelope is byte for byte the serialised [`RankingOut`], escapes included.
    #[tokio::test]
    async fn the_ranking_body_is_the_serialised_struct() {
        let items = vec![RankedItem {
            item: "i\"7".into(),
            score: -1.25,
            generator: -1.25,
            discriminator: 0.5,
            propensity: None,
        }];
        for (user, cold) in [("u1", false), ("ü \"quoted\"\n", true)] {
            let out = RankingOut {
                user: Some(user.into()),
                model: "generator".into(),
                version: 42,
                cold_start: cold,
                items: items.clone(),
            };
            let expected = serde_json::to_vec(&out).unwrap();
            let rendered = serde_json::to_vec(&items).unwrap();
            let response = ranking_body(user, "generator", 42, cold, Bytes::from(rendered));
            let ct = response.headers()[header::CONTENT_TYPE].clone();
            assert_eq!(ct, "application/json");
            let body = response.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(body.as_ref(), expected.as_slice());
        }
    }
}
