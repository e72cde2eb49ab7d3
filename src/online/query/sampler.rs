//! Exact draws without replacement from a softmax over a catalogue, in O(n + k · √n)-ish time:
//! one vectorisable pass computes every candidate's weight `exp(z − max)` and the sums of
//! blocks of items and of spans of blocks, then each draw is an inverse-CDF lookup (spans, then
//! the blocks of one span, then the items of one block) and the drawn item's weight is removed
//! by recomputing its block's and span's sums (never by subtraction, so a heavy item leaves no
//! rounding residue behind).
//!
//! This replaces a Gumbel per item (two logarithms and a random number for each of the
//! catalogue's items): the cost of a request is now one f32 exponential per item plus k
//! lookups, read straight from G's f32 score row (no logit array is written).

use multiversion::multiversion;

use crate::model::policy::{exp_nonpositive_f32_as, lane_sum};
use crate::rng::{self, Rng};

/// Items per block of the lookup.
const BLOCK: usize = 64;
/// Blocks per span: a draw walks at most `n / (BLOCK · SPAN)` span sums, `SPAN` block sums
/// and `BLOCK` weights (Gowalla: 21 + 32 + 64 instead of 641 + 64).
const SPAN: usize = 32;

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
    let mut w = Weights::of(scores, &unavailable, inv_t as f32, top);
    let ln_sum = lane_sum(&w.blocks, |x| x).ln();
    let mut out = Vec::with_capacity(k.min(scores.len()));
    while out.len() < k {
        let mut remaining = w.total();
        if remaining <= 0.0 {
            // Either every candidate has been drawn, or the ones left are so far below the
            // drawn ones (a very low exploration temperature) that their weights underflowed:
            // then re-weight them against the largest of them.
            let Some(left_top) = top_score(scores, &unavailable) else {
                break;
            };
            w = Weights::of(scores, &unavailable, inv_t as f32, left_top);
            remaining = w.total();
        }
        let i = w.pick(rng::unit(rng) * remaining);
        out.push((i as u32, ((z(i) - max) - ln_sum).min(0.0)));
        w.remove(i);
        unavailable[i] = true;
    }
    out
}

/// The candidates' weights and the sums the lookup walks.
struct Weights {
    /// Each item's weight (0 for no candidate).
    items: Vec<f32>,
    /// Each block's total weight.
    blocks: Vec<f64>,
    /// Each span's total weight (its blocks' sums added in order).
    spans: Vec<f64>,
}

impl Weights {
    /// `exp((score − top) · inv_t)` for every available item with a finite score (`top` = the
    /// largest such score), and the sums.
    fn of(scores: &[f32], unavailable: &[bool], inv_t: f32, top: f32) -> Self {
        let (items, blocks) = weights(scores, unavailable, inv_t, top);
        let spans = blocks.chunks(SPAN).map(|b| b.iter().sum()).collect();
        Self {
            items,
            blocks,
            spans,
        }
    }

    /// The weight left.
    fn total(&self) -> f64 {
        self.spans.iter().sum()
    }

    /// The item at offset `x` of the cumulative weights (`0 <= x < total`).
    fn pick(&self, mut x: f64) -> usize {
        let s = pick(&self.spans, &mut x);
        let first = s * SPAN;
        let b = first
            + pick(
                &self.blocks[first..(first + SPAN).min(self.blocks.len())],
                &mut x,
            );
        let start = b * BLOCK;
        start
            + pick(
                &self.items[start..(start + BLOCK).min(self.items.len())],
                &mut x,
            )
    }

    /// Takes item `i` out: its weight becomes 0 and its block's and span's sums are recomputed.
    fn remove(&mut self, i: usize) {
        self.items[i] = 0.0;
        let b = i / BLOCK;
        let start = b * BLOCK;
        self.blocks[b] = block_sum(&self.items[start..(start + BLOCK).min(self.items.len())]);
        let s = b / SPAN;
        let first = s * SPAN;
        self.spans[s] = self.blocks[first..(first + SPAN).min(self.blocks.len())]
            .iter()
            .sum();
    }
}

