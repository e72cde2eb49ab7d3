//! Everything a search is decided on before the clock starts: the base config, the `[tune]`
//! section, the space, the rungs, and a check that every key and value the search can set is
//! accepted by the configuration loader (so a typo fails at once, not after the budget).

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::config::{Config, ConfigError};
use crate::pipeline::recommend::load_validation_data;
use crate::pipeline::tune::TuneError;
use crate::pipeline::tune::defaults::default_space;
use crate::pipeline::tune::halving::rungs;
use crate::pipeline::tune::space::{Settings, Space, overrides};

/// The `[tune]` section of a training config (`irgan train` ignores it).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct TuneSection {
    /// Keep the top `1/eta` of each rung.
    eta: usize,
    /// Integer config key the rungs scale ("" = no halving, plain random search).
    resource: String,
    /// Resource of the lowest rung.
    min_resource: usize,
    /// Resource of the highest rung (default: the config's own value).
    max_resource: Option<usize>,
    /// Stop after this many new trials (default: when the budget runs out).
    max_trials: Option<u64>,
    /// The search space (default: [`default_space`]).
    space: Option<toml::Table>,
}

impl Default for TuneSection {
    fn default() -> Self {
        Self {
            eta: 3,
            resource: "irgan.epochs".into(),
            min_resource: 1,
            max_resource: None,
            max_trials: None,
            space: None,
        }
    }
}

/// How the rungs are run: the resource key and its value on each rung.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    /// The config key the rungs scale (`None`: one rung, the config as it is).
    pub resource: Option<String>,
    /// Its value on each rung, smallest first.
    pub values: Vec<usize>,
    /// Keep the top `1/eta` of each rung.
    pub eta: usize,
}

impl Schedule {
    /// How many rungs.
    pub fn rungs(&self) -> usize {
        self.values.len().max(1)
    }

    /// The resource override of a rung, if any.
    pub fn setting(&self, rung: usize) -> Option<(String, toml::Value)> {
        let key = self.resource.as_ref()?;
        let value = *self.values.get(rung)?;
        Some((key.clone(), toml::Value::Integer(value as i64)))
    }
}

/// A checked search plan.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The config file.
    pub config_path: Option<PathBuf>,
    /// Its document, read once (without the `[tune]` section): trials load from this, so an
    /// edit of the file during a search changes nothing.
    document: toml::Table,
    /// `--set` overrides of config keys (applied to every trial, before its settings).
    pub overrides: Vec<String>,
    /// The config with those overrides: what trials start from.
    pub base: Config,
    /// The search space.
    pub space: Space,
    /// Whether the space is [`default_space`] (the config declared none).
    pub default_space: bool,
    /// The rungs.
    pub schedule: Schedule,
    /// Most new trials (`None`: as many as the budget allows).
    pub max_trials: Option<u64>,
    /// Seed of the sampler.
    pub seed: u64,
    /// Users, items and validation positives of the data (a check that it loads).
    pub data_sizes: (usize, usize, usize),
}

impl Plan {
    /// Reads and checks everything: the config (`tune.*` overrides go to the `[tune]` section,
    /// the others to the config), the space, the rungs, and that the training data loads.
    /// `seed` defaults to the config's seed.
    pub fn prepare(
        config_path: Option<&Path>,
        all_overrides: &[String],
        seed: Option<u64>,
    ) -> Result<Self, TuneError> {
        let (tune_sets, overrides): (Vec<String>, Vec<String>) = all_overrides
            .iter()
            .cloned()
            .partition(|o| o.trim_start().starts_with("tune."));
        let document = Config::read_document(config_path)?;
        let base = Config::from_document(document.clone(), &overrides)?;
        let section: TuneSection =
            toml::Value::Table(Config::tune_section(config_path, &tune_sets)?)
                .try_into()
                .map_err(|e: toml::de::Error| TuneError::Section(e.to_string()))?;
        if section.eta < 2 {
            return Err(TuneError::Section("tune.eta must be >= 2".into()));
        }
        let (space, default_space) = match &section.space {
            Some(t) => (Space::parse(t)?, false),
            None => (default_space(&base), true),
        };
        if space.dimensions.is_empty() {
            return Err(TuneError::Section(
                "tune.space is empty: nothing to search".into(),
            ));
        }
        let schedule = schedule(&section, &base, &space)?;
        let mut plan = Self {
            config_path: config_path.map(Path::to_path_buf),
            document,
            overrides,
            base,
            space,
            default_space,
            schedule,
            max_trials: section.max_trials,
            seed: seed.unwrap_or(0),
            data_sizes: (0, 0, 0),
        };
        plan.seed = seed.unwrap_or(plan.base.seed);
        plan.check_values()?;
        let data = load_validation_data(&plan.base)?;
        plan.data_sizes = (data.users.len(), data.items.len(), data.validation.nnz());
        Ok(plan)
    }

