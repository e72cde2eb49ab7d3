//! G's side of the game, for any scorer and candidate set: the softmax policy over a context's
//! candidates, the mixture proposal, importance weights, the baseline and the REINFORCE score
//! gradient. Both tasks call this code; they differ only in how scores are produced and turned
//! into parameter gradients (the [`crate::model::scorer::Scorer`] of each player).

use crate::model::policy as maths;
use crate::rng::{self, Rng};

/// G's policy over a context's candidates: unnormalised weights `e_j` and the inverse of their
/// total, so p_j = e_j / Σe. A policy that is already normalised has `inv_total = 1`.
#[derive(Debug, Clone, Copy)]
pub struct Policy<'a> {
    /// One weight per candidate (zero for candidates G cannot pick).
    pub weights: &'a [f64],
    /// 1 / Σ weights.
    pub inv_total: f64,
}

impl<'a> Policy<'a> {
    /// A policy from probabilities that already sum to one.
    pub fn normalised(p: &'a [f64]) -> Self {
        Self {
            weights: p,
            inv_total: 1.0,
        }
    }

    /// p_j.
    pub fn prob(&self, j: usize) -> f64 {
        self.weights[j] * self.inv_total
    }
}

/// Buffers of the catalogue fast path of a policy (one entry per candidate): scores, softmax
/// weights and their running sum, reused across contexts by one thread.
#[derive(Debug, Default)]
pub struct PolicyBuffers {
    /// The candidates' scores (filled by the caller).
    pub scores: Vec<f32>,
    /// e_j = exp((s_j − max)/τ), 0 for non-finite scores.
    pub weights: Vec<f64>,
    /// Σ_{i ≤ j} e_i, for sampling by bisection.
    pub cumulative: Vec<f64>,
}

/// What [`PolicyBuffers::softmax`] computed besides the buffers.
#[derive(Debug, Clone, Copy)]
pub struct Softmax {
    /// Σ_j e_j.
    pub total: f64,
    /// Entropy (nats) of the policy.
    pub entropy: f64,
}

impl PolicyBuffers {
    /// Sizes every buffer for `n` candidates.
    pub fn resize(&mut self, n: usize) {
        self.scores.resize(n, 0.0);
        self.weights.resize(n, 0.0);
        self.cumulative.resize(n, 0.0);
    }

    /// The softmax of `scores / temperature` in one fused pass over the candidates: weights,
    /// their cumulative sum and the entropy. `None` when no score is finite.
    pub fn softmax(&mut self, temperature: f64) -> Option<Softmax> {
        let max = maths::finite_max(&self.scores);
        if !max.is_finite() {
            return None;
        }
        let inv_tau = 1.0 / temperature;
        // Exponentials in a branch-free loop (vectorised); see policy::exp_nonpositive_f32.
        let inv_tau32 = inv_tau as f32;
        for (w, &s) in self.weights.iter_mut().zip(&self.scores) {
            let e = maths::exp_nonpositive_f32((s - max) * inv_tau32);
            *w = if s.is_finite() { f64::from(e) } else { 0.0 };
        }
        // A tight prefix-sum loop keeps the running total in a register.
        let mut total = 0.0f64;
        for (c, &e) in self.cumulative.iter_mut().zip(&self.weights) {
            total += e;
            *c = total;
        }
        let ez = weighted_logit_sum(&self.weights, &self.scores, f64::from(max), inv_tau);
        // H = log Z − E_p[z] with z = (s − max)/τ.
        let entropy = total.ln() - ez * (1.0 / total);
        Some(Softmax { total, entropy })
    }

