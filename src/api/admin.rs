//! The live model, snapshots on disk, and training control.

use serde_json::Value;

use crate::api::{AppState, Error};
use crate::online::trainer::{Published, TrainerStatus};

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
        game: state.trainer.status(),
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
    Ok(state.trainer.publish().await?)
}

/// Makes snapshot `version` on disk live (`snapshot_not_found` if there is none).
pub async fn activate(state: &AppState, version: u64) -> Result<u64, Error> {
    Ok(state.trainer.activate(version).await?)
}

/// Pauses background training.
pub fn pause(state: &AppState) -> Result<(), Error> {
    Ok(state.trainer.pause()?)
}

/// Resumes background training.
pub fn resume(state: &AppState) -> Result<(), Error> {
    Ok(state.trainer.resume()?)
}
