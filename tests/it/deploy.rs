//! The monitoring stack in `deploy/` (compose file, Prometheus config and alerts, Grafana
//! dashboard), checked without Docker: every metric the alerts and the dashboard query is
//! exported by a real `irgan serve`, the compose service agrees with the Dockerfile, and every
//! file it mounts exists. With `promtool` on PATH, the configs and a real scrape are also
//! checked by Prometheus's own tool.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{Guard, promtool, promtool_available, root, spawn_demo_server};

/// The `deploy/` directory.
fn deploy() -> PathBuf {
    root().join("deploy")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// `GET path` over HTTP/1.0 (no chunking): status and body, or `None` if not reachable.
fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(20))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_owned()))
}

/// The metric names (`irgan_...`) in `text`, with histogram series suffixes stripped.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(at) = text[i..].find("irgan_") {
        let start = i + at;
        let preceded = start > 0 && {
            let c = bytes[start - 1];
            c.is_ascii_alphanumeric() || c == b'_'
        };
        let mut end = start;
        while end < bytes.len() && (bytes[end].is_ascii_lowercase() || bytes[end] == b'_') {
            end += 1;
        }
        if !preceded {
            let mut name = &text[start..end];
            for suffix in ["_bucket", "_sum", "_count"] {
                name = name.strip_suffix(suffix).unwrap_or(name);
            }
            out.insert(name.to_owned());
        }
        i = end;
    }
    out
}

/// The names of the metric families in a scrape (`# TYPE name kind` lines).
fn scraped_families(scrape: &str) -> BTreeSet<String> {
    scrape
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

/// Every `expr` of the Grafana dashboard.
fn dashboard_exprs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    ("expr", Value::String(s)) => out.push(s.clone()),
                    _ => dashboard_exprs(v, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| dashboard_exprs(v, out)),
        _ => {}
    }
}

