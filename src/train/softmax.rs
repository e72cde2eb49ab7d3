//! Sampled-softmax pretraining of G: maximum likelihood of every observed (user, item) under
//! G's own softmax policy p(i | u) ∝ exp(s(u, i)).
//!
//! The full softmax costs O(items) per positive, so each mini-batch of B positives is scored
//! against shared candidates only: the batch's own positives (in-batch negatives, distributed
//! like item popularity) and N items drawn uniformly. Every candidate's logit is corrected by
//! −log E[count of the item among the candidates] (the mixed-negative-sampling correction), so
//! the sampled softmax estimates the full one instead of the popularity-skewed one. Candidates
//! that are the row's own positive in another column (accidental hits) or another positive of
//! the same user in the batch are masked.
//!
//! Scores are cosine similarities over a temperature τ, the family that reaches the strongest
//! matrix-factorisation results on implicit data (SimpleX, sampled-softmax MF): the model is
//! written back as user rows û/τ, item rows q̂ and zero bias, so ⟨P_u, Q_i⟩ + b_i is exactly
//! the trained logit and G's policy at temperature 1 is the trained policy.
//!
//! Three GEMMs per batch (logits, user and item gradients) on fixed row chunks, reduced in
//! chunk order: the result does not depend on the thread count.

use ndarray::{Array2, Axis, s};
use rayon::prelude::*;

use crate::data::Interactions;
use crate::model::MfModel;
use crate::rng;
use crate::train::optim::RowOptimizer;
use crate::train::settings::{OptimizerKind, SoftmaxConfig};

const ORDER_STREAM: u64 = 0x5350;
const NEGATIVE_STREAM: u64 = 0x5351;
/// Rows of a batch scored together by one task (fixed, so reductions are reproducible).
const CHUNK: usize = 128;

/// What one pretraining epoch measured.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct EpochStats {
    /// Mean sampled-softmax cross-entropy of the positives (nats).
    pub loss: f64,
}

/// Trains `model` (its current rows are the starting point) for `cfg.epochs` epochs on
/// `positives` and writes the normalised, temperature-scaled factors back (bias 0).
///
/// `on_epoch` sees each epoch's number (from 1), statistics and the model as it would be written
/// back, and may answer a validation score (higher is better): then the best-scoring epoch's
/// model is the one kept. Returns the number of epochs behind the kept model.
pub fn train(
    model: &mut MfModel,
    positives: &Interactions,
    cfg: &SoftmaxConfig,
    seed: u64,
    mut on_epoch: impl FnMut(usize, EpochStats, &MfModel) -> Option<f64>,
) -> usize {
    let mut trainer = Trainer::new(model, positives, cfg);
    let mut best: Option<(f64, usize, MfModel)> = None;
    let mut last = 0;
    for epoch in 1..=cfg.epochs {
        let stats = trainer.epoch(positives, seed, epoch as u64 - 1);
        if !stats.loss.is_finite() {
            break;
        }
        last = epoch;
        trainer.write_back(model);
        if let Some(score) = on_epoch(epoch, stats, model)
            && best.as_ref().is_none_or(|b| score > b.0)
        {
            best = Some((score, epoch, model.clone()));
        }
    }
    match best {
        Some((_, epoch, kept)) => {
            *model = kept;
            epoch
        }
        None => {
            trainer.write_back(model);
            last
        }
    }
}

/// The raw (unnormalised) factors and their optimisers.
#[derive(Clone)]
struct Trainer {
    user: Array2<f32>,
    item: Array2<f32>,
    user_opt: RowOptimizer,
    item_opt: RowOptimizer,
    /// log of each item's share of the positives (the in-batch candidates' distribution).
    log_popularity: Vec<f64>,
    cfg: SoftmaxConfig,
}

impl Trainer {
    fn new(model: &MfModel, positives: &Interactions, cfg: &SoftmaxConfig) -> Self {
        let d = model.dim();
        let (nu, ni) = (model.n_users(), model.n_items());
        let nnz = positives.nnz().max(1) as f64;
        let counts = positives.item_counts();
        let log_popularity = (0..ni)
            .map(|i| {
                let c = counts.get(i).copied().unwrap_or(0);
                (f64::from(c) / nnz).ln()
            })
            .collect();
        Self {
            user: model.user.clone(),
            item: model.item.clone(),
            user_opt: RowOptimizer::new(OptimizerKind::Adam, cfg.lr, nu, d),
            item_opt: RowOptimizer::new(OptimizerKind::Adam, cfg.lr, ni, d),
            log_popularity,
            cfg: cfg.clone(),
        }
    }

