//! Logs on JetStream streams ([`StreamLog`]): the feedback log (stream `nats.stream`) and the
//! search impression log (stream `nats.search_stream`), one code path for both. One message
//! per record (its JSON, its id as `Nats-Msg-Id`), the stream sequence as the log's seq, the
//! server's publish time as the acknowledgement time.
//!
//! Ids repeated within the stream's duplicate window are refused by JetStream and reported as
//! duplicates with the original's seq. A repeat after the window is stored again; the reader
//! marks it (`repeat`: its id was first stored at a lower seq) and the trainer advances past
//! it without training on it, so every id is trained on once. For that the reader knows the
//! first seq of every id up to where it has read, loading the ids before its starting point
//! once from message headers only.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer, pull};
use async_nats::jetstream::context::PublishAckFuture;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream::{self, Stream};
use futures_util::StreamExt;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Nats, NatsError};
use crate::store::backend::{BoxFuture, EventLog, ImpressionStore};
use crate::store::feedback_log::{Appended, FeedbackEvent, LogError, LoggedEvent};
use crate::store::impression_log::{self, Impression, ImpressionLogError, LoggedImpression};

/// Events published before their acknowledgements are awaited (bounded by the client's
/// in-flight limit).
const PUBLISH_WINDOW: usize = 512;
/// How long a pull waits for messages the stream info says exist.
const FETCH_WAIT: Duration = Duration::from_secs(5);
/// How often the tail follower asks for the stream's last seq.
const FOLLOW_EVERY: Duration = Duration::from_millis(100);

/// One message as read back: seq, body (empty when headers only), message id, publish time.
type Raw = (u64, Vec<u8>, Option<String>, u64);

/// The reader's position and what it knows of ids.
#[derive(Default)]
struct Reader {
    consumer: Option<PullConsumer>,
    /// Next seq the consumer delivers.
    next: u64,
    /// Last seq handed out (or asked from, when everything after it was a repeat).
    returned: u64,
    /// First seq of every id seen, for seqs up to `ids_through`.
    ids: HashMap<String, u64>,
    ids_through: u64,
}

/// What a [`StreamLog`] carries: a JSON record with an optional idempotency key.
pub trait Record: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The record's idempotency key (the message id).
    fn id(&self) -> Option<&str>;
}

impl Record for FeedbackEvent {
    fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }
}

impl Record for Impression {
    fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }
}

/// A record as read back.
struct Read<R> {
    seq: u64,
    acked_unix_ms: u64,
    record: R,
    /// Its id was first stored at a lower seq (a repeat after the duplicate window).
    repeat: bool,
}

/// A log of `R` records on one JetStream stream; cheap to share behind an `Arc`.
pub struct StreamLog<R> {
    nats: Arc<Nats>,
    stream: Stream,
    subject: String,
    reader: Mutex<Reader>,
    closed: AtomicBool,
    kind: PhantomData<fn() -> R>,
}

/// The feedback log on JetStream (stream `nats.stream`, subject `nats.subject`).
pub type NatsEventLog = StreamLog<FeedbackEvent>;
/// The search impression log on JetStream (stream `nats.search_stream`, subject
/// `nats.search_subject`).
pub type NatsImpressionLog = StreamLog<Impression>;

impl<R> std::fmt::Debug for StreamLog<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamLog")
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

fn reading_error(e: impl std::fmt::Display) -> NatsError {
    NatsError::request("reading the log", e)
}

fn remote(e: NatsError) -> LogError {
    LogError::Remote(e.to_string())
}

fn remote_search(e: NatsError) -> ImpressionLogError {
    ImpressionLogError::Remote(e.to_string())
}

impl NatsEventLog {
    /// Opens the feedback stream, creating it (file storage, `nats.replicas`, the duplicate
    /// window) if missing.
    pub fn open(nats: Arc<Nats>) -> Result<Self, NatsError> {
        let (name, subject) = (nats.cfg.stream.clone(), nats.cfg.subject.clone());
        Self::open_stream(nats, name, subject, "creating the feedback stream")
    }
}

