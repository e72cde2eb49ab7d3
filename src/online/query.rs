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
use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use crate::model::MfModel;
use crate::model::policy;
use crate::rng;
use crate::store::Snapshot;

/// Stream tag of [`explore`]'s randomness: `rng::stream(seed, EXPLORE_STREAM, user)`.
pub const EXPLORE_STREAM: u64 = 0x0045_5850_4c52; // "EXPLR"

/// The smallest temperature used; smaller positive temperatures are raised to it.
pub const MIN_TEMPERATURE: f64 = 1e-30;

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

    fn temperature(&self) -> f64 {
        sanitize_temperature(self.generator_temperature, 1.0)
    }

    fn weight(&self) -> f64 {
        if self.blend_weight.is_nan() {
            0.5
        } else {
            self.blend_weight.clamp(0.0, 1.0)
        }
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
    let s = UserScores::new(m, Some(user as usize));
    let blend = Blend::new(m, &s, model);
    let mut keys = Vec::with_capacity(s.n);
    for_each_candidate(s.n, &sorted(exclude), |i| {
        if s.valid(i) {
            keys.push((blend.key(&s, i), i as u32));
        }
    });
    select_top(&mut keys, k);
    keys.iter()
        .map(|&(_, i)| s.scored(i as usize, blend.score(&s, i as usize), None))
        .collect()
}

/// Samples `k` distinct items for `user` from G's policy at `temperature`,
/// `softmax(s_G / temperature)`, restricted to the candidates (every item not in `exclude`,
/// ascending; whose scores are finite), in draw order.
///
/// Gumbel-top-k: each item `i` of the catalogue gets `g_i = −ln(−ln U_i)` with `U_i` uniform in
/// (0, 1), drawn in item order from `rng::stream(seed, EXPLORE_STREAM, user)`, and the `k`
/// candidates with the largest `s_G,i / temperature + g_i` are returned, largest first. This is
/// exactly `k` successive draws without replacement from the policy. The same arguments give
/// the same result; an item's noise depends only on `(seed, user, item)`, not on `exclude`.
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
    let t = sanitize_temperature(temperature, m.temperature());
    let s = UserScores::new(m, m.knows_user(user).then_some(user as usize));
    let exclude = sorted(exclude);
    let z = |i: usize| f64::from(s.g_raw[i]) / t;
    // Log-sum-exp of the candidates' logits: the propensities' normaliser.
    let mut max = f64::NEG_INFINITY;
    for_each_candidate(s.n, &exclude, |i| {
        if s.valid(i) {
            max = max.max(z(i));
        }
    });
    if !max.is_finite() {
        return Vec::new();
    }
    let mut sum = 0.0;
    for_each_candidate(s.n, &exclude, |i| {
        if s.valid(i) {
            sum += policy::exp_nonpositive(z(i) - max);
        }
    });
    // sum >= 1 (the maximum contributes exp(0)), so ln_sum >= 0 and every log-propensity <= 0.
    let ln_sum = sum.ln();

    let mut r = rng::stream(seed, EXPLORE_STREAM, u64::from(user));
    let mut keys = Vec::with_capacity(s.n);
    for_each_item(s.n, &exclude, |i, excluded| {
        // One uniform per catalogue item, in item order, excluded or not.
        let g = gumbel(&mut r);
        if !excluded && s.valid(i) {
            // z − max <= 0 and g ∈ [−3.7, 37.5]: the key is finite.
            keys.push(((z(i) - max) + g, i as u32));
        }
    });
    select_top(&mut keys, k);
    keys.iter()
        .map(|&(_, i)| {
            let i = i as usize;
            let log_p = ((z(i) - max) - ln_sum).min(0.0);
            s.scored(i, log_p, Some(log_p.exp()))
        })
        .collect()
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
    let s = UserScores::new(m, None);
    let mut keys = Vec::with_capacity(s.n);
    for_each_candidate(s.n, &sorted(exclude), |i| {
        let p = m.popularity_of(i);
        if s.valid(i) && p.is_finite() {
            keys.push((p + 0.0, i as u32));
        }
    });
    select_top(&mut keys, k);
    keys.iter()
        .map(|&(p, i)| s.scored(i as usize, p, None))
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
    let s = UserScores::new(m, user);
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
        .map(|&(_, i)| s.scored(i as usize, blend.score(&s, i as usize), None))
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

/// Items a model can score: rows of its item factors that also have a bias.
fn catalogue_len(model: &MfModel) -> usize {
    model.n_items().min(model.bias.len())
}

/// True when `user` has a row in `model`'s user factors that [`MfModel::scores_into`] can read.
fn has_user(model: &MfModel, user: u32) -> bool {
    (user as usize) < model.n_users()
        && model.user.as_slice().is_some()
        && model.user.ncols() == model.item.ncols()
}

fn sanitize_temperature(t: f64, fallback: f64) -> f64 {
    if t.is_finite() && t > 0.0 {
        t.max(MIN_TEMPERATURE)
    } else {
        fallback
    }
}

