//! Timing and order statistics shared by the benchmarks (each bench includes this module).
#![allow(dead_code)] // every bench uses a different subset

pub mod http;

use std::time::Instant;

/// The median of `xs` (the upper one of an even count).
pub fn median(xs: Vec<f64>) -> f64 {
    percentile(xs, 0.5)
}

/// The `p`-quantile of `xs` (nearest rank), `p` in [0, 1].
pub fn percentile(mut xs: Vec<f64>, p: f64) -> f64 {
    xs.sort_by(|a, b| a.total_cmp(b));
    xs[((xs.len() - 1) as f64 * p).round() as usize]
}

/// Median wall time in seconds of `reps` runs of `f`.
pub fn time_s<F: FnMut()>(reps: usize, mut f: F) -> f64 {
    median(
        (0..reps)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed().as_secs_f64()
            })
            .collect(),
    )
}
