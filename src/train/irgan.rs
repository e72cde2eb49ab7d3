//! Pointwise IRGAN for item recommendation: the minimax game between G and D.
//!
//! - D step: logistic regression, the user's observed positives labelled 1 against items G
//!   samples at temperature `d_temperature`, labelled 0. Negatives are redrawn every
//!   `negative_refresh` D-epochs (reference defect 1 fixed) and exclude the user's known
//!   positives (defect 2 fixed); both are switchable to replay the reference.
//! - G step: REINFORCE with D's reward tanh(f/2), items drawn from the mixture
//!   (1 − λ)·p_θ + λ·Uniform(positives) with importance weights p_θ/pn; optional running-mean
//!   baseline.
//!
//! All randomness comes from streams keyed by (seed, purpose, counter, user), and parallel work
//! is reduced in a fixed order, so a run is reproducible whatever the thread count.

use rayon::prelude::*;

use crate::config::{Baseline, Config, IrganConfig, ModelConfig};
use crate::data::Interactions;
use crate::model::MfModel;
use crate::model::policy;
use crate::rng;
use crate::train::optim::RowOptimizer;

const NEG_STREAM: u64 = 0xD0;
const D_SHUFFLE_STREAM: u64 = 0xD1;
const G_STREAM: u64 = 0x60;
const G_ORDER_STREAM: u64 = 0x61;

/// Optimiser state for the three tensors of an MF model.
#[derive(Debug, Clone)]
pub struct MfOptimizer {
    user: RowOptimizer,
    item: RowOptimizer,
    bias: RowOptimizer,
    l2: f32,
}

impl MfOptimizer {
    /// State sized for `model`, configured by `cfg` (optimiser, lr, l2).
    pub fn new(model: &MfModel, cfg: &ModelConfig) -> Self {
        let d = model.dim();
        Self {
            user: RowOptimizer::new(cfg.optimizer, cfg.lr, model.n_users(), d),
            item: RowOptimizer::new(cfg.optimizer, cfg.lr, model.n_items(), d),
            bias: RowOptimizer::new(cfg.optimizer, cfg.lr, model.n_items(), 1),
            l2: cfg.l2,
        }
    }

    fn next_step(&mut self) {
        self.user.next_step();
        self.item.next_step();
        self.bias.next_step();
    }
}

/// What one D-epoch measured.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct DStats {
    /// Mean logistic loss over positives and negatives.
    pub loss: f64,
    /// Fraction of observed positives D scores above 0.5.
    pub accuracy_real: f64,
    /// Fraction of G's samples D scores below 0.5.
    pub accuracy_generated: f64,
}

/// What one G-epoch measured.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct GStats {
    /// Mean policy-gradient loss −Σ w·log p over users.
    pub loss: f64,
    /// Mean D reward of G's samples (before the baseline).
    pub mean_reward: f64,
    /// Mean entropy (nats) of G's policy over users.
    pub entropy: f64,
}

/// The two players, their optimisers and the game's counters.
#[derive(Debug, Clone)]
pub struct Game {
    /// The generator G (softmax policy over items).
    pub generator: MfModel,
    /// The discriminator D (sigmoid critic).
    pub discriminator: MfModel,
    g_opt: MfOptimizer,
    d_opt: MfOptimizer,
    g_temperature: f64,
    cfg: IrganConfig,
    seed: u64,
    baseline: f64,
    /// D's training triples (user, positive, generated negative).
    triples: Vec<(u32, u32, u32)>,
    refreshes: u64,
    d_epochs: u64,
    g_epochs: u64,
}

impl Game {
    /// A game between `generator` and `discriminator` with the settings of `cfg`.
    pub fn new(generator: MfModel, discriminator: MfModel, cfg: &Config) -> Self {
        Self {
            g_opt: MfOptimizer::new(&generator, &cfg.generator),
            d_opt: MfOptimizer::new(&discriminator, &cfg.discriminator),
            generator,
            discriminator,
            g_temperature: cfg.generator.temperature,
            cfg: cfg.irgan.clone(),
            seed: cfg.seed,
            baseline: 0.0,
            triples: Vec::new(),
            refreshes: 0,
            d_epochs: 0,
            g_epochs: 0,
        }
    }

