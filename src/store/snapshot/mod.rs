//! Versioned, checksummed snapshots of a trained IRGAN: generator G, discriminator D and the id
//! maps that turn external user/item ids into rows of their factor matrices.
//!
//! # On-disk format (`format_version` 1)
//!
//! A snapshot is a directory:
//!
//! ```text
//! snap/
//! ├── tensors.safetensors   F32, little-endian, row-major:
//! │                           generator.user      [users, g_dim]
//! │                           generator.item      [items, g_dim]
//! │                           generator.bias      [items]
//! │                           discriminator.user  [users, d_dim]
//! │                           discriminator.item  [items, d_dim]
//! │                           discriminator.bias  [items]
//! ├── ids.json              {"users": [...], "items": [...]}  external ids in index order
//! ├── checkpoint.safetensors  optional: the online trainer's folded feedback (see
//! │                           [`crate::store::checkpoint`]); readers that ignore it may
//! └── manifest.json         written last; see below
//! ```
//!
//! `manifest.json` looks like
//!
//! ```json
//! {
//!   "format": "irgan-snapshot",
//!   "format_version": 1,
//!   "version": 7,
//!   "created_unix_ms": 1700000000000,
//!   "files": {
//!     "ids.json": {"sha256": "<hex>", "bytes": 1234},
//!     "tensors.safetensors": {"sha256": "<hex>", "bytes": 56789}
//!   },
//!   "generator": {"users": 943, "items": 1683, "dim": 5, "temperature": 0.2},
//!   "discriminator": {"users": 943, "items": 1683, "dim": 5},
//!   "metadata": {"config": {}, "metrics": {}}
//! }
//! ```
//!
//! Every file is written with [`write_atomic`](crate::store::atomic::write_atomic) and the
//! manifest goes last, so **a directory with a `manifest.json` holds a complete snapshot**; a
//! missing manifest means "not a snapshot" or "the write was interrupted". When overwriting, the old manifest is removed first, so an
//! interrupted overwrite reads as incomplete rather than as a mix of two snapshots. The manifest
//! records the SHA-256 and size of every other file; [`Snapshot::read`] verifies them, the
//! tensor shapes (against the manifest and the id lists) and that every parameter is finite.
//! G and D may have different latent dimensions. `metadata` is whatever JSON the caller supplied
//! (conventionally an object with the training config, metrics, …).
//!
//! Scores: `s(u, i) = user[u] · item[i] + bias[i]` for either model; G's recommendation policy is
//! `softmax(s(u, ·) / temperature)`.
//!
//! # Loading from Python
//!
//! ```python
//! from safetensors.numpy import load_file
//! import json
//! t = load_file("snap/tensors.safetensors")
//! m = json.load(open("snap/manifest.json"))
//! ids = json.load(open("snap/ids.json"))
//! u = ids["users"].index("some-user-id")
//! scores = t["generator.user"][u] @ t["generator.item"].T + t["generator.bias"]
//! top10 = [ids["items"][i] for i in (-scores).argsort()[:10]]
//! ```
//!
//! # Layout of this module
//!
//! Search snapshots ([`crate::store::search_snapshot`]) share everything but their own part:
//! `manifest` (the manifest type and its parsing), `write` (files, then the manifest),
//! `read` (manifest, then every listed file verified), `tensors` (safetensors I/O) and
//! `error`; `mf` is the recommendation snapshot's own part (G and D as factor matrices).

mod error;
pub(crate) mod manifest;
mod mf;
mod read;
pub(crate) mod tensors;
mod write;

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::data::IdMap;
use crate::model::MfModel;
use crate::store::checkpoint::{CHECKPOINT_FILE, Checkpoint};
pub use error::SnapshotError;
pub use manifest::MANIFEST_FILE;
use manifest::{Kind, Manifest};
use mf::{GeneratorInfo, MfPart, ModelInfo};
pub(crate) use read::read_snapshot;
pub use tensors::TENSORS_FILE;
pub(crate) use write::write_snapshot;