    /// Writes the trained policy into `model`: û/τ, q̂, bias 0.
    fn write_back(&self, model: &mut MfModel) {
        let inv_t = (1.0 / self.cfg.temperature) as f32;
        model.user = self.user.clone();
        model.item = self.item.clone();
        for mut row in model.user.rows_mut() {
            let n = norm(row.as_slice().unwrap_or(&[]));
            row.mapv_inplace(|x| x * inv_t / n);
        }
        for mut row in model.item.rows_mut() {
            let n = norm(row.as_slice().unwrap_or(&[]));
            row.mapv_inplace(|x| x / n);
        }
        model.bias.fill(0.0);
    }

    /// One pass over every positive in a seeded random order.
    fn epoch(&mut self, positives: &Interactions, seed: u64, epoch: u64) -> EpochStats {
        let mut pairs = positives.pairs();
        let mut r = rng::stream(seed, ORDER_STREAM, epoch);
        rng::shuffle(&mut r, &mut pairs);
        let mut loss = 0.0;
        for (b, batch) in pairs.chunks(self.cfg.batch.max(1)).enumerate() {
            let mut r = rng::stream(seed, NEGATIVE_STREAM.wrapping_add(epoch << 20), b as u64);
            let ni = self.item.nrows();
            let negatives: Vec<u32> = (0..self.cfg.negatives)
                .map(|_| rng::below(&mut r, ni) as u32)
                .collect();
            loss += self.step(batch, &negatives);
        }
        EpochStats {
            loss: loss / pairs.len().max(1) as f64,
        }
    }

    /// One batch: scores, sampled-softmax gradients, lazy Adam on the touched rows. Returns the
    /// batch's summed loss.
    fn step(&mut self, batch: &[(u32, u32)], negatives: &[u32]) -> f64 {
        let d = self.user.ncols();
        let inv_t = 1.0 / self.cfg.temperature;
        let columns: Vec<u32> = batch
            .iter()
            .map(|&(_, i)| i)
            .chain(negatives.iter().copied())
            .collect();
        // −log E[count]: B in-batch columns drawn by popularity, N uniform ones.
        let (b_f, n_f) = (batch.len() as f64, negatives.len() as f64);
        let uniform = 1.0 / self.item.nrows() as f64;
        let correction: Vec<f32> = columns
            .iter()
            .map(|&j| {
                let inb = if self.cfg.in_batch {
                    b_f * self.log_popularity[j as usize].exp()
                } else {
                    0.0
                };
                -((inb + n_f * uniform).max(f64::MIN_POSITIVE).ln()) as f32
            })
            .collect();
        let (users, user_norms) = normalised_rows(&self.user, batch.iter().map(|p| p.0));
        let (items, item_norms) = normalised_rows(&self.item, columns.iter().copied());
        // Logits û·q̂/τ come from one GEMM on pre-scaled user rows.
        let scaled_users = &users * (inv_t as f32);
        let masks = masks(batch, &columns, self.cfg.in_batch);
        let chunks: Vec<(f64, Array2<f32>, Array2<f32>)> = (0..batch.len())
            .step_by(CHUNK)
            .collect::<Vec<_>>()
            .into_par_iter()
            .map(|start| {
                let end = (start + CHUNK).min(batch.len());
                let mut logits = scaled_users.slice(s![start..end, ..]).dot(&items.t());
                let mut loss = 0.0;
                for (r, mut row) in logits.axis_iter_mut(Axis(0)).enumerate() {
                    let b = start + r;
                    let row = row.as_slice_mut().unwrap_or(&mut []);
                    for (x, &k) in row.iter_mut().zip(&correction) {
                        *x += k;
                    }
                    for &c in &masks[b] {
                        row[c as usize] = f32::NEG_INFINITY;
                    }
                    loss += softmax_gradient(row, b, inv_t as f32);
                }
                let grad_u = logits.dot(&items);
                let grad_items = logits.t().dot(&users.slice(s![start..end, ..]));
                (loss, grad_u, grad_items)
            })
            .collect();
        let mut loss = 0.0;
        let mut grad_users = Array2::<f32>::zeros((batch.len(), d));
        let mut grad_items = Array2::<f32>::zeros((columns.len(), d));
        for (k, (l, gu, gi)) in chunks.into_iter().enumerate() {
            loss += l;
            let start = k * CHUNK;
            grad_users
                .slice_mut(s![start..start + gu.nrows(), ..])
                .assign(&gu);
            grad_items += &gi;
        }
        let scale = 1.0 / batch.len() as f32;
        self.user_opt.next_step();
        self.item_opt.next_step();
        apply_rows(
            &mut self.user,
            &mut self.user_opt,
            batch.iter().map(|p| p.0),
            &users,
            &user_norms,
            &grad_users,
            scale,
        );
        apply_rows(
            &mut self.item,
            &mut self.item_opt,
            columns.iter().copied(),
            &items,
            &item_norms,
            &grad_items,
            scale,
        );
        loss
    }
}

