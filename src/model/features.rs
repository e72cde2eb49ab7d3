//! Feature-vector scorers for learning to rank: linear, and a one-hidden-layer MLP
//! (features → hidden, tanh or ReLU → 1). Either can play G or D.
//!
//! Parameters live in one flat `f32` vector so optimisers and snapshots treat every
//! architecture alike. Layouts (row-major):
//! - linear: `w [f]`, `b [1]`;
//! - MLP: `w1 [h, f]`, `b1 [h]`, `w2 [h]`, `b2 [1]`.
//!
//! Backward passes are written by hand and checked against finite differences in the tests.

use ndarray::linalg::general_mat_mul;
use ndarray::{Array2, ArrayView1, ArrayView2, ArrayViewMut1, ArrayViewMut2, Axis};
use serde::{Deserialize, Serialize};

use crate::rng::{self, Rng};

/// Hidden-layer non-linearity.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// Hyperbolic tangent (the paper's choice).
    Tanh,
    /// max(0, x).
    Relu,
}

/// The shape of a scorer.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Architecture {
    /// s(x) = w·x + b.
    Linear,
    /// s(x) = w2·act(W1 x + b1) + b2.
    Mlp {
        /// Hidden units.
        hidden: usize,
        /// Non-linearity.
        activation: Activation,
    },
}

impl Architecture {
    /// Parameters of this architecture for `f` input features.
    pub fn n_params(self, f: usize) -> usize {
        match self {
            Architecture::Linear => f + 1,
            Architecture::Mlp { hidden: h, .. } => h * f + 2 * h + 1,
        }
    }
}

/// A feature-vector scorer: architecture, input width and flat parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureScorer {
    /// The shape.
    pub arch: Architecture,
    /// Input features.
    pub n_features: usize,
    /// Flat parameters (layout in the module docs).
    pub params: Vec<f32>,
}

/// What a forward pass keeps for the backward pass.
#[derive(Debug, Clone)]
pub struct Forward {
    /// One score per input row.
    pub scores: Vec<f32>,
    /// The MLP's hidden activations `[n, h]` (empty for linear).
    hidden: Array2<f32>,
}

/// The feature scorer's former name (kept so callers outside `model` need not change).
pub type Scorer = FeatureScorer;

impl FeatureScorer {
    /// A freshly initialised scorer: Glorot-uniform weights, zero biases (a linear scorer starts
    /// with small uniform weights).
    pub fn new(arch: Architecture, n_features: usize, rng: &mut Rng) -> Self {
        let mut params = vec![0.0f32; arch.n_params(n_features)];
        let mut fill = |slice: &mut [f32], limit: f64| {
            for p in slice {
                *p = ((2.0 * rng::unit(rng) - 1.0) * limit) as f32;
            }
        };
        match arch {
            Architecture::Linear => fill(&mut params[..n_features], 0.01),
            Architecture::Mlp { hidden: h, .. } => {
                let f = n_features;
                fill(&mut params[..h * f], (6.0 / (f + h) as f64).sqrt());
                fill(
                    &mut params[h * f + h..h * f + 2 * h],
                    (6.0 / (h + 1) as f64).sqrt(),
                );
            }
        }
        Self {
            arch,
            n_features,
            params,
        }
    }

    /// Named tensors `(name, shape, values)` in layout order (for snapshots and inspection).
    pub fn tensors(&self) -> Vec<(&'static str, Vec<usize>, &[f32])> {
        let f = self.n_features;
        let p = &self.params;
        match self.arch {
            Architecture::Linear => vec![("w", vec![f], &p[..f]), ("b", vec![1], &p[f..])],
            Architecture::Mlp { hidden: h, .. } => vec![
                ("w1", vec![h, f], &p[..h * f]),
                ("b1", vec![h], &p[h * f..h * f + h]),
                ("w2", vec![h], &p[h * f + h..h * f + 2 * h]),
                ("b2", vec![1], &p[h * f + 2 * h..]),
            ],
        }
    }

    /// Scores of the rows of `x` (`[n, n_features]`).
    pub fn score(&self, x: ArrayView2<f32>) -> Vec<f32> {
        self.forward(x).scores
    }

