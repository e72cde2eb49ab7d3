//! The NATS JetStream backend (`storage.backend = "nats"`): state shared by several machines.
//!
//! - **Feedback** ([`NatsEventLog`]) and **search impressions** ([`NatsImpressionLog`]): one
//!   stream each on file storage (one [`StreamLog`] code path), one message per record, the
//!   record id as the message id (`Nats-Msg-Id`, deduplicated within the duplicate window); the
//!   stream sequence is the log's seq. A batch is acknowledged once JetStream acknowledged
//!   every message of it.
//! - **Snapshots** ([`NatsSnapshots`], recommendation and search alike): an object store
//!   holding every file of a snapshot directory (manifest last, checksums verified on download
//!   as on disk), and a key-value bucket whose keys (`recommendation`, `search`) are the live
//!   version pointers; their history is the rollback list.
//! - **Lease** ([`Lease`]): a key-value entry with a TTL, renewed by compare-and-set, so one
//!   trainer is active at a time.
//!
//! # Runtime
//!
//! The client runs on a small runtime of its own ([`Nats`]), not on the server's: the
//! synchronous store traits ([`crate::store::backend`]) wait for it on a std channel from the
//! trainer's thread, the follower's thread or start-up, and request handlers await its
//! tasks. Nothing here blocks an async worker of the server's runtime.

mod config;
mod events;
pub mod lease;
mod snapshots;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

pub use config::NatsConfig;
pub use events::{NatsEventLog, NatsImpressionLog, Record, StreamLog};
pub use lease::Lease;
pub use snapshots::{NatsSnapshots, SharedKind};

/// Why talking to NATS failed.
#[derive(Debug, thiserror::Error)]
pub enum NatsError {
    /// The client's runtime could not start.
    #[error("starting the NATS client runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// Connecting or authenticating failed.
    #[error("connecting to NATS at {url}: {message}")]
    Connect {
        /// The configured URL.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// A JetStream request failed.
    #[error("NATS {context}: {message}")]
    Request {
        /// What was being done.
        context: String,
        /// The client's error.
        message: String,
    },
    /// The client's runtime stopped before answering.
    #[error("the NATS client runtime has stopped")]
    Stopped,
    /// NATS did not answer in time.
    #[error("NATS did not answer within {0:?}")]
    TimedOut(Duration),
}

/// The longest a blocking call waits for NATS (a stuck read becomes an error the caller
/// retries, never a hung trainer or follower thread).
const CALL_LIMIT: Duration = Duration::from_secs(15);

impl NatsError {
    /// A request error with its context.
    pub(crate) fn request(context: impl Into<String>, e: impl std::fmt::Display) -> Self {
        Self::Request {
            context: context.into(),
            message: e.to_string(),
        }
    }
}

/// A connection to NATS with its JetStream context, on a runtime of its own.
pub struct Nats {
    runtime: Option<tokio::runtime::Runtime>,
    handle: tokio::runtime::Handle,
    /// The JetStream context (timeouts set from the config).
    pub(crate) js: async_nats::jetstream::Context,
    /// The settings it was opened with.
    pub(crate) cfg: NatsConfig,
}

impl std::fmt::Debug for Nats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Nats")
            .field("url", &self.cfg.url)
            .finish_non_exhaustive()
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        // May be dropped on an async worker at shutdown: never block there.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl Nats {
    /// Starts the client runtime and connects (blocking; not from an async worker).
    pub fn connect(cfg: &NatsConfig) -> Result<Arc<Self>, NatsError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("nats-client")
            .enable_all()
            .build()
            .map_err(NatsError::Runtime)?;
        let handle = runtime.handle().clone();
        let c = cfg.clone();
        let js = runtime.block_on(async move {
            let fail = |message: String| NatsError::Connect {
                url: c.url.clone(),
                message,
            };
            let mut opts = async_nats::ConnectOptions::new()
                .name("irgan")
                .connection_timeout(Duration::from_secs_f64(c.connect_timeout_seconds))
                .require_tls(c.tls_required);
            if !c.credentials_file.is_empty() {
                opts = opts
                    .credentials_file(&c.credentials_file)
                    .await
                    .map_err(|e| fail(format!("credentials {}: {e}", c.credentials_file)))?;
            }
            if !c.token.is_empty() {
                opts = opts.token(c.token.clone());
            }
            if !c.tls_ca_file.is_empty() {
                opts = opts.add_root_certificates(c.tls_ca_file.clone().into());
            }
            let urls: Vec<async_nats::ServerAddr> = c
                .url
                .split(',')
                .map(|u| u.trim().parse())
                .collect::<Result<_, _>>()
                .map_err(|e| fail(format!("bad URL: {e}")))?;
            let client = opts.connect(urls).await.map_err(|e| fail(e.to_string()))?;
            Ok::<_, NatsError>(
                async_nats::jetstream::ContextBuilder::new()
                    .timeout(Duration::from_secs(10))
                    .backpressure_on_inflight(true)
                    .build(client),
            )
        })?;
        Ok(Arc::new(Self {
            runtime: Some(runtime),
            handle,
            js,
            cfg: cfg.clone(),
        }))
    }

    /// Runs `fut` on the client runtime and waits for it on this (non-async) thread.
    pub(crate) fn run<F>(&self, fut: F) -> Result<F::Output, NatsError>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.handle.spawn(async move {
            let _ = tx.send(tokio::time::timeout(CALL_LIMIT, fut).await);
        });
        rx.recv()
            .map_err(|_| NatsError::Stopped)?
            .map_err(|_| NatsError::TimedOut(CALL_LIMIT))
    }

    /// Runs `fut` on the client runtime; awaitable from any runtime.
    pub(crate) async fn spawn<F>(&self, fut: F) -> Result<F::Output, NatsError>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handle
            .spawn(tokio::time::timeout(CALL_LIMIT, fut))
            .await
            .map_err(|_| NatsError::Stopped)?
            .map_err(|_| NatsError::TimedOut(CALL_LIMIT))
    }

    /// Spawns a background task on the client runtime.
    pub(crate) fn background<F>(&self, fut: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.handle.spawn(fut);
    }

    /// The key-value bucket `bucket`, created if missing. The stream is created here with the
    /// bucket's layout rather than by the client's `create_key_value`, which first reads the
    /// account info in a shape nats-server 2.9 does not send.
    pub(crate) async fn ensure_kv(
        js: &async_nats::jetstream::Context,
        bucket: &str,
        description: &str,
        history: i64,
        max_age: Duration,
        replicas: usize,
    ) -> Result<async_nats::jetstream::kv::Store, NatsError> {
        use async_nats::jetstream::stream;
        if let Ok(store) = js.get_key_value(bucket).await {
            return Ok(store);
        }
        let config = stream::Config {
            name: format!("KV_{bucket}"),
            description: Some(description.into()),
            subjects: vec![format!("$KV.{bucket}.>")],
            max_messages_per_subject: history.max(1),
            max_age,
            storage: Self::storage(),
            allow_rollup: true,
            deny_delete: true,
            allow_direct: true,
            num_replicas: replicas.max(1),
            discard: stream::DiscardPolicy::New,
            ..Default::default()
        };
        let context = || format!("creating the key-value bucket {bucket}");
        js.get_or_create_stream(config)
            .await
            .map_err(|e| NatsError::request(context(), e))?;
        js.get_key_value(bucket)
            .await
            .map_err(|e| NatsError::request(context(), e))
    }

    /// The storage type of everything the service creates: files, so a restart keeps them.
    pub(crate) fn storage() -> async_nats::jetstream::stream::StorageType {
        async_nats::jetstream::stream::StorageType::File
    }
}
