//! Bounded load test of `irgan serve` over HTTP/1.1 keep-alive on 127.0.0.1.
//!
//! Run: `cargo bench --bench load`. It first runs `cargo build --release --bin irgan` (a no-op
//! when up to date), then starts `target/release/irgan serve` as a child process on a free
//! local port with a fresh data directory, bootstrapped from MovieLens-100k
//! (`../shared/data/ml-100k/movielens-100k-train.txt`) when present, otherwise from an
//! ML-100k-sized synthetic file written by `irgan synth`. The trainer publishes every 2 s
//! during the test (`trainer.publish_every_seconds=2`).
//!
//! Phases, each `LOAD_SECONDS` long (default 5):
//! 1. and 2. in turns (2 s windows, so their ratio is taken under the same trainer activity):
//!    `GET /healthz`, 64 connections, and `GET /v1/users/{u}/recommendations?k=10`, 64
//!    connections, `u` cycling over the bootstrap file's users;
//! 3. the non-default queries, each at 64 connections over the same users:
//!    `model=discriminator`, `model=blend` and `explore=0.5` (these run on the server's query
//!    pool, batched), with their throughput as a ratio of `/healthz`'s;
//! 4. `POST /v1/feedback`, 8 connections, JSON arrays of 500 `click` events with fresh event ids
//!    `load-<conn>-<n>` on known users and items (acknowledged events are counted from
//!    `"accepted":N`).
//!
//! It prints one table row per phase (requests, throughput, p50/p99/max latency, errors =
//! non-2xx or I/O errors), the targets (recommendations ≥ 0.5 × healthz throughput,
//! recommendation p99 < 10 ms, ingestion ≥ 20,000 events/s) and the trainer state from
//! `/v1/model` before and after. The server is stopped with SIGTERM (bounded wait, then
//! SIGKILL); a drop guard kills it on any error or panic and a watchdog ends the whole run
//! after `LOAD_DEADLINE_SECONDS` (default 360) counted after the build.
//!
//! Environment: `LOAD_SECONDS` (phase length), `LOAD_CLIENT_THREADS` (load generator runtime
//! workers, default 1 so the client leaves a core to the server on small machines),
//! `LOAD_DEADLINE_SECONDS`, `LOAD_WARMUP_SECONDS` (a pause after `/readyz`, default 0, e.g. to
//! let the per-user lists fill before measuring); `LOAD_BOOTSTRAP` (a `user item [rating]` file to bootstrap from
//! instead, e.g. Gowalla's pairs) and `LOAD_SET` (extra `--set` overrides separated by `;`,
//! e.g. `training.generator.dim=32;training.discriminator.dim=32`) for larger catalogues.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use common::http::{
    MakeRequest, Row, Server, accepted, alternating, build_release, env_num, get, ids, model_line,
    once, phase, post_json, tail,
};

/// Events per feedback request.
const BATCH: usize = 500;

