//! The README's curl tour ("Quick start", in order) against the real `irgan serve --demo`:
//! no call may answer 5xx, rolling back to the oldest kept snapshot after a new user's feedback
//! must serve that user (the old pair grown to today's catalogue), and at the end both trainers
//! are alive (`game.up`, no restarts, `irgan_trainer_up` 1).

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::client::{self, Response, Server};

/// A call of the tour: what was asked and what came back; panics on a transport error or 5xx.
fn call(port: u16, method: &str, path: &str, body: Option<&str>) -> Response {
    let r = client::request(port, method, path, body)
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    assert!(
        r.status < 500,
        "{method} {path} answered {}: {}",
        r.status,
        r.body
    );
    r
}

fn get(port: u16, path: &str) -> Response {
    call(port, "GET", path, None)
}

fn post(port: u16, path: &str, body: &str) -> Response {
    call(port, "POST", path, Some(body))
}

/// Polls `GET path` until `done` holds on its JSON (at most `limit`).
fn wait_for(port: u16, path: &str, limit: Duration, done: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        let v = get(port, path).json();
        if done(&v) {
            return v;
        }
        assert!(started.elapsed() < limit, "waited {limit:?} on {path}: {v}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_readme_tour_finds_no_5xx_and_a_live_trainer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(&dir.path().join("data"), &[]);
    let p = server.port;

    // Queries.
    for path in [
        "/v1/users/u3/recommendations?k=5",
        "/v1/users/u3/recommendations?k=5&model=discriminator",
        "/v1/users/u3/recommendations?k=5&explore=0.5&seed=7",
        "/v1/users/someone-new/recommendations?k=5",
    ] {
        assert_eq!(get(p, path).status, 200, "{path}");
    }
    let rank = json!({"user": "u3", "items": ["i3", "i8", "i1", "i42"], "model": "blend"});
    assert_eq!(post(p, "/v1/rank", &rank.to_string()).status, 200);
    assert_eq!(get(p, "/v1/items/i3/similar?k=5").status, 200);

    // Feedback from a new user, a publish (the gate may refuse: 409 is an answer), ann's list.
    let feedback = json!([
        {"id": "e1", "user": "ann", "item": "i3", "type": "like"},
        {"id": "e2", "user": "ann", "item": "i8", "type": "like"},
        {"id": "e3", "user": "ann", "item": "i13", "type": "purchase"},
    ]);
    assert_eq!(post(p, "/v1/feedback", &feedback.to_string()).status, 200);
    let published = post(p, "/v1/snapshots", "");
    assert!([201, 409].contains(&published.status), "{}", published.body);
    assert_eq!(get(p, "/v1/users/ann/recommendations?k=5").status, 200);

    // The model, the snapshots, roll back to the oldest kept version, pause and resume.
    assert_eq!(get(p, "/v1/model").status, 200);
    let list = get(p, "/v1/snapshots").json();
    let oldest = list["snapshots"]
        .as_array()
        .and_then(|a| a.last())
        .and_then(|s| s["version"].as_u64())
        .unwrap_or_else(|| panic!("no snapshots: {list}"));
    let activated = post(p, &format!("/v1/snapshots/{oldest}/activate"), "");
    assert_eq!(activated.status, 200, "{}", activated.body);
    // The old pair serves today's catalogue: ann (newer than it) is no cold start.
    let ann = get(p, "/v1/users/ann/recommendations?k=5").json();
    assert_eq!(ann["cold_start"], false, "{ann}");
    assert_eq!(post(p, "/v1/training/pause", "").status, 200);
    assert_eq!(post(p, "/v1/training/resume", "").status, 200);
    for path in ["/healthz", "/readyz", "/metrics"] {
        assert_eq!(get(p, path).status, 200, "{path}");
    }

    // Search: the demo's judged queries publish a search model (the README runs this part
    // after the rest; here it is waited for).
    wait_for(p, "/v1/search/model", Duration::from_secs(60), |v| {
        !v["live"].is_null()
    });
    let f1: Vec<f64> = [vec![0.9; 23], vec![0.1; 23]].concat();
    let f2: Vec<f64> = [vec![0.1; 23], vec![0.9; 23]].concat();
    let rank = json!({"query": "q", "documents": [
        {"id": "bad", "features": f2}, {"id": "good", "features": f1}], "model": "blend"});
    assert_eq!(post(p, "/v1/search/rank", &rank.to_string()).status, 200);
    let imp = json!({"id": "imp-1", "query": "q", "documents": [
        {"id": "good", "features": f1, "clicked": true},
        {"id": "bad", "features": f2, "clicked": false}]});
    assert_eq!(post(p, "/v1/search/feedback", &imp.to_string()).status, 200);
    let s = post(p, "/v1/search/snapshots", "");
    assert!([200, 201, 409].contains(&s.status), "{}", s.body);

    // Both trainers are alive at the end, and say so.
    let model = get(p, "/v1/model").json();
    let game = &model["game"];
    assert_eq!(game["up"], true, "{model}");
    assert_eq!(game["restarts"], 0, "{model}");
    assert!(game["last_failure"].is_null(), "{model}");
    assert!(
        ["busy", "idle"].contains(&game["state"].as_str().unwrap_or("")),
        "{model}"
    );
    let search = get(p, "/v1/search/model").json();
    assert_eq!(search["trainer"]["up"], true, "{search}");
    let metrics = get(p, "/metrics").body;
    for line in [
        "irgan_trainer_up{task=\"recommendation\"} 1",
        "irgan_trainer_up{task=\"search\"} 1",
        "irgan_trainer_restarts_total{task=\"recommendation\"} 0",
    ] {
        assert!(metrics.contains(line), "no {line} in\n{metrics}");
    }
    // A training command still reaches the trainer (it has not stopped).
    assert_eq!(post(p, "/v1/training/pause", "").status, 200);
    assert!(
        !server.log_text().contains("panicked"),
        "{}",
        server.log_text()
    );
}
