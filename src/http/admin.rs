//! Model, snapshot and training routes, and the health probes.

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::api::ErrorCode;
use crate::api::admin::{self as api, Published, TrainerStatus};
use crate::http::error::{ApiError, ErrorBody};
use crate::http::state::AppState;

/// Factor dimensions of the live pair.
#[derive(Debug, Serialize, ToSchema)]
pub struct Dims {
    /// G's latent dimension.
    pub generator: usize,
    /// D's latent dimension.
    pub discriminator: usize,
}

/// Response of `GET /v1/model`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelOut {
    /// Live snapshot version (0 = none yet).
    pub version: u64,
    /// When the snapshot was created (ms since the Unix epoch).
    pub created_unix_ms: u64,
    /// When it went live (ms since the Unix epoch).
    pub published_unix_ms: u64,
    /// Users in the snapshot.
    pub users: usize,
    /// Items in the snapshot.
    pub items: usize,
    /// Latent dimensions.
    pub dims: Dims,
    /// The snapshot's training counters (e.g. `steps`, `d_epochs`, `g_epochs`), or null.
    #[schema(value_type = Value, required = true)]
    pub training: Value,
    /// The snapshot's validation metrics when it was published, or null.
    #[schema(value_type = Value, required = true)]
    pub validation: Value,
    /// Last feedback log position the snapshot was trained on, or null.
    #[schema(value_type = Value, required = true)]
    pub trained_through_seq: Value,
    /// The background trainer's state.
    pub game: TrainerStatus,
    /// G's top-k search for this snapshot (`[index]` in the config): `exact` or `approximate`.
    #[schema(example = "exact")]
    pub index: String,
    /// Heap bytes of the approximate index (0 when exact).
    pub index_bytes: usize,
    /// How far the live snapshot's per-user top lists are cached (filled in the background
    /// after each swap, G's first).
    pub lists: api::CachedLists,
}

/// One snapshot on disk. An unreadable manifest gives only `version`, `live` and
/// `complete: false`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SnapshotSummary {
    /// Version.
    pub version: u64,
    /// This is the live snapshot.
    pub live: bool,
    /// Creation time (ms since the Unix epoch).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<u64>)]
    pub created_unix_ms: Option<Value>,
    /// Users.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<usize>)]
    pub users: Option<Value>,
    /// Items.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<usize>)]
    pub items: Option<Value>,
    /// Validation metrics recorded in the manifest, or null.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Value, required = false)]
    pub validation: Option<Value>,
    /// `false` when the manifest could not be read (only then present).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub complete: Option<bool>,
}

impl From<api::SnapshotSummary> for SnapshotSummary {
    /// The manifest's values as stored (null when missing); only `complete: false` without one.
    fn from(s: api::SnapshotSummary) -> Self {
        let complete = s.manifest.is_none().then_some(false);
        let m = s.manifest;
        Self {
            version: s.version,
            live: s.live,
            created_unix_ms: m.as_ref().map(|m| m.created_unix_ms.clone()),
            users: m.as_ref().map(|m| m.users.clone()),
            items: m.as_ref().map(|m| m.items.clone()),
            validation: m.map(|m| m.validation),
            complete,
        }
    }
}

/// Response of `GET /v1/snapshots`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SnapshotList {
    /// The live version.
    pub live: u64,
    /// Versions on disk, newest first.
    pub snapshots: Vec<SnapshotSummary>,
}

/// Response of `POST /v1/snapshots/{version}/activate`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Activated {
    /// The version now live.
    pub version: u64,
    /// Always true.
    pub live: bool,
}

/// Response of `POST /v1/training/pause` and `/resume`.
#[derive(Debug, Serialize, ToSchema)]
pub struct TrainingState {
    /// Training is (being) paused.
    pub paused: bool,
}

/// Response of `GET /healthz`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// Always `ok`.
    #[schema(examples("ok"))]
    pub status: String,
}

/// Response of `GET /readyz`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Ready {
    /// A snapshot is live.
    pub ready: bool,
    /// The live version (0 = none).
    pub version: u64,
}

