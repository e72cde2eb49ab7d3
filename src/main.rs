//! The `irgan` command line: train, evaluate and generate data.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use irgan::app;
use irgan::config::Config;
use irgan::config::search::{SearchConfig, Task, task_of};
use irgan::data::loader::{self, Format, LoadOptions};
use irgan::data::{IdMap, synth};
use irgan::eval::Protocol;
use irgan::eval::letor;
use irgan::model::MfModel;
use irgan::online::settings::ServiceConfig;
use irgan::pipeline::{self, recommend};
use irgan::store::Snapshot;
use irgan::store::feedback_log::{FeedbackLog, LogOptions};
use irgan::store::search_snapshot::{self, SearchSnapshot};

/// IRGAN ranking: train, evaluate and serve a generator/discriminator pair.
#[derive(Parser)]
#[command(name = "irgan", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Pretrain, play the adversarial game, select on validation and write a snapshot.
    Train(TrainArgs),
    /// Evaluate a snapshot or imported factors on a test file.
    Eval(EvalArgs),
    /// Write a synthetic latent-cluster data set (train.txt, test.txt).
    Synth(SynthArgs),
    /// Run the service: REST and gRPC APIs (rankings, feedback), background training.
    Serve(ServeArgs),
    /// Append an interaction file to the service's feedback log (offline).
    Import(ImportArgs),
    /// Dump the service's feedback log as JSON lines.
    Export(ExportArgs),
    /// Probe a running service: exit 0 if `GET url` answers 200, else 1 (for container health
    /// checks).
    Healthcheck(HealthcheckArgs),
}