    /// The sampled softmax over a sampled candidate set: weights ∝ exp(s_j/τ − log_inclusion_j)
    /// (see [`crate::train::game::Candidates::log_inclusion`]; +∞ masks a slot), their
    /// cumulative sum, and the estimate log Ẑ − E_p̂[s/τ] of the catalogue policy's entropy.
    /// In f64 throughout, since the corrections spread the logits. `None` when no slot has mass.
    pub fn corrected_softmax(
        &mut self,
        temperature: f64,
        log_inclusion: &[f64],
    ) -> Option<Softmax> {
        // Logits shifted by the largest finite score first, so huge scores stay finite.
        let top = f64::from(maths::finite_max(&self.scores));
        if !top.is_finite() {
            return None;
        }
        let inv_tau = 1.0 / temperature;
        let shifted = |s: f32| (f64::from(s) - top) * inv_tau;
        // Three passes a compiler can vectorise: corrected logits (−∞ where masked), their
        // exponentials, then the running sums.
        let mut max = f64::NEG_INFINITY;
        for (w, (&s, &li)) in self
            .weights
            .iter_mut()
            .zip(self.scores.iter().zip(log_inclusion))
        {
            let z = shifted(s) - li;
            *w = if s.is_finite() && z.is_finite() {
                z
            } else {
                f64::NEG_INFINITY
            };
            max = max.max(*w);
        }
        if !max.is_finite() {
            return None;
        }
        for w in self.weights.iter_mut() {
            *w = maths::exp_nonpositive(*w - max);
        }
        let (mut total, mut weighted_logit) = (0.0f64, 0.0f64);
        for ((c, &e), &s) in self
            .cumulative
            .iter_mut()
            .zip(&self.weights)
            .zip(&self.scores)
        {
            total += e;
            *c = total;
            if e > 0.0 {
                weighted_logit += e * shifted(s);
            }
        }
        // H = log Ẑ − E_p̂[s/τ], both shifted by the same constant.
        let entropy = max + total.ln() - weighted_logit / total;
        Some(Softmax { total, entropy })
    }

    /// The policy these buffers hold, with total `total`.
    pub fn policy(&self, total: f64) -> Policy<'_> {
        Policy {
            weights: &self.weights,
            inv_total: 1.0 / total,
        }
    }
}

/// Σ_j e_j·z_j with z_j = (s_j − max)/τ (0 for non-finite scores), with four independent
/// accumulators so the additions pipeline.
fn weighted_logit_sum(weights: &[f64], scores: &[f32], max: f64, inv_tau: f64) -> f64 {
    let term = |e: f64, s: f32| {
        if s.is_finite() {
            e * (f64::from(s) - max) * inv_tau
        } else {
            0.0
        }
    };
    let mut acc = [0.0f64; 4];
    let (w4, s4) = (weights.chunks_exact(4), scores.chunks_exact(4));
    let (w_rest, s_rest) = (w4.remainder(), s4.remainder());
    for (w, s) in w4.zip(s4) {
        for k in 0..4 {
            acc[k] += term(w[k], s[k]);
        }
    }
    let rest: f64 = w_rest.iter().zip(s_rest).map(|(&e, &s)| term(e, s)).sum();
    acc.iter().sum::<f64>() + rest
}

/// G's proposal (1 − λ)·p + λ·Uniform(positives): the policy mixed with the context's observed
/// positives, so that G's samples keep hitting what D calls real.
#[derive(Debug, Clone, Copy)]
pub struct Mixture<'a> {
    /// λ, the weight of the positives.
    pub lambda: f64,
    /// The context's positive candidates, sorted.
    pub positives: &'a [u32],
}

impl Mixture<'_> {
    /// pn(j) given p_j.
    pub fn prob(&self, p: f64, j: usize) -> f64 {
        let in_pos = self.positives.binary_search(&(j as u32)).is_ok();
        (1.0 - self.lambda) * p
            + if in_pos {
                self.lambda / self.positives.len() as f64
            } else {
                0.0
            }
    }

    /// One draw that picks the component first: a positive with probability λ, otherwise a
    /// draw from the policy's cumulative weights (O(log n): the path for whole catalogues).
    pub fn draw_by_component(&self, cumulative: &[f64], total: f64, rng: &mut Rng) -> usize {
        if rng::unit(rng) < self.lambda {
            self.positives[rng::below(rng, self.positives.len())] as usize
        } else {
            maths::sample_cumulative(cumulative, total, rng)
        }
    }

    /// The proposal as one weight per candidate (for small candidate sets, drawn from with
    /// [`crate::train::objective::draw`]).
    pub fn dense(&self, p: &[f64]) -> Vec<f64> {
        let mut proposal: Vec<f64> = p.iter().map(|&x| (1.0 - self.lambda) * x).collect();
        for &d in self.positives {
            proposal[d as usize] += self.lambda / self.positives.len() as f64;
        }
        proposal
    }
}

