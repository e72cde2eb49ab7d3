//! The queries of [`super`] answered from score rows a caller already has (a batch of users
//! scored by one GEMM) and per-user statistics it caches (G's normaliser, the blend's
//! standardisers): no pass over the catalogue is repeated, and a model whose row is not needed
//! is only read for the items returned (one dot product each).
//!
//! Results equal [`super::recommend`], [`super::explore`] and [`super::rank`] on the same scores;
//! rows from a GEMM may differ from a one-user pass in the last bits.

use crate::model::blend::{self, Standardiser};
use crate::model::policy;
use crate::model::topk::exact::Running;
use crate::model::topk::{rank_order, select_top};
use crate::online::query::{
    self, ModelChoice, QueryModel, Scored, explore_mask, explore_rng, sampler, sorted,
};

/// One user's scores as far as a batch computed them: full rows of G and/or D, and G's softmax
/// normaliser (`None` when no G score is finite: then no item is a candidate).
#[derive(Debug, Clone, Copy)]
pub struct UserRows<'a> {
    /// A user both models know ([`QueryModel::knows_user`]), or `None` for the zero user.
    pub user: Option<u32>,
    /// G's raw scores over G's catalogue, when computed.
    pub g: Option<&'a [f32]>,
    /// D's raw logits over D's catalogue, when computed.
    pub d: Option<&'a [f32]>,
    /// G's normaliser at the model's temperature ([`normaliser`] of G's row).
    pub normaliser: Option<(f64, f64)>,
    /// Every D score of this user is known to be finite (see `Live::d_scores_finite`), so
    /// sampling need not read D for every item.
    pub d_finite: bool,
}

impl UserRows<'_> {
    fn g(&self, m: &QueryModel, i: usize) -> f32 {
        raw(m.generator, self.g, self.user, i)
    }

    fn d(&self, m: &QueryModel, i: usize) -> f32 {
        raw(m.discriminator, self.d, self.user, i)
    }

    /// G's log-probability of item `i` (−∞ when impossible).
    fn logp(&self, m: &QueryModel, g: f32) -> f64 {
        self.normaliser.map_or(f64::NEG_INFINITY, |parts| {
            policy::log_prob(g, m.temperature(), parts)
        })
    }

    /// The entry of item `i` when it is a candidate (both scores finite), its `score` chosen by
    /// `score(logp, d)`.
    fn scored(
        &self,
        m: &QueryModel,
        i: usize,
        score: impl Fn(f64, f32) -> f64,
        propensity: Option<f64>,
    ) -> Option<Scored> {
        let (g, d) = (self.g(m, i), self.d(m, i));
        let logp = self.logp(m, g);
        (i < m.n_items() && logp.is_finite() && d.is_finite()).then(|| Scored {
            item: i as u32,
            score: score(logp, d),
            generator: logp,
            discriminator: policy::sigmoid(f64::from(d)),
            propensity,
        })
    }
}

/// A model's raw score of item `i` for `user`: from the row when there is one, else one dot
/// product (or the bias, for the zero user); NaN outside the catalogue.
fn raw(model: &crate::model::MfModel, row: Option<&[f32]>, user: Option<u32>, i: usize) -> f32 {
    if let Some(r) = row {
        return r.get(i).copied().unwrap_or(f32::NAN);
    }
    if i >= model.n_items() || i >= model.bias.len() {
        return f32::NAN;
    }
    match user {
        Some(u) if (u as usize) < model.n_users() => model.score(u as usize, i),
        _ => model.bias[i],
    }
}

/// G's softmax normaliser `(max, ln Σ exp(z − max))` of a row of raw scores at `temperature`,
/// bit for bit what [`policy::log_softmax_parts`] returns, without writing the log-probabilities.
pub fn normaliser(g_row: &[f32], temperature: f64) -> Option<(f64, f64)> {
    let inv_t = 1.0 / temperature;
    let z = |s: f32| {
        if s.is_finite() {
            f64::from(s) * inv_t
        } else {
            f64::NEG_INFINITY
        }
    };
    let max = policy::lane_max(g_row, z);
    if !max.is_finite() {
        return None;
    }
    let sum = policy::lane_sum(g_row, |s| policy::softmax_term(z(s) - max));
    Some((max, sum.ln()))
}

