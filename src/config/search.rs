//! Configuration of a learning-to-rank run (`task = "search"`), e.g. `config/mq2008.toml`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::{ConfigError, check, load_document, load_validated, require};
use crate::model::features::{Activation, Architecture};
pub use crate::train::settings::{BaselineConfig, IrganInit, Method, SearchIrganConfig};

/// What `irgan train` trains.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    /// Item recommendation (user → items, matrix factorisation): [`crate::config::Config`].
    #[default]
    Recommendation,
    /// Learning to rank on feature vectors: [`SearchConfig`].
    Search,
}

/// A whole search run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SearchConfig {
    /// Always `search` here (the key tells `irgan train` which configuration it reads).
    pub task: Task,
    /// Seed of every random stream.
    pub seed: u64,
    /// Worker threads for evaluation (0 = all cores).
    pub threads: usize,
    /// What to train.
    pub method: Method,
    /// Input files.
    pub data: SearchDataConfig,
    /// Metrics and selection.
    pub eval: SearchEvalConfig,
    /// The scorer used for every model (G, D and baselines).
    pub scorer: ScorerConfig,
    /// Baseline methods, and the pretraining of IRGAN's players.
    pub baseline: BaselineConfig,
    /// The adversarial game.
    pub irgan: SearchIrganConfig,
}

/// Ranking files in LETOR/SVMlight format.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SearchDataConfig {
    /// Training queries.
    pub train: PathBuf,
    /// Validation queries (model selection); without it a fraction of the training queries.
    pub validation: Option<PathBuf>,
    /// Test queries, read once for the final report.
    pub test: Option<PathBuf>,
    /// Fraction of training queries held out when `validation` is absent.
    pub validation_fraction: f64,
    /// Feature dimension (default: the highest index in the training file).
    pub n_features: Option<usize>,
}

/// Metrics and selection.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SearchEvalConfig {
    /// Cut-offs for NDCG@k and P@k.
    pub ks: Vec<usize>,
    /// Validation metric that selects the model, e.g. `NDCG@10`.
    pub select_metric: String,
    /// Validate every this many epochs (outer epochs for IRGAN).
    pub every_epochs: usize,
    /// Significance gate on selection: the game's best checkpoint is served instead of the
    /// start only if a sign-flip test of the best of all checkpoints against the start (per
    /// validated user or query) gives p ≤ this. 1 turns the gate off.
    pub gate_alpha: f64,
}

/// Scorer shape.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ScorerConfig {
    /// `linear` or `mlp`.
    pub kind: ScorerKind,
    /// Hidden units of the MLP.
    pub hidden: usize,
    /// `tanh` or `relu`.
    pub activation: Activation,
}

/// Linear or MLP.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ScorerKind {
    /// w·x + b.
    Linear,
    /// One hidden layer.
    Mlp,
}

impl ScorerConfig {
    /// The architecture this describes.
    pub fn architecture(&self) -> Architecture {
        match self.kind {
            ScorerKind::Linear => Architecture::Linear,
            ScorerKind::Mlp => Architecture::Mlp {
                hidden: self.hidden,
                activation: self.activation,
            },
        }
    }
}

impl Default for SearchConfig {
    fn default() -> Self {
        Self {
            task: Task::Search,
            seed: 42,
            threads: 0,
            method: Method::IrganPairwise,
            data: SearchDataConfig::default(),
            eval: SearchEvalConfig::default(),
            scorer: ScorerConfig::default(),
            baseline: BaselineConfig::default(),
            irgan: SearchIrganConfig::default(),
        }
    }
}

impl Default for SearchDataConfig {
    fn default() -> Self {
        Self {
            train: PathBuf::new(),
            validation: None,
            test: None,
            validation_fraction: 0.2,
            n_features: None,
        }
    }
}

impl Default for SearchEvalConfig {
    fn default() -> Self {
        Self {
            ks: vec![1, 3, 5, 10],
            select_metric: "NDCG@10".into(),
            every_epochs: 1,
            gate_alpha: 1.0,
        }
    }
}

impl Default for ScorerConfig {
    fn default() -> Self {
        Self {
            kind: ScorerKind::Mlp,
            hidden: 46,
            activation: Activation::Tanh,
        }
    }
}

impl SearchConfig {
    /// Reads `path`, applies `key=value` overrides in order, and validates.
    pub fn load(path: Option<&Path>, overrides: &[String]) -> Result<Self, ConfigError> {
        load_validated(path, overrides, Self::validate)
    }

    /// Checks ranges; the error names the offending key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        require(
            self.task == Task::Search,
            "task",
            "must be \"search\" in a search configuration",
        )?;
        let d = &self.data;
        require(
            !d.train.as_os_str().is_empty(),
            "data.train",
            "a training file is required",
        )?;
        check::fraction("data.validation_fraction", d.validation_fraction)?;
        check::at_least_one("data.n_features", d.n_features.unwrap_or(1))?;
        let e = &self.eval;
        check::cutoffs("eval.ks", &e.ks)?;
        check::at_least_one("eval.every_epochs", e.every_epochs)?;
        check::gate_alpha("eval.gate_alpha", e.gate_alpha)?;
        check::metric(
            "eval.select_metric",
            &e.select_metric,
            &["NDCG", "P"],
            &e.ks,
        )?;
        if self.scorer.kind == ScorerKind::Mlp {
            check::at_least_one("scorer.hidden", self.scorer.hidden)?;
        }
        let b = &self.baseline;
        require(
            b.lr.is_finite() && b.lr > 0.0 && b.l2.is_finite() && b.l2 >= 0.0,
            "baseline",
            "lr must be > 0 and l2 >= 0",
        )?;
        require(
            b.batch_queries > 0 && b.pairs_per_doc > 0,
            "baseline",
            "batch_queries and pairs_per_doc must be >= 1",
        )?;
        check::positive("baseline.dynamic_temperature", b.dynamic_temperature)?;
        let g = &self.irgan;
        check::positive("irgan.temperature", g.temperature)?;
        check::positive("irgan.samples_per_positive", g.samples_per_positive)?;
        check::fraction("irgan.mixture", g.mixture)?;
        check::non_negative("irgan.generated_weight", g.generated_weight)?;
        let lr_ok = |x: f32| x.is_finite() && x > 0.0;
        require(
            lr_ok(g.g_lr) && lr_ok(g.d_lr) && g.l2.is_finite() && g.l2 >= 0.0,
            "irgan",
            "g_lr and d_lr must be > 0 and l2 >= 0",
        )?;
        check::at_least_one("irgan.batch_queries", g.batch_queries)
    }
}

/// The `task` of a configuration file with its overrides (`recommendation` when absent), so the
/// command line can pick the right configuration type before parsing it.
pub fn task_of(path: Option<&Path>, overrides: &[String]) -> Result<Task, ConfigError> {
    #[derive(Deserialize)]
    struct Probe {
        #[serde(default)]
        task: Task,
    }
    let probe: Probe = load_document(toml::Table::new(), path, overrides.iter().cloned())?;
    Ok(probe.task)
}