impl NatsImpressionLog {
    /// Opens the search impression stream, creating it (file storage, `nats.replicas`, the
    /// duplicate window) if missing.
    pub fn open(nats: Arc<Nats>) -> Result<Self, NatsError> {
        let c = &nats.cfg;
        let (name, subject) = (c.search_stream.clone(), c.search_subject.clone());
        Self::open_stream(nats, name, subject, "creating the search impression stream")
    }
}

impl<R: Record> StreamLog<R> {
    /// Opens stream `name` with its one subject, creating it if missing.
    fn open_stream(
        nats: Arc<Nats>,
        name: String,
        subject: String,
        context: &str,
    ) -> Result<Self, NatsError> {
        let config = stream::Config {
            name,
            subjects: vec![subject.clone()],
            storage: Nats::storage(),
            num_replicas: nats.cfg.replicas,
            duplicate_window: Duration::from_secs_f64(nats.cfg.duplicate_window_seconds),
            ..Default::default()
        };
        let js = nats.js.clone();
        let stream = nats
            .run(async move { js.get_or_create_stream(config).await })?
            .map_err(|e| NatsError::request(context, e))?;
        Ok(Self {
            subject,
            nats,
            stream,
            reader: Mutex::new(Reader::default()),
            closed: AtomicBool::new(false),
            kind: PhantomData,
        })
    }

    fn state(&self) -> Result<stream::State, NatsError> {
        let s = self.stream.clone();
        let info = self
            .nats
            .run(async move { s.get_info().await })?
            .map_err(|e| NatsError::request("reading the stream state", e))?;
        Ok(info.state)
    }

    /// Reads up to `want` messages from `start` (a new consumer unless `consumer` is there).
    fn fetch(
        &self,
        consumer: Option<PullConsumer>,
        start: u64,
        want: usize,
        headers_only: bool,
    ) -> Result<(PullConsumer, Vec<Raw>), NatsError> {
        let s = self.stream.clone();
        let run = async move {
            let consumer = match consumer {
                Some(c) => c,
                None => s
                    .create_consumer(pull::Config {
                        deliver_policy: DeliverPolicy::ByStartSequence {
                            start_sequence: start,
                        },
                        ack_policy: AckPolicy::None,
                        headers_only,
                        inactive_threshold: Duration::from_secs(120),
                        ..Default::default()
                    })
                    .await
                    .map_err(|e| NatsError::request("creating a reader", e))?,
            };
            let mut batch = consumer
                .batch()
                .max_messages(want)
                .expires(FETCH_WAIT)
                .messages()
                .await
                .map_err(reading_error)?;
            let mut out = Vec::with_capacity(want);
            while let Some(m) = batch.next().await {
                let m = m.map_err(reading_error)?;
                let info = m.info().map_err(reading_error)?;
                let seq = info.stream_sequence;
                let acked = (info.published.unix_timestamp_nanos() / 1_000_000).max(0) as u64;
                let id = m
                    .headers
                    .as_ref()
                    .and_then(|h| h.get("Nats-Msg-Id"))
                    .map(|v| v.as_str().to_owned());
                out.push((seq, m.payload.to_vec(), id, acked));
            }
            Ok::<_, NatsError>((consumer, out))
        };
        self.nats.run(run)?
    }

    /// Learns the ids of seqs `r.ids_through + 1 ..= through` from headers only.
    fn scan_ids(&self, r: &mut Reader, through: u64) -> Result<(), NatsError> {
        let mut consumer = None;
        let mut next = r.ids_through + 1;
        while next <= through {
            let want = usize::try_from(through - next + 1)
                .unwrap_or(usize::MAX)
                .min(10_000);
            let (c, raw) = self.fetch(consumer.take(), next, want, true)?;
            if raw.is_empty() {
                break;
            }
            for (seq, _, id, _) in raw {
                if seq > through {
                    break;
                }
                if let Some(id) = id {
                    r.ids.entry(id).or_insert(seq);
                }
                next = seq + 1;
            }
            consumer = Some(c);
        }
        r.ids_through = r.ids_through.max(through);
        Ok(())
    }

