//! Synthetic learning-to-rank data for tests and demos: uniform features, graded labels from a
//! hidden linear relevance function plus noise.

use ndarray::Array2;

use crate::data::letor::{LtrData, Query};
use crate::rng;

/// `queries` queries of `docs` documents with `features` features in [0, 1). A document's label
/// is 2, 1 or 0 as its hidden relevance `Σ_f w_f x_f + noise` (w_f = 1 for the first half of the
/// features, −0.5 for the rest) falls in the query's top 15 %, next 25 % or the remainder, so
/// every query has relevant documents and a linear scorer can learn the order. Document ids are
/// `"{qid}-d{n}"`, query ids `"q{n}"`.
pub fn synthetic_ltr(queries: usize, docs: usize, features: usize, seed: u64) -> LtrData {
    let weight = |f: usize| if f < features.div_ceil(2) { 1.0 } else { -0.5 };
    let queries = (0..queries)
        .map(|q| {
            let mut r = rng::stream(seed, 0x5e_5717, q as u64);
            let x = Array2::from_shape_fn((docs, features), |_| rng::unit(&mut r) as f32);
            let relevance: Vec<f64> = (0..docs)
                .map(|d| {
                    let signal: f64 = (0..features)
                        .map(|f| weight(f) * f64::from(x[[d, f]]))
                        .sum();
                    signal + 0.1 * (rng::unit(&mut r) - 0.5)
                })
                .collect();
            let mut order: Vec<usize> = (0..docs).collect();
            order.sort_by(|&a, &b| relevance[b].total_cmp(&relevance[a]));
            let mut labels = vec![0u8; docs];
            for (rank, &d) in order.iter().enumerate() {
                let frac = rank as f64 / docs as f64;
                labels[d] = if frac < 0.15 {
                    2
                } else if frac < 0.4 {
                    1
                } else {
                    0
                };
            }
            let qid = format!("q{q}");
            Query {
                doc_ids: (0..docs).map(|d| format!("{qid}-d{d}")).collect(),
                qid,
                features: x,
                labels,
            }
        })
        .collect();
    LtrData {
        queries,
        n_features: features,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_and_graded() {
        let a = synthetic_ltr(3, 20, 4, 1);
        assert_eq!(a, synthetic_ltr(3, 20, 4, 1));
        assert_ne!(a, synthetic_ltr(3, 20, 4, 2));
        for q in &a.queries {
            assert_eq!(q.labels.iter().filter(|&&l| l == 2).count(), 3);
            assert_eq!(q.labels.iter().filter(|&&l| l == 1).count(), 5);
        }
    }
}
