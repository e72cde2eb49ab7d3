//! Settings of the training algorithms: the players, pretraining and the adversarial game, for
//! both tasks. Plain serde structs with their documented defaults; [`crate::config`] embeds
//! them in the files users write and validates them.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::train::objective::PairLoss;

/// G or D.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The generator.
    Generator,
    /// The discriminator.
    Discriminator,
}

/// How a model's parameters start.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Init {
    /// Uniform(−init_scale, init_scale), bias 0.
    Random,
    /// Factors imported from `factors` (text files).
    Factors,
    /// BPR with uniform negatives.
    Bpr,
    /// BPR with dynamic negatives (DNS).
    Dns,
    /// BPR, then adversarial personalised ranking (APR).
    Apr,
    /// Weighted implicit ALS.
    Als,
    /// Sampled-softmax maximum likelihood of the positives under the model's own softmax
    /// (cosine scores over a temperature): a pretrained policy for G.
    Softmax,
}

/// Optimiser.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// Plain stochastic gradient descent.
    Sgd,
    /// Adam (lazy: only rows in a batch move).
    Adam,
}

/// One model of the pair.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ModelConfig {
    /// Latent dimension.
    pub dim: usize,
    /// Where the parameters start.
    pub init: Init,
    /// Directory of factor files, for `init = "factors"`.
    pub factors: Option<PathBuf>,
    /// Half-width of the uniform init.
    pub init_scale: f32,
    /// Softmax temperature of G's policy in its own step (unused for D).
    pub temperature: f64,
    /// Optimiser.
    pub optimizer: OptimizerKind,
    /// Learning rate.
    pub lr: f32,
    /// L2 penalty on the rows a step touches.
    pub l2: f32,
}

/// Pretraining settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct PretrainConfig {
    /// BPR and DNS.
    pub bpr: BprConfig,
    /// APR's adversarial phase after BPR (`init = "apr"`).
    pub apr: AprConfig,
    /// Implicit ALS.
    pub als: AlsConfig,
    /// Sampled-softmax pretraining.
    pub softmax: SoftmaxConfig,
}

/// Sampled-softmax pretraining (see [`crate::train::softmax`]).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SoftmaxConfig {
    /// Passes over the training positives.
    pub epochs: usize,
    /// Positives per mini-batch (each is also an in-batch negative of the others).
    pub batch: usize,
    /// Items drawn uniformly per batch as shared negatives.
    pub negatives: usize,
    /// Temperature τ of the cosine scores (logit = cos / τ).
    pub temperature: f64,
    /// Adam learning rate.
    pub lr: f32,
    /// Use the batch's other positives as negatives (popularity-corrected).
    pub in_batch: bool,
    /// `irgan train` validates every this many epochs (and the last) and keeps the best
    /// epoch's model (0 = keep the last epoch).
    pub validate_every: usize,
}

impl Default for SoftmaxConfig {
    fn default() -> Self {
        Self {
            epochs: 20,
            batch: 1024,
            negatives: 1024,
            temperature: 0.1,
            lr: 0.005,
            in_batch: true,
            validate_every: 5,
        }
    }
}

/// BPR / DNS pretraining.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct BprConfig {
    /// Passes over the training positives.
    pub epochs: usize,
    /// SGD learning rate.
    pub lr: f32,
    /// L2 penalty.
    pub l2: f32,
    /// DNS: uniform candidates per positive; the highest-scored becomes the negative.
    pub dns_candidates: usize,
}

/// APR: BPR continued with an adversarial perturbation term (see [`crate::train::apr`]).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AprConfig {
    /// Passes of APR after `pretrain.bpr.epochs` passes of BPR.
    pub epochs: usize,
    /// Radius of the perturbation of each embedding.
    pub eps: f32,
    /// Weight of the loss under perturbation.
    pub reg: f32,
}

impl Default for AprConfig {
    /// reg 1 as in the paper; eps 0.1, not its 0.5: our BPR factors are smaller, and at 0.5 the
    /// perturbation swamps them (MovieLens-100k validation P@5 0.108 -> 0.058).
    fn default() -> Self {
        Self {
            epochs: 50,
            eps: 0.1,
            reg: 1.0,
        }
    }
}

/// Weighted implicit ALS (Hu, Koren, Volinsky 2008).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AlsConfig {
    /// Alternating sweeps.
    pub iterations: usize,
    /// Confidence of a positive: 1 + alpha.
    pub alpha: f32,
    /// L2 penalty.
    pub l2: f32,
    /// How each row's ridge system is solved.
    pub solver: AlsSolver,
    /// Conjugate-gradient steps per row and half-sweep (`solver = "cg"`).
    pub cg_steps: usize,
}

