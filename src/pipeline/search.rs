//! The search task of `irgan train` (`task = "search"`): load LETOR files, train the configured
//! method, select on validation queries, report test once, and write `out/` (`snapshot/`,
//! `log.jsonl`, `report.json`, `curve.svg`).

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::{Value, json};

use crate::config::Role;
use crate::config::search::{Method, SearchConfig};
use crate::data::letor::{LtrData, read_letor};
use crate::eval::letor::{evaluate, query_metrics_all};
use crate::model::features::{FlatOptimizer, Scorer};
use crate::pipeline::PipelineError;
use crate::pipeline::gate::{Gate, Verdict};
use crate::pipeline::progress::bar_for;
use crate::pipeline::run_dir::RunDir;
use crate::pipeline::select::{Best, PairMetrics, is_due};
use crate::report::plot::{Chart, Series, stack_svg};
use crate::rng;
use crate::store::Snapshot;
use crate::store::search_snapshot::SearchSnapshot;
use crate::train::ltr::{Game, baseline_epoch};

pub use crate::pipeline::SearchError;

/// Training, validation and (optional) test queries with one feature width.
#[derive(Debug, Clone)]
pub struct Splits {
    /// Queries the models learn from.
    pub train: LtrData,
    /// Queries that select the model.
    pub validation: LtrData,
    /// Queries read once for the report.
    pub test: Option<LtrData>,
}

/// Reads the configured files; without a validation file, splits off validation queries.
pub fn load_splits(cfg: &SearchConfig) -> Result<Splits, PipelineError> {
    let d = &cfg.data;
    let mut train = read_letor(&d.train, d.n_features)?;
    let width = d.n_features.unwrap_or(train.n_features);
    let read = |p: &PathBuf| -> Result<LtrData, PipelineError> {
        let mut data = read_letor(p, Some(width))?;
        data.widen(width);
        Ok(data)
    };
    train.widen(width);
    let validation = match &d.validation {
        Some(p) => read(p)?,
        None => {
            let (fit, val) = train.split_queries(d.validation_fraction, cfg.seed);
            train = fit;
            val
        }
    };
    let test = d.test.as_ref().map(read).transpose()?;
    if !train.queries.iter().any(|q| q.has_relevant()) {
        return Err(PipelineError::Unusable(
            "no training query has a relevant document".into(),
        ));
    }
    if !validation.queries.iter().any(|q| q.has_relevant()) {
        return Err(PipelineError::Unusable(
            "no validation query has a relevant document (add a validation file or raise \
             data.validation_fraction)"
                .into(),
        ));
    }
    Ok(Splits {
        train,
        validation,
        test,
    })
}

/// What a run produced.
#[derive(Debug, Clone)]
pub struct SearchRunResult {
    /// The written snapshot.
    pub snapshot: SearchSnapshot,
    /// `report.json`.
    pub report: Value,
}

/// Validation metrics of both players at one point of training.
#[derive(Debug, Clone)]
struct Checkpoint {
    phase: &'static str,
    epoch: usize,
    validation: PairMetrics,
    stats: Value,
}

impl Checkpoint {
    fn score(&self, role: Role, metric: &str) -> f64 {
        self.validation.score(role, metric)
    }

    fn to_json(&self) -> Value {
        json!({
            "phase": self.phase,
            "epoch": self.epoch,
            "stats": self.stats,
            "validation": self.validation.to_json(),
        })
    }
}

/// The run's log lines and validation curve, across phases.
struct Tracker<'a> {
    cfg: &'a SearchConfig,
    run: RunDir,
    checkpoints: Vec<Checkpoint>,
}

impl Tracker<'_> {
    fn record(&mut self, cp: Checkpoint) -> Result<(), PipelineError> {
        self.run.log(&cp.to_json())?;
        self.checkpoints.push(cp);
        Ok(())
    }

    fn validate(&self, data: &LtrData, g: &Scorer, d: &Scorer) -> PairMetrics {
        let ks = &self.cfg.eval.ks;
        let generator = evaluate(data, ks, |q| g.score(q.features.view()));
        let discriminator = if std::ptr::eq(g, d) || g == d {
            generator.clone()
        } else {
            evaluate(data, ks, |q| d.score(q.features.view()))
        };
        PairMetrics {
            generator,
            discriminator,
            blend: None,
        }
    }
}

/// The selected model of a supervised (baseline) run.
struct Supervised {
    scorer: Scorer,
    epoch: usize,
}

