//! `storage.backend = "nats"` against real `nats-server -js` processes (one node, and a
//! 3-node cluster), on free loopback ports and temporary directories: serving replicas, a
//! trainer with its lease and a standby, snapshots through the object store, and the search
//! task on the same backend.
//!
//! Every test skips with a printed reason when `nats-server` is not on PATH (`.ci/run`
//! installs it from Debian). The servers and `irgan` processes are killed on drop.

mod cluster;
mod failover;
mod replicas;
mod search;
mod settings;

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use irgan::store::Snapshot;
use serde_json::{Value, json};

use crate::common::free_ports;
use crate::service::DEFAULT_TOML;
use crate::service::client::{self, Response};

/// Whether `nats-server` can be run; prints why a test is skipped when not.
pub fn nats_available() -> bool {
    let ok = Command::new("nats-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("note: nats-server not on PATH; skipping (apt-get install nats-server)");
    }
    ok
}

/// A child process killed (SIGKILL) on drop, with its log file.
pub struct Proc {
    child: Option<Child>,
    log: PathBuf,
}

impl Proc {
    fn spawn(mut cmd: Command, log: PathBuf) -> Self {
        let out = File::create(&log).expect("log file");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("dup log"))
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        Self {
            child: Some(child),
            log,
        }
    }

    /// What the process has logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether it has exited.
    pub fn exited(&mut self) -> bool {
        self.child
            .as_mut()
            .is_none_or(|c| c.try_wait().ok().flatten().is_some())
    }

    /// SIGTERM, then wait (at most 60 s) for the exit.
    pub fn terminate(&mut self) {
        let Some(mut c) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status();
        let started = Instant::now();
        while c.try_wait().ok().flatten().is_none() && started.elapsed() < Duration::from_secs(60) {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = c.kill();
        let _ = c.wait();
    }

    /// SIGKILL and wait.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One `nats-server -js` node.
pub struct NatsServer {
    proc: Proc,
    /// Client port on 127.0.0.1.
    pub port: u16,
}

impl NatsServer {
    /// A single node with JetStream storing under `dir`.
    pub fn start(dir: &Path) -> Self {
        let [port] = free_ports();
        let s = Self::spawn(dir, port, &[]);
        s.wait_port();
        s
    }

    /// A 3-node cluster (`-cluster`, `-routes`, cluster and server names), JetStream on each.
    pub fn cluster(dir: &Path) -> Vec<Self> {
        let [p0, p1, p2, c0, c1, c2] = free_ports();
        let (ports, cports) = ([p0, p1, p2], [c0, c1, c2]);
        let routes = cports
            .iter()
            .map(|c| format!("nats://127.0.0.1:{c}"))
            .collect::<Vec<_>>()
            .join(",");
        let nodes: Vec<Self> = (0..3)
            .map(|k| {
                let args = [
                    "--cluster".to_string(),
                    format!("nats://127.0.0.1:{}", cports[k]),
                    "--routes".to_string(),
                    routes.clone(),
                    "--cluster_name".to_string(),
                    "irgan-test".to_string(),
                    "--server_name".to_string(),
                    format!("n{k}"),
                ];
                Self::spawn(&dir.join(format!("n{k}")), ports[k], &args)
            })
            .collect();
        for n in &nodes {
            n.wait_port();
        }
        nodes
    }

    fn spawn(dir: &Path, port: u16, extra: &[String]) -> Self {
        std::fs::create_dir_all(dir).expect("mkdir");
        let mut cmd = Command::new("nats-server");
        cmd.arg("-js")
            .arg("-sd")
            .arg(dir)
            .arg("-a")
            .arg("127.0.0.1")
            .arg("-p")
            .arg(port.to_string())
            .args(extra);
        let log = dir.with_extension(format!("nats-{port}.log"));
        Self {
            proc: Proc::spawn(cmd, log),
            port,
        }
    }

    fn wait_port(&self) {
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "nats-server on {} did not listen:\n{}",
                self.port,
                self.proc.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Its client URL.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        self.proc.kill();
    }
}

/// Settings every NATS test shares: small models, a lenient gate, quick publishes, a short
/// lease; search off (less CPU) except where a test turns it on (`search.rs`).
pub const SETS: &[&str] = &[
    "storage.backend=nats",
    "search.enabled=false",
    "training.generator.dim=8",
    "training.discriminator.dim=8",
    "training.threads=1",
    "trainer.publish_every_steps=100",
    "trainer.publish_every_seconds=1.0",
    "trainer.min_entropy=0.0",
    "trainer.min_d_accuracy=0.0",
    "trainer.tolerance=1.0",
    "trainer.publish_only_gains=false",
    "nats.lease_ttl_seconds=3.0",
];

/// One `irgan serve` process on the NATS backend.
pub struct Irgan {
    proc: Proc,
    /// REST port on 127.0.0.1.
    pub port: u16,
    /// Its data directory (the snapshot download cache lives in `nats-cache/`).
    pub data_dir: PathBuf,
}

impl Irgan {
    /// Starts `irgan serve --role ROLE` on `url` (no gRPC), without waiting.
    pub fn spawn(data_dir: &Path, url: &str, role: &str, demo: bool, sets: &[&str]) -> Self {
        let [port] = free_ports();
        std::fs::create_dir_all(data_dir).expect("mkdir");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_irgan"));
        cmd.arg("serve")
            .arg("--config")
            .arg(DEFAULT_TOML)
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--role")
            .arg(role)
            .arg("--set")
            .arg(format!("server.bind=127.0.0.1:{port}"))
            .arg("--set")
            .arg("server.grpc_bind=")
            .arg("--set")
            .arg(format!("nats.url={url}"));
        if demo {
            cmd.arg("--demo");
        }
        for s in SETS.iter().chain(sets) {
            cmd.arg("--set").arg(s);
        }
        cmd.env_remove("RUST_BACKTRACE").env("RUST_LOG", "info");
        let log = data_dir.with_extension(format!("{port}.log"));
        Self {
            proc: Proc::spawn(cmd, log),
            port,
            data_dir: data_dir.to_owned(),
        }
    }

    /// Starts one and waits (at most `limit`) until `/readyz` answers 200.
    pub fn start(
        data_dir: &Path,
        url: &str,
        role: &str,
        demo: bool,
        sets: &[&str],
        limit: Duration,
    ) -> Self {
        let mut p = Self::spawn(data_dir, url, role, demo, sets);
        p.wait_ready(limit);
        p
    }

    /// Whether `/readyz` answers 200 now.
    pub fn ready(&self) -> bool {
        client::get(self.port, "/readyz").is_ok_and(|r| r.status == 200)
    }

    /// Waits (at most `limit`) until ready; panics with the log otherwise.
    pub fn wait_ready(&mut self, limit: Duration) {
        let started = Instant::now();
        while !self.ready() {
            assert!(
                !self.proc.exited(),
                "irgan exited early:\n{}",
                self.proc.log_text()
            );
            assert!(
                started.elapsed() < limit,
                "irgan on {} not ready after {limit:?}:\n{}",
                self.data_dir.display(),
                self.proc.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// What it has logged.
    pub fn log_text(&self) -> String {
        self.proc.log_text()
    }

    /// Whether it has exited.
    pub fn exited(&mut self) -> bool {
        self.proc.exited()
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        self.proc.kill();
    }

    /// SIGTERM and wait for the exit.
    pub fn terminate(&mut self) {
        self.proc.terminate();
    }

    /// The live version it serves.
    pub fn version(&self) -> u64 {
        let r = client::get(self.port, "/v1/model").expect("GET /v1/model");
        assert_eq!(r.status, 200, "{r:?}");
        r.json()["version"].as_u64().expect("version")
    }

    /// `POST /v1/feedback`.
    pub fn post(&self, events: &[Value]) -> std::io::Result<Response> {
        client::post(self.port, "/v1/feedback", &json!(events).to_string())
    }

    /// `POST /v1/snapshots` (publish now); the new version. A 408, 500 or 503 (NATS electing
    /// a leader, the trainer restarting after it) is retried for at most 120 s.
    pub fn publish(&self) -> u64 {
        let started = Instant::now();
        loop {
            let r = client::post(self.port, "/v1/snapshots", "{}").expect("publish");
            if r.status == 201 {
                return r.json()["version"].as_u64().expect("version");
            }
            assert!(
                matches!(r.status, 408 | 500 | 503) && started.elapsed() < Duration::from_secs(120),
                "publish: {r:?}\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// The checkpoint of `version` from its download cache: (user, item) → summed weight.
    pub fn checkpoint(&self, version: u64) -> BTreeMap<(String, String), f64> {
        let dir = self
            .data_dir
            .join("nats-cache")
            .join(format!("v{version:010}"));
        let (s, c) = Snapshot::read_checkpointed(&dir)
            .unwrap_or_else(|e| panic!("snapshot {}: {e}", dir.display()));
        let c = c.expect("a checkpoint");
        c.pairs
            .iter()
            .map(|p| {
                (
                    (
                        s.users.name(p.user).to_owned(),
                        s.items.name(p.item).to_owned(),
                    ),
                    p.weight,
                )
            })
            .collect()
    }
}

/// One nats-server with a trainer and two serving replicas on it, each started with `sets`
/// (after [`SETS`]); the trainer with `--demo` when `demo`.
pub struct Trio {
    /// The server.
    pub nats: NatsServer,
    /// The trainer (`--role train`).
    pub trainer: Irgan,
    /// The first serving replica.
    pub a: Irgan,
    /// The second serving replica.
    pub b: Irgan,
}

impl Trio {
    /// Starts the server, then the trainer, then the replicas, each ready within 60 s.
    pub fn start(dir: &Path, sets: &[&str], demo: bool) -> Self {
        let nats = NatsServer::start(&dir.join("nats"));
        let url = nats.url();
        let limit = Duration::from_secs(60);
        let trainer = Irgan::start(&dir.join("t"), &url, "train", demo, sets, limit);
        let a = Irgan::start(&dir.join("a"), &url, "serve", false, sets, limit);
        let b = Irgan::start(&dir.join("b"), &url, "serve", false, sets, limit);
        Self {
            nats,
            trainer,
            a,
            b,
        }
    }
}

/// A click event with id `id` on (`user`, `item`).
pub fn click(id: &str, user: &str, item: &str) -> Value {
    json!({ "id": id, "user": user, "item": item, "type": "click" })
}

/// Polls `f` every 20 ms until it holds or `limit` passes; whether it held.
pub fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    loop {
        if f() {
            return true;
        }
        if started.elapsed() >= limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
