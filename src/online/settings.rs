//! The service's configuration: `config/default.toml` documents every key; a file, then
//! `IRGAN_SECTION__KEY` environment variables, then `--set` overrides; validated at start with
//! an error that names the key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::{Config, ConfigError, load_document};
use crate::model::topk::{IndexKind, IvfParams};

/// Everything `irgan serve` reads.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ServiceConfig {
    /// HTTP and gRPC servers.
    pub server: ServerConfig,
    /// Where state lives.
    pub storage: StorageConfig,
    /// Feedback events.
    pub feedback: FeedbackConfig,
    /// The background trainer.
    pub trainer: TrainerConfig,
    /// Model and game settings (the same keys as `irgan train`'s config).
    pub training: Config,
    /// The search (learning-to-rank) task.
    pub search: crate::online::search::SearchServiceConfig,
    /// Top-k search of G's queries: exact or an approximate index.
    pub index: IndexConfig,
    /// The NATS JetStream backend (used when `storage.backend = "nats"`).
    pub nats: crate::store::nats::NatsConfig,
}

/// How the service finds G's top items: every item scored, or an approximate
/// maximum-inner-product index (IVF, see `model::topk::ivf`) built with each snapshot.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct IndexConfig {
    /// `"auto"` (approximate past 100,000 items), `"exact"` or `"approximate"`.
    pub kind: IndexKind,
    /// Lists of the IVF index (0 = round(2 · sqrt(items))).
    pub nlist: usize,
    /// Lists visited per query: more is slower and closer to exact.
    pub nprobe: usize,
    /// k-means iterations of the coarse quantiser.
    pub kmeans_iterations: usize,
    /// Seed of the index's k-means sample.
    pub seed: u64,
}

impl Default for IndexConfig {
    fn default() -> Self {
        let p = IvfParams::default();
        Self {
            kind: IndexKind::Auto,
            nlist: p.nlist,
            nprobe: p.nprobe,
            kmeans_iterations: p.iterations,
            seed: p.seed,
        }
    }
}

impl IndexConfig {
    /// The IVF build and search parameters.
    pub fn params(&self) -> IvfParams {
        IvfParams {
            nlist: self.nlist,
            nprobe: self.nprobe,
            iterations: self.kmeans_iterations,
            seed: self.seed,
            ..IvfParams::default()
        }
    }
}

/// HTTP and gRPC server settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// What this process does: `all` (serve and train), `serve` or `train` (`--role`).
    pub role: Role,
    /// Address the REST API listens on.
    pub bind: String,
    /// Address the gRPC API listens on (empty = no gRPC server). Every other setting of this
    /// section (limits, timeout, API key, blend weight) applies to both APIs.
    pub grpc_bind: String,
    /// Largest accepted request body.
    pub body_limit_bytes: usize,
    /// Largest `k` a caller may ask for.
    pub max_k: usize,
    /// Default `k`.
    pub default_k: usize,
    /// Per-request timeout.
    pub request_timeout_ms: u64,
    /// Requests served at once, per API (REST and gRPC each); more get 503 (gRPC:
    /// `RESOURCE_EXHAUSTED`).
    pub concurrency_limit: usize,
    /// API key for write and admin routes (empty = open). Compared in constant time, never logged.
    pub api_key: String,
    /// Serve on a non-loopback address without an API key. Off by default: `irgan serve`
    /// refuses to start open to other machines ([`ServerConfig::check_exposure`]).
    pub allow_open: bool,
    /// Weight of G in the `blend` model (D gets the rest).
    pub blend_weight: f64,
    /// Length of each user's precomputed default top list (G, seen excluded), per snapshot:
    /// computed on the user's first request or in the background once the snapshot is live;
    /// requests with k up to this are then lookups. 0 disables.
    pub precompute_k: usize,
    /// Memory for rendered default answers per snapshot (MiB): each user's serialised G list
    /// from the cache above, kept on its first request so repeats are a copy; 0 disables.
    pub answer_cache_mb: usize,
    /// `/readyz` answers 200 before the first snapshot exists (the service then serves cold
    /// starts and takes feedback), so a fresh Kubernetes pod on an empty volume becomes ready.
    pub ready_without_model: bool,
    /// Threads of the query pool that runs every query but a cached lookup (0 = one per core).
    pub query_threads: usize,
    /// Queries that may wait for the pool; more get 503 + `Retry-After` (gRPC
    /// `RESOURCE_EXHAUSTED`).
    pub query_queue: usize,
    /// Scoring queries on one snapshot answered together (one GEMM per model for all of them).
    pub query_batch: usize,
}

