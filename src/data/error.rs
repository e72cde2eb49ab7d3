//! The data layer's one error type: reading interaction, ranking and factor files.

use std::path::PathBuf;

/// Everything that can go wrong reading data files (interactions, LETOR rankings, factors).
///
/// Every variant names the file (and the 1-based line where there is one); nothing in the data
/// layer panics on bad input.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The file could not be opened, read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A line could not be parsed.
    #[error("{path}:{line}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong with the line.
        message: String,
    },
    /// The file holds no records (only blank or comment lines, or nothing at all).
    #[error("{path}: no records")]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// A factor row has a different number of values than the first row.
    #[error("{path}:{line}: expected {expected} values, found {found}")]
    Ragged {
        /// The factor file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// Width of the first row.
        expected: usize,
        /// Width of this row.
        found: usize,
    },
    /// The bias file does not have one value per item row.
    #[error("{path}: {found} bias values but {expected} item rows")]
    BiasCount {
        /// The bias file.
        path: PathBuf,
        /// Number of bias values read.
        found: usize,
        /// Number of item factor rows.
        expected: usize,
    },
    /// User and item factors have different widths.
    #[error("{path}: user factors have {user_dim} columns but item factors have {item_dim}")]
    DimMismatch {
        /// The factor directory.
        path: PathBuf,
        /// Width of the user factors.
        user_dim: usize,
        /// Width of the item factors.
        item_dim: usize,
    },
    /// An id list does not have one id per factor row.
    #[error("{path}: {ids} ids but {rows} factor rows")]
    IdCount {
        /// The id file.
        path: PathBuf,
        /// Number of ids in the file.
        ids: usize,
        /// Number of factor rows.
        rows: usize,
    },
    /// Inconsistent arguments or contents that are not tied to a line (e.g. a model whose size
    /// does not match its id maps when exporting).
    #[error("{path}: {message}")]
    Invalid {
        /// The file or directory concerned.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}
