//! D's fast path for MF players: D's training triples (user, positive, item drawn from G, over
//! the catalogue or by sampling-importance-resampling from proposal draws) and
//! the row-sparse batch steps that train an MF critic on them (fused SGD, or any optimiser
//! through per-row gradient tables). The losses themselves are the shared game's
//! ([`crate::train::game::critic`]).

use rayon::prelude::*;

use crate::data::Interactions;
use crate::model::MfModel;
use crate::model::policy as maths;
use crate::rng;
use crate::train::game::{Proposal, Resampler, critic};
use crate::train::irgan::sampled::{ItemBlock, user_rows};
use crate::train::optim::{MfOptimizer, RowGrads};
use crate::train::settings::{CriticLoss, IrganConfig};

const NEG_STREAM: u64 = 0xD0;
const D_SHUFFLE_STREAM: u64 = 0xD1;
const D_ORDER_STREAM: u64 = 0xD2;
const NEG_POOL_STREAM: u64 = 0xD3;

/// Users whose resampled negatives share one pool of proposal draws.
const SIR_USERS: usize = 16;

/// One training example of D: (user, observed positive, item sampled from G).
pub(crate) type Triple = (u32, u32, u32);

/// D's triples for draw number `counter`: for each user, |positives| items from G's policy at
/// `d_temperature` (known positives excluded if configured), paired one-to-one with the
/// positives, then shuffled. Each user has its own random stream. G's policy is computed over
/// the whole catalogue, or approached by resampling proposal draws as `irgan.candidates` says.
pub(crate) fn draw_negatives(
    g: &MfModel,
    positives: &Interactions,
    cfg: &IrganConfig,
    seed: u64,
    counter: u64,
) -> Vec<Triple> {
    let per_user = if cfg.candidates.is_sampled(g.n_items()) {
        resampled_negatives(g, positives, cfg, seed, counter)
    } else {
        exact_negatives(g, positives, cfg, seed, counter)
    };
    let mut triples: Vec<Triple> = per_user.into_iter().flatten().collect();
    rng::shuffle(
        &mut rng::stream(seed, D_SHUFFLE_STREAM, counter),
        &mut triples,
    );
    triples
}

/// Per user, draws from G's cumulative softmax over the whole catalogue (parallel over users).
fn exact_negatives(
    g: &MfModel,
    positives: &Interactions,
    cfg: &IrganConfig,
    seed: u64,
    counter: u64,
) -> Vec<Vec<Triple>> {
    let (temperature, exclude) = (cfg.d_temperature, cfg.exclude_positives);
    positives
        .active_users()
        .par_iter()
        .map_init(
            || (vec![0.0f32; g.n_items()], vec![0.0f64; g.n_items()]),
            |(scores, cum), &u| {
                let pos = positives.items(u);
                g.scores_into(u, scores);
                let mut skip = if exclude { pos.to_vec() } else { Vec::new() };
                skip.extend(top_unobserved(scores, pos, cfg.d_skip_top));
                let total = maths::cumulative_softmax(scores, temperature, &skip, cum);
                if !(total > 0.0 && total.is_finite()) {
                    return Vec::new();
                }
                let mut r = rng::stream(seed, NEG_STREAM.wrapping_add(counter << 8), u as u64);
                pos.iter()
                    .map(|&i| {
                        (
                            u as u32,
                            i,
                            maths::sample_cumulative(cum, total, &mut r) as u32,
                        )
                    })
                    .collect()
            },
        )
        .collect()
}

/// The `m` items with the highest scores among those not in `positives` (sorted): G's likeliest
/// proposals, which D's guard keeps out of its negatives.
fn top_unobserved(scores: &[f32], positives: &[u32], m: usize) -> Vec<u32> {
    if m == 0 {
        return Vec::new();
    }
    let mut ids: Vec<u32> = (0..scores.len() as u32)
        .filter(|j| positives.binary_search(j).is_err() && scores[*j as usize].is_finite())
        .collect();
    if ids.len() > m {
        ids.select_nth_unstable_by(m - 1, |a, b| {
            scores[*b as usize].total_cmp(&scores[*a as usize])
        });
        ids.truncate(m);
    }
    ids
}