/// Storage settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// Data directory: `feedback.sqlite3` and `snapshots/`.
    pub data_dir: PathBuf,
    /// Snapshots kept on disk.
    pub keep_snapshots: usize,
    /// Where the feedback log and snapshots live: this data directory, or NATS JetStream
    /// (see the `[nats]` section) shared by several machines.
    pub backend: StorageBackend,
}

/// Which store holds the shared state.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum StorageBackend {
    /// SQLite feedback log and snapshot directories under `storage.data_dir` (one process).
    #[default]
    Local,
    /// A JetStream stream, object store and key-value buckets (`[nats]`).
    Nats,
}

/// What one `irgan serve` process does.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Serve and train in one process (the single-node service).
    #[default]
    All,
    /// Serve queries and take feedback; follow the live pointer; no trainer.
    Serve,
    /// Train (while holding the lease; a standby waits for it) and serve.
    Train,
}

/// Feedback settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct FeedbackConfig {
    /// Event types and their weights (negative types allowed); unknown types are rejected.
    pub types: BTreeMap<String, f64>,
    /// A (user, item) pair whose summed weight reaches this is a positive.
    pub positive_threshold: f64,
    /// Largest number of events in one request.
    pub max_events_per_request: usize,
    /// Fraction of positive pairs held out (deterministically by pair) to validate candidates.
    pub holdout_fraction: f64,
}