/// Euclidean norm of a row (never 0, so a zero row normalises to itself).
fn norm(row: &[f32]) -> f32 {
    let n = row.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 1e-12 { n } else { 1.0 }
}

/// The normalised rows `ids` of `m` (one output row per id, repeats included) and their norms.
fn normalised_rows(m: &Array2<f32>, ids: impl Iterator<Item = u32>) -> (Array2<f32>, Vec<f32>) {
    let d = m.ncols();
    let mut data = Vec::new();
    let mut norms = Vec::new();
    for id in ids {
        let row = m.row(id as usize);
        let row = row.as_slice().unwrap_or(&[]);
        let n = norm(row);
        norms.push(n);
        data.extend(row.iter().map(|x| x / n));
    }
    let rows = norms.len();
    (
        Array2::from_shape_vec((rows, d), data).unwrap_or_else(|_| Array2::zeros((0, d))),
        norms,
    )
}

/// For every batch row, the candidate columns it must not count as negatives: its own positive
/// item elsewhere among the candidates (an accidental hit) and, among the in-batch columns, the
/// other positives of the same user (every in-batch column but its own without `in_batch`).
fn masks(batch: &[(u32, u32)], columns: &[u32], in_batch: bool) -> Vec<Vec<u32>> {
    let mut by_item: Vec<(u32, u32)> = columns
        .iter()
        .enumerate()
        .map(|(c, &j)| (j, c as u32))
        .collect();
    by_item.sort_unstable();
    let mut by_user: Vec<(u32, u32)> = batch
        .iter()
        .enumerate()
        .map(|(c, &(u, _))| (u, c as u32))
        .collect();
    by_user.sort_unstable();
    let same = |sorted: &[(u32, u32)], key: u32| {
        let from = sorted.partition_point(|e| e.0 < key);
        let to = sorted.partition_point(|e| e.0 <= key);
        sorted[from..to].iter().map(|e| e.1).collect::<Vec<u32>>()
    };
    batch
        .iter()
        .enumerate()
        .map(|(b, &(user, pos))| {
            let mut m = same(&by_item, pos);
            if in_batch {
                m.extend(same(&by_user, user));
            } else {
                m.extend(0..batch.len() as u32);
            }
            m.retain(|&c| c as usize != b);
            m
        })
        .collect()
}

/// Turns a row of logits into its cross-entropy gradient (softmax − one-hot at `target`),
/// scaled by `inv_t` (the chain rule through s/τ), in place; returns the row's loss. The sum
/// of exponentials is accumulated in f64; masked (−∞) entries get gradient 0.
fn softmax_gradient(row: &mut [f32], target: usize, inv_t: f32) -> f64 {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let target_logit = f64::from(row[target] - max);
    for x in row.iter_mut() {
        *x = exp_approx(*x - max);
    }
    let total: f64 = row
        .chunks(16)
        .map(|c| f64::from(c.iter().sum::<f32>()))
        .sum();
    let loss = total.ln() - target_logit;
    let inv_total = (1.0 / total) as f32 * inv_t;
    for x in row.iter_mut() {
        *x *= inv_total;
    }
    row[target] -= inv_t;
    loss
}

/// e^x for x ≤ 0 to a relative error below 1e-6, in plain arithmetic the compiler vectorises
/// (the libm call does not): x = n·ln 2 + g with |g| ≤ ln 2 / 2, e^g by its degree-6 Taylor
/// polynomial, 2^n through the exponent bits. Arguments below −87 give 0.
#[inline]
fn exp_approx(x: f32) -> f32 {
    const ROUND: f32 = 12_582_912.0; // 1.5·2²³: adding and subtracting it rounds to an integer
    let clamped = x.max(-87.0);
    let n = (clamped * std::f32::consts::LOG2_E + ROUND) - ROUND;
    // ln 2 in two parts (Cody–Waite), so n·ln 2 is exact enough down to x = −87.
    let g = (clamped - n * 0.693_359_4) + n * 2.121_944_4e-4;
    let p = 1.0
        + g * (1.0
            + g * (0.5 + g * (1.0 / 6.0 + g * (1.0 / 24.0 + g * (1.0 / 120.0 + g / 720.0)))));
    let scale = f32::from_bits(((n as i32 + 127) as u32) << 23);
    if x < -87.0 { 0.0 } else { p * scale }
}

