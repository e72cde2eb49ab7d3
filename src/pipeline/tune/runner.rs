//! The search loop: asks the scheduler for the next job, runs it on a worker thread against the
//! deadline, records it (trials.jsonl, the live table) and keeps the best.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::config::Config;
use crate::pipeline::recommend::validate_only;
use crate::pipeline::run_dir::round_s;
use crate::pipeline::tune::TuneError;
use crate::pipeline::tune::budget::format_budget;
use crate::pipeline::tune::halving::{Asha, Job};
use crate::pipeline::tune::output::TrialLog;
use crate::pipeline::tune::plan::Plan;
use crate::pipeline::tune::space::{Settings, overrides};
use crate::pipeline::tune::table::LiveTable;
use crate::pipeline::tune::trial::{Outcome, Trial};

/// How often the bar moves while a trial runs.
const TICK: Duration = Duration::from_millis(250);

/// What a search did.
#[derive(Debug, Clone)]
pub struct Summary {
    /// Every trial, in the order they ended.
    pub trials: Vec<Trial>,
    /// Index of the best finished trial in `trials`.
    pub best: Option<usize>,
    /// Wall time of the search.
    pub elapsed: Duration,
    /// Why it ended.
    pub ended: &'static str,
}

/// Runs trials until the budget runs out (a trial still running then is stopped and its result
/// dropped), no further trial fits in what is left, or `tune.max_trials` new trials have run.
/// Appends every trial to `out/trials.jsonl` as it ends.
pub fn search(
    plan: &Plan,
    budget: Duration,
    out: &Path,
    progress: bool,
) -> Result<Summary, TuneError> {
    let mut log = TrialLog::create(out)?;
    let metric = plan.base.eval.select_metric.as_str();
    let model = plan.base.eval.select_model.as_str();
    let table = LiveTable::new(progress, budget, metric);
    table.say(&intro(plan, budget));
    table.header();

    let started = Instant::now();
    let deadline = started + budget;
    let rungs = plan.schedule.rungs();
    let mut asha = Asha::new(rungs, plan.schedule.eta);
    let mut sampled: Vec<Settings> = Vec::new();
    let mut seconds_on: Vec<Vec<f64>> = vec![Vec::new(); rungs];
    let mut trials: Vec<Trial> = Vec::new();
    let mut best: Option<usize> = None;
    let ended = loop {
        let left = deadline
            .saturating_duration_since(Instant::now())
            .as_secs_f64();
        if left <= 0.0 {
            break "the budget ran out";
        }
        // A rung whose typical trial would overrun what is left is not started.
        let fits = |rung: usize| median(&seconds_on[rung]).is_none_or(|m| m <= left);
        let may_sample = plan.max_trials.is_none_or(|m| asha.sampled() < m);
        let Some(job) = asha.next(fits, may_sample) else {
            break if may_sample {
                "no further trial fits in the budget left"
            } else {
                "tune.max_trials new trials have run"
            };
        };
        let settings = match job {
            Job::Sample { trial } => {
                sampled.push(plan.settings_of(trial));
                sampled[sampled.len() - 1].clone()
            }
            Job::Promote { trial, .. } => sampled[(trial - 1) as usize].clone(),
        };
        let (id, rung) = (job.trial(), job.rung());
        let status = match best {
            Some(b) => format!(
                "trial {id} on rung {rung} · best {metric} {:.4} (trial {})",
                trials[b].score().unwrap_or(f64::NAN),
                trials[b].id
            ),
            None => format!("trial {id} on rung {rung}"),
        };
        let t = Instant::now();
        let outcome = match plan.config_for(&settings, rung) {
            Ok(cfg) => run_until(cfg, deadline, |now| {
                table.tick(now.duration_since(started), &status)
            }),
            Err(e) => Outcome::Failed(e.to_string()),
        };
        let trial = Trial {
            id,
            rung,
            baseline: settings.is_empty(),
            settings: plan.trial_settings(&settings, rung),
            outcome,
            seconds: t.elapsed().as_secs_f64(),
            ended_at: started.elapsed().as_secs_f64(),
        };
        match &trial.outcome {
            Outcome::Finished(v) => {
                asha.record(id, rung, v.score);
                seconds_on[rung].push(trial.seconds);
            }
            Outcome::Failed(_) => asha.record(id, rung, f64::NEG_INFINITY),
            Outcome::Stopped => {}
        }
        let is_best = trial.score().is_some() && best.is_none_or(|b| trial.beats(&trials[b]));
        log.append(&trial.to_json(metric, model))?;
        table.trial(&trial, is_best);
        let stopped = matches!(trial.outcome, Outcome::Stopped);
        trials.push(trial);
        if is_best {
            best = Some(trials.len() - 1);
        }
        if stopped {
            break "the budget ran out";
        }
    };
    table.finish();
    Ok(Summary {
        trials,
        best,
        elapsed: started.elapsed(),
        ended,
    })
}

