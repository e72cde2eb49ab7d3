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
    AlsConfig, Baseline, BprConfig, Init, IrganConfig, ModelConfig, OptimizerKind, PretrainConfig,
    Role,
};

pub mod search;

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
    /// Pretraining algorithms used by `init = "bpr" | "dns" | "als"`.
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
    /// Which model's validation score selects the snapshot: `generator` or `discriminator`.
    pub select_model: Role,
    /// Validate every this many G-epochs (and after every outer epoch).
    pub every_g_epochs: usize,
    /// After selection, retrain the selected settings and schedule on all training data
    /// (validation included) before the test report and the snapshot.
    pub refit: bool,
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
            select_model: Role::Generator,
            every_g_epochs: 50,
            refit: false,
        }
    }
}

impl Config {
    /// The settings a [`crate::train::irgan::Game`] plays with.
    pub fn game(&self) -> crate::train::irgan::GameSettings<'_> {
        crate::train::irgan::GameSettings {
            generator: &self.generator,
            discriminator: &self.discriminator,
            irgan: &self.irgan,
            seed: self.seed,
        }
    }

    /// Reads `path` (if given), applies `key=value` overrides in order, and validates.
    ///
    /// Relative data paths in a file are resolved against the current directory, as a user
    /// running the command expects.
    pub fn load(path: Option<&Path>, overrides: &[String]) -> Result<Self, ConfigError> {
        let cfg: Config = load_document(toml::Table::new(), path, overrides.iter().cloned())?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks ranges; the error names the offending key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, message: &str| {
            Err(ConfigError::Invalid {
                key: key.into(),
                message: message.into(),
            })
        };
        let d = &self.data;
        if !(0.0..1.0).contains(&d.validation_fraction) {
            return bad("data.validation_fraction", "must be in [0, 1)");
        }
        if !d.positive_threshold.is_finite() {
            return bad("data.positive_threshold", "must be finite");
        }
        let s = &d.synthetic;
        if s.users == 0 || s.items < 2 || s.clusters == 0 || s.per_user == 0 {
            return bad(
                "data.synthetic",
                "users, clusters and per_user must be > 0 and items >= 2",
            );
        }
        if s.per_user >= s.items {
            return bad(
                "data.synthetic.per_user",
                "must be below data.synthetic.items",
            );
        }
        if !(0.0..=1.0).contains(&s.noise) || !(0.0..1.0).contains(&s.test_fraction) {
            return bad(
                "data.synthetic",
                "noise must be in [0, 1] and test_fraction in [0, 1)",
            );
        }
        if self.eval.ks.is_empty() || self.eval.ks.contains(&0) {
            return bad("eval.ks", "needs at least one cut-off, each >= 1");
        }
        if self.eval.every_g_epochs == 0 {
            return bad("eval.every_g_epochs", "must be >= 1");
        }
        let known = self
            .eval
            .ks
            .iter()
            .flat_map(|k| ["P", "NDCG", "Recall", "HitRate"].map(move |m| format!("{m}@{k}")));
        let mut names: Vec<String> = known.collect();
        names.extend(["MAP".to_string(), "MRR".to_string()]);
        if !names.contains(&self.eval.select_metric) {
            return bad(
                "eval.select_metric",
                &format!("unknown metric; choose one of {}", names.join(", ")),
            );
        }
        for (name, m) in [
            ("generator", &self.generator),
            ("discriminator", &self.discriminator),
        ] {
            let key = |k: &str| format!("{name}.{k}");
            if m.dim == 0 {
                return bad(&key("dim"), "must be >= 1");
            }
            if !(m.lr.is_finite() && m.lr > 0.0) {
                return bad(&key("lr"), "must be > 0");
            }
            if !(m.l2.is_finite() && m.l2 >= 0.0) {
                return bad(&key("l2"), "must be >= 0");
            }
            if !(m.temperature.is_finite() && m.temperature > 0.0) {
                return bad(&key("temperature"), "must be > 0");
            }
            if !(m.init_scale.is_finite() && m.init_scale >= 0.0) {
                return bad(&key("init_scale"), "must be >= 0");
            }
            if m.init == Init::Factors && m.factors.is_none() {
                return bad(&key("factors"), "is required when init = \"factors\"");
            }
        }
        let b = &self.pretrain.bpr;
        if !(b.lr.is_finite() && b.lr > 0.0) || b.dns_candidates == 0 {
            return bad("pretrain.bpr", "lr must be > 0 and dns_candidates >= 1");
        }
        let a = &self.pretrain.als;
        if !(a.alpha.is_finite() && a.alpha >= 0.0 && a.l2.is_finite() && a.l2 > 0.0) {
            return bad("pretrain.als", "alpha must be >= 0 and l2 > 0");
        }
        let g = &self.irgan;
        if g.negative_refresh == 0 || g.d_batch == 0 || g.g_user_batch == 0 {
            return bad(
                "irgan",
                "negative_refresh, d_batch and g_user_batch must be >= 1",
            );
        }
        if !(g.d_temperature.is_finite() && g.d_temperature > 0.0) {
            return bad("irgan.d_temperature", "must be > 0");
        }
        if !(g.g_samples.is_finite() && g.g_samples > 0.0) {
            return bad("irgan.g_samples", "must be > 0");
        }
        if !(0.0..1.0).contains(&g.mixture) {
            return bad("irgan.mixture", "must be in [0, 1)");
        }
        if !(0.0..1.0).contains(&g.baseline_decay) {
            return bad("irgan.baseline_decay", "must be in [0, 1)");
        }
        Ok(())
    }
}

