//! The live model: one immutable snapshot plus what queries need, behind a pointer that is
//! swapped whole.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use parking_lot::RwLock;
use serde_json::Value;

use crate::data::Interactions;
use crate::model::blend::Standardiser;
use crate::model::catalogue::catalogue_len;
use crate::model::panel::ItemPanel;
use crate::model::topk::ItemIndex;
use crate::model::topk::exact::USER_BATCH;
use crate::online::batch::{self, Ask};
use crate::online::query::{self, ModelChoice, QueryModel, Scored, rows};
use crate::online::settings::IndexConfig;
use crate::store::Snapshot;

mod carry;
mod rendered;

pub use carry::Carried;
pub use rendered::{Renderer, set_renderer};

/// An immutable, query-ready snapshot: the model pair with its catalogue, the items each user
/// has interacted with, and item popularity for cold starts.
///
/// Building one is cheap (no pass over users × items): what queries need repeatedly is cached
/// here per user on first use — each user's top list by each model (item ids, seen excluded),
/// G's softmax normaliser, the blend's standardisers — and [`Live::fill`] (run in the
/// background once the snapshot is live, see [`ModelStore`]) fills them for every user in
/// batches. The caches of users whose rows did not change carry over to the next snapshot
/// ([`Live::carry_from`]).
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
    /// How many items each user's cached top lists (seen excluded) hold; 0 disables them.
    pub precomputed_k: usize,
    /// G's top-k search: exact, or the approximate index built for this snapshot (shared with
    /// the snapshots after it while G's items do not change).
    pub index: Arc<ItemIndex>,
    /// Weight of G in the blend.
    blend_weight: f64,
    /// Each known user's top list by each model (indexed by [`slot`]), item ids best first,
    /// once computed; shared with the next snapshot while the user's rows do not change.
    lists: [Vec<OnceLock<Arc<[u32]>>>; 3],
    /// Each user's G softmax normaliser, once known (so later queries need no pass over the
    /// catalogue for it).
    normalisers: Vec<Normaliser>,
    /// Each user's blend standardisers (G's and D's scores over the catalogue), once known.
    blend_stats: Vec<OnceLock<Stats>>,
    /// The zero user's normaliser and standardisers (cold starts, `rank` without a user).
    zero: (Normaliser, OnceLock<Stats>),
    /// Every candidate in popularity order (the cold-start list), computed once.
    cold_start: OnceLock<Vec<Scored>>,
    /// Bounds of D's item side, `(max ‖q_i‖, max |b_i|)` (∞ when a value is not finite).
    d_bound: OnceLock<(f64, f64)>,
    /// G's and D's items packed for request batches' rows, once a batch needs them (shared
    /// with the snapshots after it while the items do not change).
    panels: [OnceLock<Arc<ItemPanel>>; 2],
    /// Each user's rendered G answer, within a byte budget (none until
    /// [`Live::with_answer_budget`]).
    rendered: rendered::Rendered,
}

/// A user's G softmax normaliser `(max, ln Σ)`, once known (`None`: no finite score).
type Normaliser = OnceLock<Option<(f64, f64)>>;

/// The blend's standardisers of G's and D's raw scores for one user.
type Stats = (Standardiser, Standardiser);

