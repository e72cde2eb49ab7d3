//! Durable, append-only log of user feedback events, stored in SQLite with group commit.
//!
//! [`FeedbackLog::append`] (or [`FeedbackLog::append_async`] from async code) returns only once
//! the events are committed to disk: the database runs in WAL mode with `synchronous=FULL`, so
//! every commit fsyncs the write-ahead log. One dedicated writer thread owns the write
//! connection; it takes the first waiting request, drains every other request already queued (up
//! to [`LogOptions::max_batch`] events), writes them all in **one** transaction and replies to
//! each requester after the commit. Under load many concurrent appenders therefore share one
//! fsync; [`FeedbackLog::commits`] counts the transactions.
//!
//! # Guarantees
//!
//! - **Durable on success.** An `Ok` reply means the events survive a process or machine crash.
//! - **Atomic groups.** If a group's transaction fails, every requester in the group gets the
//!   error and nothing from the group is stored; the writer carries on with the next group.
//! - **Contiguous sequence numbers.** `seq` starts at 1 and grows by one per stored event, with
//!   no gaps (a failed transaction also rolls back its sequence numbers) and never reuses a value.
//!   Transactions commit in `seq` order, so a reader tailing the log with
//!   [`FeedbackLog::read_after`] never skips an event.
//! - **Idempotent on `id`.** An event whose `id` is already in the log (from an earlier call, an
//!   earlier event of the same call or another request of the same group) is not stored again; its
//!   [`Appended`] has `duplicate: true` and the seq of the original. The payload of the duplicate
//!   is ignored even if it differs. Events without an `id` are always stored.
//! - **Monotone ack times.** `acked_unix_ms` is the wall-clock time at which the event's group
//!   was written, clamped so that it never decreases along `seq` (even if the clock steps back).
//!
//! # Schema (`schema_version` 1)
//!
//! ```sql
//! CREATE TABLE events(seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE,
//!                     user TEXT NOT NULL, item TEXT NOT NULL, type TEXT NOT NULL,
//!                     value REAL, timestamp_ms INTEGER, acked_unix_ms INTEGER NOT NULL);
//! CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT);
//! -- meta: ('format', 'irgan-feedback-log'), ('schema_version', '1')
//! ```
//!
//! The file can be inspected with the `sqlite3` shell while the service runs (WAL allows
//! concurrent readers), e.g. `SELECT type, count(*) FROM events GROUP BY type`.
//!
//! # Reads
//!
//! Reads go through a separate connection and see only committed events. They stay available
//! after [`FeedbackLog::close`]. They are quick SQLite queries but they do block; from async code,
//! call them in `tokio::task::spawn_blocking` if they may scan many rows.

mod append;
mod error;
mod events;
mod read;
mod schema;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use rusqlite::{Connection, OpenFlags, OptionalExtension};
use tokio::sync::Notify;

use crate::store::atomic::sync_dir;
use append::{Request, Writer};
pub use error::LogError;
use error::SqlContext;
pub(crate) use events::validate;
pub use events::{Appended, FeedbackEvent, LoggedEvent};
pub use schema::{FORMAT, SCHEMA_VERSION};
use schema::{init_schema, open_connection, open_reader, to_u64};

/// Name of the writer thread (visible in debuggers and panic messages).
const WRITER_THREAD: &str = "feedback-log-writer";

/// Tuning knobs for [`FeedbackLog::open`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogOptions {
    /// Most events written in one transaction (default 10 000). Requests are never split: a
    /// single request larger than this is written alone in one transaction. 0 counts as 1.
    pub max_batch: usize,
    /// Most append requests waiting for the writer (default 1024). When the queue is full,
    /// [`FeedbackLog::append`] blocks and [`FeedbackLog::append_async`] waits without blocking
    /// the runtime. 0 counts as 1.
    pub queue: usize,
}

impl Default for LogOptions {
    fn default() -> Self {
        Self {
            max_batch: 10_000,
            queue: 1024,
        }
    }
}

/// Shared state behind every clone of a [`FeedbackLog`].
struct Inner {
    path: PathBuf,
    /// `None` once closed. Appenders clone the sender and release the lock before sending.
    sender: Mutex<Option<SyncSender<Request>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    reader: Mutex<Connection>,
    /// Signalled by the writer whenever it has taken requests off the queue.
    space: Arc<Notify>,
    commits: Arc<AtomicU64>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Disconnect the queue; the writer commits what is left and exits.
        drop(lock_mut(&mut self.sender).take());
        if let Some(handle) = lock_mut(&mut self.writer).take() {
            let _ = handle.join();
        }
    }
}