/// The largest finite score of an available item, `None` if there is none (compiled for
/// AVX-512 and AVX2 too: see `Cargo.toml`). Scaling by `inv_t > 0` keeps the order, so it also
/// gives the largest logit.
#[multiversion(targets("x86_64+avx512f+avx512vl+avx512bw+avx2+fma", "x86_64+avx2+fma"))]
fn top_score(scores: &[f32], unavailable: &[bool]) -> Option<f32> {
    let open = |s: f32, u: bool| {
        if s.is_finite() & !u {
            s
        } else {
            f32::NEG_INFINITY
        }
    };
    let mut lanes = [f32::NEG_INFINITY; 16];
    let (mut cs, mut cu) = (scores.chunks_exact(16), unavailable.chunks_exact(16));
    for (s16, u16) in (&mut cs).zip(&mut cu) {
        for l in 0..16 {
            lanes[l] = lanes[l].max(open(s16[l], u16[l]));
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
/// f32, eight or sixteen items per instruction on AVX2 or AVX-512 (with the polynomial's steps
/// fused there): the difference to the top score is taken before scaling, so the exponent of
/// every weight that matters (`> −16`) is accurate to about 2e-6 and the weight to the ~1e-6
/// of [`exp_nonpositive_f32_as`]. Computed for every entry and masked out, branch-free, so
/// the loop vectorises.
#[multiversion(targets("x86_64+avx512f+avx512vl+avx512bw+avx2+fma", "x86_64+avx2+fma"))]
fn weights(scores: &[f32], unavailable: &[bool], inv_t: f32, top: f32) -> (Vec<f32>, Vec<f64>) {
    // Our clones that vectorise eight floats or more have FMA; the baseline one has not.
    const FUSED: bool = matches!(
        multiversion::target::selected_target!().suggested_simd_width::<f32>(),
        Some(8..)
    );
    let mut w = vec![0.0f32; scores.len()];
    let mut blocks = Vec::with_capacity(scores.len().div_ceil(BLOCK));
    let chunks = w.chunks_mut(BLOCK).zip(scores.chunks(BLOCK));
    for ((wc, sc), uc) in chunks.zip(unavailable.chunks(BLOCK)) {
        for ((wi, &s), &u) in wc.iter_mut().zip(sc).zip(uc) {
            let keep = u32::from(s.is_finite() & !u).wrapping_neg();
            let term = exp_nonpositive_f32_as::<FUSED>((s - top) * inv_t);
            *wi = f32::from_bits(term.to_bits() & keep);
        }
        blocks.push(block_sum(wc));
    }
    (w, blocks)
}

/// The total of a block's weights: sixteen f32 lanes of at most four weights each (a vector
/// add per sixteen items; the partial sums are off by at most a few 1e-8), then the lanes in
/// f64, folded in halves, then the remainder.
#[inline(always)]
fn block_sum(w: &[f32]) -> f64 {
    let mut part = [0.0f32; 16];
    let mut chunks = w.chunks_exact(16);
    for c in &mut chunks {
        for l in 0..16 {
            part[l] += c[l];
        }
    }
    let mut lanes = part.map(f64::from);
    for half in [8, 4, 2, 1] {
        for l in 0..half {
            lanes[l] += lanes[l + half];
        }
    }
    lanes[0]
        + chunks
            .remainder()
            .iter()
            .map(|&x| f64::from(x))
            .sum::<f64>()
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
    fn draws_cross_spans_and_blocks_of_a_large_catalogue() {
        // Heavy items in three different spans (2,048 items each), the rest light: first
        // draws follow the softmax (χ², df = 3, P(χ² > 16.27) = 0.001), and drawing everything
        // returns each item once.
        let n = 10_000;
        let mut logits = vec![-4.0f32; n];
        let heavy = [(100usize, 0.0f32), (4_000, 1.0), (9_999, 0.5)];
        for &(i, z) in &heavy {
            logits[i] = z;
        }
        let total: f64 = logits.iter().map(|&z| f64::from(z).exp()).sum();
        let p = |z: f32| f64::from(z).exp() / total;
        let runs = 20_000u64;
        let mut counts = [0u64; 4];
        for seed in 0..runs {
            let d = draw_all(&logits, 1, &mut rng::stream(seed, 3, 0));
            let slot = heavy
                .iter()
                .position(|h| h.0 == d[0].0 as usize)
                .unwrap_or(3);
            counts[slot] += 1;
            assert!((d[0].1.exp() - p(logits[d[0].0 as usize])).abs() < 1e-6);
        }
        let light = 1.0 - heavy.iter().map(|h| p(h.1)).sum::<f64>();
        let want = [p(0.0), p(1.0), p(0.5), light];
        let chi: f64 = counts
            .iter()
            .zip(want)
            .map(|(&c, q)| (c as f64 - runs as f64 * q).powi(2) / (runs as f64 * q))
            .sum();
        assert!(chi < 16.27, "chi-square {chi}, counts {counts:?}");
        let all = draw_all(&logits, n, &mut rng::stream(1, 1, 1));
        let mut items: Vec<u32> = all.iter().map(|d| d.0).collect();
        items.sort_unstable();
        assert_eq!(items, (0..n as u32).collect::<Vec<_>>());
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