impl Live {
    /// Wraps a snapshot with its query data. `seen` and `popularity` are resized to the
    /// snapshot's catalogue. With `precompute_k > 0` each user's default top list is computed on
    /// its first request, or for everyone by [`Live::fill`]; nothing is computed here, so a
    /// snapshot goes live at once.
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
        let slots = if precompute_k > 0 { nu } else { 0 };
        Self {
            snapshot,
            seen,
            popularity,
            published_unix_ms: Snapshot::now_unix_ms(),
            precomputed_k: precompute_k,
            index: Arc::new(ItemIndex::Exact),
            blend_weight,
            lists: std::array::from_fn(|_| (0..slots).map(|_| OnceLock::new()).collect()),
            normalisers: (0..nu).map(|_| OnceLock::new()).collect(),
            blend_stats: (0..nu).map(|_| OnceLock::new()).collect(),
            zero: (OnceLock::new(), OnceLock::new()),
            cold_start: OnceLock::new(),
            d_bound: OnceLock::new(),
            panels: [OnceLock::new(), OnceLock::new()],
            rendered: rendered::Rendered::default(),
        }
    }

    /// Keeps up to `bytes` of rendered answers ([`Live::rendered`]) for this snapshot's users.
    pub fn with_answer_budget(mut self, bytes: usize) -> Self {
        self.rendered = rendered::Rendered::new(self.snapshot.users.len(), bytes);
        self
    }

    /// The bytes kept by [`Live::keep_rendered`] for `user`'s top `k` by G (seen excluded),
    /// if any: rendered from this snapshot, or from an earlier one whose caches of `user`
    /// carried over unchanged.
    pub fn rendered(&self, user: u32, k: usize) -> Option<bytes::Bytes> {
        self.rendered.get(user, k)
    }

    /// Keeps the caller's rendering of `user`'s top `k` by G (seen excluded, from this
    /// snapshot's cached list); it must not depend on the version, since it carries over to
    /// later snapshots with the user's lists. Kept while the budget allows; the first wins.
    pub fn keep_rendered(&self, user: u32, k: usize, bytes: bytes::Bytes) {
        self.rendered.keep(user, k, bytes);
    }

    /// Bytes of rendered answers kept.
    pub fn rendered_bytes(&self) -> usize {
        self.rendered.used()
    }

    /// Builds the top-k index `config` calls for over G's items (off the request path, before
    /// the snapshot goes live).
    pub fn with_index(mut self, config: &IndexConfig) -> Self {
        let g = &self.snapshot.generator;
        let n = catalogue_len(g);
        self.index = Arc::new(ItemIndex::build(
            config.kind,
            g.item.slice(ndarray::s![..n, ..]),
            &g.bias.as_slice().unwrap_or(&[])[..n],
            &config.params(),
        ));
        self
    }

    /// G's (`discriminator` false) or D's items packed for scoring request batches, built on
    /// first use.
    pub fn panel(&self, discriminator: bool) -> &ItemPanel {
        let s = &self.snapshot;
        let (slot, model) = if discriminator {
            (&self.panels[1], &s.discriminator)
        } else {
            (&self.panels[0], &s.generator)
        };
        slot.get_or_init(|| Arc::new(ItemPanel::of(model)))
    }

    /// The query view of this snapshot (its pair, blend weight and popularity).
    pub fn query_model(&self) -> QueryModel<'_> {
        QueryModel::from_snapshot(&self.snapshot, self.blend_weight, &self.popularity)
    }

    /// Builds the item panels, then computes every missing top list (G's for every user first,
    /// then D's and the blend's; with them the user's normaliser and blend standardisers),
    /// users scored in batches by GEMM, plus the cold-start list; stops early once `keep_going` answers false (checked between batches).
    /// The lists equal what requests would compute one by one. Sequential on the calling
    /// thread: a background fill takes one core, leaving the others (and rayon's pool) to the
    /// trainer and the query pool.
    pub fn fill(&self, keep_going: impl Fn() -> bool) {
        // The item panels first, so request batches do not wait for them (a few ms each at
        // Gowalla's size; carried over when the items did not change).
        let _ = (self.panel(false), self.panel(true));
        let _ = self.cold_start_list();
        if self.precomputed_k == 0 {
            return;
        }
        let m = self.query_model();
        // G's lists first, for every user: they answer the default request, so the common
        // query is served from the cache three times sooner; D's and the blend's follow.
        let passes: [&[ModelChoice]; 2] = [
            &[ModelChoice::Generator],
            &[ModelChoice::Discriminator, ModelChoice::Blend],
        ];
        for (pass, models) in passes.into_iter().enumerate() {
            if pass == 1 {
                // The default answers next: they serve most requests.
                self.render_ahead(&keep_going);
            }
            let users: Vec<u32> = (0..self.lists[0].len() as u32)
                .filter(|&u| m.knows_user(u) && models.iter().any(|&md| !self.has_list(u, md)))
                .collect();
            for chunk in users.chunks(USER_BATCH) {
                if !keep_going() {
                    return;
                }
                let asks: Vec<Ask> = chunk
                    .iter()
                    .flat_map(|&user| {
                        models.iter().map(move |&model| Ask::Top {
                            user,
                            model,
                            k: self.precomputed_k,
                            exclude_seen: true,
                        })
                    })
                    .collect();
                batch::answer(self, &asks);
            }
        }
    }

    /// Renders every known user's default answer that is not kept yet, at the `k` requests
    /// last asked for (nothing before a request asked, without a registered renderer, or
    /// once the budget is spent), from G's cached lists.
    fn render_ahead(&self, keep_going: &impl Fn() -> bool) {
        let k = self.rendered.asked_k();
        let Some(render) = rendered::renderer().filter(|_| k > 0 && k <= self.precomputed_k) else {
            return;
        };
        let m = self.query_model();
        for user in (0..self.lists[0].len() as u32).filter(|&u| m.knows_user(u)) {
            if (user % 1024 == 0 && !keep_going()) || self.rendered.full() {
                return;
            }
            if self.rendered.has(user) {
                continue;
            }
            let Some(top) = self.cached_top(user, ModelChoice::Generator, k) else {
                continue;
            };
            if let Some(bytes) = render(self, top) {
                self.rendered.keep(user, k, bytes);
            }
        }
    }

    /// Notes that a default request for `k` items found no kept answer: later fills of this
    /// snapshot and the ones carried from it render that `k` ahead.
    pub fn note_asked_k(&self, k: usize) {
        self.rendered.note_asked(k);
    }

    /// Renders ahead at the `k` that `prev`'s requests asked for (for a snapshot built
    /// without [`Live::carry_from`], such as a staged game candidate).
    pub fn asks_like(self, prev: &Live) -> Self {
        self.rendered.carry_asked(&prev.rendered);
        self
    }

    /// How many known users have their top list cached, per model (G, D, blend), out of how
    /// many known users: the progress of [`Live::fill`] (a request for a user whose list is
    /// not cached costs a pass over the catalogue on the query pool).
    pub fn cached_lists(&self) -> ([usize; 3], usize) {
        let m = self.query_model();
        let mut counts = [0; 3];
        let mut known = 0;
        for u in (0..self.lists[0].len() as u32).filter(|&u| m.knows_user(u)) {
            known += 1;
            for (c, model) in counts.iter_mut().zip(ModelChoice::ALL) {
                *c += usize::from(self.has_list(u, model));
            }
        }
        (counts, known)
    }

    /// Whether every model's list of `user` is cached.
    fn has_lists(&self, user: u32) -> bool {
        self.lists
            .iter()
            .all(|l| l.get(user as usize).is_some_and(|s| s.get().is_some()))
    }

    /// True when every known user's lists are computed (or lists are disabled).
    pub fn filled(&self) -> bool {
        let m = self.query_model();
        (0..self.lists[0].len() as u32).all(|u| !m.knows_user(u) || self.has_lists(u))
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
        let ItemIndex::Approximate(ix) = self.index.as_ref() else {
            return None;
        };
        let norm = self.normaliser(m, Some(user));
        Some(query::recommend_indexed(m, ix, user, k, exclude, norm))
    }

    /// The cached top `k` of known `user` by `model` (seen excluded), if computed already:
    /// the cached item ids, each scored with one dot product per model.
    pub fn cached_top(&self, user: u32, model: ModelChoice, k: usize) -> Option<Vec<Scored>> {
        if k > self.precomputed_k {
            return None;
        }
        let ids = self.lists[slot(model)].get(user as usize)?.get()?;
        let normaliser = *self.normalisers.get(user as usize)?.get()?;
        let stats = match model {
            ModelChoice::Blend => Some(*self.blend_stats.get(user as usize)?.get()?),
            _ => None,
        };
        let r = rows::UserRows {
            user: Some(user),
            g: None,
            d: None,
            normaliser,
            d_finite: false,
        };
        // A list shorter than precomputed_k is complete: the user has no more candidates.
        let ids = &ids[..k.min(ids.len())];
        Some(rows::entries(&self.query_model(), &r, model, ids, stats))
    }

    /// The cached default list of `user` (G, seen excluded): [`Live::cached_top`] for G.
    pub fn precomputed_top(&self, user: u32, k: usize) -> Option<Vec<Scored>> {
        self.cached_top(user, ModelChoice::Generator, k)
    }

    /// Whether `user`'s list by `model` is cached.
    pub(crate) fn has_list(&self, user: u32, model: ModelChoice) -> bool {
        self.lists[slot(model)]
            .get(user as usize)
            .is_some_and(|s| s.get().is_some())
    }

    /// Caches `user`'s top list by `model` (the first one stored wins).
    pub(crate) fn store_list(&self, user: u32, model: ModelChoice, list: &[Scored]) {
        if let Some(s) = self.lists[slot(model)].get(user as usize) {
            let _ = s.get_or_init(|| list.iter().map(|e| e.item).collect());
        }
    }

    /// G's normaliser for a known `user` (or the zero user), from the cache or one pass over
    /// the catalogue.
    pub fn normaliser(&self, m: &QueryModel, user: Option<u32>) -> Option<(f64, f64)> {
        self.normaliser_with(user, || match user {
            Some(u) => query::generator_normaliser(m, u),
            None => rows::normaliser(zero_row(m), m.temperature()),
        })
    }

    /// G's cached normaliser for `user`, or `compute`d and cached.
    pub(crate) fn normaliser_with(
        &self,
        user: Option<u32>,
        compute: impl FnOnce() -> Option<(f64, f64)>,
    ) -> Option<(f64, f64)> {
        let slot = match user {
            Some(u) => self.normalisers.get(u as usize),
            None => Some(&self.zero.0),
        };
        match slot {
            Some(s) => *s.get_or_init(compute),
            None => compute(),
        }
    }

    /// Whether `user`'s normaliser is cached.
    pub(crate) fn has_normaliser(&self, user: u32) -> bool {
        self.normalisers
            .get(user as usize)
            .is_some_and(|s| s.get().is_some())
    }

    /// The blend's standardisers for a known `user` (or the zero user), from the cache or
    /// `rows` (G's and D's full rows) computed by the caller, or one pass over each model.
    pub fn blend_stats(
        &self,
        m: &QueryModel,
        user: Option<u32>,
        rows: Option<(&[f32], &[f32])>,
    ) -> Stats {
        let compute = || match rows {
            Some((g, d)) => rows::blend_stats(g, d, m.n_items()),
            None => {
                let u = user.map(|u| u as usize);
                let g = crate::model::catalogue::raw_scores(m.generator, u);
                let d = crate::model::catalogue::raw_scores(m.discriminator, u);
                rows::blend_stats(&g, &d, m.n_items())
            }
        };
        let slot = match user {
            Some(u) => self.blend_stats.get(u as usize),
            None => Some(&self.zero.1),
        };
        match slot {
            Some(s) => *s.get_or_init(compute),
            None => compute(),
        }
    }

    /// Every candidate in popularity order ([`query::cold_start`] over the whole catalogue),
    /// computed once per snapshot.
    pub fn cold_start_list(&self) -> &[Scored] {
        self.cold_start.get_or_init(|| {
            let m = self.query_model();
            query::cold_start(&m, m.n_items(), &[])
        })
    }

    /// The first `k` of the cold-start list, if it is computed already.
    pub fn cold_start_ready(&self, k: usize) -> Option<&[Scored]> {
        let list = self.cold_start.get()?;
        Some(&list[..k.min(list.len())])
    }

    /// True when every D score of known `user` is certainly finite: `‖p_u‖ · max ‖q_i‖ +
    /// max |b_i|` stays far below f32's range (by Cauchy–Schwarz no partial sum of a dot product
    /// exceeds it), so sampling need not read D for every item.
    pub fn d_scores_finite(&self, user: u32) -> bool {
        let d = &self.snapshot.discriminator;
        let (q, b) = *self.d_bound.get_or_init(|| {
            let n = catalogue_len(d);
            let fin = |x: f64| if x.is_finite() { x } else { f64::INFINITY };
            let q = (0..n).map(|i| fin(norm(d.item_row(i)))).fold(0.0, f64::max);
            let b = d.bias.iter().take(n).map(|&x| fin(f64::from(x).abs()));
            (q, b.fold(0.0, f64::max))
        });
        if !crate::model::catalogue::has_user(d, user) {
            return false;
        }
        let p = norm(d.user_row(user as usize));
        p.is_finite() && p * q + b < 1e37
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

/// Where a model's lists are kept in [`Live`].
fn slot(model: ModelChoice) -> usize {
    match model {
        ModelChoice::Generator => 0,
        ModelChoice::Discriminator => 1,
        ModelChoice::Blend => 2,
    }
}

/// The Euclidean norm of a row, in f64.
fn norm(x: &[f32]) -> f64 {
    x.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>().sqrt()
}

/// The zero user's G scores: G's item biases over its catalogue.
pub(crate) fn zero_row<'a>(m: &QueryModel<'a>) -> &'a [f32] {
    let g = m.generator;
    &g.bias.as_slice().unwrap_or(&[])[..catalogue_len(g)]
}

