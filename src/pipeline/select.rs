//! Model selection on validation, shared by both tasks: the pair's validation metrics at one
//! point of training, which points are validated, and the best point so far.

use serde_json::{Value, json};

use crate::eval::Metrics;
use crate::train::settings::Role;

/// Validation metrics of both players at one point of training.
#[derive(Debug, Clone)]
pub struct PairMetrics {
    /// The generator's metrics.
    pub generator: Metrics,
    /// The discriminator's metrics.
    pub discriminator: Metrics,
}

impl PairMetrics {
    /// The same metrics for both roles (a single model, as in a baseline).
    pub fn single(m: Metrics) -> Self {
        Self {
            generator: m.clone(),
            discriminator: m,
        }
    }

    /// `metric` of `role` (−∞ when absent, so it never wins a selection).
    pub fn score(&self, role: Role, metric: &str) -> f64 {
        let m = match role {
            Role::Generator => &self.generator,
            Role::Discriminator => &self.discriminator,
        };
        m.get(metric).copied().unwrap_or(f64::NEG_INFINITY)
    }

    /// `{"generator": …, "discriminator": …}`.
    pub fn to_json(&self) -> Value {
        json!({ "generator": self.generator, "discriminator": self.discriminator })
    }

    /// The progress bar's message: both players' `metric`.
    pub fn message(&self, metric: &str) -> String {
        format!(
            "val {metric}: G {:.4} D {:.4}",
            self.score(Role::Generator, metric),
            self.score(Role::Discriminator, metric)
        )
    }
}

/// Whether epoch `epoch` (1-based) of `total` is validated: every `every` epochs and the last.
pub fn is_due(epoch: usize, every: usize, total: usize) -> bool {
    epoch.is_multiple_of(every) || epoch == total
}

/// The best validation point so far. The start competes too; ties keep the earlier (simpler)
/// model.
#[derive(Debug, Clone)]
pub struct Best<T> {
    score: f64,
    value: T,
}

impl<T> Best<T> {
    /// Starts with the initial point.
    pub fn new(score: f64, value: T) -> Self {
        Self { score, value }
    }

    /// Keeps `value()` if `score` beats the best so far; says whether it did.
    pub fn offer(&mut self, score: f64, value: impl FnOnce() -> T) -> bool {
        let better = score > self.score;
        if better {
            self.score = score;
            self.value = value();
        }
        better
    }

    /// The best point.
    pub fn value(&self) -> &T {
        &self.value
    }

    /// The best point, by value.
    pub fn into_value(self) -> T {
        self.value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ties_keep_the_earlier_point() {
        let mut b = Best::new(0.5, 0);
        assert!(!b.offer(0.5, || 1));
        assert!(b.offer(0.6, || 2));
        assert!(!b.offer(f64::NAN, || 3));
        assert_eq!(b.into_value(), 2);
    }

    #[test]
    fn the_last_epoch_is_always_validated() {
        assert!(is_due(4, 2, 5) && is_due(5, 2, 5) && !is_due(3, 2, 5));
    }
}
