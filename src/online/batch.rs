//! Answers a batch of scoring requests against one live snapshot: the users' rows of G and D
//! are computed together, one GEMM per model (the item matrix is read once per batch instead
//! of once per request), then each request does its own selection (top-k, blend, sampling).
//! What a snapshot needs again for a user (G's normaliser, the blend's standardisers, the
//! default top list) is cached in the [`Live`] on the way.

use std::collections::BTreeMap;

use ndarray::Array2;

use crate::online::live::{Live, zero_row};
use crate::online::query::rows::{self, UserRows};
use crate::online::query::{self, ModelChoice, Scored};

/// One scoring request.
#[derive(Debug, Clone, PartialEq)]
pub enum Ask {
    /// The top `k` of a user the snapshot knows ([`crate::online::query::QueryModel::knows_user`]).
    Top {
        /// User index.
        user: u32,
        /// Which model ranks.
        model: ModelChoice,
        /// How many items.
        k: usize,
        /// Leave out the user's seen items.
        exclude_seen: bool,
    },
    /// `k` draws from G's policy ([`query::explore`]).
    Explore {
        /// A known user, or `None` for the zero user (G's prior).
        user: Option<u32>,
        /// How many items.
        k: usize,
        /// Sampling temperature.
        temperature: f64,
        /// Seed of the draw.
        seed: u64,
        /// Leave out the user's seen items.
        exclude_seen: bool,
    },
}

impl Ask {
    /// The known user the request needs rows for.
    fn user(&self) -> Option<u32> {
        match *self {
            Ask::Top { user, .. } => Some(user),
            Ask::Explore { user, .. } => user,
        }
    }
}

/// Which rows a user of the batch needs.
#[derive(Debug, Clone, Copy, Default)]
struct Need {
    g: bool,
    d: bool,
}

/// Rows of a set of users over one model's catalogue.
struct Scores {
    users: Vec<usize>,
    rows: Array2<f32>,
}

/// Users scored together by one pass over the item panel: their score rows (164 KB each on
/// Gowalla) stay within a core's L2 cache while they are written.
const PANEL_USERS: usize = 16;

impl Scores {
    /// The rows of `users` (ascending) by `model`, from its packed items `panel`: one pass
    /// over the panel per [`PANEL_USERS`] users. A GEMM library would repack the whole item
    /// matrix on every call, which for a request batch's few users costs more than the products.
    fn of(live: &Live, discriminator: bool, users: Vec<usize>) -> Self {
        if users.is_empty() {
            return Self {
                users,
                rows: Array2::zeros((0, 0)),
            };
        }
        let s = &live.snapshot;
        let model = if discriminator {
            &s.discriminator
        } else {
            &s.generator
        };
        let panel = live.panel(discriminator);
        let n = panel.n_items();
        let mut rows = Array2::<f32>::zeros((users.len(), n));
        if let Some(out) = rows.as_slice_mut() {
            for (chunk, out) in users
                .chunks(PANEL_USERS)
                .zip(out.chunks_mut(PANEL_USERS * n.max(1)))
            {
                let factors: Vec<f32> = chunk
                    .iter()
                    .flat_map(|&u| model.user_row(u).iter().copied())
                    .collect();
                panel.score_into(&factors, out);
            }
        }
        Self { users, rows }
    }

    fn row(&self, user: u32) -> Option<&[f32]> {
        let r = self.users.binary_search(&(user as usize)).ok()?;
        self.rows.row(r).to_slice()
    }
}

