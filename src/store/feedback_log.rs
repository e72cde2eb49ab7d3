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

use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, TransactionBehavior, params};
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, oneshot};

use super::atomic::sync_dir;

/// Value of the `format` key in the `meta` table.
pub const FORMAT: &str = "irgan-feedback-log";
/// The `schema_version` this build writes and reads.
pub const SCHEMA_VERSION: u32 = 1;

/// How long a connection waits for a lock held by another connection (e.g. a `sqlite3` shell or
/// a second process) before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Name of the writer thread (visible in debuggers and panic messages).
const WRITER_THREAD: &str = "feedback-log-writer";

const CREATE_SCHEMA: &str = "
CREATE TABLE events (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    id            TEXT UNIQUE,
    user          TEXT NOT NULL,
    item          TEXT NOT NULL,
    type          TEXT NOT NULL,
    value         REAL,
    timestamp_ms  INTEGER,
    acked_unix_ms INTEGER NOT NULL
);
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);
";

const INSERT_EVENT: &str = "INSERT INTO events (id, user, item, type, value, timestamp_ms, \
                            acked_unix_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
const FIND_BY_ID: &str = "SELECT seq FROM events WHERE id = ?1";
const SELECT_EVENTS: &str = "SELECT seq, id, user, item, type, value, timestamp_ms, acked_unix_ms \
                             FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2";

/// One feedback event as received (external ids).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedbackEvent {
    /// Client-chosen idempotency key; an event whose id is already logged is not stored again.
    pub id: Option<String>,
    /// External user id.
    pub user: String,
    /// External item id.
    pub item: String,
    /// Kind of feedback, e.g. `click`, `purchase`, `rating` (serialised as `type`).
    #[serde(rename = "type")]
    pub kind: String,
    /// Optional strength of the feedback (e.g. a rating); must be finite.
    pub value: Option<f64>,
    /// Optional client-side event time, milliseconds since the Unix epoch.
    pub timestamp_ms: Option<i64>,
}

/// A stored event with its log position and the time it became durable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoggedEvent {
    /// Position in the log: 1, 2, 3, … without gaps.
    pub seq: u64,
    /// When the event's transaction was written, milliseconds since the Unix epoch.
    pub acked_unix_ms: u64,
    /// The event as received.
    #[serde(flatten)]
    pub event: FeedbackEvent,
}

/// Result of appending one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// Log position of the event (of the original if `duplicate`).
    pub seq: u64,
    /// The event's id was already in the log, so it was not stored again.
    pub duplicate: bool,
}

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
    /// The writer thread panicked (reported by [`FeedbackLog::close`]).
    #[error("feedback log writer thread panicked")]
    WriterPanicked,
}

/// Attaches context to rusqlite errors.
trait SqlContext<T> {
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

type Reply = Result<Vec<Appended>, LogError>;

/// Where the writer sends a request's outcome.
enum ReplyTo {
    /// A thread blocked in [`FeedbackLog::append`] (capacity-1 channel: sending never blocks).
    Blocking(SyncSender<Reply>),
    /// A task awaiting [`FeedbackLog::append_async`].
    Async(oneshot::Sender<Reply>),
}

impl ReplyTo {
    fn send(self, reply: Reply) {
        // The requester may have given up (e.g. a cancelled future); the events are stored anyway.
        match self {
            Self::Blocking(tx) => drop(tx.send(reply)),
            Self::Async(tx) => drop(tx.send(reply)),
        }
    }
}

/// One append call waiting for the writer.
struct Request {
    events: Vec<FeedbackEvent>,
    reply: ReplyTo,
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

    /// Appends events and returns once they are durable (committed with `synchronous=FULL` in
    /// WAL mode), one [`Appended`] per event in input order.
    ///
    /// Idempotent on `id`: an event whose id is already in the log is not stored again; its
    /// `Appended` has `duplicate: true` and the ORIGINAL seq. Events without id are always
    /// appended. Duplicates inside the same call are also deduplicated.
    ///
    /// Returns [`LogError::Invalid`] (storing nothing) if a `value` is NaN or infinite, and
    /// [`LogError::Closed`] after [`close`](Self::close). Blocks the calling thread; from async
    /// code use [`append_async`](Self::append_async).
    pub fn append(&self, events: Vec<FeedbackEvent>) -> Result<Vec<Appended>, LogError> {
        validate(&events)?;
        let sender = self.sender()?;
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let (tx, rx) = mpsc::sync_channel(1);
        sender
            .send(Request {
                events,
                reply: ReplyTo::Blocking(tx),
            })
            .map_err(|_| LogError::Closed)?;
        drop(sender);
        rx.recv().map_err(|_| LogError::Closed)?
    }

