//! A bounded HTTP/1.1 load generator and `irgan serve` child process for the service benches
//! (`load`, `online`): keep-alive connections on 127.0.0.1, per-request latencies, a server that
//! is stopped with SIGTERM (then SIGKILL) and killed on drop.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::Value;
use tokio::net::TcpStream;

/// Per-request timeout of the client.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

pub fn env_num<T: std::str::FromStr>(key: &str, default: T) -> T {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The server child process; killed (SIGKILL) on drop unless it already exited.
pub struct Server {
    pub child: Child,
    pub addr: String,
    pub log: PathBuf,
}

impl Server {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then waits up to `limit`; SIGKILL after that. Returns a description.
    pub fn stop(&mut self, limit: Duration) -> String {
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
pub struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

/// A response: status and body.
pub struct Resp {
    pub status: u16,
    pub body: Vec<u8>,
}

/// Writes all of `buf` (tokio's `io-util` extension traits are not enabled in this crate).
pub async fn write_all(s: &TcpStream, mut buf: &[u8]) -> std::io::Result<()> {
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

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

impl Conn {
    pub async fn open(addr: &str) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            buf: Vec::with_capacity(16 << 10),
        })
    }

    /// Reads what is available straight into the buffer's spare room (no copy through a
    /// scratch array: the client's per-byte work should not tilt large answers).
    async fn fill(&mut self) -> std::io::Result<usize> {
        self.buf.reserve(16 << 10);
        loop {
            self.stream.readable().await?;
            match self.stream.try_read_buf(&mut self.buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
    }

    pub async fn request(&mut self, req: &[u8]) -> anyhow::Result<Resp> {
        write_all(&self.stream, req).await?;
        // Status line and headers.
        let head_end = loop {
            if let Some(p) = find(&self.buf, b"\r\n\r\n") {
                break p + 4;
            }
            if self.buf.len() > 64 << 10 {
                bail!("response head larger than 64 KiB");
            }
            if self.fill().await? == 0 {
                bail!("connection closed by the server");
            }
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
            if self.fill().await? == 0 {
                bail!("connection closed mid-body");
            }
        }
        let body = self.buf[head_end..head_end + length].to_vec();
        if self.buf.len() == head_end + length {
            self.buf.clear();
        } else {
            self.buf.drain(..head_end + length);
        }
        if close {
            bail!("server sent connection: close (status {status})");
        }
        Ok(Resp { status, body })
    }
}

pub fn get(addr: &str, path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").into_bytes()
}

pub fn post_json(addr: &str, path: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// One request on a fresh connection (setup and probes).
pub async fn once(addr: &str, path: &str) -> anyhow::Result<(u16, Value)> {
    let mut c = Conn::open(addr).await?;
    let r = tokio::time::timeout(REQUEST_TIMEOUT, c.request(&get(addr, path)))
        .await
        .context("timed out")??;
    let v = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    Ok((r.status, v))
}

/// What one connection measured.
#[derive(Default)]
pub struct Stats {
    pub requests: u64,
    pub units: u64,
    pub errors: u64,
    pub latencies_us: Vec<u32>,
    pub first_errors: Vec<String>,
}

impl Stats {
    pub fn error(&mut self, e: String) {
        self.errors += 1;
        if self.first_errors.len() < 3 {
            self.first_errors.push(e);
        }
    }
}

/// One phase's totals.
pub struct Row {
    pub name: &'static str,
    pub conns: usize,
    pub requests: u64,
    pub units: u64,
    pub errors: u64,
    pub secs: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub first_errors: Vec<String>,
}

impl Row {
    pub fn throughput(&self) -> f64 {
        self.requests as f64 / self.secs
    }
    pub fn unit_rate(&self) -> f64 {
        self.units as f64 / self.secs
    }
}

/// Builds request `n` of connection `conn`.
pub type MakeRequest = Arc<dyn Fn(usize, u64) -> Vec<u8> + Send + Sync>;

/// Runs `conns` keep-alive connections for `secs`; `make(conn, n)` builds request `n` of a
/// connection and `units(body)` counts what a 2xx response acknowledged.
pub async fn phase(
    name: &'static str,
    addr: &str,
    conns: usize,
    secs: f64,
    make: MakeRequest,
    units: fn(&[u8]) -> u64,
) -> Row {
    let mut m = Measured::default();
    m.run(addr, conns, secs, &make, units, 0).await;
    m.row(name, conns)
}

/// Phases measured in turns: `windows` rounds, each running every phase for
/// `secs / windows` in order, so each phase sees the same background (a trainer's publishes,
/// another process) as the others and their ratios compare like with like. One row per phase,
/// over all its windows.
pub async fn alternating(
    phases: Vec<(&'static str, MakeRequest)>,
    addr: &str,
    conns: usize,
    secs: f64,
    windows: usize,
) -> Vec<Row> {
    let windows = windows.max(1);
    let mut measured: Vec<Measured> = phases.iter().map(|_| Measured::default()).collect();
    for w in 0..windows {
        for ((_, make), m) in phases.iter().zip(&mut measured) {
            // Request numbers continue across windows, so each window asks for other users.
            let first = w as u64 * 1_000_000;
            m.run(addr, conns, secs / windows as f64, make, |_| 1, first)
                .await;
        }
    }
    phases
        .iter()
        .zip(measured)
        .map(|((name, _), m)| m.row(name, conns))
        .collect()
}

/// What the connections of one phase measured, over one or more runs.
#[derive(Default)]
struct Measured {
    stats: Stats,
    secs: f64,
}

impl Measured {
    /// Runs `conns` connections for `secs` and adds what they measured.
    async fn run(
        &mut self,
        addr: &str,
        conns: usize,
        secs: f64,
        make: &MakeRequest,
        units: fn(&[u8]) -> u64,
        first: u64,
    ) {
        let start = Instant::now();
        let end = start + Duration::from_secs_f64(secs);
        let mut tasks = Vec::with_capacity(conns);
        for c in 0..conns {
            let addr = addr.to_owned();
            let make = make.clone();
            tasks.push(tokio::spawn(async move {
                connection(&addr, c, first, end, &make, units).await
            }));
        }
        for t in tasks {
            match t.await {
                Ok(s) => self.add(s),
                Err(e) => self.stats.error(format!("client task failed: {e}")),
            }
        }
        self.secs += start.elapsed().as_secs_f64();
    }

    fn add(&mut self, s: Stats) {
        let all = &mut self.stats;
        all.requests += s.requests;
        all.units += s.units;
        all.errors += s.errors;
        all.latencies_us.extend(s.latencies_us);
        for e in s.first_errors {
            if all.first_errors.len() < 5 {
                all.first_errors.push(e);
            }
        }
    }

    fn row(mut self, name: &'static str, conns: usize) -> Row {
        let all = &mut self.stats.latencies_us;
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
            requests: self.stats.requests,
            units: self.stats.units,
            errors: self.stats.errors,
            secs: self.secs,
            p50_ms: pct(0.50),
            p99_ms: pct(0.99),
            max_ms: all.last().map_or(f64::NAN, |&m| m as f64 / 1e3),
            first_errors: self.stats.first_errors,
        }
    }
}

/// One keep-alive connection until `end`: request numbers from `first`.
async fn connection(
    addr: &str,
    c: usize,
    first: u64,
    end: Instant,
    make: &MakeRequest,
    units: fn(&[u8]) -> u64,
) -> Stats {
    let mut s = Stats {
        latencies_us: Vec::with_capacity(1 << 16),
        ..Stats::default()
    };
    let mut conn: Option<Conn> = None;
    let mut n = first;
    while Instant::now() < end {
        if conn.is_none() {
            match tokio::time::timeout(REQUEST_TIMEOUT, Conn::open(addr)).await {
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
}

pub fn accepted(body: &[u8]) -> u64 {
    let Some(p) = find(body, b"\"accepted\":") else {
        return 0;
    };
    body[p + 11..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .fold(0u64, |a, &b| a * 10 + u64::from(b - b'0'))
}

/// Distinct users and items of a `user item rating ...` file, in first-seen order.
pub fn ids(file: &Path) -> anyhow::Result<(Vec<String>, Vec<String>)> {
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
pub fn model_line(v: &Value) -> String {
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

pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Runs `cargo build --release --bin irgan` (a no-op when up to date, bounded at 15 minutes)
/// and returns the binary; an existing binary is used, with a warning, when the build fails.
pub fn build_release(root: &Path) -> anyhow::Result<PathBuf> {
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
        if !bin.exists() {
            bail!("cargo build failed and {} does not exist", bin.display());
        }
        eprintln!(
            "WARNING: cargo build failed; using the existing {}",
            bin.display()
        );
    }
    Ok(bin)
}

/// A free port on 127.0.0.1.
pub fn free_addr() -> anyhow::Result<String> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    Ok(format!("127.0.0.1:{port}"))
}

impl Server {
    /// Starts `bin serve <args>` listening on `addr` (REST only), its output appended to `log`.
    pub fn start(bin: &Path, addr: &str, args: &[String], log: &Path) -> anyhow::Result<Self> {
        let logf = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)?;
        let child = Command::new(bin)
            .arg("serve")
            .args(args)
            .args([
                "--set".to_string(),
                format!("server.bind={addr:?}"),
                "--set".to_string(),
                "server.grpc_bind=".to_string(),
            ])
            .env("RUST_LOG", "info")
            .stdin(std::process::Stdio::null())
            .stdout(logf.try_clone()?)
            .stderr(logf)
            .spawn()
            .context("starting irgan serve")?;
        Ok(Self {
            child,
            addr: addr.to_string(),
            log: log.to_path_buf(),
        })
    }

    /// Waits (at most `limit`) until `/readyz` answers 200; returns the seconds waited.
    pub async fn wait_ready(&mut self, limit: Duration) -> anyhow::Result<f64> {
        let t = Instant::now();
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                bail!(
                    "server exited during startup ({st}):\n{}",
                    tail(&self.log, 20)
                );
            }
            if let Ok((200, _)) = once(&self.addr, "/readyz").await {
                return Ok(t.elapsed().as_secs_f64());
            }
            if t.elapsed() > limit {
                bail!("not ready after {limit:?}:\n{}", tail(&self.log, 20));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Resident memory in MiB (Linux `/proc`; 0 elsewhere).
    pub fn rss_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()));
        status
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmRSS:"))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
            })
            .map_or(0.0, |kib| kib / 1024.0)
    }

    /// CPU seconds (user + system) the process has used so far (Linux `/proc`; 0 elsewhere).
    pub fn cpu_seconds(&self) -> f64 {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())) else {
            return 0.0;
        };
        // Fields after the command name (which may hold spaces) start at ") ".
        let Some(rest) = stat.rsplit_once(") ").map(|(_, r)| r) else {
            return 0.0;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        // utime and stime are fields 14 and 15 of stat: indices 11 and 12 counted from the state field.
        (ticks(11) + ticks(12)) / 100.0
    }
}

/// One JSON POST on a fresh connection: status and parsed body.
pub async fn post_once(addr: &str, path: &str, body: &str) -> anyhow::Result<(u16, Value)> {
    let mut c = Conn::open(addr).await?;
    let r = tokio::time::timeout(REQUEST_TIMEOUT, c.request(&post_json(addr, path, body)))
        .await
        .context("timed out")??;
    let v = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    Ok((r.status, v))
}

/// A phase's table row.
pub fn print_row(r: &Row) {
    println!(
        "{:<34} {:>5} {:>9} {:>10.0} r/s {:>8.2} {:>8.2} {:>8.2} {:>7}",
        r.name,
        r.conns,
        r.requests,
        r.throughput(),
        r.p50_ms,
        r.p99_ms,
        r.max_ms,
        r.errors
    );
    for e in &r.first_errors {
        println!("  error sample [{}]: {e}", r.name);
    }
}

/// The header of [`print_row`]'s table.
pub fn print_header() {
    println!(
        "{:<34} {:>5} {:>9} {:>14} {:>8} {:>8} {:>8} {:>7}",
        "phase", "conns", "requests", "throughput", "p50 ms", "p99 ms", "max ms", "errors"
    );
}