    /// D-epochs played so far.
    pub fn d_epochs(&self) -> u64 {
        self.d_epochs
    }

    /// G-epochs played so far.
    pub fn g_epochs(&self) -> u64 {
        self.g_epochs
    }

    /// Redraws D's negatives: for each user, |positives| items from G's policy at
    /// `d_temperature`, paired one-to-one with the positives.
    ///
    /// With `fresh_negatives = false` only the first call draws (the reference's stale cache).
    pub fn refresh_negatives(&mut self, positives: &Interactions) {
        if !self.cfg.fresh_negatives && self.refreshes > 0 {
            return;
        }
        let (g, seed, refresh) = (&self.generator, self.seed, self.refreshes);
        let (temperature, exclude) = (self.cfg.d_temperature, self.cfg.exclude_positives);
        let users = positives.active_users();
        let per_user: Vec<Vec<(u32, u32, u32)>> = users
            .par_iter()
            .map_init(
                || (vec![0.0f32; g.n_items()], vec![0.0f64; g.n_items()]),
                |(scores, cum), &u| {
                    let pos = positives.items(u);
                    g.scores_into(u, scores);
                    let skip = if exclude { pos } else { &[] };
                    let total = policy::cumulative_softmax(scores, temperature, skip, cum);
                    if !(total > 0.0 && total.is_finite()) {
                        return Vec::new();
                    }
                    let mut r = rng::stream(seed, NEG_STREAM.wrapping_add(refresh << 8), u as u64);
                    pos.iter()
                        .map(|&i| {
                            (
                                u as u32,
                                i,
                                policy::sample_cumulative(cum, total, &mut r) as u32,
                            )
                        })
                        .collect()
                },
            )
            .collect();
        self.triples = per_user.into_iter().flatten().collect();
        self.refreshes += 1;
    }

    /// One pass of D over its triples in shuffled batches of `d_batch` (positive, negative) pairs.
    pub fn d_epoch(&mut self) -> DStats {
        let mut r = rng::stream(self.seed, D_SHUFFLE_STREAM, self.d_epochs);
        rng::shuffle(&mut r, &mut self.triples);
        self.d_epochs += 1;
        let d = self.discriminator.dim();
        let (mut loss, mut real_ok, mut fake_ok) = (0.0, 0usize, 0usize);
        let mut users = SparseGrad::new(d);
        let mut items = SparseGrad::new(d);
        let mut biases = SparseGrad::new(1);
        let triples = std::mem::take(&mut self.triples);
        for batch in triples.chunks(self.cfg.d_batch) {
            users.clear();
            items.clear();
            biases.clear();
            let model = &self.discriminator;
            let l2 = self.d_opt.l2;
            for &(u, pos, neg) in batch {
                for (i, label) in [(pos, 1.0), (neg, 0.0)] {
                    let (u, i) = (u as usize, i as usize);
                    let s = f64::from(model.score(u, i));
                    let (p, tail) = policy::logistic(s);
                    if label > 0.5 {
                        loss += (-s).max(0.0) + tail;
                        real_ok += usize::from(p > 0.5);
                    } else {
                        loss += s.max(0.0) + tail;
                        fake_ok += usize::from(p < 0.5);
                    }
                    let g = (p - label) as f32;
                    users.add(u, g, model.item_row(i), l2, model.user_row(u));
                    items.add(i, g, model.user_row(u), l2, model.item_row(i));
                    biases.add(i, g, &[1.0], 0.0, &[0.0]);
                }
            }
            self.d_opt.next_step();
            let m = &mut self.discriminator;
            users.apply(&mut m.user, &mut self.d_opt.user);
            items.apply(&mut m.item, &mut self.d_opt.item);
            let bias = m.bias.as_slice_mut().unwrap_or(&mut []);
            for (k, &i) in biases.keys.iter().enumerate() {
                self.d_opt
                    .bias
                    .apply(i, &mut bias[i..=i], &biases.values[k..=k]);
            }
        }
        let n = triples.len().max(1) as f64;
        self.triples = triples;
        DStats {
            loss: loss / (2.0 * n),
            accuracy_real: real_ok as f64 / n,
            accuracy_generated: fake_ok as f64 / n,
        }
    }