/// The answer to every request of `asks`, in order. Requests the snapshot cannot serve (an
/// unknown user for [`Ask::Top`]) get an empty list.
pub fn answer(live: &Live, asks: &[Ask]) -> Vec<Vec<Scored>> {
    let m = live.query_model();
    // Requests a cached list answers: any model's top k <= precompute_k, seen excluded.
    let cached = |a: &Ask| match *a {
        Ask::Top {
            k,
            exclude_seen: true,
            ..
        } => k <= live.precomputed_k,
        _ => false,
    };
    let indexed = !matches!(*live.index, crate::model::topk::ItemIndex::Exact);
    let mut need: BTreeMap<u32, Need> = BTreeMap::new();
    for a in asks {
        let Some(u) = a.user().filter(|&u| m.knows_user(u)) else {
            continue;
        };
        if let Ask::Top { user, model, .. } = *a
            && cached(a)
            && live.has_list(user, model)
        {
            continue; // computed meanwhile
        }
        let n = need.entry(u).or_default();
        match a {
            Ask::Top { model, .. } => match model {
                ModelChoice::Generator if indexed && !cached(a) => {}
                ModelChoice::Generator => n.g = true,
                ModelChoice::Discriminator => n.d = true,
                ModelChoice::Blend => (n.g, n.d) = (true, true),
            },
            Ask::Explore { .. } => n.g = true,
        }
        // G's row also gives the normaliser every returned item's log-probability needs.
        n.g |= !live.has_normaliser(u);
    }
    let pick = |f: fn(&Need) -> bool| {
        need.iter()
            .filter(|(_, n)| f(n))
            .map(|(&u, _)| u as usize)
            .collect::<Vec<_>>()
    };
    let g = Scores::of(live, false, pick(|n| n.g));
    let d = Scores::of(live, true, pick(|n| n.d));
    for &u in &g.users {
        if let Some(row) = g.row(u as u32) {
            live.normaliser_with(Some(u as u32), || rows::normaliser(row, m.temperature()));
        }
    }
    asks.iter()
        .map(|a| answer_one(live, &m, a, &g, &d, cached(a)))
        .collect()
}

