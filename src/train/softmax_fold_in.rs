//! Folding users into a softmax-pretrained generator: with the items fixed, each user's row is
//! fitted by maximum likelihood of its positives under G's own full softmax, on the sphere the
//! pretraining implies (‖P_u‖ = 1/τ, see [`crate::train::softmax`]).
//!
//! The iALS fold-in ([`crate::train::als::fold_in`]) answers a different equation: for a policy
//! trained by sampled softmax its solution has the wrong scale and ignores the normaliser, so a
//! folded-in user would be sharper or flatter than every other user.
//!
//! Start: the better (by likelihood) of the user's current direction and the mean direction of
//! its positives' item rows (the maximiser when the normaliser is ignored). Then a few projected
//! gradient-ascent steps with step halving: the gradient of the mean log-likelihood is
//! mean(q_i over positives) − E_p[q], its tangent part is followed and the row renormalised.
//!
//! Cost: the normaliser runs over every item up to [`EXACT_ITEMS`]; past that over the user's
//! positives plus one shared uniform sample of [`SAMPLED_ITEMS`] items standing for the rest
//! (each sampled exponential counts (items − positives) / draws times: an unbiased estimate of
//! the rest of the normaliser). So a fold-in costs O(steps · (positives + 2,048) · dim) per user
//! whatever the catalogue: at Gowalla's 40,981 items the exact normaliser made the online
//! trainer spend longer folding feedback in than it took to arrive. Users are solved in parallel.

use ndarray::{Array1, ArrayView1};
use rayon::prelude::*;

use crate::data::Interactions;
use crate::model::MfModel;
use crate::model::policy::{lane_dot, softmax_term};
use crate::rng;

/// Likelihood evaluations per user (each one O(candidates · dim)).
const STEPS: usize = 12;
/// Catalogues up to this size get the exact normaliser.
pub const EXACT_ITEMS: usize = 4096;
/// Uniform draws standing for the non-positive items of a larger catalogue.
pub const SAMPLED_ITEMS: usize = 2048;
/// Stream tag of the shared sample.
const SAMPLE_STREAM: u64 = 0xF01D;

/// Folds `users` (those with positives) into `model` with its items fixed: each row becomes the
/// maximum-likelihood user vector of norm 1/`temperature` under softmax(P_u · Q + b). Other
/// users are unchanged; a row whose fit is not finite is left as it was.
pub fn fold_in(
    model: &mut MfModel,
    positives: &Interactions,
    users: impl IntoIterator<Item = usize>,
    temperature: f64,
) {
    let radius = 1.0 / temperature.max(1e-6);
    let users: Vec<usize> = users
        .into_iter()
        .filter(|&u| u < model.n_users() && !positives.items(u).is_empty())
        .collect();
    let n = model.n_items();
    // One sample shared by the call's users, seeded by what is folded in, so the same call
    // gives the same rows.
    let sample: Option<Vec<u32>> = (n > EXACT_ITEMS).then(|| {
        let mut r = rng::stream(users.len() as u64, SAMPLE_STREAM, n as u64);
        (0..SAMPLED_ITEMS)
            .map(|_| rng::below(&mut r, n) as u32)
            .collect()
    });
    let m = &*model;
    let solved: Vec<(usize, Vec<f32>)> = users
        .par_iter()
        .filter_map(|&u| {
            let c = Candidates::new(n, positives.items(u), sample.as_deref());
            let row = fit(m, &c, m.user.row(u), radius)?;
            Some((u, row))
        })
        .collect();
    for (u, row) in solved {
        model
            .user
            .row_mut(u)
            .iter_mut()
            .zip(row)
            .for_each(|(o, v)| *o = v);
    }
}

/// The items a user's normaliser runs over: the positives first (each counting once), then
/// every other item, or the sampled ones each counting for `weight` items.
struct Candidates {
    items: Vec<u32>,
    positives: usize,
    weight: f32,
}

impl Candidates {
    fn new(n_items: usize, positives: &[u32], sample: Option<&[u32]>) -> Self {
        let is_positive = |i: &u32| positives.binary_search(i).is_ok();
        let mut items = positives.to_vec();
        let weight = match sample {
            None => {
                items.extend((0..n_items as u32).filter(|i| !is_positive(i)));
                1.0
            }
            Some(sample) => {
                items.extend(sample.iter().copied().filter(|i| !is_positive(i)));
                let draws = (items.len() - positives.len()).max(1);
                (n_items - positives.len()) as f32 / draws as f32
            }
        };
        Self {
            items,
            positives: positives.len(),
            weight,
        }
    }
}

