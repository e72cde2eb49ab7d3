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
//! Every file is written with [`write_atomic`] and the manifest goes last, so **a directory with a
//! `manifest.json` holds a complete snapshot**; a missing manifest means "not a snapshot" or "the
//! write was interrupted". When overwriting, the old manifest is removed first, so an
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

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use ndarray::{Array1, Array2};
use safetensors::{Dtype, SafeTensors, View};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::atomic::{sync_dir, write_atomic};
use crate::data::IdMap;
use crate::model::MfModel;

/// Value of the manifest's `format` field.
pub const FORMAT: &str = "irgan-snapshot";
/// The manifest `format_version` this build writes and reads.
pub const FORMAT_VERSION: u64 = 1;
/// Name of the manifest file inside a snapshot directory.
pub const MANIFEST_FILE: &str = "manifest.json";
/// Name of the tensor file inside a snapshot directory.
pub const TENSORS_FILE: &str = "tensors.safetensors";
/// Name of the id-list file inside a snapshot directory.
pub const IDS_FILE: &str = "ids.json";

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

/// Why a snapshot could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// A filesystem operation failed.
    #[error("{}: {source}", .path.display())]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A parameter is NaN or infinite (nothing is written in that case).
    #[error("tensor `{tensor}` contains NaN or infinite values")]
    NotFinite {
        /// The offending tensor, e.g. `generator.item`.
        tensor: String,
    },
    /// Tensor shapes disagree with each other, the id maps or the manifest.
    #[error("shape mismatch: {0}")]
    ShapeMismatch(String),
    /// A file's SHA-256 differs from the one recorded in the manifest.
    #[error("{file}: SHA-256 does not match manifest.json (file corrupted or modified)")]
    Checksum {
        /// Path of the corrupt file.
        file: String,
    },
    /// A file's size differs from the one recorded in the manifest.
    #[error(
        "{file}: {actual} bytes but manifest.json says {expected} (file truncated or modified)"
    )]
    Size {
        /// Path of the corrupt file.
        file: String,
        /// Size recorded in the manifest.
        expected: u64,
        /// Size found on disk.
        actual: u64,
    },
    /// The manifest declares a `format_version` this build cannot read.
    #[error("manifest.json: unsupported format_version {found} (this build reads {supported})")]
    UnsupportedVersion {
        /// Version found in the manifest.
        found: u64,
        /// Version this build supports.
        supported: u64,
    },
    /// A file is malformed (bad JSON, bad safetensors, missing field or tensor, wrong dtype, …).
    #[error("invalid snapshot: {0}")]
    Format(String),
    /// The directory has no `manifest.json`: not a snapshot, or its write never completed.
    #[error("{}: no manifest.json (not a snapshot, or its write did not complete)", .0.display())]
    MissingManifest(PathBuf),
}

/// `files` entry of a manifest.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct FileEntry {
    pub(crate) sha256: String,
    pub(crate) bytes: u64,
}

impl FileEntry {
    /// The entry describing `bytes`.
    pub(crate) fn of(bytes: &[u8]) -> Self {
        Self {
            sha256: sha256_hex(bytes),
            bytes: bytes.len() as u64,
        }
    }
}

/// `generator` section of the manifest.
#[derive(Debug, Serialize, Deserialize)]
struct GeneratorInfo {
    users: usize,
    items: usize,
    dim: usize,
    temperature: f32,
}

/// `discriminator` section of the manifest.
#[derive(Debug, Serialize, Deserialize)]
struct ModelInfo {
    users: usize,
    items: usize,
    dim: usize,
}

/// `manifest.json`.
#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    format: String,
    format_version: u64,
    version: u64,
    created_unix_ms: u64,
    files: BTreeMap<String, FileEntry>,
    generator: GeneratorInfo,
    discriminator: ModelInfo,
    #[serde(default)]
    metadata: Value,
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

/// An owned F32 tensor ready for `safetensors::serialize`.
pub(crate) struct F32Tensor {
    shape: Vec<usize>,
    data: Vec<u8>,
}

impl F32Tensor {
    pub(crate) fn new<'a>(shape: &[usize], values: impl Iterator<Item = &'a f32>) -> Self {
        let data = values.flat_map(|x| x.to_le_bytes()).collect();
        Self {
            shape: shape.to_vec(),
            data,
        }
    }
}

impl View for F32Tensor {
    fn dtype(&self) -> Dtype {
        Dtype::F32
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.data)
    }
    fn data_len(&self) -> usize {
        self.data.len()
    }
}

