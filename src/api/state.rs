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

/// Shared application state, used by the REST and the gRPC API alike: one pointer, so the
/// clone every request makes (axum's `State`, the middleware) is a single reference count
/// rather than one per service (eleven atomic updates and as many drops were 8 % of the
/// CPU of a cached recommendation under load).
#[derive(Clone)]
pub struct AppState(Arc<Services>);

impl AppState {
    /// The state of `services`.
    pub fn new(services: Services) -> Self {
        // Fills render default answers ahead in the format the routes serve.
        crate::online::live::set_renderer(crate::api::queries::render_items);
        Self(Arc::new(services))
    }
}

impl std::ops::Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.0
    }
}

/// What every operation can reach (through [`AppState`]).
pub struct Services {
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