fn main() {
    if let Err(e) = run() {
        eprintln!("load bench failed: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> anyhow::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let secs: f64 = env_num("LOAD_SECONDS", 5.0);
    let client_threads: usize = env_num("LOAD_CLIENT_THREADS", 1).max(1);
    let deadline_s: u64 = env_num("LOAD_DEADLINE_SECONDS", 360);

    // Build (no-op when up to date). Bounded separately from the load test.
    let bin = build_release(root)?;

    let tmp = tempfile::tempdir()?;
    let data_dir = tmp.path().join("data");
    let real = root.join("../shared/data/ml-100k/movielens-100k-train.txt");
    let custom = std::env::var("LOAD_BOOTSTRAP").ok().map(PathBuf::from);
    let (bootstrap, source) = if let Some(file) = custom {
        (file, "LOAD_BOOTSTRAP file")
    } else if real.exists() {
        (real, "MovieLens-100k train file")
    } else {
        let out = tmp.path().join("synth");
        let st = Command::new(&bin)
            .arg("synth")
            .arg("--out")
            .arg(&out)
            .args(["--users", "943", "--items", "1683", "--per-user", "60"])
            .status()?;
        if !st.success() {
            bail!("irgan synth failed: {st}");
        }
        (out.join("train.txt"), "synthetic 943 x 1683, 60 per user")
    };
    let (users, items) = ids(&bootstrap)?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let addr = format!("127.0.0.1:{port}");
    let log = tmp.path().join("server.log");
    let logf = std::fs::File::create(&log)?;
    let extra: Vec<String> = std::env::var("LOAD_SET")
        .unwrap_or_default()
        .split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .flat_map(|s| ["--set".to_string(), s.to_string()])
        .collect();
    let child = Command::new(&bin)
        .arg("serve")
        .arg("--data-dir")
        .arg(&data_dir)
        .arg("--bootstrap")
        .arg(&bootstrap)
        .args([
            "--set",
            &format!("server.bind={addr:?}"),
            "--set",
            "server.grpc_bind=", // REST only: this bench measures the HTTP path
            "--set",
            "trainer.publish_every_seconds=2",
        ])
        .args(&extra)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(logf.try_clone()?)
        .stderr(logf)
        .spawn()
        .context("starting irgan serve")?;
    let mut server = Server { child, addr, log };

    // Watchdog: whatever happens, the server and this process end by the deadline.
    let pid = server.pid();
    let started = Instant::now();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(deadline_s));
        eprintln!("WATCHDOG: load bench exceeded {deadline_s} s; killing server pid {pid}");
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
        std::process::exit(3);
    });

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(client_threads)
        .enable_all()
        .build()?;
    let result = rt.block_on(drive(
        &mut server,
        secs,
        client_threads,
        &users,
        &items,
        source,
    ));
    let stop = server.stop(Duration::from_secs(30));
    println!("shutdown: {stop}");
    let log_text = std::fs::read_to_string(&server.log).unwrap_or_default();
    let warn = log_text.lines().filter(|l| l.contains("WARN")).count();
    let err = log_text.lines().filter(|l| l.contains("ERROR")).count();
    println!("server log: {warn} WARN and {err} ERROR lines");
    if warn + err > 0 || result.is_err() || !stop.starts_with("exited") {
        println!("server log tail:\n{}", tail(&server.log, 15));
    }
    println!(
        "total wall time after build: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    result
}