    /// One pass of G's policy gradient over every user with positives (in a seeded random
    /// order), `g_user_batch` users at a time computed in parallel against the same parameters.
    pub fn g_epoch(&mut self, positives: &Interactions) -> GStats {
        let mut users = positives.active_users();
        let mut r = rng::stream(self.seed, G_ORDER_STREAM, self.g_epochs);
        rng::shuffle(&mut r, &mut users);
        let epoch = self.g_epochs;
        self.g_epochs += 1;
        let mut stats = GStats::default();
        for chunk in users.chunks(self.cfg.g_user_batch) {
            let steps: Vec<UserStep> = chunk
                .par_iter()
                .map_init(Scratch::default, |scratch, &u| {
                    self.user_step(u, positives.items(u), epoch, scratch)
                })
                .collect();
            for s in &steps {
                stats.loss += s.loss;
                stats.mean_reward += s.mean_reward;
                stats.entropy += s.entropy;
            }
            self.apply_g(&steps);
            if self.cfg.baseline == Baseline::RunningMean {
                let mean = steps.iter().map(|s| s.mean_reward).sum::<f64>() / steps.len() as f64;
                let decay = self.cfg.baseline_decay;
                self.baseline = decay * self.baseline + (1.0 - decay) * mean;
            }
        }
        let n = users.len().max(1) as f64;
        GStats {
            loss: stats.loss / n,
            mean_reward: stats.mean_reward / n,
            entropy: stats.entropy / n,
        }
    }

