//! Steps with a purpose: when the recommendation game plays and how far it may move.
//!
//! The game runs while there is new feedback or while the gate metric still improves; after
//! `trainer.patience` gate evaluations in a row without a better metric and nothing new, it
//! goes idle (no steps, no CPU) until feedback arrives or someone publishes. A trust region
//! keeps candidates near the live pair: a refused candidate is dropped, the game restarts from
//! the live pair at half the learning rates (down to `trainer.min_step_scale`), and an accepted
//! publish restores them. Together they stop the drift in which G's entropy falls, D's accuracy
//! reaches 1 and the gate refuses everything while a core burns.

use serde::Serialize;

/// A gate metric must beat the best so far by more than this (and by more than
/// `trainer.min_improvement` of it) to count as an improvement.
const MIN_IMPROVEMENT: f64 = 1e-4;

/// Why the trainer is busy or idle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// Busy: feedback arrived since the last gate evaluation.
    NewData,
    /// Busy: the gate metric improved within the last `patience` evaluations.
    #[default]
    Improving,
    /// Busy: the game has stopped, but an accepted candidate's caches are still filling; it
    /// goes live once filled.
    Staging,
    /// Idle: `patience` evaluations without improvement and nothing new.
    Converged,
    /// Idle: paused by an operator.
    Paused,
    /// Idle: nothing to train on yet.
    NoData,
    /// Idle: background training is off (`trainer.enabled = false`).
    Disabled,
}

impl Reason {
    /// The snake_case name, as serialised.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NewData => "new_data",
            Self::Improving => "improving",
            Self::Staging => "staging",
            Self::Converged => "converged",
            Self::Paused => "paused",
            Self::NoData => "no_data",
            Self::Disabled => "disabled",
        }
    }

    /// Whether the trainer steps for this reason.
    pub fn busy(self) -> bool {
        matches!(self, Self::NewData | Self::Improving | Self::Staging)
    }
}

/// Patience and step size of the game.
#[derive(Debug, Clone)]
pub struct Schedule {
    patience: u32,
    min_scale: f64,
    /// Relative gain over the best metric that counts as an improvement.
    min_improvement: f64,
    /// Gate evaluations in a row without improvement.
    stale: u32,
    /// Best gate metric since the last wake-up (the live one to start with).
    best: Option<f64>,
    /// Log position at the last gate evaluation.
    seen_seq: u64,
    scale: f64,
}

impl Schedule {
    /// A schedule going idle after `patience` stale evaluations (0 = never), an evaluation
    /// being stale unless it beats the best by more than `min_improvement` of it, and halving
    /// the step size down to `min_scale`.
    pub fn new(patience: u32, min_scale: f64, min_improvement: f64) -> Self {
        Self {
            patience,
            min_scale: min_scale.clamp(f64::MIN_POSITIVE, 1.0),
            min_improvement: if min_improvement.is_finite() {
                min_improvement.max(0.0)
            } else {
                0.0
            },
            stale: 0,
            best: None,
            seen_seq: 0,
            scale: 1.0,
        }
    }

    /// Someone published or activated: play again for `patience` evaluations.
    pub fn wake(&mut self) {
        self.stale = 0;
        self.best = None;
    }

    /// Whether feedback past the last gate evaluation's log position has been folded in.
    fn new_data(&self, applied_seq: u64) -> bool {
        applied_seq > self.seen_seq
    }

    /// Whether the game should step now, the trainer's data being at log position
    /// `applied_seq`.
    pub fn wants_steps(&self, applied_seq: u64) -> bool {
        self.patience == 0 || self.new_data(applied_seq) || self.stale < self.patience
    }