/// `parts` (a normaliser of some items, `None` when none was finite) extended by the raw G
/// scores `more` of further items: the normaliser of both sets together, as [`normaliser`]
/// of the whole row would give it up to rounding.
pub fn extend_normaliser(
    parts: Option<(f64, f64)>,
    more: &[f32],
    temperature: f64,
) -> Option<(f64, f64)> {
    let Some(added) = normaliser(more, temperature) else {
        return parts;
    };
    let Some((max, ln_sum)) = parts else {
        return Some(added);
    };
    let top = max.max(added.0);
    let sum = policy::exp_nonpositive(max - top) * ln_sum.exp()
        + policy::exp_nonpositive(added.0 - top) * added.1.exp();
    Some((top, sum.ln()))
}

/// The entries of `items` for a known user, in the given order, each scored with one dot
/// product per model (no pass over the catalogue), paired with the key `model` ranks by: G's
/// log-probability, D's logit, or the blend (which needs `stats`). Items that are not
/// candidates (a non-finite score, outside the catalogue) are left out.
fn keyed(
    m: &QueryModel,
    r: &UserRows,
    model: ModelChoice,
    items: impl IntoIterator<Item = u32>,
    stats: Option<(Standardiser, Standardiser)>,
) -> Vec<(f64, Scored)> {
    let w = blend::sanitize_weight(m.blend_weight);
    items
        .into_iter()
        .filter_map(|i| {
            let (g, d) = (r.g(m, i as usize), r.d(m, i as usize));
            let key = match model {
                ModelChoice::Generator => r.logp(m, g),
                ModelChoice::Discriminator => f64::from(d),
                ModelChoice::Blend => {
                    let (sg, sd) = stats?;
                    blend::mix(w, sg.z(g), sd.z(d)) + 0.0
                }
            };
            let score = |logp: f64, d: f32| match model {
                ModelChoice::Generator => logp,
                ModelChoice::Discriminator => policy::sigmoid(f64::from(d)),
                ModelChoice::Blend => key,
            };
            let e = r.scored(m, i as usize, score, None)?;
            key.is_finite().then_some((key, e))
        })
        .collect()
}

/// The entries of a cached top list (`items`, best first) as [`top`] reports them for
/// `model`: each item scored with one dot product per model.
pub fn entries(
    m: &QueryModel,
    r: &UserRows,
    model: ModelChoice,
    items: &[u32],
    stats: Option<(Standardiser, Standardiser)>,
) -> Vec<Scored> {
    keyed(m, r, model, items.iter().copied(), stats)
        .into_iter()
        .map(|(_, e)| e)
        .collect()
}

/// The top `k` by `model` among `items` (ties to the lower index), each scored with one dot
/// product per model: what [`top`] returns when `items` hold the user's whole top `k` over the
/// catalogue (an earlier top list plus the items added since, say).
pub fn top_among(
    m: &QueryModel,
    r: &UserRows,
    model: ModelChoice,
    items: impl IntoIterator<Item = u32>,
    k: usize,
    stats: Option<(Standardiser, Standardiser)>,
) -> Vec<Scored> {
    let mut keyed = keyed(m, r, model, items, stats);
    keyed.sort_by(|a, b| rank_order(&(a.0, a.1.item), &(b.0, b.1.item)));
    keyed.into_iter().take(k).map(|(_, e)| e).collect()
}

/// The blend's standardisers of G's and D's raw scores over the shared catalogue (`n` items),
/// as [`super::recommend`] fits them.
pub fn blend_stats(g_row: &[f32], d_row: &[f32], n: usize) -> (Standardiser, Standardiser) {
    (
        Standardiser::fit(&g_row[..n.min(g_row.len())]),
        Standardiser::fit(&d_row[..n.min(d_row.len())]),
    )
}