/// A durable, append-only feedback event log; cheap to clone (all clones share one writer).
///
/// See the [module documentation](self) for the guarantees.
#[derive(Clone)]
pub struct FeedbackLog {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for FeedbackLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeedbackLog")
            .field("path", &self.inner.path)
            .field("commits", &self.commits())
            .finish_non_exhaustive()
    }
}

impl FeedbackLog {
    /// Opens the log at `path`, creating the file and schema if it does not exist, and starts
    /// the writer thread.
    ///
    /// Fails if the file is not an SQLite database, is an SQLite database with unrelated tables,
    /// has another schema version, or cannot be put in WAL mode.
    pub fn open(path: &Path, opts: LogOptions) -> Result<Self, LogError> {
        let created = !path.exists();
        let mut conn = open_connection(path, OpenFlags::default())?;
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "wal", |r| r.get(0))
            .ctx(|| format!("{}: enabling WAL mode", path.display()))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(LogError::NoWal {
                path: path.to_owned(),
                mode,
            });
        }
        conn.execute_batch("PRAGMA synchronous = FULL;")
            .ctx(|| format!("{}: setting synchronous=FULL", path.display()))?;
        init_schema(&mut conn, path)?;
        if created {
            let dir = match path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            sync_dir(dir).map_err(|e| LogError::Io {
                context: format!("{}: syncing directory", dir.display()),
                source: Arc::new(e),
            })?;
        }
        let last_ack: i64 = conn
            .query_row(
                "SELECT acked_unix_ms FROM events ORDER BY seq DESC LIMIT 1",
                [],
                |r| r.get(0),
            )
            .optional()
            .ctx(|| format!("{}: reading the last ack time", path.display()))?
            .unwrap_or(0);

        let reader = open_reader(path)?;

        let (sender, receiver) = mpsc::sync_channel(opts.queue.max(1));
        let space = Arc::new(Notify::new());
        let commits = Arc::new(AtomicU64::new(0));
        let writer = Writer {
            conn,
            path: path.to_owned(),
            receiver,
            max_batch: opts.max_batch.max(1),
            space: Arc::clone(&space),
            commits: Arc::clone(&commits),
            last_ack: to_u64(last_ack),
        };
        let handle = std::thread::Builder::new()
            .name(WRITER_THREAD.into())
            .spawn(move || writer.run())
            .map_err(|e| LogError::Io {
                context: "spawning the writer thread".into(),
                source: Arc::new(e),
            })?;
        Ok(Self {
            inner: Arc::new(Inner {
                path: path.to_owned(),
                sender: Mutex::new(Some(sender)),
                writer: Mutex::new(Some(handle)),
                reader: Mutex::new(reader),
                space,
                commits,
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Number of transactions the writer has committed since this log was opened (one per
    /// group of requests; less than the number of append calls when group commit kicks in).
    pub fn commits(&self) -> u64 {
        self.inner.commits.load(Ordering::Relaxed)
    }

    /// Stops the writer thread after it has committed everything queued (called on shutdown);
    /// further appends get [`LogError::Closed`].
    ///
    /// Appends already in progress on other threads are completed before this returns. Reads keep
    /// working. Closing twice is harmless. Blocks; from async code call it in `spawn_blocking`.
    pub fn close(&self) -> Result<(), LogError> {
        drop(lock(&self.inner.sender).take());
        let handle = lock(&self.inner.writer).take();
        match handle {
            Some(h) => h.join().map_err(|_| LogError::WriterPanicked),
            None => Ok(()),
        }
    }

    /// A clone of the queue's sender (so the lock is not held while sending), or `Closed`.
    fn sender(&self) -> Result<SyncSender<Request>, LogError> {
        lock(&self.inner.sender).clone().ok_or(LogError::Closed)
    }

    fn reader(&self) -> MutexGuard<'_, Connection> {
        lock(&self.inner.reader)
    }
}

/// Locks a mutex, ignoring poisoning (the protected values stay consistent across panics).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn lock_mut<T>(m: &mut Mutex<T>) -> &mut T {
    m.get_mut().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests;