/// Background trainer settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TrainerConfig {
    /// Run adversarial steps in the background.
    pub enabled: bool,
    /// D-epochs in one trainer step (then one G-epoch).
    pub d_epochs_per_step: usize,
    /// Gate the game's candidate after this many steps...
    pub publish_every_steps: u64,
    /// ...or after this many seconds with at least one step. An accepted candidate is staged:
    /// it goes live once its caches are filled (one candidate at a time).
    pub publish_every_seconds: f64,
    /// Refuse a candidate whose validation metric is below the live one by more than this
    /// (absolute).
    pub tolerance: f64,
    /// Validation metric compared by the gate.
    pub gate_metric: String,
    /// Refuse a candidate whose G policy entropy (nats) is below this (collapse).
    pub min_entropy: f64,
    /// Refuse a candidate whose D accuracy on real positives is below this.
    pub min_d_accuracy: f64,
    /// Re-pretrain from scratch when the catalogue has grown by this factor since the last
    /// pretraining.
    pub regrow_factor: f64,
    /// Hold-out users the gate evaluates candidates on (a fixed, seeded sample; 0 = all).
    pub gate_users: usize,
    /// Gate evaluations in a row without a better gate metric (and no new data) before the
    /// trainer goes idle until new feedback arrives or someone publishes (0 = never idle).
    pub patience: u32,
    /// A gate evaluation counts as an improvement only when it beats the best metric since the
    /// trainer woke by more than this fraction of it (at least 1e-4 absolute): smaller gains
    /// are within what a fixed sample of hold-out users can tell apart, and chasing them kept a
    /// converged game busy for ever.
    pub min_improvement: f64,
    /// A scheduled game candidate goes live only if its gate metric beats the live one's by
    /// `min_improvement` (otherwise: not worse by more than `tolerance`). Publishing a
    /// candidate no better than what serves refills every cache for nothing.
    pub publish_only_gains: bool,
    /// Trust region: after a refused candidate the game restarts from the live pair with its
    /// learning rates halved, down to this fraction (1 = no halving); an accepted publish
    /// restores them.
    pub min_step_scale: f64,
    /// Users one step plays the game on: those with new feedback first, then the next of a
    /// cycle through everyone (0 = every user in every step). Bounds a step's time, so feedback
    /// is published between steps at any catalogue size.
    pub step_users: usize,
    /// Fold acknowledged feedback into the live pair and publish it once it has waited this
    /// long: the users (and new items) of the feedback are solved again against the live
    /// items, no game step and no gate (the item side is the gated one), and every other
    /// user's cached lists carry over.
    pub feedback_publish_seconds: f64,
    /// Recent trainer steps (at most four a second are recorded), and separately gate
    /// evaluations, kept for `GET /v1/training/history` and the console's charts (0 keeps none).
    pub history: usize,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        let mut training = Config::default();
        // Online defaults: an iALS starting point (new users are folded in at once) and a
        // gentle game; the publish gate keeps whichever pair validates better.
        training.generator.init = crate::config::Init::Als;
        training.discriminator.init = crate::config::Init::Als;
        training.generator.dim = 32;
        training.discriminator.dim = 32;
        training.discriminator.l2 = 0.0;
        training.generator.temperature = 1.0;
        training.pretrain.als = crate::config::AlsConfig {
            iterations: 10,
            alpha: 8.0,
            l2: 20.0,
            ..Default::default()
        };
        training.irgan.d_temperature = 2.0;
        training.irgan.baseline = crate::config::Baseline::RunningMean;
        Self {
            server: ServerConfig::default(),
            storage: StorageConfig::default(),
            feedback: FeedbackConfig::default(),
            trainer: TrainerConfig::default(),
            training,
            search: Default::default(),
            index: IndexConfig::default(),
            nats: Default::default(),
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            role: Role::All,
            bind: "127.0.0.1:8080".into(),
            grpc_bind: "127.0.0.1:50051".into(),
            body_limit_bytes: 8 << 20,
            max_k: 1000,
            default_k: 10,
            request_timeout_ms: 10_000,
            concurrency_limit: 1024,
            api_key: String::new(),
            allow_open: false,
            blend_weight: 0.5,
            precompute_k: 100,
            answer_cache_mb: 256,
            ready_without_model: false,
            query_threads: 0,
            query_queue: 256,
            query_batch: 32,
        }
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("data"),
            keep_snapshots: 5,
            backend: StorageBackend::Local,
        }
    }
}

impl Default for FeedbackConfig {
    fn default() -> Self {
        let types = [
            ("view", 0.25),
            ("click", 1.0),
            ("like", 2.0),
            ("import", 1.0),
            ("purchase", 3.0),
            ("dislike", -2.0),
        ];
        Self {
            types: types.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
            positive_threshold: 1.0,
            max_events_per_request: 100_000,
            holdout_fraction: 0.1,
        }
    }
}

impl Default for TrainerConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            d_epochs_per_step: 2,
            publish_every_steps: 100,
            publish_every_seconds: 10.0,
            tolerance: 0.02,
            gate_metric: "NDCG@10".into(),
            min_entropy: 0.1,
            min_d_accuracy: 0.5,
            regrow_factor: 1.5,
            gate_users: 2000,
            patience: 5,
            min_step_scale: 0.0625,
            min_improvement: 0.005,
            publish_only_gains: true,
            step_users: 4096,
            feedback_publish_seconds: 1.0,
            history: 512,
        }
    }
}

impl ServerConfig {
    /// The byte budget of rendered answers per snapshot (`answer_cache_mb`).
    pub fn answer_budget(&self) -> usize {
        self.answer_cache_mb.saturating_mul(1 << 20)
    }