    /// Forward pass keeping what [`FeatureScorer::backward`] needs.
    pub fn forward(&self, x: ArrayView2<f32>) -> Forward {
        assert_eq!(x.ncols(), self.n_features, "feature width");
        let f = self.n_features;
        let p = &self.params;
        match self.arch {
            Architecture::Linear => {
                let w = ArrayView1::from(&p[..f]);
                let b = p[f];
                let scores = x.dot(&w).iter().map(|s| s + b).collect();
                Forward {
                    scores,
                    hidden: Array2::zeros((0, 0)),
                }
            }
            Architecture::Mlp {
                hidden: h,
                activation,
            } => {
                let (w1, b1, w2, b2) = mlp_views(p, f, h);
                let mut z = x.dot(&w1.t());
                z += &b1;
                match activation {
                    Activation::Tanh => z.mapv_inplace(f32::tanh),
                    Activation::Relu => z.mapv_inplace(|v| v.max(0.0)),
                }
                let scores = z.dot(&w2).iter().map(|s| s + b2).collect();
                Forward { scores, hidden: z }
            }
        }
    }

    /// Adds `Σ_n dscore[n] · ∂score[n]/∂params` to `grad` (same layout as `params`).
    pub fn backward(&self, x: ArrayView2<f32>, fwd: &Forward, dscore: &[f32], grad: &mut [f32]) {
        assert_eq!(dscore.len(), x.nrows(), "one gradient per row");
        assert_eq!(grad.len(), self.params.len(), "gradient layout");
        let f = self.n_features;
        let ds = ArrayView1::from(dscore);
        match self.arch {
            Architecture::Linear => {
                let mut gw = ArrayViewMut1::from(&mut grad[..f]);
                gw.scaled_add(1.0, &x.t().dot(&ds));
                grad[f] += ds.sum();
            }
            Architecture::Mlp {
                hidden: h,
                activation,
            } => {
                let (_, _, w2, _) = mlp_views(&self.params, f, h);
                let hid = &fwd.hidden;
                let (gw1, rest) = grad.split_at_mut(h * f);
                let (gb1, rest) = rest.split_at_mut(h);
                let (gw2, gb2) = rest.split_at_mut(h);
                ArrayViewMut1::from(gw2).scaled_add(1.0, &hid.t().dot(&ds));
                gb2[0] += ds.sum();
                // dZ = (ds ⊗ w2) ⊙ act'(Z), with act' read off the activations.
                let mut dz = Array2::from_shape_fn((x.nrows(), h), |(n, j)| dscore[n] * w2[j]);
                match activation {
                    Activation::Tanh => dz.zip_mut_with(hid, |d, &a| *d *= 1.0 - a * a),
                    Activation::Relu => dz.zip_mut_with(hid, |d, &a| {
                        if a <= 0.0 {
                            *d = 0.0
                        }
                    }),
                }
                ArrayViewMut1::from(gb1).scaled_add(1.0, &dz.sum_axis(Axis(0)));
                #[allow(
                    clippy::expect_used,
                    reason = "gw1 is a contiguous slice of exactly h·f"
                )]
                let mut gw1 = ArrayViewMut2::from_shape((h, f), gw1).expect("layout");
                general_mat_mul(1.0, &dz.t(), &x, 1.0, &mut gw1);
            }
        }
    }

    /// True when every parameter is finite.
    pub fn is_finite(&self) -> bool {
        self.params.iter().all(|p| p.is_finite())
    }
}

fn mlp_views(
    p: &[f32],
    f: usize,
    h: usize,
) -> (
    ArrayView2<'_, f32>,
    ArrayView1<'_, f32>,
    ArrayView1<'_, f32>,
    f32,
) {
    #[allow(clippy::expect_used, reason = "a contiguous slice of exactly h·f")]
    let w1 = ArrayView2::from_shape((h, f), &p[..h * f]).expect("layout");
    let b1 = ArrayView1::from(&p[h * f..h * f + h]);
    let w2 = ArrayView1::from(&p[h * f + h..h * f + 2 * h]);
    (w1, b1, w2, p[h * f + 2 * h])
}

/// Adam (or plain SGD when `adam` is false) over a flat parameter vector, with L2 decay added
/// to the gradient.
#[derive(Debug, Clone)]
pub struct FlatOptimizer {
    lr: f32,
    l2: f32,
    adam: bool,
    m: Vec<f32>,
    v: Vec<f32>,
    t: i32,
}

impl FlatOptimizer {
    /// Adam with β = (0.9, 0.999) or SGD, for `n` parameters.
    pub fn new(adam: bool, lr: f32, l2: f32, n: usize) -> Self {
        Self {
            lr,
            l2,
            adam,
            m: vec![0.0; if adam { n } else { 0 }],
            v: vec![0.0; if adam { n } else { 0 }],
            t: 0,
        }
    }

