//! Learning-to-rank metrics with LETOR's definitions.
//!
//! A query's documents are ordered by score, highest first; equal scores keep file order (a
//! stable sort), so a constant scorer is judged by the file's order, not by luck.
//! - NDCG@k: DCG = Σ_{i ≤ k} (2^label_i − 1) / log2(i + 1) over the ranked list, divided by the
//!   same sum over the labels sorted descending. A list shorter than k is cut at its length.
//! - P@k: relevant (label > 0) documents among the first k, divided by k.
//! - MAP: mean over relevant documents of the precision at their rank.
//! - MRR: 1 / rank of the first relevant document.
//!
//! Every metric is averaged over the queries with at least one relevant document.

use std::collections::BTreeMap;

use rayon::prelude::*;

use crate::data::letor::{LtrData, Query};

/// Metric name → value, e.g. `NDCG@10`, `P@5`, `MAP`, `MRR`.
pub type Metrics = BTreeMap<String, f64>;

/// Cut-offs reported by default.
pub const DEFAULT_KS: [usize; 4] = [1, 3, 5, 10];

/// Document order by score descending, ties in original order.
pub fn ranking(scores: &[f32]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    order
}

fn gain(label: u8) -> f64 {
    f64::from((1u32 << label) - 1)
}

fn discount(rank0: usize) -> f64 {
    1.0 / ((rank0 + 2) as f64).log2()
}

/// DCG of the first `k` labels in the given order.
pub fn dcg(labels_in_order: impl Iterator<Item = u8>, k: usize) -> f64 {
    labels_in_order
        .take(k)
        .enumerate()
        .map(|(i, l)| gain(l) * discount(i))
        .sum()
}

/// Metrics of one query, or `None` when it has no relevant document.
pub fn query_metrics(scores: &[f32], labels: &[u8], ks: &[usize]) -> Option<Metrics> {
    assert_eq!(scores.len(), labels.len(), "one score per document");
    let n_rel = labels.iter().filter(|&&l| l > 0).count();
    if n_rel == 0 {
        return None;
    }
    let order = ranking(scores);
    let ranked: Vec<u8> = order.iter().map(|&i| labels[i]).collect();
    let mut ideal = labels.to_vec();
    ideal.sort_unstable_by(|a, b| b.cmp(a));
    let mut m = Metrics::new();
    for &k in ks {
        let idcg = dcg(ideal.iter().copied(), k);
        m.insert(format!("NDCG@{k}"), dcg(ranked.iter().copied(), k) / idcg);
        let hits = ranked.iter().take(k).filter(|&&l| l > 0).count();
        m.insert(format!("P@{k}"), hits as f64 / k as f64);
    }
    let (mut hits, mut ap, mut rr) = (0usize, 0.0, 0.0);
    for (i, &l) in ranked.iter().enumerate() {
        if l > 0 {
            hits += 1;
            ap += hits as f64 / (i + 1) as f64;
            if hits == 1 {
                rr = 1.0 / (i + 1) as f64;
            }
        }
    }
    m.insert("MAP".into(), ap / n_rel as f64);
    m.insert("MRR".into(), rr);
    Some(m)
}

/// Averages `score`'s per-query metrics over the queries with a relevant document (in parallel;
/// the sum runs in query order, so the result does not depend on the thread count).
pub fn evaluate<F>(data: &LtrData, ks: &[usize], score: F) -> Metrics
where
    F: Fn(&Query) -> Vec<f32> + Sync,
{
    let mut sum = Metrics::new();
    let mut n = 0usize;
    for m in query_metrics_all(data, ks, score).into_iter().flatten() {
        n += 1;
        for (k, v) in m {
            *sum.entry(k).or_insert(0.0) += v;
        }
    }
    for v in sum.values_mut() {
        *v /= n.max(1) as f64;
    }
    sum.insert("queries".into(), n as f64);
    sum
}

/// [`evaluate`] query by query: one entry per query in order (None without a relevant document).
pub fn query_metrics_all<F>(data: &LtrData, ks: &[usize], score: F) -> Vec<Option<Metrics>>
where
    F: Fn(&Query) -> Vec<f32> + Sync,
{
    data.queries
        .par_iter()
        .map(|q| query_metrics(&score(q), &q.labels, ks))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn hand_computed_example() {
        // Ranked labels: 0, 2, 1, 0.
        let scores = [0.9, 0.8, 0.7, 0.1];
        let labels = [0, 2, 1, 0];
        let m = query_metrics(&scores, &labels, &[1, 3, 10]).unwrap();
        let dcg3 = 3.0 / 3f64.log2() + 1.0 / 4f64.log2();
        let idcg3 = 3.0 + 1.0 / 3f64.log2();
        assert!(close(m["NDCG@1"], 0.0));
        assert!(close(m["NDCG@3"], dcg3 / idcg3));
        assert!(close(m["NDCG@10"], dcg3 / idcg3), "short lists are cut");
        assert!(close(m["P@1"], 0.0));
        assert!(close(m["P@3"], 2.0 / 3.0));
        assert!(close(m["P@10"], 0.2), "P@k divides by k");
        assert!(close(m["MAP"], (1.0 / 2.0 + 2.0 / 3.0) / 2.0));
        assert!(close(m["MRR"], 0.5));
    }

    #[test]
    fn perfect_ranking_scores_one_and_ties_keep_file_order() {
        let m = query_metrics(&[3.0, 2.0, 1.0], &[2, 1, 0], &[1, 2, 3]).unwrap();
        for k in ["NDCG@1", "NDCG@2", "NDCG@3", "MAP", "MRR"] {
            assert!(close(m[k], 1.0), "{k}");
        }
        let tied = query_metrics(&[0.0; 3], &[0, 0, 1], &[1]).unwrap();
        assert!(close(tied["MRR"], 1.0 / 3.0));
        assert!(query_metrics(&[1.0, 2.0], &[0, 0], &[1]).is_none());
    }

    #[test]
    fn averages_only_queries_with_relevant_documents() {
        use ndarray::Array2;
        let q = |qid: &str, labels: Vec<u8>| Query {
            qid: qid.into(),
            features: Array2::zeros((labels.len(), 1)),
            doc_ids: (0..labels.len()).map(|i| i.to_string()).collect(),
            labels,
        };
        let data = LtrData {
            queries: vec![q("a", vec![1, 0]), q("b", vec![0, 1]), q("c", vec![0, 0])],
            n_features: 1,
        };
        let m = evaluate(&data, &[1], |q| vec![0.0; q.len()]);
        assert!(close(m["P@1"], 0.5));
        assert!(close(m["MRR"], 0.75));
        assert!(close(m["queries"], 2.0));
    }
}