fn dashboard() -> Value {
    let path = deploy().join("grafana/dashboards/irgan.json");
    serde_json::from_str(&read(&path))
        .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// The metric names the alerts and the dashboard query.
fn referenced_metrics() -> BTreeSet<String> {
    let alerts = read(&deploy().join("prometheus/alerts.yml"));
    let expr_lines: String = alerts
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    let mut names = metric_names(&expr_lines);
    let mut exprs = Vec::new();
    dashboard_exprs(&dashboard(), &mut exprs);
    assert!(!exprs.is_empty(), "the dashboard has no expr");
    for e in &exprs {
        let found = metric_names(e);
        assert!(
            !found.is_empty(),
            "dashboard expr without an irgan metric: {e}"
        );
        names.extend(found);
    }
    names
}

/// Starts `irgan serve --demo` (a G-entropy floor no candidate can reach, so the trainer's
/// publish refusals show up at once) and returns it with its port and log.
fn start_server(data_dir: &Path) -> (Guard, u16, PathBuf) {
    let sets = [
        "trainer.min_entropy=1000",
        "trainer.publish_every_steps=1",
        "trainer.publish_every_seconds=0.1",
    ];
    spawn_demo_server(data_dir, &sets)
}

#[test]
fn alerts_and_dashboard_query_only_exported_metrics() {
    let wanted = referenced_metrics();
    for must in [
        "irgan_snapshot_age_seconds",
        "irgan_snapshot_publish_refusals_total",
        "irgan_http_requests_total",
        "irgan_http_request_duration_seconds",
        "irgan_feedback_to_snapshot_seconds",
    ] {
        assert!(wanted.contains(must), "alerts/dashboard do not use {must}");
    }

    let dir = tempfile::tempdir().expect("tempdir");
    let (mut server, port, log) = start_server(dir.path());
    let log_text = || std::fs::read_to_string(&log).unwrap_or_default();
    let started = Instant::now();
    let rec = "/v1/users/u1/recommendations";
    let scrape = loop {
        if let Some(status) = server.0.try_wait().expect("try_wait") {
            panic!("irgan serve exited ({status}):\n{}", log_text());
        }
        // Labelled series appear once used: a recommendation, then the scrape.
        if get(port, rec).is_some_and(|(s, _)| s == 200)
            && let Some((200, body)) = get(port, "/metrics")
        {
            let have = scraped_families(&body);
            if wanted.iter().all(|m| have.contains(m)) {
                break body;
            }
            assert!(
                started.elapsed() < Duration::from_secs(90),
                "after 90 s the scrape still lacks {:?}\n--- scrape ---\n{body}\n--- log ---\n{}",
                wanted.difference(&have).collect::<Vec<_>>(),
                log_text()
            );
        } else {
            assert!(
                started.elapsed() < Duration::from_secs(90),
                "irgan serve not answering after 90 s:\n{}",
                log_text()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    drop(server);

    // Every name a query uses is a family of the scrape (also checked above, but say which).
    let have = scraped_families(&scrape);
    for m in &wanted {
        assert!(have.contains(m), "{m} is queried but not exported");
    }
    assert!(
        scrape.contains(r#"route="/v1/users/{user}/recommendations""#),
        "the p99 alert's route label does not match the scrape"
    );

    if !promtool_available() {
        eprintln!("note: promtool not on PATH; skipping promtool checks");
        return;
    }
    for args in [
        ["check", "config", "deploy/prometheus/prometheus.yml"],
        ["check", "rules", "deploy/prometheus/alerts.yml"],
    ] {
        let (code, out) = promtool(&args, None);
        assert_eq!(code, Some(0), "promtool {}:\n{out}", args.join(" "));
        eprintln!("promtool {}: {}", args.join(" "), out.trim());
    }
    // Exit 1 is a parse error, exit 3 a lint problem (names, units, help texts): both fail.
    let (code, out) = promtool(&["check", "metrics"], Some(&scrape));
    eprintln!("promtool check metrics: exit {code:?}\n{}", out.trim());
    assert_eq!(code, Some(0), "promtool check metrics:\n{out}");
}

#[test]
fn dashboard_is_json_with_panels() {
    let dash = dashboard();
    let panels = dash["panels"].as_array().expect("a panels array");
    assert!(panels.len() >= 10, "only {} panels", panels.len());
    let mut ids = BTreeSet::new();
    for p in panels {
        let title = p["title"].as_str().expect("panel title");
        assert!(ids.insert(p["id"].as_u64().expect("panel id")), "{title}");
        let targets = p["targets"].as_array().expect("panel targets");
        assert!(!targets.is_empty(), "panel {title} has no targets");
        for t in targets {
            assert_eq!(t["datasource"]["uid"], "prometheus", "panel {title}");
        }
    }
    // The provisioned datasource has the uid the panels use and points at the compose service.
    let ds = read(&deploy().join("grafana/provisioning/datasources/prometheus.yml"));
    assert!(ds.lines().any(|l| l.trim() == "uid: prometheus"), "{ds}");
    assert!(
        ds.lines()
            .any(|l| l.trim() == "url: http://prometheus:9090"),
        "{ds}"
    );
}

/// The top-level service blocks of a compose file: name → its lines (line-based, no YAML crate).
fn services(compose: &str) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    let mut in_services = false;
    for line in compose.lines() {
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        if indent == 0 {
            in_services = line.trim_end() == "services:";
            continue;
        }
        if !in_services {
            continue;
        }
        if indent == 2 {
            let name = line.trim().trim_end_matches(':').to_owned();
            out.push((name, Vec::new()));
        } else if let Some((_, body)) = out.last_mut() {
            body.push(line.to_owned());
        }
    }
    out
}

/// The list items (`- x`) or map entries under `key:` in a service block.
fn entries(block: &[String], key: &str) -> Vec<String> {
    let Some(at) = block.iter().position(|l| l.trim() == format!("{key}:")) else {
        return Vec::new();
    };
    let indent = |l: &str| l.len() - l.trim_start().len();
    let base = indent(&block[at]);
    block[at + 1..]
        .iter()
        .take_while(|l| indent(l) > base)
        .map(|l| {
            let t = l.trim();
            t.strip_prefix("- ").unwrap_or(t).replace('"', "")
        })
        .collect()
}

/// The inline value of `key: value` in a service block.
fn value(block: &[String], key: &str) -> Option<String> {
    block.iter().find_map(|l| {
        l.trim()
            .strip_prefix(&format!("{key}:"))
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    })
}

/// The words of an exec-form (`["a", "b"]`) or shell-form argument list.
fn words(args: &str) -> Vec<String> {
    if args.starts_with('[') {
        serde_json::from_str(args).unwrap_or_else(|e| panic!("bad JSON array {args:?}: {e}"))
    } else {
        args.split_whitespace().map(str::to_owned).collect()
    }
}

/// The final stage's arguments of Dockerfile instruction `keyword` (one line each).
fn dockerfile_args(keyword: &str) -> Vec<String> {
    let text = read(&root().join("Dockerfile"));
    let lines: Vec<&str> = text.lines().collect();
    let last_from = lines
        .iter()
        .rposition(|l| l.starts_with("FROM "))
        .expect("a FROM");
    lines[last_from..]
        .iter()
        .filter_map(|l| l.strip_prefix(&format!("{keyword} ")))
        .map(|a| a.trim().to_owned())
        .collect()
}

#[test]
fn compose_agrees_with_the_dockerfile_and_mounts_existing_files() {
    let compose_path = deploy().join("compose.yaml");
    let compose = read(&compose_path);
    let svcs = services(&compose);
    let names: Vec<&str> = svcs.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["irgan", "prometheus", "grafana"], "services");
    let block = |name: &str| &svcs.iter().find(|(n, _)| n == name).expect(name).1;

    // irgan: built from the repository's Dockerfile.
    let irgan = block("irgan");
    let context = value(irgan, "context")
        .or_else(|| value(irgan, "build"))
        .expect("irgan build context");
    let context = deploy().join(context);
    assert!(
        context.join("Dockerfile").is_file(),
        "no Dockerfile in the build context {}",
        context.display()
    );
    assert_eq!(
        context.canonicalize().expect("context"),
        root().canonicalize().expect("root")
    );

    let expose = dockerfile_args("EXPOSE");
    assert_eq!(expose, ["8080 50051"], "Dockerfile EXPOSE");
    let (port, grpc_port) = expose[0].split_once(' ').expect("two ports");
    assert_eq!(
        entries(irgan, "ports"),
        [format!("{port}:{port}"), format!("{grpc_port}:{grpc_port}")],
        "irgan ports"
    );
    assert_eq!(
        entries(irgan, "environment"),
        [
            format!("IRGAN_SERVER__BIND: 0.0.0.0:{port}"),
            format!("IRGAN_SERVER__GRPC_BIND: 0.0.0.0:{grpc_port}")
        ],
        "irgan environment"
    );

    compose_key_comes_from_an_ignored_env_file(irgan);

    let volume: Vec<String> = words(&dockerfile_args("VOLUME")[0]);
    let volume = &volume[0];
    let mounts = entries(irgan, "volumes");
    assert_eq!(mounts.len(), 1, "irgan volumes {mounts:?}");
    let (named, target) = mounts[0].split_once(':').expect("name:path");
    assert_eq!(target, volume, "irgan volume target vs Dockerfile VOLUME");
    let top_volumes: Vec<String> = compose
        .lines()
        .skip_while(|l| *l != "volumes:")
        .skip(1)
        .take_while(|l| l.starts_with(' ') || l.is_empty())
        .map(|l| l.trim().trim_end_matches(':').to_owned())
        .collect();
    assert!(
        top_volumes.iter().any(|v| v == named),
        "named volume {named} not declared: {top_volumes:?}"
    );

    // The command is the image's CMD plus --demo, with the config the image copies.
    let command: Vec<String> =
        serde_json::from_str(&value(irgan, "command").expect("irgan command"))
            .expect("command as a JSON array");
    assert_eq!(
        command,
        ["serve", "--config", "/etc/irgan/default.toml", "--demo"]
    );
    let cmd: Vec<String> = words(&dockerfile_args("CMD")[0]);
    assert_eq!(command[..cmd.len()], cmd[..], "compose command vs CMD");
    assert!(
        dockerfile_args("COPY")
            .iter()
            .any(|c| c.ends_with(&format!(" {}", command[2]))),
        "the image has no {}",
        command[2]
    );

    // Prometheus scrapes the irgan service on its port; alerts are loaded.
    let prom = read(&deploy().join("prometheus/prometheus.yml"));
    assert!(
        prom.contains(&format!("\"irgan:{port}\"")),
        "prometheus.yml does not scrape irgan:{port}"
    );
    assert!(prom.contains("metrics_path: /metrics"), "{prom}");
    assert!(prom.lines().any(|l| l.trim() == "- alerts.yml"), "{prom}");
    assert_eq!(entries(block("prometheus"), "ports"), ["9090:9090"]);
    assert_eq!(entries(block("grafana"), "ports"), ["3000:3000"]);

    // Every bind mount's source exists; Grafana's dashboard provider loads where they are mounted.
    let mut dashboards_at = None;
    for (name, body) in &svcs {
        for m in entries(body, "volumes") {
            let src = m.split(':').next().expect("source");
            if src.starts_with('.') || src.starts_with('/') {
                let path = deploy().join(src);
                assert!(path.exists(), "{name} mounts missing {}", path.display());
                if src.ends_with("grafana/dashboards") {
                    dashboards_at = m.split(':').nth(1).map(str::to_owned);
                }
            }
        }
    }
    let dashboards_at = dashboards_at.expect("grafana mounts ./grafana/dashboards");
    let provider = read(&deploy().join("grafana/provisioning/dashboards/irgan.yml"));
    assert!(
        provider
            .lines()
            .any(|l| l.trim() == format!("path: {dashboards_at}")),
        "the dashboard provider does not load {dashboards_at}:\n{provider}"
    );
    for image in ["prom/prometheus", "grafana/grafana"] {
        assert!(
            compose.contains(&format!("image: {image}")),
            "compose lacks {image}"
        );
    }
}

/// The irgan service listens on 0.0.0.0 in its container, so it needs an API key: the compose
/// file takes it from `deploy/irgan.env` (made from the committed example, ignored by git and
/// by the Docker build context), never inline. With the example as is the service refuses to
/// start; with a key in it, it starts.
fn compose_key_comes_from_an_ignored_env_file(irgan: &[String]) {
    assert_eq!(entries(irgan, "env_file"), ["irgan.env"], "irgan env_file");
    let environment = entries(irgan, "environment");
    assert!(
        environment
            .iter()
            .all(|e| !e.contains("API_KEY") && !e.contains("ALLOW_OPEN")),
        "a key or allow_open inline in compose.yaml: {environment:?}"
    );
    for ignore in [".gitignore", ".dockerignore"] {
        let text = read(&root().join(ignore));
        assert!(
            text.lines().any(|l| l.trim() == "/deploy/irgan.env"),
            "{ignore} does not ignore /deploy/irgan.env"
        );
    }
    let example = read(&deploy().join("irgan.env.example"));
    let vars: Vec<(String, String)> = example
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l.split_once('=').expect("KEY=VALUE");
            (k.to_owned(), v.to_owned())
        })
        .collect();
    assert_eq!(
        vars,
        [("IRGAN_SERVER__API_KEY".to_owned(), String::new())],
        "the example holds an empty placeholder, never a key"
    );
    // The service's environment: compose's, then the env file.
    let with_file = |file: &[(String, String)]| -> Vec<(String, String)> {
        environment
            .iter()
            .map(|e| {
                let (k, v) = e.split_once(": ").expect("KEY: value");
                (k.to_owned(), v.to_owned())
            })
            .chain(file.iter().cloned())
            .collect()
    };
    let config = root().join("config/default.toml");
    let load =
        |env| irgan::online::settings::ServiceConfig::load(Some(&config), env, &[]).expect("load");
    let e = load(with_file(&vars))
        .server
        .check_exposure()
        .expect_err("the example as is must not start")
        .to_string();
    assert!(e.contains("IRGAN_SERVER__API_KEY"), "{e}");
    let keyed = [(
        "IRGAN_SERVER__API_KEY".to_owned(),
        "0123456789abcdef".to_owned(),
    )];
    load(with_file(&keyed)).server.check_exposure().unwrap();
}

/// `deploy/compose-nats.yaml` parsed (YAML merge keys applied).
fn compose_nats() -> serde_yaml_ng::Value {
    let text = read(&deploy().join("compose-nats.yaml"));
    let mut v: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).expect("compose-nats.yaml");
    v.apply_merge().expect("merge keys");
    v
}

