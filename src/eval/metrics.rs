//! Ranking metrics (P@k, NDCG@k, Recall@k, HitRate@k, MAP, MRR) and ranking helpers.
//!
//! The ranking order used everywhere: higher score first, ties broken by the lower item index,
//! NaN scores last (NaNs among themselves by index). `-0.0` and `0.0` are equal scores. This is a
//! strict total order over item indices, so every ranking is deterministic.

use std::collections::BTreeMap;

use crate::model::topk::{for_each_candidate, rank_key};

/// The best `k` candidates (one partial selection for every user: see [`crate::model::topk`]).
pub use crate::model::topk::top_k;

/// Metric name → value, e.g. `"P@5"`, `"NDCG@5"`, `"MAP"`, `"users"`.
pub type Metrics = BTreeMap<String, f64>;

/// Writes into `out` every item of `0..scores.len()` not in `excluded` (sorted ascending), ranked
/// by score descending; ties go to the lower item index and NaN scores come last.
pub fn rank_candidates(scores: &[f32], excluded: &[u32], out: &mut Vec<u32>) {
    out.clear();
    for_each_candidate(scores.len(), excluded, |i| out.push(i as u32));
    out.sort_unstable_by_key(|&i| rank_key(scores[i as usize], i));
}

/// Writes into `ranks` the 1-based positions (ascending) that the relevant items take in the full
/// candidate ranking of [`rank_candidates`], without sorting all candidates: O(n log R).
///
/// `relevant` items that are excluded or out of range (`>= scores.len()`) are not candidates and
/// are dropped, so `ranks.len()` is the number `R` of relevant candidates.
pub fn relevant_ranks(scores: &[f32], excluded: &[u32], relevant: &[u32], ranks: &mut Vec<usize>) {
    ranks.clear();
    let n = scores.len();
    let mut rel: Vec<u64> = relevant
        .iter()
        .filter(|&&i| (i as usize) < n && excluded.binary_search(&i).is_err())
        .map(|&i| rank_key(scores[i as usize], i))
        .collect();
    if rel.is_empty() {
        return;
    }
    rel.sort_unstable();
    rel.dedup();
    // counts[p] = candidates with exactly p relevant items ranked strictly before them. The j-th
    // relevant item (0-based, ranking order) is preceded by exactly j relevant items, so its
    // 1-based rank is the number of candidates with p <= j (itself included).
    let mut counts = vec![0usize; rel.len() + 1];
    for_each_candidate(n, excluded, |i| {
        let key = rank_key(scores[i], i as u32);
        counts[rel.partition_point(|&r| r < key)] += 1;
    });
    let mut acc = 0;
    for &c in &counts[..rel.len()] {
        acc += c;
        ranks.push(acc);
    }
}

/// Metrics at one cut-off `k` for one user.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AtK {
    /// The cut-off.
    pub k: usize,
    /// Hits in the top `k` divided by `k`.
    pub precision: f64,
    /// Binary-gain NDCG: DCG of the top `k` over the ideal DCG of `min(k, R)` hits.
    pub ndcg: f64,
    /// Hits in the top `k` divided by `R`.
    pub recall: f64,
    /// 1 if any relevant item is in the top `k`, else 0.
    pub hit_rate: f64,
}

/// One user's metrics over a ranking with `R >= 1` relevant candidates.
#[derive(Debug, Clone, PartialEq)]
pub struct UserMetrics {
    /// Cut-off metrics, in the order of the requested `ks`.
    pub at_k: Vec<AtK>,
    /// Average precision over the full ranking (summed precision at each hit, divided by `R`).
    pub average_precision: f64,
    /// 1 / rank of the first relevant item.
    pub reciprocal_rank: f64,
    /// `R`: the number of relevant items among the candidates.
    pub n_relevant: usize,
}

/// Discount of a hit at 1-based rank `r`: `1 / log2(r + 1)`.
#[inline]
fn discount(rank: usize) -> f64 {
    1.0 / ((rank + 1) as f64).log2()
}