/// The exclusion list sorted ascending (borrowed when it already is).
fn sorted(exclude: &[u32]) -> Cow<'_, [u32]> {
    if exclude.is_sorted() {
        Cow::Borrowed(exclude)
    } else {
        let mut v = exclude.to_vec();
        v.sort_unstable();
        Cow::Owned(v)
    }
}

/// Calls `f(i)` for every `i < n` not in the sorted `excluded`, ascending.
fn for_each_candidate(n: usize, excluded: &[u32], mut f: impl FnMut(usize)) {
    for_each_item(n, excluded, |i, ex| {
        if !ex {
            f(i);
        }
    });
}

/// Calls `f(i, i ∈ excluded)` for every `i < n`, ascending (`excluded` sorted).
fn for_each_item(n: usize, excluded: &[u32], mut f: impl FnMut(usize, bool)) {
    let mut e = 0;
    for i in 0..n {
        while e < excluded.len() && (excluded[e] as usize) < i {
            e += 1;
        }
        f(i, e < excluded.len() && excluded[e] as usize == i);
    }
}

/// Ranking order of `(key, item)`: higher key first, ties to the lower item. Keys are finite and
/// `-0.0` has been normalised to `0.0` (by `+ 0.0`), so `total_cmp` is the numeric order.
fn rank_order(a: &(f64, u32), b: &(f64, u32)) -> Ordering {
    b.0.total_cmp(&a.0).then(a.1.cmp(&b.1))
}

/// Keeps the best `k` of `keys` in [`rank_order`], sorted best first: O(n + k log k).
fn select_top(keys: &mut Vec<(f64, u32)>, k: usize) {
    select_top_by(keys, k, rank_order);
}

fn select_top_by<T>(keys: &mut Vec<T>, k: usize, cmp: impl Fn(&T, &T) -> Ordering) {
    if k == 0 {
        keys.clear();
        return;
    }
    if k < keys.len() {
        keys.select_nth_unstable_by(k - 1, &cmp);
        keys.truncate(k);
    }
    keys.sort_unstable_by(&cmp);
}

/// A standard Gumbel draw `−ln(−ln U)`, `U` uniform in the open interval (0, 1); always finite
/// (within about [−3.6, 37.5]).
fn gumbel(r: &mut rng::Rng) -> f64 {
    // unit() is a multiple of 2^-53 in [0, 1); adding 2^-54 lands strictly inside (0, 1).
    let u = rng::unit(r) + f64::from_bits(0x3c90_0000_0000_0000); // 2^-54
    -(-u.ln()).ln()
}

/// One user's (or the zero user's) scores over the catalogue.
struct UserScores {
    /// G's raw scores `s_G` (NaN where unavailable), G's whole catalogue.
    g_raw: Vec<f32>,
    /// G's log-probabilities at the model temperature (−∞ for impossible items).
    g_logp: Vec<f64>,
    /// D's raw logits `f_D` (NaN where unavailable), D's whole catalogue.
    d_raw: Vec<f32>,
    /// Catalogue size: items both models cover.
    n: usize,
}

impl UserScores {
    /// Scores for `user` (already checked with [`QueryModel::knows_user`]) or the zero user.
    fn new(m: &QueryModel, user: Option<usize>) -> Self {
        let g_raw = raw_scores(m.generator, user);
        let d_raw = raw_scores(m.discriminator, user);
        let mut g_logp = vec![f64::NEG_INFINITY; g_raw.len()];
        if policy::log_softmax(&g_raw, m.temperature(), &mut g_logp).is_none() {
            g_logp.fill(f64::NEG_INFINITY);
        }
        Self {
            n: m.n_items(),
            g_raw,
            g_logp,
            d_raw,
        }
    }

    /// Whether item `i < n` has finite scores from both models.
    fn valid(&self, i: usize) -> bool {
        self.g_logp[i].is_finite() && self.d_raw[i].is_finite()
    }

    fn discriminator(&self, i: usize) -> f64 {
        policy::sigmoid(f64::from(self.d_raw[i]))
    }

    fn scored(&self, i: usize, score: f64, propensity: Option<f64>) -> Scored {
        Scored {
            item: i as u32,
            score,
            generator: self.g_logp[i],
            discriminator: self.discriminator(i),
            propensity,
        }
    }
}

