//! The NATS backend's settings and start-up failures (no nats-server needed): roles need the
//! shared backend, search runs on it too, bad `[nats]` values name their key, and a
//! replica that cannot reach NATS stops at once with an error that says so.

use std::process::Command;

use irgan::online::settings::ServiceConfig;

use crate::common::free_ports;
use crate::service::DEFAULT_TOML;

fn load(sets: &[&str]) -> Result<ServiceConfig, String> {
    let sets: Vec<String> = sets.iter().map(|s| (*s).to_owned()).collect();
    ServiceConfig::load(
        Some(std::path::Path::new(DEFAULT_TOML)),
        Vec::<(String, String)>::new(),
        &sets,
    )
    .map_err(|e| e.to_string())
}

#[test]
fn roles_and_nats_keys_are_validated() {
    let c = load(&[]).unwrap();
    assert_eq!(
        c.storage.backend,
        irgan::online::settings::StorageBackend::Local
    );
    assert_eq!(c.server.role, irgan::online::settings::Role::All);
    for (sets, key) in [
        (&["server.role=serve"][..], "server.role"),
        (&["server.role=train"][..], "server.role"),
        (
            &["storage.backend=nats", "nats.replicas=0"][..],
            "nats.replicas",
        ),
        (&["nats.search_stream=\"a b\""][..], "nats.search_stream"),
        (
            &["nats.search_subject=\"irgan.feedback\""][..],
            "nats.search_subject",
        ),
        (&["nats.search_subject=\"\""][..], "nats.search_subject"),
        (
            &["nats.lease_ttl_seconds=0.1"][..],
            "nats.lease_ttl_seconds",
        ),
        (&["nats.stream=\"a.b\""][..], "nats.stream"),
        (&["storage.backend=\"s3\""][..], "s3"),
    ] {
        let e = load(sets).expect_err(&format!("{sets:?} accepted"));
        assert!(e.contains(key), "{sets:?}: {e}");
    }
    let ok = load(&[
        "storage.backend=nats",
        "server.role=serve",
        "nats.replicas=3",
    ])
    .unwrap();
    assert_eq!(ok.nats.replicas, 3);
    assert!(ok.search.enabled, "search runs on the NATS backend");
}

#[test]
fn a_replica_without_nats_stops_with_a_clear_error() {
    let [port, closed] = free_ports();
    let out = Command::new(env!("CARGO_BIN_EXE_irgan"))
        .args(["serve", "--config", DEFAULT_TOML, "--role", "serve"])
        .arg("--data-dir")
        .arg(tempfile::tempdir().unwrap().path())
        .args(["--set", &format!("server.bind=127.0.0.1:{port}")])
        .args(["--set", "server.grpc_bind="])
        .args([
            "--set",
            "storage.backend=nats",
            "--set",
            "search.enabled=false",
        ])
        .args(["--set", &format!("nats.url=nats://127.0.0.1:{closed}")])
        .args(["--set", "nats.connect_timeout_seconds=1.0"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("NATS"), "{stderr}");
}