#[derive(Args)]
struct ServiceArgs {
    /// Service config (TOML; see config/default.toml). IRGAN_SECTION__KEY variables override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Override a key, e.g. --set server.bind=0.0.0.0:8080 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Data directory (overrides storage.data_dir).
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

impl ServiceArgs {
    fn load(&self) -> anyhow::Result<ServiceConfig> {
        let mut sets = self.set.clone();
        if let Some(d) = &self.data_dir {
            sets.push(format!("storage.data_dir={:?}", d.display().to_string()));
        }
        Ok(ServiceConfig::load(
            self.config.as_deref(),
            std::env::vars(),
            &sets,
        )?)
    }
}

#[derive(Args)]
struct ServeArgs {
    #[command(flatten)]
    service: ServiceArgs,
    /// Import this interaction file before starting (idempotent) and train on it.
    #[arg(long)]
    bootstrap: Option<PathBuf>,
    /// Start with a synthetic demo catalogue (users u0…, items i0…) so the examples work.
    #[arg(long)]
    demo: bool,
}

#[derive(Args)]
struct ImportArgs {
    #[command(flatten)]
    service: ServiceArgs,
    /// Interaction file (`user item [rating [timestamp]]`).
    file: PathBuf,
    /// A rating at or above this is a positive.
    #[arg(long, default_value_t = 4.0)]
    threshold: f32,
}

#[derive(Args)]
struct ExportArgs {
    #[command(flatten)]
    service: ServiceArgs,
    /// Output file (default: standard output).
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Arguments of `irgan healthcheck`.
#[derive(Args)]
struct HealthcheckArgs {
    /// URL to probe (`http://host:port/path`). Default: `/healthz` on IRGAN_SERVER__BIND (an
    /// unspecified address such as 0.0.0.0 becomes loopback), else http://127.0.0.1:8080/healthz.
    #[arg(long)]
    url: Option<String>,
    /// Time limit for connecting, and again for the answer.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..))]
    timeout_ms: u64,
}

#[derive(Args)]
struct TrainArgs {
    /// TOML config (defaults: a synthetic data set and the paper's schedule).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Override a config key, e.g. --set irgan.epochs=3 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Output directory (snapshot/, log.jsonl, report.json, curve.svg).
    #[arg(long, default_value = "runs/latest")]
    out: PathBuf,
    /// Hide progress bars.
    #[arg(long)]
    quiet: bool,
}

#[derive(Args)]
struct EvalArgs {
    /// Snapshot directory written by `irgan train`.
    #[arg(long, conflicts_with = "factors", required_unless_present = "factors")]
    snapshot: Option<PathBuf>,
    /// Factor directory (user_factors.tsv, item_factors.tsv, item_bias.tsv).
    #[arg(long)]
    factors: Option<PathBuf>,
    /// Training interactions (their positives, or all, are excluded from the candidates).
    /// Not used with a search snapshot.
    #[arg(long)]
    train: Option<PathBuf>,
    /// Test interactions, or a LETOR/SVMlight file for a search snapshot.
    #[arg(long)]
    test: PathBuf,
    /// `irgan` (exclude training positives) or `standard` (exclude every training interaction).
    #[arg(long, default_value = "irgan")]
    protocol: Protocol,
    /// Which model of a snapshot to evaluate.
    #[arg(long, value_enum, default_value = "generator")]
    model: ModelArg,
    /// Cut-offs, comma-separated (default 3,5,10; 1,3,5,10 for a search snapshot).
    #[arg(long, value_delimiter = ',')]
    k: Vec<usize>,
    /// Input format of the files.
    #[arg(long, default_value = "ratings")]
    format: Format,
    /// A rating at or above this is a positive.
    #[arg(long, default_value_t = 4.0)]
    threshold: f32,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ModelArg {
    Generator,
    Discriminator,
}

#[derive(Args)]
struct SynthArgs {
    /// Output directory.
    #[arg(long)]
    out: PathBuf,
    /// Users.
    #[arg(long, default_value_t = 300)]
    users: usize,
    /// Items.
    #[arg(long, default_value_t = 200)]
    items: usize,
    /// Taste clusters.
    #[arg(long, default_value_t = 5)]
    clusters: usize,
    /// Interactions per user.
    #[arg(long, default_value_t = 20)]
    per_user: usize,
    /// Seed.
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Train(a) => train(a),
        Command::Eval(a) => eval(a),
        Command::Synth(a) => synth_cmd(a),
        Command::Serve(a) => serve(a),
        Command::Import(a) => import(a),
        Command::Export(a) => export(a),
        Command::Healthcheck(a) => healthcheck(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", describe(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes, skipping a cause whose text the message before it already shows.
fn describe(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !out.contains(&text) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&text);
        }
    }
    out
}

fn set_threads(threads: usize) {
    if threads > 0 {
        // Only fails if a pool already exists, which cannot happen this early.
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build_global();
    }
}

fn train(a: TrainArgs) -> anyhow::Result<()> {
    if task_of(a.config.as_deref(), &a.set)? == Task::Search {
        return train_search(a);
    }
    let cfg = Config::load(a.config.as_deref(), &a.set)?;
    set_threads(cfg.threads);
    let result = recommend::run(&cfg, &a.out, !a.quiet)?;
    let r = &result.report;
    let metric = cfg.eval.select_metric.as_str();
    let pick = |v: &serde_json::Value| v[metric].as_f64().map_or("-".into(), |x| format!("{x:.4}"));
    println!("wrote {}", a.out.display());
    println!(
        "selected: {} at outer epoch {} ({} G-epochs) by validation {metric}",
        r["selection"]["model"].as_str().unwrap_or("?"),
        r["selection"]["epoch"],
        r["selection"]["g_epochs"]
    );
    for (split, key) in [("validation", "validation"), ("test", "test")] {
        let v = &r[key];
        if v.is_null() {
            continue;
        }
        println!(
            "{split:<10} {metric}: G init {} -> {}   D init {} -> {}",
            pick(&v["init"]["generator"]),
            pick(&v["selected"]["generator"]),
            pick(&v["init"]["discriminator"]),
            pick(&v["selected"]["discriminator"]),
        );
    }
    println!("time: {} s", r["timings_s"]["total"]);
    Ok(())
}

fn train_search(a: TrainArgs) -> anyhow::Result<()> {
    let cfg = SearchConfig::load(a.config.as_deref(), &a.set)?;
    set_threads(cfg.threads);
    let r = pipeline::search::run(&cfg, &a.out, !a.quiet)?.report;
    let metric = cfg.eval.select_metric.as_str();
    println!("wrote {}", a.out.display());
    println!(
        "{}: selected {} at epoch {} by validation {metric}",
        cfg.method.as_str(),
        r["ranker"].as_str().unwrap_or("?"),
        r["selection"]["epoch"]
    );
    let names = ["NDCG@1", "NDCG@3", "NDCG@5", "NDCG@10", "P@5", "MAP", "MRR"];
    for split in ["validation", "test"] {
        if r[split].is_null() {
            continue;
        }
        for stage in ["init", "selected"] {
            let m = &r[split][stage][r["ranker"].as_str().unwrap_or("discriminator")];
            if m.is_null() {
                continue;
            }
            let row: Vec<String> = names
                .iter()
                .filter_map(|n| m[*n].as_f64().map(|v| format!("{n} {v:.4}")))
                .collect();
            println!("{split:<10} {stage:<8} {}", row.join("  "));
        }
    }
    println!(
        "time: {:.1} s",
        r["timings_s"]["total"].as_f64().unwrap_or(0.0)
    );
    Ok(())
}

/// Evaluates a search snapshot's ranker on a LETOR file.
fn eval_search(a: &EvalArgs, dir: &std::path::Path) -> anyhow::Result<()> {
    let s = SearchSnapshot::read(dir)?;
    let scorer = match a.model {
        ModelArg::Generator => &s.generator,
        ModelArg::Discriminator => &s.discriminator,
    };
    let data = irgan::data::letor::read_letor(&a.test, Some(scorer.n_features))?;
    let mut data = data;
    data.widen(scorer.n_features);
    let ks = if a.k.is_empty() {
        letor::DEFAULT_KS.to_vec()
    } else {
        a.k.clone()
    };
    let metrics = letor::evaluate(&data, &ks, |q| scorer.score(q.features.view()));
    print_metrics(&metrics, a.json)
}

fn print_metrics(
    metrics: &std::collections::BTreeMap<String, f64>,
    json: bool,
) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(metrics)?);
    } else {
        for (k, v) in metrics {
            println!("{k:<12} {v:.4}");
        }
    }
    Ok(())
}