/// Value of the manifest's `format` field.
pub const FORMAT: &str = "irgan-snapshot";
/// The manifest `format_version` this build writes and reads.
pub const FORMAT_VERSION: u64 = 1;
/// Name of the id-list file inside a snapshot directory.
pub const IDS_FILE: &str = "ids.json";

/// The manifest kind of recommendation snapshots.
const KIND: Kind = Kind {
    format: FORMAT,
    format_version: FORMAT_VERSION,
};

/// A complete, self-describing model state: both players plus the id maps.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// Caller-chosen version number (e.g. a training step or a monotonically increasing id).
    pub version: u64,
    /// Creation time, milliseconds since the Unix epoch (see [`Snapshot::now_unix_ms`]).
    pub created_unix_ms: u64,
    /// The generator G.
    pub generator: MfModel,
    /// Softmax temperature of G's policy.
    pub generator_temperature: f32,
    /// The discriminator D (may have a different latent dimension than G).
    pub discriminator: MfModel,
    /// External user ids; index `u` is row `u` of both models' user factors.
    pub users: IdMap,
    /// External item ids; index `i` is row `i` of both models' item factors and biases.
    pub items: IdMap,
    /// Arbitrary caller metadata (config, metrics, …), stored verbatim in the manifest.
    pub metadata: Value,
}

/// `ids.json` as written.
#[derive(Serialize)]
struct IdsOut<'a> {
    users: &'a [String],
    items: &'a [String],
}

/// `ids.json` as read.
#[derive(Deserialize)]
struct IdsIn {
    users: Vec<String>,
    items: Vec<String>,
}

impl Snapshot {
    /// Milliseconds since the Unix epoch, for [`Snapshot::created_unix_ms`].
    pub fn now_unix_ms() -> u64 {
        crate::store::clock::now_unix_ms()
    }

    /// Writes the snapshot into `dir` (created if needed; an existing snapshot there is
    /// replaced).
    ///
    /// Refuses with [`SnapshotError::NotFinite`] (naming the tensor) if any parameter of G or D,
    /// or G's temperature, is NaN or infinite, and with [`SnapshotError::ShapeMismatch`] if the
    /// shapes disagree with each other or with the id maps; in both cases nothing is written.
    pub fn write(&self, dir: &Path) -> Result<(), SnapshotError> {
        self.write_with(dir, None)
    }

    /// [`Snapshot::write`] with the trainer's checkpoint beside the models (in the same
    /// directory, listed and checksummed in the manifest).
    pub fn write_checkpointed(
        &self,
        dir: &Path,
        checkpoint: &Checkpoint,
    ) -> Result<(), SnapshotError> {
        self.write_with(dir, Some(checkpoint))
    }

    fn write_with(&self, dir: &Path, checkpoint: Option<&Checkpoint>) -> Result<(), SnapshotError> {
        self.validate()?;
        let tensors = self.tensor_bytes()?;
        let ids = serde_json::to_vec_pretty(&IdsOut {
            users: self.users.names(),
            items: self.items.names(),
        })
        .map_err(|e| SnapshotError::Format(format!("{IDS_FILE}: {e}")))?;
        let part = MfPart {
            generator: GeneratorInfo {
                shape: ModelInfo::of(&self.generator),
                temperature: self.generator_temperature,
            },
            discriminator: ModelInfo::of(&self.discriminator),
        };
        let manifest = Manifest::new(
            KIND,
            self.version,
            self.created_unix_ms,
            part,
            self.metadata.clone(),
        );
        let checkpoint = checkpoint.map(Checkpoint::to_bytes).transpose()?;
        let mut files: Vec<(&str, &[u8])> = vec![(TENSORS_FILE, &tensors), (IDS_FILE, &ids)];
        if let Some(bytes) = &checkpoint {
            files.push((CHECKPOINT_FILE, bytes));
        }
        write_snapshot(dir, manifest, &files)
    }