impl Snapshot {
    /// Milliseconds since the Unix epoch, for [`Snapshot::created_unix_ms`].
    pub fn now_unix_ms() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    /// Writes the snapshot into `dir` (created if needed; an existing snapshot there is
    /// replaced).
    ///
    /// Refuses with [`SnapshotError::NotFinite`] (naming the tensor) if any parameter of G or D,
    /// or G's temperature, is NaN or infinite, and with [`SnapshotError::ShapeMismatch`] if the
    /// shapes disagree with each other or with the id maps; in both cases nothing is written.
    pub fn write(&self, dir: &Path) -> Result<(), SnapshotError> {
        self.validate()?;

        let tensors = self.tensor_bytes()?;
        let ids = serde_json::to_vec_pretty(&IdsOut {
            users: self.users.names(),
            items: self.items.names(),
        })
        .map_err(|e| SnapshotError::Format(format!("{IDS_FILE}: {e}")))?;
        let mut manifest = serde_json::to_vec_pretty(&self.manifest(&tensors, &ids))
            .map_err(|e| SnapshotError::Format(format!("{MANIFEST_FILE}: {e}")))?;
        manifest.push(b'\n');

        write_snapshot_files(
            dir,
            &[(TENSORS_FILE, &tensors), (IDS_FILE, &ids)],
            &manifest,
        )
    }

    /// Reads and fully verifies the snapshot in `dir`: format and version, size and SHA-256 of
    /// every file listed in the manifest, tensor dtypes and shapes, id lists and finiteness.
    pub fn read(dir: &Path) -> Result<Self, SnapshotError> {
        let raw = read_manifest_bytes(dir)?;
        let manifest = parse_manifest(&raw)?;

        let mut tensor_bytes = None;
        let mut id_bytes = None;
        for (name, entry) in &manifest.files {
            let bytes = read_verified(dir, name, entry)?;
            match name.as_str() {
                TENSORS_FILE => tensor_bytes = Some(bytes),
                IDS_FILE => id_bytes = Some(bytes),
                _ => {} // Verified but unused: room for future additions.
            }
        }
        let missing =
            |f: &str| SnapshotError::Format(format!("{MANIFEST_FILE}: `files` does not list {f}"));
        let tensor_bytes = tensor_bytes.ok_or_else(|| missing(TENSORS_FILE))?;
        let id_bytes = id_bytes.ok_or_else(|| missing(IDS_FILE))?;

        let g_info = &manifest.generator;
        if !g_info.temperature.is_finite() {
            return Err(SnapshotError::NotFinite {
                tensor: "generator.temperature".into(),
            });
        }
        let st = SafeTensors::deserialize(&tensor_bytes)
            .map_err(|e| SnapshotError::Format(format!("{TENSORS_FILE}: {e}")))?;
        let generator = load_model(&st, "generator", g_info.users, g_info.items, g_info.dim)?;
        let d_info = &manifest.discriminator;
        let discriminator =
            load_model(&st, "discriminator", d_info.users, d_info.items, d_info.dim)?;

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
        Ok(snapshot)
    }

    /// Finiteness and shape checks done before anything is written.
    fn validate(&self) -> Result<(), SnapshotError> {
        check_finite("generator", &self.generator)?;
        check_finite("discriminator", &self.discriminator)?;
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
        check_model_shapes("generator", &self.generator, users, items)?;
        check_model_shapes("discriminator", &self.discriminator, users, items)
    }

    /// The serialised `tensors.safetensors`.
    fn tensor_bytes(&self) -> Result<Vec<u8>, SnapshotError> {
        let mut tensors = Vec::with_capacity(6);
        for (prefix, m) in [
            ("generator", &self.generator),
            ("discriminator", &self.discriminator),
        ] {
            tensors.push((
                format!("{prefix}.user"),
                F32Tensor::new(m.user.shape(), m.user.iter()),
            ));
            tensors.push((
                format!("{prefix}.item"),
                F32Tensor::new(m.item.shape(), m.item.iter()),
            ));
            tensors.push((
                format!("{prefix}.bias"),
                F32Tensor::new(m.bias.shape(), m.bias.iter()),
            ));
        }
        safetensors::serialize(tensors, None)
            .map_err(|e| SnapshotError::Format(format!("{TENSORS_FILE}: {e}")))
    }

    /// The manifest describing this snapshot and the given file contents.
    fn manifest(&self, tensors: &[u8], ids: &[u8]) -> Manifest {
        let entry = FileEntry::of;
        let files = [
            (TENSORS_FILE.to_owned(), entry(tensors)),
            (IDS_FILE.to_owned(), entry(ids)),
        ]
        .into_iter()
        .collect();
        Manifest {
            format: FORMAT.to_owned(),
            format_version: FORMAT_VERSION,
            version: self.version,
            created_unix_ms: self.created_unix_ms,
            files,
            generator: GeneratorInfo {
                users: self.generator.n_users(),
                items: self.generator.n_items(),
                dim: self.generator.dim(),
                temperature: self.generator_temperature,
            },
            discriminator: ModelInfo {
                users: self.discriminator.n_users(),
                items: self.discriminator.n_items(),
                dim: self.discriminator.dim(),
            },
            metadata: self.metadata.clone(),
        }
    }
}

