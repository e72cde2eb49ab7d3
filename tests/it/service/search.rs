//! The online search path: validation of rank and feedback requests, learning a ranking from
//! judged impressions end to end (feedback → trainer → gate → snapshot → rank), and restart.

use std::path::Path;
use std::time::{Duration, Instant};

use irgan::app;
use irgan::data::letor::Query;
use irgan::data::letor_synth::synthetic_ltr;
use irgan::eval::letor::query_metrics;
use irgan::online::settings::ServiceConfig;
use serde_json::{Value, json};

use super::{DEFAULT_TOML, IDLE, Svc};

/// Feature width of the tests' search task.
const F: usize = 4;

fn sets() -> Vec<&'static str> {
    let mut s = IDLE.to_vec();
    s.extend([
        "search.n_features=4",
        "search.min_queries=10",
        "search.scorer.hidden=8",
        "search.publish_every_seconds=0.2",
        "search.tolerance=1.0",
        "search.max_documents=50",
    ]);
    s
}

/// A judged impression of `q` (every document with its label) with id `id`.
pub fn impression(q: &Query, id: &str) -> Value {
    let docs: Vec<Value> = (0..q.len())
        .map(|d| {
            json!({
                "id": q.doc_ids[d],
                "features": q.features.row(d).to_vec(),
                "label": q.labels[d],
            })
        })
        .collect();
    json!({"id": id, "query": q.qid, "documents": docs})
}