fn eval(a: EvalArgs) -> anyhow::Result<()> {
    if let Some(dir) = &a.snapshot
        && is_search_snapshot(dir)
    {
        return eval_search(&a, dir);
    }
    let Some(train) = &a.train else {
        bail!("--train is required to evaluate a recommendation model")
    };
    let (model, users, items) = match (&a.snapshot, &a.factors) {
        (Some(dir), _) => {
            let s = Snapshot::read(dir)?;
            let m = match a.model {
                ModelArg::Generator => s.generator,
                ModelArg::Discriminator => s.discriminator,
            };
            (m, s.users, s.items)
        }
        (None, Some(dir)) => {
            let (f, users, items) = loader::read_factors_with_ids(dir)
                .with_context(|| format!("reading factors from {}", dir.display()))?;
            (irgan::train::init::model_from_factors(f), users, items)
        }
        (None, None) => bail!("give --snapshot or --factors"),
    };
    let opts = LoadOptions {
        format: a.format,
        positive_threshold: a.threshold,
    };
    let ds = loader::load_dataset(train, Some(&a.test), &opts, users, items)?;
    let Some(test) = &ds.test else {
        bail!("no test data")
    };
    let model = covering(model, &ds.users, &ds.items);
    let exclude = match a.protocol {
        Protocol::Irgan => &ds.train.positives,
        Protocol::Standard => &ds.train.seen,
    };
    let ks = if a.k.is_empty() {
        vec![3, 5, 10]
    } else {
        a.k.clone()
    };
    let metrics = irgan::eval::evaluate_model(&model, exclude, &test.positives, &ks);
    print_metrics(&metrics, a.json)
}

/// True when `dir` holds a search (feature-vector) snapshot rather than a recommendation one.
fn is_search_snapshot(dir: &std::path::Path) -> bool {
    std::fs::read(dir.join("manifest.json"))
        .ok()
        .and_then(|raw| serde_json::from_slice::<serde_json::Value>(&raw).ok())
        .is_some_and(|m| m["format"] == search_snapshot::FORMAT)
}

/// Extends a model to ids that appear only in the data: zero factors, zero bias (they score as
/// the catalogue's neutral item and their users get no personalisation).
fn covering(mut model: MfModel, users: &IdMap, items: &IdMap) -> MfModel {
    let mut r = irgan::rng::stream(0, 0, 0);
    model.grow(users.len(), items.len(), 0.0, &mut r);
    model
}