/// Maps an I/O error to [`SnapshotError::Io`] naming `path`.
pub(crate) fn io_err(path: &Path) -> impl FnOnce(io::Error) -> SnapshotError + '_ {
    move |source| SnapshotError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes a snapshot directory: the old manifest is removed first (so an interrupted overwrite
/// reads as incomplete, not as a manifest describing other files), then every data file, then
/// the manifest, each atomically.
pub(crate) fn write_snapshot_files(
    dir: &Path,
    files: &[(&str, &[u8])],
    manifest: &[u8],
) -> Result<(), SnapshotError> {
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    let manifest_path = dir.join(MANIFEST_FILE);
    match fs::remove_file(&manifest_path) {
        Ok(()) => sync_dir(dir).map_err(io_err(dir))?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(&manifest_path)(e)),
    }
    for (name, bytes) in files {
        let path = dir.join(name);
        write_atomic(&path, bytes).map_err(io_err(&path))?;
    }
    write_atomic(&manifest_path, manifest).map_err(io_err(&manifest_path))
}

/// The raw `manifest.json` of `dir`; a missing one is [`SnapshotError::MissingManifest`].
pub(crate) fn read_manifest_bytes(dir: &Path) -> Result<Vec<u8>, SnapshotError> {
    let manifest_path = dir.join(MANIFEST_FILE);
    match fs::read(&manifest_path) {
        Ok(raw) => Ok(raw),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            Err(SnapshotError::MissingManifest(dir.to_path_buf()))
        }
        Err(e) => Err(io_err(&manifest_path)(e)),
    }
}

/// Lower-case hex SHA-256 of `bytes`.
fn sha256_hex(bytes: &[u8]) -> String {
    let mut hex = String::with_capacity(64);
    for b in Sha256::digest(bytes).iter() {
        let _ = write!(hex, "{b:02x}");
    }
    hex
}

/// Parses `manifest.json`, checking `format` and `format_version` before the rest so that a
/// newer snapshot gets a version error rather than a confusing missing-field error.
fn parse_manifest(raw: &[u8]) -> Result<Manifest, SnapshotError> {
    let value: Value = serde_json::from_slice(raw).map_err(|e| {
        SnapshotError::Format(format!(
            "{MANIFEST_FILE}: not valid JSON ({e}); the file may be truncated"
        ))
    })?;
    let format = value.get("format");
    if format.and_then(Value::as_str) != Some(FORMAT) {
        let found = format.map_or_else(|| "nothing".to_owned(), Value::to_string);
        return Err(SnapshotError::Format(format!(
            "{MANIFEST_FILE}: `format` is {found}, expected \"{FORMAT}\""
        )));
    }
    match value.get("format_version").and_then(Value::as_u64) {
        Some(FORMAT_VERSION) => {}
        Some(found) => {
            return Err(SnapshotError::UnsupportedVersion {
                found,
                supported: FORMAT_VERSION,
            });
        }
        None => {
            return Err(SnapshotError::Format(format!(
                "{MANIFEST_FILE}: missing or non-integer `format_version`"
            )));
        }
    }
    serde_json::from_value(value)
        .map_err(|e| SnapshotError::Format(format!("{MANIFEST_FILE}: {e}")))
}

/// Reads `dir/name` after checking it is a plain file name, and verifies size and SHA-256.
pub(crate) fn read_verified(
    dir: &Path,
    name: &str,
    entry: &FileEntry,
) -> Result<Vec<u8>, SnapshotError> {
    let mut parts = Path::new(name).components();
    let plain = matches!(
        (parts.next(), parts.next()),
        (Some(Component::Normal(_)), None)
    );
    if !plain || name == MANIFEST_FILE {
        return Err(SnapshotError::Format(format!(
            "{MANIFEST_FILE}: `files` lists {name:?}, which is not a plain data file name"
        )));
    }
    let path = dir.join(name);
    let file = path.display().to_string();
    // Check the size before reading, so a wildly wrong file is not loaded into memory.
    let actual = fs::metadata(&path).map_err(io_err(&path))?.len();
    if actual != entry.bytes {
        return Err(SnapshotError::Size {
            file,
            expected: entry.bytes,
            actual,
        });
    }
    let bytes = fs::read(&path).map_err(io_err(&path))?;
    if bytes.len() as u64 != entry.bytes {
        return Err(SnapshotError::Size {
            file,
            expected: entry.bytes,
            actual: bytes.len() as u64,
        });
    }
    if !sha256_hex(&bytes).eq_ignore_ascii_case(&entry.sha256) {
        return Err(SnapshotError::Checksum { file });
    }
    Ok(bytes)
}

