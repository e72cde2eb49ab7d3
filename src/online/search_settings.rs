//! Settings of the online search task (`[search]` in the service config) and their range checks.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::config::search::{Method, ScorerConfig, SearchIrganConfig};

/// Settings of the search task (`[search]` in the service config).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SearchServiceConfig {
    /// Serve `/v1/search/*` and run the search trainer.
    pub enabled: bool,
    /// Length of every feature vector.
    pub n_features: usize,
    /// Most documents in one ranked list or impression.
    pub max_documents: usize,
    /// Weight of G in `model = "blend"` (D gets the rest), over standardised scores.
    pub blend_weight: f64,
    /// A snapshot directory written by `irgan train` (task = "search") to start from when the
    /// data directory has none; empty = start untrained and learn from feedback.
    pub initial_snapshot: PathBuf,
    /// `irgan_pointwise` or `irgan_pairwise`.
    pub method: Method,
    /// Judged queries (with a relevant document) needed before training starts.
    pub min_queries: usize,
    /// Every n-th judged query is held out to validate candidates.
    pub holdout_every: usize,
    /// Most recent training queries the trainer keeps.
    pub max_train_queries: usize,
    /// Trainer steps after the last new impression before the trainer idles.
    pub idle_after_steps: u64,
    /// Consider publishing this often while training.
    pub publish_every_seconds: f64,
    /// Refuse a candidate whose hold-out NDCG@10 is below the live one by more than this.
    pub tolerance: f64,
    /// The scorers' shape (used when starting untrained).
    pub scorer: ScorerConfig,
    /// The game's settings (`epochs`, `d_epochs`, `g_epochs` and `init` are not used online:
    /// each trainer step is one D pass and one G pass).
    pub irgan: SearchIrganConfig,
}

impl Default for SearchServiceConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            n_features: 46,
            max_documents: 1000,
            blend_weight: 0.5,
            initial_snapshot: PathBuf::new(),
            method: Method::IrganPairwise,
            min_queries: 10,
            holdout_every: 5,
            max_train_queries: 20_000,
            idle_after_steps: 200,
            publish_every_seconds: 10.0,
            tolerance: 0.02,
            scorer: ScorerConfig::default(),
            irgan: SearchIrganConfig {
                d_lr: 1e-3,
                ..SearchIrganConfig::default()
            },
        }
    }
}

impl SearchServiceConfig {
    /// Range checks; the message names the key.
    pub fn validate(&self) -> Result<(), String> {
        if self.n_features == 0 || self.max_documents == 0 {
            return Err("search.n_features and search.max_documents must be >= 1".into());
        }
        if !(0.0..=1.0).contains(&self.blend_weight) {
            return Err("search.blend_weight must be in [0, 1]".into());
        }
        if !self.method.is_irgan() {
            return Err("search.method must be irgan_pointwise or irgan_pairwise".into());
        }
        if self.min_queries == 0 || self.holdout_every < 2 || self.max_train_queries == 0 {
            return Err(
                "search.min_queries and search.max_train_queries must be >= 1, \
                 search.holdout_every >= 2"
                    .into(),
            );
        }
        if !(self.publish_every_seconds.is_finite() && self.publish_every_seconds > 0.0) {
            return Err("search.publish_every_seconds must be > 0".into());
        }
        if !(self.tolerance.is_finite() && self.tolerance >= 0.0) {
            return Err("search.tolerance must be >= 0".into());
        }
        let mut probe = crate::config::search::SearchConfig {
            scorer: self.scorer.clone(),
            irgan: self.irgan.clone(),
            ..Default::default()
        };
        probe.data.train = "-".into();
        probe.validate().map_err(|e| format!("search.{e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_is_valid() {
        SearchServiceConfig::default().validate().unwrap();
        let bad = SearchServiceConfig {
            method: Method::Lambdarank,
            ..Default::default()
        };
        assert!(bad.validate().is_err());
    }
}
