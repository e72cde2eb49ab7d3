//! G's softmax policy and D's sigmoid critic, computed stably.
//!
//! The reference code computed `exp(s)` without subtracting the maximum and took `log` of a
//! softmax entry that could underflow to 0. Here everything goes through log-sum-exp in f64, and
//! sampling walks a normalised cumulative distribution, so extreme logits neither overflow nor
//! produce NaN.

use crate::rng::{self, Rng};

/// `out[i] = log softmax(logits / temperature)[i]`, computed in f64 with log-sum-exp.
///
/// Non-finite logits are treated as "impossible" (log-probability −∞), so one bad score cannot
/// poison the whole distribution. Returns the log normaliser, or `None` when no logit is finite.
pub fn log_softmax(logits: &[f32], temperature: f64, out: &mut [f64]) -> Option<f64> {
    log_softmax_parts(logits, temperature, out).map(|(max, log_sum)| max + log_sum)
}

/// [`log_softmax`] returning the normaliser's parts `(max, ln Σ exp(z − max))` of
/// `z = logits / temperature`, so one item's log-probability can be recomputed later with
/// [`log_prob`], bit for bit.
pub fn log_softmax_parts(logits: &[f32], temperature: f64, out: &mut [f64]) -> Option<(f64, f64)> {
    let inv_t = 1.0 / temperature;
    for (o, &s) in out.iter_mut().zip(logits) {
        *o = if s.is_finite() {
            f64::from(s) * inv_t
        } else {
            f64::NEG_INFINITY
        };
    }
    let n = logits.len().min(out.len());
    let max = lane_max(&out[..n], |z| z);
    if !max.is_finite() {
        return None;
    }
    let sum = lane_sum(&out[..n], |z| softmax_term(z - max));
    let log_sum = sum.ln();
    // Shift before subtracting: `z − (max + log_sum)` would lose log_sum when |max| is huge.
    for o in out.iter_mut() {
        *o = (*o - max) - log_sum;
    }
    Some((max, log_sum))
}

/// The log-probability [`log_softmax_parts`] gives a logit `s` under its normaliser `parts`
/// (−∞ for a non-finite `s`).
pub fn log_prob(s: f32, temperature: f64, parts: (f64, f64)) -> f64 {
    if s.is_finite() {
        (f64::from(s) * (1.0 / temperature) - parts.0) - parts.1
    } else {
        f64::NEG_INFINITY
    }
}

/// `out = softmax(logits / temperature)` in f64; the entries sum to 1 (uniform if no logit is finite).
pub fn softmax(logits: &[f32], temperature: f64, out: &mut [f64]) {
    if log_softmax(logits, temperature, out).is_none() {
        let u = 1.0 / out.len().max(1) as f64;
        out.iter_mut().for_each(|o| *o = u);
        return;
    }
    out.iter_mut().for_each(|o| *o = exp_nonpositive(*o));
}

/// Shannon entropy (nats) of a probability vector.
pub fn entropy(p: &[f64]) -> f64 {
    -p.iter()
        .filter(|&&x| x > 0.0)
        .map(|&x| x * x.ln())
        .sum::<f64>()
}

/// A categorical distribution ready for repeated sampling: a normalised cumulative sum searched
/// by bisection (O(log n) per draw after O(n) set-up).
#[derive(Debug, Clone, Default)]
pub struct Categorical {
    cumulative: Vec<f64>,
}

impl Categorical {
    /// Builds from non-negative weights (need not sum to 1). `None` if the total is zero or not finite.
    pub fn new(weights: &[f64]) -> Option<Self> {
        let mut c = Self::default();
        c.reset(weights).then_some(c)
    }

    /// Rebuilds in place (reusing the buffer); returns false if the weights have no usable mass.
    pub fn reset(&mut self, weights: &[f64]) -> bool {
        self.cumulative.clear();
        let mut acc = 0.0;
        for &w in weights {
            if w.is_finite() && w > 0.0 {
                acc += w;
            }
            self.cumulative.push(acc);
        }
        if !(acc.is_finite() && acc > 0.0) {
            return false;
        }
        let inv = 1.0 / acc;
        self.cumulative.iter_mut().for_each(|c| *c *= inv);
        true
    }