fn synth_cmd(a: SynthArgs) -> anyhow::Result<()> {
    let cfg = irgan::config::SyntheticConfig {
        users: a.users,
        items: a.items,
        clusters: a.clusters,
        per_user: a.per_user,
        ..Default::default()
    };
    let mut full = Config::default();
    full.data.synthetic = cfg.clone();
    full.validate()?;
    let (train, test) = synth::generate(&cfg, a.seed);
    std::fs::create_dir_all(&a.out)?;
    std::fs::write(a.out.join("train.txt"), synth::to_text(&train))?;
    std::fs::write(a.out.join("test.txt"), synth::to_text(&test))?;
    println!(
        "wrote {} train and {} test interactions to {}",
        train.len(),
        test.len(),
        a.out.display()
    );
    Ok(())
}

fn serve(a: ServeArgs) -> anyhow::Result<()> {
    let cfg = a.service.load()?;
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    set_threads(cfg.training.threads);
    if a.demo || a.bootstrap.is_some() {
        std::fs::create_dir_all(&cfg.storage.data_dir)?;
        let log = FeedbackLog::open(&cfg.log_path(), LogOptions::default())?;
        let new = match &a.bootstrap {
            Some(file) => {
                let opts = LoadOptions {
                    format: Format::Ratings,
                    positive_threshold: 4.0,
                };
                app::import_file(&log, file, &opts)?
            }
            None => app::import_demo(&log, &irgan::config::SyntheticConfig::default(), 42)?,
        };
        log.close()?;
        tracing::info!(new_events = new, "imported");
    }
    if a.demo && cfg.search.enabled {
        let new = app::import_search_demo(
            &cfg.storage.data_dir,
            cfg.search.n_features,
            cfg.training.seed,
        )?;
        tracing::info!(new_impressions = new, "imported the search demo");
    }
    let state = app::open(cfg.clone())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&cfg.server.bind)
            .await
            .with_context(|| format!("cannot listen on server.bind {}", cfg.server.bind))?;
        let grpc = match cfg.server.grpc_addr() {
            Some(addr) => Some(
                tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("cannot listen on server.grpc_bind {addr}"))?,
            ),
            None => None,
        };
        let grpc_addr = match &grpc {
            Some(l) => l.local_addr()?.to_string(),
            None => "off".to_string(),
        };
        tracing::info!(
            addr = %listener.local_addr()?,
            grpc_addr = %grpc_addr,
            version = state.models.current().version(),
            "serving"
        );
        Ok(app::run(state, listener, grpc, app::shutdown_signal()).await?)
    })
}

fn import(a: ImportArgs) -> anyhow::Result<()> {
    let cfg = a.service.load()?;
    std::fs::create_dir_all(&cfg.storage.data_dir)?;
    let log = FeedbackLog::open(&cfg.log_path(), LogOptions::default())?;
    let opts = LoadOptions {
        format: Format::Ratings,
        positive_threshold: a.threshold,
    };
    let new = app::import_file(&log, &a.file, &opts)?;
    log.close()?;
    println!(
        "imported {new} new events into {}",
        cfg.log_path().display()
    );
    Ok(())
}

fn export(a: ExportArgs) -> anyhow::Result<()> {
    let cfg = a.service.load()?;
    let log = FeedbackLog::open(&cfg.log_path(), LogOptions::default())?;
    let n = match &a.out {
        Some(p) => {
            let mut f = std::io::BufWriter::new(std::fs::File::create(p)?);
            let n = log.export_jsonl(&mut f)?;
            std::io::Write::flush(&mut f)?;
            n
        }
        None => log.export_jsonl(&mut std::io::stdout().lock())?,
    };
    log.close()?;
    eprintln!("exported {n} events");
    Ok(())
}

/// The URL `irgan healthcheck` probes when none is given: `/healthz` on `bind` (the value of
/// IRGAN_SERVER__BIND), with an unspecified address (0.0.0.0, ::) replaced by loopback.
fn default_health_url(bind: Option<&str>) -> String {
    let Some(bind) = bind.map(str::trim).filter(|b| !b.is_empty()) else {
        return "http://127.0.0.1:8080/healthz".into();
    };
    let authority = match bind.parse::<std::net::SocketAddr>() {
        Ok(mut addr) => {
            if addr.ip().is_unspecified() {
                addr.set_ip(match addr {
                    std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                    std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
                });
            }
            addr.to_string()
        }
        Err(_) => bind.replace("0.0.0.0", "127.0.0.1"),
    };
    format!("http://{authority}/healthz")
}