    /// The gRPC listen address, or `None` when gRPC is off (`grpc_bind = ""`).
    pub fn grpc_addr(&self) -> Option<&str> {
        Some(self.grpc_bind.as_str()).filter(|a| !a.is_empty())
    }

    /// Refuses an open service off this machine: a listener (REST or gRPC) on an address
    /// other machines can reach, with no API key, is an error naming the fixes, unless
    /// `allow_open` says it is meant. Loopback stays open, so a laptop demo needs no key.
    /// Checked by `irgan serve` before it imports or binds (not by [`ServiceConfig::load`]:
    /// `import` and `export` bind nothing).
    pub fn check_exposure(&self) -> Result<(), ConfigError> {
        if self.allow_open || !self.api_key.is_empty() {
            return Ok(());
        }
        let listeners = [("server.bind", Some(self.bind.as_str()))]
            .into_iter()
            .chain([("server.grpc_bind", self.grpc_addr())]);
        for (key, addr) in listeners {
            let Some(addr) = addr.filter(|a| !is_loopback(a)) else {
                continue;
            };
            return Err(ConfigError::Invalid {
                key: key.into(),
                message: format!(
                    "{addr} is reachable from other machines but server.api_key is empty, so \
                     anyone could write feedback and publish or roll back snapshots. Set an \
                     API key (server.api_key, or the IRGAN_SERVER__API_KEY environment \
                     variable), listen on loopback (127.0.0.1), or set server.allow_open = \
                     true if an open service is meant"
                ),
            });
        }
        Ok(())
    }
}

/// `host:port` names this machine only: 127.0.0.0/8, ::1 (also IPv4-mapped) or `localhost`.
fn is_loopback(addr: &str) -> bool {
    match addr.parse::<std::net::SocketAddr>() {
        Ok(a) => a.ip().to_canonical().is_loopback(),
        Err(_) => addr
            .rsplit_once(':')
            .is_some_and(|(host, _)| host.eq_ignore_ascii_case("localhost")),
    }
}

