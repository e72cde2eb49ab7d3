//! The background trainer: folds durable feedback into the training data, plays the game, and
//! publishes gated snapshots.
//!
//! It owns all mutable training state on its own thread (CPU work never runs on an async
//! worker). Handlers reach it through a bounded command channel; new feedback is not sent to
//! it but read back from the durable log by sequence number, so a busy trainer can never lose
//! an acknowledged event.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::Serialize;
use serde_json::json;
use tokio::sync::oneshot;

use crate::config::Role;
use crate::data::loader::InteractionSets;
use crate::data::train_data::TrainData;
use crate::data::{IdMap, Interactions};
use crate::eval::evaluate_model;
use crate::model::MfModel;
use crate::online::live::{Live, ModelStore};
use crate::online::metrics::Metrics;
use crate::online::settings::ServiceConfig;
use crate::rng;
use crate::store::Snapshot;
use crate::store::feedback_log::{FeedbackLog, LoggedEvent};
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
#[derive(Debug, Clone, thiserror::Error)]
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
    #[error("{0}")]
    Internal(String),
}

enum Command {
    Publish(oneshot::Sender<Result<Published, TrainerError>>),
    Activate(u64, oneshot::Sender<Result<u64, TrainerError>>),
    Pause,
    Resume,
    Shutdown(oneshot::Sender<Result<u64, TrainerError>>),
}

/// The handlers' side of the trainer.
#[derive(Clone)]
pub struct TrainerHandle {
    tx: SyncSender<Command>,
    status: Arc<Mutex<TrainerStatus>>,
    latest_seq: Arc<AtomicU64>,
}

impl TrainerHandle {
    /// Tells the trainer that the log now holds events up to `seq`.
    pub fn notify(&self, seq: u64) {
        self.latest_seq.fetch_max(seq, Ordering::Release);
    }

    /// The trainer's latest status.
    pub fn status(&self) -> TrainerStatus {
        self.status.lock().clone()
    }

    fn send(&self, c: Command) -> Result<(), TrainerError> {
        self.tx.try_send(c).map_err(|e| match e {
            TrySendError::Full(_) => TrainerError::Busy,
            TrySendError::Disconnected(_) => TrainerError::Stopped,
        })
    }

    /// Validates the current candidate and publishes it if it passes the gate.
    pub async fn publish(&self) -> Result<Published, TrainerError> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Publish(tx))?;
        rx.await.map_err(|_| TrainerError::Stopped)?
    }

    /// Makes an earlier snapshot live again (roll back); training continues from it.
    pub async fn activate(&self, version: u64) -> Result<u64, TrainerError> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Activate(version, tx))?;
        rx.await.map_err(|_| TrainerError::Stopped)?
    }

    /// Pauses training (queries and feedback continue).
    pub fn pause(&self) -> Result<(), TrainerError> {
        self.send(Command::Pause)
    }

    /// Resumes training.
    pub fn resume(&self) -> Result<(), TrainerError> {
        self.send(Command::Resume)
    }

    /// Folds the remaining feedback, writes a final snapshot if the candidate passes the gate,
    /// and stops the thread. Returns the live version.
    pub async fn shutdown(&self) -> Result<u64, TrainerError> {
        let (tx, rx) = oneshot::channel();
        // Shutdown must get through even when the queue is full.
        self.tx
            .send(Command::Shutdown(tx))
            .map_err(|_| TrainerError::Stopped)?;
        rx.await.map_err(|_| TrainerError::Stopped)?
    }
}