    /// Trial `trial`'s own settings: trial 1 is the config as it is (nothing set), so a search
    /// never reports worse than its starting point; the others are drawn from the space.
    pub fn settings_of(&self, trial: u64) -> Settings {
        if trial == 1 {
            Settings::new()
        } else {
            self.space.sample(self.seed, trial)
        }
    }

    /// Every override a trial with `settings` on `rung` runs with, in order: the command
    /// line's, the resource's, the trial's.
    pub fn overrides_for(&self, settings: &Settings, rung: usize) -> Vec<String> {
        let mut all = self.overrides.clone();
        all.extend(overrides(&self.trial_settings(settings, rung)));
        all
    }

    /// A trial's own settings with the rung's resource first.
    pub fn trial_settings(&self, settings: &Settings, rung: usize) -> Settings {
        self.schedule
            .setting(rung)
            .into_iter()
            .chain(settings.iter().cloned())
            .collect()
    }

    /// The config of a trial with `settings` on `rung`, read like `irgan train` reads it.
    pub fn config_for(&self, settings: &Settings, rung: usize) -> Result<Config, ConfigError> {
        Config::from_document(self.document.clone(), &self.overrides_for(settings, rung))
    }

    /// Loads the config with each end of every range, each choice and each rung's resource,
    /// one at a time: an unknown key or a value out of range fails here, naming the key.
    fn check_values(&self) -> Result<(), TuneError> {
        for d in &self.space.dimensions {
            for v in d.distribution.probes() {
                self.config_for(&vec![(d.key.clone(), v.clone())], 0)
                    .map_err(|e| TuneError::Value {
                        key: d.key.clone(),
                        value: v.to_string(),
                        source: e,
                    })?;
            }
        }
        for rung in 0..self.schedule.rungs() {
            if let Some((key, v)) = self.schedule.setting(rung) {
                self.config_for(&Vec::new(), rung)
                    .map_err(|e| TuneError::Value {
                        key,
                        value: v.to_string(),
                        source: e,
                    })?;
            }
        }
        Ok(())
    }
}

/// The rungs of `section` for `base`: the resource's largest value defaults to the config's.
fn schedule(section: &TuneSection, base: &Config, space: &Space) -> Result<Schedule, TuneError> {
    let key = section.resource.trim();
    if key.is_empty() {
        return Ok(Schedule {
            resource: None,
            values: Vec::new(),
            eta: section.eta,
        });
    }
    if space.contains(key) {
        return Err(TuneError::Section(format!(
            "tune.resource `{key}` is also in tune.space; the rungs set it, so drop one of them"
        )));
    }
    let max = match section.max_resource {
        Some(m) => m,
        None => integer_at(base, key).ok_or_else(|| {
            TuneError::Section(format!(
                "tune.resource `{key}` is not an integer key of the config; name one such as \
                 irgan.epochs or pretrain.als.iterations, or set tune.resource = \"\""
            ))
        })?,
    };
    if section.min_resource < 1 || section.min_resource > max {
        return Err(TuneError::Section(format!(
            "tune.min_resource must be in 1..={max} (the largest {key})"
        )));
    }
    Ok(Schedule {
        resource: Some(key.to_string()),
        values: rungs(section.min_resource, max, section.eta),
        eta: section.eta,
    })
}

