//! Typed training configuration: a TOML file, `--set key=value` overrides, validation.
//!
//! Every key has a documented default (see `Default` impls and `config/*.toml`). Unknown keys are
//! errors that name the key, so a typo never silently falls back to a default.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::data::loader::Format;
use crate::eval::Protocol;

pub use crate::data::synth::SyntheticConfig;
pub use crate::train::settings::{
    AlsConfig, AlsSolver, Baseline, BprConfig, CandidateMode, Init, IrganConfig, ModelConfig,
    OptimizerKind, PretrainConfig, Role, Served,
};

mod check;
mod load;
pub mod search;

use check::require;
pub(crate) use load::{apply_override, load_document, load_validated};

/// The top-level section of a training config that holds `irgan tune`'s search (its space and
/// schedule); `irgan train` ignores it, so a tuned file still trains as is.
pub const TUNE_SECTION: &str = "tune";

/// Why a configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The TOML is malformed or a key is unknown or mistyped.
    #[error("invalid config: {0}")]
    Parse(String),
    /// A `--set` override is malformed.
    #[error("invalid override `{0}`: expected key=value, e.g. irgan.epochs=3")]
    Override(String),
    /// A value is out of range.
    #[error("invalid value for `{key}`: {message}")]
    Invalid {
        /// Dotted key.
        key: String,
        /// What is wrong.
        message: String,
    },
}

/// The whole training configuration.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Seed of every random stream: same seed and config, same result.
    pub seed: u64,
    /// Worker threads for parallel steps (0 = all cores).
    pub threads: usize,
    /// Input data.
    pub data: DataConfig,
    /// Evaluation and model selection.
    pub eval: EvalConfig,
    /// The generator G.
    pub generator: ModelConfig,
    /// The discriminator D.
    pub discriminator: ModelConfig,
    /// Pretraining algorithms used by `init = "bpr" | "dns" | "apr" | "als" | "softmax"`.
    pub pretrain: PretrainConfig,
    /// The adversarial schedule.
    pub irgan: IrganConfig,
}

/// Input files and how to read them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DataConfig {
    /// Training interactions (empty = generate a synthetic data set, see `synthetic`).
    pub train: PathBuf,
    /// Test interactions, read once for the final report (optional).
    pub test: Option<PathBuf>,
    /// `ratings` (`user item [rating [timestamp]]`) or `adjacency` (`user item item ...`).
    pub format: Format,
    /// A rating at or above this is a positive.
    pub positive_threshold: f32,
    /// Fraction of each user's training positives held out for validation (model selection).
    pub validation_fraction: f64,
    /// Seed of the validation hold-out (default: `seed`). Set it to replay a game with another
    /// seed from a start saved by `--save-start`, which was pretrained beside its own split.
    pub split_seed: Option<u64>,
    /// Synthetic data used when `train` is empty.
    pub synthetic: SyntheticConfig,
}

/// Evaluation and selection.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct EvalConfig {
    /// `irgan` (exclude training positives) or `standard` (exclude every training interaction).
    pub protocol: Protocol,
    /// Cut-offs for P@k, NDCG@k, Recall@k, HitRate@k.
    pub ks: Vec<usize>,
    /// Validation metric that selects the model, e.g. `P@5`.
    pub select_metric: String,
    /// Which model's validation score selects the snapshot: `generator`, `discriminator` or
    /// `blend` (the pair's z-scored blend, the service's `model=blend`).
    pub select_model: Served,
    /// G's weight in the blend `select_model = "blend"` validates (D gets the rest), in [0, 1];
    /// serve the snapshot with the same `server.blend_weight`.
    pub blend_weight: f64,
    /// Validate every this many G-epochs (and after every outer epoch).
    pub every_g_epochs: usize,
    /// After selection, retrain the selected settings and schedule on all training data
    /// (validation included) before the test report and the snapshot.
    pub refit: bool,
    /// Significance gate on selection: the game's best checkpoint is served instead of the
    /// start only if a sign-flip test of the best of all checkpoints against the start (per
    /// validated user or query) gives p ≤ this. 1 turns the gate off.
    pub gate_alpha: f64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            seed: 42,
            threads: 0,
            data: DataConfig::default(),
            eval: EvalConfig::default(),
            generator: ModelConfig::default(),
            discriminator: ModelConfig {
                temperature: 1.0,
                l2: 0.1 / 16.0,
                ..ModelConfig::default()
            },
            pretrain: PretrainConfig::default(),
            irgan: IrganConfig::default(),
        }
    }
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            train: PathBuf::new(),
            test: None,
            format: Format::Ratings,
            positive_threshold: 4.0,
            validation_fraction: 0.1,
            split_seed: None,
            synthetic: SyntheticConfig::default(),
        }
    }
}