    /// Publishes `records` (their ids as message ids) and waits for JetStream's
    /// acknowledgements: (seq, duplicate) per record, in order.
    async fn publish(
        nats: Arc<Nats>,
        subject: String,
        records: Vec<R>,
    ) -> Result<Vec<(u64, bool)>, NatsError> {
        let mut out = Vec::with_capacity(records.len());
        for chunk in records.chunks(PUBLISH_WINDOW) {
            let mut acks: Vec<PublishAckFuture> = Vec::with_capacity(chunk.len());
            for r in chunk {
                let body = serde_json::to_vec(r)
                    .map_err(|e| NatsError::request("encoding a record", e))?;
                let mut m = PublishMessage::build().payload(body.into());
                if let Some(id) = r.id() {
                    m = m.message_id(id);
                }
                let ack = nats
                    .js
                    .send_publish(subject.clone(), m)
                    .await
                    .map_err(|e| NatsError::request("publishing a record", e))?;
                acks.push(ack);
            }
            for ack in acks {
                let ack = ack.await.map_err(|e| {
                    NatsError::request("waiting for JetStream's acknowledgement", e)
                })?;
                out.push((ack.sequence, ack.duplicate));
            }
        }
        Ok(out)
    }

    /// Appends `records` from a blocking thread once JetStream acknowledged them.
    fn append_blocking(&self, records: Vec<R>) -> Result<Vec<(u64, bool)>, NatsError> {
        let fut = Self::publish(self.nats.clone(), self.subject.clone(), records);
        self.nats.run(fut)?
    }

    /// Calls `on_tail` with the stream's last seq every [`FOLLOW_EVERY`] (polled on the client
    /// runtime), so a trainer learns of records other replicas appended and can export its lag.
    pub fn follow(&self, on_tail: Arc<dyn Fn(u64) + Send + Sync>) {
        let s = self.stream.clone();
        self.nats.background(async move {
            loop {
                if let Ok(info) = s.get_info().await {
                    on_tail(info.state.last_sequence);
                }
                tokio::time::sleep(FOLLOW_EVERY).await;
            }
        });
    }

    /// Records with `seq > after`, in order, at most `limit` of them, each marked when it
    /// repeats an id stored at a lower seq.
    fn read(&self, after: u64, limit: usize) -> Result<Vec<Read<R>>, NatsError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let last = self.state()?.last_sequence;
        let mut guard = self.reader.lock().unwrap_or_else(PoisonError::into_inner);
        let r = &mut *guard;
        if r.ids_through < after {
            self.scan_ids(r, after)?;
        }
        let mut start = after + 1;
        // Everything between the last record handed out and `next` was a repeat.
        if after == r.returned && r.next > start {
            start = r.next;
        }
        if r.next != start {
            r.consumer = None;
        }
        let mut out = Vec::new();
        while out.len() < limit && start <= last {
            let want = usize::try_from(last - start + 1)
                .unwrap_or(usize::MAX)
                .min(limit - out.len());
            let (consumer, raw) = self.fetch(r.consumer.take(), start, want, false)?;
            if raw.is_empty() {
                // The stream has these records but the reader delivered none: its consumer
                // may have lived on a node that is gone (ephemeral consumers have one
                // replica). The next read starts a new one.
                break;
            }
            r.consumer = Some(consumer);
            for (seq, body, id, acked) in raw {
                start = seq + 1;
                let repeat = match id.map(|id| r.ids.entry(id)) {
                    Some(Entry::Occupied(first)) => *first.get() < seq,
                    Some(Entry::Vacant(v)) => {
                        v.insert(seq);
                        false
                    }
                    None => false,
                };
                // Bodies are written by `append` only; an unreadable one is skipped.
                if let Ok(record) = serde_json::from_slice::<R>(&body) {
                    out.push(Read {
                        seq,
                        acked_unix_ms: acked,
                        record,
                        repeat,
                    });
                }
            }
            r.ids_through = r.ids_through.max(start - 1);
        }
        r.next = start;
        r.returned = out.last().map_or(after, |e| e.seq);
        Ok(out)
    }

    /// Whether a record with id `id` is stored.
    fn has_id(&self, id: &str) -> Result<bool, NatsError> {
        let last = self.state()?.last_sequence;
        let mut r = self.reader.lock().unwrap_or_else(PoisonError::into_inner);
        if r.ids_through < last {
            self.scan_ids(&mut r, last)?;
        }
        Ok(r.ids.contains_key(id))
    }
}

