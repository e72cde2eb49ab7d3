//! Carrying what a snapshot learnt per user into the next one, so a publish costs work in
//! proportion to what changed.
//!
//! A fold-in publish changes the rows of the users with new feedback (and adds users and
//! items); every other user's rows, and every existing item's, are bit for bit those of the
//! snapshot before. Their default top lists, G normalisers and blend standardisers are
//! therefore still right and are shared with the new snapshot instead of being recomputed
//! from the whole catalogue. Nothing is assumed: the item side and each user's rows and seen
//! items are compared, and only what is provably unchanged is carried.
//!
//! Items added since the earlier snapshot are merged in: a normaliser is extended by the new
//! items' terms and G's and D's top lists are re-ranked over their old entries plus the new
//! items (one dot product per item and model); the blend's standardisers and list, which would
//! need both whole rows, are left to be computed on demand.

use std::sync::OnceLock;

use crate::model::MfModel;
use crate::model::catalogue::catalogue_len;
use crate::online::live::{Live, zero_row};
use crate::online::query::rows::{self, UserRows};
use crate::online::query::{ModelChoice, QueryModel};

/// What [`Live::carry_from`] carried.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Carried {
    /// Every earlier item's rows (both models) are unchanged: the item side was carried.
    pub items: bool,
    /// Users whose caches were carried.
    pub users: usize,
    /// Items added since the earlier snapshot (merged into the carried caches).
    pub new_items: usize,
}

/// Whether `next`'s first `prev.n_items()` item rows and biases are bit for bit `prev`'s, with
/// the same dimension.
fn items_extend(prev: &MfModel, next: &MfModel) -> bool {
    let (n, d) = (catalogue_len(prev), prev.dim());
    if next.dim() != d || catalogue_len(next) < n {
        return false;
    }
    fn prefix(x: Option<&[f32]>, n: usize) -> &[f32] {
        x.and_then(|x| x.get(..n)).unwrap_or(&[])
    }
    same_bits(
        prefix(prev.item.as_slice(), n * d),
        prefix(next.item.as_slice(), n * d),
    ) && same_bits(
        prefix(prev.bias.as_slice(), n),
        prefix(next.bias.as_slice(), n),
    )
}

/// Equal bit patterns (so a NaN equals itself and 0.0 differs from -0.0).
fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

