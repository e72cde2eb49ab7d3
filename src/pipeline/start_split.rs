//! The validation split a saved start (`irgan train --save-start`) was pretrained beside.
//!
//! A start's factors have seen every training positive outside its validation hold-out. A later
//! run that loads them but carves a different hold-out (another `seed`, another
//! `data.validation_fraction`) validates on positives the start was trained on, so its
//! selection is meaningless. The saved start records its split in `start/split.json`, and a run
//! that loads factors from such a start must use the same split.

use std::path::Path;

use serde::Deserialize;

use crate::config::{Config, Init};
use crate::pipeline::PipelineError;

const FILE: &str = "split.json";

/// The split a start was pretrained beside.
#[derive(Debug, Clone, PartialEq, Deserialize)]
struct StartSplit {
    split_seed: u64,
    validation_fraction: f64,
}

impl StartSplit {
    fn of(cfg: &Config) -> Self {
        Self {
            split_seed: cfg.split_seed(),
            validation_fraction: cfg.data.validation_fraction,
        }
    }
}

/// Writes `start_dir/split.json`: the split of the run saving its start there.
pub(crate) fn record(cfg: &Config, start_dir: &Path) -> Result<(), PipelineError> {
    let path = start_dir.join(FILE);
    let split = StartSplit::of(cfg);
    let text = serde_json::json!({
        "split_seed": split.split_seed,
        "validation_fraction": split.validation_fraction,
    });
    std::fs::write(&path, format!("{text:#}\n"))
        .map_err(|source| PipelineError::Io { path, source })
}

/// Fails when a model starts from factors saved with a different validation split.
///
/// Factor directories without a recorded split (exported snapshots, other tools) are trusted
/// as they are.
pub(crate) fn check(cfg: &Config) -> Result<(), PipelineError> {
    let ours = StartSplit::of(cfg);
    for (role, m) in [
        ("generator", &cfg.generator),
        ("discriminator", &cfg.discriminator),
    ] {
        let Some(dir) = m.factors.as_deref().filter(|_| m.init == Init::Factors) else {
            continue;
        };
        let Some(path) = dir.parent().map(|p| p.join(FILE)) else {
            continue;
        };
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let saved: StartSplit = serde_json::from_str(&text).map_err(|e| {
            PipelineError::Unusable(format!("{} is not a start's split: {e}", path.display()))
        })?;
        if saved != ours {
            return Err(PipelineError::Unusable(format!(
                "{role}.factors ({}) was pretrained beside the validation split of seed {} \
                 (validation_fraction {}), but this run splits with seed {} (fraction {}): \
                 its validation data would hold positives the start was trained on. Set \
                 data.split_seed = {} and data.validation_fraction = {}",
                dir.display(),
                saved.split_seed,
                saved.validation_fraction,
                ours.split_seed,
                ours.validation_fraction,
                saved.split_seed,
                saved.validation_fraction,
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_start_saved_with_another_split_is_refused_until_the_split_matches() {
        let dir = std::env::temp_dir().join(format!("irgan-start-split-{}", std::process::id()));
        let start = dir.join("start");
        std::fs::create_dir_all(start.join("generator")).unwrap();
        let saver = Config::load(None, &["seed=42".into()]).unwrap();
        record(&saver, &start).unwrap();

        let factors = format!("generator.factors={}", start.join("generator").display());
        let with = |extra: &[&str]| {
            let mut o = vec!["generator.init=factors".to_string(), factors.clone()];
            o.extend(extra.iter().map(|s| s.to_string()));
            Config::load(None, &o).unwrap()
        };
        let e = check(&with(&["seed=7"])).unwrap_err().to_string();
        assert!(e.contains("data.split_seed = 42"), "{e}");
        let e = check(&with(&["seed=42", "data.validation_fraction=0.2"])).unwrap_err();
        assert!(e.to_string().contains("validation_fraction = 0.1"), "{e}");
        check(&with(&["seed=7", "data.split_seed=42"])).unwrap();
        check(&with(&["seed=42"])).unwrap();
        // A factor directory without a recorded split is trusted.
        std::fs::remove_file(start.join(FILE)).unwrap();
        check(&with(&["seed=7"])).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
