//! Durable state: snapshots written atomically, versioned and checksummed.

pub mod atomic;
pub mod checkpoint;
pub mod clock;
pub mod feedback_log;
pub mod impression_log;
pub mod search_snapshot;
pub mod snapshot;
pub mod snapshot_dir;

pub use snapshot::{Snapshot, SnapshotError};
