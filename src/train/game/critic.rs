//! D's side of the game, for any scorer: the logistic loss of a real or a generated candidate
//! and the pair losses on real and generated pairs, as gradients with respect to D's scores.

use crate::model::policy::{sigmoid, softplus};
use crate::train::objective::{PairLoss, pairwise};
use crate::train::settings::CriticLoss;

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

/// dLoss/ds⁺ and dLoss/ds⁻ of a (positive, generated) pair of logits under `loss`, in f32:
/// each item's own logistic loss, or the pair loss −log σ(s⁺ − s⁻).
pub fn triple_slopes_f32(s_pos: f32, s_neg: f32, loss: CriticLoss) -> (f32, f32) {
    match loss {
        CriticLoss::Logistic => (
            logistic_slope_f32(s_pos, 1.0),
            logistic_slope_f32(s_neg, 0.0),
        ),
        CriticLoss::Pairwise => {
            let g = sigmoid_f32(s_neg - s_pos);
            (-g, g)
        }
    }
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

    #[test]
    fn pair_slopes_are_the_derivatives_of_the_pair_loss() {
        let loss = |p: f64, n: f64| softplus(-(p - n));
        let h = 1e-4;
        for (p, n) in [(0.3f64, -0.2f64), (-1.0, 2.0), (4.0, 4.5)] {
            let (gp, gn) = triple_slopes_f32(p as f32, n as f32, CriticLoss::Pairwise);
            let fp = (loss(p + h, n) - loss(p - h, n)) / (2.0 * h);
            let fn_ = (loss(p, n + h) - loss(p, n - h)) / (2.0 * h);
            assert!((f64::from(gp) - fp).abs() < 1e-4 && (f64::from(gn) - fn_).abs() < 1e-4);
        }
        let (gp, gn) = triple_slopes_f32(0.5, -0.5, CriticLoss::Logistic);
        assert_eq!(
            (gp, gn),
            (logistic_slope_f32(0.5, 1.0), logistic_slope_f32(-0.5, 0.0))
        );
    }
}
