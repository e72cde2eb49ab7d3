//! The handlers' side of the recommendation trainer: commands over the loop's channel, the
//! status with the loop's health, and the log position the handlers raise after appending.
//! A serving replica (`server.role = "serve"`) has no trainer: its handle is
//! [`TrainerHandle::absent`], whose commands answer [`TrainerError::NoTrainer`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::online::history::{History, HistoryView};
use crate::online::trainer::{Published, Trainer, TrainerError, TrainerStatus};
use crate::online::trainer_loop::LoopHandle;

/// The handlers' side of the trainer.
#[derive(Clone)]
pub struct TrainerHandle {
    /// `None` in a process that does not train.
    inner: Option<LoopHandle<Trainer>>,
    latest_seq: Arc<AtomicU64>,
    history: Arc<History>,
}

impl TrainerHandle {
    /// Tells the trainer that the log now holds events up to `seq`.
    pub fn notify(&self, seq: u64) {
        self.latest_seq.fetch_max(seq, Ordering::Release);
    }

    /// The trainer's latest status, with its health.
    pub fn status(&self) -> TrainerStatus {
        let Some(inner) = &self.inner else {
            return TrainerStatus {
                // No trainer here: "off" is what a caller can act on (train elsewhere).
                reason: crate::online::schedule::Reason::Disabled,
                ..TrainerStatus::default()
            };
        };
        let health = inner.health();
        TrainerStatus {
            up: health.up,
            restarts: health.restarts,
            last_failure: health.last_failure,
            ..inner.status()
        }
    }

    fn inner(&self) -> Result<&LoopHandle<Trainer>, TrainerError> {
        self.inner.as_ref().ok_or(TrainerError::NoTrainer)
    }

    /// The game's recent steps and gate evaluations (`trainer.history` of each), oldest first.
    pub fn history(&self) -> HistoryView {
        self.history.view()
    }

    /// Validates the current candidate and publishes it if it passes the gate.
    pub async fn publish(&self) -> Result<Published, TrainerError> {
        self.inner()?.publish().await
    }

    /// Makes an earlier snapshot live again (roll back); training continues from it.
    pub async fn activate(&self, version: u64) -> Result<u64, TrainerError> {
        self.inner()?.activate(version).await
    }

    /// Pauses training (queries and feedback continue).
    pub fn pause(&self) -> Result<(), TrainerError> {
        Ok(self.inner()?.pause()?)
    }

    /// Resumes training.
    pub fn resume(&self) -> Result<(), TrainerError> {
        Ok(self.inner()?.resume()?)
    }

    /// Folds the remaining feedback, writes a final snapshot if the candidate passes the gate,
    /// and stops the thread. Returns the live version.
    pub async fn shutdown(&self) -> Result<u64, TrainerError> {
        match &self.inner {
            Some(inner) => Ok(inner.shutdown().await?.unwrap_or(0)),
            None => Ok(0),
        }
    }
}

impl TrainerHandle {
    /// Wraps the loop's handle, the trainer's latest-position atomic and its history.
    pub(crate) fn new(
        inner: LoopHandle<Trainer>,
        latest_seq: Arc<AtomicU64>,
        history: Arc<History>,
    ) -> Self {
        Self {
            inner: Some(inner),
            latest_seq,
            history,
        }
    }

    /// The handle of a process without a trainer (a serving replica): status says so, and
    /// every command answers [`TrainerError::NoTrainer`].
    pub fn absent(history: usize) -> Self {
        Self {
            inner: None,
            latest_seq: Arc::default(),
            history: Arc::new(History::new(history, crate::online::history::STEP_GAP)),
        }
    }
}