    /// G's gradient for one user against the current parameters (no mutation).
    ///
    /// One pass computes the softmax weights, their cumulative sum (for sampling), Σ e_j·Q_j
    /// (for the user gradient) and the entropy; samples from the mixture
    /// pn = (1 − λ)·p + λ·Uniform(positives) are drawn by first picking the component.
    fn user_step(&self, u: usize, pos: &[u32], epoch: u64, scratch: &mut Scratch) -> UserStep {
        let g = &self.generator;
        let (n, d) = (g.n_items(), g.dim());
        let tau = self.g_temperature;
        let inv_tau = 1.0 / tau;
        scratch.resize(n);
        g.scores_into(u, &mut scratch.scores);
        let max = scratch
            .scores
            .iter()
            .copied()
            .filter(|s| s.is_finite())
            .fold(f32::NEG_INFINITY, f32::max);
        if !max.is_finite() {
            return UserStep::idle(u, g.user_row(u), n);
        }
        let max = f64::from(max);
        let (mut total, mut ez) = (0.0f64, 0.0f64);
        let mut eq = vec![0.0f64; d];
        let items = g.item.as_slice().unwrap_or(&[]);
        for j in 0..n {
            let s = scratch.scores[j];
            let (e, z) = if s.is_finite() {
                let z = (f64::from(s) - max) * inv_tau;
                (z.exp(), z)
            } else {
                (0.0, 0.0)
            };
            scratch.weights[j] = e;
            total += e;
            scratch.cumulative[j] = total;
            ez += e * z;
            for (acc, &q) in eq.iter_mut().zip(&items[j * d..(j + 1) * d]) {
                *acc += e * f64::from(q);
            }
        }
        let inv_total = 1.0 / total;
        // H = log Z − E_p[z] with z = (s − max)/τ.
        let entropy = total.ln() - ez * inv_total;
        let lambda = self.cfg.mixture;
        let k = ((self.cfg.g_samples * pos.len() as f64).round() as usize).max(1);
        let mut r = rng::stream(self.seed, G_STREAM.wrapping_add(epoch << 8), u as u64);
        let baseline = if self.cfg.baseline == Baseline::RunningMean {
            self.baseline
        } else {
            0.0
        };
        let (mut total_w, mut reward_sum, mut loss) = (0.0, 0.0, 0.0);
        let mut sampled = Vec::with_capacity(k);
        for _ in 0..k {
            let j = if rng::unit(&mut r) < lambda {
                pos[rng::below(&mut r, pos.len())] as usize
            } else {
                policy::sample_cumulative(&scratch.cumulative, total, &mut r)
            };
            let p = scratch.weights[j] * inv_total;
            let in_pos = pos.binary_search(&(j as u32)).is_ok();
            let pn = (1.0 - lambda) * p
                + if in_pos {
                    lambda / pos.len() as f64
                } else {
                    0.0
                };
            let reward = policy::reward(self.discriminator.score(u, j));
            reward_sum += reward;
            let w = (reward - baseline) * p / pn / k as f64;
            total_w += w;
            loss -= w * p.max(f64::MIN_POSITIVE).ln();
            sampled.push((j as u32, w));
        }
        // dLoss/ds_j = (W·p_j − c_j)/τ, with c_j the weight landing on item j and W the total.
        let scale = total_w * inv_tau * inv_total;
        let mut grad_scores: Vec<f32> = scratch
            .weights
            .iter()
            .map(|&e| (scale * e) as f32)
            .collect();
        let mut grad_user: Vec<f32> = eq.iter().map(|&x| (scale * x) as f32).collect();
        for &(j, w) in &sampled {
            let c = (w * inv_tau) as f32;
            grad_scores[j as usize] -= c;
            for (gu, &q) in grad_user.iter_mut().zip(g.item_row(j as usize)) {
                *gu -= c * q;
            }
        }
        let l2 = self.g_opt.l2;
        for (gu, pu) in grad_user.iter_mut().zip(g.user_row(u)) {
            *gu += l2 * pu;
        }
        UserStep {
            user: u,
            old_user: g.user_row(u).to_vec(),
            grad_user,
            grad_scores,
            sampled: sampled.into_iter().map(|(j, _)| j).collect(),
            loss,
            mean_reward: reward_sum / k as f64,
            entropy,
        }
    }

    /// Applies a chunk of user steps: user rows, then item rows and biases in parallel blocks.
    fn apply_g(&mut self, steps: &[UserStep]) {
        self.g_opt.next_step();
        let g = &mut self.generator;
        let d = g.dim();
        for s in steps {
            let row = &mut g.user.as_slice_mut().unwrap_or(&mut [])[s.user * d..(s.user + 1) * d];
            self.g_opt.user.apply(s.user, row, &s.grad_user);
        }
        // L2 touches only the rows a user sampled, counted per draw.
        let mut l2_count = vec![0u32; g.n_items()];
        for s in steps {
            s.sampled.iter().for_each(|&j| l2_count[j as usize] += 1);
        }
        let l2 = self.g_opt.l2;
        let n = g.n_items();
        let block = n.div_ceil(rayon::current_num_threads() * 4).max(64);
        let item_blocks = self.g_opt.item.blocks(n, block);
        let bias_blocks = self.g_opt.bias.blocks(n, block);
        let items = g.item.as_slice_mut().unwrap_or(&mut []);
        let bias = g.bias.as_slice_mut().unwrap_or(&mut []);
        items
            .par_chunks_mut(block * d)
            .zip(bias.par_chunks_mut(block))
            .zip(item_blocks.into_par_iter().zip(bias_blocks.into_par_iter()))
            .enumerate()
            .for_each(|(b, ((q_block, b_block), (mut q_opt, mut b_opt)))| {
                let mut grad = vec![0.0f32; d];
                for local in 0..b_block.len() {
                    let j = b * block + local;
                    let q = &mut q_block[local * d..(local + 1) * d];
                    grad.fill(0.0);
                    let mut grad_b = 0.0f32;
                    for s in steps {
                        let gs = s.grad_scores[j];
                        grad_b += gs;
                        for (gq, pu) in grad.iter_mut().zip(&s.old_user) {
                            *gq += gs * pu;
                        }
                    }
                    if l2 > 0.0 && l2_count[j] > 0 {
                        let c = l2 * l2_count[j] as f32;
                        grad.iter_mut()
                            .zip(q.iter())
                            .for_each(|(gq, qv)| *gq += c * qv);
                    }
                    q_opt.apply(local, q, &grad);
                    b_opt.apply(local, &mut b_block[local..=local], &[grad_b]);
                }
            });
    }
}