    /// Records a gate evaluation at log position `applied_seq`: the candidate's metric
    /// (`None` when a sanity check refused it before evaluating), the live pair's, and whether
    /// it went live. New data since the last evaluation starts the count afresh (the hold-out
    /// may have changed, so earlier metrics are not comparable).
    pub fn evaluated(
        &mut self,
        applied_seq: u64,
        score: Option<f64>,
        live: Option<f64>,
        accepted: bool,
    ) {
        if self.new_data(applied_seq) {
            self.seen_seq = applied_seq;
            self.wake();
        }
        let best = self.best.or(live);
        match (score, best) {
            (Some(s), Some(b)) if s <= b + MIN_IMPROVEMENT.max(self.min_improvement * b.abs()) => {
                self.stale += 1
            }
            (Some(s), _) => {
                self.best = Some(s);
                self.stale = 0;
            }
            (None, _) => self.stale += 1,
        }
        if self.best.is_none() {
            self.best = best;
        }
        self.scale = if accepted {
            1.0
        } else {
            (self.scale / 2.0).max(self.min_scale)
        };
    }

    /// The fraction of the configured learning rates the game plays at.
    pub fn step_scale(&self) -> f64 {
        self.scale
    }

    /// Gate evaluations in a row without improvement.
    pub fn stale(&self) -> u32 {
        self.stale
    }

    /// Why the trainer is busy or idle, given what the loop knows.
    pub fn reason(&self, enabled: bool, paused: bool, has_game: bool, applied_seq: u64) -> Reason {
        if !enabled {
            Reason::Disabled
        } else if paused {
            Reason::Paused
        } else if !has_game {
            Reason::NoData
        } else if self.new_data(applied_seq) {
            Reason::NewData
        } else if self.wants_steps(applied_seq) {
            Reason::Improving
        } else {
            Reason::Converged
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idles_after_patience_and_wakes_on_data_or_publish() {
        let mut s = Schedule::new(2, 0.25, 0.0);
        let why = |s: &Schedule, seq| s.reason(true, false, true, seq);
        assert_eq!(why(&s, 10), Reason::NewData);
        s.evaluated(10, Some(0.30), Some(0.28), true);
        assert_eq!(why(&s, 10), Reason::Improving);
        s.evaluated(10, Some(0.31), Some(0.30), true);
        s.evaluated(10, Some(0.31), Some(0.31), true);
        assert!(s.wants_steps(10));
        s.evaluated(10, None, Some(0.31), false);
        assert!(!s.wants_steps(10));
        assert_eq!(why(&s, 10), Reason::Converged);
        assert!(!why(&s, 10).busy());
        assert_eq!(why(&s, 11), Reason::NewData);
        s.evaluated(11, Some(0.2), Some(0.3), false);
        assert!(s.wants_steps(11), "new data restarts the count");
        s.evaluated(11, Some(0.2), Some(0.3), false);
        assert!(!s.wants_steps(11));
        s.wake();
        assert!(s.wants_steps(11));
        assert_eq!(s.reason(true, true, true, 11), Reason::Paused);
        assert_eq!(s.reason(false, false, true, 11), Reason::Disabled);
        assert_eq!(s.reason(true, false, false, 11), Reason::NoData);
        assert!(
            Schedule::new(0, 1.0, 0.0).wants_steps(0),
            "patience 0 never idles"
        );
    }

    #[test]
    fn refusals_halve_the_step_down_to_the_floor_and_a_publish_restores_it() {
        let mut s = Schedule::new(5, 0.25, 0.0);
        for want in [0.5, 0.25, 0.25] {
            s.evaluated(1, Some(0.1), Some(0.3), false);
            assert_eq!(s.step_scale(), want);
        }
        s.evaluated(1, Some(0.4), Some(0.3), true);
        assert_eq!(s.step_scale(), 1.0);
    }

    #[test]
    fn gains_below_the_relative_threshold_are_stale() {
        let mut s = Schedule::new(2, 0.25, 0.01);
        s.evaluated(1, Some(0.200), Some(0.200), true);
        assert_eq!(s.stale(), 1, "no gain");
        s.evaluated(1, Some(0.2019), Some(0.200), true);
        assert_eq!(s.stale(), 2, "0.95 % < 1 %");
        assert!(!s.wants_steps(1));
        s.wake();
        s.evaluated(1, Some(0.2021), Some(0.2), true);
        assert_eq!(s.stale(), 0, "1.05 % counts");
        s.evaluated(1, Some(0.2030), Some(0.2021), true);
        assert_eq!(s.stale(), 1, "judged against the best, 0.2021");
    }
}
