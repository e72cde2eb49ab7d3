//! The pure query layer of the online service: recommend, explore, cold start, re-rank and
//! item-to-item similarity over one immutable model pair. No I/O, no async, no locks.
//!
//! # Scores
//!
//! For a user `u` (row `u` of both models' user factors) and an item `i`:
//!
//! - **generator** — G's log-probability of `i` under its recommendation policy,
//!   `log softmax(s_G(u, ·) / τ)[i]` with `τ` = [`QueryModel::generator_temperature`], normalised
//!   over G's whole catalogue. It is therefore comparable across calls and across candidate lists.
//! - **discriminator** — D's probability that `(u, i)` is a real interaction, `σ(f_D(u, i))`.
//!   Rankings by D order by the logit `f_D` (the same order, without ties where `σ` saturates
//!   to 1 in f64).
//! - **blend** — `w · z_G(i) + (1 − w) · z_D(i)` with `w` = [`QueryModel::blend_weight`]
//!   (clamped to `[0, 1]`; NaN counts as 0.5). `z_M` standardises model `M`'s raw score
//!   (`s_G` for G — the same as standardising its log-probability, which is an increasing affine
//!   map of it — and the logit `f_D` for D) across the whole catalogue for this user:
//!   `z = (x − mean) / std`, mean and (population) standard deviation taken over the items whose
//!   raw score is finite, excluded items included, so a blend score does not depend on the
//!   exclusion list. A model whose scores are all equal (std 0) contributes `z = 0`.
//!
//! The **zero user** ("mean user") stands for a user without factors: its user vector is taken to
//! be zero, so `s_G = b_G` and `f_D = b_D` (the item biases). It serves [`cold_start`], [`rank`]
//! without a user, and any user index a model does not cover.
//!
//! # Robustness
//!
//! Nothing here panics on any `u32` user or item. An item is a candidate only when every number
//! reported for it is finite: items whose raw G or D score is NaN or ±∞ (an overflowing or NaN
//! factor row, say) are skipped rather than reported, so every returned [`Scored`] holds finite
//! values. Items beyond the shorter of G's and D's catalogues are not candidates.
//! Non-finite or non-positive temperatures fall back (see each function), and temperatures are
//! floored at [`MIN_TEMPERATURE`] so `s / τ` cannot overflow f64.
//!
//! # Order and cost
//!
//! Rankings are best first with ties broken by the lower item index (the order of
//! [`crate::eval::metrics::top_k`], computed here in f64). Top-k uses partial selection,
//! O(n + k log k) after scoring; one call allocates a handful of O(items) buffers and scores the
//! catalogue once per model, O(items · dim).

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use crate::model::MfModel;
use crate::model::blend::{self, Standardiser};
use crate::model::catalogue::{PairScores, catalogue_len, has_user, raw_scores};
use crate::model::explore::sanitize_temperature;
use crate::model::policy;
use crate::model::similarity::Cosines;
use crate::model::topk::{IvfIndex, exact};
use crate::model::topk::{for_each_candidate, rank_order, select_top, select_top_by};
use crate::rng;
use crate::store::Snapshot;

pub use crate::model::explore::MIN_TEMPERATURE;

/// Stream tag of [`explore`]'s randomness: `rng::stream(seed, EXPLORE_STREAM, user)`.
pub const EXPLORE_STREAM: u64 = 0x0045_5850_4c52; // "EXPLR"

/// Which model ranks.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum ModelChoice {
    /// G's policy: rank by G's log-probability.
    #[default]
    Generator,
    /// D's critic: rank by D's probability.
    Discriminator,
    /// Both: rank by the weighted sum of the standardised scores (see the module docs).
    Blend,
}

impl ModelChoice {
    /// Every choice, in declaration order.
    pub const ALL: [Self; 3] = [Self::Generator, Self::Discriminator, Self::Blend];

    /// The lowercase name (`"generator"`, `"discriminator"`, `"blend"`), as in serde and
    /// [`FromStr`].
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Generator => "generator",
            Self::Discriminator => "discriminator",
            Self::Blend => "blend",
        }
    }
}

impl fmt::Display for ModelChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A model name that is none of `generator`, `discriminator`, `blend`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown model {0:?}: expected \"generator\", \"discriminator\" or \"blend\"")]
pub struct ParseModelChoiceError(pub String);

impl FromStr for ModelChoice {
    type Err = ParseModelChoiceError;