impl UserMetrics {
    /// Metrics of a full `ranking` (best first, excluded items already removed) against the sorted
    /// `relevant` items. Relevant items absent from the ranking do not count towards `R`; `None`
    /// when `R == 0`.
    pub fn from_ranking(ranking: &[u32], relevant: &[u32], ks: &[usize]) -> Option<Self> {
        let hit_ranks: Vec<usize> = ranking
            .iter()
            .enumerate()
            .filter(|(_, item)| relevant.binary_search(item).is_ok())
            .map(|(pos, _)| pos + 1)
            .collect();
        Self::from_hit_ranks(&hit_ranks, ks)
    }

    /// Metrics from the 1-based ranks of the relevant candidates (strictly ascending, one per
    /// relevant item, so `R = hit_ranks.len()`); `None` when `R == 0`.
    pub fn from_hit_ranks(hit_ranks: &[usize], ks: &[usize]) -> Option<Self> {
        let r = hit_ranks.len();
        let &first = hit_ranks.first()?;
        let rf = r as f64;
        let at_k = ks
            .iter()
            .map(|&k| {
                let hits = hit_ranks.partition_point(|&rank| rank <= k);
                let dcg: f64 = hit_ranks[..hits].iter().map(|&rank| discount(rank)).sum();
                let idcg: f64 = (1..=k.min(r)).map(discount).sum();
                let hf = hits as f64;
                AtK {
                    k,
                    precision: if k == 0 { 0.0 } else { hf / k as f64 },
                    ndcg: if idcg > 0.0 { dcg / idcg } else { 0.0 },
                    recall: hf / rf,
                    hit_rate: if hits > 0 { 1.0 } else { 0.0 },
                }
            })
            .collect();
        let ap_sum: f64 = hit_ranks
            .iter()
            .enumerate()
            .map(|(j, &rank)| (j + 1) as f64 / rank as f64)
            .sum();
        Some(Self {
            at_k,
            average_precision: ap_sum / rf,
            reciprocal_rank: 1.0 / first as f64,
            n_relevant: r,
        })
    }

    /// This user's value of the metric `name` (`"P@k"`, `"NDCG@k"`, `"Recall@k"`,
    /// `"HitRate@k"` for a measured `k`, `"MAP"`, `"MRR"`); None for any other name.
    pub fn value(&self, name: &str) -> Option<f64> {
        match name {
            "MAP" => return Some(self.average_precision),
            "MRR" => return Some(self.reciprocal_rank),
            _ => {}
        }
        let (family, k) = name.split_once('@')?;
        let k: usize = k.parse().ok()?;
        let a = self.at_k.iter().find(|a| a.k == k)?;
        match family {
            "P" => Some(a.precision),
            "NDCG" => Some(a.ndcg),
            "Recall" => Some(a.recall),
            "HitRate" => Some(a.hit_rate),
            _ => None,
        }
    }

    /// This user's values under the standard metric names (without `"users"`).
    pub fn to_metrics(&self) -> Metrics {
        let mut acc = MetricsAccumulator::new(&self.at_k.iter().map(|a| a.k).collect::<Vec<_>>());
        acc.add(self);
        let mut m = acc.finish();
        m.remove("users");
        m
    }
}

/// Averages [`UserMetrics`] over users: sums in `f64` in the order they are added, then divides
/// by the number of users. Add users in a fixed order for bit-identical results.
#[derive(Debug, Clone)]
pub struct MetricsAccumulator {
    ks: Vec<usize>,
    /// Per k: precision, ndcg, recall, hit rate.
    at_k: Vec<[f64; 4]>,
    average_precision: f64,
    reciprocal_rank: f64,
    users: usize,
}

impl MetricsAccumulator {
    /// An empty accumulator for the cut-offs `ks`.
    pub fn new(ks: &[usize]) -> Self {
        Self {
            ks: ks.to_vec(),
            at_k: vec![[0.0; 4]; ks.len()],
            average_precision: 0.0,
            reciprocal_rank: 0.0,
            users: 0,
        }
    }

