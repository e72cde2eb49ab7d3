//! The search trainer: turns logged impressions into judged queries (every `holdout_every`-th
//! held out), plays pointwise or pairwise IRGAN steps on the rest, and publishes a candidate
//! when it is finite and its ranker's hold-out NDCG@10 is not below the live pair's by more
//! than `tolerance`; driven on its own thread by [`crate::online::trainer_loop`].

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use crate::config::Role;
use crate::config::search::Method;
use crate::data::letor::{LtrData, Query};
use crate::eval::letor::evaluate;
use crate::model::features::Scorer;
use crate::online::search::{SearchShared, SearchTrainerStatus};
use crate::online::search_checks::row_f32;
use crate::online::trainer_loop::{Clock, LoopError, OnlineTask};
use crate::rng;
use crate::store::Snapshot;
use crate::store::backend::SharedVersions;
use crate::store::impression_log::{Impression, ShownDocument};
use crate::store::search_snapshot::SearchSnapshot;
use crate::train::ltr::Game;

/// Metric the gate compares.
const GATE_METRIC: &str = "NDCG@10";

/// Most impressions read from the log in one pass.
const BATCH: usize = 10_000;

/// Steps before the first pair goes out: until then search has nothing to serve.
const FIRST_PUBLISH_STEPS: u64 = 10;

