//! Recent history for dashboards (the console at `/ui` draws its charts from these):
//! `GET /v1/training/history` (the game's last steps and gate evaluations) and
//! `GET /v1/traffic` (request and feedback rates, sampled every few seconds).

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use crate::http::state::AppState;
use crate::online::history::{GateRecord, StepRecord};
use crate::online::traffic::{self, TrafficPoint};

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

/// `GET /v1/training/history`
#[utoipa::path(
    get,
    path = "/v1/training/history",
    tag = "admin",
    summary = "The game's recent steps and gate evaluations",
    description = "What the recommendation trainer measured in its last `trainer.history` \
        recorded steps (D's accuracy on real and generated items, G's entropy, mean reward, \
        losses; at most four steps a second are recorded, `step` counts them all) and decided \
        in its last `trainer.history` gate evaluations (published or refused, why, the gate \
        metric of the candidate and the live pair). Kept in memory: empty after a restart.",
    responses(
        (status = 200, description = "Both lists, oldest first.", body = TrainingHistory),
    ),
)]
pub async fn training(State(state): State<AppState>) -> Json<TrainingHistory> {
    let h = state.trainer.history();
    Json(TrainingHistory {
        capacity: h.capacity,
        gate_metric: state.config.trainer.gate_metric.clone(),
        steps: h.steps,
        gates: h.gates,
    })
}

/// `GET /v1/traffic`
#[utoipa::path(
    get,
    path = "/v1/traffic",
    tag = "operations",
    summary = "Recent request and feedback rates",
    description = "Request, error, gRPC and feedback rates and REST latency (mean and the 95th \
        percentile's bucket bound) between samples of the Prometheus counters taken every 5 s \
        by the server, over the last 30 minutes. Empty until the server has run for 5 s.",
    responses(
        (status = 200, description = "The rates, oldest first.", body = TrafficOut),
    ),
)]
pub async fn traffic(State(state): State<AppState>) -> Json<TrafficOut> {
    Json(TrafficOut {
        every_seconds: traffic::EVERY.as_secs(),
        samples: traffic::SAMPLES,
        points: state.traffic.points(),
    })
}
