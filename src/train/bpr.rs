//! Bayesian personalised ranking (BPR) with uniform or dynamic negatives (DNS).
//!
//! DNS (Zhang et al. 2013) draws `dns_candidates` uniform non-positives and keeps the one the
//! current model scores highest: the paper's initialisation of G.

use crate::data::Interactions;
use crate::model::MfModel;
use crate::model::policy::sigmoid;
use crate::rng::{self, Rng};
use crate::train::settings::BprConfig;

const STREAM: u64 = 0xB9B;

/// How BPR picks each negative.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Negatives {
    /// One uniform non-positive.
    Uniform,
    /// The best-scored of `dns_candidates` uniform non-positives.
    Dynamic,
}

/// Trains `model` in place with SGD on the BPR loss over `positives`.
///
/// Returns the mean loss of the last epoch. Users with every item positive are skipped (no
/// negative exists).
pub fn train(
    model: &mut MfModel,
    positives: &Interactions,
    cfg: &BprConfig,
    negatives: Negatives,
    seed: u64,
) -> f64 {
    let candidates = match negatives {
        Negatives::Uniform => 1,
        Negatives::Dynamic => cfg.dns_candidates.max(1),
    };
    let (lr, l2) = (cfg.lr, cfg.l2);
    let mut rng = rng::stream(seed, STREAM, 0);
    over_triples(
        model,
        positives,
        cfg.epochs,
        candidates,
        &mut rng,
        |m, u, i, j| step(m, u, i, j, lr, l2),
    )
}

/// Runs `epochs` shuffled passes over `positives`, pairing each with a negative drawn as
/// [`pick_negative`] does, and applies `step` to every (user, positive, negative) triple.
///
/// Returns the mean of `step`'s losses over the last epoch. Users with every item positive
/// are skipped (no negative exists).
pub(crate) fn over_triples(
    model: &mut MfModel,
    positives: &Interactions,
    epochs: usize,
    candidates: usize,
    rng: &mut Rng,
    mut step: impl FnMut(&mut MfModel, usize, usize, usize) -> f64,
) -> f64 {
    let mut pairs = positives.pairs();
    let n_items = model.n_items();
    let mut last = 0.0;
    for _ in 0..epochs {
        rng::shuffle(rng, &mut pairs);
        let mut loss = 0.0;
        let mut steps = 0usize;
        for &(u, i) in &pairs {
            let (u, i) = (u as usize, i as usize);
            if positives.items(u).len() >= n_items {
                continue;
            }
            let Some(j) = pick_negative(model, positives, u, candidates, rng) else {
                continue;
            };
            loss += step(model, u, i, j);
            steps += 1;
        }
        last = loss / steps.max(1) as f64;
    }
    last
}

/// The best-scored of `candidates` uniform non-positives of `u` (None if none found quickly).
fn pick_negative(
    model: &MfModel,
    positives: &Interactions,
    u: usize,
    candidates: usize,
    rng: &mut Rng,
) -> Option<usize> {
    let n = model.n_items();
    let mut best: Option<(usize, f32)> = None;
    for _ in 0..candidates {
        // Rejection sampling: positives are a small fraction of the catalogue.
        let j = (0..64)
            .map(|_| rng::below(rng, n))
            .find(|&j| !positives.contains(u, j as u32))?;
        let s = if candidates > 1 {
            model.score(u, j)
        } else {
            0.0
        };
        if best.is_none_or(|(_, b)| s > b) {
            best = Some((j, s));
        }
    }
    best.map(|(j, _)| j)
}

/// One SGD step on −log σ(s_ui − s_uj) + l2/2·(‖P_u‖² + ‖Q_i‖² + ‖Q_j‖² + b_i² + b_j²).
fn step(model: &mut MfModel, u: usize, i: usize, j: usize, lr: f32, l2: f32) -> f64 {
    let x = model.score(u, i) - model.score(u, j);
    let g = sigmoid(-f64::from(x)) as f32; // −∂loss/∂x
    let d = model.dim();
    for k in 0..d {
        let (pu, qi, qj) = (model.user[(u, k)], model.item[(i, k)], model.item[(j, k)]);
        model.user[(u, k)] += lr * (g * (qi - qj) - l2 * pu);
        model.item[(i, k)] += lr * (g * pu - l2 * qi);
        model.item[(j, k)] += lr * (-g * pu - l2 * qj);
    }
    model.bias[i] += lr * (g - l2 * model.bias[i]);
    model.bias[j] += lr * (-g - l2 * model.bias[j]);
    crate::model::policy::softplus(-f64::from(x))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Forty users in two groups who like disjoint halves of a 20-item catalogue.
    pub(crate) fn two_groups() -> Interactions {
        let mut pairs = Vec::new();
        for u in 0..40u32 {
            let base = if u % 2 == 0 { 0 } else { 10 };
            for i in 0..6u32 {
                pairs.push((u, base + (u + i) % 10));
            }
        }
        Interactions::from_pairs(40, 20, &pairs)
    }

    /// A small random model for [`two_groups`] and the BPR settings that fit it.
    pub(crate) fn start(dns_candidates: usize) -> (MfModel, BprConfig) {
        let mut r = rng::stream(1, 0, 0);
        let m = MfModel::random(40, 20, 4, 0.1, &mut r);
        let cfg = BprConfig {
            epochs: 60,
            lr: 0.05,
            l2: 0.01,
            dns_candidates,
        };
        (m, cfg)
    }

    #[test]
    fn bpr_and_dns_rank_positives_above_negatives() {
        let pos = two_groups();
        for neg in [Negatives::Uniform, Negatives::Dynamic] {
            let (mut m, cfg) = start(3);
            let loss = train(&mut m, &pos, &cfg, neg, 7);
            assert!(loss < 0.4, "{neg:?} loss {loss}");
            // User 0 (first half) scores an unseen first-half item above every second-half item.
            let s = m.scores(0);
            let unseen_same = (0..10).filter(|&i| !pos.contains(0, i as u32));
            for i in unseen_same {
                assert!((10..20).all(|j| s[i] > s[j]), "{neg:?}");
            }
            assert!(m.is_finite());
        }
    }
}
