//! Blending two models' scores: standardise each model's scores (z-scores) and mix them with a
//! weight, so G's and D's different scales count equally.

/// `(mean, population std)` of the finite values of `x`, in f64; `None` when none is finite.
pub fn mean_std(x: &[f32]) -> Option<(f64, f64)> {
    let (mut n, mut sum) = (0usize, 0.0f64);
    for v in x.iter().filter(|v| v.is_finite()) {
        n += 1;
        sum += f64::from(*v);
    }
    if n == 0 {
        return None;
    }
    let mean = sum / n as f64;
    let ss: f64 = x
        .iter()
        .filter(|v| v.is_finite())
        .map(|&v| (f64::from(v) - mean).powi(2))
        .sum();
    Some((mean, (ss / n as f64).sqrt()))
}

/// A z-score map `z = (x − mean) / std` fitted on one list of scores.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Standardiser {
    mean: f64,
    inv_std: f64,
}

impl Standardiser {
    /// Fits on the finite values of `x`. When their std is 0 (or none is finite) every z-score
    /// is 0, so a model with constant scores contributes nothing to a blend.
    pub fn fit(x: &[f32]) -> Self {
        let Some((mean, std)) = mean_std(x) else {
            return Self::ZERO;
        };
        let inv = 1.0 / std;
        Self {
            mean,
            inv_std: if std > 0.0 && inv.is_finite() {
                inv
            } else {
                0.0
            },
        }
    }

    /// The map that sends every score to 0.
    pub const ZERO: Self = Self {
        mean: 0.0,
        inv_std: 0.0,
    };

    /// The z-score of `x`.
    pub fn z(&self, x: f32) -> f64 {
        (f64::from(x) - self.mean) * self.inv_std
    }
}

/// z-scores of a whole list, all 0 when the list is constant or holds a non-finite value (a
/// short candidate list has no meaningful spread to standardise by then).
pub fn z_scores(x: &[f32]) -> Vec<f64> {
    let spread = x
        .iter()
        .all(|v| v.is_finite())
        .then(|| mean_std(x))
        .flatten()
        .filter(|&(_, sd)| sd > 0.0);
    match spread {
        Some((mean, sd)) => x.iter().map(|&v| (f64::from(v) - mean) / sd).collect(),
        None => vec![0.0; x.len()],
    }
}

/// A blend weight made safe: clamped to `[0, 1]`, NaN counts as 0.5.
pub fn sanitize_weight(w: f64) -> f64 {
    if w.is_nan() { 0.5 } else { w.clamp(0.0, 1.0) }
}

/// `w · z_g + (1 − w) · z_d`: G's weight `w`, D's the rest.
pub fn mix(w: f64, z_g: f64, z_d: f64) -> f64 {
    w * z_g + (1.0 - w) * z_d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn z_scores_handle_constant_and_non_finite_lists() {
        assert_eq!(z_scores(&[2.0, 2.0]), vec![0.0, 0.0]);
        assert_eq!(z_scores(&[1.0, f32::NAN]), vec![0.0, 0.0]);
        let z = z_scores(&[1.0, 3.0]);
        assert!((z[0] + 1.0).abs() < 1e-12 && (z[1] - 1.0).abs() < 1e-12);
    }

    #[test]
    fn standardiser_ignores_non_finite_values() {
        let s = Standardiser::fit(&[1.0, f32::NAN, 3.0, f32::INFINITY]);
        assert!((s.z(1.0) + 1.0).abs() < 1e-12 && (s.z(3.0) - 1.0).abs() < 1e-12);
        assert_eq!(Standardiser::fit(&[5.0, 5.0]).z(7.0), 0.0);
        assert_eq!(Standardiser::fit(&[]), Standardiser::ZERO);
    }

    #[test]
    fn weights_are_clamped() {
        assert_eq!(sanitize_weight(f64::NAN), 0.5);
        assert_eq!(sanitize_weight(2.0), 1.0);
        assert_eq!(sanitize_weight(-1.0), 0.0);
        assert_eq!(mix(0.25, 4.0, 0.0), 1.0);
    }
}
