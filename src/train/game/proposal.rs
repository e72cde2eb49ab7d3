//! Proposals over a catalogue, for the sampled game on catalogues too large to score whole.
//!
//! A [`Proposal`] is the mixture q(j) = (1 − u)·c_j^β / Σ_i c_i^β + u / n of item popularity
//! (counts `c`, flattened by β) and the uniform distribution, drawn from in O(1) through an
//! alias table, with the exact log q(j) of every item. A [`SampledSet`] is S draws from it,
//! deduplicated, each item carrying the correction that makes sums over the set unbiased
//! estimates of sums over the catalogue (Hansen–Hurwitz: Σ_j f(j) ≈ Σ_set c_j·f(j)/(S·q_j)).
//! [`SampledCandidates`] is one context's candidate set for G's sampled softmax: its own
//! positives (always in, uncorrected) and a sampled set shared by a batch of contexts.
//! [`Resampler`] draws from the catalogue's softmax by sampling-importance-resampling from a
//! sampled pool (D's negatives "from G" without scoring the catalogue).

use crate::rng::{self, Rng};
use crate::train::game::Candidates;
use crate::train::game::policy::PolicyBuffers;

/// A distribution over items `0..n`: popularity^β mixed with uniform, with O(1) draws.
#[derive(Debug, Clone)]
pub struct Proposal {
    /// q(j).
    prob: Vec<f64>,
    /// Alias table: keep slot i with probability `keep[i]`, else take `alias[i]`.
    keep: Vec<f64>,
    alias: Vec<u32>,
}

impl Proposal {
    /// q(j) = (1 − uniform)·count_j^β / Σ count^β + uniform / n. With no counts at all (or
    /// `uniform` ≥ 1) the proposal is uniform. `beta` ≥ 0 (0: every item with a count weighs
    /// the same), `uniform` in [0, 1].
    pub fn new(item_counts: &[u32], beta: f64, uniform: f64) -> Self {
        let n = item_counts.len();
        let pop: Vec<f64> = item_counts
            .iter()
            .map(|&c| if c > 0 { f64::from(c).powf(beta) } else { 0.0 })
            .collect();
        let total: f64 = pop.iter().sum();
        let u = if total > 0.0 && total.is_finite() {
            uniform.clamp(0.0, 1.0)
        } else {
            1.0
        };
        let inv_n = 1.0 / n.max(1) as f64;
        let prob: Vec<f64> = pop
            .iter()
            .map(|&w| {
                let popular = if u < 1.0 { (1.0 - u) * w / total } else { 0.0 };
                popular + u * inv_n
            })
            .collect();
        let (keep, alias) = alias_table(&prob);
        Self { prob, keep, alias }
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.prob.len()
    }

    /// True for an empty catalogue.
    pub fn is_empty(&self) -> bool {
        self.prob.is_empty()
    }

    /// q(j).
    pub fn q(&self, j: u32) -> f64 {
        self.prob[j as usize]
    }

    /// log q(j) (−∞ for an item the proposal never draws).
    pub fn log_q(&self, j: u32) -> f64 {
        self.q(j).ln()
    }

    /// One draw (the catalogue must not be empty).
    pub fn draw(&self, rng: &mut Rng) -> u32 {
        let i = rng::below(rng, self.keep.len());
        if rng::unit(rng) < self.keep[i] {
            i as u32
        } else {
            self.alias[i]
        }
    }

    /// `draws` draws, deduplicated into a [`SampledSet`].
    pub fn sample_set(&self, draws: usize, rng: &mut Rng) -> SampledSet {
        let mut drawn: Vec<u32> = (0..draws).map(|_| self.draw(rng)).collect();
        drawn.sort_unstable();
        let mut set = SampledSet {
            items: Vec::with_capacity(drawn.len()),
            log_inclusion: Vec::with_capacity(drawn.len()),
            draws,
        };
        let log_s = (draws as f64).ln();
        for run in drawn.chunk_by(|a, b| a == b) {
            let j = run[0];
            set.items.push(j);
            // log(S·q_j / c_j): the item stands for S·q_j/c_j items of the catalogue.
            set.log_inclusion
                .push(log_s + self.log_q(j) - (run.len() as f64).ln());
        }
        set
    }
}

