//! Range checks shared by the configuration types; each error names the offending key.

use crate::config::ConfigError;
use crate::train::settings::{CandidateMode, IrganConfig};

/// The result of one check.
pub(crate) type Check = Result<(), ConfigError>;

/// Fails with `message` for `key` unless `ok`.
pub(crate) fn require(ok: bool, key: &str, message: &str) -> Check {
    if ok {
        Ok(())
    } else {
        Err(ConfigError::Invalid {
            key: key.into(),
            message: message.into(),
        })
    }
}

/// A fraction in `[0, 1)`.
pub(crate) fn fraction(key: &str, x: f64) -> Check {
    require((0.0..1.0).contains(&x), key, "must be in [0, 1)")
}

/// A significance level in (0, 1] (1 = no gate).
pub(crate) fn gate_alpha(key: &str, x: f64) -> Check {
    require(
        x > 0.0 && x <= 1.0,
        key,
        "must be in (0, 1] (1 turns the gate off)",
    )
}

/// A finite value `> 0`.
pub(crate) fn positive(key: &str, x: f64) -> Check {
    require(x.is_finite() && x > 0.0, key, "must be > 0")
}

/// A finite value `>= 0`.
pub(crate) fn non_negative(key: &str, x: f64) -> Check {
    require(x.is_finite() && x >= 0.0, key, "must be >= 0")
}

/// A count `>= 1`.
pub(crate) fn at_least_one(key: &str, n: usize) -> Check {
    require(n >= 1, key, "must be >= 1")
}

/// Cut-offs of ranking metrics: at least one, each `>= 1`.
pub(crate) fn cutoffs(key: &str, ks: &[usize]) -> Check {
    require(
        !ks.is_empty() && !ks.contains(&0),
        key,
        "needs at least one cut-off, each >= 1",
    )
}

/// The selection metric: one of `families@k` for the configured cut-offs, `MAP` or `MRR`.
pub(crate) fn metric(key: &str, name: &str, families: &[&str], ks: &[usize]) -> Check {
    let mut names: Vec<String> = ks
        .iter()
        .flat_map(|k| families.iter().map(move |m| format!("{m}@{k}")))
        .collect();
    names.extend(["MAP".to_string(), "MRR".to_string()]);
    require(
        names.iter().any(|n| n == name),
        key,
        &format!("unknown metric; choose one of {}", names.join(", ")),
    )
}

/// The sampled game's keys in `[irgan]` (checked whatever `candidates` is, so a file that
/// switches to `auto` on a larger catalogue does not fail late).
pub(crate) fn sampled_game(g: &IrganConfig) -> Check {
    require(
        g.sampled_candidates >= 1,
        "irgan.sampled_candidates",
        "must be >= 1 (proposal draws per batch of users; try 1024)",
    )?;
    require(
        g.d_resample_pool >= 1,
        "irgan.d_resample_pool",
        "must be >= 1 (proposal draws D's negatives are resampled from; try 1024)",
    )?;
    require(
        g.proposal_popularity.is_finite() && g.proposal_popularity >= 0.0,
        "irgan.proposal_popularity",
        "must be >= 0 (exponent of item popularity; 0 = every seen item alike, 1 = by count)",
    )?;
    require(
        (0.0..=1.0).contains(&g.proposal_uniform),
        "irgan.proposal_uniform",
        "must be in [0, 1] (weight of the uniform distribution in the proposal)",
    )?;
    // The guard needs G's rank over the whole catalogue, which a sampled game never computes.
    require(
        g.d_skip_top == 0 || g.candidates == CandidateMode::Exhaustive,
        "irgan.d_skip_top",
        "needs irgan.candidates = \"exhaustive\" (G's top items are ranked over the whole catalogue)",
    )
}
