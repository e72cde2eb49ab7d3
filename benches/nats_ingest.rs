//! Feedback ingestion through one replica's API into JetStream vs into the local SQLite log, in
//! the same run: `POST /v1/feedback` through the real router (validation, append, metrics), in
//! process, without sockets.
//!
//! Run: `cargo bench --bench nats_ingest`. Starts its own `nats-server -js` on a free loopback
//! port and a temporary directory (skipped, with the reason printed, when `nats-server` is not
//! on PATH). Each backend gets `INGEST_REQUESTS` requests (default 400) of `INGEST_BATCH` click
//! events (default 100) with fresh ids, from `INGEST_CONCURRENCY` concurrent clients (default
//! 8). Prints events/s and the median and p99 request latency per backend. The local service
//! runs with `trainer.enabled = false` (it still folds the log) and the NATS one as a serving
//! replica (`--role serve`): what is measured is the replica's ingest path.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use irgan::online::settings::{Role, ServiceConfig, StorageBackend};
use tower::ServiceExt;

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A child process killed on drop.
struct Guard(std::process::Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn config(dir: &std::path::Path, backend: StorageBackend, url: &str) -> ServiceConfig {
    let mut c = ServiceConfig::default();
    c.storage.data_dir = dir.to_owned();
    c.storage.backend = backend;
    c.search.enabled = false;
    c.trainer.enabled = false;
    c.training.generator.dim = 8;
    c.training.discriminator.dim = 8;
    c.nats.url = url.to_owned();
    c.server.role = match backend {
        StorageBackend::Local => Role::All,
        StorageBackend::Nats => Role::Serve,
    };
    c.server.max_k = 100;
    c
}

/// Sends the requests; per-request latencies (seconds) and the wall time.
fn drive(cfg: ServiceConfig, tag: &str) -> (Vec<f64>, f64) {
    let (requests, batch, clients) = (
        env_num("INGEST_REQUESTS", 400),
        env_num("INGEST_BATCH", 100),
        env_num("INGEST_CONCURRENCY", 8).max(1),
    );
    let state = irgan::app::open(cfg).expect("open the service");
    let app = irgan::http::router::router(state);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let tag = Arc::new(tag.to_owned());
    rt.block_on(async move {
        let started = Instant::now();
        let mut tasks = Vec::new();
        for c in 0..clients {
            let (app, tag) = (app.clone(), tag.clone());
            tasks.push(tokio::spawn(async move {
                let mut lat = Vec::new();
                for r in (c..requests).step_by(clients) {
                    let events: Vec<serde_json::Value> = (0..batch)
                        .map(|k| {
                            serde_json::json!({
                                "id": format!("{tag}-{r}-{k}"),
                                "user": format!("u{}", (r * 7 + k) % 500),
                                "item": format!("i{}", (r * 13 + k * 3) % 300),
                                "type": "click",
                            })
                        })
                        .collect();
                    let req = Request::post("/v1/feedback")
                        .header(header::CONTENT_TYPE, "application/json")
                        .body(Body::from(serde_json::to_vec(&events).unwrap()))
                        .unwrap();
                    let t = Instant::now();
                    let resp = app.clone().oneshot(req).await.unwrap();
                    lat.push(t.elapsed().as_secs_f64());
                    assert_eq!(resp.status(), StatusCode::OK, "{tag}: feedback refused");
                }
                lat
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        (all, started.elapsed().as_secs_f64())
    })
}

fn report(name: &str, mut lat: Vec<f64>, wall: f64, batch: usize) {
    lat.sort_by(f64::total_cmp);
    let q = |p: f64| lat[((lat.len() as f64 - 1.0) * p).round() as usize] * 1e3;
    let events = lat.len() * batch;
    println!(
        "{name:<10} {:>7} requests {:>8} events {:>10.0} events/s   median {:>7.2} ms   p99 {:>7.2} ms",
        lat.len(),
        events,
        events as f64 / wall,
        q(0.5),
        q(0.99)
    );
}

fn main() {
    let batch = env_num("INGEST_BATCH", 100);
    let tmp = tempfile::tempdir().unwrap();
    let (local, wall) = drive(
        config(&tmp.path().join("local"), StorageBackend::Local, ""),
        "local",
    );
    let nats_ok = Command::new("nats-server")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    println!("feedback ingest through one replica (POST /v1/feedback, {batch} events a request)");
    report("sqlite", local, wall, batch);
    if !nats_ok {
        println!("jetstream  skipped: nats-server not on PATH (apt-get install nats-server)");
        return;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let _server = Guard(
        Command::new("nats-server")
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(tmp.path().join("nats"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server"),
    );
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "nats-server did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let url = format!("nats://127.0.0.1:{port}");
    let (nats, wall) = drive(
        config(&tmp.path().join("replica"), StorageBackend::Nats, &url),
        "nats",
    );
    report("jetstream", nats, wall, batch);
}
