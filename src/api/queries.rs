//! Read operations: recommendations, rank, similar items.

use std::sync::Arc;

use bytes::Bytes;
use serde::Serialize;
use utoipa::ToSchema;

use crate::api::{AppState, Error, ErrorCode, ModelChoice};
use crate::model::blend::Standardiser;
use crate::online::batch::Ask;
use crate::online::live::Live;
use crate::online::query::{self, Scored, rows};
use crate::online::query_pool::PoolError;

/// Most candidates `POST /v1/rank` takes when `server.max_k` is below it.
pub const MAX_CANDIDATES: usize = 10_000;

/// One ranked item in a response (external id).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(as = ItemOut)]
pub struct RankedItem {
    /// External item id.
    pub item: String,
    /// Score of the model that ranked: G's log-probability, D's probability or the blend; the
    /// popularity for `popularity`; ln `propensity` for `explore`; a cosine for similar items.
    pub score: f64,
    /// G's log-probability (G's cosine for similar items).
    pub generator: f64,
    /// D's probability (D's cosine for similar items).
    pub discriminator: f64,
    /// Probability that exploration drew this item first (only with `explore`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub propensity: Option<f64>,
}

/// What [`recommend`] is asked.
#[derive(Debug, Clone, PartialEq)]
pub struct RecommendRequest {
    /// External user id.
    pub user: String,
    /// How many items; `None` = `server.default_k`. Must be in `1..=server.max_k`.
    pub k: Option<usize>,
    /// Which model ranks (ignored when exploring).
    pub model: ModelChoice,
    /// Leave out the items the user has interacted with.
    pub exclude_seen: bool,
    /// Exploration temperature (`0` = rank greedily); finite and `>= 0`.
    pub explore: f64,
    /// Seed of the exploration draw (`None` = the current time in ms).
    pub seed: Option<u64>,
}

/// A user's ranked list.
#[derive(Debug, Clone, PartialEq)]
pub struct Recommendations {
    /// External user id.
    pub user: String,
    /// What produced the list: a model name, `explore` or `popularity`.
    pub model: &'static str,
    /// Snapshot version every score came from.
    pub version: u64,
    /// The user is unknown to the model: popularity / prior results.
    pub cold_start: bool,
    /// Ranked items, best first.
    pub items: Vec<RankedItem>,
}

/// What [`rank`] is asked.
#[derive(Debug, Clone, PartialEq)]
pub struct RankRequest {
    /// External user id (optional).
    pub user: Option<String>,
    /// Candidate external item ids.
    pub items: Vec<String>,
    /// Which model ranks.
    pub model: ModelChoice,
}

/// Response of `POST /v1/rank`.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(as = RankOut)]
pub struct Ranked {
    /// The request's user, or null.
    #[schema(required = true)]
    pub user: Option<String>,
    /// The model that ranked.
    pub model: ModelChoice,
    /// Snapshot version every score came from.
    pub version: u64,
    /// No user, or one the model does not know: the zero user's scores.
    pub cold_start: bool,
    /// The known candidates, best first, each once.
    pub items: Vec<RankedItem>,
    /// Candidate ids that are not in the catalogue, in request order.
    pub unknown_items: Vec<String>,
}

/// What [`similar`] is asked.
#[derive(Debug, Clone, PartialEq)]
pub struct SimilarRequest {
    /// External item id.
    pub item: String,
    /// How many items; `None` = `server.default_k`.
    pub k: Option<usize>,
    /// Whose item factors.
    pub model: ModelChoice,
}

/// Response of `GET /v1/items/{item}/similar`. In each item, `score` is the chosen cosine and
/// `generator` / `discriminator` are the cosines in G's and D's factor space.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(as = SimilarOut)]
pub struct Similar {
    /// The query item.
    pub item: String,
    /// The model whose factors were compared.
    pub model: ModelChoice,
    /// Snapshot version.
    pub version: u64,
    /// The neighbours, most similar first.
    pub items: Vec<RankedItem>,
}