async fn drive(
    server: &mut Server,
    secs: f64,
    client_threads: usize,
    users: &[String],
    items: &[String],
    source: &str,
) -> anyhow::Result<()> {
    let addr = server.addr.clone();
    // Ready (bounded).
    let t = Instant::now();
    loop {
        if let Ok(Some(st)) = server.child.try_wait() {
            bail!(
                "server exited during startup ({st}):\n{}",
                tail(&server.log, 20)
            );
        }
        if let Ok((200, _)) = once(&addr, "/readyz").await {
            break;
        }
        if t.elapsed() > Duration::from_secs(180) {
            bail!("not ready after 180 s:\n{}", tail(&server.log, 20));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let ready_s = t.elapsed().as_secs_f64();
    // Optionally let the background fill of the per-user lists finish before measuring.
    let warmup: f64 = env_num("LOAD_WARMUP_SECONDS", 0.0);
    tokio::time::sleep(Duration::from_secs_f64(warmup.max(0.0))).await;
    let (_, before) = once(&addr, "/v1/model").await?;

    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!();
    println!(
        "irgan serve load test: {source} ({} users, {} items), ready in {ready_s:.1} s; \
         {secs} s per phase; {cores} cores; load generator on {client_threads} thread(s)",
        users.len(),
        items.len()
    );
    println!("model before: {}", model_line(&before));

    // `/healthz` and recommendations in turns (2 s each): their ratio is taken under the same
    // trainer activity.
    let a = addr.clone();
    let health_req: MakeRequest = Arc::new(move |_, _| get(&a, "/healthz"));
    let a = addr.clone();
    let users_arc: Arc<Vec<String>> = Arc::new(users.to_vec());
    let us = users_arc.clone();
    let recs_req: MakeRequest = Arc::new(move |c, n| {
        let u = &us[(c * 7919 + n as usize) % us.len()];
        get(&a, &format!("/v1/users/{u}/recommendations?k=10"))
    });
    let windows = (secs / 2.0).round().max(1.0) as usize;
    let rows = alternating(
        vec![
            ("GET /healthz", health_req),
            ("GET recommendations k=10", recs_req),
        ],
        &addr,
        64,
        secs,
        windows,
    )
    .await;
    let [health, recs]: [Row; 2] = rows.try_into().ok().expect("one row per phase");

    // The non-default queries: scored on the query pool, batched.
    let mut heavy = Vec::new();
    for (name, query) in [
        ("GET recs model=discriminator", "k=10&model=discriminator"),
        ("GET recs model=blend", "k=10&model=blend"),
        ("GET recs explore=0.5", "k=10&explore=0.5"),
    ] {
        let a = addr.clone();
        let us = users_arc.clone();
        heavy.push(
            phase(
                name,
                &addr,
                64,
                secs,
                Arc::new(move |c, n| {
                    let u = &us[(c * 7919 + n as usize) % us.len()];
                    get(&a, &format!("/v1/users/{u}/recommendations?{query}"))
                }),
                |_| 1,
            )
            .await,
        );
    }

    let a = addr.clone();
    let (us, is): (Arc<Vec<String>>, Arc<Vec<String>>) =
        (Arc::new(users.to_vec()), Arc::new(items.to_vec()));
    let feedback = phase(
        "POST feedback x500",
        &addr,
        8,
        secs,
        Arc::new(move |c, n| {
            let mut body = String::with_capacity(BATCH * 80);
            body.push('[');
            for j in 0..BATCH {
                let k = n as usize * BATCH + j;
                if j > 0 {
                    body.push(',');
                }
                let u = &us[(c * 131 + k * 7) % us.len()];
                let i = &is[(k * 31 + c) % is.len()];
                body.push_str(&format!(
                    r#"{{"id":"load-{c}-{k}","user":"{u}","item":"{i}","type":"click"}}"#
                ));
            }
            body.push(']');
            post_json(&a, "/v1/feedback", &body)
        }),
        accepted,
    )
    .await;

    // Give the trainer one publish period to fold the feedback, then read its state.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (_, after) = once(&addr, "/v1/model").await?;

    println!();
    println!(
        "{:<26} {:>5} {:>9} {:>12} {:>9} {:>9} {:>9} {:>7}",
        "phase", "conns", "requests", "throughput", "p50 ms", "p99 ms", "max ms", "errors"
    );
    let rows: Vec<&Row> = [&health, &recs]
        .into_iter()
        .chain(&heavy)
        .chain([&feedback])
        .collect();
    for r in &rows {
        let tp = if r.name.starts_with("POST") {
            format!("{:.0} ev/s", r.unit_rate())
        } else {
            format!("{:.0} r/s", r.throughput())
        };
        println!(
            "{:<26} {:>5} {:>9} {:>12} {:>9.2} {:>9.2} {:>9.2} {:>7}",
            r.name, r.conns, r.requests, tp, r.p50_ms, r.p99_ms, r.max_ms, r.errors
        );
    }
    println!(
        "feedback: {} events acknowledged in {} requests ({:.1} req/s)",
        feedback.units,
        feedback.requests,
        feedback.throughput()
    );
    for r in &rows {
        for e in &r.first_errors {
            println!("  error sample [{}]: {e}", r.name);
        }
    }

    let ratio = recs.throughput() / health.throughput();
    let ok = |b: bool| if b { "PASS" } else { "FAIL" };
    println!();
    println!(
        "recommendations / healthz throughput: {ratio:.2} (target >= 0.5) {}",
        ok(ratio >= 0.5)
    );
    println!(
        "recommendation p99: {:.2} ms (target < 10 ms) {}",
        recs.p99_ms,
        ok(recs.p99_ms < 10.0)
    );
    for r in &heavy {
        println!(
            "{}: {:.0} r/s = {:.2} x healthz, p50 {:.2} ms, p99 {:.2} ms \
             (targets >= 5000 r/s, p99 < 25 ms) {}",
            r.name,
            r.throughput(),
            r.throughput() / health.throughput(),
            r.p50_ms,
            r.p99_ms,
            ok(r.throughput() >= 5000.0 && r.p99_ms < 25.0)
        );
    }
    println!(
        "ingestion: {:.0} events/s (target >= 20000) {}",
        feedback.unit_rate(),
        ok(feedback.unit_rate() >= 20_000.0)
    );
    println!();
    println!("model before: {}", model_line(&before));
    println!("model after:  {}", model_line(&after));
    let published =
        after["version"].as_u64().unwrap_or(0) > before["version"].as_u64().unwrap_or(0);
    let stepped = after["game"]["steps"].as_u64().unwrap_or(0)
        > before["game"]["steps"].as_u64().unwrap_or(0);
    println!(
        "trainer during the test: {} steps, {}",
        after["game"]["steps"].as_u64().unwrap_or(0) as i64
            - before["game"]["steps"].as_u64().unwrap_or(0) as i64,
        if published {
            format!(
                "published {} new version(s)",
                after["version"].as_u64().unwrap_or(0) - before["version"].as_u64().unwrap_or(0)
            )
        } else if stepped {
            "stepped but published nothing (see last_refusal)".into()
        } else {
            "did not step".into()
        }
    );
    Ok(())
}
