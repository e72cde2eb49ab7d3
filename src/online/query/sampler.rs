//! Exact draws without replacement from a softmax over a catalogue, in O(n + k · √n)-ish time:
//! one vectorisable pass computes every candidate's weight `exp(z − max)` and block sums, then
//! each draw is an inverse-CDF lookup (blocks first, then items of one block) and the drawn
//! item's weight is removed by recomputing its block's sum (never by subtraction, so a heavy
//! item leaves no rounding residue behind).
//!
//! This replaces a Gumbel per item (two logarithms and a random number for each of the
//! catalogue's items): the cost of a request is now one f32 exponential per item plus k
//! lookups, read straight from G's f32 score row (no logit array is written).

use multiversion::multiversion;

use crate::model::policy::{exp_nonpositive_f32, lane_sum};
use crate::rng::{self, Rng};

/// Items per block of the two-level lookup.
const BLOCK: usize = 64;

/// One draw: the item and the log of its first-draw propensity (its probability among all
/// candidates, `(z − max) − ln Σ exp(z − max)`; the weights are f32 exponentials, so this is
/// the probability the draw used to about 1e-6 relative).
pub type Draw = (u32, f64);

/// Draws up to `k` distinct items from the softmax of the logits `z_i = scores[i] · inv_t`
/// (`inv_t > 0`) over the candidates: items with a finite score and `unavailable[i]` false
/// (excluded items and non-candidates are marked there; the vector is the sampler's own
/// bookkeeping afterwards). Each draw is from the softmax restricted to the candidates not
/// drawn yet (successive sampling without replacement), using `rng`'s uniforms in order.
/// Returns the draws in draw order; empty when there is no candidate.
///
/// The scores are read as they are (f32): no logit array is written, and every pass over the
/// catalogue reads four bytes per item.
pub fn draw(
    scores: &[f32],
    inv_t: f64,
    mut unavailable: Vec<bool>,
    k: usize,
    rng: &mut Rng,
) -> Vec<Draw> {
    unavailable.resize(scores.len(), true);
    // Callers pass 1 / a sanitised temperature (at most 1e30); clamping keeps the f32 factor
    // of the weights finite whatever is passed.
    let inv_t = inv_t.min(f64::from(f32::MAX));
    let z = |i: usize| f64::from(scores[i]) * inv_t;
    let Some(top) = top_score(scores, &unavailable).filter(|_| k > 0) else {
        return Vec::new();
    };
    let max = f64::from(top) * inv_t;
    let (mut w, mut blocks) = weights(scores, &unavailable, inv_t as f32, top);
    let ln_sum = lane_sum(&blocks, |x| x).ln();
    let mut out = Vec::with_capacity(k.min(scores.len()));
    while out.len() < k {
        let mut remaining: f64 = blocks.iter().sum();
        if remaining <= 0.0 {
            // Either every candidate has been drawn, or the ones left are so far below the
            // drawn ones (a very low exploration temperature) that their weights underflowed:
            // then re-weight them against the largest of them.
            let Some(left_top) = top_score(scores, &unavailable) else {
                break;
            };
            (w, blocks) = weights(scores, &unavailable, inv_t as f32, left_top);
            remaining = blocks.iter().sum();
        }
        let mut x = rng::unit(rng) * remaining;
        let b = pick(&blocks, &mut x);
        let start = b * BLOCK;
        let end = (start + BLOCK).min(w.len());
        let i = start + pick(&w[start..end], &mut x);
        out.push((i as u32, ((z(i) - max) - ln_sum).min(0.0)));
        w[i] = 0.0;
        unavailable[i] = true;
        blocks[b] = lane_sum(&w[start..end], f64::from);
    }
    out
}

/// The largest finite score of an available item, `None` if there is none (compiled for AVX2
/// too: see `Cargo.toml`). Scaling by `inv_t > 0` keeps the order, so it also gives the
/// largest logit.
#[multiversion(targets("x86_64+avx2+fma"))]
fn top_score(scores: &[f32], unavailable: &[bool]) -> Option<f32> {
    let open = |s: f32, u: bool| {
        if s.is_finite() & !u {
            s
        } else {
            f32::NEG_INFINITY
        }
    };
    let mut lanes = [f32::NEG_INFINITY; 8];
    let (mut cs, mut cu) = (scores.chunks_exact(8), unavailable.chunks_exact(8));
    for (s8, u8) in (&mut cs).zip(&mut cu) {
        for l in 0..8 {
            lanes[l] = lanes[l].max(open(s8[l], u8[l]));
        }
    }
    let tail = cs.remainder().iter().zip(cu.remainder());
    let best = tail
        .map(|(&s, &u)| open(s, u))
        .chain(lanes)
        .fold(f32::NEG_INFINITY, f32::max);
    (best > f32::NEG_INFINITY).then_some(best)
}