impl Live {
    /// Takes over `prev`'s per-user caches for every user whose G and D rows and seen items
    /// are unchanged, when `prev`'s items are an unchanged prefix of this snapshot's (see the
    /// module docs); the item side's caches (the top-k index, D's bounds) too when no item
    /// was added. Call before the snapshot goes live; what is not carried is computed on
    /// demand or by [`Live::fill`].
    pub fn carry_from(&mut self, prev: &Live) -> Carried {
        // Whatever carries, the next fill renders answers at the k clients ask for.
        self.rendered.carry_asked(&prev.rendered);
        let (p, s) = (&prev.snapshot, &self.snapshot);
        let same_policy = p.generator_temperature.to_bits() == s.generator_temperature.to_bits();
        if !same_policy
            || !items_extend(&p.generator, &s.generator)
            || !items_extend(&p.discriminator, &s.discriminator)
        {
            return Carried::default();
        }
        let (old_n, new_n) = (prev.query_model().n_items(), self.query_model().n_items());
        let new_items = new_n.saturating_sub(old_n);
        if new_items == 0 {
            self.index = prev.index.clone();
            for (from, to) in prev.panels.iter().zip(&self.panels) {
                if let Some(p) = from.get() {
                    let _ = to.set(p.clone());
                }
            }
            if let Some(&b) = prev.d_bound.get() {
                let _ = self.d_bound.set(b);
            }
            if let Some(&z) = prev.zero.1.get() {
                let _ = self.zero.1.set(z);
            }
        }
        let m = self.query_model();
        // The new items' raw G scores for user `u`, as `MfModel::score` gives them.
        let fresh =
            |u: usize| -> Vec<f32> { (old_n..new_n).map(|i| s.generator.score(u, i)).collect() };
        if let Some(&z) = prev.zero.0.get() {
            let extended = if new_items == 0 {
                z
            } else {
                let added = &zero_row(&m)[old_n..new_n];
                rows::extend_normaliser(z, added, m.temperature())
            };
            let _ = self.zero.0.set(extended);
        }
        let same_k = prev.precomputed_k == self.precomputed_k;
        let mut users = 0;
        let shared = prev.normalisers.len().min(self.normalisers.len());
        for u in 0..shared {
            if !self.unchanged_user(prev, u) {
                continue;
            }
            users += 1;
            if new_items == 0 {
                copy(&prev.normalisers[u], &self.normalisers[u]);
                copy(&prev.blend_stats[u], &self.blend_stats[u]);
                for (from, to) in prev.lists.iter().zip(&self.lists).filter(|_| same_k) {
                    if let (Some(a), Some(b)) = (from.get(u), to.get(u)) {
                        copy(a, b);
                    }
                }
                // Same rows, items and seen set: the rendered list is still this user's.
                self.rendered.carry(&prev.rendered, u);
                continue;
            }
            let Some(&norm) = prev.normalisers[u].get() else {
                continue;
            };
            let added = fresh(u);
            let norm = rows::extend_normaliser(norm, &added, m.temperature());
            let _ = self.normalisers[u].set(norm);
            if same_k {
                for model in [ModelChoice::Generator, ModelChoice::Discriminator] {
                    let list = prev.lists[super::slot(model)]
                        .get(u)
                        .and_then(OnceLock::get);
                    if let Some(list) = list {
                        self.merge_new_items(&m, u as u32, model, list, norm, old_n..new_n);
                    }
                }
            }
        }
        Carried {
            items: true,
            users,
            new_items,
        }
    }

    /// Whether user `u`'s rows in both models and seen items are those of `prev`.
    fn unchanged_user(&self, prev: &Live, u: usize) -> bool {
        let (p, s) = (&prev.snapshot, &self.snapshot);
        u < p.generator.n_users()
            && u < p.discriminator.n_users()
            && u < s.generator.n_users()
            && u < s.discriminator.n_users()
            && same_bits(p.generator.user_row(u), s.generator.user_row(u))
            && same_bits(p.discriminator.user_row(u), s.discriminator.user_row(u))
            && prev.seen.items(u) == self.seen.items(u)
    }

    /// Stores user `u`'s list by `model` re-ranked over `list`'s items and the new ones.
    fn merge_new_items(
        &self,
        m: &QueryModel,
        u: u32,
        model: ModelChoice,
        list: &[u32],
        norm: Option<(f64, f64)>,
        new: std::ops::Range<usize>,
    ) {
        let r = UserRows {
            user: Some(u),
            g: None,
            d: None,
            normaliser: norm,
            d_finite: false,
        };
        let items = list.iter().copied().chain(new.map(|i| i as u32));
        let merged = rows::top_among(m, &r, model, items, self.precomputed_k, None);
        self.store_list(u, model, &merged);
    }
}

/// Sets `to` from `from` when `from` is set.
fn copy<T: Clone>(from: &OnceLock<T>, to: &OnceLock<T>) {
    if let Some(v) = from.get() {
        let _ = to.set(v.clone());
    }
}

#[cfg(test)]
mod tests_support {
    use crate::data::Interactions;
    use crate::online::live::Live;

    pub(super) const K: usize = 8;