/// Trains a baseline `method`, validating every `eval.every_epochs`; returns the best scorer
/// (the untrained start competes too; ties keep the earlier one).
fn train_supervised(
    method: Method,
    splits: &Splits,
    tracker: &mut Tracker,
    phase: &'static str,
    progress: bool,
) -> Result<Supervised, PipelineError> {
    let cfg = tracker.cfg;
    let b = &cfg.baseline;
    let metric = cfg.eval.select_metric.as_str();
    let arch = cfg.scorer.architecture();
    let mut scorer = Scorer::new(
        arch,
        splits.train.n_features,
        &mut rng::stream(cfg.seed, 0x5ea_1417, 0),
    );
    let mut opt = FlatOptimizer::new(true, b.lr, b.l2, scorer.params.len());
    let v = tracker.validate(&splits.validation, &scorer, &scorer);
    let mut best = Best::new(
        v.score(Role::Discriminator, metric),
        (0usize, scorer.clone()),
    );
    tracker.record(Checkpoint {
        phase,
        epoch: 0,
        validation: v,
        stats: json!({}),
    })?;
    let bar = bar_for(progress, b.epochs as u64);
    bar.set_prefix(phase);
    for epoch in 1..=b.epochs {
        let loss = baseline_epoch(
            method,
            &mut scorer,
            &mut opt,
            &splits.train,
            b,
            cfg.seed,
            epoch as u64,
        );
        if !scorer.is_finite() {
            return Err(PipelineError::Diverged(method.as_str().into()));
        }
        bar.inc(1);
        if !is_due(epoch, cfg.eval.every_epochs, b.epochs) {
            continue;
        }
        let v = tracker.validate(&splits.validation, &scorer, &scorer);
        let score = v.score(Role::Discriminator, metric);
        bar.set_message(format!("val {metric} {score:.4}"));
        best.offer(score, || (epoch, scorer.clone()));
        tracker.record(Checkpoint {
            phase,
            epoch,
            validation: v,
            stats: json!({"loss": loss}),
        })?;
    }
    bar.finish_and_clear();
    let (epoch, scorer) = best.into_value();
    Ok(Supervised { scorer, epoch })
}

/// Initial and selected pair of a run, the selected epoch and the pretraining summary.
struct Trained {
    g0: Scorer,
    d0: Scorer,
    g: Scorer,
    d: Scorer,
    epoch: usize,
    pretrain: Value,
    /// The significance gate's verdict (None when `eval.gate_alpha` is 1 or for a baseline).
    gate: Option<Verdict>,
}