/// Mean log-likelihood of the positives under softmax(x · Q + b) over the candidates, and its
/// gradient in x. On slices, with eight-lane dot products and the softmax's f32 exponential
/// summed in f64 (as G's normaliser): this runs for every folded-in user a dozen times per
/// publish, and ndarray's generic dot and libm's `exp` made it the trainer's main cost while
/// feedback streams.
fn objective(model: &MfModel, c: &Candidates, x: &Array1<f32>) -> (f64, Array1<f32>) {
    let x = x.to_vec();
    let logits: Vec<f32> = c
        .items
        .iter()
        .map(|&i| lane_dot(model.item_row(i as usize), &x) + model.bias[i as usize])
        .collect();
    let max = logits.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
    let weights: Vec<f64> = logits
        .iter()
        .enumerate()
        .map(|(j, &l)| {
            let w = if j < c.positives { 1.0 } else { c.weight };
            f64::from(w) * softmax_term(f64::from(l - max))
        })
        .collect();
    let z: f64 = weights.iter().sum();
    let lse = f64::from(max) + z.ln();
    let n = c.positives as f32;
    let mut grad = vec![0.0f32; model.dim()];
    let mut ll = 0.0;
    for (j, (&i, &w)) in c.items.iter().zip(&weights).enumerate() {
        let mut coef = -(w / z) as f32;
        if j < c.positives {
            coef += 1.0 / n;
            ll += f64::from(logits[j]) - lse;
        }
        for (g, &q) in grad.iter_mut().zip(model.item_row(i as usize)) {
            *g += coef * q;
        }
    }
    (ll / f64::from(n), Array1::from(grad))
}

/// `v` scaled to norm `radius` (None for a zero or non-finite vector).
fn on_sphere(v: Array1<f32>, radius: f64) -> Option<Array1<f32>> {
    let n = f64::from(v.dot(&v)).sqrt();
    (n.is_finite() && n > 1e-12).then(|| v * (radius / n) as f32)
}

