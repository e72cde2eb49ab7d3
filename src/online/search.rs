//! The online search task: rank a query's candidate documents by their feature vectors with the
//! live G/D pair, take impressions (clicks or judgements) durably, and keep training the pair
//! in the background with the same gate-and-publish discipline as recommendation.
//!
//! - Ranking reads one immutable [`SearchSnapshot`] behind an `Arc` (swapped, never mutated).
//! - Feedback is validated, appended to the [`ImpressionLog`] (durable before acknowledged) and
//!   picked up by the trainer thread by log position, so nothing acknowledged is lost to a
//!   full queue or a crash: a restart replays the log.
//! - The trainer holds out every `holdout_every`-th judged query, plays pointwise or pairwise
//!   IRGAN steps on the rest, and publishes a candidate every `publish_every_seconds` if it is
//!   finite and its ranker's hold-out NDCG@10 is not below the live pair's by more than
//!   `tolerance`.
//!
//! This module knows no HTTP: the handlers in `http::search` are thin adapters over
//! [`SearchService::rank`], [`SearchService::ingest`] and [`SearchService::info`].

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::config::Role;
use crate::config::search::{Method, ScorerConfig, SearchIrganConfig};
use crate::data::letor::{LtrData, MAX_LABEL, Query};
use crate::eval::letor::evaluate;
use crate::model::features::Scorer;
use crate::online::metrics::Metrics;
use crate::online::query::ModelChoice;
use crate::rng;
use crate::store::Snapshot;
use crate::store::impression_log::{Impression, ImpressionLog, ShownDocument};
use crate::store::search_snapshot::SearchSnapshot;
use crate::store::snapshot_dir::SnapshotDir;
use crate::train::ltr::Game;
use crate::train::objective::policy;

/// Longest accepted query or document id.
const MAX_ID_LEN: usize = 256;

/// Metric the gate compares.
const GATE_METRIC: &str = "NDCG@10";

/// Settings of the search task (`[search]` in the service config).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SearchServiceConfig {
    /// Serve `/v1/search/*` and run the search trainer.
    pub enabled: bool,
    /// Length of every feature vector.
    pub n_features: usize,
    /// Most documents in one ranked list or impression.
    pub max_documents: usize,
    /// Weight of G in `model = "blend"` (D gets the rest), over standardised scores.
    pub blend_weight: f64,
    /// A snapshot directory written by `irgan train` (task = "search") to start from when the
    /// data directory has none; empty = start untrained and learn from feedback.
    pub initial_snapshot: PathBuf,
    /// `irgan_pointwise` or `irgan_pairwise`.
    pub method: Method,
    /// Judged queries (with a relevant document) needed before training starts.
    pub min_queries: usize,
    /// Every n-th judged query is held out to validate candidates.
    pub holdout_every: usize,
    /// Most recent training queries the trainer keeps.
    pub max_train_queries: usize,
    /// Trainer steps after the last new impression before the trainer idles.
    pub idle_after_steps: u64,
    /// Consider publishing this often while training.
    pub publish_every_seconds: f64,
    /// Refuse a candidate whose hold-out NDCG@10 is below the live one by more than this.
    pub tolerance: f64,
    /// The scorers' shape (used when starting untrained).
    pub scorer: ScorerConfig,
    /// The game's settings (`epochs`, `d_epochs`, `g_epochs` and `init` are not used online:
    /// each trainer step is one D pass and one G pass).
    pub irgan: SearchIrganConfig,
}

impl Default for SearchServiceConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            n_features: 46,
            max_documents: 1000,
            blend_weight: 0.5,
            initial_snapshot: PathBuf::new(),
            method: Method::IrganPairwise,
            min_queries: 10,
            holdout_every: 5,
            max_train_queries: 20_000,
            idle_after_steps: 200,
            publish_every_seconds: 10.0,
            tolerance: 0.02,
            scorer: ScorerConfig::default(),
            irgan: SearchIrganConfig {
                d_lr: 1e-3,
                ..SearchIrganConfig::default()
            },
        }
    }
}

