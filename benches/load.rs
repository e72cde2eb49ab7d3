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
//! 1. `GET /healthz`, 64 connections;
//! 2. `GET /v1/users/{u}/recommendations?k=10`, 64 connections, `u` cycling over the bootstrap
//!    file's users;
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

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::Value;
use tokio::net::TcpStream;

/// Per-request timeout of the client.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Events per feedback request.
const BATCH: usize = 500;

fn env_num<T: std::str::FromStr>(key: &str, default: T) -> T {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The server child process; killed (SIGKILL) on drop unless it already exited.
struct Server {
    child: Child,
    addr: String,
    log: PathBuf,
}

impl Server {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then waits up to `limit`; SIGKILL after that. Returns a description.
    fn stop(&mut self, limit: Duration) -> String {
        let t = Instant::now();
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        while t.elapsed() < limit {
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    return format!(
                        "exited after SIGTERM in {:.2} s with {status}",
                        t.elapsed().as_secs_f64()
                    );
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(50)),
                Err(e) => return format!("wait failed: {e}"),
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        format!(
            "did NOT exit within {:.0} s of SIGTERM; killed",
            limit.as_secs_f64()
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A minimal HTTP/1.1 keep-alive client connection.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

/// A response: status and body.
struct Resp {
    status: u16,
    body: Vec<u8>,
}

/// Writes all of `buf` (tokio's `io-util` extension traits are not enabled in this crate).
async fn write_all(s: &TcpStream, mut buf: &[u8]) -> std::io::Result<()> {
    while !buf.is_empty() {
        s.writable().await?;
        match s.try_write(buf) {
            Ok(n) => buf = &buf[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Reads what is available (at least one byte, or 0 at end of stream).
async fn read_some(s: &TcpStream, buf: &mut [u8]) -> std::io::Result<usize> {
    loop {
        s.readable().await?;
        match s.try_read(buf) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

impl Conn {
    async fn open(addr: &str) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            buf: Vec::with_capacity(16 << 10),
        })
    }

    async fn request(&mut self, req: &[u8]) -> anyhow::Result<Resp> {
        write_all(&self.stream, req).await?;
        // Status line and headers.
        let head_end = loop {
            if let Some(p) = find(&self.buf, b"\r\n\r\n") {
                break p + 4;
            }
            if self.buf.len() > 64 << 10 {
                bail!("response head larger than 64 KiB");
            }
            let mut chunk = [0u8; 8192];
            let n = read_some(&self.stream, &mut chunk).await?;
            if n == 0 {
                bail!("connection closed by the server");
            }
            self.buf.extend_from_slice(&chunk[..n]);
        };
        let head = std::str::from_utf8(&self.buf[..head_end]).context("non-UTF-8 head")?;
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let status: u16 = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("bad status line {status_line:?}"))?;
        let mut length = None;
        let mut close = false;
        for line in lines {
            if let Some((k, v)) = line.split_once(':') {
                let (k, v) = (k.trim(), v.trim());
                if k.eq_ignore_ascii_case("content-length") {
                    length = Some(v.parse::<usize>().context("bad content-length")?);
                } else if k.eq_ignore_ascii_case("transfer-encoding") {
                    bail!("unsupported transfer-encoding {v}");
                } else if k.eq_ignore_ascii_case("connection") && v.eq_ignore_ascii_case("close") {
                    close = true;
                }
            }
        }
        let length = length.context("response without content-length")?;
        while self.buf.len() < head_end + length {
            let mut chunk = [0u8; 16384];
            let n = read_some(&self.stream, &mut chunk).await?;
            if n == 0 {
                bail!("connection closed mid-body");
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
        let body = self.buf[head_end..head_end + length].to_vec();
        self.buf.drain(..head_end + length);
        if close {
            bail!("server sent connection: close (status {status})");
        }
        Ok(Resp { status, body })
    }
}

fn get(addr: &str, path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").into_bytes()
}

fn post_json(addr: &str, path: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// One request on a fresh connection (setup and probes).
async fn once(addr: &str, path: &str) -> anyhow::Result<(u16, Value)> {
    let mut c = Conn::open(addr).await?;
    let r = tokio::time::timeout(REQUEST_TIMEOUT, c.request(&get(addr, path)))
        .await
        .context("timed out")??;
    let v = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    Ok((r.status, v))
}

/// What one connection measured.
#[derive(Default)]
struct Stats {
    requests: u64,
    units: u64,
    errors: u64,
    latencies_us: Vec<u32>,
    first_errors: Vec<String>,
}

impl Stats {
    fn error(&mut self, e: String) {
        self.errors += 1;
        if self.first_errors.len() < 3 {
            self.first_errors.push(e);
        }
    }
}

/// One phase's totals.
struct Row {
    name: &'static str,
    conns: usize,
    requests: u64,
    units: u64,
    errors: u64,
    secs: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    first_errors: Vec<String>,
}

impl Row {
    fn throughput(&self) -> f64 {
        self.requests as f64 / self.secs
    }
    fn unit_rate(&self) -> f64 {
        self.units as f64 / self.secs
    }
}

/// Runs `conns` keep-alive connections for `secs`; `make(conn, n)` builds request `n` of a
/// connection and `units(body)` counts what a 2xx response acknowledged.
async fn phase(
    name: &'static str,
    addr: &str,
    conns: usize,
    secs: f64,
    make: Arc<dyn Fn(usize, u64) -> Vec<u8> + Send + Sync>,
    units: fn(&[u8]) -> u64,
) -> Row {
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(secs);
    let mut tasks = Vec::with_capacity(conns);
    for c in 0..conns {
        let addr = addr.to_owned();
        let make = make.clone();
        tasks.push(tokio::spawn(async move {
            let mut s = Stats {
                latencies_us: Vec::with_capacity(1 << 16),
                ..Stats::default()
            };
            let mut conn: Option<Conn> = None;
            let mut n = 0u64;
            while Instant::now() < end {
                if conn.is_none() {
                    match tokio::time::timeout(REQUEST_TIMEOUT, Conn::open(&addr)).await {
                        Ok(Ok(c)) => conn = Some(c),
                        Ok(Err(e)) => {
                            s.error(format!("connect: {e}"));
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            continue;
                        }
                        Err(_) => {
                            s.error("connect: timed out".into());
                            continue;
                        }
                    }
                }
                let Some(cn) = conn.as_mut() else { continue };
                let req = make(c, n);
                n += 1;
                let t = Instant::now();
                let r = tokio::time::timeout(REQUEST_TIMEOUT, cn.request(&req)).await;
                let us = t.elapsed().as_micros().min(u32::MAX as u128) as u32;
                s.requests += 1;
                s.latencies_us.push(us);
                match r {
                    Ok(Ok(resp)) if (200..300).contains(&resp.status) => {
                        s.units += units(&resp.body);
                    }
                    Ok(Ok(resp)) => {
                        let body = String::from_utf8_lossy(&resp.body);
                        s.error(format!(
                            "HTTP {}: {}",
                            resp.status,
                            body.chars().take(200).collect::<String>()
                        ));
                    }
                    Ok(Err(e)) => {
                        s.error(format!("I/O: {e:#}"));
                        conn = None;
                    }
                    Err(_) => {
                        s.error(format!("timeout after {REQUEST_TIMEOUT:?}"));
                        conn = None;
                    }
                }
            }
            s
        }));
    }
    let mut all = Vec::new();
    let (mut requests, mut u, mut errors) = (0, 0, 0);
    let mut first_errors = Vec::new();
    for t in tasks {
        match t.await {
            Ok(s) => {
                requests += s.requests;
                u += s.units;
                errors += s.errors;
                all.extend(s.latencies_us);
                for e in s.first_errors {
                    if first_errors.len() < 5 {
                        first_errors.push(e);
                    }
                }
            }
            Err(e) => {
                errors += 1;
                first_errors.push(format!("client task failed: {e}"));
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    all.sort_unstable();
    let pct = |q: f64| -> f64 {
        if all.is_empty() {
            return f64::NAN;
        }
        let i = ((all.len() as f64 * q).ceil() as usize).clamp(1, all.len()) - 1;
        all[i] as f64 / 1e3
    };
    Row {
        name,
        conns,
        requests,
        units: u,
        errors,
        secs,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        max_ms: all.last().map_or(f64::NAN, |&m| m as f64 / 1e3),
        first_errors,
    }
}

fn accepted(body: &[u8]) -> u64 {
    let Some(p) = find(body, b"\"accepted\":") else {
        return 0;
    };
    body[p + 11..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .fold(0u64, |a, &b| a * 10 + u64::from(b - b'0'))
}

/// Distinct users and items of a `user item rating ...` file, in first-seen order.
fn ids(file: &Path) -> anyhow::Result<(Vec<String>, Vec<String>)> {
    let text = std::fs::read_to_string(file)?;
    let (mut users, mut items) = (Vec::new(), Vec::new());
    let (mut su, mut si) = (BTreeSet::new(), BTreeSet::new());
    for line in text.lines() {
        let mut f = line.split_whitespace();
        if let (Some(u), Some(i)) = (f.next(), f.next()) {
            if su.insert(u.to_owned()) {
                users.push(u.to_owned());
            }
            if si.insert(i.to_owned()) {
                items.push(i.to_owned());
            }
        }
    }
    if users.is_empty() || items.is_empty() {
        bail!("no interactions in {}", file.display());
    }
    Ok((users, items))
}

/// Trainer summary from `/v1/model`.
fn model_line(v: &Value) -> String {
    let g = &v["game"];
    format!(
        "version {} | steps {} | applied_seq {} | users {} items {} | positives {} | last_refusal {}",
        v["version"],
        g["steps"],
        g["applied_seq"],
        v["users"],
        v["items"],
        g["positives"],
        g["last_refusal"]
    )
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

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
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let bin = root.join("target/release/irgan");
    eprintln!("building: {cargo} build --release --bin irgan");
    let mut build = Command::new(&cargo)
        .args(["build", "--release", "--bin", "irgan"])
        .current_dir(root)
        .spawn()
        .context("spawning cargo build")?;
    let t = Instant::now();
    let built = loop {
        if let Some(s) = build.try_wait()? {
            break s.success();
        }
        if t.elapsed() > Duration::from_secs(900) {
            let _ = build.kill();
            let _ = build.wait();
            break false;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    if !built {
        if bin.exists() {
            eprintln!(
                "WARNING: cargo build failed; using the existing {}",
                bin.display()
            );
        } else {
            bail!("cargo build failed and {} does not exist", bin.display());
        }
    }

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

    let a = addr.clone();
    let health = phase(
        "GET /healthz",
        &addr,
        64,
        secs,
        Arc::new(move |_, _| get(&a, "/healthz")),
        |_| 1,
    )
    .await;

    let a = addr.clone();
    let users_arc: Arc<Vec<String>> = Arc::new(users.to_vec());
    let us = users_arc.clone();
    let recs = phase(
        "GET recommendations k=10",
        &addr,
        64,
        secs,
        Arc::new(move |c, n| {
            let u = &us[(c * 7919 + n as usize) % us.len()];
            get(&a, &format!("/v1/users/{u}/recommendations?k=10"))
        }),
        |_| 1,
    )
    .await;

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