/// The non-negative integer at dotted `key` of `cfg`, if there is one.
fn integer_at(cfg: &Config, key: &str) -> Option<usize> {
    let doc = toml::Value::try_from(cfg).ok()?;
    let mut v = &doc;
    for part in key.split('.') {
        v = v.get(part)?;
    }
    v.as_integer().and_then(|i| usize::try_from(i).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan_from(text: &str, sets: &[&str]) -> Result<Plan, TuneError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, text).unwrap();
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        Plan::prepare(Some(&path), &sets, None)
    }

    const TINY: &str = "[data.synthetic]\nusers = 30\nitems = 20\nper_user = 5\n\
                        [irgan]\nepochs = 9\n";

    #[test]
    fn the_section_sets_space_rungs_and_seed() {
        let p = plan_from(
            &format!("{TINY}[tune]\neta = 3\n[tune.space]\n\"generator.lr\" = {{ log_uniform = [1e-3, 1e-1] }}\n"),
            &["seed=7", "tune.min_resource=1"],
        )
        .unwrap();
        assert_eq!(p.schedule.values, [1, 3, 9]);
        assert_eq!(p.seed, 7);
        assert!(!p.default_space);
        assert_eq!(p.space.dimensions.len(), 1);
        let s = vec![("generator.lr".to_string(), toml::Value::Float(0.01))];
        let c = p.config_for(&s, 0).unwrap();
        assert_eq!((c.irgan.epochs, c.generator.lr), (1, 0.01));
        assert_eq!(p.config_for(&s, 2).unwrap().irgan.epochs, 9);
    }

    #[test]
    fn without_a_section_the_default_space_is_used() {
        let p = plan_from(TINY, &[]).unwrap();
        assert!(p.default_space && p.space.contains("generator.lr"));
        let p = plan_from(TINY, &["tune.resource=\"\""]).unwrap();
        assert_eq!(p.schedule.rungs(), 1);
    }

    #[test]
    fn bad_keys_and_values_fail_before_any_trial() {
        let space = |entry: &str| format!("{TINY}[tune.space]\n{entry}\n");
        for (text, needles) in [
            (
                space("\"generator.lrr\" = { uniform = [0.1, 0.2] }"),
                vec!["generator.lrr", "lrr"],
            ),
            (
                space("\"irgan.mixture\" = { uniform = [0.5, 1.5] }"),
                vec!["irgan.mixture", "1.5"],
            ),
            (
                space("\"generator.dim\" = { uniform = [4, 8] }"),
                vec!["generator.dim"],
            ),
            (
                space("\"generator.dim\" = { choice = [8, 0] }"),
                vec!["generator.dim", "0"],
            ),
            (
                space("\"irgan.epochs\" = { int = [1, 3] }"),
                vec!["irgan.epochs", "tune.resource"],
            ),
            (format!("{TINY}[tune]\netaa = 2\n"), vec!["etaa"]),
            (
                format!("{TINY}[tune]\nresource = \"generator.lr\"\n"),
                vec!["generator.lr"],
            ),
            (format!("{TINY}[tune]\neta = 1\n"), vec!["tune.eta"]),
        ] {
            let e = plan_from(&text, &[]).unwrap_err().to_string();
            for n in needles {
                assert!(e.contains(n), "{text}: {e}");
            }
        }
    }

    #[test]
    fn the_test_file_is_never_opened() {
        let dir = tempfile::tempdir().unwrap();
        let train = dir.path().join("train.txt");
        std::fs::write(&train, "1 1 5\n1 2 5\n2 1 5\n2 3 4\n3 2 5\n3 3 5\n").unwrap();
        for test in [dir.path().join("missing.txt"), dir.path().to_path_buf()] {
            let sets = [
                format!("data.train=\"{}\"", train.display()),
                format!("data.test=\"{}\"", test.display()),
            ];
            let p = Plan::prepare(None, &sets, None).unwrap();
            assert_eq!(p.data_sizes.0, 3);
            assert!(p.base.data.test.is_some());
        }
    }
}
