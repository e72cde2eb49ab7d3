//! Per-query losses as gradients with respect to the documents' scores.
//!
//! Each function takes the current scores of one query's documents and returns `dL/ds` (one
//! entry per document) for a loss to *minimise*; the scorer's backward pass turns that into
//! parameter gradients. Probabilities and exponentials are computed in f64.

use crate::eval::letor::dcg;
use crate::model::policy::{sigmoid, softmax, softplus};
use crate::rng::{self, Rng};

/// A pairwise surrogate loss ℓ(z) on the score margin z = s_better − s_worse.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum PairLoss {
    /// log(1 + e^−z) (RankNet).
    Logistic,
    /// max(0, 1 − z) (Ranking SVM).
    Hinge,
    /// e^−z (RankBoost); z is clamped at −30 so the gradient stays finite.
    Exponential,
}

impl PairLoss {
    /// ℓ(z).
    pub fn value(self, z: f64) -> f64 {
        match self {
            PairLoss::Logistic => softplus(-z),
            PairLoss::Hinge => (1.0 - z).max(0.0),
            PairLoss::Exponential => (-z.max(-30.0)).exp(),
        }
    }

    /// dℓ/dz (≤ 0).
    pub fn slope(self, z: f64) -> f64 {
        match self {
            PairLoss::Logistic => -sigmoid(-z),
            PairLoss::Hinge => {
                if z < 1.0 {
                    -1.0
                } else {
                    0.0
                }
            }
            PairLoss::Exponential => -(-z.max(-30.0)).exp(),
        }
    }
}

/// Pointwise logistic regression on relevance (label > 0), averaged over the query's documents.
/// Returns the gradient and the mean loss.
pub fn pointwise_logistic(scores: &[f32], labels: &[u8]) -> (Vec<f32>, f64) {
    let n = scores.len() as f64;
    let mut loss = 0.0;
    let grad = scores
        .iter()
        .zip(labels)
        .map(|(&s, &l)| {
            let s = f64::from(s);
            let y = if l > 0 { 1.0 } else { 0.0 };
            loss += softplus(s) - y * s;
            ((sigmoid(s) - y) / n) as f32
        })
        .collect();
    (grad, loss / n)
}

/// `Σ ℓ(s_i − s_j) / |pairs|` over preference pairs `(i, j)` (i preferred).
/// Returns the gradient and the mean loss.
pub fn pairwise(scores: &[f32], pairs: &[(usize, usize)], loss: PairLoss) -> (Vec<f32>, f64) {
    let mut grad = vec![0.0f32; scores.len()];
    if pairs.is_empty() {
        return (grad, 0.0);
    }
    let norm = 1.0 / pairs.len() as f64;
    let mut total = 0.0;
    for &(i, j) in pairs {
        let z = f64::from(scores[i]) - f64::from(scores[j]);
        total += loss.value(z);
        let g = (loss.slope(z) * norm) as f32;
        grad[i] += g;
        grad[j] -= g;
    }
    (grad, total * norm)
}

/// How the worse document of a training pair is chosen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PairSampling {
    /// Uniformly among the documents with a lower label.
    Uniform,
    /// Among the lower-labelled documents with probability ∝ exp(score / temperature): the
    /// documents the model currently ranks too high are picked most (dynamic negatives).
    Dynamic {
        /// Softmax temperature over the current scores.
        temperature: f64,
    },
}

/// Draws `per_doc` pairs `(i, j)` for every document `i` that has a lower-labelled document.
pub fn sample_pairs(
    scores: &[f32],
    labels: &[u8],
    per_doc: usize,
    how: PairSampling,
    rng: &mut Rng,
) -> Vec<(usize, usize)> {
    let mut pairs = Vec::new();
    let mut lower: Vec<usize> = Vec::new();
    let mut weights: Vec<f64> = Vec::new();
    for (i, &li) in labels.iter().enumerate() {
        lower.clear();
        lower.extend((0..labels.len()).filter(|&j| labels[j] < li));
        if lower.is_empty() {
            continue;
        }
        match how {
            PairSampling::Uniform => {
                for _ in 0..per_doc {
                    pairs.push((i, lower[rng::below(rng, lower.len())]));
                }
            }
            PairSampling::Dynamic { temperature } => {
                let sub: Vec<f32> = lower.iter().map(|&j| scores[j]).collect();
                weights.resize(sub.len(), 0.0);
                softmax(&sub, temperature, &mut weights);
                for _ in 0..per_doc {
                    pairs.push((i, lower[draw(&weights, rng)]));
                }
            }
        }
    }
    pairs
}

/// Every preference pair `(i, j)` with `label_i > label_j`.
pub fn all_pairs(labels: &[u8]) -> Vec<(usize, usize)> {
    let mut pairs = Vec::new();
    for (i, &li) in labels.iter().enumerate() {
        for (j, &lj) in labels.iter().enumerate() {
            if li > lj {
                pairs.push((i, j));
            }
        }
    }
    pairs
}