/// One of G's draws: the candidate, its probability under the policy and under the proposal it
/// was drawn from (equal when drawn from the policy itself), and D's reward.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// The candidate's position in the context's candidate set.
    pub candidate: usize,
    /// p_θ(candidate).
    pub prob: f64,
    /// The proposal's probability of the candidate.
    pub proposal: f64,
    /// D's reward for it.
    pub reward: f64,
}

/// What REINFORCE subtracts from the rewards.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Baseline {
    /// A value fixed before the step (0, or a running mean of past rewards).
    Fixed(f64),
    /// The mean reward of the step's own samples.
    SampleMean,
    /// The mean reward of the step's own samples, the difference then divided by their
    /// standard deviation (advantage normalisation; all advantages 0 when the rewards agree).
    SampleStd,
}

/// The result of one REINFORCE step on a context.
#[derive(Debug, Clone)]
pub struct PolicyStep {
    /// dLoss/ds_j for every candidate j.
    pub grad_scores: Vec<f32>,
    /// The sampled candidates, in draw order.
    pub sampled: Vec<u32>,
    /// The policy-gradient loss −Σ_k w_k log p(d_k).
    pub loss: f64,
    /// Mean reward of the samples (before the baseline).
    pub mean_reward: f64,
}

/// REINFORCE with importance weights: the score gradient of L = −Σ_k w_k log p(d_k), where
/// w_k = (r_k − b)·p(d_k)/pn(d_k)/K and p = softmax(s/τ), so
/// dL/ds_j = (W·p_j − c_j)/τ with W = Σ_k w_k and c_j the weight landing on candidate j.
pub fn reinforce(
    policy: Policy<'_>,
    samples: &[Sample],
    baseline: Baseline,
    temperature: f64,
) -> PolicyStep {
    let k = samples.len() as f64;
    let reward_sum = samples.iter().fold(0.0, |acc, s| acc + s.reward);
    let (b, scale_adv) = match baseline {
        Baseline::Fixed(b) => (b, 1.0),
        Baseline::SampleMean => (reward_sum / k, 1.0),
        Baseline::SampleStd => {
            let mean = reward_sum / k;
            let var = samples
                .iter()
                .map(|s| (s.reward - mean) * (s.reward - mean))
                .sum::<f64>()
                / k;
            let sd = var.sqrt();
            (mean, if sd > 1e-12 { 1.0 / sd } else { 0.0 })
        }
    };
    let inv_tau = 1.0 / temperature;
    let (mut total_w, mut loss) = (0.0, 0.0);
    let weighted: Vec<(u32, f64)> = samples
        .iter()
        .map(|s| {
            let w = (s.reward - b) * scale_adv * s.prob / s.proposal / k;
            total_w += w;
            loss -= w * s.prob.max(f64::MIN_POSITIVE).ln();
            (s.candidate as u32, w)
        })
        .collect();
    let scale = total_w * inv_tau * policy.inv_total;
    let mut grad_scores: Vec<f32> = policy.weights.iter().map(|&e| (scale * e) as f32).collect();
    for &(j, w) in &weighted {
        grad_scores[j as usize] -= (w * inv_tau) as f32;
    }
    PolicyStep {
        grad_scores,
        sampled: weighted.into_iter().map(|(j, _)| j).collect(),
        loss,
        mean_reward: reward_sum / k,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_gradient_matches_its_definition() {
        // One sample drawn from the policy itself with reward 2 and no baseline:
        // grad = −2 (e_d − p) / τ.
        let p = [0.5, 0.3, 0.2];
        let sample = Sample {
            candidate: 1,
            prob: 0.3,
            proposal: 0.3,
            reward: 2.0,
        };
        let step = reinforce(Policy::normalised(&p), &[sample], Baseline::Fixed(0.0), 0.5);
        let want = [2.0 * 0.5 / 0.5, -2.0 * 0.7 / 0.5, 2.0 * 0.2 / 0.5];
        for (g, w) in step.grad_scores.iter().zip(want) {
            assert!((f64::from(*g) - w).abs() < 1e-6, "{:?}", step.grad_scores);
        }
    }

    /// Advantage normalisation: the step with `SampleStd` is the `SampleMean` step divided by
    /// the rewards' standard deviation, and vanishes when every reward is the same.
    #[test]
    fn the_standardised_baseline_divides_by_the_rewards_spread() {
        let p = [0.5, 0.3, 0.2];
        let sample = |candidate: usize, reward: f64| Sample {
            candidate,
            prob: p[candidate],
            proposal: p[candidate],
            reward,
        };
        let samples = [sample(0, 0.1), sample(1, 0.5), sample(2, 0.3)];
        let mean = reinforce(Policy::normalised(&p), &samples, Baseline::SampleMean, 1.0);
        let std = reinforce(Policy::normalised(&p), &samples, Baseline::SampleStd, 1.0);
        let sd = ((0.04f64 + 0.04 + 0.0) / 3.0).sqrt();
        for (m, s) in mean.grad_scores.iter().zip(&std.grad_scores) {
            assert!((f64::from(*m) / sd - f64::from(*s)).abs() < 1e-5, "{m} {s}");
        }
        assert!(std.grad_scores.iter().any(|g| g.abs() > 1e-3));
        let flat = [sample(0, 0.4), sample(1, 0.4)];
        let step = reinforce(Policy::normalised(&p), &flat, Baseline::SampleStd, 1.0);
        assert!(step.grad_scores.iter().all(|g| *g == 0.0));
    }

    #[test]
    fn mixture_draws_match_the_dense_proposal() {
        let p = [0.1, 0.2, 0.3, 0.4];
        let m = Mixture {
            lambda: 0.5,
            positives: &[0, 2],
        };
        let dense = m.dense(&p);
        for (j, &x) in p.iter().enumerate() {
            assert_eq!(m.prob(x, j), dense[j]);
        }
        assert!((dense.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        let cum = [0.1, 0.3, 0.6, 1.0];
        let mut r = rng::stream(4, 0, 0);
        let n = 100_000;
        let hits = (0..n)
            .filter(|_| m.draw_by_component(&cum, 1.0, &mut r) == 0)
            .count();
        assert!((hits as f64 / n as f64 - dense[0]).abs() < 0.01);
    }

    /// With no correction the sampled softmax is the softmax; a correction log c shifts a
    /// weight by 1/c; +∞ masks; huge scores stay finite.
    #[test]
    fn corrected_softmax_matches_the_softmax() {
        let scores = [0.3f32, -1.0, 2.0, 0.7];
        let mut buf = PolicyBuffers::default();
        buf.resize(4);
        buf.scores.copy_from_slice(&scores);
        let plain = buf.softmax(0.5).unwrap();
        let p: Vec<f64> = (0..4).map(|j| buf.policy(plain.total).prob(j)).collect();
        let corrected = buf.corrected_softmax(0.5, &[0.0; 4]).unwrap();
        for (j, &pj) in p.iter().enumerate() {
            assert!((buf.policy(corrected.total).prob(j) - pj).abs() < 1e-6);
        }
        assert!((corrected.entropy - plain.entropy).abs() < 1e-6);
        let li = [0.0, 2f64.ln(), f64::INFINITY, 0.0];
        let c = buf.corrected_softmax(0.5, &li).unwrap();
        let q = buf.policy(c.total);
        assert_eq!(q.prob(2), 0.0);
        let ratio = q.prob(1) / q.prob(0);
        let want = ((f64::from(scores[1]) - f64::from(scores[0])) / 0.5).exp() / 2.0;
        assert!((ratio - want).abs() < 1e-9 * want, "{ratio} vs {want}");
        assert_eq!(buf.cumulative[2], buf.cumulative[1]);
        buf.scores.copy_from_slice(&[1e30, -1e30, f32::NAN, 3e38]);
        let h = buf.corrected_softmax(1e-3, &[0.0; 4]).unwrap();
        assert!(h.total.is_finite() && h.entropy.is_finite());
        assert!(buf.weights.iter().all(|w| w.is_finite()));
        buf.scores.copy_from_slice(&[f32::NAN; 4]);
        assert!(buf.corrected_softmax(1.0, &[0.0; 4]).is_none());
    }
}
