//! Read routes: recommendations, rank, similar items.

use std::collections::HashMap;

use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use serde::{Deserialize, Serialize};

use crate::http::error::ApiError;
use crate::http::json::JsonBody;
use crate::http::state::AppState;
use crate::online::live::Live;
use crate::online::query::{self, ModelChoice, QueryModel, Scored};

/// One ranked item in a response (external id).
#[derive(Debug, Serialize)]
pub struct ItemOut {
    /// External item id.
    pub item: String,
    /// Score of the model that ranked.
    pub score: f64,
    /// G's log-probability.
    pub generator: f64,
    /// D's probability.
    pub discriminator: f64,
    /// Probability that exploration drew this item first (only with `explore`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub propensity: Option<f64>,
}

/// Response of the ranking routes.
#[derive(Debug, Serialize)]
pub struct RankingOut {
    /// External user id, when the request had one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Which model ranked (`explore` for sampled results).
    pub model: String,
    /// Snapshot version every score came from.
    pub version: u64,
    /// The user is unknown to the model: popularity / prior results.
    pub cold_start: bool,
    /// Ranked items, best first.
    pub items: Vec<ItemOut>,
}

fn items_out(live: &Live, scored: Vec<Scored>) -> Vec<ItemOut> {
    scored
        .into_iter()
        .map(|s| ItemOut {
            item: live.snapshot.items.name(s.item).to_string(),
            score: s.score,
            generator: s.generator,
            discriminator: s.discriminator,
            propensity: s.propensity,
        })
        .collect()
}

/// The path parameter, or the API error for an undecodable one.
pub fn path_param(p: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    p.map(|Path(v)| v)
        .map_err(|e| ApiError::bad_request("invalid_path", e.body_text()))
}

fn params(
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<HashMap<String, String>, ApiError> {
    q.map(|Query(m)| m)
        .map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))
}

fn parse<T: std::str::FromStr>(
    p: &HashMap<String, String>,
    key: &str,
) -> Result<Option<T>, ApiError>
where
    T::Err: std::fmt::Display,
{
    p.get(key)
        .map(|v| {
            v.parse::<T>()
                .map_err(|e| ApiError::bad_request("invalid_parameter", format!("{key}: {e}")))
        })
        .transpose()
}

fn k_of(state: &AppState, p: &HashMap<String, String>) -> Result<usize, ApiError> {
    let max = state.config.server.max_k;
    let k = parse::<usize>(p, "k")?.unwrap_or(state.config.server.default_k);
    if k == 0 || k > max {
        return Err(ApiError::bad_request(
            "invalid_parameter",
            format!("k must be between 1 and {max}"),
        ));
    }
    Ok(k)
}

fn model_of(p: &HashMap<String, String>) -> Result<ModelChoice, ApiError> {
    Ok(parse::<ModelChoice>(p, "model")?.unwrap_or_default())
}

fn query_model<'a>(state: &AppState, live: &'a Live) -> QueryModel<'a> {
    QueryModel::from_snapshot(
        &live.snapshot,
        state.config.server.blend_weight,
        &live.popularity,
    )
}

/// `GET /v1/users/{user}/recommendations?k=&model=&exclude_seen=&explore=&seed=`
pub async fn recommendations(
    State(state): State<AppState>,
    user: Result<Path<String>, PathRejection>,
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Json<RankingOut>, ApiError> {
    let user = path_param(user)?;
    let p = params(q)?;
    let k = k_of(&state, &p)?;
    let model = model_of(&p)?;
    let exclude_seen = parse::<bool>(&p, "exclude_seen")?.unwrap_or(true);
    let explore = parse::<f64>(&p, "explore")?.unwrap_or(0.0);
    if !(explore.is_finite() && explore >= 0.0) {
        return Err(ApiError::bad_request(
            "invalid_parameter",
            "explore must be a temperature >= 0",
        ));
    }
    let seed = parse::<u64>(&p, "seed")?;
    // One snapshot from start to end: G and D never mix versions.
    let live = state.models.current();
    let m = query_model(&state, &live);
    let index = live.snapshot.users.get(&user).filter(|&u| m.knows_user(u));
    let exclude: &[u32] = match index {
        Some(u) if exclude_seen => live.seen.items(u as usize),
        _ => &[],
    };
    let (scored, label) = if explore > 0.0 {
        let seed = seed.unwrap_or_else(crate::store::Snapshot::now_unix_ms);
        let u = index.unwrap_or(u32::MAX); // unknown users explore G's prior
        (query::explore(&m, u, k, explore, seed, exclude), "explore")
    } else if let Some(u) = index {
        let cached = (model == ModelChoice::Generator && exclude_seen)
            .then(|| live.precomputed_top(u, k))
            .flatten();
        match cached {
            Some(top) => (top.to_vec(), model.as_str()),
            None => (query::recommend(&m, u, k, model, exclude), model.as_str()),
        }
    } else {
        (query::cold_start(&m, k, &[]), "popularity")
    };
    Ok(Json(RankingOut {
        user: Some(user),
        model: label.to_string(),
        version: live.version(),
        cold_start: index.is_none(),
        items: items_out(&live, scored),
    }))
}

/// Body of `POST /v1/rank`.
#[derive(Debug, Deserialize)]
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
pub async fn rank(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<RankIn>,
) -> Result<Json<serde_json::Value>, ApiError> {
    if body.items.is_empty() {
        return Err(ApiError::bad_request(
            "invalid_body",
            "items must not be empty",
        ));
    }
    if body.items.len() > state.config.server.max_k.max(10_000) {
        return Err(ApiError::bad_request(
            "invalid_body",
            "too many candidate items",
        ));
    }
    let live = state.models.current();
    let m = query_model(&state, &live);
    let mut unknown = Vec::new();
    let candidates: Vec<u32> = body
        .items
        .iter()
        .filter_map(|id| {
            let i = live.snapshot.items.get(id);
            if i.is_none() {
                unknown.push(id.clone());
            }
            i
        })
        .collect();
    let user = body
        .user
        .as_deref()
        .and_then(|u| live.snapshot.users.get(u))
        .filter(|&u| m.knows_user(u));
    let scored = query::rank(&m, user, &candidates, body.model);
    Ok(Json(serde_json::json!({
        "user": body.user,
        "model": body.model,
        "version": live.version(),
        "cold_start": user.is_none(),
        "items": items_out(&live, scored),
        "unknown_items": unknown,
    })))
}

/// `GET /v1/items/{item}/similar?k=&model=`
pub async fn similar(
    State(state): State<AppState>,
    item: Result<Path<String>, PathRejection>,
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let item = path_param(item)?;
    let p = params(q)?;
    let k = k_of(&state, &p)?;
    let model = model_of(&p)?;
    let live = state.models.current();
    let Some(i) = live.snapshot.items.get(&item) else {
        return Err(ApiError::not_found(
            "unknown_item",
            format!("item {item:?} is not in the catalogue"),
        ));
    };
    let m = query_model(&state, &live);
    let scored = query::similar(&m, i, k, model);
    Ok(Json(serde_json::json!({
        "item": item,
        "model": model,
        "version": live.version(),
        "items": items_out(&live, scored),
    })))
}
