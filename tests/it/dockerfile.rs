//! The container image, checked without a Docker engine: the Dockerfile is parsed and what it
//! refers to (copied files, the binary, the port, the config and its environment, the health
//! check) is checked against the repository and the real binary.

use std::net::{Ipv4Addr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use irgan::online::settings::ServiceConfig;

use crate::common::{irgan, root, spawn_demo_server};

/// One Dockerfile instruction: the keyword (upper case) and its arguments (continuations
/// joined, comments dropped).
#[derive(Debug)]
struct Instr {
    keyword: String,
    args: String,
}

/// Parses a Dockerfile into instructions.
fn parse(text: &str) -> Vec<Instr> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(part) => {
                current.push_str(part);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                let joined = std::mem::take(&mut current);
                let joined = joined.trim();
                if joined.is_empty() {
                    continue;
                }
                let (keyword, args) = joined
                    .split_once(char::is_whitespace)
                    .unwrap_or((joined, ""));
                out.push(Instr {
                    keyword: keyword.to_ascii_uppercase(),
                    args: args.trim().to_owned(),
                });
            }
        }
    }
    assert!(
        current.trim().is_empty(),
        "dangling continuation: {current}"
    );
    out
}

/// The words of an exec-form (`["a", "b"]`) or shell-form argument list.
fn words(args: &str) -> Vec<String> {
    if args.starts_with('[') {
        serde_json::from_str(args).unwrap_or_else(|e| panic!("bad JSON array {args:?}: {e}"))
    } else {
        args.split_whitespace().map(str::to_owned).collect()
    }
}

/// The instructions of the final stage (after the last `FROM`).
fn final_stage(instrs: &[Instr]) -> &[Instr] {
    let last_from = instrs
        .iter()
        .rposition(|i| i.keyword == "FROM")
        .expect("a FROM");
    &instrs[last_from + 1..]
}

/// The single instruction `keyword` of the final stage.
fn single<'a>(instrs: &'a [Instr], keyword: &str) -> &'a Instr {
    let found: Vec<_> = final_stage(instrs)
        .iter()
        .filter(|i| i.keyword == keyword)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "want exactly one {keyword} in the final stage"
    );
    found[0]
}

/// `ENV` values of the final stage (`K=V ...` and legacy `K V` forms).
fn env(instrs: &[Instr]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for i in final_stage(instrs).iter().filter(|i| i.keyword == "ENV") {
        let first = i.args.split_whitespace().next().unwrap_or("");
        if first.contains('=') {
            for pair in i.args.split_whitespace() {
                let (k, v) = pair.split_once('=').expect("K=V");
                out.push((k.to_owned(), v.trim_matches('"').to_owned()));
            }
        } else {
            let (k, v) = i.args.split_once(char::is_whitespace).expect("ENV K V");
            out.push((k.to_owned(), v.trim().trim_matches('"').to_owned()));
        }
    }
    out
}

/// `COPY` instructions as (flags, sources, destination).
fn copies(instrs: &[Instr]) -> Vec<(Vec<String>, Vec<String>, String)> {
    instrs
        .iter()
        .filter(|i| i.keyword == "COPY" || i.keyword == "ADD")
        .map(|i| {
            let all: Vec<String> = i.args.split_whitespace().map(str::to_owned).collect();
            let (flags, rest): (Vec<String>, Vec<String>) =
                all.into_iter().partition(|w| w.starts_with("--"));
            let rest = if rest.len() == 1 {
                words(&rest[0])
            } else if rest.first().is_some_and(|w| w.starts_with('[')) {
                words(&rest.join(" "))
            } else {
                rest
            };
            assert!(
                rest.len() >= 2,
                "COPY needs a source and a destination: {i:?}"
            );
            let (dest, sources) = rest.split_last().expect("non-empty");
            (flags, sources.to_vec(), dest.clone())
        })
        .collect()
}

