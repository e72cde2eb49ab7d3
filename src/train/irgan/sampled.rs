//! G's step on sampled candidates, for catalogues too large to score whole.
//!
//! Each batch of `g_user_batch` users shares S = `sampled_candidates` draws from the
//! popularity/uniform [`Proposal`]; each user's candidates are its own positives plus those
//! draws ([`SampledCandidates`]). G's policy is the sampled softmax over them (logits corrected
//! by −log(S·q/c), [`PolicyBuffers::corrected_softmax`]), REINFORCE draws come from that policy
//! mixed with Uniform(positives) as in the exact game, D rewards only those draws, and the
//! gradient touches the users' rows and the sampled item rows only. The batch's scores and its
//! gradients against the shared draws are three small matrix products.

use ndarray::Array2;
use rayon::prelude::*;

use crate::data::Interactions;
use crate::model::MfModel;
use crate::model::policy as maths;
use crate::rng;
use crate::train::game::{
    Mixture, PolicyBuffers, Proposal, SampledCandidates, SampledSet, pointwise, reinforce,
};
use crate::train::optim::RowGrads;

use super::{G_STREAM, Game, StepStats};

const G_SET_STREAM: u64 = 0x62;

/// The item rows and biases of a sampled set, gathered once per batch of users.
pub(crate) struct ItemBlock {
    /// |set| × dim.
    pub(crate) items: Array2<f32>,
    bias: Vec<f32>,
}

impl ItemBlock {
    /// The rows of `ids` in `m`.
    pub(crate) fn gather(m: &MfModel, ids: &[u32]) -> Self {
        let d = m.dim();
        let mut flat = Vec::with_capacity(ids.len() * d);
        for &j in ids {
            flat.extend_from_slice(m.item_row(j as usize));
        }
        Self {
            items: Array2::from_shape_vec((ids.len(), d), flat)
                .unwrap_or_else(|_| unreachable!("ids.len() × dim values were gathered")),
            bias: ids.iter().map(|&j| m.bias[j as usize]).collect(),
        }
    }

    /// Scores of every user row of `users` (users × dim) against the block: users × |set|.
    pub(crate) fn scores(&self, users: &Array2<f32>) -> Array2<f32> {
        let mut s = users.dot(&self.items.t());
        for mut row in s.rows_mut() {
            row.iter_mut().zip(&self.bias).for_each(|(x, &b)| *x += b);
        }
        s
    }
}

/// The user rows of `users` in `m` (users × dim).
pub(crate) fn user_rows(m: &MfModel, users: &[usize]) -> Array2<f32> {
    let d = m.dim();
    Array2::from_shape_fn((users.len(), d), |(r, c)| m.user[(users[r], c)])
}

/// One user's sampled G step (slots: the user's positives, then the batch's shared draws).
pub(super) struct SampledStep {
    user: usize,
    /// Σ over the positives' slots of dL/ds·Q_j, plus the L2 term (the shared slots' part is
    /// the batch's matrix product).
    grad_user: Vec<f32>,
    /// dLoss/ds per slot.
    grad_scores: Vec<f32>,
    /// Items of the REINFORCE draws (L2 touches their rows once per draw).
    sampled: Vec<u32>,
    stats: StepStats,
}

/// Per-thread buffers of the sampled step.
#[derive(Default)]
pub(super) struct SampledBuffers {
    candidates: SampledCandidates,
    policy: PolicyBuffers,
    /// Slot ids `0..n_positives` (the positives' slots, for the mixture).
    positive_slots: Vec<u32>,
}

/// Sparse gradient tables of G's item rows and biases, reused across an epoch's batches.
pub(super) struct ItemGrads {
    items: RowGrads,
    bias: RowGrads,
}

impl ItemGrads {
    pub(super) fn new(m: &MfModel) -> Self {
        Self {
            items: RowGrads::new(m.n_items(), m.dim()),
            bias: RowGrads::new(m.n_items(), 1),
        }
    }
}

impl Game {
    /// The proposal of the sampled game, from the training positives' item counts.
    pub(super) fn proposal(&self, positives: &Interactions) -> Proposal {
        Proposal::new(
            &positives.item_counts(),
            self.cfg.proposal_popularity,
            self.cfg.proposal_uniform,
        )
    }

