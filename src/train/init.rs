//! A model's starting point: random, imported factors, or pretrained (BPR, DNS, APR, iALS), shared by
//! the offline pipeline and the service's trainer.

use std::path::Path;

use crate::data::loader::{self, DataError, Factors};
use crate::data::train_data::TrainData;
use crate::model::MfModel;
use crate::rng;
use crate::train::settings::{Init, ModelConfig, PretrainConfig, Role};
use crate::train::{als, apr, bpr, softmax};

/// Why a starting point could not be built.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// Imported factor files could not be read.
    #[error(transparent)]
    Data(#[from] DataError),
    /// The factors or the pretraining cannot be used (wrong dimension, divergence).
    #[error("{0}")]
    Unusable(String),
}

/// What initialisation needs beyond the model's own settings: the seed and the pretraining
/// algorithms. Implemented by the training configuration, so callers pass it whole.
pub trait InitSettings {
    /// Seed of every random stream.
    fn seed(&self) -> u64;
    /// Settings of BPR, DNS and iALS.
    fn pretraining(&self) -> &PretrainConfig;
}

/// One finished epoch of an epoch-wise pretraining (sampled softmax), as an observer sees it.
#[derive(Debug, Clone, Copy)]
pub struct PretrainEpoch<'a> {
    /// The model being pretrained.
    pub role: Role,
    /// Epochs done (from 1).
    pub epoch: usize,
    /// Mean training loss of the epoch.
    pub loss: f64,
    /// The model after this epoch.
    pub model: &'a MfModel,
}

/// Watches epoch-wise pretraining and may score it on validation data: when it answers a score
/// (higher is better), the best-scoring epoch's model is kept.
pub trait PretrainObserver {
    /// Called after every epoch.
    fn epoch(&mut self, e: PretrainEpoch<'_>) -> Option<f64>;
}

/// An observer that watches nothing: pretraining runs its configured epochs.
#[derive(Debug, Clone, Copy, Default)]
pub struct Unobserved;

impl PretrainObserver for Unobserved {
    fn epoch(&mut self, _: PretrainEpoch<'_>) -> Option<f64> {
        None
    }
}

/// Builds a model's starting point as configured (random, imported factors, BPR, DNS, iALS or
/// sampled softmax), trained on `data.fit`. `cache` reuses an identical pretraining of the
/// other model.
pub fn init_model(
    m: &ModelConfig,
    cfg: &impl InitSettings,
    data: &TrainData,
    role: Role,
    cache: &mut Vec<(ModelConfig, MfModel)>,
) -> Result<MfModel, InitError> {
    init_model_observed(m, cfg, data, role, cache, &mut Unobserved)
}

/// [`init_model`] with an observer of epoch-wise pretraining.
pub fn init_model_observed(
    m: &ModelConfig,
    cfg: &impl InitSettings,
    data: &TrainData,
    role: Role,
    cache: &mut Vec<(ModelConfig, MfModel)>,
    observer: &mut dyn PretrainObserver,
) -> Result<MfModel, InitError> {
    let (nu, ni) = (data.users.len(), data.items.len());
    let same = |c: &ModelConfig| c.init == m.init && c.dim == m.dim && c.factors == m.factors;
    if m.init != Init::Random
        && let Some((_, model)) = cache.iter().find(|(c, _)| same(c))
    {
        return Ok(model.clone());
    }
    let seed = cfg.seed();
    let pretrain = cfg.pretraining();
    let mut r = rng::stream(seed, 0x1417, role as u64);
    let mut model = MfModel::random(nu, ni, m.dim, m.init_scale, &mut r);
    match m.init {
        Init::Random => {}
        Init::Factors => {
            let dir = m.factors.as_deref().unwrap_or(Path::new(""));
            model = model_from_factors(loader::read_factors(dir)?);
            if model.dim() != m.dim {
                return Err(InitError::Unusable(format!(
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
            let neg = bpr::Negatives::Uniform;
            bpr::train(&mut model, &data.fit, &pretrain.bpr, neg, seed);
        }
        Init::Dns => {
            let neg = bpr::Negatives::Dynamic;
            bpr::train(&mut model, &data.fit, &pretrain.bpr, neg, seed);
        }
        Init::Apr => {
            bpr::train(
                &mut model,
                &data.fit,
                &pretrain.bpr,
                bpr::Negatives::Uniform,
                seed,
            );
            apr::train(&mut model, &data.fit, &pretrain.bpr, &pretrain.apr, seed);
        }
        Init::Als => als::train(&mut model, &data.fit, &pretrain.als),
        Init::Softmax => {
            softmax::train(
                &mut model,
                &data.fit,
                &pretrain.softmax,
                seed,
                |epoch, s, m| {
                    observer.epoch(PretrainEpoch {
                        role,
                        epoch,
                        loss: s.loss,
                        model: m,
                    })
                },
            );
        }
    }
    if !model.is_finite() {
        return Err(InitError::Unusable(format!(
            "{} pretraining diverged (non-finite parameters); lower its learning rate",
            role.as_str()
        )));
    }
    cache.push((m.clone(), model.clone()));
    Ok(model)
}

/// G's and D's starting points on `data.fit` (pretraining shared when both use the same).
pub fn init_pair(
    generator: &ModelConfig,
    discriminator: &ModelConfig,
    cfg: &impl InitSettings,
    data: &TrainData,
    observer: &mut dyn PretrainObserver,
) -> Result<(MfModel, MfModel), InitError> {
    let mut cache = Vec::new();
    let g = init_model_observed(generator, cfg, data, Role::Generator, &mut cache, observer)?;
    let d = init_model_observed(
        discriminator,
        cfg,
        data,
        Role::Discriminator,
        &mut cache,
        observer,
    )?;
    Ok((g, d))
}

/// The model an imported factor directory describes.
pub fn model_from_factors(f: Factors) -> MfModel {
    MfModel {
        user: f.user,
        item: f.item,
        bias: f.bias,
    }
}