    /// One draw: the first index whose cumulative mass exceeds a uniform number. Zero-weight
    /// entries are never returned.
    pub fn sample(&self, rng: &mut Rng) -> usize {
        let x = rng::unit(rng);
        let i = self.cumulative.partition_point(|&c| c <= x);
        // Rounding can leave the last cumulative entry a hair below 1; fall back to the last
        // index with positive mass.
        if i < self.cumulative.len() {
            i
        } else {
            let last = self.cumulative.last().copied().unwrap_or(0.0);
            self.cumulative.partition_point(|&c| c < last)
        }
    }
}

/// `exp(x)` for `x <= 0` (the shifted logits of a softmax), accurate to a few ulp, and written
/// without branches or library calls so loops over a catalogue vectorise. Arguments below −708
/// (including −∞) give 0; positive arguments are outside its contract.
#[inline]
pub fn exp_nonpositive(x: f64) -> f64 {
    const LOG2E: f64 = std::f64::consts::LOG2_E;
    const LN2_HI: f64 = 6.931_471_803_691_238e-1;
    const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;
    // Adding 1.5·2^52 rounds to the nearest integer and leaves it in the low mantissa bits.
    const SHIFTER: f64 = 6_755_399_441_055_744.0;
    let xc = x.max(-708.0);
    let t = xc * LOG2E + SHIFTER;
    let k = t - SHIFTER;
    let r = (xc - k * LN2_HI) - k * LN2_LO; // |r| <= ln2/2
    // Taylor series of e^r to degree 12: truncation error below 2e-16 for |r| <= 0.347.
    let mut p = 1.0 / 479_001_600.0;
    p = p * r + 1.0 / 39_916_800.0;
    p = p * r + 1.0 / 3_628_800.0;
    p = p * r + 1.0 / 362_880.0;
    p = p * r + 1.0 / 40_320.0;
    p = p * r + 1.0 / 5_040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    let ki = (t.to_bits() as i64).wrapping_sub(SHIFTER.to_bits() as i64);
    let scale = f64::from_bits(((ki + 1023) << 52) as u64);
    // A bit mask, not an `if`: LLVM turns a select around this much arithmetic into a branch,
    // and a branch keeps the catalogue loops from vectorising. NaN fails the comparison too.
    let keep = u64::from(x >= -708.0).wrapping_neg();
    f64::from_bits((p * scale).to_bits() & keep)
}

/// One term `exp(z − max)` of a catalogue-wide softmax normaliser (`shifted = z − max <= 0`),
/// the exponential taken in f32 and the term returned in f64 for an f64 sum: the scores are
/// f32, so an f64 exponential adds digits the inputs do not have, and the f32 one runs four
/// items per instruction. Relative error below 1e-6 per term (the argument's rounding to f32
/// included, for the terms that matter: `shifted > −16`); −∞ and NaN give 0.
#[inline]
pub fn softmax_term(shifted: f64) -> f64 {
    f64::from(exp_nonpositive_f32(shifted as f32))
}

/// `max f(x)` over `xs` (−∞ when empty), in eight interleaved lanes: the same value as a
/// fold in order (`f64::max` is exact and ignores NaN), without its serial dependency chain.
#[inline]
pub fn lane_max<T: Copy>(xs: &[T], f: impl Fn(T) -> f64) -> f64 {
    let mut lanes = [f64::NEG_INFINITY; 8];
    let mut chunks = xs.chunks_exact(8);
    for c in &mut chunks {
        for (l, &x) in lanes.iter_mut().zip(c) {
            *l = l.max(f(x));
        }
    }
    chunks
        .remainder()
        .iter()
        .map(|&x| f(x))
        .chain(lanes)
        .fold(f64::NEG_INFINITY, f64::max)
}

