//! The recommendation task of `irgan train`: load interactions, initialise G and D, play the
//! game, select on validation, report test once, write the snapshot, log, report and plot.

use std::ops::ControlFlow;
use std::path::Path;
use std::time::Instant;

use indicatif::ProgressBar;
use serde_json::{Value, json};

use crate::config::{Config, Init, Role, Served};
use crate::data::loader::{self, LoadOptions};
use crate::data::{IdMap, Interactions, split, synth};
use crate::eval::metrics::UserMetrics;
use crate::eval::{
    average, blend_user_metrics, evaluate_blend, evaluate_model, model_user_metrics,
};
use crate::model::MfModel;
use crate::pipeline::PipelineError;
use crate::pipeline::export::write_factors;
use crate::pipeline::gate::{Gate, Verdict};
use crate::pipeline::pretrain::PretrainValidation;
use crate::pipeline::progress::{bar_for, spinner};
use crate::pipeline::run_dir::{RunDir, round_s};
use crate::pipeline::select::{Best, PairMetrics, is_due};
use crate::pipeline::start_split;
use crate::report::plot::{Chart, Series, stack_svg};
use crate::store::Snapshot;
use crate::train::init::{Unobserved, init_pair};
use crate::train::irgan::{DStats, GStats, Game};

pub use crate::data::train_data::TrainData;
pub use crate::pipeline::TrainError;
pub use crate::train::init::init_model;

/// Loads the configured files (or generates the synthetic set) and carves the validation split.
pub fn load_data(cfg: &Config) -> Result<TrainData, PipelineError> {
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
        return Err(PipelineError::Unusable(
            "the training data has no positives".into(),
        ));
    }
    start_split::check(cfg)?;
    let (fit, validation) = split::holdout(
        &train.positives,
        cfg.data.validation_fraction,
        cfg.split_seed(),
    );
    Ok(TrainData {
        users,
        items,
        train,
        fit,
        validation,
        test,
    })
}

/// [`load_data`] without the test file: `data.test` is never opened (of synthetic data, the
/// generated test half is dropped), so nothing downstream can look at it.
pub fn load_validation_data(cfg: &Config) -> Result<TrainData, PipelineError> {
    let mut blind = cfg.clone();
    blind.data.test = None;
    let mut data = load_data(&blind)?;
    data.test = None;
    Ok(data)
}

/// The selected point of a run judged on validation only (see [`validate_only`]).
#[derive(Debug, Clone)]
pub struct Validated {
    /// `eval.select_metric` of `eval.select_model` at the selected point.
    pub score: f64,
    /// Outer epoch of the selected point (0 = the pretrained start).
    pub epoch: usize,
    /// G-epochs played up to the selected point.
    pub g_epochs: u64,
    /// Validation metrics of both players at the selected point.
    pub selected: PairMetrics,
    /// Validation metrics of both players at the start.
    pub initial: PairMetrics,
}

/// Pretrains, plays and selects exactly as [`run`] does before its refit and test report, on the
/// fit/validation split of the training data only: the test file is never opened and nothing
/// is written. `stop` is asked after pretraining and after every G-epoch; a yes ends the run
/// with [`PipelineError::Stopped`]. For `irgan tune`.
pub fn validate_only(cfg: &Config, stop: &dyn Fn() -> bool) -> Result<Validated, PipelineError> {
    let data = load_validation_data(cfg)?;
    let bar = ProgressBar::hidden();
    let mut watch = PretrainValidation::new(cfg, &data, &bar);
    let (g0, d0) = init_pair(&cfg.generator, &cfg.discriminator, cfg, &data, &mut watch)?;
    if stop() {
        return Err(PipelineError::Stopped);
    }
    let played = play_and_select(cfg, &data, (&g0, &d0), &mut |_| Ok(()), stop, false)?;
    let (model, metric) = (cfg.eval.select_model, cfg.eval.select_metric.as_str());
    Ok(Validated {
        score: played.chosen.served_score(model, metric),
        epoch: played.chosen.epoch,
        g_epochs: played.chosen.g_epochs,
        selected: played.chosen.validation,
        initial: played.initial.validation,
    })
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
    /// Validation metrics of G and D.
    pub validation: PairMetrics,
}

