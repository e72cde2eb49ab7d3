//! Exploration with G's policy: Gumbel-top-k draws without replacement and the first-draw
//! propensities an off-policy estimator needs; policy temperatures made safe.

use crate::model::policy;
use crate::rng;

/// The smallest temperature used; smaller positive temperatures are raised to it.
pub const MIN_TEMPERATURE: f64 = 1e-30;

/// `t` floored at [`MIN_TEMPERATURE`] (so `s / t` cannot overflow f64), or `fallback` when `t`
/// is non-finite or non-positive.
pub fn sanitize_temperature(t: f64, fallback: f64) -> f64 {
    if t.is_finite() && t > 0.0 {
        t.max(MIN_TEMPERATURE)
    } else {
        fallback
    }
}

/// A standard Gumbel draw `−ln(−ln U)`, `U` uniform in the open interval (0, 1); always finite
/// (within about [−3.6, 37.5]).
pub fn gumbel(r: &mut rng::Rng) -> f64 {
    // unit() is a multiple of 2^-53 in [0, 1); adding 2^-54 lands strictly inside (0, 1).
    let u = rng::unit(r) + f64::from_bits(0x3c90_0000_0000_0000); // 2^-54
    -(-u.ln()).ln()
}

/// The softmax normaliser of a set of logits: `(max, ln Σ exp(z − max))`, so that an item's
/// log-probability is `(z − max) − ln_sum`. `None` when no logit is finite (nothing to draw).
///
/// `ln_sum >= 0` (the maximum contributes `exp(0)`), so every log-probability is `<= 0`.
pub fn log_normaliser(logits: impl Iterator<Item = f64> + Clone) -> Option<(f64, f64)> {
    let max = logits.clone().fold(f64::NEG_INFINITY, f64::max);
    if !max.is_finite() {
        return None;
    }
    let sum: f64 = logits.map(|z| policy::exp_nonpositive(z - max)).sum();
    Some((max, sum.ln()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temperatures_fall_back_and_are_floored() {
        assert_eq!(sanitize_temperature(0.5, 1.0), 0.5);
        assert_eq!(sanitize_temperature(1e-300, 1.0), MIN_TEMPERATURE);
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert_eq!(sanitize_temperature(bad, 2.0), 2.0);
        }
    }

    #[test]
    fn gumbel_draws_are_finite() {
        let mut r = rng::stream(1, 2, 3);
        assert!((0..10_000).map(|_| gumbel(&mut r)).all(f64::is_finite));
    }

    #[test]
    fn normaliser_gives_log_probabilities() {
        let (max, ln_sum) = log_normaliser([0.0, 2f64.ln()].into_iter()).unwrap();
        assert_eq!(max, 2f64.ln());
        assert!(((0.0 - max) - ln_sum - (1.0f64 / 3.0).ln()).abs() < 1e-12);
        assert!(log_normaliser(std::iter::empty()).is_none());
    }
}
