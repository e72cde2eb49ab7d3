//! Feedback changes what the service recommends: a brand-new user's likes reach a published
//! snapshot and pull their recommendations towards the liked items' cluster; so do an existing
//! user's, at once (fold-in), without any adversarial step.

use std::time::{Duration, Instant};

use serde_json::json;

use super::{CLUSTERS, FAST, IDLE, ITEMS, Svc, cluster_of, item_ids};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_users_likes_shape_their_recommendations() {
    let svc = Svc::start(FAST).await;
    let c = 2;
    let user = "newcomer";
    let liked: Vec<String> = (0..ITEMS)
        .filter(|i| i % CLUSTERS == c)
        .take(3)
        .map(|i| format!("i{i}"))
        .collect();
    let cold = svc
        .get(&format!("/v1/users/{user}/recommendations?k=5"))
        .await
        .expect(200);
    assert_eq!(cold["cold_start"], true, "{cold}");
    let before = svc.version().await;
    let events: Vec<_> = liked
        .iter()
        .enumerate()
        .map(|(n, item)| json!({"id": format!("learn-{n}"), "user": user, "item": item, "type": "like"}))
        .collect();
    let ack = svc
        .post("/v1/feedback", json!(events).to_string())
        .await
        .expect(200);
    assert_eq!(ack["accepted"], 3, "{ack}");
    let seq = ack["last_seq"].as_u64().expect("last_seq");

    // The first snapshot that covers the feedback must already reflect it.
    let started = Instant::now();
    let m = svc
        .wait_model(
            Duration::from_secs(15),
            "a snapshot covering the feedback",
            |m| {
                m["version"].as_u64().unwrap_or(0) > before
                    && m["trained_through_seq"].as_u64().unwrap_or(0) >= seq
            },
        )
        .await;
    let r = svc
        .get(&format!("/v1/users/{user}/recommendations?k=5"))
        .await
        .expect(200);
    let items = item_ids(&r);
    let inside = items.iter().filter(|i| cluster_of(i) == c).count();
    let context = format!(
        "liked {liked:?} (cluster {c}) at seq {seq}, live v{before} before; after {:?}:\n\
         GET /v1/model: {m}\nGET /v1/users/{user}/recommendations?k=5: {r}",
        started.elapsed()
    );
    assert_eq!(r["cold_start"], false, "{context}");
    assert_eq!(items.len(), 5, "{context}");
    assert!(
        items.iter().all(|i| !liked.contains(i)),
        "seen items are excluded by default: {context}"
    );
    assert!(
        inside * 2 > items.len(),
        "{inside}/5 in cluster {c}: {context}"
    );
    eprintln!(
        "learning: v{} covers seq {seq} after {:?}; {inside}/5 in cluster {c}",
        r["version"],
        started.elapsed()
    );
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_users_new_likes_move_their_vector_without_training() {
    // No background steps: only the fold-in can move the user.
    let svc = Svc::start(IDLE).await;
    let user = "u0";
    let all = format!("/v1/users/{user}/recommendations?k={ITEMS}");
    let before = svc.get(&all).await.expect(200);
    // The cluster whose items the user ranks lowest now.
    let mean_rank = |r: &serde_json::Value, c: usize| {
        let ids = item_ids(r);
        let ranks: Vec<usize> = (0..ids.len())
            .filter(|&k| cluster_of(&ids[k]) == c)
            .collect();
        ranks.iter().sum::<usize>() as f64 / ranks.len().max(1) as f64
    };
    let c = (0..CLUSTERS)
        .max_by(|&a, &b| mean_rank(&before, a).total_cmp(&mean_rank(&before, b)))
        .expect("clusters");
    let liked: Vec<String> = (0..ITEMS)
        .filter(|i| i % CLUSTERS == c)
        .take(6)
        .map(|i| format!("i{i}"))
        .collect();
    let events: Vec<_> = liked
        .iter()
        .enumerate()
        .map(|(n, item)| json!({"id": format!("move-{n}"), "user": user, "item": item, "type": "purchase"}))
        .collect();
    svc.post("/v1/feedback", json!(events).to_string())
        .await
        .expect(200);
    let published = svc.post("/v1/snapshots", "{}").await.expect(201);
    let after = svc.get(&all).await.expect(200);
    let context = format!(
        "liked {liked:?} (cluster {c}); published {published}\nbefore: {before}\nafter: {after}"
    );
    assert_eq!(after["version"], published["version"], "{context}");
    let (b, a) = (mean_rank(&before, c), mean_rank(&after, c));
    // Before, the cluster's items sat at the bottom; the unseen ones must now rank higher.
    assert!(
        a + 3.0 < b,
        "mean rank of cluster {c}: {b} -> {a}: {context}"
    );
    eprintln!("fold-in: u0's mean rank of cluster {c}: {b:.1} -> {a:.1}");
    svc.stop().await;
}
