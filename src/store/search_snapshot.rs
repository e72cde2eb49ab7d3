//! Snapshots of a search model pair (G and D scorers over feature vectors).
//!
//! A directory like the recommendation snapshot (see [`crate::store::snapshot`]): a
//! `tensors.safetensors` with `generator.<t>` and `discriminator.<t>` tensors (`w`, `b` for a
//! linear scorer; `w1 [h, f]`, `b1`, `w2`, `b2` for an MLP), and a `manifest.json` written last
//! that names the format (`irgan-search-snapshot`), each scorer's architecture and input width,
//! G's temperature, the SHA-256 of the tensor file and free-form metadata.

use std::collections::BTreeMap;
use std::path::Path;

use safetensors::{Dtype, SafeTensors};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::features::{Architecture, Scorer};
use crate::store::snapshot::{
    F32Tensor, FileEntry, MANIFEST_FILE, SnapshotError, TENSORS_FILE, read_manifest_bytes,
    read_verified, write_snapshot_files,
};

/// Value of the manifest's `format` field.
pub const FORMAT: &str = "irgan-search-snapshot";
/// The manifest `format_version` this build writes and reads.
pub const FORMAT_VERSION: u64 = 1;

/// A search model pair.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchSnapshot {
    /// Caller-chosen version number.
    pub version: u64,
    /// Creation time, milliseconds since the Unix epoch.
    pub created_unix_ms: u64,
    /// The generator G (a softmax policy over a query's documents).
    pub generator: Scorer,
    /// Temperature of G's softmax.
    pub temperature: f32,
    /// The discriminator D.
    pub discriminator: Scorer,
    /// Free-form metadata (config, metrics, which player ranks by default).
    pub metadata: Value,
}

#[derive(Debug, Serialize, Deserialize)]
struct ScorerInfo {
    architecture: Architecture,
    n_features: usize,
}

#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    format: String,
    format_version: u64,
    version: u64,
    created_unix_ms: u64,
    files: BTreeMap<String, FileEntry>,
    generator: ScorerInfo,
    temperature: f32,
    discriminator: ScorerInfo,
    #[serde(default)]
    metadata: Value,
}

impl SearchSnapshot {
    /// Writes the snapshot into `dir` atomically (manifest last); refuses non-finite parameters.
    pub fn write(&self, dir: &Path) -> Result<(), SnapshotError> {
        for (name, s) in self.players() {
            if !s.is_finite() {
                return Err(SnapshotError::NotFinite {
                    tensor: name.into(),
                });
            }
        }
        if !self.temperature.is_finite() || self.temperature <= 0.0 {
            return Err(SnapshotError::NotFinite {
                tensor: "generator.temperature".into(),
            });
        }
        let mut tensors = Vec::new();
        for (prefix, s) in self.players() {
            for (name, shape, values) in s.tensors() {
                tensors.push((
                    format!("{prefix}.{name}"),
                    F32Tensor::new(&shape, values.iter()),
                ));
            }
        }
        let bytes = safetensors::serialize(tensors, None)
            .map_err(|e| SnapshotError::Format(format!("{TENSORS_FILE}: {e}")))?;
        let info = |s: &Scorer| ScorerInfo {
            architecture: s.arch,
            n_features: s.n_features,
        };
        let manifest = Manifest {
            format: FORMAT.into(),
            format_version: FORMAT_VERSION,
            version: self.version,
            created_unix_ms: self.created_unix_ms,
            files: [(TENSORS_FILE.to_owned(), FileEntry::of(&bytes))].into(),
            generator: info(&self.generator),
            temperature: self.temperature,
            discriminator: info(&self.discriminator),
            metadata: self.metadata.clone(),
        };
        let mut manifest_bytes = serde_json::to_vec_pretty(&manifest)
            .map_err(|e| SnapshotError::Format(format!("{MANIFEST_FILE}: {e}")))?;
        manifest_bytes.push(b'\n');
        write_snapshot_files(dir, &[(TENSORS_FILE, &bytes)], &manifest_bytes)
    }

