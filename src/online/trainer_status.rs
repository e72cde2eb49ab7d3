//! What the recommendation trainer shows of itself: `GET /v1/model`'s game state, busy or
//! idle and why, and its health (restarts, last failure).

use serde::Serialize;

use crate::online::schedule::Reason;
use crate::train::irgan::{DStats, GStats};

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
    /// The trainer is stepping (else idle; `reason` says why either way).
    pub busy: bool,
    /// Why it is busy or idle.
    pub reason: Reason,
    /// Gate evaluations in a row without improvement (idle at `trainer.patience`).
    pub stale_evaluations: u32,
    /// Fraction of the configured learning rates the game plays at (the trust region).
    pub step_scale: f64,
    /// Hold-out users in the gate's sample.
    pub gate_users: usize,
    /// The trainer thread is running its task (false while a failed restart waits to be
    /// retried, or once stopped).
    pub up: bool,
    /// Restarts from the live snapshot after a panic or failure.
    pub restarts: u64,
    /// The last panic or failure, if any.
    pub last_failure: Option<String>,
}

/// An error and its causes, `: `-separated (what a failure's status shows).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
