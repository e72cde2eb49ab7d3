//! One trial of a search: a setting of the space run on one rung, and how it ended.

use serde_json::{Value, json};

use crate::pipeline::recommend::Validated;
use crate::pipeline::run_dir::round_s;
use crate::pipeline::tune::space::{Settings, settings_json};

/// How a trial ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// It ran to the end; its selected validation point.
    Finished(Validated),
    /// Its config or its training failed (for example a learning rate that diverged).
    Failed(String),
    /// The budget ran out while it ran.
    Stopped,
}

/// A finished, failed or stopped trial.
#[derive(Debug, Clone)]
pub struct Trial {
    /// Trial id (from 1); a promoted trial keeps its id on the next rung.
    pub id: u64,
    /// Rung (0 = the smallest resource).
    pub rung: usize,
    /// What it set: the rung's resource, then the space's keys.
    pub settings: Settings,
    /// It sets no key of the space: the config as it is.
    pub baseline: bool,
    /// How it ended.
    pub outcome: Outcome,
    /// Seconds it ran.
    pub seconds: f64,
    /// Seconds since the search started, when it ended.
    pub ended_at: f64,
}

impl Trial {
    /// Its validation score, if it finished.
    pub fn score(&self) -> Option<f64> {
        match &self.outcome {
            Outcome::Finished(v) => Some(v.score),
            _ => None,
        }
    }

    /// `ok`, `failed` or `stopped`.
    pub fn status(&self) -> &'static str {
        match self.outcome {
            Outcome::Finished(_) => "ok",
            Outcome::Failed(_) => "failed",
            Outcome::Stopped => "stopped",
        }
    }

    /// Whether it beats `other`: a higher score, then a higher rung (more evidence), then the
    /// earlier trial. Unfinished trials never win.
    pub fn beats(&self, other: &Trial) -> bool {
        let key = |t: &Trial| t.score().map(|s| (s, t.rung));
        match (key(self), key(other)) {
            (Some(a), Some(b)) => {
                a.0 > b.0 || (a.0 == b.0 && (a.1 > b.1 || (a.1 == b.1 && self.id < other.id)))
            }
            (Some(_), None) => true,
            _ => false,
        }
    }

    /// One line of `trials.jsonl`: only validation figures (the test file is never read).
    pub fn to_json(&self, metric: &str, model: &str) -> Value {
        let mut v = json!({
            "trial": self.id,
            "rung": self.rung,
            "settings": settings_json(&self.settings),
            "baseline": self.baseline,
            "status": self.status(),
            "metric": metric,
            "model": model,
            "seconds": round_s(self.seconds),
            "ended_at_s": round_s(self.ended_at),
        });
        match &self.outcome {
            Outcome::Finished(r) => {
                v["validation_score"] = json!(r.score);
                v["selected"] = json!({ "epoch": r.epoch, "g_epochs": r.g_epochs });
                v["validation"] = json!({
                    "init": r.initial.to_json(),
                    "selected": r.selected.to_json(),
                });
            }
            Outcome::Failed(e) => v["error"] = json!(e),
            Outcome::Stopped => {}
        }
        v
    }
}