/// The Cargo package's binary names (`[[bin]]` entries, else the package name).
fn cargo_bins() -> Vec<String> {
    let text = std::fs::read_to_string(root().join("Cargo.toml")).expect("read Cargo.toml");
    let manifest: toml::Table = text.parse().expect("parse Cargo.toml");
    match manifest.get("bin").and_then(|b| b.as_array()) {
        Some(bins) => bins
            .iter()
            .map(|b| b["name"].as_str().expect("bin name").to_owned())
            .collect(),
        None => vec![
            manifest["package"]["name"]
                .as_str()
                .expect("package name")
                .to_owned(),
        ],
    }
}

fn dockerfile() -> Vec<Instr> {
    let text = std::fs::read_to_string(root().join("Dockerfile")).expect("read Dockerfile");
    parse(&text)
}

#[test]
fn copy_sources_exist_and_are_not_docker_ignored() {
    let instrs = dockerfile();
    let ignore = std::fs::read_to_string(root().join(".dockerignore")).expect(".dockerignore");
    let ignored: Vec<&str> = ignore
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.contains('*'))
        .map(|l| l.trim_start_matches('/').trim_end_matches('/'))
        .collect();
    for needed in ["target", ".git"] {
        assert!(ignored.contains(&needed), ".dockerignore lacks {needed}");
    }
    let local: Vec<_> = copies(&instrs)
        .into_iter()
        .filter(|(flags, _, _)| !flags.iter().any(|f| f.starts_with("--from")))
        .collect();
    assert!(!local.is_empty(), "no COPY from the build context");
    for (_, sources, dest) in local {
        for src in sources {
            let rel = src.trim_start_matches("./");
            assert!(
                root().join(rel).exists(),
                "COPY {src} {dest}: {rel} does not exist in the repository"
            );
            for pat in &ignored {
                assert!(
                    rel != *pat && !rel.starts_with(&format!("{pat}/")),
                    "COPY {src}: excluded by .dockerignore pattern {pat}"
                );
            }
        }
    }
}