    /// A live snapshot with every cache filled.
    pub(super) fn filled(snapshot: crate::store::Snapshot, seen: &Interactions) -> Live {
        let live = Live::new(snapshot, seen, K, 0.5);
        live.fill(|| true);
        live
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{IdMap, Interactions};
    use crate::online::live::tests::{assert_close, snapshot_of};
    use crate::online::query::{self, ModelChoice};
    use crate::rng;

    use super::tests_support::*;

    /// Every user's carried or recomputed default list and normaliser equal a fresh query's.
    fn assert_fresh(live: &Live) {
        let m = live.query_model();
        for u in 0..live.snapshot.users.len() as u32 {
            let seen = live.seen.items(u as usize);
            let want = query::recommend(&m, u, K, ModelChoice::Generator, seen);
            let got = match live.precomputed_top(u, K) {
                Some(list) => list,
                None => crate::online::batch::answer(
                    live,
                    &[crate::online::batch::Ask::Top {
                        user: u,
                        model: ModelChoice::Generator,
                        k: K,
                        exclude_seen: true,
                    }],
                )
                .remove(0),
            };
            assert_close(&got, &want);
        }
    }

    #[test]
    fn unchanged_users_keep_their_caches_and_changed_ones_are_recomputed() {
        let seen = Interactions::from_pairs(10, 60, &[(0, 1), (2, 5), (7, 59)]);
        let prev = filled(snapshot_of(10, 60, 3), &seen);
        let mut next = prev.snapshot.clone();
        next.version = 2;
        next.generator.user.row_mut(4).fill(0.25);
        let seen2 = Interactions::from_pairs(10, 60, &[(0, 1), (2, 5), (7, 59), (9, 3)]);
        let mut live = Live::new(next, &seen2, K, 0.5);
        let carried = live.carry_from(&prev);
        assert_eq!(
            carried,
            Carried {
                items: true,
                users: 8,
                new_items: 0
            }
        );
        // User 4's rows and user 9's seen items changed: nothing of theirs was carried.
        for u in [4, 9] {
            assert!(live.precomputed_top(u, K).is_none() && !live.has_normaliser(u));
        }
        assert!(live.precomputed_top(0, K).is_some() && live.has_normaliser(0));
        assert_fresh(&live);
    }

    #[test]
    fn new_items_are_merged_into_carried_lists_and_normalisers() {
        let seen = Interactions::from_pairs(6, 40, &[(0, 1), (3, 39)]);
        let prev = filled(snapshot_of(6, 40, 4), &seen);
        let mut next = prev.snapshot.clone();
        let mut r = rng::stream(9, 0, 0);
        // Large new items, so some of them enter every user's top list.
        next.generator.grow(7, 45, 3.0, &mut r);
        next.discriminator.grow(7, 45, 3.0, &mut r);
        next.users = IdMap::sequential(7);
        next.items = IdMap::sequential(45);
        let mut live = Live::new(next, &seen.resized(7, 45), K, 0.5);
        let carried = live.carry_from(&prev);
        assert_eq!(
            (carried.items, carried.users, carried.new_items),
            (true, 6, 5)
        );
        let m = live.query_model();
        for u in 0..6u32 {
            let fresh = query::generator_normaliser(&m, u).unwrap();
            let got = live.normaliser(&m, Some(u)).unwrap();
            assert!((fresh.0 + fresh.1 - got.0 - got.1).abs() < 1e-7, "user {u}");
            assert!(live.precomputed_top(u, K).is_some());
        }
        assert_fresh(&live);
    }

    #[test]
    fn changed_items_carry_nothing() {
        let seen = Interactions::from_pairs(5, 30, &[]);
        let prev = filled(snapshot_of(5, 30, 5), &seen);
        let mut next = prev.snapshot.clone();
        next.discriminator.item.row_mut(29).fill(1.0);
        let mut live = Live::new(next, &seen, K, 0.5);
        assert_eq!(live.carry_from(&prev), Carried::default());
        assert!((0..5).all(|u| live.precomputed_top(u, K).is_none()));
        assert_fresh(&live);
    }
}

#[cfg(test)]
mod rendered_tests {
    use super::tests_support::*;
    use crate::data::Interactions;
    use crate::online::live::Live;
    use crate::online::live::tests::snapshot_of;
    use bytes::Bytes;

