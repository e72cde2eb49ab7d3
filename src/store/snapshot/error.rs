//! The one error type of snapshot writing and reading, shared by every snapshot kind.

use std::io;
use std::path::{Path, PathBuf};

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
    /// A remote store (NATS object store or key-value bucket) failed.
    #[error("snapshot store: {0}")]
    Remote(String),
}

/// Maps an I/O error to [`SnapshotError::Io`] naming `path`.
pub(crate) fn io_err(path: &Path) -> impl FnOnce(io::Error) -> SnapshotError + '_ {
    move |source| SnapshotError::Io {
        path: path.to_path_buf(),
        source,
    }
}
