//! Matrix factorisation with an item bias: s(u, i) = <P_u, Q_i> + b_i.

use ndarray::{Array1, Array2};

use crate::rng::{self, Rng};

/// A matrix-factorisation scorer: user factors `P` (users × dim), item factors `Q` (items × dim)
/// and an item bias `b`.
#[derive(Debug, Clone, PartialEq)]
pub struct MfModel {
    /// User factors, one row per user.
    pub user: Array2<f32>,
    /// Item factors, one row per item.
    pub item: Array2<f32>,
    /// Item bias.
    pub bias: Array1<f32>,
}

impl MfModel {
    /// Factors drawn uniformly from `(-scale, scale)`, bias 0 (the reference code's init).
    pub fn random(n_users: usize, n_items: usize, dim: usize, scale: f32, rng: &mut Rng) -> Self {
        let mut draw = |_| ((rng::unit(rng) * 2.0 - 1.0) as f32) * scale;
        Self {
            user: Array2::from_shape_fn((n_users, dim), |_| draw(())),
            item: Array2::from_shape_fn((n_items, dim), |_| draw(())),
            bias: Array1::zeros(n_items),
        }
    }

    /// Number of users.
    pub fn n_users(&self) -> usize {
        self.user.nrows()
    }

    /// Number of items.
    pub fn n_items(&self) -> usize {
        self.item.nrows()
    }

    /// Latent dimension.
    pub fn dim(&self) -> usize {
        self.user.ncols()
    }

    /// Score of one pair.
    pub fn score(&self, user: usize, item: usize) -> f32 {
        dot(self.user_row(user), self.item_row(item)) + self.bias[item]
    }

    /// Scores of every item for `user`, written into `out` (len = items).
    pub fn scores_into(&self, user: usize, out: &mut [f32]) {
        let p = self.user_row(user);
        let q = self.item.as_slice().unwrap_or(&[]);
        let b = self.bias.as_slice().unwrap_or(&[]);
        // Common dimensions get a kernel with the length known at compile time (fully unrolled).
        match p.len() {
            4 => scores_fixed::<4>(p, q, b, out),
            5 => scores_fixed::<5>(p, q, b, out),
            8 => scores_fixed::<8>(p, q, b, out),
            16 => scores_fixed::<16>(p, q, b, out),
            32 => scores_fixed::<32>(p, q, b, out),
            64 => scores_fixed::<64>(p, q, b, out),
            d => {
                for ((o, qi), &bi) in out.iter_mut().zip(q.chunks_exact(d.max(1))).zip(b) {
                    *o = dot(p, qi) + bi;
                }
            }
        }
    }

    /// `out = Σ_j weights[j] · Q_j`: a weighted sum of item factor rows (len(out) = dim).
    pub fn weighted_item_sum(&self, weights: &[f32], out: &mut [f32]) {
        let q = self.item.as_slice().unwrap_or(&[]);
        match out.len() {
            5 => weighted_sum_fixed::<5>(q, weights, out),
            8 => weighted_sum_fixed::<8>(q, weights, out),
            16 => weighted_sum_fixed::<16>(q, weights, out),
            32 => weighted_sum_fixed::<32>(q, weights, out),
            64 => weighted_sum_fixed::<64>(q, weights, out),
            d => {
                out.fill(0.0);
                for (qi, &w) in q.chunks_exact(d.max(1)).zip(weights) {
                    out.iter_mut().zip(qi).for_each(|(o, &x)| *o += w * x);
                }
            }
        }
    }

    /// Scores of every item for `user`.
    pub fn scores(&self, user: usize) -> Vec<f32> {
        let mut out = vec![0.0; self.n_items()];
        self.scores_into(user, &mut out);
        out
    }

    /// Row `u` of the user factors as a slice.
    pub fn user_row(&self, u: usize) -> &[f32] {
        let d = self.dim();
        &self.user.as_slice().unwrap_or(&[])[u * d..(u + 1) * d]
    }

    /// Row `i` of the item factors as a slice.
    pub fn item_row(&self, i: usize) -> &[f32] {
        let d = self.dim();
        &self.item.as_slice().unwrap_or(&[])[i * d..(i + 1) * d]
    }

    /// True when every parameter is finite.
    pub fn is_finite(&self) -> bool {
        self.user
            .iter()
            .chain(self.item.iter())
            .chain(self.bias.iter())
            .all(|x| x.is_finite())
    }