/// Per user, draws by sampling-importance-resampling: every block of [`SIR_USERS`] users
/// shares `d_resample_pool` proposal draws, scored for the whole block in one matrix product;
/// each user resamples its negatives from the pool ∝ exp(s/τ)·c/(M·q) (its known positives
/// masked if configured). Parallel over blocks.
fn resampled_negatives(
    g: &MfModel,
    positives: &Interactions,
    cfg: &IrganConfig,
    seed: u64,
    counter: u64,
) -> Vec<Vec<Triple>> {
    let (temperature, exclude) = (cfg.d_temperature, cfg.exclude_positives);
    let proposal = Proposal::new(
        &positives.item_counts(),
        cfg.proposal_popularity,
        cfg.proposal_uniform,
    );
    let users = positives.active_users();
    let blocks: Vec<&[usize]> = users.chunks(SIR_USERS).collect();
    blocks
        .par_iter()
        .enumerate()
        .map_init(Resampler::default, |sir, (b, block)| {
            let pool_stream = NEG_POOL_STREAM.wrapping_add(counter << 8);
            let pool = proposal.sample_set(
                cfg.d_resample_pool,
                &mut rng::stream(seed, pool_stream, b as u64),
            );
            let scores = ItemBlock::gather(g, &pool.items).scores(&user_rows(g, block));
            let mut out = Vec::new();
            for (row, &u) in block.iter().enumerate() {
                let pos = positives.items(u);
                let skip = if exclude { pos } else { &[] };
                let row = scores.row(row);
                if !sir.prepare(&pool, row.as_slice().unwrap_or(&[]), skip, temperature) {
                    continue;
                }
                let mut r = rng::stream(seed, NEG_STREAM.wrapping_add(counter << 8), u as u64);
                out.extend(
                    pos.iter()
                        .map(|&i| (u as u32, i, pool.items[sir.draw(&mut r)])),
                );
            }
            out
        })
        .collect()
}

/// D's side of a D-epoch, borrowing only what D needs (so G can be read concurrently).
pub(crate) struct DTrainer<'a> {
    pub(crate) model: &'a mut MfModel,
    pub(crate) opt: &'a mut MfOptimizer,
    pub(crate) triples: &'a [Triple],
    pub(crate) batch: usize,
    pub(crate) seed: u64,
    /// D's loss on a triple.
    pub(crate) loss: CriticLoss,
    /// D's parameters at the start of the game and the proximal weight pulling D back to them
    /// (`irgan.d_proximal`); `None` when off.
    pub(crate) anchor: Option<(&'a MfModel, f32)>,
}

impl DTrainer<'_> {
    /// One pass over the triples in batches of `batch` (positive, negative) pairs, visiting the
    /// batches in a fresh random order (the triples themselves were shuffled when drawn).
    ///
    /// Every batch takes one step on the summed gradient of its rows, all computed at the
    /// parameters before the step (mini-batch semantics, as the reference's TensorFlow code).
    pub(crate) fn epoch(&mut self, epoch: u64) {
        let mut order: Vec<u32> = (0..self.triples.len().div_ceil(self.batch) as u32).collect();
        rng::shuffle(
            &mut rng::stream(self.seed, D_ORDER_STREAM, epoch),
            &mut order,
        );
        let (triples, size) = (self.triples, self.batch);
        let batches = order.iter().map(|&b| {
            let start = b as usize * size;
            &triples[start..(start + size).min(triples.len())]
        });
        let lrs = (
            self.opt.user.sgd_rate(),
            self.opt.item.sgd_rate(),
            self.opt.bias.sgd_rate(),
        );
        if let (Some(lr), Some(lr_i), Some(lr_b)) = lrs
            && lr == lr_i
            && lr == lr_b
        {
            let mut buf = BatchRows::default();
            for batch in batches {
                let rates = (lr, self.opt.l2);
                sgd_batch(self.model, batch, rates, self.loss, self.anchor, &mut buf);
            }
        } else {
            let (nu, ni, d) = (self.model.n_users(), self.model.n_items(), self.model.dim());
            let mut grads = (
                RowGrads::new(nu, d),
                RowGrads::new(ni, d),
                RowGrads::new(ni, 1),
            );
            for batch in batches {
                self.general_batch(batch, &mut grads);
            }
        }
    }

    /// A batch step for any optimiser: gradients summed per parameter row, then applied.
    fn general_batch(&mut self, batch: &[Triple], grads: &mut (RowGrads, RowGrads, RowGrads)) {
        let (users, items, biases) = grads;
        let l2 = self.opt.l2;
        let model = &*self.model;
        for &(u, pos, neg) in batch {
            let u = u as usize;
            let (s_pos, s_neg) = (model.score(u, pos as usize), model.score(u, neg as usize));
            let (g_pos, g_neg) = critic::triple_slopes_f32(s_pos, s_neg, self.loss);
            for (i, g) in [(pos, g_pos), (neg, g_neg)] {
                let i = i as usize;
                users.add(u, g, model.item_row(i), l2, model.user_row(u));
                items.add(i, g, model.user_row(u), l2, model.item_row(i));
                biases.add(i, g, &[1.0], 0.0, &[0.0]);
                if let Some((start, prox)) = self.anchor {
                    pull(users.row(u), prox, model.user_row(u), start.user_row(u));
                    pull(items.row(i), prox, model.item_row(i), start.item_row(i));
                    let (b, b0) = (model.bias[i], start.bias[i]);
                    pull(biases.row(i), prox, &[b], &[b0]);
                }
            }
        }
        self.opt.next_step();
        let m = &mut *self.model;
        users.apply_and_clear(m.user.as_slice_mut().unwrap_or(&mut []), &mut self.opt.user);
        items.apply_and_clear(m.item.as_slice_mut().unwrap_or(&mut []), &mut self.opt.item);
        biases.apply_and_clear(m.bias.as_slice_mut().unwrap_or(&mut []), &mut self.opt.bias);
    }
}

