//! Model, snapshot and training routes, and the health probes.

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::{Value, json};

use crate::api::admin as api;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::state::AppState;

/// `GET /v1/model`: the live snapshot and the state of the game.
#[utoipa::path(
    get,
    path = "/v1/model",
    tag = "admin",
    summary = "The live model and the trainer's state",
    responses(
        (status = 200, description = "The live snapshot's summary and the background game.", body = crate::http::openapi::ModelOut),
    ),
)]
pub async fn model(State(state): State<AppState>) -> Json<Value> {
    let m = api::model_info(&state);
    Json(json!({
        "version": m.version,
        "created_unix_ms": m.created_unix_ms,
        "published_unix_ms": m.published_unix_ms,
        "users": m.users,
        "items": m.items,
        "dims": { "generator": m.generator_dim, "discriminator": m.discriminator_dim },
        "training": m.training,
        "validation": m.validation,
        "trained_through_seq": m.trained_through_seq,
        "game": m.game,
    }))
}

/// `GET /v1/snapshots`: versions on disk, newest first, with their manifest summary.
#[utoipa::path(
    get,
    path = "/v1/snapshots",
    tag = "admin",
    summary = "Snapshots on disk",
    responses(
        (status = 200, description = "Versions on disk, newest first.", body = crate::http::openapi::SnapshotList),
    ),
)]
pub async fn list(State(state): State<AppState>) -> Json<Value> {
    let (live, snapshots) = api::list_snapshots(&state);
    let items: Vec<Value> = snapshots
        .into_iter()
        .map(|s| match s.manifest {
            Some(m) => json!({
                "version": s.version,
                "live": s.live,
                "created_unix_ms": m.created_unix_ms,
                "users": m.users,
                "items": m.items,
                "validation": m.validation,
            }),
            None => json!({ "version": s.version, "live": s.live, "complete": false }),
        })
        .collect();
    Json(json!({ "live": live, "snapshots": items }))
}

/// `POST /v1/snapshots`: validate the current candidate and publish it now (409 if the gate
/// refuses it, with the reason).
#[utoipa::path(
    post,
    path = "/v1/snapshots",
    tag = "admin",
    summary = "Publish the current candidate now",
    description = "Validates the trainer's current candidate on the hold-out and, if the gate \
        accepts it, writes it as a new snapshot and makes it live. New users and items are \
        folded in. The request has no body.",
    responses(
        (status = 201, description = "Published: the new live version.", body = crate::online::trainer::Published),
        (status = 409, description = "Codes: `publish_refused` (the gate refused the candidate: \
            no training data yet, non-finite parameters, G collapsed, D lost the positives, or \
            worse than the live pair beyond `trainer.tolerance`; the message says which).", body = ErrorBody),
        (status = 500, description = "Codes: `internal` (the snapshot could not be written).", body = ErrorBody),
        (status = 503, description = "Codes: `trainer_busy` (the trainer's queue is full; retry), \
            `shutting_down` (the trainer has stopped).", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
pub async fn publish(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let p = api::publish(&state).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "version": p.version, "validation": p.validation })),
    ))
}

/// `POST /v1/snapshots/{version}/activate`: roll back (or forward) to a snapshot on disk.
#[utoipa::path(
    post,
    path = "/v1/snapshots/{version}/activate",
    tag = "admin",
    summary = "Make a snapshot on disk live (roll back or forward)",
    description = "Loads the snapshot and makes it live; training continues from it. The request \
        has no body.",
    params(
        ("version" = u64, Path, minimum = 1, description = "Snapshot version, as listed by `GET /v1/snapshots`."),
    ),
    responses(
        (status = 200, description = "The snapshot is live.", body = crate::http::openapi::Activated),
        (status = 400, description = "Codes: `invalid_path` (not valid UTF-8), \
            `invalid_parameter` (not a non-negative integer).", body = ErrorBody),
        (status = 404, description = "Codes: `snapshot_not_found` (no complete, readable snapshot \
            with that version on disk).", body = ErrorBody),
        (status = 500, description = "Codes: `internal`.", body = ErrorBody),
        (status = 503, description = "Codes: `trainer_busy`, `shutting_down`.", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
pub async fn activate(
    State(state): State<AppState>,
    version: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let version: u64 = crate::http::queries::path_param(version)?
        .parse()
        .map_err(|_| {
            ApiError::bad_request("invalid_parameter", "version must be a positive integer")
        })?;
    let v = api::activate(&state, version).await?;
    Ok(Json(json!({ "version": v, "live": true })))
}

/// `POST /v1/training/pause`
#[utoipa::path(
    post,
    path = "/v1/training/pause",
    tag = "admin",
    summary = "Pause background training",
    description = "Queries and feedback continue; the trainer stops taking steps until resumed. \
        The request has no body.",
    responses(
        (status = 200, description = "Pause requested.", body = crate::http::openapi::TrainingState),
        (status = 503, description = "Codes: `trainer_busy`, `shutting_down`.", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
pub async fn pause(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    api::pause(&state)?;
    Ok(Json(json!({ "paused": true })))
}

/// `POST /v1/training/resume`
#[utoipa::path(
    post,
    path = "/v1/training/resume",
    tag = "admin",
    summary = "Resume background training",
    description = "The request has no body.",
    responses(
        (status = 200, description = "Resume requested.", body = crate::http::openapi::TrainingState),
        (status = 503, description = "Codes: `trainer_busy`, `shutting_down`.", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
pub async fn resume(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    api::resume(&state)?;
    Ok(Json(json!({ "paused": false })))
}

/// `GET /healthz`: the process is alive.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    summary = "Liveness probe",
    responses(
        (status = 200, description = "The process is alive.", body = crate::http::openapi::Health),
    ),
)]
pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// `GET /readyz`: a snapshot is loaded (503 until the first pair exists, unless
/// `server.ready_without_model`).
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    summary = "Readiness probe",
    responses(
        (status = 200, description = "A snapshot is live (or none yet, `version: 0`, with \
            `server.ready_without_model`).", body = crate::http::openapi::Ready),
        (status = 503, description = "No snapshot yet (`ready: false`, `version: 0`).", body = crate::http::openapi::Ready),
    ),
)]
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let v = state.models.current().version();
    let ready = v > 0 || state.config.server.ready_without_model;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(json!({ "ready": ready, "version": v })))
}

/// `GET /metrics`: Prometheus text format.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    summary = "Prometheus metrics",
    responses(
        (status = 200, description = "Prometheus text exposition format 0.0.4.", body = String,
            content_type = "text/plain; version=0.0.4"),
    ),
)]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [("content-type", "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}