/// Errors unless every parameter of `m` is finite, naming the first bad tensor.
fn check_finite(prefix: &str, m: &MfModel) -> Result<(), SnapshotError> {
    let parts = [
        ("user", m.user.iter().all(|x| x.is_finite())),
        ("item", m.item.iter().all(|x| x.is_finite())),
        ("bias", m.bias.iter().all(|x| x.is_finite())),
    ];
    match parts.iter().find(|(_, ok)| !ok) {
        Some((part, _)) => Err(SnapshotError::NotFinite {
            tensor: format!("{prefix}.{part}"),
        }),
        None => Ok(()),
    }
}

/// Errors unless `m` covers exactly `users` users and `items` items with consistent dims.
fn check_model_shapes(
    prefix: &str,
    m: &MfModel,
    users: usize,
    items: usize,
) -> Result<(), SnapshotError> {
    let (u, du) = m.user.dim();
    let (i, di) = m.item.dim();
    let b = m.bias.len();
    let problem = if u != users {
        format!("{prefix}.user has {u} rows but there are {users} user ids")
    } else if i != items {
        format!("{prefix}.item has {i} rows but there are {items} item ids")
    } else if du != di {
        format!("{prefix}.user has dim {du} but {prefix}.item has dim {di}")
    } else if b != i {
        format!("{prefix}.bias has length {b} but {prefix}.item has {i} rows")
    } else {
        return Ok(());
    };
    Err(SnapshotError::ShapeMismatch(problem))
}

/// Loads one model's three tensors, checking them against the manifest's shape.
fn load_model(
    st: &SafeTensors<'_>,
    prefix: &str,
    users: usize,
    items: usize,
    dim: usize,
) -> Result<MfModel, SnapshotError> {
    let matrix = |part: &str, rows: usize| -> Result<Array2<f32>, SnapshotError> {
        let name = format!("{prefix}.{part}");
        let values = load_f32(st, &name, &[rows, dim])?;
        Array2::from_shape_vec((rows, dim), values)
            .map_err(|e| SnapshotError::ShapeMismatch(format!("{TENSORS_FILE}: `{name}`: {e}")))
    };
    let user = matrix("user", users)?;
    let item = matrix("item", items)?;
    let bias = Array1::from_vec(load_f32(st, &format!("{prefix}.bias"), &[items])?);
    Ok(MfModel { user, item, bias })
}