/// Solver of iALS's per-row systems.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AlsSolver {
    /// Exact: Cholesky of the row's d × d matrix.
    Cholesky,
    /// A few conjugate-gradient steps from the row's previous value (large catalogues).
    Cg,
}

/// Advantage baseline for G's policy gradient.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Baseline {
    /// Raw reward (the reference code).
    None,
    /// Reward minus a running mean of rewards (the paper's variance reduction).
    RunningMean,
    /// Reward minus the mean reward of the user's own samples in the step: a per-user
    /// baseline, so a user whose items D rates high overall pushes G no harder than another.
    UserMean,
    /// `user_mean`, then divided by the standard deviation of the user's sample rewards
    /// (advantage normalisation): a user whose samples D rates almost alike pushes G as hard
    /// as one whose samples D tells apart, so G's step size does not depend on D's scale.
    UserStd,
}

/// The adversarial schedule (pointwise IRGAN).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct IrganConfig {
    /// Outer epochs (each: D-epochs then G-epochs).
    pub epochs: usize,
    /// D-epochs per outer epoch.
    pub d_epochs: usize,
    /// G-epochs per outer epoch.
    pub g_epochs: usize,
    /// Redraw D's negatives from G every this many D-epochs.
    pub negative_refresh: usize,
    /// Positive/negative pairs per D batch.
    pub d_batch: usize,
    /// Temperature of G when it samples D's negatives.
    pub d_temperature: f64,
    /// G samples per training positive in a G step.
    pub g_samples: f64,
    /// Importance-sampling mixture weight λ of Uniform(positives).
    pub mixture: f64,
    /// Users whose G gradients are computed in parallel and applied together.
    pub g_user_batch: usize,
    /// Exclude the user's known positives from D's negatives (fixes reference defect 2).
    pub exclude_positives: bool,
    /// Draw fresh negatives at every refresh (fixes reference defect 1; false replays the first draw).
    pub fresh_negatives: bool,
    /// Advantage baseline.
    pub baseline: Baseline,
    /// Decay of the running-mean baseline.
    pub baseline_decay: f64,
    /// G's candidates and D's negative draw: the whole catalogue, a sample, or by size.
    pub candidates: CandidateMode,
    /// Sampled game: proposal draws per batch of `g_user_batch` users (their shared candidates,
    /// besides each user's own positives).
    pub sampled_candidates: usize,
    /// Sampled game: exponent β of item popularity in the proposal.
    pub proposal_popularity: f64,
    /// Sampled game: weight of the uniform distribution in the proposal, in [0, 1].
    pub proposal_uniform: f64,
    /// Sampled game: proposal draws per batch of users that D's negatives are resampled from.
    pub d_resample_pool: usize,
    /// D's loss on its (user, positive, G's sample) triples.
    pub d_loss: CriticLoss,
    /// False-negative guard: G's this many top-scored unobserved items of a user are never D's
    /// negatives (they are the user's likeliest future positives). 0 = off. Exact candidates only.
    pub d_skip_top: usize,
    /// Proximal (trust-region) weight: D's loss gains `d_proximal/2 · ‖θ − θ₀‖²` over the rows
    /// a batch touches, θ₀ being D's parameters when the game began, so D learns from G's
    /// samples without leaving its pretrained optimum far behind. 0 = off.
    pub d_proximal: f32,
    /// KL penalty on G: G's loss gains `g_kl_start · KL(p_θ(·|u) ‖ p_θ₀(·|u))` per user, θ₀
    /// being G's parameters when the game began (its pretrained start), so G can take larger
    /// steps on D's reward without drifting from the start it has to beat. 0 = off. Exact
    /// candidates only.
    pub g_kl_start: f64,
    /// D's phase as weighted iALS instead of its sampled loss: this many iALS sweeps (with
    /// `pretrain.als`'s alpha and l2) from D's current factors, G's samples added as
    /// zero-preference cells of extra confidence (see `d_als_negative_weight`). A sampled
    /// logistic or pairwise D leaves the weighted all-items optimum iALS found and collapses
    /// on MovieLens-100k; iALS sweeps keep D at such an optimum, moved only by G's samples.
    /// 0 = off (D plays `d_epochs` epochs of `d_loss`). Exact candidates only.
    pub d_als_sweeps: usize,
    /// Extra confidence γ of one of G's samples as D's iALS negative, discounted by G's own
    /// belief in it (false-negative guard): γ·(1 − p_G(j|u) / max p_G(·|u)) over the user's
    /// unobserved items, so G's top guess, the likeliest future positive, adds nothing.
    pub d_als_negative_weight: f32,
}

