//! One user's scores from a G/D pair of MF models over their shared catalogue, safe for any user
//! or item index: what every query of the service starts from.

use crate::model::MfModel;
use crate::model::policy;

/// Items a model can score: rows of its item factors that also have a bias.
pub fn catalogue_len(model: &MfModel) -> usize {
    model.n_items().min(model.bias.len())
}

/// True when `user` has a row in `model`'s user factors that [`MfModel::scores_into`] can read.
pub fn has_user(model: &MfModel, user: u32) -> bool {
    (user as usize) < model.n_users()
        && model.user.as_slice().is_some()
        && model.user.ncols() == model.item.ncols()
}

/// `model`'s raw scores for `user` (or the zero user: the bias), NaN where unavailable.
pub fn raw_scores(model: &MfModel, user: Option<usize>) -> Vec<f32> {
    let n = catalogue_len(model);
    let mut out = vec![f32::NAN; n];
    match user {
        // `has_user` was checked by the caller, so `scores_into` cannot go out of bounds.
        Some(u) if u < model.n_users() && model.user.as_slice().is_some() => {
            model.scores_into(u, &mut out);
        }
        _ => {
            for (o, &b) in out.iter_mut().zip(&model.bias) {
                *o = b;
            }
        }
    }
    out
}

/// One user's (or the zero user's) scores from G and D over the catalogue.
#[derive(Debug, Clone)]
pub struct PairScores {
    /// G's raw scores `s_G` (NaN where unavailable), G's whole catalogue.
    pub g_raw: Vec<f32>,
    /// G's log-probabilities at the policy temperature (−∞ for impossible items).
    pub g_logp: Vec<f64>,
    /// D's raw logits `f_D` (NaN where unavailable), D's whole catalogue.
    pub d_raw: Vec<f32>,
    /// Catalogue size: items both models cover.
    pub n: usize,
    /// G's softmax normaliser `(max, ln Σ exp(z − max))` ([`policy::log_softmax_parts`]);
    /// `None` when no score is finite.
    pub g_normaliser: Option<(f64, f64)>,
}

impl PairScores {
    /// Scores of `user` (checked with [`has_user`] on both models) or of the zero user, with
    /// G's policy at `temperature` (already sanitised).
    pub fn new(g: &MfModel, d: &MfModel, temperature: f64, user: Option<usize>) -> Self {
        let n = catalogue_len(g).min(catalogue_len(d));
        Self::from_raw(raw_scores(g, user), raw_scores(d, user), temperature, n)
    }

    /// Scores from raw score rows already computed (G's and D's whole catalogues, e.g. by
    /// [`crate::model::topk::exact`]), `n` the shared catalogue size.
    pub fn from_raw(g_raw: Vec<f32>, d_raw: Vec<f32>, temperature: f64, n: usize) -> Self {
        let mut g_logp = vec![f64::NEG_INFINITY; g_raw.len()];
        let g_normaliser = policy::log_softmax_parts(&g_raw, temperature, &mut g_logp);
        if g_normaliser.is_none() {
            g_logp.fill(f64::NEG_INFINITY);
        }
        Self {
            n: n.min(g_raw.len()).min(d_raw.len()),
            g_raw,
            g_logp,
            d_raw,
            g_normaliser,
        }
    }

    /// Whether item `i < n` has finite scores from both models.
    pub fn valid(&self, i: usize) -> bool {
        self.g_logp[i].is_finite() && self.d_raw[i].is_finite()
    }

    /// D's probability that `(user, i)` is real, `σ(f_D)`.
    pub fn discriminator(&self, i: usize) -> f64 {
        policy::sigmoid(f64::from(self.d_raw[i]))
    }
}