/// Why the search trainer did not publish.
#[derive(Debug, thiserror::Error)]
pub enum SearchTrainerError {
    /// The trainer loop could not take the command.
    #[error("the search trainer: {0}")]
    Loop(#[from] LoopError),
    /// The candidate was refused (or there is none); the message says why.
    #[error("{0}")]
    Refused(String),
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

/// The search trainer's state, owned by its thread.
pub struct SearchTask {
    shared: Arc<SearchShared>,
    snapshots: SharedVersions<SearchSnapshot>,
    keep: usize,
    seed: u64,
    /// Last log position read.
    seq: u64,
    /// Judged queries seen (decides which are held out).
    judged: u64,
    train: LtrData,
    holdout: LtrData,
    game: Option<Game>,
    steps_since_data: u64,
    /// Trained since the last successful publish.
    dirty: bool,
    published: u64,
    refused: u64,
    last_refusal: Option<String>,
    live_holdout: Option<serde_json::Value>,
}

impl SearchTask {
    /// A trainer over `shared`'s log and live pair, writing to `snapshots`.
    pub fn new(
        shared: Arc<SearchShared>,
        snapshots: SharedVersions<SearchSnapshot>,
        keep: usize,
        seed: u64,
    ) -> Self {
        let empty = LtrData {
            queries: Vec::new(),
            n_features: shared.cfg.n_features,
        };
        Self {
            shared,
            snapshots,
            keep,
            seed,
            seq: 0,
            judged: 0,
            train: empty.clone(),
            holdout: empty,
            game: None,
            steps_since_data: u64::MAX,
            dirty: false,
            published: 0,
            refused: 0,
            last_refusal: None,
            live_holdout: None,
        }
    }

    /// A game starting from the live pair, or from fresh scorers.
    fn new_game(&self) -> Game {
        let cfg = &self.shared.cfg;
        let (g, d) = match self.shared.current() {
            Some(s) => (s.generator.clone(), s.discriminator.clone()),
            None => {
                let arch = cfg.scorer.architecture();
                let fresh = |n| {
                    Scorer::new(
                        arch,
                        cfg.n_features,
                        &mut rng::stream(self.seed, 0x5ea_0101, n),
                    )
                };
                (fresh(1), fresh(2))
            }
        };
        let pairwise = cfg.method == Method::IrganPairwise;
        Game::new(g, d, &cfg.irgan, pairwise, self.seed)
    }

    fn refuse(&mut self, reason: &str, detail: String) -> SearchTrainerError {
        self.shared
            .metrics
            .search_publish_refusals
            .with_label_values(&[reason])
            .inc();
        self.refused += 1;
        self.last_refusal = Some(detail.clone());
        SearchTrainerError::Refused(detail)
    }

    /// Gates and publishes the game's pair; the new version or the refusal.
    fn gate_and_publish(&mut self) -> Result<u64, SearchTrainerError> {
        let Some(game) = &self.game else {
            return Err(SearchTrainerError::Refused("no candidate yet".into()));
        };
        if !game.generator.is_finite() || !game.discriminator.is_finite() {
            let detail = "the candidate has non-finite parameters".to_string();
            return Err(self.refuse("non_finite", detail));
        }
        let cfg = &self.shared.cfg;
        let ranker = cfg.irgan.select_model;
        let ks = [1, 3, 5, 10];
        let score = |s: &Scorer| evaluate(&self.holdout, &ks, |q| s.score(q.features.view()));
        let cand = score(game.player(ranker));
        let cand_ndcg = cand.get(GATE_METRIC).copied().unwrap_or(0.0);
        let live = self.shared.current();
        if let Some(l) = &live {
            let live_player = match ranker {
                Role::Generator => &l.generator,
                Role::Discriminator => &l.discriminator,
            };
            let o = score(live_player).get(GATE_METRIC).copied().unwrap_or(0.0);
            if cand_ndcg < o - cfg.tolerance {
                let detail = format!(
                    "hold-out {GATE_METRIC} {cand_ndcg:.4} is below the live {o:.4} by more than the tolerance"
                );
                return Err(self.refuse("worse", detail));
            }
        }
        let version = live.as_ref().map_or(0, |l| l.version) + 1;
        let snapshot = SearchSnapshot {
            version,
            created_unix_ms: Snapshot::now_unix_ms(),
            generator: game.generator.clone(),
            temperature: cfg.irgan.temperature as f32,
            discriminator: game.discriminator.clone(),
            metadata: json!({
                "method": cfg.method.as_str(),
                "ranker": ranker.as_str(),
                "holdout": cand,
            }),
        };
        if let Err(e) = self.snapshots.write(&snapshot, self.keep) {
            return Err(self.refuse("write_failed", format!("writing the snapshot failed: {e}")));
        }
        self.shared.go_live(snapshot);
        let metrics = &self.shared.metrics;
        metrics.search_snapshot_version.set(version as i64);
        metrics.search_holdout_ndcg.set(cand_ndcg);
        self.published += 1;
        self.last_refusal = None;
        self.live_holdout = Some(json!(cand));
        tracing::info!(version, ndcg10 = cand_ndcg, "published a search snapshot");
        Ok(version)
    }
}

impl OnlineTask for SearchTask {
    type Published = u64;
    type Error = SearchTrainerError;
    type Status = SearchTrainerStatus;

    const THREAD_NAME: &'static str = "search-trainer";
    const IDLE_WAIT: Duration = Duration::from_millis(200);

    fn absorb_new_data(&mut self) {
        let batch = match self.shared.log.read_after(self.seq, BATCH) {
            Ok(batch) if !batch.is_empty() => batch,
            Ok(_) => return,
            Err(e) => {
                tracing::warn!(error = %e, "search trainer: reading the log failed");
                return;
            }
        };
        let (f, every) = (self.shared.cfg.n_features, self.shared.cfg.holdout_every);
        for li in &batch {
            self.seq = li.seq;
            if li.repeat {
                continue; // its id was trained on at a lower seq (a repeat past NATS's window)
            }
            let q = to_query(&li.impression, f);
            if q.len() < 2 || !q.has_relevant() {
                continue; // nothing to learn from an unjudged or single-item list
            }
            self.judged += 1;
            if self.judged.is_multiple_of(every as u64) {
                self.holdout.queries.push(q);
            } else {
                self.train.queries.push(q);
            }
        }
        let excess = self
            .train
            .queries
            .len()
            .saturating_sub(self.shared.cfg.max_train_queries);
        self.train.queries.drain(..excess);
        self.steps_since_data = 0;
    }

    fn can_step(&self) -> bool {
        let cfg = &self.shared.cfg;
        let ready = self.train.queries.len() >= cfg.min_queries && !self.holdout.queries.is_empty();
        ready && self.steps_since_data < cfg.idle_after_steps
    }

    fn step(&mut self) {
        if self.game.is_none() {
            self.game = Some(self.new_game());
        }
        let Some(g) = self.game.as_mut() else {
            return;
        };
        g.d_epoch(&self.train);
        let stats = g.g_epoch(&self.train);
        self.steps_since_data = self.steps_since_data.saturating_add(1);
        self.dirty = true;
        self.shared.metrics.search_trainer_steps.inc();
        self.shared.metrics.search_g_entropy.set(stats.entropy);
    }

    fn publish_due(&self, clock: &Clock) -> bool {
        let first = self.shared.current().is_none() && clock.steps() >= FIRST_PUBLISH_STEPS;
        first || clock.seconds_since_publish() >= self.shared.cfg.publish_every_seconds
    }

    fn publish(&mut self, clock: &mut Clock) -> Result<u64, SearchTrainerError> {
        let r = self.gate_and_publish();
        if r.is_ok() {
            self.dirty = false;
        }
        clock.reset();
        r
    }

    fn publish_now(&mut self, clock: &mut Clock) -> Result<u64, SearchTrainerError> {
        let live = self.shared.current().map(|s| s.version);
        let r = match live {
            _ if self.dirty && self.game.is_some() => self.gate_and_publish(),
            // Nothing trained since: the live version already is the candidate.
            Some(v) if !self.dirty => Ok(v),
            _ => Err(SearchTrainerError::Refused(format!(
                "not enough judged queries yet ({} for training, {} held out; need {} and 1)",
                self.train.queries.len(),
                self.holdout.queries.len(),
                self.shared.cfg.min_queries
            ))),
        };
        if r.is_ok() {
            self.dirty = false;
            clock.reset();
        }
        r
    }

    fn finish(&mut self, _clock: &mut Clock) -> Option<u64> {
        if self.dirty && self.game.is_some() {
            let _ = self.gate_and_publish();
        }
        self.shared.current().map(|s| s.version)
    }

    fn status(&self, clock: &Clock, _paused: bool) -> SearchTrainerStatus {
        SearchTrainerStatus {
            impressions_seen: self.seq,
            train_queries: self.train.queries.len(),
            holdout_queries: self.holdout.queries.len(),
            steps: clock.steps(),
            published: self.published,
            refused: self.refused,
            last_refusal: self.last_refusal.clone(),
            live_holdout: self.live_holdout.clone(),
            // Filled in from the loop's health by `SearchService::info`.
            up: true,
            restarts: 0,
            last_failure: None,
        }
    }

    fn recover(&mut self) -> Result<(), String> {
        // The next step starts a new game from the live pair; the judged queries stay (they
        // are only ever advanced by log position).
        self.game = None;
        self.dirty = false;
        self.last_refusal = None;
        Ok(())
    }
}
