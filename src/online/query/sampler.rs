//! Exact draws without replacement from a softmax over a catalogue, in O(n + k · √n)-ish time:
//! one vectorisable pass computes every candidate's weight `exp(z − max)` and block sums, then
//! each draw is an inverse-CDF lookup (blocks first, then items of one block) and the drawn
//! item's weight is removed by recomputing its block's sum (never by subtraction, so a heavy
//! item leaves no rounding residue behind).
//!
//! This replaces a Gumbel per item (two logarithms and a random number for each of the
//! catalogue's items): the cost of a request is now one exponential per item plus k lookups.

use multiversion::multiversion;

use crate::model::policy::{lane_max, lane_sum, softmax_term};
use crate::rng::{self, Rng};

/// Items per block of the two-level lookup.
const BLOCK: usize = 64;

/// One draw: the item and the log of its first-draw propensity (its probability among all
/// candidates, `(z − max) − ln Σ exp(z − max)`; the weights are f32 exponentials, so this is
/// the probability the draw used to about 1e-6 relative).
pub type Draw = (u32, f64);

/// Draws up to `k` distinct items `i < logits.len()` with `logits[i]` finite (the caller passes
/// `−∞` for a non-candidate), each draw from the softmax of the logits restricted to the items
/// not drawn yet (successive sampling without replacement), using `rng`'s uniforms in order.
/// Returns the draws in draw order; empty when no logit is finite.
pub fn draw(logits: &[f64], k: usize, rng: &mut Rng) -> Vec<Draw> {
    let max = finite_max(logits, &[]);
    if k == 0 || !max.is_finite() {
        return Vec::new();
    }
    // Non-finite logits (−∞: not a candidate) get weight 0; `exp_nonpositive` maps −∞ to 0
    // and the select keeps NaN out.
    let mut drawn = vec![false; logits.len()];
    let (mut w, mut blocks) = weights(logits, &drawn, max);
    let ln_sum = lane_sum(&blocks, |x| x).ln();
    let mut out = Vec::with_capacity(k.min(logits.len()));
    while out.len() < k {
        let mut remaining: f64 = blocks.iter().sum();
        if remaining <= 0.0 {
            // Either every candidate has been drawn, or the ones left are so far below the
            // drawn ones (a very low exploration temperature) that their weights underflowed:
            // then re-weight them against the largest of them.
            let left_max = finite_max(logits, &drawn);
            if !left_max.is_finite() {
                break;
            }
            (w, blocks) = weights(logits, &drawn, left_max);
            remaining = blocks.iter().sum();
        }
        let mut x = rng::unit(rng) * remaining;
        let b = pick(&blocks, &mut x);
        let start = b * BLOCK;
        let end = (start + BLOCK).min(w.len());
        let i = start + pick(&w[start..end], &mut x);
        out.push((i as u32, ((logits[i] - max) - ln_sum).min(0.0)));
        w[i] = 0.0;
        drawn[i] = true;
        blocks[b] = lane_sum(&w[start..end], |x| x);
    }
    out
}

/// The largest finite logit not drawn yet (`drawn` empty: none is), −∞ if none.
fn finite_max(logits: &[f64], drawn: &[bool]) -> f64 {
    let open = |i: usize| !drawn.get(i).copied().unwrap_or(false);
    let fin = |z: f64| if z.is_finite() { z } else { f64::NEG_INFINITY };
    if drawn.is_empty() {
        return max_of_finite(logits);
    }
    (0..logits.len())
        .filter(|&i| open(i))
        .fold(f64::NEG_INFINITY, |m, i| m.max(fin(logits[i])))
}

/// The largest finite logit, −∞ if none (compiled for AVX2 too: see `Cargo.toml`).
#[multiversion(targets("x86_64+avx2+fma"))]
fn max_of_finite(logits: &[f64]) -> f64 {
    lane_max(
        logits,
        |z| if z.is_finite() { z } else { f64::NEG_INFINITY },
    )
}