/// `model`'s raw scores for `user` (or the zero user: the bias), NaN where unavailable.
fn raw_scores(model: &MfModel, user: Option<usize>) -> Vec<f32> {
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

/// The chosen model's ranking key and reported score, with the blend's standardisation.
struct Blend {
    model: ModelChoice,
    w: f64,
    g_mean: f64,
    g_inv_std: f64,
    d_mean: f64,
    d_inv_std: f64,
}

impl Blend {
    fn new(m: &QueryModel, s: &UserScores, model: ModelChoice) -> Self {
        let (g_mean, g_inv_std, d_mean, d_inv_std) = if model == ModelChoice::Blend {
            let (gm, gi) = standardiser(&s.g_raw[..s.n]);
            let (dm, di) = standardiser(&s.d_raw[..s.n]);
            (gm, gi, dm, di)
        } else {
            (0.0, 0.0, 0.0, 0.0)
        };
        Self {
            model,
            w: m.weight(),
            g_mean,
            g_inv_std,
            d_mean,
            d_inv_std,
        }
    }

    fn blend(&self, s: &UserScores, i: usize) -> f64 {
        let zg = (f64::from(s.g_raw[i]) - self.g_mean) * self.g_inv_std;
        let zd = (f64::from(s.d_raw[i]) - self.d_mean) * self.d_inv_std;
        self.w * zg + (1.0 - self.w) * zd
    }

    /// The ranking key of a valid item (finite, `-0.0` normalised).
    fn key(&self, s: &UserScores, i: usize) -> f64 {
        let k = match self.model {
            ModelChoice::Generator => s.g_logp[i],
            ModelChoice::Discriminator => f64::from(s.d_raw[i]),
            ModelChoice::Blend => self.blend(s, i),
        };
        k + 0.0
    }

    /// The reported score of a valid item.
    fn score(&self, s: &UserScores, i: usize) -> f64 {
        match self.model {
            ModelChoice::Generator => s.g_logp[i],
            ModelChoice::Discriminator => s.discriminator(i),
            ModelChoice::Blend => self.blend(s, i),
        }
    }
}

/// `(mean, 1 / std)` of the finite values (population std, in f64); `1 / std` is 0 when the std
/// is 0 or there are no finite values, so every z-score is then 0.
fn standardiser(x: &[f32]) -> (f64, f64) {
    let (mut n, mut sum) = (0usize, 0.0f64);
    for v in x.iter().filter(|v| v.is_finite()) {
        n += 1;
        sum += f64::from(*v);
    }
    if n == 0 {
        return (0.0, 0.0);
    }
    let mean = sum / n as f64;
    let ss: f64 = x
        .iter()
        .filter(|v| v.is_finite())
        .map(|&v| (f64::from(v) - mean).powi(2))
        .sum();
    let std = (ss / n as f64).sqrt();
    let inv = 1.0 / std;
    (
        mean,
        if std > 0.0 && inv.is_finite() {
            inv
        } else {
            0.0
        },
    )
}

/// Cosines between one item's factor row and every row of the first `n` items, in item order
/// (NaN where undefined: a zero or non-finite row).
struct Cosines<'a> {
    rows: std::iter::Take<std::slice::ChunksExact<'a, f32>>,
    target: &'a [f32],
    target_norm: f64,
}

impl<'a> Cosines<'a> {
    /// `None` when the target row is missing, zero or non-finite (every cosine undefined), or
    /// the model's item factors do not cover `n` items.
    fn new(model: &'a MfModel, target: usize, n: usize) -> Option<Self> {
        let d = model.item.ncols();
        let q = model.item.as_slice()?;
        if d == 0 || q.len() < n * d {
            return None;
        }
        let row = q.get(target * d..(target + 1) * d)?;
        let target_norm = norm(row);
        (target_norm.is_finite() && target_norm > 0.0).then(|| Self {
            rows: q.chunks_exact(d).take(n),
            target: row,
            target_norm,
        })
    }
}

impl Iterator for Cosines<'_> {
    type Item = f64;

    fn next(&mut self) -> Option<f64> {
        let row = self.rows.next()?;
        let (dot, sq) = dot_and_square(self.target, row);
        let c = dot / (self.target_norm * sq.sqrt());
        // A zero row gives 0/0 = NaN, a non-finite one NaN or ±∞: both are reported as NaN.
        Some(if c.is_finite() {
            c.clamp(-1.0, 1.0)
        } else {
            f64::NAN
        })
    }
}

/// `(⟨a, b⟩, ‖b‖²)`: in f32 with eight independent lanes (so the loop vectorises), redone in
/// f64 when the f32 sums overflow or underflow (factors near ±1e19 or below 1e-19), so extreme
/// but finite rows still get their exact-ish cosine. The f32 path's cosine error is ~1e-6.
fn dot_and_square(a: &[f32], b: &[f32]) -> (f64, f64) {
    let (mut dot, mut sq) = ([0.0f32; 8], [0.0f32; 8]);
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for k in 0..8 {
            dot[k] += x[k] * y[k];
            sq[k] += y[k] * y[k];
        }
    }
    for (k, (&x, &y)) in ra.iter().zip(rb).enumerate() {
        dot[k] += x * y;
        sq[k] += y * y;
    }
    let (d, s) = (dot.iter().sum::<f32>(), sq.iter().sum::<f32>());
    if d.is_finite() && s.is_normal() && s < f32::MAX / 2.0 {
        return (f64::from(d), f64::from(s));
    }
    a.iter().zip(b).fold((0.0, 0.0), |(d, s), (&x, &y)| {
        let (x, y) = (f64::from(x), f64::from(y));
        (d + x * y, s + y * y)
    })
}

