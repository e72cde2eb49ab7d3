//! Benchmark of `model::topk`: (a) exact top-10 for every user at the Gowalla shape (29,858 users
//! × 40,981 items × 64 dims), the blocked GEMM kernel against today's per-item loop
//! (`scores_into` + `top_k` per user); (b) the IVF index at 1M items × 64 dims: build time,
//! memory, recall@10 against exact over 1,000 queries, p50/p99 latency of one query on one
//! thread, for a few `nprobe`.
//!
//! Synthetic clustered factors: 4,096 centres with N(0, 1) coordinates; each user and item is a
//! centre plus N(0, 0.5²) noise per coordinate, items scaled by a log-normal factor
//! exp(0.25·N(0, 1)) (popularity-like norm spread), item bias N(0, 0.1²); each user excludes 27
//! random "seen" items (Gowalla's mean). Both kernels use the same rayon pool (all cores).
//!
//! Run: `cargo bench --bench topk` (a few minutes); `-- --quick` for a smaller run (250k items
//! in (b), fewer users and reps).
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::time::Instant;

use ndarray::{Array1, Array2};
use rayon::prelude::*;

use common::{median, percentile};
use irgan::model::MfModel;
use irgan::model::topk::exact::top_k_users;
use irgan::model::topk::{IvfIndex, IvfParams, top_k};
use irgan::rng::{self, Rng};

const DIM: usize = 64;
const CENTRES: usize = 4096;
const SEEN: usize = 27;
const K: usize = 10;

fn normal(r: &mut Rng) -> f32 {
    let (a, b) = (rng::unit(r).max(1e-12), rng::unit(r));
    ((-2.0 * a.ln()).sqrt() * (std::f64::consts::TAU * b).cos()) as f32
}

/// Rows drawn around the shared centres (generated in parallel from per-row streams).
fn around(centres: &Array2<f32>, n: usize, tag: u64, spread: f32) -> Array2<f32> {
    let rows: Vec<Vec<f32>> = (0..n)
        .into_par_iter()
        .map(|j| {
            let mut r = rng::stream(7, tag, j as u64);
            let c = centres.row(rng::below(&mut r, CENTRES));
            let scale = (spread * normal(&mut r)).exp();
            c.iter()
                .map(|&m| scale * (m + 0.5 * normal(&mut r)))
                .collect()
        })
        .collect();
    Array2::from_shape_vec((n, DIM), rows.concat()).unwrap()
}

fn synthetic(users: usize, items: usize) -> MfModel {
    let mut r = rng::stream(7, 0, 0);
    let centres = Array2::from_shape_fn((CENTRES, DIM), |_| normal(&mut r));
    let bias = Array1::from_shape_fn(items, |_| 0.1 * normal(&mut r));
    MfModel {
        user: around(&centres, users, 1, 0.0),
        item: around(&centres, items, 2, 0.25),
        bias,
    }
}

fn seen(users: usize, items: usize) -> Vec<Vec<u32>> {
    (0..users)
        .map(|u| {
            let mut r = rng::stream(7, 3, u as u64);
            let mut s: Vec<u32> = (0..SEEN)
                .map(|_| rng::below(&mut r, items) as u32)
                .collect();
            s.sort_unstable();
            s.dedup();
            s
        })
        .collect()
}

fn per_item_loop(m: &MfModel, users: &[usize], seen: &[Vec<u32>]) -> Vec<Vec<u32>> {
    users
        .par_iter()
        .map_init(
            || vec![0.0f32; m.n_items()],
            |buf, &u| {
                m.scores_into(u, buf);
                top_k(buf, &seen[u], K)
            },
        )
        .collect()
}

