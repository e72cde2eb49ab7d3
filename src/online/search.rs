//! The online search task's live side: rank a query's candidate documents by their feature
//! vectors with the live G/D pair, take impressions (clicks or judgements) durably, and answer
//! what is live; the trainer is [`crate::online::search_trainer`].
//!
//! - Ranking reads one immutable [`SearchSnapshot`] behind an `Arc` (swapped, never mutated).
//! - Feedback is validated, appended to the impression log (durable before acknowledged:
//!   SQLite, or a JetStream stream with `storage.backend = "nats"`) and picked up by the
//!   trainer thread by log position, so nothing acknowledged is lost to a full queue or a
//!   crash: a restart replays the log.
//! - Where the trainer runs (`server.role` `all` or `train`) it publishes to the snapshot store;
//!   a serving replica (`serve`) has no search trainer: it follows the store's live pointer and
//!   swaps in each version the trainer publishes.
//!
//! This module knows no HTTP: the handlers are thin adapters over [`SearchService::rank`],
//! [`SearchService::ingest`] and [`SearchService::info`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::{Mutex, RwLock};

use serde_json::{Value, json};

use crate::model::blend;
use crate::model::topk::select_top_by;
use crate::online::metrics::Metrics;
use crate::online::query::ModelChoice;
use crate::online::roles::follow_pointer;
use crate::online::search_checks::{check_documents, check_impression, check_query, row_f32};
use crate::online::search_trainer::SearchTask;
use crate::online::trainer_loop::{self, LoopHandle, LoopMetrics};
use crate::store::Snapshot;
use crate::store::backend::{ImpressionStore, SharedImpressions, SharedVersions};
use crate::store::impression_log::{Impression, ImpressionLogError};
use crate::store::search_snapshot::SearchSnapshot;
use crate::store::snapshot::SnapshotError;
use crate::train::objective::policy;

pub use crate::online::search_settings::SearchServiceConfig;

/// Why the search task could not start.
#[derive(Debug, thiserror::Error)]
pub enum SearchStartError {
    /// The impression log could not be opened.
    #[error("cannot open the search impression log")]
    Log(#[from] ImpressionLogError),
    /// The snapshot directory could not be opened or written.
    #[error("search snapshots")]
    Snapshots(#[from] SnapshotError),
    /// `search.initial_snapshot` could not be read.
    #[error("search.initial_snapshot {path}")]
    InitialSnapshot {
        /// The configured path.
        path: PathBuf,
        /// Why reading it failed.
        #[source]
        source: SnapshotError,
    },
    /// The live snapshot does not fit `search.n_features`.
    #[error("the search snapshot's {name} takes {has} features but search.n_features = {want}")]
    FeatureMismatch {
        /// `generator` or `discriminator`.
        name: &'static str,
        /// Features the scorer takes.
        has: usize,
        /// `search.n_features`.
        want: usize,
    },
    /// The trainer thread could not be started.
    #[error("cannot start the search trainer thread")]
    Thread(#[from] std::io::Error),
}

/// What is wrong with a search request, or why the service cannot serve it (the API layer
/// maps each to its stable error code).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchFailure {
    /// An empty, over-long or control-character query id.
    InvalidQuery,
    /// An invalid impression id.
    InvalidId,
    /// A list without documents.
    EmptyDocuments,
    /// More documents than `search.max_documents`.
    TooManyDocuments,
    /// An invalid document id.
    InvalidDocumentId,
    /// A document id twice in one list.
    DuplicateDocument,
    /// A feature vector of the wrong length.
    FeatureLength,
    /// A feature that is not a finite 32-bit number.
    NonFiniteFeature,
    /// A relevance label above the maximum.
    InvalidLabel,
    /// `k = 0`.
    InvalidK,
    /// A feedback request without impressions.
    EmptyBatch,
    /// Nothing published yet.
    NoSearchModel,
    /// The impression log could not be written.
    StorageError,
}

impl SearchFailure {
    /// True when the service (not the caller) is the cause: no model yet, storage failure.
    pub fn unavailable(self) -> bool {
        matches!(self, Self::NoSearchModel | Self::StorageError)
    }
}

/// A caller's mistake or an unavailable model.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct SearchError {
    /// What class of failure.
    pub code: SearchFailure,
    /// What is wrong.
    pub message: String,
}

impl SearchError {
    /// A caller's mistake (or the service's failure) with this code and message.
    pub fn invalid(code: SearchFailure, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// A candidate document to rank.
#[derive(Debug, Clone)]
pub struct CandidateDocument {
    /// Caller's document id.
    pub id: String,
    /// Feature vector of length `search.n_features` (each finite and within f32 range).
    pub features: Vec<f64>,
}

/// `POST /v1/search/rank`.
#[derive(Debug, Clone)]
pub struct RankRequest {
    /// The query id (logged with feedback; not used for scoring).
    pub query: String,
    /// The candidates.
    pub documents: Vec<CandidateDocument>,
    /// `generator`, `discriminator` or `blend` (default: the snapshot's ranker).
    pub model: Option<ModelChoice>,
    /// Return only the first `k` (default: all).
    pub k: Option<usize>,
}

/// One ranked document.
#[derive(Debug, Clone, PartialEq)]
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
#[derive(Debug, Clone, PartialEq)]
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

/// One rejected impression of a feedback batch.
#[derive(Debug, Clone, PartialEq)]
pub struct RejectedImpression {
    /// Position in the request (0-based).
    pub index: usize,
    /// What class of failure.
    pub code: SearchFailure,
    /// What is wrong.
    pub message: String,
}

/// Outcome of a feedback batch.
#[derive(Debug, Clone, PartialEq)]
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
#[derive(Debug, Clone, Default)]
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
    pub live_holdout: Option<Value>,
    /// The trainer runs (false while a failed restart waits to be retried, or once stopped).
    pub up: bool,
    /// Restarts from the live pair after a panic or failure.
    pub restarts: u64,
    /// The last panic or failure, if any.
    pub last_failure: Option<String>,
}

/// The live search pair.
#[derive(Debug, Clone)]
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
    pub generator: Value,
    /// D's architecture.
    pub discriminator: Value,
    /// G's softmax temperature.
    pub temperature: f32,
    /// Method, ranker and hold-out metrics at publication.
    pub metadata: Value,
}

/// `GET /v1/search/model`.
#[derive(Debug, Clone)]
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

/// What the search service and its trainer thread share.
pub struct SearchShared {
    /// The task's settings.
    pub cfg: SearchServiceConfig,
    live: RwLock<Option<Arc<SearchSnapshot>>>,
    /// The durable impression log.
    pub log: SharedImpressions,
    /// The service's metrics.
    pub metrics: Arc<Metrics>,
}

impl SearchShared {
    /// The live snapshot, if any.
    pub fn current(&self) -> Option<Arc<SearchSnapshot>> {
        self.live.read().clone()
    }