impl Default for EvalConfig {
    fn default() -> Self {
        Self {
            protocol: Protocol::Irgan,
            ks: vec![3, 5, 10],
            select_metric: "P@5".into(),
            select_model: Served::Generator,
            blend_weight: 0.5,
            every_g_epochs: 50,
            refit: false,
            gate_alpha: 1.0,
        }
    }
}

impl crate::train::init::InitSettings for Config {
    fn seed(&self) -> u64 {
        self.seed
    }

    fn pretraining(&self) -> &PretrainConfig {
        &self.pretrain
    }
}

impl Config {
    /// The seed of the validation hold-out: `data.split_seed`, or `seed` when unset.
    pub fn split_seed(&self) -> u64 {
        self.data.split_seed.unwrap_or(self.seed)
    }

    /// The settings a [`crate::train::irgan::Game`] plays with.
    pub fn game(&self) -> crate::train::irgan::GameSettings<'_> {
        crate::train::irgan::GameSettings {
            generator: &self.generator,
            discriminator: &self.discriminator,
            irgan: &self.irgan,
            als: &self.pretrain.als,
            seed: self.seed,
        }
    }

    /// Reads `path` (if given), applies `key=value` overrides in order, and validates.
    ///
    /// Relative data paths in a file are resolved against the current directory, as a user
    /// running the command expects. The file's [`TUNE_SECTION`] is skipped (it is read by
    /// [`Config::tune_section`]); an override of a `tune.*` key is an unknown key here.
    pub fn load(path: Option<&Path>, overrides: &[String]) -> Result<Self, ConfigError> {
        Self::from_document(Self::read_document(path)?, overrides)
    }

    /// A config file's TOML document (empty without a file), less its [`TUNE_SECTION`]: read
    /// once, it can be loaded with different overrides by [`Config::from_document`].
    pub fn read_document(path: Option<&Path>) -> Result<toml::Table, ConfigError> {
        let mut doc = match path {
            Some(p) => load::read_table(p)?,
            None => toml::Table::new(),
        };
        doc.remove(TUNE_SECTION);
        Ok(doc)
    }

    /// Applies `key=value` overrides in order to a document from [`Config::read_document`],
    /// deserialises and validates, as [`Config::load`] does with a file.
    pub fn from_document(doc: toml::Table, overrides: &[String]) -> Result<Self, ConfigError> {
        let cfg: Self = load_document(doc, None, overrides.iter().cloned())?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// The file's [`TUNE_SECTION`] (empty when absent) with `overrides` applied, each a whole
    /// key such as `tune.eta=2` (the same syntax as every other `--set`).
    pub fn tune_section(
        path: Option<&Path>,
        overrides: &[String],
    ) -> Result<toml::Table, ConfigError> {
        let mut doc = toml::Table::new();
        if let Some(p) = path
            && let Some(section) = load::read_table(p)?.remove(TUNE_SECTION)
        {
            doc.insert(TUNE_SECTION.into(), section);
        }
        for o in overrides {
            apply_override(&mut doc, o)?;
        }
        match doc.remove(TUNE_SECTION) {
            None => Ok(toml::Table::new()),
            Some(toml::Value::Table(t)) => Ok(t),
            Some(_) => Err(ConfigError::Invalid {
                key: TUNE_SECTION.into(),
                message: "must be a section ([tune])".into(),
            }),
        }
    }

    /// Checks ranges; the error names the offending key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let d = &self.data;
        check::fraction("data.validation_fraction", d.validation_fraction)?;
        require(
            d.positive_threshold.is_finite(),
            "data.positive_threshold",
            "must be finite",
        )?;
        let s = &d.synthetic;
        require(
            s.users > 0 && s.items >= 2 && s.clusters > 0 && s.per_user > 0,
            "data.synthetic",
            "users, clusters and per_user must be > 0 and items >= 2",
        )?;
        require(
            s.per_user < s.items,
            "data.synthetic.per_user",
            "must be below data.synthetic.items",
        )?;
        require(
            (0.0..=1.0).contains(&s.noise) && (0.0..1.0).contains(&s.test_fraction),
            "data.synthetic",
            "noise must be in [0, 1] and test_fraction in [0, 1)",
        )?;
        let e = &self.eval;
        check::cutoffs("eval.ks", &e.ks)?;
        check::at_least_one("eval.every_g_epochs", e.every_g_epochs)?;
        let families = ["P", "NDCG", "Recall", "HitRate"];
        check::metric("eval.select_metric", &e.select_metric, &families, &e.ks)?;
        check::gate_alpha("eval.gate_alpha", e.gate_alpha)?;
        require(
            (0.0..=1.0).contains(&e.blend_weight),
            "eval.blend_weight",
            "must be in [0, 1] (G's weight in the blend; D gets the rest)",
        )?;
        for (name, m) in [
            ("generator", &self.generator),
            ("discriminator", &self.discriminator),
        ] {
            let key = |k: &str| format!("{name}.{k}");
            check::at_least_one(&key("dim"), m.dim)?;
            check::positive(&key("lr"), m.lr.into())?;
            check::non_negative(&key("l2"), m.l2.into())?;
            check::positive(&key("temperature"), m.temperature)?;
            check::non_negative(&key("init_scale"), m.init_scale.into())?;
            require(
                m.init != Init::Factors || m.factors.is_some(),
                &key("factors"),
                "is required when init = \"factors\"",
            )?;
        }
        let b = &self.pretrain.bpr;
        require(
            b.lr.is_finite() && b.lr > 0.0 && b.dns_candidates > 0,
            "pretrain.bpr",
            "lr must be > 0 and dns_candidates >= 1",
        )?;
        let apr = &self.pretrain.apr;
        require(
            apr.eps.is_finite() && apr.eps >= 0.0 && apr.reg.is_finite() && apr.reg >= 0.0,
            "pretrain.apr",
            "eps and reg must be finite and >= 0",
        )?;
        let a = &self.pretrain.als;
        require(
            a.alpha.is_finite() && a.alpha >= 0.0 && a.l2.is_finite() && a.l2 > 0.0,
            "pretrain.als",
            "alpha must be >= 0 and l2 > 0",
        )?;
        check::at_least_one("pretrain.als.cg_steps", a.cg_steps)?;
        let sm = &self.pretrain.softmax;
        check::at_least_one("pretrain.softmax.batch", sm.batch)?;
        check::positive("pretrain.softmax.temperature", sm.temperature)?;
        check::positive("pretrain.softmax.lr", sm.lr.into())?;
        let g = &self.irgan;
        require(
            g.negative_refresh > 0 && g.d_batch > 0 && g.g_user_batch > 0,
            "irgan",
            "negative_refresh, d_batch and g_user_batch must be >= 1",
        )?;
        check::positive("irgan.d_temperature", g.d_temperature)?;
        check::positive("irgan.g_samples", g.g_samples)?;
        check::fraction("irgan.mixture", g.mixture)?;
        check::fraction("irgan.baseline_decay", g.baseline_decay)?;
        require(
            g.d_proximal.is_finite() && g.d_proximal >= 0.0,
            "irgan.d_proximal",
            "must be >= 0 (weight of the pull towards D's start; 0 = off)",
        )?;
        require(
            g.g_kl_start.is_finite() && g.g_kl_start >= 0.0,
            "irgan.g_kl_start",
            "must be >= 0 (weight of G's KL to its start; 0 = off)",
        )?;
        // The penalty needs G's policy over the whole catalogue, which a sampled game never has.
        require(
            g.g_kl_start == 0.0 || g.candidates == CandidateMode::Exhaustive,
            "irgan.g_kl_start",
            "needs irgan.candidates = \"exhaustive\" (the KL is over the whole catalogue)",
        )?;
        require(
            g.d_als_negative_weight.is_finite() && g.d_als_negative_weight >= 0.0,
            "irgan.d_als_negative_weight",
            "must be >= 0 (extra confidence of G's samples as D's iALS negatives)",
        )?;
        require(
            g.d_als_sweeps == 0 || g.candidates == CandidateMode::Exhaustive,
            "irgan.d_als_sweeps",
            "needs irgan.candidates = \"exhaustive\" (G's probabilities over the catalogue)",
        )?;
        check::sampled_game(g)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_round_trip() {
        let c = Config::default();
        c.validate().unwrap();
        let text = toml::to_string(&c).unwrap();
        let back: Config = toml::from_str(&text).unwrap();
        assert_eq!(c, back);
    }

    #[test]
    fn overrides_apply_in_order() {
        let c = Config::load(
            None,
            &[
                "irgan.epochs=3".into(),
                "generator.init=\"als\"".into(),
                "discriminator.optimizer=adam".into(),
                "eval.ks=[1, 5]".into(),
                "irgan.epochs=4".into(),
            ],
        )
        .unwrap();
        assert_eq!(c.irgan.epochs, 4);
        assert_eq!(c.generator.init, Init::Als);
        assert_eq!(c.discriminator.optimizer, OptimizerKind::Adam);
        assert_eq!(c.eval.ks, vec![1, 5]);
    }

    #[test]
    fn errors_name_the_key() {
        let e = Config::load(None, &["irgan.epochz=3".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("epochz"), "{e}");
        let e = Config::load(None, &["irgan.mixture=1.5".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("irgan.mixture"), "{e}");
        let e = Config::load(None, &["generator.init=factors".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("generator.factors"), "{e}");
        let e = Config::load(None, &["eval.select_metric=P@7".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("eval.select_metric"), "{e}");
        assert!(Config::load(None, &["novalue".into()]).is_err());
        assert!(Config::load(None, &["seed.x=1".into()]).is_err());
    }

    #[test]
    fn sampled_game_keys_parse_and_validate() {
        let c = Config::load(
            None,
            &[
                "irgan.candidates=sampled".into(),
                "irgan.sampled_candidates=512".into(),
                "irgan.proposal_uniform=1.0".into(),
            ],
        )
        .unwrap();
        assert_eq!(c.irgan.candidates, CandidateMode::Sampled);
        assert_eq!(c.irgan.sampled_candidates, 512);
        // auto: exhaustive on ML-100k's 1,683 items, sampled on Gowalla's 40,981.
        let auto = Config::default().irgan.candidates;
        assert!(!auto.is_sampled(1683) && auto.is_sampled(40_981));
        for (set, key) in [
            ("irgan.candidates=all", "candidates"),
            ("irgan.sampled_candidates=0", "irgan.sampled_candidates"),
            ("irgan.d_resample_pool=0", "irgan.d_resample_pool"),
            (
                "irgan.proposal_popularity=-1.0",
                "irgan.proposal_popularity",
            ),
            ("irgan.proposal_uniform=1.5", "irgan.proposal_uniform"),
            ("irgan.d_skip_top=5", "irgan.d_skip_top"),
            ("irgan.g_kl_start=-1.0", "irgan.g_kl_start"),
            ("irgan.g_kl_start=1.0", "irgan.g_kl_start"),
            ("irgan.d_als_sweeps=2", "irgan.d_als_sweeps"),
            (
                "irgan.d_als_negative_weight=-1.0",
                "irgan.d_als_negative_weight",
            ),
        ] {
            let e = Config::load(None, &[set.into()]).unwrap_err().to_string();
            assert!(e.contains(key), "{set}: {e}");
        }
    }
}