/// Per-thread buffers of a G step (one entry per item).
#[derive(Default)]
struct Scratch {
    scores: Vec<f32>,
    weights: Vec<f64>,
    cumulative: Vec<f64>,
}

impl Scratch {
    fn resize(&mut self, n: usize) {
        self.scores.resize(n, 0.0);
        self.weights.resize(n, 0.0);
        self.cumulative.resize(n, 0.0);
    }
}

/// One user's contribution to a G step.
struct UserStep {
    user: usize,
    old_user: Vec<f32>,
    grad_user: Vec<f32>,
    /// dLoss/ds_j for every item j.
    grad_scores: Vec<f32>,
    sampled: Vec<u32>,
    loss: f64,
    mean_reward: f64,
    entropy: f64,
}

impl UserStep {
    /// A step that changes nothing (a user whose policy has no usable mass).
    fn idle(user: usize, row: &[f32], n_items: usize) -> Self {
        Self {
            user,
            old_user: row.to_vec(),
            grad_user: vec![0.0; row.len()],
            grad_scores: vec![0.0; n_items],
            sampled: Vec::new(),
            loss: 0.0,
            mean_reward: 0.0,
            entropy: 0.0,
        }
    }
}

/// Gradient rows keyed by parameter row, for a batch that touches few rows.
struct SparseGrad {
    width: usize,
    keys: Vec<usize>,
    values: Vec<f32>,
}

impl SparseGrad {
    fn new(width: usize) -> Self {
        Self {
            width,
            keys: Vec::new(),
            values: Vec::new(),
        }
    }

    fn clear(&mut self) {
        self.keys.clear();
        self.values.clear();
    }

    /// Adds `scale · v + l2 · param` to row `key`.
    fn add(&mut self, key: usize, scale: f32, v: &[f32], l2: f32, param: &[f32]) {
        let w = self.width;
        let slot = match self.keys.iter().position(|&k| k == key) {
            Some(s) => s,
            None => {
                self.keys.push(key);
                self.values.resize(self.values.len() + w, 0.0);
                self.keys.len() - 1
            }
        };
        let row = &mut self.values[slot * w..(slot + 1) * w];
        for ((r, &x), &p) in row.iter_mut().zip(v).zip(param) {
            *r += scale * x + l2 * p;
        }
    }

