//! Bad requests of every kind get a 4xx with a JSON `{ "code", "message" }` body: never a
//! panic, a 5xx or a plain-text/HTML page.

use axum::body::Body;
use axum::http::Method;

use super::{IDLE, Svc};

/// Query parameters a ranking route must refuse with `400 invalid_parameter`.
const BAD_QUERIES: &[&str] = &[
    "k=0",
    "k=1001",
    "k=abc",
    "k=-1",
    "k=3.0",
    "k=",
    "model=foo",
    "explore=-1",
    "explore=NaN",
    "explore=inf",
    "explore=x",
    "seed=x",
    "seed=-3",
    "exclude_seen=maybe",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_methods_and_query_parameters() {
    let svc = Svc::start(IDLE).await;
    svc.get("/nope").await.error(404, "not_found");
    svc.get("/v1/users").await.error(404, "not_found");
    svc.get("/v1/users/u1/recommendations/extra")
        .await
        .error(404, "not_found");
    svc.post("/healthz", "{}")
        .await
        .error(405, "method_not_allowed");
    svc.get("/v1/feedback")
        .await
        .error(405, "method_not_allowed");
    svc.get("/v1/rank").await.error(405, "method_not_allowed");
    svc.send(Method::DELETE, "/v1/snapshots", &[], Body::empty())
        .await
        .error(405, "method_not_allowed");
    svc.get("/v1/training/pause")
        .await
        .error(405, "method_not_allowed");
    for q in BAD_QUERIES {
        for path in ["/v1/users/u1/recommendations", "/v1/items/i3/similar"] {
            let only_for_users = ["explore", "seed", "exclude_seen"];
            if path.contains("similar") && only_for_users.iter().any(|p| q.starts_with(p)) {
                continue; // not parameters of that route
            }
            let uri = format!("{path}?{q}");
            svc.get(&uri).await.error(400, "invalid_parameter");
        }
    }
    // A query string that is not UTF-8 once percent-decoded is refused as such, not read
    // with replacement characters.
    for q in ["k=%FF", "model=%FF", "%FF=1", "k=10&x=%C3"] {
        for path in ["/v1/users/u1/recommendations", "/v1/items/i3/similar"] {
            let uri = format!("{path}?{q}");
            svc.get(&uri).await.error(400, "invalid_query");
        }
    }
    // Parameters that are fine stay fine (the limits are inclusive).
    svc.get("/v1/users/u1/recommendations?k=1000")
        .await
        .expect(200);
    svc.get("/v1/users/u1/recommendations?k=1&explore=0&seed=0")
        .await
        .expect(200);
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_segments_that_are_not_utf8() {
    let svc = Svc::start(IDLE).await;
    for uri in ["/v1/users/%FF/recommendations", "/v1/items/%FF/similar"] {
        let r = svc.get(uri).await;
        assert!(r.status.is_client_error(), "{r:?}");
        let v = r.json();
        assert!(v["code"].is_string(), "{r:?}");
    }
    let r = svc.post("/v1/snapshots/%FF/activate", "").await;
    assert!(r.status.is_client_error(), "{r:?}");
    assert!(r.json()["code"].is_string(), "{r:?}");
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rank_bodies() {
    let svc = Svc::start(IDLE).await;
    for body in [
        "",
        "{",
        "not json",
        "[]",
        r#"{"items": "i1"}"#,
        r#"{"items": []}"#,
        r#"{"user": "u1"}"#,
        r#"{"items": ["i1"], "colour": "red"}"#,
        r#"{"items": ["i1"], "model": "foo"}"#,
        r#"{"items": [1, 2]}"#,
    ] {
        svc.post("/v1/rank", body).await.error(400, "invalid_body");
    }
    svc.post("/v1/rank", r#"{"items": ["i1"]}"#)
        .await
        .expect(200);
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feedback_bodies() {
    let svc = Svc::start(&[IDLE, &["feedback.max_events_per_request=3"]].concat()).await;
    // Not JSON at all, or nothing.
    for body in ["", "   \n", "[1, 2", "\u{0}"] {
        let r = svc.post("/v1/feedback", body).await;
        assert_eq!(r.status, 400, "{r:?}");
        assert!(r.json()["code"].is_string(), "{r:?}");
    }
    svc.post("/v1/feedback", "[1, 2")
        .await
        .error(400, "invalid_body");
    svc.post("/v1/feedback", "")
        .await
        .error(400, "invalid_body");
    // One invalid event and nothing else: 400 naming it, nothing stored.
    let before = svc.state.log.last_seq().expect("last seq");
    for event in [
        "{",
        r#"{"user": "u1", "item": "i1", "type": "like""#,
        r#"{"user": "u1", "item": "i1", "type": "teleport"}"#,
        r#"{"user": "u1", "item": "i1"}"#,
        r#"{"item": "i1", "type": "like"}"#,
        r#"{"user": "u1", "type": "like"}"#,
        r#"{"user": "", "item": "i1", "type": "like"}"#,
        r#"{"user": null, "item": "i1", "type": "like"}"#,
        r#"{"user": 1.5, "item": "i1", "type": "like"}"#,
        r#"{"user": "u1", "item": "i1", "type": "like", "value": "x"}"#,
        r#"{"user": "u1", "item": "i1", "type": "like", "value": "NaN"}"#,
        r#"{"user": "u1", "item": "i1", "type": "like", "value": 1e999}"#,
        r#"{"user": "u1", "item": "i1", "type": "like", "timestamp": "yesterday"}"#,
        r#"{"user": "u1", "item": "i1", "type": "like", "colour": "red"}"#,
        r#"[{"user": "u1", "item": "i1", "type": "like", "colour": "red"}]"#,
        "42",
        "[42]",
        "[]",
    ] {
        let v = svc
            .post("/v1/feedback", event)
            .await
            .error(400, "invalid_event");
        let rejected = v["rejected"].as_array().map_or(0, Vec::len);
        if event != "[]" {
            assert_eq!(rejected, 1, "{event} -> {v}");
            assert_eq!(v["rejected"][0]["index"], 0, "{event} -> {v}");
        }
    }
    let id = "x".repeat(257);
    svc.post(
        "/v1/feedback",
        format!(r#"{{"user": "{id}", "item": "i1", "type": "like"}}"#),
    )
    .await
    .error(400, "invalid_event");
    // Too many events in one request.
    let four = r#"[{"user":"u1","item":"i1","type":"like"},{"user":"u1","item":"i2","type":"like"},
                  {"user":"u1","item":"i3","type":"like"},{"user":"u1","item":"i4","type":"like"}]"#;
    svc.post("/v1/feedback", four)
        .await
        .error(400, "too_many_events");
    assert_eq!(
        svc.state.log.last_seq().expect("last seq"),
        before,
        "a refused request stored events"
    );
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_the_limit_are_413() {
    let svc = Svc::start(&[IDLE, &["server.body_limit_bytes=1024"]].concat()).await;
    let event = r#"{"user": "u1", "item": "i1", "type": "like"}"#;
    let big = format!("[{}]", [event; 100].join(","));
    assert!(big.len() > 1024);
    let small = format!("[{}]", [event; 3].join(","));
    svc.post("/v1/feedback", small).await.expect(200);
    let items: Vec<String> = (0..200).map(|i| format!("\"i{i}\"")).collect();
    let big_rank = format!(r#"{{"items": [{}]}}"#, items.join(","));
    // Without a Content-Length (as a chunked upload): the limit applies while reading.
    for (uri, body) in [("/v1/feedback", &big), ("/v1/rank", &big_rank)] {
        svc.send(
            Method::POST,
            uri,
            &[("content-type", "application/json")],
            body.clone(),
        )
        .await
        .error(413, "body_too_large");
    }
    // With a Content-Length, as every ordinary client sends it.
    svc.post("/v1/feedback", big.clone())
        .await
        .error(413, "body_too_large");
    svc.post("/v1/rank", big_rank)
        .await
        .error(413, "body_too_large");
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activate_bad_versions() {
    let svc = Svc::start(IDLE).await;
    svc.post("/v1/snapshots/abc/activate", "")
        .await
        .error(400, "invalid_parameter");
    svc.post("/v1/snapshots/-1/activate", "")
        .await
        .error(400, "invalid_parameter");
    svc.post("/v1/snapshots/99999999999999999999999/activate", "")
        .await
        .error(400, "invalid_parameter");
    svc.post("/v1/snapshots/999/activate", "")
        .await
        .error(404, "snapshot_not_found");
    svc.post("/v1/snapshots/0/activate", "")
        .await
        .error(404, "snapshot_not_found");
    svc.get("/v1/snapshots/1/activate")
        .await
        .error(405, "method_not_allowed");
    let v = svc.version().await;
    assert!(v >= 1, "no live snapshot");
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_key_guards_write_routes() {
    let svc = Svc::start(&[IDLE, &["server.api_key=s3cret"]].concat()).await;
    let event = r#"{"user": "u1", "item": "i1", "type": "like"}"#;
    let writes: &[(&str, &str)] = &[
        ("/v1/feedback", event),
        ("/v1/snapshots", ""),
        ("/v1/snapshots/1/activate", ""),
        ("/v1/training/pause", ""),
        ("/v1/training/resume", ""),
    ];
    for &(uri, body) in writes {
        for headers in [
            vec![],
            vec![("authorization", "Bearer wrong")],
            vec![("authorization", "s3cret")],
            vec![("authorization", "Basic s3cret")],
            vec![("x-api-key", "s3cre")],
            vec![("x-api-key", "s3cret ")],
            vec![("x-api-key", "")],
        ] {
            svc.send(Method::POST, uri, &headers, body.to_owned())
                .await
                .error(401, "unauthorized");
        }
    }
    for &(uri, body) in writes {
        for headers in [
            [("authorization", "Bearer s3cret")],
            [("x-api-key", "s3cret")],
        ] {
            let r = svc.send(Method::POST, uri, &headers, body.to_owned()).await;
            assert!(
                r.status.is_success() || (uri == "/v1/snapshots" && r.status == 409),
                "with the key: {r:?}"
            );
            r.json();
        }
    }
    // Read routes stay open.
    svc.get("/v1/users/u1/recommendations").await.expect(200);
    svc.get("/v1/model").await.expect(200);
    svc.post("/v1/rank", r#"{"items": ["i1"]}"#)
        .await
        .expect(200);
    // The key never leaks into a response or the metrics.
    let metrics = svc.get("/metrics").await;
    assert!(!metrics.body.contains("s3cret"), "{metrics:?}");
    assert!(!svc.model().await.to_string().contains("s3cret"));
    svc.stop().await;
}