    /// The draws shared by batch `index` of G-epoch `epoch`.
    pub(super) fn shared_set(&self, proposal: &Proposal, epoch: u64, index: u64) -> SampledSet {
        let mut r = rng::stream(self.seed, G_SET_STREAM.wrapping_add(epoch << 8), index);
        proposal.sample_set(self.cfg.sampled_candidates, &mut r)
    }

    /// One batch of G's sampled step: every user's gradient against the same parameters, then
    /// one sparse update of the rows they touched.
    pub(super) fn sampled_batch(
        &mut self,
        shared: &SampledSet,
        users: &[usize],
        positives: &Interactions,
        epoch: u64,
        grads: &mut ItemGrads,
    ) -> Vec<StepStats> {
        let g = &self.generator;
        let block = ItemBlock::gather(g, &shared.items);
        let old_users = user_rows(g, users);
        let scores = block.scores(&old_users);
        let steps: Vec<SampledStep> = users
            .par_iter()
            .enumerate()
            .map_init(SampledBuffers::default, |buf, (row, &u)| {
                let row = scores.row(row);
                let row = row.as_slice().unwrap_or(&[]);
                self.sampled_user_step(u, positives.items(u), epoch, row, shared, buf)
            })
            .collect();
        self.apply_sampled(&steps, positives, shared, &block, &old_users, grads);
        steps.into_iter().map(|s| s.stats).collect()
    }

    /// G's sampled gradient for one user against the current parameters (no mutation).
    /// `shared_scores` are G's scores of the shared draws for this user.
    pub(super) fn sampled_user_step(
        &self,
        u: usize,
        pos: &[u32],
        epoch: u64,
        shared_scores: &[f32],
        shared: &SampledSet,
        buf: &mut SampledBuffers,
    ) -> SampledStep {
        let g = &self.generator;
        buf.candidates.fill(pos, shared);
        let n = buf.candidates.ids().len();
        let n_pos = pos.len();
        buf.policy.resize(n);
        for (s, &j) in buf.policy.scores.iter_mut().zip(pos) {
            *s = g.score(u, j as usize);
        }
        buf.policy.scores[n_pos..].copy_from_slice(shared_scores);
        let idle = |sampled| SampledStep {
            user: u,
            grad_user: vec![0.0; g.dim()],
            grad_scores: vec![0.0; n],
            sampled,
            stats: StepStats::default(),
        };
        let Some(softmax) = buf
            .policy
            .corrected_softmax(self.g_temperature, buf.candidates.log_inclusions())
        else {
            return idle(Vec::new());
        };
        buf.positive_slots.clear();
        buf.positive_slots.extend(0..n_pos as u32);
        let k = ((self.cfg.g_samples * n_pos as f64).round() as usize).max(1);
        let mut r = rng::stream(self.seed, G_STREAM.wrapping_add(epoch << 8), u as u64);
        let mixture = Mixture {
            lambda: self.cfg.mixture,
            positives: &buf.positive_slots,
        };
        let (policy, cumulative) = (buf.policy.policy(softmax.total), &buf.policy.cumulative);
        let (ids, d) = (buf.candidates.ids(), &self.discriminator);
        let samples = pointwise::generator_samples(
            k,
            policy,
            mixture,
            &mut r,
            |r| mixture.draw_by_component(cumulative, softmax.total, r),
            |slot| maths::reward(d.score(u, ids[slot] as usize)),
        );
        let step = reinforce(policy, &samples, self.step_baseline(), self.g_temperature);
        let l2 = self.g_opt.l2;
        let mut grad_user: Vec<f32> = g.user_row(u).iter().map(|&p| l2 * p).collect();
        for (&gs, &j) in step.grad_scores.iter().zip(pos) {
            let q = g.item_row(j as usize);
            grad_user.iter_mut().zip(q).for_each(|(o, &x)| *o += gs * x);
        }
        SampledStep {
            user: u,
            grad_user,
            grad_scores: step.grad_scores,
            sampled: step
                .sampled
                .iter()
                .map(|&slot| ids[slot as usize])
                .collect(),
            stats: StepStats {
                loss: step.loss,
                mean_reward: step.mean_reward,
                entropy: softmax.entropy,
            },
        }
    }