fn exact_bench(quick: bool) {
    let (n_users, n_items) = (29_858, 40_981);
    let (sample, reps) = if quick { (512, 1) } else { (2_048, 3) };
    let t = Instant::now();
    let m = synthetic(n_users, n_items);
    let seen = seen(n_users, n_items);
    println!(
        "(a) exact top-{K}: {n_users} users x {n_items} items x {DIM} dims, {} threads (data {:.1} s)",
        rayon::current_num_threads(),
        t.elapsed().as_secs_f64()
    );
    let all: Vec<usize> = (0..n_users).collect();
    // The per-item loop over all users takes about a minute, so both kernels are timed on the
    // same evenly spread sample of users, and the blocked one also on every user.
    let users: Vec<usize> = (0..sample).map(|j| j * n_users / sample).collect();
    let mut loop_lists = Vec::new();
    let per_item = median(
        (0..reps)
            .map(|_| {
                let t = Instant::now();
                loop_lists = per_item_loop(&m, &users, &seen);
                t.elapsed().as_secs_f64()
            })
            .collect(),
    );
    let mut blocked_lists = Vec::new();
    let blocked = median(
        (0..reps)
            .map(|_| {
                let t = Instant::now();
                blocked_lists = top_k_users(&m, &users, |u| &seen[u], K);
                t.elapsed().as_secs_f64()
            })
            .collect(),
    );
    let blocked_all = median(
        (0..reps)
            .map(|_| {
                let t = Instant::now();
                let lists = top_k_users(&m, &all, |u| &seen[u], K);
                assert_eq!(lists.len(), n_users);
                t.elapsed().as_secs_f64()
            })
            .collect(),
    );
    let same = loop_lists
        .iter()
        .zip(&blocked_lists)
        .filter(|(a, b)| a == b)
        .count();
    let per_user = |s: f64, n: usize| s * 1e6 / n as f64;
    println!("| kernel | users | median s | µs/user | all {n_users} users (s) |");
    println!("|---|---|---|---|---|");
    println!(
        "| per-item loop (scores_into + top_k) | {sample} | {per_item:.3} | {:.1} | {:.1} (extrapolated) |",
        per_user(per_item, sample),
        per_item * n_users as f64 / sample as f64
    );
    println!(
        "| blocked GEMM ({}x{} blocks) | {sample} | {blocked:.3} | {:.1} | {blocked_all:.2} (measured) |",
        irgan::model::topk::exact::USER_BATCH,
        irgan::model::topk::exact::ITEM_BLOCK,
        per_user(blocked, sample)
    );
    println!(
        "speed-up: {:.1}x on the sample, {:.1}x all users (extrapolated loop / measured blocked); \
         identical lists: {same}/{sample} (the rest differ by GEMM rounding of near-ties)",
        per_item / blocked,
        per_item * n_users as f64 / sample as f64 / blocked_all
    );
}

fn index_bench(quick: bool) {
    let (n_items, n_queries) = if quick {
        (250_000, 300)
    } else {
        (1_000_000, 1_000)
    };
    let t = Instant::now();
    let m = synthetic(n_queries, n_items);
    let seen = seen(n_queries, n_items);
    println!(
        "\n(b) IVF index: {n_items} items x {DIM} dims, {n_queries} queries (data {:.1} s)",
        t.elapsed().as_secs_f64()
    );
    let users: Vec<usize> = (0..n_queries).collect();
    let t = Instant::now();
    let exact = top_k_users(&m, &users, |u| &seen[u], K);
    let exact_s = t.elapsed().as_secs_f64();
    let arg = |name: &str| {
        let args: Vec<String> = std::env::args().collect();
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1)?.parse::<usize>().ok())
    };
    let params = IvfParams {
        nlist: arg("--nlist").unwrap_or(0),
        ..IvfParams::default()
    };
    let t = Instant::now();
    let index = IvfIndex::build(m.item.view(), m.bias.as_slice().unwrap(), &params);
    let build = t.elapsed().as_secs_f64();
    println!(
        "build {build:.2} s ({} threads; nlist {}, {} k-means iterations on {} points), \
         index memory {} bytes ({:.1} MiB; the item factors alone are {:.1} MiB); \
         exact ground truth {:.2} s ({:.2} ms/query batched)",
        rayon::current_num_threads(),
        index.nlist(),
        params.iterations,
        (index.nlist() * params.sample_per_list).min(n_items),
        index.memory_bytes(),
        index.memory_bytes() as f64 / (1 << 20) as f64,
        (n_items * DIM * 4) as f64 / (1 << 20) as f64,
        exact_s,
        exact_s * 1e3 / n_queries as f64
    );
    println!("| nprobe | items scanned (mean) | recall@{K} | p50 ms | p99 ms |");
    println!("|---|---|---|---|---|");
    for nprobe in [8, 16, 32, 64] {
        let mut lat = Vec::with_capacity(n_queries);
        let mut hits = 0;
        for (u, want) in exact.iter().enumerate() {
            let t = Instant::now();
            let got = index.top_k(m.user_row(u), K, &seen[u], Some(nprobe));
            lat.push(t.elapsed().as_secs_f64() * 1e3);
            assert!(got.iter().all(|i| seen[u].binary_search(i).is_err()));
            hits += got.iter().filter(|i| want.contains(i)).count();
        }
        println!(
            "| {nprobe} | {:.0} | {:.3} | {:.3} | {:.3} |",
            n_items as f64 * nprobe as f64 / index.nlist() as f64,
            hits as f64 / (K * n_queries) as f64,
            percentile(lat.clone(), 0.5),
            percentile(lat, 0.99)
        );
    }
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    if !std::env::args().any(|a| a == "--only-index") {
        exact_bench(quick);
    }
    index_bench(quick);
}