    /// Adds rows for new users and items (random small factors, zero bias) so the model covers a
    /// grown catalogue; existing rows are unchanged.
    pub fn grow(&mut self, n_users: usize, n_items: usize, scale: f32, rng: &mut Rng) {
        let d = self.dim();
        let mut draw = || ((rng::unit(rng) * 2.0 - 1.0) as f32) * scale;
        if n_users > self.n_users() {
            let mut u = Array2::zeros((n_users, d));
            u.slice_mut(ndarray::s![..self.n_users(), ..])
                .assign(&self.user);
            for r in self.n_users()..n_users {
                for c in 0..d {
                    u[(r, c)] = draw();
                }
            }
            self.user = u;
        }
        if n_items > self.n_items() {
            let old = self.n_items();
            let mut q = Array2::zeros((n_items, d));
            q.slice_mut(ndarray::s![..old, ..]).assign(&self.item);
            for r in old..n_items {
                for c in 0..d {
                    q[(r, c)] = draw();
                }
            }
            let mut b = Array1::zeros(n_items);
            b.slice_mut(ndarray::s![..old]).assign(&self.bias);
            self.item = q;
            self.bias = b;
        }
    }
}

fn scores_fixed<const D: usize>(p: &[f32], q: &[f32], b: &[f32], out: &mut [f32]) {
    let Ok(p) = <&[f32; D]>::try_from(p) else {
        return;
    };
    for ((o, qi), &bi) in out.iter_mut().zip(q.chunks_exact(D)).zip(b) {
        let mut acc = 0.0;
        for k in 0..D {
            acc += p[k] * qi[k];
        }
        *o = acc + bi;
    }
}

fn weighted_sum_fixed<const D: usize>(q: &[f32], weights: &[f32], out: &mut [f32]) {
    // Two accumulators halve the latency of the dependent additions.
    let (mut a, mut b) = ([0.0f32; D], [0.0f32; D]);
    let mut rows = q.chunks_exact(2 * D).zip(weights.chunks_exact(2));
    for (qi, w) in &mut rows {
        for k in 0..D {
            a[k] += w[0] * qi[k];
            b[k] += w[1] * qi[D + k];
        }
    }
    let n = weights.len().min(q.len() / D);
    if n % 2 == 1 {
        let (w, qi) = (weights[n - 1], &q[(n - 1) * D..n * D]);
        for k in 0..D {
            a[k] += w * qi[k];
        }
    }
    for k in 0..D {
        out[k] = a[k] + b[k];
    }
}

/// Dot product of two equal-length slices (written so LLVM vectorises it).
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_match_definition() {
        let mut r = rng::stream(1, 0, 0);
        let mut m = MfModel::random(3, 4, 2, 0.5, &mut r);
        m.bias[2] = 1.5;
        let s = m.scores(1);
        for (i, &si) in s.iter().enumerate() {
            let want =
                m.user[(1, 0)] * m.item[(i, 0)] + m.user[(1, 1)] * m.item[(i, 1)] + m.bias[i];
            assert!((si - want).abs() < 1e-6);
            assert!((m.score(1, i) - want).abs() < 1e-6);
        }
        assert!(m.is_finite());
    }

    #[test]
    fn weighted_item_sum_matches_definition() {
        for d in [3usize, 5, 8] {
            let mut r = rng::stream(2, 0, d as u64);
            let m = MfModel::random(1, 7, d, 1.0, &mut r);
            let w: Vec<f32> = (0..7).map(|j| j as f32 * 0.5 - 1.0).collect();
            let mut out = vec![0.0; d];
            m.weighted_item_sum(&w, &mut out);
            for (c, &o) in out.iter().enumerate() {
                let want: f32 = (0..7).map(|j| w[j] * m.item[(j, c)]).sum();
                assert!((o - want).abs() < 1e-5);
            }
        }
    }

    #[test]
    fn grow_keeps_existing_rows() {
        let mut r = rng::stream(1, 0, 0);
        let mut m = MfModel::random(2, 2, 3, 0.1, &mut r);
        let before = m.clone();
        m.grow(4, 5, 0.1, &mut r);
        assert_eq!(m.n_users(), 4);
        assert_eq!(m.n_items(), 5);
        assert_eq!(m.user.row(1), before.user.row(1));
        assert_eq!(m.bias[4], 0.0);
    }
}
