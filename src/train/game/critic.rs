//! D's side of the game, for any scorer: the logistic loss of a real or a generated candidate
//! and the pair losses on real and generated pairs, as gradients with respect to D's scores.

use crate::model::policy::{sigmoid, softplus};
use crate::train::objective::{PairLoss, pairwise};

/// σ(s) in f32 without overflow (the MF critic trains in f32, like its parameters).
pub fn sigmoid_f32(s: f32) -> f32 {
    let e = (-s.abs()).exp();
    if s >= 0.0 {
        1.0 / (1.0 + e)
    } else {
        e / (1.0 + e)
    }
}

/// dLoss/ds of the logistic loss of a candidate with `label` (1 real, 0 generated), in f32.
pub fn logistic_slope_f32(s: f32, label: f32) -> f32 {
    sigmoid_f32(s) - label
}

/// (loss, dLoss/ds) of a real candidate with logit `s`: −log σ(s) = softplus(−s).
pub fn real(s: f64) -> (f64, f64) {
    (softplus(-s), -sigmoid(-s))
}

/// (loss, dLoss/ds) of a generated candidate with logit `s`: −log(1 − σ(s)) = softplus(s).
pub fn generated(s: f64) -> (f64, f64) {
    (softplus(s), sigmoid(s))
}

/// The pair loss on every real pair, plus `generated_weight` times the pair loss on the
/// generated pairs (each ranks a real candidate above G's). Returns the gradient and the loss.
pub fn pairs(
    d_scores: &[f32],
    real: &[(usize, usize)],
    generated: &[(usize, usize)],
    loss: PairLoss,
    generated_weight: f64,
) -> (Vec<f32>, f64) {
    let (mut grad, mut total) = pairwise(d_scores, real, loss);
    if !generated.is_empty() && generated_weight > 0.0 {
        let (g2, l2) = pairwise(d_scores, generated, loss);
        let w = generated_weight as f32;
        grad.iter_mut().zip(&g2).for_each(|(a, b)| *a += w * b);
        total += generated_weight * l2;
    }
    (grad, total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logistic_slopes_are_the_derivatives_of_the_losses() {
        let h = 1e-6;
        for s in [-5.0, -0.3, 0.0, 0.8, 7.0] {
            let (_, g) = real(s);
            let fd = (real(s + h).0 - real(s - h).0) / (2.0 * h);
            assert!((g - fd).abs() < 1e-6, "real {s}: {g} vs {fd}");
            let (_, g) = generated(s);
            let fd = (generated(s + h).0 - generated(s - h).0) / (2.0 * h);
            assert!((g - fd).abs() < 1e-6, "generated {s}: {g} vs {fd}");
            let g32 = logistic_slope_f32(s as f32, 1.0);
            assert!((f64::from(g32) - real(s).1).abs() < 1e-6);
        }
    }
}
