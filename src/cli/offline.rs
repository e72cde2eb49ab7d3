//! `irgan train`, `irgan tune`, `irgan eval` and `irgan synth`: the offline commands.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;
use irgan::config::Config;
use irgan::config::search::{SearchConfig, Task, task_of};
use irgan::data::loader::{self, Format, LoadOptions};
use irgan::data::{IdMap, synth};
use irgan::eval::Protocol;
use irgan::eval::letor;
use irgan::model::MfModel;
use irgan::pipeline::tune::{self, Plan};
use irgan::pipeline::{self, recommend};
use irgan::store::Snapshot;
use irgan::store::search_snapshot::{self, SearchSnapshot};

use crate::set_threads;

#[derive(Args)]
pub struct TrainArgs {
    /// TOML config (defaults: a synthetic data set and the paper's schedule).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Override a config key, e.g. --set irgan.epochs=3 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Output directory (snapshot/, log.jsonl, report.json, curve.svg).
    #[arg(long, default_value = "runs/latest")]
    out: PathBuf,
    /// Hide progress bars.
    #[arg(long)]
    quiet: bool,
    /// Also write the pretrained pair to OUT/start/{generator,discriminator}/ (factor
    /// directories): later runs start from it with `--set generator.init=factors --set
    /// generator.factors=OUT/start/generator` (and the same for the discriminator).
    #[arg(long)]
    save_start: bool,
}

#[derive(Args)]
pub struct TuneArgs {
    /// TOML training config; its `[tune]` section (ignored by `irgan train`) declares the
    /// search space and rungs (default: a space over pretraining and game settings).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Wall-clock budget, e.g. 90s, 10m, 1h or 1h30m.
    #[arg(long, value_parser = tune::parse_budget)]
    budget: std::time::Duration,
    /// Output directory (best.toml, trials.jsonl, report.json).
    #[arg(long)]
    out: PathBuf,
    /// Seed of the sampler (default: the config's seed).
    #[arg(long)]
    seed: Option<u64>,
    /// Override a config key for every trial, e.g. --set irgan.g_epochs=5, or a search
    /// setting, e.g. --set tune.eta=2 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Hide the progress bar (the trial lines are still printed).
    #[arg(long)]
    quiet: bool,
}