    /// One descent step along `grad` (a gradient of the loss to minimise).
    pub fn step(&mut self, params: &mut [f32], grad: &[f32]) {
        const B1: f32 = 0.9;
        const B2: f32 = 0.999;
        const EPS: f32 = 1e-8;
        if !self.adam {
            for (p, g) in params.iter_mut().zip(grad) {
                *p -= self.lr * (g + self.l2 * *p);
            }
            return;
        }
        self.t += 1;
        let c1 = 1.0 - B1.powi(self.t);
        let c2 = 1.0 - B2.powi(self.t);
        for i in 0..params.len() {
            let g = grad[i] + self.l2 * params[i];
            self.m[i] = B1 * self.m[i] + (1.0 - B1) * g;
            self.v[i] = B2 * self.v[i] + (1.0 - B2) * g * g;
            params[i] -= self.lr * (self.m[i] / c1) / ((self.v[i] / c2).sqrt() + EPS);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random_input(n: usize, f: usize, seed: u64) -> Array2<f32> {
        let mut r = rng::stream(seed, 1, 0);
        Array2::from_shape_fn((n, f), |_| (2.0 * rng::unit(&mut r) - 1.0) as f32)
    }

    /// loss = Σ_n c_n · s_n, evaluated in f64 from the f32 scores.
    fn loss(s: &Scorer, x: &Array2<f32>, c: &[f32]) -> f64 {
        s.score(x.view())
            .iter()
            .zip(c)
            .map(|(a, b)| f64::from(*a) * f64::from(*b))
            .sum()
    }

    fn check_gradient(arch: Architecture) {
        let (n, f) = (7, 5);
        let mut s = Scorer::new(arch, f, &mut rng::stream(9, 2, 0));
        // Non-zero biases so their paths are exercised too.
        for p in s.params.iter_mut() {
            *p += 0.1;
        }
        let x = random_input(n, f, 4);
        let c: Vec<f32> = (0..n).map(|i| (i as f32 - 3.0) / 3.0).collect();
        let fwd = s.forward(x.view());
        let mut grad = vec![0.0; s.params.len()];
        s.backward(x.view(), &fwd, &c, &mut grad);
        let eps = 1e-2f32;
        for (i, &analytic) in grad.iter().enumerate() {
            let orig = s.params[i];
            s.params[i] = orig + eps;
            let up = loss(&s, &x, &c);
            s.params[i] = orig - eps;
            let down = loss(&s, &x, &c);
            s.params[i] = orig;
            let numeric = (up - down) / (2.0 * f64::from(eps));
            let analytic = f64::from(analytic);
            assert!(
                (numeric - analytic).abs() <= 2e-3 * (1.0 + numeric.abs()),
                "{arch:?} param {i}: analytic {analytic} vs numeric {numeric}"
            );
        }
    }

    #[test]
    fn linear_backward_matches_finite_differences() {
        check_gradient(Architecture::Linear);
    }

    #[test]
    fn tanh_mlp_backward_matches_finite_differences() {
        check_gradient(Architecture::Mlp {
            hidden: 4,
            activation: Activation::Tanh,
        });
    }

    #[test]
    fn relu_mlp_backward_matches_finite_differences() {
        // Central differences are meaningless across ReLU's kink; with this seed no
        // pre-activation lies within eps of 0, and a kink would fail the check, not pass it.
        check_gradient(Architecture::Mlp {
            hidden: 3,
            activation: Activation::Relu,
        });
    }

    #[test]
    fn backward_accumulates() {
        let arch = Architecture::Mlp {
            hidden: 3,
            activation: Activation::Tanh,
        };
        let s = Scorer::new(arch, 4, &mut rng::stream(1, 2, 3));
        let x = random_input(5, 4, 8);
        let fwd = s.forward(x.view());
        let c = [1.0, -1.0, 0.5, 0.0, 2.0];
        let mut once = vec![0.0; s.params.len()];
        s.backward(x.view(), &fwd, &c, &mut once);
        let mut twice = once.clone();
        s.backward(x.view(), &fwd, &c, &mut twice);
        for (a, b) in once.iter().zip(&twice) {
            assert!((2.0 * a - b).abs() < 1e-5);
        }
    }

    #[test]
    fn adam_minimises_a_quadratic() {
        let mut p = vec![3.0f32, -2.0];
        let mut opt = FlatOptimizer::new(true, 0.1, 0.0, 2);
        for _ in 0..500 {
            let g: Vec<f32> = p.iter().map(|x| 2.0 * x).collect();
            opt.step(&mut p, &g);
        }
        assert!(p.iter().all(|x| x.abs() < 1e-2), "{p:?}");
        let mut q = vec![1.0f32];
        FlatOptimizer::new(false, 0.5, 0.0, 1).step(&mut q, &[1.0]);
        assert_eq!(q, vec![0.5]);
    }
}