    /// Reads and verifies a snapshot: format, checksum, shapes, finiteness.
    pub fn read(dir: &Path) -> Result<Self, SnapshotError> {
        let raw = read_manifest_bytes(dir)?;
        let value: Value = serde_json::from_slice(&raw)
            .map_err(|e| SnapshotError::Format(format!("{MANIFEST_FILE}: {e}")))?;
        if value.get("format").and_then(Value::as_str) != Some(FORMAT) {
            return Err(SnapshotError::Format(format!(
                "{MANIFEST_FILE}: `format` is not \"{FORMAT}\" (not a search snapshot)"
            )));
        }
        let found = value
            .get("format_version")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        if found != FORMAT_VERSION {
            return Err(SnapshotError::UnsupportedVersion {
                found,
                supported: FORMAT_VERSION,
            });
        }
        let m: Manifest = serde_json::from_value(value)
            .map_err(|e| SnapshotError::Format(format!("{MANIFEST_FILE}: {e}")))?;
        let entry = m.files.get(TENSORS_FILE).ok_or_else(|| {
            SnapshotError::Format(format!("{MANIFEST_FILE}: `files` lacks {TENSORS_FILE}"))
        })?;
        let bytes = read_verified(dir, TENSORS_FILE, entry)?;
        let st = SafeTensors::deserialize(&bytes)
            .map_err(|e| SnapshotError::Format(format!("{TENSORS_FILE}: {e}")))?;
        let generator = load_scorer(&st, "generator", &m.generator)?;
        let discriminator = load_scorer(&st, "discriminator", &m.discriminator)?;
        if !m.temperature.is_finite() || m.temperature <= 0.0 {
            return Err(SnapshotError::NotFinite {
                tensor: "generator.temperature".into(),
            });
        }
        Ok(Self {
            version: m.version,
            created_unix_ms: m.created_unix_ms,
            generator,
            temperature: m.temperature,
            discriminator,
            metadata: m.metadata,
        })
    }

    fn players(&self) -> [(&'static str, &Scorer); 2] {
        [
            ("generator", &self.generator),
            ("discriminator", &self.discriminator),
        ]
    }
}

fn load_scorer(st: &SafeTensors, prefix: &str, info: &ScorerInfo) -> Result<Scorer, SnapshotError> {
    let mut scorer = Scorer {
        arch: info.architecture,
        n_features: info.n_features,
        params: vec![0.0; info.architecture.n_params(info.n_features)],
    };
    let layout: Vec<(String, Vec<usize>, usize)> = scorer
        .tensors()
        .iter()
        .map(|(n, shape, v)| (format!("{prefix}.{n}"), shape.clone(), v.len()))
        .collect();
    let mut at = 0;
    for (name, shape, len) in layout {
        let t = st
            .tensor(&name)
            .map_err(|e| SnapshotError::Format(format!("{TENSORS_FILE}: {name}: {e}")))?;
        if t.dtype() != Dtype::F32 || t.shape() != shape.as_slice() {
            return Err(SnapshotError::ShapeMismatch(format!(
                "{name}: {:?} {:?}, expected F32 {shape:?}",
                t.dtype(),
                t.shape()
            )));
        }
        for (p, c) in scorer.params[at..at + len]
            .iter_mut()
            .zip(t.data().chunks_exact(4))
        {
            *p = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        }
        at += len;
    }
    if !scorer.is_finite() {
        return Err(SnapshotError::NotFinite {
            tensor: prefix.into(),
        });
    }
    Ok(scorer)
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;
    use crate::model::features::Activation;
    use crate::rng;

    fn pair() -> SearchSnapshot {
        let arch = Architecture::Mlp {
            hidden: 3,
            activation: Activation::Relu,
        };
        SearchSnapshot {
            version: 4,
            created_unix_ms: 5,
            generator: Scorer::new(arch, 4, &mut rng::stream(1, 1, 1)),
            temperature: 0.2,
            discriminator: Scorer::new(Architecture::Linear, 4, &mut rng::stream(1, 1, 2)),
            metadata: serde_json::json!({"ranker": "discriminator"}),
        }
    }

    #[test]
    fn round_trips_and_detects_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let s = pair();
        s.write(dir.path()).unwrap();
        assert_eq!(SearchSnapshot::read(dir.path()).unwrap(), s);
        let t = dir.path().join(TENSORS_FILE);
        let mut bytes = fs::read(&t).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        fs::write(&t, bytes).unwrap();
        assert!(matches!(
            SearchSnapshot::read(dir.path()),
            Err(SnapshotError::Checksum { .. })
        ));
    }

    #[test]
    fn refuses_non_finite_parameters() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = pair();
        s.discriminator.params[0] = f32::NAN;
        assert!(matches!(
            s.write(dir.path()),
            Err(SnapshotError::NotFinite { .. })
        ));
        assert!(!dir.path().join(MANIFEST_FILE).exists());
    }
}
