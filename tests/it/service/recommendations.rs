//! The read routes: recommendations, rank, similar items.

use std::collections::{HashMap, HashSet};

use serde_json::{Value, json};

use super::{IDLE, ITEMS, Svc, item_ids};

/// Asserts every item of a ranking carries finite `score`, `generator` and `discriminator`,
/// that ids are unique and that the items are ordered by `score`, best first.
#[track_caller]
fn check_ranking(v: &Value) {
    let items = v["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items: {v}"));
    let mut seen = HashSet::new();
    let mut prev = f64::INFINITY;
    for it in items {
        assert!(
            seen.insert(it["item"].as_str().expect("id")),
            "repeated item: {v}"
        );
        for key in ["score", "generator", "discriminator"] {
            let x = it[key].as_f64().unwrap_or(f64::NAN);
            assert!(x.is_finite(), "{key} is not finite in {it}: {v}");
        }
        let s = it["score"].as_f64().expect("score");
        assert!(s <= prev, "not ordered by score: {v}");
        prev = s;
    }
}

/// Items each demo user has any feedback on, from the log.
fn seen_by_user(svc: &Svc) -> HashMap<String, HashSet<String>> {
    let mut seen: HashMap<String, HashSet<String>> = HashMap::new();
    for e in svc
        .state
        .log
        .read_after(0, usize::MAX >> 1)
        .expect("read log")
    {
        seen.entry(e.event.user).or_default().insert(e.event.item);
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn known_users_get_scored_items_from_the_live_version() {
    let svc = Svc::start(IDLE).await;
    let version = svc.version().await;
    assert!(version >= 1);
    let v = svc
        .get("/v1/users/u0/recommendations?k=5")
        .await
        .expect(200);
    assert_eq!(v["user"], "u0", "{v}");
    assert_eq!(v["model"], "generator", "{v}");
    assert_eq!(v["version"], version, "{v}");
    assert_eq!(v["cold_start"], false, "{v}");
    assert_eq!(item_ids(&v).len(), 5, "{v}");
    check_ranking(&v);
    for it in v["items"].as_array().expect("items") {
        assert!(
            it.get("propensity").is_none(),
            "no propensity without explore: {it}"
        );
        assert_eq!(it["score"], it["generator"], "G ranks by default: {it}");
        let d = it["discriminator"].as_f64().expect("d");
        assert!((0.0..=1.0).contains(&d), "D is a probability: {it}");
        assert!(
            it["generator"].as_f64().expect("g") <= 0.0,
            "G is a log-probability: {it}"
        );
    }
    // The default k.
    let v = svc.get("/v1/users/u0/recommendations").await.expect(200);
    assert_eq!(item_ids(&v).len(), svc.cfg.server.default_k, "{v}");
    // The other models.
    for model in ["discriminator", "blend", "Generator", "BLEND"] {
        let v = svc
            .get(&format!("/v1/users/u3/recommendations?k=7&model={model}"))
            .await
            .expect(200);
        assert_eq!(v["model"], model.to_lowercase(), "{v}");
        assert_eq!(item_ids(&v).len(), 7, "{v}");
        check_ranking(&v);
        if model == "discriminator" {
            for it in v["items"].as_array().expect("items") {
                assert_eq!(it["score"], it["discriminator"], "{it}");
            }
        }
    }
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exclude_seen_never_returns_a_seen_item() {
    let svc = Svc::start(IDLE).await;
    let seen = seen_by_user(&svc);
    let n = svc.model().await["items"].as_u64().expect("items") as usize;
    assert!(n > 0 && n <= ITEMS);
    for u in 0..20 {
        let user = format!("u{u}");
        let mine = &seen[&user];
        for query in [
            "",
            "&exclude_seen=true",
            "&model=discriminator",
            "&model=blend",
            "&explore=1&seed=3",
        ] {
            let v = svc
                .get(&format!(
                    "/v1/users/{user}/recommendations?k={ITEMS}{query}"
                ))
                .await
                .expect(200);
            let items = item_ids(&v);
            assert_eq!(
                items.len(),
                n - mine.len(),
                "{user}{query}: every unseen item: {v}"
            );
            for i in &items {
                assert!(!mine.contains(i), "{user}{query} got seen item {i}: {v}");
            }
        }
        let v = svc
            .get(&format!(
                "/v1/users/{user}/recommendations?k={ITEMS}&exclude_seen=false"
            ))
            .await
            .expect(200);
        assert_eq!(
            item_ids(&v).len(),
            n,
            "exclude_seen=false ranks everything: {v}"
        );
    }
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exploration_is_reproducible_with_a_seed() {
    let svc = Svc::start(IDLE).await;
    let uri = "/v1/users/u4/recommendations?k=6&explore=0.5&seed=7";
    let a = svc.get(uri).await.expect(200);
    let b = svc.get(uri).await.expect(200);
    assert_eq!(a, b, "same seed, same snapshot: same answer");
    assert_eq!(a["model"], "explore", "{a}");
    assert_eq!(item_ids(&a).len(), 6, "{a}");
    for it in a["items"].as_array().expect("items") {
        let p = it["propensity"].as_f64().unwrap_or(f64::NAN);
        assert!(p > 0.0 && p <= 1.0, "propensity in (0, 1]: {it}");
        for key in ["score", "generator", "discriminator"] {
            assert!(it[key].as_f64().is_some_and(f64::is_finite), "{key}: {it}");
        }
    }
    // Other seeds give other draws (at least one of a few differs).
    let mut differs = false;
    for seed in 8..14 {
        let c = svc
            .get(&format!(
                "/v1/users/u4/recommendations?k=6&explore=0.5&seed={seed}"
            ))
            .await
            .expect(200);
        differs |= item_ids(&c) != item_ids(&a);
    }
    assert!(differs, "the seed does not change the draw");
    // Unknown users explore too.
    let v = svc
        .get("/v1/users/nobody/recommendations?k=3&explore=1&seed=1")
        .await
        .expect(200);
    assert_eq!(v["cold_start"], true, "{v}");
    assert_eq!(item_ids(&v).len(), 3, "{v}");
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_users_are_cold_starts() {
    let svc = Svc::start(IDLE).await;
    for user in ["nobody", "u60", "%E2%9C%93", "u0%20"] {
        let v = svc
            .get(&format!("/v1/users/{user}/recommendations?k=4"))
            .await
            .expect(200);
        assert_eq!(v["cold_start"], true, "{user}: {v}");
        assert_eq!(v["model"], "popularity", "{v}");
        assert_eq!(item_ids(&v).len(), 4, "{v}");
        for it in v["items"].as_array().expect("items") {
            for key in ["score", "generator", "discriminator"] {
                assert!(it[key].as_f64().is_some_and(f64::is_finite), "{key}: {it}");
            }
        }
    }
    let v = svc
        .get("/v1/users/%E2%9C%93/recommendations")
        .await
        .expect(200);
    assert_eq!(v["user"], "✓", "{v}");
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rank_orders_the_candidates() {
    let svc = Svc::start(IDLE).await;
    let version = svc.version().await;
    let candidates = ["i1", "i2", "i3", "nope", "i17", "also-nope", "i39"];
    for model in ["generator", "discriminator", "blend"] {
        let v = svc
            .post(
                "/v1/rank",
                json!({"user": "u1", "items": candidates, "model": model}).to_string(),
            )
            .await
            .expect(200);
        assert_eq!(v["model"], model, "{v}");
        assert_eq!(v["version"], version, "{v}");
        assert_eq!(v["cold_start"], false, "{v}");
        assert_eq!(v["unknown_items"], json!(["nope", "also-nope"]), "{v}");
        let mut got = item_ids(&v);
        got.sort();
        assert_eq!(
            got,
            ["i1", "i17", "i2", "i3", "i39"],
            "every known candidate once: {v}"
        );
        check_ranking(&v);
    }
    // No user, an unknown user: still ranked (cold start).
    for body in [
        json!({"items": ["i5", "i6", "i7"]}),
        json!({"user": "stranger", "items": ["i5", "i6", "i7"]}),
    ] {
        let v = svc.post("/v1/rank", body.to_string()).await.expect(200);
        assert_eq!(v["cold_start"], true, "{v}");
        assert_eq!(item_ids(&v).len(), 3, "{v}");
        check_ranking(&v);
    }
    // Only unknown candidates: nothing to rank, all listed.
    let v = svc
        .post(
            "/v1/rank",
            json!({"user": "u1", "items": ["x", "y"]}).to_string(),
        )
        .await
        .expect(200);
    assert_eq!(item_ids(&v).len(), 0, "{v}");
    assert_eq!(v["unknown_items"], json!(["x", "y"]), "{v}");
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn similar_items() {
    let svc = Svc::start(IDLE).await;
    for model in ["generator", "discriminator", "blend"] {
        let v = svc
            .get(&format!("/v1/items/i3/similar?k=5&model={model}"))
            .await
            .expect(200);
        assert_eq!(v["item"], "i3", "{v}");
        assert_eq!(v["model"], model, "{v}");
        let items = item_ids(&v);
        assert_eq!(items.len(), 5, "{v}");
        assert!(
            !items.contains(&"i3".to_owned()),
            "excludes the item itself: {v}"
        );
        check_ranking(&v);
    }
    let n = svc.model().await["items"].as_u64().expect("items") as usize;
    let v = svc
        .get(&format!("/v1/items/i3/similar?k={ITEMS}"))
        .await
        .expect(200);
    assert_eq!(item_ids(&v).len(), n - 1, "{v}");
    svc.get("/v1/items/i999/similar")
        .await
        .error(404, "unknown_item");
    svc.get("/v1/items/nope/similar?k=3")
        .await
        .error(404, "unknown_item");
    svc.stop().await;
}
