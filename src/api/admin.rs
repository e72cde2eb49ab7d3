//! The live model, snapshots on disk, and training control.

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::api::{AppState, Error};
use crate::online::trainer;

/// The live snapshot and the state of the game.
#[derive(Debug, Clone)]
pub struct ModelInfo {
    /// Live snapshot version (0: none yet).
    pub version: u64,
    /// When the snapshot was created (unix ms).
    pub created_unix_ms: u64,
    /// When it became live in this process (unix ms).
    pub published_unix_ms: u64,
    /// Users in the snapshot.
    pub users: usize,
    /// Items in the snapshot.
    pub items: usize,
    /// G's latent dimension.
    pub generator_dim: usize,
    /// D's latent dimension.
    pub discriminator_dim: usize,
    /// The snapshot's `training` metadata (null if none).
    pub training: Value,
    /// The snapshot's `validation` metadata (null if none).
    pub validation: Value,
    /// The snapshot's `trained_through_seq` metadata (null if none).
    pub trained_through_seq: Value,
    /// The trainer now.
    pub game: TrainerStatus,
    /// G's top-k search for this snapshot: `"exact"` or `"approximate"`.
    pub index: &'static str,
    /// Heap bytes of the approximate index (0 when exact).
    pub index_bytes: usize,
    /// How far the live snapshot's per-user lists are filled.
    pub lists: CachedLists,
}

/// Users whose top lists the live snapshot has cached, per model: filled in the background
/// after a swap (G's first); until a user's list is cached, their request costs a pass over
/// the catalogue on the query pool.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct CachedLists {
    /// Length of each cached list (`server.precompute_k`; 0: lists are not cached).
    pub k: usize,
    /// Users the live snapshot knows.
    pub users: usize,
    /// Users with G's list cached (the default recommendations).
    pub generator: usize,
    /// Users with D's list cached.
    pub discriminator: usize,
    /// Users with the blend's list cached.
    pub blend: usize,
}

/// What one D-epoch measured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, ToSchema)]
pub struct DStats {
    /// Mean logistic loss over positives and negatives.
    pub loss: f64,
    /// Fraction of observed positives D scores above 0.5.
    pub accuracy_real: f64,
    /// Fraction of G's samples D scores below 0.5.
    pub accuracy_generated: f64,
}

/// What one G-epoch measured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, ToSchema)]
pub struct GStats {
    /// Mean policy-gradient loss −Σ w·log p over users.
    pub loss: f64,
    /// Mean D reward of G's samples (before the baseline).
    pub mean_reward: f64,
    /// Mean entropy (nats) of G's policy over users.
    pub entropy: f64,
}

/// What the trainer reports about itself (`GET /v1/model`'s game state).
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
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
    /// `"busy"` (stepping) or `"idle"`.
    #[schema(example = "idle")]
    pub state: &'static str,
    /// Why: `new_data`, `improving`, `staging` (a gated candidate's caches fill; busy);
    /// `converged`, `paused`, `no_data`, `disabled` (idle).
    #[schema(example = "converged")]
    pub reason: &'static str,
    /// Gate evaluations in a row without improvement (idle at `trainer.patience`).
    pub stale_evaluations: u32,
    /// Fraction of the configured learning rates the game plays at (halved after a refusal,
    /// restored by a publish).
    pub step_scale: f64,
    /// Hold-out users the gate evaluates candidates on.
    pub gate_users: usize,
    /// The trainer runs (false while a failed restart waits to be retried, or once stopped).
    pub up: bool,
    /// Restarts from the live snapshot after a panic or failure.
    pub restarts: u64,
    /// The last panic or failure, if any.
    pub last_failure: Option<String>,
    /// Feedback events read from the log at start: only those after the loaded snapshot's
    /// checkpoint (the whole log for a snapshot without one).
    pub replayed_events: u64,
}

