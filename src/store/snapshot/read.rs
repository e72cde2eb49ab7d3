//! The one snapshot reader: the manifest, then every file it lists, each checked against its
//! recorded size and SHA-256 before anything is decoded.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Component, Path};

use serde::de::DeserializeOwned;

use super::error::{SnapshotError, io_err};
use super::manifest::{FileEntry, Kind, MANIFEST_FILE, Manifest, sha256_hex};

/// The verified contents of a snapshot's data files, by file name.
#[derive(Debug)]
pub(crate) struct Files(BTreeMap<String, Vec<u8>>);

impl Files {
    /// Takes the contents of `name`; an error if the manifest does not list it.
    pub(crate) fn take(&mut self, name: &str) -> Result<Vec<u8>, SnapshotError> {
        self.0.remove(name).ok_or_else(|| {
            SnapshotError::Format(format!("{MANIFEST_FILE}: `files` does not list {name}"))
        })
    }

    /// Takes the contents of `name` if the manifest lists it (an optional file).
    pub(crate) fn take_optional(&mut self, name: &str) -> Option<Vec<u8>> {
        self.0.remove(name)
    }
}

/// Reads the manifest of `dir` (which must be of `kind`) and every file it lists, verified.
/// Files listed but not needed by the caller are verified too: room for future additions.
pub(crate) fn read_snapshot<T: DeserializeOwned>(
    dir: &Path,
    kind: Kind,
) -> Result<(Manifest<T>, Files), SnapshotError> {
    let raw = read_manifest_bytes(dir)?;
    let manifest: Manifest<T> = Manifest::parse(&raw, kind)?;
    let mut files = BTreeMap::new();
    for (name, entry) in &manifest.files {
        files.insert(name.clone(), read_verified(dir, name, entry)?);
    }
    Ok((manifest, Files(files)))
}

/// The raw `manifest.json` of `dir`; a missing one is [`SnapshotError::MissingManifest`].
fn read_manifest_bytes(dir: &Path) -> Result<Vec<u8>, SnapshotError> {
    let manifest_path = dir.join(MANIFEST_FILE);
    match fs::read(&manifest_path) {
        Ok(raw) => Ok(raw),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            Err(SnapshotError::MissingManifest(dir.to_path_buf()))
        }
        Err(e) => Err(io_err(&manifest_path)(e)),
    }
}

/// Reads `dir/name` after checking it is a plain file name, and verifies size and SHA-256.
fn read_verified(dir: &Path, name: &str, entry: &FileEntry) -> Result<Vec<u8>, SnapshotError> {
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