/// `<a, b>` summed in eight independent lanes (so it vectorises), then across them; a tail
/// shorter than eight is added last.
#[inline(always)]
pub fn lane_dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (xa, xb) in ca.zip(cb) {
        for l in 0..8 {
            lanes[l] += xa[l] * xb[l];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// `Σ f(x)` over `xs`, added in eight interleaved partial sums (then the remainder), so a loop
/// of exponentials vectorises; f64 addition in order would serialise it. Every sum that must
/// agree bit for bit with another (a cached normaliser and a full log-softmax) goes through
/// this one order.
#[inline]
pub fn lane_sum<T: Copy>(xs: &[T], f: impl Fn(T) -> f64) -> f64 {
    let mut lanes = [0.0f64; 8];
    let mut chunks = xs.chunks_exact(8);
    for c in &mut chunks {
        for (l, &x) in lanes.iter_mut().zip(c) {
            *l += f(x);
        }
    }
    let mut sum = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3]))
        + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
    for &x in chunks.remainder() {
        sum += f(x);
    }
    sum
}

/// `exp(x)` in f32 for `x <= 0`, relative error below 3e-7, branch-free so catalogue loops
/// vectorise four items at a time. Arguments below −87 (including −∞) and NaN give 0.
///
/// The softmax hot loops use it for the per-item weights `exp((s_j − max)/τ)`: the scores are
/// f32, so an f64 exponential would add digits the inputs do not have. The sums, the
/// log-normaliser and every log-probability stay in f64.
#[inline]
pub fn exp_nonpositive_f32(x: f32) -> f32 {
    exp_nonpositive_f32_as::<false>(x)
}

/// [`exp_nonpositive_f32`] with each step of the polynomial a fused multiply-add when `FUSED`
/// (half the instructions, and the result may differ in the last bit). Only for code compiled
/// for a CPU with FMA (a `multiversion` clone that has it): elsewhere `mul_add` is a library
/// call.
#[inline(always)]
pub fn exp_nonpositive_f32_as<const FUSED: bool>(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    const SHIFTER: f32 = 12_582_912.0; // 1.5·2^23
    let step = |p: f32, r: f32, c: f32| if FUSED { p.mul_add(r, c) } else { p * r + c };
    let xc = x.max(-87.0);
    let t = xc * LOG2E + SHIFTER;
    let k = t - SHIFTER;
    let r = (xc - k * LN2_HI) - k * LN2_LO;
    // Taylor series to degree 7: truncation below 1e-8 relative for |r| <= 0.347.
    let mut p = 1.0 / 5040.0;
    for c in [
        1.0 / 720.0,
        1.0 / 120.0,
        1.0 / 24.0,
        1.0 / 6.0,
        0.5,
        1.0,
        1.0,
    ] {
        p = step(p, r, c);
    }
    let ki = (t.to_bits() as i32).wrapping_sub(SHIFTER.to_bits() as i32);
    let scale = f32::from_bits(((ki + 127) << 23) as u32);
    // A mask rather than an `if` (see `exp_nonpositive`); NaN also gives 0.
    let keep = u32::from(x >= -87.0).wrapping_neg();
    f32::from_bits((p * scale).to_bits() & keep)
}

/// The largest finite value of `scores` (−∞ if none): NaN and ±∞ are ignored. Written as a
/// branch-free select so it vectorises.
#[inline]
pub fn finite_max(scores: &[f32]) -> f32 {
    let pick = |m: f32, s: f32| if s > m && s < f32::INFINITY { s } else { m };
    // Eight independent lanes: the select has no reassociation problem, so this vectorises.
    let mut lanes = [f32::NEG_INFINITY; 8];
    let chunks = scores.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for k in 0..8 {
            lanes[k] = pick(lanes[k], c[k]);
        }
    }
    rest.iter()
        .chain(&lanes)
        .fold(f32::NEG_INFINITY, |m, &s| pick(m, s))
}

