//! Evaluation protocols and the parallel evaluation loop.

use std::fmt;
use std::str::FromStr;

use rayon::prelude::*;

use crate::data::Interactions;
use crate::data::train_data::TrainData;
use crate::eval::metrics::{Metrics, MetricsAccumulator, UserMetrics, relevant_ranks};
use crate::model::MfModel;
use crate::model::topk::exact;

/// Which items are removed from a user's candidates before ranking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// The IRGAN paper's protocol: exclude only the user's training positives (e.g. ratings above
    /// the threshold); the user's other training interactions stay candidates.
    Irgan,
    /// The standard protocol: exclude every training interaction of the user, whatever its rating.
    Standard,
}

impl Protocol {
    /// Every protocol, in declaration order.
    pub const ALL: [Protocol; 2] = [Protocol::Irgan, Protocol::Standard];

    /// The lowercase name used in configs and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Irgan => "irgan",
            Protocol::Standard => "standard",
        }
    }

    /// The exclusion set this protocol calls for: `train_positives` for [`Protocol::Irgan`],
    /// `train_all` (every training interaction) for [`Protocol::Standard`].
    pub fn exclusion<'a>(
        self,
        train_positives: &'a Interactions,
        train_all: &'a Interactions,
    ) -> &'a Interactions {
        match self {
            Protocol::Irgan => train_positives,
            Protocol::Standard => train_all,
        }
    }

    /// Candidates excluded when validating on `data.validation` under this protocol.
    pub fn validation_exclude(self, data: &TrainData) -> Interactions {
        match self {
            Protocol::Irgan => data.fit.clone(),
            Protocol::Standard => data.train.seen.difference(&data.validation),
        }
    }

    /// Candidates excluded when testing on `data.test` under this protocol.
    pub fn test_exclude(self, data: &TrainData) -> Interactions {
        match self {
            Protocol::Irgan => data.train.positives.clone(),
            Protocol::Standard => data.train.seen.clone(),
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A protocol name that is neither `irgan` nor `standard`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown evaluation protocol `{0}`; expected one of: irgan, standard")]
pub struct ParseProtocolError(pub String);

impl FromStr for Protocol {
    type Err = ParseProtocolError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        Protocol::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(t))
            .ok_or_else(|| ParseProtocolError(s.to_owned()))
    }
}

/// Averages ranking metrics over users, in parallel.
///
/// For every user `u < relevant.n_users()`, `scores(u, buf)` fills a buffer of `n_items` scores
/// (zeroed before each call). The candidates are the items `0..n_items` not in
/// `exclude.items(u)`; the caller picks `exclude` by protocol (see [`Protocol::exclusion`]):
/// the training positives for [`Protocol::Irgan`], every training interaction for
/// [`Protocol::Standard`]. The user's relevant items are `relevant.items(u)` minus excluded and
/// out-of-range items; users left with none are skipped.
///
/// Returns `"P@k"`, `"NDCG@k"`, `"Recall@k"`, `"HitRate@k"` for every `k` in `ks`, `"MAP"`, `"MRR"`
/// and `"users"` (how many users were evaluated). Users are reduced in index order, so the
/// result is bit-identical whatever the number of threads.
pub fn evaluate<F>(
    scores: F,
    n_items: usize,
    exclude: &Interactions,
    relevant: &Interactions,
    ks: &[usize],
) -> Metrics
where
    F: Fn(usize, &mut [f32]) + Sync,
{
    let users = evaluated_users(n_items, exclude, relevant);
    let per_user: Vec<Option<UserMetrics>> = users
        .par_iter()
        .map_init(
            || (vec![0.0f32; n_items], Vec::new()),
            |(buf, ranks), &u| {
                buf.fill(0.0);
                scores(u, buf);
                relevant_ranks(buf, exclude.items(u), relevant.items(u), ranks);
                UserMetrics::from_hit_ranks(ranks, ks)
            },
        )
        .collect();
    average(&per_user, ks)
}

/// Users with at least one relevant candidate (the others are skipped without scoring).
fn evaluated_users(n_items: usize, exclude: &Interactions, relevant: &Interactions) -> Vec<usize> {
    (0..relevant.n_users())
        .filter(|&u| {
            let excluded = exclude.items(u);
            relevant
                .items(u)
                .iter()
                .any(|&i| (i as usize) < n_items && excluded.binary_search(&i).is_err())
        })
        .collect()
}