impl ServiceConfig {
    /// Reads `path` (if any), applies `IRGAN_SECTION__KEY` variables from `env`, then `--set`
    /// overrides, and validates.
    pub fn load(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        overrides: &[String],
    ) -> Result<Self, ConfigError> {
        // Environment variables first (sorted, so the order is stable), then --set.
        let mut from_env: Vec<String> = env
            .into_iter()
            .filter_map(|(k, v)| {
                let rest = k.strip_prefix("IRGAN_")?;
                let key = rest
                    .split("__")
                    .map(str::to_lowercase)
                    .collect::<Vec<_>>()
                    .join(".");
                Some(format!("{key}={v}"))
            })
            .collect();
        from_env.sort();
        // The online defaults differ from `Config::default()` in the training section, so the
        // file and overrides are layered on the serialised defaults, not on serde's.
        let base = toml::Table::try_from(ServiceConfig::default())
            .map_err(|e| ConfigError::Parse(e.to_string()))?;
        let all = from_env.into_iter().chain(overrides.iter().cloned());
        let cfg: ServiceConfig = load_document(base, path, all)?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks ranges; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, message: &str| {
            Err(ConfigError::Invalid {
                key: key.into(),
                message: message.into(),
            })
        };
        if self.server.bind.parse::<std::net::SocketAddr>().is_err() {
            return bad(
                "server.bind",
                "must be host:port with a numeric IP, e.g. 0.0.0.0:8080",
            );
        }
        if let Some(grpc) = self.server.grpc_addr() {
            let Ok(g) = grpc.parse::<std::net::SocketAddr>() else {
                return bad(
                    "server.grpc_bind",
                    "must be host:port with a numeric IP, e.g. 0.0.0.0:50051, or \"\" (no gRPC)",
                );
            };
            let http = self.server.bind.parse::<std::net::SocketAddr>().ok();
            if g.port() != 0 && http.is_some_and(|h| h.port() == g.port()) {
                return bad(
                    "server.grpc_bind",
                    "must use a different port from server.bind",
                );
            }
        }
        if self.server.max_k == 0
            || self.server.default_k == 0
            || self.server.default_k > self.server.max_k
        {
            return bad("server.default_k", "needs 1 <= default_k <= max_k");
        }
        if self.server.concurrency_limit == 0 || self.server.body_limit_bytes == 0 {
            return bad(
                "server",
                "concurrency_limit and body_limit_bytes must be >= 1",
            );
        }
        if self.server.query_queue == 0 || self.server.query_batch == 0 {
            return bad(
                "server.query_queue",
                "query_queue and query_batch must be >= 1",
            );
        }
        if !(0.0..=1.0).contains(&self.server.blend_weight) {
            return bad("server.blend_weight", "must be in [0, 1]");
        }
        if !(self.trainer.min_improvement.is_finite() && self.trainer.min_improvement >= 0.0) {
            return bad("trainer.min_improvement", "must be a fraction >= 0");
        }
        if !(self.trainer.min_step_scale > 0.0 && self.trainer.min_step_scale <= 1.0) {
            return bad("trainer.min_step_scale", "must be in (0, 1]");
        }
        if self.index.nprobe == 0 {
            return bad("index.nprobe", "must be >= 1 (lists visited per query)");
        }
        if self.index.nlist > 0 && self.index.nprobe > self.index.nlist {
            return bad(
                "index.nprobe",
                "must be <= index.nlist (or set nlist = 0 for round(2 * sqrt(items)) lists)",
            );
        }
        if self.index.nlist > 1 << 20 {
            return bad(
                "index.nlist",
                "must be <= 1048576 (0 = round(2 * sqrt(items)))",
            );
        }
        if self.index.kmeans_iterations == 0 {
            return bad("index.kmeans_iterations", "must be >= 1");
        }
        if let Err((key, message)) = self.nats.validate() {
            return bad(&format!("nats.{key}"), &message);
        }
        if self.storage.backend == StorageBackend::Local && self.server.role != Role::All {
            return bad(
                "server.role",
                "serve and train roles share state through storage.backend = \"nats\"",
            );
        }
        if self.storage.keep_snapshots == 0 {
            return bad("storage.keep_snapshots", "must be >= 1");
        }
        if self.feedback.types.is_empty() || self.feedback.types.values().any(|w| !w.is_finite()) {
            return bad(
                "feedback.types",
                "needs at least one type, each with a finite weight",
            );
        }
        if !(self.feedback.positive_threshold.is_finite() && self.feedback.positive_threshold > 0.0)
        {
            return bad("feedback.positive_threshold", "must be > 0");
        }
        if !(0.0..0.5).contains(&self.feedback.holdout_fraction) {
            return bad("feedback.holdout_fraction", "must be in [0, 0.5)");
        }
        if self.feedback.max_events_per_request == 0 {
            return bad("feedback.max_events_per_request", "must be >= 1");
        }
        let t = &self.trainer;
        if !(t.feedback_publish_seconds.is_finite() && t.feedback_publish_seconds >= 0.0) {
            return bad(
                "trainer.feedback_publish_seconds",
                "must be a number of seconds >= 0",
            );
        }
        if t.d_epochs_per_step == 0 || t.publish_every_steps == 0 {
            return bad(
                "trainer",
                "d_epochs_per_step and publish_every_steps must be >= 1",
            );
        }
        if !(t.publish_every_seconds.is_finite() && t.publish_every_seconds > 0.0) {
            return bad("trainer.publish_every_seconds", "must be > 0");
        }
        if !(t.tolerance.is_finite() && t.tolerance >= 0.0) {
            return bad("trainer.tolerance", "must be >= 0");
        }
        if !(t.regrow_factor.is_finite() && t.regrow_factor > 1.0) {
            return bad("trainer.regrow_factor", "must be > 1");
        }
        self.training.validate().map_err(|e| match e {
            ConfigError::Invalid { key, message } => ConfigError::Invalid {
                key: format!("training.{key}"),
                message,
            },
            other => other,
        })?;
        // The gate metric must be one the evaluator produces for the cut-offs it uses (5, 10).
        let mut probe = self.training.clone();
        probe.eval.ks = vec![5, 10];
        probe.eval.select_metric = t.gate_metric.clone();
        if probe.validate().is_err() {
            return bad(
                "trainer.gate_metric",
                "unknown metric (one of P@5, P@10, NDCG@5, NDCG@10, MAP, MRR, ...)",
            );
        }
        if let Err(message) = self.search.validate() {
            return Err(ConfigError::Invalid {
                key: "search".into(),
                message,
            });
        }
        Ok(())
    }

