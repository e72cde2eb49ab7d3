//! How to read an interaction file: its line format and the positive threshold.

use std::str::FromStr;

/// Line format of an interaction file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// `user item [rating [timestamp]]`, one interaction per line.
    #[default]
    Ratings,
    /// `user item item …`: every listed item is a positive of the user.
    Adjacency,
}

impl Format {
    /// The lowercase name used in configs and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Ratings => "ratings",
            Format::Adjacency => "adjacency",
        }
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Format {
    type Err = String;

    /// Parses `ratings` or `adjacency` (case-insensitive).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("ratings") {
            Ok(Format::Ratings)
        } else if s.eq_ignore_ascii_case("adjacency") {
            Ok(Format::Adjacency)
        } else {
            Err(format!(
                "unknown format `{s}` (expected `ratings` or `adjacency`)"
            ))
        }
    }
}

/// How to read an interaction file.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadOptions {
    /// Line format.
    pub format: Format,
    /// Ratings at or above this value are positives (records without a rating always are).
    pub positive_threshold: f32,
}

impl Default for LoadOptions {
    /// Ratings format, positives are ratings ≥ 4.
    fn default() -> Self {
        Self {
            format: Format::Ratings,
            positive_threshold: 4.0,
        }
    }
}
