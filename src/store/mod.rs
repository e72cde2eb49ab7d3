//! Durable state: snapshots written atomically, versioned and checksummed.

pub mod atomic;
pub mod snapshot;

pub use snapshot::{Snapshot, SnapshotError};
