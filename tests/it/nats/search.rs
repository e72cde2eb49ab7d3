//! The search task on the NATS backend: two serving replicas and one trainer with search
//! enabled, on synthetic LETOR queries (the `--demo` ones, then the test's own). Impressions through either replica are trained on
//! exactly once (a repeat through the other is a duplicate within JetStream's window and is
//! skipped by the trainer beyond it); both replicas serve a new search version within 2 s of
//! its publish; a replica has no search trainer (409 `no_trainer`); a replica started
//! afterwards serves the live search version.

use std::time::{Duration, Instant};

use irgan::data::letor_synth::synthetic_ltr;
use serde_json::{Value, json};

use super::client::{self, Response};
use super::{Irgan, Trio, eventually, nats_available};
use crate::service::search::{candidates, impression};

/// Search settings of every process: small scorers on 4 features, a lenient gate, and a 1 s
/// duplicate window so a repeat after it exercises the trainer's own idempotency.
const SEARCH: &[&str] = &[
    "search.enabled=true",
    "search.n_features=4",
    "search.min_queries=10",
    "search.scorer.hidden=8",
    "search.publish_every_seconds=1.0",
    "search.tolerance=1.0",
    "search.max_documents=50",
    "nats.duplicate_window_seconds=1.0",
];

fn post_impressions(p: &Irgan, batch: &[Value]) -> Response {
    let r = client::post(p.port, "/v1/search/feedback", &json!(batch).to_string())
        .expect("POST /v1/search/feedback");
    assert_eq!(r.status, 200, "{r:?}\n{}", p.log_text());
    r
}

fn search_model(p: &Irgan) -> Value {
    let r = client::get(p.port, "/v1/search/model").expect("GET /v1/search/model");
    assert_eq!(r.status, 200, "{r:?}");
    r.json()
}

/// The live search version `p` serves (0 before the first).
fn search_version(p: &Irgan) -> u64 {
    search_model(p)["live"]["version"].as_u64().unwrap_or(0)
}

#[test]
fn search_replicas_share_impressions_and_follow_the_search_pointer() {
    if !nats_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let Trio {
        nats,
        trainer,
        a,
        b,
    } = Trio::start(tmp.path(), SEARCH, true);
    // The trainer reads the demo's impressions (imported before it started) in one pass.
    let mut status = Value::Null;
    let read = eventually(Duration::from_secs(30), || {
        status = search_model(&trainer)["trainer"].clone();
        status["impressions_seen"].as_u64() > Some(0)
    });
    assert!(read, "{status}\n{}", trainer.log_text());
    let judged =
        |s: &Value| s["train_queries"].as_u64().unwrap() + s["holdout_queries"].as_u64().unwrap();
    let before = judged(&status);

    // 30 distinct judged impressions, half through each replica.
    let data = synthetic_ltr(30, 10, 4, 7);
    let batch: Vec<Value> = data
        .queries
        .iter()
        .enumerate()
        .map(|(k, q)| impression(q, &format!("imp-{k}")))
        .collect();
    let r = post_impressions(&a, &batch[..15]);
    assert_eq!(r.json()["accepted"], 15, "{r:?}");
    let r = post_impressions(&b, &batch[15..]);
    assert_eq!(r.json()["accepted"], 15, "{r:?}");
    // A repeat through the other replica is a duplicate.
    let r = post_impressions(&b, &batch[..5]);
    assert_eq!(
        (
            r.json()["accepted"].as_u64(),
            r.json()["duplicates"].as_u64()
        ),
        (Some(0), Some(5)),
        "{r:?}"
    );
    // Past the duplicate window JetStream stores a repeat again; the trainer skips it.
    let late = [impression(&synthetic_ltr(1, 10, 4, 8).queries[0], "late")];
    assert_eq!(post_impressions(&a, &late).json()["accepted"], 1);
    std::thread::sleep(Duration::from_millis(1500));
    let r = post_impressions(&b, &late);
    let last = r.json()["last_seq"].as_u64().expect("last_seq");

    // The trainer reads every impression and keeps each id once: 31 more judged queries.
    let read = eventually(Duration::from_secs(30), || {
        status = search_model(&trainer)["trainer"].clone();
        status["impressions_seen"].as_u64() >= Some(last)
    });
    assert!(read, "{status}\n{}", trainer.log_text());
    assert_eq!(
        judged(&status) - before,
        31,
        "every impression id trained on once: {status}"
    );

    // A publish on the trainer reaches both replicas within 2 s.
    let r = client::post(trainer.port, "/v1/search/snapshots", "{}").expect("publish");
    assert_eq!(r.status, 200, "{r:?}\n{}", trainer.log_text());
    let published_at = Instant::now();
    let version = r.json()["version"].as_u64().expect("version");
    let swapped = eventually(Duration::from_secs(2), || {
        search_version(&a) >= version && search_version(&b) >= version
    });
    eprintln!(
        "replicas serve search version {version} {:?} after the publish",
        published_at.elapsed()
    );
    assert!(
        swapped,
        "replicas at {} and {}, not {version}:\n{}\n{}",
        search_version(&a),
        search_version(&b),
        a.log_text(),
        b.log_text()
    );
    let r = client::post(
        a.port,
        "/v1/search/rank",
        &candidates(&data.queries[0]).to_string(),
    )
    .expect("rank");
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.json()["version"].as_u64() >= Some(version), "{r:?}");

    // A replica has no search trainer.
    let r = client::post(b.port, "/v1/search/snapshots", "{}").expect("publish on a replica");
    assert_eq!(
        (r.status, r.json()["code"].clone()),
        (409, json!("no_trainer")),
        "{r:?}"
    );
    assert_eq!(search_model(&b)["trainer"]["up"], false);

    // A replica started afterwards serves the live search version, without the trainer.
    let live = search_version(&trainer);
    let mut trainer = trainer;
    trainer.kill();
    let sets: Vec<&str> = SEARCH.to_vec();
    let c = Irgan::start(
        &tmp.path().join("c"),
        &nats.url(),
        "serve",
        false,
        &sets,
        Duration::from_secs(60),
    );
    assert_eq!(search_version(&c), live, "{}", c.log_text());
}