/// Back-propagates gradients of normalised rows to the raw rows (the projection
/// (I − x̂x̂ᵀ)/‖x‖), sums repeats of a row, and applies one lazy Adam step to each touched row.
fn apply_rows(
    raw: &mut Array2<f32>,
    opt: &mut RowOptimizer,
    ids: impl Iterator<Item = u32>,
    normalised: &Array2<f32>,
    norms: &[f32],
    grad: &Array2<f32>,
    scale: f32,
) {
    let d = raw.ncols();
    let ids: Vec<u32> = ids.collect();
    let mut order: Vec<usize> = (0..ids.len()).collect();
    order.sort_by_key(|&k| ids[k]);
    let mut acc = vec![0.0f32; d];
    let mut k = 0;
    while k < order.len() {
        let id = ids[order[k]];
        acc.fill(0.0);
        while k < order.len() && ids[order[k]] == id {
            let r = order[k];
            let (x, g) = (normalised.row(r), grad.row(r));
            let along: f32 = x.iter().zip(g.iter()).map(|(a, b)| a * b).sum();
            for c in 0..d {
                acc[c] += scale * (g[c] - along * x[c]) / norms[r];
            }
            k += 1;
        }
        let mut row = raw.row_mut(id as usize);
        opt.apply(id as usize, row.as_slice_mut().unwrap_or(&mut []), &acc);
    }
}