/// `exp((score − top) · inv_t)` for every available item with a finite score, 0 for the rest
/// (`top` = the largest such score); and each block's total weight, in the same pass. All in
/// f32, eight items per instruction on AVX2: the difference to the top score is taken before
/// scaling, so the exponent of every weight that matters (`> −16`) is accurate to about 2e-6
/// and the weight to the ~1e-6 of [`exp_nonpositive_f32`] (G's normaliser uses the same
/// exponential). Computed for every entry and masked out, branch-free, so the loop vectorises.
#[multiversion(targets("x86_64+avx2+fma"))]
fn weights(scores: &[f32], unavailable: &[bool], inv_t: f32, top: f32) -> (Vec<f32>, Vec<f64>) {
    let mut w = vec![0.0f32; scores.len()];
    let mut blocks = Vec::with_capacity(scores.len().div_ceil(BLOCK));
    let chunks = w.chunks_mut(BLOCK).zip(scores.chunks(BLOCK));
    for ((wc, sc), uc) in chunks.zip(unavailable.chunks(BLOCK)) {
        for ((wi, &s), &u) in wc.iter_mut().zip(sc).zip(uc) {
            let keep = u32::from(s.is_finite() & !u).wrapping_neg();
            let term = exp_nonpositive_f32((s - top) * inv_t);
            *wi = f32::from_bits(term.to_bits() & keep);
        }
        blocks.push(lane_sum(wc, f64::from));
    }
    (w, blocks)
}

/// The index whose cumulative weight first exceeds `x` (which is reduced to an offset inside
/// it), never an entry of weight 0. Rounding can leave `x` at or above the total: then the last
/// entry with weight is taken.
fn pick<T: Copy + Into<f64>>(weights: &[T], x: &mut f64) -> usize {
    let mut last = None;
    for (j, &wj) in weights.iter().enumerate() {
        let wj: f64 = wj.into();
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

    /// Draws from the logits themselves (`inv_t` 1, every item available).
    fn draw_all(logits: &[f32], k: usize, r: &mut Rng) -> Vec<Draw> {
        draw(logits, 1.0, vec![false; logits.len()], k, r)
    }

    #[test]
    fn draws_are_distinct_candidates_and_exhaust_them() {
        let logits = [0.0, f32::NEG_INFINITY, -3.0, 2.0, f32::NAN, 1.0];
        let mut r = rng::stream(1, 2, 3);
        let d = draw_all(&logits, 10, &mut r);
        let mut items: Vec<u32> = d.iter().map(|x| x.0).collect();
        items.sort_unstable();
        assert_eq!(items, [0, 2, 3, 5]);
        let total: f64 = d.iter().map(|x| x.1.exp()).sum();
        assert!((total - 1.0).abs() < 1e-6);
        assert!(draw_all(&[f32::NEG_INFINITY; 3], 2, &mut r).is_empty());
        assert!(draw_all(&logits, 0, &mut r).is_empty());
        // Unavailable items are never drawn; the scores are scaled by inv_t.
        let unavailable = vec![false, false, true, false, false, true];
        let d = draw(&logits, 2.0, unavailable, 10, &mut r);
        let mut items: Vec<u32> = d.iter().map(|x| x.0).collect();
        items.sort_unstable();
        assert_eq!(items, [0, 3]);
        let p3 = 1.0 / (1.0 + (-4.0f64).exp());
        let got = d.iter().find(|x| x.0 == 3).map(|x| x.1.exp());
        assert!((got.unwrap() - p3).abs() < 1e-6, "{got:?} {p3}");
        // The largest factor a sanitised temperature gives (1e30): the top item first, then the
        // rest in order once their weights underflow.
        let d = draw(&[3e8, 1.0, 2.0], 1e30, vec![false; 3], 3, &mut r);
        assert_eq!(d.iter().map(|x| x.0).collect::<Vec<_>>(), [0, 2, 1]);
    }

    #[test]
    fn underflowed_candidates_are_still_drawn_in_order() {
        // Logits of scores over a tiny exploration temperature: after the first draw every
        // other weight underflows to 0 against the first one's.
        let logits = [0.0, -1e6, f32::NEG_INFINITY, -2e6, -3e38];
        let got = draw_all(&logits, 5, &mut rng::stream(1, 2, 3));
        let items: Vec<u32> = got.iter().map(|d| d.0).collect();
        assert_eq!(items, [0, 1, 3, 4]);
        assert!(got.iter().all(|d| d.1.is_finite() && d.1 <= 0.0));
    }

    #[test]
    fn a_dominant_item_leaves_no_residue() {
        // After the heavy item, the rest are drawn in proportion to their own tiny weights.
        let mut logits = vec![-700.0f32; 200];
        logits[7] = 0.0;
        let mut r = rng::stream(4, 0, 0);
        let d = draw_all(&logits, 200, &mut r);
        assert_eq!(d.len(), 200);
        assert_eq!(d[0].0, 7);
    }

    #[test]
    fn second_draws_follow_the_conditional_policy() {
        // P(second = j | first = i) = p_j / (1 − p_i): check the joint frequencies of the
        // first two draws over many seeds (χ², df = 11, P(χ² > 31.26) = 0.001).
        let logits = [0.3f32, -0.2, 0.9, -1.0];
        let p: Vec<f64> = {
            let s: f64 = logits.iter().map(|&z| f64::from(z).exp()).sum();
            logits.iter().map(|&z| f64::from(z).exp() / s).collect()
        };
        let mut counts = [[0u64; 4]; 4];
        let n = 40_000u64;
        for seed in 0..n {
            let mut r = rng::stream(seed, 9, 0);
            let d = draw_all(&logits, 2, &mut r);
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