impl From<trainer::TrainerStatus> for TrainerStatus {
    fn from(s: trainer::TrainerStatus) -> Self {
        Self {
            paused: s.paused,
            steps: s.steps,
            applied_seq: s.applied_seq,
            users: s.users,
            items: s.items,
            positives: s.positives,
            holdout: s.holdout,
            d: DStats {
                loss: s.d.loss,
                accuracy_real: s.d.accuracy_real,
                accuracy_generated: s.d.accuracy_generated,
            },
            g: GStats {
                loss: s.g.loss,
                mean_reward: s.g.mean_reward,
                entropy: s.g.entropy,
            },
            last_refusal: s.last_refusal,
            state: if s.busy { "busy" } else { "idle" },
            reason: s.reason.as_str(),
            stale_evaluations: s.stale_evaluations,
            step_scale: s.step_scale,
            gate_users: s.gate_users,
            up: s.up,
            restarts: s.restarts,
            last_failure: s.last_failure,
            replayed_events: s.replayed_events,
        }
    }
}

/// The result of a publish attempt that succeeded.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Published {
    /// The new live version.
    pub version: u64,
    /// The candidate's validation metrics on the hold-out (metric name → value).
    #[schema(value_type = BTreeMap<String, f64>)]
    pub validation: Value,
}

/// One snapshot directory on disk.
#[derive(Debug, Clone)]
pub struct SnapshotSummary {
    /// Its version.
    pub version: u64,
    /// It is the live one.
    pub live: bool,
    /// What its manifest says; `None` when it has no readable manifest.
    pub manifest: Option<ManifestSummary>,
}

/// The parts of a manifest [`list_snapshots`] reports, as stored.
#[derive(Debug, Clone)]
pub struct ManifestSummary {
    /// `created_unix_ms`.
    pub created_unix_ms: Value,
    /// `generator.users`.
    pub users: Value,
    /// `generator.items`.
    pub items: Value,
    /// `metadata.validation`.
    pub validation: Value,
}

/// The live snapshot and the trainer's state.
pub fn model_info(state: &AppState) -> ModelInfo {
    let live = state.models.current();
    let s = &live.snapshot;
    ModelInfo {
        version: s.version,
        created_unix_ms: s.created_unix_ms,
        published_unix_ms: live.published_unix_ms,
        users: s.users.len(),
        items: s.items.len(),
        generator_dim: s.generator.dim(),
        discriminator_dim: s.discriminator.dim(),
        training: live.meta("training").clone(),
        validation: live.meta("validation").clone(),
        trained_through_seq: live.meta("trained_through_seq").clone(),
        game: state.trainer.status().into(),
        index: live.index.name(),
        index_bytes: live.index.memory_bytes(),
        lists: {
            let ([generator, discriminator, blend], users) = live.cached_lists();
            CachedLists {
                k: live.precomputed_k,
                users,
                generator,
                discriminator,
                blend,
            }
        },
    }
}

/// The live version and the snapshot versions on disk, newest first, with their manifest
/// summary.
pub fn list_snapshots(state: &AppState) -> (u64, Vec<SnapshotSummary>) {
    let live = state.models.current().version();
    let dir = &state.snapshots;
    let list = dir
        .versions()
        .into_iter()
        .rev()
        .map(|v| {
            let manifest = std::fs::read(dir.path_of(v).join("manifest.json"))
                .ok()
                .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
                .map(|m| ManifestSummary {
                    created_unix_ms: m["created_unix_ms"].clone(),
                    users: m["generator"]["users"].clone(),
                    items: m["generator"]["items"].clone(),
                    validation: m["metadata"]["validation"].clone(),
                });
            SnapshotSummary {
                version: v,
                live: v == live,
                manifest,
            }
        })
        .collect();
    (live, list)
}

/// Validates the trainer's current candidate and publishes it now (`publish_refused` if the
/// gate refuses it, with the reason).
pub async fn publish(state: &AppState) -> Result<Published, Error> {
    let p = state.trainer.publish().await?;
    Ok(Published {
        version: p.version,
        validation: p.validation,
    })
}

/// Makes snapshot `version` on disk live (`snapshot_not_found` if there is none).
pub async fn activate(state: &AppState, version: u64) -> Result<u64, Error> {
    Ok(state.trainer.activate(version).await?)
}

/// The live version and whether the service is ready for traffic: a snapshot is live, or
/// `server.ready_without_model` is set.
pub fn readiness(state: &AppState) -> (bool, u64) {
    let v = state.models.current().version();
    (v > 0 || state.config.server.ready_without_model, v)
}

/// Pauses background training.
pub fn pause(state: &AppState) -> Result<(), Error> {
    Ok(state.trainer.pause()?)
}

/// Resumes background training.
pub fn resume(state: &AppState) -> Result<(), Error> {
    Ok(state.trainer.resume()?)
}
