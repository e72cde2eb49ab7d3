//! The feedback log's one error type, and the helper that attaches context to SQLite errors.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

/// Why the feedback log could not be opened, written or read.
///
/// Cloneable so that a failed group commit can hand the same error to every requester.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LogError {
    /// An SQLite operation failed.
    #[error("feedback log: {context}: {source}")]
    Sqlite {
        /// What was being done, including the database path.
        context: String,
        /// The underlying error.
        #[source]
        source: Arc<rusqlite::Error>,
    },
    /// Writing an export or syncing a directory failed.
    #[error("feedback log: {context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: Arc<io::Error>,
    },
    /// An event was rejected before anything was written (currently: a NaN or infinite
    /// `value`, which SQLite would silently store as NULL). No event of the call is stored.
    #[error("feedback event #{index}: {reason}")]
    Invalid {
        /// Index of the offending event in the appended batch.
        index: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// The log was closed (or its writer thread stopped); nothing more can be appended.
    #[error("feedback log is closed")]
    Closed,
    /// The file is an SQLite database but not a feedback log.
    #[error("{}: not a feedback log ({reason})", .path.display())]
    NotALog {
        /// The database file.
        path: PathBuf,
        /// Why it was not recognised.
        reason: String,
    },
    /// The log was written by a build with a different schema version.
    #[error("{}: unsupported feedback log schema_version {found} (this build reads {supported})", .path.display())]
    UnsupportedVersion {
        /// The database file.
        path: PathBuf,
        /// Version found in the `meta` table.
        found: String,
        /// Version this build reads.
        supported: u32,
    },
    /// SQLite refused to switch the database to WAL mode (e.g. on a filesystem without shared
    /// memory support), so durability and concurrent reads cannot be guaranteed.
    #[error("{}: cannot enable WAL journal mode (SQLite kept `{mode}`)", .path.display())]
    NoWal {
        /// The database file.
        path: PathBuf,
        /// The journal mode SQLite reported.
        mode: String,
    },
    /// The writer thread panicked (reported by [`FeedbackLog::close`](super::FeedbackLog::close)).
    #[error("feedback log writer thread panicked")]
    WriterPanicked,
    /// A remote log (NATS JetStream) failed; nothing is known to be stored for the batch
    /// unless a retry reports its events as duplicates.
    #[error("feedback log: {0}")]
    Remote(String),
}

/// Attaches context to rusqlite errors.
pub(super) trait SqlContext<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T, LogError>;
}

impl<T> SqlContext<T> for rusqlite::Result<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T, LogError> {
        self.map_err(|e| LogError::Sqlite {
            context: context(),
            source: Arc::new(e),
        })
    }
}