/// D's loss on a (user, positive, generated) triple in the recommendation game.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum CriticLoss {
    /// The paper's: −log σ(s⁺) − log(1 − σ(s⁻)), a sigmoid critic of each item.
    Logistic,
    /// −log σ(s⁺ − s⁻): D ranks the positive above G's sample (BPR with G as the sampler).
    Pairwise,
}

/// Which candidates the recommendation game scores.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum CandidateMode {
    /// Every item: the exact softmax (the reference).
    Exhaustive,
    /// The user's positives plus items drawn from a popularity/uniform proposal, with the
    /// sampled-softmax correction; D's negatives by sampling-importance-resampling.
    Sampled,
    /// Sampled past [`CandidateMode::AUTO_SAMPLED_ITEMS`] items, exhaustive below.
    Auto,
}

impl CandidateMode {
    /// The catalogue size from which `auto` samples.
    pub const AUTO_SAMPLED_ITEMS: usize = 5_000;

    /// True when a catalogue of `n_items` is played with sampled candidates.
    pub fn is_sampled(self, n_items: usize) -> bool {
        match self {
            CandidateMode::Exhaustive => false,
            CandidateMode::Sampled => true,
            CandidateMode::Auto => n_items >= Self::AUTO_SAMPLED_ITEMS,
        }
    }
}

/// The model a recommendation run is selected by, and so the one it is meant to serve: G, D,
/// or their blend (`w · z_G + (1 − w) · z_D` over each user's z-scored catalogue scores, as
/// the service's `model=blend`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Served {
    /// The generator.
    Generator,
    /// The discriminator.
    Discriminator,
    /// G's and D's z-scored blend, G weighted by `eval.blend_weight`.
    Blend,
}

impl Served {
    /// `generator`, `discriminator` or `blend`.
    pub fn as_str(self) -> &'static str {
        match self {
            Served::Generator => "generator",
            Served::Discriminator => "discriminator",
            Served::Blend => "blend",
        }
    }
}

impl Role {
    /// `generator` or `discriminator`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Generator => "generator",
            Role::Discriminator => "discriminator",
        }
    }
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            dim: 5,
            init: Init::Random,
            factors: None,
            init_scale: 0.05,
            temperature: 1.0,
            optimizer: OptimizerKind::Sgd,
            lr: 0.001,
            l2: 0.0,
        }
    }
}

impl Default for BprConfig {
    fn default() -> Self {
        Self {
            epochs: 80,
            lr: 0.05,
            l2: 0.1,
            dns_candidates: 5,
        }
    }
}

impl Default for AlsConfig {
    fn default() -> Self {
        Self {
            iterations: 15,
            alpha: 10.0,
            l2: 1.0,
            solver: AlsSolver::Cholesky,
            cg_steps: 3,
        }
    }
}

impl Default for IrganConfig {
    fn default() -> Self {
        Self {
            epochs: 15,
            d_epochs: 100,
            g_epochs: 50,
            negative_refresh: 5,
            d_batch: 16,
            d_temperature: 0.2,
            g_samples: 2.0,
            mixture: 0.2,
            g_user_batch: 16,
            exclude_positives: true,
            fresh_negatives: true,
            baseline: Baseline::None,
            baseline_decay: 0.99,
            candidates: CandidateMode::Auto,
            sampled_candidates: 1024,
            proposal_popularity: 0.75,
            proposal_uniform: 0.5,
            d_resample_pool: 1024,
            d_loss: CriticLoss::Logistic,
            d_skip_top: 0,
            d_proximal: 0.0,
            g_kl_start: 0.0,
            d_als_sweeps: 0,
            d_als_negative_weight: 1.0,
        }
    }
}

// Learning to rank (search).

/// The training method of a search run.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// Pointwise logistic regression on relevance.
    Logistic,
    /// RankNet on pairs with uniformly drawn worse documents.
    Ranknet,
    /// RankNet on pairs whose worse document is drawn ∝ exp(score) (dynamic negatives).
    RanknetDynamic,
    /// RankNet gradients weighted by |ΔNDCG| on every pair.
    Lambdarank,
    /// Pointwise IRGAN: G's softmax over the query's documents against a logistic D.
    IrganPointwise,
    /// Pairwise IRGAN: G rewrites true pairs, D is a pairwise ranker.
    IrganPairwise,
}

