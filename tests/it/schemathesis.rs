//! The published contract against the real service: schemathesis (PyPI) reads
//! `GET /openapi.json` of a live `irgan serve --demo` and fuzzes every operation with all of
//! its checks (examples, coverage, fuzzing and stateful phases), a fixed seed and a bounded
//! number of examples. Any failure fails the test with schemathesis's report: a server error,
//! an answer the document does not allow, a schema-valid request refused, or a
//! schema-violating request accepted.
//!
//! Skipped, with the reason printed, only when the `schemathesis` command is missing
//! (`.ci/run` installs it: `python3 -m pip install schemathesis`). Set `SCHEMATHESIS` to use
//! another command.
//!
//! The NDJSON body of `POST /v1/feedback` is serialised by the hook in
//! `tests/schemathesis/irgan_hooks.py`.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::root;
use crate::service::client::{self, Server};

/// The seed and the examples per operation and phase; README.md's API section states them.
const SEED: &str = "1";
const EXAMPLES: &str = "50";

/// The demo's config, but search lists of at most 20 documents (the document states the limit
/// in effect): schemathesis's coverage phase builds lists of the maximum length, and 1,000
/// vectors of 46 features each per request would make the run take many minutes.
const SETS: &[&str] = &["search.max_documents=20"];

/// Posts judged impressions and waits until a search model is live, so that
/// `POST /v1/search/rank` answers 200 rather than `503 no_search_model` from the start.
fn publish_a_search_model(port: u16) {
    let data = irgan::data::letor_synth::synthetic_ltr(30, 8, 46, 3);
    let impressions: Vec<Value> = data
        .queries
        .iter()
        .map(|q| {
            let documents: Vec<Value> = (0..q.len())
                .map(|d| {
                    let features: Vec<f64> =
                        q.features.row(d).iter().map(|&v| f64::from(v)).collect();
                    json!({"id": q.doc_ids[d], "features": features, "label": q.labels[d]})
                })
                .collect();
            json!({"query": q.qid, "documents": documents})
        })
        .collect();
    let r = client::post(
        port,
        "/v1/search/feedback",
        &Value::from(impressions).to_string(),
    )
    .expect("POST /v1/search/feedback");
    assert_eq!(r.status, 200, "{r:?}");
    let started = Instant::now();
    loop {
        let m = client::get(port, "/v1/search/model").expect("GET /v1/search/model");
        if !m.json()["live"].is_null() {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no search model after 120 s: {m:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Longest run allowed before the test gives up (and kills schemathesis).
const LIMIT: Duration = Duration::from_secs(240);

fn command() -> String {
    std::env::var("SCHEMATHESIS").unwrap_or_else(|_| "schemathesis".into())
}

fn available(cli: &str) -> bool {
    Command::new(cli)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs schemathesis against `port` with `extra` arguments; its exit success and output.
fn run(port: u16, work: &std::path::Path, extra: &[&str]) -> (bool, String) {
    let cli = command();
    let hooks = root().join("tests/schemathesis");
    let python_path = match std::env::var("PYTHONPATH") {
        Ok(p) if !p.is_empty() => format!("{}:{p}", hooks.display()),
        _ => hooks.display().to_string(),
    };
    let out_file = work.join("schemathesis.out");
    let out = std::fs::File::create(&out_file).expect("output file");
    let mut child = Command::new(&cli)
        .arg("run")
        .arg(format!("http://127.0.0.1:{port}/openapi.json"))
        .args([
            "--checks",
            "all",
            "--seed",
            SEED,
            "--max-examples",
            EXAMPLES,
        ])
        .args([
            "--workers",
            "1",
            "--no-color",
            "--generation-database",
            "none",
        ])
        .args(["--request-timeout", "30"])
        .args(extra)
        .current_dir(work)
        .env("SCHEMATHESIS_HOOKS", "irgan_hooks")
        .env("PYTHONPATH", python_path)
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("dup"))
        .stderr(out)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cli}: {e}"));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for schemathesis") {
            break Some(status);
        }
        if started.elapsed() > LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut text = String::new();
    std::fs::File::open(&out_file)
        .and_then(|mut f| f.read_to_string(&mut text))
        .expect("read the output");
    match status {
        Some(s) => (s.success(), text),
        None => (false, format!("killed after {LIMIT:?}:\n{text}")),
    }
}

#[test]
fn schemathesis_finds_no_contract_failure() {
    let cli = command();
    if !available(&cli) {
        eprintln!(
            "SKIPPED schemathesis_finds_no_contract_failure: `{cli} --version` failed; install \
             it with `python3 -m pip install schemathesis` (.ci/run does)"
        );
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    // The demo as shipped (open: no API key; background training on), with short search lists.
    let server = Server::start(&dir.path().join("data"), SETS);
    publish_a_search_model(server.port);
    let (ok, report) = run(server.port, dir.path(), &[]);
    assert!(
        ok,
        "schemathesis found contract failures (seed {SEED}, {EXAMPLES} examples):\n{report}\n\
         ---- server log (tail) ----\n{}",
        tail(&server.log_text(), 4000)
    );
    assert!(
        report.contains("No issues found") || report.contains("passed"),
        "{report}"
    );
}

/// The last `n` bytes of `s` (at a character boundary).
fn tail(s: &str, n: usize) -> &str {
    let mut at = s.len().saturating_sub(n);
    while !s.is_char_boundary(at) {
        at += 1;
    }
    &s[at..]
}
