//! An MF model's item side packed for scoring a few users' full rows at a time, the way a
//! request batch needs them: groups of [`LANES`] items stored dimension-major, so one pass over
//! the catalogue computes `LANES` items' scores per fused multiply-add, with nothing to repack
//! per call (a GEMM library packs the item matrix again on every call, which for a handful of
//! users costs more than the products) and no horizontal sums (a dot product per item needs
//! one per score).
//!
//! Built once per snapshot (a copy of the item factors, O(items · dim)); each score is summed
//! over the dimensions in order with fused multiply-adds, starting from the bias, so it agrees
//! with [`MfModel::score`] to rounding (not bit for bit).

use multiversion::multiversion;

use crate::model::MfModel;

/// Items per group: four AVX2 registers or two AVX-512 registers of f32.
pub const LANES: usize = 32;

/// The item factors and bias of an [`MfModel`], packed: group `g` holds items
/// `g·LANES .. (g+1)·LANES` as `dim` runs of `LANES` floats (coordinate-major), the last group
/// padded with zero items whose scores are never written out.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemPanel {
    dim: usize,
    n_items: usize,
    factors: Vec<f32>,
    bias: Vec<f32>,
}

impl ItemPanel {
    /// Packs `model`'s items (those with both a factor row and a bias).
    pub fn of(model: &MfModel) -> Self {
        let dim = model.dim();
        let n_items = model.n_items().min(model.bias.len());
        let groups = n_items.div_ceil(LANES);
        let mut factors = vec![0.0f32; groups * dim * LANES];
        let mut bias = vec![0.0f32; groups * LANES];
        for (i, row) in model.item.rows().into_iter().take(n_items).enumerate() {
            let (g, lane) = (i / LANES, i % LANES);
            let group = &mut factors[g * dim * LANES..(g + 1) * dim * LANES];
            for (k, &x) in row.iter().enumerate() {
                group[k * LANES + lane] = x;
            }
            bias[i] = model.bias[i];
        }
        Self {
            dim,
            n_items,
            factors,
            bias,
        }
    }

    /// Number of items scored.
    pub fn n_items(&self) -> usize {
        self.n_items
    }

    /// Latent dimension (the width of a user row).
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// `out[r · n + j] = <users[r], q_j> + b_j` for the `users.len() / dim` user rows `users`
    /// (row-major) and every item `j < n` (`n` = [`ItemPanel::n_items`]); `out` must hold
    /// `rows · n` floats (with zero-width factors, every row of `out` gets the biases). One
    /// pass over the panel serves all the rows.
    pub fn score_into(&self, users: &[f32], out: &mut [f32]) {
        let n = self.n_items;
        if n == 0 {
            return;
        }
        let Some(rows) = users.len().checked_div(self.dim) else {
            // Zero-width factors: every score is the item's bias.
            for row in out.chunks_exact_mut(n) {
                row.copy_from_slice(&self.bias[..n]);
            }
            return;
        };
        assert!(
            out.len() >= rows * n,
            "score buffer of {} floats for {rows} rows of {n} items",
            out.len()
        );
        score_panel(
            &users[..rows * self.dim],
            self.dim,
            &self.factors,
            &self.bias,
            n,
            out,
        );
    }

    /// Scores of `users` (row-major, `dim` wide) over every item, one row per user.
    pub fn scores(&self, users: &[f32]) -> Vec<f32> {
        let rows = users.len() / self.dim.max(1);
        let mut out = vec![0.0f32; rows * self.n_items];
        self.score_into(users, &mut out);
        out
    }
}