    /// Swaps in a new live snapshot.
    pub fn go_live(&self, snapshot: SearchSnapshot) {
        *self.live.write() = Some(Arc::new(snapshot));
    }
}

/// Why a search publish did not happen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SearchPublishError {
    /// This process is a serving replica: the search trainer runs elsewhere.
    #[error("this replica has no search trainer (server.role = \"serve\"); publish on the trainer")]
    NoTrainer,
    /// The gate refused the candidate, or there is none; the message says why.
    #[error("{0}")]
    Refused(String),
}

/// The search task: live pair, impression log and, where it trains, the trainer thread.
pub struct SearchService {
    shared: Arc<SearchShared>,
    /// `None` on a serving replica (`server.role = "serve"`).
    trainer: Option<LoopHandle<SearchTask>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for SearchService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SearchService").finish_non_exhaustive()
    }
}

/// The live (else newest valid) snapshot in `snapshots`; else, where the trainer runs,
/// `initial` (written there as version 1); else none.
fn load_live(
    snapshots: &SharedVersions<SearchSnapshot>,
    initial: &Path,
    trains: bool,
    keep: usize,
) -> Result<Option<SearchSnapshot>, SearchStartError> {
    let (newest, skipped) = snapshots.newest_valid();
    for (v, e) in skipped {
        tracing::warn!(version = v, error = %e, "skipping unreadable search snapshot");
    }
    // A serving replica never publishes: it waits for the trainer's first version.
    if newest.is_some() || initial.as_os_str().is_empty() || !trains {
        return Ok(newest);
    }
    let mut s =
        SearchSnapshot::read(initial).map_err(|source| SearchStartError::InitialSnapshot {
            path: initial.to_path_buf(),
            source,
        })?;
    s.version = 1;
    s.created_unix_ms = Snapshot::now_unix_ms();
    snapshots.write(&s, keep)?;
    Ok(Some(s))
}

/// Checks that both scorers of `s` take `search.n_features` features.
fn check_features(cfg: &SearchServiceConfig, s: &SearchSnapshot) -> Result<(), SearchStartError> {
    for (name, scorer) in [
        ("generator", &s.generator),
        ("discriminator", &s.discriminator),
    ] {
        if scorer.n_features != cfg.n_features {
            return Err(SearchStartError::FeatureMismatch {
                name,
                has: scorer.n_features,
                want: cfg.n_features,
            });
        }
    }
    Ok(())
}

