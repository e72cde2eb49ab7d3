//! Keeping G and D in step with the feedback, in work proportional to what changed: users with
//! new feedback (new or existing) get their rows re-solved against the fixed item factors at
//! once, new items get rows from their first users, and a catalogue that grew a lot is
//! re-pretrained.
//!
//! A fold-in must answer the equation the model was pretrained with: the iALS user equation
//! ([`als::fold_in`]) for every init but `softmax`, whose users are fitted under G's own
//! softmax on the sphere of radius 1/τ ([`softmax_fold_in::fold_in`]).

use std::collections::{BTreeMap, BTreeSet};

use ndarray::{Array1, Array2};

use crate::config::{Config, Init, ModelConfig};
use crate::data::Interactions;
use crate::model::MfModel;
use crate::online::feedback_data::FeedbackData;
use crate::rng;
use crate::train::irgan::Game;
use crate::train::{als, softmax_fold_in};

/// What the trainer must do after [`sync`].
#[derive(Debug)]
pub enum Sync {
    /// The models cover the feedback (changed rows were updated in place, if any).
    Done,
    /// Pretrain a new pair: there is none yet, or the catalogue grew past the regrow factor.
    Pretrain,
    /// Play on with these grown and refreshed models (a new game: the optimisers' shapes
    /// changed).
    Replace(Box<(MfModel, MfModel)>),
}

/// Brings the game's models up to the feedback folded into `data`: users and items changed
/// since the last call are refreshed (see [`refresh`]); the models are grown when the
/// catalogue grew, or a pretraining is asked for when it grew by `regrow_factor` since the
/// last one (`pretrained_size`).
pub fn sync(
    game: Option<&mut Game>,
    data: &mut FeedbackData,
    pretrained_size: (usize, usize),
    regrow_factor: f64,
    cfg: &Config,
) -> Sync {
    let changes = data.take_unsynced();
    if data.train.nnz() == 0 {
        return Sync::Done;
    }
    let Some(game) = game else {
        return Sync::Pretrain;
    };
    let (nu, ni) = (data.users.len(), data.items.len());
    let (pu, pi) = pretrained_size;
    let grown_a_lot = (nu as f64) >= regrow_factor * pu.max(1) as f64
        || (ni as f64) >= regrow_factor * pi.max(1) as f64;
    if grown_a_lot {
        return Sync::Pretrain;
    }
    let old_items = game.generator.n_items();
    if game.generator.n_users() < nu || old_items < ni {
        let (mut g, mut d) = (game.generator.clone(), game.discriminator.clone());
        let mut r = rng::stream(cfg.seed, 0x6E0, (nu * 31 + ni) as u64);
        g.grow(nu, ni, cfg.generator.init_scale, &mut r);
        d.grow(nu, ni, cfg.discriminator.init_scale, &mut r);
        refresh(
            &mut g,
            &cfg.generator,
            cfg,
            &data.train,
            &changes.users,
            old_items,
        );
        refresh(
            &mut d,
            &cfg.discriminator,
            cfg,
            &data.train,
            &changes.users,
            old_items,
        );
        return Sync::Replace(Box::new((g, d)));
    }
    if !changes.users.is_empty() {
        let (g, d) = (&mut game.generator, &mut game.discriminator);
        refresh(g, &cfg.generator, cfg, &data.train, &changes.users, ni);
        refresh(d, &cfg.discriminator, cfg, &data.train, &changes.users, ni);
    }
    Sync::Done
}

/// Re-solves the rows of `users` against the fixed item factors, then gives the items from
/// `new_items_from` on (rows added by growing) vectors from their users, each the way
/// `model_cfg.init` pretrained the model.
pub fn refresh(
    model: &mut MfModel,
    model_cfg: &ModelConfig,
    cfg: &Config,
    train: &Interactions,
    users: &BTreeSet<u32>,
    new_items_from: usize,
) {
    let rows = users.iter().map(|&u| u as usize);
    let softmax = model_cfg.init == Init::Softmax;
    let temperature = cfg.pretrain.softmax.temperature;
    if softmax {
        softmax_fold_in::fold_in(model, train, rows, temperature);
    } else {
        als::fold_in(model, train, rows, &cfg.pretrain.als);
    }
    // A new item's users are all changed users: it had no feedback before.
    let mut by_item: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for &u in users {
        for &i in train.items(u as usize) {
            if i as usize >= new_items_from {
                by_item.entry(i).or_default().push(u);
            }
        }
    }
    if by_item.is_empty() {
        return;
    }
    if softmax {
        items_from_mean_direction(model, &by_item);
    } else {
        items_from_als(model, &by_item, cfg);
    }
}