/// Unnormalised cumulative softmax weights for sampling: `cum[j] = Σ_{i ≤ j} exp((s_i − max)/τ)`,
/// skipping the sorted indices in `skip` (they get zero mass) and non-finite scores. Returns the
/// total mass (0 when nothing can be drawn). One pass, no normalisation: draw with
/// [`sample_cumulative`].
pub fn cumulative_softmax(scores: &[f32], temperature: f64, skip: &[u32], cum: &mut [f64]) -> f64 {
    let max = finite_max(scores);
    if !max.is_finite() {
        cum.iter_mut().for_each(|c| *c = 0.0);
        return 0.0;
    }
    let inv_t = (1.0 / temperature) as f32;
    // Exponentials first (a loop LLVM vectorises), then the prefix sum in f64.
    for (c, &s) in cum.iter_mut().zip(scores) {
        let e = exp_nonpositive_f32((s - max) * inv_t);
        *c = if s.is_finite() { f64::from(e) } else { 0.0 };
    }
    for &k in skip {
        if let Some(c) = cum.get_mut(k as usize) {
            *c = 0.0;
        }
    }
    let mut acc = 0.0;
    for c in cum.iter_mut() {
        acc += *c;
        *c = acc;
    }
    acc
}

/// One draw from cumulative weights built by [`cumulative_softmax`] (total > 0).
pub fn sample_cumulative(cum: &[f64], total: f64, rng: &mut Rng) -> usize {
    let x = rng::unit(rng) * total;
    let i = cum.partition_point(|&c| c <= x);
    // x < total, so i < len except through rounding; then take the last index with mass.
    if i < cum.len() {
        i
    } else {
        cum.partition_point(|&c| c < total)
    }
}

/// `(σ(s), log(1 + e^−|s|))` with a single exponential: the pieces of both logistic losses,
/// since −log σ(s) = max(−s, 0) + log(1 + e^−|s|) and −log(1 − σ(s)) = max(s, 0) + the same.
pub fn logistic(s: f64) -> (f64, f64) {
    let e = exp_nonpositive(-s.abs());
    let p = if s >= 0.0 {
        1.0 / (1.0 + e)
    } else {
        e / (1.0 + e)
    };
    (p, e.ln_1p())
}

/// The logistic function, stable for large |x|.
pub fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// D's reward for a generated item: 2σ(f) − 1 = tanh(f / 2), in (−1, 1).
pub fn reward(score: f32) -> f64 {
    (f64::from(score) * 0.5).tanh()
}

