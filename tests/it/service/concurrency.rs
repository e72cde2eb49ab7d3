//! Readers under concurrent publishing: every request succeeds, versions never go back within
//! a reader, and one version always gives one answer (G and D never mix snapshots).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Method, Request};
use serde_json::Value;
use tower::ServiceExt;

use super::{FAST, Svc, item_ids};

const READERS: usize = 4;
const REQUESTS: usize = 200;

/// (user, model, version) → the ranking it gave, as (item, "G/D") pairs.
type Answers = HashMap<(String, &'static str, u64), Vec<(String, String)>>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_see_whole_snapshots_while_publishing() {
    let svc = Svc::start(FAST).await;
    let started = Instant::now();
    let router = irgan::http::router::router(svc.state.clone());
    let stop = Arc::new(AtomicBool::new(false));

    // Publishes on demand in a loop, alongside the trainer's own publishes.
    let publisher = {
        let router = router.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut outcomes: HashMap<u16, usize> = HashMap::new();
            while !stop.load(Ordering::Relaxed) {
                let req = Request::builder()
                    .method(Method::POST)
                    .uri("/v1/snapshots")
                    .body(Body::empty())
                    .expect("request");
                let resp = router.clone().oneshot(req).await.expect("infallible");
                let status = resp.status().as_u16();
                let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
                    .await
                    .expect("body");
                assert!(
                    matches!(status, 201 | 409 | 503),
                    "POST /v1/snapshots -> {status} {}",
                    String::from_utf8_lossy(&body)
                );
                *outcomes.entry(status).or_insert(0) += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            outcomes
        })
    };

    let readers: Vec<_> = (0..READERS)
        .map(|r| {
            let router = router.clone();
            tokio::spawn(async move {
                let mut last = 0u64;
                let mut versions = Vec::new();
                // (user, model, version) -> the ranking it gave
                let mut answers: Answers = HashMap::new();
                for n in 0..REQUESTS {
                    let user = format!("u{}", (r * 7 + n) % 5);
                    let model = ["generator", "discriminator", "blend"][n % 3];
                    let uri = format!("/v1/users/{user}/recommendations?k=10&model={model}");
                    let req = Request::builder()
                        .uri(&uri)
                        .body(Body::empty())
                        .expect("request");
                    let resp = router.clone().oneshot(req).await.expect("infallible");
                    let status = resp.status();
                    let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
                        .await
                        .expect("body");
                    assert_eq!(
                        status,
                        200,
                        "reader {r} request {n}: GET {uri} -> {}",
                        String::from_utf8_lossy(&body)
                    );
                    let v: Value = serde_json::from_slice(&body).expect("JSON");
                    let version = v["version"]
                        .as_u64()
                        .unwrap_or_else(|| panic!("no version: {v}"));
                    assert!(
                        version >= last,
                        "reader {r}: version went back from {last} to {version}"
                    );
                    if version != last {
                        versions.push(version);
                    }
                    last = version;
                    assert_eq!(v["cold_start"], false, "{v}");
                    let ids = item_ids(&v);
                    assert_eq!(ids.len(), 10, "{v}");
                    // Scores rendered as text so identical floats compare equal.
                    let ranking: Vec<(String, String)> = v["items"]
                        .as_array()
                        .expect("items")
                        .iter()
                        .map(|it| {
                            for key in ["score", "generator", "discriminator"] {
                                assert!(it[key].as_f64().is_some_and(f64::is_finite), "{key}: {v}");
                            }
                            (
                                it["item"].as_str().expect("id").to_owned(),
                                format!("{}/{}", it["generator"], it["discriminator"]),
                            )
                        })
                        .collect();
                    let key = (user.clone(), model, version);
                    match answers.get(&key) {
                        Some(prev) => assert_eq!(
                            prev, &ranking,
                            "reader {r}: two different answers from version {version} for {uri}"
                        ),
                        None => {
                            answers.insert(key, ranking);
                        }
                    }
                    // Paced so that the readers overlap several publishes.
                    tokio::time::sleep(Duration::from_millis(4)).await;
                }
                versions
            })
        })
        .collect();

    let mut seen_versions = Vec::new();
    for (r, h) in readers.into_iter().enumerate() {
        let versions = tokio::time::timeout(Duration::from_secs(40), h)
            .await
            .unwrap_or_else(|_| panic!("reader {r} took over 40 s"))
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
        seen_versions.push(versions);
    }
    stop.store(true, Ordering::Relaxed);
    let outcomes = publisher
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
    let end = svc.version().await;
    eprintln!(
        "concurrency: {} requests in {:?}; publish outcomes {outcomes:?}; live v{end}; versions per reader {:?}",
        READERS * REQUESTS,
        started.elapsed(),
        seen_versions.iter().map(Vec::len).collect::<Vec<_>>()
    );
    assert!(
        outcomes.get(&201).copied().unwrap_or(0) > 0,
        "no on-demand publish succeeded: {outcomes:?}"
    );
    assert!(
        seen_versions.iter().any(|v| v.len() > 1),
        "no reader saw a new version: {seen_versions:?}"
    );
    svc.stop().await;
}
