//! Training passes over a set of queries: the supervised baselines and the two IRGAN games.
//!
//! Every pass walks the queries in a seeded random order, in mini-batches of queries whose
//! gradients are summed and averaged before one optimiser step. All randomness comes from
//! streams derived from `(seed, purpose, epoch)`, so a run is reproducible.

use crate::data::letor::{LtrData, Query};
use crate::model::features::{FeatureScorer as Scorer, FlatOptimizer};
use crate::model::policy::{entropy, softplus};
use crate::model::scorer::Scorer as _;
use crate::rng::{self, Rng};
use crate::train::game::Mixture;
use crate::train::game::pairwise::rewrite_pairs;
use crate::train::game::{Baseline, Policy, Sample, pairwise, pointwise, reinforce};
use crate::train::objective::{
    PairLoss, PairSampling, draw, lambdarank, pairwise as pair_loss, pointwise_logistic, policy,
    sample_pairs,
};
use crate::train::settings::Role;
use crate::train::settings::{BaselineConfig, Method, SearchIrganConfig};

/// Random stream tags.
const STREAM_BASELINE: u64 = 0x5ea_0001;
const STREAM_D: u64 = 0x5ea_0002;
const STREAM_G: u64 = 0x5ea_0003;

/// Visits the queries in a seeded random order, `batch` at a time: `per_query` returns the
/// query's score gradient and loss (or `None` to skip it), the gradients are averaged over the
/// queries that contributed and applied in one optimiser step. Returns the mean loss.
fn batched_pass(
    scorer: &mut Scorer,
    opt: &mut FlatOptimizer,
    data: &LtrData,
    batch: usize,
    rng: &mut Rng,
    mut per_query: impl FnMut(&Scorer, &Query, &[f32], &mut Rng) -> Option<(Vec<f32>, f64)>,
) -> f64 {
    let mut order: Vec<usize> = (0..data.queries.len()).collect();
    rng::shuffle(rng, &mut order);
    let mut grad = vec![0.0f32; scorer.params.len()];
    let (mut loss, mut counted) = (0.0, 0usize);
    for chunk in order.chunks(batch) {
        grad.iter_mut().for_each(|g| *g = 0.0);
        let mut in_batch = 0usize;
        for &q in chunk {
            let query = &data.queries[q];
            let x = query.features.view();
            let fwd = scorer.forward_context(x);
            let Some((ds, l)) = per_query(scorer, query, Scorer::forward_scores(&fwd), rng) else {
                continue;
            };
            scorer.backward_context(x, &fwd, &ds, &mut grad);
            loss += l;
            in_batch += 1;
        }
        if in_batch == 0 {
            continue;
        }
        counted += in_batch;
        let scale = 1.0 / in_batch as f32;
        grad.iter_mut().for_each(|g| *g *= scale);
        opt.step(&mut scorer.params, &grad);
    }
    loss / counted.max(1) as f64
}

/// One supervised pass of a baseline `method` (not an IRGAN method). Returns the mean loss.
pub fn baseline_epoch(
    method: Method,
    scorer: &mut Scorer,
    opt: &mut FlatOptimizer,
    data: &LtrData,
    cfg: &BaselineConfig,
    seed: u64,
    epoch: u64,
) -> f64 {
    let mut rng = rng::stream(seed, STREAM_BASELINE, epoch);
    let per_doc = cfg.pairs_per_doc;
    let dynamic = PairSampling::Dynamic {
        temperature: cfg.dynamic_temperature,
    };
    batched_pass(
        scorer,
        opt,
        data,
        cfg.batch_queries,
        &mut rng,
        |_, q, scores, rng| {
            let mut pairs_with = |how| {
                let pairs = sample_pairs(scores, &q.labels, per_doc, how, rng);
                (!pairs.is_empty()).then(|| pair_loss(scores, &pairs, PairLoss::Logistic))
            };
            match method {
                Method::Logistic => Some(pointwise_logistic(scores, &q.labels)),
                Method::Ranknet => pairs_with(PairSampling::Uniform),
                Method::RanknetDynamic => pairs_with(dynamic),
                Method::Lambdarank => {
                    let (g, l) = lambdarank(scores, &q.labels);
                    g.iter().any(|&x| x != 0.0).then_some((g, l))
                }
                Method::IrganPointwise | Method::IrganPairwise => {
                    unreachable!("IRGAN methods are trained by Game")
                }
            }
        },
    )
}

/// What one D pass measured.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct DStats {
    /// Mean loss over queries.
    pub loss: f64,
}

/// What one G pass measured.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct GStats {
    /// Mean reward D gave G's samples.
    pub reward: f64,
    /// Mean entropy (nats) of G's policy over a query's documents.
    pub entropy: f64,
}