    /// Adds one user. Its cut-offs are matched to the accumulator's by value; cut-offs the user
    /// lacks contribute nothing.
    pub fn add(&mut self, user: &UserMetrics) {
        for (k, sums) in self.ks.iter().zip(self.at_k.iter_mut()) {
            if let Some(a) = user.at_k.iter().find(|a| a.k == *k) {
                sums[0] += a.precision;
                sums[1] += a.ndcg;
                sums[2] += a.recall;
                sums[3] += a.hit_rate;
            }
        }
        self.average_precision += user.average_precision;
        self.reciprocal_rank += user.reciprocal_rank;
        self.users += 1;
    }

    /// Number of users added so far.
    pub fn users(&self) -> usize {
        self.users
    }

    /// The averages under `"P@k"`, `"NDCG@k"`, `"Recall@k"`, `"HitRate@k"` (per k), `"MAP"` and
    /// `"MRR"`, plus `"users"` (the count). With no users every average is 0.
    pub fn finish(self) -> Metrics {
        let n = if self.users == 0 {
            1.0
        } else {
            self.users as f64
        };
        let mut m = Metrics::new();
        for (k, sums) in self.ks.iter().zip(&self.at_k) {
            m.insert(format!("P@{k}"), sums[0] / n);
            m.insert(format!("NDCG@{k}"), sums[1] / n);
            m.insert(format!("Recall@{k}"), sums[2] / n);
            m.insert(format!("HitRate@{k}"), sums[3] / n);
        }
        m.insert("MAP".to_owned(), self.average_precision / n);
        m.insert("MRR".to_owned(), self.reciprocal_rank / n);
        m.insert("users".to_owned(), self.users as f64);
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    fn check(m: &Metrics, name: &str, expected: f64) {
        let got = m[name];
        assert!(
            close(got, expected),
            "{name}: got {got}, expected {expected}"
        );
    }

    fn user(ranking: &[u32], relevant: &[u32], ks: &[usize]) -> Metrics {
        UserMetrics::from_ranking(ranking, relevant, ks)
            .unwrap()
            .to_metrics()
    }

    #[test]
    fn hand_computed_two_hits() {
        // Hits at ranks 2 and 5; R = 2.
        let m = user(&[3, 1, 4, 0, 2], &[1, 2], &[1, 3, 5]);
        let l3 = 1.0 / 3f64.log2();
        let l6 = 1.0 / 6f64.log2();
        check(&m, "P@1", 0.0);
        check(&m, "P@3", 1.0 / 3.0);
        check(&m, "P@5", 2.0 / 5.0);
        check(&m, "NDCG@1", 0.0);
        check(&m, "NDCG@3", l3 / (1.0 + l3));
        check(&m, "NDCG@5", (l3 + l6) / (1.0 + l3));
        check(&m, "Recall@1", 0.0);
        check(&m, "Recall@3", 0.5);
        check(&m, "Recall@5", 1.0);
        check(&m, "HitRate@1", 0.0);
        check(&m, "HitRate@3", 1.0);
        check(&m, "HitRate@5", 1.0);
        check(&m, "MAP", (1.0 / 2.0 + 2.0 / 5.0) / 2.0);
        check(&m, "MRR", 1.0 / 2.0);
        assert!(!m.contains_key("users"));
        assert_eq!(m.len(), 3 * 4 + 2);
    }

    #[test]
    fn k_larger_than_the_list() {
        let m = user(&[0, 1, 2], &[2], &[10]);
        check(&m, "P@10", 1.0 / 10.0);
        check(&m, "NDCG@10", (1.0 / 4f64.log2()) / 1.0);
        check(&m, "Recall@10", 1.0);
        check(&m, "HitRate@10", 1.0);
        check(&m, "MAP", 1.0 / 3.0);
        check(&m, "MRR", 1.0 / 3.0);
    }

    #[test]
    fn relevant_items_missing_from_the_ranking_do_not_count() {
        // Item 9 is not a candidate, so R = 1 (< k = 3).
        let um = UserMetrics::from_ranking(&[5, 6, 7, 8], &[6, 9], &[3]).unwrap();
        assert_eq!(um.n_relevant, 1);
        let m = um.to_metrics();
        check(&m, "P@3", 1.0 / 3.0);
        check(&m, "NDCG@3", (1.0 / 3f64.log2()) / 1.0);
        check(&m, "Recall@3", 1.0);
        check(&m, "MAP", 1.0 / 2.0);
        check(&m, "MRR", 1.0 / 2.0);
    }

    #[test]
    fn perfect_ranking() {
        let m = user(&[2, 7, 1, 0], &[2, 7], &[1, 2, 4]);
        for k in [1, 2, 4] {
            check(&m, &format!("NDCG@{k}"), 1.0);
            check(&m, &format!("HitRate@{k}"), 1.0);
        }
        check(&m, "P@1", 1.0);
        check(&m, "P@2", 1.0);
        check(&m, "P@4", 0.5);
        check(&m, "Recall@1", 0.5);
        check(&m, "Recall@2", 1.0);
        check(&m, "MAP", 1.0);
        check(&m, "MRR", 1.0);
    }

    #[test]
    fn more_relevant_than_k() {
        // Hits at ranks 1, 3, 4, 6; R = 4, k = 2.
        let m = user(&[0, 1, 2, 3, 4, 5, 6], &[0, 2, 3, 5], &[2]);
        check(&m, "P@2", 1.0 / 2.0);
        check(&m, "NDCG@2", 1.0 / (1.0 + 1.0 / 3f64.log2()));
        check(&m, "Recall@2", 1.0 / 4.0);
        check(&m, "HitRate@2", 1.0);
        check(
            &m,
            "MAP",
            (1.0 / 1.0 + 2.0 / 3.0 + 3.0 / 4.0 + 4.0 / 6.0) / 4.0,
        );
        check(&m, "MRR", 1.0);
    }

    #[test]
    fn no_relevant_candidates_is_none() {
        assert!(UserMetrics::from_ranking(&[0, 1, 2], &[], &[1]).is_none());
        assert!(UserMetrics::from_ranking(&[0, 1, 2], &[3, 4], &[1]).is_none());
        assert!(UserMetrics::from_hit_ranks(&[], &[1]).is_none());
    }

    #[test]
    fn accumulator_averages_and_counts() {
        let ks = [1, 3];
        let mut acc = MetricsAccumulator::new(&ks);
        acc.add(&UserMetrics::from_ranking(&[3, 1, 4, 0, 2], &[1, 2], &ks).unwrap());
        acc.add(&UserMetrics::from_ranking(&[2, 7, 1, 0], &[2, 7], &ks).unwrap());
        assert_eq!(acc.users(), 2);
        let m = acc.finish();
        let l3 = 1.0 / 3f64.log2();
        check(&m, "users", 2.0);
        check(&m, "P@1", (0.0 + 1.0) / 2.0);
        check(&m, "P@3", (1.0 / 3.0 + 2.0 / 3.0) / 2.0);
        check(&m, "NDCG@3", (l3 / (1.0 + l3) + 1.0) / 2.0);
        check(&m, "Recall@3", (0.5 + 1.0) / 2.0);
        check(&m, "HitRate@1", 0.5);
        check(&m, "MAP", ((1.0 / 2.0 + 2.0 / 5.0) / 2.0 + 1.0) / 2.0);
        check(&m, "MRR", (0.5 + 1.0) / 2.0);

        let empty = MetricsAccumulator::new(&ks).finish();
        check(&empty, "users", 0.0);
        check(&empty, "MAP", 0.0);
        check(&empty, "P@3", 0.0);
    }

    #[test]
    fn ranking_excludes_ties_by_index_and_nan_last() {
        let scores = [
            0.5,
            0.9,
            0.5,
            f32::NAN,
            0.9,
            f32::NEG_INFINITY,
            0.1,
            f32::INFINITY,
        ];
        let mut out = Vec::new();
        rank_candidates(&scores, &[6], &mut out);
        assert_eq!(out, vec![7, 1, 4, 0, 2, 5, 3]);
        rank_candidates(&scores, &[], &mut out);
        assert_eq!(out, vec![7, 1, 4, 0, 2, 6, 5, 3]);
        rank_candidates(&scores, &[0, 1, 2, 3, 4, 5, 6, 7], &mut out);
        assert!(out.is_empty());
        assert_eq!(top_k(&scores, &[6], 3), vec![7, 1, 4]);
        assert_eq!(top_k(&scores, &[6], 0), Vec::<u32>::new());
        assert_eq!(top_k(&scores, &[6], 100), vec![7, 1, 4, 0, 2, 5, 3]);
        // Several NaNs: by index among themselves; both zeros tie.
        let s2 = [f32::NAN, 0.0, -0.0, f32::NAN, -1.0];
        rank_candidates(&s2, &[], &mut out);
        assert_eq!(out, vec![1, 2, 4, 0, 3]);
        let s3 = [-0.0, 0.0];
        rank_candidates(&s3, &[], &mut out);
        assert_eq!(out, vec![0, 1]);
    }

    /// Reference order written with an explicit comparator.
    fn reference_ranking(scores: &[f32], excluded: &[u32]) -> Vec<u32> {
        let mut v: Vec<u32> = (0..scores.len() as u32)
            .filter(|i| !excluded.contains(i))
            .collect();
        v.sort_by(|&a, &b| {
            let (sa, sb) = (scores[a as usize], scores[b as usize]);
            match (sa.is_nan(), sb.is_nan()) {
                (true, true) => a.cmp(&b),
                (true, false) => std::cmp::Ordering::Greater,
                (false, true) => std::cmp::Ordering::Less,
                (false, false) => sb.partial_cmp(&sa).unwrap().then(a.cmp(&b)),
            }
        });
        v
    }

    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self) -> u32 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (self.0 >> 33) as u32
        }
        fn below(&mut self, n: u32) -> u32 {
            self.next() % n
        }
    }

    #[test]
    fn top_k_and_relevant_ranks_agree_with_full_ranking() {
        let mut rng = Lcg(42);
        let mut full = Vec::new();
        let mut ranks = Vec::new();
        for _ in 0..300 {
            let n = 1 + rng.below(80) as usize;
            let scores: Vec<f32> = (0..n)
                .map(|_| match rng.below(20) {
                    0 => f32::NAN,
                    1 => f32::NEG_INFINITY,
                    2 => -0.0,
                    // Few distinct values so there are many ties.
                    _ => (rng.below(7) as f32 - 3.0) * 0.25,
                })
                .collect();
            let pick = |rng: &mut Lcg, p: u32| -> Vec<u32> {
                (0..n as u32).filter(|_| rng.below(100) < p).collect()
            };
            let excluded = pick(&mut rng, 20);
            let relevant = pick(&mut rng, 15);

            rank_candidates(&scores, &excluded, &mut full);
            assert_eq!(full, reference_ranking(&scores, &excluded));
            for k in 0..n + 2 {
                let t = top_k(&scores, &excluded, k);
                assert_eq!(t.as_slice(), &full[..k.min(full.len())]);
            }

            relevant_ranks(&scores, &excluded, &relevant, &mut ranks);
            let expected: Vec<usize> = full
                .iter()
                .enumerate()
                .filter(|(_, i)| relevant.contains(i))
                .map(|(p, _)| p + 1)
                .collect();
            assert_eq!(ranks, expected);

            let ks = [1, 3, 10];
            assert_eq!(
                UserMetrics::from_hit_ranks(&ranks, &ks),
                UserMetrics::from_ranking(&full, &relevant, &ks)
            );
        }
    }
}