/// LambdaRank: RankNet gradients on every preference pair, each weighted by |ΔNDCG|, the change
/// in the query's NDCG (full list) if the two documents swapped places in the current ranking.
/// Returns the gradient and the RankNet loss weighted the same way.
pub fn lambdarank(scores: &[f32], labels: &[u8]) -> (Vec<f32>, f64) {
    let n = scores.len();
    let mut grad = vec![0.0f32; n];
    let mut ideal = labels.to_vec();
    ideal.sort_unstable_by(|a, b| b.cmp(a));
    let idcg = dcg(ideal.into_iter(), n);
    if idcg <= 0.0 {
        return (grad, 0.0);
    }
    let order = crate::eval::letor::ranking(scores);
    let mut rank = vec![0usize; n];
    for (r, &d) in order.iter().enumerate() {
        rank[d] = r;
    }
    let gain = |l: u8| f64::from((1u32 << l) - 1);
    let disc = |r: usize| 1.0 / ((r + 2) as f64).log2();
    let mut total = 0.0;
    for i in 0..n {
        for j in 0..n {
            if labels[i] <= labels[j] {
                continue;
            }
            let delta = ((gain(labels[i]) - gain(labels[j])) * (disc(rank[i]) - disc(rank[j]))
                / idcg)
                .abs();
            let z = f64::from(scores[i]) - f64::from(scores[j]);
            total += delta * softplus(-z);
            let g = (-sigmoid(-z) * delta) as f32;
            grad[i] += g;
            grad[j] -= g;
        }
    }
    (grad, total)
}

/// G's policy over a query's documents: softmax(scores / temperature), in f64.
pub fn policy(scores: &[f32], temperature: f64) -> Vec<f64> {
    let mut p = vec![0.0; scores.len()];
    softmax(scores, temperature, &mut p);
    p
}

/// An index drawn with probability ∝ `weights` (non-negative, not all zero).
pub fn draw(weights: &[f64], rng: &mut Rng) -> usize {
    let total: f64 = weights.iter().sum();
    let mut u = rng::unit(rng) * total;
    for (i, &w) in weights.iter().enumerate() {
        if u < w {
            return i;
        }
        u -= w;
    }
    // Rounding left u just above the last positive weight's share.
    weights.iter().rposition(|&w| w > 0.0).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric_grad(f: impl Fn(&[f32]) -> f64, s: &[f32]) -> Vec<f64> {
        let eps = 1e-3f32;
        (0..s.len())
            .map(|i| {
                let mut up = s.to_vec();
                up[i] += eps;
                let mut down = s.to_vec();
                down[i] -= eps;
                (f(&up) - f(&down)) / (2.0 * f64::from(eps))
            })
            .collect()
    }

    fn assert_close(a: &[f32], b: &[f64]) {
        for (x, y) in a.iter().zip(b) {
            assert!((f64::from(*x) - y).abs() < 1e-3, "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn logistic_and_pairwise_gradients_match_their_losses() {
        let s = [0.3f32, -1.2, 2.0, 0.1];
        let labels = [1u8, 0, 2, 0];
        let (g, _) = pointwise_logistic(&s, &labels);
        assert_close(&g, &numeric_grad(|s| pointwise_logistic(s, &labels).1, &s));
        let pairs = all_pairs(&labels);
        assert_eq!(pairs.len(), 5);
        for loss in [PairLoss::Logistic, PairLoss::Exponential, PairLoss::Hinge] {
            let (g, _) = pairwise(&s, &pairs, loss);
            assert_close(&g, &numeric_grad(|s| pairwise(s, &pairs, loss).1, &s));
        }
    }

    #[test]
    fn lambdarank_pushes_relevant_documents_up_by_ndcg_impact() {
        let s = [0.0f32, 1.0, 2.0];
        let labels = [2u8, 0, 0];
        let (g, _) = lambdarank(&s, &labels);
        assert!(
            g[0] < 0.0,
            "descending the loss raises the relevant document"
        );
        assert!(
            g[2] > g[1] && g[1] > 0.0,
            "the top-ranked irrelevant one falls most"
        );
        assert!((g.iter().sum::<f32>()).abs() < 1e-6);
        let (g, l) = lambdarank(&s, &[0, 0, 0]);
        assert_eq!((g, l), (vec![0.0; 3], 0.0));
    }

    #[test]
    fn pair_sampling_respects_labels_and_prefers_high_scores_when_dynamic() {
        let labels = [2u8, 1, 0, 0, 0];
        let scores = [0.0f32, 0.0, 10.0, 0.0, 0.0];
        let mut rng = rng::stream(1, 1, 0);
        let uni = sample_pairs(&scores, &labels, 50, PairSampling::Uniform, &mut rng);
        assert_eq!(uni.len(), 100);
        assert!(uni.iter().all(|&(i, j)| labels[i] > labels[j]));
        let dynamic = PairSampling::Dynamic { temperature: 1.0 };
        let dy = sample_pairs(&scores, &labels, 50, dynamic, &mut rng);
        let hits = dy.iter().filter(|&&(_, j)| j == 2).count();
        assert!(hits > 90, "{hits}");
    }

    #[test]
    fn policy_is_a_stable_distribution() {
        let p = policy(&[1e30, 0.0, -1e30], 0.2);
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert_eq!(p[0], 1.0);
        let mut rng = rng::stream(2, 2, 0);
        assert!((0..100).all(|_| draw(&[0.0, 1.0, 0.0], &mut rng) == 1));
    }
}