    /// Parses the lowercase name; ASCII case is ignored.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|c| c.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| ParseModelChoiceError(s.to_owned()))
    }
}

/// A scored item. All numbers are finite.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Scored {
    /// Item index (row of both models' item factors).
    pub item: u32,
    /// The score the result is ordered by; its meaning depends on the function (see each).
    pub score: f64,
    /// G's score of the item (a log-probability; a cosine in [`similar`]).
    pub generator: f64,
    /// D's score of the item (a probability; a cosine in [`similar`]).
    pub discriminator: f64,
    /// [`explore`] only: the probability that the item is the first draw (see there).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub propensity: Option<f64>,
}

/// Everything a query needs from one immutable snapshot (the service builds it once per
/// snapshot; it only borrows).
#[derive(Debug, Clone, Copy)]
pub struct QueryModel<'a> {
    /// The generator G.
    pub generator: &'a MfModel,
    /// Temperature `τ` of G's policy `softmax(s_G / τ)`; a non-finite or non-positive value
    /// counts as 1.
    pub generator_temperature: f64,
    /// The discriminator D.
    pub discriminator: &'a MfModel,
    /// Weight of G in the blend, in `[0, 1]` (D gets `1 − w`).
    pub blend_weight: f64,
    /// Popularity per item (e.g. interaction counts), for [`cold_start`]. Items past its end
    /// count as popularity 0.
    pub popularity: &'a [f32],
}

impl<'a> QueryModel<'a> {
    /// Borrows a snapshot's model pair and temperature, with the service's blend weight and
    /// item popularity.
    pub fn from_snapshot(snapshot: &'a Snapshot, blend_weight: f64, popularity: &'a [f32]) -> Self {
        Self {
            generator: &snapshot.generator,
            generator_temperature: f64::from(snapshot.generator_temperature),
            discriminator: &snapshot.discriminator,
            blend_weight,
            popularity,
        }
    }

    /// Catalogue size: items covered by both G and D (and their biases).
    pub fn n_items(&self) -> usize {
        catalogue_len(self.generator).min(catalogue_len(self.discriminator))
    }

    /// True when both models have factors for `user`; other users are served as cold starts
    /// or as the zero user.
    pub fn knows_user(&self, user: u32) -> bool {
        has_user(self.generator, user) && has_user(self.discriminator, user)
    }

    pub(crate) fn temperature(&self) -> f64 {
        sanitize_temperature(self.generator_temperature, 1.0)
    }

    fn weight(&self) -> f64 {
        blend::sanitize_weight(self.blend_weight)
    }

    fn popularity_of(&self, item: usize) -> f64 {
        self.popularity.get(item).map_or(0.0, |&p| f64::from(p))
    }
}

/// The top `k` items for `user` by the chosen model's score, best first, excluding `exclude`
/// (item indices, ascending; an unsorted list is accepted).
///
/// `score` is the chosen model's score (G's log-probability, D's probability or the blend), and
/// each result carries both models' scores. A user that either model does not cover gets
/// [`cold_start`]`(m, k, exclude)` instead (popularity order, `score` = popularity).
pub fn recommend(
    m: &QueryModel,
    user: u32,
    k: usize,
    model: ModelChoice,
    exclude: &[u32],
) -> Vec<Scored> {
    if k == 0 {
        return Vec::new();
    }
    if !m.knows_user(user) {
        return cold_start(m, k, exclude);
    }
    recommend_scored(m, &user_scores(m, Some(user as usize)), k, model, exclude)
}

/// [`recommend`] for a known user whose scores `s` are already computed (the service's
/// precompute scores users in batches, see [`user_pair_scores`]).
pub fn recommend_scored(
    m: &QueryModel,
    s: &PairScores,
    k: usize,
    model: ModelChoice,
    exclude: &[u32],
) -> Vec<Scored> {
    let blend = Blend::new(m, s, model);
    let mut keys = Vec::with_capacity(s.n);
    for_each_candidate(s.n, &sorted(exclude), |i| {
        if s.valid(i) {
            keys.push((blend.key(s, i), i as u32));
        }
    });
    select_top(&mut keys, k);
    keys.iter()
        .map(|&(_, i)| scored(s, i as usize, blend.score(s, i as usize), None))
        .collect()
}