/// Averages per-user metrics in user order (bit-identical whatever the thread count).
pub fn average(per_user: &[Option<UserMetrics>], ks: &[usize]) -> Metrics {
    let mut acc = MetricsAccumulator::new(ks);
    for m in per_user.iter().flatten() {
        acc.add(m);
    }
    acc.finish()
}

/// Metrics of a matrix-factorisation `model` ranking `relevant` with `exclude` removed from the
/// candidates (see [`evaluate`]). Users are scored in batches, one GEMM per batch against the
/// whole catalogue ([`exact::map_scored`]); the GEMM may round scores differently from
/// [`MfModel::scores_into`] in the last bits.
pub fn evaluate_model(
    model: &MfModel,
    exclude: &Interactions,
    relevant: &Interactions,
    ks: &[usize],
) -> Metrics {
    average(&model_user_metrics(model, exclude, relevant, ks), ks)
}

/// [`evaluate_model`] user by user: one entry per evaluated user, in index order.
pub fn model_user_metrics(
    model: &MfModel,
    exclude: &Interactions,
    relevant: &Interactions,
    ks: &[usize],
) -> Vec<Option<UserMetrics>> {
    let users = evaluated_users(model.n_items(), exclude, relevant);
    exact::map_scored(model, &users, |u, scores| {
        let mut ranks = Vec::new();
        relevant_ranks(scores, exclude.items(u), relevant.items(u), &mut ranks);
        UserMetrics::from_hit_ranks(&ranks, ks)
    })
}

/// Metrics of the blend of `g` and `d` (the service's `model=blend`): per user, each model's
/// scores over the whole catalogue are z-scored ([`crate::model::blend::Standardiser`]) and
/// mixed as `w · z_G + (1 − w) · z_D`, then ranked as [`evaluate_model`] ranks one model.
/// G's rows are scored by GEMM in batches, D's per user.
pub fn evaluate_blend(
    g: &MfModel,
    d: &MfModel,
    w: f64,
    exclude: &Interactions,
    relevant: &Interactions,
    ks: &[usize],
) -> Metrics {
    average(&blend_user_metrics(g, d, w, exclude, relevant, ks), ks)
}

/// [`evaluate_blend`] user by user: one entry per evaluated user, in index order.
pub fn blend_user_metrics(
    g: &MfModel,
    d: &MfModel,
    w: f64,
    exclude: &Interactions,
    relevant: &Interactions,
    ks: &[usize],
) -> Vec<Option<UserMetrics>> {
    let n = g.n_items().min(d.n_items());
    let users = evaluated_users(n, exclude, relevant);
    let w = crate::model::blend::sanitize_weight(w);
    exact::map_scored(g, &users, |u, g_row| {
        let mut d_row = vec![0.0f32; d.n_items()];
        d.scores_into(u, &mut d_row);
        let blended = blend_row(&g_row[..n], &d_row[..n], w);
        let mut ranks = Vec::new();
        relevant_ranks(&blended, exclude.items(u), relevant.items(u), &mut ranks);
        UserMetrics::from_hit_ranks(&ranks, ks)
    })
}

