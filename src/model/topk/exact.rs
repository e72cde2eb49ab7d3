//! Exact scoring and top-k for many users at once: a batch of users against blocks of items,
//! one GEMM per block (ndarray's `matrixmultiply`, which picks AVX/FMA kernels at run time),
//! the bias added, seen items masked, and a running top-k per user kept across the blocks.
//!
//! Results follow [`rank_key`] (higher score first, NaN last, ties to the lower index), so a
//! user's list equals [`super::top_k`] over the same scores. The GEMM sums each dot product in
//! its own order (with FMA), so scores may differ from [`MfModel::scores_into`] in the last bits.
//! Users are batched by position in the input, so results do not depend on the thread count.

use std::cmp::Ordering;

use multiversion::multiversion;
use ndarray::linalg::general_mat_mul;
use ndarray::{Array2, ArrayView2, ArrayViewMut2, Axis, s};
use rayon::prelude::*;

use super::{key_item, rank_key, select_top_by};
use crate::model::MfModel;
use crate::model::policy::lane_dot;

/// Users scored together by one GEMM.
pub const USER_BATCH: usize = 64;
/// Items per block of the running top-k (a block of scores stays in cache while it is scanned).
pub const ITEM_BLOCK: usize = 4096;
/// Largest score buffer (floats) per batch of full rows; bigger catalogues get smaller batches.
const ROW_BUDGET: usize = 1 << 22;

/// `out[r, j] = <users[r], items[j]> + bias[j]`: one GEMM, bias first so it is added in the
/// same pass. Shapes: users `b × d`, items `n × d`, bias `n`, out `b × n`.
pub fn score_block(
    users: ArrayView2<f32>,
    items: ArrayView2<f32>,
    bias: &[f32],
    out: &mut ArrayViewMut2<f32>,
) {
    if users.nrows() <= DIRECT_USERS
        && let (Some(p), Some(q), Some(o)) =
            (users.as_slice(), items.as_slice(), out.as_slice_mut())
    {
        score_direct(p, q, bias, o);
        return;
    }
    for mut row in out.rows_mut() {
        row.iter_mut().zip(bias).for_each(|(o, &b)| *o = b);
    }
    general_mat_mul(1.0, &users, &items.t(), 1.0, out);
}

/// Batches of up to this many users are scored by [`score_direct`] instead of a GEMM:
/// `matrixmultiply` repacks the whole item matrix on every call (Gowalla: 41k × 32 floats read
/// and written), which for the few users of a query batch costs more than the products.
const DIRECT_USERS: usize = 8;

/// `out[r · n + j] = <p_r, q_j> + bias[j]` for the `b = p.len() / d` user rows `p` (row-major,
/// `d` = the item rows' width) and the `n` item rows `q`: one pass over the items, each item
/// row read once for all users, each dot product summed in eight lanes (AVX2 when the CPU has
/// it: see `Cargo.toml`'s `multiversion`).
#[multiversion(targets("x86_64+avx2+fma"))]
fn score_direct(p: &[f32], q: &[f32], bias: &[f32], out: &mut [f32]) {
    let n = bias.len();
    if n == 0 {
        return;
    }
    let d = q.len() / n;
    let users: Vec<&[f32]> = p.chunks_exact(d.max(1)).collect();
    for (j, (qj, &bj)) in q.chunks_exact(d.max(1)).zip(bias).enumerate() {
        for (r, pr) in users.iter().enumerate() {
            out[r * n + j] = lane_dot(pr, qj) + bj;
        }
    }
}

/// Rows `users` of `model`'s user factors, gathered into one matrix.
fn gather(model: &MfModel, users: &[usize]) -> Array2<f32> {
    model.user.select(Axis(0), users)
}

/// Users per batch of full score rows over `n_items` (at most [`USER_BATCH`]).
fn row_batch(n_items: usize) -> usize {
    (ROW_BUDGET / n_items.max(1)).clamp(1, USER_BATCH)
}

