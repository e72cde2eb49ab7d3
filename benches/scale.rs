//! Scale benchmark: a synthetic catalogue of 1,000,000 items × 64 dimensions (the `irgan synth`
//! latent-cluster generator; 100,000 users × 20 positives by default, as fits 24 GiB and two
//! cores). Times one epoch of sampled-softmax pretraining, one D-epoch (with its SIR negative
//! draw from G) and one G-epoch of the sampled game, the IVF index build, and single-query
//! top-10 latency through the index against exact, with recall@10; prints peak memory.
//!
//! Run: `cargo bench --bench scale` (`-- --quick`: 250,000 items and 25,000 users).
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::time::Instant;

use common::percentile;
use irgan::config::{CandidateMode, Config};
use irgan::data::dataset::to_sets;
use irgan::data::synth::{self, SyntheticConfig};
use irgan::model::MfModel;
use irgan::model::topk::exact::top_k_users;
use irgan::model::topk::{IvfIndex, IvfParams};
use irgan::rng;
use irgan::train::irgan::Game;
use irgan::train::softmax;

const DIM: usize = 64;
const K: usize = 10;
const QUERIES: usize = 1_000;

/// Peak resident memory of this process (VmHWM), in MiB.
fn peak_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (users, items) = if quick {
        (25_000, 250_000)
    } else {
        (100_000, 1_000_000)
    };
    let s = SyntheticConfig {
        users,
        items,
        clusters: 2_000,
        per_user: 20,
        noise: 0.1,
        test_fraction: 0.0,
    };
    let t = Instant::now();
    let (train, _) = synth::generate(&s, 7);
    let positives = to_sets(&train, users, items, 4.0).positives;
    println!(
        "data: {users} users, {items} items, {} positives, dim {DIM}, {} threads ({:.1} s)",
        positives.nnz(),
        rayon::current_num_threads(),
        t.elapsed().as_secs_f64()
    );

    let mut cfg = Config::default();
    cfg.irgan.candidates = CandidateMode::Sampled;
    let mut r = rng::stream(1, 0, 0);
    let mut g = MfModel::random(users, items, DIM, 0.1, &mut r);
    let d = MfModel::random(users, items, DIM, 0.1, &mut r);

    // A few epochs, so the index is measured on factors with structure (random ones have none).
    let mut sm = cfg.pretrain.softmax.clone();
    sm.epochs = if quick { 3 } else { 5 };
    let t = Instant::now();
    softmax::train(&mut g, &positives, &sm, 1, |_, _, _| None);
    let pretrain_s = t.elapsed().as_secs_f64();

    let mut game = Game::new(g, d, cfg.game());
    let t = Instant::now();
    game.d_phase(&positives, 1);
    let d_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let stats = game.g_epoch(&positives);
    let g_s = t.elapsed().as_secs_f64();

    let g = &game.generator;
    let t = Instant::now();
    let index = IvfIndex::build(
        g.item.view(),
        g.bias.as_slice().unwrap(),
        &IvfParams::default(),
    );
    let build_s = t.elapsed().as_secs_f64();

    let queries: Vec<usize> = (0..QUERIES).map(|q| q * (users / QUERIES)).collect();
    let t = Instant::now();
    let exact = top_k_users(g, &queries, |u| positives.items(u), K);
    let exact_ms = t.elapsed().as_secs_f64() * 1e3 / QUERIES as f64;
    let probe = |nprobe: usize| {
        let mut latency = Vec::with_capacity(QUERIES);
        let mut hits = 0;
        for (&u, want) in queries.iter().zip(&exact) {
            let t = Instant::now();
            let got = index.top_k(g.user_row(u), K, positives.items(u), Some(nprobe));
            latency.push(t.elapsed().as_secs_f64() * 1e3);
            hits += got.iter().filter(|i| want.contains(i)).count();
        }
        (latency, hits as f64 / (K * QUERIES) as f64)
    };

    println!("| step | seconds |");
    println!("|---|---|");
    println!(
        "| sampled-softmax pretraining, one epoch (mean of {}) | {:.2} |",
        sm.epochs,
        pretrain_s / sm.epochs as f64
    );
    println!("| D-epoch (SIR negative draw + D steps) | {d_s:.2} |");
    println!(
        "| G-epoch (sampled game; entropy {:.2} nats) | {g_s:.2} |",
        stats.entropy
    );
    println!(
        "| IVF build ({} lists, {:.0} MiB) | {build_s:.2} |",
        index.nlist(),
        index.memory_bytes() as f64 / (1 << 20) as f64
    );
    println!("exact top-{K}, batched: {exact_ms:.3} ms/query");
    println!("| nprobe | recall@{K} | p50 ms | p99 ms |");
    println!("|---|---|---|---|");
    for nprobe in [index.nprobe(), 4 * index.nprobe()] {
        let (latency, recall) = probe(nprobe);
        println!(
            "| {nprobe} | {recall:.3} | {:.3} | {:.3} |",
            percentile(latency.clone(), 0.5),
            percentile(latency, 0.99)
        );
    }
    println!("peak memory: {:.0} MiB", peak_mib());
}