/// The fitted row of one user, or None if nothing finite was found.
fn fit(
    model: &MfModel,
    c: &Candidates,
    current: ArrayView1<'_, f32>,
    radius: f64,
) -> Option<Vec<f32>> {
    let mut mean = Array1::<f32>::zeros(model.dim());
    for &i in &c.items[..c.positives] {
        mean += &model.item.row(i as usize);
    }
    let starts = [
        on_sphere(mean, radius),
        on_sphere(current.to_owned(), radius),
    ];
    let (mut value, mut grad, mut x) = starts
        .into_iter()
        .flatten()
        .map(|x| {
            let (v, g) = objective(model, c, &x);
            (v, g, x)
        })
        .filter(|(v, _, _)| v.is_finite())
        .max_by(|a, b| a.0.total_cmp(&b.0))?;
    let mut step = radius;
    for _ in 0..STEPS {
        // Follow the gradient's tangent part, then go back onto the sphere.
        let radial = f64::from(grad.dot(&x)) / (radius * radius);
        let tangent = &grad - &(&x * radial as f32);
        let Some(trial) = on_sphere(&x + &(&tangent * step as f32), radius) else {
            break;
        };
        let (v, g) = objective(model, c, &trial);
        if v.is_finite() && v > value {
            (value, grad, x) = (v, g, trial);
            step *= 1.5;
        } else {
            step *= 0.5;
        }
    }
    x.iter().all(|v| v.is_finite()).then(|| x.to_vec())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::rng;
    use crate::train::settings::SoftmaxConfig;

    /// 40 users in two tastes over 20 items: even users like items 0..10, odd ones 10..20.
    /// (Also the online fold-in tests' data.)
    pub(crate) fn two_tastes(users: u32) -> Vec<(u32, u32)> {
        let mut pairs = Vec::new();
        for u in 0..users {
            let base = if u % 2 == 0 { 0 } else { 10 };
            for k in 0..6u32 {
                pairs.push((u, base + (u + 3 * k) % 10));
            }
        }
        pairs
    }

    /// Mean rank (0 = top) of `items` in the user's scores.
    fn mean_rank(m: &MfModel, u: usize, items: &[u32]) -> f64 {
        let s = m.scores(u);
        let rank = |i: u32| s.iter().filter(|&&x| x > s[i as usize]).count() as f64;
        items.iter().map(|&i| rank(i)).sum::<f64>() / items.len() as f64
    }

    #[test]
    fn a_folded_in_user_ranks_its_held_out_items_higher() {
        // Small batches and a high rate: 240 pairs must converge in a few epochs.
        let cfg = SoftmaxConfig {
            epochs: 40,
            batch: 16,
            negatives: 16,
            lr: 0.05,
            temperature: 0.2,
            ..SoftmaxConfig::default()
        };
        let pos = Interactions::from_pairs(40, 20, &two_tastes(40));
        let mut r = rng::stream(3, 0, 0);
        let mut m = MfModel::random(40, 20, 4, 0.1, &mut r);
        crate::train::softmax::train(&mut m, &pos, &cfg, 3, |_, _, _| None);
        // User 41 likes three odd-taste items; the rest of that taste is held out.
        m.grow(41, 20, 0.0, &mut r);
        m.user
            .row_mut(40)
            .assign(&ndarray::arr1(&[1.0, -2.0, 0.5, 3.0]));
        let mut pairs = two_tastes(40);
        pairs.extend([(40, 11), (40, 14), (40, 17)]);
        let pos = Interactions::from_pairs(41, 20, &pairs);
        let held: Vec<u32> = (10..20).filter(|i| ![11, 14, 17].contains(i)).collect();
        let before = m.clone();
        fold_in(&mut m, &pos, [40], cfg.temperature);
        assert_eq!(m.user.row(3), before.user.row(3), "other users moved");
        let norm = f64::from(m.user.row(40).dot(&m.user.row(40))).sqrt();
        assert!((norm - 5.0).abs() < 1e-3, "norm {norm}, expected 1/τ = 5");
        let (b, a) = (mean_rank(&before, 40, &held), mean_rank(&m, 40, &held));
        assert!(a < b, "held-out mean rank {b} -> {a}");
        // 3 train positives rank first; the 7 held-out ones ideally take ranks 3..=9 (mean 6).
        assert!(
            a < 8.0,
            "held-out items should lead the ranking: mean rank {a}"
        );
        // The fit is at least as likely as the mean-direction start.
        let c = Candidates::new(20, pos.items(40), None);
        let (fitted, _) = objective(&m, &c, &m.user.row(40).to_owned());
        let mut mean = Array1::<f32>::zeros(4);
        for &i in pos.items(40) {
            mean += &m.item.row(i as usize);
        }
        let (start, _) = objective(&m, &c, &on_sphere(mean, 5.0).unwrap());
        assert!(fitted >= start, "{fitted} < {start}");
    }

    #[test]
    fn the_sampled_normaliser_fits_almost_as_well_as_the_exact_one() {
        let n = 3 * EXACT_ITEMS;
        let mut r = rng::stream(9, 0, 0);
        let m = MfModel::random(1, n, 8, 0.5, &mut r);
        let positives: Vec<u32> = (0..12).map(|k| k * 97 + 5).collect();
        let exact = Candidates::new(n, &positives, None);
        let sample: Vec<u32> = (0..SAMPLED_ITEMS)
            .map(|_| rng::below(&mut r, n) as u32)
            .collect();
        let sampled = Candidates::new(n, &positives, Some(&sample));
        assert_eq!(exact.items.len(), n);
        assert!(sampled.items.len() < SAMPLED_ITEMS + positives.len());
        let radius = 4.0;
        let start = m.user.row(0);
        let by_exact = Array1::from(fit(&m, &exact, start, radius).unwrap());
        let by_sample = Array1::from(fit(&m, &sampled, start, radius).unwrap());
        let (best, _) = objective(&m, &exact, &by_exact);
        let (got, _) = objective(&m, &exact, &by_sample);
        let (before, _) = objective(&m, &exact, &on_sphere(start.to_owned(), radius).unwrap());
        // Judged by the exact likelihood: the sampled fit gains nearly all the exact one does.
        assert!(best > before, "{before} -> {best}");
        assert!(
            got - before > 0.9 * (best - before),
            "before {before}, exact fit {best}, sampled fit {got}"
        );
    }

    #[test]
    fn users_without_positives_are_left_alone() {
        let mut r = rng::stream(4, 0, 0);
        let mut m = MfModel::random(3, 5, 2, 0.1, &mut r);
        let before = m.clone();
        let pos = Interactions::from_pairs(3, 5, &[(0, 1)]);
        fold_in(&mut m, &pos, [1, 2, 7], 0.5);
        assert_eq!(m, before);
    }
}
