//! The online service (`irgan serve`): most tests drive the router in-process with
//! `tower::ServiceExt::oneshot` (no socket); `restart`, `grpc`, `grpc_search` and `open_bind`
//! run the real binary (on 127.0.0.1; `open_bind` also on 0.0.0.0; the gRPC ones with a tonic
//! client).

mod admin;
mod bad_input;
pub mod client;
mod concurrency;
mod feedback;
mod grpc;
mod grpc_search;
mod learning;
mod open_bind;
mod recommendations;
mod restart;
pub mod search;
mod settings;
mod tour;

use std::path::Path;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use irgan::app;
use irgan::config::SyntheticConfig;
use irgan::http::state::AppState;
use irgan::online::settings::ServiceConfig;
use irgan::store::feedback_log::{FeedbackLog, LogOptions};
use serde_json::Value;
use tempfile::TempDir;
use tower::ServiceExt;

/// The documented defaults, loaded under every test's overrides: `--set training.*` without
/// a file resets the whole `training` section to the offline defaults (see
/// `settings::training_overrides_keep_the_online_defaults`).
pub const DEFAULT_TOML: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config/default.toml");

/// Clusters of the demo catalogue: item `i{n}` belongs to cluster `n % CLUSTERS`.
pub const CLUSTERS: usize = 4;
/// Users (`u0…`) of the demo catalogue.
pub const USERS: usize = 60;
/// Items (`i0…`) of the demo catalogue.
pub const ITEMS: usize = 40;

/// Small, fast models with a publish gate that lets every finite candidate through, and a
/// trainer that publishes often.
pub const FAST: &[&str] = &[
    "training.generator.dim=8",
    "training.discriminator.dim=8",
    "trainer.publish_every_steps=5",
    "trainer.publish_every_seconds=0.2",
    "trainer.min_entropy=0.0",
    "trainer.min_d_accuracy=0.0",
    "trainer.tolerance=1.0",
    "trainer.publish_only_gains=false",
];

/// Like [`FAST`] but without background training (the first pair is still pretrained and
/// published): cheap and deterministic, for tests that only query.
pub const IDLE: &[&str] = &[
    "training.generator.dim=8",
    "training.discriminator.dim=8",
    "trainer.enabled=false",
    "trainer.min_entropy=0.0",
    "trainer.min_d_accuracy=0.0",
    "trainer.tolerance=1.0",
];

/// The demo catalogue every in-process test starts from.
pub fn demo() -> SyntheticConfig {
    SyntheticConfig {
        users: USERS,
        items: ITEMS,
        clusters: CLUSTERS,
        per_user: 8,
        ..Default::default()
    }
}

/// One HTTP response, body fully read.
pub struct Reply {
    /// What was asked, for failure messages.
    pub request: String,
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Body, lossily decoded.
    pub body: String,
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} -> {} {:?} {}",
            self.request,
            self.status,
            self.headers.get(header::CONTENT_TYPE),
            self.body
        )
    }
}

impl Reply {
    /// The body as JSON (panics with the whole exchange if it is not).
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {self:?}"))
    }

    /// Asserts the status and returns the JSON body.
    #[track_caller]
    pub fn expect(&self, status: u16) -> Value {
        assert_eq!(self.status.as_u16(), status, "unexpected status: {self:?}");
        self.json()
    }

    /// Asserts an API error: this status, a JSON content type, and a body
    /// `{ "code": code, "message": non-empty }`. Returns the body.
    #[track_caller]
    pub fn error(&self, status: u16, code: &str) -> Value {
        let v = self.expect(status);
        let ct = self
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        assert!(ct.starts_with("application/json"), "not JSON: {self:?}");
        assert_eq!(v["code"], code, "wrong code: {self:?}");
        assert!(
            v["message"].as_str().is_some_and(|m| !m.is_empty()),
            "no message: {self:?}"
        );
        v
    }
}

/// An in-process service over a demo catalogue in a temporary data directory.
pub struct Svc {
    /// Owns the data directory (removed on drop).
    _dir: TempDir,
    /// The configuration it was opened with.
    pub cfg: ServiceConfig,
    /// The application state (stop it with [`Svc::stop`]).
    pub state: AppState,
    router: axum::Router,
}