/// [`PairScores`] of known `users` (checked with [`QueryModel::knows_user`]), both models
/// scored for the whole batch by GEMM ([`exact::score_users`]); the GEMM may round raw scores
/// differently from a one-user query in the last bits.
pub fn user_pair_scores(m: &QueryModel, users: &[usize]) -> Vec<PairScores> {
    let g = exact::score_users(m.generator, users);
    let d = exact::score_users(m.discriminator, users);
    let n = m.n_items();
    g.rows()
        .into_iter()
        .zip(d.rows())
        .map(|(g, d)| PairScores::from_raw(g.to_vec(), d.to_vec(), m.temperature(), n))
        .collect()
}

/// G's softmax normaliser for a known `user` (one pass over the catalogue), for
/// [`recommend_indexed`].
pub fn generator_normaliser(m: &QueryModel, user: u32) -> Option<(f64, f64)> {
    let g = raw_scores(m.generator, Some(user as usize));
    let mut logp = vec![0.0; g.len()];
    policy::log_softmax_parts(&g, m.temperature(), &mut logp)
}

/// [`recommend`] with [`ModelChoice::Generator`] through an approximate index of G's items:
/// the index proposes candidates (skipping `exclude`), each is then scored exactly, so every
/// returned item carries the same numbers as in [`recommend`]; only items the index misses can
/// differ. `normaliser` is [`generator_normaliser`]`(m, user)`, which the caller caches.
pub fn recommend_indexed(
    m: &QueryModel,
    index: &IvfIndex,
    user: u32,
    k: usize,
    exclude: &[u32],
    normaliser: Option<(f64, f64)>,
) -> Vec<Scored> {
    if k == 0 {
        return Vec::new();
    }
    if !m.knows_user(user) {
        return cold_start(m, k, exclude);
    }
    let Some(parts) = normaliser else {
        return Vec::new(); // no finite G score: no candidate (as in `recommend`)
    };
    let (u, n, t) = (user as usize, m.n_items(), m.temperature());
    let exclude = sorted(exclude);
    // Over-fetch so items without a finite G and D score can be dropped.
    let fetch = k.saturating_mul(2).max(k + 8);
    let proposed = index.top_k(m.generator.user_row(u), fetch, &exclude, None);
    let mut keys: Vec<(f64, u32, f64)> = Vec::with_capacity(proposed.len());
    for &i in &proposed {
        let iu = i as usize;
        if iu >= n {
            continue;
        }
        let logp = policy::log_prob(m.generator.score(u, iu), t, parts);
        let d = m.discriminator.score(u, iu);
        if logp.is_finite() && d.is_finite() {
            keys.push((logp + 0.0, i, policy::sigmoid(f64::from(d))));
        }
    }
    if keys.len() < k && proposed.len() == fetch {
        // Too many invalid items among the proposals: rank exactly.
        return recommend(m, user, k, ModelChoice::Generator, &exclude);
    }
    select_top_by(&mut keys, k, |a, b| rank_order(&(a.0, a.1), &(b.0, b.1)));
    keys.into_iter()
        .map(|(logp, item, d)| Scored {
            item,
            score: logp,
            generator: logp,
            discriminator: d,
            propensity: None,
        })
        .collect()
}

/// Samples `k` distinct items for `user` from G's policy at `temperature`,
/// `softmax(s_G / temperature)`, restricted to the candidates (every item not in `exclude`,
/// ascending; whose scores are finite), in draw order.
///
/// `k` successive draws without replacement, each from the policy restricted to the candidates
/// not drawn yet, by inverse-CDF lookups over the candidates' weights `exp(z − max)` (see
/// [`sampler`]): one exponential per item instead of a Gumbel (two logarithms and a random
/// number) per item. The uniforms come in order from `rng::stream(seed, EXPLORE_STREAM, user)`,
/// so the same arguments give the same result.
///
/// - `propensity` = the **first-draw propensity**: the probability that the item is drawn first,
///   i.e. its softmax probability among the candidates, `exp(z_i) / Σ_candidates exp(z_j)` with
///   `z = s_G / temperature`. (Later positions are drawn with higher conditional probabilities;
///   the first-draw value is what an off-policy estimator of a top-1 slate wants.) Over all
///   returned items they sum to at most 1.
/// - `score` = `ln(propensity)`, computed directly so it stays finite when the propensity
///   underflows to 0.
/// - `generator` / `discriminator` = the usual model scores (G's log-probability at the model's
///   own temperature over the whole catalogue, D's probability).
///
/// A non-finite or non-positive `temperature` falls back to the model's temperature. A user that
/// either model does not cover is explored as the zero user (`s_G` = G's item bias).
pub fn explore(
    m: &QueryModel,
    user: u32,
    k: usize,
    temperature: f64,
    seed: u64,
    exclude: &[u32],
) -> Vec<Scored> {
    if k == 0 {
        return Vec::new();
    }
    let s = user_scores(m, m.knows_user(user).then_some(user as usize));
    let valid = |i: usize| s.valid(i);
    let (inv_t, unavailable) = explore_mask(m, temperature, s.n, exclude, Some(&valid));
    sampler::draw(
        &s.g_raw[..s.n],
        inv_t,
        unavailable,
        k,
        &mut explore_rng(seed, user),
    )
    .into_iter()
    .map(|(i, log_p)| scored(&s, i as usize, log_p, Some(log_p.exp())))
    .collect()
}

