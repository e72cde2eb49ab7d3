//! Item-to-item similarity: cosines between MF item factor rows, exact for extreme but finite
//! rows.

use crate::model::MfModel;

/// Cosines between one item's factor row and every row of the first `n` items, in item order
/// (NaN where undefined: a zero or non-finite row).
pub struct Cosines<'a> {
    rows: std::iter::Take<std::slice::ChunksExact<'a, f32>>,
    target: &'a [f32],
    target_norm: f64,
}

impl<'a> Cosines<'a> {
    /// `None` when the target row is missing, zero or non-finite (every cosine undefined), or
    /// the model's item factors do not cover `n` items.
    pub fn new(model: &'a MfModel, target: usize, n: usize) -> Option<Self> {
        let d = model.item.ncols();
        let q = model.item.as_slice()?;
        if d == 0 || q.len() < n * d {
            return None;
        }
        let row = q.get(target * d..(target + 1) * d)?;
        let target_norm = norm(row);
        (target_norm.is_finite() && target_norm > 0.0).then(|| Self {
            rows: q.chunks_exact(d).take(n),
            target: row,
            target_norm,
        })
    }
}

impl Iterator for Cosines<'_> {
    type Item = f64;

    fn next(&mut self) -> Option<f64> {
        let row = self.rows.next()?;
        let (dot, sq) = dot_and_square(self.target, row);
        let c = dot / (self.target_norm * sq.sqrt());
        // A zero row gives 0/0 = NaN, a non-finite one NaN or ±∞: both are reported as NaN.
        Some(if c.is_finite() {
            c.clamp(-1.0, 1.0)
        } else {
            f64::NAN
        })
    }
}

/// `(⟨a, b⟩, ‖b‖²)`: in f32 with eight independent lanes (so the loop vectorises), redone in
/// f64 when the f32 sums overflow or underflow (factors near ±1e19 or below 1e-19), so extreme
/// but finite rows still get their exact-ish cosine. The f32 path's cosine error is ~1e-6.
pub fn dot_and_square(a: &[f32], b: &[f32]) -> (f64, f64) {
    let (mut dot, mut sq) = ([0.0f32; 8], [0.0f32; 8]);
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for k in 0..8 {
            dot[k] += x[k] * y[k];
            sq[k] += y[k] * y[k];
        }
    }
    for (k, (&x, &y)) in ra.iter().zip(rb).enumerate() {
        dot[k] += x * y;
        sq[k] += y * y;
    }
    let (d, s) = (dot.iter().sum::<f32>(), sq.iter().sum::<f32>());
    if d.is_finite() && s.is_normal() && s < f32::MAX / 2.0 {
        return (f64::from(d), f64::from(s));
    }
    a.iter().zip(b).fold((0.0, 0.0), |(d, s), (&x, &y)| {
        let (x, y) = (f64::from(x), f64::from(y));
        (d + x * y, s + y * y)
    })
}

/// Euclidean norm (see [`dot_and_square`]).
pub fn norm(x: &[f32]) -> f64 {
    dot_and_square(x, x).1.sqrt()
}