    /// Same as [`append`](Self::append), but waits asynchronously and never blocks the runtime
    /// (not even when the queue is full). The returned future is `Send`.
    ///
    /// If the future is dropped after the request was queued, the events are still written.
    pub async fn append_async(
        &self,
        events: Vec<FeedbackEvent>,
    ) -> Result<Vec<Appended>, LogError> {
        validate(&events)?;
        let sender = self.sender()?;
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let (tx, rx) = oneshot::channel();
        let mut request = Request {
            events,
            reply: ReplyTo::Async(tx),
        };
        loop {
            // Register interest before trying, so a drain between the try and the wait is
            // not missed.
            let mut notified = pin!(self.inner.space.notified());
            notified.as_mut().enable();
            match sender.try_send(request) {
                Ok(()) => break,
                Err(TrySendError::Full(r)) => {
                    request = r;
                    notified.await;
                }
                Err(TrySendError::Disconnected(_)) => return Err(LogError::Closed),
            }
        }
        drop(sender);
        rx.await.map_err(|_| LogError::Closed)?
    }

    /// Events with `seq > after`, in order, at most `limit` of them.
    pub fn read_after(&self, after: u64, limit: usize) -> Result<Vec<LoggedEvent>, LogError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let conn = self.reader();
        let ctx = || format!("{}: reading events", self.inner.path.display());
        let mut stmt = conn.prepare_cached(SELECT_EVENTS).ctx(ctx)?;
        let rows = stmt
            .query_map(params![after, limit], logged_event)
            .ctx(ctx)?;
        rows.collect::<rusqlite::Result<Vec<_>>>().ctx(ctx)
    }

    /// Highest committed seq (0 for an empty log); equals [`count`](Self::count) since sequence
    /// numbers have no gaps.
    pub fn last_seq(&self) -> Result<u64, LogError> {
        let seq: i64 = self
            .reader()
            .query_row("SELECT COALESCE(MAX(seq), 0) FROM events", [], |r| r.get(0))
            .ctx(|| format!("{}: reading the last seq", self.inner.path.display()))?;
        Ok(to_u64(seq))
    }