    /// Applies a batch of sampled steps to the rows they touched: the users' rows, the shared
    /// draws' rows, the positives' rows (and the L2 of each REINFORCE draw).
    fn apply_sampled(
        &mut self,
        steps: &[SampledStep],
        positives: &Interactions,
        shared: &SampledSet,
        block: &ItemBlock,
        old_users: &Array2<f32>,
        grads: &mut ItemGrads,
    ) {
        let (b, m) = (steps.len(), shared.len());
        let offset = |s: &SampledStep| s.grad_scores.len() - m;
        // dL/ds on the shared draws, users × draws.
        let grad_s = Array2::from_shape_fn((b, m), |(r, c)| {
            let s = &steps[r];
            s.grad_scores[offset(s) + c]
        });
        let grad_p = grad_s.dot(&block.items);
        let grad_q = grad_s.t().dot(old_users);
        let g = &mut self.generator;
        let d = g.dim();
        let l2 = self.g_opt.l2;
        for (r, s) in steps.iter().enumerate() {
            let pos = positives.items(s.user);
            for (&gs, &j) in s.grad_scores[..offset(s)].iter().zip(pos) {
                let row = grads.items.row(j as usize);
                row.iter_mut()
                    .zip(old_users.row(r))
                    .for_each(|(o, &p)| *o += gs * p);
                grads.bias.row(j as usize)[0] += gs;
            }
            for &j in &s.sampled {
                let j = j as usize;
                let q = g.item_row(j);
                grads.items.add(j, 0.0, q, l2, q);
            }
        }
        for (c, &j) in shared.items.iter().enumerate() {
            let row = grads.items.row(j as usize);
            row.iter_mut()
                .zip(grad_q.row(c))
                .for_each(|(o, &x)| *o += x);
            grads.bias.row(j as usize)[0] += grad_s.column(c).sum();
        }
        self.g_opt.next_step();
        let users = g.user.as_slice_mut().unwrap_or(&mut []);
        let mut row_grad = vec![0.0f32; d];
        for (r, s) in steps.iter().enumerate() {
            row_grad
                .iter_mut()
                .zip(&s.grad_user)
                .zip(grad_p.row(r))
                .for_each(|((o, &a), &b)| *o = a + b);
            let row = &mut users[s.user * d..(s.user + 1) * d];
            self.g_opt.user.apply(s.user, row, &row_grad);
        }
        grads.items.apply_and_clear(
            g.item.as_slice_mut().unwrap_or(&mut []),
            &mut self.g_opt.item,
        );
        grads.bias.apply_and_clear(
            g.bias.as_slice_mut().unwrap_or(&mut []),
            &mut self.g_opt.bias,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{CandidateMode, Config, OptimizerKind};
    use crate::model::policy::softmax;

    const ITEMS: usize = 2000;
    const DIM: usize = 8;

    /// A catalogue of 2,000 items whose popularity (Zipf, shuffled) has nothing to do with G's
    /// scores, so a proposal by popularity is far from G's policy and the correction matters.
    fn toy() -> (Interactions, Vec<u32>, Game) {
        let mut r = rng::stream(17, 0, 0);
        let mut pairs = Vec::new();
        for u in 0..6u32 {
            for k in 0..10u32 {
                pairs.push((u, (u * 331 + k * 97) % ITEMS as u32));
            }
        }
        let pos = Interactions::from_pairs(6, ITEMS, &pairs);
        let mut counts: Vec<u32> = (0..ITEMS).map(|j| (2000 / (1 + j)) as u32).collect();
        rng::shuffle(&mut r, &mut counts);
        let g = MfModel::random(6, ITEMS, DIM, 1.0, &mut r);
        let d = MfModel::random(6, ITEMS, DIM, 1.0, &mut r);
        let mut cfg = Config::default();
        cfg.irgan.candidates = CandidateMode::Sampled;
        cfg.irgan.g_samples = 20.0;
        cfg.generator.temperature = 0.5;
        let game = Game::new(g, d, cfg.game());
        (pos, counts, game)
    }

    /// The expected exact gradient dE/ds_j = p_j (R̄ − r_j)/τ of −E_p[r] over the catalogue (what
    /// the exhaustive step estimates without bias, whatever its proposal and baseline).
    fn expected_score_gradient(game: &Game, u: usize) -> Vec<f64> {
        let tau = game.g_temperature;
        let mut p = vec![0.0; ITEMS];
        softmax(&game.generator.scores(u), tau, &mut p);
        let r: Vec<f64> = (0..ITEMS)
            .map(|j| maths::reward(game.discriminator.score(u, j)))
            .collect();
        let mean: f64 = p.iter().zip(&r).map(|(a, b)| a * b).sum();
        p.iter()
            .zip(&r)
            .map(|(&pj, &rj)| pj * (mean - rj) / tau)
            .collect()
    }

    fn user_gradient(m: &MfModel, grad_scores: &[f64]) -> Vec<f64> {
        let mut out = vec![0.0; m.dim()];
        for (j, &g) in grad_scores.iter().enumerate() {
            for (o, &q) in out.iter_mut().zip(m.item_row(j)) {
                *o += g * f64::from(q);
            }
        }
        out
    }

    fn norm(v: &[f64]) -> f64 {
        v.iter().map(|x| x * x).sum::<f64>().sqrt()
    }

    /// Mean and spread of an estimator over `reps` seeded draws, against `target`: (relative
    /// bias of the mean, relative standard error of the mean, relative spread of one draw).
    fn moments(draws: &[Vec<f64>], target: &[f64]) -> (f64, f64, f64) {
        let n = draws.len() as f64;
        let mut mean = vec![0.0; target.len()];
        for d in draws {
            mean.iter_mut().zip(d).for_each(|(m, x)| *m += x / n);
        }
        let var: f64 = draws
            .iter()
            .map(|d| {
                d.iter()
                    .zip(&mean)
                    .map(|(x, m)| (x - m).powi(2))
                    .sum::<f64>()
            })
            .sum::<f64>()
            / (n - 1.0);
        let diff: Vec<f64> = mean.iter().zip(target).map(|(m, t)| m - t).collect();
        let t = norm(target);
        (norm(&diff) / t, (var / n).sqrt() / t, var.sqrt() / t)
    }

    /// One sampled estimate of the score gradient (dense over the catalogue) and of the user
    /// row's gradient, with the shared draws' log inclusions optionally replaced by `relog`.
    fn sampled_estimate(
        game: &Game,
        proposal: &Proposal,
        pos: &Interactions,
        u: usize,
        draws: usize,
        rep: u64,
        uncorrected: bool,
    ) -> (Vec<f64>, Vec<f64>) {
        let mut r = rng::stream(5, draws as u64, rep);
        let mut shared = proposal.sample_set(draws, &mut r);
        if uncorrected {
            // Drop the −log(S·q) correction (keep the multiplicities): plain logits per draw.
            for (li, &j) in shared.log_inclusion.iter_mut().zip(&shared.items) {
                *li -= (draws as f64).ln() + proposal.log_q(j);
            }
        }
        let g = &game.generator;
        let scores = ItemBlock::gather(g, &shared.items).scores(&user_rows(g, &[u]));
        let row = scores.row(0);
        let mut buf = SampledBuffers::default();
        let step = game.sampled_user_step(
            u,
            pos.items(u),
            rep,
            row.as_slice().unwrap(),
            &shared,
            &mut buf,
        );
        let mut dense = vec![0.0; ITEMS];
        for (&j, &gs) in buf.candidates.ids().iter().zip(&step.grad_scores) {
            dense[j as usize] += f64::from(gs);
        }
        let user = user_gradient(g, &dense);
        (dense, user)
    }

    /// The sampled G gradient (user row; item rows and biases through dL/ds) estimates the
    /// exhaustive one: over many seeded draws its relative bias is small and shrinks as S
    /// grows, and it would not without the log-q correction. The exhaustive step's own spread
    /// is printed for comparison.
    #[test]
    fn sampled_gradient_estimates_the_exhaustive_one() {
        let (pos, counts, game) = toy();
        let proposal = Proposal::new(&counts, 0.75, 0.1);
        let u = 2;
        let target = expected_score_gradient(&game, u);
        let target_user = user_gradient(&game.generator, &target);
        let reps = 3000;
        let mut exact_scores = Vec::new();
        let mut exact_user = Vec::new();
        let mut buf = PolicyBuffers::default();
        for rep in 0..reps {
            let step = game.user_step(u, pos.items(u), rep, &mut buf);
            exact_scores.push(step.grad_scores.iter().map(|&x| f64::from(x)).collect());
            exact_user.push(step.grad_user.iter().map(|&x| f64::from(x)).collect());
        }
        let (eb, _, es) = moments(&exact_scores, &target);
        let (ebu, _, esu) = moments(&exact_user, &target_user);
        println!(
            "exhaustive: bias {eb:.4} spread {es:.3} (scores); bias {ebu:.4} spread {esu:.3} (user row)"
        );
        let mut biases = Vec::new();
        for (draws, uncorrected) in [
            (32, false),
            (128, false),
            (512, false),
            (2048, false),
            (2048, true),
        ] {
            let (scores, user): (Vec<_>, Vec<_>) = (0..reps)
                .map(|rep| sampled_estimate(&game, &proposal, &pos, u, draws, rep, uncorrected))
                .unzip();
            let (b, se, spread) = moments(&scores, &target);
            let (bu, seu, spreadu) = moments(&user, &target_user);
            let label = if uncorrected { "no log-q" } else { "log-q" };
            println!(
                "S = {draws:>4} {label:>8}: scores bias {b:.4} (s.e. {se:.4}) spread {spread:.3}; \
                 user row bias {bu:.4} (s.e. {seu:.4}) spread {spreadu:.3}"
            );
            biases.push((b, bu));
        }
        // The exhaustive step is unbiased: its mean is within noise of the target.
        assert!(eb < 0.1 && ebu < 0.1, "exhaustive bias {eb} {ebu}");
        let (small, large, dropped) = (biases[0], biases[3], biases[4]);
        assert!(large.0 < 0.1 && large.1 < 0.1, "S = 2048 bias {large:?}");
        assert!(large.0 < small.0 && large.1 < small.1, "{biases:?}");
        assert!(
            dropped.0 > 3.0 * large.0 && dropped.1 > 3.0 * large.1 && dropped.1 > 0.2,
            "without the log-q correction: {dropped:?} vs {large:?}"
        );
    }

    /// One sampled batch moves only the batch's user rows, the shared draws' item rows and
    /// the batch's positives' rows (SGD and lazy Adam alike).
    #[test]
    fn sparse_updates_touch_only_sampled_rows() {
        for optimizer in [OptimizerKind::Sgd, OptimizerKind::Adam] {
            let (pos, _, _) = toy();
            let mut r = rng::stream(3, 0, 0);
            let g = MfModel::random(6, ITEMS, DIM, 0.5, &mut r);
            let d = MfModel::random(6, ITEMS, DIM, 0.5, &mut r);
            let mut cfg = Config::default();
            cfg.irgan.candidates = CandidateMode::Sampled;
            cfg.irgan.sampled_candidates = 64;
            cfg.generator.optimizer = optimizer;
            cfg.generator.lr = 0.05;
            cfg.generator.l2 = 0.01;
            let mut game = Game::new(g, d, cfg.game());
            let before = game.generator.clone();
            let proposal = game.proposal(&pos);
            let shared = game.shared_set(&proposal, 0, 0);
            let batch = [1usize, 4];
            let mut grads = ItemGrads::new(&game.generator);
            game.sampled_batch(&shared, &batch, &pos, 0, &mut grads);
            let after = &game.generator;
            let mut allowed: Vec<u32> = shared.items.clone();
            for &u in &batch {
                allowed.extend_from_slice(pos.items(u));
            }
            let mut moved = 0;
            for j in 0..ITEMS {
                let changed =
                    before.item_row(j) != after.item_row(j) || before.bias[j] != after.bias[j];
                if changed {
                    moved += 1;
                    assert!(
                        allowed.contains(&(j as u32)),
                        "{optimizer:?}: item {j} moved"
                    );
                }
            }
            assert!(moved > 20, "{optimizer:?}: only {moved} rows moved");
            for u in 0..6 {
                let changed = before.user_row(u) != after.user_row(u);
                assert_eq!(changed, batch.contains(&u), "{optimizer:?}: user {u}");
            }
        }
    }

    /// A sampled game (D's resampled negatives and G's sampled steps) gives the same models
    /// whatever the thread count, and finite ones.
    #[test]
    fn sampled_game_is_reproducible_and_independent_of_threads() {
        let (pos, _, game) = toy();
        let (g, d) = (game.generator.clone(), game.discriminator.clone());
        let mut cfg = Config::default();
        cfg.irgan.candidates = CandidateMode::Sampled;
        cfg.irgan.sampled_candidates = 256;
        cfg.irgan.d_resample_pool = 128;
        cfg.irgan.g_user_batch = 4;
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                let mut game = Game::new(g.clone(), d.clone(), cfg.game());
                for _ in 0..3 {
                    game.d_phase(&pos, 2);
                    game.g_epoch(&pos);
                }
                (game.generator, game.discriminator, game.triples)
            })
        };
        let a = run(1);
        assert_eq!(a, run(2));
        assert!(a.0.is_finite() && a.1.is_finite());
        assert_eq!(a.2.len(), pos.nnz());
        assert!(a.2.iter().all(|&(u, _, j)| !pos.contains(u as usize, j)));
    }

    /// Extreme scores (biases of ±1e30, huge factors, a NaN-free overflow of s/τ) give finite
    /// steps, statistics and parameters.
    #[test]
    fn extreme_scores_stay_finite() {
        let (pos, _, mut game) = toy();
        for j in (0..ITEMS).step_by(7) {
            game.generator.bias[j] = if j % 2 == 0 { 1e30 } else { -1e30 };
        }
        game.generator.user.row_mut(3).fill(1e4);
        game.g_temperature = 1e-3;
        game.cfg.d_temperature = 1e-3;
        game.d_phase(&pos, 1);
        let stats = game.g_epoch(&pos);
        assert!(
            stats.loss.is_finite() && stats.entropy.is_finite() && stats.mean_reward.is_finite(),
            "{stats:?}"
        );
        assert!(game.discriminator.is_finite());
        assert!(game.generator.user.iter().all(|x| !x.is_nan()));
        assert!(game.generator.item.iter().all(|x| !x.is_nan()));
    }

    /// On the small game of the exact tests, the sampled game learns as the exact one does:
    /// D separates positives from G's samples and G's reward rises.
    #[test]
    fn sampled_game_learns() {
        let (pos, g, d, mut cfg) = crate::train::irgan::tests::toy();
        cfg.irgan.candidates = CandidateMode::Sampled;
        cfg.irgan.sampled_candidates = 8;
        cfg.irgan.d_resample_pool = 8;
        cfg.generator.lr = 0.2;
        cfg.discriminator.lr = 0.1;
        let mut game = Game::new(g, d, cfg.game());
        let (mut d_first, mut g_first) = (None, None);
        let (mut d_last, mut g_last) = (Default::default(), Default::default());
        for _ in 0..30 {
            game.d_phase(&pos, 5);
            d_last = game.d_stats();
            d_first.get_or_insert(d_last);
            g_last = game.g_epoch(&pos);
            g_first.get_or_insert(g_last);
        }
        let (d_first, g_first): (super::super::DStats, super::super::GStats) =
            (d_first.unwrap(), g_first.unwrap());
        assert!(
            d_last.loss < d_first.loss,
            "D loss {} -> {}",
            d_first.loss,
            d_last.loss
        );
        assert!(
            g_last.mean_reward > g_first.mean_reward,
            "{g_first:?} -> {g_last:?}"
        );
        assert!(g_last.entropy.is_finite() && g_last.entropy > 0.0);
    }
}
