//! Benchmark of scoring a request batch's full rows at the Gowalla shape (40,981 items × 32
//! dims): the packed item panel (`model::panel`, what the service's request batches use)
//! against the path it replaced (`exact::score_users`: a direct pass for up to 8 users, a GEMM
//! beyond), for batches of 1 to 64 users, on one thread. Prints the median time per user row
//! and the ratio old / panel.
//!
//! Run: `cargo bench --bench rows` (about a minute).
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use common::time_s;
use irgan::model::MfModel;
use irgan::model::panel::ItemPanel;
use irgan::model::topk::exact;
use irgan::rng;

const ITEMS: usize = 40_981;
const USERS: usize = 1_024;
const DIM: usize = 32;

fn main() {
    let model = MfModel::random(USERS, ITEMS, DIM, 0.3, &mut rng::stream(5, 0, 0));
    let t = std::time::Instant::now();
    let panel = ItemPanel::of(&model);
    println!(
        "panel built in {:.2} ms ({ITEMS} items x {DIM})",
        t.elapsed().as_secs_f64() * 1e3
    );
    println!("batch | old us/user | panel us/user | old/panel");
    for batch in [1usize, 2, 4, 8, 16, 32, 64] {
        let reps = (2_048 / batch).clamp(40, 400);
        let mut next = 0usize;
        let mut users = || {
            let us: Vec<usize> = (0..batch).map(|j| (next * 131 + j * 7) % USERS).collect();
            next += 1;
            us
        };
        let old = time_s(reps, || {
            let u = users();
            std::hint::black_box(exact::score_users(&model, &u));
        });
        let new = time_s(reps, || {
            let u = users();
            let rows: Vec<f32> = u.iter().flat_map(|&u| model.user_row(u).to_vec()).collect();
            std::hint::black_box(panel.scores(&rows));
        });
        let per = |s: f64| s * 1e6 / batch as f64;
        println!(
            "{batch:5} | {:11.1} | {:13.1} | {:9.2}",
            per(old),
            per(new),
            old / new
        );
    }
}
