//! `irgan serve`, `import`, `export` and `healthcheck`: the service's commands.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;
use irgan::app;
use irgan::data::loader::{Format, LoadOptions};
use irgan::online::settings::ServiceConfig;
use irgan::store::feedback_log::{FeedbackLog, LogOptions};

use crate::set_threads;

#[derive(Args)]
pub struct ServiceArgs {
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
pub struct ServeArgs {
    #[command(flatten)]
    service: ServiceArgs,
    /// Import this interaction file before starting (idempotent) and train on it.
    #[arg(long)]
    bootstrap: Option<PathBuf>,
    /// Start with a synthetic demo catalogue (users u0…, items i0…) so the examples work.
    #[arg(long)]
    demo: bool,
    /// What this process does (overrides server.role): all = serve and train; serve = a
    /// stateless replica; train = the lease-holding trainer (serve and train need
    /// storage.backend = "nats").
    #[arg(long, value_parser = ["all", "serve", "train"])]
    role: Option<String>,
}

#[derive(Args)]
pub struct ImportArgs {
    #[command(flatten)]
    service: ServiceArgs,
    /// Interaction file (`user item [rating [timestamp]]`).
    file: PathBuf,
    /// A rating at or above this is a positive.
    #[arg(long, default_value_t = 4.0)]
    threshold: f32,
}

#[derive(Args)]
pub struct ExportArgs {
    #[command(flatten)]
    service: ServiceArgs,
    /// Output file (default: standard output).
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Arguments of `irgan healthcheck`.
#[derive(Args)]
pub struct HealthcheckArgs {
    /// URL to probe (`http://host:port/path`). Default: `/healthz` on IRGAN_SERVER__BIND (an
    /// unspecified address such as 0.0.0.0 becomes loopback), else http://127.0.0.1:8080/healthz.
    #[arg(long)]
    url: Option<String>,
    /// Time limit for connecting, and again for the answer.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..))]
    timeout_ms: u64,
}

/// `irgan serve`.
pub fn serve(mut a: ServeArgs) -> anyhow::Result<()> {
    if let Some(role) = &a.role {
        a.service.set.push(format!("server.role={role:?}"));
    }
    let cfg = a.service.load()?;
    // Before importing or binding anything: an open service off this machine is an error.
    cfg.server.check_exposure()?;
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    set_threads(cfg.training.threads);
    if a.demo || a.bootstrap.is_some() {
        let (log, _nats) = app::open_log(&cfg)?;
        let new = match &a.bootstrap {
            Some(file) => {
                let opts = LoadOptions {
                    format: Format::Ratings,
                    positive_threshold: 4.0,
                };
                app::import_file(&*log, file, &opts)?
            }
            None => app::import_demo(&*log, &irgan::config::SyntheticConfig::default(), 42)?,
        };
        log.close()?;
        tracing::info!(new_events = new, "imported");
    }
    if a.demo && cfg.search.enabled {
        let log = app::open_impressions(&cfg, None)?;
        let new = app::import_search_demo(&*log, cfg.search.n_features, cfg.training.seed)?;
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

/// `irgan import`.
pub fn import(a: ImportArgs) -> anyhow::Result<()> {
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

/// `irgan export`.
pub fn export(a: ExportArgs) -> anyhow::Result<()> {
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
/// `irgan healthcheck`.
pub fn healthcheck(a: HealthcheckArgs) -> anyhow::Result<()> {
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
