//! The recommendation game's recent history: two bounded rings (`trainer.history` records
//! each) of what every trainer step measured and what every gate evaluation decided, kept by
//! the trainer thread and read by `GET /v1/training/history` and the console's charts.
//!
//! Two rings, not one, because steps are frequent and gate evaluations rare: one shared ring
//! would push the evaluations (and their refusals) out within seconds. For the same reason a
//! step is recorded at most every [`STEP_GAP`] (on the demo the game takes ~100 steps a
//! second, and 512 records would span five seconds); every gate evaluation is recorded.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::Serialize;
use utoipa::ToSchema;

use crate::store::Snapshot;
use crate::train::irgan::{DStats, GStats};

/// The least time between two recorded steps.
pub const STEP_GAP: Duration = Duration::from_millis(250);

/// What one trainer step measured.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, ToSchema)]
pub struct StepRecord {
    /// Steps taken since the trainer started, this one included.
    pub step: u64,
    /// When the step ended (ms since the Unix epoch).
    pub unix_ms: u64,
    /// D's logistic loss.
    pub d_loss: f64,
    /// Fraction of observed positives D scores above 0.5.
    pub d_accuracy_real: f64,
    /// Fraction of G's samples D scores below 0.5.
    pub d_accuracy_generated: f64,
    /// G's policy-gradient loss.
    pub g_loss: f64,
    /// Mean entropy (nats) of G's policy.
    pub g_entropy: f64,
    /// Mean D reward of G's samples.
    pub mean_reward: f64,
}

/// What one gate evaluation decided.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct GateRecord {
    /// Steps taken since the trainer started when the candidate was judged.
    pub step: u64,
    /// When (ms since the Unix epoch).
    pub unix_ms: u64,
    /// `published` or `refused`.
    #[schema(example = "refused")]
    pub outcome: &'static str,
    /// The refusal's reason: `not_finite`, `collapsed`, `d_accuracy` or `worse` (null when
    /// published).
    pub reason: Option<&'static str>,
    /// The refusal for people (null when published).
    pub detail: Option<String>,
    /// The candidate's gate metric (`trainer.gate_metric`), when it was evaluated.
    pub score: Option<f64>,
    /// The live pair's gate metric on the same users, when there was one.
    pub live_score: Option<f64>,
    /// The version published (null when refused).
    pub version: Option<u64>,
}

/// The two rings, shared between the trainer thread (writer) and the handlers (readers).
#[derive(Debug)]
pub struct History {
    capacity: usize,
    step_gap: Duration,
    rings: Mutex<Rings>,
}

#[derive(Debug, Default)]
struct Rings {
    steps_taken: u64,
    last_recorded: Option<Instant>,
    steps: VecDeque<StepRecord>,
    gates: VecDeque<GateRecord>,
}

/// A copy of the rings, oldest first.
#[derive(Debug, Clone, Default)]
pub struct HistoryView {
    /// Records kept per ring.
    pub capacity: usize,
    /// The last steps.
    pub steps: Vec<StepRecord>,
    /// The last gate evaluations.
    pub gates: Vec<GateRecord>,
}

/// A finite value, or `None` (no NaN is published).
fn finite(x: Option<f64>) -> Option<f64> {
    x.filter(|v| v.is_finite())
}

/// Non-finite statistics become 0 so the JSON stays numbers (the gate refuses such a pair).
fn or_zero(x: f64) -> f64 {
    if x.is_finite() { x } else { 0.0 }
}

fn push<T>(ring: &mut VecDeque<T>, capacity: usize, record: T) {
    if capacity == 0 {
        return;
    }
    while ring.len() >= capacity {
        ring.pop_front();
    }
    ring.push_back(record);
}

impl History {
    /// Empty rings of `capacity` records each (0 keeps nothing), recording a step at most
    /// every `step_gap`.
    pub fn new(capacity: usize, step_gap: Duration) -> Self {
        Self {
            capacity,
            step_gap,
            rings: Mutex::new(Rings::default()),
        }
    }

    /// Counts a step and records its statistics unless one was recorded less than the step
    /// gap ago.
    pub fn step(&self, d: DStats, g: GStats) {
        let mut r = self.rings.lock();
        r.steps_taken += 1;
        let now = Instant::now();
        if r.last_recorded
            .is_some_and(|t| now.duration_since(t) < self.step_gap)
        {
            return;
        }
        r.last_recorded = Some(now);
        let record = StepRecord {
            step: r.steps_taken,
            unix_ms: Snapshot::now_unix_ms(),
            d_loss: or_zero(d.loss),
            d_accuracy_real: or_zero(d.accuracy_real),
            d_accuracy_generated: or_zero(d.accuracy_generated),
            g_loss: or_zero(g.loss),
            g_entropy: or_zero(g.entropy),
            mean_reward: or_zero(g.mean_reward),
        };
        push(&mut r.steps, self.capacity, record);
    }

    /// Records a gate evaluation: `refusal` is `(reason, detail)` when refused, `version` the
    /// published version when accepted.
    pub fn gate(
        &self,
        score: Option<f64>,
        live_score: Option<f64>,
        refusal: Option<(&'static str, String)>,
        version: Option<u64>,
    ) {
        let mut r = self.rings.lock();
        let (reason, detail) = refusal.map_or((None, None), |(r, d)| (Some(r), Some(d)));
        let record = GateRecord {
            step: r.steps_taken,
            unix_ms: Snapshot::now_unix_ms(),
            outcome: if reason.is_some() {
                "refused"
            } else {
                "published"
            },
            reason,
            detail,
            score: finite(score),
            live_score: finite(live_score),
            version,
        };
        push(&mut r.gates, self.capacity, record);
    }

    /// The rings now, oldest first.
    pub fn view(&self) -> HistoryView {
        let r = self.rings.lock();
        HistoryView {
            capacity: self.capacity,
            steps: r.steps.iter().copied().collect(),
            gates: r.gates.iter().cloned().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rings_keep_the_newest_records_and_no_nan() {
        let h = History::new(3, Duration::ZERO);
        for i in 0..5 {
            let d = DStats {
                loss: f64::NAN,
                accuracy_real: f64::from(i),
                accuracy_generated: 0.5,
            };
            h.step(d, GStats::default());
        }
        h.gate(
            Some(f64::NAN),
            Some(0.3),
            Some(("worse", "lower".into())),
            None,
        );
        h.gate(Some(0.4), Some(0.3), None, Some(7));
        let v = h.view();
        assert_eq!(v.capacity, 3);
        let steps: Vec<u64> = v.steps.iter().map(|s| s.step).collect();
        assert_eq!(steps, [3, 4, 5]);
        assert_eq!(v.steps[2].d_accuracy_real, 4.0);
        assert_eq!(v.steps[0].d_loss, 0.0);
        assert_eq!(v.gates.len(), 2);
        assert_eq!(v.gates[0].outcome, "refused");
        assert_eq!(v.gates[0].score, None);
        assert_eq!(v.gates[0].reason, Some("worse"));
        assert_eq!(v.gates[1].outcome, "published");
        assert_eq!((v.gates[1].step, v.gates[1].version), (5, Some(7)));
        assert!(History::new(0, Duration::ZERO).view().steps.is_empty());
        // Thinned: the first step is recorded, the next ones within the gap only counted.
        let thin = History::new(3, Duration::from_secs(3600));
        thin.step(DStats::default(), GStats::default());
        thin.step(DStats::default(), GStats::default());
        thin.gate(None, None, None, Some(1));
        let v = thin.view();
        assert_eq!(v.steps.len(), 1);
        assert_eq!(v.gates[0].step, 2);
    }
}