fn answer_one(
    live: &Live,
    m: &query::QueryModel,
    ask: &Ask,
    g: &Scores,
    d: &Scores,
    cached: bool,
) -> Vec<Scored> {
    let known = ask.user().filter(|&u| m.knows_user(u));
    let user_rows = |u: Option<u32>| UserRows {
        user: u,
        g: match u {
            Some(u) => g.row(u),
            None => Some(zero_row(m)),
        },
        d: u.and_then(|u| d.row(u)),
        normaliser: live.normaliser(m, u),
        d_finite: u.is_some_and(|u| live.d_scores_finite(u)),
    };
    let seen = |u: Option<u32>, exclude: bool| match u {
        Some(u) if exclude => live.seen.items(u as usize),
        _ => &[],
    };
    match *ask {
        Ask::Top {
            model,
            k,
            exclude_seen,
            ..
        } => {
            let Some(u) = known else {
                return Vec::new();
            };
            if cached {
                if let Some(top) = live.cached_top(u, model, k) {
                    return top;
                }
                let r = user_rows(Some(u));
                let stats = (model == ModelChoice::Blend)
                    .then(|| live.blend_stats(m, Some(u), r.g.zip(r.d)));
                let list = rows::top(m, &r, model, live.precomputed_k, seen(known, true), stats);
                live.store_list(u, model, &list);
                // Answered the way the cache answers from now on (one dot product per item,
                // not the GEMM row's last bits), so one version never gives two answers.
                if let Some(top) = live.cached_top(u, model, k) {
                    return top;
                }
                return list.into_iter().take(k).collect();
            }
            let exclude = seen(known, exclude_seen);
            if model == ModelChoice::Generator
                && let Some(top) = live.indexed_top(m, u, k, exclude)
            {
                return top;
            }
            let r = user_rows(Some(u));
            let stats =
                (model == ModelChoice::Blend).then(|| live.blend_stats(m, Some(u), r.g.zip(r.d)));
            rows::top(m, &r, model, k, exclude, stats)
        }
        Ask::Explore {
            k,
            temperature,
            seed,
            exclude_seen,
            ..
        } => {
            let r = user_rows(known);
            rows::explore(m, &r, k, temperature, seed, seen(known, exclude_seen))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Interactions;

    fn live(users: usize, items: usize, precompute_k: usize) -> Live {
        let snapshot = crate::online::live::tests::snapshot_of(users, items, 11);
        let pairs: Vec<(u32, u32)> = (0..users as u32)
            .flat_map(|u| [(u, u % items as u32), (u, (3 * u + 1) % items as u32)])
            .collect();
        let seen = Interactions::from_pairs(users, items, &pairs);
        Live::new(snapshot, &seen, precompute_k, 0.4)
    }

    /// The same items in the same order, every number to 1e-6 (GEMM rows round differently).
    fn assert_close(got: &[Scored], want: &[Scored]) {
        assert_eq!(
            got.iter().map(|s| s.item).collect::<Vec<_>>(),
            want.iter().map(|s| s.item).collect::<Vec<_>>()
        );
        for (a, b) in got.iter().zip(want) {
            assert!((a.score - b.score).abs() < 1e-6, "{a:?} vs {b:?}");
            assert!((a.generator - b.generator).abs() < 1e-6, "{a:?} vs {b:?}");
            assert!((a.discriminator - b.discriminator).abs() < 1e-6);
            assert_eq!(a.propensity.is_some(), b.propensity.is_some());
        }
    }

    #[test]
    fn a_batch_answers_like_one_query_at_a_time() {
        let live = live(9, 300, 20);
        let m = live.query_model();
        let mut asks = Vec::new();
        for user in 0..9u32 {
            for model in ModelChoice::ALL {
                for (k, exclude_seen) in [(5, true), (30, false), (20, true)] {
                    asks.push(Ask::Top {
                        user,
                        model,
                        k,
                        exclude_seen,
                    });
                }
            }
            for (t, exclude_seen) in [(0.5, true), (2.0, false)] {
                asks.push(Ask::Explore {
                    user: Some(user),
                    k: 7,
                    temperature: t,
                    seed: 5,
                    exclude_seen,
                });
            }
        }
        asks.push(Ask::Explore {
            user: None,
            k: 4,
            temperature: 1.0,
            seed: 2,
            exclude_seen: true,
        });
        // Twice: first filling the caches, then from them.
        for _ in 0..2 {
            for (a, got) in asks.iter().zip(answer(&live, &asks)) {
                let want = match *a {
                    Ask::Top {
                        user,
                        model,
                        k,
                        exclude_seen,
                    } => {
                        let ex = if exclude_seen {
                            live.seen.items(user as usize)
                        } else {
                            &[]
                        };
                        query::recommend(&m, user, k, model, ex)
                    }
                    Ask::Explore {
                        user,
                        k,
                        temperature,
                        seed,
                        exclude_seen,
                    } => {
                        let u = user.unwrap_or(u32::MAX);
                        let ex = match user {
                            Some(u) if exclude_seen => live.seen.items(u as usize),
                            _ => &[],
                        };
                        query::explore(&m, u, k, temperature, seed, ex)
                    }
                };
                assert_close(&got, &want);
            }
        }
        assert!(live.precomputed_top(3, 20).is_some());
    }

    #[test]
    fn unknown_users_get_nothing_and_rank_reads_only_candidates() {
        let live = live(4, 50, 0);
        let m = live.query_model();
        let top = Ask::Top {
            user: 99,
            model: ModelChoice::Blend,
            k: 3,
            exclude_seen: true,
        };
        assert!(answer(&live, &[top])[0].is_empty());
        for user in [None, Some(2u32)] {
            for model in ModelChoice::ALL {
                let cands = [7u32, 3, 7, 49, 50, 0];
                let r = UserRows {
                    user,
                    g: None,
                    d: None,
                    normaliser: live.normaliser(&m, user),
                    d_finite: false,
                };
                let stats = live.blend_stats(&m, user, None);
                let got = rows::rank(&m, &r, &cands, model, stats);
                assert_close(&got, &query::rank(&m, user, &cands, model));
            }
        }
    }
}