/// Full score rows of `users` over `model`'s catalogue (`users.len() × catalogue`), by GEMM.
pub fn score_users(model: &MfModel, users: &[usize]) -> Array2<f32> {
    let n = model.n_items().min(model.bias.len());
    let bias = &model.bias.as_slice().unwrap_or(&[])[..n];
    let mut out = Array2::<f32>::zeros((users.len(), n));
    score_block(
        gather(model, users).view(),
        model.item.slice(s![..n, ..]),
        bias,
        &mut out.view_mut(),
    );
    out
}

/// `f(user, scores)` for every user of `users` with its full score row over the catalogue
/// (`model.n_items()` scores, `<P_u, Q_i> + b_i` by GEMM), in parallel over batches of users;
/// results in the order of `users`. Every user must have a row in `model`.
pub fn map_scored<R, F>(model: &MfModel, users: &[usize], f: F) -> Vec<R>
where
    R: Send,
    F: Fn(usize, &[f32]) -> R + Sync,
{
    let n = model.n_items().min(model.bias.len());
    let items = model.item.slice(s![..n, ..]);
    let bias = &model.bias.as_slice().unwrap_or(&[])[..n];
    let batch = row_batch(n);
    users
        .par_chunks(batch)
        .map_init(
            || Array2::<f32>::zeros((batch, n)),
            |buf, chunk| {
                let u = gather(model, chunk);
                let mut out = buf.slice_mut(s![..chunk.len(), ..]);
                score_block(u.view(), items, bias, &mut out);
                chunk
                    .iter()
                    .zip(out.rows())
                    .map(|(&user, row)| f(user, row.as_slice().unwrap_or(&[])))
                    .collect::<Vec<R>>()
            },
        )
        .flatten_iter()
        .collect()
}

/// The best `k` items of `model` for every user of `users`, best first in [`rank_key`] order,
/// skipping `exclude(user)` (sorted ascending). In parallel over batches of [`USER_BATCH`]
/// users; each batch scores blocks of [`ITEM_BLOCK`] items by GEMM and keeps a running top-k.
pub fn top_k_users<'a, E>(model: &MfModel, users: &[usize], exclude: E, k: usize) -> Vec<Vec<u32>>
where
    E: Fn(usize) -> &'a [u32] + Sync,
{
    if k == 0 {
        return vec![Vec::new(); users.len()];
    }
    let n = model.n_items().min(model.bias.len());
    let bias = model.bias.as_slice().unwrap_or(&[]);
    users
        .par_chunks(USER_BATCH)
        .map_init(
            || Array2::<f32>::zeros((USER_BATCH, ITEM_BLOCK.min(n))),
            |buf, chunk| {
                let u = gather(model, chunk);
                let mut running: Vec<Running> = chunk.iter().map(|_| Running::new(k)).collect();
                for start in (0..n).step_by(ITEM_BLOCK) {
                    let end = (start + ITEM_BLOCK).min(n);
                    let mut out = buf.slice_mut(s![..chunk.len(), ..end - start]);
                    let items = model.item.slice(s![start..end, ..]);
                    score_block(u.view(), items, &bias[start..end], &mut out);
                    for ((r, &user), row) in running.iter_mut().zip(chunk).zip(out.rows()) {
                        let scores = row.as_slice().unwrap_or(&[]);
                        r.offer(scores, start, exclude(user));
                    }
                }
                running.into_iter().map(Running::finish).collect::<Vec<_>>()
            },
        )
        .flatten_iter()
        .collect()
}

/// Which scores can still enter a full running top-k.
#[derive(Debug, Clone, Copy)]
enum Gate {
    /// Fewer than `k` kept: everything.
    All,
    /// The k-th best is NaN: any number.
    NotNan,
    /// Strictly above the k-th best score (later items have higher indices, so ties lose).
    Above(f32),
}

/// A running top-k over items offered in ascending index order: candidate keys are buffered and
/// cut back to the best `k` when the buffer fills, which also raises the gate.
#[derive(Debug)]
pub struct Running {
    k: usize,
    keys: Vec<u64>,
    gate: Gate,
}

