//! Benchmark of the sampled game against the exact one at Gowalla scale: one G-epoch and one
//! D-epoch (with its negative draw from G), sampled vs exhaustive candidates, medians and ratios.
//!
//! Uses ../shared/data/gowalla/train.txt (adjacency format) when present, otherwise a synthetic
//! set of the same shape (29,858 users, 40,981 items, ~810k positives). Dimension 64, random
//! players (the cost of an epoch does not depend on where the factors start), every core.
//! Run: `cargo bench --bench game` (`-- --quick` times each exact epoch once instead of twice,
//! `-- --sampled-only` skips the exact game).
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::path::Path;

use common::time_s as time;
use irgan::config::{CandidateMode, Config};
use irgan::data::loader::Format;
use irgan::model::MfModel;
use irgan::pipeline::recommend;
use irgan::rng;
use irgan::train::irgan::Game;

fn config() -> Config {
    let gowalla = [
        "../shared/data/gowalla/train.txt",
        "/work/shared/data/gowalla/train.txt",
    ]
    .into_iter()
    .map(Path::new)
    .find(|p| p.exists());
    let mut cfg = Config::default();
    match gowalla {
        Some(p) => {
            cfg.data.train = p.to_path_buf();
            cfg.data.format = Format::Adjacency;
        }
        None => {
            println!("../shared/data/gowalla absent: a synthetic set of the same shape");
            let s = &mut cfg.data.synthetic;
            s.users = 29_858;
            s.items = 40_981;
            s.per_user = 27;
            s.clusters = 50;
            s.test_fraction = 0.0;
        }
    }
    cfg.data.validation_fraction = 0.0;
    for m in [&mut cfg.generator, &mut cfg.discriminator] {
        m.dim = 64;
    }
    cfg
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let mut cfg = config();
    let data = recommend::load_data(&cfg).expect("data");
    let fit = &data.fit;
    let (users, items) = (fit.n_users(), fit.n_items());
    println!(
        "data: {users} users, {items} items, {} training positives, dim 64, {} threads",
        fit.nnz(),
        rayon::current_num_threads()
    );
    let mut r = rng::stream(1, 0, 0);
    let g = MfModel::random(users, items, 64, 0.1, &mut r);
    let d = MfModel::random(users, items, 64, 0.1, &mut r);
    let ir = cfg.irgan.clone();
    println!(
        "sampled: sampled_candidates {} per {} users, d_resample_pool {} per 16 users, \
         proposal popularity^{} + {} uniform",
        ir.sampled_candidates,
        ir.g_user_batch,
        ir.d_resample_pool,
        ir.proposal_popularity,
        ir.proposal_uniform
    );
    let exact_reps = if quick { 1 } else { 2 };
    let sampled_only = std::env::args().any(|a| a == "--sampled-only");
    let mut rows = Vec::new();
    for (mode, reps) in [
        (CandidateMode::Sampled, 5),
        (CandidateMode::Exhaustive, exact_reps),
    ] {
        if sampled_only && mode == CandidateMode::Exhaustive {
            continue;
        }
        cfg.irgan.candidates = mode;
        let mut game = Game::new(g.clone(), d.clone(), cfg.game());
        // One D-epoch on a fresh negative draw from G (d_phase draws at its first epoch).
        let d_epoch = time(reps, || game.d_phase(fit, 1));
        let mut entropy = 0.0;
        let g_epoch = time(reps, || entropy = game.g_epoch(fit).entropy);
        println!(
            "{mode:?}: G-epoch {g_epoch:.3} s, D-epoch with its negative draw {d_epoch:.3} s \
             (median of {reps}); G entropy {entropy:.3} nats (ln items = {:.3})",
            (items as f64).ln()
        );
        rows.push((g_epoch, d_epoch));
    }
    if let [sampled, exact] = rows.as_slice() {
        println!(
            "speed-up of the sampled game: G-epoch x{:.1}, D-epoch (with draw) x{:.1}",
            exact.0 / sampled.0,
            exact.1 / sampled.1
        );
    }
}
