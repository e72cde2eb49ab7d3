//! The offline training job: load data, initialise G and D, play the game, select on
//! validation, report test once, write the snapshot, log, report and plot.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};

use crate::config::{Config, Init, ModelConfig, Role};
use crate::data::loader::{self, DataError, InteractionSets, LoadOptions};
use crate::data::{IdMap, Interactions, split, synth};
use crate::eval::{self, Metrics, Protocol};
use crate::model::MfModel;
use crate::report::plot::{Chart, Series, stack_svg};
use crate::rng;
use crate::store::atomic::write_atomic;
use crate::store::{Snapshot, SnapshotError};
use crate::train::irgan::{DStats, GStats, Game};
use crate::train::{als, bpr};

/// Why a training run failed.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// Input data could not be read.
    #[error(transparent)]
    Data(#[from] DataError),
    /// The snapshot could not be written (for example a non-finite parameter).
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
    /// The data set cannot be trained on.
    #[error("{0}")]
    Unusable(String),
}

/// Training data after the validation split.
#[derive(Debug, Clone)]
pub struct TrainData {
    /// External user ids.
    pub users: IdMap,
    /// External item ids.
    pub items: IdMap,
    /// The whole training file.
    pub train: InteractionSets,
    /// Training positives minus the validation hold-out: what the models learn from.
    pub fit: Interactions,
    /// Held-out training positives: what model selection looks at.
    pub validation: Interactions,
    /// The test file, read once for the final report.
    pub test: Option<InteractionSets>,
}

impl TrainData {
    /// Candidates excluded when validating under `protocol`.
    pub fn validation_exclude(&self, protocol: Protocol) -> Interactions {
        match protocol {
            Protocol::Irgan => self.fit.clone(),
            Protocol::Standard => self.train.seen.difference(&self.validation),
        }
    }

    /// Candidates excluded when testing under `protocol`.
    pub fn test_exclude(&self, protocol: Protocol) -> Interactions {
        match protocol {
            Protocol::Irgan => self.train.positives.clone(),
            Protocol::Standard => self.train.seen.clone(),
        }
    }
}

/// Loads the configured files (or generates the synthetic set) and carves the validation split.
pub fn load_data(cfg: &Config) -> Result<TrainData, TrainError> {
    let (users, items, train, test) = if cfg.data.train.as_os_str().is_empty() {
        let s = &cfg.data.synthetic;
        let (tr, te) = synth::generate(s, cfg.seed);
        let th = cfg.data.positive_threshold;
        (
            IdMap::sequential(s.users),
            IdMap::sequential(s.items),
            loader::to_sets(&tr, s.users, s.items, th),
            Some(loader::to_sets(&te, s.users, s.items, th)),
        )
    } else {
        // Imported factors name their rows; seed the id maps with them so rows line up.
        let factor_dir = [&cfg.generator, &cfg.discriminator]
            .into_iter()
            .find(|m| m.init == Init::Factors)
            .and_then(|m| m.factors.clone());
        let (users, items) = match &factor_dir {
            Some(dir) => loader::read_factor_ids(dir)?,
            None => (IdMap::new(), IdMap::new()),
        };
        let opts = LoadOptions {
            format: cfg.data.format,
            positive_threshold: cfg.data.positive_threshold,
        };
        let ds = loader::load_dataset(
            &cfg.data.train,
            cfg.data.test.as_deref(),
            &opts,
            users,
            items,
        )?;
        (ds.users, ds.items, ds.train, ds.test)
    };
    if train.positives.nnz() == 0 {
        return Err(TrainError::Unusable(
            "the training data has no positives".into(),
        ));
    }
    let (fit, validation) =
        split::holdout(&train.positives, cfg.data.validation_fraction, cfg.seed);
    Ok(TrainData {
        users,
        items,
        train,
        fit,
        validation,
        test,
    })
}

