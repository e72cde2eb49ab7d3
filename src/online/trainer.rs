//! The recommendation trainer: plays the game on the feedback folded so far, gates candidates
//! on the hold-out and publishes snapshots; driven on its own thread by
//! [`crate::online::trainer_loop`].
//!
//! New feedback is not sent to it but read back from the durable log by sequence number (see
//! [`crate::online::feedback_data`]), so a busy trainer can never lose an acknowledged event.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::json;

use crate::config::Role;
use crate::data::loader::InteractionSets;
use crate::data::train_data::TrainData;
use crate::data::{IdMap, Interactions};
use crate::model::MfModel;
use crate::online::background;
use crate::online::catalogue::{self, Sync};
use crate::online::feedback_data::FeedbackData;
use crate::online::gate::Gate;
use crate::online::history::{History, STEP_GAP};
use crate::online::live::{Live, ModelStore};
use crate::online::metrics::Metrics;
use crate::online::regrow;
use crate::online::restart;
use crate::online::schedule::{Reason, Schedule};
use crate::online::settings::ServiceConfig;
use crate::online::staging::Staged;
use crate::online::step_window::StepWindow;
use crate::online::trainer_loop::{self, Clock, LoopError, LoopMetrics, OnlineTask};
use crate::online::trainer_status;
use crate::rng;
use crate::store::Snapshot;
use crate::store::backend::{SharedLog, SharedSnapshots};
use crate::store::feedback_log::LogError;
use crate::store::snapshot::SnapshotError;
use crate::train::init::{InitError, init_model};
use crate::train::irgan::{DStats, GStats, Game, GameSettings};

pub use crate::online::trainer_status::TrainerStatus;

mod publish;

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
    /// The snapshot cannot be made live over today's catalogue (the message says why).
    #[error("{0}")]
    Incompatible(String),
    /// This process does not train (a serving replica); training commands go to the trainer.
    #[error(
        "this replica only serves (server.role = \"serve\"); send training commands to the trainer"
    )]
    NoTrainer,
    /// The trainer failed and is restarting from the live snapshot.
    #[error("the trainer is restarting after a failure; retry shortly")]
    Restarting,
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
            LoopError::Restarting => Self::Restarting,
            LoopError::Unsupported => Self::Internal(TrainerFailure::Loop(e)),
        }
    }
}

impl From<LogError> for TrainerError {
    fn from(e: LogError) -> Self {
        Self::Internal(e.into())
    }
}

pub use crate::online::trainer_handle::TrainerHandle;

/// All mutable training state, owned by the trainer thread.
pub struct Trainer {
    cfg: ServiceConfig,
    data: FeedbackData,
    snapshots: SharedSnapshots,
    store: Arc<ModelStore>,
    metrics: Arc<Metrics>,
    game: Option<Game>,
    pretrained_size: (usize, usize),
    next_version: u64,
    d: DStats,
    g: GStats,
    last_refusal: Option<String>,
    gate: Gate,
    schedule: Schedule,
    window: StepWindow,
    replayed_events: u64,
    history: Arc<History>,
    /// A game candidate filling its caches before it goes live.
    staged: Option<Staged>,
    /// When a fold-in publish last failed (it is retried a second later, not every turn).
    fold_in_failed: Option<std::time::Instant>,
    /// When the last staged candidate went live: the next is judged no sooner than
    /// `publish_every_seconds` later, so fills do not run back to back.
    promoted_at: Option<std::time::Instant>,
    /// The game's threads, at the background priority (started on the first step; `None`
    /// inside if they could not be started: the game then runs on rayon's global pool).
    game_pool: std::sync::OnceLock<Option<rayon::ThreadPool>>,
}

/// Whether feedback is waiting on a game step (see [`Trainer::feedback_waits`]).
struct FeedbackWaits {
    folded_due: Option<std::time::Instant>,
    latest: Arc<std::sync::atomic::AtomicU64>,
    applied: u64,
    first_seen: std::sync::OnceLock<std::time::Instant>,
    wait: Duration,
}