impl SearchService {
    /// Loads the live snapshot from `snapshots` (or, where it trains, `initial_snapshot`), then
    /// starts the trainer thread over `log` (`trains`: role `all` or `train`) or, on a serving
    /// replica, a thread that follows the live pointer.
    pub fn start(
        cfg: SearchServiceConfig,
        log: SharedImpressions,
        snapshots: SharedVersions<SearchSnapshot>,
        trains: bool,
        keep_snapshots: usize,
        seed: u64,
        metrics: Arc<Metrics>,
    ) -> Result<Arc<Self>, SearchStartError> {
        let live = load_live(&snapshots, &cfg.initial_snapshot, trains, keep_snapshots)?;
        if let Some(s) = &live {
            check_features(&cfg, s)?;
            metrics.search_snapshot_version.set(s.version as i64);
        }
        let shared = Arc::new(SearchShared {
            cfg,
            live: RwLock::new(live.map(Arc::new)),
            log,
            metrics,
        });
        if !trains {
            Self::follow(&shared, snapshots)?;
            return Ok(Arc::new(Self {
                shared,
                trainer: None,
                thread: Mutex::new(None),
            }));
        }
        let task = SearchTask::new(shared.clone(), snapshots, keep_snapshots, seed);
        let loop_metrics = LoopMetrics::new(&shared.metrics, "search");
        let (trainer, thread) = trainer_loop::spawn(task, loop_metrics)?;
        Ok(Arc::new(Self {
            shared,
            trainer: Some(trainer),
            thread: Mutex::new(Some(thread)),
        }))
    }

    /// A serving replica's follower: each version the pointer moves to is downloaded,
    /// verified, checked against `search.n_features` and swapped in.
    fn follow(
        shared: &Arc<SearchShared>,
        snapshots: SharedVersions<SearchSnapshot>,
    ) -> Result<(), std::io::Error> {
        let current = shared.current().map_or(0, |s| s.version);
        let (pointer, shared) = (snapshots.clone(), shared.clone());
        follow_pointer(
            "search",
            current,
            move |seen, timeout| pointer.wait_live_change(seen, timeout),
            move |v| {
                let s = snapshots.read(v)?;
                check_features(&shared.cfg, &s)
                    .map_err(|e| SnapshotError::Format(e.to_string()))?;
                shared.metrics.search_snapshot_version.set(s.version as i64);
                shared.go_live(s);
                Ok(())
            },
        )
    }

    /// The live snapshot, if any.
    pub fn current(&self) -> Option<Arc<SearchSnapshot>> {
        self.shared.current()
    }

    /// The impression log.
    pub fn log(&self) -> &dyn ImpressionStore {
        &*self.shared.log
    }

    /// Orders the candidates by the chosen model (default: the snapshot's ranker).
    pub fn rank(&self, req: &RankRequest) -> Result<RankResponse, SearchError> {
        let cfg = &self.shared.cfg;
        check_query(&req.query)?;
        check_documents(
            cfg,
            req.documents
                .iter()
                .map(|d| (d.id.as_str(), d.features.as_slice())),
        )?;
        if req.k == Some(0) {
            return Err(SearchError::invalid(
                SearchFailure::InvalidK,
                "`k` must be >= 1",
            ));
        }
        let Some(snap) = self.current() else {
            return Err(SearchError {
                code: SearchFailure::NoSearchModel,
                message: "no search model has been published yet: post judged impressions to \
                          /v1/search/feedback or start with search.initial_snapshot"
                    .into(),
            });
        };
        let model = req.model.unwrap_or(default_model(&snap));
        let n = req.documents.len();
        let mut x = ndarray::Array2::<f32>::zeros((n, cfg.n_features));
        for (mut row, d) in x.rows_mut().into_iter().zip(&req.documents) {
            row.assign(&ndarray::ArrayView1::from(row_f32(&d.features).as_slice()));
        }
        let g = snap.generator.score(x.view());
        let d = snap.discriminator.score(x.view());
        let p = policy(&g, f64::from(snap.temperature));
        let (zg, zd) = (blend::z_scores(&g), blend::z_scores(&d));
        let at = |v: &[f32], i: usize| v.get(i).map_or(f64::NAN, |&s| f64::from(s));
        let score = |i: usize| match model {
            ModelChoice::Generator => at(&g, i),
            ModelChoice::Discriminator => at(&d, i),
            ModelChoice::Blend => blend::mix(
                cfg.blend_weight,
                zg.get(i).copied().unwrap_or(0.0),
                zd.get(i).copied().unwrap_or(0.0),
            ),
        };
        // Best first; equal scores keep the caller's order.
        let mut order: Vec<usize> = (0..n).collect();
        select_top_by(&mut order, req.k.unwrap_or(n), |&a, &b| {
            score(b).total_cmp(&score(a)).then(a.cmp(&b))
        });
        let results = order
            .into_iter()
            .filter_map(|i| {
                Some(RankedDocument {
                    id: req.documents.get(i)?.id.clone(),
                    score: finite(score(i)),
                    generator_score: finite(at(&g, i)),
                    discriminator_score: finite(at(&d, i)),
                    generator_probability: finite(p.get(i).copied().unwrap_or(0.0)),
                })
            })
            .collect();
        Ok(RankResponse {
            query: req.query.clone(),
            model,
            version: snap.version,
            results,
        })
    }