/// The past-one-machine stack: NATS with JetStream, two serving replicas behind one port, an
/// active and a standby trainer, Prometheus and Grafana; every file it mounts exists, and the
/// single-node compose.yaml is still there.
#[test]
fn compose_nats_runs_replicas_and_two_trainers_on_jetstream() {
    assert!(
        deploy().join("compose.yaml").is_file(),
        "single-node stack kept"
    );
    let c = compose_nats();
    let svc = |name: &str| {
        c["services"]
            .get(name)
            .unwrap_or_else(|| panic!("service {name}"))
            .clone()
    };
    let args = |s: &serde_yaml_ng::Value| -> Vec<String> {
        s["command"]
            .as_sequence()
            .expect("command")
            .iter()
            .map(|a| a.as_str().unwrap().to_owned())
            .collect()
    };
    let nats = svc("nats");
    assert!(args(&nats).contains(&"-js".to_string()), "JetStream on");
    let serve = svc("irgan-serve");
    assert_eq!(serve["deploy"]["replicas"].as_u64(), Some(2));
    assert!(args(&serve).windows(2).any(|w| w == ["--role", "serve"]));
    for t in ["irgan-train-a", "irgan-train-b"] {
        let s = svc(t);
        assert!(args(&s).windows(2).any(|w| w == ["--role", "train"]), "{t}");
    }
    for name in ["irgan-serve", "irgan-train-a", "irgan-train-b"] {
        let s = svc(name);
        let env = &s["environment"];
        assert_eq!(
            env["IRGAN_STORAGE__BACKEND"].as_str(),
            Some("nats"),
            "{name}"
        );
        assert_eq!(env["IRGAN_NATS__URL"].as_str(), Some("nats://nats:4222"));
        assert_eq!(env["IRGAN_SEARCH__ENABLED"].as_str(), Some("true"));
        // No key inline: it comes from the ignored env file, as in compose.yaml.
        assert!(env.get("IRGAN_SERVER__API_KEY").is_none());
        assert_eq!(s["env_file"][0].as_str(), Some("irgan.env"));
    }
    // Each irgan process's settings load with the service's own loader.
    let env = svc("irgan-serve")["environment"].clone();
    let vars: Vec<(String, String)> = env
        .as_mapping()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.as_str().unwrap().into(), v.as_str().unwrap().into()))
        .collect();
    let cfg = irgan::online::settings::ServiceConfig::load(
        Some(&root().join("config/default.toml")),
        vars,
        &["server.role=serve".into(), "server.allow_open=true".into()],
    )
    .expect("the replicas' settings load");
    assert_eq!(
        cfg.storage.backend,
        irgan::online::settings::StorageBackend::Nats
    );
    assert!(cfg.search.enabled, "search runs on the NATS backend too");
    // One port in front of the replicas, and every mounted file exists.
    assert!(svc("lb")["ports"][0].as_str().unwrap().starts_with("8080:"));
    for name in ["lb", "prometheus", "grafana"] {
        for v in svc(name)["volumes"].as_sequence().unwrap() {
            let src = v.as_str().unwrap().split(':').next().unwrap();
            if let Some(rel) = src.strip_prefix("./") {
                assert!(deploy().join(rel).exists(), "{name} mounts missing {src}");
            }
        }
    }
    for s in ["prometheus", "grafana"] {
        svc(s);
    }
}
