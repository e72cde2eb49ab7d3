//! Snapshots of a search model pair (G and D scorers over feature vectors).
//!
//! A directory like the recommendation snapshot (see [`crate::store::snapshot`]): a
//! `tensors.safetensors` with `generator.<t>` and `discriminator.<t>` tensors (`w`, `b` for a
//! linear scorer; `w1 [h, f]`, `b1`, `w2`, `b2` for an MLP), and a `manifest.json` written last
//! that names the format (`irgan-search-snapshot`), each scorer's architecture and input width,
//! G's temperature, the SHA-256 of the tensor file and free-form metadata. The manifest type,
//! the writer and the verifying reader are the recommendation snapshot's
//! ([`crate::store::snapshot`]); only the part describing the scorers is this module's.

use std::path::Path;

use safetensors::SafeTensors;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::features::{Architecture, Scorer};
use crate::store::snapshot::manifest::{Kind, Manifest};
use crate::store::snapshot::tensors::{self, F32Tensor, TENSORS_FILE, load_f32};
use crate::store::snapshot::{SnapshotError, read_snapshot, write_snapshot};

/// Value of the manifest's `format` field.
pub const FORMAT: &str = "irgan-search-snapshot";
/// The manifest `format_version` this build writes and reads.
pub const FORMAT_VERSION: u64 = 1;

/// The manifest kind of search snapshots.
const KIND: Kind = Kind {
    format: FORMAT,
    format_version: FORMAT_VERSION,
};

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

/// One scorer's section of the manifest.
#[derive(Debug, Serialize, Deserialize)]
struct ScorerInfo {
    architecture: Architecture,
    n_features: usize,
}

impl ScorerInfo {
    fn of(s: &Scorer) -> Self {
        Self {
            architecture: s.arch,
            n_features: s.n_features,
        }
    }
}

/// The search manifest's own part (`generator`, `temperature`, `discriminator`).
#[derive(Debug, Serialize, Deserialize)]
struct SearchPart {
    generator: ScorerInfo,
    temperature: f32,
    discriminator: ScorerInfo,
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
        check_temperature(self.temperature)?;
        let mut all = Vec::new();
        for (prefix, s) in self.players() {
            for (name, shape, values) in s.tensors() {
                all.push((
                    format!("{prefix}.{name}"),
                    F32Tensor::new(&shape, values.iter()),
                ));
            }
        }
        let bytes = tensors::serialize(all)?;
        let part = SearchPart {
            generator: ScorerInfo::of(&self.generator),
            temperature: self.temperature,
            discriminator: ScorerInfo::of(&self.discriminator),
        };
        let manifest = Manifest::new(
            KIND,
            self.version,
            self.created_unix_ms,
            part,
            self.metadata.clone(),
        );
        write_snapshot(dir, manifest, &[(TENSORS_FILE, &bytes)])
    }

    /// Reads and verifies a snapshot: format, checksum, shapes, finiteness.
    pub fn read(dir: &Path) -> Result<Self, SnapshotError> {
        let (m, mut files) = read_snapshot::<SearchPart>(dir, KIND)?;
        let bytes = files.take(TENSORS_FILE)?;
        let st = tensors::deserialize(&bytes)?;
        let generator = load_scorer(&st, "generator", &m.part.generator)?;
        let discriminator = load_scorer(&st, "discriminator", &m.part.discriminator)?;
        check_temperature(m.part.temperature)?;
        Ok(Self {
            version: m.version,
            created_unix_ms: m.created_unix_ms,
            generator,
            temperature: m.part.temperature,
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

/// G's temperature divides scores: it must be finite and positive.
fn check_temperature(t: f32) -> Result<(), SnapshotError> {
    if t.is_finite() && t > 0.0 {
        Ok(())
    } else {
        Err(SnapshotError::NotFinite {
            tensor: "generator.temperature".into(),
        })
    }
}

/// Loads one scorer's tensors (in its layout order) into its flat parameter vector.
fn load_scorer(st: &SafeTensors, prefix: &str, info: &ScorerInfo) -> Result<Scorer, SnapshotError> {
    let mut scorer = Scorer {
        arch: info.architecture,
        n_features: info.n_features,
        params: vec![0.0; info.architecture.n_params(info.n_features)],
    };
    let layout: Vec<(String, Vec<usize>)> = scorer
        .tensors()
        .into_iter()
        .map(|(n, shape, _)| (format!("{prefix}.{n}"), shape))
        .collect();
    let mut params = Vec::with_capacity(scorer.params.len());
    for (name, shape) in layout {
        params.extend(load_f32(st, &name, &shape)?);
    }
    scorer.params = params;
    Ok(scorer)
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;
    use crate::model::features::Activation;
    use crate::rng;
    use crate::store::snapshot::MANIFEST_FILE;

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