/// Parses a model name (`generator`, `discriminator`, `blend`; ASCII case ignored).
pub fn parse_model(name: &str) -> Result<ModelChoice, Error> {
    ModelChoice::parse(name)
}

/// `k`, or the default, checked against `server.max_k`.
fn k_of(state: &AppState, k: Option<usize>) -> Result<usize, Error> {
    let max = state.config.server.max_k;
    let k = k.unwrap_or(state.config.server.default_k);
    if k == 0 || k > max {
        return Err(Error::parameter(format!("k must be between 1 and {max}")));
    }
    Ok(k)
}

/// The pool's error as the API's: a full queue is `overloaded` (503 + `Retry-After`).
fn pool_error(e: PoolError) -> Error {
    match e {
        PoolError::Overloaded => Error::overloaded(),
        PoolError::Failed => Error::internal("the query failed"),
    }
}

fn items_out(live: &Live, scored: Vec<Scored>) -> Vec<RankedItem> {
    scored
        .into_iter()
        .map(|s| RankedItem {
            item: live.snapshot.items.name(s.item).to_string(),
            score: s.score,
            generator: s.generator,
            discriminator: s.discriminator,
            propensity: s.propensity,
        })
        .collect()
}

/// The top `k` items for a user from the live snapshot: by the chosen model, sampled from G's
/// policy when `explore > 0`, or by popularity for a user the snapshot does not know.
///
/// A cached answer (the user's top list by the model, the cold-start list) is returned at once;
/// anything else is computed on the query pool, batched with other requests.
pub async fn recommend(state: &AppState, req: RecommendRequest) -> Result<Recommendations, Error> {
    recommend_on(state, state.models.current(), req).await
}

/// [`recommend`] on the snapshot `live` (every score comes from it).
pub async fn recommend_on(
    state: &AppState,
    live: Arc<Live>,
    req: RecommendRequest,
) -> Result<Recommendations, Error> {
    let k = k_of(state, req.k)?;
    if !(req.explore.is_finite() && req.explore >= 0.0) {
        return Err(Error::parameter("explore must be a temperature >= 0"));
    }
    if req.user.is_empty() {
        return Err(Error::parameter("user must not be empty"));
    }
    let index = known_user(&live, &req.user);
    let model = query::ModelChoice::from(req.model);
    let pool = &state.queries;
    let (scored, label) = if req.explore > 0.0 {
        let ask = Ask::Explore {
            user: index,
            k,
            temperature: req.explore,
            seed: req.seed.unwrap_or_else(crate::store::Snapshot::now_unix_ms),
            exclude_seen: req.exclude_seen,
        };
        (pool.ask(live.clone(), ask).await, "explore")
    } else if let Some(user) = index {
        let cached = req
            .exclude_seen
            .then(|| live.cached_top(user, model, k))
            .flatten();
        let scored = match cached {
            Some(top) => Ok(top),
            None => {
                let ask = Ask::Top {
                    user,
                    model,
                    k,
                    exclude_seen: req.exclude_seen,
                };
                pool.ask(live.clone(), ask).await
            }
        };
        (scored, model.as_str())
    } else {
        let scored = match live.cold_start_ready(k) {
            Some(list) => Ok(list.to_vec()),
            None => {
                let l = live.clone();
                pool.run(move || l.cold_start_list()[..k.min(l.cold_start_list().len())].to_vec())
                    .await
            }
        };
        (scored, "popularity")
    };
    Ok(Recommendations {
        user: req.user,
        model: label,
        version: live.version(),
        cold_start: index.is_none(),
        items: items_out(&live, scored.map_err(pool_error)?),
    })
}

/// The index of `user` when the snapshot has rows for them (otherwise a cold start).
fn known_user(live: &Live, user: &str) -> Option<u32> {
    let m = live.query_model();
    live.snapshot.users.get(user).filter(|&u| m.knows_user(u))
}