impl Checkpoint {
    fn to_json(&self) -> Value {
        json!({
            "epoch": self.epoch,
            "g_epochs": self.g_epochs,
            "d_epochs": self.d_epochs,
            "elapsed_s": round_s(self.elapsed),
            "d": { "loss": self.d.loss, "accuracy_real": self.d.accuracy_real,
                   "accuracy_generated": self.d.accuracy_generated },
            "g": { "loss": self.g.loss, "mean_reward": self.g.mean_reward, "entropy": self.g.entropy },
            "validation": self.validation.to_json(),
        })
    }

    fn score(&self, role: Role, metric: &str) -> f64 {
        self.validation.score(role, metric)
    }

    fn served_score(&self, served: Served, metric: &str) -> f64 {
        self.validation.served_score(served, metric)
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
    mut after_g_epoch: impl FnMut(Progress<'_>) -> Result<ControlFlow<()>, PipelineError>,
) -> Result<(), PipelineError> {
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

/// The selected point and pair of the adversarial phase, with its validation history.
struct Played {
    initial: Checkpoint,
    chosen: Checkpoint,
    g: MfModel,
    d: MfModel,
    checkpoints: Vec<Checkpoint>,
    validation_s: f64,
    /// The significance gate's verdict (None when `eval.gate_alpha` is 1).
    gate: Option<Verdict>,
}

/// Plays the game from `(g0, d0)` on `data.fit`, validating every `eval.every_g_epochs`
/// G-epochs (and the start), passing each point to `log` and keeping the best by
/// `eval.select_metric` of `eval.select_model`. `stop` is asked after every G-epoch; when it
/// says yes the run ends with [`PipelineError::Stopped`].
fn play_and_select(
    cfg: &Config,
    data: &TrainData,
    (g0, d0): (&MfModel, &MfModel),
    log: &mut dyn FnMut(&Checkpoint) -> Result<(), PipelineError>,
    stop: &dyn Fn() -> bool,
    progress: bool,
) -> Result<Played, PipelineError> {
    let ks = &cfg.eval.ks;
    let val_exclude = cfg.eval.protocol.validation_exclude(data);
    let (select_model, metric) = (cfg.eval.select_model, cfg.eval.select_metric.as_str());
    let gated = cfg.eval.gate_alpha < 1.0;
    let users = |m: &MfModel| model_user_metrics(m, &val_exclude, &data.validation, ks);
    // Validation metrics of the pair, and (for the gate) the served model's selection metric
    // user by user.
    let validate = |g: &MfModel, d: &MfModel| {
        let g_users = users(g);
        // Both players often start from one pretraining: evaluate it once.
        let same = g == d;
        let d_users = (!same).then(|| users(d));
        // A blend of one model with itself ranks as that model does.
        let blend_users = (select_model == Served::Blend && !same).then(|| {
            let w = cfg.eval.blend_weight;
            blend_user_metrics(g, d, w, &val_exclude, &data.validation, ks)
        });
        let served = match select_model {
            Served::Generator => &g_users,
            Served::Discriminator => d_users.as_ref().unwrap_or(&g_users),
            Served::Blend => blend_users.as_ref().unwrap_or(&g_users),
        };
        let values = gated.then(|| unit_values(served, metric));
        let generator = average(&g_users, ks);
        let pair = PairMetrics {
            discriminator: d_users.map_or_else(|| generator.clone(), |u| average(&u, ks)),
            blend: (select_model == Served::Blend)
                .then(|| blend_users.map_or_else(|| generator.clone(), |u| average(&u, ks))),
            generator,
        };
        (pair, values)
    };
    let (validation, start_values) = validate(g0, d0);
    let initial = Checkpoint {
        epoch: 0,
        g_epochs: 0,
        d_epochs: 0,
        elapsed: 0.0,
        d: DStats::default(),
        g: GStats::default(),
        validation,
    };
    let mut gate = start_values.map(Gate::new);
    log(&initial)?;
    let mut best = Best::new(
        initial.served_score(select_model, metric),
        (initial.clone(), g0.clone(), d0.clone()),
    );
    let mut checkpoints = vec![initial.clone()];

    let t = Instant::now();
    let mut validation_s = 0.0;
    let ir = &cfg.irgan;
    let bar = bar_for(progress, (ir.epochs * (ir.d_epochs + ir.g_epochs)) as u64);
    let mut game = Game::new(g0.clone(), d0.clone(), cfg.game());
    play(&mut game, &data.fit, cfg, &bar, |p| {
        if stop() {
            return Err(PipelineError::Stopped);
        }
        if !is_due(p.g_in_epoch, cfg.eval.every_g_epochs, ir.g_epochs) {
            return Ok(ControlFlow::Continue(()));
        }
        let te = Instant::now();
        let (validation, values) = validate(&p.game.generator, &p.game.discriminator);
        if let (Some(gate), Some(v)) = (gate.as_mut(), values) {
            gate.push(v);
        }
        validation_s += te.elapsed().as_secs_f64();
        let cp = Checkpoint {
            epoch: p.epoch,
            g_epochs: p.game.g_epochs(),
            d_epochs: p.game.d_epochs(),
            elapsed: t.elapsed().as_secs_f64(),
            d: p.d,
            g: p.g,
            validation,
        };
        log(&cp)?;
        bar.set_message(cp.validation.message(metric));
        best.offer(cp.served_score(select_model, metric), || {
            let (g, d) = (&p.game.generator, &p.game.discriminator);
            (cp.clone(), g.clone(), d.clone())
        });
        checkpoints.push(cp);
        Ok(ControlFlow::Continue(()))
    })?;
    bar.finish_and_clear();
    let (mut chosen, mut g, mut d) = best.into_value();
    let verdict = gate.map(|gate| gate.verdict(cfg.eval.gate_alpha, cfg.seed));
    if verdict.is_some_and(|v| !v.passed) {
        (chosen, g, d) = (initial.clone(), g0.clone(), d0.clone());
    }
    Ok(Played {
        initial,
        chosen,
        g,
        d,
        checkpoints,
        validation_s,
        gate: verdict,
    })
}

/// `metric` of each validated user (0 where it cannot be measured), in user order: what the
/// selection gate compares.
fn unit_values(users: &[Option<UserMetrics>], metric: &str) -> Vec<f64> {
    users
        .iter()
        .map(|u| u.as_ref().and_then(|u| u.value(metric)).unwrap_or(0.0))
        .collect()
}

/// Replays pretraining (`pretrain_epochs` epochs of an epoch-wise one, when validation chose
/// them) and the game up to `chosen` on all training positives (validation included), with the
/// same random streams; returns the initial and the final pair.
fn refit(
    cfg: &Config,
    data: &TrainData,
    chosen: &Checkpoint,
    pretrain_epochs: Option<usize>,
    progress: bool,
    timings: &mut Timings,
) -> Result<[MfModel; 4], PipelineError> {
    let full = TrainData {
        fit: data.train.positives.clone(),
        ..data.clone()
    };
    let t = Instant::now();
    let mut pretrain_cfg = cfg.clone();
    if let Some(epochs) = pretrain_epochs {
        pretrain_cfg.pretrain.softmax.epochs = epochs;
    }
    let bar = spinner(progress, "pretraining on all training data");
    let (g_init, d_init) = init_pair(
        &cfg.generator,
        &cfg.discriminator,
        &pretrain_cfg,
        &full,
        &mut Unobserved,
    )?;
    bar.finish_and_clear();
    timings.pretrain += t.elapsed().as_secs_f64();
    let t = Instant::now();
    let ir = &cfg.irgan;
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
    timings.adversarial += t.elapsed().as_secs_f64();
    Ok([g_init, d_init, game.generator, game.discriminator])
}

/// How [`run`] runs, beyond the config.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunOptions {
    /// Show progress bars.
    pub progress: bool,
    /// Also write the pretrained pair as factor directories under `start/`.
    pub save_start: bool,
}

/// Seconds spent in each phase.
#[derive(Default)]
struct Timings {
    load: f64,
    pretrain: f64,
    adversarial: f64,
    validation: f64,
}

/// Runs the whole job and writes `out/` (`snapshot/`, `log.jsonl`, `report.json`, `curve.svg`).
///
/// 1. Pretrain G and D on the training data minus the validation hold-out, play the game, and
///    validate every `eval.every_g_epochs` G-epochs; the best checkpoint by
///    `eval.select_metric` of `eval.select_model` is selected (the initial pair competes too).
/// 2. With `eval.refit`, replay the same pretraining and schedule up to the selected
///    checkpoint on all training data (validation included).
/// 3. Evaluate the initial and the selected pair on the test file, once, and write the outputs.
///
/// With `opts.save_start`, the pretrained pair is also written as factor directories
/// (`start/generator/`, `start/discriminator/`), so that game variants can start from it with
/// `init = "factors"` instead of pretraining again; `start/split.json` records the validation
/// split, which a run loading the start must share (`data.split_seed`).
pub fn run(cfg: &Config, out: &Path, opts: RunOptions) -> Result<RunResult, PipelineError> {
    let progress = opts.progress;
    let mut run = RunDir::create(out)?;
    let started = Instant::now();
    let data = load_data(cfg)?;
    let mut timings = Timings {
        load: started.elapsed().as_secs_f64(),
        ..Timings::default()
    };

    let t = Instant::now();
    let bar = spinner(progress, "pretraining");
    let mut watch = PretrainValidation::new(cfg, &data, &bar);
    let (g0, d0) = init_pair(&cfg.generator, &cfg.discriminator, cfg, &data, &mut watch)?;
    let pretrain_epochs = watch.best.map(|(epoch, _)| epoch);
    let pretrain_curve = std::mem::take(&mut watch.curve);
    bar.finish_and_clear();
    timings.pretrain = t.elapsed().as_secs_f64();
    if opts.save_start {
        for (model, role) in [(&g0, "generator"), (&d0, "discriminator")] {
            write_factors(model, &data.users, &data.items, &run.start_dir(role))?;
        }
        start_split::record(cfg, &run.start_root())?;
    }

    let t = Instant::now();
    run.open_log()?;
    let played = play_and_select(
        cfg,
        &data,
        (&g0, &d0),
        &mut |cp| run.log(&cp.to_json()),
        &|| false,
        progress,
    )?;
    run.flush_log()?;
    timings.adversarial = t.elapsed().as_secs_f64();
    timings.validation = played.validation_s;

    let refit_all = cfg.eval.refit && data.validation.nnz() > 0;
    let [g_init, d_init, g_best, d_best] = if refit_all {
        refit(
            cfg,
            &data,
            &played.chosen,
            pretrain_epochs,
            progress,
            &mut timings,
        )?
    } else {
        [g0, d0, played.g.clone(), played.d.clone()]
    };

    let mut test_json = Value::Null;
    if let Some(test) = &data.test {
        let ex = cfg.eval.protocol.test_exclude(&data);
        let on_test = |m: &MfModel| evaluate_model(m, &ex, &test.positives, &cfg.eval.ks);
        test_json = json!({
            "init": { "generator": on_test(&g_init), "discriminator": on_test(&d_init) },
            "selected": { "generator": on_test(&g_best), "discriminator": on_test(&d_best) },
        });
        if cfg.eval.select_model == Served::Blend {
            let w = cfg.eval.blend_weight;
            let blend = |g: &MfModel, d: &MfModel| {
                json!(evaluate_blend(g, d, w, &ex, &test.positives, &cfg.eval.ks))
            };
            test_json["init"]["blend"] = blend(&g_init, &d_init);
            test_json["selected"]["blend"] = blend(&g_best, &d_best);
        }
    }
    let chosen = &played.chosen;
    let metric = cfg.eval.select_metric.as_str();
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
        "protocol": cfg.eval.protocol,
        "pretraining": {
            "selected_epochs": pretrain_epochs,
            "curve": pretrain_curve,
        },
        "selection": {
            "model": cfg.eval.select_model.as_str(),
            "metric": metric,
            "epoch": chosen.epoch,
            "g_epochs": chosen.g_epochs,
            "d_epochs": chosen.d_epochs,
            "refit_on_all_training_data": refit_all,
            "gate": played.gate,
        },
        "validation": {
            "init": played.initial.validation.to_json(),
            "selected": chosen.validation.to_json(),
            "last": played.checkpoints.last().map(|c| c.validation.to_json()),
        },
        "test": test_json,
        "timings_s": {
            "load": round_s(timings.load),
            "pretrain": round_s(timings.pretrain),
            "adversarial": round_s(timings.adversarial),
            "validation": round_s(timings.validation),
            "total": round_s(started.elapsed().as_secs_f64()),
        },
    });

    let snapshot = Snapshot {
        version: 1,
        created_unix_ms: Snapshot::now_unix_ms(),
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
    snapshot.write(&run.snapshot_dir())?;
    let svg = curve_svg(&played.checkpoints, metric, chosen.g_epochs);
    run.write_report(&report, &svg)?;
    Ok(RunResult { report, snapshot })
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
    let mut quality = quality;
    if checkpoints.iter().any(|c| c.validation.blend.is_some()) {
        quality
            .series
            .push(line("blend", &|c| c.served_score(Served::Blend, metric)));
    }
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
