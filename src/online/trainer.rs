//! The recommendation trainer: plays the game on the feedback folded so far, gates candidates
//! on the hold-out and publishes snapshots; driven on its own thread by
//! [`crate::online::trainer_loop`].
//!
//! New feedback is not sent to it but read back from the durable log by sequence number (see
//! [`crate::online::feedback_data`]), so a busy trainer can never lose an acknowledged event.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;
use serde_json::json;

use crate::config::Role;
use crate::data::loader::InteractionSets;
use crate::data::train_data::TrainData;
use crate::data::{IdMap, Interactions};
use crate::eval::evaluate_model;
use crate::model::MfModel;
use crate::model::topk::ItemIndex;
use crate::online::catalogue::{self, Sync};
use crate::online::feedback_data::FeedbackData;
use crate::online::live::{Live, ModelStore};
use crate::online::metrics::Metrics;
use crate::online::restart;
use crate::online::settings::ServiceConfig;
use crate::online::trainer_loop::{self, Clock, LoopError, LoopHandle, OnlineTask};
use crate::rng;
use crate::store::Snapshot;
use crate::store::feedback_log::{FeedbackLog, LogError};
use crate::store::snapshot::SnapshotError;
use crate::store::snapshot_dir::SnapshotDir;
use crate::train::init::{InitError, init_model};
use crate::train::irgan::{DStats, GStats, Game};

/// What the trainer reports about itself (`GET /v1/model`'s game state).
#[derive(Debug, Clone, Default, Serialize)]
pub struct TrainerStatus {
    /// Training is paused.
    pub paused: bool,
    /// Trainer steps since start.
    pub steps: u64,
    /// Last log position folded into the training data.
    pub applied_seq: u64,
    /// Users known to the trainer.
    pub users: usize,
    /// Items known to the trainer.
    pub items: usize,
    /// Positive pairs trained on.
    pub positives: usize,
    /// Positive pairs held out to validate candidates.
    pub holdout: usize,
    /// D's statistics after the last step.
    pub d: DStats,
    /// G's statistics in the last step.
    pub g: GStats,
    /// Why the last candidate was refused, if it was.
    pub last_refusal: Option<String>,
    /// Feedback events read from the log at start (only those after the loaded checkpoint).
    pub replayed_events: u64,
}

/// The result of a publish attempt that succeeded.
#[derive(Debug, Clone, Serialize)]
pub struct Published {
    /// The new live version.
    pub version: u64,
    /// The candidate's validation metrics on the hold-out (metric name → value).
    pub validation: serde_json::Value,
}

/// Why a command could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum TrainerError {
    /// The command queue is full (back-pressure).
    #[error("the trainer is busy; retry shortly")]
    Busy,
    /// The trainer thread has stopped.
    #[error("the trainer has stopped")]
    Stopped,
    /// The candidate failed the publish gate.
    #[error("candidate refused: {0}")]
    Refused(String),
    /// No snapshot with that version exists (or it is unreadable).
    #[error("{0}")]
    NotFound(String),
    /// Something failed inside the trainer.
    #[error(transparent)]
    Internal(#[from] TrainerFailure),
}

