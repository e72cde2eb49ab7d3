//! Safe by default off the laptop: a real `irgan serve` whose REST or gRPC listener is on a
//! non-loopback address with no API key exits non-zero with an error naming the fixes (before
//! importing anything), while an API key or `server.allow_open = true` lets it serve there.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::DEFAULT_TOML;
use super::client::{self, QUICK, Server};
use super::grpc::{KEY, STILL};
use crate::common::free_ports;

/// Exit code and standard error of `irgan serve --demo` with `sets` and `env`, which must exit
/// by itself (killed after 60 s: a server that starts instead of refusing fails the test).
fn serve_exit(data_dir: &Path, sets: &[String], env: &[(&str, String)]) -> (Option<i32>, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_irgan"));
    cmd.args(["serve", "--demo", "--config", DEFAULT_TOML, "--data-dir"])
        .arg(data_dir);
    for s in QUICK
        .iter()
        .map(|s| (*s).to_owned())
        .chain(sets.iter().cloned())
    {
        cmd.arg("--set").arg(s);
    }
    for var in [
        "IRGAN_SERVER__BIND",
        "IRGAN_SERVER__GRPC_BIND",
        "IRGAN_SERVER__API_KEY",
    ] {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn irgan serve");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("irgan serve {sets:?} {env:?} kept running instead of refusing to start");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut err);
    }
    (status.code(), err)
}

#[test]
fn serve_refuses_an_open_listener_off_loopback() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let [port, grpc_port] = free_ports();
    // (--set overrides, environment, the listener's key, its address)
    type Case<'a> = (Vec<String>, Vec<(&'a str, String)>, &'a str, String);
    let cases: [Case; 3] = [
        (
            vec![
                format!("server.bind=0.0.0.0:{port}"),
                format!("server.grpc_bind=127.0.0.1:{grpc_port}"),
            ],
            vec![],
            "server.bind",
            format!("0.0.0.0:{port}"),
        ),
        (
            vec![
                format!("server.bind=127.0.0.1:{port}"),
                format!("server.grpc_bind=\"[::]:{grpc_port}\""),
            ],
            vec![],
            "server.grpc_bind",
            format!("[::]:{grpc_port}"),
        ),
        // As a container sets it: the environment.
        (
            vec![],
            vec![
                ("IRGAN_SERVER__BIND", format!("0.0.0.0:{port}")),
                ("IRGAN_SERVER__GRPC_BIND", format!("0.0.0.0:{grpc_port}")),
            ],
            "server.bind",
            format!("0.0.0.0:{port}"),
        ),
    ];
    for (n, (sets, env, key, addr)) in cases.iter().enumerate() {
        let data = tmp.path().join(format!("data{n}"));
        let (code, err) = serve_exit(&data, sets, env);
        assert_eq!(code, Some(1), "{sets:?} {env:?}: {err}");
        for want in [
            *key,
            addr.as_str(),
            "server.api_key",
            "IRGAN_SERVER__API_KEY",
            "127.0.0.1",
            "server.allow_open = true",
        ] {
            assert!(
                err.contains(want),
                "{sets:?} {env:?}: {want:?} not in {err}"
            );
        }
        // Refused before the demo import: nothing was written.
        assert!(!data.exists(), "{sets:?}: {} was created", data.display());
        eprintln!("open bind refused: {}", err.trim());
    }
}

#[test]
fn a_key_or_allow_open_lets_it_serve_on_all_interfaces() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // With a key: up on 0.0.0.0, and writes need the key.
    let key = format!("server.api_key={KEY}");
    let sets = [STILL, &[key.as_str()]].concat();
    let server = Server::start_on("0.0.0.0", &tmp.path().join("keyed"), &sets);
    assert!(
        server
            .log_text()
            .contains(&format!("0.0.0.0:{}", server.port)),
        "{}",
        server.log_text()
    );
    let event = r#"{"user": "u1", "item": "i1", "type": "like"}"#;
    let r = client::post(server.port, "/v1/feedback", event).expect("POST");
    assert_eq!(r.status, 401, "{r:?}");
    let r = client::request_with(
        server.port,
        "POST",
        "/v1/feedback",
        Some(event),
        &[("x-api-key", KEY)],
    )
    .expect("POST");
    assert_eq!(r.status, 200, "{r:?}");
    drop(server);

    // Open by choice: allow_open = true, no key, writes accepted.
    let sets = [STILL, &["server.allow_open=true"]].concat();
    let server = Server::start_on("0.0.0.0", &tmp.path().join("open"), &sets);
    let r = client::post(server.port, "/v1/feedback", event).expect("POST");
    assert_eq!(r.status, 200, "{r:?}");
}