/// The pointwise or pairwise IRGAN game between two scorers.
#[derive(Debug, Clone)]
pub struct Game {
    /// The generator G: a softmax policy over each query's documents.
    pub generator: Scorer,
    /// The discriminator D.
    pub discriminator: Scorer,
    g_opt: FlatOptimizer,
    d_opt: FlatOptimizer,
    cfg: SearchIrganConfig,
    pairwise: bool,
    seed: u64,
    d_passes: u64,
    g_passes: u64,
}

impl Game {
    /// A game from two starting scorers; `pairwise` picks the pairwise game.
    pub fn new(
        generator: Scorer,
        discriminator: Scorer,
        cfg: &SearchIrganConfig,
        pairwise: bool,
        seed: u64,
    ) -> Self {
        let g_opt = FlatOptimizer::new(true, cfg.g_lr, cfg.l2, generator.params.len());
        let d_opt = FlatOptimizer::new(true, cfg.d_lr, cfg.l2, discriminator.params.len());
        Self {
            generator,
            discriminator,
            g_opt,
            d_opt,
            cfg: cfg.clone(),
            pairwise,
            seed,
            d_passes: 0,
            g_passes: 0,
        }
    }

    /// The player of `role`.
    pub fn player(&self, role: Role) -> &Scorer {
        match role {
            Role::Generator => &self.generator,
            Role::Discriminator => &self.discriminator,
        }
    }

    /// One D pass over the queries, against fresh samples of the (frozen) G.
    pub fn d_epoch(&mut self, data: &LtrData) -> DStats {
        let mut rng = rng::stream(self.seed, STREAM_D, self.d_passes);
        self.d_passes += 1;
        let (cfg, pairwise_game) = (&self.cfg, self.pairwise);
        let generator = &self.generator;
        let loss = batched_pass(
            &mut self.discriminator,
            &mut self.d_opt,
            data,
            cfg.batch_queries,
            &mut rng,
            |_, q, d_scores, rng| {
                let p = policy(&generator.score(q.features.view()), cfg.temperature);
                if pairwise_game {
                    pairwise_d_step(q, &p, d_scores, cfg, rng)
                } else {
                    pointwise_d_step(q, &p, d_scores, cfg, rng)
                }
            },
        );
        DStats { loss }
    }

    /// One G pass over the queries, rewarded by the (frozen) D.
    pub fn g_epoch(&mut self, data: &LtrData) -> GStats {
        let mut rng = rng::stream(self.seed, STREAM_G, self.g_passes);
        self.g_passes += 1;
        let (cfg, pairwise_game) = (&self.cfg, self.pairwise);
        let discriminator = &self.discriminator;
        let (mut reward, mut ent, mut n) = (0.0, 0.0, 0usize);
        batched_pass(
            &mut self.generator,
            &mut self.g_opt,
            data,
            cfg.batch_queries,
            &mut rng,
            |_, q, g_scores, rng| {
                let d_scores = discriminator.score(q.features.view());
                let p = policy(g_scores, cfg.temperature);
                let step = if pairwise_game {
                    pairwise_g_step(q, &p, &d_scores, cfg, rng)
                } else {
                    pointwise_g_step(q, &p, &d_scores, cfg, rng)
                }?;
                reward += step.1;
                ent += entropy(&p);
                n += 1;
                Some(step)
            },
        );
        let n = n.max(1) as f64;
        GStats {
            reward: reward / n,
            entropy: ent / n,
        }
    }
}

/// The query's relevant documents (label > 0), in order.
fn relevant(q: &Query) -> Vec<u32> {
    (0..q.len() as u32)
        .filter(|&d| q.labels[d as usize] > 0)
        .collect()
}

/// Pointwise D: relevant documents are positives, as many documents drawn from G's policy are
/// negatives (relevant ones excluded with `exclude_true`).
fn pointwise_d_step(
    q: &Query,
    p: &[f64],
    d_scores: &[f32],
    cfg: &SearchIrganConfig,
    rng: &mut Rng,
) -> Option<(Vec<f32>, f64)> {
    let pos = relevant(q);
    let weights: Vec<f64> = (0..q.len())
        .map(|d| {
            if cfg.exclude_true && q.labels[d] > 0 {
                0.0
            } else {
                p[d]
            }
        })
        .collect();
    pointwise::discriminator_step(d_scores, &pos, &weights, rng)
}

/// Pointwise G: sample from (1−λ)·p + λ·Uniform(relevant), reward softplus(D's logit)
/// (= −log(1 − D)), advantage against the sample's mean reward, importance weight p/q.
/// Returns the gradient and the mean reward.
fn pointwise_g_step(
    q: &Query,
    p: &[f64],
    d_scores: &[f32],
    cfg: &SearchIrganConfig,
    rng: &mut Rng,
) -> Option<(Vec<f32>, f64)> {
    let pos = relevant(q);
    if pos.is_empty() {
        return None;
    }
    let mixture = Mixture {
        lambda: cfg.mixture,
        positives: &pos,
    };
    let proposal = mixture.dense(p);
    let k = (cfg.samples_per_positive * pos.len() as f64)
        .ceil()
        .max(1.0) as usize;
    let samples = pointwise::generator_samples(
        k,
        Policy::normalised(p),
        mixture,
        rng,
        |rng| draw(&proposal, rng),
        |d| softplus(f64::from(d_scores[d])),
    );
    Some(policy_step(p, &samples, cfg.temperature))
}

