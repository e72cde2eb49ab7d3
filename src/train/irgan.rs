//! Pointwise IRGAN for item recommendation: the minimax game between G and D.
//!
//! - D step: logistic regression, the user's observed positives labelled 1 against items G
//!   samples at temperature `d_temperature`, labelled 0. Negatives are redrawn every
//!   `negative_refresh` D-epochs (reference defect 1 fixed) and exclude the user's known
//!   positives (defect 2 fixed); both are switchable to replay the reference.
//! - G step: REINFORCE with D's reward tanh(f/2), items drawn from the mixture
//!   (1 − λ)·p_θ + λ·Uniform(positives) with importance weights p_θ/pn; optional running-mean
//!   baseline.
//! - On large catalogues (`irgan.candidates`) both run on sampled candidates: G's policy is a
//!   sampled softmax over the user's positives and proposal draws ([`sampled`]), and D's
//!   negatives are resampled from proposal draws ([`crate::train::mf_critic`]).
//!
//! All randomness comes from streams keyed by (seed, purpose, counter, user), and parallel work
//! is reduced in a fixed order, so a run is reproducible whatever the thread count.

use ndarray::{Array2, Axis};
use rayon::prelude::*;

use crate::data::Interactions;
use crate::model::MfModel;
use crate::model::policy as maths;
use crate::model::scorer::Scorer;
use crate::rng;
use crate::train::game::{
    self, Candidates, Exhaustive, Mixture, PolicyBuffers, pointwise, reinforce,
};
use crate::train::mf_critic::{DTrainer, Triple, draw_negatives};
pub use crate::train::optim::MfOptimizer;
use crate::train::settings::{AlsConfig, Baseline, CriticLoss, IrganConfig, ModelConfig};

pub(crate) mod sampled;

const G_STREAM: u64 = 0x60;
const G_ORDER_STREAM: u64 = 0x61;

/// What one D-epoch measured.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct DStats {
    /// Mean logistic loss over positives and negatives.
    pub loss: f64,
    /// Fraction of observed positives D scores above 0.5.
    pub accuracy_real: f64,
    /// Fraction of G's samples D scores below 0.5.
    pub accuracy_generated: f64,
}

/// What one G-epoch measured.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct GStats {
    /// Mean policy-gradient loss −Σ w·log p over users.
    pub loss: f64,
    /// Mean D reward of G's samples (before the baseline).
    pub mean_reward: f64,
    /// Mean entropy (nats) of G's policy over users.
    pub entropy: f64,
}

/// What a [`Game`] is configured by: both players' settings, the schedule and the seed.
#[derive(Debug, Clone, Copy)]
pub struct GameSettings<'a> {
    /// G's optimiser and temperature.
    pub generator: &'a ModelConfig,
    /// D's optimiser.
    pub discriminator: &'a ModelConfig,
    /// The adversarial schedule.
    pub irgan: &'a IrganConfig,
    /// iALS's alpha and l2, for D's phase when `irgan.d_als_sweeps` > 0.
    pub als: &'a AlsConfig,
    /// Seed of every random stream.
    pub seed: u64,
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
    als: AlsConfig,
    seed: u64,
    baseline: f64,
    /// D's training triples (user, positive, generated negative).
    triples: Vec<Triple>,
    /// D at the start of the game, kept when `irgan.d_proximal` pulls D back to it.
    d_start: Option<MfModel>,
    /// G at the start of the game, kept when `irgan.g_kl_start` pulls G's policy back to it.
    g_start: Option<MfModel>,
    refreshes: u64,
    d_epochs: u64,
    g_epochs: u64,
}

