//! Weighted implicit alternating least squares (Hu, Koren & Volinsky 2008).
//!
//! Every (user, item) cell has preference 1 if positive, else 0, with confidence 1 + alpha for
//! positives and 1 otherwise. Each half-sweep solves one small ridge system per row, in parallel
//! (rows are independent, so the result does not depend on the thread count). Biases stay 0.
//!
//! Two solvers: the exact one (Cholesky, O(d³ + n_u·d²) per row) and conjugate gradient
//! (Takács, Pilászy & Tikk 2011): a few CG steps from the row's previous value, never forming the
//! row's matrix, O(steps · (d² + n_u·d)) per row, the choice for large catalogues and dims.

use ndarray::Array2;
use rayon::prelude::*;

use crate::data::Interactions;
use crate::model::MfModel;
use crate::train::settings::{AlsConfig, AlsSolver};

/// Runs `cfg.iterations` sweeps (users, then items) on `model`, starting from its factors.
pub fn train(model: &mut MfModel, positives: &Interactions, cfg: &AlsConfig) {
    let by_item = positives.transpose();
    model.bias.fill(0.0);
    for _ in 0..cfg.iterations {
        model.user = solve_side(&model.item, positives, &model.user, cfg);
        model.item = solve_side(&model.user, &by_item, &model.item, cfg);
    }
}

/// Runs `sweeps` sweeps (users, then items) of iALS on `model` from its factors, with extra
/// zero-preference cells: each `(user, item, weight)` of `negatives` raises the cell's
/// confidence from 1 to 1 + weight (a cell listed twice gains both weights). A positive listed
/// there gains the weight on top of 1 + alpha. Exact (Cholesky) solves whatever `cfg.solver`
/// says; biases are kept as they are (and ignored, as by [`train`]).
pub fn train_with_negatives(
    model: &mut MfModel,
    positives: &Interactions,
    negatives: &[(u32, u32, f32)],
    cfg: &AlsConfig,
    sweeps: usize,
) {
    let by_item = positives.transpose();
    let mut user_neg: Vec<Vec<(u32, f64)>> = vec![Vec::new(); model.n_users()];
    let mut item_neg: Vec<Vec<(u32, f64)>> = vec![Vec::new(); model.n_items()];
    for &(u, i, w) in negatives {
        if w > 0.0 && (u as usize) < model.n_users() && (i as usize) < model.n_items() {
            user_neg[u as usize].push((i, f64::from(w)));
            item_neg[i as usize].push((u, f64::from(w)));
        }
    }
    for _ in 0..sweeps {
        model.user = weighted_side(&model.item, positives, &user_neg, cfg);
        model.item = weighted_side(&model.user, &by_item, &item_neg, cfg);
    }
}

/// The exact half-sweep: every row solved against the fixed factors `other`, with each row's
/// extra zero-preference cells `extra[row]` (none for rows past `extra`'s end).
fn weighted_side(
    other: &Array2<f32>,
    rows: &Interactions,
    extra: &[Vec<(u32, f64)>],
    cfg: &AlsConfig,
) -> Array2<f32> {
    let d = other.ncols();
    let gram = gram(other);
    let (alpha, l2) = (f64::from(cfg.alpha), f64::from(cfg.l2));
    let solved: Vec<Vec<f32>> = (0..rows.n_users())
        .into_par_iter()
        .map_init(
            || (vec![0.0f64; d * d], vec![0.0f64; d]),
            |(a, b), r| {
                a.copy_from_slice(&gram);
                b.fill(0.0);
                for &j in rows.items(r) {
                    add_positive(a, b, other.row(j as usize), alpha, 1.0 + alpha);
                }
                for &(j, w) in extra.get(r).map_or(&[][..], Vec::as_slice) {
                    add_positive(a, b, other.row(j as usize), w, 0.0);
                }
                solve_ridge(a, b, l2).iter().map(|&x| x as f32).collect()
            },
        )
        .collect();
    let mut out = Array2::zeros((rows.n_users(), d));
    for (r, x) in solved.iter().enumerate() {
        out.row_mut(r).iter_mut().zip(x).for_each(|(o, &v)| *o = v);
    }
    out
}