#[derive(Args)]
pub struct EvalArgs {
    /// Snapshot directory written by `irgan train`.
    #[arg(long, conflicts_with = "factors", required_unless_present = "factors")]
    snapshot: Option<PathBuf>,
    /// Factor directory (user_factors.tsv, item_factors.tsv, item_bias.tsv).
    #[arg(long)]
    factors: Option<PathBuf>,
    /// Training interactions (their positives, or all, are excluded from the candidates).
    /// Not used with a search snapshot.
    #[arg(long)]
    train: Option<PathBuf>,
    /// Test interactions, or a LETOR/SVMlight file for a search snapshot.
    #[arg(long)]
    test: PathBuf,
    /// `irgan` (exclude training positives) or `standard` (exclude every training interaction).
    #[arg(long, default_value = "irgan")]
    protocol: Protocol,
    /// Which model of a snapshot to evaluate.
    #[arg(long, value_enum, default_value = "generator")]
    model: ModelArg,
    /// Cut-offs, comma-separated (default 3,5,10; 1,3,5,10 for a search snapshot).
    #[arg(long, value_delimiter = ',')]
    k: Vec<usize>,
    /// Input format of the files.
    #[arg(long, default_value = "ratings")]
    format: Format,
    /// A rating at or above this is a positive.
    #[arg(long, default_value_t = 4.0)]
    threshold: f32,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum ModelArg {
    Generator,
    Discriminator,
}

#[derive(Args)]
pub struct SynthArgs {
    /// Output directory.
    #[arg(long)]
    out: PathBuf,
    /// Users.
    #[arg(long, default_value_t = 300)]
    users: usize,
    /// Items.
    #[arg(long, default_value_t = 200)]
    items: usize,
    /// Taste clusters.
    #[arg(long, default_value_t = 5)]
    clusters: usize,
    /// Interactions per user.
    #[arg(long, default_value_t = 20)]
    per_user: usize,
    /// Seed.
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

/// `irgan train`.
pub fn train(a: TrainArgs) -> anyhow::Result<()> {
    if task_of(a.config.as_deref(), &a.set)? == Task::Search {
        return train_search(a);
    }
    let cfg = Config::load(a.config.as_deref(), &a.set)?;
    set_threads(cfg.threads);
    let opts = recommend::RunOptions {
        progress: !a.quiet,
        save_start: a.save_start,
    };
    let result = recommend::run(&cfg, &a.out, opts)?;
    let r = &result.report;
    let metric = cfg.eval.select_metric.as_str();
    let pick = |v: &serde_json::Value| v[metric].as_f64().map_or("-".into(), |x| format!("{x:.4}"));
    println!("wrote {}", a.out.display());
    println!(
        "selected: {} at outer epoch {} ({} G-epochs) by validation {metric}",
        r["selection"]["model"].as_str().unwrap_or("?"),
        r["selection"]["epoch"],
        r["selection"]["g_epochs"]
    );
    print_gate(&r["selection"]["gate"]);
    for (split, key) in [("validation", "validation"), ("test", "test")] {
        let v = &r[key];
        if v.is_null() {
            continue;
        }
        let blend = if v["init"]["blend"].is_null() {
            String::new()
        } else {
            format!(
                "   blend init {} -> {}",
                pick(&v["init"]["blend"]),
                pick(&v["selected"]["blend"])
            )
        };
        println!(
            "{split:<10} {metric}: G init {} -> {}   D init {} -> {}{blend}",
            pick(&v["init"]["generator"]),
            pick(&v["selected"]["generator"]),
            pick(&v["init"]["discriminator"]),
            pick(&v["selected"]["discriminator"]),
        );
    }
    println!("time: {} s", r["timings_s"]["total"]);
    Ok(())
}

/// `irgan tune`.
pub fn tune(a: TuneArgs) -> anyhow::Result<()> {
    if task_of(a.config.as_deref(), &a.set)? == Task::Search {
        bail!(
            "irgan tune searches recommendation settings; this is a search (learning to rank) config"
        )
    }
    let plan = Plan::prepare(a.config.as_deref(), &a.set, a.seed)?;
    set_threads(plan.base.threads);
    let summary = tune::run(&plan, a.budget, &a.out, !a.quiet)?;
    let (finished, failed, stopped) = summary.counts();
    println!("wrote {}", a.out.display());
    println!(
        "{} trials in {:.1} s ({finished} finished, {failed} failed, {stopped} stopped): {}",
        summary.trials.len(),
        summary.elapsed.as_secs_f64(),
        summary.ended
    );
    if let Some(best) = summary.best() {
        println!(
            "best: trial {} on rung {}, validation {} {:.4}",
            best.id,
            best.rung,
            plan.base.eval.select_metric,
            best.score().unwrap_or(f64::NAN)
        );
        println!(
            "train it: irgan train --config {} --out runs/tuned",
            a.out.join("best.toml").display()
        );
    }
    Ok(())
}

fn train_search(a: TrainArgs) -> anyhow::Result<()> {
    if a.save_start {
        anyhow::bail!(
            "--save-start writes factor directories, which only the recommendation task has"
        );
    }
    let cfg = SearchConfig::load(a.config.as_deref(), &a.set)?;
    set_threads(cfg.threads);
    let r = pipeline::search::run(&cfg, &a.out, !a.quiet)?.report;
    let metric = cfg.eval.select_metric.as_str();
    println!("wrote {}", a.out.display());
    println!(
        "{}: selected {} at epoch {} by validation {metric}",
        cfg.method.as_str(),
        r["ranker"].as_str().unwrap_or("?"),
        r["selection"]["epoch"]
    );
    print_gate(&r["selection"]["gate"]);
    let names = ["NDCG@1", "NDCG@3", "NDCG@5", "NDCG@10", "P@5", "MAP", "MRR"];
    for split in ["validation", "test"] {
        if r[split].is_null() {
            continue;
        }
        for stage in ["init", "selected"] {
            let m = &r[split][stage][r["ranker"].as_str().unwrap_or("discriminator")];
            if m.is_null() {
                continue;
            }
            let row: Vec<String> = names
                .iter()
                .filter_map(|n| m[*n].as_f64().map(|v| format!("{n} {v:.4}")))
                .collect();
            println!("{split:<10} {stage:<8} {}", row.join("  "));
        }
    }
    println!(
        "time: {:.1} s",
        r["timings_s"]["total"].as_f64().unwrap_or(0.0)
    );
    Ok(())
}

/// Evaluates a search snapshot's ranker on a LETOR file.
fn eval_search(a: &EvalArgs, dir: &std::path::Path) -> anyhow::Result<()> {
    let s = SearchSnapshot::read(dir)?;
    let scorer = match a.model {
        ModelArg::Generator => &s.generator,
        ModelArg::Discriminator => &s.discriminator,
    };
    let data = irgan::data::letor::read_letor(&a.test, Some(scorer.n_features))?;
    let mut data = data;
    data.widen(scorer.n_features);
    let ks = if a.k.is_empty() {
        letor::DEFAULT_KS.to_vec()
    } else {
        a.k.clone()
    };
    let metrics = letor::evaluate(&data, &ks, |q| scorer.score(q.features.view()));
    print_metrics(&metrics, a.json)
}

fn print_metrics(
    metrics: &std::collections::BTreeMap<String, f64>,
    json: bool,
) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(metrics)?);
    } else {
        for (k, v) in metrics {
            println!("{k:<12} {v:.4}");
        }
    }
    Ok(())
}