/// [`super::recommend`] for a known user from its rows: G's or D's top `k` need that model's
/// row; the blend needs both rows and its `stats` ([`blend_stats`]).
pub fn top(
    m: &QueryModel,
    r: &UserRows,
    model: ModelChoice,
    k: usize,
    exclude: &[u32],
    stats: Option<(Standardiser, Standardiser)>,
) -> Vec<Scored> {
    let u = r.user.unwrap_or(u32::MAX);
    if k == 0 {
        return Vec::new();
    }
    let exclude = sorted(exclude);
    let n = m.n_items();
    let row = match model {
        ModelChoice::Generator => r.g,
        ModelChoice::Discriminator => r.d,
        ModelChoice::Blend => None,
    };
    if let Some(row) = row {
        // Over-fetch from the ranked model's row so items without a finite score from the other
        // model can be dropped; rank fully when too many are.
        let fetch = k.saturating_add(16).min(n);
        let mut running = Running::new(fetch.max(1));
        running.offer(&row[..n.min(row.len())], 0, &exclude);
        let proposed = running.finish();
        let score = |logp: f64, d: f32| match model {
            ModelChoice::Generator => logp,
            _ => policy::sigmoid(f64::from(d)),
        };
        let out: Vec<Scored> = proposed
            .iter()
            .filter_map(|&i| r.scored(m, i as usize, score, None))
            .take(k)
            .collect();
        if out.len() == k || proposed.len() < fetch {
            return out;
        }
        return query::recommend(m, u, k, model, &exclude);
    }
    let (Some(g), Some(d), Some((sg, sd))) = (r.g, r.d, stats) else {
        return query::recommend(m, u, k, model, &exclude);
    };
    // The blend: every candidate's key in f32 (NaN when not a candidate), a running top of
    // k + 16 by it, then the exact f64 keys of those, as in `recommend`. Only items within
    // f32 rounding of the k-th key could be ordered differently, and 16 spare places absorb
    // them.
    let w = blend::sanitize_weight(m.blend_weight);
    let has_norm = r.normaliser.is_some();
    let key = |i: usize| {
        if has_norm && g[i].is_finite() && d[i].is_finite() {
            blend::mix(w, sg.z(g[i]), sd.z(d[i])) + 0.0
        } else {
            f64::NAN
        }
    };
    let approx: Vec<f32> = (0..n).map(|i| key(i) as f32).collect();
    let fetch = k.saturating_add(16).min(n).max(1);
    let mut running = Running::new(fetch);
    running.offer(&approx, 0, &exclude);
    let mut keys: Vec<(f64, u32)> = running
        .finish()
        .into_iter()
        .map(|i| (key(i as usize), i))
        .filter(|e| e.0.is_finite())
        .collect();
    select_top(&mut keys, k);
    keys.iter()
        .filter_map(|&(b, i)| r.scored(m, i as usize, |_, _| b, None))
        .collect()
}

/// [`super::explore`] from G's row (the zero user's: G's bias) and cached normaliser.
pub fn explore(
    m: &QueryModel,
    r: &UserRows,
    k: usize,
    temperature: f64,
    seed: u64,
    exclude: &[u32],
) -> Vec<Scored> {
    let (Some(g), Some(_)) = (r.g, r.normaliser) else {
        return Vec::new(); // no finite G score: nothing to draw
    };
    let n = m.n_items().min(g.len());
    // D's row is not computed for explore: its scores are read only when they might not be
    // finite (G's non-finite scores are no candidates either way).
    let d_valid = |i: usize| r.d(m, i).is_finite();
    let valid = (!r.d_finite).then_some(&d_valid as &dyn Fn(usize) -> bool);
    let (inv_t, unavailable) = explore_mask(m, temperature, n, exclude, valid);
    let user = r.user.unwrap_or(u32::MAX);
    sampler::draw(&g[..n], inv_t, unavailable, k, &mut explore_rng(seed, user))
        .into_iter()
        .filter_map(|(i, log_p)| r.scored(m, i as usize, |_, _| log_p, Some(log_p.exp())))
        .collect()
}

/// [`super::rank`] reading only the candidates' scores: G's log-probability needs the user's
/// `normaliser` (cached per snapshot), the blend its `stats` over the whole catalogue.
pub fn rank(
    m: &QueryModel,
    r: &UserRows,
    candidates: &[u32],
    model: ModelChoice,
    stats: (Standardiser, Standardiser),
) -> Vec<Scored> {
    let w = blend::sanitize_weight(m.blend_weight);
    let (sg, sd) = stats;
    let mut out: Vec<(f64, Scored)> = candidates
        .iter()
        .filter_map(|&i| {
            let i = i as usize;
            let g = r.g(m, i);
            let score = |logp: f64, d: f32| match model {
                ModelChoice::Generator => logp,
                ModelChoice::Discriminator => policy::sigmoid(f64::from(d)),
                ModelChoice::Blend => blend::mix(w, sg.z(g), sd.z(d)),
            };
            let s = r.scored(m, i, score, None)?;
            let key = match model {
                ModelChoice::Discriminator => f64::from(r.d(m, i)),
                _ => s.score,
            };
            Some((key + 0.0, s))
        })
        .collect();
    out.sort_unstable_by(|a, b| rank_order(&(a.0, a.1.item), &(b.0, b.1.item)));
    // Copies of one item have equal keys, so they are adjacent after the sort.
    out.dedup_by_key(|e| e.1.item);
    out.into_iter().map(|(_, s)| s).collect()
}
