//! The live model: one immutable snapshot plus what queries need, behind a pointer that is
//! swapped whole.

use std::sync::Arc;

use parking_lot::RwLock;
use serde_json::Value;

use crate::data::Interactions;
use crate::store::Snapshot;

/// An immutable, query-ready snapshot: the model pair with its catalogue, the items each user
/// has interacted with, and item popularity for cold starts.
#[derive(Debug)]
pub struct Live {
    /// The model pair, ids and metadata.
    pub snapshot: Snapshot,
    /// Items each user has interacted with (for `exclude_seen`).
    pub seen: Interactions,
    /// Interactions per item (cold-start ranking).
    pub popularity: Vec<f32>,
    /// When this snapshot became live (unix ms).
    pub published_unix_ms: u64,
}

impl Live {
    /// Wraps a snapshot with its query data. `seen` and `popularity` are resized to the
    /// snapshot's catalogue.
    pub fn new(snapshot: Snapshot, seen: &Interactions) -> Self {
        let (nu, ni) = (snapshot.users.len(), snapshot.items.len());
        let seen = seen.resized(nu, ni);
        let mut popularity = vec![0.0f32; ni];
        for (i, c) in seen.item_counts().into_iter().enumerate().take(ni) {
            popularity[i] = c as f32;
        }
        Self {
            snapshot,
            seen,
            popularity,
            published_unix_ms: Snapshot::now_unix_ms(),
        }
    }

    /// The snapshot version.
    pub fn version(&self) -> u64 {
        self.snapshot.version
    }

    /// A metadata field, or null.
    pub fn meta(&self, key: &str) -> &Value {
        &self.snapshot.metadata[key]
    }
}

/// The pointer to the live snapshot.
///
/// A plain `parking_lot::RwLock` is enough: it is held only to clone or replace the `Arc`
/// (never across an `.await` or any computation), so readers never wait for training.
#[derive(Debug)]
pub struct ModelStore {
    current: RwLock<Arc<Live>>,
}

impl ModelStore {
    /// A store serving `live`.
    pub fn new(live: Live) -> Self {
        Self {
            current: RwLock::new(Arc::new(live)),
        }
    }

    /// The live snapshot; a request holds this one `Arc` from start to end.
    pub fn current(&self) -> Arc<Live> {
        self.current.read().clone()
    }

    /// Makes `live` the live snapshot; returns the one it replaced.
    pub fn publish(&self, live: Arc<Live>) -> Arc<Live> {
        std::mem::replace(&mut *self.current.write(), live)
    }
}