/// `irgan eval`.
pub fn eval(a: EvalArgs) -> anyhow::Result<()> {
    if let Some(dir) = &a.snapshot
        && is_search_snapshot(dir)
    {
        return eval_search(&a, dir);
    }
    let Some(train) = &a.train else {
        bail!("--train is required to evaluate a recommendation model")
    };
    let (model, users, items) = match (&a.snapshot, &a.factors) {
        (Some(dir), _) => {
            let s = Snapshot::read(dir)?;
            let m = match a.model {
                ModelArg::Generator => s.generator,
                ModelArg::Discriminator => s.discriminator,
            };
            (m, s.users, s.items)
        }
        (None, Some(dir)) => {
            let (f, users, items) = loader::read_factors_with_ids(dir)
                .with_context(|| format!("reading factors from {}", dir.display()))?;
            (irgan::train::init::model_from_factors(f), users, items)
        }
        (None, None) => bail!("give --snapshot or --factors"),
    };
    let opts = LoadOptions {
        format: a.format,
        positive_threshold: a.threshold,
    };
    let ds = loader::load_dataset(train, Some(&a.test), &opts, users, items)?;
    let Some(test) = &ds.test else {
        bail!("no test data")
    };
    let model = covering(model, &ds.users, &ds.items);
    let exclude = match a.protocol {
        Protocol::Irgan => &ds.train.positives,
        Protocol::Standard => &ds.train.seen,
    };
    let ks = if a.k.is_empty() {
        vec![3, 5, 10]
    } else {
        a.k.clone()
    };
    let metrics = irgan::eval::evaluate_model(&model, exclude, &test.positives, &ks);
    print_metrics(&metrics, a.json)
}

/// True when `dir` holds a search (feature-vector) snapshot rather than a recommendation one.
fn is_search_snapshot(dir: &std::path::Path) -> bool {
    std::fs::read(dir.join("manifest.json"))
        .ok()
        .and_then(|raw| serde_json::from_slice::<serde_json::Value>(&raw).ok())
        .is_some_and(|m| m["format"] == search_snapshot::FORMAT)
}

/// Extends a model to ids that appear only in the data: zero factors, zero bias (they score as
/// the catalogue's neutral item and their users get no personalisation).
fn covering(mut model: MfModel, users: &IdMap, items: &IdMap) -> MfModel {
    let mut r = irgan::rng::stream(0, 0, 0);
    model.grow(users.len(), items.len(), 0.0, &mut r);
    model
}

/// `irgan synth`.
pub fn synth_cmd(a: SynthArgs) -> anyhow::Result<()> {
    let cfg = irgan::config::SyntheticConfig {
        users: a.users,
        items: a.items,
        clusters: a.clusters,
        per_user: a.per_user,
        ..Default::default()
    };
    let mut full = Config::default();
    full.data.synthetic = cfg.clone();
    full.validate()?;
    let (train, test) = synth::generate(&cfg, a.seed);
    std::fs::create_dir_all(&a.out)?;
    std::fs::write(a.out.join("train.txt"), synth::to_text(&train))?;
    std::fs::write(a.out.join("test.txt"), synth::to_text(&test))?;
    println!(
        "wrote {} train and {} test interactions to {}",
        train.len(),
        test.len(),
        a.out.display()
    );
    Ok(())
}

/// One line on the selection gate's verdict, when the run had one.
fn print_gate(gate: &serde_json::Value) {
    let (Some(p), Some(alpha), Some(passed)) = (
        gate["p_value"].as_f64(),
        gate["alpha"].as_f64(),
        gate["passed"].as_bool(),
    ) else {
        return;
    };
    let outcome = if passed {
        "the game's best point may replace the start"
    } else {
        "the start is served (its best point is within chance)"
    };
    println!("gate: p = {p:.4} against alpha {alpha}: {outcome}");
}
