//! The search space of `irgan tune`: dotted config keys, each with a distribution, read from
//! `[tune.space]`, sampled from seeded streams, and applied as `--set key=value` overrides.
//!
//! ```toml
//! [tune.space]
//! "pretrain.als.alpha" = { log_uniform = [1.0, 50.0] }
//! "generator.dim" = { choice = [32, 64, 128] }
//! "irgan.d_temperature" = { uniform = [0.2, 2.0] }
//! "pretrain.als.iterations" = { int = [5, 25] }
//! ```
//!
//! A key may also be written as nested tables (`[tune.space.generator] lr = {…}`). Nothing
//! here knows which keys exist: the configuration loader judges every key and value.

use serde_json::{Value, json};

use crate::rng::{self, Rng};

/// Random stream tag of the sampler (trial `n` draws from index `n`).
const SAMPLER_STREAM: u64 = 0x7475_6e65; // "tune"

/// Significant digits kept of a drawn real number: short `--set` values that reproduce exactly.
const SIGNIFICANT_DIGITS: usize = 4;

/// How one key's values are drawn.
#[derive(Debug, Clone, PartialEq)]
pub enum Distribution {
    /// A real number uniform in `[lo, hi]`.
    Uniform(f64, f64),
    /// A real number whose logarithm is uniform in `[ln lo, ln hi]` (`0 < lo`).
    LogUniform(f64, f64),
    /// An integer uniform in `lo..=hi`.
    Int(i64, i64),
    /// One of the values (any TOML value), equally likely.
    Choice(Vec<toml::Value>),
}

/// One key of the space.
#[derive(Debug, Clone, PartialEq)]
pub struct Dimension {
    /// Dotted config key, e.g. `generator.lr`.
    pub key: String,
    /// Its distribution.
    pub distribution: Distribution,
}

/// Keys and the values one trial gives them, in the space's order.
pub type Settings = Vec<(String, toml::Value)>;

/// A search space: the keys a search varies.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Space {
    /// The keys, sorted.
    pub dimensions: Vec<Dimension>,
}

/// A malformed space entry.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("tune.space.\"{key}\": {message}")]
pub struct SpaceError {
    /// The dotted key.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

const KINDS: [&str; 4] = ["uniform", "log_uniform", "int", "choice"];

impl Space {
    /// Reads a `[tune.space]` table.
    pub fn parse(table: &toml::Table) -> Result<Self, SpaceError> {
        let mut dimensions = Vec::new();
        collect("", table, &mut dimensions)?;
        dimensions.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(Self { dimensions })
    }

    /// Adds (or replaces) one key.
    pub fn with(mut self, key: &str, distribution: Distribution) -> Self {
        self.dimensions.retain(|d| d.key != key);
        self.dimensions.push(Dimension {
            key: key.into(),
            distribution,
        });
        self.dimensions.sort_by(|a, b| a.key.cmp(&b.key));
        self
    }

    /// Whether `key` is one of the space's keys.
    pub fn contains(&self, key: &str) -> bool {
        self.dimensions.iter().any(|d| d.key == key)
    }

    /// Trial `trial`'s settings: a pure function of `(seed, trial)`, so a trial draws the same
    /// values whatever ran before it.
    pub fn sample(&self, seed: u64, trial: u64) -> Settings {
        let mut rng = rng::stream(seed, SAMPLER_STREAM, trial);
        self.dimensions
            .iter()
            .map(|d| (d.key.clone(), d.distribution.draw(&mut rng)))
            .collect()
    }