/// Folds users into a trained model: for each user in `users` with positives, solves the iALS
/// user equation against the model's fixed item factors *and biases* (the target of item i is
/// its preference minus b_i), so a user who arrives after training is personalised at once and
/// the learnt popularity (the bias) is not counted twice. Other users are unchanged.
pub fn fold_in(
    model: &mut MfModel,
    positives: &Interactions,
    users: impl IntoIterator<Item = usize>,
    cfg: &AlsConfig,
) {
    let d = model.dim();
    let users: Vec<usize> = users
        .into_iter()
        .filter(|&u| u < model.n_users() && !positives.items(u).is_empty())
        .collect();
    if users.is_empty() {
        return;
    }
    let (alpha, l2) = (f64::from(cfg.alpha), f64::from(cfg.l2));
    let gram = gram(&model.item);
    // Σ over all items of (0 − b_i)·Q_i: every item is a weight-1 negative to start with.
    let mut base = vec![0.0f64; d];
    for (q, &b) in model.item.rows().into_iter().zip(model.bias.iter()) {
        for (acc, &x) in base.iter_mut().zip(q.iter()) {
            *acc -= f64::from(b) * f64::from(x);
        }
    }
    for u in users {
        let mut a = gram.clone();
        let mut rhs = base.clone();
        for &i in positives.items(u) {
            let (y, b) = (
                model.item.row(i as usize),
                f64::from(model.bias[i as usize]),
            );
            // A positive adds confidence alpha and turns its target from −b into 1 − b.
            add_positive(&mut a, &mut rhs, y, alpha, (1.0 + alpha) * (1.0 - b) + b);
        }
        let x = solve_ridge(&mut a, &rhs, l2);
        model
            .user
            .row_mut(u)
            .iter_mut()
            .zip(&x)
            .for_each(|(o, &v)| *o = v as f32);
    }
}

/// Solves every row of one side given the fixed factors `other` of the other side (`current`
/// is the side's present value, CG's starting point).
fn solve_side(
    other: &Array2<f32>,
    rows: &Interactions,
    current: &Array2<f32>,
    cfg: &AlsConfig,
) -> Array2<f32> {
    if cfg.solver == AlsSolver::Cg {
        return cg_side(other, rows, current, cfg);
    }
    weighted_side(other, rows, &[], cfg)
}

/// The conjugate-gradient half-sweep: `cfg.cg_steps` steps per row from its current value.
fn cg_side(
    other: &Array2<f32>,
    rows: &Interactions,
    current: &Array2<f32>,
    cfg: &AlsConfig,
) -> Array2<f32> {
    let d = other.ncols();
    let gram = gram(other);
    let (alpha, l2) = (f64::from(cfg.alpha), f64::from(cfg.l2));
    let mut out = Array2::<f32>::zeros((rows.n_users(), d));
    out.as_slice_mut()
        .unwrap_or(&mut [])
        .par_chunks_mut(d.max(1))
        .enumerate()
        .for_each(|(r, row)| {
            let start: Vec<f64> = (0..d)
                .map(|c| current.get((r, c)).map_or(0.0, |&x| f64::from(x)))
                .collect();
            let system = RowSystem {
                gram: &gram,
                other,
                positives: rows.items(r),
                alpha,
                l2,
            };
            let x = system.conjugate_gradient(start, cfg.cg_steps);
            row.iter_mut().zip(&x).for_each(|(o, &v)| *o = v as f32);
        });
    out
}

/// One row's normal equations A x = b, A = YᵀY + α·Σ_pos y yᵀ + l2·I and b = (1 + α)·Σ_pos y,
/// applied implicitly (A is never formed).
struct RowSystem<'a> {
    gram: &'a [f64],
    other: &'a Array2<f32>,
    positives: &'a [u32],
    alpha: f64,
    l2: f64,
}

