//! `POST /v1/feedback` batch semantics: partial acceptance, NDJSON, single objects, and
//! idempotency on the event id.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::{IDLE, Svc};

/// Every logged event's id → how many times it is stored.
fn logged_ids(svc: &Svc) -> HashMap<String, usize> {
    let mut ids = HashMap::new();
    for e in svc
        .state
        .log
        .read_after(0, usize::MAX >> 1)
        .expect("read log")
    {
        if let Some(id) = e.event.id {
            *ids.entry(id).or_insert(0) += 1;
        }
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_event_in_a_batch_rejects_only_itself() {
    let svc = Svc::start(IDLE).await;
    let before = svc.state.log.last_seq().expect("last seq");
    let batch = json!([
        {"id": "b-0", "user": "u1", "item": "i1", "type": "like"},
        {"id": "b-1", "user": "u1", "item": "i2", "type": "click", "value": 2.5, "timestamp": 1_700_000_000_000i64},
        {"id": "b-2", "user": "u1", "item": "i3", "type": "teleport"},
        {"id": "b-3", "user": "u2", "type": "like"},
        {"id": "b-4", "user": 7, "item": 9, "type": "view"},
        "not an event",
        {"id": "b-6", "user": "u3", "item": "i4", "type": "dislike", "value": "x"},
        {"id": "b-7", "user": "new-user", "item": "new-item", "type": "purchase"},
    ]);
    let v = svc
        .post("/v1/feedback", batch.to_string())
        .await
        .expect(200);
    assert_eq!(v["accepted"], 4, "{v}");
    assert_eq!(v["duplicates"], 0, "{v}");
    let rejected: Vec<u64> = v["rejected"]
        .as_array()
        .expect("rejected")
        .iter()
        .map(|r| {
            assert_eq!(r["code"], "invalid_event", "{r}");
            assert!(r["message"].as_str().is_some_and(|m| !m.is_empty()), "{r}");
            r["index"].as_u64().expect("index")
        })
        .collect();
    assert_eq!(rejected, [2, 3, 5, 6], "{v}");
    assert_eq!(v["last_seq"], before + 4, "{v}");
    // Stored in request order, with the numeric ids as strings.
    let stored = svc.state.log.read_after(before, 100).expect("read");
    let got: Vec<(Option<&str>, &str, &str, &str)> = stored
        .iter()
        .map(|e| {
            (
                e.event.id.as_deref(),
                e.event.user.as_str(),
                e.event.item.as_str(),
                e.event.kind.as_str(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (Some("b-0"), "u1", "i1", "like"),
            (Some("b-1"), "u1", "i2", "click"),
            (Some("b-4"), "7", "9", "view"),
            (Some("b-7"), "new-user", "new-item", "purchase"),
        ]
    );
    assert_eq!(stored[1].event.value, Some(2.5));
    assert_eq!(stored[1].event.timestamp_ms, Some(1_700_000_000_000));
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ndjson_and_single_objects() {
    let svc = Svc::start(IDLE).await;
    let before = svc.state.log.last_seq().expect("last seq");
    let ndjson = [
        r#"{"id": "n-0", "user": "u1", "item": "i1", "type": "like"}"#,
        "",
        r#"{"id": "n-1", "user": "u2", "item": "i2", "type": "view"}"#,
        r#"{"id": "n-2", "user": "u3", "item": "i3""#,
        r#"   {"id": "n-3", "user": "u4", "item": "i4", "type": "click"}   "#,
    ]
    .join("\n")
        + "\n";
    let v = svc.post("/v1/feedback", ndjson).await.expect(200);
    assert_eq!(v["accepted"], 3, "{v}");
    assert_eq!(v["rejected"].as_array().map(Vec::len), Some(1), "{v}");
    assert_eq!(
        v["rejected"][0]["index"], 2,
        "blank lines are not counted: {v}"
    );
    assert_eq!(v["last_seq"], before + 3, "{v}");
    // CRLF line ends work too.
    let crlf = "{\"id\": \"n-4\", \"user\": \"u1\", \"item\": \"i5\", \"type\": \"like\"}\r\n\
                {\"id\": \"n-5\", \"user\": \"u1\", \"item\": \"i6\", \"type\": \"like\"}\r\n";
    let v = svc.post("/v1/feedback", crlf).await.expect(200);
    assert_eq!(v["accepted"], 2, "{v}");
    // One object, with and without an id.
    let v = svc
        .post(
            "/v1/feedback",
            r#"{"id": "s-0", "user": "u5", "item": "i5", "type": "purchase", "value": 1}"#,
        )
        .await
        .expect(200);
    assert_eq!(v["accepted"], 1, "{v}");
    assert_eq!(v["rejected"], json!([]), "{v}");
    let seq = v["last_seq"].as_u64().expect("seq");
    let v = svc
        .post(
            "/v1/feedback",
            r#"{"user": "u5", "item": "i6", "type": "view"}"#,
        )
        .await
        .expect(200);
    assert_eq!(v["accepted"], 1, "{v}");
    assert_eq!(v["last_seq"], seq + 1, "{v}");
    let ids = logged_ids(&svc);
    for id in ["n-0", "n-1", "n-3", "n-4", "n-5", "s-0"] {
        assert_eq!(ids.get(id), Some(&1), "{id} not stored once");
    }
    assert!(!ids.contains_key("n-2"));
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_event_id_is_stored_once() {
    let svc = Svc::start(IDLE).await;
    let event = r#"{"id": "dup-1", "user": "u1", "item": "i9", "type": "like"}"#;
    let first = svc.post("/v1/feedback", event).await.expect(200);
    assert_eq!(first["accepted"], 1, "{first}");
    assert_eq!(first["duplicates"], 0, "{first}");
    let second = svc.post("/v1/feedback", event).await.expect(200);
    assert_eq!(second["accepted"], 0, "{second}");
    assert_eq!(second["duplicates"], 1, "{second}");
    assert_eq!(
        second["last_seq"], first["last_seq"],
        "a duplicate reports the original's seq"
    );
    // A different payload under the same id is still a duplicate; inside one batch too.
    let v = svc
        .post(
            "/v1/feedback",
            json!([
                {"id": "dup-1", "user": "u2", "item": "i2", "type": "view"},
                {"id": "dup-2", "user": "u1", "item": "i8", "type": "like"},
                {"id": "dup-2", "user": "u1", "item": "i8", "type": "like"},
            ])
            .to_string(),
        )
        .await
        .expect(200);
    assert_eq!(
        (v["accepted"].clone(), v["duplicates"].clone()),
        (json!(1), json!(2)),
        "{v}"
    );
    let ids = logged_ids(&svc);
    assert_eq!(ids.get("dup-1"), Some(&1));
    assert_eq!(ids.get("dup-2"), Some(&1));
    let stored: Vec<Value> = svc
        .state
        .log
        .read_after(0, usize::MAX >> 1)
        .expect("read")
        .into_iter()
        .filter(|e| e.event.id.as_deref() == Some("dup-1"))
        .map(|e| json!([e.event.user, e.event.item, e.event.kind]))
        .collect();
    assert_eq!(
        stored,
        [json!(["u1", "i9", "like"])],
        "the first payload is kept"
    );
    let metrics = svc.get("/metrics").await.body;
    assert!(
        metrics.contains("irgan_feedback_deduplicated_total 3"),
        "{metrics}"
    );
    svc.stop().await;
}