    /// Validates impressions, appends the valid ones durably and wakes the trainer.
    pub fn ingest(&self, impressions: Vec<Impression>) -> Result<IngestResponse, SearchError> {
        let mut rejected = Vec::new();
        let mut valid = Vec::new();
        for (index, imp) in impressions.into_iter().enumerate() {
            match check_impression(&self.shared.cfg, &imp) {
                Ok(()) => valid.push(imp),
                Err(e) => rejected.push(RejectedImpression {
                    index,
                    code: e.code,
                    message: e.message,
                }),
            }
        }
        if valid.is_empty() {
            let first = rejected.first().map_or(
                SearchError::invalid(SearchFailure::EmptyBatch, "no impressions in the request"),
                |r| {
                    SearchError::invalid(r.code, format!("impressions[{}]: {}", r.index, r.message))
                },
            );
            return Err(first);
        }
        let appended = self.shared.log.append(&valid).map_err(|e| SearchError {
            code: SearchFailure::StorageError,
            message: e.to_string(),
        })?;
        let duplicates = appended.iter().filter(|a| a.duplicate).count();
        let accepted = appended.len() - duplicates;
        self.shared
            .metrics
            .search_impressions
            .inc_by(accepted as u64);
        Ok(IngestResponse {
            accepted,
            duplicates,
            rejected,
            last_seq: appended.iter().map(|a| a.seq).max().unwrap_or(0),
        })
    }

    /// The live model's description and the trainer's status.
    pub fn info(&self) -> SearchInfo {
        let live = self.current().map(|s| LiveSearchModel {
            version: s.version,
            created_unix_ms: s.created_unix_ms,
            ranker: default_model(&s),
            n_features: s.generator.n_features,
            generator: json!(s.generator.arch),
            discriminator: json!(s.discriminator.arch),
            temperature: s.temperature,
            metadata: s.metadata.clone(),
        });
        SearchInfo {
            method: self.shared.cfg.method.as_str().into(),
            n_features: self.shared.cfg.n_features,
            live,
            // A serving replica reports an absent (down) trainer.
            trainer: self
                .trainer
                .as_ref()
                .map_or_else(SearchTrainerStatus::default, |t| {
                    let health = t.health();
                    SearchTrainerStatus {
                        up: health.up,
                        restarts: health.restarts,
                        last_failure: health.last_failure,
                        ..t.status()
                    }
                }),
        }
    }

    /// Asks the trainer to publish its candidate now; the new version, or why not.
    pub async fn publish(&self) -> Result<u64, SearchPublishError> {
        let trainer = self.trainer.as_ref().ok_or(SearchPublishError::NoTrainer)?;
        trainer
            .publish()
            .await
            .map_err(|e| SearchPublishError::Refused(e.to_string()))
    }

    /// Stops the trainer after a last publish attempt; returns the live version.
    pub async fn shutdown(&self) -> Option<u64> {
        let Some(trainer) = &self.trainer else {
            return self.current().map(|s| s.version);
        };
        let Ok(version) = trainer.shutdown().await else {
            return self.current().map(|s| s.version);
        };
        let handle = self.thread.lock().take();
        if let Some(h) = handle {
            let _ = tokio::task::spawn_blocking(move || h.join()).await;
        }
        version
    }
}

/// The snapshot's own choice of ranker (D for pairwise IRGAN, as the paper reports).
fn default_model(s: &SearchSnapshot) -> ModelChoice {
    match s.metadata.get("ranker").and_then(Value::as_str) {
        Some("generator") => ModelChoice::Generator,
        _ => ModelChoice::Discriminator,
    }
}

/// Never publish a NaN: a non-finite number becomes 0 (f32 scores of finite parameters on
/// finite features are finite; this guards the f64 arithmetic on top).
fn finite(x: f64) -> f64 {
    if x.is_finite() { x } else { 0.0 }
}
