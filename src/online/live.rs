//! The live model: one immutable snapshot plus what queries need, behind a pointer that is
//! swapped whole.

use std::sync::Arc;

use parking_lot::RwLock;
use serde_json::Value;

use rayon::prelude::*;

use crate::data::Interactions;
use crate::online::query::{self, ModelChoice, QueryModel, Scored};
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
    /// Each known user's top items by G with seen items excluded (the default query),
    /// computed once per snapshot so the common request is a lookup. Empty when disabled.
    pub precomputed: Vec<Vec<Scored>>,
    /// How many items each precomputed list holds.
    pub precomputed_k: usize,
}

impl Live {
    /// Wraps a snapshot with its query data. `seen` and `popularity` are resized to the
    /// snapshot's catalogue; with `precompute_k > 0` every user's default top list is computed
    /// here (in parallel), off the request path.
    pub fn new(
        snapshot: Snapshot,
        seen: &Interactions,
        precompute_k: usize,
        blend_weight: f64,
    ) -> Self {
        let (nu, ni) = (snapshot.users.len(), snapshot.items.len());
        let seen = seen.resized(nu, ni);
        let mut popularity = vec![0.0f32; ni];
        for (i, c) in seen.item_counts().into_iter().enumerate().take(ni) {
            popularity[i] = c as f32;
        }
        let precomputed = if precompute_k > 0 {
            let m = QueryModel::from_snapshot(&snapshot, blend_weight, &popularity);
            (0..nu as u32)
                .into_par_iter()
                .map(|u| {
                    if m.knows_user(u) {
                        query::recommend(
                            &m,
                            u,
                            precompute_k,
                            ModelChoice::Generator,
                            seen.items(u as usize),
                        )
                    } else {
                        Vec::new()
                    }
                })
                .collect()
        } else {
            Vec::new()
        };
        Self {
            snapshot,
            seen,
            popularity,
            published_unix_ms: Snapshot::now_unix_ms(),
            precomputed,
            precomputed_k: precompute_k,
        }
    }

    /// The precomputed top `k` of `user` (G, seen excluded), if available.
    pub fn precomputed_top(&self, user: u32, k: usize) -> Option<&[Scored]> {
        if k > self.precomputed_k {
            return None;
        }
        let list = self.precomputed.get(user as usize)?;
        // A list shorter than precomputed_k is complete: the user has no more candidates.
        Some(&list[..k.min(list.len())])
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::IdMap;
    use crate::model::MfModel;
    use crate::rng;

    #[test]
    fn precomputed_lists_equal_a_fresh_query_and_swaps_replace_whole_snapshots() {
        let mut r = rng::stream(3, 0, 0);
        let snapshot = Snapshot {
            version: 7,
            created_unix_ms: 1,
            generator: MfModel::random(5, 30, 4, 1.0, &mut r),
            generator_temperature: 1.0,
            discriminator: MfModel::random(5, 30, 4, 1.0, &mut r),
            users: IdMap::sequential(5),
            items: IdMap::sequential(30),
            metadata: serde_json::json!({}),
        };
        let seen = Interactions::from_pairs(5, 30, &[(0, 1), (0, 2), (3, 29)]);
        let live = Live::new(snapshot, &seen, 10, 0.5);
        let m = QueryModel::from_snapshot(&live.snapshot, 0.5, &live.popularity);
        for u in 0..5u32 {
            let fresh = query::recommend(
                &m,
                u,
                7,
                ModelChoice::Generator,
                live.seen.items(u as usize),
            );
            assert_eq!(live.precomputed_top(u, 7).unwrap(), fresh.as_slice());
        }
        assert!(live.precomputed_top(0, 11).is_none());
        let store = ModelStore::new(live);
        let held = store.current();
        let mut next = Snapshot {
            version: 8,
            ..held.snapshot.clone()
        };
        next.metadata = serde_json::json!({ "n": 8 });
        let old = store.publish(Arc::new(Live::new(next, &seen, 0, 0.5)));
        assert_eq!(
            (held.version(), old.version(), store.current().version()),
            (7, 7, 8)
        );
    }
}
