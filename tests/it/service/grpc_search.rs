//! The search task over gRPC (`irgan.v1.SearchService`) against a real `irgan serve --demo`,
//! called with a tonic client: the same requests through REST and gRPC give the same rankings
//! and scores, the same feedback verdicts over one impression log, the same model info, and
//! the same stable codes for bad input, a missing key, no model yet and a disabled task.

use std::time::{Duration, Instant};

use irgan::data::letor::Query;
use irgan::data::letor_synth::synthetic_ltr;
use irgan::grpc::pb;
use irgan::grpc::pb::search_service_client::SearchServiceClient;
use serde_json::{Value, json};
use tonic::Code;
use tonic::transport::Channel;

use super::client::{self, Server};
use super::grpc::{
    KEY, STILL, as_f64, assert_grpc_error, pb_to_json, rest_get, rest_post, runtime, with,
};

/// Feature width of the tests' search task (the demo's judged queries are generated at it).
const F: usize = 8;

/// Most documents per list in these tests.
const MAX_DOCUMENTS: usize = 100;

/// A small search task that publishes its first pair after a few steps and then only when
/// asked (so the live version is stable between a REST and a gRPC call), with a gate that
/// lets every finite candidate through.
fn sets(extra: &[&str]) -> Vec<String> {
    let mut s: Vec<String> = STILL.iter().map(|s| (*s).to_owned()).collect();
    s.extend(
        [
            format!("search.n_features={F}"),
            format!("search.max_documents={MAX_DOCUMENTS}"),
            "search.scorer.hidden=8".into(),
            "search.publish_every_seconds=100000".into(),
            "search.tolerance=1.0".into(),
        ]
        .into_iter()
        .chain(extra.iter().map(|s| (*s).to_owned())),
    );
    s
}

fn start(tmp: &tempfile::TempDir, name: &str, extra: &[&str]) -> Server {
    let sets = sets(extra);
    let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
    Server::start(&tmp.path().join(name), &sets)
}

async fn search_client(server: &Server) -> SearchServiceClient<Channel> {
    let channel = Channel::from_shared(format!("http://127.0.0.1:{}", server.grpc_port))
        .expect("uri")
        .connect()
        .await
        .unwrap_or_else(|e| panic!("connect to gRPC: {e}\n{}", server.log_text()));
    SearchServiceClient::new(channel)
}