/// Reads a TOML file (or starts empty), applies `key=value` overrides in order, and
/// deserialises the result; unknown keys and bad values are errors naming the key.
///
/// `base` holds the defaults the file and overrides are layered on (needed where a nested
/// section's defaults differ from its type's own, as in the service's `training` section).
pub(crate) fn load_document<T: serde::de::DeserializeOwned>(
    base: toml::Table,
    path: Option<&Path>,
    overrides: impl IntoIterator<Item = String>,
) -> Result<T, ConfigError> {
    let mut doc = base;
    if let Some(p) = path {
        let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Io {
            path: p.to_owned(),
            source,
        })?;
        let file = text
            .parse::<toml::Table>()
            .map_err(|e| ConfigError::Parse(format!("{}: {e}", p.display())))?;
        merge(&mut doc, file);
    }
    for o in overrides {
        apply_override(&mut doc, &o)?;
    }
    toml::Value::Table(doc)
        .try_into()
        .map_err(|e: toml::de::Error| ConfigError::Parse(e.to_string()))
}

/// Deep-merges `top` into `base`: tables merge key by key, other values replace.
fn merge(base: &mut toml::Table, top: toml::Table) {
    for (k, v) in top {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(t)) => merge(b, t),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

/// Sets `a.b.c = value` in a TOML table; the value is parsed as TOML (number, bool, array,
/// quoted string) and falls back to a bare string.
fn apply_override(doc: &mut toml::Table, item: &str) -> Result<(), ConfigError> {
    let (key, raw) = item
        .split_once('=')
        .ok_or_else(|| ConfigError::Override(item.into()))?;
    let key = key.trim();
    let parts: Vec<&str> = key.split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(ConfigError::Override(item.into()));
    }
    let value = format!("v = {}", raw.trim())
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.trim().to_string()));
    let mut table = doc;
    for p in &parts[..parts.len() - 1] {
        let entry = table
            .entry(p.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        table = entry.as_table_mut().ok_or_else(|| ConfigError::Invalid {
            key: key.into(),
            message: format!("`{p}` is not a section"),
        })?;
    }
    table.insert(parts[parts.len() - 1].to_string(), value);
    Ok(())
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
}
