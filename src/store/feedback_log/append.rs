//! Appending: the request queue, and the writer thread that commits groups of requests in one
//! transaction (group commit) and replies to each requester.

use std::path::PathBuf;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError, TrySendError};

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use tokio::sync::{Notify, oneshot};

use super::FeedbackLog;
use super::error::{LogError, SqlContext};
use super::events::{Appended, FeedbackEvent, validate};
use super::schema::{FIND_BY_ID, INSERT_EVENT, to_u64};
use crate::store::clock::now_unix_ms;

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
pub(super) struct Request {
    events: Vec<FeedbackEvent>,
    reply: ReplyTo,
}

impl FeedbackLog {
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
}

/// The writer thread's state.
pub(super) struct Writer {
    pub(super) conn: Connection,
    pub(super) path: PathBuf,
    pub(super) receiver: Receiver<Request>,
    pub(super) max_batch: usize,
    pub(super) space: Arc<Notify>,
    pub(super) commits: Arc<AtomicU64>,
    /// Last `acked_unix_ms` written; ack times never go below it.
    pub(super) last_ack: u64,
}

impl Writer {
    /// Serves requests until every sender is gone, then returns (closing the connection).
    pub(super) fn run(mut self) {
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