/// Builds a model's starting point as configured (random, imported factors, BPR, DNS or iALS),
/// trained on `fit`. `cache` reuses an identical pretraining of the other model.
pub fn init_model(
    m: &ModelConfig,
    cfg: &Config,
    data: &TrainData,
    role: Role,
    cache: &mut Vec<(ModelConfig, MfModel)>,
) -> Result<MfModel, TrainError> {
    let (nu, ni) = (data.users.len(), data.items.len());
    let same = |c: &ModelConfig| c.init == m.init && c.dim == m.dim && c.factors == m.factors;
    if m.init != Init::Random
        && let Some((_, model)) = cache.iter().find(|(c, _)| same(c))
    {
        return Ok(model.clone());
    }
    let mut r = rng::stream(cfg.seed, 0x1417, role as u64);
    let mut model = MfModel::random(nu, ni, m.dim, m.init_scale, &mut r);
    match m.init {
        Init::Random => {}
        Init::Factors => {
            let dir = m.factors.as_deref().unwrap_or(Path::new(""));
            model = loader::read_factors(dir)?;
            if model.dim() != m.dim {
                return Err(TrainError::Unusable(format!(
                    "{}.dim = {} but the factors in {} have dimension {}",
                    role.as_str(),
                    m.dim,
                    dir.display(),
                    model.dim()
                )));
            }
            // Ids the factor files do not know (only in the data) start small and unbiased.
            model.grow(nu, ni, m.init_scale, &mut r);
        }
        Init::Bpr => {
            bpr::train(
                &mut model,
                &data.fit,
                &cfg.pretrain.bpr,
                bpr::Negatives::Uniform,
                cfg.seed,
            );
        }
        Init::Dns => {
            bpr::train(
                &mut model,
                &data.fit,
                &cfg.pretrain.bpr,
                bpr::Negatives::Dynamic,
                cfg.seed,
            );
        }
        Init::Als => als::train(&mut model, &data.fit, &cfg.pretrain.als),
    }
    if !model.is_finite() {
        return Err(TrainError::Unusable(format!(
            "{} pretraining diverged (non-finite parameters); lower its learning rate",
            role.as_str()
        )));
    }
    cache.push((m.clone(), model.clone()));
    Ok(model)
}

/// Metrics of `model` ranking `relevant` with `exclude` removed from the candidates.
pub fn evaluate_model(
    model: &MfModel,
    exclude: &Interactions,
    relevant: &Interactions,
    ks: &[usize],
) -> Metrics {
    eval::evaluate(
        |u, out| model.scores_into(u, out),
        model.n_items(),
        exclude,
        relevant,
        ks,
    )
}

/// One validation point of a run.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    /// Outer epoch (0 = the initial models).
    pub epoch: usize,
    /// G-epochs played so far.
    pub g_epochs: u64,
    /// D-epochs played so far.
    pub d_epochs: u64,
    /// Seconds since the start of the adversarial phase.
    pub elapsed: f64,
    /// Last D-epoch statistics.
    pub d: DStats,
    /// Last G-epoch statistics.
    pub g: GStats,
    /// Validation metrics of G.
    pub generator: Metrics,
    /// Validation metrics of D.
    pub discriminator: Metrics,
}

impl Checkpoint {
    fn to_json(&self) -> Value {
        json!({
            "epoch": self.epoch,
            "g_epochs": self.g_epochs,
            "d_epochs": self.d_epochs,
            "elapsed_s": round(self.elapsed),
            "d": { "loss": self.d.loss, "accuracy_real": self.d.accuracy_real,
                   "accuracy_generated": self.d.accuracy_generated },
            "g": { "loss": self.g.loss, "mean_reward": self.g.mean_reward, "entropy": self.g.entropy },
            "validation": { "generator": self.generator, "discriminator": self.discriminator },
        })
    }

    fn score(&self, role: Role, metric: &str) -> f64 {
        let m = match role {
            Role::Generator => &self.generator,
            Role::Discriminator => &self.discriminator,
        };
        m.get(metric).copied().unwrap_or(f64::NEG_INFINITY)
    }
}

