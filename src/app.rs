//! Process wiring for `irgan serve`: open the stores and trainers, serve REST and gRPC, stop cleanly.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::api::state::Services;
use crate::config::SyntheticConfig;
use crate::data::loader::{self, DataError, LoadOptions, Record};
use crate::data::{IdMap, synth};
use crate::http::router::router;
use crate::http::state::AppState;
use crate::online::lease_holder::HeldLease;
use crate::online::metrics::Metrics;
use crate::online::roles::{self, ClusterMetrics};
use crate::online::search::{SearchService, SearchStartError};
use crate::online::settings::{Role, ServiceConfig, StorageBackend};
use crate::online::trainer::{Trainer, TrainerError, TrainerHandle};
use crate::store::backend::{
    EventLog, ImpressionStore, SharedImpressions, SharedLog, SharedSnapshots, SharedVersions,
};
use crate::store::feedback_log::{FeedbackEvent, FeedbackLog, LogError, LogOptions};
use crate::store::impression_log::{ImpressionLog, ImpressionLogError};
use crate::store::nats::{Lease, Nats, NatsError, NatsEventLog, NatsImpressionLog, NatsSnapshots};
use crate::store::search_snapshot::SearchSnapshot;
use crate::store::snapshot::SnapshotError;
use crate::store::snapshot_dir::SnapshotDir;