/// Log-likelihood helper for tests: the full-softmax cross-entropy of `(user, item)` under a
/// written-back model.
#[cfg(test)]
fn full_loss(model: &MfModel, user: usize, item: usize) -> f64 {
    let scores = model.scores(user);
    let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let lse = f64::from(max)
        + scores
            .iter()
            .map(|&x| f64::from(x - max).exp())
            .sum::<f64>()
            .ln();
    lse - f64::from(scores[item])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::synth;
    use crate::eval::evaluate_model;

    fn cfg() -> SoftmaxConfig {
        SoftmaxConfig {
            epochs: 15,
            batch: 256,
            negatives: 64,
            temperature: 0.2,
            lr: 0.01,
            in_batch: true,
            validate_every: 0,
        }
    }

    fn data() -> (Interactions, Interactions) {
        let s = crate::data::synth::SyntheticConfig {
            users: 200,
            items: 150,
            clusters: 5,
            per_user: 20,
            noise: 0.05,
            test_fraction: 0.2,
        };
        let (tr, te) = synth::generate(&s, 7);
        let to = |rs: &[crate::data::records::Record]| {
            crate::data::dataset::to_sets(rs, 200, 150, 4.0).positives
        };
        (to(&tr), to(&te))
    }

    #[test]
    fn exp_approx_is_accurate() {
        let mut x = -87.0f32;
        while x <= 0.0 {
            let (a, e) = (exp_approx(x), x.exp());
            assert!((a - e).abs() <= 1e-6 * e, "{x}: {a} vs {e}");
            x += 0.013;
        }
        assert_eq!(exp_approx(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp_approx(-100.0), 0.0);
    }

    #[test]
    fn masks_drop_accidental_hits_and_same_user_columns() {
        let batch = [(0u32, 5u32), (1, 6), (0, 7)];
        let columns = [5u32, 6, 7, 6, 5, 9];
        let m = masks(&batch, &columns, true);
        assert_eq!(m[0], vec![4, 2]);
        assert_eq!(m[1], vec![3]);
        assert_eq!(m[2], vec![0]);
        let m = masks(&batch, &columns, false);
        assert_eq!(m[1], vec![3, 0, 2]);
    }

    /// Choosing epochs on validation keeps the best-scoring epoch's model.
    #[test]
    fn validation_keeps_the_best_epoch() {
        let (train_pos, _) = data();
        let mut r = rng::stream(1, 0, 0);
        let start = MfModel::random(200, 150, 8, 0.1, &mut r);
        let mut c = cfg();
        c.epochs = 4;
        let mut seen = Vec::new();
        let mut m = start.clone();
        let kept = train(&mut m, &train_pos, &c, 3, |e, _, model| {
            seen.push(model.clone());
            Some(if e == 2 { 1.0 } else { 0.0 })
        });
        assert_eq!(kept, 2);
        assert_eq!(m, seen[1]);
        let mut last = start.clone();
        assert_eq!(train(&mut last, &train_pos, &c, 3, |_, _, _| None), 4);
        assert_eq!(last, seen[3]);
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let mut r = rng::stream(3, 0, 0);
        let model = MfModel::random(4, 9, 3, 0.5, &mut r);
        let pos = Interactions::from_pairs(4, 9, &[(0, 1), (1, 2), (2, 1), (3, 7)]);
        let c = SoftmaxConfig {
            temperature: 0.5,
            lr: 1e-3,
            ..cfg()
        };
        let batch = [(0u32, 1u32), (1, 2), (3, 7)];
        let negatives = [4u32, 5, 1];
        let loss_at = |t: &Trainer| {
            let mut probe = t.clone();
            probe.cfg.lr = 0.0;
            probe.user_opt = RowOptimizer::new(OptimizerKind::Sgd, 0.0, 4, 3);
            probe.item_opt = RowOptimizer::new(OptimizerKind::Sgd, 0.0, 9, 3);
            probe.step(&batch, &negatives)
        };
        let base = Trainer::new(&model, &pos, &c);
        // SGD with lr 1 moves each row by −∂L/∂row / B: recover the analytic gradient.
        let mut sgd = base.clone();
        sgd.user_opt = RowOptimizer::new(OptimizerKind::Sgd, 1.0, 4, 3);
        sgd.item_opt = RowOptimizer::new(OptimizerKind::Sgd, 1.0, 9, 3);
        sgd.step(&batch, &negatives);
        let h = 1e-3f32;
        let b = batch.len() as f64;
        for (u, c) in [(0usize, 0usize), (1, 2), (3, 1)] {
            let mut plus = base.clone();
            let mut minus = base.clone();
            plus.user[(u, c)] += h;
            minus.user[(u, c)] -= h;
            let fd = (loss_at(&plus) - loss_at(&minus)) / (2.0 * f64::from(h)) / b;
            let analytic = f64::from(base.user[(u, c)] - sgd.user[(u, c)]);
            assert!(
                (fd - analytic).abs() < 2e-3,
                "user[{u},{c}]: {fd} vs {analytic}"
            );
        }
        for (i, c) in [(1usize, 0usize), (2, 1), (4, 2), (7, 0)] {
            let mut plus = base.clone();
            let mut minus = base.clone();
            plus.item[(i, c)] += h;
            minus.item[(i, c)] -= h;
            let fd = (loss_at(&plus) - loss_at(&minus)) / (2.0 * f64::from(h)) / b;
            let analytic = f64::from(base.item[(i, c)] - sgd.item[(i, c)]);
            assert!(
                (fd - analytic).abs() < 2e-3,
                "item[{i},{c}]: {fd} vs {analytic}"
            );
        }
    }

    #[test]
    fn pretraining_learns_the_clusters_reproducibly() {
        let (train_pos, test_pos) = data();
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                let mut r = rng::stream(1, 0, 0);
                let mut m = MfModel::random(200, 150, 8, 0.1, &mut r);
                let before = evaluate_model(&m, &train_pos, &test_pos, &[5])["P@5"];
                let mut losses = Vec::new();
                train(&mut m, &train_pos, &cfg(), 11, |_, s, _| {
                    losses.push(s.loss);
                    None
                });
                (m, before, losses)
            })
        };
        let (a, before, losses) = run(1);
        let (b, _, _) = run(2);
        assert_eq!(a, b, "thread count changed the result");
        let after = evaluate_model(&a, &train_pos, &test_pos, &[5])["P@5"];
        assert!(after > before + 0.2, "P@5 {before} -> {after}");
        assert!(losses.last().unwrap() < &losses[0], "{losses:?}");
        assert!(a.is_finite() && a.bias.iter().all(|&x| x == 0.0));
        // The written-back model is the trained policy: its full-softmax loss fell too.
        let mean_full = |m: &MfModel| {
            let pairs = train_pos.pairs();
            pairs
                .iter()
                .map(|&(u, i)| full_loss(m, u as usize, i as usize))
                .sum::<f64>()
                / pairs.len() as f64
        };
        let mut r = rng::stream(1, 0, 0);
        let mut start = MfModel::random(200, 150, 8, 0.1, &mut r);
        let mut zero = cfg();
        zero.epochs = 0;
        train(&mut start, &train_pos, &zero, 11, |_, _, _| None);
        assert!(mean_full(&a) < mean_full(&start) - 0.5);
    }
}
