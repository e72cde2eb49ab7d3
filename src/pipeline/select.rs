//! Model selection on validation, shared by both tasks: the pair's validation metrics at one
//! point of training, which points are validated, and the best point so far.

use serde_json::{Value, json};

use crate::eval::Metrics;
use crate::train::settings::{Role, Served};

/// Validation metrics of both players at one point of training.
#[derive(Debug, Clone)]
pub struct PairMetrics {
    /// The generator's metrics.
    pub generator: Metrics,
    /// The discriminator's metrics.
    pub discriminator: Metrics,
    /// The pair's blend's metrics, when the run is selected by the blend.
    pub blend: Option<Metrics>,
}

impl PairMetrics {
    /// The same metrics for both roles (a single model, as in a baseline).
    pub fn single(m: Metrics) -> Self {
        Self {
            generator: m.clone(),
            discriminator: m,
            blend: None,
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

    /// `metric` of the served model `served` (−∞ when absent, so it never wins a selection).
    pub fn served_score(&self, served: Served, metric: &str) -> f64 {
        match served {
            Served::Generator => self.score(Role::Generator, metric),
            Served::Discriminator => self.score(Role::Discriminator, metric),
            Served::Blend => self
                .blend
                .as_ref()
                .and_then(|m| m.get(metric).copied())
                .unwrap_or(f64::NEG_INFINITY),
        }
    }

    /// `{"generator": …, "discriminator": …}`, and `"blend": …` when measured.
    pub fn to_json(&self) -> Value {
        let mut v = json!({ "generator": self.generator, "discriminator": self.discriminator });
        if let Some(b) = &self.blend {
            v["blend"] = json!(b);
        }
        v
    }

    /// The progress bar's message: both players' `metric` (and the blend's, when measured).
    pub fn message(&self, metric: &str) -> String {
        let blend = match &self.blend {
            Some(_) => format!(" blend {:.4}", self.served_score(Served::Blend, metric)),
            None => String::new(),
        };
        format!(
            "val {metric}: G {:.4} D {:.4}{blend}",
            self.score(Role::Generator, metric),
            self.score(Role::Discriminator, metric)
        )
    }
}

/// Whether epoch `epoch` (1-based) of `total` is validated: every `every` epochs and the last.
pub fn is_due(epoch: usize, every: usize, total: usize) -> bool {
    epoch.is_multiple_of(every) || epoch == total
}

/// Relative difference below which two validation scores are a tie (far above f64 rounding of
/// a mean over users, far below one hit among millions of ranked items).
pub const TIE: f64 = 1e-9;

/// The best validation point so far. The start competes too; ties keep the earlier (simpler)
/// model. Scores within [`TIE`] (relative) of each other are ties: the same hits summed in
/// another order differ in the last bits, and such a difference must not pick a model.
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
        let margin = if self.score.is_finite() {
            TIE * self.score.abs()
        } else {
            0.0
        };
        let better = score > self.score + margin;
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
        // The same score summed in another order: still a tie.
        assert!(!b.offer(0.6 + 2e-17, || 4));
        assert!(b.offer(0.6 + 1e-6, || 5));
        assert_eq!(b.into_value(), 5);
        let mut unscored = Best::new(f64::NEG_INFINITY, 0);
        assert!(unscored.offer(0.0, || 1));
    }

    #[test]
    fn the_last_epoch_is_always_validated() {
        assert!(is_due(4, 2, 5) && is_due(5, 2, 5) && !is_due(3, 2, 5));
    }
}