/// `GET /v1/model`: the live snapshot and the state of the game.
#[utoipa::path(
    get,
    path = "/v1/model",
    tag = "admin",
    summary = "The live model and the trainer's state",
    responses(
        (status = 200, description = "The live snapshot's summary and the background game.", body = ModelOut),
    ),
)]
pub async fn model(State(state): State<AppState>) -> Json<ModelOut> {
    let m = api::model_info(&state);
    Json(ModelOut {
        version: m.version,
        created_unix_ms: m.created_unix_ms,
        published_unix_ms: m.published_unix_ms,
        users: m.users,
        items: m.items,
        dims: Dims {
            generator: m.generator_dim,
            discriminator: m.discriminator_dim,
        },
        training: m.training,
        validation: m.validation,
        trained_through_seq: m.trained_through_seq,
        game: m.game,
        index: m.index.to_owned(),
        index_bytes: m.index_bytes,
        lists: m.lists,
    })
}

/// `GET /v1/snapshots`: versions on disk, newest first, with their manifest summary.
#[utoipa::path(
    get,
    path = "/v1/snapshots",
    tag = "admin",
    summary = "Snapshots on disk",
    responses(
        (status = 200, description = "Versions on disk, newest first.", body = SnapshotList),
    ),
)]
pub async fn list(State(state): State<AppState>) -> Json<SnapshotList> {
    let (live, snapshots) = api::list_snapshots(&state);
    Json(SnapshotList {
        live,
        snapshots: snapshots.into_iter().map(SnapshotSummary::from).collect(),
    })
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
        (status = 201, description = "Published: the new live version.", body = Published),
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
    Ok((StatusCode::CREATED, Json(p)))
}

/// `POST /v1/snapshots/{version}/activate`: roll back (or forward) to a snapshot on disk.
#[utoipa::path(
    post,
    path = "/v1/snapshots/{version}/activate",
    tag = "admin",
    summary = "Make a snapshot on disk live (roll back or forward)",
    description = "Loads the snapshot and makes it live; training continues from it. A snapshot \
        older than today's catalogue is grown to it (users and items learnt since keep their ids; \
        new users are folded in). The request has no body.",
    params(
        ("version" = u64, Path, minimum = 1, description = "Snapshot version, as listed by `GET /v1/snapshots`."),
    ),
    responses(
        (status = 200, description = "The snapshot is live.", body = Activated),
        (status = 400, description = "Codes: `invalid_path` (not valid UTF-8), \
            `invalid_parameter` (not a non-negative integer).", body = ErrorBody),
        (status = 404, description = "Codes: `snapshot_not_found` (no complete, readable snapshot \
            with that version on disk).", body = ErrorBody),
        (status = 409, description = "Codes: `snapshot_incompatible` (its ids are not a prefix of \
            today's catalogue: it was not made from this feedback log).", body = ErrorBody),
        (status = 500, description = "Codes: `internal`.", body = ErrorBody),
        (status = 503, description = "Codes: `trainer_busy` (the queue is full, or the trainer is \
            restarting after a failure; retry), `shutting_down`.", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
pub async fn activate(
    State(state): State<AppState>,
    version: Result<Path<String>, PathRejection>,
) -> Result<Json<Activated>, ApiError> {
    let version: u64 = crate::http::queries::path_param(version)?
        .parse()
        .map_err(|_| {
            ApiError::bad_request(
                ErrorCode::InvalidParameter,
                "version must be a positive integer",
            )
        })?;
    let v = api::activate(&state, version).await?;
    Ok(Json(Activated {
        version: v,
        live: true,
    }))
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
        (status = 200, description = "Pause requested.", body = TrainingState),
        (status = 503, description = "Codes: `trainer_busy`, `shutting_down`.", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
pub async fn pause(State(state): State<AppState>) -> Result<Json<TrainingState>, ApiError> {
    api::pause(&state)?;
    Ok(Json(TrainingState { paused: true }))
}

/// `POST /v1/training/resume`
#[utoipa::path(
    post,
    path = "/v1/training/resume",
    tag = "admin",
    summary = "Resume background training",
    description = "The request has no body.",
    responses(
        (status = 200, description = "Resume requested.", body = TrainingState),
        (status = 503, description = "Codes: `trainer_busy`, `shutting_down`.", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
pub async fn resume(State(state): State<AppState>) -> Result<Json<TrainingState>, ApiError> {
    api::resume(&state)?;
    Ok(Json(TrainingState { paused: false }))
}

/// `GET /healthz`: the process is alive.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    summary = "Liveness probe",
    responses(
        (status = 200, description = "The process is alive.", body = Health),
    ),
)]
pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
    })
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
            `server.ready_without_model`).", body = Ready),
        (status = 503, description = "No snapshot yet (`ready: false`, `version: 0`).", body = Ready),
    ),
)]
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let (ready, version) = api::readiness(&state);
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(Ready { ready, version }))
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