/// Why the service could not start, serve, stop or import.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The data directory could not be created, or a server socket failed.
    #[error("i/o")]
    Io(#[from] std::io::Error),
    /// The feedback log failed.
    #[error("feedback log")]
    Log(#[from] LogError),
    /// The snapshot directory could not be opened.
    #[error("snapshots")]
    Snapshots(#[from] SnapshotError),
    /// The metrics registry could not be built.
    #[error("metrics")]
    Metrics(#[from] prometheus::Error),
    /// The recommendation trainer could not start.
    #[error("recommendation trainer")]
    Trainer(#[from] TrainerError),
    /// The search task could not start.
    #[error("search task")]
    Search(#[from] SearchStartError),
    /// The search impression log failed.
    #[error("search impression log")]
    Impressions(#[from] ImpressionLogError),
    /// An import file could not be read.
    #[error("import")]
    Data(#[from] DataError),
    /// Two generated ids collide.
    #[error("duplicate id {0}")]
    DuplicateId(String),
    /// NATS could not be reached or refused a request.
    #[error("NATS")]
    Nats(#[from] NatsError),
    /// The gRPC server failed.
    #[error("gRPC server")]
    Grpc(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A blocking shutdown step panicked or was cancelled.
    #[error("shutdown task")]
    Join(#[from] tokio::task::JoinError),
}

/// Feedback type used for imported interactions (weight 1 per unit of `value`).
pub const IMPORT_TYPE: &str = "import";

/// Opens the data directory, loads the newest valid snapshot, replays the feedback log,
/// trains a first pair if needed, and starts the trainer thread. Blocking (pretraining can
/// take seconds): call it before serving or from `spawn_blocking`.
pub fn open(cfg: ServiceConfig) -> Result<AppState, AppError> {
    std::fs::create_dir_all(&cfg.storage.data_dir)?;
    let (log, nats) = open_log(&cfg)?;
    let snapshots: SharedSnapshots = match &nats {
        None => SnapshotDir::open(&cfg.snapshot_path())?.into(),
        Some(n) => Arc::new(NatsSnapshots::open(
            n.clone(),
            &cfg.storage.data_dir.join("nats-cache"),
            cfg.storage.keep_snapshots,
        )?),
    };
    let metrics = Arc::new(Metrics::new()?);
    let cluster = ClusterMetrics::register(&metrics)?;
    let mut lease = None;
    let (trainer, models) = match cfg.server.role {
        Role::Serve => (
            TrainerHandle::absent(cfg.trainer.history),
            roles::follow_live(&cfg, snapshots.clone(), metrics.clone())?,
        ),
        role => {
            match (role, &nats) {
                (Role::Train, Some(n)) => {
                    // A standby waits here, before binding its listeners, until the lease
                    // is free.
                    let l = Lease::open(n.clone(), holder_name())?;
                    lease = Some(HeldLease::acquire(l, cluster.lease_held.clone())?);
                }
                // The single trainer of its data directory (or, with NATS, by the operator's
                // word): the lease is implicitly its own.
                _ => cluster.lease_held.set(1),
            }
            let (trainer, models) =
                Trainer::start(cfg.clone(), log.clone(), snapshots.clone(), metrics.clone())?;
            let trainer = trainer.spawn()?;
            roles::follow_tail(&log, &trainer, cluster.consumer_lag.clone());
            (trainer, models)
        }
    };
    // After the lease (role train): the search trainer, too, runs only where it is held.
    let search = if cfg.search.enabled {
        let (log, snapshots) = open_search_stores(&cfg, nats.as_ref())?;
        Some(SearchService::start(
            cfg.search.clone(),
            log,
            snapshots,
            cfg.server.role != Role::Serve,
            cfg.storage.keep_snapshots,
            cfg.training.seed,
            metrics.clone(),
        )?)
    } else {
        None
    };
    let queries = Arc::new(crate::online::query_pool::start(&cfg.server, &metrics)?);
    Ok(AppState::new(Services {
        queries,
        models,
        log,
        trainer,
        snapshots,
        metrics,
        config: Arc::new(cfg),
        search,
        traffic: Arc::default(),
        lease,
    }))
}

/// The feedback log `storage.backend` names (and the NATS connection it uses, if any).
/// Blocking; not from an async worker.
pub fn open_log(cfg: &ServiceConfig) -> Result<(SharedLog, Option<Arc<Nats>>), AppError> {
    match cfg.storage.backend {
        StorageBackend::Local => {
            std::fs::create_dir_all(&cfg.storage.data_dir)?;
            let log = FeedbackLog::open(&cfg.log_path(), LogOptions::default())?;
            Ok((log.into(), None))
        }
        StorageBackend::Nats => {
            let nats = Nats::connect(&cfg.nats)?;
            let log: SharedLog = Arc::new(NatsEventLog::open(nats.clone())?);
            Ok((log, Some(nats)))
        }
    }
}

/// The search task's impression log for `storage.backend` (with NATS, on the connection
/// `nats`, or a new one when `None`). Blocking; not from an async worker.
pub fn open_impressions(
    cfg: &ServiceConfig,
    nats: Option<&Arc<Nats>>,
) -> Result<SharedImpressions, AppError> {
    match (cfg.storage.backend, nats) {
        (StorageBackend::Local, _) => {
            std::fs::create_dir_all(&cfg.storage.data_dir)?;
            let path = cfg.storage.data_dir.join("search.sqlite3");
            Ok(Arc::new(ImpressionLog::open(&path)?))
        }
        (StorageBackend::Nats, Some(n)) => Ok(Arc::new(NatsImpressionLog::open(n.clone())?)),
        (StorageBackend::Nats, None) => Ok(Arc::new(NatsImpressionLog::open(Nats::connect(
            &cfg.nats,
        )?)?)),
    }
}

/// The search task's impression log and snapshot store for `storage.backend` (with NATS, on
/// the connection `nats`). Blocking; not from an async worker.
fn open_search_stores(
    cfg: &ServiceConfig,
    nats: Option<&Arc<Nats>>,
) -> Result<(SharedImpressions, SharedVersions<SearchSnapshot>), AppError> {
    let log = open_impressions(cfg, nats)?;
    let dir = &cfg.storage.data_dir;
    let snapshots: SharedVersions<SearchSnapshot> = match nats {
        None => Arc::new(SnapshotDir::<SearchSnapshot>::open(
            &dir.join("search-snapshots"),
        )?),
        Some(n) => Arc::new(NatsSnapshots::<SearchSnapshot>::open(
            n.clone(),
            &dir.join("nats-search-cache"),
            cfg.storage.keep_snapshots,
        )?),
    };
    Ok((log, snapshots))
}

/// This process's name in the trainer lease: host name and process id.
fn holder_name() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "irgan".into());
    format!("{host}-{}", std::process::id())
}

/// Serves the REST API on `listener` and, when given, the gRPC API on `grpc` until
/// `shutdown` resolves (or either server fails). Then both stop accepting and drain their
/// requests, the last feedback is folded into a final snapshot (if the gate accepts it) and
/// the log is closed.
pub async fn run(
    state: AppState,
    listener: TcpListener,
    grpc: Option<TcpListener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), AppError> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let stop_tx = Arc::new(stop_tx);
    let signal = {
        let tx = stop_tx.clone();
        tokio::spawn(async move {
            shutdown.await;
            let _ = tx.send(true);
        })
    };
    let sampler =
        crate::online::traffic::spawn_sampler(state.traffic.clone(), state.metrics.clone());
    let stopping = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|&stop| stop).await;
    };
    let http = async {
        let r = axum::serve(listener, router(state.clone()))
            .with_graceful_shutdown(stopping(stop_rx.clone()))
            .await
            .map_err(AppError::from);
        // Whatever ended one server ends the other.
        let _ = stop_tx.send(true);
        r
    };
    let grpc = async {
        let Some(listener) = grpc else {
            return Ok(());
        };
        let r = crate::grpc::server::serve(state.clone(), listener, stopping(stop_rx.clone()))
            .await
            .map_err(|e| AppError::Grpc(e.into()));
        let _ = stop_tx.send(true);
        r
    };
    let (http, grpc) = tokio::join!(http, grpc);
    signal.abort();
    sampler.abort();
    let stopped = stop(&state).await;
    http?;
    grpc?;
    stopped
}

/// The shutdown sequence after the server has drained.
pub async fn stop(state: &AppState) -> Result<(), AppError> {
    if let Some(search) = &state.search {
        let v = search.shutdown().await;
        tracing::info!(version = v, "search trainer stopped");
    }
    let version = state.trainer.shutdown().await;
    if let Some(lease) = state.lease.clone() {
        // After the final snapshot: a standby takes over now rather than after the TTL.
        tokio::task::spawn_blocking(move || lease.release()).await?;
    }
    let log = state.log.clone();
    tokio::task::spawn_blocking(move || log.close()).await??;
    match version {
        Ok(v) => tracing::info!(version = v, "stopped; live snapshot saved"),
        Err(e) => tracing::warn!(error = %e, "stopped without a final snapshot"),
    }
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

/// Events for interaction records: a positive counts 1, a seen non-positive 0, each with an
/// id derived from `source` and its position so importing twice stores nothing new.
fn import_events(
    records: &[Record],
    users: &IdMap,
    items: &IdMap,
    threshold: f32,
    source: &str,
) -> Vec<FeedbackEvent> {
    records
        .iter()
        .enumerate()
        .map(|(n, r)| FeedbackEvent {
            id: Some(format!("{source}:{n}")),
            user: users.name(r.user).to_string(),
            item: items.name(r.item).to_string(),
            kind: IMPORT_TYPE.to_string(),
            value: Some(if r.is_positive(threshold) { 1.0 } else { 0.0 }),
            timestamp_ms: r.timestamp,
        })
        .collect()
}

/// Appends the interactions of `path` (the training file format) to the log; returns how
/// many were new.
pub fn import_file(log: &dyn EventLog, path: &Path, opts: &LoadOptions) -> Result<usize, AppError> {
    let (mut users, mut items) = (IdMap::new(), IdMap::new());
    let records = loader::read_records(path, opts, &mut users, &mut items)?;
    let source = format!("import:{}", path.display());
    append_all(
        log,
        import_events(&records, &users, &items, opts.positive_threshold, &source),
    )
}

/// Appends a synthetic latent-cluster catalogue (ids `u0…`, `i0…`) to the log.
pub fn import_demo(
    log: &dyn EventLog,
    cfg: &SyntheticConfig,
    seed: u64,
) -> Result<usize, AppError> {
    let (train, _) = synth::generate(
        &SyntheticConfig {
            test_fraction: 0.0,
            ..cfg.clone()
        },
        seed,
    );
    let users = IdMap::from_names((0..cfg.users).map(|u| format!("u{u}")).collect())
        .map_err(AppError::DuplicateId)?;
    let items = IdMap::from_names((0..cfg.items).map(|i| format!("i{i}")).collect())
        .map_err(AppError::DuplicateId)?;
    append_all(log, import_events(&train, &users, &items, 4.0, "demo"))
}

/// Appends `events` in order, in chunks (each atomic). If the last event's id is already
/// logged, every earlier one is too (chunks commit in order), so a restart with the same
/// `--bootstrap` or `--demo` costs one lookup instead of re-offering every event before the
/// listener binds.
fn append_all(log: &dyn EventLog, events: Vec<FeedbackEvent>) -> Result<usize, AppError> {
    if let Some(id) = events.last().and_then(|e| e.id.as_deref())
        && log.contains_id(id)?
    {
        return Ok(0);
    }
    let mut new = 0;
    for chunk in events.chunks(10_000) {
        new += log
            .append(chunk.to_vec())?
            .iter()
            .filter(|a| !a.duplicate)
            .count();
    }
    Ok(new)
}

/// Appends a synthetic search data set (queries `q0…`, documents `q0-d0…`, graded labels from a
/// hidden linear relevance; see [`crate::data::letor_synth`]) to the impression log, once
/// (ids `demo-search:q0…` make a second import a no-op). Returns the new impressions.
pub fn import_search_demo(
    log: &dyn ImpressionStore,
    n_features: usize,
    seed: u64,
) -> Result<usize, AppError> {
    use crate::store::impression_log::{Impression, ShownDocument};
    let data = crate::data::letor_synth::synthetic_ltr(200, 20, n_features, seed);
    let impressions: Vec<Impression> = data
        .queries
        .iter()
        .map(|q| Impression {
            id: Some(format!("demo-search:{}", q.qid)),
            query: q.qid.clone(),
            documents: (0..q.len())
                .map(|d| ShownDocument {
                    id: q.doc_ids[d].clone(),
                    features: q.features.row(d).iter().map(|&v| f64::from(v)).collect(),
                    label: Some(q.labels[d]),
                    clicked: None,
                })
                .collect(),
        })
        .collect();
    // Imported before: every one is there (one append), so skip the lookups a repeat costs.
    if let Some(id) = impressions.last().and_then(|i| i.id.as_deref())
        && log.contains_id(id)?
    {
        return Ok(0);
    }
    let appended = log.append(&impressions)?;
    Ok(appended.iter().filter(|a| !a.duplicate).count())
}