/// The kernel of [`ItemPanel::score_into`]: for each group of items, tiles of a few users
/// accumulate the group's scores in registers over the dimensions (compiled for AVX-512 and
/// AVX2 too, where `mul_add` is one instruction; see `Cargo.toml`). A tile holds enough
/// independent sums to hide the multiply-adds' latency; every user tile is scored against a
/// group before the next, so the panel is read once per call.
#[multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma"))]
fn score_panel(
    users: &[f32],
    dim: usize,
    factors: &[f32],
    bias: &[f32],
    n: usize,
    out: &mut [f32],
) {
    // A user's sums for a group fill two AVX-512 registers (of 32) or four AVX2 ones (of 16).
    const WIDE: bool = matches!(
        multiversion::target::selected_target!().suggested_simd_width::<f32>(),
        Some(16..)
    );
    const T: usize = if WIDE { 4 } else { 2 };
    let tiles: Vec<Vec<[f32; T]>> = users
        .chunks(T * dim)
        .map(|u| transpose::<T>(u, dim))
        .collect();
    for (g, (q, b)) in factors
        .chunks_exact(dim * LANES)
        .zip(bias.chunks_exact(LANES))
        .enumerate()
    {
        let start = g * LANES;
        let width = LANES.min(n - start);
        let b: [f32; LANES] = b.try_into().unwrap_or([0.0; LANES]);
        for (r, ut) in tiles.iter().enumerate() {
            let acc = tile::<T>(ut, q, b);
            let rows = (users.len() / dim - r * T).min(T);
            for (t, a) in acc.iter().enumerate().take(rows) {
                let o = (r * T + t) * n + start;
                out[o..o + width].copy_from_slice(&a[..width]);
            }
        }
    }
}

/// The user rows `users` (at most `T`, row-major, `dim` wide) as `dim` columns of `T`
/// (missing rows zero).
fn transpose<const T: usize>(users: &[f32], dim: usize) -> Vec<[f32; T]> {
    let mut cols = vec![[0.0f32; T]; dim];
    for (t, row) in users.chunks_exact(dim).enumerate() {
        for (c, &x) in cols.iter_mut().zip(row) {
            c[t] = x;
        }
    }
    cols
}

/// The scores of one tile of users (`cols`: their factors by dimension) for one group of
/// items (`q`: `LANES` factors per dimension, `bias`), summed from the bias in order.
#[inline(always)]
fn tile<const T: usize>(cols: &[[f32; T]], q: &[f32], bias: [f32; LANES]) -> [[f32; LANES]; T] {
    let mut acc = [bias; T];
    for (x, qk) in cols.iter().zip(q.chunks_exact(LANES)) {
        for t in 0..T {
            for l in 0..LANES {
                acc[t][l] = x[t].mul_add(qk[l], acc[t][l]);
            }
        }
    }
    acc
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng;

    #[test]
    fn panel_scores_match_the_model_for_any_shape() {
        for (users, items, dim) in [(1, 1, 1), (3, 17, 5), (9, 40, 32), (4, 16, 8), (6, 33, 0)] {
            let m = MfModel::random(users, items, dim, 0.5, &mut rng::stream(1, 2, 3));
            let mut m = m;
            m.bias
                .iter_mut()
                .enumerate()
                .for_each(|(i, b)| *b = i as f32 * 0.01 - 0.1);
            let panel = ItemPanel::of(&m);
            assert_eq!((panel.n_items(), panel.dim()), (items, dim));
            let rows: Vec<f32> = m.user.iter().copied().collect();
            let got = if dim == 0 {
                let mut out = vec![0.0; users * items];
                panel.score_into(&[], &mut out);
                out
            } else {
                panel.scores(&rows)
            };
            assert_eq!(got.len(), users * items);
            for u in 0..users {
                for i in 0..items {
                    let want = m.score(u, i);
                    let g = got[u * items + i];
                    assert!(
                        (g - want).abs() < 1e-5,
                        "{users}x{items}x{dim} ({u},{i}): {g} vs {want}"
                    );
                }
            }
        }
    }

    #[test]
    fn items_without_a_bias_are_not_scored() {
        let mut m = MfModel::random(2, 20, 4, 0.5, &mut rng::stream(4, 0, 0));
        m.bias = m.bias.slice(ndarray::s![..18]).to_owned();
        let panel = ItemPanel::of(&m);
        assert_eq!(panel.n_items(), 18);
        let rows: Vec<f32> = m.user.iter().copied().collect();
        assert_eq!(panel.scores(&rows).len(), 36);
    }
}