/// A rank request for `q`'s documents.
pub fn candidates(q: &Query) -> Value {
    let docs: Vec<Value> = (0..q.len())
        .map(|d| json!({"id": q.doc_ids[d], "features": q.features.row(d).to_vec()}))
        .collect();
    json!({"query": q.qid, "documents": docs})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_search_requests_get_clear_errors_and_store_nothing() {
    let svc = Svc::start(&sets()).await;
    let doc = |features: &str| format!(r#"{{"id": "a", "features": {features}}}"#);
    let rank = |docs: String| format!(r#"{{"query": "q", "documents": [{docs}]}}"#);
    // No model yet: 503 with Retry-After, not a made-up ranking.
    let r = svc.post("/v1/search/rank", rank(doc("[1, 2, 3, 4]"))).await;
    r.error(503, "no_search_model");
    assert!(r.headers.get("retry-after").is_some());
    for (body, code) in [
        (rank(String::new()), "empty_documents"),
        (rank(doc("[1, 2, 3]")), "feature_length"),
        (rank(doc("[1, 2, 3, 1e39]")), "non_finite_feature"),
        (
            rank(format!("{}, {}", doc("[1,2,3,4]"), doc("[1,2,3,4]"))),
            "duplicate_document",
        ),
        (r#"{"query": "", "documents": []}"#.into(), "invalid_query"),
        (r#"{"query": "q"}"#.into(), "invalid_body"),
        (
            r#"{"query": "q", "documents": [], "extra": 1}"#.into(),
            "invalid_body",
        ),
        (
            r#"{"query": "q", "documents": [{"id": "a", "features": [null,1,2,3]}]}"#.into(),
            "invalid_body",
        ),
    ] {
        svc.post("/v1/search/rank", body).await.error(400, code);
    }
    let many: Vec<String> = (0..51)
        .map(|i| format!(r#"{{"id": "d{i}", "features": [0,0,0,0]}}"#))
        .collect();
    svc.post("/v1/search/rank", rank(many.join(",")))
        .await
        .error(400, "too_many_documents");

    let fb = |docs: &str| format!(r#"{{"query": "q", "documents": [{docs}]}}"#);
    for (body, code) in [
        (fb(""), "empty_documents"),
        (
            fb(r#"{"id": "a", "features": [1, 2], "clicked": true}"#),
            "feature_length",
        ),
        (
            fb(r#"{"id": "a", "features": [1, 2, 3, -1e39], "label": 1}"#),
            "non_finite_feature",
        ),
        (
            fb(r#"{"id": "a", "features": [1, 2, 3, 4], "label": 40}"#),
            "invalid_label",
        ),
        (r#"[]"#.into(), "empty_batch"),
        (r#""text""#.into(), "invalid_body"),
        (r#"{"documents": []}"#.into(), "invalid_impression"),
    ] {
        svc.post("/v1/search/feedback", body).await.error(400, code);
    }
    // A batch keeps its valid impressions and names the invalid ones by index.
    let mixed = format!(
        "[{}, {}]",
        fb(r#"{"id": "a", "features": [1, 2], "clicked": true}"#),
        fb(r#"{"id": "a", "features": [1, 2, 3, 4], "clicked": true}"#)
    );
    let out = svc.post("/v1/search/feedback", mixed).await.expect(200);
    assert_eq!(out["accepted"], 1, "{out}");
    assert_eq!(out["rejected"][0]["index"], 0);
    assert_eq!(out["rejected"][0]["code"], "feature_length");
    let search = svc.state.search.clone().expect("search on");
    assert_eq!(search.log().count().unwrap(), 1);
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn judged_impressions_train_a_ranker_that_serves() {
    let svc = Svc::start(&sets()).await;
    let train = synthetic_ltr(80, 12, F, 11);
    let batch: Vec<Value> = train
        .queries
        .iter()
        .map(|q| impression(q, &format!("imp-{}", q.qid)))
        .collect();
    let body = Value::Array(batch).to_string();
    let out = svc
        .post("/v1/search/feedback", body.clone())
        .await
        .expect(200);
    assert_eq!(
        (out["accepted"].as_u64(), out["duplicates"].as_u64()),
        (Some(80), Some(0))
    );
    let again = svc.post("/v1/search/feedback", body).await.expect(200);
    assert_eq!(
        (again["accepted"].as_u64(), again["duplicates"].as_u64()),
        (Some(0), Some(80))
    );

    // The trainer publishes on its own once it has enough judged queries.
    let start = Instant::now();
    let info = loop {
        let m = svc.get("/v1/search/model").await.expect(200);
        if m["live"]["version"].as_u64().is_some_and(|v| v >= 1)
            && m["trainer"]["steps"].as_u64() > Some(40)
        {
            break m;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no search model: {m}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(info["trainer"]["holdout_queries"], 16, "{info}");
    // A forced publish answers with a version (or a 409 saying why not).
    let p = svc.post("/v1/search/snapshots", "").await;
    assert!(p.status == 200 || p.status == 409, "{p:?}");

    // Fresh queries from the same relevance function are ranked well by every model.
    let test = synthetic_ltr(10, 12, F, 99);
    for model in ["discriminator", "generator", "blend"] {
        let mut ndcg = 0.0;
        for q in &test.queries {
            let mut req = candidates(q);
            req["model"] = json!(model);
            let r = svc
                .post("/v1/search/rank", req.to_string())
                .await
                .expect(200);
            assert_eq!(r["model"], model);
            let results = r["results"].as_array().unwrap();
            assert_eq!(results.len(), q.len());
            let order: Vec<usize> = results
                .iter()
                .map(|d| {
                    q.doc_ids
                        .iter()
                        .position(|x| x == d["id"].as_str().unwrap())
                        .unwrap()
                })
                .collect();
            for d in results {
                for k in [
                    "score",
                    "generator_score",
                    "discriminator_score",
                    "generator_probability",
                ] {
                    assert!(d[k].as_f64().is_some_and(f64::is_finite), "{k}: {d}");
                }
            }
            // Score the returned order: position p gets score -p.
            let mut scores = vec![0.0f32; q.len()];
            for (p, &d) in order.iter().enumerate() {
                scores[d] = -(p as f32);
            }
            ndcg += query_metrics(&scores, &q.labels, &[10]).unwrap()["NDCG@10"];
        }
        let ndcg = ndcg / test.queries.len() as f64;
        assert!(ndcg > 0.8, "{model}: NDCG@10 {ndcg}");
    }
    let mut req = candidates(&test.queries[0]);
    req["k"] = json!(3);
    let r = svc
        .post("/v1/search/rank", req.to_string())
        .await
        .expect(200);
    assert_eq!(r["results"].as_array().unwrap().len(), 3);
    assert_eq!(
        r["model"], "discriminator",
        "pairwise IRGAN ranks with D by default"
    );
    let metrics = svc.get("/metrics").await.body;
    for name in [
        "irgan_search_snapshot_version",
        "irgan_search_impressions_accepted_total 80",
        "irgan_search_trainer_steps_total",
    ] {
        assert!(metrics.contains(name), "{name} missing");
    }
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_search_model_and_log_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut all: Vec<String> = sets().iter().map(|s| (*s).to_owned()).collect();
    all.push(format!("storage.data_dir={:?}", data.display().to_string()));
    let cfg = ServiceConfig::load(
        Some(Path::new(DEFAULT_TOML)),
        Vec::<(String, String)>::new(),
        &all,
    )
    .unwrap();
    let open = |c: ServiceConfig| tokio::task::spawn_blocking(move || app::open(c).unwrap());
    let state = open(cfg.clone()).await.unwrap();
    let search = state.search.clone().unwrap();
    let imps: Vec<_> = synthetic_ltr(30, 10, F, 5)
        .queries
        .iter()
        .map(|q| serde_json::from_value(impression(q, &q.qid)).unwrap())
        .collect();
    assert_eq!(search.ingest(imps).unwrap().accepted, 30);
    let start = Instant::now();
    while search.current().is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no model: {:?}",
            search.info()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    app::stop(&state).await.unwrap();
    let version = search.current().unwrap().version;
    drop((state, search));

    let state = open(cfg).await.unwrap();
    let search = state.search.clone().unwrap();
    assert_eq!(search.current().map(|s| s.version), Some(version));
    assert_eq!(search.log().count().unwrap(), 30);
    app::stop(&state).await.unwrap();
}