impl Svc {
    /// Seeds the demo catalogue, opens the service with `sets` overrides, builds the router.
    pub async fn start(sets: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        let mut all = vec![format!("storage.data_dir={:?}", data.display().to_string())];
        all.extend(sets.iter().map(|s| (*s).to_owned()));
        let cfg = ServiceConfig::load(
            Some(Path::new(DEFAULT_TOML)),
            Vec::<(String, String)>::new(),
            &all,
        )
        .unwrap_or_else(|e| panic!("config {all:?}: {e}"));
        let c = cfg.clone();
        let state = tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&c.storage.data_dir).expect("mkdir data");
            let log = FeedbackLog::open(&c.log_path(), LogOptions::default()).expect("open log");
            let n = app::import_demo(&log, &demo(), 1).expect("import demo");
            assert!(n > 0, "demo import stored nothing");
            log.close().expect("close log");
            app::open(c).expect("open service")
        })
        .await
        .expect("open task");
        let router = irgan::http::router::router(state.clone());
        Self {
            _dir: dir,
            cfg,
            state,
            router,
        }
    }

    /// Sends one request through the router.
    pub async fn send(
        &self,
        method: Method,
        uri: &str,
        headers: &[(&str, &str)],
        body: impl Into<Body>,
    ) -> Reply {
        let mut b = Request::builder().method(method.clone()).uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let req = b.body(body.into()).expect("request");
        let resp = tokio::time::timeout(Duration::from_secs(30), self.router.clone().oneshot(req))
            .await
            .unwrap_or_else(|_| panic!("{method} {uri} took over 30 s"))
            .expect("infallible");
        let (parts, body) = resp.into_parts();
        let bytes = axum::body::to_bytes(body, usize::MAX)
            .await
            .unwrap_or_else(|e| panic!("{method} {uri}: reading the body: {e}"));
        Reply {
            request: format!("{method} {uri}"),
            status: parts.status,
            headers: parts.headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    /// `GET uri`.
    pub async fn get(&self, uri: &str) -> Reply {
        self.send(Method::GET, uri, &[], Body::empty()).await
    }

    /// `POST uri` with a JSON body (and its Content-Length, as real clients send).
    pub async fn post(&self, uri: &str, body: impl Into<String>) -> Reply {
        let body: String = body.into();
        let len = body.len().to_string();
        let mut r = self
            .send(
                Method::POST,
                uri,
                &[
                    ("content-type", "application/json"),
                    ("content-length", &len),
                ],
                body.clone(),
            )
            .await;
        r.request = format!("POST {uri} {}", truncate(&body, 300));
        r
    }

    /// `GET /v1/model`.
    pub async fn model(&self) -> Value {
        self.get("/v1/model").await.expect(200)
    }

    /// The live version.
    pub async fn version(&self) -> u64 {
        self.model().await["version"].as_u64().expect("version")
    }

    /// Polls `GET /v1/model` until `done` holds (or panics after `limit`); returns that body.
    pub async fn wait_model(
        &self,
        limit: Duration,
        what: &str,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let start = Instant::now();
        loop {
            let m = self.model().await;
            if done(&m) {
                return m;
            }
            assert!(
                start.elapsed() < limit,
                "waited {limit:?} for {what}; last GET /v1/model: {m}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the trainer and closes the log.
    pub async fn stop(self) {
        tokio::time::timeout(Duration::from_secs(30), app::stop(&self.state))
            .await
            .expect("stop took over 30 s")
            .expect("stop");
    }
}

/// The first `n` characters of `s`.
pub fn truncate(s: &str, n: usize) -> String {
    if s.len() <= n {
        s.to_owned()
    } else {
        format!("{}… ({} bytes)", &s[..s.floor_char_boundary(n)], s.len())
    }
}

/// Item ids of a ranking response.
pub fn item_ids(v: &Value) -> Vec<String> {
    v["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items array: {v}"))
        .iter()
        .map(|i| i["item"].as_str().expect("item id").to_owned())
        .collect()
}

/// Cluster of demo item `i{n}`.
pub fn cluster_of(item: &str) -> usize {
    item.strip_prefix('i')
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or_else(|| panic!("not a demo item id: {item}"))
        % CLUSTERS
}
