//! The live model: one immutable snapshot plus what queries need, behind a pointer that is
//! swapped whole.

use std::sync::{Arc, OnceLock};

use parking_lot::RwLock;
use serde_json::Value;

use rayon::prelude::*;

use crate::data::Interactions;
use crate::model::catalogue::catalogue_len;
use crate::model::topk::ItemIndex;
use crate::model::topk::exact::USER_BATCH;
use crate::online::query::{self, ModelChoice, QueryModel, Scored};
use crate::online::settings::IndexConfig;
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
    /// G's top-k search: exact, or the approximate index built for this snapshot.
    pub index: ItemIndex,
    /// Each user's G softmax normaliser, filled by the precompute or by the user's first
    /// indexed query (so later ones need no pass over the catalogue).
    normalisers: Vec<Normaliser>,
}

/// A user's G softmax normaliser `(max, ln Σ)`, once known (`None`: no finite score).
type Normaliser = OnceLock<Option<(f64, f64)>>;

/// Every known user's default top list (G, seen excluded) and G normaliser, users scored in
/// batches by GEMM (`model::topk::exact`), in parallel.
fn precompute(
    m: &QueryModel,
    seen: &Interactions,
    k: usize,
) -> (Vec<Vec<Scored>>, Vec<Normaliser>) {
    let users: Vec<u32> = (0..seen.n_users() as u32).collect();
    let per_user: Vec<(Vec<Scored>, Normaliser)> = users
        .par_chunks(USER_BATCH)
        .map(|chunk| {
            let known: Vec<usize> = chunk
                .iter()
                .filter(|&&u| m.knows_user(u))
                .map(|&u| u as usize)
                .collect();
            let mut scores = query::user_pair_scores(m, &known).into_iter();
            chunk
                .iter()
                .map(|&u| {
                    if !m.knows_user(u) {
                        return (Vec::new(), OnceLock::new());
                    }
                    let Some(s) = scores.next() else {
                        return (Vec::new(), OnceLock::new());
                    };
                    let top = query::recommend_scored(
                        m,
                        &s,
                        k,
                        ModelChoice::Generator,
                        seen.items(u as usize),
                    );
                    (top, OnceLock::from(s.g_normaliser))
                })
                .collect::<Vec<_>>()
        })
        .flatten_iter()
        .collect();
    per_user.into_iter().unzip()
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
        let m = QueryModel::from_snapshot(&snapshot, blend_weight, &popularity);
        let (precomputed, normalisers) = if precompute_k > 0 {
            precompute(&m, &seen, precompute_k)
        } else {
            (Vec::new(), (0..nu).map(|_| OnceLock::new()).collect())
        };
        Self {
            snapshot,
            seen,
            popularity,
            published_unix_ms: Snapshot::now_unix_ms(),
            precomputed,
            precomputed_k: precompute_k,
            index: ItemIndex::Exact,
            normalisers,
        }
    }

    /// Builds the top-k index `config` calls for over G's items (off the request path, before
    /// the snapshot goes live).
    pub fn with_index(mut self, config: &IndexConfig) -> Self {
        let g = &self.snapshot.generator;
        let n = catalogue_len(g);
        self.index = ItemIndex::build(
            config.kind,
            g.item.slice(ndarray::s![..n, ..]),
            &g.bias.as_slice().unwrap_or(&[])[..n],
            &config.params(),
        );
        self
    }

    /// G's top `k` for a known `user` through the approximate index, when this snapshot has
    /// one (see [`query::recommend_indexed`]); `None` when top-k is exact.
    pub fn indexed_top(
        &self,
        m: &QueryModel,
        user: u32,
        k: usize,
        exclude: &[u32],
    ) -> Option<Vec<Scored>> {
        let ItemIndex::Approximate(ix) = &self.index else {
            return None;
        };
        let norm = *self
            .normalisers
            .get(user as usize)?
            .get_or_init(|| query::generator_normaliser(m, user));
        Some(query::recommend_indexed(m, ix, user, k, exclude, norm))
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

    /// The same items in the same order, every number to 1e-6.
    fn assert_close(got: &[Scored], want: &[Scored]) {
        assert_eq!(got.len(), want.len());
        for (a, b) in got.iter().zip(want) {
            assert_eq!(a.item, b.item);
            assert!((a.score - b.score).abs() < 1e-6, "{a:?} vs {b:?}");
            assert!((a.generator - b.generator).abs() < 1e-6);
            assert!((a.discriminator - b.discriminator).abs() < 1e-6);
        }
    }

    fn snapshot_of(users: usize, items: usize, seed: u64) -> Snapshot {
        let mut r = rng::stream(seed, 0, 0);
        Snapshot {
            version: 1,
            created_unix_ms: 1,
            generator: MfModel::random(users, items, 6, 1.0, &mut r),
            generator_temperature: 0.7,
            discriminator: MfModel::random(users, items, 6, 1.0, &mut r),
            users: IdMap::sequential(users),
            items: IdMap::sequential(items),
            metadata: serde_json::json!({}),
        }
    }

    #[test]
    fn the_approximate_index_answers_g_queries_like_the_exact_path() {
        let seen = Interactions::from_pairs(12, 400, &[(0, 1), (0, 2), (3, 399), (5, 7)]);
        let mut cfg = IndexConfig {
            kind: crate::model::topk::IndexKind::Approximate,
            nlist: 10,
            nprobe: 10,
            ..IndexConfig::default()
        };
        for precompute_k in [0, 20] {
            let live =
                Live::new(snapshot_of(12, 400, 5), &seen, precompute_k, 0.5).with_index(&cfg);
            assert_eq!(live.index.name(), "approximate");
            let m = QueryModel::from_snapshot(&live.snapshot, 0.5, &live.popularity);
            for u in 0..12u32 {
                let ex = live.seen.items(u as usize);
                let want = query::recommend(&m, u, 15, ModelChoice::Generator, ex);
                // Every list visited: the same items, and the same numbers for each.
                // Without a precompute the normaliser comes from the one-user pass (bit for bit);
                // the precompute's comes from the batched GEMM rows (to ~1e-9 here).
                let got = live.indexed_top(&m, u, 15, ex).unwrap();
                if precompute_k == 0 {
                    assert_eq!(got, want, "user {u}");
                }
                assert_close(&got, &want);
                // Again, with the cached normaliser.
                assert_eq!(live.indexed_top(&m, u, 15, ex).unwrap(), got);
            }
        }
        cfg.kind = crate::model::topk::IndexKind::Auto;
        let live = Live::new(snapshot_of(3, 50, 6), &seen, 0, 0.5).with_index(&cfg);
        assert_eq!(live.index.name(), "exact");
        let m = QueryModel::from_snapshot(&live.snapshot, 0.5, &live.popularity);
        assert!(live.indexed_top(&m, 0, 5, &[]).is_none());
    }

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
            // Batched (GEMM) scores may differ from the one-user loop in the last bits.
            assert_close(live.precomputed_top(u, 7).unwrap(), &fresh);
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