impl NatsEventLog {
    fn check(&self, events: &[FeedbackEvent]) -> Result<(), LogError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(LogError::Closed);
        }
        crate::store::feedback_log::validate(events)
    }
}

fn appended(acks: Vec<(u64, bool)>) -> Vec<Appended> {
    acks.into_iter()
        .map(|(seq, duplicate)| Appended { seq, duplicate })
        .collect()
}

impl EventLog for NatsEventLog {
    fn append(&self, events: Vec<FeedbackEvent>) -> Result<Vec<Appended>, LogError> {
        self.check(&events)?;
        self.append_blocking(events).map(appended).map_err(remote)
    }

    fn append_async(
        &self,
        events: Vec<FeedbackEvent>,
    ) -> BoxFuture<'_, Result<Vec<Appended>, LogError>> {
        Box::pin(async move {
            self.check(&events)?;
            let fut = Self::publish(self.nats.clone(), self.subject.clone(), events);
            let acks = self.nats.spawn(fut).await.map_err(remote)?;
            acks.map(appended).map_err(remote)
        })
    }

    fn read_after(&self, after: u64, limit: usize) -> Result<Vec<LoggedEvent>, LogError> {
        let read = self.read(after, limit).map_err(remote)?;
        Ok(read
            .into_iter()
            .map(|r| LoggedEvent {
                seq: r.seq,
                acked_unix_ms: r.acked_unix_ms,
                event: r.record,
                repeat: r.repeat,
            })
            .collect())
    }

    fn last_seq(&self) -> Result<u64, LogError> {
        Ok(self.state().map_err(remote)?.last_sequence)
    }

    fn count(&self) -> Result<u64, LogError> {
        Ok(self.state().map_err(remote)?.messages)
    }

    fn contains_id(&self, id: &str) -> Result<bool, LogError> {
        self.has_id(id).map_err(remote)
    }

    fn close(&self) -> Result<(), LogError> {
        self.closed.store(true, Ordering::Release);
        Ok(())
    }

    fn follow(&self, on_tail: Arc<dyn Fn(u64) + Send + Sync>) {
        StreamLog::follow(self, on_tail);
    }
}

impl ImpressionStore for NatsImpressionLog {
    fn append(
        &self,
        impressions: &[Impression],
    ) -> Result<Vec<impression_log::Appended>, ImpressionLogError> {
        let acks = self
            .append_blocking(impressions.to_vec())
            .map_err(remote_search)?;
        Ok(acks
            .into_iter()
            .map(|(seq, duplicate)| impression_log::Appended { seq, duplicate })
            .collect())
    }

    fn read_after(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<LoggedImpression>, ImpressionLogError> {
        let read = self.read(after, limit).map_err(remote_search)?;
        Ok(read
            .into_iter()
            .map(|r| LoggedImpression {
                seq: r.seq,
                impression: r.record,
                repeat: r.repeat,
            })
            .collect())
    }

    fn count(&self) -> Result<u64, ImpressionLogError> {
        Ok(self.state().map_err(remote_search)?.messages)
    }

    fn contains_id(&self, id: &str) -> Result<bool, ImpressionLogError> {
        self.has_id(id).map_err(remote_search)
    }
}