/// `w · z(g) + (1 − w) · z(d)` item by item, each z-scored over its whole row (a non-finite
/// blended score stays non-finite, so the item is no candidate).
fn blend_row(g: &[f32], d: &[f32], w: f64) -> Vec<f32> {
    use crate::model::blend::{Standardiser, mix};
    let (sg, sd) = (Standardiser::fit(g), Standardiser::fit(d));
    g.iter()
        .zip(d)
        .map(|(&x, &y)| {
            if x.is_finite() && y.is_finite() {
                mix(w, sg.z(x), sd.z(y)) as f32
            } else {
                f32::NEG_INFINITY
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::metrics::rank_candidates;

    #[test]
    fn parse_and_display() {
        assert_eq!("irgan".parse::<Protocol>().unwrap(), Protocol::Irgan);
        assert_eq!("Standard".parse::<Protocol>().unwrap(), Protocol::Standard);
        let err = "paper".parse::<Protocol>().unwrap_err().to_string();
        assert!(err.contains("paper") && err.contains("irgan") && err.contains("standard"));
        for p in Protocol::ALL {
            assert_eq!(p.to_string().parse::<Protocol>().unwrap(), p);
            let json = serde_json::to_string(&p).unwrap();
            assert_eq!(json, format!("\"{p}\""));
            assert_eq!(serde_json::from_str::<Protocol>(&json).unwrap(), p);
        }
        let a = Interactions::from_pairs(1, 2, &[(0, 0)]);
        let b = Interactions::from_pairs(1, 2, &[(0, 0), (0, 1)]);
        assert_eq!(Protocol::Irgan.exclusion(&a, &b), &a);
        assert_eq!(Protocol::Standard.exclusion(&a, &b), &b);
    }

    /// The blend ranks by the mixed z-scores: with G and D disagreeing, weight 1 is G's
    /// ranking, weight 0 is D's, and a blend of a model with itself is that model.
    #[test]
    fn blend_follows_its_weight() {
        let only_bias = |b: [f32; 3]| MfModel {
            user: ndarray::Array2::zeros((1, 1)),
            item: ndarray::Array2::zeros((3, 1)),
            bias: ndarray::arr1(&b),
        };
        // G ranks 0 > 1 > 2; D ranks 2 > 1 > 0.
        let (g, d) = (only_bias([3.0, 2.0, 0.0]), only_bias([0.0, 1.0, 5.0]));
        let exclude = Interactions::from_pairs(1, 3, &[]);
        let relevant = Interactions::from_pairs(1, 3, &[(0, 0)]);
        let p1 = |m: &Metrics| m["P@1"];
        assert_eq!(
            p1(&evaluate_blend(&g, &d, 1.0, &exclude, &relevant, &[1])),
            1.0
        );
        assert_eq!(
            p1(&evaluate_blend(&g, &d, 0.0, &exclude, &relevant, &[1])),
            0.0
        );
        assert_eq!(
            evaluate_blend(&g, &g, 0.5, &exclude, &relevant, &[1]),
            evaluate_model(&g, &exclude, &relevant, &[1])
        );
        // z(G) = (1.07, 0.27, −1.34), z(D) = (−0.93, −0.46, 1.39): at w = 0.6 the blend is
        // (0.27, −0.03, −0.25), at w = 0.4 (−0.13, −0.17, 0.30).
        let z = blend_row(&[3.0, 2.0, 0.0], &[0.0, 1.0, 5.0], 0.6);
        assert!(z[0] > z[1] && z[1] > z[2], "{z:?}");
        let z = blend_row(&[3.0, 2.0, 0.0], &[0.0, 1.0, 5.0], 0.4);
        assert!(z[2] > z[0] && z[0] > z[1], "{z:?}");
        assert!((f64::from(z[2]) - 0.299).abs() < 1e-3, "{z:?}");
    }

    fn check(m: &Metrics, name: &str, expected: f64) {
        let got = m[name];
        assert!(
            (got - expected).abs() < 1e-12,
            "{name}: got {got}, expected {expected}"
        );
    }

    #[test]
    fn hand_built_case() {
        let table: [[f32; 5]; 4] = [
            [0.1, 0.5, 0.3, 0.9, 0.2],
            [0.9, 0.8, 0.7, 0.6, 0.5],
            [0.0; 5],
            [0.0; 5],
        ];
        // User 0: 3 excluded, ranking 1,2,4,0, relevant {1,2} at ranks 1,2.
        // User 1: 0 excluded (and so dropped from its relevant set), ranking 1,2,3,4, item 4 at
        // rank 4. User 2: nothing relevant. User 3: its only relevant item is excluded.
        let exclude = Interactions::from_pairs(4, 5, &[(0, 3), (1, 0), (3, 2)]);
        let relevant = Interactions::from_pairs(4, 5, &[(0, 1), (0, 2), (1, 0), (1, 4), (3, 2)]);
        let m = evaluate(
            |u, buf| buf.copy_from_slice(&table[u]),
            5,
            &exclude,
            &relevant,
            &[1, 2],
        );
        check(&m, "users", 2.0);
        check(&m, "P@1", (1.0 + 0.0) / 2.0);
        check(&m, "P@2", (1.0 + 0.0) / 2.0);
        check(&m, "NDCG@1", (1.0 + 0.0) / 2.0);
        check(&m, "NDCG@2", (1.0 + 0.0) / 2.0);
        check(&m, "Recall@1", (0.5 + 0.0) / 2.0);
        check(&m, "Recall@2", (1.0 + 0.0) / 2.0);
        check(&m, "HitRate@1", (1.0 + 0.0) / 2.0);
        check(&m, "HitRate@2", (1.0 + 0.0) / 2.0);
        check(&m, "MAP", (1.0 + 1.0 / 4.0) / 2.0);
        check(&m, "MRR", (1.0 + 1.0 / 4.0) / 2.0);
        assert_eq!(m.len(), 4 * 2 + 3);
    }

    #[test]
    fn no_users_gives_zero_count() {
        let empty = Interactions::from_pairs(3, 4, &[]);
        let m = evaluate(|_, _| {}, 4, &empty, &empty, &[5]);
        check(&m, "users", 0.0);
    }

    struct Lcg(u64);
    impl Lcg {
        fn below(&mut self, n: u32) -> u32 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((self.0 >> 33) as u32) % n
        }
    }

    fn random_case(seed: u64) -> (usize, Interactions, Interactions, Vec<Vec<f32>>) {
        let mut rng = Lcg(seed);
        let (n_users, n_items) = (150usize, 120usize);
        let mut ex = Vec::new();
        let mut rel = Vec::new();
        for u in 0..n_users as u32 {
            for i in 0..n_items as u32 {
                match rng.below(100) {
                    0..10 => ex.push((u, i)),
                    10..15 => rel.push((u, i)),
                    _ => {}
                }
            }
        }
        let table = (0..n_users)
            .map(|_| (0..n_items).map(|_| rng.below(50) as f32 * 0.1).collect())
            .collect();
        (
            n_items,
            Interactions::from_pairs(n_users, n_items, &ex),
            Interactions::from_pairs(n_users, n_items, &rel),
            table,
        )
    }

    #[test]
    fn same_result_for_any_thread_count_and_matches_full_sort() {
        let (n_items, ex, rel, table) = random_case(7);
        let ks = [1, 5, 10, 200];
        let run = |threads: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| {
                    evaluate(
                        |u, buf| buf.copy_from_slice(&table[u]),
                        n_items,
                        &ex,
                        &rel,
                        &ks,
                    )
                })
        };
        let one = run(1);
        assert_eq!(one, run(2));
        assert_eq!(one, run(4));

        // Reference: full sort per user, relevant items filtered by hand.
        let mut acc = MetricsAccumulator::new(&ks);
        let mut ranking = Vec::new();
        for (u, scores) in table.iter().enumerate() {
            rank_candidates(scores, ex.items(u), &mut ranking);
            let r: Vec<u32> = rel
                .items(u)
                .iter()
                .copied()
                .filter(|&i| !ex.contains(u, i))
                .collect();
            if let Some(m) = UserMetrics::from_ranking(&ranking, &r, &ks) {
                acc.add(&m);
            }
        }
        assert!(acc.users() > 100);
        assert_eq!(one, acc.finish());
    }

    #[test]
    fn batched_model_evaluation_equals_the_per_user_loop() {
        // Factors on a small dyadic grid: every score is exact, so GEMM and loop agree exactly.
        let mut r = crate::rng::stream(4, 0, 0);
        let mut g = || (crate::rng::below(&mut r, 9) as f32 - 4.0) * 0.5;
        let model = MfModel {
            user: ndarray::Array2::from_shape_fn((150, 6), |_| g()),
            item: ndarray::Array2::from_shape_fn((120, 6), |_| g()),
            bias: ndarray::Array1::from_shape_fn(120, |_| g()),
        };
        let (_, ex, rel, _) = random_case(9);
        let ks = [1, 5, 10];
        let want = evaluate(|u, out| model.scores_into(u, out), 120, &ex, &rel, &ks);
        assert!(want["users"] > 100.0);
        assert_eq!(evaluate_model(&model, &ex, &rel, &ks), want);
    }
}