/// Softmax-pretrained items are unit rows: a new item points where its users point.
fn items_from_mean_direction(model: &mut MfModel, by_item: &BTreeMap<u32, Vec<u32>>) {
    for (&i, users) in by_item {
        let mut mean = Array1::<f32>::zeros(model.dim());
        for &u in users {
            let p = model.user.row(u as usize);
            let n = p.dot(&p).sqrt();
            if n.is_finite() && n > 0.0 {
                mean.scaled_add(1.0 / n, &p);
            }
        }
        let n = mean.dot(&mean).sqrt();
        if n.is_finite() && n > 0.0 {
            model.item.row_mut(i as usize).assign(&(mean / n));
            model.bias[i as usize] = 0.0;
        }
    }
}

/// The iALS item equation for each new item against the fixed user factors: the user fold-in
/// on the transposed model (users as the fixed side, no user bias).
fn items_from_als(model: &mut MfModel, by_item: &BTreeMap<u32, Vec<u32>>, cfg: &Config) {
    let items: Vec<u32> = by_item.keys().copied().collect();
    let pairs: Vec<(u32, u32)> = by_item
        .values()
        .enumerate()
        .flat_map(|(k, users)| users.iter().map(move |&u| (k as u32, u)))
        .collect();
    let n_users = model.n_users();
    let rows = Interactions::from_pairs(items.len(), n_users, &pairs);
    let mut transposed = MfModel {
        user: Array2::zeros((items.len(), model.dim())),
        item: model.user.clone(),
        bias: Array1::zeros(n_users),
    };
    als::fold_in(&mut transposed, &rows, 0..items.len(), &cfg.pretrain.als);
    for (k, &i) in items.iter().enumerate() {
        let row = transposed.user.row(k);
        if row.iter().all(|x| x.is_finite()) {
            model.item.row_mut(i as usize).assign(&row);
            model.bias[i as usize] = 0.0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::train::softmax_fold_in::tests::two_tastes;

    fn trained(init: Init) -> (MfModel, Config) {
        let mut cfg = Config::default();
        cfg.generator.init = init;
        cfg.pretrain.als.l2 = 0.1;
        // Small batches and a high rate: 240 pairs must converge in a few epochs.
        cfg.pretrain.softmax = crate::train::settings::SoftmaxConfig {
            epochs: 40,
            batch: 16,
            negatives: 16,
            lr: 0.05,
            temperature: 0.2,
            ..cfg.pretrain.softmax.clone()
        };
        let pos = Interactions::from_pairs(40, 20, &two_tastes(40));
        let mut m = MfModel::random(40, 20, 4, 0.1, &mut rng::stream(5, 0, 0));
        match init {
            Init::Softmax => {
                crate::train::softmax::train(&mut m, &pos, &cfg.pretrain.softmax, 5, |_, _, _| {
                    None
                });
            }
            _ => als::train(&mut m, &pos, &cfg.pretrain.als),
        }
        (m, cfg)
    }

    fn mean_score(m: &MfModel, u: usize, items: std::ops::Range<usize>) -> f32 {
        let s = m.scores(u);
        let n = items.len() as f32;
        items.map(|i| s[i]).sum::<f32>() / n
    }

    /// An even (first-taste) user switches to the second taste; a new item is liked by
    /// second-taste users only.
    fn check(init: Init) {
        let (mut m, cfg) = trained(init);
        let mut pairs = two_tastes(40);
        pairs.extend([(0, 11), (0, 13), (0, 15), (0, 17), (0, 19)]);
        pairs.retain(|&(u, i)| u != 0 || i >= 10);
        pairs.extend([(1, 20), (3, 20), (5, 20)]);
        let train = Interactions::from_pairs(40, 21, &pairs);
        m.grow(40, 21, 0.01, &mut rng::stream(6, 0, 0));
        let before = m.clone();
        let users = BTreeSet::from([0, 1, 3, 5]);
        refresh(&mut m, &cfg.generator, &cfg, &train, &users, 20);
        assert_eq!(
            m.user.row(2),
            before.user.row(2),
            "{init:?}: untouched user moved"
        );
        let (b, a) = (
            mean_score(&before, 0, 10..20) - mean_score(&before, 0, 0..10),
            mean_score(&m, 0, 10..20) - mean_score(&m, 0, 0..10),
        );
        assert!(b < 0.0 && a > 0.0, "{init:?}: taste gap {b} -> {a}");
        // The new item ranks high for another second-taste user and low for a first-taste one.
        let rank = |u: usize| {
            let s = m.scores(u);
            s.iter().filter(|&&x| x > s[20]).count()
        };
        assert!(
            rank(7) < 10 && rank(2) >= 10,
            "{init:?}: ranks {} {}",
            rank(7),
            rank(2)
        );
        assert!(m.is_finite());
    }

    #[test]
    fn existing_users_and_new_items_follow_feedback_under_als() {
        check(Init::Als);
    }

    #[test]
    fn existing_users_and_new_items_follow_feedback_under_softmax() {
        check(Init::Softmax);
    }
}