/// A failure inside the trainer, with its cause.
#[derive(Debug, thiserror::Error)]
pub enum TrainerFailure {
    /// Reading the feedback log failed.
    #[error("cannot read the feedback log")]
    Log(#[from] LogError),
    /// Writing a snapshot failed.
    #[error("cannot write the snapshot")]
    Snapshot(#[from] SnapshotError),
    /// Pretraining a new pair failed.
    #[error("cannot pretrain the models")]
    Pretrain(#[from] InitError),
    /// The trainer thread could not be started.
    #[error("cannot start the trainer thread")]
    Thread(#[from] std::io::Error),
    /// The trainer loop refused the command.
    #[error("trainer loop")]
    Loop(#[source] LoopError),
}

impl From<LoopError> for TrainerError {
    fn from(e: LoopError) -> Self {
        match e {
            LoopError::Busy => Self::Busy,
            LoopError::Stopped => Self::Stopped,
            LoopError::Unsupported => Self::Internal(TrainerFailure::Loop(e)),
        }
    }
}

impl From<LogError> for TrainerError {
    fn from(e: LogError) -> Self {
        Self::Internal(e.into())
    }
}

/// The handlers' side of the trainer.
#[derive(Clone)]
pub struct TrainerHandle {
    inner: LoopHandle<Trainer>,
    latest_seq: Arc<AtomicU64>,
}

impl TrainerHandle {
    /// Tells the trainer that the log now holds events up to `seq`.
    pub fn notify(&self, seq: u64) {
        self.latest_seq.fetch_max(seq, Ordering::Release);
    }

    /// The trainer's latest status.
    pub fn status(&self) -> TrainerStatus {
        self.inner.status()
    }

    /// Validates the current candidate and publishes it if it passes the gate.
    pub async fn publish(&self) -> Result<Published, TrainerError> {
        self.inner.publish().await
    }

    /// Makes an earlier snapshot live again (roll back); training continues from it.
    pub async fn activate(&self, version: u64) -> Result<u64, TrainerError> {
        self.inner.activate(version).await
    }

    /// Pauses training (queries and feedback continue).
    pub fn pause(&self) -> Result<(), TrainerError> {
        Ok(self.inner.pause()?)
    }

    /// Resumes training.
    pub fn resume(&self) -> Result<(), TrainerError> {
        Ok(self.inner.resume()?)
    }

    /// Folds the remaining feedback, writes a final snapshot if the candidate passes the gate,
    /// and stops the thread. Returns the live version.
    pub async fn shutdown(&self) -> Result<u64, TrainerError> {
        Ok(self.inner.shutdown().await?.unwrap_or(0))
    }
}

/// All mutable training state, owned by the trainer thread.
pub struct Trainer {
    cfg: ServiceConfig,
    data: FeedbackData,
    snapshots: SnapshotDir,
    store: Arc<ModelStore>,
    metrics: Arc<Metrics>,
    game: Option<Game>,
    pretrained_size: (usize, usize),
    next_version: u64,
    d: DStats,
    g: GStats,
    last_refusal: Option<String>,
    replayed_events: u64,
}

/// A model with no users or items (what is served before the first snapshot).
fn empty_model(dim: usize) -> MfModel {
    MfModel::random(0, 0, dim, 0.0, &mut rng::stream(0, 0, 0))
}

impl Trainer {
    /// Loads the newest valid snapshot and its checkpoint, replays the feedback log after it
    /// (all of it for a snapshot without a checkpoint), and trains a first pair if there is
    /// data but no snapshot. Returns the trainer and the live store to serve.
    pub fn start(
        cfg: ServiceConfig,
        log: FeedbackLog,
        snapshots: SnapshotDir,
        metrics: Arc<Metrics>,
    ) -> Result<(Self, Arc<ModelStore>), TrainerError> {
        let (loaded, skipped) = snapshots.newest_valid_checkpointed();
        for (v, e) in skipped {
            tracing::warn!(version = v, error = %e, "skipping unreadable snapshot");
        }
        let next_version = snapshots.versions().last().map_or(1, |v| v + 1);
        let (loaded, checkpoint) = loaded.map_or((None, None), |(s, c)| (Some(s), c));
        let data = restart::restore_data(&cfg.feedback, log, loaded.as_ref(), checkpoint)?;
        let empty = Snapshot {
            version: 0,
            created_unix_ms: Snapshot::now_unix_ms(),
            generator: empty_model(cfg.training.generator.dim),
            generator_temperature: cfg.training.generator.temperature as f32,
            discriminator: empty_model(cfg.training.discriminator.dim),
            users: IdMap::new(),
            items: IdMap::new(),
            metadata: json!({ "source": "empty" }),
        };
        let store = Arc::new(ModelStore::new(Live::new(
            empty,
            &Interactions::default(),
            0,
            0.5,
        )));
        let mut t = Self {
            replayed_events: data.folded_events,
            data,
            cfg,
            snapshots,
            store: store.clone(),
            metrics,
            game: None,
            pretrained_size: (0, 0),
            next_version,
            d: DStats::default(),
            g: GStats::default(),
            last_refusal: None,
        };
        t.data.rebuild_sets();
        match loaded {
            Some(s) => {
                let (g, d) = (s.generator.clone(), s.discriminator.clone());
                t.pretrained_size = (t.data.users.len(), t.data.items.len());
                t.set_game(g, d);
                t.metrics.snapshot_version.set(s.version as i64);
                t.go_live(s);
                // The replayed events are already in the loaded snapshot's catalogue or not:
                // either way they count from now for the lag metric only if newer.
                t.data.unpublished_acks.clear();
            }
            None if t.data.train.nnz() > 0 => {
                t.pretrain()?;
                t.gate_and_publish(&mut Clock::default())?;
            }
            None => {}
        }
        t.count_catalogue();
        Ok((t, store))
    }

    /// Spawns the trainer thread; the handle is the only way to talk to it.
    pub fn spawn(self) -> Result<TrainerHandle, TrainerError> {
        let latest_seq = self.data.latest_seq();
        let (inner, _thread) = trainer_loop::spawn(self).map_err(TrainerFailure::from)?;
        Ok(TrainerHandle { inner, latest_seq })
    }

    /// Folds new feedback, rebuilds the sets if it changed, and makes the models cover them.
    fn refresh(&mut self) -> Result<(), TrainerError> {
        self.data.fold_new_events()?;
        if self.data.is_dirty() {
            self.data.rebuild_sets();
            self.count_catalogue();
        }
        // Even without new feedback: a pretrain that failed earlier is retried here.
        self.sync_catalogue()
    }

    fn count_catalogue(&self) {
        self.metrics.users.set(self.data.users.len() as i64);
        self.metrics.items.set(self.data.items.len() as i64);
    }

    /// Makes the models cover the feedback (see [`catalogue::sync`]): pretrain the first pair,
    /// re-pretrain after large growth, otherwise grow the pair and fold in changed rows.
    fn sync_catalogue(&mut self) -> Result<(), TrainerError> {
        let factor = self.cfg.trainer.regrow_factor;
        let (game, size) = (self.game.as_mut(), self.pretrained_size);
        match catalogue::sync(game, &mut self.data, size, factor, &self.cfg.training) {
            Sync::Done => Ok(()),
            Sync::Pretrain => self.pretrain(),
            Sync::Replace(pair) => {
                let (g, d) = *pair;
                self.set_game(g, d);
                Ok(())
            }
        }
    }

    fn pretrain(&mut self) -> Result<(), TrainerError> {
        let data = TrainData {
            users: self.data.users.clone(),
            items: self.data.items.clone(),
            train: InteractionSets {
                positives: self.data.train.clone(),
                seen: self.data.seen.clone(),
            },
            fit: self.data.train.clone(),
            validation: self.data.holdout.clone(),
            test: None,
        };
        let cfg = &self.cfg.training;
        let mut cache = Vec::new();
        let g = init_model(&cfg.generator, cfg, &data, Role::Generator, &mut cache)
            .map_err(TrainerFailure::from)?;
        let d = init_model(
            &cfg.discriminator,
            cfg,
            &data,
            Role::Discriminator,
            &mut cache,
        )
        .map_err(TrainerFailure::from)?;
        self.pretrained_size = (self.data.users.len(), self.data.items.len());
        self.data.mark_synced();
        self.set_game(g, d);
        tracing::info!(
            users = self.data.users.len(),
            items = self.data.items.len(),
            "pretrained a new pair"
        );
        Ok(())
    }

    fn set_game(&mut self, g: MfModel, d: MfModel) {
        self.game = Some(Game::new(g, d, self.cfg.training.game()));
    }

    /// Validation metrics of a model on the hold-out (empty if there is no hold-out).
    fn validate(&self, model: &MfModel) -> crate::eval::Metrics {
        let ks = [5, 10];
        evaluate_model(model, &self.data.train, &self.data.holdout, &ks)
    }

    /// Counts a refused candidate and starts a new publish period.
    fn refuse(&mut self, clock: &mut Clock, reason: &str, detail: String) -> TrainerError {
        self.metrics
            .publish_refusals
            .with_label_values(&[reason])
            .inc();
        self.last_refusal = Some(detail.clone());
        clock.reset();
        TrainerError::Refused(detail)
    }

    /// Why the candidate pair may not go live, if it may not.
    fn gate(&self, g: &MfModel, d: &MfModel, trained: bool) -> Result<(), (&'static str, String)> {
        if !(g.is_finite() && d.is_finite()) {
            return Err(("not_finite", "non-finite parameters".into()));
        }
        let t = &self.cfg.trainer;
        if trained && self.g.entropy < t.min_entropy {
            let msg = format!(
                "G collapsed: entropy {:.3} < {}",
                self.g.entropy, t.min_entropy
            );
            return Err(("collapsed", msg));
        }
        if trained && self.d.accuracy_real < t.min_d_accuracy {
            let msg = format!(
                "D accuracy {:.3} < {}",
                self.d.accuracy_real, t.min_d_accuracy
            );
            return Err(("d_accuracy", msg));
        }
        Ok(())
    }

    /// Whether the candidate's hold-out metric is not worse than the live G's by more than the
    /// tolerance (always true without a hold-out or a live snapshot).
    fn compare_with_live(&self, candidate: &crate::eval::Metrics) -> Result<(), String> {
        let live = self.store.current();
        if self.data.holdout.nnz() == 0 || live.version() == 0 {
            return Ok(());
        }
        let metric = &self.cfg.trainer.gate_metric;
        let mut old = live.snapshot.generator.clone();
        old.grow(
            self.data.users.len(),
            self.data.items.len(),
            0.0,
            &mut rng::stream(0, 0, 0),
        );
        let before = self.validate(&old);
        let (c, b) = (
            candidate.get(metric).copied().unwrap_or(0.0),
            before.get(metric).copied().unwrap_or(0.0),
        );
        if c < b - self.cfg.trainer.tolerance {
            return Err(format!(
                "{metric} {c:.4} is below the live {b:.4} by more than {}",
                self.cfg.trainer.tolerance
            ));
        }
        Ok(())
    }

    /// Gates the candidate and, if it passes, writes and swaps it in.
    fn gate_and_publish(&mut self, clock: &mut Clock) -> Result<Published, TrainerError> {
        let Some(game) = &self.game else {
            return Err(TrainerError::Refused("no training data yet".into()));
        };
        let (g, d) = (game.generator.clone(), game.discriminator.clone());
        let (d_epochs, g_epochs) = (game.d_epochs(), game.g_epochs());
        if let Err((reason, detail)) = self.gate(&g, &d, clock.steps_since_publish() > 0) {
            return Err(self.refuse(clock, reason, detail));
        }
        let candidate = self.validate(&g);
        if let Err(detail) = self.compare_with_live(&candidate) {
            return Err(self.refuse(clock, "worse", detail));
        }
        let started = std::time::Instant::now();
        let version = self.next_version;
        let validation = json!(candidate);
        let snapshot = Snapshot {
            version,
            created_unix_ms: Snapshot::now_unix_ms(),
            generator: g,
            generator_temperature: self.cfg.training.generator.temperature as f32,
            discriminator: d,
            users: self.data.users.clone(),
            items: self.data.items.clone(),
            metadata: json!({
                "source": "irgan serve",
                "validation": validation,
                "training": { "steps": clock.steps(), "d_epochs": d_epochs, "g_epochs": g_epochs },
                "game": { "d": self.d, "g": self.g },
                "trained_through_seq": self.data.applied_seq,
            }),
        };
        let checkpoint = self.data.checkpoint();
        self.snapshots
            .write_checkpointed(&snapshot, &checkpoint, self.cfg.storage.keep_snapshots)
            .map_err(TrainerFailure::from)?;
        self.next_version += 1;
        self.go_live(snapshot);
        self.metrics
            .swap_seconds
            .observe(started.elapsed().as_secs_f64());
        let now = Snapshot::now_unix_ms();
        for &acked in &self.data.unpublished_acks {
            self.metrics
                .feedback_to_snapshot_seconds
                .observe(now.saturating_sub(acked) as f64 / 1e3);
        }
        self.data.published();
        clock.reset();
        self.last_refusal = None;
        Ok(Published {
            version,
            validation,
        })
    }

    fn go_live(&mut self, snapshot: Snapshot) {
        let version = snapshot.version;
        let server = &self.cfg.server;
        let live = Live::new(
            snapshot,
            &self.data.seen,
            server.precompute_k,
            server.blend_weight,
        )
        .with_index(&self.cfg.index);
        let approximate = matches!(live.index, ItemIndex::Approximate(_));
        self.metrics
            .topk_index_approximate
            .set(i64::from(approximate));
        self.metrics
            .topk_index_bytes
            .set(live.index.memory_bytes() as i64);
        self.metrics.snapshot_version.set(version as i64);
        self.metrics
            .snapshot_published
            .set(live.published_unix_ms as f64 / 1e3);
        self.store.publish(Arc::new(live));
    }
}

impl OnlineTask for Trainer {
    type Published = Published;
    type Error = TrainerError;
    type Status = TrainerStatus;

    const THREAD_NAME: &'static str = "irgan-trainer";
    const IDLE_WAIT: Duration = Duration::from_millis(50);

    fn absorb_new_data(&mut self) {
        if let Err(e) = self.data.fold_new_events() {
            tracing::error!(error = %e, "cannot read the feedback log");
        }
        if self.data.is_dirty() || self.data.has_unsynced() {
            self.data.rebuild_sets();
            self.count_catalogue();
            if let Err(e) = self.sync_catalogue() {
                tracing::error!(error = %e, "cannot prepare the models");
            }
        }
    }

    fn can_step(&self) -> bool {
        self.cfg.trainer.enabled && self.game.is_some()
    }

    fn step(&mut self) {
        let Some(game) = self.game.as_mut() else {
            return;
        };
        game.d_phase(&self.data.train, self.cfg.trainer.d_epochs_per_step);
        self.d = game.d_stats();
        self.g = game.g_epoch(&self.data.train);
        let m = &self.metrics;
        m.trainer_steps.inc();
        m.d_loss.set(self.d.loss);
        m.d_accuracy_real.set(self.d.accuracy_real);
        m.d_accuracy_generated.set(self.d.accuracy_generated);
        m.g_loss.set(self.g.loss);
        m.g_entropy.set(self.g.entropy);
        m.mean_reward.set(self.g.mean_reward);
    }

    fn publish_due(&self, clock: &Clock) -> bool {
        clock.steps_since_publish() >= self.cfg.trainer.publish_every_steps
            || clock.seconds_since_publish() >= self.cfg.trainer.publish_every_seconds
    }

    fn publish(&mut self, clock: &mut Clock) -> Result<Published, TrainerError> {
        self.gate_and_publish(clock)
            .inspect_err(|e| tracing::info!(reason = %e, "kept the live snapshot"))
    }

    fn publish_now(&mut self, clock: &mut Clock) -> Result<Published, TrainerError> {
        self.refresh()?;
        self.gate_and_publish(clock)
    }

    fn activate(&mut self, version: u64, clock: &mut Clock) -> Result<u64, TrainerError> {
        let s = self
            .snapshots
            .read(version)
            .map_err(|e| TrainerError::NotFound(format!("snapshot {version}: {e}")))?;
        let (mut g, mut d) = (s.generator.clone(), s.discriminator.clone());
        // Ids learnt after that snapshot keep their indices: the snapshot's map is a prefix.
        let mut r = rng::stream(self.cfg.training.seed, 0xAC7, version);
        let (nu, ni) = (self.data.users.len(), self.data.items.len());
        g.grow(nu, ni, self.cfg.training.generator.init_scale, &mut r);
        d.grow(nu, ni, self.cfg.training.discriminator.init_scale, &mut r);
        self.set_game(g, d);
        clock.reset();
        self.go_live(s);
        Ok(version)
    }

    fn finish(&mut self, clock: &mut Clock) -> Option<u64> {
        let _ = self.data.fold_new_events();
        self.data.rebuild_sets();
        let _ = self.sync_catalogue();
        let pending = clock.steps_since_publish() > 0 || !self.data.unpublished_acks.is_empty();
        if pending && let Err(e) = self.gate_and_publish(clock) {
            tracing::warn!(reason = %e, "final candidate refused; keeping the live snapshot");
        }
        Some(self.store.current().version())
    }

    fn status(&self, clock: &Clock, paused: bool) -> TrainerStatus {
        TrainerStatus {
            paused,
            steps: clock.steps(),
            applied_seq: self.data.applied_seq,
            users: self.data.users.len(),
            items: self.data.items.len(),
            positives: self.data.train.nnz(),
            holdout: self.data.holdout.nnz(),
            d: self.d,
            g: self.g,
            last_refusal: self.last_refusal.clone(),
            replayed_events: self.replayed_events,
        }
    }
}