    /// The space as JSON, in the file's notation.
    pub fn to_json(&self) -> Value {
        let map: serde_json::Map<String, Value> = self
            .dimensions
            .iter()
            .map(|d| (d.key.clone(), d.distribution.to_json()))
            .collect();
        Value::Object(map)
    }
}

/// Walks nested tables down to the distributions, building dotted keys.
fn collect(prefix: &str, table: &toml::Table, out: &mut Vec<Dimension>) -> Result<(), SpaceError> {
    for (name, value) in table {
        let key = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        let err = |message: String| SpaceError {
            key: key.clone(),
            message,
        };
        let toml::Value::Table(inner) = value else {
            return Err(err(format!(
                "expected a distribution such as {{ log_uniform = [0.001, 0.1] }}, found `{value}`"
            )));
        };
        if inner.keys().any(|k| KINDS.contains(&k.as_str())) {
            let distribution = Distribution::parse(inner).map_err(err)?;
            out.push(Dimension { key, distribution });
        } else if inner.values().all(toml::Value::is_table) && !inner.is_empty() {
            collect(&key, inner, out)?;
        } else {
            return Err(err(format!(
                "unknown distribution {}; use one of {}",
                inner
                    .keys()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
                KINDS.join(", ")
            )));
        }
    }
    Ok(())
}

impl Distribution {
    /// Reads `{ kind = [...] }`.
    fn parse(spec: &toml::Table) -> Result<Self, String> {
        let mut entries = spec.iter();
        let (Some((kind, args)), None) = (entries.next(), entries.next()) else {
            return Err(format!(
                "give exactly one distribution ({}), found {} keys",
                KINDS.join(", "),
                spec.len()
            ));
        };
        let list = args
            .as_array()
            .ok_or_else(|| format!("`{kind}` takes a list, found `{args}`"))?;
        let pair = |what: &str| -> Result<(f64, f64), String> {
            let nums: Option<Vec<f64>> = list
                .iter()
                .map(|v| v.as_float().or_else(|| v.as_integer().map(|i| i as f64)))
                .collect();
            match nums.as_deref() {
                Some(&[lo, hi]) if lo.is_finite() && hi.is_finite() && lo <= hi => Ok((lo, hi)),
                _ => Err(format!("`{kind}` takes [low, high] with low <= high{what}")),
            }
        };
        match kind.as_str() {
            "uniform" => pair("").map(|(lo, hi)| Distribution::Uniform(lo, hi)),
            "log_uniform" => match pair(" and low > 0")? {
                (lo, hi) if lo > 0.0 => Ok(Distribution::LogUniform(lo, hi)),
                _ => Err("`log_uniform` takes [low, high] with low <= high and low > 0".into()),
            },
            "int" => match list.as_slice() {
                [toml::Value::Integer(lo), toml::Value::Integer(hi)] if lo <= hi => {
                    Ok(Distribution::Int(*lo, *hi))
                }
                _ => Err("`int` takes [low, high]: two integers with low <= high".into()),
            },
            "choice" if !list.is_empty() => Ok(Distribution::Choice(list.clone())),
            "choice" => Err("`choice` needs at least one value".into()),
            other => Err(format!(
                "unknown distribution `{other}`; use one of {}",
                KINDS.join(", ")
            )),
        }
    }

    /// One value.
    fn draw(&self, rng: &mut Rng) -> toml::Value {
        match self {
            Distribution::Uniform(lo, hi) => real(lo + rng::unit(rng) * (hi - lo), *lo, *hi),
            Distribution::LogUniform(lo, hi) => {
                let (a, b) = (lo.ln(), hi.ln());
                real((a + rng::unit(rng) * (b - a)).exp(), *lo, *hi)
            }
            Distribution::Int(lo, hi) => {
                let span = hi.abs_diff(*lo).saturating_add(1);
                let k = ((rng::unit(rng) * span as f64) as u64).min(span - 1);
                toml::Value::Integer(lo.saturating_add_unsigned(k))
            }
            Distribution::Choice(values) => values[rng::below(rng, values.len())].clone(),
        }
    }

    /// The values checked before a search starts: both ends of a range, every choice.
    pub fn probes(&self) -> Vec<toml::Value> {
        match self {
            Distribution::Uniform(lo, hi) | Distribution::LogUniform(lo, hi) => {
                vec![toml::Value::Float(*lo), toml::Value::Float(*hi)]
            }
            Distribution::Int(lo, hi) => vec![toml::Value::Integer(*lo), toml::Value::Integer(*hi)],
            Distribution::Choice(values) => values.clone(),
        }
    }