impl SearchServiceConfig {
    /// Range checks; the message names the key.
    pub fn validate(&self) -> Result<(), String> {
        if self.n_features == 0 || self.max_documents == 0 {
            return Err("search.n_features and search.max_documents must be >= 1".into());
        }
        if !(0.0..=1.0).contains(&self.blend_weight) {
            return Err("search.blend_weight must be in [0, 1]".into());
        }
        if !self.method.is_irgan() {
            return Err("search.method must be irgan_pointwise or irgan_pairwise".into());
        }
        if self.min_queries == 0 || self.holdout_every < 2 || self.max_train_queries == 0 {
            return Err(
                "search.min_queries and search.max_train_queries must be >= 1, \
                 search.holdout_every >= 2"
                    .into(),
            );
        }
        if !(self.publish_every_seconds.is_finite() && self.publish_every_seconds > 0.0) {
            return Err("search.publish_every_seconds must be > 0".into());
        }
        if !(self.tolerance.is_finite() && self.tolerance >= 0.0) {
            return Err("search.tolerance must be >= 0".into());
        }
        let mut probe = crate::config::search::SearchConfig {
            scorer: self.scorer.clone(),
            irgan: self.irgan.clone(),
            ..Default::default()
        };
        probe.data.train = "-".into();
        probe.validate().map_err(|e| format!("search.{e}"))
    }
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
    fn invalid(code: SearchFailure, message: impl Into<String>) -> Self {
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

/// What [`SearchService::rank`] is asked.
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

enum Command {
    Publish(tokio::sync::oneshot::Sender<Result<u64, String>>),
    Shutdown(tokio::sync::oneshot::Sender<Option<u64>>),
}

/// The search task: live pair, impression log and trainer thread.
pub struct SearchService {
    cfg: SearchServiceConfig,
    live: RwLock<Option<Arc<SearchSnapshot>>>,
    log: ImpressionLog,
    status: Mutex<SearchTrainerStatus>,
    commands: Mutex<Option<mpsc::Sender<Command>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for SearchService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SearchService").finish_non_exhaustive()
    }
}

impl SearchService {
    /// Opens `data_dir/search.sqlite3` and `data_dir/search-snapshots/`, loads the newest valid
    /// snapshot (or `initial_snapshot`), and starts the trainer thread.
    pub fn start(
        cfg: SearchServiceConfig,
        data_dir: &std::path::Path,
        keep_snapshots: usize,
        seed: u64,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Arc<Self>> {
        let log = ImpressionLog::open(&data_dir.join("search.sqlite3"))?;
        let snapshots: SnapshotDir<SearchSnapshot> =
            SnapshotDir::open(&data_dir.join("search-snapshots"))?;
        let (newest, skipped) = snapshots.newest_valid();
        for (v, e) in skipped {
            tracing::warn!(version = v, error = %e, "skipping unreadable search snapshot");
        }
        let live = match newest {
            Some(s) => Some(s),
            None if !cfg.initial_snapshot.as_os_str().is_empty() => {
                let mut s = SearchSnapshot::read(&cfg.initial_snapshot).map_err(|e| {
                    anyhow::anyhow!(
                        "search.initial_snapshot {}: {e}",
                        cfg.initial_snapshot.display()
                    )
                })?;
                s.version = 1;
                s.created_unix_ms = Snapshot::now_unix_ms();
                snapshots.write(&s, keep_snapshots)?;
                Some(s)
            }
            None => None,
        };
        if let Some(s) = &live {
            for (name, scorer) in [
                ("generator", &s.generator),
                ("discriminator", &s.discriminator),
            ] {
                if scorer.n_features != cfg.n_features {
                    anyhow::bail!(
                        "the search snapshot's {name} takes {} features but search.n_features = {}",
                        scorer.n_features,
                        cfg.n_features
                    );
                }
            }
            metrics.search_snapshot_version.set(s.version as i64);
        }
        let (tx, rx) = mpsc::channel();
        let service = Arc::new(Self {
            cfg: cfg.clone(),
            live: RwLock::new(live.map(Arc::new)),
            log: log.clone(),
            status: Mutex::new(SearchTrainerStatus::default()),
            commands: Mutex::new(Some(tx)),
            thread: Mutex::new(None),
            metrics,
        });
        let worker = TrainerLoop {
            service: service.clone(),
            snapshots,
            keep: keep_snapshots,
            seed,
            rx,
        };
        let handle = std::thread::Builder::new()
            .name("search-trainer".into())
            .spawn(move || worker.run())?;
        *service.thread.lock() = Some(handle);
        Ok(service)
    }

    /// The live snapshot, if any.
    pub fn current(&self) -> Option<Arc<SearchSnapshot>> {
        self.live.read().clone()
    }

    /// The impression log.
    pub fn log(&self) -> &ImpressionLog {
        &self.log
    }

    fn check_documents<'a>(
        &self,
        docs: impl ExactSizeIterator<Item = (&'a str, &'a [f64])>,
    ) -> Result<(), SearchError> {
        if docs.len() == 0 {
            return Err(SearchError::invalid(
                SearchFailure::EmptyDocuments,
                "`documents` must not be empty",
            ));
        }
        if docs.len() > self.cfg.max_documents {
            return Err(SearchError::invalid(
                SearchFailure::TooManyDocuments,
                format!(
                    "{} documents; at most {} per list",
                    docs.len(),
                    self.cfg.max_documents
                ),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for (n, (id, features)) in docs.enumerate() {
            check_id(id).map_err(|m| {
                SearchError::invalid(
                    SearchFailure::InvalidDocumentId,
                    format!("documents[{n}].id {m}"),
                )
            })?;
            if !seen.insert(id) {
                return Err(SearchError::invalid(
                    SearchFailure::DuplicateDocument,
                    format!("documents[{n}]: id {id:?} appears twice"),
                ));
            }
            if features.len() != self.cfg.n_features {
                return Err(SearchError::invalid(
                    SearchFailure::FeatureLength,
                    format!(
                        "documents[{n}] ({id:?}) has {} features; this service expects {}",
                        features.len(),
                        self.cfg.n_features
                    ),
                ));
            }
            if let Some(f) = features.iter().position(|v| !fits_f32(*v)) {
                return Err(SearchError::invalid(
                    SearchFailure::NonFiniteFeature,
                    format!("documents[{n}] ({id:?}) feature {f} is not a finite 32-bit number"),
                ));
            }
        }
        Ok(())
    }

    /// Orders the candidates by the chosen model (default: the snapshot's ranker).
    pub fn rank(&self, req: &RankRequest) -> Result<RankResponse, SearchError> {
        check_id(&req.query).map_err(|m| {
            SearchError::invalid(SearchFailure::InvalidQuery, format!("`query` {m}"))
        })?;
        self.check_documents(
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
        let f = self.cfg.n_features;
        let mut x = ndarray::Array2::<f32>::zeros((n, f));
        for (row, d) in req.documents.iter().enumerate() {
            x.row_mut(row)
                .assign(&ndarray::ArrayView1::from(row_f32(&d.features).as_slice()));
        }
        let g = snap.generator.score(x.view());
        let d = snap.discriminator.score(x.view());
        let p = policy(&g, f64::from(snap.temperature));
        let w = self.cfg.blend_weight;
        let (zg, zd) = (standardise(&g), standardise(&d));
        let score = |i: usize| match model {
            ModelChoice::Generator => f64::from(g[i]),
            ModelChoice::Discriminator => f64::from(d[i]),
            ModelChoice::Blend => w * zg[i] + (1.0 - w) * zd[i],
        };
        let mut order: Vec<usize> = (0..n).collect();
        // Stable: equal scores keep the caller's order.
        order.sort_by(|&a, &b| score(b).total_cmp(&score(a)));
        order.truncate(req.k.unwrap_or(n));
        let results = order
            .into_iter()
            .map(|i| RankedDocument {
                id: req.documents[i].id.clone(),
                score: finite(score(i)),
                generator_score: finite(f64::from(g[i])),
                discriminator_score: finite(f64::from(d[i])),
                generator_probability: finite(p[i]),
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
            match self.check_impression(&imp) {
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
        let appended = self.log.append(&valid).map_err(|e| SearchError {
            code: SearchFailure::StorageError,
            message: e.to_string(),
        })?;
        let duplicates = appended.iter().filter(|a| a.duplicate).count();
        let accepted = appended.len() - duplicates;
        self.metrics.search_impressions.inc_by(accepted as u64);
        Ok(IngestResponse {
            accepted,
            duplicates,
            rejected,
            last_seq: appended.iter().map(|a| a.seq).max().unwrap_or(0),
        })
    }

    fn check_impression(&self, imp: &Impression) -> Result<(), SearchError> {
        check_id(&imp.query).map_err(|m| {
            SearchError::invalid(SearchFailure::InvalidQuery, format!("`query` {m}"))
        })?;
        if let Some(id) = &imp.id {
            check_id(id)
                .map_err(|m| SearchError::invalid(SearchFailure::InvalidId, format!("`id` {m}")))?;
        }
        self.check_documents(
            imp.documents
                .iter()
                .map(|d| (d.id.as_str(), d.features.as_slice())),
        )?;
        if let Some((n, d)) = imp
            .documents
            .iter()
            .enumerate()
            .find(|(_, d)| d.label.is_some_and(|l| l > MAX_LABEL))
        {
            return Err(SearchError::invalid(
                SearchFailure::InvalidLabel,
                format!(
                    "documents[{n}] ({:?}) label must be in 0..={MAX_LABEL}",
                    d.id
                ),
            ));
        }
        Ok(())
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
            method: self.cfg.method.as_str().into(),
            n_features: self.cfg.n_features,
            live,
            trainer: self.status.lock().clone(),
        }
    }

    /// Asks the trainer to publish its candidate now; the new version, or why it was refused.
    pub async fn publish(&self) -> Result<u64, String> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.send(Command::Publish(tx))?;
        rx.await
            .map_err(|_| "the search trainer stopped".to_string())?
    }

    /// Stops the trainer after a last publish attempt; returns the live version.
    pub async fn shutdown(&self) -> Option<u64> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if self.send(Command::Shutdown(tx)).is_err() {
            return self.current().map(|s| s.version);
        }
        let version = rx.await.ok().flatten();
        self.commands.lock().take();
        let handle = self.thread.lock().take();
        if let Some(h) = handle {
            let _ = tokio::task::spawn_blocking(move || h.join()).await;
        }
        version
    }

    fn send(&self, c: Command) -> Result<(), String> {
        self.commands
            .lock()
            .as_ref()
            .and_then(|tx| tx.send(c).ok())
            .ok_or_else(|| "the search trainer stopped".to_string())
    }
}

/// The snapshot's own choice of ranker (D for pairwise IRGAN, as the paper reports).
fn default_model(s: &SearchSnapshot) -> ModelChoice {
    match s.metadata.get("ranker").and_then(Value::as_str) {
        Some("generator") => ModelChoice::Generator,
        _ => ModelChoice::Discriminator,
    }
}

/// Finite and representable as a finite `f32` (models compute in f32).
fn fits_f32(v: f64) -> bool {
    v.is_finite() && v.abs() <= f64::from(f32::MAX)
}

/// A feature row as the models take it.
fn row_f32(features: &[f64]) -> Vec<f32> {
    features.iter().map(|&v| v as f32).collect()
}

fn check_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > MAX_ID_LEN || id.chars().any(char::is_control) {
        return Err(format!(
            "must be 1 to {MAX_ID_LEN} bytes without control characters"
        ));
    }
    Ok(())
}

/// z-scores over the list (all zero when the scores are constant).
fn standardise(s: &[f32]) -> Vec<f64> {
    let n = s.len() as f64;
    let mean = s.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
    let var = s
        .iter()
        .map(|&x| (f64::from(x) - mean).powi(2))
        .sum::<f64>()
        / n;
    let sd = var.sqrt();
    s.iter()
        .map(|&x| {
            if sd > 0.0 {
                (f64::from(x) - mean) / sd
            } else {
                0.0
            }
        })
        .collect()
}

/// Never publish a NaN: a non-finite number becomes 0 (f32 scores of finite parameters on
/// finite features are finite; this guards the f64 arithmetic on top).
fn finite(x: f64) -> f64 {
    if x.is_finite() { x } else { 0.0 }
}

/// The trainer thread's state.
struct TrainerLoop {
    service: Arc<SearchService>,
    snapshots: SnapshotDir<SearchSnapshot>,
    keep: usize,
    seed: u64,
    rx: mpsc::Receiver<Command>,
}

/// A query assembled from one impression.
fn to_query(imp: &Impression, n_features: usize) -> Query {
    let n = imp.documents.len();
    let mut features = ndarray::Array2::zeros((n, n_features));
    for (row, d) in imp.documents.iter().enumerate() {
        features
            .row_mut(row)
            .assign(&ndarray::ArrayView1::from(row_f32(&d.features).as_slice()));
    }
    Query {
        qid: imp.query.clone(),
        features,
        labels: imp.documents.iter().map(ShownDocument::relevance).collect(),
        doc_ids: imp.documents.iter().map(|d| d.id.clone()).collect(),
    }
}

impl TrainerLoop {
    fn run(self) {
        let cfg = self.service.cfg.clone();
        let f = cfg.n_features;
        let mut seq = 0u64;
        let mut judged = 0u64;
        let mut train = LtrData {
            queries: Vec::new(),
            n_features: f,
        };
        let mut holdout = train.clone();
        let mut game: Option<Game> = None;
        let mut steps_since_data = u64::MAX;
        let mut last_publish = Instant::now();
        let mut dirty = false;
        let mut steps = 0u64;
        loop {
            // New impressions, by log position.
            match self.service.log.read_after(seq, 10_000) {
                Ok(batch) if !batch.is_empty() => {
                    for li in &batch {
                        seq = li.seq;
                        let q = to_query(&li.impression, f);
                        if q.len() < 2 || !q.has_relevant() {
                            continue; // nothing to learn from an unjudged or single-item list
                        }
                        judged += 1;
                        if judged.is_multiple_of(cfg.holdout_every as u64) {
                            holdout.queries.push(q);
                        } else {
                            train.queries.push(q);
                        }
                    }
                    let excess = train.queries.len().saturating_sub(cfg.max_train_queries);
                    train.queries.drain(..excess);
                    steps_since_data = 0;
                    let mut st = self.service.status.lock();
                    st.impressions_seen = seq;
                    st.train_queries = train.queries.len();
                    st.holdout_queries = holdout.queries.len();
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "search trainer: reading the log failed"),
            }
            let ready = train.queries.len() >= cfg.min_queries && !holdout.queries.is_empty();
            let training = ready && steps_since_data < cfg.idle_after_steps;
            // Commands; wait for one only when there is nothing to train.
            let wait = if training {
                Duration::ZERO
            } else {
                Duration::from_millis(200)
            };
            match self.rx.recv_timeout(wait) {
                Ok(Command::Publish(reply)) => {
                    let live = self.service.current().map(|s| s.version);
                    let r = match (game.as_ref(), live) {
                        (Some(g), _) if dirty => self.publish(g, &holdout),
                        // Nothing trained since: the live version already is the candidate.
                        (_, Some(v)) if !dirty => Ok(v),
                        _ => Err(format!(
                            "not enough judged queries yet ({} for training, {} held out; \
                             need {} and 1)",
                            train.queries.len(),
                            holdout.queries.len(),
                            cfg.min_queries
                        )),
                    };
                    if r.is_ok() {
                        dirty = false;
                        last_publish = Instant::now();
                    }
                    let _ = reply.send(r);
                    continue;
                }
                Ok(Command::Shutdown(reply)) => {
                    if let Some(g) = game.as_ref().filter(|_| dirty) {
                        let _ = self.publish(g, &holdout);
                    }
                    let _ = reply.send(self.service.current().map(|s| s.version));
                    return;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
            if !training {
                continue;
            }
            let g = game.get_or_insert_with(|| self.new_game());
            g.d_epoch(&train);
            let stats = g.g_epoch(&train);
            steps_since_data = steps_since_data.saturating_add(1);
            dirty = true;
            self.service.metrics.search_trainer_steps.inc();
            self.service.metrics.search_g_entropy.set(stats.entropy);
            steps += 1;
            self.service.status.lock().steps = steps;
            // The first model goes out after a few steps: until then search has nothing to serve.
            let first = self.service.current().is_none() && steps >= 10;
            if first || last_publish.elapsed().as_secs_f64() >= cfg.publish_every_seconds {
                if self.publish(g, &holdout).is_ok() {
                    dirty = false;
                }
                last_publish = Instant::now();
            }
        }
    }

    /// A game starting from the live pair, or from fresh scorers.
    fn new_game(&self) -> Game {
        let cfg = &self.service.cfg;
        let (g, d) = match self.service.current() {
            Some(s) => (s.generator.clone(), s.discriminator.clone()),
            None => {
                let arch = cfg.scorer.architecture();
                (
                    Scorer::new(
                        arch,
                        cfg.n_features,
                        &mut rng::stream(self.seed, 0x5ea_0101, 1),
                    ),
                    Scorer::new(
                        arch,
                        cfg.n_features,
                        &mut rng::stream(self.seed, 0x5ea_0101, 2),
                    ),
                )
            }
        };
        let pairwise = cfg.method == Method::IrganPairwise;
        Game::new(g, d, &cfg.irgan, pairwise, self.seed)
    }

    /// Gates and publishes the game's pair; the new version or the refusal reason.
    fn publish(&self, game: &Game, holdout: &LtrData) -> Result<u64, String> {
        let metrics = &self.service.metrics;
        let refuse = |reason: &str, detail: String| {
            metrics
                .search_publish_refusals
                .with_label_values(&[reason])
                .inc();
            let mut st = self.service.status.lock();
            st.refused += 1;
            st.last_refusal = Some(detail.clone());
            Err(detail)
        };
        if !game.generator.is_finite() || !game.discriminator.is_finite() {
            return refuse(
                "non_finite",
                "the candidate has non-finite parameters".into(),
            );
        }
        let ranker = self.service.cfg.irgan.select_model;
        let ks = [1, 3, 5, 10];
        let score = |s: &Scorer| evaluate(holdout, &ks, |q| s.score(q.features.view()));
        let cand = score(game.player(ranker));
        let live = self.service.current();
        if let Some(l) = &live {
            let live_player = match ranker {
                Role::Generator => &l.generator,
                Role::Discriminator => &l.discriminator,
            };
            let (c, o) = (cand[GATE_METRIC], score(live_player)[GATE_METRIC]);
            if c < o - self.service.cfg.tolerance {
                return refuse(
                    "worse",
                    format!(
                        "hold-out {GATE_METRIC} {c:.4} is below the live {o:.4} by more than the tolerance"
                    ),
                );
            }
        }
        let version = live.as_ref().map_or(0, |l| l.version) + 1;
        let snapshot = SearchSnapshot {
            version,
            created_unix_ms: Snapshot::now_unix_ms(),
            generator: game.generator.clone(),
            temperature: self.service.cfg.irgan.temperature as f32,
            discriminator: game.discriminator.clone(),
            metadata: json!({
                "method": self.service.cfg.method.as_str(),
                "ranker": ranker.as_str(),
                "holdout": cand,
            }),
        };
        if let Err(e) = self.snapshots.write(&snapshot, self.keep) {
            return refuse("write_failed", format!("writing the snapshot failed: {e}"));
        }
        *self.service.live.write() = Some(Arc::new(snapshot));
        metrics.search_snapshot_version.set(version as i64);
        metrics.search_holdout_ndcg.set(cand[GATE_METRIC]);
        let mut st = self.service.status.lock();
        st.published += 1;
        st.last_refusal = None;
        st.live_holdout = Some(json!(cand));
        tracing::info!(
            version,
            ndcg10 = cand[GATE_METRIC],
            "published a search snapshot"
        );
        Ok(version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standardise_handles_constant_lists() {
        assert_eq!(standardise(&[2.0, 2.0]), vec![0.0, 0.0]);
        let z = standardise(&[1.0, 3.0]);
        assert!((z[0] + 1.0).abs() < 1e-12 && (z[1] - 1.0).abs() < 1e-12);
    }

    #[test]
    fn default_config_is_valid() {
        SearchServiceConfig::default().validate().unwrap();
        let bad = SearchServiceConfig {
            method: Method::Lambdarank,
            ..Default::default()
        };
        assert!(bad.validate().is_err());
    }
}
