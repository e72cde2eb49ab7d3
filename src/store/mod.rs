//! Durable state: the feedback log, snapshots written atomically, versioned and checksummed,
//! behind the [`backend`] traits (local SQLite and directories, or NATS JetStream).

pub mod atomic;
pub mod backend;
pub mod checkpoint;
pub mod clock;
pub mod feedback_log;
pub mod impression_log;
pub mod nats;
pub mod search_snapshot;
pub mod snapshot;
pub mod snapshot_dir;

pub use snapshot::{Snapshot, SnapshotError};
