//! The scorer trait both players of both tasks implement: the scores of a context's candidates,
//! and the backward pass of a score gradient into the scorer's parameter gradient. The game
//! (`train::game`) only sees scores and score gradients, so any scorer can play G or D.

use ndarray::{Array1, Array2, ArrayView2};

use crate::model::features::{FeatureScorer, Forward};
use crate::model::mf::MfModel;

/// A model that scores the candidates of a context.
pub trait Scorer {
    /// What is scored: a user (whose candidates are the catalogue's items), a query's feature
    /// matrix (whose candidates are its documents).
    type Context<'c>: Copy;
    /// What a forward pass keeps for the backward pass (at least the scores).
    type Forward;
    /// A parameter gradient.
    type Grad;

    /// Number of candidates of `ctx`.
    fn n_candidates(&self, ctx: Self::Context<'_>) -> usize;

    /// The forward pass over every candidate of `ctx`.
    fn forward_context(&self, ctx: Self::Context<'_>) -> Self::Forward;

    /// The scores a forward pass computed, one per candidate.
    fn forward_scores(fwd: &Self::Forward) -> &[f32];

    /// Score of the candidate in position `candidate`.
    fn score_candidate(&self, ctx: Self::Context<'_>, candidate: usize) -> f32;

    /// A zero gradient shaped like the parameters.
    fn zero_grad(&self) -> Self::Grad;

    /// Adds `Σ_j dscores[j] · ∂s_j/∂θ` to `grad`.
    fn backward_context(
        &self,
        ctx: Self::Context<'_>,
        fwd: &Self::Forward,
        dscores: &[f32],
        grad: &mut Self::Grad,
    );
}

/// MF: the context is a user, the candidates are the catalogue's items.
impl Scorer for MfModel {
    type Context<'c> = usize;
    type Forward = Vec<f32>;
    /// A dense gradient with the model's shapes.
    type Grad = MfModel;

    fn n_candidates(&self, _user: usize) -> usize {
        self.n_items()
    }

    fn forward_context(&self, user: usize) -> Vec<f32> {
        self.scores(user)
    }

    fn forward_scores(fwd: &Vec<f32>) -> &[f32] {
        fwd
    }

    fn score_candidate(&self, user: usize, item: usize) -> f32 {
        self.score(user, item)
    }

    fn zero_grad(&self) -> MfModel {
        MfModel {
            user: Array2::zeros(self.user.raw_dim()),
            item: Array2::zeros(self.item.raw_dim()),
            bias: Array1::zeros(self.bias.raw_dim()),
        }
    }

    /// ∂s_j/∂P_u = Q_j, ∂s_j/∂Q_j = P_u, ∂s_j/∂b_j = 1.
    fn backward_context(&self, user: usize, _fwd: &Vec<f32>, dscores: &[f32], grad: &mut MfModel) {
        let mut gu = vec![0.0f32; self.dim()];
        self.weighted_item_sum(dscores, &mut gu);
        grad.user
            .row_mut(user)
            .iter_mut()
            .zip(&gu)
            .for_each(|(g, &x)| *g += x);
        let pu = self.user_row(user);
        for (j, &ds) in dscores.iter().enumerate() {
            grad.item
                .row_mut(j)
                .iter_mut()
                .zip(pu)
                .for_each(|(g, &p)| *g += ds * p);
            grad.bias[j] += ds;
        }
    }
}

/// Feature scorers: the context is a query's feature matrix, the candidates its documents.
impl Scorer for FeatureScorer {
    type Context<'c> = ArrayView2<'c, f32>;
    type Forward = Forward;
    /// Flat, in the layout of `params`.
    type Grad = Vec<f32>;

    fn n_candidates(&self, x: ArrayView2<'_, f32>) -> usize {
        x.nrows()
    }

    fn forward_context(&self, x: ArrayView2<'_, f32>) -> Forward {
        self.forward(x)
    }

    fn forward_scores(fwd: &Forward) -> &[f32] {
        &fwd.scores
    }

    fn score_candidate(&self, x: ArrayView2<'_, f32>, doc: usize) -> f32 {
        self.forward(x.slice(ndarray::s![doc..=doc, ..])).scores[0]
    }

    fn zero_grad(&self) -> Vec<f32> {
        vec![0.0; self.params.len()]
    }

    fn backward_context(
        &self,
        x: ArrayView2<'_, f32>,
        fwd: &Forward,
        dscores: &[f32],
        grad: &mut Vec<f32>,
    ) {
        self.backward(x, fwd, dscores, grad);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::features::Architecture;
    use crate::rng;

    /// Σ_j c_j s_j through the trait, for a finite-difference check of `backward_context`.
    fn weighted<S: Scorer>(s: &S, ctx: S::Context<'_>, c: &[f32]) -> f64 {
        let fwd = s.forward_context(ctx);
        S::forward_scores(&fwd)
            .iter()
            .zip(c)
            .map(|(&a, &b)| f64::from(a) * f64::from(b))
            .sum()
    }

    #[test]
    fn mf_backward_matches_finite_differences() {
        let m = MfModel::random(3, 5, 4, 0.5, &mut rng::stream(1, 0, 0));
        let c = [0.5f32, -1.0, 0.25, 2.0, -0.75];
        let u = 1;
        let mut grad = m.zero_grad();
        m.backward_context(u, &m.forward_context(u), &c, &mut grad);
        let h = 1e-2f32;
        for k in 0..4 {
            let (mut plus, mut minus) = (m.clone(), m.clone());
            plus.user[(u, k)] += h;
            minus.user[(u, k)] -= h;
            let fd = (weighted(&plus, u, &c) - weighted(&minus, u, &c)) / (2.0 * f64::from(h));
            assert!((fd - f64::from(grad.user[(u, k)])).abs() < 1e-3);
        }
        for (j, &cj) in c.iter().enumerate() {
            assert_eq!(grad.bias[j], cj);
            assert!((grad.item[(j, 0)] - cj * m.user[(u, 0)]).abs() < 1e-6);
        }
        assert_eq!(m.score_candidate(u, 3), m.forward_context(u)[3]);
    }

    #[test]
    fn feature_scorer_trait_agrees_with_its_own_passes() {
        let s = FeatureScorer::new(Architecture::Linear, 3, &mut rng::stream(2, 0, 0));
        let x = Array2::from_shape_fn((4, 3), |(i, j)| (i as f32 - j as f32) * 0.3);
        let fwd = s.forward_context(x.view());
        assert_eq!(FeatureScorer::forward_scores(&fwd), &s.score(x.view())[..]);
        assert!((s.score_candidate(x.view(), 2) - fwd.scores[2]).abs() < 1e-6);
        let mut a = s.zero_grad();
        s.backward_context(x.view(), &fwd, &[1.0, 0.0, -1.0, 0.5], &mut a);
        let mut b = vec![0.0; s.params.len()];
        s.backward(x.view(), &fwd, &[1.0, 0.0, -1.0, 0.5], &mut b);
        assert_eq!(a, b);
        assert_eq!(s.n_candidates(x.view()), 4);
    }
}