/// Vose's alias method: for each slot the probability of keeping it, and the slot that takes
/// the rest of its column.
fn alias_table(prob: &[f64]) -> (Vec<f64>, Vec<u32>) {
    let n = prob.len();
    let mut keep: Vec<f64> = prob.iter().map(|&p| p * n as f64).collect();
    let mut alias: Vec<u32> = (0..n as u32).collect();
    let (mut small, mut large): (Vec<usize>, Vec<usize>) = (0..n).partition(|&i| keep[i] < 1.0);
    while let (Some(&s), Some(&l)) = (small.last(), large.last()) {
        small.pop();
        alias[s] = l as u32;
        keep[l] -= 1.0 - keep[s];
        if keep[l] < 1.0 {
            large.pop();
            small.push(l);
        }
    }
    // What is left is 1 up to rounding.
    for i in small.into_iter().chain(large) {
        keep[i] = 1.0;
    }
    (keep, alias)
}

/// S draws from a [`Proposal`], deduplicated (sorted by item).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SampledSet {
    /// The distinct items drawn, sorted.
    pub items: Vec<u32>,
    /// Per item, log(S·q_j / c_j) with c_j its number of draws: subtracting it from a logit
    /// turns a sum of exp(logits) over the set into an unbiased estimate of the sum over the
    /// catalogue.
    pub log_inclusion: Vec<f64>,
    /// S, the number of draws.
    pub draws: usize,
}

impl SampledSet {
    /// Number of distinct items.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True when nothing was drawn.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

/// One context's candidates for G's sampled softmax: its positives first (included for sure,
/// no correction), then a shared [`SampledSet`] whose items that are also positives are masked
/// (log inclusion +∞: drawing a positive again is an "accidental hit", already counted exactly).
///
/// With e_j = exp(s_j/τ), Σ_slots e_j·exp(−log_inclusion) is an unbiased estimate of the
/// catalogue's Σ_j e_j, so the policy over the slots is the self-normalised sampled softmax.
#[derive(Debug, Clone, Default)]
pub struct SampledCandidates {
    ids: Vec<u32>,
    log_inclusion: Vec<f64>,
    n_positives: usize,
}

impl SampledCandidates {
    /// Refills the set (reusing its buffers) for a context with sorted `positives`.
    pub fn fill(&mut self, positives: &[u32], shared: &SampledSet) {
        self.ids.clear();
        self.log_inclusion.clear();
        self.ids.extend_from_slice(positives);
        self.log_inclusion.resize(positives.len(), 0.0);
        self.ids.extend_from_slice(&shared.items);
        self.log_inclusion
            .extend(masked(&shared.items, &shared.log_inclusion, positives));
        self.n_positives = positives.len();
    }

    /// Number of positives (slots `0..n_positives`).
    pub fn n_positives(&self) -> usize {
        self.n_positives
    }

    /// Every slot's item id.
    pub fn ids(&self) -> &[u32] {
        &self.ids
    }

    /// Every slot's log inclusion (see [`Candidates::log_inclusion`]).
    pub fn log_inclusions(&self) -> &[f64] {
        &self.log_inclusion
    }
}

impl Candidates for SampledCandidates {
    fn len(&self) -> usize {
        self.ids.len()
    }

    fn id(&self, slot: usize) -> u32 {
        self.ids[slot]
    }

    fn log_inclusion(&self, slot: usize) -> f64 {
        self.log_inclusion[slot]
    }
}

/// `log_inclusion`, with +∞ for the `items` that are in `skip` (both sorted): one merge pass.
fn masked<'a>(
    items: &'a [u32],
    log_inclusion: &'a [f64],
    skip: &'a [u32],
) -> impl Iterator<Item = f64> + 'a {
    let mut k = 0;
    items.iter().zip(log_inclusion).map(move |(&j, &li)| {
        while k < skip.len() && skip[k] < j {
            k += 1;
        }
        if k < skip.len() && skip[k] == j {
            f64::INFINITY
        } else {
            li
        }
    })
}

