//! Tests of the query layer: rankings, exploration draws, cold starts, similarity and
//! robustness to extreme models.

use super::*;
use ndarray::{Array1, Array2};

/// How close G's reported log-probability (and explore's propensity) is to an exact f64
/// log-softmax: the normaliser's and the sampler's terms are f32 exponentials
/// (`policy::softmax_term`, relative error below 1e-6 each).
const GENERATOR_TOLERANCE: f64 = 2e-6;

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
        assert!((s.generator - want_g[i]).abs() < GENERATOR_TOLERANCE);
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
        assert!((r[0].propensity.unwrap() - p[r[0].item as usize]).abs() < GENERATOR_TOLERANCE);
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
    assert!((total - 1.0).abs() < GENERATOR_TOLERANCE);
    for s in &r {
        let j = cands.iter().position(|&c| c == s.item as usize).unwrap();
        assert!((s.propensity.unwrap() - want[j].exp()).abs() < GENERATOR_TOLERANCE);
        assert!((s.score - want[j]).abs() < GENERATOR_TOLERANCE);
        // generator stays the model's log-probability over the whole catalogue.
        let full = log_softmax(&logits.map(f64::from), 0.5);
        assert!((s.generator - full[s.item as usize]).abs() < GENERATOR_TOLERANCE);
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
        assert!((s.generator - want_g[i]).abs() < GENERATOR_TOLERANCE);
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
                assert!(total <= 1.0 + GENERATOR_TOLERANCE);
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

#[test]
fn explore_first_draw_frequencies_match_the_reported_propensities() {
    // A larger catalogue with exclusions: how often each item is drawn first, over many seeds,
    // against the propensity the draw reports for it (χ² over the items expected ≥ 5 times,
    // the rest pooled; P(χ² > 1.5·df + 30) is far below 0.001 for these df).
    let mut r = rng::stream(21, 0, 0);
    let g = MfModel::random(1, 40, 4, 0.8, &mut r);
    let d = MfModel::random(1, 40, 4, 0.8, &mut r);
    let m = qm(&g, &d, &[]);
    let excl = [3u32, 10, 11, 25];
    let n = 30_000u64;
    let mut counts = [0u64; 40];
    let mut p = [0.0f64; 40];
    for seed in 0..n {
        let s = &explore(&m, 0, 3, 0.7, seed, &excl)[0];
        counts[s.item as usize] += 1;
        let q = s.propensity.unwrap();
        assert!(p[s.item as usize] == 0.0 || (p[s.item as usize] - q).abs() < 1e-12);
        p[s.item as usize] = q;
    }
    assert!(excl.iter().all(|&e| counts[e as usize] == 0));
    let total: f64 = p.iter().sum();
    assert!(
        total <= 1.0 + GENERATOR_TOLERANCE && total > 0.99,
        "{total}"
    );
    let (mut big_c, mut big_p, mut rest_c, mut rest_p) = (Vec::new(), Vec::new(), 0, 0.0);
    for i in 0..40 {
        if p[i] * n as f64 >= 5.0 {
            big_c.push(counts[i]);
            big_p.push(p[i]);
        } else {
            rest_c += counts[i];
            rest_p += p[i];
        }
    }
    big_c.push(rest_c);
    big_p.push(rest_p.max(1.0 - big_p.iter().sum::<f64>()).max(1e-12));
    let df = (big_c.len() - 1) as f64;
    let chi = chi_square(&big_c, &big_p);
    assert!(chi < 1.5 * df + 30.0, "chi-square {chi} (df {df})");
}
