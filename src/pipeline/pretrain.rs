//! Validation of epoch-wise pretraining (sampled softmax) during `irgan train`: each epoch's
//! loss and, every `pretrain.softmax.validate_every` epochs, the validation metric the run
//! selects on. The best epoch's model is kept, and the refit on all training data replays
//! exactly that many epochs.

use std::time::Instant;

use indicatif::ProgressBar;
use serde_json::{Value, json};

use crate::config::Config;
use crate::data::Interactions;
use crate::data::train_data::TrainData;
use crate::eval::evaluate_model;
use crate::train::init::{PretrainEpoch, PretrainObserver};

/// Scores pretraining epochs on the validation split and remembers the curve.
pub(crate) struct PretrainValidation<'a> {
    cfg: &'a Config,
    validation: &'a Interactions,
    exclude: Interactions,
    bar: &'a ProgressBar,
    started: Instant,
    /// One JSON line per epoch: role, epoch, loss, validation metric (when measured), seconds.
    pub(crate) curve: Vec<Value>,
    /// The best validated epoch and its score.
    pub(crate) best: Option<(usize, f64)>,
}

impl<'a> PretrainValidation<'a> {
    /// An observer validating on `data.validation` with `cfg`'s protocol and selection metric
    /// (no validation when the split is empty or `validate_every` is 0).
    pub(crate) fn new(cfg: &'a Config, data: &'a TrainData, bar: &'a ProgressBar) -> Self {
        Self {
            cfg,
            validation: &data.validation,
            exclude: cfg.eval.protocol.validation_exclude(data),
            bar,
            started: Instant::now(),
            curve: Vec::new(),
            best: None,
        }
    }
}

impl PretrainObserver for PretrainValidation<'_> {
    fn epoch(&mut self, e: PretrainEpoch<'_>) -> Option<f64> {
        let every = self.cfg.pretrain.softmax.validate_every;
        let last = e.epoch == self.cfg.pretrain.softmax.epochs;
        let due = every > 0 && (e.epoch.is_multiple_of(every) || last) && self.validation.nnz() > 0;
        let metric = self.cfg.eval.select_metric.as_str();
        let score = due.then(|| {
            let m = evaluate_model(e.model, &self.exclude, self.validation, &self.cfg.eval.ks);
            m.get(metric).copied().unwrap_or(f64::NEG_INFINITY)
        });
        if let Some(s) = score
            && self.best.is_none_or(|(_, b)| s > b)
        {
            self.best = Some((e.epoch, s));
        }
        self.bar.set_message(format!(
            "pretraining {} epoch {}/{}: loss {:.4}{}",
            e.role.as_str(),
            e.epoch,
            self.cfg.pretrain.softmax.epochs,
            e.loss,
            score.map_or(String::new(), |s| format!(", validation {metric} {s:.4}")),
        ));
        self.curve.push(json!({
            "pretrain": e.role.as_str(),
            "epoch": e.epoch,
            "loss": e.loss,
            "validation": score.map(|s| json!({ metric: s })),
            "elapsed_s": crate::pipeline::run_dir::round_s(self.started.elapsed().as_secs_f64()),
        }));
        score
    }
}