/// Whether a pair of external ids is held out for validation: a fixed hash, so the same pair
/// is held out across restarts.
fn held_out(user: &str, item: &str, fraction: f64) -> bool {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in user.bytes().chain([0xff]).chain(item.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    ((h >> 11) as f64 / (1u64 << 53) as f64) < fraction
}

/// All mutable training state, owned by the trainer thread.
pub struct Trainer {
    cfg: ServiceConfig,
    log: FeedbackLog,
    snapshots: SnapshotDir,
    store: Arc<ModelStore>,
    metrics: Arc<Metrics>,
    status: Arc<Mutex<TrainerStatus>>,
    latest_seq: Arc<AtomicU64>,
    users: IdMap,
    items: IdMap,
    /// Summed event weight per (user, item), and whether the pair is held out.
    weights: HashMap<(u32, u32), (f64, bool)>,
    train: Interactions,
    holdout: Interactions,
    seen: Interactions,
    dirty: bool,
    applied_seq: u64,
    /// Acknowledgement times of events folded since the last publish (for the lag metric).
    unpublished_acks: Vec<u64>,
    game: Option<Game>,
    pretrained_size: (usize, usize),
    paused: bool,
    steps: u64,
    steps_since_publish: u64,
    last_publish: Instant,
    next_version: u64,
    d: DStats,
    g: GStats,
    last_refusal: Option<String>,
}

impl Trainer {
    /// Loads the newest valid snapshot, replays the whole feedback log into the training data,
    /// and trains a first pair if there is data but no snapshot. Returns the trainer and the
    /// live store to serve.
    pub fn start(
        cfg: ServiceConfig,
        log: FeedbackLog,
        snapshots: SnapshotDir,
        metrics: Arc<Metrics>,
    ) -> Result<(Self, Arc<ModelStore>), TrainerError> {
        let (loaded, skipped) = snapshots.newest_valid();
        for (v, e) in skipped {
            tracing::warn!(version = v, error = %e, "skipping unreadable snapshot");
        }
        let next_version = snapshots.versions().last().map_or(1, |v| v + 1);
        let (users, items) = loaded
            .as_ref()
            .map(|s| (s.users.clone(), s.items.clone()))
            .unwrap_or_default();
        let empty = Snapshot {
            version: 0,
            created_unix_ms: Snapshot::now_unix_ms(),
            generator: MfModel::random(
                0,
                0,
                cfg.training.generator.dim,
                0.0,
                &mut rng::stream(0, 0, 0),
            ),
            generator_temperature: cfg.training.generator.temperature as f32,
            discriminator: MfModel::random(
                0,
                0,
                cfg.training.discriminator.dim,
                0.0,
                &mut rng::stream(0, 0, 0),
            ),
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
            cfg,
            log,
            snapshots,
            store: store.clone(),
            metrics,
            status: Arc::default(),
            latest_seq: Arc::default(),
            users,
            items,
            weights: HashMap::new(),
            train: Interactions::default(),
            holdout: Interactions::default(),
            seen: Interactions::default(),
            dirty: true,
            applied_seq: 0,
            unpublished_acks: Vec::new(),
            game: None,
            pretrained_size: (0, 0),
            paused: false,
            steps: 0,
            steps_since_publish: 0,
            last_publish: Instant::now(),
            next_version,
            d: DStats::default(),
            g: GStats::default(),
            last_refusal: None,
        };
        t.fold_new_events()?;
        t.rebuild_sets();
        match loaded {
            Some(s) => {
                let (g, d) = (s.generator.clone(), s.discriminator.clone());
                t.pretrained_size = (t.users.len(), t.items.len());
                t.set_game(g, d);
                t.metrics.snapshot_version.set(s.version as i64);
                t.go_live(s);
                // The replayed events are already in the loaded snapshot's catalogue or not:
                // either way they count from now for the lag metric only if newer.
                t.unpublished_acks.clear();
            }
            None if t.train.nnz() > 0 => {
                t.pretrain()?;
                t.publish()?;
            }
            None => {}
        }
        t.publish_status();
        Ok((t, store))
    }

    /// Spawns the trainer thread; the handle is the only way to talk to it.
    pub fn spawn(self) -> Result<TrainerHandle, TrainerError> {
        let (tx, rx) = std::sync::mpsc::sync_channel(64);
        let handle = TrainerHandle {
            tx,
            status: self.status.clone(),
            latest_seq: self.latest_seq.clone(),
        };
        std::thread::Builder::new()
            .name("irgan-trainer".into())
            .spawn(move || self.run(rx))
            .map_err(|e| TrainerError::Internal(format!("cannot start the trainer thread: {e}")))?;
        Ok(handle)
    }

    fn run(mut self, rx: Receiver<Command>) {
        loop {
            let idle = self.paused || !self.cfg.trainer.enabled || self.game.is_none();
            let cmd = if idle {
                match rx.recv_timeout(Duration::from_millis(50)) {
                    Ok(c) => Some(c),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => return,
                }
            } else {
                rx.try_recv().ok()
            };
            if let Some(c) = cmd {
                if self.handle(c) {
                    return;
                }
                continue;
            }
            if let Err(e) = self.fold_new_events() {
                tracing::error!(error = %e, "cannot read the feedback log");
            }
            if self.dirty {
                self.rebuild_sets();
                if let Err(e) = self.sync_catalogue() {
                    tracing::error!(error = %e, "cannot prepare the models");
                }
            }
            if !(self.paused || !self.cfg.trainer.enabled || self.game.is_none()) {
                self.step();
                let due = self.steps_since_publish >= self.cfg.trainer.publish_every_steps
                    || self.last_publish.elapsed().as_secs_f64()
                        >= self.cfg.trainer.publish_every_seconds;
                if due && let Err(e) = self.publish() {
                    tracing::info!(reason = %e, "kept the live snapshot");
                }
            }
            self.publish_status();
        }
    }

    /// Carries out a command; true means stop.
    fn handle(&mut self, c: Command) -> bool {
        match c {
            Command::Pause => self.paused = true,
            Command::Resume => self.paused = false,
            Command::Publish(reply) => {
                let r = self.fold_new_events().and_then(|()| {
                    self.rebuild_sets();
                    self.sync_catalogue()?;
                    self.publish()
                });
                let _ = reply.send(r);
            }
            Command::Activate(version, reply) => {
                let _ = reply.send(self.activate(version));
            }
            Command::Shutdown(reply) => {
                let _ = self.fold_new_events();
                self.rebuild_sets();
                let _ = self.sync_catalogue();
                let pending = self.steps_since_publish > 0 || !self.unpublished_acks.is_empty();
                if pending && let Err(e) = self.publish() {
                    tracing::warn!(reason = %e, "final candidate refused; keeping the live snapshot");
                }
                let _ = reply.send(Ok(self.store.current().version()));
                return true;
            }
        }
        self.publish_status();
        false
    }

    /// Reads events newer than `applied_seq` from the log and folds them into the weights.
    fn fold_new_events(&mut self) -> Result<(), TrainerError> {
        if self.latest_seq.load(Ordering::Acquire) <= self.applied_seq && self.applied_seq > 0 {
            return Ok(());
        }
        loop {
            let batch = self
                .log
                .read_after(self.applied_seq, 50_000)
                .map_err(|e| TrainerError::Internal(e.to_string()))?;
            if batch.is_empty() {
                return Ok(());
            }
            for e in &batch {
                self.fold(e);
            }
            self.applied_seq = batch.last().map_or(self.applied_seq, |e| e.seq);
            self.latest_seq
                .fetch_max(self.applied_seq, Ordering::Release);
        }
    }

    fn fold(&mut self, e: &LoggedEvent) {
        let weight = self
            .cfg
            .feedback
            .types
            .get(&e.event.kind)
            .copied()
            .unwrap_or(0.0);
        let u = self.users.get_or_insert(&e.event.user);
        let i = self.items.get_or_insert(&e.event.item);
        let fraction = self.cfg.feedback.holdout_fraction;
        let entry = self
            .weights
            .entry((u, i))
            .or_insert_with(|| (0.0, held_out(&e.event.user, &e.event.item, fraction)));
        // A value scales its type's weight (e.g. a rating); the HTTP layer has checked it is finite.
        entry.0 += weight * e.event.value.unwrap_or(1.0);
        self.unpublished_acks.push(e.acked_unix_ms);
        self.dirty = true;
    }

    /// Rebuilds the train, hold-out and seen sets from the weights.
    fn rebuild_sets(&mut self) {
        if !self.dirty {
            return;
        }
        let threshold = self.cfg.feedback.positive_threshold;
        let (mut train, mut holdout, mut seen) = (Vec::new(), Vec::new(), Vec::new());
        for (&(u, i), &(w, held)) in &self.weights {
            seen.push((u, i));
            if w >= threshold {
                if held {
                    holdout.push((u, i))
                } else {
                    train.push((u, i))
                }
            }
        }
        let (nu, ni) = (self.users.len(), self.items.len());
        self.train = Interactions::from_pairs(nu, ni, &train);
        self.holdout = Interactions::from_pairs(nu, ni, &holdout);
        self.seen = Interactions::from_pairs(nu, ni, &seen);
        self.dirty = false;
    }

    /// Makes the models cover the catalogue: pretrain the first pair, re-pretrain after large
    /// growth, otherwise grow the existing pair.
    fn sync_catalogue(&mut self) -> Result<(), TrainerError> {
        let (nu, ni) = (self.users.len(), self.items.len());
        if self.train.nnz() == 0 {
            return Ok(());
        }
        let (pu, pi) = self.pretrained_size;
        let factor = self.cfg.trainer.regrow_factor;
        let grown_a_lot =
            (nu as f64) >= factor * pu.max(1) as f64 || (ni as f64) >= factor * pi.max(1) as f64;
        match &self.game {
            None => self.pretrain(),
            Some(_) if grown_a_lot => self.pretrain(),
            Some(game) if game.generator.n_users() < nu || game.generator.n_items() < ni => {
                let (mut g, mut d) = (game.generator.clone(), game.discriminator.clone());
                let old_users = g.n_users();
                let mut r = rng::stream(self.cfg.training.seed, 0x6E0, (nu * 31 + ni) as u64);
                g.grow(nu, ni, self.cfg.training.generator.init_scale, &mut r);
                d.grow(nu, ni, self.cfg.training.discriminator.init_scale, &mut r);
                // New users get their iALS solution against the current item factors, so
                // their first snapshot already reflects their feedback.
                let als = &self.cfg.training.pretrain.als;
                crate::train::als::fold_in(&mut g, &self.train, old_users..nu, als);
                crate::train::als::fold_in(&mut d, &self.train, old_users..nu, als);
                self.set_game(g, d);
                Ok(())
            }
            Some(_) => Ok(()),
        }
    }

    fn pretrain(&mut self) -> Result<(), TrainerError> {
        let data = TrainData {
            users: self.users.clone(),
            items: self.items.clone(),
            train: InteractionSets {
                positives: self.train.clone(),
                seen: self.seen.clone(),
            },
            fit: self.train.clone(),
            validation: self.holdout.clone(),
            test: None,
        };
        let cfg = &self.cfg.training;
        let mut cache = Vec::new();
        let err = |e: InitError| TrainerError::Internal(e.to_string());
        let g = init_model(&cfg.generator, cfg, &data, Role::Generator, &mut cache).map_err(err)?;
        let d = init_model(
            &cfg.discriminator,
            cfg,
            &data,
            Role::Discriminator,
            &mut cache,
        )
        .map_err(err)?;
        self.pretrained_size = (self.users.len(), self.items.len());
        self.set_game(g, d);
        tracing::info!(
            users = self.users.len(),
            items = self.items.len(),
            "pretrained a new pair"
        );
        Ok(())
    }

    fn set_game(&mut self, g: MfModel, d: MfModel) {
        self.game = Some(Game::new(g, d, self.cfg.training.game()));
    }

    fn step(&mut self) {
        let Some(game) = self.game.as_mut() else {
            return;
        };
        game.d_phase(&self.train, self.cfg.trainer.d_epochs_per_step);
        self.d = game.d_stats();
        self.g = game.g_epoch(&self.train);
        self.steps += 1;
        self.steps_since_publish += 1;
        let m = &self.metrics;
        m.trainer_steps.inc();
        m.d_loss.set(self.d.loss);
        m.d_accuracy_real.set(self.d.accuracy_real);
        m.d_accuracy_generated.set(self.d.accuracy_generated);
        m.g_loss.set(self.g.loss);
        m.g_entropy.set(self.g.entropy);
        m.mean_reward.set(self.g.mean_reward);
    }

    /// Validation metrics of a model on the hold-out (empty if there is no hold-out).
    fn validate(&self, model: &MfModel) -> crate::eval::Metrics {
        let ks = [5, 10];
        evaluate_model(model, &self.train, &self.holdout, &ks)
    }

    /// Gates the candidate and, if it passes, writes and swaps it in.
    fn publish(&mut self) -> Result<Published, TrainerError> {
        let refuse = |t: &mut Self, reason: &str, detail: String| {
            t.metrics
                .publish_refusals
                .with_label_values(&[reason])
                .inc();
            t.last_refusal = Some(detail.clone());
            t.steps_since_publish = 0;
            t.last_publish = Instant::now();
            Err(TrainerError::Refused(detail))
        };
        let Some(game) = &self.game else {
            return Err(TrainerError::Refused("no training data yet".into()));
        };
        let (g, d) = (game.generator.clone(), game.discriminator.clone());
        if !(g.is_finite() && d.is_finite()) {
            return refuse(self, "not_finite", "non-finite parameters".into());
        }
        let trained = self.steps_since_publish > 0;
        let t = &self.cfg.trainer;
        if trained && self.g.entropy < t.min_entropy {
            let msg = format!(
                "G collapsed: entropy {:.3} < {}",
                self.g.entropy, t.min_entropy
            );
            return refuse(self, "collapsed", msg);
        }
        if trained && self.d.accuracy_real < t.min_d_accuracy {
            let msg = format!(
                "D accuracy {:.3} < {}",
                self.d.accuracy_real, t.min_d_accuracy
            );
            return refuse(self, "d_accuracy", msg);
        }
        let candidate = self.validate(&g);
        let live = self.store.current();
        let metric = self.cfg.trainer.gate_metric.clone();
        if self.holdout.nnz() > 0 && live.version() > 0 {
            let mut old = live.snapshot.generator.clone();
            old.grow(
                self.users.len(),
                self.items.len(),
                0.0,
                &mut rng::stream(0, 0, 0),
            );
            let before = self.validate(&old);
            let (c, b) = (
                candidate.get(&metric).copied().unwrap_or(0.0),
                before.get(&metric).copied().unwrap_or(0.0),
            );
            if c < b - self.cfg.trainer.tolerance {
                let msg = format!(
                    "{metric} {c:.4} is below the live {b:.4} by more than {}",
                    self.cfg.trainer.tolerance
                );
                return refuse(self, "worse", msg);
            }
        }
        let started = Instant::now();
        let version = self.next_version;
        let validation = json!(candidate);
        let snapshot = Snapshot {
            version,
            created_unix_ms: Snapshot::now_unix_ms(),
            generator: g,
            generator_temperature: self.cfg.training.generator.temperature as f32,
            discriminator: d,
            users: self.users.clone(),
            items: self.items.clone(),
            metadata: json!({
                "source": "irgan serve",
                "validation": validation,
                "training": { "steps": self.steps, "d_epochs": game.d_epochs(), "g_epochs": game.g_epochs() },
                "game": { "d": self.d, "g": self.g },
                "trained_through_seq": self.applied_seq,
            }),
        };
        self.snapshots
            .write(&snapshot, self.cfg.storage.keep_snapshots)
            .map_err(|e| TrainerError::Internal(e.to_string()))?;
        self.next_version += 1;
        self.go_live(snapshot);
        self.metrics
            .swap_seconds
            .observe(started.elapsed().as_secs_f64());
        let now = Snapshot::now_unix_ms();
        for &acked in &self.unpublished_acks {
            self.metrics
                .feedback_to_snapshot_seconds
                .observe(now.saturating_sub(acked) as f64 / 1e3);
        }
        self.unpublished_acks.clear();
        self.steps_since_publish = 0;
        self.last_publish = Instant::now();
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
            &self.seen,
            server.precompute_k,
            server.blend_weight,
        );
        self.metrics.snapshot_version.set(version as i64);
        self.metrics
            .snapshot_published
            .set(live.published_unix_ms as f64 / 1e3);
        self.store.publish(Arc::new(live));
    }

    fn activate(&mut self, version: u64) -> Result<u64, TrainerError> {
        let s = self
            .snapshots
            .read(version)
            .map_err(|e| TrainerError::NotFound(format!("snapshot {version}: {e}")))?;
        let (mut g, mut d) = (s.generator.clone(), s.discriminator.clone());
        // Ids learnt after that snapshot keep their indices: the snapshot's map is a prefix.
        let mut r = rng::stream(self.cfg.training.seed, 0xAC7, version);
        g.grow(
            self.users.len(),
            self.items.len(),
            self.cfg.training.generator.init_scale,
            &mut r,
        );
        d.grow(
            self.users.len(),
            self.items.len(),
            self.cfg.training.discriminator.init_scale,
            &mut r,
        );
        self.set_game(g, d);
        self.steps_since_publish = 0;
        self.last_publish = Instant::now();
        self.go_live(s);
        Ok(version)
    }

    fn publish_status(&self) {
        let mut s = self.status.lock();
        *s = TrainerStatus {
            paused: self.paused,
            steps: self.steps,
            applied_seq: self.applied_seq,
            users: self.users.len(),
            items: self.items.len(),
            positives: self.train.nnz(),
            holdout: self.holdout.nnz(),
            d: self.d,
            g: self.g,
            last_refusal: self.last_refusal.clone(),
        };
        self.metrics.users.set(self.users.len() as i64);
        self.metrics.items.set(self.items.len() as i64);
    }
}
