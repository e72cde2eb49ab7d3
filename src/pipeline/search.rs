//! `irgan train` for `task = "search"`: load LETOR files, train the configured method, select
//! on validation queries, report test once, and write `out/` (`snapshot/`, `log.jsonl`,
//! `report.json`, `curve.svg`).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::{Value, json};

use crate::config::Role;
use crate::config::search::{Method, SearchConfig};
use crate::data::letor::{LtrData, LtrError, read_letor};
use crate::eval::letor::{Metrics, evaluate};
use crate::model::features::{FlatOptimizer, Scorer};
use crate::pipeline::recommend::bar_for;
use crate::report::plot::{Chart, Series, stack_svg};
use crate::rng;
use crate::store::atomic::write_atomic;
use crate::store::search_snapshot::SearchSnapshot;
use crate::store::snapshot::SnapshotError;
use crate::train::ltr::{Game, baseline_epoch};

/// Why a search run failed.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    /// A ranking file could not be read.
    #[error(transparent)]
    Data(#[from] LtrError),
    /// The snapshot could not be written.
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    /// An output file could not be written.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The data cannot be trained on.
    #[error("{0}")]
    Unusable(String),
    /// Training produced non-finite parameters.
    #[error("{0} diverged (non-finite parameters); lower its learning rate")]
    Diverged(String),
}

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
pub fn load_splits(cfg: &SearchConfig) -> Result<Splits, SearchError> {
    let d = &cfg.data;
    let mut train = read_letor(&d.train, d.n_features)?;
    let width = d.n_features.unwrap_or(train.n_features);
    let read = |p: &PathBuf| -> Result<LtrData, SearchError> {
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
        return Err(SearchError::Unusable(
            "no training query has a relevant document".into(),
        ));
    }
    if !validation.queries.iter().any(|q| q.has_relevant()) {
        return Err(SearchError::Unusable(
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
    generator: Metrics,
    discriminator: Metrics,
    stats: Value,
}

impl Checkpoint {
    fn score(&self, role: Role, metric: &str) -> f64 {
        let m = match role {
            Role::Generator => &self.generator,
            Role::Discriminator => &self.discriminator,
        };
        m.get(metric).copied().unwrap_or(f64::NEG_INFINITY)
    }

    fn to_json(&self) -> Value {
        json!({
            "phase": self.phase,
            "epoch": self.epoch,
            "stats": self.stats,
            "validation": {"generator": self.generator, "discriminator": self.discriminator},
        })
    }
}

/// Accumulates log lines, the curve and the selection of one training phase.
struct Tracker<'a> {
    cfg: &'a SearchConfig,
    log: BufWriter<File>,
    log_path: PathBuf,
    checkpoints: Vec<Checkpoint>,
}

impl Tracker<'_> {
    fn record(&mut self, cp: Checkpoint) -> Result<(), SearchError> {
        writeln!(self.log, "{}", cp.to_json()).map_err(|source| SearchError::Io {
            path: self.log_path.clone(),
            source,
        })?;
        self.checkpoints.push(cp);
        Ok(())
    }

    fn validate(&self, data: &LtrData, g: &Scorer, d: &Scorer) -> (Metrics, Metrics) {
        let ks = &self.cfg.eval.ks;
        let gm = evaluate(data, ks, |q| g.score(q.features.view()));
        let dm = if std::ptr::eq(g, d) || g == d {
            gm.clone()
        } else {
            evaluate(data, ks, |q| d.score(q.features.view()))
        };
        (gm, dm)
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
) -> Result<Supervised, SearchError> {
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
    let (v, _) = tracker.validate(&splits.validation, &scorer, &scorer);
    let mut best = (v[metric], 0usize, scorer.clone());
    tracker.record(Checkpoint {
        phase,
        epoch: 0,
        generator: v.clone(),
        discriminator: v,
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
            return Err(SearchError::Diverged(method.as_str().into()));
        }
        bar.inc(1);
        if epoch % cfg.eval.every_epochs != 0 && epoch != b.epochs {
            continue;
        }
        let (v, _) = tracker.validate(&splits.validation, &scorer, &scorer);
        bar.set_message(format!("val {metric} {:.4}", v[metric]));
        if v[metric] > best.0 {
            best = (v[metric], epoch, scorer.clone());
        }
        tracker.record(Checkpoint {
            phase,
            epoch,
            generator: v.clone(),
            discriminator: v,
            stats: json!({"loss": loss}),
        })?;
    }
    bar.finish_and_clear();
    Ok(Supervised {
        scorer: best.2,
        epoch: best.1,
    })
}

/// Runs the configured method and writes `out/`.
pub fn run(cfg: &SearchConfig, out: &Path, progress: bool) -> Result<SearchRunResult, SearchError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| SearchError::Io { path, source }
    };
    std::fs::create_dir_all(out).map_err(io(out))?;
    let started = Instant::now();
    let splits = load_splits(cfg)?;
    let load_s = started.elapsed().as_secs_f64();
    let log_path = out.join("log.jsonl");
    let mut tracker = Tracker {
        cfg,
        log: BufWriter::new(File::create(&log_path).map_err(io(&log_path))?),
        log_path: log_path.clone(),
        checkpoints: Vec::new(),
    };
    let metric = cfg.eval.select_metric.as_str();
    let t = Instant::now();

    // (initial G, initial D, selected G, selected D, selected epoch, pretraining summary)
    let (g0, d0, g, d, epoch, pretrain) = if cfg.method.is_irgan() {
        let ir = &cfg.irgan;
        let (g0, d0, pretrain) = match ir.init.method() {
            Some(m) => {
                let sup = train_supervised(m, &splits, &mut tracker, "pretrain", progress)?;
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
        let (gv, dv) = tracker.validate(&splits.validation, &g0, &d0);
        let select = ir.select_model;
        let initial = Checkpoint {
            phase: "irgan",
            epoch: 0,
            generator: gv,
            discriminator: dv,
            stats: json!({}),
        };
        let mut best = (
            initial.score(select, metric),
            0usize,
            g0.clone(),
            d0.clone(),
        );
        tracker.record(initial)?;
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
                return Err(SearchError::Diverged(cfg.method.as_str().into()));
            }
            bar.inc(1);
            if epoch % cfg.eval.every_epochs != 0 && epoch != ir.epochs {
                continue;
            }
            let (gv, dv) =
                tracker.validate(&splits.validation, &game.generator, &game.discriminator);
            let cp = Checkpoint {
                phase: "irgan",
                epoch,
                generator: gv,
                discriminator: dv,
                stats: json!({"discriminator": d_stats, "generator": g_stats}),
            };
            bar.set_message(format!(
                "val {metric}: G {:.4} D {:.4}",
                cp.score(Role::Generator, metric),
                cp.score(Role::Discriminator, metric)
            ));
            if cp.score(select, metric) > best.0 {
                best = (
                    cp.score(select, metric),
                    epoch,
                    game.generator.clone(),
                    game.discriminator.clone(),
                );
            }
            tracker.record(cp)?;
        }
        bar.finish_and_clear();
        (g0, d0, best.2, best.3, best.1, pretrain)
    } else {
        let sup = train_supervised(cfg.method, &splits, &mut tracker, "baseline", progress)?;
        let s = sup.scorer;
        (s.clone(), s.clone(), s.clone(), s, sup.epoch, Value::Null)
    };
    let train_s = t.elapsed().as_secs_f64();
    tracker.log.flush().map_err(io(&log_path))?;

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
        "selection": {"epoch": epoch, "metric": metric, "model": ranker.as_str()},
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
        created_unix_ms: crate::store::Snapshot::now_unix_ms(),
        generator: g,
        temperature: cfg.irgan.temperature as f32,
        discriminator: d,
        metadata: json!({
            "method": cfg.method.as_str(),
            "ranker": ranker.as_str(),
            "validation": report["validation"]["selected"],
        }),
    };
    snapshot.write(&out.join("snapshot"))?;
    let mut bytes = serde_json::to_vec_pretty(&report).map_err(|e| SearchError::Io {
        path: out.join("report.json"),
        source: e.into(),
    })?;
    bytes.push(b'\n');
    write_atomic(&out.join("report.json"), &bytes).map_err(io(&out.join("report.json")))?;
    let svg = curve_svg(&tracker.checkpoints, metric, epoch);
    write_atomic(&out.join("curve.svg"), svg.as_bytes()).map_err(io(&out.join("curve.svg")))?;
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
