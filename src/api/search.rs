//! The search operations (`/v1/search/*`): the wire types of a search request and answer,
//! and the calls into [`SearchService`] that map its domain types to them.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::api::{AppState, Error, ErrorCode, ErrorKind, ModelChoice};
/// The largest relevance label an impression may carry.
pub use crate::data::letor::MAX_LABEL;
use crate::online::search::{self as domain, SearchFailure, SearchPublishError, SearchService};
use crate::store::impression_log as log;

/// A candidate document to rank.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CandidateDocument {
    /// Caller's document id.
    pub id: String,
    /// Feature vector of length `search.n_features` (each finite and within f32 range).
    pub features: Vec<f64>,
}

/// `POST /v1/search/rank`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RankRequest {
    /// The query id (logged with feedback; not used for scoring).
    pub query: String,
    /// The candidates.
    pub documents: Vec<CandidateDocument>,
    /// `generator`, `discriminator` or `blend` (default: the snapshot's ranker).
    #[serde(default)]
    #[schema(required = false)]
    pub model: Option<ModelChoice>,
    /// Return only the first `k` (default: all).
    #[serde(default, deserialize_with = "crate::api::integral::option")]
    #[schema(required = false, minimum = 1)]
    pub k: Option<usize>,
}

/// One ranked document.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct RankedDocument {
    /// Caller's document id.
    pub id: String,
    /// The score the list is ordered by.
    pub score: f64,
    /// G's score.
    pub generator_score: f64,
    /// D's score (logit of D's relevance probability).
    pub discriminator_score: f64,
    /// G's policy probability of this document among the given candidates.
    pub generator_probability: f64,
}

/// The ranked list.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct RankResponse {
    /// The query id, echoed.
    pub query: String,
    /// Which model ordered the list.
    pub model: ModelChoice,
    /// Version of the snapshot that scored it.
    pub version: u64,
    /// Documents, best first.
    pub results: Vec<RankedDocument>,
}

/// One shown document.
#[derive(Debug, Clone, Deserialize, PartialEq, ToSchema)]
pub struct ShownDocument {
    /// Caller's document id.
    pub id: String,
    /// Its feature vector (checked to fit f32 before it is logged).
    pub features: Vec<f64>,
    /// Graded relevance judgement (takes precedence over `clicked`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::api::integral::option"
    )]
    pub label: Option<u8>,
    /// Whether the user clicked it (a click is relevance 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clicked: Option<bool>,
}

/// One impression: a query and the documents shown for it, in display order.
#[derive(Debug, Clone, Deserialize, PartialEq, ToSchema)]
pub struct Impression {
    /// Idempotency key (optional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The query id.
    pub query: String,
    /// The shown documents.
    pub documents: Vec<ShownDocument>,
}

/// One rejected impression of a feedback batch.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct RejectedImpression {
    /// Position in the request (0-based).
    pub index: usize,
    /// Stable code.
    #[schema(value_type = String)]
    pub code: ErrorCode,
    /// What is wrong.
    pub message: String,
}

/// Outcome of a feedback batch.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct IngestResponse {
    /// Impressions now durable.
    pub accepted: usize,
    /// Impressions whose id was already logged.
    pub duplicates: usize,
    /// Invalid impressions; the valid ones were kept.
    pub rejected: Vec<RejectedImpression>,
    /// Log position of the last accepted impression (0 if none).
    pub last_seq: u64,
}

/// What the search trainer is doing.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct SearchTrainerStatus {
    /// Impressions the trainer has read.
    pub impressions_seen: u64,
    /// Queries it trains on.
    pub train_queries: usize,
    /// Queries held out for the gate.
    pub holdout_queries: usize,
    /// Trainer steps so far.
    pub steps: u64,
    /// Publishes so far.
    pub published: u64,
    /// Refused candidates so far.
    pub refused: u64,
    /// Why the last candidate was refused, if it was.
    pub last_refusal: Option<String>,
    /// Hold-out metrics of the live pair at its publication.
    #[schema(value_type = Option<Object>)]
    pub live_holdout: Option<Value>,
    /// The trainer runs (false while a failed restart waits to be retried, or once stopped).
    pub up: bool,
    /// Restarts from the live pair after a panic or failure.
    pub restarts: u64,
    /// The last panic or failure, if any.
    pub last_failure: Option<String>,
}

/// The live search pair.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LiveSearchModel {
    /// Snapshot version.
    pub version: u64,
    /// Creation time, ms since the Unix epoch.
    pub created_unix_ms: u64,
    /// The model `rank` uses by default.
    pub ranker: ModelChoice,
    /// Feature vector length.
    pub n_features: usize,
    /// G's architecture, e.g. `{"kind": "mlp", "hidden": 46, "activation": "tanh"}`.
    #[schema(value_type = Object)]
    pub generator: Value,
    /// D's architecture.
    #[schema(value_type = Object)]
    pub discriminator: Value,
    /// G's softmax temperature.
    pub temperature: f32,
    /// Method, ranker and hold-out metrics at publication.
    #[schema(value_type = Object)]
    pub metadata: Value,
}

/// `GET /v1/search/model`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SearchInfo {
    /// The training method (`irgan_pointwise` or `irgan_pairwise`).
    pub method: String,
    /// Feature vector length every request must have.
    pub n_features: usize,
    /// The live pair (null until the first publish).
    pub live: Option<LiveSearchModel>,
    /// The trainer.
    pub trainer: SearchTrainerStatus,
}

