//! The pointwise game on one context: G's samples drawn from the mixture proposal and rewarded
//! by D, and D's logistic step on the real candidates against G's samples.

use crate::rng::Rng;
use crate::train::game::critic;
use crate::train::game::policy::{Mixture, Policy, Sample};
use crate::train::objective::draw;

/// `k` draws of G from `mixture` (drawn by `draw_one`), each with its probability under the
/// policy and the proposal and D's reward (`reward_of` a candidate).
pub fn generator_samples(
    k: usize,
    policy: Policy<'_>,
    mixture: Mixture<'_>,
    rng: &mut Rng,
    mut draw_one: impl FnMut(&mut Rng) -> usize,
    reward_of: impl Fn(usize) -> f64,
) -> Vec<Sample> {
    (0..k)
        .map(|_| {
            let j = draw_one(rng);
            let prob = policy.prob(j);
            Sample {
                candidate: j,
                prob,
                proposal: mixture.prob(prob, j),
                reward: reward_of(j),
            }
        })
        .collect()
}

/// D's step on one context: the real candidates `positives` against as many candidates drawn
/// with probability ∝ `negative_weights` (G's policy, real ones excluded or not), logistic loss
/// on both averaged over the positives. `None` when there is nothing to learn from.
pub fn discriminator_step(
    d_scores: &[f32],
    positives: &[u32],
    negative_weights: &[f64],
    rng: &mut Rng,
) -> Option<(Vec<f32>, f64)> {
    if positives.is_empty() || negative_weights.iter().all(|&w| w <= 0.0) {
        return None;
    }
    let mut grad = vec![0.0f32; d_scores.len()];
    let norm = 1.0 / positives.len() as f64;
    let mut loss = 0.0;
    for &d in positives {
        let (l, g) = critic::real(f64::from(d_scores[d as usize]));
        loss += l * norm;
        grad[d as usize] += (g * norm) as f32;
    }
    for _ in 0..positives.len() {
        let d = draw(negative_weights, rng);
        let (l, g) = critic::generated(f64::from(d_scores[d]));
        loss += l * norm;
        grad[d] += (g * norm) as f32;
    }
    Some((grad, loss))
}