/// IRGAN: pretrain (or start at random), play the game, validate every `eval.every_epochs`
/// outer epochs and keep the best pair by `irgan.select_model`.
fn train_irgan(
    splits: &Splits,
    tracker: &mut Tracker,
    progress: bool,
) -> Result<Trained, PipelineError> {
    let cfg = tracker.cfg;
    let ir = &cfg.irgan;
    let metric = cfg.eval.select_metric.as_str();
    let (g0, d0, pretrain) = match ir.init.method() {
        Some(m) => {
            let sup = train_supervised(m, splits, tracker, "pretrain", progress)?;
            let summary = json!({"method": m.as_str(), "epoch": sup.epoch});
            (sup.scorer.clone(), sup.scorer, summary)
        }
        None => {
            let f = splits.train.n_features;
            let arch = cfg.scorer.architecture();
            let g = Scorer::new(arch, f, &mut rng::stream(cfg.seed, 0x5ea_1417, 1));
            let d = Scorer::new(arch, f, &mut rng::stream(cfg.seed, 0x5ea_1417, 2));
            (g, d, json!({"method": "random"}))
        }
    };
    let pairwise = cfg.method == Method::IrganPairwise;
    let mut game = Game::new(g0.clone(), d0.clone(), ir, pairwise, cfg.seed);
    let select = ir.select_model;
    let initial = Checkpoint {
        phase: "irgan",
        epoch: 0,
        validation: tracker.validate(&splits.validation, &g0, &d0),
        stats: json!({}),
    };
    let mut best = Best::new(
        initial.score(select, metric),
        (0usize, g0.clone(), d0.clone()),
    );
    tracker.record(initial)?;
    // The served ranker's selection metric query by query, for the gate.
    let gated = cfg.eval.gate_alpha < 1.0;
    let served_values = |g: &Scorer, d: &Scorer| {
        let s = match select {
            Role::Generator => g,
            Role::Discriminator => d,
        };
        query_metrics_all(&splits.validation, &cfg.eval.ks, |q| {
            s.score(q.features.view())
        })
        .into_iter()
        .map(|m| m.and_then(|m| m.get(metric).copied()).unwrap_or(0.0))
        .collect()
    };
    let mut gate = gated.then(|| Gate::new(served_values(&g0, &d0)));
    let bar = bar_for(progress, ir.epochs as u64);
    for epoch in 1..=ir.epochs {
        let mut d_stats = Default::default();
        for _ in 0..ir.d_epochs {
            d_stats = game.d_epoch(&splits.train);
        }
        let mut g_stats = Default::default();
        for _ in 0..ir.g_epochs {
            g_stats = game.g_epoch(&splits.train);
        }
        if !game.generator.is_finite() || !game.discriminator.is_finite() {
            return Err(PipelineError::Diverged(cfg.method.as_str().into()));
        }
        bar.inc(1);
        if !is_due(epoch, cfg.eval.every_epochs, ir.epochs) {
            continue;
        }
        let cp = Checkpoint {
            phase: "irgan",
            epoch,
            validation: tracker.validate(&splits.validation, &game.generator, &game.discriminator),
            stats: json!({"discriminator": d_stats, "generator": g_stats}),
        };
        bar.set_message(cp.validation.message(metric));
        if let Some(gate) = gate.as_mut() {
            gate.push(served_values(&game.generator, &game.discriminator));
        }
        best.offer(cp.score(select, metric), || {
            (epoch, game.generator.clone(), game.discriminator.clone())
        });
        tracker.record(cp)?;
    }
    bar.finish_and_clear();
    let (mut epoch, mut g, mut d) = best.into_value();
    let verdict = gate.map(|gate| gate.verdict(cfg.eval.gate_alpha, cfg.seed));
    if verdict.is_some_and(|v| !v.passed) {
        (epoch, g, d) = (0, g0.clone(), d0.clone());
    }
    Ok(Trained {
        g0,
        d0,
        g,
        d,
        epoch,
        pretrain,
        gate: verdict,
    })
}

/// Runs the configured method and writes `out/`.
pub fn run(
    cfg: &SearchConfig,
    out: &Path,
    progress: bool,
) -> Result<SearchRunResult, PipelineError> {
    let mut run = RunDir::create(out)?;
    let started = Instant::now();
    let splits = load_splits(cfg)?;
    let load_s = started.elapsed().as_secs_f64();
    run.open_log()?;
    let mut tracker = Tracker {
        cfg,
        run,
        checkpoints: Vec::new(),
    };
    let metric = cfg.eval.select_metric.as_str();
    let t = Instant::now();
    let trained = if cfg.method.is_irgan() {
        train_irgan(&splits, &mut tracker, progress)?
    } else {
        let sup = train_supervised(cfg.method, &splits, &mut tracker, "baseline", progress)?;
        let s = sup.scorer;
        Trained {
            g0: s.clone(),
            d0: s.clone(),
            g: s.clone(),
            d: s,
            epoch: sup.epoch,
            pretrain: Value::Null,
            gate: None,
        }
    };
    let train_s = t.elapsed().as_secs_f64();
    let Trained {
        g0,
        d0,
        g,
        d,
        epoch,
        pretrain,
        gate,
    } = trained;

    let ranker = if cfg.method.is_irgan() {
        cfg.irgan.select_model
    } else {
        Role::Discriminator
    };
    let ks = &cfg.eval.ks;
    let both = |data: &LtrData, g: &Scorer, d: &Scorer| {
        json!({
            "generator": evaluate(data, ks, |q| g.score(q.features.view())),
            "discriminator": evaluate(data, ks, |q| d.score(q.features.view())),
        })
    };
    // A baseline has no starting pair worth reporting: its "init" is a random scorer.
    let section = |data: &LtrData| {
        json!({
            "init": if cfg.method.is_irgan() { both(data, &g0, &d0) } else { Value::Null },
            "selected": both(data, &g, &d),
        })
    };
    let validation = section(&splits.validation);
    let test = splits.test.as_ref().map(section);
    let report = json!({
        "task": "search",
        "method": cfg.method.as_str(),
        "ranker": ranker.as_str(),
        "config": cfg,
        "data": {
            "features": splits.train.n_features,
            "train_queries": splits.train.queries.len(),
            "validation_queries": splits.validation.queries.len(),
            "test_queries": splits.test.as_ref().map(|t| t.queries.len()),
        },
        "pretrain": pretrain,
        "selection": {
            "epoch": epoch,
            "metric": metric,
            "model": ranker.as_str(),
            "gate": gate,
        },
        "validation": validation,
        "test": test,
        "timings_s": {
            "load": load_s,
            "train": train_s,
            "total": started.elapsed().as_secs_f64(),
        },
    });

    let snapshot = SearchSnapshot {
        version: 1,
        created_unix_ms: Snapshot::now_unix_ms(),
        generator: g,
        temperature: cfg.irgan.temperature as f32,
        discriminator: d,
        metadata: json!({
            "method": cfg.method.as_str(),
            "ranker": ranker.as_str(),
            "validation": report["validation"]["selected"],
        }),
    };
    let mut run = tracker.run;
    snapshot.write(&run.snapshot_dir())?;
    let svg = curve_svg(&tracker.checkpoints, metric, epoch);
    run.write_report(&report, &svg)?;
    Ok(SearchRunResult { snapshot, report })
}