/// Euclidean norm (see [`dot_and_square`]).
fn norm(x: &[f32]) -> f64 {
    dot_and_square(x, x).1.sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array1, Array2};

    /// An MfModel from explicit rows.
    fn mf(user: &[&[f32]], item: &[&[f32]], bias: &[f32]) -> MfModel {
        let d = item.first().map_or(0, |r| r.len());
        MfModel {
            user: Array2::from_shape_vec((user.len(), d), user.concat()).unwrap(),
            item: Array2::from_shape_vec((item.len(), d), item.concat()).unwrap(),
            bias: Array1::from_vec(bias.to_vec()),
        }
    }

    /// A one-dimensional model whose user 0 scores item `i` as `scores[i]` (user factor 1,
    /// item factor = score, bias 0); user 1 has factor 0 (scores = bias = 0).
    fn line(scores: &[f32]) -> MfModel {
        let rows: Vec<[f32; 1]> = scores.iter().map(|&s| [s]).collect();
        let rows: Vec<&[f32]> = rows.iter().map(|r| r.as_slice()).collect();
        mf(&[&[1.0], &[0.0]], &rows, &vec![0.0; scores.len()])
    }

    /// Reference log-softmax of `x / t`, written out independently of `policy`.
    fn log_softmax(x: &[f64], t: f64) -> Vec<f64> {
        let z: Vec<f64> = x.iter().map(|v| v / t).collect();
        let max = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let ln_sum = z.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
        z.iter().map(|v| v - max - ln_sum).collect()
    }

    fn sigmoid(x: f64) -> f64 {
        1.0 / (1.0 + (-x).exp())
    }

    fn items(r: &[Scored]) -> Vec<u32> {
        r.iter().map(|s| s.item).collect()
    }

    fn all_finite(r: &[Scored]) -> bool {
        r.iter().all(|s| {
            s.score.is_finite()
                && s.generator.is_finite()
                && s.discriminator.is_finite()
                && s.propensity.is_none_or(f64::is_finite)
        })
    }

    fn qm<'a>(g: &'a MfModel, d: &'a MfModel, pop: &'a [f32]) -> QueryModel<'a> {
        QueryModel {
            generator: g,
            generator_temperature: 0.5,
            discriminator: d,
            blend_weight: 0.5,
            popularity: pop,
        }
    }

    #[test]
    fn model_choice_parses_and_serialises() {
        for c in ModelChoice::ALL {
            assert_eq!(c.as_str().parse::<ModelChoice>().unwrap(), c);
            assert_eq!(c.to_string(), c.as_str());
            assert_eq!(serde_json::to_string(&c).unwrap(), format!("\"{c}\""));
            let back: ModelChoice = serde_json::from_str(&format!("\"{c}\"")).unwrap();
            assert_eq!(back, c);
        }
        assert_eq!("Blend".parse::<ModelChoice>().unwrap(), ModelChoice::Blend);
        assert!("both".parse::<ModelChoice>().is_err());
        assert_eq!(ModelChoice::default(), ModelChoice::Generator);
        let s = Scored {
            item: 1,
            score: 0.5,
            generator: -1.0,
            discriminator: 0.5,
            propensity: None,
        };
        assert!(!serde_json::to_string(&s).unwrap().contains("propensity"));
    }

    #[test]
    fn recommend_respects_exclusion_k_and_model() {
        let gs = [0.1f32, 0.5, 0.3, 0.9, 0.2];
        let ds = [0.9f32, 0.1, 0.5, 0.3, 0.7];
        let (g, d) = (line(&gs), line(&ds));
        let m = qm(&g, &d, &[]);
        let want_g = log_softmax(&gs.map(f64::from), 0.5);

        let r = recommend(&m, 0, 3, ModelChoice::Generator, &[]);
        assert_eq!(items(&r), [3, 1, 2]);
        assert!(all_finite(&r));
        for s in &r {
            let i = s.item as usize;
            assert!((s.generator - want_g[i]).abs() < 1e-9);
            assert_eq!(s.score, s.generator);
            assert!((s.discriminator - sigmoid(f64::from(ds[i]))).abs() < 1e-12);
        }
        assert_eq!(
            items(&recommend(&m, 0, 3, ModelChoice::Generator, &[1, 3])),
            [2, 4, 0]
        );
        // Unsorted exclusions are accepted.
        assert_eq!(
            items(&recommend(&m, 0, 3, ModelChoice::Generator, &[3, 1])),
            [2, 4, 0]
        );
        let r = recommend(&m, 0, 3, ModelChoice::Discriminator, &[]);
        assert_eq!(items(&r), [0, 4, 2]);
        for s in &r {
            assert_eq!(s.score, s.discriminator);
        }
        assert!(recommend(&m, 0, 0, ModelChoice::Generator, &[]).is_empty());
        assert_eq!(
            items(&recommend(&m, 0, 100, ModelChoice::Generator, &[0])),
            [3, 1, 2, 4]
        );
        assert!(recommend(&m, 0, 3, ModelChoice::Generator, &[0, 1, 2, 3, 4]).is_empty());
    }

    #[test]
    fn recommend_blend_lies_between() {
        // G prefers 1, D prefers 0; item 2 is second for both and wins the even blend.
        let gs = [0.0f32, 1.0, 0.8, 0.1];
        let ds = [1.0f32, 0.0, 0.8, 0.1];
        let (g, d) = (line(&gs), line(&ds));
        let mut m = qm(&g, &d, &[]);
        let r = recommend(&m, 0, 4, ModelChoice::Blend, &[]);
        assert_eq!(r[0].item, 2);
        assert!(all_finite(&r));
        // Independent z-scores.
        let z = |x: &[f32]| {
            let n = x.len() as f64;
            let mean = x.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
            let sd = (x
                .iter()
                .map(|&v| (f64::from(v) - mean).powi(2))
                .sum::<f64>()
                / n)
                .sqrt();
            x.iter()
                .map(|&v| (f64::from(v) - mean) / sd)
                .collect::<Vec<_>>()
        };
        let (zg, zd) = (z(&gs), z(&ds));
        for s in &r {
            let i = s.item as usize;
            assert!((s.score - (0.5 * zg[i] + 0.5 * zd[i])).abs() < 1e-6);
            assert!(s.score <= zg[i].max(zd[i]) + 1e-12 && s.score >= zg[i].min(zd[i]) - 1e-12);
        }
        m.blend_weight = 1.0;
        assert_eq!(
            items(&recommend(&m, 0, 4, ModelChoice::Blend, &[])),
            items(&recommend(&m, 0, 4, ModelChoice::Generator, &[]))
        );
        m.blend_weight = 0.0;
        assert_eq!(
            items(&recommend(&m, 0, 4, ModelChoice::Blend, &[])),
            items(&recommend(&m, 0, 4, ModelChoice::Discriminator, &[]))
        );
        // Exclusion does not change blend scores (standardised over the whole catalogue).
        m.blend_weight = 0.5;
        let full = recommend(&m, 0, 4, ModelChoice::Blend, &[]);
        let part = recommend(&m, 0, 4, ModelChoice::Blend, &[2]);
        assert_eq!(part[0], full[1]);
        // Equal scores everywhere (user 1: all biases 0) → z = 0, ties by index.
        let r = recommend(&m, 1, 4, ModelChoice::Blend, &[]);
        assert_eq!(items(&r), [0, 1, 2, 3]);
        assert!(r.iter().all(|s| s.score == 0.0));
    }

    #[test]
    fn top_k_matches_full_ranking() {
        let mut r = rng::stream(5, 0, 0);
        let g = MfModel::random(3, 300, 8, 1.0, &mut r);
        let d = MfModel::random(3, 300, 5, 1.0, &mut r);
        let m = qm(&g, &d, &[]);
        let excl = [3u32, 17, 200];
        for model in ModelChoice::ALL {
            let all = recommend(&m, 2, 1000, model, &excl);
            assert_eq!(all.len(), 297);
            assert!(all.windows(2).all(|w| w[0].score >= w[1].score));
            assert!(all_finite(&all));
            for k in [1, 7, 50] {
                assert_eq!(recommend(&m, 2, k, model, &excl), all[..k]);
            }
            // rank over the whole catalogue agrees with recommend.
            let cands: Vec<u32> = (0..300).filter(|i| !excl.contains(i)).collect();
            assert_eq!(rank(&m, Some(2), &cands, model), all);
        }
        // The f32 metrics::top_k agrees on G (log-probabilities are increasing in s_G).
        let want = crate::eval::metrics::top_k(&g.scores(1), &excl, 20);
        assert_eq!(
            items(&recommend(&m, 1, 20, ModelChoice::Generator, &excl)),
            want
        );
    }

    #[test]
    fn unknown_user_is_a_cold_start() {
        let (g, d) = (line(&[0.1, 0.2, 0.3]), line(&[0.3, 0.2, 0.1]));
        let pop = [5.0f32, 9.0, 1.0];
        let m = qm(&g, &d, &pop);
        for u in [2, 1000, u32::MAX] {
            assert_eq!(
                recommend(&m, u, 2, ModelChoice::Generator, &[]),
                cold_start(&m, 2, &[])
            );
        }
    }

    #[test]
    fn explore_is_reproducible_distinct_and_excludes() {
        let mut r = rng::stream(9, 0, 0);
        let g = MfModel::random(2, 200, 5, 0.3, &mut r);
        let d = MfModel::random(2, 200, 5, 0.3, &mut r);
        let m = qm(&g, &d, &[]);
        let excl: Vec<u32> = (0..200).step_by(3).collect();
        let a = explore(&m, 1, 20, 1.0, 42, &excl);
        let b = explore(&m, 1, 20, 1.0, 42, &excl);
        assert_eq!(a, b);
        assert_eq!(a.len(), 20);
        assert!(all_finite(&a));
        let mut seen = items(&a);
        assert!(seen.iter().all(|i| !excl.contains(i)));
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), 20);
        assert_ne!(items(&explore(&m, 1, 20, 1.0, 43, &excl)), items(&a));
        assert_ne!(items(&explore(&m, 0, 20, 1.0, 42, &excl)), items(&a));
        // All candidates when k is large; nothing when everything is excluded or k = 0.
        assert_eq!(explore(&m, 1, 1000, 1.0, 42, &excl).len(), 200 - excl.len());
        let everything: Vec<u32> = (0..200).collect();
        assert!(explore(&m, 1, 5, 1.0, 42, &everything).is_empty());
        assert!(explore(&m, 1, 0, 1.0, 42, &[]).is_empty());
        // A very low temperature is greedy: the first draw is G's top item.
        let top = recommend(&m, 1, 1, ModelChoice::Generator, &excl)[0].item;
        assert_eq!(explore(&m, 1, 1, 1e-6, 7, &excl)[0].item, top);
    }

    /// Chi-square statistic of observed counts against probabilities.
    fn chi_square(counts: &[u64], p: &[f64]) -> f64 {
        let n: u64 = counts.iter().sum();
        counts
            .iter()
            .zip(p)
            .map(|(&c, &p)| {
                let e = p * n as f64;
                (c as f64 - e).powi(2) / e
            })
            .sum()
    }

    #[test]
    fn explore_first_draws_follow_the_policy() {
        let logits = [1.0f32, 0.5, 0.0, -1.0];
        let (g, d) = (line(&logits), line(&[0.0; 4]));
        let m = qm(&g, &d, &[]); // model temperature 0.5: explore must use its own.
        let t = 0.8;
        let p: Vec<f64> = log_softmax(&logits.map(f64::from), t)
            .iter()
            .map(|x| x.exp())
            .collect();
        let mut counts = [0u64; 4];
        for seed in 0..20_000 {
            let r = explore(&m, 0, 1, t, seed, &[]);
            counts[r[0].item as usize] += 1;
            assert!((r[0].propensity.unwrap() - p[r[0].item as usize]).abs() < 1e-12);
        }
        // df = 3; P(χ² > 16.27) = 0.001.
        let chi = chi_square(&counts, &p);
        assert!(chi < 16.27, "chi-square {chi}, counts {counts:?}, p {p:?}");

        // Restricted to the candidates: excluding item 0 renormalises over {1, 2, 3}.
        let q: Vec<f64> = log_softmax(&[0.5, 0.0, -1.0], t)
            .iter()
            .map(|x| x.exp())
            .collect();
        let mut counts = [0u64; 3];
        for seed in 0..20_000 {
            let r = explore(&m, 0, 1, t, seed, &[0]);
            counts[r[0].item as usize - 1] += 1;
        }
        // df = 2; P(χ² > 13.82) = 0.001.
        let chi = chi_square(&counts, &q);
        assert!(chi < 13.82, "chi-square {chi}, counts {counts:?}");
    }

    #[test]
    fn explore_propensities_are_the_candidate_softmax() {
        let logits = [1.0f32, 0.5, 0.0, -1.0, 2.0];
        let (g, d) = (line(&logits), line(&[0.0; 5]));
        let m = qm(&g, &d, &[]);
        let t = 1.3;
        let cands = [0usize, 2, 3];
        let want = log_softmax(&cands.map(|i| f64::from(logits[i])), t);
        let r = explore(&m, 0, 2, t, 3, &[1, 4]);
        assert_eq!(r.len(), 2);
        let total: f64 = r.iter().map(|s| s.propensity.unwrap()).sum();
        assert!(total <= 1.0);
        let r = explore(&m, 0, 10, t, 3, &[1, 4]);
        assert_eq!(r.len(), 3);
        let total: f64 = r.iter().map(|s| s.propensity.unwrap()).sum();
        assert!((total - 1.0).abs() < 1e-12);
        for s in &r {
            let j = cands.iter().position(|&c| c == s.item as usize).unwrap();
            assert!((s.propensity.unwrap() - want[j].exp()).abs() < 1e-12);
            assert!((s.score - want[j]).abs() < 1e-12);
            // generator stays the model's log-probability over the whole catalogue.
            let full = log_softmax(&logits.map(f64::from), 0.5);
            assert!((s.generator - full[s.item as usize]).abs() < 1e-9);
        }
        // A bad temperature falls back to the model's and still works.
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let r = explore(&m, 0, 5, bad, 3, &[]);
            assert_eq!(r.len(), 5);
            assert!(all_finite(&r));
        }
    }

    #[test]
    fn cold_start_orders_by_popularity() {
        let g = mf(
            &[&[1.0]],
            &[&[0.0], &[0.0], &[0.0], &[0.0]],
            &[0.2, -0.1, 0.4, 0.0],
        );
        let d = mf(
            &[&[1.0]],
            &[&[0.0], &[0.0], &[0.0], &[0.0]],
            &[1.0, 2.0, -3.0, 0.5],
        );
        let pop = [3.0f32, 10.0, 1.0, 7.0];
        let m = qm(&g, &d, &pop);
        let r = cold_start(&m, 3, &[]);
        assert_eq!(items(&r), [1, 3, 0]);
        let want_g = log_softmax(&[0.2, -0.1, 0.4, 0.0].map(|x: f32| f64::from(x)), 0.5);
        for s in &r {
            let i = s.item as usize;
            assert_eq!(s.score, f64::from(pop[i]));
            assert!((s.generator - want_g[i]).abs() < 1e-9);
            assert!((s.discriminator - sigmoid(f64::from(d.bias[i]))).abs() < 1e-12);
        }
        assert_eq!(items(&cold_start(&m, 10, &[1])), [3, 0, 2]);
        assert!(cold_start(&m, 0, &[]).is_empty());
        // Missing popularity counts as 0; ties go to the lower index.
        let short = [0.0f32, 5.0];
        let m = qm(&g, &d, &short);
        assert_eq!(items(&cold_start(&m, 4, &[])), [1, 0, 2, 3]);
    }

    #[test]
    fn rank_dedupes_and_orders() {
        let gs = [0.1f32, 0.5, 0.3, 0.9, 0.2];
        let ds = [0.9f32, 0.1, 0.5, 0.3, 0.7];
        let (g, d) = (line(&gs), line(&ds));
        let m = qm(&g, &d, &[]);
        let cands = [2u32, 0, 2, 99, 3, 0, u32::MAX];
        let r = rank(&m, Some(0), &cands, ModelChoice::Generator);
        assert_eq!(items(&r), [3, 2, 0]);
        let full = recommend(&m, 0, 5, ModelChoice::Generator, &[]);
        // G's log-probability is over the whole catalogue: the same as in recommend.
        assert_eq!(r[0], full[0]);
        assert_eq!(
            items(&rank(&m, Some(0), &cands, ModelChoice::Discriminator)),
            [0, 2, 3]
        );
        assert!(rank(&m, Some(0), &[], ModelChoice::Blend).is_empty());
        // No user (or an unknown one): the zero user's scores, i.e. the biases.
        let g = mf(&[&[1.0]], &[&[5.0], &[9.0], &[1.0]], &[0.3, 0.1, 0.2]);
        let d = mf(&[&[1.0]], &[&[5.0], &[9.0], &[1.0]], &[-1.0, 0.0, 1.0]);
        let m = qm(&g, &d, &[]);
        assert_eq!(
            items(&rank(&m, None, &[0, 1, 2], ModelChoice::Generator)),
            [0, 2, 1]
        );
        assert_eq!(
            items(&rank(&m, None, &[0, 1, 2], ModelChoice::Discriminator)),
            [2, 1, 0]
        );
        assert_eq!(
            rank(&m, Some(7), &[0, 1, 2], ModelChoice::Blend),
            rank(&m, None, &[0, 1, 2], ModelChoice::Blend)
        );
    }

    #[test]
    fn similar_excludes_self_and_orders_by_cosine() {
        let g = mf(
            &[&[1.0, 0.0]],
            &[
                &[1.0, 0.0],
                &[1.0, 1.0],
                &[0.0, 1.0],
                &[-1.0, 0.0],
                &[2.0, 0.1],
                &[0.0, 0.0],
            ],
            &[0.0; 6],
        );
        let d = mf(
            &[&[1.0, 0.0, 0.0]],
            &[
                &[0.0, 0.0, 1.0],
                &[0.0, 0.0, -1.0],
                &[0.0, 1.0, 1.0],
                &[1.0, 0.0, 1.0],
                &[1.0, 0.0, 0.0],
                &[0.0, 0.0, 3.0],
            ],
            &[0.0; 6],
        );
        let m = qm(&g, &d, &[]);
        let s2 = std::f64::consts::FRAC_1_SQRT_2;
        let cos4 = 2.0 / (4.01f64).sqrt();
        // Item 5 has a zero G row: undefined, skipped.
        let r = similar(&m, 0, 10, ModelChoice::Generator);
        assert_eq!(items(&r), [4, 1, 2, 3]);
        let want_g = [f64::NAN, s2, 0.0, -1.0, cos4];
        let want_d = [f64::NAN, -1.0, s2, s2, 0.0];
        for s in &r {
            let i = s.item as usize;
            assert!((s.generator - want_g[i]).abs() < 1e-7);
            assert!((s.discriminator - want_d[i]).abs() < 1e-7);
            assert_eq!(s.score, s.generator);
        }
        // D: ties (items 2 and 3) go to the lower index.
        assert_eq!(
            items(&similar(&m, 0, 10, ModelChoice::Discriminator)),
            [2, 3, 4, 1]
        );
        let r = similar(&m, 0, 10, ModelChoice::Blend);
        // Means: 1 → 0.5·(s2 − 1), 2 → s2/2, 3 → (s2 − 1)/2, 4 → cos4/2.
        assert_eq!(items(&r), [4, 2, 1, 3]);
        for s in &r {
            assert!((s.score - 0.5 * (s.generator + s.discriminator)).abs() < 1e-12);
        }
        assert_eq!(items(&similar(&m, 0, 2, ModelChoice::Generator)), [4, 1]);
        assert!(similar(&m, 0, 0, ModelChoice::Generator).is_empty());
        assert!(similar(&m, 6, 3, ModelChoice::Generator).is_empty());
        assert!(similar(&m, u32::MAX, 3, ModelChoice::Blend).is_empty());
        // The zero-row item has no neighbours.
        assert!(similar(&m, 5, 3, ModelChoice::Generator).is_empty());
    }

    #[test]
    fn similar_is_exact_for_huge_and_tiny_rows() {
        // Squares overflow (1e20² > f32::MAX) or underflow (1e-25² < f32 subnormals) in f32: the
        // f64 fallback still gives the exact cosines.
        for scale in [1e20f32, 1e-25, 1.0] {
            let rows: Vec<[f32; 3]> = [
                [1.0, 0.0, 0.0],
                [1.0, 1.0, 0.0],
                [0.0, 0.0, 1.0],
                [-1.0, 0.5, 0.0],
            ]
            .iter()
            .map(|r| r.map(|x| x * scale))
            .collect();
            let rows: Vec<&[f32]> = rows.iter().map(|r| r.as_slice()).collect();
            let g = mf(&[&[1.0, 0.0, 0.0]], &rows, &[0.0; 4]);
            let m = qm(&g, &g, &[]);
            let r = similar(&m, 0, 10, ModelChoice::Generator);
            assert_eq!(items(&r), [1, 2, 3], "scale {scale}");
            let want = [std::f64::consts::FRAC_1_SQRT_2, 0.0, -1.0 / 1.25f64.sqrt()];
            for (s, w) in r.iter().zip(want) {
                assert!(
                    (s.score - w).abs() < 1e-6,
                    "scale {scale}: {} vs {w}",
                    s.score
                );
            }
        }
    }

    #[test]
    fn extreme_values_never_panic_or_leak_nan() {
        let g = mf(
            &[&[1e30, 1.0], &[f32::NAN, 0.0], &[1.0, -1.0]],
            &[
                &[1e30, 0.0],
                &[f32::NAN, 1.0],
                &[1.0, 1.0],
                &[-1e30, 1e30],
                &[f32::MAX, f32::MAX],
                &[0.5, 0.25],
            ],
            &[0.0, 1.0, f32::INFINITY, 1e30, -1e30, 0.1],
        );
        let d = mf(
            &[&[1e30], &[1.0], &[f32::MAX]],
            &[&[1.0], &[1e30], &[f32::NAN], &[-1.0], &[0.0], &[1e-30]],
            &[1e30, 0.0, 0.0, f32::NAN, -1e30, 0.0],
        );
        let pop = [f32::NAN, 1e30, f32::INFINITY, 3.0, -1.0, 0.0];
        for (t, w) in [(0.5, 0.5), (0.0, f64::NAN), (1e-300, 2.0), (f64::NAN, -1.0)] {
            let m = QueryModel {
                generator: &g,
                generator_temperature: t,
                discriminator: &d,
                blend_weight: w,
                popularity: &pop,
            };
            for user in [0, 1, 2, 3, u32::MAX] {
                for model in ModelChoice::ALL {
                    for k in [0, 1, 3, 100] {
                        assert!(all_finite(&recommend(&m, user, k, model, &[1, 4])));
                        assert!(all_finite(&recommend(&m, user, k, model, &[u32::MAX])));
                        assert!(all_finite(&rank(
                            &m,
                            Some(user),
                            &[0, 1, 2, 3, 4, 5, 9],
                            model
                        )));
                        for item in [0, 1, 2, 3, 4, 5, 6, u32::MAX] {
                            assert!(all_finite(&similar(&m, item, k, model)));
                        }
                    }
                }
                for temp in [1.0, 1e-30, 1e30, 0.0, f64::NAN] {
                    let r = explore(&m, user, 10, temp, 1, &[5]);
                    assert!(all_finite(&r));
                    let total: f64 = r.iter().filter_map(|s| s.propensity).sum();
                    assert!(total <= 1.0 + 1e-12);
                }
            }
            assert!(all_finite(&cold_start(&m, 10, &[])));
            // Not vacuous: the finite items of a known user are still served.
            let r = recommend(&m, 2, 100, ModelChoice::Blend, &[]);
            assert!(r.len() >= 2 && all_finite(&r));
            assert!(!explore(&m, 2, 100, 1.0, 1, &[]).is_empty());
            assert!(!cold_start(&m, 10, &[]).is_empty());
            assert!(all_finite(&rank(
                &m,
                None,
                &[0, 1, 2, 3, 4, 5],
                ModelChoice::Blend
            )));
        }
    }

    #[test]
    fn mismatched_catalogues_and_empty_models() {
        // G covers 4 items, D 3: the catalogue is 3 items.
        let g = line(&[0.4, 0.3, 0.2, 0.9]);
        let d = line(&[0.1, 0.2, 0.3]);
        let m = qm(&g, &d, &[]);
        assert_eq!(m.n_items(), 3);
        assert_eq!(
            items(&recommend(&m, 0, 10, ModelChoice::Generator, &[])),
            [0, 1, 2]
        );
        assert!(explore(&m, 0, 10, 1.0, 1, &[]).iter().all(|s| s.item < 3));
        let empty = mf(&[], &[], &[]);
        let m = qm(&empty, &empty, &[]);
        assert!(recommend(&m, 0, 3, ModelChoice::Blend, &[]).is_empty());
        assert!(explore(&m, 0, 3, 1.0, 1, &[]).is_empty());
        assert!(cold_start(&m, 3, &[]).is_empty());
        assert!(rank(&m, None, &[0, 1], ModelChoice::Generator).is_empty());
        assert!(similar(&m, 0, 3, ModelChoice::Generator).is_empty());
    }
}