/// Adds the proximal gradient `prox · (param − start)` to a gradient row.
fn pull(grad: &mut [f32], prox: f32, param: &[f32], start: &[f32]) {
    for ((g, &p), &p0) in grad.iter_mut().zip(param).zip(start) {
        *g += prox * (p - p0);
    }
}

/// The rows of one D batch and the parameters they read before the step.
#[derive(Default)]
struct BatchRows {
    /// (user, item, dLoss/ds) per row.
    rows: Vec<(usize, usize, f32)>,
    /// Per row: the user's factors then the item's factors, as read before the step.
    old: Vec<f32>,
}

/// The SGD batch step without gradient tables: since SGD is linear in the gradient, applying
/// each row's contribution (computed from the pre-step parameters saved in `buf`) one after
/// another gives exactly the step on the summed gradient. The proximal pull, like L2, is paid
/// once per touch of a row.
fn sgd_batch(
    model: &mut MfModel,
    batch: &[Triple],
    (lr, l2): (f32, f32),
    loss: CriticLoss,
    anchor: Option<(&MfModel, f32)>,
    buf: &mut BatchRows,
) {
    let d = model.dim();
    buf.rows.clear();
    buf.old.clear();
    for &(u, pos, neg) in batch {
        let u = u as usize;
        let (s_pos, s_neg) = (model.score(u, pos as usize), model.score(u, neg as usize));
        let (g_pos, g_neg) = critic::triple_slopes_f32(s_pos, s_neg, loss);
        for (i, g) in [(pos, g_pos), (neg, g_neg)] {
            let i = i as usize;
            buf.rows.push((u, i, g));
            buf.old.extend_from_slice(model.user_row(u));
            buf.old.extend_from_slice(model.item_row(i));
        }
    }
    if let Some((start, prox)) = anchor {
        // The pull is taken at the pre-step parameters, like the loss's gradient, and applied
        // after it: SGD is linear in the gradient, so this is the step on their sum.
        let (mut pulls_u, mut pulls_i) = (Vec::new(), Vec::new());
        for (&(u, i, _), old) in buf.rows.iter().zip(buf.old.chunks_exact(2 * d)) {
            let (old_u, old_i) = old.split_at(d);
            pulls_u.extend(
                old_u
                    .iter()
                    .zip(start.user_row(u))
                    .map(|(&p, &p0)| prox * (p - p0)),
            );
            pulls_i.extend(
                old_i
                    .iter()
                    .zip(start.item_row(i))
                    .map(|(&p, &p0)| prox * (p - p0)),
            );
        }
        let pull_b: Vec<f32> = buf
            .rows
            .iter()
            .map(|&(_, i, _)| prox * (model.bias[i] - start.bias[i]))
            .collect();
        sgd_rows(model, buf, (lr, l2));
        let users = model.user.as_slice_mut().unwrap_or(&mut []);
        for (&(u, _, _), pull) in buf.rows.iter().zip(pulls_u.chunks_exact(d)) {
            for (p, &g) in users[u * d..(u + 1) * d].iter_mut().zip(pull) {
                *p -= lr * g;
            }
        }
        let items = model.item.as_slice_mut().unwrap_or(&mut []);
        for (&(_, i, _), pull) in buf.rows.iter().zip(pulls_i.chunks_exact(d)) {
            for (q, &g) in items[i * d..(i + 1) * d].iter_mut().zip(pull) {
                *q -= lr * g;
            }
        }
        for (&(_, i, _), &g) in buf.rows.iter().zip(&pull_b) {
            model.bias[i] -= lr * g;
        }
    } else {
        sgd_rows(model, buf, (lr, l2));
    }
}

/// The loss and L2 part of [`sgd_batch`]'s step, from the rows and pre-step parameters in `buf`.
fn sgd_rows(model: &mut MfModel, buf: &BatchRows, (lr, l2): (f32, f32)) {
    let d = model.dim();
    let users = model.user.as_slice_mut().unwrap_or(&mut []);
    for (&(u, _, g), old) in buf.rows.iter().zip(buf.old.chunks_exact(2 * d)) {
        let (old_u, old_i) = old.split_at(d);
        for ((p, &pu), &qi) in users[u * d..(u + 1) * d].iter_mut().zip(old_u).zip(old_i) {
            *p -= lr * (g * qi + l2 * pu);
        }
    }
    let items = model.item.as_slice_mut().unwrap_or(&mut []);
    for (&(_, i, g), old) in buf.rows.iter().zip(buf.old.chunks_exact(2 * d)) {
        let (old_u, old_i) = old.split_at(d);
        for ((q, &pu), &qi) in items[i * d..(i + 1) * d].iter_mut().zip(old_u).zip(old_i) {
            *q -= lr * (g * pu + l2 * qi);
        }
    }
    for &(_, i, g) in &buf.rows {
        model.bias[i] -= lr * g;
    }
}