/// The shared REINFORCE step with the samples' mean reward as baseline: the score gradient and
/// the mean reward.
fn policy_step(p: &[f64], samples: &[Sample], temperature: f64) -> (Vec<f32>, f64) {
    let step = reinforce(
        Policy::normalised(p),
        samples,
        Baseline::SampleMean,
        temperature,
    );
    (step.grad_scores, step.mean_reward)
}

/// Pairwise D: the pair loss on every true pair and on G's rewrites.
fn pairwise_d_step(
    q: &Query,
    p: &[f64],
    d_scores: &[f32],
    cfg: &SearchIrganConfig,
    rng: &mut Rng,
) -> Option<(Vec<f32>, f64)> {
    let rewritten = rewrite_pairs(&q.labels, p, cfg.exclude_true, rng);
    pairwise::discriminator_step(d_scores, &rewritten, cfg.pair_loss, cfg.generated_weight)
}

/// Pairwise G: rewards D's belief in each rewrite, advantage against the query's mean reward;
/// the policy gradient uses ∇ log p(d_k) as in the paper.
fn pairwise_g_step(
    q: &Query,
    p: &[f64],
    d_scores: &[f32],
    cfg: &SearchIrganConfig,
    rng: &mut Rng,
) -> Option<(Vec<f32>, f64)> {
    let rewritten = rewrite_pairs(&q.labels, p, cfg.exclude_true, rng);
    let samples = pairwise::generator_samples(p, d_scores, &rewritten);
    (!samples.is_empty()).then(|| policy_step(p, &samples, cfg.temperature))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::letor_synth::synthetic_ltr;
    use crate::eval::letor::evaluate;
    use crate::model::features::Architecture;

    #[test]
    fn rewrites_come_from_documents_g_ranks_above_the_worse_one() {
        let data = synthetic_ltr(1, 12, 5, 3);
        let q = &data.queries[0];
        let p = policy(&(0..q.len()).map(|d| d as f32).collect::<Vec<_>>(), 1.0);
        let cfg = SearchIrganConfig::default();
        let mut rng = rng::stream(1, 1, 1);
        for ((i, j), k) in rewrite_pairs(&q.labels, &p, cfg.exclude_true, &mut rng) {
            assert!(q.labels[i] > q.labels[j]);
            if let Some(k) = k {
                assert!(p[k] > p[j] && q.labels[k] <= q.labels[j]);
            }
        }
    }

    #[test]
    fn every_baseline_learns_a_synthetic_ranking() {
        let data = synthetic_ltr(60, 15, 6, 7);
        let cfg = BaselineConfig {
            lr: 0.01,
            ..BaselineConfig::default()
        };
        for method in [
            Method::Logistic,
            Method::Ranknet,
            Method::RanknetDynamic,
            Method::Lambdarank,
        ] {
            let mut s = Scorer::new(Architecture::Linear, 6, &mut rng::stream(1, 2, 3));
            let before = evaluate(&data, &[5], |q| s.score(q.features.view()))["NDCG@5"];
            let mut opt = FlatOptimizer::new(true, cfg.lr, cfg.l2, s.params.len());
            for e in 0..20 {
                baseline_epoch(method, &mut s, &mut opt, &data, &cfg, 5, e);
            }
            let after = evaluate(&data, &[5], |q| s.score(q.features.view()))["NDCG@5"];
            assert!(
                after > before + 0.1 && after > 0.8,
                "{method:?}: {before} -> {after}"
            );
        }
    }

    #[test]
    fn both_games_keep_players_finite_and_d_ranking() {
        let data = synthetic_ltr(40, 15, 6, 9);
        for pairwise in [false, true] {
            let arch = Architecture::Mlp {
                hidden: 8,
                activation: crate::model::features::Activation::Tanh,
            };
            let g = Scorer::new(arch, 6, &mut rng::stream(1, 2, 3));
            let d = Scorer::new(arch, 6, &mut rng::stream(1, 2, 4));
            let cfg = SearchIrganConfig {
                d_lr: 0.01,
                g_lr: 0.01,
                ..SearchIrganConfig::default()
            };
            let mut game = Game::new(g, d, &cfg, pairwise, 3);
            for _ in 0..15 {
                game.d_epoch(&data);
                let gs = game.g_epoch(&data);
                assert!(gs.reward.is_finite() && gs.entropy.is_finite());
            }
            assert!(game.generator.is_finite() && game.discriminator.is_finite());
            let d = &game.discriminator;
            let ndcg = evaluate(&data, &[5], |q| d.score(q.features.view()))["NDCG@5"];
            assert!(ndcg > 0.7, "pairwise={pairwise}: D NDCG@5 {ndcg}");
        }
    }
}