    fn apply(&self, param: &mut ndarray::Array2<f32>, opt: &mut RowOptimizer) {
        let w = self.width;
        let flat = param.as_slice_mut().unwrap_or(&mut []);
        for (slot, &key) in self.keys.iter().enumerate() {
            opt.apply(
                key,
                &mut flat[key * w..(key + 1) * w],
                &self.values[slot * w..(slot + 1) * w],
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::policy::softplus;
    use crate::rng;

    fn toy() -> (Interactions, MfModel, MfModel, Config) {
        let mut pairs = Vec::new();
        for u in 0..12u32 {
            for i in 0..4u32 {
                pairs.push((u, (u % 3) * 5 + i));
            }
        }
        let pos = Interactions::from_pairs(12, 15, &pairs);
        let mut r = rng::stream(9, 0, 0);
        let g = MfModel::random(12, 15, 3, 0.3, &mut r);
        let d = MfModel::random(12, 15, 3, 0.3, &mut r);
        let mut cfg = Config::default();
        cfg.irgan.g_user_batch = 4;
        cfg.discriminator.lr = 0.05;
        cfg.generator.lr = 0.05;
        (pos, g, d, cfg)
    }

    /// Finite-difference check of G's gradient: the analytic dLoss/dθ from `user_step` must
    /// match (L(θ+h) − L(θ−h)) / 2h of L = −Σ_k w_k log p_θ(d_k) with the same samples.
    #[test]
    fn generator_gradient_matches_finite_differences() {
        let (pos, g, d, cfg) = toy();
        let mut game = Game::new(g, d, &cfg);
        game.g_temperature = 0.7;
        let u = 4;
        let step = game.user_step(u, pos.items(u), 0, &mut Scratch::default());
        // Rebuild the weights w_k exactly as user_step did.
        let gm = game.generator.clone();
        let n = gm.n_items();
        let loss_at = |m: &MfModel| -> f64 {
            let mut p = vec![0.0; n];
            let mut lp = vec![0.0; n];
            policy::softmax(&m.scores(u), 0.7, &mut p);
            policy::log_softmax(&m.scores(u), 0.7, &mut lp);
            let _ = p;
            // Weights are frozen at θ: recompute with the original model's probabilities.
            let mut p0 = vec![0.0; n];
            policy::softmax(&gm.scores(u), 0.7, &mut p0);
            let lambda = game.cfg.mixture;
            let k = step.sampled.len() as f64;
            step.sampled
                .iter()
                .map(|&j| {
                    let j = j as usize;
                    let pn = (1.0 - lambda) * p0[j]
                        + if pos.contains(u, j as u32) {
                            lambda / pos.items(u).len() as f64
                        } else {
                            0.0
                        };
                    let w = policy::reward(game.discriminator.score(u, j)) * p0[j] / pn / k;
                    -w * lp[j]
                })
                .sum()
        };
        let h = 1e-3f32;
        for c in 0..gm.dim() {
            let mut plus = gm.clone();
            let mut minus = gm.clone();
            plus.user[(u, c)] += h;
            minus.user[(u, c)] -= h;
            let fd = (loss_at(&plus) - loss_at(&minus)) / (2.0 * f64::from(h));
            assert!(
                (fd - f64::from(step.grad_user[c])).abs() < 2e-3,
                "user[{c}]: fd {fd} vs {}",
                step.grad_user[c]
            );
        }
        for j in [0usize, 3, 7, 14] {
            let mut plus = gm.clone();
            let mut minus = gm.clone();
            plus.bias[j] += h;
            minus.bias[j] -= h;
            let fd = (loss_at(&plus) - loss_at(&minus)) / (2.0 * f64::from(h));
            assert!(
                (fd - f64::from(step.grad_scores[j])).abs() < 2e-3,
                "bias[{j}]: fd {fd} vs {}",
                step.grad_scores[j]
            );
            // dL/dQ_j = dL/ds_j · P_u.
            let mut plus = gm.clone();
            let mut minus = gm.clone();
            plus.item[(j, 0)] += h;
            minus.item[(j, 0)] -= h;
            let fd = (loss_at(&plus) - loss_at(&minus)) / (2.0 * f64::from(h));
            let analytic = f64::from(step.grad_scores[j] * gm.user[(u, 0)]);
            assert!(
                (fd - analytic).abs() < 2e-3,
                "item[{j}]: fd {fd} vs {analytic}"
            );
        }
    }

    /// Finite-difference check of D's gradient: one D batch with SGD moves the parameters by
    /// −lr·∇L; compare with the numerical gradient of the batch's logistic loss.
    #[test]
    fn discriminator_gradient_matches_finite_differences() {
        let (pos, g, d, mut cfg) = toy();
        cfg.discriminator.l2 = 0.0;
        cfg.discriminator.lr = 1e-3;
        cfg.irgan.d_batch = 1_000_000; // one batch holds every triple
        let mut game = Game::new(g, d, &cfg);
        game.refresh_negatives(&pos);
        let triples = game.triples.clone();
        let before = game.discriminator.clone();
        let loss_at = |m: &MfModel| -> f64 {
            triples
                .iter()
                .map(|&(u, i, j)| {
                    softplus(-f64::from(m.score(u as usize, i as usize)))
                        + softplus(f64::from(m.score(u as usize, j as usize)))
                })
                .sum()
        };
        game.d_epoch();
        let after = &game.discriminator;
        let h = 1e-3f32;
        for (u, c) in [(0usize, 0usize), (5, 2), (11, 1)] {
            let mut plus = before.clone();
            let mut minus = before.clone();
            plus.user[(u, c)] += h;
            minus.user[(u, c)] -= h;
            let fd = (loss_at(&plus) - loss_at(&minus)) / (2.0 * f64::from(h));
            let analytic = f64::from(before.user[(u, c)] - after.user[(u, c)]) / 1e-3;
            assert!(
                (fd - analytic).abs() < 2e-2 * (1.0 + fd.abs()),
                "user[{u},{c}]: fd {fd} vs {analytic}"
            );
        }
        for j in [0usize, 6, 12] {
            let mut plus = before.clone();
            let mut minus = before.clone();
            plus.bias[j] += h;
            minus.bias[j] -= h;
            let fd = (loss_at(&plus) - loss_at(&minus)) / (2.0 * f64::from(h));
            let analytic = f64::from(before.bias[j] - after.bias[j]) / 1e-3;
            assert!(
                (fd - analytic).abs() < 2e-2 * (1.0 + fd.abs()),
                "bias[{j}]: fd {fd} vs {analytic}"
            );
        }
    }

    #[test]
    fn negatives_exclude_positives_and_refresh() {
        let (pos, g, d, cfg) = toy();
        let mut game = Game::new(g, d, &cfg);
        game.refresh_negatives(&pos);
        assert_eq!(game.triples.len(), pos.nnz());
        assert!(
            game.triples
                .iter()
                .all(|&(u, _, j)| !pos.contains(u as usize, j))
        );
        let first = game.triples.clone();
        game.refresh_negatives(&pos);
        assert_ne!(first, game.triples, "fresh negatives must be redrawn");
        let mut stale = Game::new(
            game.generator.clone(),
            game.discriminator.clone(),
            &Config {
                irgan: IrganConfig {
                    fresh_negatives: false,
                    ..cfg.irgan.clone()
                },
                ..cfg.clone()
            },
        );
        stale.refresh_negatives(&pos);
        let once = stale.triples.clone();
        stale.refresh_negatives(&pos);
        assert_eq!(once, stale.triples);
    }

    #[test]
    fn game_is_reproducible_and_independent_of_threads() {
        let (pos, g, d, cfg) = toy();
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                let mut game = Game::new(g.clone(), d.clone(), &cfg);
                for _ in 0..3 {
                    game.refresh_negatives(&pos);
                    game.d_epoch();
                    game.g_epoch(&pos);
                }
                (game.generator, game.discriminator)
            })
        };
        let a = run(1);
        let b = run(2);
        assert_eq!(a, b);
        assert!(a.0.is_finite() && a.1.is_finite());
    }

    #[test]
    fn d_learns_to_separate_and_g_concentrates_on_positives() {
        let (pos, g, d, mut cfg) = toy();
        cfg.generator.lr = 0.2;
        cfg.discriminator.lr = 0.1;
        let mut game = Game::new(g, d, &cfg);
        let mut first = None;
        let mut last = DStats::default();
        let mut g_first = None;
        let mut g_last = GStats::default();
        for _ in 0..30 {
            game.refresh_negatives(&pos);
            for _ in 0..5 {
                last = game.d_epoch();
                first.get_or_insert(last);
            }
            g_last = game.g_epoch(&pos);
            g_first.get_or_insert(g_last);
        }
        let first = first.unwrap();
        assert!(
            last.loss < first.loss,
            "D loss {} -> {}",
            first.loss,
            last.loss
        );
        // G's samples become harder to tell apart: its mean reward rises.
        assert!(g_last.mean_reward > g_first.unwrap().mean_reward);
        assert!(g_last.entropy.is_finite() && g_last.entropy > 0.0);
    }
}