/// Splits `http://host[:port][/path]` into the authority (for the Host header), host, port
/// (default 80) and path (default `/`).
fn parse_http_url(url: &str) -> anyhow::Result<(String, String, u16, String)> {
    let Some(rest) = url.strip_prefix("http://") else {
        bail!("unsupported URL {url:?}: only http://host:port/path is supported");
    };
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) if rest[i..].starts_with('/') => (&rest[..i], rest[i..].to_string()),
        Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
        None => (rest, "/".to_string()),
    };
    if authority.is_empty() || authority.contains('@') {
        bail!("bad URL {url:?}: expected http://host:port/path");
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let Some((host, after)) = v6.split_once(']') else {
            bail!("bad URL {url:?}: unclosed [ in the host");
        };
        (host, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let port = match port {
        Some(p) => p
            .parse::<u16>()
            .with_context(|| format!("bad port {p:?} in URL {url:?}"))?,
        None => 80,
    };
    if host.is_empty() {
        bail!("bad URL {url:?}: no host");
    }
    Ok((authority.to_string(), host.to_string(), port, path))
}

/// `irgan healthcheck`: one HTTP/1.1 `GET` with hyper's client on a small current-thread
/// runtime; success iff the status is 200.
fn healthcheck(a: HealthcheckArgs) -> anyhow::Result<()> {
    use std::time::Duration;

    use http_body_util::Empty;
    use hyper::body::Bytes;
    use hyper::header::{ACCEPT, CONNECTION, USER_AGENT};
    use hyper_util::client::legacy::Client;
    use hyper_util::client::legacy::connect::HttpConnector;
    use hyper_util::rt::TokioExecutor;

    let url = match a.url {
        Some(u) => u,
        None => default_health_url(std::env::var("IRGAN_SERVER__BIND").ok().as_deref()),
    };
    let timeout = Duration::from_millis(a.timeout_ms);
    let (authority, _, _, path) = parse_http_url(&url)?;
    let request = hyper::Request::get(format!("http://{authority}{path}"))
        .header(USER_AGENT, "irgan-healthcheck")
        .header(ACCEPT, "*/*")
        .header(CONNECTION, "close")
        .body(Empty::<Bytes>::new())
        .with_context(|| format!("bad URL {url:?}"))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the healthcheck runtime")?;
    let response = runtime.block_on(async {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(timeout));
        let client = Client::builder(TokioExecutor::new()).build(connector);
        // The connector caps connecting at `timeout`, so the answer always gets `timeout` too.
        match tokio::time::timeout(timeout * 2, client.request(request)).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(e)) if e.is_connect() => {
                Err(anyhow::Error::new(e).context(format!("cannot connect to {url}")))
            }
            Ok(Err(e)) => {
                Err(anyhow::Error::new(e).context(format!("reading the response from {url}")))
            }
            Err(_) => Err(anyhow::anyhow!(
                "reading the response from {url}: no answer within {} ms",
                a.timeout_ms
            )),
        }
    })?;
    let status_line = format!("{:?} {}", response.version(), response.status());
    if response.status() != hyper::StatusCode::OK {
        bail!("{url}: unhealthy: {status_line}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_url_follows_the_bind_address() {
        assert_eq!(default_health_url(None), "http://127.0.0.1:8080/healthz");
        assert_eq!(
            default_health_url(Some("0.0.0.0:9000")),
            "http://127.0.0.1:9000/healthz"
        );
        assert_eq!(
            default_health_url(Some("[::]:9000")),
            "http://[::1]:9000/healthz"
        );
        assert_eq!(
            default_health_url(Some("10.1.2.3:80")),
            "http://10.1.2.3:80/healthz"
        );
    }

    #[test]
    fn urls_parse() {
        let p = |u: &str| parse_http_url(u).unwrap();
        assert_eq!(
            p("http://127.0.0.1:8080/healthz"),
            (
                "127.0.0.1:8080".into(),
                "127.0.0.1".into(),
                8080,
                "/healthz".into()
            )
        );
        assert_eq!(
            p("http://localhost"),
            ("localhost".into(), "localhost".into(), 80, "/".into())
        );
        assert_eq!(
            p("http://[::1]:81/a?b"),
            ("[::1]:81".into(), "::1".into(), 81, "/a?b".into())
        );
        assert!(parse_http_url("https://x/").is_err());
        assert!(parse_http_url("http://x:notaport/").is_err());
        assert!(parse_http_url("http:///healthz").is_err());
    }
}
