//! The gRPC API against a real `irgan serve` process, called with a tonic client generated
//! from the same proto: the same scenario through REST and gRPC gives the same answers, and
//! errors carry the same stable codes.

use irgan::grpc::pb;
use irgan::grpc::pb::admin_service_client::AdminServiceClient;
use irgan::grpc::pb::ranking_service_client::RankingServiceClient;
use serde_json::{Value, json};
use tonic::transport::Channel;
use tonic_types::StatusExt;

use super::client::{self, Server};
use crate::common::{promtool, promtool_available};

/// A query-only process: no background training (the live snapshot changes only when a test
/// publishes), and a gate that lets every finite candidate through.
pub(super) const STILL: &[&str] = &[
    "trainer.enabled=false",
    "trainer.min_entropy=0.0",
    "trainer.min_d_accuracy=0.0",
    "trainer.tolerance=1.0",
    "trainer.publish_only_gains=false",
];

/// The API key of the error tests.
pub(super) const KEY: &str = "s3cret";

/// Items of the demo catalogue (`iN` is in cluster `N mod 5`).
const DEMO_CLUSTERS: usize = 5;

/// Cluster of demo item `iN`.
fn demo_cluster(item: &str) -> usize {
    item[1..].parse::<usize>().expect("demo item id") % DEMO_CLUSTERS
}

pub(super) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Both gRPC clients over one connection to the server.
async fn clients(server: &Server) -> (RankingServiceClient<Channel>, AdminServiceClient<Channel>) {
    let channel = Channel::from_shared(format!("http://127.0.0.1:{}", server.grpc_port))
        .expect("uri")
        .connect()
        .await
        .unwrap_or_else(|e| panic!("connect to gRPC: {e}\n{}", server.log_text()));
    (
        RankingServiceClient::new(channel.clone()),
        AdminServiceClient::new(channel),
    )
}

/// The services the server's reflection lists (what `grpcurl list` shows), and the names of
/// the methods of `irgan.v1.RankingService` in the descriptor reflection serves for it.
async fn reflected(server: &Server) -> (Vec<String>, Vec<String>) {
    use prost::Message;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::{ServerReflectionRequest, ServerReflectionResponse};

    let channel = Channel::from_shared(format!("http://127.0.0.1:{}", server.grpc_port))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    let mut client = ServerReflectionClient::new(channel);
    let ask = |m: MessageRequest| ServerReflectionRequest {
        host: String::new(),
        message_request: Some(m),
    };
    let requests = [
        ask(MessageRequest::ListServices(String::new())),
        ask(MessageRequest::FileContainingSymbol(
            "irgan.v1.RankingService".into(),
        )),
    ];
    let mut answers = client
        .server_reflection_info(tokio_stream::iter(requests))
        .await
        .expect("ServerReflectionInfo")
        .into_inner();
    let mut next = async || -> MessageResponse {
        let r: ServerReflectionResponse = answers
            .message()
            .await
            .expect("reflection answer")
            .expect("an answer");
        r.message_response.expect("a response")
    };
    let MessageResponse::ListServicesResponse(list) = next().await else {
        panic!("not a service list");
    };
    let services = list.service.into_iter().map(|s| s.name).collect();
    let MessageResponse::FileDescriptorResponse(files) = next().await else {
        panic!("not a file descriptor");
    };
    let mut methods = Vec::new();
    for bytes in files.file_descriptor_proto {
        let file = prost_types::FileDescriptorProto::decode(bytes.as_slice()).expect("decode");
        for svc in file.service.iter().filter(|s| s.name() == "RankingService") {
            methods.extend(svc.method.iter().map(|m| m.name().to_owned()));
        }
    }
    (services, methods)
}

/// `GET path` over REST, asserting 200.
#[track_caller]
pub(super) fn rest_get(server: &Server, path: &str) -> Value {
    let r = client::get(server.port, path).expect("GET");
    assert_eq!(r.status, 200, "GET {path}: {r:?}");
    r.json()
}