impl Game {
    /// A game between `generator` and `discriminator`: their optimiser settings, the schedule
    /// and the seed of every random stream.
    pub fn new(generator: MfModel, discriminator: MfModel, settings: GameSettings<'_>) -> Self {
        Self {
            g_opt: MfOptimizer::new(&generator, settings.generator),
            d_opt: MfOptimizer::new(&discriminator, settings.discriminator),
            d_start: (settings.irgan.d_proximal > 0.0).then(|| discriminator.clone()),
            g_start: (settings.irgan.g_kl_start > 0.0).then(|| generator.clone()),
            generator,
            discriminator,
            g_temperature: settings.generator.temperature,
            cfg: settings.irgan.clone(),
            als: settings.als.clone(),
            seed: settings.seed,
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

    /// Plays `epochs` D-epochs. D's negatives are redrawn from G every `negative_refresh`
    /// D-epochs (counting from the start of the phase, as the reference does). G is frozen
    /// during the phase, so the next draw is computed on the other core while D trains on the
    /// current one; the result is the same as drawing in turn.
    pub fn d_phase(&mut self, positives: &Interactions, epochs: usize) {
        self.d_phase_until(positives, epochs, &|| false);
    }

    /// [`Game::d_phase`], stopping early (before the next block of epochs) once `stop`
    /// answers true: how the online trainer lets waiting feedback go first. Returns the
    /// D-epochs played.
    pub fn d_phase_until(
        &mut self,
        positives: &Interactions,
        epochs: usize,
        stop: &dyn Fn() -> bool,
    ) -> usize {
        if self.cfg.d_als_sweeps > 0 {
            if epochs == 0 || stop() {
                return 0;
            }
            self.d_als_phase(positives);
            self.d_epochs += epochs as u64;
            return epochs;
        }
        let refresh = self.cfg.negative_refresh.max(1);
        let mut next: Option<Vec<Triple>> = None;
        let mut k = 0;
        while k < epochs && !stop() {
            if k % refresh == 0 && (self.cfg.fresh_negatives || self.refreshes == 0) {
                self.triples = match next.take() {
                    Some(t) => t,
                    None => self.draw_triples(positives),
                };
                self.refreshes += 1;
            }
            let block = (refresh - k % refresh).min(epochs - k);
            let draw_next = self.cfg.fresh_negatives && k + block < epochs;
            let (generator, cfg, seed, counter) =
                (&self.generator, &self.cfg, self.seed, self.refreshes);
            let mut trainer = DTrainer {
                model: &mut self.discriminator,
                opt: &mut self.d_opt,
                triples: &self.triples,
                batch: cfg.d_batch,
                seed,
                loss: cfg.d_loss,
                anchor: self.d_start.as_ref().map(|m| (m, cfg.d_proximal)),
            };
            let first = self.d_epochs;
            let ((), drawn) = rayon::join(
                || (0..block as u64).for_each(|e| trainer.epoch(first + e)),
                || draw_next.then(|| draw_negatives(generator, positives, cfg, seed, counter)),
            );
            next = drawn;
            self.d_epochs += block as u64;
            k += block;
        }
        k
    }

    /// D's triples of the next refresh: each positive with a sample of G's.
    fn draw_triples(&self, positives: &Interactions) -> Vec<Triple> {
        draw_negatives(
            &self.generator,
            positives,
            &self.cfg,
            self.seed,
            self.refreshes,
        )
    }

    /// D's phase by weighted iALS (`irgan.d_als_sweeps`): one fresh draw of G's samples,
    /// each a zero-preference cell of extra confidence γ·(1 − p_G(j|u)/max p_G(·|u)) (the max
    /// over the user's unobserved items, G at its own temperature), then the sweeps.
    fn d_als_phase(&mut self, positives: &Interactions) {
        self.triples = self.draw_triples(positives);
        self.refreshes += 1;
        let negatives = self.als_negative_weights(positives);
        crate::train::als::train_with_negatives(
            &mut self.discriminator,
            positives,
            &negatives,
            &self.als,
            self.cfg.d_als_sweeps,
        );
    }

    /// D's iALS negatives from its current triples: (user, G's sample, γ·(1 − p_G/p_max)).
    fn als_negative_weights(&self, positives: &Interactions) -> Vec<(u32, u32, f32)> {
        let g = &self.generator;
        let tau = self.g_temperature;
        let top: Vec<f32> = (0..g.n_users())
            .into_par_iter()
            .map(|u| {
                let pos = positives.items(u);
                g.scores(u)
                    .iter()
                    .enumerate()
                    .filter(|(j, s)| s.is_finite() && pos.binary_search(&(*j as u32)).is_err())
                    .fold(f32::NEG_INFINITY, |m, (_, &s)| m.max(s))
            })
            .collect();
        let gamma = f64::from(self.cfg.d_als_negative_weight);
        self.triples
            .iter()
            .map(|&(u, _, j)| {
                let ratio = (f64::from(g.score(u as usize, j as usize) - top[u as usize]) / tau)
                    .exp()
                    .min(1.0);
                (u, j, (gamma * (1.0 - ratio)) as f32)
            })
            .collect()
    }

    /// D's loss and accuracy on its current triples (no update): observed positives against
    /// G's latest samples.
    pub fn d_stats(&self) -> DStats {
        let m = &self.discriminator;
        let (mut loss, mut real_ok, mut fake_ok) = (0.0f64, 0usize, 0usize);
        for &(u, pos, neg) in &self.triples {
            let (u, pos, neg) = (u as usize, pos as usize, neg as usize);
            let (s_pos, s_neg) = (f64::from(m.score(u, pos)), f64::from(m.score(u, neg)));
            let (p, tail) = maths::logistic(s_pos);
            real_ok += usize::from(p > 0.5);
            let (q, tail_neg) = maths::logistic(s_neg);
            fake_ok += usize::from(q < 0.5);
            loss += match self.cfg.d_loss {
                // Counted twice so the mean over 2n terms is the pair loss's mean.
                CriticLoss::Pairwise => 2.0 * maths::softplus(s_neg - s_pos),
                CriticLoss::Logistic => (-s_pos).max(0.0) + tail + s_neg.max(0.0) + tail_neg,
            };
        }
        let n = self.triples.len().max(1) as f64;
        DStats {
            loss: loss / (2.0 * n),
            accuracy_real: real_ok as f64 / n,
            accuracy_generated: fake_ok as f64 / n,
        }
    }

    /// One pass of G's policy gradient over every user with positives (in a seeded random
    /// order), `g_user_batch` users at a time computed in parallel against the same parameters.
    /// The candidates are every item, or sampled ones (see [`sampled`]) as `irgan.candidates`
    /// says for this catalogue.
    pub fn g_epoch(&mut self, positives: &Interactions) -> GStats {
        self.g_epoch_until(positives, &|| false)
    }

    /// [`Game::g_epoch`], stopping early (before the next batch of users) once `stop` answers
    /// true; the statistics are over the users played.
    pub fn g_epoch_until(&mut self, positives: &Interactions, stop: &dyn Fn() -> bool) -> GStats {
        let mut users = positives.active_users();
        let mut r = rng::stream(self.seed, G_ORDER_STREAM, self.g_epochs);
        rng::shuffle(&mut r, &mut users);
        let epoch = self.g_epochs;
        self.g_epochs += 1;
        let sampled = self.cfg.candidates.is_sampled(self.generator.n_items());
        let proposal = sampled.then(|| self.proposal(positives));
        let mut grads = sampled.then(|| sampled::ItemGrads::new(&self.generator));
        let mut stats = GStats::default();
        let mut played = 0;
        for (index, chunk) in users.chunks(self.cfg.g_user_batch).enumerate() {
            if stop() {
                break;
            }
            played += chunk.len();
            let steps = match (&proposal, &mut grads) {
                (Some(q), Some(grads)) => {
                    let shared = self.shared_set(q, epoch, index as u64);
                    self.sampled_batch(&shared, chunk, positives, epoch, grads)
                }
                _ => self.exact_batch(chunk, positives, epoch),
            };
            for s in &steps {
                stats.loss += s.loss;
                stats.mean_reward += s.mean_reward;
                stats.entropy += s.entropy;
            }
            if self.cfg.baseline == Baseline::RunningMean {
                let mean = steps.iter().map(|s| s.mean_reward).sum::<f64>() / steps.len() as f64;
                let decay = self.cfg.baseline_decay;
                self.baseline = decay * self.baseline + (1.0 - decay) * mean;
            }
        }
        let n = played.max(1) as f64;
        GStats {
            loss: stats.loss / n,
            mean_reward: stats.mean_reward / n,
            entropy: stats.entropy / n,
        }
    }

    /// One batch of G's exact step: every user's gradient over the whole catalogue against the
    /// same parameters, then one dense update.
    fn exact_batch(
        &mut self,
        chunk: &[usize],
        positives: &Interactions,
        epoch: u64,
    ) -> Vec<StepStats> {
        let steps: Vec<UserStep> = chunk
            .par_iter()
            .map_init(PolicyBuffers::default, |buf, &u| {
                self.user_step(u, positives.items(u), epoch, buf)
            })
            .collect();
        self.apply_g(&steps);
        steps
            .iter()
            .map(|s| StepStats {
                loss: s.loss,
                mean_reward: s.mean_reward,
                entropy: s.entropy,
            })
            .collect()
    }

    /// The baseline G's rewards are compared with in the next step.
    fn step_baseline(&self) -> game::Baseline {
        match self.cfg.baseline {
            Baseline::None => game::Baseline::Fixed(0.0),
            Baseline::RunningMean => game::Baseline::Fixed(self.baseline),
            Baseline::UserMean => game::Baseline::SampleMean,
            Baseline::UserStd => game::Baseline::SampleStd,
        }
    }

    /// G's gradient for one user against the current parameters (no mutation).
    ///
    /// The policy over the whole catalogue comes from the fused fast path
    /// ([`PolicyBuffers::softmax`]); samples from the mixture pn = (1 − λ)·p + λ·Uniform(positives)
    /// are drawn by first picking the component; the step itself is the shared game's.
    fn user_step(&self, u: usize, pos: &[u32], epoch: u64, buf: &mut PolicyBuffers) -> UserStep {
        let g = &self.generator;
        let candidates = Exhaustive(g.n_items());
        buf.resize(candidates.len());
        g.scores_into(u, &mut buf.scores);
        let Some(softmax) = buf.softmax(self.g_temperature) else {
            return UserStep::idle(u, g.user_row(u), candidates.len());
        };
        let k = ((self.cfg.g_samples * pos.len() as f64).round() as usize).max(1);
        let mut r = rng::stream(self.seed, G_STREAM.wrapping_add(epoch << 8), u as u64);
        let baseline = self.step_baseline();
        let mixture = Mixture {
            lambda: self.cfg.mixture,
            positives: pos,
        };
        let policy = buf.policy(softmax.total);
        let cumulative = &buf.cumulative;
        let d = &self.discriminator;
        let samples = pointwise::generator_samples(
            k,
            policy,
            mixture,
            &mut r,
            |r| mixture.draw_by_component(cumulative, softmax.total, r),
            |j| maths::reward(d.score_candidate(u, j)),
        );
        let mut step = reinforce(policy, &samples, baseline, self.g_temperature);
        if let Some(start) = &self.g_start {
            kl_to_start(
                &buf.scores,
                &buf.weights,
                softmax.total,
                &start.scores(u),
                self.g_temperature,
                self.cfg.g_kl_start,
                &mut step.grad_scores,
            );
        }
        let mut grad_user = vec![0.0f32; g.dim()];
        g.weighted_item_sum(&step.grad_scores, &mut grad_user);
        let l2 = self.g_opt.l2;
        for (gu, pu) in grad_user.iter_mut().zip(g.user_row(u)) {
            *gu += l2 * pu;
        }
        UserStep {
            user: u,
            old_user: g.user_row(u).to_vec(),
            grad_user,
            grad_scores: step.grad_scores,
            sampled: step.sampled,
            loss: step.loss,
            mean_reward: step.mean_reward,
            entropy: softmax.entropy,
        }
    }

    /// Applies a chunk of user steps: user rows, then every item row and bias.
    ///
    /// The item gradient of the chunk is one small matrix product, ∂L/∂Q = Gᵀ·P with G the
    /// chunk's (users × items) score gradients and P their user rows before the update.
    fn apply_g(&mut self, steps: &[UserStep]) {
        self.g_opt.next_step();
        let g = &mut self.generator;
        let (n, d) = (g.n_items(), g.dim());
        for s in steps {
            let row = &mut g.user.as_slice_mut().unwrap_or(&mut [])[s.user * d..(s.user + 1) * d];
            self.g_opt.user.apply(s.user, row, &s.grad_user);
        }
        let grad_s = Array2::from_shape_fn((steps.len(), n), |(r, j)| steps[r].grad_scores[j]);
        let old_users = Array2::from_shape_fn((steps.len(), d), |(r, c)| steps[r].old_user[c]);
        let mut grad_q = grad_s.t().dot(&old_users);
        let grad_b = grad_s.sum_axis(Axis(0));
        // L2 touches only the rows a user sampled, once per draw.
        let l2 = self.g_opt.l2;
        if l2 > 0.0 {
            for s in steps {
                for &j in &s.sampled {
                    let j = j as usize;
                    for c in 0..d {
                        grad_q[(j, c)] += l2 * g.item[(j, c)];
                    }
                }
            }
        }
        let items = g.item.as_slice_mut().unwrap_or(&mut []);
        let bias = g.bias.as_slice_mut().unwrap_or(&mut []);
        let grad_q = grad_q.as_standard_layout();
        let gq = grad_q.as_slice().unwrap_or(&[]);
        for j in 0..n {
            let r = j * d..(j + 1) * d;
            self.g_opt.item.apply(j, &mut items[r.clone()], &gq[r]);
            self.g_opt.bias.apply(j, &mut bias[j..=j], &[grad_b[j]]);
        }
    }
}

/// Adds the gradient of `beta · KL(p ‖ p0)` with respect to the scores `s` to `grad`, where
/// p = softmax(s/τ) (given as its unnormalised `weights` and their `total`) and
/// p0 = softmax(s0/τ): dKL/ds_j = p_j · (log p_j − log p0_j − KL) / τ. Returns the KL.
fn kl_to_start(
    scores: &[f32],
    weights: &[f64],
    total: f64,
    start: &[f32],
    temperature: f64,
    beta: f64,
    grad: &mut [f32],
) -> f64 {
    let log_norm = |s: &[f32]| {
        let max = f64::from(maths::finite_max(s));
        let z: f64 = s
            .iter()
            .filter(|x| x.is_finite())
            .map(|&x| ((f64::from(x) - max) / temperature).exp())
            .sum();
        max / temperature + z.ln()
    };
    let (log_z, log_z0) = (log_norm(scores), log_norm(start));
    let inv_total = 1.0 / total;
    let diff: Vec<f64> = scores
        .iter()
        .zip(start)
        .map(|(&s, &s0)| (f64::from(s) - f64::from(s0)) / temperature - log_z + log_z0)
        .collect();
    let kl: f64 = weights
        .iter()
        .zip(&diff)
        .filter(|(w, _)| **w > 0.0)
        .map(|(w, d)| w * inv_total * d)
        .sum();
    for ((g, w), d) in grad.iter_mut().zip(weights).zip(&diff) {
        if *w > 0.0 {
            *g += (beta * w * inv_total * (d - kl) / temperature) as f32;
        }
    }
    kl
}

/// What one user's G step measured.
#[derive(Debug, Clone, Copy, Default)]
struct StepStats {
    loss: f64,
    mean_reward: f64,
    entropy: f64,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::model::policy::{self, softplus};
    use crate::rng;

    /// The small game of these tests (also played by the sampled game's tests).
    pub(super) fn toy() -> (Interactions, MfModel, MfModel, Config) {
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
        let mut game = Game::new(g, d, cfg.game());
        game.g_temperature = 0.7;
        let u = 4;
        let step = game.user_step(u, pos.items(u), 0, &mut PolicyBuffers::default());
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
        let mut game = Game::new(g, d, cfg.game());
        let triples = draw_negatives(&game.generator, &pos, &game.cfg, game.seed, 0);
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
        game.d_phase(&pos, 1);
        assert_eq!(game.triples, triples);
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

    /// The proximal term adds `d_proximal · (θ − θ₀)` to D's gradient once per touch of a row:
    /// two games that differ only in it, with D moved away from its start, end one full-batch
    /// SGD step apart by exactly lr · d_proximal · touches · (θ − θ₀); with Adam over many
    /// epochs the pulled D stays nearer its start.
    #[test]
    fn the_proximal_term_pulls_d_towards_its_start() {
        let (pos, g, d, mut cfg) = toy();
        cfg.discriminator.l2 = 0.0;
        cfg.discriminator.lr = 1e-2;
        cfg.irgan.d_batch = 1_000_000; // one batch holds every triple
        let moved = {
            let mut r = rng::stream(5, 0, 0);
            let noise = MfModel::random(12, 15, 3, 0.2, &mut r);
            let mut m = d.clone();
            m.user += &noise.user;
            m.item += &noise.item;
            m.bias
                .iter_mut()
                .enumerate()
                .for_each(|(j, b)| *b += 0.01 * j as f32);
            m
        };
        let step = |prox: f32, cfg: &Config| {
            let mut cfg = cfg.clone();
            cfg.irgan.d_proximal = prox;
            let mut game = Game::new(g.clone(), d.clone(), cfg.game());
            game.discriminator = moved.clone();
            game.d_phase(&pos, 1);
            (game.discriminator, game.triples)
        };
        let (free, triples) = step(0.0, &cfg);
        let (pulled, same) = step(0.5, &cfg);
        assert_eq!(triples, same);
        let mut user_touches = [0f32; 12];
        let mut item_touches = [0f32; 15];
        for &(u, i, j) in &triples {
            user_touches[u as usize] += 2.0;
            item_touches[i as usize] += 1.0;
            item_touches[j as usize] += 1.0;
        }
        let expect = |touches: f32, now: f32, start: f32| 1e-2 * 0.5 * touches * (now - start);
        for (u, &touches) in user_touches.iter().enumerate() {
            for c in 0..3 {
                let want = expect(touches, moved.user[(u, c)], d.user[(u, c)]);
                let got = free.user[(u, c)] - pulled.user[(u, c)];
                assert!((got - want).abs() < 1e-5, "user[{u},{c}]: {got} vs {want}");
            }
        }
        for (j, &touches) in item_touches.iter().enumerate() {
            let want = expect(touches, moved.item[(j, 1)], d.item[(j, 1)]);
            let got = free.item[(j, 1)] - pulled.item[(j, 1)];
            assert!((got - want).abs() < 1e-5, "item[{j}]: {got} vs {want}");
            let want = expect(touches, moved.bias[j], d.bias[j]);
            let got = free.bias[j] - pulled.bias[j];
            assert!((got - want).abs() < 1e-5, "bias[{j}]: {got} vs {want}");
        }
        // Any optimiser (the per-row gradient tables): over many epochs the pulled D stays
        // nearer its start than the free one.
        cfg.discriminator.optimizer = crate::train::settings::OptimizerKind::Adam;
        cfg.discriminator.lr = 0.05;
        cfg.irgan.d_batch = 8;
        let distance = |prox: f32| {
            let mut c = cfg.clone();
            c.irgan.d_proximal = prox;
            let mut game = Game::new(g.clone(), d.clone(), c.game());
            game.d_phase(&pos, 40);
            let m = &game.discriminator;
            (&m.user - &d.user).mapv(|x| x * x).sum() + (&m.item - &d.item).mapv(|x| x * x).sum()
        };
        let (far, near) = (distance(0.0), distance(5.0));
        assert!(
            near < 0.5 * far,
            "distance to the start: {near} with the pull, {far} without"
        );
    }

    /// The per-user baseline subtracts the mean reward of the user's own samples: when D rates
    /// every item alike, G's step is zero with it and not without it.
    #[test]
    fn the_user_mean_baseline_cancels_a_reward_shared_by_all_samples() {
        let (pos, g, mut d, mut cfg) = toy();
        d.user.fill(0.0);
        d.bias.fill(1.0); // D's reward is tanh(1/2) for every item
        let grad = |baseline: Baseline, cfg: &mut Config| {
            cfg.irgan.baseline = baseline;
            let game = Game::new(g.clone(), d.clone(), cfg.game());
            let step = game.user_step(4, pos.items(4), 0, &mut PolicyBuffers::default());
            assert!(!step.sampled.is_empty());
            step.grad_scores
                .iter()
                .map(|x| x.abs())
                .fold(0.0f32, f32::max)
        };
        assert!(grad(Baseline::None, &mut cfg) > 1e-3);
        assert!(grad(Baseline::UserMean, &mut cfg) < 1e-6);
    }

    /// The KL penalty's score gradient matches finite differences of β·KL(p ‖ p0), and the
    /// penalty is zero (no pull) at the start itself.
    #[test]
    fn the_kl_penalty_gradient_matches_finite_differences() {
        let s0 = [0.3f32, -1.0, 2.0, 0.7, 0.0];
        let s = [0.1f32, -0.5, 1.2, 1.4, -0.3];
        let (tau, beta) = (0.7, 2.5);
        let kl = |s: &[f32]| {
            let (mut p, mut lp, mut lp0) = (vec![0.0; 5], vec![0.0; 5], vec![0.0; 5]);
            policy::softmax(s, tau, &mut p);
            policy::log_softmax(s, tau, &mut lp);
            policy::log_softmax(&s0, tau, &mut lp0);
            (0..5).map(|j| p[j] * (lp[j] - lp0[j])).sum::<f64>()
        };
        let mut buf = PolicyBuffers::default();
        buf.resize(5);
        buf.scores.copy_from_slice(&s);
        let sm = buf.softmax(tau).unwrap();
        let mut grad = vec![0.0f32; 5];
        let got = kl_to_start(&s, &buf.weights, sm.total, &s0, tau, beta, &mut grad);
        assert!(
            (got - kl(&s)).abs() < 1e-6 && got > 0.01,
            "{got} vs {}",
            kl(&s)
        );
        let h = 1e-3f32;
        for j in 0..5 {
            let (mut plus, mut minus) = (s, s);
            plus[j] += h;
            minus[j] -= h;
            let fd = beta * (kl(&plus) - kl(&minus)) / (2.0 * f64::from(h));
            assert!(
                (fd - f64::from(grad[j])).abs() < 1e-3,
                "{j}: fd {fd} vs {}",
                grad[j]
            );
        }
        buf.scores.copy_from_slice(&s0);
        let sm = buf.softmax(tau).unwrap();
        let mut grad = vec![0.0f32; 5];
        let at_start = kl_to_start(&s0, &buf.weights, sm.total, &s0, tau, beta, &mut grad);
        assert!(at_start.abs() < 1e-9 && grad.iter().all(|g| g.abs() < 1e-6));
    }

    /// D's iALS phase: with γ = 0 it is plain iALS from D's factors; G's samples enter as
    /// negatives of weight γ·(1 − p/p_max), so when every sample is G's top unobserved guess
    /// (a very sharp draw) they weigh nothing and D is again plain iALS, while soft draws
    /// move D, each weight within [0, γ).
    #[test]
    fn the_als_phase_weighs_g_samples_but_not_g_top_guess() {
        let (pos, g, d, mut cfg) = toy();
        cfg.irgan.candidates = crate::train::settings::CandidateMode::Exhaustive;
        cfg.irgan.d_als_sweeps = 3;
        cfg.pretrain.als.l2 = 0.5;
        let play = |gamma: f32, d_temperature: f64, cfg: &mut Config| {
            cfg.irgan.d_als_negative_weight = gamma;
            cfg.irgan.d_temperature = d_temperature;
            let mut game = Game::new(g.clone(), d.clone(), cfg.game());
            assert_eq!(game.d_phase_until(&pos, 7, &|| false), 7);
            assert_eq!(game.d_epochs(), 7);
            game
        };
        let mut plain = d.clone();
        crate::train::als::train_with_negatives(&mut plain, &pos, &[], &cfg.pretrain.als, 3);
        assert_eq!(play(0.0, 1.0, &mut cfg).discriminator, plain);
        assert_eq!(play(20.0, 1e-4, &mut cfg).discriminator, plain);
        let soft = play(20.0, 1.0, &mut cfg);
        assert_ne!(soft.discriminator, plain);
        let weights = soft.als_negative_weights(&pos);
        assert_eq!(weights.len(), soft.triples.len());
        assert!(weights.iter().all(|&(_, _, w)| (0.0..20.0).contains(&w)));
        let mut want = d.clone();
        crate::train::als::train_with_negatives(&mut want, &pos, &weights, &cfg.pretrain.als, 3);
        assert_eq!(soft.discriminator, want);
    }

    #[test]
    fn negatives_exclude_positives_and_refresh() {
        let (pos, g, d, mut cfg) = toy();
        cfg.irgan.negative_refresh = 2;
        let mut game = Game::new(g, d, cfg.game());
        game.d_phase(&pos, 1);
        assert_eq!(game.triples.len(), pos.nnz());
        assert!(
            game.triples
                .iter()
                .all(|&(u, _, j)| !pos.contains(u as usize, j))
        );
        let first = game.triples.clone();
        game.d_phase(&pos, 4); // draws at D-epochs 0 and 2 of the phase
        assert_ne!(first, game.triples, "fresh negatives must be redrawn");
        assert_eq!(game.refreshes, 3);
        assert_eq!(
            game.triples,
            draw_negatives(&game.generator, &pos, &game.cfg, game.seed, 2)
        );
        cfg.irgan.fresh_negatives = false;
        let mut stale = Game::new(
            game.generator.clone(),
            game.discriminator.clone(),
            cfg.game(),
        );
        stale.d_phase(&pos, 1);
        let once = stale.triples.clone();
        stale.d_phase(&pos, 5);
        assert_eq!(once, stale.triples);
        assert_eq!(stale.refreshes, 1);
    }

    #[test]
    fn the_guard_keeps_g_top_unobserved_items_out_of_d_negatives() {
        let (pos, g, _, mut cfg) = toy();
        cfg.irgan.d_temperature = 0.05; // sharp: without the guard G's top items dominate
        cfg.irgan.candidates = crate::train::settings::CandidateMode::Exhaustive;
        let unguarded = draw_negatives(&g, &pos, &cfg.irgan, 1, 0);
        cfg.irgan.d_skip_top = 3;
        let guarded = draw_negatives(&g, &pos, &cfg.irgan, 1, 0);
        let top = |u: usize| {
            let s = g.scores(u);
            let mut ids: Vec<u32> = (0..15).filter(|&j| !pos.contains(u, j)).collect();
            ids.sort_by(|a, b| s[*b as usize].total_cmp(&s[*a as usize]));
            ids.truncate(3);
            ids
        };
        let hits = |t: &[Triple]| {
            t.iter()
                .filter(|&&(u, _, j)| top(u as usize).contains(&j))
                .count()
        };
        assert!(
            hits(&unguarded) > 0,
            "the toy must draw G's top items unguarded"
        );
        assert_eq!(hits(&guarded), 0);
        assert_eq!(guarded.len(), unguarded.len());
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
                let mut game = Game::new(g.clone(), d.clone(), cfg.game());
                for _ in 0..3 {
                    game.d_phase(&pos, 3);
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
    fn a_stopped_phase_stops_at_a_batch_boundary() {
        let (pos, g, d, cfg) = toy();
        let mut game = Game::new(g.clone(), d.clone(), cfg.game());
        // Stopped at once: nothing is played and nothing changes.
        assert_eq!(game.d_phase_until(&pos, 3, &|| true), 0);
        let stats = game.g_epoch_until(&pos, &|| true);
        assert_eq!((&game.generator, &game.discriminator), (&g, &d));
        assert_eq!(stats.entropy, 0.0);
        // Stopped after the first batch of G (4 users of 12): only those users' rows move.
        let calls = std::sync::atomic::AtomicUsize::new(0);
        let after_one = || calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) >= 1;
        assert_eq!(game.d_phase_until(&pos, 2, &|| false), 2);
        let before = game.generator.clone();
        let stats = game.g_epoch_until(&pos, &after_one);
        assert!(stats.entropy > 0.0);
        let moved = (0..12).filter(|&u| game.generator.user_row(u) != before.user_row(u));
        assert_eq!(moved.count(), cfg.irgan.g_user_batch);
    }

    #[test]
    fn d_learns_to_separate_and_g_concentrates_on_positives() {
        let (pos, g, d, mut cfg) = toy();
        cfg.generator.lr = 0.2;
        cfg.discriminator.lr = 0.1;
        let mut game = Game::new(g, d, cfg.game());
        let mut first = None;
        let mut last = DStats::default();
        let mut g_first = None;
        let mut g_last = GStats::default();
        for _ in 0..30 {
            game.d_phase(&pos, 5);
            last = game.d_stats();
            first.get_or_insert(last);
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