/// Runs one trial on a worker thread until it ends or `deadline` passes, calling `tick` while
/// it waits. At the deadline the trial is asked to stop and left behind: its result would come
/// too late, and pretraining cannot be interrupted, so the search does not wait for it.
fn run_until(cfg: Config, deadline: Instant, tick: impl Fn(Instant)) -> Outcome {
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel();
    let flag = Arc::clone(&stop);
    let spawned = std::thread::Builder::new()
        .name("tune-trial".into())
        .spawn(move || {
            let result = validate_only(&cfg, &|| flag.load(Ordering::Relaxed));
            // The search may have stopped listening; then the result has no use.
            let _ = tx.send(result);
        });
    if let Err(e) = spawned {
        return Outcome::Failed(format!("cannot start the trial: {e}"));
    }
    loop {
        let now = Instant::now();
        if now >= deadline {
            stop.store(true, Ordering::Relaxed);
            return Outcome::Stopped;
        }
        tick(now);
        match rx.recv_timeout((deadline - now).min(TICK)) {
            Ok(Ok(v)) => return Outcome::Finished(v),
            Ok(Err(e)) => return Outcome::Failed(e.to_string()),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                return Outcome::Failed("the trial panicked".into());
            }
        }
    }
}

/// The median of `xs`, if any.
fn median(xs: &[f64]) -> Option<f64> {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied()
}

/// The line that opens the table.
fn intro(plan: &Plan, budget: Duration) -> String {
    let c = &plan.base.eval;
    let rungs = match &plan.schedule.resource {
        Some(key) => format!(
            "rungs {key} = {} (keep the top 1/{})",
            plan.schedule
                .values
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            plan.schedule.eta
        ),
        None => "one rung (random search)".into(),
    };
    let (users, items, validation) = plan.data_sizes;
    format!(
        "tuning {} key(s){} by validation {} of the {}; {rungs}; budget {}, seed {}; \
         {users} users, {items} items, {validation} validation positives",
        plan.space.dimensions.len(),
        if plan.default_space {
            " (default space)"
        } else {
            ""
        },
        c.select_metric,
        c.select_model.as_str(),
        format_budget(budget),
        plan.seed
    )
}

impl Summary {
    /// Trials that finished, failed and were stopped.
    pub fn counts(&self) -> (usize, usize, usize) {
        let count = |s: &str| self.trials.iter().filter(|t| t.status() == s).count();
        (count("ok"), count("failed"), count("stopped"))
    }

    /// The best finished trial.
    pub fn best(&self) -> Option<&Trial> {
        self.best.map(|b| &self.trials[b])
    }

    /// `report.json`.
    pub fn report(&self, plan: &Plan, budget: Duration) -> Value {
        let metric = plan.base.eval.select_metric.as_str();
        let model = plan.base.eval.select_model.as_str();
        let (finished, failed, stopped) = self.counts();
        let per_rung: Vec<Value> = (0..plan.schedule.rungs())
            .map(|rung| {
                let on: Vec<&Trial> = self.trials.iter().filter(|t| t.rung == rung).collect();
                let best = on
                    .iter()
                    .filter_map(|t| t.score().map(|s| (s, t.id)))
                    .max_by(|a, b| a.0.total_cmp(&b.0));
                json!({
                    "rung": rung,
                    "resource": plan.schedule.values.get(rung),
                    "trials": on.len(),
                    "finished": on.iter().filter(|t| t.score().is_some()).count(),
                    "best_score": best.map(|b| b.0),
                    "best_trial": best.map(|b| b.1),
                })
            })
            .collect();
        json!({
            "config": plan.config_path,
            "overrides": plan.overrides,
            "seed": plan.seed,
            "budget_s": budget.as_secs_f64(),
            "elapsed_s": round_s(self.elapsed.as_secs_f64()),
            "ended": self.ended,
            "selection": { "metric": metric, "model": model, "split": "validation" },
            "schedule": {
                "strategy": "asynchronous successive halving",
                "resource": plan.schedule.resource,
                "rungs": plan.schedule.values,
                "eta": plan.schedule.eta,
                "max_trials": plan.max_trials,
            },
            "space": plan.space.to_json(),
            "default_space": plan.default_space,
            "trials": {
                "new": self.trials.iter().filter(|t| t.rung == 0).count(),
                "run": self.trials.len(),
                "finished": finished,
                "failed": failed,
                "stopped": stopped,
            },
            "rungs": per_rung,
            "best": self.best().map(|t| t.to_json(metric, model)),
            "best_overrides": self.best().map(|t| overrides(&t.settings)),
        })
    }
}