/// The pointer to the live snapshot.
///
/// A plain `parking_lot::RwLock` is enough: it is held only to clone or replace the `Arc`
/// (never across an `.await` or any computation), so readers never wait for training.
///
/// Every snapshot that goes live gets a background thread that fills its caches
/// ([`Live::fill`]) and gives up as soon as a newer snapshot replaces it; until then a user
/// whose list is not ready is answered through the query pool.
#[derive(Debug)]
pub struct ModelStore {
    current: RwLock<Arc<Live>>,
    /// Bumped by every publish, so a fill thread can tell its snapshot was replaced.
    generation: Arc<AtomicU64>,
}

impl ModelStore {
    /// A store serving `live`.
    pub fn new(live: Live) -> Self {
        let store = Self {
            current: RwLock::new(Arc::new(live)),
            generation: Arc::new(AtomicU64::new(0)),
        };
        store.fill_in_background(store.current(), 0);
        store
    }

    /// The live snapshot; a request holds this one `Arc` from start to end.
    pub fn current(&self) -> Arc<Live> {
        self.current.read().clone()
    }

    /// Makes `live` the live snapshot; returns the one it replaced.
    pub fn publish(&self, live: Arc<Live>) -> Arc<Live> {
        let old = {
            let mut current = self.current.write();
            self.generation.fetch_add(1, Ordering::SeqCst);
            std::mem::replace(&mut *current, live.clone())
        };
        self.fill_in_background(live, self.generation.load(Ordering::SeqCst));
        old
    }