    /// `{"log_uniform": [lo, hi]}` and so on.
    pub fn to_json(&self) -> Value {
        match self {
            Distribution::Uniform(lo, hi) => json!({ "uniform": [lo, hi] }),
            Distribution::LogUniform(lo, hi) => json!({ "log_uniform": [lo, hi] }),
            Distribution::Int(lo, hi) => json!({ "int": [lo, hi] }),
            Distribution::Choice(values) => json!({ "choice": values }),
        }
    }
}

/// A drawn real number, rounded to [`SIGNIFICANT_DIGITS`] and kept inside `[lo, hi]`.
fn real(x: f64, lo: f64, hi: f64) -> toml::Value {
    let rounded = format!("{:.*e}", SIGNIFICANT_DIGITS - 1, x)
        .parse::<f64>()
        .unwrap_or(x);
    toml::Value::Float(rounded.clamp(lo, hi))
}

/// `key=value` overrides, in the syntax of `--set`.
pub fn overrides(settings: &Settings) -> Vec<String> {
    settings.iter().map(|(k, v)| format!("{k}={v}")).collect()
}

/// Settings as a JSON object.
pub fn settings_json(settings: &Settings) -> Value {
    let map: serde_json::Map<String, Value> = settings
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::to_value(v).unwrap_or(Value::Null)))
        .collect();
    Value::Object(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn space(text: &str) -> Result<Space, SpaceError> {
        Space::parse(&text.parse::<toml::Table>().unwrap())
    }

    #[test]
    fn parses_every_kind_and_nested_keys() {
        let s = space(
            r#"
            "pretrain.als.alpha" = { log_uniform = [1.0, 50.0] }
            "generator.dim" = { choice = [32, 64, 128] }
            "irgan.d_temperature" = { uniform = [0.2, 2] }
            "pretrain.als.iterations" = { int = [5, 25] }
            [discriminator]
            lr = { log_uniform = [1e-4, 1e-1] }
            "#,
        )
        .unwrap();
        let keys: Vec<&str> = s.dimensions.iter().map(|d| d.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "discriminator.lr",
                "generator.dim",
                "irgan.d_temperature",
                "pretrain.als.alpha",
                "pretrain.als.iterations"
            ]
        );
        assert_eq!(
            s.dimensions[2].distribution,
            Distribution::Uniform(0.2, 2.0)
        );
        assert_eq!(s.dimensions[4].distribution, Distribution::Int(5, 25));
    }

    #[test]
    fn malformed_entries_name_the_key() {
        for (text, needle) in [
            (r#""g.lr" = 0.1"#, "expected a distribution"),
            (
                r#""g.lr" = { loguniform = [1, 2] }"#,
                "unknown distribution `loguniform`",
            ),
            (r#""g.lr" = { uniform = [2, 1] }"#, "low <= high"),
            (r#""g.lr" = { uniform = [1] }"#, "[low, high]"),
            (r#""g.lr" = { log_uniform = [0, 1] }"#, "low > 0"),
            (r#""g.lr" = { int = [1.5, 3] }"#, "two integers"),
            (r#""g.lr" = { choice = [] }"#, "at least one"),
            (
                r#""g.lr" = { uniform = [1, 2], int = [1, 2] }"#,
                "exactly one",
            ),
            (r#""g.lr" = { choice = 3 }"#, "takes a list"),
        ] {
            let e = space(text).unwrap_err().to_string();
            assert!(e.contains("tune.space.\"g.lr\""), "{text}: {e}");
            assert!(e.contains(needle), "{text}: {e}");
        }
    }

    #[test]
    fn samples_are_reproducible_per_trial_and_in_range() {
        let s = space(
            r#"
            a = { log_uniform = [1e-4, 1e-1] }
            b = { uniform = [-1.0, 1.0] }
            c = { int = [3, 5] }
            d = { choice = ["als", "bpr", "random"] }
            "#,
        )
        .unwrap();
        assert_eq!(s.sample(7, 3), s.sample(7, 3));
        assert_ne!(s.sample(7, 3), s.sample(7, 4));
        assert_ne!(s.sample(7, 3), s.sample(8, 3));
        let mut ints = std::collections::BTreeSet::new();
        for t in 0..300 {
            let v = s.sample(1, t);
            let a = v[0].1.as_float().unwrap();
            let b = v[1].1.as_float().unwrap();
            assert!(
                (1e-4..=1e-1).contains(&a) && (-1.0..=1.0).contains(&b),
                "{v:?}"
            );
            ints.insert(v[2].1.as_integer().unwrap());
            assert!(["als", "bpr", "random"].contains(&v[3].1.as_str().unwrap()));
        }
        assert_eq!(ints.into_iter().collect::<Vec<_>>(), [3, 4, 5]);
    }

    #[test]
    fn log_uniform_spreads_over_decades() {
        let s = Space::default().with("x", Distribution::LogUniform(1e-4, 1.0));
        let below_1e2 = (0..2000)
            .filter(|&t| s.sample(5, t)[0].1.as_float().unwrap() < 1e-2)
            .count();
        // Half the mass lies below the geometric midpoint 1e-2.
        assert!((850..1150).contains(&below_1e2), "{below_1e2}");
    }

    #[test]
    fn drawn_reals_are_short_and_overrides_parse_back() {
        let s = Space::default().with("generator.lr", Distribution::LogUniform(1e-4, 1e-1));
        for t in 0..50 {
            let settings = s.sample(3, t);
            let text = &overrides(&settings)[0];
            let value = text.strip_prefix("generator.lr=").unwrap();
            assert!(value.len() <= 12, "{text}");
            let back: f64 = value.parse().unwrap();
            assert_eq!(toml::Value::Float(back), settings[0].1, "{text}");
        }
        let s = Space::default().with("generator.init", Distribution::Choice(vec!["als".into()]));
        assert_eq!(overrides(&s.sample(0, 0)), ["generator.init=\"als\""]);
    }
}