/// Polls REST's `GET /v1/search/model` until a search pair is live (at most 120 s).
fn wait_for_model(server: &Server) -> Value {
    let started = Instant::now();
    loop {
        let m = rest_get(server, "/v1/search/model");
        if !m["live"].is_null() {
            return m;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no search model after 120 s: {m}\n{}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn features(q: &Query, d: usize) -> Vec<f64> {
    q.features.row(d).iter().map(|&v| f64::from(v)).collect()
}

/// The same ranking request as REST JSON and as a gRPC message.
fn rank_request(
    q: &Query,
    model: Option<(&str, pb::Model)>,
    k: Option<u32>,
) -> (String, pb::SearchRankRequest) {
    let docs: Vec<Value> = (0..q.len())
        .map(|d| json!({"id": q.doc_ids[d], "features": features(q, d)}))
        .collect();
    let mut rest = json!({"query": q.qid, "documents": docs});
    if let Some((name, _)) = model {
        rest["model"] = json!(name);
    }
    if let Some(k) = k {
        rest["k"] = json!(k);
    }
    let grpc = pb::SearchRankRequest {
        query: q.qid.clone(),
        documents: (0..q.len())
            .map(|d| pb::CandidateDocument {
                id: q.doc_ids[d].clone(),
                features: features(q, d),
            })
            .collect(),
        model: model.map_or(pb::Model::Unspecified, |(_, m)| m).into(),
        k,
    };
    (rest.to_string(), grpc)
}

/// A judged impression of `q` as REST JSON and as a gRPC message.
fn impression(q: &Query, id: &str) -> (Value, pb::Impression) {
    let rest = json!({"id": id, "query": q.qid, "documents": (0..q.len())
        .map(|d| json!({"id": q.doc_ids[d], "features": features(q, d), "label": q.labels[d]}))
        .collect::<Vec<_>>()});
    let grpc = pb::Impression {
        id: Some(id.to_owned()),
        query: q.qid.clone(),
        documents: (0..q.len())
            .map(|d| pb::ShownDocument {
                id: q.doc_ids[d].clone(),
                features: features(q, d),
                label: Some(u32::from(q.labels[d])),
                clicked: None,
            })
            .collect(),
    };
    (rest, grpc)
}

fn feedback(impressions: Vec<pb::Impression>) -> pb::SearchFeedbackRequest {
    pb::SearchFeedbackRequest { impressions }
}

/// gRPC's rejected impressions as REST's JSON list.
fn rejected_json(r: &[pb::RejectedImpression]) -> Value {
    json!(
        r.iter()
            .map(|x| json!({"index": x.index, "code": x.code, "message": x.message}))
            .collect::<Vec<_>>()
    )
}

/// Asserts a REST ranking and a gRPC one are the same list with the same scores.
#[track_caller]
fn assert_same_ranking(rest: &Value, grpc: &pb::SearchRankResponse, what: &str) {
    assert_eq!(rest["query"], grpc.query, "{what}");
    assert_eq!(rest["model"], grpc.model, "{what}");
    assert_eq!(rest["version"], grpc.version, "{what}");
    let results = rest["results"].as_array().expect("results");
    assert_eq!(results.len(), grpc.results.len(), "{what}: {rest}");
    for (r, g) in results.iter().zip(&grpc.results) {
        assert_eq!(r["id"], g.id, "{what}: order differs");
        for (key, value) in [
            ("score", g.score),
            ("generator_score", g.generator_score),
            ("discriminator_score", g.discriminator_score),
            ("generator_probability", g.generator_probability),
        ] {
            // JSON numbers round-trip f64 exactly: the scores are equal, not just close.
            assert_eq!(r[key].as_f64(), Some(value), "{what}: {key} of {}", g.id);
        }
    }
}

/// Asserts REST's `GET /v1/search/model` and gRPC's `GetModel` describe the same pair; the
/// trainer's running counters may only have grown between the two calls (REST first).
#[track_caller]
fn assert_same_info(rest: &Value, grpc: &pb::GetSearchModelResponse) {
    assert_eq!(rest["method"], grpc.method);
    assert_eq!(rest["n_features"], grpc.n_features);
    let live = grpc.live.as_ref().expect("live over gRPC");
    let l = &rest["live"];
    assert_eq!(l["version"], live.version);
    assert_eq!(l["created_unix_ms"], live.created_unix_ms);
    assert_eq!(l["ranker"], live.ranker);
    assert_eq!(l["n_features"], live.n_features);
    assert_eq!(
        l["temperature"].as_f64().map(|t| t as f32),
        Some(live.temperature)
    );
    for (key, value) in [
        ("generator", &live.generator),
        ("discriminator", &live.discriminator),
        ("metadata", &live.metadata),
    ] {
        assert_eq!(as_f64(&l[key]), pb_to_json(value.as_ref()), "live.{key}");
    }
    let t = grpc.trainer.as_ref().expect("trainer");
    let r = &rest["trainer"];
    assert_eq!(r["published"], t.published, "{r}");
    assert_eq!(r["refused"], t.refused, "{r}");
    assert_eq!(r["last_refusal"], json!(t.last_refusal), "{r}");
    assert_eq!(r["up"], t.up, "{r}");
    assert_eq!(r["restarts"], t.restarts, "{r}");
    assert_eq!(r["last_failure"], json!(t.last_failure), "{r}");
    assert_eq!(
        as_f64(&r["live_holdout"]),
        pb_to_json(t.live_holdout.as_ref())
    );
    for (key, value) in [
        ("steps", t.steps),
        ("impressions_seen", t.impressions_seen),
        ("train_queries", t.train_queries),
        ("holdout_queries", t.holdout_queries),
    ] {
        let rest = r[key]
            .as_u64()
            .unwrap_or_else(|| panic!("trainer.{key}: {r}"));
        assert!(
            rest <= value,
            "trainer.{key}: {rest} (REST) > {value} (gRPC, later)"
        );
    }
}

#[test]
fn rest_and_grpc_agree_on_search() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let key = format!("server.api_key={KEY}");
    let server = start(&tmp, "data", &[&key]);
    let rt = runtime();
    rt.block_on(agree(&server));
    rt.block_on(errors(&server));
}

/// Model info, rankings, feedback and publishing through both transports.
async fn agree(server: &Server) {
    let mut s = search_client(server).await;
    let info_r = wait_for_model(server);
    let info_g = s
        .get_model(pb::GetSearchModelRequest {})
        .await
        .expect("GetModel")
        .into_inner();
    assert_same_info(&info_r, &info_g);
    let ranker = info_r["live"]["ranker"].clone();

    // Rankings: every model, all or the first k, short lists and one long enough to be
    // scored off the async workers.
    let mut queries = synthetic_ltr(3, 12, F, 77).queries;
    queries.extend(synthetic_ltr(1, 90, F, 78).queries);
    for q in &queries {
        for model in [
            None,
            Some(("generator", pb::Model::Generator)),
            Some(("discriminator", pb::Model::Discriminator)),
            Some(("blend", pb::Model::Blend)),
        ] {
            for k in [None, Some(3)] {
                let (body, req) = rank_request(q, model, k);
                let (status, rest) = rest_post(server, "/v1/search/rank", &body, &[]);
                assert_eq!(status, 200, "{rest}");
                let grpc = s.rank(req).await.expect("Rank").into_inner();
                let what = format!("{} ({} docs) model {model:?} k {k:?}", q.qid, q.len());
                assert_same_ranking(&rest, &grpc, &what);
                assert_eq!(grpc.results.len(), k.map_or(q.len(), |k| k as usize));
                if model.is_none() {
                    assert_eq!(rest["model"], ranker, "unset model = the snapshot's ranker");
                }
            }
        }
    }

    // Feedback: one impression log, one idempotency key space.
    let judged = synthetic_ltr(6, 10, F, 79).queries;
    let (a_json, a_pb): (Vec<Value>, Vec<pb::Impression>) = judged[..3]
        .iter()
        .map(|q| impression(q, &format!("grpc-{}", q.qid)))
        .unzip();
    let (b_json, b_pb): (Vec<Value>, Vec<pb::Impression>) = judged[3..]
        .iter()
        .map(|q| impression(q, &format!("rest-{}", q.qid)))
        .unzip();
    let keyed = [("x-api-key", KEY)];
    let ack_g = s
        .feedback(with(feedback(a_pb.clone()), &keyed))
        .await
        .expect("Feedback")
        .into_inner();
    assert_eq!((ack_g.accepted, ack_g.duplicates), (3, 0), "{ack_g:?}");
    assert!(ack_g.rejected.is_empty(), "{ack_g:?}");
    let (status, ack_r) = rest_post(
        server,
        "/v1/search/feedback",
        &json!(b_json).to_string(),
        &keyed,
    );
    assert_eq!(status, 200, "{ack_r}");
    assert_eq!(
        (ack_r["accepted"].as_u64(), ack_r["duplicates"].as_u64()),
        (Some(3), Some(0))
    );
    assert_eq!(
        ack_r["last_seq"],
        ack_g.last_seq + 3,
        "one log: {ack_r} after {ack_g:?}"
    );
    let (_, replay_r) = rest_post(
        server,
        "/v1/search/feedback",
        &json!(a_json).to_string(),
        &keyed,
    );
    assert_eq!(
        (
            replay_r["accepted"].as_u64(),
            replay_r["duplicates"].as_u64()
        ),
        (Some(0), Some(3)),
        "{replay_r}"
    );
    assert_eq!(replay_r["last_seq"], ack_g.last_seq, "{replay_r}");
    let replay_g = s
        .feedback(with(feedback(b_pb), &keyed))
        .await
        .expect("Feedback")
        .into_inner();
    assert_eq!(
        (replay_g.accepted, replay_g.duplicates),
        (0, 3),
        "{replay_g:?}"
    );
    assert_eq!(Some(replay_g.last_seq), ack_r["last_seq"].as_u64());

    // A mixed batch: the valid impression is stored, the others get the same verdicts.
    let extra = synthetic_ltr(2, 5, F, 80).queries;
    let mixed = |prefix: &str| {
        let (ok_json, ok_pb) = impression(&extra[0], &format!("{prefix}-ok"));
        let (mut short_json, mut short_pb) = impression(&extra[1], &format!("{prefix}-short"));
        short_json["documents"][2]["features"] = json!([1.0, 2.0]);
        short_pb.documents[2].features = vec![1.0, 2.0];
        let (mut label_json, mut label_pb) = impression(&extra[1], &format!("{prefix}-label"));
        label_json["documents"][1]["label"] = json!(40);
        label_pb.documents[1].label = Some(40);
        (
            json!([ok_json, short_json, label_json]).to_string(),
            vec![ok_pb, short_pb, label_pb],
        )
    };
    let (_, mixed_pb) = mixed("grpc");
    let (mixed_json, _) = mixed("rest");
    let ack_g = s
        .feedback(with(feedback(mixed_pb), &keyed))
        .await
        .expect("Feedback")
        .into_inner();
    let (status, ack_r) = rest_post(server, "/v1/search/feedback", &mixed_json, &keyed);
    assert_eq!(status, 200, "{ack_r}");
    assert_eq!(ack_g.accepted, 1, "{ack_g:?}");
    assert_eq!(ack_r["accepted"], 1, "{ack_r}");
    assert_eq!(
        rejected_json(&ack_g.rejected),
        ack_r["rejected"],
        "rejections differ"
    );
    let codes: Vec<&str> = ack_g.rejected.iter().map(|r| r.code.as_str()).collect();
    assert_eq!(codes, ["feature_length", "invalid_label"], "{ack_g:?}");
    // Impressions accepted through either transport are counted alike.
    let metrics = client::get(server.port, "/metrics").expect("metrics").body;
    assert!(
        metrics.contains("irgan_search_impressions_accepted_total 8"),
        "{metrics}"
    );

    // Publish through gRPC (the feedback made a new candidate); REST sees the version, and a
    // REST publish is seen over gRPC.
    let before = info_r["live"]["version"].as_u64().expect("version");
    let published = s
        .publish_snapshot(with(pb::PublishSearchSnapshotRequest {}, &keyed))
        .await
        .expect("PublishSnapshot")
        .into_inner();
    assert!(published.version > before, "{published:?}");
    let info_r = rest_get(server, "/v1/search/model");
    assert_eq!(info_r["live"]["version"], published.version, "{info_r}");
    let info_g = s
        .get_model(pb::GetSearchModelRequest {})
        .await
        .expect("GetModel")
        .into_inner();
    assert_same_info(&info_r, &info_g);
    let (status, p) = rest_post(server, "/v1/search/snapshots", "", &keyed);
    assert_eq!(status, 200, "{p}");
    let now = s
        .get_model(pb::GetSearchModelRequest {})
        .await
        .expect("GetModel")
        .into_inner();
    assert_eq!(p["version"], now.live.expect("live").version);

    let metrics = client::get(server.port, "/metrics").expect("metrics").body;
    for line in [
        r#"irgan_grpc_requests_total{code="OK",method="irgan.v1.SearchService/Rank"} 32"#,
        r#"irgan_grpc_requests_total{code="OK",method="irgan.v1.SearchService/Feedback"} 3"#,
        r#"irgan_grpc_requests_total{code="OK",method="irgan.v1.SearchService/PublishSnapshot"} 1"#,
    ] {
        assert!(metrics.contains(line), "no {line} in\n{metrics}");
    }
}

/// Bad input and a missing key: the same stable codes on both transports, nothing stored.
async fn errors(server: &Server) {
    let mut s = search_client(server).await;
    let keyed = [("x-api-key", KEY)];
    let doc = |id: &str, features: Vec<f64>| pb::CandidateDocument {
        id: id.into(),
        features,
    };
    let ok = || vec![0.5; F];
    let rank = |query: &str, documents: Vec<pb::CandidateDocument>| pb::SearchRankRequest {
        query: query.into(),
        documents,
        ..Default::default()
    };
    let to_json = |r: &pb::SearchRankRequest| {
        let docs: Vec<Value> = r
            .documents
            .iter()
            .map(|d| json!({"id": d.id, "features": d.features}))
            .collect();
        let mut v = json!({"query": r.query, "documents": docs});
        if let Some(k) = r.k {
            v["k"] = json!(k);
        }
        v.to_string()
    };
    let many: Vec<pb::CandidateDocument> = (0..=MAX_DOCUMENTS)
        .map(|i| doc(&format!("d{i}"), ok()))
        .collect();
    let mut k0 = rank("q", vec![doc("a", ok())]);
    k0.k = Some(0);
    for (req, code) in [
        (rank("q", vec![]), "empty_documents"),
        (
            rank("q", vec![doc("a", vec![1.0, 2.0, 3.0])]),
            "feature_length",
        ),
        (
            rank("q", vec![doc("a", vec![1e39; F])]),
            "non_finite_feature",
        ),
        (
            rank("q", vec![doc("a", ok()), doc("a", ok())]),
            "duplicate_document",
        ),
        (rank("", vec![doc("a", ok())]), "invalid_query"),
        (rank("q", vec![doc("", ok())]), "invalid_document_id"),
        (rank("q", many), "too_many_documents"),
        (k0, "invalid_k"),
    ] {
        let (status, rest) = rest_post(server, "/v1/search/rank", &to_json(&req), &[]);
        assert_eq!((status, rest["code"].as_str()), (400, Some(code)), "{rest}");
        assert_grpc_error(s.rank(req).await, Code::InvalidArgument, code);
    }
    // What JSON cannot say, gRPC checks the same way: NaN is not a finite feature.
    let nan = rank("q", vec![doc("a", vec![f64::NAN; F])]);
    assert_grpc_error(
        s.rank(nan).await,
        Code::InvalidArgument,
        "non_finite_feature",
    );
    let mut bad_model = rank("q", vec![doc("a", ok())]);
    bad_model.model = 42;
    assert_grpc_error(
        s.rank(bad_model).await,
        Code::InvalidArgument,
        "invalid_parameter",
    );

    // Feedback with no valid impression: the first one's problem, nothing stored.
    let q = &synthetic_ltr(1, 4, F, 81).queries[0];
    let bad = |f: fn(&mut Value, &mut pb::Impression)| {
        let (mut j, mut p) = impression(q, "bad");
        f(&mut j, &mut p);
        (json!([j]).to_string(), vec![p])
    };
    for ((body, imps), code) in [
        ((String::from("[]"), vec![]), "empty_batch"),
        (
            bad(|j, p| {
                j["documents"][0]["label"] = json!(40);
                p.documents[0].label = Some(40);
            }),
            "invalid_label",
        ),
        (
            bad(|j, p| {
                j["documents"][1]["features"] = json!([1.0]);
                p.documents[1].features = vec![1.0];
            }),
            "feature_length",
        ),
        (
            bad(|j, p| {
                j["query"] = json!("");
                p.query = String::new();
            }),
            "invalid_query",
        ),
        (
            bad(|j, p| {
                j["id"] = json!("");
                p.id = Some(String::new());
            }),
            "invalid_id",
        ),
        (
            bad(|j, p| {
                j["documents"] = json!([]);
                p.documents.clear();
            }),
            "empty_documents",
        ),
    ] {
        let (status, rest) = rest_post(server, "/v1/search/feedback", &body, &keyed);
        assert_eq!((status, rest["code"].as_str()), (400, Some(code)), "{rest}");
        let r = s.feedback(with(feedback(imps), &keyed)).await;
        assert_grpc_error(r, Code::InvalidArgument, code);
    }

    // The key guards the writes (as on REST); the reads stay open.
    let (_, one) = impression(q, "keyless");
    for metadata in [
        vec![],
        vec![("authorization", "Bearer wrong")],
        vec![("x-api-key", "s3cre")],
    ] {
        let r = s
            .feedback(with(feedback(vec![one.clone()]), &metadata))
            .await;
        assert_grpc_error(r, Code::Unauthenticated, "unauthorized");
        let r = s
            .publish_snapshot(with(pb::PublishSearchSnapshotRequest {}, &metadata))
            .await;
        assert_grpc_error(r, Code::Unauthenticated, "unauthorized");
        for path in ["/v1/search/feedback", "/v1/search/snapshots"] {
            let (status, v) = rest_post(server, path, "[]", &metadata);
            assert_eq!(
                (status, v["code"].as_str()),
                (401, Some("unauthorized")),
                "{v}"
            );
        }
    }
    s.get_model(pb::GetSearchModelRequest {})
        .await
        .expect("GetModel is open");
    let bearer = format!("Bearer {KEY}");
    let ack = s
        .feedback(with(feedback(vec![one]), &[("authorization", &bearer)]))
        .await
        .expect("Feedback with Bearer")
        .into_inner();
    assert_eq!(ack.accepted, 1, "{ack:?}");
    // Only that one was stored since the agreement scenario's 8.
    let metrics = client::get(server.port, "/metrics").expect("metrics").body;
    assert!(
        metrics.contains("irgan_search_impressions_accepted_total 9"),
        "{metrics}"
    );
    for (code, method, n) in [
        ("INVALID_ARGUMENT", "Rank", 10),
        ("INVALID_ARGUMENT", "Feedback", 6),
        ("UNAUTHENTICATED", "Feedback", 3),
        ("UNAUTHENTICATED", "PublishSnapshot", 3),
    ] {
        let line = format!(
            "irgan_grpc_requests_total{{code=\"{code}\",method=\"irgan.v1.SearchService/{method}\"}} {n}"
        );
        assert!(metrics.contains(&line), "no {line} in\n{metrics}");
    }
}

#[test]
fn search_off_or_not_yet_trained_is_a_clear_status() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let rt = runtime();

    // search.enabled = false: NOT_FOUND "search_disabled" on every call, as REST's 404.
    let off = start(&tmp, "off", &["search.enabled=false"]);
    rt.block_on(async {
        let mut s = search_client(&off).await;
        let rank = pb::SearchRankRequest {
            query: "q".into(),
            documents: vec![pb::CandidateDocument {
                id: "a".into(),
                features: vec![0.5; F],
            }],
            ..Default::default()
        };
        let (status, v) = rest_post(
            &off,
            "/v1/search/rank",
            &json!({"query": "q",
            "documents": [{"id": "a", "features": vec![0.5; F]}]})
            .to_string(),
            &[],
        );
        assert_eq!(
            (status, v["code"].as_str()),
            (404, Some("search_disabled")),
            "{v}"
        );
        let r = s.rank(rank).await;
        assert_grpc_error(r, Code::NotFound, "search_disabled");
        let r = s.get_model(pb::GetSearchModelRequest {}).await;
        assert_grpc_error(r, Code::NotFound, "search_disabled");
        let r = s.feedback(feedback(vec![])).await;
        assert_grpc_error(r, Code::NotFound, "search_disabled");
        let r = s
            .publish_snapshot(pb::PublishSearchSnapshotRequest {})
            .await;
        assert_grpc_error(r, Code::NotFound, "search_disabled");
        for path in ["/v1/search/feedback", "/v1/search/snapshots"] {
            let (status, v) = rest_post(&off, path, "[]", &[]);
            assert_eq!(
                (status, v["code"].as_str()),
                (404, Some("search_disabled")),
                "{v}"
            );
        }
        let r = client::get(off.port, "/v1/search/model").expect("GET");
        assert_eq!(
            (r.status, r.json()["code"].clone()),
            (404, json!("search_disabled"))
        );
    });
    drop(off);

    // On, but too few judged queries to train: UNAVAILABLE "no_search_model" (REST 503), an
    // empty GetModel, and a refused publish.
    let cold = start(&tmp, "cold", &["search.min_queries=100000"]);
    rt.block_on(async {
        let mut s = search_client(&cold).await;
        let q = &synthetic_ltr(1, 5, F, 82).queries[0];
        let (body, req) = rank_request(q, None, None);
        let (status, v) = rest_post(&cold, "/v1/search/rank", &body, &[]);
        assert_eq!(
            (status, v["code"].as_str()),
            (503, Some("no_search_model")),
            "{v}"
        );
        assert_grpc_error(s.rank(req).await, Code::Unavailable, "no_search_model");
        let info = s
            .get_model(pb::GetSearchModelRequest {})
            .await
            .expect("GetModel")
            .into_inner();
        assert!(info.live.is_none(), "{info:?}");
        assert!(rest_get(&cold, "/v1/search/model")["live"].is_null());
        let (status, v) = rest_post(&cold, "/v1/search/snapshots", "", &[]);
        assert_eq!(
            (status, v["code"].as_str()),
            (409, Some("publish_refused")),
            "{v}"
        );
        let r = s
            .publish_snapshot(pb::PublishSearchSnapshotRequest {})
            .await;
        let st = assert_grpc_error(r, Code::FailedPrecondition, "publish_refused");
        assert_eq!(st.message(), v["message"].as_str().expect("message"));
    });
}