    /// Path of the feedback log.
    pub fn log_path(&self) -> PathBuf {
        self.storage.data_dir.join("feedback.sqlite3")
    }

    /// Path of the snapshot directory.
    pub fn snapshot_path(&self) -> PathBuf {
        self.storage.data_dir.join("snapshots")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_env_overrides_apply() {
        ServiceConfig::default().validate().unwrap();
        let env = vec![
            ("IRGAN_SERVER__BIND".to_string(), "0.0.0.0:9000".to_string()),
            (
                "IRGAN_TRAINER__PUBLISH_EVERY_STEPS".to_string(),
                "7".to_string(),
            ),
            (
                "IRGAN_TRAINING__GENERATOR__DIM".to_string(),
                "8".to_string(),
            ),
            (
                "IRGAN_SERVER__GRPC_BIND".to_string(),
                "0.0.0.0:9001".to_string(),
            ),
            ("HOME".to_string(), "/root".to_string()),
        ];
        let c = ServiceConfig::load(None, env, &["server.max_k=50".into()]).unwrap();
        assert_eq!(c.server.bind, "0.0.0.0:9000");
        assert_eq!(c.server.grpc_addr(), Some("0.0.0.0:9001"));
        assert_eq!(c.trainer.publish_every_steps, 7);
        assert_eq!(c.training.generator.dim, 8);
        assert_eq!(c.server.max_k, 50);
    }

    /// config/default.toml documents the defaults: it must say exactly what the code does.
    #[test]
    fn default_toml_matches_the_code() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/default.toml");
        let c = ServiceConfig::load(Some(&path), Vec::<(String, String)>::new(), &[]).unwrap();
        assert_eq!(c, ServiceConfig::default());
    }

    #[test]
    fn training_overrides_keep_the_other_online_defaults() {
        let sets = ["training.generator.dim=8".to_string()];
        let c = ServiceConfig::load(None, Vec::<(String, String)>::new(), &sets).unwrap();
        let mut want = ServiceConfig::default();
        want.training.generator.dim = 8;
        assert_eq!(c, want);
    }

    #[test]
    fn index_settings_are_validated() {
        let load = |set: &str| ServiceConfig::load(None, vec![], &[set.to_string()]);
        let c = load("index.kind=approximate").unwrap();
        assert_eq!(c.index.kind, IndexKind::Approximate);
        let e = load("index.kind=hnsw").unwrap_err().to_string();
        assert!(e.contains("hnsw") && e.contains("approximate"), "{e}");
        for (set, key) in [
            ("index.nprobe=0", "index.nprobe"),
            ("index.nlist=1048577", "index.nlist"),
            ("index.kmeans_iterations=0", "index.kmeans_iterations"),
        ] {
            let e = load(set).unwrap_err().to_string();
            assert!(e.contains(key), "{set}: {e}");
        }
        let e = ServiceConfig::load(
            None,
            vec![],
            &["index.nlist=16".into(), "index.nprobe=17".into()],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("index.nprobe") && e.contains("nlist"), "{e}");
    }