/// The default answer to `req` (G's top `k`, seen excluded, no exploration) for a known user
/// whose list `live` has cached, as [`render_items`] writes its items; rendered once per user and
/// snapshot and kept (see [`Live::rendered`]), so repeats cost a copy. `None` for any other
/// request, or when the list is not cached yet: answer those with [`recommend_on`].
pub fn rendered_default(state: &AppState, live: &Live, req: &RecommendRequest) -> Option<Bytes> {
    let default_form =
        req.model == ModelChoice::Generator && req.exclude_seen && req.explore == 0.0;
    let k = k_of(state, req.k).ok().filter(|_| default_form)?;
    let user = known_user(live, &req.user)?;
    if let Some(bytes) = live.rendered(user, k) {
        return Some(bytes);
    }
    live.note_asked_k(k);
    let top = live.cached_top(user, query::ModelChoice::Generator, k)?;
    let bytes = render_items(live, top)?;
    live.keep_rendered(user, k, bytes.clone());
    Some(bytes)
}

/// The JSON array of `top`'s items as the ranking routes write it: what
/// [`rendered_default`] keeps, and the renderer the service registers for fills to render
/// answers ahead ([`crate::online::live::set_renderer`]).
pub fn render_items(live: &Live, top: Vec<Scored>) -> Option<Bytes> {
    serde_json::to_vec(&items_out(live, top))
        .ok()
        .map(Bytes::from)
}

/// Orders the given candidates for a user (or the zero user); unknown items are listed
/// separately. Only the candidates are scored (on the query pool), with the user's G
/// normaliser and blend standardisers cached per snapshot.
pub async fn rank(state: &AppState, req: RankRequest) -> Result<Ranked, Error> {
    if req.items.is_empty() {
        return Err(Error::invalid(
            ErrorCode::InvalidBody,
            "items must not be empty",
        ));
    }
    if req.items.len() > state.config.server.max_k.max(MAX_CANDIDATES) {
        return Err(Error::invalid(
            ErrorCode::InvalidBody,
            "too many candidate items",
        ));
    }
    let live = state.models.current();
    let mut unknown = Vec::new();
    let candidates: Vec<u32> = req
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
    let user = req.user.as_deref().and_then(|u| known_user(&live, u));
    let model = query::ModelChoice::from(req.model);
    let l = live.clone();
    let scored = state
        .queries
        .run(move || {
            let m = l.query_model();
            let r = rows::UserRows {
                user,
                g: None,
                d: None,
                normaliser: l.normaliser(&m, user),
                d_finite: false,
            };
            let stats = match model {
                query::ModelChoice::Blend => l.blend_stats(&m, user, None),
                _ => (Standardiser::ZERO, Standardiser::ZERO),
            };
            rows::rank(&m, &r, &candidates, model, stats)
        })
        .await
        .map_err(pool_error)?;
    Ok(Ranked {
        user: req.user,
        model: req.model,
        version: live.version(),
        cold_start: user.is_none(),
        items: items_out(&live, scored),
        unknown_items: unknown,
    })
}

/// The `k` items most similar to an item of the catalogue (computed on the query pool).
pub async fn similar(state: &AppState, req: SimilarRequest) -> Result<Similar, Error> {
    let k = k_of(state, req.k)?;
    let live = state.models.current();
    let Some(i) = live.snapshot.items.get(&req.item) else {
        return Err(Error::not_found(
            ErrorCode::UnknownItem,
            format!("item {:?} is not in the catalogue", req.item),
        ));
    };
    let model = query::ModelChoice::from(req.model);
    let l = live.clone();
    let scored = state
        .queries
        .run(move || query::similar(&l.query_model(), i, k, model))
        .await
        .map_err(pool_error)?;
    Ok(Similar {
        item: req.item,
        model: req.model,
        version: live.version(),
        items: items_out(&live, scored),
    })
}
