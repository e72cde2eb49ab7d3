//! The pairwise game on one context with graded labels: G rewrites each real pair ⟨i, j⟩ into
//! ⟨k, j⟩ with a candidate k it ranks above j; D learns real pairs against the rewrites; G is
//! rewarded by D's belief that its rewrite is real.

use crate::model::policy::softplus;
use crate::rng::Rng;
use crate::train::game::critic;
use crate::train::game::policy::Sample;
use crate::train::objective::{PairLoss, all_pairs, draw};

/// A real pair and G's rewrite of its better side (`None` when G has no candidate).
pub type Rewrite = ((usize, usize), Option<usize>);

/// For each real pair ⟨d_i, d_j⟩, G's rewrite ⟨d_k, d_j⟩: d_k drawn among the candidates G
/// ranks above d_j with probability ∝ p(d) − p(d_j) (with `exclude_true`, candidates truly
/// better than d_j are left out: ⟨d_k, d_j⟩ would be a real pair).
pub fn rewrite_pairs(labels: &[u8], p: &[f64], exclude_true: bool, rng: &mut Rng) -> Vec<Rewrite> {
    let pairs = all_pairs(labels);
    let n = labels.len();
    let mut weights: Vec<f64> = Vec::with_capacity(n);
    let mut cached_j = usize::MAX;
    pairs
        .into_iter()
        .map(|(i, j)| {
            if j != cached_j {
                cached_j = j;
                weights.clear();
                weights.extend((0..n).map(|d| {
                    let excluded = exclude_true && labels[d] > labels[j];
                    if excluded || p[d] <= p[j] {
                        0.0
                    } else {
                        p[d] - p[j]
                    }
                }));
            }
            let k = weights
                .iter()
                .any(|&w| w > 0.0)
                .then(|| draw(&weights, rng));
            ((i, j), k)
        })
        .collect()
}

/// D's step: the pair loss on every real pair, plus (weighted) the pair loss that ranks d_j
/// above G's d_k for every rewritten pair. `None` when the context has no real pair.
pub fn discriminator_step(
    d_scores: &[f32],
    rewritten: &[Rewrite],
    loss: PairLoss,
    generated_weight: f64,
) -> Option<(Vec<f32>, f64)> {
    if rewritten.is_empty() {
        return None;
    }
    let real: Vec<(usize, usize)> = rewritten.iter().map(|&(pair, _)| pair).collect();
    let fake: Vec<(usize, usize)> = rewritten
        .iter()
        .filter_map(|&((_, j), k)| k.map(|k| (j, k)))
        .collect();
    Some(critic::pairs(
        d_scores,
        &real,
        &fake,
        loss,
        generated_weight,
    ))
}

/// G's samples: each rewrite ⟨d_k, d_j⟩ is rewarded softplus(f_D(d_k) − f_D(d_j)), D's logit
/// that the pair is real (non-saturating). The rewrites are drawn from G's own ranking, so
/// there is no importance correction (proposal = policy). Empty when G rewrote nothing.
pub fn generator_samples(p: &[f64], d_scores: &[f32], rewritten: &[Rewrite]) -> Vec<Sample> {
    rewritten
        .iter()
        .filter_map(|&((_, j), k)| k.map(|k| (k, j)))
        .map(|(k, j)| Sample {
            candidate: k,
            prob: p[k],
            proposal: p[k],
            reward: softplus(f64::from(d_scores[k]) - f64::from(d_scores[j])),
        })
        .collect()
}