impl Method {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Logistic => "logistic",
            Method::Ranknet => "ranknet",
            Method::RanknetDynamic => "ranknet_dynamic",
            Method::Lambdarank => "lambdarank",
            Method::IrganPointwise => "irgan_pointwise",
            Method::IrganPairwise => "irgan_pairwise",
        }
    }

    /// True for the two adversarial methods.
    pub fn is_irgan(self) -> bool {
        matches!(self, Method::IrganPointwise | Method::IrganPairwise)
    }
}

/// Supervised training (the baselines, and IRGAN's pretraining).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct BaselineConfig {
    /// Passes over the training queries.
    pub epochs: usize,
    /// Adam learning rate.
    pub lr: f32,
    /// L2 penalty.
    pub l2: f32,
    /// Queries per gradient step.
    pub batch_queries: usize,
    /// RankNet: pairs drawn per document that has a worse one.
    pub pairs_per_doc: usize,
    /// Dynamic negatives: softmax temperature over the current scores.
    pub dynamic_temperature: f64,
}

/// The adversarial game on feature vectors.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SearchIrganConfig {
    /// How G and D start: `random`, or a baseline method trained first (selected on
    /// validation like any baseline) whose scorer both players copy.
    pub init: IrganInit,
    /// Outer epochs (each: D-epochs then G-epochs).
    pub epochs: usize,
    /// D passes over the training queries per outer epoch (fresh G samples each pass).
    pub d_epochs: usize,
    /// G passes per outer epoch.
    pub g_epochs: usize,
    /// Temperature of G's softmax over a query's documents.
    pub temperature: f64,
    /// Pointwise: G samples per relevant document, in G's step and as D's negatives.
    pub samples_per_positive: f64,
    /// Importance-sampling mixture weight λ of Uniform(relevant) in G's proposal.
    pub mixture: f64,
    /// Pointwise: relevant documents are never D's negatives. Pairwise: G's rewritten pair
    /// ⟨d_k, d_j⟩ is dropped when d_k is truly better than d_j (it would be a true pair).
    pub exclude_true: bool,
    /// Pairwise: D's loss on the score margin.
    pub pair_loss: PairLoss,
    /// Pairwise: weight of the generated pairs in D's loss (true pairs have weight 1).
    pub generated_weight: f64,
    /// G's Adam learning rate.
    pub g_lr: f32,
    /// D's Adam learning rate.
    pub d_lr: f32,
    /// L2 penalty of both players.
    pub l2: f32,
    /// Queries per gradient step.
    pub batch_queries: usize,
    /// Which player's validation score selects the checkpoint (and which one ranks by default).
    pub select_model: Role,
}

/// How IRGAN's players start.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum IrganInit {
    /// Fresh random scorers.
    Random,
    /// The selected pointwise logistic model.
    Logistic,
    /// The selected RankNet (uniform pairs) model.
    Ranknet,
    /// The selected RankNet (dynamic negatives) model.
    RanknetDynamic,
    /// The selected LambdaRank model.
    Lambdarank,
}

impl IrganInit {
    /// The baseline trained first, if any.
    pub fn method(self) -> Option<Method> {
        match self {
            IrganInit::Random => None,
            IrganInit::Logistic => Some(Method::Logistic),
            IrganInit::Ranknet => Some(Method::Ranknet),
            IrganInit::RanknetDynamic => Some(Method::RanknetDynamic),
            IrganInit::Lambdarank => Some(Method::Lambdarank),
        }
    }
}

impl Default for BaselineConfig {
    fn default() -> Self {
        Self {
            epochs: 60,
            lr: 1e-3,
            l2: 1e-4,
            batch_queries: 8,
            pairs_per_doc: 4,
            dynamic_temperature: 1.0,
        }
    }
}

impl Default for SearchIrganConfig {
    fn default() -> Self {
        Self {
            init: IrganInit::Lambdarank,
            epochs: 20,
            d_epochs: 2,
            g_epochs: 2,
            temperature: 0.2,
            samples_per_positive: 5.0,
            mixture: 0.5,
            exclude_true: true,
            pair_loss: PairLoss::Logistic,
            generated_weight: 0.1,
            g_lr: 1e-3,
            d_lr: 1e-4,
            l2: 1e-4,
            batch_queries: 8,
            select_model: Role::Discriminator,
        }
    }
}