/// One F32 tensor's values, checking presence, dtype, shape and finiteness.
fn load_f32(st: &SafeTensors<'_>, name: &str, shape: &[usize]) -> Result<Vec<f32>, SnapshotError> {
    let view = st
        .tensor(name)
        .map_err(|_| SnapshotError::Format(format!("{TENSORS_FILE}: missing tensor `{name}`")))?;
    if view.dtype() != Dtype::F32 {
        return Err(SnapshotError::Format(format!(
            "{TENSORS_FILE}: tensor `{name}` has dtype {:?}, expected F32",
            view.dtype()
        )));
    }
    if view.shape() != shape {
        return Err(SnapshotError::ShapeMismatch(format!(
            "{TENSORS_FILE}: tensor `{name}` has shape {:?} but {MANIFEST_FILE} implies {shape:?}",
            view.shape()
        )));
    }
    let values: Vec<f32> = view
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    if !values.iter().all(|x| x.is_finite()) {
        return Err(SnapshotError::NotFinite {
            tensor: name.to_owned(),
        });
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::ShapeBuilder;
    use serde_json::json;

    fn model(users: usize, items: usize, dim: usize, seed: f32) -> MfModel {
        let v = |i: usize, j: usize, k: f32| ((i * 31 + j * 7) as f32 * 0.37 + seed * k).sin();
        MfModel {
            user: Array2::from_shape_fn((users, dim), |(i, j)| v(i, j, 1.0)),
            item: Array2::from_shape_fn((items, dim), |(i, j)| v(i, j, 2.0) * 1e-3),
            bias: Array1::from_shape_fn(items, |i| v(i, 0, 3.0) - 0.5),
        }
    }

    fn ids(prefix: &str, n: usize) -> IdMap {
        IdMap::from_names((0..n).map(|i| format!("{prefix}-{i}")).collect()).unwrap()
    }

    /// G and D with different dims on purpose.
    fn sample(users: usize, items: usize) -> Snapshot {
        Snapshot {
            version: 42,
            created_unix_ms: 1_700_000_000_123,
            generator: model(users, items, 3, 0.5),
            generator_temperature: 0.2,
            discriminator: model(users, items, 5, 1.5),
            users: ids("user", users),
            items: ids("item", items),
            metadata: json!({
                "config": {"lr": 0.001, "epochs": 30, "name": "ml-100k"},
                "metrics": {"p@5": 0.25, "ndcg@10": [0.5, 0.75]},
            }),
        }
    }

    fn has_manifest(dir: &Path) -> bool {
        dir.join(MANIFEST_FILE).exists()
    }

    fn edit_manifest(dir: &Path, f: impl FnOnce(&mut Value)) {
        let p = dir.join(MANIFEST_FILE);
        let mut m: Value = serde_json::from_slice(&fs::read(&p).unwrap()).unwrap();
        f(&mut m);
        fs::write(&p, serde_json::to_vec(&m).unwrap()).unwrap();
    }

    #[test]
    fn round_trip_is_exact() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("snap"); // created by write
        let s = sample(7, 11);
        s.write(&dir).unwrap();
        let back = Snapshot::read(&dir).unwrap();
        assert_eq!(back, s);
        assert_eq!(back.generator.dim(), 3);
        assert_eq!(back.discriminator.dim(), 5);
        assert_eq!(back.users.names(), s.users.names());
        assert_eq!(back.items.names(), s.items.names());
        assert_eq!(back.metadata, s.metadata);
        assert_eq!(back.version, 42);
        assert_eq!(back.generator_temperature.to_bits(), 0.2f32.to_bits());
        // Bit-exact tensors.
        let bits = |a: &MfModel| a.user.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&back.generator), bits(&s.generator));
        // Only the three files, no temporaries.
        let mut names: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, [IDS_FILE, MANIFEST_FILE, TENSORS_FILE]);
    }

    #[test]
    fn manifest_has_the_documented_fields() {
        let d = tempfile::tempdir().unwrap();
        let s = sample(4, 6);
        s.write(d.path()).unwrap();
        let m: Value =
            serde_json::from_slice(&fs::read(d.path().join(MANIFEST_FILE)).unwrap()).unwrap();
        assert_eq!(m["format"], "irgan-snapshot");
        assert_eq!(m["format_version"], 1);
        assert_eq!(m["version"], 42);
        assert_eq!(m["created_unix_ms"], 1_700_000_000_123u64);
        assert_eq!(
            m["generator"],
            json!({"users": 4, "items": 6, "dim": 3, "temperature": 0.2})
        );
        assert_eq!(
            m["discriminator"],
            json!({"users": 4, "items": 6, "dim": 5})
        );
        assert_eq!(m["metadata"], s.metadata);
        for f in [TENSORS_FILE, IDS_FILE] {
            let bytes = fs::read(d.path().join(f)).unwrap();
            assert_eq!(m["files"][f]["bytes"], bytes.len());
            assert_eq!(m["files"][f]["sha256"], sha256_hex(&bytes));
        }
        let ids: Value =
            serde_json::from_slice(&fs::read(d.path().join(IDS_FILE)).unwrap()).unwrap();
        assert_eq!(ids["users"][3], "user-3");
        assert_eq!(ids["items"][5], "item-5");
        // Tensors are readable by the reference safetensors parser with the documented names.
        let raw = fs::read(d.path().join(TENSORS_FILE)).unwrap();
        let st = SafeTensors::deserialize(&raw).unwrap();
        let mut names = st.names();
        names.sort();
        assert_eq!(
            names,
            [
                "discriminator.bias",
                "discriminator.item",
                "discriminator.user",
                "generator.bias",
                "generator.item",
                "generator.user"
            ]
        );
        assert_eq!(st.tensor("discriminator.item").unwrap().shape(), [6, 5]);
    }

    #[test]
    fn sha256_hex_matches_known_vector() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn non_standard_layout_is_written_in_row_major_order() {
        let d = tempfile::tempdir().unwrap();
        let mut s = sample(3, 4);
        let user = s.generator.user.clone();
        let mut fortran = Array2::zeros((3, 3).f());
        fortran.assign(&user);
        s.generator.user = fortran;
        s.write(d.path()).unwrap();
        let back = Snapshot::read(d.path()).unwrap();
        assert_eq!(back.generator.user, user);
        assert!(back.generator.user.is_standard_layout());
    }

    #[test]
    fn empty_catalogue_round_trips() {
        let d = tempfile::tempdir().unwrap();
        let s = sample(0, 0);
        s.write(d.path()).unwrap();
        assert_eq!(Snapshot::read(d.path()).unwrap(), s);
    }

    #[test]
    fn non_finite_parameters_are_refused_and_nothing_is_written() {
        let d = tempfile::tempdir().unwrap();
        let names = [
            "generator.user",
            "generator.item",
            "generator.bias",
            "discriminator.user",
            "discriminator.item",
            "discriminator.bias",
        ];
        for (k, name) in names.iter().enumerate() {
            for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
                let mut s = sample(3, 4);
                let m = if k < 3 {
                    &mut s.generator
                } else {
                    &mut s.discriminator
                };
                match k % 3 {
                    0 => m.user[[2, 1]] = bad,
                    1 => m.item[[3, 0]] = bad,
                    _ => m.bias[1] = bad,
                }
                let dir = d.path().join(format!("{name}-{bad}"));
                match s.write(&dir) {
                    Err(SnapshotError::NotFinite { tensor }) => assert_eq!(tensor, *name),
                    other => panic!("{name}: expected NotFinite, got {other:?}"),
                }
                assert!(!has_manifest(&dir));
                assert!(!dir.exists(), "nothing should be written");
            }
        }
        let mut s = sample(3, 4);
        s.generator_temperature = f32::NAN;
        let err = s.write(&d.path().join("t")).unwrap_err();
        assert!(
            matches!(err, SnapshotError::NotFinite { ref tensor } if tensor == "generator.temperature")
        );
    }

    #[test]
    fn refused_write_leaves_previous_snapshot_intact() {
        let d = tempfile::tempdir().unwrap();
        let good = sample(3, 4);
        good.write(d.path()).unwrap();
        let mut bad = sample(3, 4);
        bad.discriminator.item[[0, 0]] = f32::NAN;
        assert!(bad.write(d.path()).is_err());
        assert_eq!(Snapshot::read(d.path()).unwrap(), good);
    }

    #[test]
    fn non_finite_values_on_disk_are_rejected() {
        // A file written by another tool with a NaN and a consistent manifest.
        let d = tempfile::tempdir().unwrap();
        let mut s = sample(3, 4);
        s.write(d.path()).unwrap();
        s.discriminator.bias[2] = f32::NAN;
        let tensors = s.tensor_bytes().unwrap();
        fs::write(d.path().join(TENSORS_FILE), &tensors).unwrap();
        edit_manifest(d.path(), |m| {
            m["files"][TENSORS_FILE]["sha256"] = json!(sha256_hex(&tensors));
        });
        match Snapshot::read(d.path()) {
            Err(SnapshotError::NotFinite { tensor }) => assert_eq!(tensor, "discriminator.bias"),
            other => panic!("expected NotFinite, got {other:?}"),
        }
    }

    #[test]
    fn flipped_byte_is_a_checksum_error() {
        let d = tempfile::tempdir().unwrap();
        sample(5, 8).write(d.path()).unwrap();
        let p = d.path().join(TENSORS_FILE);
        let mut bytes = fs::read(&p).unwrap();
        let last = bytes.len() - 1; // inside the tensor data
        bytes[last] ^= 0x01;
        fs::write(&p, &bytes).unwrap();
        let err = Snapshot::read(d.path()).unwrap_err();
        match &err {
            SnapshotError::Checksum { file } => assert!(file.ends_with(TENSORS_FILE)),
            other => panic!("expected Checksum, got {other:?}"),
        }
        assert!(err.to_string().contains(TENSORS_FILE));

        // Also in the header and in ids.json.
        sample(5, 8).write(d.path()).unwrap();
        let mut bytes = fs::read(&p).unwrap();
        bytes[20] ^= 0x20;
        fs::write(&p, &bytes).unwrap();
        assert!(matches!(
            Snapshot::read(d.path()),
            Err(SnapshotError::Checksum { .. })
        ));

        sample(5, 8).write(d.path()).unwrap();
        let ids = d.path().join(IDS_FILE);
        let text = fs::read_to_string(&ids)
            .unwrap()
            .replace("user-3", "user-9");
        fs::write(&ids, text).unwrap();
        match Snapshot::read(d.path()) {
            Err(SnapshotError::Checksum { file }) => assert!(file.ends_with(IDS_FILE)),
            other => panic!("expected Checksum, got {other:?}"),
        }
    }

    #[test]
    fn truncated_or_missing_data_files_are_errors() {
        let d = tempfile::tempdir().unwrap();
        sample(5, 8).write(d.path()).unwrap();
        let p = d.path().join(TENSORS_FILE);
        let bytes = fs::read(&p).unwrap();
        fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
        match Snapshot::read(d.path()) {
            Err(SnapshotError::Size {
                file,
                expected,
                actual,
            }) => {
                assert!(file.ends_with(TENSORS_FILE));
                assert_eq!(expected, bytes.len() as u64);
                assert_eq!(actual, (bytes.len() / 2) as u64);
            }
            other => panic!("expected Size, got {other:?}"),
        }
        fs::remove_file(&p).unwrap();
        match Snapshot::read(d.path()) {
            Err(SnapshotError::Io { path, .. }) => assert_eq!(path, p),
            other => panic!("expected Io, got {other:?}"),
        }
    }

    #[test]
    fn missing_or_broken_manifest_is_an_error_not_a_panic() {
        let d = tempfile::tempdir().unwrap();
        assert!(matches!(
            Snapshot::read(d.path()),
            Err(SnapshotError::MissingManifest(_))
        ));
        assert!(matches!(
            Snapshot::read(&d.path().join("does-not-exist")),
            Err(SnapshotError::MissingManifest(_))
        ));

        sample(3, 4).write(d.path()).unwrap();
        let p = d.path().join(MANIFEST_FILE);
        let full = fs::read(&p).unwrap();
        for cut in [0, 1, full.len() / 3, full.len() / 2, full.len() - 3] {
            fs::write(&p, &full[..cut]).unwrap();
            let err = Snapshot::read(d.path()).unwrap_err();
            assert!(
                matches!(err, SnapshotError::Format(_)),
                "cut {cut}: {err:?}"
            );
            assert!(err.to_string().contains(MANIFEST_FILE), "{err}");
        }
        for junk in [&b"\xff\xfe\x00garbage"[..], b"[1, 2, 3]", b"null", b"{}"] {
            fs::write(&p, junk).unwrap();
            assert!(matches!(
                Snapshot::read(d.path()),
                Err(SnapshotError::Format(_))
            ));
        }
        // Right format and version but a missing section.
        fs::write(&p, &full).unwrap();
        edit_manifest(d.path(), |m| {
            m.as_object_mut().unwrap().remove("generator");
        });
        let err = Snapshot::read(d.path()).unwrap_err();
        assert!(err.to_string().contains("generator"), "{err}");
        // A manifest that does not list a required file.
        fs::write(&p, &full).unwrap();
        edit_manifest(d.path(), |m| {
            m["files"].as_object_mut().unwrap().remove(IDS_FILE);
        });
        let err = Snapshot::read(d.path()).unwrap_err();
        assert!(err.to_string().contains(IDS_FILE), "{err}");
        // A manifest that is a directory.
        fs::remove_file(&p).unwrap();
        fs::create_dir(&p).unwrap();
        assert!(Snapshot::read(d.path()).is_err());
    }

    #[test]
    fn unsupported_format_or_version_is_an_error() {
        let d = tempfile::tempdir().unwrap();
        sample(3, 4).write(d.path()).unwrap();
        edit_manifest(d.path(), |m| m["format_version"] = json!(2));
        match Snapshot::read(d.path()) {
            Err(SnapshotError::UnsupportedVersion { found, supported }) => {
                assert_eq!((found, supported), (2, 1));
            }
            other => panic!("expected UnsupportedVersion, got {other:?}"),
        }
        edit_manifest(d.path(), |m| m["format_version"] = json!("1"));
        assert!(matches!(
            Snapshot::read(d.path()),
            Err(SnapshotError::Format(_))
        ));
        edit_manifest(d.path(), |m| {
            m["format_version"] = json!(1);
            m["format"] = json!("something-else");
        });
        let err = Snapshot::read(d.path()).unwrap_err();
        assert!(matches!(err, SnapshotError::Format(_)));
        assert!(err.to_string().contains("something-else"), "{err}");
    }

    #[test]
    fn overwriting_an_existing_snapshot_works() {
        let d = tempfile::tempdir().unwrap();
        let a = sample(5, 8);
        a.write(d.path()).unwrap();
        assert_eq!(Snapshot::read(d.path()).unwrap(), a);

        let mut b = sample(2, 3);
        b.version = 43;
        b.metadata = json!({"note": "smaller"});
        b.write(d.path()).unwrap();
        assert_eq!(Snapshot::read(d.path()).unwrap(), b);

        let mut c = sample(9, 12);
        c.version = 44;
        c.write(d.path()).unwrap();
        assert_eq!(Snapshot::read(d.path()).unwrap(), c);
        let n = fs::read_dir(d.path()).unwrap().count();
        assert_eq!(n, 3, "no temporaries left behind");
    }

    #[test]
    fn shape_mismatches_are_refused() {
        let d = tempfile::tempdir().unwrap();
        type Mutate = fn(&mut Snapshot);
        let cases: Vec<(&str, Mutate)> = vec![
            ("generator.user", |s| {
                s.generator.user = Array2::zeros((4, 3))
            }),
            ("4 user ids", |s| s.users = ids("user", 4)),
            ("discriminator.item", |s| {
                s.discriminator.item = Array2::zeros((5, 5))
            }),
            ("discriminator.bias", |s| {
                s.discriminator.bias = Array1::zeros(3)
            }),
            (
                "generator.user has dim 3 but generator.item has dim 2",
                |s| s.generator.item = Array2::zeros((4, 2)),
            ),
            ("5 item ids", |s| s.items = ids("item", 5)),
        ];
        for (k, (needle, mutate)) in cases.iter().enumerate() {
            let mut s = sample(3, 4);
            mutate(&mut s);
            let dir = d.path().join(k.to_string());
            match s.write(&dir) {
                Err(SnapshotError::ShapeMismatch(msg)) => {
                    assert!(msg.contains(needle), "{needle}: {msg}");
                }
                other => panic!("{needle}: expected ShapeMismatch, got {other:?}"),
            }
            assert!(!dir.exists());
        }
    }

    #[test]
    fn manifest_shape_disagreeing_with_tensors_is_an_error() {
        let d = tempfile::tempdir().unwrap();
        sample(3, 4).write(d.path()).unwrap();
        edit_manifest(d.path(), |m| m["discriminator"]["dim"] = json!(4));
        let err = Snapshot::read(d.path()).unwrap_err();
        assert!(matches!(err, SnapshotError::ShapeMismatch(_)), "{err:?}");
        assert!(err.to_string().contains("discriminator.user"), "{err}");

        sample(3, 4).write(d.path()).unwrap();
        edit_manifest(d.path(), |m| {
            m["generator"]["users"] = json!(100_000_000_000u64)
        });
        assert!(matches!(
            Snapshot::read(d.path()),
            Err(SnapshotError::ShapeMismatch(_))
        ));
    }

    #[test]
    fn ids_disagreeing_with_tensors_is_an_error() {
        let d = tempfile::tempdir().unwrap();
        let s = sample(3, 4);
        s.write(d.path()).unwrap();
        // Rewrite ids.json with one user too many and fix the checksum.
        let names: Vec<String> = (0..4).map(|i| format!("u{i}")).collect();
        let ids = serde_json::to_vec(&json!({"users": names, "items": s.items.names()})).unwrap();
        fs::write(d.path().join(IDS_FILE), &ids).unwrap();
        edit_manifest(d.path(), |m| {
            m["files"][IDS_FILE] = json!({"sha256": sha256_hex(&ids), "bytes": ids.len()});
        });
        assert!(matches!(
            Snapshot::read(d.path()),
            Err(SnapshotError::ShapeMismatch(_))
        ));
        // Duplicate ids.
        let ids = serde_json::to_vec(&json!({"users": ["a", "b", "a"], "items": s.items.names()}))
            .unwrap();
        fs::write(d.path().join(IDS_FILE), &ids).unwrap();
        edit_manifest(d.path(), |m| {
            m["files"][IDS_FILE] = json!({"sha256": sha256_hex(&ids), "bytes": ids.len()});
        });
        let err = Snapshot::read(d.path()).unwrap_err();
        assert!(err.to_string().contains("duplicate user id"), "{err}");
    }

    #[test]
    fn manifest_cannot_point_outside_the_directory() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("snap");
        sample(3, 4).write(&dir).unwrap();
        fs::write(d.path().join("outside"), b"x").unwrap();
        for bad in ["../outside", "/etc/passwd", "", "manifest.json", "a/b"] {
            edit_manifest(&dir, |m| {
                m["files"][bad] = json!({"sha256": sha256_hex(b"x"), "bytes": 1});
            });
            let err = Snapshot::read(&dir).unwrap_err();
            assert!(matches!(err, SnapshotError::Format(_)), "{bad}: {err:?}");
            edit_manifest(&dir, |m| {
                m["files"].as_object_mut().unwrap().remove(bad);
            });
        }
        assert!(Snapshot::read(&dir).is_ok());
    }

    #[test]
    fn interrupted_overwrite_reads_as_incomplete() {
        // Simulate a crash right after the old manifest was invalidated.
        let d = tempfile::tempdir().unwrap();
        sample(3, 4).write(d.path()).unwrap();
        fs::remove_file(d.path().join(MANIFEST_FILE)).unwrap();
        assert!(matches!(
            Snapshot::read(d.path()),
            Err(SnapshotError::MissingManifest(_))
        ));
    }

    #[test]
    fn python_can_load_the_snapshot() {
        let available = std::process::Command::new("python3")
            .args(["-c", "import safetensors, numpy"])
            .output()
            .is_ok_and(|o| o.status.success());
        if !available {
            return; // python3 with numpy + safetensors not installed: skip quietly.
        }
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("snap");
        let s = sample(6, 9);
        s.write(&dir).unwrap();
        let script = r#"
import json, sys
from safetensors.numpy import load_file
d = sys.argv[1]
t = load_file(d + "/tensors.safetensors")
m = json.load(open(d + "/manifest.json"))
ids = json.load(open(d + "/ids.json"))
assert m["format"] == "irgan-snapshot" and m["format_version"] == 1
u = ids["users"].index("user-4")
scores = t["generator.user"][u] @ t["generator.item"].T + t["generator.bias"]
print(repr(float(scores[7])))
"#;
        let out = std::process::Command::new("python3")
            .arg("-c")
            .arg(script)
            .arg(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let got: f64 = String::from_utf8(out.stdout)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let want = s.generator.score(4, 7) as f64;
        assert!((got - want).abs() < 1e-5, "python {got} vs rust {want}");
    }
}
