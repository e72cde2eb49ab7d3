//! The recent history dashboards draw (the console at `/ui`): the game's last steps and gate
//! evaluations, and request and feedback rates sampled in the background.

use serde::Serialize;
use utoipa::ToSchema;

use crate::api::AppState;
pub use crate::online::history::{GateRecord, StepRecord};
use crate::online::traffic;
pub use crate::online::traffic::TrafficPoint;

/// Response of `GET /v1/training/history`.
#[derive(Debug, Serialize, ToSchema)]
pub struct TrainingHistory {
    /// Records kept per list (`trainer.history`).
    pub capacity: usize,
    /// The metric the gate compares (`trainer.gate_metric`): what `score` and `live_score` are.
    #[schema(example = "NDCG@10")]
    pub gate_metric: String,
    /// The last trainer steps, oldest first.
    pub steps: Vec<StepRecord>,
    /// The last gate evaluations (published or refused), oldest first.
    pub gates: Vec<GateRecord>,
}

/// Response of `GET /v1/traffic`.
#[derive(Debug, Serialize, ToSchema)]
pub struct TrafficOut {
    /// Seconds between samples.
    pub every_seconds: u64,
    /// Samples kept (the window is `every_seconds · samples`).
    pub samples: usize,
    /// Rates between consecutive samples, oldest first (empty until two samples exist).
    pub points: Vec<TrafficPoint>,
}

/// The trainer's recorded steps and gate evaluations.
pub fn training(state: &AppState) -> TrainingHistory {
    let h = state.trainer.history();
    TrainingHistory {
        capacity: h.capacity,
        gate_metric: state.config.trainer.gate_metric.clone(),
        steps: h.steps,
        gates: h.gates,
    }
}

/// The sampled traffic rates.
pub fn traffic(state: &AppState) -> TrafficOut {
    TrafficOut {
        every_seconds: traffic::EVERY.as_secs(),
        samples: traffic::SAMPLES,
        points: state.traffic.points(),
    }
}
