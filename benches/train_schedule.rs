//! Benchmark of the adversarial training schedule: medians of the game's three steps and of a
//! whole outer epoch, single-threaded against all cores in the same run.
//!
//! Uses MovieLens-100k from ../shared/data when present, otherwise an ML-100k-sized synthetic
//! set. Run: `cargo bench --bench train_schedule` (add `-- --full` to time the paper's whole
//! 15 × (100 D + 50 G) schedule once per thread setting).
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::time::Instant;

use irgan::config::Config;
use irgan::pipeline::recommend::{self, TrainData};
use irgan::train::irgan::Game;

/// Median wall time in milliseconds of `reps` runs of `f`.
fn time<F: FnMut()>(reps: usize, f: F) -> f64 {
    common::time_s(reps, f) * 1e3
}

fn setup() -> (Config, TrainData) {
    let real = Path::new("../shared/data/ml-100k/movielens-100k-train.txt");
    let mut cfg = if real.exists() {
        Config::load(Some(Path::new("config/ml100k-reference.toml")), &[]).expect("config")
    } else {
        let mut c = Config::default();
        c.data.synthetic.users = 943;
        c.data.synthetic.items = 1683;
        c.data.synthetic.per_user = 60;
        c
    };
    cfg.data.validation_fraction = 0.1;
    let data = recommend::load_data(&cfg).expect("data");
    (cfg, data)
}

fn main() {
    let full = std::env::args().any(|a| a == "--full");
    let (cfg, data) = setup();
    let mut cache = Vec::new();
    let g = recommend::init_model(
        &cfg.generator,
        &cfg,
        &data,
        irgan::config::Role::Generator,
        &mut cache,
    )
    .expect("init G");
    let d = recommend::init_model(
        &cfg.discriminator,
        &cfg,
        &data,
        irgan::config::Role::Discriminator,
        &mut cache,
    )
    .expect("init D");
    println!(
        "data: {} users, {} items, {} fit positives",
        data.users.len(),
        data.items.len(),
        data.fit.nnz()
    );
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut rows = Vec::new();
    for threads in [1, cores] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("pool");
        let r = pool.install(|| {
            let mut game = Game::new(g.clone(), d.clone(), cfg.game());
            let refresh = cfg.irgan.negative_refresh;
            // A D-block: one negative draw and `negative_refresh` D-epochs on it.
            let d_block = time(7, || game.d_phase(&data.fit, refresh));
            let g_epoch = time(7, || {
                game.g_epoch(&data.fit);
            });
            let ir = &cfg.irgan;
            let outer = (ir.d_epochs / refresh) as f64 * d_block + ir.g_epochs as f64 * g_epoch;
            let whole = full.then(|| {
                let t = Instant::now();
                let mut game = Game::new(g.clone(), d.clone(), cfg.game());
                for _ in 0..ir.epochs {
                    game.d_phase(&data.fit, ir.d_epochs);
                    for _ in 0..ir.g_epochs {
                        game.g_epoch(&data.fit);
                    }
                }
                t.elapsed().as_secs_f64()
            });
            (threads, d_block, g_epoch, outer, whole)
        });
        rows.push(r);
    }
    println!(
        "median of 7 runs; d_block = 1 negative draw + {} D-epochs",
        cfg.irgan.negative_refresh
    );
    println!("threads  d_block_ms  g_epoch_ms  outer_epoch_est_s  full_schedule_s");
    for (t, db, ge, o, w) in &rows {
        let w = w.map_or("-".to_string(), |w| format!("{w:.2}"));
        println!("{t:>7}  {db:>10.2}  {ge:>10.2}  {:>17.2}  {w:>15}", o / 1e3);
    }
    if let [a, b] = rows.as_slice() {
        println!(
            "speed-up with {} threads: d_block x{:.2}, g_epoch x{:.2}, outer epoch x{:.2}",
            b.0,
            a.1 / b.1,
            a.2 / b.2,
            a.3 / b.3
        );
    }
}
