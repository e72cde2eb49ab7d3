//! The seams between durable state and its users: what the trainers and the API need from an
//! event log ([`EventLog`]), a search impression log ([`ImpressionStore`]) and snapshot stores
//! with a live pointer ([`SnapshotStore`] for recommendation, [`VersionStore`] for search),
//! whatever holds them: the local SQLite logs and snapshot directories (`storage.backend =
//! "local"`), or NATS JetStream (`"nats"`, see [`crate::store::nats`]).
//!
//! # Sync traits, async appends
//!
//! Reads, snapshot writes and the pointer are **synchronous**: their callers are the trainer's
//! own thread, the replica follower's thread, start-up before the runtime serves, and the CLI.
//! The NATS implementation runs its client on a runtime of its own and waits for it on a
//! std channel, so it must never be called from an async worker; none of the methods above
//! is (the one admin read that runs on a worker, [`SnapshotStore::versions`], answers from
//! memory). Feedback appends come from request handlers, so [`EventLog::append_async`] is
//! a future: the SQLite log hands the batch to its writer thread, NATS awaits JetStream's
//! acknowledgements, neither blocks a worker.

use std::fmt::Debug;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::store::Snapshot;
use crate::store::checkpoint::Checkpoint;
use crate::store::feedback_log::{Appended, FeedbackEvent, FeedbackLog, LogError, LoggedEvent};
use crate::store::impression_log::LoggedImpression;
use crate::store::impression_log::{self, Impression, ImpressionLog, ImpressionLogError};
use crate::store::snapshot::SnapshotError;
use crate::store::snapshot_dir::{Checkpointed, SnapshotDir, Versioned};

/// A boxed, `Send` future (what an object-safe async method returns).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// An append-only, durable log of feedback events with gap-free sequence numbers from 1.
///
/// Every implementation acknowledges a batch only once it is durable, reports an event whose
/// `id` it has already stored as a duplicate (with the original's seq where it knows it), and
/// never returns an id twice from [`read_after`](Self::read_after).
pub trait EventLog: Send + Sync + Debug {
    /// Appends `events` (blocking; not from an async worker), one outcome per event in order.
    fn append(&self, events: Vec<FeedbackEvent>) -> Result<Vec<Appended>, LogError>;
    /// Appends `events` from async code without blocking the runtime.
    fn append_async(
        &self,
        events: Vec<FeedbackEvent>,
    ) -> BoxFuture<'_, Result<Vec<Appended>, LogError>>;
    /// Events with `seq > after`, in order, at most `limit` of them.
    fn read_after(&self, after: u64, limit: usize) -> Result<Vec<LoggedEvent>, LogError>;
    /// Highest stored seq (0 when empty).
    fn last_seq(&self) -> Result<u64, LogError>;
    /// Number of stored events.
    fn count(&self) -> Result<u64, LogError>;
    /// Whether an event with idempotency key `id` is stored.
    fn contains_id(&self, id: &str) -> Result<bool, LogError>;
    /// Stops accepting appends after what is queued is durable (shutdown).
    fn close(&self) -> Result<(), LogError>;
    /// Calls `on_tail` with the last seq whenever other processes append (a shared log);
    /// a log only this process writes needs nothing: its handlers notify the trainer.
    fn follow(&self, on_tail: Arc<dyn Fn(u64) + Send + Sync>) {
        let _ = on_tail;
    }
}

/// The feedback log every part of the service shares.
pub type SharedLog = Arc<dyn EventLog>;

impl From<FeedbackLog> for SharedLog {
    fn from(log: FeedbackLog) -> Self {
        Arc::new(log)
    }
}

impl EventLog for FeedbackLog {
    fn append(&self, events: Vec<FeedbackEvent>) -> Result<Vec<Appended>, LogError> {
        FeedbackLog::append(self, events)
    }
    fn append_async(
        &self,
        events: Vec<FeedbackEvent>,
    ) -> BoxFuture<'_, Result<Vec<Appended>, LogError>> {
        Box::pin(FeedbackLog::append_async(self, events))
    }
    fn read_after(&self, after: u64, limit: usize) -> Result<Vec<LoggedEvent>, LogError> {
        FeedbackLog::read_after(self, after, limit)
    }
    fn last_seq(&self) -> Result<u64, LogError> {
        FeedbackLog::last_seq(self)
    }
    fn count(&self) -> Result<u64, LogError> {
        FeedbackLog::count(self)
    }
    fn contains_id(&self, id: &str) -> Result<bool, LogError> {
        FeedbackLog::contains_id(self, id)
    }
    fn close(&self) -> Result<(), LogError> {
        FeedbackLog::close(self)
    }
}

