//! Model, snapshot and training routes, and the health probes.

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::{Value, json};

use crate::api::admin as api;
use crate::http::error::ApiError;
use crate::http::state::AppState;

/// `GET /v1/model`: the live snapshot and the state of the game.
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
pub async fn publish(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let p = api::publish(&state).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "version": p.version, "validation": p.validation })),
    ))
}

/// `POST /v1/snapshots/{version}/activate`: roll back (or forward) to a snapshot on disk.
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
pub async fn pause(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    api::pause(&state)?;
    Ok(Json(json!({ "paused": true })))
}

/// `POST /v1/training/resume`
pub async fn resume(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    api::resume(&state)?;
    Ok(Json(json!({ "paused": false })))
}

/// `GET /healthz`: the process is alive.
pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// `GET /readyz`: a snapshot is loaded (503 until the first pair exists).
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let v = state.models.current().version();
    let status = if v > 0 {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(json!({ "ready": v > 0, "version": v })))
}

/// `GET /metrics`: Prometheus text format.
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [("content-type", "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}