    /// Fills `live`'s caches on a thread of its own while `generation` is still the current
    /// one. A thread that cannot be spawned leaves the caches to fill on demand.
    fn fill_in_background(&self, live: Arc<Live>, generation: u64) {
        let current = self.generation.clone();
        let _ = std::thread::Builder::new()
            .name("irgan-fill".into())
            .spawn(move || {
                crate::online::background::lower_priority();
                live.fill(|| current.load(Ordering::SeqCst) == generation)
            });
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::data::IdMap;
    use crate::model::MfModel;
    use crate::rng;

    /// The same items in the same order, every number to 1e-6.
    pub(crate) fn assert_close(got: &[Scored], want: &[Scored]) {
        assert_eq!(got.len(), want.len());
        for (a, b) in got.iter().zip(want) {
            assert_eq!(a.item, b.item);
            assert!((a.score - b.score).abs() < 1e-6, "{a:?} vs {b:?}");
            assert!((a.generator - b.generator).abs() < 1e-6);
            assert!((a.discriminator - b.discriminator).abs() < 1e-6);
        }
    }

    /// A random pair over sequential ids (also the batch tests' snapshot).
    pub(crate) fn snapshot_of(users: usize, items: usize, seed: u64) -> Snapshot {
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
            live.fill(|| true);
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
    fn the_fill_caches_every_users_g_list_before_any_other() {
        let users = 3 * USER_BATCH;
        let seen = Interactions::from_pairs(users, 50, &[(0, 1), (7, 3)]);
        let live = Live::new(snapshot_of(users, 50, 8), &seen, 10, 0.5);
        assert_eq!(live.cached_lists(), ([0, 0, 0], users));
        // Three batches of users: exactly G's pass.
        let batches = std::sync::atomic::AtomicUsize::new(0);
        live.fill(|| batches.fetch_add(1, Ordering::SeqCst) < 3);
        assert_eq!(live.cached_lists(), ([users, 0, 0], users));
        live.fill(|| true);
        assert_eq!(live.cached_lists(), ([users; 3], users));
        assert!(live.filled());
        // What the fill cached is what a request computes.
        let m = live.query_model();
        for u in [0u32, 7, users as u32 - 1] {
            let want = query::recommend(&m, u, 10, ModelChoice::Blend, live.seen.items(u as usize));
            assert_close(&live.cached_top(u, ModelChoice::Blend, 10).unwrap(), &want);
        }
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
        // Nothing is computed before the snapshot goes live; `fill` computes every list.
        assert!(live.precomputed_top(0, 7).is_none() && !live.filled());
        live.fill(|| true);
        assert!(live.filled());
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
            assert_close(&live.precomputed_top(u, 7).unwrap(), &fresh);
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