/// The random stream of [`explore`] for `(seed, user)`.
pub fn explore_rng(seed: u64, user: u32) -> rng::Rng {
    rng::stream(seed, EXPLORE_STREAM, u64::from(user))
}

/// What [`explore`] samples from: `1 / t` (`t` = `temperature` sanitised, falling back to the
/// model's) and the items that are no candidates: those in `exclude` (sorted or not) and those
/// `valid` (when given) rejects. Items with a non-finite logit are left out by the sampler.
pub fn explore_mask(
    m: &QueryModel,
    temperature: f64,
    n: usize,
    exclude: &[u32],
    valid: Option<&dyn Fn(usize) -> bool>,
) -> (f64, Vec<bool>) {
    let inv_t = 1.0 / sanitize_temperature(temperature, m.temperature());
    let mut unavailable = vec![false; n];
    if let Some(valid) = valid {
        for (i, u) in unavailable.iter_mut().enumerate() {
            *u = !valid(i);
        }
    }
    for &e in exclude {
        if let Some(u) = unavailable.get_mut(e as usize) {
            *u = true;
        }
    }
    (inv_t, unavailable)
}

/// The `k` most popular items ([`QueryModel::popularity`]), best first, excluding `exclude`
/// (ascending; an unsorted list is accepted).
///
/// `score` = popularity; `generator` and `discriminator` are the zero user's scores (user vector
/// zero): `generator = log softmax(b_G / τ)[i]` over G's catalogue and
/// `discriminator = σ(b_D[i])`. Items with a non-finite popularity or bias are skipped.
pub fn cold_start(m: &QueryModel, k: usize, exclude: &[u32]) -> Vec<Scored> {
    if k == 0 {
        return Vec::new();
    }
    let s = user_scores(m, None);
    let mut keys = Vec::with_capacity(s.n);
    for_each_candidate(s.n, &sorted(exclude), |i| {
        let p = m.popularity_of(i);
        if s.valid(i) && p.is_finite() {
            keys.push((p + 0.0, i as u32));
        }
    });
    select_top(&mut keys, k);
    keys.iter()
        .map(|&(p, i)| scored(&s, i as usize, p, None))
        .collect()
}

/// The given `candidates` ordered by the chosen model's score for `user`, best first (ties to
/// the lower item index).
///
/// Duplicates are dropped (each item appears once), as are candidates outside the catalogue or
/// with non-finite scores. `score` is as in [`recommend`]. Without a user, or for a user that
/// either model does not cover, the zero user's scores are used (as in [`cold_start`]). G's
/// log-probability is normalised over the whole catalogue, so it is comparable across calls.
pub fn rank(
    m: &QueryModel,
    user: Option<u32>,
    candidates: &[u32],
    model: ModelChoice,
) -> Vec<Scored> {
    let user = user.filter(|&u| m.knows_user(u)).map(|u| u as usize);
    let s = user_scores(m, user);
    let blend = Blend::new(m, &s, model);
    let mut keys: Vec<(f64, u32)> = candidates
        .iter()
        .map(|&i| i as usize)
        .filter(|&i| i < s.n && s.valid(i))
        .map(|i| (blend.key(&s, i), i as u32))
        .collect();
    keys.sort_unstable_by(rank_order);
    // Copies of one item have equal keys, so they are adjacent after the sort.
    keys.dedup_by_key(|e| e.1);
    keys.iter()
        .map(|&(_, i)| scored(&s, i as usize, blend.score(&s, i as usize), None))
        .collect()
}