/// The stable code of a search failure.
fn code_of(f: SearchFailure) -> ErrorCode {
    match f {
        SearchFailure::InvalidQuery => ErrorCode::InvalidQuery,
        SearchFailure::InvalidId => ErrorCode::InvalidId,
        SearchFailure::EmptyDocuments => ErrorCode::EmptyDocuments,
        SearchFailure::TooManyDocuments => ErrorCode::TooManyDocuments,
        SearchFailure::InvalidDocumentId => ErrorCode::InvalidDocumentId,
        SearchFailure::DuplicateDocument => ErrorCode::DuplicateDocument,
        SearchFailure::FeatureLength => ErrorCode::FeatureLength,
        SearchFailure::NonFiniteFeature => ErrorCode::NonFiniteFeature,
        SearchFailure::InvalidLabel => ErrorCode::InvalidLabel,
        SearchFailure::InvalidK => ErrorCode::InvalidK,
        SearchFailure::EmptyBatch => ErrorCode::EmptyBatch,
        SearchFailure::NoSearchModel => ErrorCode::NoSearchModel,
        SearchFailure::StorageError => ErrorCode::StorageError,
    }
}

impl From<domain::SearchError> for Error {
    /// The caller's mistakes are invalid arguments; no model yet or a storage failure is the
    /// service's (unavailable, retry later).
    fn from(e: domain::SearchError) -> Self {
        let kind = if e.code.unavailable() {
            ErrorKind::Unavailable
        } else {
            ErrorKind::InvalidArgument
        };
        Self::new(kind, code_of(e.code), e.message)
    }
}

/// The search task, or `search_disabled` when `search.enabled = false`.
pub fn service(state: &AppState) -> Result<Arc<SearchService>, Error> {
    state.search.clone().ok_or_else(|| {
        Error::not_found(
            ErrorCode::SearchDisabled,
            "the search task is off on this service (search.enabled = false)",
        )
    })
}

/// Orders a query's candidates with the live search pair (blocking: scores every document).
pub fn rank(search: &SearchService, req: RankRequest) -> Result<RankResponse, Error> {
    let req = domain::RankRequest {
        query: req.query,
        documents: req
            .documents
            .into_iter()
            .map(|d| domain::CandidateDocument {
                id: d.id,
                features: d.features,
            })
            .collect(),
        model: req.model.map(Into::into),
        k: req.k,
    };
    let r = search.rank(&req)?;
    Ok(RankResponse {
        query: r.query,
        model: r.model.into(),
        version: r.version,
        results: r
            .results
            .into_iter()
            .map(|d| RankedDocument {
                id: d.id,
                score: d.score,
                generator_score: d.generator_score,
                discriminator_score: d.discriminator_score,
                generator_probability: d.generator_probability,
            })
            .collect(),
    })
}

/// Validates impressions and appends the valid ones durably (blocking: one SQLite commit).
pub fn ingest(search: &SearchService, batch: Vec<Impression>) -> Result<IngestResponse, Error> {
    let batch = batch
        .into_iter()
        .map(|i| log::Impression {
            id: i.id,
            query: i.query,
            documents: i
                .documents
                .into_iter()
                .map(|d| log::ShownDocument {
                    id: d.id,
                    features: d.features,
                    label: d.label,
                    clicked: d.clicked,
                })
                .collect(),
        })
        .collect();
    let r = search.ingest(batch)?;
    Ok(IngestResponse {
        accepted: r.accepted,
        duplicates: r.duplicates,
        rejected: r
            .rejected
            .into_iter()
            .map(|x| RejectedImpression {
                index: x.index,
                code: code_of(x.code),
                message: x.message,
            })
            .collect(),
        last_seq: r.last_seq,
    })
}

/// Gates and publishes the search trainer's candidate now: the new version, or
/// `publish_refused` with the gate's reason (`no_trainer` on a serving replica, as the
/// recommendation side answers there).
pub async fn publish(search: &SearchService) -> Result<u64, Error> {
    search.publish().await.map_err(|e| {
        let code = match e {
            SearchPublishError::NoTrainer => ErrorCode::NoTrainer,
            SearchPublishError::Refused(_) => ErrorCode::PublishRefused,
        };
        Error::new(ErrorKind::FailedPrecondition, code, e.to_string())
    })
}

/// The live search pair and the trainer's counters.
pub fn info(search: &SearchService) -> SearchInfo {
    let i = search.info();
    let t = i.trainer;
    SearchInfo {
        method: i.method,
        n_features: i.n_features,
        live: i.live.map(|l| LiveSearchModel {
            version: l.version,
            created_unix_ms: l.created_unix_ms,
            ranker: l.ranker.into(),
            n_features: l.n_features,
            generator: l.generator,
            discriminator: l.discriminator,
            temperature: l.temperature,
            metadata: l.metadata,
        }),
        trainer: SearchTrainerStatus {
            impressions_seen: t.impressions_seen,
            train_queries: t.train_queries,
            holdout_queries: t.holdout_queries,
            steps: t.steps,
            published: t.published,
            refused: t.refused,
            last_refusal: t.last_refusal,
            live_holdout: t.live_holdout,
            up: t.up,
            restarts: t.restarts,
            last_failure: t.last_failure,
        },
    }
}