/// `exp(z − max)` for every finite logit not drawn yet, 0 for the rest: the softmax's f32
/// exponential in f64 ([`softmax_term`], as G's normaliser), computed for every entry and
/// masked out (branch-free, so the loop vectorises, eight items at a time on AVX2); and each
/// block's total weight, in the same pass.
#[multiversion(targets("x86_64+avx2+fma"))]
fn weights(logits: &[f64], drawn: &[bool], max: f64) -> (Vec<f64>, Vec<f64>) {
    let mut w = vec![0.0; logits.len()];
    let mut blocks = Vec::with_capacity(logits.len().div_ceil(BLOCK));
    let chunks = w.chunks_mut(BLOCK).zip(logits.chunks(BLOCK));
    for ((wc, zc), dc) in chunks.zip(drawn.chunks(BLOCK)) {
        for ((wi, &z), &d) in wc.iter_mut().zip(zc).zip(dc) {
            let keep = u64::from(z.is_finite() & !d).wrapping_neg();
            *wi = f64::from_bits(softmax_term(z - max).to_bits() & keep);
        }
        blocks.push(lane_sum(wc, |x| x));
    }
    (w, blocks)
}

/// The index whose cumulative weight first exceeds `x` (which is reduced to an offset inside
/// it), never an entry of weight 0. Rounding can leave `x` at or above the total: then the last
/// entry with weight is taken.
fn pick(weights: &[f64], x: &mut f64) -> usize {
    let mut last = None;
    for (j, &wj) in weights.iter().enumerate() {
        if wj > 0.0 {
            if *x < wj {
                return j;
            }
            *x -= wj;
            last = Some(j);
        }
    }
    *x = 0.0;
    // Callers only pick from a positive total, so some entry has weight.
    last.unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_are_distinct_candidates_and_exhaust_them() {
        let logits = [0.0, f64::NEG_INFINITY, -3.0, 2.0, f64::NAN, 1.0];
        let mut r = rng::stream(1, 2, 3);
        let d = draw(&logits, 10, &mut r);
        let mut items: Vec<u32> = d.iter().map(|x| x.0).collect();
        items.sort_unstable();
        assert_eq!(items, [0, 2, 3, 5]);
        let total: f64 = d.iter().map(|x| x.1.exp()).sum();
        assert!((total - 1.0).abs() < 1e-6);
        assert!(draw(&[f64::NEG_INFINITY; 3], 2, &mut r).is_empty());
        assert!(draw(&logits, 0, &mut r).is_empty());
    }

    #[test]
    fn underflowed_candidates_are_still_drawn_in_order() {
        // Logits of scores over a tiny exploration temperature: after the first draw every
        // other weight underflows to 0 against the first one's.
        let logits = [0.0, -1e6, f64::NEG_INFINITY, -2e6, -3e300];
        let got = draw(&logits, 5, &mut rng::stream(1, 2, 3));
        let items: Vec<u32> = got.iter().map(|d| d.0).collect();
        assert_eq!(items, [0, 1, 3, 4]);
        assert!(got.iter().all(|d| d.1.is_finite() && d.1 <= 0.0));
    }

    #[test]
    fn a_dominant_item_leaves_no_residue() {
        // After the heavy item, the rest are drawn in proportion to their own tiny weights.
        let mut logits = vec![-700.0; 200];
        logits[7] = 0.0;
        let mut r = rng::stream(4, 0, 0);
        let d = draw(&logits, 200, &mut r);
        assert_eq!(d.len(), 200);
        assert_eq!(d[0].0, 7);
    }

    #[test]
    fn second_draws_follow_the_conditional_policy() {
        // P(second = j | first = i) = p_j / (1 − p_i): check the joint frequencies of the
        // first two draws over many seeds (χ², df = 11, P(χ² > 31.26) = 0.001).
        let logits = [0.3f64, -0.2, 0.9, -1.0];
        let p: Vec<f64> = {
            let s: f64 = logits.iter().map(|z| z.exp()).sum();
            logits.iter().map(|z| z.exp() / s).collect()
        };
        let mut counts = [[0u64; 4]; 4];
        let n = 40_000u64;
        for seed in 0..n {
            let mut r = rng::stream(seed, 9, 0);
            let d = draw(&logits, 2, &mut r);
            counts[d[0].0 as usize][d[1].0 as usize] += 1;
        }
        let mut chi = 0.0;
        for i in 0..4 {
            for j in 0..4 {
                if i == j {
                    assert_eq!(counts[i][j], 0);
                    continue;
                }
                let e = n as f64 * p[i] * p[j] / (1.0 - p[i]);
                chi += (counts[i][j] as f64 - e).powi(2) / e;
            }
        }
        assert!(chi < 31.26, "chi-square {chi}, counts {counts:?}");
    }
}