impl Running {
    /// An empty top-`k` (`k >= 1`).
    pub fn new(k: usize) -> Self {
        Self {
            k,
            keys: Vec::with_capacity(2 * k + 32),
            gate: Gate::All,
        }
    }

    /// Offers the scores of items `start..start + scores.len()` (all above every item offered
    /// before), skipping those in `excluded` (sorted ascending; other items ignored).
    pub fn offer(&mut self, scores: &[f32], start: usize, excluded: &[u32]) {
        let end = start + scores.len();
        let lo = excluded.partition_point(|&e| (e as usize) < start);
        let hi = excluded.partition_point(|&e| (e as usize) < end);
        let mut pos = 0;
        for &e in &excluded[lo..hi] {
            let e = e as usize - start;
            if e >= pos {
                self.scan(&scores[pos..e], start + pos);
                pos = e + 1;
            }
        }
        self.scan(&scores[pos..], start + pos);
    }

    fn scan(&mut self, scores: &[f32], base: usize) {
        let mut j = 0;
        while j < scores.len() {
            match self.gate {
                Gate::Above(t) => {
                    // The hot loop: most scores fall below the k-th best (NaN never passes).
                    while j < scores.len() && scores[j].partial_cmp(&t) != Some(Ordering::Greater) {
                        j += 1;
                    }
                    if j == scores.len() {
                        break;
                    }
                }
                Gate::NotNan if scores[j].is_nan() => {
                    j += 1;
                    continue;
                }
                _ => {}
            }
            self.keys.push(rank_key(scores[j], (base + j) as u32));
            if self.keys.len() >= 2 * self.k + 32 {
                self.shrink();
            }
            j += 1;
        }
    }

    fn shrink(&mut self) {
        select_top_by(&mut self.keys, self.k, u64::cmp);
        if self.keys.len() == self.k {
            self.gate = match key_score(self.keys[self.k - 1]) {
                Some(t) => Gate::Above(t),
                None => Gate::NotNan,
            };
        }
    }

    /// The best `k` items offered, best first.
    pub fn finish(mut self) -> Vec<u32> {
        select_top_by(&mut self.keys, self.k, u64::cmp);
        self.keys.into_iter().map(key_item).collect()
    }
}

/// The score of a [`rank_key`] (`None` for NaN); `-0.0` comes back as `0.0`.
fn key_score(key: u64) -> Option<f32> {
    let desc = (key >> 32) as u32;
    if desc == u32::MAX {
        return None;
    }
    let asc = !desc;
    let bits = if asc & 0x8000_0000 != 0 {
        asc & 0x7fff_ffff
    } else {
        !asc
    };
    Some(f32::from_bits(bits))
}

#[cfg(test)]
mod tests {
    use super::super::top_k;
    use super::*;
    use crate::data::Interactions;
    use crate::rng;

    /// Factors and biases on a grid of small dyadic values, so every score is exact in f32
    /// whatever the summation order: GEMM and the per-item loop agree bit for bit, with ties.
    fn grid_model(users: usize, items: usize, dim: usize, seed: u64) -> MfModel {
        let mut r = rng::stream(seed, 0, 0);
        let mut g = || (rng::below(&mut r, 9) as f32 - 4.0) * 0.25;
        let mut m = MfModel {
            user: Array2::from_shape_fn((users, dim), |_| g()),
            item: Array2::from_shape_fn((items, dim), |_| g()),
            bias: ndarray::Array1::from_shape_fn(items, |_| g()),
        };
        // NaN and infinite scores must land in the same places as in `top_k`.
        m.bias[3] = f32::NAN;
        m.bias[items / 2] = f32::NAN;
        m.bias[items - 1] = f32::NEG_INFINITY;
        m.bias[7] = f32::INFINITY;
        m
    }

