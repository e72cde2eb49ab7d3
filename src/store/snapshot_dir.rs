//! The service's snapshot directory: one sub-directory per version (`v0000000042/`), the newest
//! valid one loaded at start, the last N kept.

use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use crate::store::checkpoint::Checkpoint;
use crate::store::search_snapshot::SearchSnapshot;
use crate::store::{Snapshot, SnapshotError};

/// A snapshot type that lives in a [`SnapshotDir`].
pub trait Versioned: Sized {
    /// Its version number.
    fn version(&self) -> u64;
    /// Writes it into `dir` (atomically, manifest last).
    fn write_to(&self, dir: &Path) -> Result<(), SnapshotError>;
    /// Reads and verifies one from `dir`.
    fn read_from(dir: &Path) -> Result<Self, SnapshotError>;
}

impl Versioned for Snapshot {
    fn version(&self) -> u64 {
        self.version
    }
    fn write_to(&self, dir: &Path) -> Result<(), SnapshotError> {
        self.write(dir)
    }
    fn read_from(dir: &Path) -> Result<Self, SnapshotError> {
        Snapshot::read(dir)
    }
}

impl Versioned for SearchSnapshot {
    fn version(&self) -> u64 {
        self.version
    }
    fn write_to(&self, dir: &Path) -> Result<(), SnapshotError> {
        self.write(dir)
    }
    fn read_from(dir: &Path) -> Result<Self, SnapshotError> {
        SearchSnapshot::read(dir)
    }
}

/// A directory of versioned snapshots (recommendation ones by default).
#[derive(Debug)]
pub struct SnapshotDir<S = Snapshot> {
    root: PathBuf,
    kind: PhantomData<fn() -> S>,
}

impl<S> Clone for SnapshotDir<S> {
    fn clone(&self) -> Self {
        Self {
            root: self.root.clone(),
            kind: PhantomData,
        }
    }
}

impl<S> SnapshotDir<S> {
    /// The directory holding the versions.
    pub fn root(&self) -> &Path {
        &self.root
    }
}

impl<S: Versioned> SnapshotDir<S> {
    /// Opens (creating if needed) the directory.
    pub fn open(root: &Path) -> Result<Self, SnapshotError> {
        std::fs::create_dir_all(root).map_err(|source| SnapshotError::Io {
            path: root.to_owned(),
            source,
        })?;
        Ok(Self {
            root: root.to_owned(),
            kind: PhantomData,
        })
    }

    /// The directory of `version`.
    pub fn path_of(&self, version: u64) -> PathBuf {
        self.root.join(format!("v{version:010}"))
    }

    /// Versions present on disk (complete or not), ascending.
    pub fn versions(&self) -> Vec<u64> {
        let mut v: Vec<u64> = std::fs::read_dir(&self.root)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.strip_prefix('v')?.parse().ok())
            .collect();
        v.sort_unstable();
        v
    }

    /// Reads one version.
    pub fn read(&self, version: u64) -> Result<S, SnapshotError> {
        S::read_from(&self.path_of(version))
    }

    /// The newest snapshot that reads back valid; corrupt or partial ones are skipped and
    /// returned as (version, error) so the caller can warn about them.
    pub fn newest_valid(&self) -> (Option<S>, Vec<(u64, SnapshotError)>) {
        let mut skipped = Vec::new();
        for v in self.versions().into_iter().rev() {
            match self.read(v) {
                Ok(s) => return (Some(s), skipped),
                Err(e) => skipped.push((v, e)),
            }
        }
        (None, skipped)
    }

    /// Writes `snapshot` under its version, then removes all but the newest `keep` versions
    /// (never the one just written).
    pub fn write(&self, snapshot: &S, keep: usize) -> Result<(), SnapshotError> {
        snapshot.write_to(&self.path_of(snapshot.version()))?;
        self.prune(snapshot.version(), keep);
        Ok(())
    }

    /// Removes all but the newest `keep` versions, never `written`.
    fn prune(&self, written: u64, keep: usize) {
        let versions = self.versions();
        let excess = versions.len().saturating_sub(keep.max(1));
        for &v in versions.iter().take(excess) {
            if v != written {
                // Best effort: a leftover directory is harmless and retried next time.
                let _ = std::fs::remove_dir_all(self.path_of(v));
            }
        }
    }
}

