//! The online loop at Gowalla scale, in one run: `irgan serve` bootstrapped from
//! `../shared/data/gowalla/train.txt` (810,128 interactions, 29,858 users, 40,981 items), then
//! measured as issue 11's acceptance list asks. Skips (exit 0, with the reason) when the data set
//! is not there.
//!
//! Run: `cargo bench --bench online` (builds `target/release/irgan` first). Phases:
//! 1. **bootstrap**: `irgan serve --bootstrap` with the models of `config/gowalla.toml`
//!    (sampled-softmax pretraining, sampled game; dim `ONLINE_DIM`, default 32 as in the issue's
//!    figures) and the service
//!    defaults otherwise; seconds to `/readyz` 200 and resident memory. The first published
//!    snapshot is copied aside for the quality check.
//! 2. **feedback stream**: `ONLINE_RATE` events/s (default 200) of `like`s, in requests of 20 every
//!    100 ms, half from existing users (items drawn by popularity), half from new users (20
//!    likes each); each request's `last_seq` is resolved when `/v1/model`'s live
//!    `trained_through_seq` reaches it: feedback → published snapshot, measured by the client.
//! 3. **queries under load**, while the stream runs (so the trainer is busy), from
//!    `ONLINE_WARM_SECONDS` (default 30) after the stream started and once the live snapshot's
//!    per-user lists are cached (`/v1/model`'s `lists`, at most `ONLINE_FILL_SECONDS`, 300):
//!    `GET /healthz` and default recommendations in turns (2 s windows, so their ratio is taken
//!    under the same trainer activity), then `model=discriminator`, `model=blend` and
//!    `explore=0.5`; each for `LOAD_SECONDS` (default 10) in all, at 64 keep-alive connections.
//! 4. **idle**: the stream stops; once `/v1/model` says the trainer is idle (at most
//!    `ONLINE_SETTLE_SECONDS`, default 180), the server's CPU time over `ONLINE_IDLE_SECONDS`
//!    (default 60), as a share of one core.
//! 5. **restart**: SIGTERM, then `irgan serve` on the same data directory without `--bootstrap`:
//!    seconds to `/readyz` 200, resident memory then and 10 s later, and a first query.
//! 6. **quality**: `irgan eval` (standard protocol, Recall@20 and NDCG@20 on `test.txt`) of the
//!    snapshot published by the bootstrap, and of the live one at the end.
//!
//! Each figure is printed with its target. Environment: `LOAD_SECONDS`, `LOAD_CLIENT_THREADS`
//! (load generator workers, default 1), `ONLINE_DIM`, `ONLINE_EPOCHS` (pretraining epochs,
//! default 40 as in `config/gowalla.toml`; fewer for a quick try), `ONLINE_RATE`, `ONLINE_STREAM_SECONDS`
//! (default 30 after the load phases), `ONLINE_SETTLE_SECONDS`, `ONLINE_IDLE_SECONDS`,
//! `ONLINE_DEADLINE_SECONDS` (watchdog, default 3600), `ONLINE_KEEP` (a directory to keep the
//! data directory and logs in), `ONLINE_FROM` (a directory holding `data/` and `service.toml` of
//! an earlier bootstrap: phase 1 restarts on a copy of it instead of pretraining).
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use common::http::{
    MakeRequest, Row, Server, alternating, build_release, env_num, free_addr, get, once, phase,
    post_once, print_header, print_row,
};
use common::percentile;
use parking_lot::Mutex;
use serde_json::Value;

/// Events per feedback request of the stream (one request every 100 ms at 200 events/s).
const EVENTS_PER_REQUEST: usize = 20;
/// Likes per new user of the stream.
const NEW_USER_LIKES: usize = 20;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let data = root.join("../shared/data/gowalla");
    if !data.join("train.txt").exists() || !data.join("test.txt").exists() {
        println!(
            "online bench skipped: {} not found (see ../shared/data/README.md)",
            data.display()
        );
        return;
    }
    if let Err(e) = run(root, &data) {
        eprintln!("online bench failed: {e:#}");
        std::process::exit(1);
    }
}

