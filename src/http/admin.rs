//! Model, snapshot and training routes, and the health probes.

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::{Value, json};

use crate::http::error::ApiError;
use crate::http::state::AppState;

/// `GET /v1/model`: the live snapshot and the state of the game.
pub async fn model(State(state): State<AppState>) -> Json<Value> {
    let live = state.models.current();
    let s = &live.snapshot;
    Json(json!({
        "version": s.version,
        "created_unix_ms": s.created_unix_ms,
        "published_unix_ms": live.published_unix_ms,
        "users": s.users.len(),
        "items": s.items.len(),
        "dims": { "generator": s.generator.dim(), "discriminator": s.discriminator.dim() },
        "training": live.meta("training"),
        "validation": live.meta("validation"),
        "trained_through_seq": live.meta("trained_through_seq"),
        "game": state.trainer.status(),
    }))
}

/// `GET /v1/snapshots`: versions on disk, newest first, with their manifest summary.
pub async fn list(State(state): State<AppState>) -> Json<Value> {
    let live = state.models.current().version();
    let dir = state.snapshots.clone();
    let items: Vec<Value> = dir
        .versions()
        .into_iter()
        .rev()
        .map(|v| {
            let manifest = std::fs::read(dir.path_of(v).join("manifest.json"))
                .ok()
                .and_then(|b| serde_json::from_slice::<Value>(&b).ok());
            match manifest {
                Some(m) => json!({
                    "version": v,
                    "live": v == live,
                    "created_unix_ms": m["created_unix_ms"],
                    "users": m["generator"]["users"],
                    "items": m["generator"]["items"],
                    "validation": m["metadata"]["validation"],
                }),
                None => json!({ "version": v, "live": v == live, "complete": false }),
            }
        })
        .collect();
    Json(json!({ "live": live, "snapshots": items }))
}

/// `POST /v1/snapshots`: validate the current candidate and publish it now (409 if the gate
/// refuses it, with the reason).
pub async fn publish(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let p = state.trainer.publish().await?;
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
    let v = state.trainer.activate(version).await?;
    Ok(Json(json!({ "version": v, "live": true })))
}

/// `POST /v1/training/pause`
pub async fn pause(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    state.trainer.pause()?;
    Ok(Json(json!({ "paused": true })))
}

/// `POST /v1/training/resume`
pub async fn resume(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    state.trainer.resume()?;
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