    /// Reads and fully verifies the snapshot in `dir`: format and version, size and SHA-256 of
    /// every file listed in the manifest, tensor dtypes and shapes, id lists and finiteness.
    pub fn read(dir: &Path) -> Result<Self, SnapshotError> {
        Ok(Self::read_with_files(dir)?.0)
    }

    /// [`Snapshot::read`] plus the trainer's checkpoint when the snapshot has one (verified
    /// like every file, and its indices checked against the id maps). A snapshot written
    /// without a checkpoint reads as `None`.
    pub fn read_checkpointed(dir: &Path) -> Result<(Self, Option<Checkpoint>), SnapshotError> {
        let (snapshot, mut files) = Self::read_with_files(dir)?;
        let checkpoint = match files.take_optional(CHECKPOINT_FILE) {
            Some(bytes) => Some(Checkpoint::from_bytes(
                &bytes,
                snapshot.users.len(),
                snapshot.items.len(),
            )?),
            None => None,
        };
        Ok((snapshot, checkpoint))
    }

    /// The snapshot and the verified files it did not use.
    fn read_with_files(dir: &Path) -> Result<(Self, read::Files), SnapshotError> {
        let (manifest, mut files) = read_snapshot::<MfPart>(dir, KIND)?;
        let tensor_bytes = files.take(TENSORS_FILE)?;
        let id_bytes = files.take(IDS_FILE)?;

        let MfPart {
            generator: g_info,
            discriminator: d_info,
        } = &manifest.part;
        if !g_info.temperature.is_finite() {
            return Err(SnapshotError::NotFinite {
                tensor: "generator.temperature".into(),
            });
        }
        let st = tensors::deserialize(&tensor_bytes)?;
        let generator = mf::load_model(&st, "generator", &g_info.shape)?;
        let discriminator = mf::load_model(&st, "discriminator", d_info)?;

        let ids: IdsIn = serde_json::from_slice(&id_bytes)
            .map_err(|e| SnapshotError::Format(format!("{IDS_FILE}: {e}")))?;
        let users = IdMap::from_names(ids.users)
            .map_err(|d| SnapshotError::Format(format!("{IDS_FILE}: duplicate user id {d:?}")))?;
        let items = IdMap::from_names(ids.items)
            .map_err(|d| SnapshotError::Format(format!("{IDS_FILE}: duplicate item id {d:?}")))?;

        let snapshot = Self {
            version: manifest.version,
            created_unix_ms: manifest.created_unix_ms,
            generator,
            generator_temperature: g_info.temperature,
            discriminator,
            users,
            items,
            metadata: manifest.metadata,
        };
        snapshot.check_shapes()?;
        Ok((snapshot, files))
    }

    /// Finiteness and shape checks done before anything is written.
    fn validate(&self) -> Result<(), SnapshotError> {
        mf::check_finite("generator", &self.generator)?;
        mf::check_finite("discriminator", &self.discriminator)?;
        if !self.generator_temperature.is_finite() {
            return Err(SnapshotError::NotFinite {
                tensor: "generator.temperature".into(),
            });
        }
        self.check_shapes()
    }

    /// G and D agree with the id maps and are internally consistent.
    fn check_shapes(&self) -> Result<(), SnapshotError> {
        let (users, items) = (self.users.len(), self.items.len());
        mf::check_model_shapes("generator", &self.generator, users, items)?;
        mf::check_model_shapes("discriminator", &self.discriminator, users, items)
    }

    /// The serialised `tensors.safetensors`.
    fn tensor_bytes(&self) -> Result<Vec<u8>, SnapshotError> {
        let mut all = Vec::with_capacity(6);
        all.extend(mf::model_tensors("generator", &self.generator));
        all.extend(mf::model_tensors("discriminator", &self.discriminator));
        tensors::serialize(all)
    }
}

#[cfg(test)]
mod tests;