#[test]
fn binary_port_config_and_user_agree() {
    let instrs = dockerfile();
    let bins = cargo_bins();
    assert_eq!(bins, ["irgan"]);
    let bin = &bins[0];

    // The binary built is the one installed and the one run.
    let from_builder: Vec<_> = copies(&instrs)
        .into_iter()
        .filter(|(flags, _, _)| flags.iter().any(|f| f.starts_with("--from")))
        .collect();
    assert!(
        from_builder.iter().any(|(_, srcs, dest)| {
            srcs.iter()
                .all(|s| s.ends_with(&format!("/target/release/{bin}")))
                && dest == &format!("/usr/local/bin/{bin}")
        }),
        "no COPY --from=... target/release/{bin} /usr/local/bin/{bin}: {from_builder:?}"
    );
    let entry = words(&single(&instrs, "ENTRYPOINT").args);
    assert_eq!(entry.first(), Some(bin), "ENTRYPOINT {entry:?}");
    let hc = words(&single(&instrs, "HEALTHCHECK").args);
    let cmd_at = hc
        .iter()
        .position(|w| w == "CMD")
        .expect("HEALTHCHECK ... CMD");
    let hc_cmd = words(&hc[cmd_at + 1..].join(" "));
    assert_eq!(
        hc_cmd.iter().map(String::as_str).collect::<Vec<_>>(),
        [bin.as_str(), "healthcheck"],
        "HEALTHCHECK {hc:?}"
    );

    // EXPOSE lists the REST and the gRPC port the environment binds, and those are the code's
    // default ports (the image only widens the host to all interfaces).
    let env = env(&instrs);
    let get = |k: &str| {
        env.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no ENV {k}: {env:?}"))
    };
    let port_of = |addr: &str| addr.rsplit_once(':').expect("host:port").1.to_owned();
    let bind = get("IRGAN_SERVER__BIND");
    let grpc_bind = get("IRGAN_SERVER__GRPC_BIND");
    let exposed: Vec<&str> = single(&instrs, "EXPOSE")
        .args
        .split_whitespace()
        .map(|p| p.trim_end_matches("/tcp"))
        .collect();
    assert_eq!(
        exposed,
        [port_of(&bind), port_of(&grpc_bind)],
        "EXPOSE vs IRGAN_SERVER__BIND={bind} and IRGAN_SERVER__GRPC_BIND={grpc_bind}"
    );
    let defaults = ServiceConfig::default().server;
    assert_eq!(port_of(&bind), port_of(&defaults.bind), "REST port");
    assert_eq!(
        port_of(&grpc_bind),
        port_of(&defaults.grpc_bind),
        "gRPC port"
    );

    // The copied config loads under the image's environment.
    let cmd = words(&single(&instrs, "CMD").args);
    let config_at = cmd
        .iter()
        .position(|w| w == "--config")
        .expect("CMD --config");
    let config_dest = &cmd[config_at + 1];
    let (_, config_src, _) = copies(&instrs)
        .into_iter()
        .find(|(_, _, dest)| dest == config_dest)
        .unwrap_or_else(|| panic!("nothing is copied to {config_dest}"));
    let path = root().join(&config_src[0]);
    let cfg = ServiceConfig::load(Some(&path), env.clone(), &[])
        .unwrap_or_else(|e| panic!("{} under {env:?}: {e}", path.display()));
    assert_eq!(cfg.server.bind, bind);
    assert_eq!(cfg.server.grpc_bind, grpc_bind);
    let data_dir = get("IRGAN_STORAGE__DATA_DIR");
    assert_eq!(cfg.storage.data_dir, Path::new(&data_dir));
    let volumes = words(&single(&instrs, "VOLUME").args);
    assert_eq!(volumes, [data_dir], "VOLUME vs the data dir");

    // The image listens on all interfaces and bakes in no key: run as is, `irgan serve`
    // refuses to start until one is passed (IRGAN_SERVER__API_KEY from an env file or a
    // secret), or the operator says the service is meant to be open.
    for var in ["IRGAN_SERVER__API_KEY", "IRGAN_SERVER__ALLOW_OPEN"] {
        assert!(env.iter().all(|(k, _)| k != var), "the image sets {var}");
    }
    assert!(cfg.server.api_key.is_empty());
    let e = cfg
        .server
        .check_exposure()
        .expect_err("open on 0.0.0.0")
        .to_string();
    assert!(e.contains("IRGAN_SERVER__API_KEY"), "{e}");
    for (var, value) in [
        ("IRGAN_SERVER__API_KEY", "from-a-secret"),
        ("IRGAN_SERVER__ALLOW_OPEN", "true"),
    ] {
        let mut run_env = env.clone();
        run_env.push((var.to_owned(), value.to_owned()));
        let cfg = ServiceConfig::load(Some(&path), run_env, &[]).expect("load");
        cfg.server
            .check_exposure()
            .unwrap_or_else(|e| panic!("with {var}={value}: {e}"));
    }

    // Not root.
    let user = &single(&instrs, "USER").args;
    let name = user.split(':').next().unwrap_or("");
    assert!(!["", "root", "0"].contains(&name), "USER {user}");
}