/// `POST path` over REST with `headers`; status and JSON body.
#[track_caller]
pub(super) fn rest_post(
    server: &Server,
    path: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> (u16, Value) {
    let r = client::request_with(server.port, "POST", path, Some(body), headers).expect("POST");
    let v = r.json();
    (r.status, v)
}

/// A gRPC request with `metadata`.
pub(super) fn with<T>(message: T, metadata: &[(&'static str, &str)]) -> tonic::Request<T> {
    let mut r = tonic::Request::new(message);
    for (k, v) in metadata {
        r.metadata_mut()
            .insert(*k, v.parse().expect("metadata value"));
    }
    r
}

/// The REST JSON of a gRPC ranked item, for comparison with REST's.
fn item_json(i: &pb::RankedItem) -> Value {
    let mut v = json!({
        "item": i.item,
        "score": i.score,
        "generator": i.generator,
        "discriminator": i.discriminator,
    });
    if let Some(p) = i.propensity {
        v["propensity"] = json!(p);
    }
    v
}

/// Asserts two lists of ranked items agree: the same items in the same order, each score
/// within 1e-9 (REST's JSON numbers round-trip f64 exactly, so they are in fact equal).
#[track_caller]
fn assert_same_items(rest: &Value, grpc: &[pb::RankedItem], what: &str) {
    let rest = rest
        .as_array()
        .unwrap_or_else(|| panic!("{what}: no items: {rest}"));
    let ids = |v: &[Value]| -> Vec<String> {
        v.iter()
            .map(|i| i["item"].as_str().expect("id").to_owned())
            .collect()
    };
    let grpc_json: Vec<Value> = grpc.iter().map(item_json).collect();
    assert_eq!(ids(rest), ids(&grpc_json), "{what}: items differ");
    for (r, g) in rest.iter().zip(&grpc_json) {
        for key in ["score", "generator", "discriminator", "propensity"] {
            match (r.get(key), g.get(key)) {
                (None, None) => {}
                (Some(a), Some(b)) => {
                    let (a, b) = (a.as_f64().expect("number"), b.as_f64().expect("number"));
                    assert!(
                        (a - b).abs() <= 1e-9,
                        "{what}: {key} {a} (REST) vs {b} (gRPC)"
                    );
                }
                _ => panic!("{what}: {key} only on one side: {r} vs {g}"),
            }
        }
    }
}

/// The stable code a failed gRPC call carries, from the `irgan-error-code` metadata; also
/// checks that the `google.rpc.ErrorInfo` detail agrees.
#[track_caller]
pub(super) fn grpc_code(s: &tonic::Status) -> String {
    let code = s
        .metadata()
        .get("irgan-error-code")
        .unwrap_or_else(|| panic!("no irgan-error-code in {s:?}"))
        .to_str()
        .expect("ASCII")
        .to_owned();
    let info = s
        .get_details_error_info()
        .unwrap_or_else(|| panic!("no ErrorInfo in {s:?}"));
    assert_eq!(info.reason, code, "{s:?}");
    assert_eq!(info.domain, "irgan", "{s:?}");
    assert!(!s.message().is_empty(), "{s:?}");
    code
}

/// Asserts a gRPC error: this status code and stable code.
#[track_caller]
pub(super) fn assert_grpc_error<T: std::fmt::Debug>(
    r: Result<tonic::Response<T>, tonic::Status>,
    status: tonic::Code,
    code: &str,
) -> tonic::Status {
    let s = r.expect_err("expected an error");
    assert_eq!(s.code(), status, "{s:?}");
    assert_eq!(grpc_code(&s), code, "{s:?}");
    s
}

/// The same events as REST JSON and as gRPC messages.
fn events(list: &[(&str, &str, &str, &str)]) -> (String, Vec<pb::FeedbackEvent>) {
    let rest: Vec<Value> = list
        .iter()
        .map(|(id, user, item, kind)| json!({"id": id, "user": user, "item": item, "type": kind}))
        .collect();
    let grpc = list
        .iter()
        .map(|(id, user, item, kind)| pb::FeedbackEvent {
            id: Some((*id).to_owned()),
            user: (*user).to_owned(),
            item: (*item).to_owned(),
            r#type: (*kind).to_owned(),
            ..Default::default()
        })
        .collect();
    (json!(rest).to_string(), grpc)
}

/// Ann (fed through gRPC) and Bob (fed through REST) like the same items of cluster 3.
fn likes(user: &str, prefix: &str) -> Vec<(String, String, String, String)> {
    [
        ("i3", "like"),
        ("i8", "like"),
        ("i13", "like"),
        ("i18", "purchase"),
        ("i23", "like"),
    ]
    .iter()
    .enumerate()
    .map(|(n, (item, kind))| {
        (
            format!("{prefix}-{n}"),
            user.to_owned(),
            (*item).to_owned(),
            (*kind).to_owned(),
        )
    })
    .collect()
}

fn borrow(v: &[(String, String, String, String)]) -> Vec<(&str, &str, &str, &str)> {
    v.iter()
        .map(|(a, b, c, d)| (a.as_str(), b.as_str(), c.as_str(), d.as_str()))
        .collect()
}

/// Compares recommendations over both transports for `user` and a REST query `q` that
/// matches `req`.
async fn compare_recommendations(
    server: &Server,
    g: &mut RankingServiceClient<Channel>,
    user: &str,
    q: &str,
    req: pb::RecommendRequest,
) -> (Value, pb::RecommendResponse) {
    let rest = rest_get(server, &format!("/v1/users/{user}/recommendations?{q}"));
    let grpc = g
        .recommend(req)
        .await
        .unwrap_or_else(|e| panic!("Recommend {user} {q}: {e:?}"))
        .into_inner();
    let what = format!("recommendations for {user} ?{q}");
    assert_eq!(rest["user"], grpc.user, "{what}");
    assert_eq!(rest["model"], grpc.model, "{what}");
    assert_eq!(rest["version"], grpc.version, "{what}");
    assert_eq!(rest["cold_start"], grpc.cold_start, "{what}");
    assert_same_items(&rest["items"], &grpc.items, &what);
    (rest, grpc)
}

#[test]
fn rest_and_grpc_agree_on_feedback_in_and_rankings_out() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut server = Server::start(&tmp.path().join("data"), STILL);
    let rt = runtime();
    // The clients (and their connection) stay open across the shutdown below.
    let open = rt.block_on(scenario(&server));

    // SIGTERM stops both servers, writes the final snapshot and exits 0.
    let status = server.signal_and_wait("TERM");
    let log = server.log_text();
    assert_eq!(
        status.code(),
        Some(0),
        "exit after SIGTERM: {status}\n{log}"
    );
    assert!(log.contains("stopped; live snapshot saved"), "{log}");
    drop(open);
}

/// Feedback in through both transports, then every ranking out through both; returns the
/// clients, still connected.
async fn scenario(server: &Server) -> (RankingServiceClient<Channel>, AdminServiceClient<Channel>) {
    let (mut g, mut admin) = clients(server).await;
    // Reflection is on, so grpcurl needs no proto file (v1 lists itself; v1alpha, for older
    // clients, is served too).
    let (mut services, methods) = reflected(server).await;
    services.sort();
    assert_eq!(
        services,
        [
            "grpc.reflection.v1.ServerReflection",
            "irgan.v1.AdminService",
            "irgan.v1.RankingService",
            "irgan.v1.SearchService",
        ]
    );
    assert_eq!(
        methods,
        ["Recommend", "Rank", "Similar", "Feedback", "GetModel"]
    );
    let before = rest_get(server, "/v1/model")["version"]
        .as_u64()
        .expect("version");
    assert!(before >= 1);

    // Feedback in: Ann's likes through gRPC, Bob's identical likes through REST.
    let ann = likes("ann", "grpc-ann");
    let bob = likes("bob", "rest-bob");
    let (ann_json, ann_pb) = events(&borrow(&ann));
    let (bob_json, bob_pb) = events(&borrow(&bob));
    let ack_g = g
        .feedback(pb::FeedbackRequest {
            events: ann_pb.clone(),
        })
        .await
        .expect("Feedback")
        .into_inner();
    let (status, ack_r) = rest_post(server, "/v1/feedback", &bob_json, &[]);
    assert_eq!(status, 200, "{ack_r}");
    assert_eq!((ack_g.accepted, ack_g.duplicates), (5, 0), "{ack_g:?}");
    assert!(ack_g.rejected.is_empty(), "{ack_g:?}");
    assert_eq!(ack_r["accepted"], 5, "{ack_r}");
    assert_eq!(ack_r["duplicates"], 0, "{ack_r}");
    assert_eq!(
        ack_r["last_seq"],
        ack_g.last_seq + 5,
        "one log: {ack_r} after {ack_g:?}"
    );
    // One log, one idempotency key space: each batch replayed through the other
    // transport is all duplicates, acknowledged with the original position.
    let (_, replay_r) = rest_post(server, "/v1/feedback", &ann_json, &[]);
    assert_eq!(replay_r["duplicates"], 5, "{replay_r}");
    assert_eq!(replay_r["accepted"], 0, "{replay_r}");
    assert_eq!(replay_r["last_seq"], ack_g.last_seq, "{replay_r}");
    let replay_g = g
        .feedback(pb::FeedbackRequest { events: bob_pb })
        .await
        .expect("Feedback")
        .into_inner();
    assert_eq!(
        (replay_g.accepted, replay_g.duplicates),
        (0, 5),
        "{replay_g:?}"
    );
    assert_eq!(Some(replay_g.last_seq), ack_r["last_seq"].as_u64());

    // Publish through gRPC; REST sees the version.
    let published = admin
        .publish_snapshot(pb::PublishSnapshotRequest {})
        .await
        .expect("PublishSnapshot")
        .into_inner();
    assert!(published.version > before, "{published:?}");
    let model_r = rest_get(server, "/v1/model");
    assert_eq!(model_r["version"], published.version, "{model_r}");
    assert!(model_r["trained_through_seq"].as_u64() >= ack_r["last_seq"].as_u64());

    // Model info agrees.
    let model_g = g
        .get_model(pb::GetModelRequest {})
        .await
        .expect("GetModel")
        .into_inner();
    assert_eq!(model_r["version"], model_g.version);
    assert_eq!(model_r["created_unix_ms"], model_g.created_unix_ms);
    assert_eq!(model_r["published_unix_ms"], model_g.published_unix_ms);
    assert_eq!(model_r["users"], model_g.users);
    assert_eq!(model_r["items"], model_g.items);
    let dims = model_g.dims.expect("dims");
    assert_eq!(
        model_r["dims"],
        json!({"generator": dims.generator, "discriminator": dims.discriminator})
    );
    assert_eq!(
        model_r["trained_through_seq"].as_u64(),
        model_g.trained_through_seq
    );
    for key in ["validation", "training"] {
        let grpc = match key {
            "validation" => model_g.validation.as_ref(),
            _ => model_g.training.as_ref(),
        };
        assert_eq!(as_f64(&model_r[key]), pb_to_json(grpc), "{key}");
    }
    let game = model_g.game.expect("game");
    assert_eq!(model_r["game"]["applied_seq"], game.applied_seq);
    assert_eq!(model_r["game"]["paused"], game.paused);
    assert_eq!(model_r["game"]["positives"], game.positives);

    // Rankings out: the same lists, scores and version for every kind of query.
    for user in ["ann", "bob", "u3", "someone-new"] {
        for (q, k, model) in [
            ("", None, pb::Model::Unspecified),
            ("k=7&model=generator", Some(7), pb::Model::Generator),
            ("k=7&model=discriminator", Some(7), pb::Model::Discriminator),
            ("k=7&model=blend", Some(7), pb::Model::Blend),
        ] {
            let req = pb::RecommendRequest {
                user: user.into(),
                k,
                model: model.into(),
                ..Default::default()
            };
            compare_recommendations(server, &mut g, user, q, req).await;
        }
        compare_recommendations(
            server,
            &mut g,
            user,
            "k=6&explore=0.5&seed=7",
            pb::RecommendRequest {
                user: user.into(),
                k: Some(6),
                explore: 0.5,
                seed: Some(7),
                ..Default::default()
            },
        )
        .await;
        compare_recommendations(
            server,
            &mut g,
            user,
            "k=200&exclude_seen=false&model=blend",
            pb::RecommendRequest {
                user: user.into(),
                k: Some(200),
                exclude_seen: Some(false),
                model: pb::Model::Blend.into(),
                ..Default::default()
            },
        )
        .await;
    }
    // The feedback shaped both new users' lists alike: mostly cluster 3, none seen.
    for user in ["ann", "bob"] {
        let (rest, _) = compare_recommendations(
            server,
            &mut g,
            user,
            "k=5",
            pb::RecommendRequest {
                user: user.into(),
                k: Some(5),
                ..Default::default()
            },
        )
        .await;
        assert_eq!(rest["cold_start"], false, "{rest}");
        let items: Vec<&str> = rest["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|i| i["item"].as_str().expect("id"))
            .collect();
        let inside = items.iter().filter(|i| demo_cluster(i) == 3).count();
        assert!(
            inside * 2 > items.len(),
            "{user}: {inside}/5 in cluster 3: {rest}"
        );
        assert!(
            items
                .iter()
                .all(|i| !["i3", "i8", "i13", "i18", "i23"].contains(i)),
            "{user}: seen items are excluded: {rest}"
        );
        eprintln!("grpc scenario: {user} (new) gets {items:?}, {inside}/5 in cluster 3");
    }

    // Rank and similar.
    let candidates = ["i3", "i4", "i33", "nope", "i8", "i120", "i3"];
    for (name, model) in [
        ("generator", pb::Model::Generator),
        ("discriminator", pb::Model::Discriminator),
        ("blend", pb::Model::Blend),
    ] {
        for user in [Some("ann"), Some("u7"), None] {
            let mut body = json!({"items": candidates, "model": name});
            if let Some(u) = user {
                body["user"] = json!(u);
            }
            let (status, rest) = rest_post(server, "/v1/rank", &body.to_string(), &[]);
            assert_eq!(status, 200, "{rest}");
            let grpc = g
                .rank(pb::RankRequest {
                    user: user.map(str::to_owned),
                    items: candidates.iter().map(|s| (*s).to_owned()).collect(),
                    model: model.into(),
                })
                .await
                .expect("Rank")
                .into_inner();
            let what = format!("rank {body}");
            assert_eq!(rest["model"], grpc.model, "{what}");
            assert_eq!(rest["version"], grpc.version, "{what}");
            assert_eq!(rest["cold_start"], grpc.cold_start, "{what}");
            assert_eq!(rest["user"], json!(grpc.user), "{what}");
            assert_eq!(rest["unknown_items"], json!(grpc.unknown_items), "{what}");
            assert_same_items(&rest["items"], &grpc.items, &what);
        }
        let rest = rest_get(server, &format!("/v1/items/i3/similar?k=8&model={name}"));
        let grpc = g
            .similar(pb::SimilarRequest {
                item: "i3".into(),
                k: Some(8),
                model: model.into(),
            })
            .await
            .expect("Similar")
            .into_inner();
        assert_eq!(rest["item"], grpc.item);
        assert_eq!(rest["model"], grpc.model);
        assert_eq!(rest["version"], grpc.version);
        assert_same_items(&rest["items"], &grpc.items, &format!("similar {name}"));
    }

    // Snapshots: the same listing; a REST publish is seen over gRPC.
    let list_r = rest_get(server, "/v1/snapshots");
    let list_g = admin
        .list_snapshots(pb::ListSnapshotsRequest {})
        .await
        .expect("ListSnapshots")
        .into_inner();
    assert_eq!(list_r["live"], list_g.live);
    let versions_r: Vec<u64> = list_r["snapshots"]
        .as_array()
        .expect("snapshots")
        .iter()
        .map(|s| s["version"].as_u64().expect("version"))
        .collect();
    let versions_g: Vec<u64> = list_g.snapshots.iter().map(|s| s.version).collect();
    assert_eq!(versions_r, versions_g);
    let (status, p) = rest_post(server, "/v1/snapshots", "", &[]);
    assert_eq!(status, 201, "{p}");
    let now = g
        .get_model(pb::GetModelRequest {})
        .await
        .expect("GetModel")
        .into_inner();
    assert_eq!(p["version"], now.version);

    // Metrics count the gRPC calls by method and status code.
    let metrics = client::get(server.port, "/metrics").expect("metrics").body;
    for line in [
        r#"irgan_grpc_requests_total{code="OK",method="irgan.v1.RankingService/Recommend"}"#,
        r#"irgan_grpc_requests_total{code="OK",method="irgan.v1.AdminService/PublishSnapshot"} 1"#,
        r#"irgan_grpc_request_duration_seconds_count{method="irgan.v1.RankingService/Rank"} 9"#,
    ] {
        assert!(metrics.contains(line), "no {line} in\n{metrics}");
    }
    // The gRPC series pass Prometheus's own lint (the deploy tests scrape before any call).
    if promtool_available() {
        let (code, out) = promtool(&["check", "metrics"], Some(&metrics));
        assert_eq!(code, Some(0), "promtool check metrics:\n{out}");
    }
    (g, admin)
}

/// `text` without ANSI colour sequences (the server's log is coloured).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // ESC [ ... letter
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// `v` with every number as an f64 (how `google.protobuf.Value` carries numbers).
pub(super) fn as_f64(v: &Value) -> Value {
    match v {
        Value::Number(n) => json!(n.as_f64().expect("finite")),
        Value::Array(a) => Value::Array(a.iter().map(as_f64).collect()),
        Value::Object(o) => Value::Object(o.iter().map(|(k, v)| (k.clone(), as_f64(v))).collect()),
        other => other.clone(),
    }
}

/// A `google.protobuf.Value` as JSON (unset = null; numbers as f64), to compare with REST.
pub(super) fn pb_to_json(v: Option<&prost_types::Value>) -> Value {
    use prost_types::value::Kind;
    let Some(kind) = v.and_then(|v| v.kind.as_ref()) else {
        return Value::Null;
    };
    match kind {
        Kind::NullValue(_) => Value::Null,
        Kind::BoolValue(b) => json!(b),
        Kind::NumberValue(x) => json!(x),
        Kind::StringValue(s) => json!(s),
        Kind::ListValue(l) => Value::Array(l.values.iter().map(|v| pb_to_json(Some(v))).collect()),
        Kind::StructValue(s) => Value::Object(
            s.fields
                .iter()
                .map(|(k, v)| (k.clone(), pb_to_json(Some(v))))
                .collect(),
        ),
    }
}

#[test]
fn grpc_errors_carry_the_rest_codes() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let key = format!("server.api_key={KEY}");
    let sets = [
        STILL,
        &[
            &key,
            "feedback.max_events_per_request=4",
            "server.body_limit_bytes=2048",
        ],
    ]
    .concat();
    let server = Server::start(&tmp.path().join("data"), &sets);
    let rt = runtime();
    rt.block_on(errors(&server));
}

/// The error cases of [`grpc_errors_carry_the_rest_codes`].
async fn errors(server: &Server) {
    let (mut g, mut admin) = clients(server).await;
    let bearer = format!("Bearer {KEY}");

    // Missing or wrong API key on a write or admin call: UNAUTHENTICATED, as REST's 401.
    let (_, one) = events(&[("k-0", "u1", "i1", "like")]);
    let feedback = |events: Vec<pb::FeedbackEvent>| pb::FeedbackRequest { events };
    for metadata in [
        vec![],
        vec![("authorization", "Bearer wrong")],
        vec![("authorization", KEY)],
        vec![("x-api-key", "s3cre")],
    ] {
        let r = g.feedback(with(feedback(one.clone()), &metadata)).await;
        assert_grpc_error(r, tonic::Code::Unauthenticated, "unauthorized");
        let r = admin
            .publish_snapshot(with(pb::PublishSnapshotRequest {}, &metadata))
            .await;
        assert_grpc_error(r, tonic::Code::Unauthenticated, "unauthorized");
        let r = admin
            .pause_training(with(pb::PauseTrainingRequest {}, &metadata))
            .await;
        assert_grpc_error(r, tonic::Code::Unauthenticated, "unauthorized");
        let headers: Vec<(&str, &str)> = metadata.clone();
        let (status, v) = rest_post(
            server,
            "/v1/feedback",
            r#"{"user": "u1", "item": "i1", "type": "like"}"#,
            &headers,
        );
        assert_eq!(
            (status, v["code"].as_str()),
            (401, Some("unauthorized")),
            "{v}"
        );
    }
    // With the key (either header): accepted. Reads stay open.
    let ack = g
        .feedback(with(feedback(one.clone()), &[("authorization", &bearer)]))
        .await
        .expect("Feedback with Bearer")
        .into_inner();
    assert_eq!(ack.accepted, 1, "{ack:?}");
    let ack = g
        .feedback(with(feedback(one), &[("x-api-key", KEY)]))
        .await
        .expect("Feedback with x-api-key")
        .into_inner();
    assert_eq!(ack.duplicates, 1, "{ack:?}");
    admin
        .list_snapshots(pb::ListSnapshotsRequest {})
        .await
        .expect("ListSnapshots is open");
    g.get_model(pb::GetModelRequest {})
        .await
        .expect("GetModel is open");

    // Bad parameters: INVALID_ARGUMENT with REST's code.
    let rec = |f: fn(&mut pb::RecommendRequest)| {
        let mut r = pb::RecommendRequest {
            user: "u1".into(),
            ..Default::default()
        };
        f(&mut r);
        r
    };
    for (req, rest_query) in [
        (rec(|r| r.model = 42), "model=foo"),
        (rec(|r| r.k = Some(0)), "k=0"),
        (rec(|r| r.k = Some(1001)), "k=1001"),
        (rec(|r| r.explore = -1.0), "explore=-1"),
        (rec(|r| r.explore = f64::NAN), "explore=NaN"),
        (rec(|r| r.explore = f64::INFINITY), "explore=inf"),
    ] {
        let r = g.recommend(req.clone()).await;
        let s = assert_grpc_error(r, tonic::Code::InvalidArgument, "invalid_parameter");
        let rest = client::get(
            server.port,
            &format!("/v1/users/u1/recommendations?{rest_query}"),
        )
        .expect("GET");
        assert_eq!(rest.status, 400, "{rest:?}");
        assert_eq!(
            rest.json()["code"],
            "invalid_parameter",
            "{rest:?} vs {s:?}"
        );
    }
    let r = g
        .rank(pb::RankRequest {
            items: vec!["i1".into()],
            model: 7,
            ..Default::default()
        })
        .await;
    assert_grpc_error(r, tonic::Code::InvalidArgument, "invalid_parameter");
    let r = g
        .similar(pb::SimilarRequest {
            item: "i1".into(),
            model: -1,
            ..Default::default()
        })
        .await;
    assert_grpc_error(r, tonic::Code::InvalidArgument, "invalid_parameter");
    let r = g.rank(pb::RankRequest::default()).await;
    assert_grpc_error(r, tonic::Code::InvalidArgument, "invalid_body");
    let (status, v) = rest_post(server, "/v1/rank", r#"{"items": []}"#, &[]);
    assert_eq!(
        (status, v["code"].as_str()),
        (400, Some("invalid_body")),
        "{v}"
    );

    // A message over server.body_limit_bytes: refused by tonic (REST: 413).
    let many: Vec<String> = (0..500).map(|i| format!("i{i}")).collect();
    let r = g
        .rank(pb::RankRequest {
            items: many.clone(),
            ..Default::default()
        })
        .await;
    assert_eq!(r.expect_err("too large").code(), tonic::Code::OutOfRange);
    let (status, v) = rest_post(
        server,
        "/v1/rank",
        &json!({ "items": many }).to_string(),
        &[],
    );
    assert_eq!(
        (status, v["code"].as_str()),
        (413, Some("body_too_large")),
        "{v}"
    );

    // Unknown things: NOT_FOUND, as REST's 404.
    let r = g
        .similar(pb::SimilarRequest {
            item: "i999".into(),
            ..Default::default()
        })
        .await;
    assert_grpc_error(r, tonic::Code::NotFound, "unknown_item");
    let r = admin
        .activate_snapshot(with(
            pb::ActivateSnapshotRequest { version: 999 },
            &[("x-api-key", KEY)],
        ))
        .await;
    assert_grpc_error(r, tonic::Code::NotFound, "snapshot_not_found");

    // Feedback validation: the same batch gets the same verdicts on both transports.
    let bad = |f: fn(&mut pb::FeedbackEvent)| {
        let mut e = pb::FeedbackEvent {
            user: "u2".into(),
            item: "i2".into(),
            r#type: "like".into(),
            ..Default::default()
        };
        f(&mut e);
        e
    };
    let batch_g = vec![
        bad(|e| e.id = Some("v-0".into())),
        bad(|e| e.r#type = "teleport".into()),
        bad(|e| e.user = String::new()),
        bad(|e| {
            e.id = Some("v-3".into());
            e.value = Some(2.5);
            e.timestamp_ms = Some(1_700_000_000_000);
        }),
    ];
    let batch_r = json!([
        {"id": "w-0", "user": "u2", "item": "i2", "type": "like"},
        {"user": "u2", "item": "i2", "type": "teleport"},
        {"item": "i2", "type": "like"},
        {
            "id": "w-3", "user": "u2", "item": "i2", "type": "like",
            "value": 2.5, "timestamp": 1_700_000_000_000i64,
        },
    ]);
    let ack_g = g
        .feedback(with(feedback(batch_g), &[("x-api-key", KEY)]))
        .await
        .expect("Feedback")
        .into_inner();
    let (status, ack_r) = rest_post(
        server,
        "/v1/feedback",
        &batch_r.to_string(),
        &[("x-api-key", KEY)],
    );
    assert_eq!(status, 200, "{ack_r}");
    assert_eq!(ack_g.accepted, 2, "{ack_g:?}");
    assert_eq!(ack_r["accepted"], 2, "{ack_r}");
    let rejected_g: Vec<Value> = ack_g
        .rejected
        .iter()
        .map(|r| json!({"index": r.index, "code": r.code, "message": r.message}))
        .collect();
    assert_eq!(json!(rejected_g), ack_r["rejected"], "rejections differ");
    assert_eq!(
        ack_r["rejected"]
            .as_array()
            .map(|a| a.iter().map(|r| r["index"].clone()).collect::<Vec<_>>()),
        Some(vec![json!(1), json!(2)])
    );
    // No valid event at all: INVALID_ARGUMENT "invalid_event", one BadRequest violation per
    // event (REST: 400 with the same list), nothing stored.
    let seq = ack_g.last_seq.max(ack_r["last_seq"].as_u64().expect("seq"));
    let r = g
        .feedback(with(
            feedback(vec![
                bad(|e| e.item = String::new()),
                bad(|e| e.value = Some(f64::NAN)),
            ]),
            &[("x-api-key", KEY)],
        ))
        .await;
    let s = assert_grpc_error(r, tonic::Code::InvalidArgument, "invalid_event");
    let violations = s
        .get_details_bad_request()
        .expect("BadRequest")
        .field_violations;
    let fields: Vec<&str> = violations.iter().map(|v| v.field.as_str()).collect();
    assert_eq!(fields, ["events[0]", "events[1]"], "{s:?}");
    let (status, v) = rest_post(
        server,
        "/v1/feedback",
        &json!([
            {"user": "u2", "type": "like"},
            {"user": "u2", "item": "i2", "type": "like", "value": "x"},
        ])
        .to_string(),
        &[("x-api-key", KEY)],
    );
    assert_eq!(
        (status, v["code"].as_str()),
        (400, Some("invalid_event")),
        "{v}"
    );
    assert_eq!(
        v["rejected"][0]["message"].as_str(),
        Some(violations[0].description.as_str())
    );
    let r = g
        .feedback(with(feedback(vec![]), &[("x-api-key", KEY)]))
        .await;
    assert_grpc_error(r, tonic::Code::InvalidArgument, "invalid_event");
    // Too many events: the same limit and code.
    let five = vec![bad(|_| {}); 5];
    let r = g
        .feedback(with(feedback(five), &[("x-api-key", KEY)]))
        .await;
    assert_grpc_error(r, tonic::Code::InvalidArgument, "too_many_events");
    let after = client::request_with(
        server.port,
        "POST",
        "/v1/snapshots",
        Some(""),
        &[("x-api-key", KEY)],
    )
    .expect("publish");
    assert_eq!(after.status, 201, "{after:?}");
    let trained = rest_get(server, "/v1/model")["trained_through_seq"].as_u64();
    assert_eq!(trained, Some(seq), "a refused batch stored events");

    // The failures are counted by status code.
    let metrics = client::get(server.port, "/metrics").expect("metrics").body;
    for (code, method, n) in [
        ("UNAUTHENTICATED", "RankingService/Feedback", 4),
        ("UNAUTHENTICATED", "AdminService/PublishSnapshot", 4),
        ("INVALID_ARGUMENT", "RankingService/Recommend", 6),
        ("NOT_FOUND", "AdminService/ActivateSnapshot", 1),
    ] {
        let line = format!(
            "irgan_grpc_requests_total{{code=\"{code}\",method=\"irgan.v1.{method}\"}} {n}"
        );
        assert!(metrics.contains(&line), "no {line} in\n{metrics}");
    }
}

#[test]
fn grpc_can_be_turned_off() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let sets = [STILL, &["server.grpc_bind="]].concat();
    let server = Server::start(&tmp.path().join("data"), &sets);
    let log = strip_ansi(&server.log_text());
    assert!(log.contains("grpc_addr=off"), "{log}");
    rest_get(&server, "/v1/model");
    let refused = std::net::TcpStream::connect(("127.0.0.1", server.grpc_port));
    assert!(refused.is_err(), "something listens on the gRPC port");
}