/// Gowalla's adjacency file (`user item item …`) as the (user, item) pairs it lists.
fn pairs(file: &Path) -> anyhow::Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string(file)?;
    let mut out = Vec::new();
    for line in text.lines() {
        let mut f = line.split_whitespace();
        let Some(u) = f.next() else { continue };
        out.extend(f.map(|i| (u.to_string(), i.to_string())));
    }
    Ok(out)
}

/// The service config: `config/gowalla.toml`'s models under `[training]`, publish gate and
/// storage left at the service defaults.
fn service_config(dim: usize, epochs: usize) -> String {
    format!(
        r#"[training]
seed = 42

[training.pretrain.softmax]
epochs = {epochs}
batch = 1024
negatives = 1024
temperature = 0.1
lr = 0.005

[training.generator]
dim = {dim}
init = "softmax"
temperature = 1.0
optimizer = "adam"
lr = 0.00001

[training.discriminator]
dim = {dim}
init = "softmax"
optimizer = "adam"
lr = 0.001

[training.irgan]
candidates = "sampled"
sampled_candidates = 1024
d_temperature = 1.0
mixture = 0.2
baseline = "running_mean"
"#
    )
}

fn run(root: &Path, data: &Path) -> anyhow::Result<()> {
    let bin = build_release(root)?;
    let dim: usize = env_num("ONLINE_DIM", 32);
    let deadline_s: u64 = env_num("ONLINE_DEADLINE_SECONDS", 3600);
    let tmp = tempfile::tempdir()?;
    let work: PathBuf = match std::env::var("ONLINE_KEEP") {
        Ok(dir) => {
            std::fs::create_dir_all(&dir)?;
            PathBuf::from(dir)
        }
        Err(_) => tmp.path().to_path_buf(),
    };
    let train = pairs(&data.join("train.txt"))?;
    let bootstrap = work.join("gowalla-train.txt");
    let mut text = String::with_capacity(train.len() * 16);
    for (u, i) in &train {
        text.push_str(&format!("{u} {i} 5\n"));
    }
    std::fs::write(&bootstrap, text)?;
    let config = work.join("service.toml");
    let epochs: usize = env_num("ONLINE_EPOCHS", 40);
    std::fs::write(&config, service_config(dim, epochs))?;
    if let Ok(from) = std::env::var("ONLINE_FROM") {
        // A data directory bootstrapped before (with the same config): phase 1 is then a
        // restart on a copy of it, without the pretraining (for quick iterations).
        let status = Command::new("cp")
            .args(["-a", &format!("{from}/data"), &work.to_string_lossy()])
            .status()?;
        if !status.success() {
            bail!("cannot copy {from}/data");
        }
        std::fs::copy(format!("{from}/service.toml"), &config)?;
    }

    // Watchdog: whatever happens, this process (and with it the server) ends by the deadline.
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(deadline_s));
        eprintln!("WATCHDOG: online bench exceeded {deadline_s} s");
        std::process::exit(3);
    });
    let client_threads: usize = env_num("LOAD_CLIENT_THREADS", 1).max(1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(client_threads)
        .enable_all()
        .build()?;
    rt.block_on(drive(&bin, &work, &bootstrap, &config, &train, data, dim))
}

/// Everything the run measured, printed at the end next to the targets.
#[derive(Default)]
struct Figures {
    boot_s: f64,
    boot_rss: f64,
    lag: Vec<f64>,
    unresolved: usize,
    events: usize,
    rows: Vec<Row>,
    idle_core: Option<f64>,
    /// Seconds after the warm-up until 99 % of the users' lists were cached (`None`: not
    /// within `ONLINE_FILL_SECONDS`).
    fill_s: Option<f64>,
    idle_wait_s: f64,
    restart_ready_s: f64,
    restart_rss: f64,
    restart_rss_later: f64,
    first_query_ms: f64,
    recall_boot: Option<(f64, f64)>,
    recall_end: Option<(f64, f64)>,
}

