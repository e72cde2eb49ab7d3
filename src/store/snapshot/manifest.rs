//! `manifest.json`, the one manifest of every snapshot kind: the common fields (format, version,
//! creation time, the files with their checksums, metadata) around a kind-specific part.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::error::SnapshotError;

/// Name of the manifest file inside a snapshot directory.
pub const MANIFEST_FILE: &str = "manifest.json";

/// `files` entry of a manifest: what a data file must hash to and how long it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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

/// A snapshot manifest. `part` is the kind's own section (model shapes, temperature, …); its
/// fields sit at the top level of the JSON between `files` and `metadata`, so the keys and their
/// order are the ones both kinds wrote before they shared this type.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Manifest<T> {
    /// The snapshot kind, e.g. `irgan-snapshot`.
    pub(crate) format: String,
    /// The kind's on-disk version.
    pub(crate) format_version: u64,
    /// Caller-chosen snapshot version.
    pub(crate) version: u64,
    /// Creation time, milliseconds since the Unix epoch.
    pub(crate) created_unix_ms: u64,
    /// Every data file with its size and SHA-256 (filled in by the writer).
    pub(crate) files: BTreeMap<String, FileEntry>,
    /// The kind-specific part.
    #[serde(flatten)]
    pub(crate) part: T,
    /// Free-form caller metadata, stored verbatim.
    #[serde(default)]
    pub(crate) metadata: Value,
}

/// Which kind of snapshot a manifest describes: the `format` string and the `format_version`
/// this build writes and reads.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Kind {
    pub(crate) format: &'static str,
    pub(crate) format_version: u64,
}

impl<T> Manifest<T> {
    /// A manifest of `kind` without files yet (the writer adds them).
    pub(crate) fn new(
        kind: Kind,
        version: u64,
        created_unix_ms: u64,
        part: T,
        metadata: Value,
    ) -> Self {
        Self {
            format: kind.format.to_owned(),
            format_version: kind.format_version,
            version,
            created_unix_ms,
            files: BTreeMap::new(),
            part,
            metadata,
        }
    }
}

impl<T: Serialize> Manifest<T> {
    /// The pretty-printed JSON with a final newline.
    pub(crate) fn to_bytes(&self) -> Result<Vec<u8>, SnapshotError> {
        let mut bytes = serde_json::to_vec_pretty(self)
            .map_err(|e| SnapshotError::Format(format!("{MANIFEST_FILE}: {e}")))?;
        bytes.push(b'\n');
        Ok(bytes)
    }
}

impl<T: DeserializeOwned> Manifest<T> {
    /// Parses `manifest.json`, checking `format` and `format_version` before the rest so that a
    /// newer snapshot gets a version error rather than a confusing missing-field error.
    pub(crate) fn parse(raw: &[u8], kind: Kind) -> Result<Self, SnapshotError> {
        let value: Value = serde_json::from_slice(raw).map_err(|e| {
            SnapshotError::Format(format!(
                "{MANIFEST_FILE}: not valid JSON ({e}); the file may be truncated"
            ))
        })?;
        let format = value.get("format");
        if format.and_then(Value::as_str) != Some(kind.format) {
            let found = format.map_or_else(|| "nothing".to_owned(), Value::to_string);
            return Err(SnapshotError::Format(format!(
                "{MANIFEST_FILE}: `format` is {found}, expected \"{}\"",
                kind.format
            )));
        }
        match value.get("format_version").and_then(Value::as_u64) {
            Some(found) if found == kind.format_version => {}
            Some(found) => {
                return Err(SnapshotError::UnsupportedVersion {
                    found,
                    supported: kind.format_version,
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
}

/// Lower-case hex SHA-256 of `bytes`.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    let mut hex = String::with_capacity(64);
    for b in Sha256::digest(bytes).iter() {
        let _ = write!(hex, "{b:02x}");
    }
    hex
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const KIND: Kind = Kind {
        format: "test-snapshot",
        format_version: 3,
    };

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Part {
        generator: u32,
        temperature: f32,
    }

    #[test]
    fn sha256_hex_matches_known_vector() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn part_fields_sit_between_files_and_metadata() {
        let part = Part {
            generator: 7,
            temperature: 0.2,
        };
        let mut m = Manifest::new(KIND, 4, 5, part, json!({"a": 1}));
        m.files.insert("x".into(), FileEntry::of(b"abc"));
        let text = String::from_utf8(m.to_bytes().unwrap()).unwrap();
        let keys: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("  \"")?.split('"').next())
            .collect();
        assert_eq!(
            keys,
            [
                "format",
                "format_version",
                "version",
                "created_unix_ms",
                "files",
                "generator",
                "temperature",
                "metadata"
            ]
        );
        let back: Manifest<Part> = Manifest::parse(text.as_bytes(), KIND).unwrap();
        assert_eq!(back.part, m.part);
        assert_eq!(back.files, m.files);
        assert_eq!(back.metadata, json!({"a": 1}));
    }

    #[test]
    fn format_and_version_are_checked_first() {
        let raw = br#"{"format": "test-snapshot", "format_version": 9}"#;
        assert!(matches!(
            Manifest::<Part>::parse(raw, KIND),
            Err(SnapshotError::UnsupportedVersion {
                found: 9,
                supported: 3
            })
        ));
        let raw = br#"{"format": "other", "format_version": 3}"#;
        let err = Manifest::<Part>::parse(raw, KIND).unwrap_err();
        assert!(err.to_string().contains("\"other\""), "{err}");
        let raw = br#"{"format": "test-snapshot", "format_version": 3}"#;
        let err = Manifest::<Part>::parse(raw, KIND).unwrap_err();
        assert!(matches!(err, SnapshotError::Format(_)), "{err:?}");
    }
}