/// Sampling-importance-resampling from softmax(s/τ) over a catalogue: a pool of M proposal
/// draws weighted by exp(s_j/τ)·c_j/(M·q_j), then draws from the pool ∝ those weights. The draws'
/// distribution tends to the catalogue's softmax as M grows (its bias is O(1/M)).
#[derive(Debug, Default)]
pub struct Resampler {
    buf: PolicyBuffers,
    log_inclusion: Vec<f64>,
    total: f64,
}

impl Resampler {
    /// Weighs `pool` by its items' `scores` (one per pool item) at `temperature`, giving no
    /// mass to the sorted items in `skip`. False when no pool item can be drawn.
    pub fn prepare(
        &mut self,
        pool: &SampledSet,
        scores: &[f32],
        skip: &[u32],
        temperature: f64,
    ) -> bool {
        self.log_inclusion.clear();
        self.log_inclusion
            .extend(masked(&pool.items, &pool.log_inclusion, skip));
        self.buf.resize(pool.len());
        self.buf.scores.copy_from_slice(scores);
        self.total = self
            .buf
            .corrected_softmax(temperature, &self.log_inclusion)
            .map_or(0.0, |s| s.total);
        self.total > 0.0 && self.total.is_finite()
    }

    /// One draw after a successful [`Resampler::prepare`]: the pool position.
    pub fn draw(&self, rng: &mut Rng) -> usize {
        crate::model::policy::sample_cumulative(&self.buf.cumulative, self.total, rng)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probabilities_sum_to_one_and_mix_as_specified() {
        let counts = [0u32, 1, 4, 9, 16];
        let p = Proposal::new(&counts, 0.5, 0.2);
        let total: f64 = (0..5).map(|j| p.q(j)).sum();
        assert!((total - 1.0).abs() < 1e-12);
        // c^0.5 = 0, 1, 2, 3, 4 (sum 10).
        assert!((p.q(0) - 0.2 / 5.0).abs() < 1e-15);
        assert!((p.q(4) - (0.8 * 0.4 + 0.04)).abs() < 1e-15);
        assert!((p.log_q(3) - p.q(3).ln()).abs() < 1e-15);
        // Without counts it is uniform; without the uniform part unseen items are never drawn.
        let flat = Proposal::new(&[0, 0, 0, 0], 0.75, 0.0);
        assert!((0..4).all(|j| (flat.q(j) - 0.25).abs() < 1e-15));
        let pop = Proposal::new(&[0, 3, 0, 1], 1.0, 0.0);
        assert_eq!(pop.log_q(0), f64::NEG_INFINITY);
        let mut r = rng::stream(1, 0, 0);
        assert!((0..10_000).all(|_| matches!(pop.draw(&mut r), 1 | 3)));
    }

    /// Pearson χ² of alias draws against q (9 degrees of freedom; 99.9% quantile 27.9).
    #[test]
    fn alias_draws_follow_the_proposal() {
        let counts: Vec<u32> = (0..10).map(|i| (i * i) as u32).collect();
        let p = Proposal::new(&counts, 0.75, 0.1);
        let mut r = rng::stream(7, 1, 0);
        let n = 300_000;
        let mut hits = [0usize; 10];
        for _ in 0..n {
            hits[p.draw(&mut r) as usize] += 1;
        }
        let chi2: f64 = (0..10)
            .map(|j| {
                let e = p.q(j as u32) * n as f64;
                (hits[j] as f64 - e).powi(2) / e
            })
            .sum();
        assert!(chi2 < 27.9, "chi2 {chi2}, hits {hits:?}");
    }

    /// Σ_set exp(−log_inclusion)·f(j) is an unbiased estimate of Σ_j f(j).
    #[test]
    fn sampled_sets_estimate_catalogue_sums() {
        let counts: Vec<u32> = (0..50).map(|i| 1 + (i % 7) as u32 * 5).collect();
        let p = Proposal::new(&counts, 1.0, 0.3);
        let f = |j: u32| 1.0 + (f64::from(j) * 0.37).sin();
        let exact: f64 = (0..50).map(f).sum();
        let mut r = rng::stream(3, 0, 0);
        let reps = 4000;
        let mut mean = 0.0;
        for _ in 0..reps {
            let set = p.sample_set(16, &mut r);
            assert!(set.items.windows(2).all(|w| w[0] < w[1]));
            mean += set
                .items
                .iter()
                .zip(&set.log_inclusion)
                .map(|(&j, &li)| f(j) * (-li).exp())
                .sum::<f64>()
                / reps as f64;
        }
        assert!((mean - exact).abs() < 0.01 * exact, "{mean} vs {exact}");
    }

    #[test]
    fn candidates_put_positives_first_and_mask_accidental_hits() {
        let shared = SampledSet {
            items: vec![1, 4, 7],
            log_inclusion: vec![0.5, 1.5, 2.5],
            draws: 3,
        };
        let mut c = SampledCandidates::default();
        c.fill(&[4, 9], &shared);
        assert_eq!(c.len(), 5);
        assert_eq!(c.n_positives(), 2);
        assert_eq!(c.ids(), &[4, 9, 1, 4, 7]);
        assert_eq!(c.log_inclusion(0), 0.0);
        assert_eq!(c.log_inclusion(2), 0.5);
        assert_eq!(c.log_inclusion(3), f64::INFINITY);
        assert_eq!(c.id(4), 7);
    }

    /// SIR draws approach the catalogue's softmax (positives excluded) as the pool grows: the
    /// total-variation distance of their empirical distribution shrinks with M.
    #[test]
    fn resampled_draws_approach_the_softmax() {
        let n = 200usize;
        let mut r = rng::stream(13, 0, 0);
        let scores: Vec<f32> = (0..n)
            .map(|_| (rng::unit(&mut r) * 6.0 - 3.0) as f32)
            .collect();
        // Popularity unrelated to the scores.
        let counts: Vec<u32> = (0..n).map(|j| 1 + ((j * 37) % 50) as u32).collect();
        let proposal = Proposal::new(&counts, 1.0, 0.2);
        let skip = [3u32, 50, 120];
        let tau = 0.7;
        let mut target = vec![0.0; n];
        let masked: Vec<f32> = (0..n)
            .map(|j| {
                if skip.contains(&(j as u32)) {
                    f32::NEG_INFINITY
                } else {
                    scores[j]
                }
            })
            .collect();
        crate::model::policy::softmax(&masked, tau, &mut target);
        let mut sir = Resampler::default();
        let total_draws = 200_000;
        let mut tvs = Vec::new();
        for pool_size in [4usize, 32, 512] {
            let per_pool = 4;
            let mut hits = vec![0usize; n];
            let mut pool_scores = Vec::new();
            for _ in 0..total_draws / per_pool {
                let pool = proposal.sample_set(pool_size, &mut r);
                pool_scores.clear();
                pool_scores.extend(pool.items.iter().map(|&j| scores[j as usize]));
                if !sir.prepare(&pool, &pool_scores, &skip, tau) {
                    continue;
                }
                for _ in 0..per_pool {
                    hits[pool.items[sir.draw(&mut r)] as usize] += 1;
                }
            }
            let drawn: usize = hits.iter().sum();
            assert!(skip.iter().all(|&j| hits[j as usize] == 0));
            let tv = 0.5
                * hits
                    .iter()
                    .zip(&target)
                    .map(|(&h, &p)| (h as f64 / drawn as f64 - p).abs())
                    .sum::<f64>();
            println!("SIR pool M = {pool_size:>3}: total variation to the softmax {tv:.4}");
            tvs.push(tv);
        }
        assert!(tvs[0] > tvs[1] && tvs[1] > tvs[2], "{tvs:?}");
        assert!(tvs[2] < 0.05, "{tvs:?}");
    }
}