impl FeedbackWaits {
    /// True once a fold-in publish is due: the step stops at its next batch boundary.
    fn due(&self) -> bool {
        let now = std::time::Instant::now();
        if self.folded_due.is_some_and(|d| now >= d) {
            return true;
        }
        let appended = self.latest.load(std::sync::atomic::Ordering::Acquire) > self.applied;
        appended && now.duration_since(*self.first_seen.get_or_init(|| now)) >= self.wait
    }
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
        log: impl Into<SharedLog>,
        snapshots: impl Into<SharedSnapshots>,
        metrics: Arc<Metrics>,
    ) -> Result<(Self, Arc<ModelStore>), TrainerError> {
        let snapshots: SharedSnapshots = snapshots.into();
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
            snapshots,
            store: store.clone(),
            metrics,
            game: None,
            pretrained_size: (0, 0),
            next_version,
            d: DStats::default(),
            g: GStats::default(),
            last_refusal: None,
            gate: Gate::new(cfg.training.seed),
            schedule: Schedule::new(
                cfg.trainer.patience,
                cfg.trainer.min_step_scale,
                cfg.trainer.min_improvement,
            ),
            window: StepWindow::default(),
            history: Arc::new(History::new(cfg.trainer.history, STEP_GAP)),
            staged: None,
            fold_in_failed: None,
            promoted_at: None,
            game_pool: std::sync::OnceLock::new(),
            cfg,
        };
        t.data.rebuild_sets();
        match loaded {
            Some(s) => {
                let (g, d) = (s.generator.clone(), s.discriminator.clone());
                t.pretrained_size = (t.data.users.len(), t.data.items.len());
                t.set_game(g, d);
                t.metrics.snapshot_version.set(s.version as i64);
                t.go_live(s, None);
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
        let history = self.history.clone();
        let metrics = LoopMetrics::new(&self.metrics, "recommendation");
        let (inner, _thread) = trainer_loop::spawn(self, metrics).map_err(TrainerFailure::from)?;
        Ok(TrainerHandle::new(inner, latest_seq, history))
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

    /// A new game between `g` and `d` at the schedule's step size (the trust region).
    fn set_game(&mut self, g: MfModel, d: MfModel) {
        let t = &self.cfg.training;
        let scale = self.schedule.step_scale();
        let (mut gc, mut dc) = (t.generator.clone(), t.discriminator.clone());
        gc.lr *= scale as f32;
        dc.lr *= scale as f32;
        let settings = GameSettings {
            generator: &gc,
            discriminator: &dc,
            ..t.game()
        };
        self.game = Some(Game::new(g, d, settings));
    }

    /// The live pair grown to today's catalogue, with the feedback folded in since it was
    /// published (new users and items, and existing users with new feedback) folded in again,
    /// so restarting the game from it loses none of that feedback.
    fn live_pair(&self, live: &Live) -> (MfModel, MfModel) {
        regrow::grown_pair(
            &live.snapshot,
            self.data.users.len(),
            self.data.items.len(),
            &self.data.train,
            &self.cfg,
            live.version(),
            &self.data.unpublished_changes().users,
        )
    }

    /// Promotes a staged candidate whose caches are filled, and folds waiting feedback into
    /// the live pair; failures are logged and retried (a fold-in a second later).
    fn publish_waiting_work(&mut self) {
        if let Err(e) = self.promote(false) {
            tracing::error!(error = %e, "cannot publish the staged candidate");
            self.staged = None;
        }
        let backing_off = self
            .fold_in_failed
            .is_some_and(|t| t.elapsed() < Duration::from_secs(1));
        if backing_off || !self.fold_in_due() {
            return;
        }
        match self.fold_in() {
            Ok(_) => self.fold_in_failed = None,
            Err(e) => {
                tracing::error!(error = %e, "cannot publish the folded-in feedback");
                self.fold_in_failed = Some(std::time::Instant::now());
            }
        }
    }

    /// When a game step must stop for feedback: acknowledged feedback already folded but
    /// not published becomes due `feedback_publish_seconds` after its acknowledgement, and
    /// feedback appended while the step runs that long after the step first sees it.
    fn feedback_waits(&self) -> FeedbackWaits {
        let wait = Duration::from_secs_f64(self.cfg.trainer.feedback_publish_seconds);
        let live = self.store.current().version() > 0;
        let folded_due = self
            .data
            .unpublished_acks
            .first()
            .filter(|_| live)
            .map(|&acked| {
                let waited = Snapshot::now_unix_ms().saturating_sub(acked);
                std::time::Instant::now() + wait.saturating_sub(Duration::from_millis(waited))
            });
        FeedbackWaits {
            folded_due,
            latest: self.data.latest_seq(),
            applied: self.data.applied_seq,
            first_seen: std::sync::OnceLock::new(),
            wait,
        }
    }

    /// Counts a refused candidate and starts a new publish period. The trust region: the
    /// game restarts from the live pair at the (already halved) step size, so the next
    /// candidate starts near what serves instead of drifting further.
    fn refuse(&mut self, clock: &mut Clock, reason: &str, detail: String) -> TrainerError {
        self.metrics
            .publish_refusals
            .with_label_values(&[reason])
            .inc();
        self.last_refusal = Some(detail.clone());
        clock.reset();
        let live = self.store.current();
        if live.version() > 0 && self.game.is_some() {
            let (g, d) = self.live_pair(&live);
            self.set_game(g, d);
        }
        TrainerError::Refused(detail)
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
        self.publish_waiting_work();
    }

    fn can_step(&self) -> bool {
        self.cfg.trainer.enabled
            && self.game.is_some()
            && self.schedule.wants_steps(self.data.applied_seq)
    }

    fn step(&mut self) {
        let stop = self.feedback_waits();
        let pool = self
            .game_pool
            .get_or_init(|| background::pool("irgan-game", rayon::current_num_threads()));
        let Some(game) = self.game.as_mut() else {
            return;
        };
        // A bounded window of users (new feedback's first), so publishes come between steps.
        // A step cut short by waiting feedback leaves the rest of its window to the next cycle.
        let window = self.window.next(
            &self.data.train,
            &self.data.unpublished_changes().users,
            self.cfg.trainer.step_users,
        );
        let positives = window.as_ref().unwrap_or(&self.data.train);
        let epochs = self.cfg.trainer.d_epochs_per_step;
        let mut play = || {
            game.d_phase_until(positives, epochs, &|| stop.due());
            // No G epoch at all when feedback already waits (its statistics would be empty).
            let g = (!stop.due()).then(|| game.g_epoch_until(positives, &|| stop.due()));
            (game.d_stats(), g)
        };
        // The game's threads run below the requests' priority (see `background`); the
        // fold-ins and publishes on this thread do not.
        let (d, g) = match pool {
            Some(pool) => pool.install(play),
            None => play(),
        };
        self.d = d;
        self.g = g.unwrap_or(self.g);
        self.history.step(self.d, self.g);
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
        if self.store.current().version() == 0 {
            // Nothing serves yet: the first pair goes out as soon as feedback waits for it.
            let wait_ms = self.cfg.trainer.feedback_publish_seconds * 1e3;
            let waited = self.data.unpublished_acks.first().is_some_and(|&acked| {
                Snapshot::now_unix_ms().saturating_sub(acked) as f64 >= wait_ms
            });
            if waited {
                return true;
            }
        }
        // One game candidate at a time: a staged one fills (and then serves for a while)
        // before the next is judged.
        let every = Duration::from_secs_f64(self.cfg.trainer.publish_every_seconds);
        self.staged.is_none()
            && self.promoted_at.is_none_or(|t| t.elapsed() >= every)
            && (clock.steps_since_publish() >= self.cfg.trainer.publish_every_steps
                || clock.seconds_since_publish() >= self.cfg.trainer.publish_every_seconds)
    }

    fn publish(&mut self, clock: &mut Clock) -> Result<Published, TrainerError> {
        let r = if self.store.current().version() == 0 {
            self.gate_and_publish(clock)
        } else {
            self.gate_and_stage(clock)
        };
        r.inspect_err(|e| tracing::info!(reason = %e, "kept the live snapshot"))
    }

    fn publish_now(&mut self, clock: &mut Clock) -> Result<Published, TrainerError> {
        self.refresh()?;
        // Someone asked: play on for another `patience` evaluations whatever the outcome.
        let r = self.gate_and_publish(clock);
        self.schedule.wake();
        r
    }

    fn activate(&mut self, version: u64, clock: &mut Clock) -> Result<u64, TrainerError> {
        let s = self
            .snapshots
            .read(version)
            .map_err(|e| TrainerError::NotFound(format!("snapshot {version}: {e}")))?;
        // The old pair is grown to today's catalogue and served with today's ids, so users
        // and items learnt since keep their feedback (new users folded in) and their seen sets.
        let s = regrow::brought_forward(
            s,
            &self.data.users,
            &self.data.items,
            &self.data.train,
            &self.cfg,
        )
        .map_err(TrainerError::Incompatible)?;
        // Other replicas follow the pointer (a no-op for the local store).
        self.snapshots
            .set_live(version)
            .map_err(TrainerFailure::from)?;
        self.set_game(s.generator.clone(), s.discriminator.clone());
        clock.reset();
        self.staged = None;
        let live = self.store.current();
        self.go_live(s, Some(&live));
        self.schedule.wake();
        Ok(version)
    }

    fn finish(&mut self, clock: &mut Clock) -> Option<u64> {
        let _ = self.data.fold_new_events();
        self.data.rebuild_sets();
        let _ = self.sync_catalogue();
        if let Err(e) = self.promote(true) {
            tracing::warn!(error = %e, "cannot publish the staged candidate");
        }
        if clock.steps_since_publish() > 0
            && let Err(e) = self.gate_and_publish(clock)
        {
            tracing::warn!(reason = %e, "final candidate refused; keeping the live snapshot");
        }
        // Feedback the refused candidate would have carried still goes out, folded in.
        if !self.data.unpublished_acks.is_empty()
            && self.store.current().version() > 0
            && let Err(e) = self.fold_in()
        {
            tracing::warn!(error = %e, "cannot publish the last feedback");
        }
        Some(self.store.current().version())
    }

    fn status(&self, clock: &Clock, paused: bool) -> TrainerStatus {
        let mut reason = self.schedule.reason(
            self.cfg.trainer.enabled,
            paused,
            self.game.is_some(),
            self.data.applied_seq,
        );
        // The game has converged, but filling a staged candidate's caches is still work.
        if reason == Reason::Converged && self.staged.is_some() {
            reason = Reason::Staging;
        }
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
            busy: reason.busy(),
            reason,
            stale_evaluations: self.schedule.stale(),
            step_scale: self.schedule.step_scale(),
            gate_users: self.gate.sample_users(),
            // Filled in by the handle from the loop's health.
            up: true,
            restarts: 0,
            last_failure: None,
            replayed_events: self.replayed_events,
        }
    }

    fn recover(&mut self) -> Result<(), String> {
        // Derived state goes; the feedback data stays (it is only ever advanced by log
        // position, so nothing acknowledged is lost), and the game restarts from the live pair.
        self.d = DStats::default();
        self.g = GStats::default();
        self.last_refusal = None;
        self.gate.invalidate();
        self.schedule = Schedule::new(
            self.cfg.trainer.patience,
            self.cfg.trainer.min_step_scale,
            self.cfg.trainer.min_improvement,
        );
        self.staged = None;
        let live = self.store.current();
        if live.version() == 0 {
            self.game = None;
            return self.sync_catalogue().map_err(|e| e.to_string());
        }
        let (g, d) = self.live_pair(&live);
        self.set_game(g, d);
        Ok(())
    }

    fn failure(e: &TrainerError) -> Option<String> {
        match e {
            TrainerError::Internal(f) => Some(trainer_status::error_chain(f)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Instant;

    fn waits(folded_due: Option<Instant>, wait_ms: u64) -> (FeedbackWaits, Arc<AtomicU64>) {
        let latest = Arc::new(AtomicU64::new(10));
        let w = FeedbackWaits {
            folded_due,
            latest: latest.clone(),
            applied: 10,
            first_seen: std::sync::OnceLock::new(),
            wait: Duration::from_millis(wait_ms),
        };
        (w, latest)
    }

    #[test]
    fn a_step_stops_once_feedback_has_waited_its_publish_delay() {
        // Nothing new: the step plays on.
        let (w, _) = waits(None, 0);
        assert!(!w.due());
        // Feedback already folded and due: stop at once.
        let (w, _) = waits(Some(Instant::now()), 1000);
        assert!(w.due());
        // Feedback appended during the step: due once it has waited the delay since first seen.
        let (w, latest) = waits(None, 30);
        latest.store(11, Ordering::Release);
        assert!(!w.due());
        std::thread::sleep(Duration::from_millis(40));
        assert!(w.due());
        let (w, latest) = waits(None, 0);
        latest.store(11, Ordering::Release);
        assert!(w.due());
    }
}