    #[test]
    fn an_open_non_loopback_listener_is_refused_unless_meant() {
        let check = |sets: &[&str]| {
            let sets: Vec<String> = sets.iter().map(|s| (*s).to_owned()).collect();
            ServiceConfig::load(None, Vec::<(String, String)>::new(), &sets)
                .expect("load")
                .server
                .check_exposure()
        };
        // The defaults (loopback, no key) and every loopback spelling stay open.
        check(&[]).unwrap();
        for bind in [
            "127.0.0.1:8080",
            "127.8.9.10:8080",
            "[::1]:8080",
            "[::ffff:127.0.0.1]:80",
        ] {
            check(&[&format!("server.bind={bind:?}")]).unwrap();
        }
        assert!(is_loopback("localhost:8080") && is_loopback("LOCALHOST:1"));
        assert!(!is_loopback("0.0.0.0:8080") && !is_loopback("[::]:1"));
        assert!(!is_loopback("192.168.1.5:8080") && !is_loopback("example.com:80"));
        // Either listener on all interfaces without a key: refused, naming it and the fixes.
        for (sets, key, addr) in [
            (
                vec!["server.bind=\"0.0.0.0:8080\""],
                "server.bind",
                "0.0.0.0:8080",
            ),
            (
                vec!["server.grpc_bind=\"[::]:50051\""],
                "server.grpc_bind",
                "[::]:50051",
            ),
            (
                vec!["server.bind=\"10.0.0.7:8080\"", "server.grpc_bind=\"\""],
                "server.bind",
                "10.0.0.7:8080",
            ),
        ] {
            let e = check(&sets).expect_err("open bind").to_string();
            for want in [
                key,
                addr,
                "server.api_key",
                "IRGAN_SERVER__API_KEY",
                "allow_open",
            ] {
                assert!(e.contains(want), "{sets:?}: {want:?} not in {e}");
            }
        }
        // A key, or saying it is meant, lets it start.
        check(&["server.bind=\"0.0.0.0:8080\"", "server.api_key=k"]).unwrap();
        check(&["server.bind=\"0.0.0.0:8080\"", "server.allow_open=true"]).unwrap();
        let env = vec![
            ("IRGAN_SERVER__BIND".to_owned(), "0.0.0.0:8080".to_owned()),
            (
                "IRGAN_SERVER__API_KEY".to_owned(),
                "from-a-secret".to_owned(),
            ),
        ];
        let c = ServiceConfig::load(None, env, &[]).unwrap();
        assert_eq!(c.server.api_key, "from-a-secret");
        c.server.check_exposure().unwrap();
    }

    #[test]
    fn errors_name_the_key() {
        let e = ServiceConfig::load(None, vec![], &["server.bind=nowhere".into()]).unwrap_err();
        assert!(e.to_string().contains("server.bind"), "{e}");
        for bad in [
            "server.grpc_bind=nowhere",
            "server.grpc_bind=127.0.0.1:8080",
        ] {
            let e = ServiceConfig::load(None, vec![], &[bad.into()]).unwrap_err();
            assert!(e.to_string().contains("server.grpc_bind"), "{bad}: {e}");
        }
        // Empty turns gRPC off.
        let c = ServiceConfig::load(None, vec![], &["server.grpc_bind=\"\"".into()]).unwrap();
        assert_eq!(c.server.grpc_addr(), None);
        let env = vec![("IRGAN_SERVER__BINDD".to_string(), "x".to_string())];
        let e = ServiceConfig::load(None, env, &[]).unwrap_err();
        assert!(e.to_string().contains("bindd"), "{e}");
        let e =
            ServiceConfig::load(None, vec![], &["training.irgan.mixture=3".into()]).unwrap_err();
        assert!(e.to_string().contains("training.irgan.mixture"), "{e}");
        let e = ServiceConfig::load(None, vec![], &["trainer.gate_metric=P@0".into()]).unwrap_err();
        assert!(e.to_string().contains("trainer.gate_metric"), "{e}");
    }
}