#[allow(clippy::too_many_arguments)]
async fn drive(
    bin: &Path,
    work: &Path,
    bootstrap: &Path,
    config: &Path,
    train: &[(String, String)],
    data: &Path,
    dim: usize,
) -> anyhow::Result<()> {
    let data_dir = work.join("data");
    let log = work.join("server.log");
    let addr = free_addr()?;
    let base = |extra: &[&str]| -> Vec<String> {
        let mut a: Vec<String> = ["--config", &config.to_string_lossy()]
            .into_iter()
            .chain(["--data-dir", &data_dir.to_string_lossy()])
            .map(String::from)
            .collect();
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let mut f = Figures::default();
    println!(
        "irgan serve at Gowalla scale: {} interactions, dim {dim}; work dir {}",
        train.len(),
        work.display()
    );

    // 1. Bootstrap.
    // With ONLINE_FROM the copied data directory holds the bootstrap already.
    let boot_args = match std::env::var("ONLINE_FROM") {
        Ok(_) => base(&[]),
        Err(_) => base(&["--bootstrap", &bootstrap.to_string_lossy()]),
    };
    let mut server = Server::start(bin, &addr, &boot_args, &log)?;
    f.boot_s = server.wait_ready(Duration::from_secs(1800)).await?;
    f.boot_rss = server.rss_mib();
    let (_, model) = once(&addr, "/v1/model").await?;
    let boot_version = model["version"].as_u64().unwrap_or(0);
    println!(
        "bootstrap: ready in {:.1} s, {:.0} MiB resident, version {boot_version}",
        f.boot_s, f.boot_rss
    );
    let boot_snapshot = work.join("bootstrap-snapshot");
    copy_snapshot(&data_dir, boot_version, &boot_snapshot)?;

    // 2 and 3. The feedback stream, with the query phases inside it.
    let users: Vec<String> = {
        let mut u: Vec<String> = train.iter().map(|(u, _)| u.clone()).collect();
        u.dedup();
        u
    };
    let by_popularity: Arc<Vec<String>> = Arc::new(train.iter().map(|(_, i)| i.clone()).collect());
    let stop = Arc::new(AtomicBool::new(false));
    let lags = Arc::new(Mutex::new((Vec::<f64>::new(), 0usize, 0usize)));
    let stream = tokio::spawn(feedback_stream(
        addr.clone(),
        Arc::new(users.clone()),
        by_popularity,
        stop.clone(),
        lags.clone(),
    ));
    let secs: f64 = env_num("LOAD_SECONDS", 10.0);
    // The first snapshot's per-user lists fill on one core after it goes live (/readyz does
    // not wait for them); the query phases measure the steady state after that.
    let warm: f64 = env_num("ONLINE_WARM_SECONDS", 30.0);
    tokio::time::sleep(Duration::from_secs_f64(warm)).await;
    f.fill_s = wait_for_lists(&addr, env_num("ONLINE_FILL_SECONDS", 300.0)).await?;
    let us = Arc::new(users);
    let recommendations = |query: &'static str| -> MakeRequest {
        let (a, us) = (addr.clone(), us.clone());
        Arc::new(move |c, i| {
            let u = &us[(c * 7919 + i as usize * 13) % us.len()];
            get(&a, &format!("/v1/users/{u}/recommendations?k=20{query}"))
        })
    };
    // `/healthz` and the default answer in turns (2 s each), so their ratio compares the two
    // under the same publishes of the trainer rather than two different 10 s stretches.
    let a = addr.clone();
    let health: MakeRequest = Arc::new(move |_, _| get(&a, "/healthz"));
    let windows = (secs / 2.0).round().max(1.0) as usize;
    f.rows = alternating(
        vec![
            ("GET /healthz", health),
            ("recommendations (default)", recommendations("")),
        ],
        &addr,
        64,
        secs,
        windows,
    )
    .await;
    for (name, query) in [
        ("model=discriminator", "&model=discriminator"),
        ("model=blend", "&model=blend"),
        ("explore=0.5", "&explore=0.5&seed=7"),
    ] {
        f.rows
            .push(phase(name, &addr, 64, secs, recommendations(query), |_| 1).await);
    }
    let stream_s: f64 = env_num("ONLINE_STREAM_SECONDS", 30.0);
    tokio::time::sleep(Duration::from_secs_f64(stream_s)).await;
    stop.store(true, Ordering::Release);
    stream.await.context("feedback stream")??;
    {
        let l = lags.lock();
        f.lag = l.0.clone();
        f.unresolved = l.1;
        f.events = l.2;
    }

    // 4. Idle.
    let settle: f64 = env_num("ONLINE_SETTLE_SECONDS", 180.0);
    let t = Instant::now();
    let mut last_steps = u64::MAX;
    let mut still_since = Instant::now();
    while t.elapsed().as_secs_f64() < settle {
        let (_, m) = once(&addr, "/v1/model").await?;
        let steps = m["game"]["steps"].as_u64().unwrap_or(0);
        // The trainer says when it is idle; a trainer that does not is judged by its steps.
        if let Some(state) = m["game"]["state"].as_str() {
            if state == "idle" {
                break;
            }
            still_since = Instant::now();
        } else if steps != last_steps {
            last_steps = steps;
            still_since = Instant::now();
        } else if still_since.elapsed() > Duration::from_secs(5) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    f.idle_wait_s = t.elapsed().as_secs_f64();
    if t.elapsed().as_secs_f64() < settle {
        let idle_s: f64 = env_num("ONLINE_IDLE_SECONDS", 60.0);
        let cpu0 = server.cpu_seconds();
        tokio::time::sleep(Duration::from_secs_f64(idle_s)).await;
        f.idle_core = Some((server.cpu_seconds() - cpu0) / idle_s);
    }
    let (_, end_model) = once(&addr, "/v1/model").await?;
    println!("trainer at the end: {}", end_model["game"]);

    // 5. Restart on the same data directory.
    println!("stop: {}", server.stop(Duration::from_secs(120)));
    let end_version = std::fs::read_dir(data_dir.join("snapshots"))?
        .filter_map(|e| {
            e.ok()?
                .file_name()
                .to_str()?
                .strip_prefix('v')?
                .parse()
                .ok()
        })
        .max()
        .unwrap_or(0u64);
    let mut server = Server::start(bin, &addr, &base(&[]), &log)?;
    f.restart_ready_s = server.wait_ready(Duration::from_secs(600)).await?;
    f.restart_rss = server.rss_mib();
    let t = Instant::now();
    let (status, _) = once(&addr, &format!("/v1/users/{}/recommendations?k=20", us[0])).await?;
    f.first_query_ms = t.elapsed().as_secs_f64() * 1e3;
    if status != 200 {
        println!("first query after restart answered {status}");
    }
    tokio::time::sleep(Duration::from_secs(10)).await;
    f.restart_rss_later = server.rss_mib();
    println!("stop: {}", server.stop(Duration::from_secs(120)));

    // 6. Quality of the bootstrap's snapshot and of the last one.
    f.recall_boot = evaluate(bin, &boot_snapshot, data);
    let end_snapshot = work.join("end-snapshot");
    if copy_snapshot(&data_dir, end_version, &end_snapshot).is_ok() {
        f.recall_end = evaluate(bin, &end_snapshot, data);
    }
    report(&f);
    Ok(())
}

/// Waits (at most `limit` seconds) until the live snapshot has at least 99 % of its users'
/// top lists cached for every model (`/v1/model`'s `lists`; the stream's newest users fill
/// within a second of their publish); returns the seconds waited, `None` at the limit.
async fn wait_for_lists(addr: &str, limit: f64) -> anyhow::Result<Option<f64>> {
    let t = Instant::now();
    loop {
        let (_, m) = once(addr, "/v1/model").await?;
        let l = &m["lists"];
        let users = l["users"].as_f64().unwrap_or(0.0);
        let filled = ["generator", "discriminator", "blend"]
            .iter()
            .all(|k| l[*k].as_f64().unwrap_or(0.0) >= 0.99 * users);
        if filled {
            return Ok(Some(t.elapsed().as_secs_f64()));
        }
        if t.elapsed().as_secs_f64() >= limit {
            println!("lists not filled after {limit:.0} s: {l}");
            return Ok(None);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Copies snapshot `version` out of the data directory (the service keeps only the newest few).
fn copy_snapshot(data_dir: &Path, version: u64, to: &Path) -> anyhow::Result<()> {
    let from = data_dir.join("snapshots").join(format!("v{version:010}"));
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(&from).with_context(|| format!("{}", from.display()))? {
        let e = e?;
        std::fs::copy(e.path(), to.join(e.file_name()))?;
    }
    Ok(())
}

/// Test Recall@20 and NDCG@20 of a snapshot's G (standard protocol), or `None` if eval failed.
fn evaluate(bin: &Path, snapshot: &Path, data: &Path) -> Option<(f64, f64)> {
    let out = Command::new(bin)
        .arg("eval")
        .arg("--snapshot")
        .arg(snapshot)
        .arg("--train")
        .arg(data.join("train.txt"))
        .arg("--test")
        .arg(data.join("test.txt"))
        .args([
            "--format",
            "adjacency",
            "--protocol",
            "standard",
            "--k",
            "20",
            "--json",
        ])
        .output()
        .ok()?;
    if !out.status.success() {
        println!(
            "irgan eval failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    let v: Value = serde_json::from_slice(&out.stdout).ok()?;
    let m = if v["Recall@20"].is_number() {
        &v
    } else {
        &v["metrics"]
    };
    Some((m["Recall@20"].as_f64()?, m["NDCG@20"].as_f64()?))
}

/// Posts `like` events at `ONLINE_RATE` per second until `stop`; each request's `last_seq` is
/// resolved when the live snapshot's `trained_through_seq` reaches it. `lags` collects
/// (seconds from acknowledgement to publish, requests never published, events posted).
async fn feedback_stream(
    addr: String,
    users: Arc<Vec<String>>,
    items: Arc<Vec<String>>,
    stop: Arc<AtomicBool>,
    lags: Arc<Mutex<(Vec<f64>, usize, usize)>>,
) -> anyhow::Result<()> {
    let rate: f64 = env_num("ONLINE_RATE", 200.0);
    let period = Duration::from_secs_f64(EVENTS_PER_REQUEST as f64 / rate);
    let mut pending: VecDeque<(u64, Instant, usize)> = VecDeque::new();
    let mut next = Instant::now();
    let mut last_poll = Instant::now();
    let mut n = 0usize;
    // Ids unique to this run: a data directory reused through ONLINE_FROM has seen earlier
    // runs' events, and a duplicate is acknowledged at once (its lag would be 0).
    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut rand = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x as usize
    };
    loop {
        let stopping = stop.load(Ordering::Acquire);
        if !stopping && Instant::now() >= next {
            next += period;
            let mut body = String::from("[");
            for j in 0..EVENTS_PER_REQUEST {
                // Even events: an existing user; odd: a new user.
                let user = if j % 2 == 0 {
                    users[rand() % users.len()].clone()
                } else {
                    // A new user every 2 × NEW_USER_LIKES events: NEW_USER_LIKES likes each.
                    format!("bench-new-{run}-{}", (n + j) / (2 * NEW_USER_LIKES))
                };
                let item = &items[rand() % items.len()];
                if j > 0 {
                    body.push(',');
                }
                body.push_str(&format!(
                    r#"{{"id":"bench-{run}-{n}-{j}","user":"{user}","item":"{item}","type":"like"}}"#
                ));
            }
            body.push(']');
            n += EVENTS_PER_REQUEST;
            let (status, v) = post_once(&addr, "/v1/feedback", &body).await?;
            let acked = Instant::now();
            if status != 200 {
                bail!("feedback answered {status}: {v}");
            }
            if v["duplicates"].as_u64() != Some(0) {
                bail!("the stream's events must be new, the service saw duplicates: {v}");
            }
            let seq = v["last_seq"].as_u64().unwrap_or(0);
            pending.push_back((seq, acked, EVENTS_PER_REQUEST));
            lags.lock().2 += EVENTS_PER_REQUEST;
        }
        if last_poll.elapsed() >= Duration::from_millis(50) {
            last_poll = Instant::now();
            if let Ok((200, m)) = once(&addr, "/v1/model").await {
                let through = m["trained_through_seq"].as_u64().unwrap_or(0);
                let now = Instant::now();
                let mut l = lags.lock();
                while pending.front().is_some_and(|p| p.0 <= through) {
                    let (_, acked, events) = pending.pop_front().expect("front exists");
                    let lag = now.duration_since(acked).as_secs_f64();
                    l.0.extend(std::iter::repeat_n(lag, events));
                }
            }
        }
        // After the stream stops, wait up to 60 s for the last requests to be published.
        if stopping {
            if pending.is_empty() {
                return Ok(());
            }
            if pending
                .front()
                .is_some_and(|p| p.1.elapsed() > Duration::from_secs(60))
            {
                lags.lock().1 += pending.iter().map(|p| p.2).sum::<usize>();
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn report(f: &Figures) {
    let ok = |b: bool| if b { "PASS" } else { "FAIL" };
    println!();
    print_header();
    for r in &f.rows {
        print_row(r);
    }
    let health = f.rows[0].throughput();
    println!();
    println!("targets (issue 11):");
    if f.lag.is_empty() {
        println!("feedback -> published snapshot: nothing was published (FAIL)");
    } else {
        let (p50, p99) = (
            percentile(f.lag.clone(), 0.5),
            percentile(f.lag.clone(), 0.99),
        );
        println!(
            "feedback -> published snapshot ({} events, {} never published): p50 {p50:.2} s \
             (< 5) {}, p99 {p99:.2} s (< 15) {}",
            f.events,
            f.unresolved,
            ok(p50 < 5.0),
            ok(p99 < 15.0 && f.unresolved == 0)
        );
    }
    println!(
        "restart: /readyz 200 in {:.2} s (< 3) {}; resident {:.0} MiB at ready, {:.0} MiB 10 s \
         later (< 1536) {}; first query {:.1} ms",
        f.restart_ready_s,
        ok(f.restart_ready_s < 3.0),
        f.restart_rss,
        f.restart_rss_later,
        ok(f.restart_rss.max(f.restart_rss_later) < 1536.0),
        f.first_query_ms
    );
    for r in &f.rows[2..] {
        println!(
            "{}: {:.0} req/s (>= 5000) {}, p99 {:.1} ms (< 25) {}",
            r.name,
            r.throughput(),
            ok(r.throughput() >= 5000.0),
            r.p99_ms,
            ok(r.p99_ms < 25.0)
        );
    }
    let ratio = f.rows[1].throughput() / health;
    println!(
        "default recommendations / healthz: {ratio:.2} ({:.0} / {health:.0} req/s) (>= 0.70) {}",
        f.rows[1].throughput(),
        ok(ratio >= 0.7)
    );
    match f.idle_core {
        Some(c) => println!(
            "idle trainer: {:.1} % of a core (< 5 %) {} (idle {:.0} s after the stream)",
            c * 100.0,
            ok(c < 0.05),
            f.idle_wait_s
        ),
        None => println!(
            "idle trainer: still stepping {:.0} s after the stream stopped (FAIL)",
            f.idle_wait_s
        ),
    }
    println!(
        "bootstrap: ready in {:.1} s, {:.0} MiB resident",
        f.boot_s, f.boot_rss
    );
    match f.fill_s {
        Some(s) => println!("per-user lists cached {s:.1} s after the warm-up"),
        None => println!("per-user lists not all cached when the query phases began"),
    }
    match f.recall_boot {
        Some((r, n)) => println!(
            "served G after the bootstrap: test Recall@20 {r:.4}, NDCG@20 {n:.4} (offline \
             config/gowalla.toml: see README; within 0.005)"
        ),
        None => println!("served G after the bootstrap: not evaluated"),
    }
    if let Some((r, n)) = f.recall_end {
        println!("live G at the end of the run: test Recall@20 {r:.4}, NDCG@20 {n:.4}");
    }
}
