//! Durable state: snapshots written atomically, versioned and checksummed.

pub mod atomic;
pub mod feedback_log;
pub mod impression_log;
pub mod snapshot;
pub mod snapshot_dir;

pub use snapshot::{Snapshot, SnapshotError};
