//! What every operation can reach.

use std::sync::Arc;

use crate::online::lease_holder::HeldLease;
use crate::online::live::ModelStore;
use crate::online::metrics::Metrics;
use crate::online::query_pool::QueryPool;
use crate::online::search::SearchService;
pub use crate::online::settings::ServiceConfig;
use crate::online::traffic::Traffic;
use crate::online::trainer::TrainerHandle;
use crate::store::backend::{SharedLog, SharedSnapshots};

/// Shared application state (cheap to clone), used by the REST and the gRPC API alike.
#[derive(Clone)]
pub struct AppState {
    /// The live snapshot pointer.
    pub models: Arc<ModelStore>,
    /// The durable feedback log (local SQLite or JetStream).
    pub log: SharedLog,
    /// The background trainer.
    pub trainer: TrainerHandle,
    /// Snapshots (on disk, or the local cache of the object store) and the live pointer.
    pub snapshots: SharedSnapshots,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// The validated configuration.
    pub config: Arc<ServiceConfig>,
    /// The bounded pool every query but a cached lookup runs on.
    pub queries: Arc<QueryPool>,
    /// The search task, when `search.enabled`.
    pub search: Option<Arc<SearchService>>,
    /// Request and feedback rates, sampled in the background while serving.
    pub traffic: Arc<Traffic>,
    /// The trainer lease this process holds (`server.role = "train"`), released on stop.
    pub lease: Option<Arc<HeldLease>>,
}