/// An append-only, durable log of search impressions with gap-free sequence numbers from 1.
///
/// Synchronous (its callers are `spawn_blocking` tasks, the search trainer's thread and
/// start-up). Like [`EventLog`]: a batch is acknowledged once durable, an impression whose `id`
/// is stored is reported as a duplicate, and a repeat stored after a deduplication window is
/// marked [`LoggedImpression::repeat`] when read back.
pub trait ImpressionStore: Send + Sync + Debug {
    /// Appends `impressions`, one outcome per impression in order.
    fn append(
        &self,
        impressions: &[Impression],
    ) -> Result<Vec<impression_log::Appended>, ImpressionLogError>;
    /// Impressions with `seq > after`, in order, at most `limit` of them.
    fn read_after(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<LoggedImpression>, ImpressionLogError>;
    /// Number of stored impressions.
    fn count(&self) -> Result<u64, ImpressionLogError>;
    /// Whether an impression with idempotency key `id` is stored.
    fn contains_id(&self, id: &str) -> Result<bool, ImpressionLogError>;
}

/// The impression log the search service and its trainer share.
pub type SharedImpressions = Arc<dyn ImpressionStore>;

impl ImpressionStore for ImpressionLog {
    fn append(
        &self,
        impressions: &[Impression],
    ) -> Result<Vec<impression_log::Appended>, ImpressionLogError> {
        ImpressionLog::append(self, impressions)
    }
    fn read_after(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<LoggedImpression>, ImpressionLogError> {
        ImpressionLog::read_after(self, after, limit)
    }
    fn count(&self) -> Result<u64, ImpressionLogError> {
        ImpressionLog::count(self)
    }
    fn contains_id(&self, id: &str) -> Result<bool, ImpressionLogError> {
        ImpressionLog::contains_id(self, id)
    }
}

/// Versioned, checksummed snapshots of one kind `S` and the live pointer (the search task's
/// store; recommendation snapshots, which carry the trainer's checkpoint, use
/// [`SnapshotStore`]). Synchronous: not from an async worker.
pub trait VersionStore<S>: Send + Sync + Debug {
    /// The snapshot to start from: the live pointer's version when it reads back valid, else
    /// the newest that does; the ones skipped are returned with why.
    fn newest_valid(&self) -> (Option<S>, Vec<(u64, SnapshotError)>);
    /// Reads and verifies one version.
    fn read(&self, version: u64) -> Result<S, SnapshotError>;
    /// Writes `snapshot`, makes it the live version, and removes all but the newest `keep`.
    fn write(&self, snapshot: &S, keep: usize) -> Result<(), SnapshotError>;
    /// Waits at most `timeout` for the live pointer to differ from `seen`; the new value, or
    /// `None` when it did not change in time.
    fn wait_live_change(&self, seen: u64, timeout: Duration) -> Result<Option<u64>, SnapshotError>;
}

/// A shared store of `S` snapshots.
pub type SharedVersions<S> = Arc<dyn VersionStore<S>>;

impl<S: Versioned + Debug + 'static> VersionStore<S> for SnapshotDir<S> {
    fn newest_valid(&self) -> (Option<S>, Vec<(u64, SnapshotError)>) {
        SnapshotDir::newest_valid(self)
    }
    fn read(&self, version: u64) -> Result<S, SnapshotError> {
        SnapshotDir::read(self, version)
    }
    fn write(&self, snapshot: &S, keep: usize) -> Result<(), SnapshotError> {
        SnapshotDir::write(self, snapshot, keep)
    }
    fn wait_live_change(
        &self,
        _seen: u64,
        timeout: Duration,
    ) -> Result<Option<u64>, SnapshotError> {
        local_pointer_wait(timeout)
    }
}

/// Nothing outside this process moves a local pointer: waiting for it just waits.
fn local_pointer_wait(timeout: Duration) -> Result<Option<u64>, SnapshotError> {
    std::thread::sleep(timeout);
    Ok(None)
}

/// Versioned, checksummed recommendation snapshots (each with the trainer's checkpoint) and
/// the live pointer that says which one serves.
pub trait SnapshotStore: Send + Sync + Debug {
    /// Versions known, ascending, answered from memory or local disk (no network): safe on an
    /// async worker.
    fn versions(&self) -> Vec<u64>;
    /// A local directory holding `version` (for NATS, the download cache; it may be absent).
    fn path_of(&self, version: u64) -> PathBuf;
    /// Reads and verifies one version.
    fn read(&self, version: u64) -> Result<Snapshot, SnapshotError>;
    /// Reads and verifies one version with its checkpoint.
    fn read_checkpointed(&self, version: u64) -> Result<Checkpointed, SnapshotError>;
    /// The snapshot to start from: the live pointer's version when it reads back valid, else
    /// the newest that does; the ones skipped are returned with why.
    fn newest_valid_checkpointed(&self) -> (Option<Checkpointed>, Vec<(u64, SnapshotError)>);
    /// Writes `snapshot` and its checkpoint, makes it the live version, and removes all but the
    /// newest `keep` versions.
    fn write_checkpointed(
        &self,
        snapshot: &Snapshot,
        checkpoint: &Checkpoint,
        keep: usize,
    ) -> Result<(), SnapshotError>;
    /// The live pointer (`None`: no pointer, the newest version is live).
    fn live(&self) -> Result<Option<u64>, SnapshotError>;
    /// Points the live pointer at an existing version (publish or roll back).
    fn set_live(&self, version: u64) -> Result<(), SnapshotError>;
    /// Waits at most `timeout` for the live pointer to differ from `seen`; the new value, or
    /// `None` when it did not change in time.
    fn wait_live_change(&self, seen: u64, timeout: Duration) -> Result<Option<u64>, SnapshotError>;
}

/// The snapshot store every part of the service shares.
pub type SharedSnapshots = Arc<dyn SnapshotStore>;

impl From<SnapshotDir> for SharedSnapshots {
    fn from(dir: SnapshotDir) -> Self {
        Arc::new(dir)
    }
}

/// One process serves what it trains, so the local pointer is the process's own memory: the
/// newest version at start, whatever the trainer makes live afterwards.
impl SnapshotStore for SnapshotDir {
    fn versions(&self) -> Vec<u64> {
        SnapshotDir::versions(self)
    }
    fn path_of(&self, version: u64) -> PathBuf {
        SnapshotDir::path_of(self, version)
    }
    fn read(&self, version: u64) -> Result<Snapshot, SnapshotError> {
        SnapshotDir::read(self, version)
    }
    fn read_checkpointed(&self, version: u64) -> Result<Checkpointed, SnapshotError> {
        Snapshot::read_checkpointed(&SnapshotDir::path_of(self, version))
    }
    fn newest_valid_checkpointed(&self) -> (Option<Checkpointed>, Vec<(u64, SnapshotError)>) {
        SnapshotDir::newest_valid_checkpointed(self)
    }
    fn write_checkpointed(
        &self,
        snapshot: &Snapshot,
        checkpoint: &Checkpoint,
        keep: usize,
    ) -> Result<(), SnapshotError> {
        SnapshotDir::write_checkpointed(self, snapshot, checkpoint, keep)
    }
    fn live(&self) -> Result<Option<u64>, SnapshotError> {
        Ok(None)
    }
    fn set_live(&self, _version: u64) -> Result<(), SnapshotError> {
        Ok(())
    }
    fn wait_live_change(
        &self,
        _seen: u64,
        timeout: Duration,
    ) -> Result<Option<u64>, SnapshotError> {
        local_pointer_wait(timeout)
    }
}

/// Whether `dir` holds a complete snapshot (its manifest was written).
pub fn is_complete(dir: &Path) -> bool {
    dir.join("manifest.json").is_file()
}