/// What a finished run produced.
#[derive(Debug, Clone)]
pub struct RunResult {
    /// The whole `report.json`.
    pub report: Value,
    /// The selected pair.
    pub snapshot: Snapshot,
}

/// Where a game stands after a G-epoch: what [`play`]'s callback sees.
struct Progress<'a> {
    game: &'a Game,
    epoch: usize,
    /// G-epochs played in this outer epoch.
    g_in_epoch: usize,
    d: DStats,
    g: GStats,
}

/// Plays the configured schedule on `fit`, calling `after_g_epoch` after every G-epoch; the
/// callback returns `Break` to stop early.
fn play(
    game: &mut Game,
    fit: &Interactions,
    cfg: &Config,
    bar: &ProgressBar,
    mut after_g_epoch: impl FnMut(Progress<'_>) -> Result<ControlFlow<()>, TrainError>,
) -> Result<(), TrainError> {
    let ir = &cfg.irgan;
    for epoch in 1..=ir.epochs {
        game.d_phase(fit, ir.d_epochs);
        bar.inc(ir.d_epochs as u64);
        let d = game.d_stats();
        for k in 0..ir.g_epochs {
            let g = game.g_epoch(fit);
            bar.inc(1);
            let p = Progress {
                game,
                epoch,
                g_in_epoch: k + 1,
                d,
                g,
            };
            if after_g_epoch(p)?.is_break() {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// Runs the whole job and writes `out/` (`snapshot/`, `log.jsonl`, `report.json`, `curve.svg`).
///
/// 1. Pretrain G and D on the training data minus the validation hold-out, play the game, and
///    validate every `eval.every_g_epochs` G-epochs; the best checkpoint by
///    `eval.select_metric` of `eval.select_model` is selected (the initial pair competes too).
/// 2. With `eval.refit`, replay the same pretraining and schedule up to the selected
///    checkpoint on all training data (validation included).
/// 3. Evaluate the initial and the selected pair on the test file, once, and write the outputs.
pub fn run(cfg: &Config, out: &Path, progress: bool) -> Result<RunResult, TrainError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| TrainError::Io { path, source }
    };
    std::fs::create_dir_all(out).map_err(io(out))?;
    let started = Instant::now();
    let data = load_data(cfg)?;
    let load_s = started.elapsed().as_secs_f64();

    let t = Instant::now();
    let bar = spinner(progress, "pretraining");
    let (g0, d0) = init_pair(cfg, &data)?;
    bar.finish_and_clear();
    let mut pretrain_s = t.elapsed().as_secs_f64();

    let protocol = cfg.eval.protocol;
    let ks = &cfg.eval.ks;
    let val_exclude = data.validation_exclude(protocol);
    let validate = |g: &MfModel, d: &MfModel| {
        (
            evaluate_model(g, &val_exclude, &data.validation, ks),
            evaluate_model(d, &val_exclude, &data.validation, ks),
        )
    };

    let log_path = out.join("log.jsonl");
    let mut log = BufWriter::new(File::create(&log_path).map_err(io(&log_path))?);
    let (gv, dv) = validate(&g0, &d0);
    let initial = Checkpoint {
        epoch: 0,
        g_epochs: 0,
        d_epochs: 0,
        elapsed: 0.0,
        d: DStats::default(),
        g: GStats::default(),
        generator: gv,
        discriminator: dv,
    };
    writeln!(log, "{}", initial.to_json()).map_err(io(&log_path))?;
    let (select_model, metric) = (cfg.eval.select_model, cfg.eval.select_metric.as_str());
    let mut best = (initial.clone(), g0.clone(), d0.clone());
    let mut checkpoints = vec![initial.clone()];

    let t = Instant::now();
    let mut eval_s = 0.0;
    let ir = &cfg.irgan;
    let bar = bar_for(progress, (ir.epochs * (ir.d_epochs + ir.g_epochs)) as u64);
    let mut game = Game::new(g0.clone(), d0.clone(), cfg.game());
    play(&mut game, &data.fit, cfg, &bar, |p| {
        if p.g_in_epoch % cfg.eval.every_g_epochs != 0 && p.g_in_epoch != ir.g_epochs {
            return Ok(ControlFlow::Continue(()));
        }
        let te = Instant::now();
        let (gv, dv) = validate(&p.game.generator, &p.game.discriminator);
        eval_s += te.elapsed().as_secs_f64();
        let cp = Checkpoint {
            epoch: p.epoch,
            g_epochs: p.game.g_epochs(),
            d_epochs: p.game.d_epochs(),
            elapsed: t.elapsed().as_secs_f64(),
            d: p.d,
            g: p.g,
            generator: gv,
            discriminator: dv,
        };
        writeln!(log, "{}", cp.to_json()).map_err(io(&log_path))?;
        bar.set_message(format!(
            "val {metric}: G {:.4} D {:.4}",
            cp.score(Role::Generator, metric),
            cp.score(Role::Discriminator, metric)
        ));
        // Ties keep the earlier (simpler) model.
        if cp.score(select_model, metric) > best.0.score(select_model, metric) {
            best = (
                cp.clone(),
                p.game.generator.clone(),
                p.game.discriminator.clone(),
            );
        }
        checkpoints.push(cp);
        Ok(ControlFlow::Continue(()))
    })?;
    bar.finish_and_clear();
    log.flush().map_err(io(&log_path))?;
    let mut adversarial_s = t.elapsed().as_secs_f64();

    let (chosen, mut g_best, mut d_best) = best;
    let (mut g_init, mut d_init) = (g0, d0);
    let refit = cfg.eval.refit && data.validation.nnz() > 0;
    if refit {
        // Same settings, all training positives: pretraining and the game up to the
        // selected checkpoint, replayed with the same random streams.
        let full = TrainData {
            fit: data.train.positives.clone(),
            ..data.clone()
        };
        let t = Instant::now();
        (g_init, d_init) = init_pair(cfg, &full)?;
        pretrain_s += t.elapsed().as_secs_f64();
        let t = Instant::now();
        let mut game = Game::new(g_init.clone(), d_init.clone(), cfg.game());
        if chosen.g_epochs > 0 {
            let bar = bar_for(
                progress,
                (chosen.epoch * (ir.d_epochs + ir.g_epochs)) as u64,
            );
            play(&mut game, &full.fit, cfg, &bar, |p| {
                Ok(if p.game.g_epochs() >= chosen.g_epochs {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                })
            })?;
            bar.finish_and_clear();
        }
        (g_best, d_best) = (game.generator, game.discriminator);
        adversarial_s += t.elapsed().as_secs_f64();
    }

    let mut test_json = Value::Null;
    if let Some(test) = &data.test {
        let ex = data.test_exclude(protocol);
        let on_test = |m: &MfModel| evaluate_model(m, &ex, &test.positives, ks);
        test_json = json!({
            "init": { "generator": on_test(&g_init), "discriminator": on_test(&d_init) },
            "selected": { "generator": on_test(&g_best), "discriminator": on_test(&d_best) },
        });
    }
    let report = json!({
        "config": cfg,
        "data": {
            "users": data.users.len(),
            "items": data.items.len(),
            "train_positives": data.train.positives.nnz(),
            "fit_positives": data.fit.nnz(),
            "validation_positives": data.validation.nnz(),
            "test_positives": data.test.as_ref().map(|t| t.positives.nnz()),
        },
        "protocol": protocol,
        "selection": {
            "model": select_model.as_str(),
            "metric": metric,
            "epoch": chosen.epoch,
            "g_epochs": chosen.g_epochs,
            "d_epochs": chosen.d_epochs,
            "refit_on_all_training_data": refit,
        },
        "validation": {
            "init": { "generator": initial.generator, "discriminator": initial.discriminator },
            "selected": { "generator": chosen.generator, "discriminator": chosen.discriminator },
            "last": checkpoints.last().map(|c| json!({
                "generator": c.generator, "discriminator": c.discriminator })),
        },
        "test": test_json,
        "timings_s": {
            "load": round(load_s),
            "pretrain": round(pretrain_s),
            "adversarial": round(adversarial_s),
            "validation": round(eval_s),
            "total": round(started.elapsed().as_secs_f64()),
        },
    });

    let snapshot = Snapshot {
        version: 1,
        created_unix_ms: now_ms(),
        generator: g_best,
        generator_temperature: cfg.generator.temperature as f32,
        discriminator: d_best,
        users: data.users.clone(),
        items: data.items.clone(),
        metadata: json!({
            "source": "irgan train",
            "config": cfg,
            "selection": report["selection"].clone(),
            "validation": report["validation"]["selected"].clone(),
            "training": { "g_epochs": chosen.g_epochs, "d_epochs": chosen.d_epochs },
        }),
    };
    snapshot.write(&out.join("snapshot"))?;
    let text = serde_json::to_string_pretty(&report).unwrap_or_default();
    write_atomic(&out.join("report.json"), text.as_bytes())
        .map_err(io(&out.join("report.json")))?;
    let svg = curve_svg(&checkpoints, metric, chosen.g_epochs);
    write_atomic(&out.join("curve.svg"), svg.as_bytes()).map_err(io(&out.join("curve.svg")))?;
    Ok(RunResult { report, snapshot })
}

/// G's and D's starting points on `data.fit` (pretraining shared when both use the same).
fn init_pair(cfg: &Config, data: &TrainData) -> Result<(MfModel, MfModel), TrainError> {
    let mut cache = Vec::new();
    let g = init_model(&cfg.generator, cfg, data, Role::Generator, &mut cache)?;
    let d = init_model(
        &cfg.discriminator,
        cfg,
        data,
        Role::Discriminator,
        &mut cache,
    )?;
    Ok((g, d))
}

/// The training curve: validation metric of G and D, and the game's statistics, per checkpoint.
fn curve_svg(checkpoints: &[Checkpoint], metric: &str, selected_g_epochs: u64) -> String {
    let x = |c: &Checkpoint| c.g_epochs as f64;
    let line = |name: &str, f: &dyn Fn(&Checkpoint) -> f64| Series {
        name: name.to_string(),
        points: checkpoints.iter().map(|c| (x(c), f(c))).collect(),
    };
    let marker = vec![(selected_g_epochs as f64, "selected".to_string())];
    let quality = Chart {
        title: format!("Validation {metric}"),
        x_label: "G-epochs".into(),
        y_label: metric.into(),
        series: vec![
            line("G", &|c| c.score(Role::Generator, metric)),
            line("D", &|c| c.score(Role::Discriminator, metric)),
        ],
        markers: marker.clone(),
    };
    let game = Chart {
        title: "The game".into(),
        x_label: "G-epochs".into(),
        y_label: "value".into(),
        series: vec![
            line("D accuracy (real)", &|c| c.d.accuracy_real),
            line("D accuracy (generated)", &|c| c.d.accuracy_generated),
            line("D loss", &|c| c.d.loss),
            line("G mean reward", &|c| c.g.mean_reward),
        ],
        markers: marker,
    };
    // The initial checkpoint has no game statistics yet.
    let mut game = game;
    for s in &mut game.series {
        s.points.retain(|&(g, _)| g > 0.0);
    }
    stack_svg(&[quality, game])
}

/// A progress bar over `total` epochs (hidden without `progress`).
pub(crate) fn bar_for(progress: bool, total: u64) -> ProgressBar {
    if !progress {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    let style = ProgressStyle::with_template(
        "{elapsed_precise} [{bar:30}] {pos}/{len} epochs (ETA {eta}) {msg}",
    )
    .map(|s| s.progress_chars("=> "))
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar
}

fn spinner(progress: bool, msg: &'static str) -> ProgressBar {
    if !progress {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new_spinner();
    bar.set_message(msg);
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    bar
}

fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