/// A recommendation snapshot with the trainer's checkpoint, if it was written with one.
pub type Checkpointed = (Snapshot, Option<Checkpoint>);

impl SnapshotDir<Snapshot> {
    /// [`SnapshotDir::write`] with the trainer's checkpoint inside the snapshot directory.
    pub fn write_checkpointed(
        &self,
        snapshot: &Snapshot,
        checkpoint: &Checkpoint,
        keep: usize,
    ) -> Result<(), SnapshotError> {
        snapshot.write_checkpointed(&self.path_of(snapshot.version), checkpoint)?;
        self.prune(snapshot.version, keep);
        Ok(())
    }

    /// [`SnapshotDir::newest_valid`] with its checkpoint: a snapshot whose checkpoint is
    /// corrupt is skipped like any corrupt snapshot; one without a checkpoint loads with
    /// `None`.
    pub fn newest_valid_checkpointed(&self) -> (Option<Checkpointed>, Vec<(u64, SnapshotError)>) {
        let mut skipped = Vec::new();
        for v in self.versions().into_iter().rev() {
            match Snapshot::read_checkpointed(&self.path_of(v)) {
                Ok(s) => return (Some(s), skipped),
                Err(e) => skipped.push((v, e)),
            }
        }
        (None, skipped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::IdMap;
    use crate::model::MfModel;
    use crate::rng;

    fn snap(version: u64) -> Snapshot {
        let mut r = rng::stream(1, 0, version);
        Snapshot {
            version,
            created_unix_ms: 1,
            generator: MfModel::random(2, 3, 2, 0.1, &mut r),
            generator_temperature: 1.0,
            discriminator: MfModel::random(2, 3, 2, 0.1, &mut r),
            users: IdMap::sequential(2),
            items: IdMap::sequential(3),
            metadata: serde_json::json!({}),
        }
    }

    #[test]
    fn keeps_the_newest_and_skips_corrupt_ones() {
        let dir = tempfile::tempdir().unwrap();
        let sd: SnapshotDir = SnapshotDir::open(dir.path()).unwrap();
        for v in 1..=4 {
            sd.write(&snap(v), 3).unwrap();
        }
        assert_eq!(sd.versions(), vec![2, 3, 4]);
        // Corrupt the newest: the previous one is loaded and the bad one reported.
        let tensors = sd.path_of(4).join("tensors.safetensors");
        let mut bytes = std::fs::read(&tensors).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&tensors, bytes).unwrap();
        let (s, skipped) = sd.newest_valid();
        assert_eq!(s.unwrap().version, 3);
        assert_eq!(skipped.len(), 1);
        assert_eq!(skipped[0].0, 4);
    }

    #[test]
    fn a_corrupt_checkpoint_skips_its_snapshot_and_old_ones_load_without() {
        use crate::store::checkpoint::{CHECKPOINT_FILE, PairState};
        let dir = tempfile::tempdir().unwrap();
        let sd: SnapshotDir = SnapshotDir::open(dir.path()).unwrap();
        sd.write(&snap(1), 5).unwrap();
        let ckpt = |seq| Checkpoint {
            trained_through_seq: seq,
            pairs: vec![PairState {
                user: 1,
                item: 2,
                weight: 3.0,
                held_out: false,
            }],
        };
        sd.write_checkpointed(&snap(2), &ckpt(7), 5).unwrap();
        sd.write_checkpointed(&snap(3), &ckpt(9), 5).unwrap();
        let (s, skipped) = sd.newest_valid_checkpointed();
        let (s, c) = s.unwrap();
        assert_eq!((s.version, c, skipped.len()), (3, Some(ckpt(9)), 0));
        // Older readers see the same snapshot.
        assert_eq!(sd.read(3).unwrap(), s);

        let file = sd.path_of(3).join(CHECKPOINT_FILE);
        let mut bytes = std::fs::read(&file).unwrap();
        bytes[20] ^= 0x01;
        std::fs::write(&file, bytes).unwrap();
        let (s, skipped) = sd.newest_valid_checkpointed();
        assert_eq!(s.unwrap().1, Some(ckpt(7)));
        assert_eq!(skipped[0].0, 3);

        std::fs::remove_dir_all(sd.path_of(2)).unwrap();
        let (s, _) = sd.newest_valid_checkpointed();
        let (s, c) = s.unwrap();
        assert_eq!((s.version, c), (1, None));
    }
}