/// Validation curves: one panel per phase (pretraining, baseline or game).
fn curve_svg(checkpoints: &[Checkpoint], metric: &str, selected: usize) -> String {
    let mut charts = Vec::new();
    for phase in ["pretrain", "baseline", "irgan"] {
        let cps: Vec<&Checkpoint> = checkpoints.iter().filter(|c| c.phase == phase).collect();
        if cps.is_empty() {
            continue;
        }
        let points = |role| {
            cps.iter()
                .map(|c| (c.epoch as f64, c.score(role, metric)))
                .collect()
        };
        let mut chart = Chart::new(
            format!("{phase}: validation {metric}"),
            "epoch",
            metric.to_string(),
        );
        if phase == "irgan" {
            chart.series = vec![
                Series::new("G", points(Role::Generator)),
                Series::new("D", points(Role::Discriminator)),
            ];
            chart.markers = vec![(selected as f64, "selected".into())];
        } else {
            chart.series = vec![Series::new("model", points(Role::Discriminator))];
        }
        charts.push(chart);
    }
    stack_svg(&charts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::letor_synth::synthetic_ltr;

    fn write_letor(path: &Path, data: &LtrData) {
        let mut s = String::new();
        for q in &data.queries {
            for (row, label) in q.labels.iter().enumerate() {
                s.push_str(&format!("{label} qid:{}", q.qid));
                for (f, v) in q.features.row(row).iter().enumerate() {
                    s.push_str(&format!(" {}:{v}", f + 1));
                }
                s.push_str(&format!(" # docid = {}\n", q.doc_ids[row]));
            }
        }
        std::fs::write(path, s).unwrap();
    }

    #[test]
    fn every_method_runs_end_to_end_and_is_reproducible() {
        let dir = tempfile::tempdir().unwrap();
        let train = dir.path().join("train.txt");
        let test = dir.path().join("test.txt");
        write_letor(&train, &synthetic_ltr(40, 12, 5, 1));
        write_letor(&test, &synthetic_ltr(10, 12, 5, 2));
        for method in [
            Method::Logistic,
            Method::Ranknet,
            Method::RanknetDynamic,
            Method::Lambdarank,
            Method::IrganPointwise,
            Method::IrganPairwise,
        ] {
            let mut cfg = SearchConfig {
                method,
                ..SearchConfig::default()
            };
            cfg.data.train = train.clone();
            cfg.data.test = Some(test.clone());
            cfg.scorer.hidden = 6;
            cfg.baseline.epochs = 4;
            cfg.baseline.lr = 0.01;
            cfg.irgan.epochs = 2;
            cfg.validate().unwrap();
            let out = dir.path().join(method.as_str());
            let r = run(&cfg, &out, false).unwrap();
            let ndcg = r.report["test"]["selected"]["discriminator"]["NDCG@10"]
                .as_f64()
                .unwrap();
            assert!(ndcg > 0.5, "{method:?}: {ndcg}");
            for f in [
                "snapshot/manifest.json",
                "log.jsonl",
                "report.json",
                "curve.svg",
            ] {
                assert!(out.join(f).exists(), "{method:?}: {f}");
            }
            assert_eq!(
                SearchSnapshot::read(&out.join("snapshot")).unwrap(),
                r.snapshot
            );
            let again = run(&cfg, &dir.path().join("again"), false).unwrap();
            assert_eq!(again.snapshot.generator, r.snapshot.generator, "{method:?}");
            assert_eq!(again.snapshot.discriminator, r.snapshot.discriminator);
        }
    }
}