impl RowSystem<'_> {
    /// A·v into `out`.
    fn apply(&self, v: &[f64], out: &mut [f64]) {
        let d = v.len();
        for (p, o) in out.iter_mut().enumerate() {
            let g = &self.gram[p * d..(p + 1) * d];
            *o = self.l2 * v[p] + g.iter().zip(v).map(|(a, b)| a * b).sum::<f64>();
        }
        for &j in self.positives {
            let y = self.other.row(j as usize);
            let yv: f64 = y.iter().zip(v).map(|(&a, b)| f64::from(a) * b).sum();
            for (o, &a) in out.iter_mut().zip(y.iter()) {
                *o += self.alpha * yv * f64::from(a);
            }
        }
    }

    /// `steps` conjugate-gradient steps on A x = b from `x` (stops early once the residual
    /// vanishes). A is positive definite (l2 > 0), so every step lowers the error in A-norm.
    fn conjugate_gradient(&self, mut x: Vec<f64>, steps: usize) -> Vec<f64> {
        let d = x.len();
        let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(p, q)| p * q).sum::<f64>();
        let mut b = vec![0.0; d];
        for &j in self.positives {
            for (o, &a) in b.iter_mut().zip(self.other.row(j as usize).iter()) {
                *o += (1.0 + self.alpha) * f64::from(a);
            }
        }
        let mut ap = vec![0.0; d];
        self.apply(&x, &mut ap);
        let mut r: Vec<f64> = b.iter().zip(&ap).map(|(b, a)| b - a).collect();
        let mut p = r.clone();
        let mut rs = dot(&r, &r);
        for _ in 0..steps {
            if rs.is_nan() || rs <= 1e-20 {
                break;
            }
            self.apply(&p, &mut ap);
            let curvature = dot(&p, &ap);
            if curvature.is_nan() || curvature <= 0.0 {
                break;
            }
            let step = rs / curvature;
            for c in 0..d {
                x[c] += step * p[c];
                r[c] -= step * ap[c];
            }
            let next = dot(&r, &r);
            for c in 0..d {
                p[c] = r[c] + next / rs * p[c];
            }
            rs = next;
        }
        x
    }
}

/// Adds one positive row `y` to a user's normal equations: confidence `alpha` on the lower
/// triangle of `a`, and `target_weight · y` to the right-hand side.
fn add_positive(
    a: &mut [f64],
    rhs: &mut [f64],
    y: ndarray::ArrayView1<f32>,
    alpha: f64,
    target_weight: f64,
) {
    let d = rhs.len();
    for p in 0..d {
        let yp = f64::from(y[p]);
        rhs[p] += target_weight * yp;
        for q in 0..=p {
            a[p * d + q] += alpha * yp * f64::from(y[q]);
        }
    }
}

/// Adds the ridge `l2·I`, mirrors the lower triangle and solves `a x = rhs`.
fn solve_ridge(a: &mut [f64], rhs: &[f64], l2: f64) -> Vec<f64> {
    let d = rhs.len();
    for p in 0..d {
        a[p * d + p] += l2;
        for q in 0..p {
            a[q * d + p] = a[p * d + q];
        }
    }
    cholesky_solve(a, rhs, d)
}

/// YᵀY in f64 (row-major d × d).
fn gram(y: &Array2<f32>) -> Vec<f64> {
    let d = y.ncols();
    let mut g = vec![0.0; d * d];
    for row in y.rows() {
        for p in 0..d {
            let yp = f64::from(row[p]);
            for q in 0..=p {
                g[p * d + q] += yp * f64::from(row[q]);
            }
        }
    }
    for p in 0..d {
        for q in 0..p {
            g[q * d + p] = g[p * d + q];
        }
    }
    g
}