/// The `k` items most similar to `item`, best first, by the cosine similarity of item factor
/// rows: G's rows, D's rows, or for [`ModelChoice::Blend`] the mean of the two cosines.
///
/// `item` itself is excluded. `score` = the chosen cosine; `generator` / `discriminator` = the
/// cosine in G's / D's factor space. A cosine with a zero or non-finite row is undefined, so such
/// items are skipped; an `item` outside the catalogue (or with an undefined row) gives an empty
/// result.
pub fn similar(m: &QueryModel, item: u32, k: usize, model: ModelChoice) -> Vec<Scored> {
    let n = m.n_items();
    let target = item as usize;
    if k == 0 || target >= n {
        return Vec::new();
    }
    let (Some(g), Some(d)) = (
        Cosines::new(m.generator, target, n),
        Cosines::new(m.discriminator, target, n),
    ) else {
        return Vec::new();
    };
    // (chosen cosine, item, G's cosine, D's cosine)
    let mut keys: Vec<(f64, u32, f64, f64)> = Vec::with_capacity(n);
    for (i, (cg, cd)) in g.zip(d).enumerate() {
        if i == target || !(cg.is_finite() && cd.is_finite()) {
            continue;
        }
        let c = match model {
            ModelChoice::Generator => cg,
            ModelChoice::Discriminator => cd,
            ModelChoice::Blend => 0.5 * (cg + cd),
        };
        keys.push((c + 0.0, i as u32, cg, cd));
    }
    select_top_by(&mut keys, k, |a, b| rank_order(&(a.0, a.1), &(b.0, b.1)));
    keys.iter()
        .map(|&(c, item, cg, cd)| Scored {
            item,
            score: c,
            generator: cg,
            discriminator: cd,
            propensity: None,
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Internals

/// The exclusion list sorted ascending (borrowed when it already is).
pub(crate) fn sorted(exclude: &[u32]) -> Cow<'_, [u32]> {
    if exclude.is_sorted() {
        Cow::Borrowed(exclude)
    } else {
        let mut v = exclude.to_vec();
        v.sort_unstable();
        Cow::Owned(v)
    }
}

/// The scores of `m`'s pair for `user` (already checked with [`QueryModel::knows_user`]) or the
/// zero user.
fn user_scores(m: &QueryModel, user: Option<usize>) -> PairScores {
    PairScores::new(m.generator, m.discriminator, m.temperature(), user)
}

/// The result entry of valid item `i`.
fn scored(s: &PairScores, i: usize, score: f64, propensity: Option<f64>) -> Scored {
    Scored {
        item: i as u32,
        score,
        generator: s.g_logp[i],
        discriminator: s.discriminator(i),
        propensity,
    }
}

/// The chosen model's ranking key and reported score, with the blend's standardisation.
struct Blend {
    model: ModelChoice,
    w: f64,
    g: Standardiser,
    d: Standardiser,
}

impl Blend {
    fn new(m: &QueryModel, s: &PairScores, model: ModelChoice) -> Self {
        let (g, d) = if model == ModelChoice::Blend {
            (
                Standardiser::fit(&s.g_raw[..s.n]),
                Standardiser::fit(&s.d_raw[..s.n]),
            )
        } else {
            (Standardiser::ZERO, Standardiser::ZERO)
        };
        Self {
            model,
            w: m.weight(),
            g,
            d,
        }
    }

    fn blend(&self, s: &PairScores, i: usize) -> f64 {
        blend::mix(self.w, self.g.z(s.g_raw[i]), self.d.z(s.d_raw[i]))
    }

    /// The ranking key of a valid item (finite, `-0.0` normalised).
    fn key(&self, s: &PairScores, i: usize) -> f64 {
        let k = match self.model {
            ModelChoice::Generator => s.g_logp[i],
            ModelChoice::Discriminator => f64::from(s.d_raw[i]),
            ModelChoice::Blend => self.blend(s, i),
        };
        k + 0.0
    }

    /// The reported score of a valid item.
    fn score(&self, s: &PairScores, i: usize) -> f64 {
        match self.model {
            ModelChoice::Generator => s.g_logp[i],
            ModelChoice::Discriminator => s.discriminator(i),
            ModelChoice::Blend => self.blend(s, i),
        }
    }
}

pub mod rows;
mod sampler;

#[cfg(test)]
mod tests;