    fn random_exclusions(users: usize, items: usize, seed: u64) -> Interactions {
        let mut r = rng::stream(seed, 1, 0);
        let mut pairs = Vec::new();
        for u in 0..users {
            for _ in 0..rng::below(&mut r, items / 3) {
                pairs.push((u as u32, rng::below(&mut r, items) as u32));
            }
        }
        Interactions::from_pairs(users, items, &pairs)
    }

    #[test]
    fn blocked_top_k_equals_per_item_top_k() {
        // 9,000 items: two full blocks and a partial one; 70 users: a full batch and a partial.
        let (nu, ni) = (70, 9_000);
        let m = grid_model(nu, ni, 6, 3);
        let ex = random_exclusions(nu, ni, 4);
        let users: Vec<usize> = (0..nu).collect();
        for k in [1, 10, 100] {
            let got = top_k_users(&m, &users, |u| ex.items(u), k);
            for (u, list) in got.iter().enumerate() {
                assert_eq!(list, &top_k(&m.scores(u), ex.items(u), k), "user {u} k {k}");
            }
        }
        // More than the candidates: every candidate, NaN last.
        let small = grid_model(3, 40, 4, 5);
        let ex = random_exclusions(3, 40, 6);
        let got = top_k_users(&small, &[2, 0], |u| ex.items(u), 100);
        assert_eq!(got[0], top_k(&small.scores(2), ex.items(2), 100));
        assert_eq!(got[1], top_k(&small.scores(0), ex.items(0), 100));
        assert!(top_k_users(&small, &[1], |_| &[], 0)[0].is_empty());
    }

    #[test]
    fn full_rows_equal_scores_into_on_exact_data() {
        let m = grid_model(70, 5_000, 5, 8);
        let users: Vec<usize> = (0..70).rev().collect();
        let rows = map_scored(&m, &users, |u, row| (u, row.to_vec()));
        for (u, row) in rows {
            let want = m.scores(u);
            assert!(
                row.iter()
                    .zip(&want)
                    .all(|(a, b)| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()))
            );
        }
    }

    #[test]
    fn a_few_users_are_scored_directly_like_the_gemm_scores_many() {
        let mut r = rng::stream(4, 0, 0);
        for dim in [5, 32, 37] {
            let m = MfModel::random(40, 3_000, dim, 1.0, &mut r);
            let many: Vec<usize> = (0..20).collect();
            let gemm = score_users(&m, &many);
            for few in [vec![3], vec![0, 7, 19]] {
                let direct = score_users(&m, &few);
                for (row, &u) in direct.rows().into_iter().zip(&few) {
                    for (j, (&a, &b)) in row.iter().zip(gemm.row(u)).enumerate() {
                        assert!(
                            (a - b).abs() <= 1e-5 * (1.0 + b.abs()),
                            "{dim} {u} {j}: {a} {b}"
                        );
                        let one = m.score(u, j);
                        assert!((a - one).abs() <= 1e-5 * (1.0 + one.abs()));
                    }
                }
            }
        }
    }

    #[test]
    fn same_lists_whatever_the_thread_count() {
        let mut r = rng::stream(9, 0, 0);
        let m = MfModel::random(150, 6_000, 16, 1.0, &mut r);
        let ex = random_exclusions(150, 6_000, 10);
        let users: Vec<usize> = (0..150).collect();
        let run = |threads: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| top_k_users(&m, &users, |u| ex.items(u), 20))
        };
        let one = run(1);
        assert_eq!(one, run(3));
        // Real-valued data: the GEMM's rounding may swap near-ties only; almost all lists agree.
        let same = (0..150)
            .filter(|&u| one[u] == top_k(&m.scores(u), ex.items(u), 20))
            .count();
        assert!(same >= 145, "{same} of 150 lists agree");
    }

    #[test]
    fn key_scores_round_trip() {
        for x in [
            0.0f32,
            -0.0,
            1.5,
            -2.25,
            f32::INFINITY,
            f32::NEG_INFINITY,
            1e-40,
        ] {
            assert_eq!(key_score(rank_key(x, 3)), Some(x + 0.0));
        }
        assert_eq!(key_score(rank_key(f32::NAN, 3)), None);
    }
}