/// Solves `A x = b` for symmetric positive-definite `A` (overwritten by its Cholesky factor);
/// returns x. A non-positive pivot (impossible with l2 > 0, barring NaN input) yields zeros.
fn cholesky_solve(a: &mut [f64], b: &[f64], d: usize) -> Vec<f64> {
    for j in 0..d {
        let mut s = a[j * d + j];
        for k in 0..j {
            s -= a[j * d + k] * a[j * d + k];
        }
        if s.is_nan() || s <= 0.0 {
            return vec![0.0; d];
        }
        let l = s.sqrt();
        a[j * d + j] = l;
        for i in j + 1..d {
            let mut s = a[i * d + j];
            for k in 0..j {
                s -= a[i * d + k] * a[j * d + k];
            }
            a[i * d + j] = s / l;
        }
    }
    let mut y = b.to_vec();
    for i in 0..d {
        let s: f64 = (0..i).map(|k| a[i * d + k] * y[k]).sum();
        y[i] = (y[i] - s) / a[i * d + i];
    }
    for i in (0..d).rev() {
        for k in i + 1..d {
            y[i] -= a[k * d + i] * y[k];
        }
        y[i] /= a[i * d + i];
    }
    y
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng;

    /// 30 users: even ones like items 0..8, odd ones items 8..16 (5 each).
    fn two_tastes() -> Vec<(u32, u32)> {
        let mut pairs = Vec::new();
        for u in 0..30u32 {
            let base = if u % 2 == 0 { 0 } else { 8 };
            for i in 0..5u32 {
                pairs.push((u, base + (u + i) % 8));
            }
        }
        pairs
    }

    #[test]
    fn fold_in_places_a_new_user_with_its_taste() {
        let mut pairs = two_tastes();
        let pos = Interactions::from_pairs(30, 16, &pairs);
        let mut r = rng::stream(2, 0, 0);
        let mut m = MfModel::random(30, 16, 4, 0.1, &mut r);
        let cfg = AlsConfig {
            iterations: 10,
            alpha: 5.0,
            l2: 0.1,
            ..AlsConfig::default()
        };
        train(&mut m, &pos, &cfg);
        // A new user 30 who likes three odd-half items.
        m.grow(31, 16, 0.0, &mut r);
        pairs.extend([(30, 9), (30, 10), (30, 11)]);
        let pos = Interactions::from_pairs(31, 16, &pairs);
        let before = m.clone();
        fold_in(&mut m, &pos, 30..31, &cfg);
        assert_eq!(m.user.row(3), before.user.row(3));
        let s = m.scores(30);
        let mean = |r: std::ops::Range<usize>| r.map(|i| s[i]).sum::<f32>() / 8.0;
        assert!(mean(8..16) > mean(0..8) + 0.2, "{s:?}");
    }

    /// With no extra cells the weighted sweeps are iALS's; a heavily weighted negative cell
    /// drives its score down (towards its preference 0) and leaves iALS's elsewhere near.
    #[test]
    fn weighted_negatives_push_their_cells_down() {
        let pos = Interactions::from_pairs(30, 16, &two_tastes());
        let cfg = AlsConfig {
            iterations: 10,
            alpha: 5.0,
            l2: 0.1,
            ..AlsConfig::default()
        };
        let mut r = rng::stream(3, 0, 0);
        let start = MfModel::random(30, 16, 3, 0.1, &mut r);
        let (mut plain, mut same) = (start.clone(), start.clone());
        train(&mut plain, &pos, &cfg);
        train_with_negatives(&mut same, &pos, &[], &cfg, 10);
        for (a, b) in plain.user.iter().zip(same.user.iter()) {
            assert!((a - b).abs() < 1e-5);
        }
        let (u, j) = (0usize, 5u32); // user 0's taste, not one of its positives
        assert!(!pos.contains(u, j));
        let mut pushed = plain.clone();
        train_with_negatives(&mut pushed, &pos, &[(u as u32, j, 200.0)], &cfg, 5);
        let (before, after) = (plain.score(u, j as usize), pushed.score(u, j as usize));
        assert!(after.abs() < 0.5 * before.abs(), "{before} -> {after}");
    }

    #[test]
    fn cholesky_solves_a_known_system() {
        // A = [[4, 2], [2, 3]], x = [1, -1] → b = [2, -1].
        let mut a = vec![4.0, 2.0, 2.0, 3.0];
        let x = cholesky_solve(&mut a, &[2.0, -1.0], 2);
        assert!((x[0] - 1.0).abs() < 1e-12 && (x[1] + 1.0).abs() < 1e-12);
    }

    /// CG from zero with d steps solves the row system exactly (in exact arithmetic); the
    /// CG sweep with a few steps lands close to the Cholesky sweep.
    #[test]
    fn conjugate_gradient_matches_cholesky() {
        let pos = Interactions::from_pairs(30, 16, &two_tastes());
        let mut r = rng::stream(5, 0, 0);
        let m = MfModel::random(30, 16, 6, 0.5, &mut r);
        let (alpha, l2) = (4.0, 0.3);
        let g = gram(&m.item);
        let system = RowSystem {
            gram: &g,
            other: &m.item,
            positives: pos.items(3),
            alpha,
            l2,
        };
        let cg = system.conjugate_gradient(vec![0.0; 6], 6);
        let mut a = g.clone();
        let mut b = vec![0.0; 6];
        for &j in pos.items(3) {
            add_positive(&mut a, &mut b, m.item.row(j as usize), alpha, 1.0 + alpha);
        }
        let exact = solve_ridge(&mut a, &b, l2);
        for (x, y) in cg.iter().zip(&exact) {
            assert!((x - y).abs() < 1e-8, "{cg:?} vs {exact:?}");
        }
        let mut cfg = AlsConfig {
            iterations: 8,
            alpha: 4.0,
            l2: 0.3,
            ..AlsConfig::default()
        };
        let mut chol = m.clone();
        train(&mut chol, &pos, &cfg);
        cfg.solver = AlsSolver::Cg;
        // As many steps as dimensions: every sweep solves its rows, as Cholesky does.
        cfg.cg_steps = 6;
        let mut full = m.clone();
        train(&mut full, &pos, &cfg);
        let gap = |a: &MfModel| {
            let (sc, sa) = (chol.scores(0), a.scores(0));
            sc.iter()
                .zip(&sa)
                .map(|(x, y)| (x - y).abs())
                .fold(0.0f32, f32::max)
        };
        assert!(gap(&full) < 1e-3, "max |Δscore| {}", gap(&full));
        // Three steps from the previous sweep's rows: not exact, but the tastes are learnt.
        cfg.cg_steps = 3;
        let mut fast = m.clone();
        train(&mut fast, &pos, &cfg);
        for u in [0usize, 1] {
            let s = fast.scores(u);
            let own = if u % 2 == 0 { 0..8 } else { 8..16 };
            let other = if u % 2 == 0 { 8..16 } else { 0..8 };
            let mean = |r: std::ops::Range<usize>| r.map(|i| s[i]).sum::<f32>() / 8.0;
            assert!(mean(own) > mean(other) + 0.3, "user {u}: {s:?}");
        }
    }

    #[test]
    fn als_separates_two_tastes() {
        let pairs = two_tastes();
        let pos = Interactions::from_pairs(30, 16, &pairs);
        let mut r = rng::stream(2, 0, 0);
        let mut m = MfModel::random(30, 16, 4, 0.1, &mut r);
        train(
            &mut m,
            &pos,
            &AlsConfig {
                iterations: 10,
                alpha: 5.0,
                l2: 0.1,
                ..AlsConfig::default()
            },
        );
        assert!(m.is_finite());
        // Odd users like items 8..16: on average those outscore the other half.
        for u in [0usize, 1] {
            let s = m.scores(u);
            let own = if u % 2 == 0 { 0..8 } else { 8..16 };
            let mean = |r: std::ops::Range<usize>| r.map(|i| s[i]).sum::<f32>() / 8.0;
            let other = if u % 2 == 0 { 8..16 } else { 0..8 };
            assert!(mean(own) > mean(other) + 0.3, "user {u}: {s:?}");
        }
    }
}