    /// Rendered answers carry exactly where the lists do: unchanged users with no new item.
    #[test]
    fn rendered_answers_carry_with_unchanged_users_only() {
        let seen = Interactions::from_pairs(10, 60, &[(0, 1)]);
        let prev = filled(snapshot_of(10, 60, 3), &seen).with_answer_budget(1 << 20);
        for u in 0..10 {
            prev.keep_rendered(u, K, Bytes::from(format!("[{u}]")));
        }
        let mut next = prev.snapshot.clone();
        next.version = 2;
        next.generator.user.row_mut(4).fill(0.25);
        let seen2 = Interactions::from_pairs(10, 60, &[(0, 1), (9, 3)]);
        let mut live = Live::new(next, &seen2, K, 0.5).with_answer_budget(1 << 20);
        live.carry_from(&prev);
        for u in 0..10u32 {
            let want = (u != 4 && u != 9).then(|| Bytes::from(format!("[{u}]")));
            assert_eq!(live.rendered(u, K), want, "user {u}");
        }
        // With new items nothing rendered carries: the lists may change.
        let mut grown = prev.snapshot.clone();
        let mut r = crate::rng::stream(9, 0, 0);
        grown.generator.grow(10, 61, 3.0, &mut r);
        grown.discriminator.grow(10, 61, 3.0, &mut r);
        grown.items = crate::data::IdMap::sequential(61);
        let mut live = Live::new(grown, &seen.resized(10, 61), K, 0.5).with_answer_budget(1 << 20);
        live.carry_from(&prev);
        assert!((0..10).all(|u| live.rendered(u, K).is_none()));
    }

    /// A fill renders every user's answer ahead once a request asked for a k, and snapshots
    /// built after it (carried or staged) render at that k before any request asks.
    #[test]
    fn fills_render_answers_ahead_at_the_k_requests_asked_for() {
        // Any registered renderer will do (the API's, if another test registered it first):
        // the test compares with whichever renders.
        crate::online::live::set_renderer(|_, top| {
            Some(Bytes::from(format!(
                "{:?}",
                top.iter().map(|s| s.item).collect::<Vec<_>>()
            )))
        });
        let render = crate::online::live::rendered::renderer().unwrap();
        let seen = Interactions::from_pairs(10, 60, &[(0, 1)]);
        let live = filled(snapshot_of(10, 60, 3), &seen).with_answer_budget(1 << 20);
        live.fill(|| true);
        assert!(
            (0..10).all(|u| live.rendered(u, K).is_none()),
            "no request asked yet: nothing is rendered ahead"
        );
        live.note_asked_k(K);
        live.fill(|| true);
        for u in 0..10u32 {
            let want = render(&live, live.precomputed_top(u, K).unwrap());
            assert_eq!(live.rendered(u, K), want, "user {u}");
        }
        // A candidate built fresh (the staged path) renders at the asked k when told to.
        let mut next = live.snapshot.clone();
        next.version = 2;
        next.generator.user.row_mut(4).fill(0.25);
        let staged = Live::new(next.clone(), &seen, K, 0.5)
            .with_answer_budget(1 << 20)
            .asks_like(&live);
        staged.fill(|| true);
        assert!((0..10).all(|u| staged.rendered(u, K).is_some()));
        let unasked = Live::new(next.clone(), &seen, K, 0.5).with_answer_budget(1 << 20);
        unasked.fill(|| true);
        assert!((0..10).all(|u| unasked.rendered(u, K).is_none()));
        // A carried snapshot: user 4 changed, and its fill renders it at the same k.
        let mut carried = Live::new(next, &seen, K, 0.5).with_answer_budget(1 << 20);
        carried.carry_from(&live);
        assert!(carried.rendered(4, K).is_none());
        carried.fill(|| true);
        let want = render(&carried, carried.precomputed_top(4, K).unwrap());
        assert_eq!(carried.rendered(4, K), want);
        // No budget: nothing kept, nothing rendered.
        let none = filled(snapshot_of(10, 60, 3), &seen);
        none.note_asked_k(K);
        none.fill(|| true);
        assert!((0..10).all(|u| none.rendered(u, K).is_none()));
    }
}
