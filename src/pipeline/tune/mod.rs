//! `irgan tune`: an automatic search over pretraining and game settings of the recommendation
//! task, judged on the validation split only (the test file is never opened).
//!
//! A [`Plan`] reads the config's `[tune]` section (which `irgan train` ignores) and checks every
//! key and value it may set before the clock starts; [`runner::search`] samples settings from
//! the [`space`] with a seeded stream and runs them under asynchronous successive
//! [`halving`] within the wall-clock [`budget`]; [`run`] then writes `best.toml`, a config that
//! `irgan train` takes as is, and `report.json`.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::config::{ConfigError, TUNE_SECTION};
use crate::pipeline::PipelineError;

pub mod budget;
pub mod defaults;
pub mod halving;
pub mod output;
pub mod plan;
pub mod runner;
pub mod space;
pub mod table;
pub mod trial;

pub use budget::parse_budget;
pub use plan::Plan;
pub use runner::Summary;

/// Why a search could not run or found nothing.
#[derive(Debug, thiserror::Error)]
pub enum TuneError {
    /// The config (or an override) is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The search space is malformed.
    #[error(transparent)]
    Space(#[from] space::SpaceError),
    /// The `[tune]` section is invalid.
    #[error("invalid [tune] section: {0}")]
    Section(String),
    /// A value the search may set is refused by the config.
    #[error("cannot tune `{key}`: the config refuses {key} = {value}")]
    Value {
        /// The dotted key.
        key: String,
        /// The refused value.
        value: String,
        /// Why.
        #[source]
        source: ConfigError,
    },
    /// Data loading or writing the outputs failed.
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    /// Not one trial finished.
    #[error(
        "no trial finished within the budget of {budget} (see {}); give a larger --budget",
        trials.display()
    )]
    NothingFinished {
        /// The budget, as written.
        budget: String,
        /// `trials.jsonl`.
        trials: PathBuf,
    },
}

/// Searches with `plan` for `budget`, then writes `out/best.toml` (the best trial's whole
/// config, without the `[tune]` section, under a comment saying how it was found) and
/// `out/report.json`. Fails when no trial finished (the report is written all the same).
pub fn run(
    plan: &Plan,
    budget: Duration,
    out: &Path,
    progress: bool,
) -> Result<Summary, TuneError> {
    let summary = runner::search(plan, budget, out, progress)?;
    let mut report = summary.report(plan, budget);
    let Some(best) = summary.best() else {
        output::write_report(out, &report)?;
        return Err(TuneError::NothingFinished {
            budget: budget::format_budget(budget),
            trials: out.join("trials.jsonl"),
        });
    };
    let cfg = plan.config_for(&best.settings, best.rung)?;
    let header = best_header(plan, &summary, budget, out);
    let path = output::write_best(out, &header, &cfg)?;
    report["best_toml"] = serde_json::json!(path);
    output::write_report(out, &report)?;
    Ok(summary)
}

/// The comment at the top of `best.toml`.
fn best_header(plan: &Plan, s: &Summary, budget: Duration, out: &Path) -> Vec<String> {
    let (finished, failed, stopped) = s.counts();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let source = match &plan.config_path {
        Some(p) => p.display().to_string(),
        None => "the default config".into(),
    };
    let mut lines = vec![
        format!(
            "Found by `irgan tune` on {} (UTC) from {source}, with a budget of {}:",
            output::utc_date(now),
            budget::format_budget(budget)
        ),
        format!(
            "{} trials run in {:.0} s ({finished} finished, {failed} failed, {stopped} stopped), \
             sampler seed {}.",
            s.trials.len(),
            s.elapsed.as_secs_f64(),
            plan.seed
        ),
    ];
    if let Some(b) = s.best() {
        let selected = match &b.outcome {
            trial::Outcome::Finished(v) => format!(", selected at outer epoch {}", v.epoch),
            _ => String::new(),
        };
        lines.push(format!(
            "Best validation {} of the {}: {:.4} (trial {}, rung {} of {}{selected}).",
            plan.base.eval.select_metric,
            plan.base.eval.select_model.as_str(),
            b.score().unwrap_or(f64::NAN),
            b.id,
            b.rung + 1,
            plan.schedule.rungs()
        ));
        let own = if b.baseline {
            " (the config as it is)"
        } else {
            ""
        };
        lines.push(format!(
            "Settings: {}{own}",
            space::overrides(&b.settings).join(" ")
        ));
    }
    if !plan.overrides.is_empty() {
        lines.push(format!(
            "On top of: --set {}",
            plan.overrides.join(" --set ")
        ));
    }
    lines.push(format!(
        "Tuned on the validation split only; the [{TUNE_SECTION}] section is left out. Train with:"
    ));
    lines.push(String::new());
    lines.push(format!(
        "  irgan train --config {} --out runs/tuned",
        out.join("best.toml").display()
    ));
    lines
}