/// `log(1 + e^x)`, stable for large |x|: the logistic loss of a negative with logit `x`.
pub fn softplus(x: f64) -> f64 {
    if x > 0.0 {
        x + (-x).exp().ln_1p()
    } else {
        x.exp().ln_1p()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_terms_are_accurate_where_they_matter() {
        for j in 0..=16_000 {
            let x = -f64::from(j) / 1000.0;
            let (a, b) = (softmax_term(x), x.exp());
            assert!(((a - b) / b).abs() < 1e-6, "{x}: {a} vs {b}");
        }
        assert_eq!(softmax_term(0.0), 1.0);
        assert_eq!(softmax_term(f64::NEG_INFINITY), 0.0);
        assert_eq!(softmax_term(f64::NAN), 0.0);
    }

    #[test]
    fn log_prob_recomputes_log_softmax_bit_for_bit() {
        let logits = [0.3f32, -1.7, f32::NAN, 2.9, 12.5, f32::NEG_INFINITY, -0.0];
        for t in [1.0, 0.37, 3.0] {
            let mut out = [0.0; 7];
            let parts = log_softmax_parts(&logits, t, &mut out).unwrap();
            let mut full = [0.0; 7];
            assert_eq!(log_softmax(&logits, t, &mut full), Some(parts.0 + parts.1));
            for (i, &s) in logits.iter().enumerate() {
                assert_eq!(log_prob(s, t, parts).to_bits(), out[i].to_bits());
                assert_eq!(out[i].to_bits(), full[i].to_bits());
            }
        }
        let mut out = [0.0; 2];
        assert!(log_softmax_parts(&[f32::NAN, f32::INFINITY], 1.0, &mut out).is_none());
    }

    #[test]
    fn log_softmax_survives_extreme_logits() {
        let logits = [1e30f32, -1e30, 0.0, 88.0, 1e30];
        let mut out = [0.0; 5];
        let log_z = log_softmax(&logits, 1.0, &mut out).unwrap();
        assert!(log_z.is_finite());
        assert!((out[0] - (0.5f64).ln()).abs() < 1e-12);
        assert!((out[4] - (0.5f64).ln()).abs() < 1e-12);
        assert!(out[1] < -1e29 && out[1].is_finite());
        let total: f64 = out.iter().map(|x| x.exp()).sum();
        assert!((total - 1.0).abs() < 1e-12);
    }

    #[test]
    fn log_softmax_at_low_temperature_and_nan() {
        let logits = [3.0f32, f32::NAN, 2.0, f32::INFINITY];
        let mut out = [0.0; 4];
        log_softmax(&logits, 0.01, &mut out).unwrap();
        assert_eq!(out[1], f64::NEG_INFINITY);
        assert_eq!(out[3], f64::NEG_INFINITY);
        // 3/0.01 − 2/0.01 = 100 nats apart.
        assert!((out[0] - 0.0).abs() < 1e-12);
        assert!((out[2] + 100.0).abs() < 1e-9);
        assert!(log_softmax(&[f32::NAN; 3], 1.0, &mut [0.0; 3]).is_none());
        let mut p = [0.0; 3];
        softmax(&[f32::NAN; 3], 1.0, &mut p);
        assert!(p.iter().all(|&x| (x - 1.0 / 3.0).abs() < 1e-15));
    }

    #[test]
    fn categorical_never_draws_zero_mass() {
        let c = Categorical::new(&[0.0, 1.0, 0.0, 3.0, 0.0]).unwrap();
        let mut r = rng::stream(3, 0, 0);
        for _ in 0..10_000 {
            let i = c.sample(&mut r);
            assert!(i == 1 || i == 3);
        }
        assert!(Categorical::new(&[0.0, 0.0]).is_none());
        assert!(Categorical::new(&[f64::NAN, f64::INFINITY]).is_none());
    }

    /// Pearson chi-square goodness of fit with a fixed seed: 5 categories (4 degrees of freedom);
    /// the 99.9% quantile of χ²(4) is 18.47.
    #[test]
    fn categorical_matches_its_distribution() {
        let w = [0.1, 0.2, 0.3, 0.15, 0.25];
        let c = Categorical::new(&w).unwrap();
        let mut r = rng::stream(11, 1, 0);
        let n = 200_000;
        let mut counts = [0usize; 5];
        for _ in 0..n {
            counts[c.sample(&mut r)] += 1;
        }
        let chi2: f64 = counts
            .iter()
            .zip(w)
            .map(|(&o, p)| {
                let e = p * n as f64;
                (o as f64 - e).powi(2) / e
            })
            .sum();
        assert!(chi2 < 18.47, "chi2 = {chi2}, counts = {counts:?}");
    }

    #[test]
    fn sampling_from_softmax_with_huge_logits_is_finite() {
        let logits = [1000.0f32, 999.0, -1000.0];
        let mut p = [0.0; 3];
        softmax(&logits, 1.0, &mut p);
        let c = Categorical::new(&p).unwrap();
        let mut r = rng::stream(5, 0, 0);
        let mut counts = [0usize; 3];
        for _ in 0..100_000 {
            counts[c.sample(&mut r)] += 1;
        }
        assert_eq!(counts[2], 0);
        let ratio = counts[0] as f64 / counts[1] as f64;
        assert!((ratio - std::f64::consts::E).abs() < 0.1, "ratio {ratio}");
    }

    #[test]
    fn cumulative_sampling_matches_softmax_and_skips() {
        let scores = [1.0f32, 2.0, f32::NAN, 0.5, 3.0];
        let mut cum = [0.0; 5];
        let total = cumulative_softmax(&scores, 0.5, &[4], &mut cum);
        let mut p = [0.0; 5];
        softmax(
            &[1.0, 2.0, f32::NEG_INFINITY, 0.5, f32::NEG_INFINITY],
            0.5,
            &mut p,
        );
        let mut r = rng::stream(21, 0, 0);
        let n = 200_000;
        let mut counts = [0usize; 5];
        for _ in 0..n {
            counts[sample_cumulative(&cum, total, &mut r)] += 1;
        }
        assert_eq!(counts[2] + counts[4], 0);
        // χ² over the three live categories (2 d.o.f., 99.9% quantile 13.8).
        let chi2: f64 = [0usize, 1, 3]
            .iter()
            .map(|&j| (counts[j] as f64 - p[j] * n as f64).powi(2) / (p[j] * n as f64))
            .sum();
        assert!(chi2 < 13.8, "chi2 {chi2} counts {counts:?}");
        assert_eq!(
            cumulative_softmax(&[f32::NAN; 2], 1.0, &[], &mut [0.0; 2]),
            0.0
        );
        // Huge logits do not overflow.
        let total = cumulative_softmax(&[1e30, -1e30, 1e30], 1e-3, &[], &mut cum[..3]);
        assert!((total - 2.0).abs() < 1e-12);
    }

    #[test]
    fn fast_exp_matches_libm() {
        let mut worst = 0.0f64;
        let mut x = -745.0;
        while x <= 0.0 {
            let (a, b) = (exp_nonpositive(x), x.exp());
            if b > 1e-300 {
                worst = worst.max(((a - b) / b).abs());
            }
            x += 0.0137;
        }
        assert!(worst < 1e-14, "max relative error {worst}");
        assert_eq!(exp_nonpositive(0.0), 1.0);
        assert_eq!(exp_nonpositive(f64::NEG_INFINITY), 0.0);
        assert_eq!(exp_nonpositive(-1000.0), 0.0);
    }

    #[test]
    fn fast_exp_f32_matches_libm() {
        let mut worst = 0.0f64;
        let mut x = -90.0f32;
        while x <= 0.0 {
            let b = f64::from(x).exp();
            for a in [exp_nonpositive_f32(x), exp_nonpositive_f32_as::<true>(x)] {
                if b > 1e-37 {
                    worst = worst.max(((f64::from(a) - b) / b).abs());
                }
            }
            x += 0.00731;
        }
        assert!(worst < 3e-7, "max relative error {worst}");
        assert_eq!(exp_nonpositive_f32(0.0), 1.0);
        assert_eq!(exp_nonpositive_f32(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp_nonpositive_f32(f32::NAN), 0.0);
        assert_eq!(exp_nonpositive_f32_as::<true>(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp_nonpositive_f32_as::<true>(f32::NAN), 0.0);
    }

    #[test]
    fn logistic_pieces_are_exact_and_stable() {
        for s in [-800.0, -30.0, -1.0, 0.0, 0.7, 40.0, 800.0] {
            let (p, l) = logistic(s);
            assert!((p - sigmoid(s)).abs() < 1e-15);
            assert!(((-s).max(0.0) + l - softplus(-s)).abs() < 1e-12);
            assert!((s.max(0.0) + l - softplus(s)).abs() < 1e-12);
        }
    }

    #[test]
    fn sigmoid_reward_softplus_are_stable() {
        assert_eq!(sigmoid(-1000.0), 0.0);
        assert_eq!(sigmoid(1000.0), 1.0);
        assert!((reward(0.0)).abs() < 1e-15);
        assert!((reward(2.0) - (2.0 * sigmoid(2.0) - 1.0)).abs() < 1e-12);
        assert!((softplus(1000.0) - 1000.0).abs() < 1e-9);
        assert!(softplus(-1000.0) >= 0.0 && softplus(-1000.0) < 1e-300);
        assert!((entropy(&[0.5, 0.5]) - 2f64.ln()).abs() < 1e-12);
    }
}