/// The build stage: a dependency layer built on stubs (keyed on Cargo.toml and Cargo.lock
/// only, with a stub build.rs so the build dependencies are compiled there too), then the real
/// build with everything cargo and build.rs read.
#[test]
fn build_stage_has_the_build_script_and_protos() {
    let instrs = dockerfile();
    let froms: Vec<usize> = instrs
        .iter()
        .enumerate()
        .filter(|(_, i)| i.keyword == "FROM")
        .map(|(n, _)| n)
        .collect();
    assert_eq!(froms.len(), 2, "a build and a runtime stage");
    let builder = &instrs[froms[0] + 1..froms[1]];
    let builds: Vec<usize> = builder
        .iter()
        .enumerate()
        .filter(|(_, i)| i.keyword == "RUN" && i.args.contains("cargo build"))
        .map(|(n, _)| n)
        .collect();
    assert_eq!(
        builds.len(),
        2,
        "a dependency build on stubs, then the real build"
    );
    let copied_before = |end: usize| -> Vec<String> {
        copies(&builder[..end])
            .into_iter()
            .flat_map(|(_, sources, _)| sources)
            .map(|s| s.trim_start_matches("./").trim_end_matches('/').to_owned())
            .collect()
    };
    let (deps, real) = (&builder[builds[0]], &builder[builds[1]]);
    assert_eq!(
        copied_before(builds[0]),
        ["Cargo.toml", "Cargo.lock"],
        "the dependency layer must depend on the manifest and lock file only"
    );
    for stub in ["build.rs", "src/main.rs", "src/lib.rs"] {
        assert!(
            deps.args.contains(&format!("> {stub}"))
                || deps.args.contains(&format!("touch {stub}")),
            "the dependency build does not stub {stub}: {deps:?}"
        );
    }
    // Every bench target of Cargo.toml gets a stub, or cargo refuses the manifest.
    let manifest: toml::Table = std::fs::read_to_string(root().join("Cargo.toml"))
        .expect("read Cargo.toml")
        .parse()
        .expect("parse Cargo.toml");
    for bench in manifest["bench"].as_array().expect("[[bench]]") {
        let name = bench["name"].as_str().expect("bench name");
        assert!(
            deps.args.contains(&format!("> benches/{name}.rs")),
            "no stub for bench {name}: {deps:?}"
        );
    }
    // The real build has the build script and the protos it compiles, and rebuilds over the
    // stubs.
    let copied = copied_before(builds[1]);
    for needed in ["build.rs", "proto", "src", "benches"] {
        assert!(
            copied.iter().any(|c| c == needed),
            "{needed} is not copied before the real build: {copied:?}"
        );
    }
    let build_rs = std::fs::read_to_string(root().join("build.rs")).expect("read build.rs");
    assert!(
        build_rs.contains("\"proto\"") && root().join("proto/irgan/v1/irgan.proto").is_file(),
        "build.rs compiles proto/"
    );
    let touch = real.args.split("&&").next().unwrap_or("");
    for f in ["build.rs", "src/main.rs", "src/lib.rs"] {
        assert!(
            touch.trim_start().starts_with("touch") && touch.contains(f),
            "the real build does not touch {f}: {real:?}"
        );
    }
}

#[test]
fn healthcheck_fails_without_a_server() {
    let run = irgan(["healthcheck", "--url", "http://127.0.0.1:1/healthz"]).fails();
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(run.stderr.contains("127.0.0.1:1"), "{run:?}");
    let run = irgan(["healthcheck", "--url", "https://127.0.0.1/healthz"]).fails();
    assert_eq!(run.code, Some(1), "{run:?}");
}

#[test]
fn healthcheck_passes_against_a_real_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut server, port, log) = spawn_demo_server(dir.path(), &["trainer.enabled=false"]);
    let started = Instant::now();
    while TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
        if let Some(status) = server.0.try_wait().expect("try_wait") {
            panic!(
                "irgan serve exited ({status}):\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "irgan serve not listening after 60 s:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let url = format!("http://127.0.0.1:{port}/healthz");
    irgan(["healthcheck", "--url", &url]).ok();

    // As in the image: no --url, the address comes from IRGAN_SERVER__BIND (0.0.0.0 → loopback).
    let out = Command::new(env!("CARGO_BIN_EXE_irgan"))
        .arg("healthcheck")
        .env("IRGAN_SERVER__BIND", format!("0.0.0.0:{port}"))
        .output()
        .expect("run irgan healthcheck");
    assert!(
        out.status.success(),
        "default URL from IRGAN_SERVER__BIND failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A non-200 answer is unhealthy, and says so.
    let missing = format!("http://127.0.0.1:{port}/no-such-route");
    let run = irgan(["healthcheck", "--url", &missing]).fails();
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(run.stderr.contains("404"), "{run:?}");
}
