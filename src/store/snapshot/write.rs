//! The one snapshot writer: data files first, each atomically and fsynced, the manifest last.

use std::fs;
use std::io;
use std::path::Path;

use serde::Serialize;

use super::error::{SnapshotError, io_err};
use super::manifest::{FileEntry, MANIFEST_FILE, Manifest};
use crate::store::atomic::{sync_dir, write_atomic};

/// Writes a snapshot directory (created if needed): records every data file's size and SHA-256
/// in `manifest`, removes an old manifest first (so an interrupted overwrite reads as incomplete,
/// not as a manifest describing other files), then writes every data file and finally the
/// manifest, each with [`write_atomic`].
pub(crate) fn write_snapshot<T: Serialize>(
    dir: &Path,
    mut manifest: Manifest<T>,
    files: &[(&str, &[u8])],
) -> Result<(), SnapshotError> {
    manifest.files = files
        .iter()
        .map(|(name, bytes)| ((*name).to_owned(), FileEntry::of(bytes)))
        .collect();
    let manifest = manifest.to_bytes()?;

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
    write_atomic(&manifest_path, &manifest).map_err(io_err(&manifest_path))
}
