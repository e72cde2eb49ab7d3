//! Model, snapshot and training routes, probes and metrics.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::{FAST, IDLE, Svc};

fn steps(m: &Value) -> u64 {
    m["game"]["steps"]
        .as_u64()
        .unwrap_or_else(|| panic!("no game.steps: {m}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_and_snapshot_listing() {
    let svc = Svc::start(IDLE).await;
    let m = svc.model().await;
    let version = m["version"].as_u64().expect("version");
    assert!(version >= 1, "{m}");
    assert!(m["users"].as_u64().is_some_and(|n| n > 0 && n <= 60), "{m}");
    assert!(m["items"].as_u64().is_some_and(|n| n > 0 && n <= 40), "{m}");
    assert_eq!(m["dims"]["generator"], 8, "{m}");
    assert_eq!(m["dims"]["discriminator"], 8, "{m}");
    assert!(m["trained_through_seq"].is_u64(), "{m}");
    assert!(m["game"].is_object(), "{m}");
    assert_eq!(m["game"]["paused"], false, "{m}");
    let list = svc.get("/v1/snapshots").await.expect(200);
    assert_eq!(list["live"], version, "{list}");
    let snaps = list["snapshots"].as_array().expect("snapshots");
    let live: Vec<&Value> = snaps.iter().filter(|s| s["live"] == true).collect();
    assert_eq!(live.len(), 1, "exactly one live snapshot: {list}");
    assert_eq!(live[0]["version"], version, "{list}");
    // A publish is either accepted (201 with a new version) or refused (409 with a reason).
    let r = svc.post("/v1/snapshots", "").await;
    match r.status.as_u16() {
        201 => {
            let v = r.json();
            let new = v["version"].as_u64().expect("version");
            assert!(new > version, "{r:?}");
            assert!(v["validation"].is_object(), "{r:?}");
            assert_eq!(svc.version().await, new);
            let list = svc.get("/v1/snapshots").await.expect(200);
            assert_eq!(list["live"], new, "{list}");
            assert_eq!(list["snapshots"][0]["version"], new, "newest first: {list}");
            assert_eq!(list["snapshots"][0]["live"], true, "{list}");
        }
        409 => {
            r.error(409, "publish_refused");
        }
        _ => panic!("publish: {r:?}"),
    }
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_to_an_earlier_snapshot() {
    let svc = Svc::start(FAST).await;
    // Paused, nothing publishes behind the test's back.
    svc.post("/v1/training/pause", "").await.expect(200);
    svc.wait_model(Duration::from_secs(5), "the pause", |m| {
        m["game"]["paused"] == true
    })
    .await;
    let a = svc.post("/v1/snapshots", "").await.expect(201)["version"]
        .as_u64()
        .expect("a");
    let under_a = svc
        .get("/v1/users/u2/recommendations?k=5")
        .await
        .expect(200);
    assert_eq!(under_a["version"], a, "{under_a}");
    let b = svc.post("/v1/snapshots", "").await.expect(201)["version"]
        .as_u64()
        .expect("b");
    assert!(a < b, "{a} < {b}");
    assert_eq!(svc.version().await, b);
    let v = svc
        .post(&format!("/v1/snapshots/{a}/activate"), "")
        .await
        .expect(200);
    assert_eq!(v["version"], a, "{v}");
    assert_eq!(v["live"], true, "{v}");
    assert_eq!(svc.version().await, a);
    let r = svc
        .get("/v1/users/u2/recommendations?k=5")
        .await
        .expect(200);
    assert_eq!(r, under_a, "v{a} live again answers as v{a} did");
    let r = svc.get("/v1/items/i2/similar?k=3").await.expect(200);
    assert_eq!(r["version"], a, "{r}");
    let list = svc.get("/v1/snapshots").await.expect(200);
    assert_eq!(list["live"], a, "{list}");
    for s in list["snapshots"].as_array().expect("snapshots") {
        assert_eq!(s["live"], s["version"] == a, "{list}");
    }
    // And forward again.
    svc.post(&format!("/v1/snapshots/{b}/activate"), "")
        .await
        .expect(200);
    assert_eq!(svc.version().await, b);
    // A publish after a rollback gets a fresh version, never a reused one.
    let c = svc.post("/v1/snapshots", "").await.expect(201)["version"]
        .as_u64()
        .expect("c");
    assert!(c > b, "{c} > {b}");
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_past_a_new_user_keeps_the_trainer_alive() {
    let svc = Svc::start(FAST).await;
    let a = svc.post("/v1/snapshots", "").await.expect(201)["version"]
        .as_u64()
        .expect("a");
    // A user the earlier snapshot never saw, published in a later one.
    let events = r#"[{"id": "n1", "user": "newcomer", "item": "i3", "type": "like"},
                     {"id": "n2", "user": "newcomer", "item": "i8", "type": "like"}]"#;
    svc.post("/v1/feedback", events).await.expect(200);
    let b = svc.post("/v1/snapshots", "").await.expect(201)["version"]
        .as_u64()
        .expect("b");
    assert!(a < b, "{a} < {b}");
    svc.post(&format!("/v1/snapshots/{a}/activate"), "")
        .await
        .expect(200);
    assert_eq!(svc.version().await, a);
    let r = svc
        .get("/v1/users/newcomer/recommendations?k=3")
        .await
        .expect(200);
    // v{a} is grown to today's catalogue and served with today's ids: the newcomer (folded in
    // on their feedback) is no cold start, and the answer comes from v{a}.
    assert_eq!(r["cold_start"], false, "{r}");
    assert_eq!(r["version"], a, "{r}");
    // The trainer survived the rollback: its routes answer and it publishes again.
    svc.post("/v1/training/pause", "").await.expect(200);
    svc.post("/v1/training/resume", "").await.expect(200);
    let c = svc.post("/v1/snapshots", "").await.expect(201)["version"]
        .as_u64()
        .expect("c");
    assert!(c > b, "{c} > {b}");
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_and_resume_training() {
    let svc = Svc::start(FAST).await;
    let limit = Duration::from_secs(10);
    let s0 = steps(&svc.model().await);
    svc.wait_model(limit, "training steps", |m| steps(m) > s0)
        .await;
    let r = svc.post("/v1/training/pause", "").await.expect(200);
    assert_eq!(r["paused"], true, "{r}");
    let m = svc
        .wait_model(limit, "status paused", |m| m["game"]["paused"] == true)
        .await;
    let paused_at = steps(&m);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let m = svc.model().await;
    assert_eq!(steps(&m), paused_at, "steps went on while paused: {m}");
    assert_eq!(m["game"]["paused"], true, "{m}");
    // Queries and feedback still work while paused.
    svc.get("/v1/users/u1/recommendations").await.expect(200);
    svc.post(
        "/v1/feedback",
        r#"{"user": "u1", "item": "i3", "type": "view"}"#,
    )
    .await
    .expect(200);
    // Pausing twice is harmless.
    svc.post("/v1/training/pause", "").await.expect(200);
    let r = svc.post("/v1/training/resume", "").await.expect(200);
    assert_eq!(r["paused"], false, "{r}");
    let started = Instant::now();
    let m = svc
        .wait_model(limit, "steps after resume", |m| {
            m["game"]["paused"] == false && steps(m) > paused_at
        })
        .await;
    eprintln!(
        "resumed: {} -> {} steps in {:?}",
        paused_at,
        steps(&m),
        started.elapsed()
    );
    svc.stop().await;
}

/// On an empty data directory `/readyz` is 503 until a first snapshot exists, unless
/// `server.ready_without_model` (what deploy/k8s sets, so a fresh pod can take feedback).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_on_an_empty_data_directory() {
    for (ready_without_model, status) in [(false, 503), (true, 200)] {
        let dir = tempfile::tempdir().unwrap();
        let sets = [
            format!(
                "storage.data_dir={:?}",
                dir.path().join("data").display().to_string()
            ),
            format!("server.ready_without_model={ready_without_model}"),
            "trainer.enabled=false".to_owned(),
        ];
        let cfg = irgan::online::settings::ServiceConfig::load(
            Some(std::path::Path::new(super::DEFAULT_TOML)),
            Vec::<(String, String)>::new(),
            &sets,
        )
        .unwrap();
        let state = tokio::task::spawn_blocking(move || irgan::app::open(cfg).unwrap())
            .await
            .unwrap();
        let req = axum::http::Request::get("/readyz")
            .body(axum::body::Body::empty())
            .unwrap();
        let resp = tower::ServiceExt::oneshot(irgan::http::router::router(state.clone()), req)
            .await
            .unwrap();
        assert_eq!(
            resp.status().as_u16(),
            status,
            "ready_without_model={ready_without_model}"
        );
        let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["ready"], ready_without_model, "{v}");
        assert_eq!(v["version"], 0, "{v}");
        irgan::app::stop(&state).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_and_metrics() {
    let svc = Svc::start(IDLE).await;
    let h = svc.get("/healthz").await.expect(200);
    assert_eq!(h["status"], "ok", "{h}");
    let r = svc.get("/readyz").await.expect(200);
    assert_eq!(r["ready"], true, "{r}");
    let version = svc.version().await;
    assert_eq!(r["version"], version, "{r}");
    for u in ["u1", "u2", "u3"] {
        svc.get(&format!("/v1/users/{u}/recommendations?k=2"))
            .await
            .expect(200);
    }
    svc.get("/v1/users/u1/recommendations?k=0")
        .await
        .error(400, "invalid_parameter");
    svc.post(
        "/v1/feedback",
        r#"[{"user": "u1", "item": "i1", "type": "like"}, {"user": "u1"}]"#,
    )
    .await
    .expect(200);
    svc.get("/no/such/route").await.error(404, "not_found");
    let m = svc.get("/metrics").await;
    assert_eq!(m.status, 200, "{m:?}");
    let ct = m
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert!(ct.starts_with("text/plain"), "{m:?}");
    let text = &m.body;
    let has = |needle: &str| {
        text.lines()
            .any(|l| !l.starts_with('#') && l.contains(needle))
    };
    for needle in [
        "irgan_http_requests_total{",
        "irgan_feedback_accepted_total 1",
        "irgan_feedback_rejected_total 1",
        &format!("irgan_snapshot_version {version}"),
        "irgan_http_request_duration_seconds_bucket{",
    ] {
        assert!(has(needle), "/metrics lacks {needle:?}:\n{text}");
    }
    let rec = text
        .lines()
        .find(|l| {
            l.starts_with("irgan_http_requests_total{")
                && l.contains(r#"route="/v1/users/{user}/recommendations""#)
                && l.contains(r#"status="200""#)
        })
        .unwrap_or_else(|| panic!("no recommendations counter by route template:\n{text}"));
    assert!(rec.trim_end().ends_with(" 3"), "three 200s counted: {rec}");
    assert!(
        text.contains(r#"route="/v1/users/{user}/recommendations""#)
            && text.lines().any(|l| l.contains(r#"status="400""#)),
        "{text}"
    );
    assert!(
        !text.contains("/v1/users/u1") && !text.contains("/no/such/route"),
        "raw paths leak into labels (unbounded cardinality):\n{text}"
    );
    svc.stop().await;
}
