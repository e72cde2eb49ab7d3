//! Recent history for dashboards (the console at `/ui` draws its charts from these):
//! `GET /v1/training/history` (the game's last steps and gate evaluations) and
//! `GET /v1/traffic` (request and feedback rates, sampled every few seconds).

use axum::Json;
use axum::extract::State;

use crate::api::history::{self, TrafficOut, TrainingHistory};
use crate::http::state::AppState;

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
    Json(history::training(&state))
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
    Json(history::traffic(&state))
}