    /// Number of committed events (a full count: O(n) in the size of the log).
    pub fn count(&self) -> Result<u64, LogError> {
        let n: i64 = self
            .reader()
            .query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))
            .ctx(|| format!("{}: counting events", self.inner.path.display()))?;
        Ok(to_u64(n))
    }

    /// Writes every event as one JSON object per line ([`LoggedEvent`] serialisation: `seq`,
    /// `acked_unix_ms` and the event's fields, `kind` as `type`), in seq order; returns the
    /// count.
    ///
    /// Reads a consistent snapshot through its own connection, so appends and other reads are
    /// not held up. Output is buffered internally and flushed before returning.
    pub fn export_jsonl(&self, out: &mut dyn Write) -> Result<u64, LogError> {
        let path = &self.inner.path;
        let ctx = || format!("{}: exporting events", path.display());
        let conn = open_reader(path)?;
        let mut stmt = conn
            .prepare(
                "SELECT seq, id, user, item, type, value, timestamp_ms, acked_unix_ms \
                 FROM events ORDER BY seq",
            )
            .ctx(ctx)?;
        let mut rows = stmt.query([]).ctx(ctx)?;
        let mut out = BufWriter::new(out);
        let io_err = |e: io::Error| LogError::Io {
            context: "writing the JSONL export".into(),
            source: Arc::new(e),
        };
        let mut n = 0u64;
        while let Some(row) = rows.next().ctx(ctx)? {
            let event = logged_event(row).ctx(ctx)?;
            serde_json::to_writer(&mut out, &event).map_err(|e| io_err(e.into()))?;
            out.write_all(b"\n").map_err(io_err)?;
            n += 1;
        }
        out.flush().map_err(io_err)?;
        Ok(n)
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

/// The writer thread's state.
struct Writer {
    conn: Connection,
    path: PathBuf,
    receiver: Receiver<Request>,
    max_batch: usize,
    space: Arc<Notify>,
    commits: Arc<AtomicU64>,
    /// Last `acked_unix_ms` written; ack times never go below it.
    last_ack: u64,
}

impl Writer {
    /// Serves requests until every sender is gone, then returns (closing the connection).
    fn run(mut self) {
        let mut carry: Option<Request> = None;
        let mut group: Vec<Request> = Vec::new();
        loop {
            let first = match carry.take() {
                Some(r) => r,
                None => match self.receiver.recv() {
                    Ok(r) => r,
                    Err(_) => break,
                },
            };
            let mut events = first.events.len();
            group.push(first);
            while events < self.max_batch {
                match self.receiver.try_recv() {
                    Ok(r) if events + r.events.len() > self.max_batch => {
                        carry = Some(r);
                        break;
                    }
                    Ok(r) => {
                        events += r.events.len();
                        group.push(r);
                    }
                    Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
                }
            }
            // Queue slots were freed: wake async appenders waiting for room.
            self.space.notify_waiters();
            match self.write_group(&group, events) {
                Ok(mut results) => {
                    self.commits.fetch_add(1, Ordering::Relaxed);
                    for (request, appended) in group.drain(..).zip(results.drain(..)) {
                        request.reply.send(Ok(appended));
                    }
                }
                Err(e) => {
                    for request in group.drain(..) {
                        request.reply.send(Err(e.clone()));
                    }
                }
            }
        }
    }

    /// Writes all requests of a group in one transaction; per-request results on success.
    fn write_group(
        &mut self,
        group: &[Request],
        events: usize,
    ) -> Result<Vec<Vec<Appended>>, LogError> {
        let path = &self.path;
        let ctx = || format!("{}: appending {events} events", path.display());
        let ack = now_unix_ms().max(self.last_ack);
        let ack_sql = i64::try_from(ack).unwrap_or(i64::MAX);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .ctx(ctx)?;
        let mut results = Vec::with_capacity(group.len());
        {
            let mut insert = tx.prepare_cached(INSERT_EVENT).ctx(ctx)?;
            let mut find = tx.prepare_cached(FIND_BY_ID).ctx(ctx)?;
            for request in group {
                let mut appended = Vec::with_capacity(request.events.len());
                for e in &request.events {
                    // Look up before inserting: an `INSERT .. ON CONFLICT DO NOTHING` would
                    // burn an AUTOINCREMENT value and leave a gap in `seq`. The IMMEDIATE
                    // transaction holds the write lock, so nobody can slip in between.
                    let existing: Option<i64> = match &e.id {
                        Some(id) => find.query_row([id], |r| r.get(0)).optional().ctx(ctx)?,
                        None => None,
                    };
                    appended.push(match existing {
                        Some(seq) => Appended {
                            seq: to_u64(seq),
                            duplicate: true,
                        },
                        None => {
                            insert
                                .execute(params![
                                    e.id,
                                    e.user,
                                    e.item,
                                    e.kind,
                                    e.value,
                                    e.timestamp_ms,
                                    ack_sql
                                ])
                                .ctx(ctx)?;
                            Appended {
                                seq: to_u64(tx.last_insert_rowid()),
                                duplicate: false,
                            }
                        }
                    });
                }
                results.push(appended);
            }
        }
        tx.commit().ctx(ctx)?;
        self.last_ack = ack;
        Ok(results)
    }
}

/// Rejects events SQLite cannot store faithfully.
fn validate(events: &[FeedbackEvent]) -> Result<(), LogError> {
    for (index, e) in events.iter().enumerate() {
        if let Some(v) = e.value
            && !v.is_finite()
        {
            return Err(LogError::Invalid {
                index,
                reason: format!("value {v} is not finite"),
            });
        }
    }
    Ok(())
}

/// Opens a connection with the busy timeout set.
fn open_connection(path: &Path, flags: OpenFlags) -> Result<Connection, LogError> {
    let conn =
        Connection::open_with_flags(path, flags).ctx(|| format!("opening {}", path.display()))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .ctx(|| format!("{}: setting the busy timeout", path.display()))?;
    Ok(conn)
}

/// Opens a read connection to an existing log (refuses writes).
fn open_reader(path: &Path) -> Result<Connection, LogError> {
    let flags = OpenFlags::default() - OpenFlags::SQLITE_OPEN_CREATE;
    let conn = open_connection(path, flags)?;
    conn.execute_batch("PRAGMA query_only = ON;")
        .ctx(|| format!("{}: opening a read connection", path.display()))?;
    Ok(conn)
}

/// Creates the schema in an empty database, or checks that an existing one is a log this build
/// reads.
fn init_schema(conn: &mut Connection, path: &Path) -> Result<(), LogError> {
    let ctx = || format!("{}: checking the schema", path.display());
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .ctx(ctx)?;
    let tables: Vec<String> = {
        let mut stmt = tx
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'")
            .ctx(ctx)?;
        stmt.query_map([], |r| r.get(0))
            .ctx(ctx)?
            .collect::<rusqlite::Result<_>>()
            .ctx(ctx)?
    };
    let not_a_log = |reason: String| LogError::NotALog {
        path: path.to_owned(),
        reason,
    };
    if tables.is_empty() {
        tx.execute_batch(CREATE_SCHEMA).ctx(ctx)?;
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('format', ?1), ('schema_version', ?2)",
            params![FORMAT, SCHEMA_VERSION.to_string()],
        )
        .ctx(ctx)?;
        return tx.commit().ctx(ctx);
    }
    if !tables.iter().any(|t| t == "meta") {
        return Err(not_a_log(format!(
            "no `meta` table; tables: {}",
            tables.join(", ")
        )));
    }
    let meta = |key: &str| -> Result<Option<String>, LogError> {
        tx.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()
            .ctx(ctx)
            .map(Option::flatten)
    };
    let format = meta("format")?;
    if format.as_deref() != Some(FORMAT) {
        return Err(not_a_log(format!("meta format is {format:?}")));
    }
    let version = meta("schema_version")?.unwrap_or_default();
    if version != SCHEMA_VERSION.to_string() {
        return Err(LogError::UnsupportedVersion {
            path: path.to_owned(),
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    if !tables.iter().any(|t| t == "events") {
        return Err(not_a_log("no `events` table".into()));
    }
    tx.commit().ctx(ctx)
}

/// Maps a `seq, id, user, item, type, value, timestamp_ms, acked_unix_ms` row.
fn logged_event(r: &Row<'_>) -> rusqlite::Result<LoggedEvent> {
    Ok(LoggedEvent {
        seq: to_u64(r.get(0)?),
        acked_unix_ms: to_u64(r.get(7)?),
        event: FeedbackEvent {
            id: r.get(1)?,
            user: r.get(2)?,
            item: r.get(3)?,
            kind: r.get(4)?,
            value: r.get(5)?,
            timestamp_ms: r.get(6)?,
        },
    })
}

/// Sequence numbers and ack times are never negative; clamps defensively.
fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Locks a mutex, ignoring poisoning (the protected values stay consistent across panics).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn lock_mut<T>(m: &mut Mutex<T>) -> &mut T {
    m.get_mut().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::time::Instant;

    fn ev(id: Option<&str>, user: &str, item: &str) -> FeedbackEvent {
        FeedbackEvent {
            id: id.map(str::to_owned),
            user: user.into(),
            item: item.into(),
            kind: "click".into(),
            value: Some(1.5),
            timestamp_ms: Some(1_700_000_000_000),
        }
    }

    fn open(dir: &tempfile::TempDir) -> FeedbackLog {
        FeedbackLog::open(&dir.path().join("feedback.db"), LogOptions::default()).unwrap()
    }

    fn seqs(a: &[Appended]) -> Vec<u64> {
        a.iter().map(|a| a.seq).collect()
    }

    #[test]
    fn append_and_read_round_trip() {
        let d = tempfile::tempdir().unwrap();
        let log = open(&d);
        assert_eq!(log.last_seq().unwrap(), 0);
        assert_eq!(log.count().unwrap(), 0);
        assert!(log.read_after(0, 10).unwrap().is_empty());

        let mut e2 = ev(None, "u2", "i2");
        e2.kind = "rating".into();
        e2.value = None;
        e2.timestamp_ms = None;
        let events = vec![ev(Some("a"), "u1", "i1"), e2, ev(Some("b"), "u3", "i3")];
        let before = now_unix_ms();
        let out = log.append(events.clone()).unwrap();
        assert_eq!(seqs(&out), [1, 2, 3]);
        assert!(out.iter().all(|a| !a.duplicate));
        let out = log.append(vec![ev(None, "u4", "i4")]).unwrap();
        assert_eq!(seqs(&out), [4]);

        let read = log.read_after(0, 100).unwrap();
        assert_eq!(read.len(), 4);
        for (i, (r, e)) in read.iter().zip(&events).enumerate() {
            assert_eq!(r.seq, i as u64 + 1);
            assert_eq!(&r.event, e);
            assert!(r.acked_unix_ms >= before && r.acked_unix_ms <= now_unix_ms());
        }
        assert!(
            read.windows(2)
                .all(|w| w[0].acked_unix_ms <= w[1].acked_unix_ms)
        );
        assert_eq!(log.read_after(1, 2).unwrap().len(), 2);
        assert_eq!(log.read_after(1, 2).unwrap()[0].seq, 2);
        assert_eq!(log.read_after(3, 100).unwrap()[0].seq, 4);
        assert!(log.read_after(4, 100).unwrap().is_empty());
        assert!(log.read_after(u64::MAX, 100).unwrap().is_empty());
        assert!(log.read_after(0, 0).unwrap().is_empty());
        assert_eq!(log.last_seq().unwrap(), 4);
        assert_eq!(log.count().unwrap(), 4);
        assert!(log.append(Vec::new()).unwrap().is_empty());
    }

    #[test]
    fn idempotent_on_id_across_and_within_calls() {
        let d = tempfile::tempdir().unwrap();
        let log = open(&d);
        log.append(vec![ev(Some("x"), "u", "i"), ev(Some("y"), "u", "j")])
            .unwrap();
        // Across calls: original seq, duplicate flag; the new payload is ignored.
        let out = log
            .append(vec![
                ev(Some("y"), "other", "other"),
                ev(Some("z"), "u", "k"),
                ev(Some("z"), "u", "k"), // within the same call
                ev(Some("x"), "u", "i"),
            ])
            .unwrap();
        assert_eq!(
            out,
            [
                Appended {
                    seq: 2,
                    duplicate: true
                },
                Appended {
                    seq: 3,
                    duplicate: false
                },
                Appended {
                    seq: 3,
                    duplicate: true
                },
                Appended {
                    seq: 1,
                    duplicate: true
                },
            ]
        );
        assert_eq!(log.count().unwrap(), 3);
        assert_eq!(log.read_after(1, 1).unwrap()[0].event.user, "u");
        // Events without id are never deduplicated.
        let e = ev(None, "u", "i");
        let out = log.append(vec![e.clone(), e.clone()]).unwrap();
        assert_eq!(seqs(&out), [4, 5]);
        let out = log.append(vec![e]).unwrap();
        assert_eq!(
            out,
            [Appended {
                seq: 6,
                duplicate: false
            }]
        );
        assert_eq!(log.count().unwrap(), 6);
    }

    #[test]
    fn non_finite_values_are_rejected_and_nothing_is_stored() {
        let d = tempfile::tempdir().unwrap();
        let log = open(&d);
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let mut e = ev(None, "u", "i");
            e.value = Some(bad);
            let err = log.append(vec![ev(None, "u", "i"), e]).unwrap_err();
            assert!(matches!(err, LogError::Invalid { index: 1, .. }), "{err}");
        }
        assert_eq!(log.count().unwrap(), 0);
    }

    #[test]
    fn reopen_keeps_everything_and_continues_seq() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("feedback.db");
        {
            let log = FeedbackLog::open(&path, LogOptions::default()).unwrap();
            log.append(vec![ev(Some("a"), "u", "i"), ev(None, "u", "j")])
                .unwrap();
            log.close().unwrap();
        }
        let log = FeedbackLog::open(&path, LogOptions::default()).unwrap();
        assert_eq!(log.last_seq().unwrap(), 2);
        assert_eq!(log.count().unwrap(), 2);
        assert_eq!(
            log.read_after(0, 10).unwrap()[0].event,
            ev(Some("a"), "u", "i")
        );
        let out = log
            .append(vec![ev(Some("a"), "u", "i"), ev(None, "v", "k")])
            .unwrap();
        assert_eq!(
            out,
            [
                Appended {
                    seq: 1,
                    duplicate: true
                },
                Appended {
                    seq: 3,
                    duplicate: false
                },
            ]
        );
        drop(log); // without close: Drop stops the writer too
        let log = FeedbackLog::open(&path, LogOptions::default()).unwrap();
        assert_eq!(log.last_seq().unwrap(), 3);
    }

    #[test]
    fn export_jsonl_lines_parse_back() {
        let d = tempfile::tempdir().unwrap();
        let log = open(&d);
        let mut e = ev(Some("q\"uote\n"), "user é", "item");
        e.value = Some(-0.25);
        e.timestamp_ms = None;
        log.append(vec![e.clone(), ev(None, "u", "i")]).unwrap();
        let mut buf = Vec::new();
        assert_eq!(log.export_jsonl(&mut buf).unwrap(), 2);
        let text = String::from_utf8(buf).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        let parsed: Vec<LoggedEvent> = lines
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(parsed, log.read_after(0, 10).unwrap());
        assert_eq!(parsed[0].event, e);
        let v: serde_json::Value = serde_json::from_str(lines[1]).unwrap();
        assert_eq!(v["seq"], 2);
        assert_eq!(v["type"], "click");
        assert!(v["id"].is_null());
        assert!(v["acked_unix_ms"].as_u64().unwrap() > 0);
        // The event alone also parses back (extra fields ignored).
        let plain: FeedbackEvent = serde_json::from_str(lines[1]).unwrap();
        assert_eq!(plain, ev(None, "u", "i"));

        let empty_dir = tempfile::tempdir().unwrap();
        let mut buf = Vec::new();
        assert_eq!(open(&empty_dir).export_jsonl(&mut buf).unwrap(), 0);
        assert!(buf.is_empty());
    }

    #[test]
    fn concurrent_single_event_appends_share_commits() {
        let d = tempfile::tempdir().unwrap();
        let log = open(&d);
        let start = Instant::now();
        let per_thread: Vec<Vec<u64>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|t| {
                    let log = log.clone();
                    s.spawn(move || {
                        (0..200)
                            .map(|i| {
                                let id = format!("t{t}-{i}");
                                let out = log.append(vec![ev(Some(&id), "u", "i")]).unwrap();
                                assert!(!out[0].duplicate);
                                out[0].seq
                            })
                            .collect()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let elapsed = start.elapsed();
        let all: HashSet<u64> = per_thread.iter().flatten().copied().collect();
        assert_eq!(all.len(), 1600);
        assert_eq!(all, (1..=1600).collect());
        // Each thread's acks come back in increasing seq order.
        assert!(per_thread.iter().all(|s| s.windows(2).all(|w| w[0] < w[1])));
        assert_eq!(log.count().unwrap(), 1600);
        assert_eq!(log.last_seq().unwrap(), 1600);
        let commits = log.commits();
        eprintln!(
            "feedback_log: 8 threads x 200 single-event appends: {commits} commits, {:.0} events/s",
            1600.0 / elapsed.as_secs_f64()
        );
        assert!(commits < 1600, "no group commit: {commits} commits");
    }

    #[test]
    fn throughput_batches_of_100_from_4_threads() {
        let d = tempfile::tempdir().unwrap();
        let log = open(&d);
        let start = Instant::now();
        std::thread::scope(|s| {
            for t in 0..4 {
                let log = log.clone();
                s.spawn(move || {
                    for b in 0..50 {
                        let batch = (0..100)
                            .map(|i| ev(Some(&format!("{t}-{b}-{i}")), "user", "item"))
                            .collect();
                        log.append(batch).unwrap();
                    }
                });
            }
        });
        let elapsed = start.elapsed();
        assert_eq!(log.count().unwrap(), 20_000);
        eprintln!(
            "feedback_log: 20000 events in batches of 100 from 4 threads: {:.3} s, {:.0} events/s, {} commits",
            elapsed.as_secs_f64(),
            20_000.0 / elapsed.as_secs_f64(),
            log.commits()
        );
    }

    #[test]
    fn max_batch_bounds_the_group_but_never_splits_a_request() {
        let d = tempfile::tempdir().unwrap();
        let log = FeedbackLog::open(
            &d.path().join("f.db"),
            LogOptions {
                max_batch: 3,
                queue: 4,
            },
        )
        .unwrap();
        let big: Vec<_> = (0..10).map(|_| ev(None, "u", "i")).collect();
        assert_eq!(
            seqs(&log.append(big).unwrap()),
            (1..=10).collect::<Vec<_>>()
        );
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..25 {
                        log.append(vec![ev(None, "u", "i"), ev(None, "u", "i")])
                            .unwrap();
                    }
                });
            }
        });
        assert_eq!(log.count().unwrap(), 210);
        // One commit for the big request, then at most one 2-event request per group (3 < 4).
        assert_eq!(log.commits(), 101);
    }

    #[tokio::test]
    async fn append_async_works_and_is_send() {
        let d = tempfile::tempdir().unwrap();
        let log = open(&d);
        let fut = log.append_async(vec![ev(Some("a"), "u", "i")]);
        fn assert_send<T: Send>(_: &T) {}
        assert_send(&fut);
        assert_eq!(
            fut.await.unwrap(),
            [Appended {
                seq: 1,
                duplicate: false
            }]
        );
        let out = log
            .append_async(vec![ev(Some("a"), "u", "i"), ev(None, "u", "j")])
            .await
            .unwrap();
        assert_eq!(
            out,
            [
                Appended {
                    seq: 1,
                    duplicate: true
                },
                Appended {
                    seq: 2,
                    duplicate: false
                },
            ]
        );
        let mut bad = ev(None, "u", "i");
        bad.value = Some(f64::NAN);
        assert!(matches!(
            log.append_async(vec![bad]).await,
            Err(LogError::Invalid { index: 0, .. })
        ));
        log.close().unwrap();
        assert!(matches!(
            log.append_async(vec![ev(None, "u", "i")]).await,
            Err(LogError::Closed)
        ));
        assert_eq!(log.count().unwrap(), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_async_appenders_with_a_tiny_queue() {
        let d = tempfile::tempdir().unwrap();
        let log = FeedbackLog::open(
            &d.path().join("f.db"),
            LogOptions {
                max_batch: 10_000,
                queue: 2,
            },
        )
        .unwrap();
        let tasks: Vec<_> = (0..200)
            .map(|i| {
                let log = log.clone();
                tokio::spawn(async move {
                    log.append_async(vec![ev(Some(&i.to_string()), "u", "i")])
                        .await
                        .unwrap()[0]
                        .seq
                })
            })
            .collect();
        let mut seen = HashSet::new();
        for t in tasks {
            assert!(seen.insert(t.await.unwrap()));
        }
        assert_eq!(seen, (1..=200).collect());
        assert_eq!(log.count().unwrap(), 200);
    }

    #[test]
    fn close_commits_queued_appends_then_refuses() {
        let d = tempfile::tempdir().unwrap();
        let log = FeedbackLog::open(
            &d.path().join("f.db"),
            LogOptions {
                max_batch: 100,
                queue: 4,
            },
        )
        .unwrap();
        let stored = AtomicU64::new(0);
        std::thread::scope(|s| {
            for _ in 0..6 {
                s.spawn(|| {
                    loop {
                        let batch: Vec<_> = (0..50).map(|_| ev(None, "u", "i")).collect();
                        match log.append(batch) {
                            Ok(out) => {
                                assert_eq!(out.len(), 50);
                                stored.fetch_add(50, Ordering::Relaxed);
                            }
                            Err(LogError::Closed) => break,
                            Err(e) => panic!("{e}"),
                        }
                    }
                });
            }
            std::thread::sleep(Duration::from_millis(100));
            log.close().unwrap();
        });
        // Every acknowledged event is in the log and nothing else is.
        let n = stored.load(Ordering::Relaxed);
        assert!(n > 0);
        assert_eq!(log.count().unwrap(), n);
        assert_eq!(log.last_seq().unwrap(), n);
        assert!(matches!(
            log.append(vec![ev(None, "u", "i")]),
            Err(LogError::Closed)
        ));
        assert!(matches!(log.append(Vec::new()), Err(LogError::Closed)));
        log.close().unwrap(); // idempotent
        // The file is consistent for the next process.
        let path = log.path().to_owned();
        drop(log);
        let log = FeedbackLog::open(&path, LogOptions::default()).unwrap();
        assert_eq!(log.count().unwrap(), n);
    }

    #[test]
    fn failed_group_stores_nothing_and_the_writer_carries_on() {
        let d = tempfile::tempdir().unwrap();
        let log = open(&d);
        log.append(vec![ev(None, "u", "i")]).unwrap();
        // Make every insert of user `boom` fail inside the writer's transaction.
        let side = Connection::open(log.path()).unwrap();
        side.execute_batch(
            "CREATE TRIGGER boom BEFORE INSERT ON events WHEN NEW.user = 'boom'
             BEGIN SELECT RAISE(ABORT, 'boom rejected'); END;",
        )
        .unwrap();
        let err = log
            .append(vec![ev(Some("ok"), "u", "i"), ev(None, "boom", "i")])
            .unwrap_err();
        assert!(matches!(err, LogError::Sqlite { .. }), "{err}");
        assert!(err.to_string().contains("boom rejected"), "{err}");
        assert!(err.to_string().contains("feedback.db"), "{err}");
        assert_eq!(log.count().unwrap(), 1);

        // Concurrent requests: whoever shares a group with a failing one fails too, and only
        // acknowledged events are stored.
        let ok = AtomicU64::new(0);
        std::thread::scope(|s| {
            for t in 0..6 {
                let (log, ok) = (&log, &ok);
                s.spawn(move || {
                    for i in 0..30 {
                        let user = if t == 0 && i % 3 == 0 { "boom" } else { "u" };
                        match log.append(vec![ev(None, user, "i"), ev(None, "u", "i")]) {
                            Ok(_) => {
                                ok.fetch_add(2, Ordering::Relaxed);
                            }
                            Err(LogError::Sqlite { .. }) => {}
                            Err(e) => panic!("{e}"),
                        }
                    }
                });
            }
        });
        assert_eq!(log.count().unwrap(), 1 + ok.load(Ordering::Relaxed));
        side.execute_batch("DROP TRIGGER boom;").unwrap();
        // "ok" was rolled back with its group, and no seq was burnt.
        let last = log.last_seq().unwrap();
        assert_eq!(last, log.count().unwrap());
        let out = log.append(vec![ev(Some("ok"), "u", "i")]).unwrap();
        assert_eq!(
            out,
            [Appended {
                seq: last + 1,
                duplicate: false
            }]
        );
    }

    #[test]
    fn garbage_file_is_an_error_not_a_panic() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("feedback.db");
        let garbage: Vec<u8> = (0..16_384u32).map(|i| (i * 7919 % 251) as u8).collect();
        std::fs::write(&path, &garbage).unwrap();
        let err = FeedbackLog::open(&path, LogOptions::default()).unwrap_err();
        assert!(matches!(err, LogError::Sqlite { .. }), "{err}");
        assert!(err.to_string().contains("feedback.db"), "{err}");
        // The file is left alone.
        assert_eq!(std::fs::read(&path).unwrap(), garbage);

        std::fs::write(&path, b"SQLite format 3\0 but truncated").unwrap();
        assert!(FeedbackLog::open(&path, LogOptions::default()).is_err());
    }

    #[test]
    fn foreign_sqlite_databases_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("other.db");
        Connection::open(&path)
            .unwrap()
            .execute_batch("CREATE TABLE users (name TEXT);")
            .unwrap();
        let err = FeedbackLog::open(&path, LogOptions::default()).unwrap_err();
        assert!(matches!(err, LogError::NotALog { .. }), "{err}");

        let path = d.path().join("future.db");
        drop(FeedbackLog::open(&path, LogOptions::default()).unwrap());
        Connection::open(&path)
            .unwrap()
            .execute_batch("UPDATE meta SET value = '99' WHERE key = 'schema_version';")
            .unwrap();
        let err = FeedbackLog::open(&path, LogOptions::default()).unwrap_err();
        assert!(
            matches!(&err, LogError::UnsupportedVersion { found, .. } if found == "99"),
            "{err}"
        );
    }

    #[test]
    fn missing_directory_is_an_error() {
        let d = tempfile::tempdir().unwrap();
        let err = FeedbackLog::open(&d.path().join("nope").join("f.db"), LogOptions::default())
            .unwrap_err();
        assert!(matches!(err, LogError::Sqlite { .. }), "{err}");
    }
}
