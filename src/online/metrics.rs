//! The service's Prometheus metrics, in a struct that owns its own registry (no globals, so
//! tests stay independent).

use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Every metric the service exports.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    /// Requests by route template, method and status.
    pub requests: IntCounterVec,
    /// Request latency by route template and method.
    pub latency: HistogramVec,
    /// Requests being served.
    pub in_flight: IntGauge,
    /// gRPC calls by full method name (`irgan.v1.RankingService/Recommend`) and status code
    /// (`OK`, `INVALID_ARGUMENT`, ...).
    pub grpc_requests: IntCounterVec,
    /// gRPC call latency by full method name.
    pub grpc_latency: HistogramVec,
    /// Feedback events accepted (durable).
    pub feedback_accepted: IntCounter,
    /// Feedback events rejected as invalid.
    pub feedback_rejected: IntCounter,
    /// Feedback events whose id was already logged.
    pub feedback_deduplicated: IntCounter,
    /// Time for a feedback batch to become durable.
    pub log_append_seconds: Histogram,
    /// Trainer steps (one D block and one G-epoch each).
    pub trainer_steps: IntCounter,
    /// Trainer restarts from the live snapshot after a panic or failure, by task
    /// (`recommendation`, `search`).
    pub trainer_restarts: IntCounterVec,
    /// 1 while a task's trainer runs, 0 while it waits to retry a failed restart or has stopped.
    pub trainer_up: IntGaugeVec,
    /// 1 while a task's trainer is stepping, 0 while it idles (why: `GET /v1/model`).
    pub trainer_busy: IntGaugeVec,
    /// Candidates the recommendation gate evaluated, by outcome (`published`, `refused`).
    pub gate_evaluations: IntCounterVec,
    /// Hold-out users the recommendation gate evaluates (its fixed sample).
    pub gate_users: IntGauge,
    /// D's logistic loss after the last step.
    pub d_loss: Gauge,
    /// G's policy-gradient loss in the last step.
    pub g_loss: Gauge,
    /// D's accuracy on observed positives.
    pub d_accuracy_real: Gauge,
    /// D's accuracy on G's samples.
    pub d_accuracy_generated: Gauge,
    /// Mean entropy of G's policy (nats).
    pub g_entropy: Gauge,
    /// Mean D reward of G's samples.
    pub mean_reward: Gauge,
    /// Version of the live snapshot.
    pub snapshot_version: IntGauge,
    /// Unix time (seconds) the live snapshot was published.
    pub snapshot_published: Gauge,
    /// Time to write and swap a snapshot.
    pub swap_seconds: Histogram,
    /// Snapshots published, by kind: `game` (a gated candidate of the game) or `fold_in` (the
    /// live pair with the users and items of new feedback solved in).
    pub publishes: IntCounterVec,
    /// Users whose cached lists and normalisers the live snapshot took over from the one before.
    pub carried_users: IntGauge,
    /// Candidates refused, by reason.
    pub publish_refusals: IntCounterVec,
    /// Seconds from an event's acknowledgement to the first published snapshot trained on it.
    pub feedback_to_snapshot_seconds: Histogram,
    /// Users in the catalogue.
    pub users: IntGauge,
    /// Items in the catalogue.
    pub items: IntGauge,
    /// 1 when G's top-k queries use the approximate index, 0 when exact.
    pub topk_index_approximate: IntGauge,
    /// Heap bytes of the live snapshot's top-k index (0 when exact).
    pub topk_index_bytes: IntGauge,
    /// Search impressions accepted (durable).
    pub search_impressions: IntCounter,
    /// Search trainer steps (one D pass and one G pass each).
    pub search_trainer_steps: IntCounter,
    /// Mean entropy of the search G's policy over a query's documents (nats).
    pub search_g_entropy: Gauge,
    /// Version of the live search snapshot.
    pub search_snapshot_version: IntGauge,
    /// Hold-out NDCG@10 of the live search ranker at publication.
    pub search_holdout_ndcg: Gauge,
    /// Search candidates refused, by reason.
    pub search_publish_refusals: IntCounterVec,
}

impl Metrics {
    /// Creates and registers every metric in a fresh registry.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let latency_buckets = vec![
            0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
        ];
        let m = Self {
            requests: IntCounterVec::new(
                Opts::new(
                    "irgan_http_requests_total",
                    "HTTP requests by route, method and status",
                ),
                &["route", "method", "status"],
            )?,
            latency: HistogramVec::new(
                HistogramOpts::new(
                    "irgan_http_request_duration_seconds",
                    "HTTP request latency",
                )
                .buckets(latency_buckets.clone()),
                &["route", "method"],
            )?,
            in_flight: IntGauge::new("irgan_http_requests_in_flight", "Requests being served")?,
            grpc_requests: IntCounterVec::new(
                Opts::new(
                    "irgan_grpc_requests_total",
                    "gRPC calls by method and status code",
                ),
                &["method", "code"],
            )?,
            grpc_latency: HistogramVec::new(
                HistogramOpts::new("irgan_grpc_request_duration_seconds", "gRPC call latency")
                    .buckets(latency_buckets.clone()),
                &["method"],
            )?,
            feedback_accepted: IntCounter::new(
                "irgan_feedback_accepted_total",
                "Feedback events accepted (durable)",
            )?,
            feedback_rejected: IntCounter::new(
                "irgan_feedback_rejected_total",
                "Feedback events rejected as invalid",
            )?,
            feedback_deduplicated: IntCounter::new(
                "irgan_feedback_deduplicated_total",
                "Feedback events whose id was already logged",
            )?,
            log_append_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "irgan_feedback_log_append_seconds",
                    "Time for a feedback batch to become durable",
                )
                .buckets(latency_buckets),
            )?,
            trainer_steps: IntCounter::new("irgan_trainer_steps_total", "Trainer steps")?,
            trainer_restarts: IntCounterVec::new(
                Opts::new(
                    "irgan_trainer_restarts_total",
                    "Trainer restarts from the live snapshot after a panic or failure, by task",
                ),
                &["task"],
            )?,
            trainer_up: IntGaugeVec::new(
                Opts::new(
                    "irgan_trainer_up",
                    "1 while the task's trainer runs, 0 while it is down or stopped",
                ),
                &["task"],
            )?,
            trainer_busy: IntGaugeVec::new(
                Opts::new(
                    "irgan_trainer_busy",
                    "1 while the task's trainer is stepping, 0 while it idles",
                ),
                &["task"],
            )?,
            gate_evaluations: IntCounterVec::new(
                Opts::new(
                    "irgan_gate_evaluations_total",
                    "Candidates the recommendation gate evaluated, by outcome",
                ),
                &["outcome"],
            )?,
            gate_users: IntGauge::new(
                "irgan_gate_users",
                "Hold-out users in the recommendation gate's fixed sample",
            )?,
            d_loss: Gauge::new("irgan_trainer_discriminator_loss", "D logistic loss")?,
            g_loss: Gauge::new("irgan_trainer_generator_loss", "G policy-gradient loss")?,
            d_accuracy_real: Gauge::new(
                "irgan_trainer_discriminator_accuracy_real",
                "D accuracy on positives",
            )?,
            d_accuracy_generated: Gauge::new(
                "irgan_trainer_discriminator_accuracy_generated",
                "D accuracy on G's samples",
            )?,
            g_entropy: Gauge::new(
                "irgan_trainer_generator_entropy",
                "Mean entropy of G's policy (nats)",
            )?,
            mean_reward: Gauge::new("irgan_trainer_mean_reward", "Mean D reward of G's samples")?,
            snapshot_version: IntGauge::new("irgan_snapshot_version", "Live snapshot version")?,
            snapshot_published: Gauge::new(
                "irgan_snapshot_published_timestamp_seconds",
                "Unix time the live snapshot was published",
            )?,
            swap_seconds: Histogram::with_opts(HistogramOpts::new(
                "irgan_snapshot_swap_duration_seconds",
                "Time to write and swap a snapshot",
            ))?,
            publishes: IntCounterVec::new(
                Opts::new(
                    "irgan_snapshot_publishes_total",
                    "Snapshots published, by kind (game, fold_in)",
                ),
                &["kind"],
            )?,
            carried_users: IntGauge::new(
                "irgan_snapshot_carried_users",
                "Users whose cached lists the live snapshot took over from the one before",
            )?,
            publish_refusals: IntCounterVec::new(
                Opts::new(
                    "irgan_snapshot_publish_refusals_total",
                    "Candidates refused, by reason",
                ),
                &["reason"],
            )?,
            feedback_to_snapshot_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "irgan_feedback_to_snapshot_seconds",
                    "Seconds from an event's acknowledgement to the first snapshot trained on it",
                )
                .buckets(vec![
                    0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0,
                ]),
            )?,
            users: IntGauge::new("irgan_catalogue_users", "Users in the catalogue")?,
            items: IntGauge::new("irgan_catalogue_items", "Items in the catalogue")?,
            topk_index_approximate: IntGauge::new(
                "irgan_topk_index_approximate",
                "1 when the live snapshot's G top-k uses the approximate (IVF) index, 0 when exact",
            )?,
            topk_index_bytes: IntGauge::new(
                "irgan_topk_index_bytes",
                "Heap bytes of the live snapshot's top-k index (0 when exact)",
            )?,
            search_impressions: IntCounter::new(
                "irgan_search_impressions_accepted_total",
                "Search impressions accepted (durable)",
            )?,
            search_trainer_steps: IntCounter::new(
                "irgan_search_trainer_steps_total",
                "Search trainer steps",
            )?,
            search_g_entropy: Gauge::new(
                "irgan_search_trainer_generator_entropy",
                "Mean entropy of the search G's policy over a query's documents (nats)",
            )?,
            search_snapshot_version: IntGauge::new(
                "irgan_search_snapshot_version",
                "Live search snapshot version",
            )?,
            search_holdout_ndcg: Gauge::new(
                "irgan_search_holdout_ndcg",
                "Hold-out NDCG@10 of the live search ranker at publication",
            )?,
            search_publish_refusals: IntCounterVec::new(
                Opts::new(
                    "irgan_search_publish_refusals_total",
                    "Search candidates refused, by reason",
                ),
                &["reason"],
            )?,
            registry,
        };
        let r = &m.registry;
        r.register(Box::new(m.requests.clone()))?;
        r.register(Box::new(m.latency.clone()))?;
        r.register(Box::new(m.in_flight.clone()))?;
        r.register(Box::new(m.grpc_requests.clone()))?;
        r.register(Box::new(m.grpc_latency.clone()))?;
        r.register(Box::new(m.feedback_accepted.clone()))?;
        r.register(Box::new(m.feedback_rejected.clone()))?;
        r.register(Box::new(m.feedback_deduplicated.clone()))?;
        r.register(Box::new(m.log_append_seconds.clone()))?;
        r.register(Box::new(m.trainer_steps.clone()))?;
        r.register(Box::new(m.trainer_restarts.clone()))?;
        r.register(Box::new(m.trainer_up.clone()))?;
        r.register(Box::new(m.trainer_busy.clone()))?;
        r.register(Box::new(m.gate_evaluations.clone()))?;
        r.register(Box::new(m.gate_users.clone()))?;
        r.register(Box::new(m.d_loss.clone()))?;
        r.register(Box::new(m.g_loss.clone()))?;
        r.register(Box::new(m.d_accuracy_real.clone()))?;
        r.register(Box::new(m.d_accuracy_generated.clone()))?;
        r.register(Box::new(m.g_entropy.clone()))?;
        r.register(Box::new(m.mean_reward.clone()))?;
        r.register(Box::new(m.snapshot_version.clone()))?;
        r.register(Box::new(m.snapshot_published.clone()))?;
        r.register(Box::new(m.swap_seconds.clone()))?;
        r.register(Box::new(m.publishes.clone()))?;
        r.register(Box::new(m.carried_users.clone()))?;
        r.register(Box::new(m.publish_refusals.clone()))?;
        r.register(Box::new(m.feedback_to_snapshot_seconds.clone()))?;
        r.register(Box::new(m.users.clone()))?;
        r.register(Box::new(m.items.clone()))?;
        r.register(Box::new(m.topk_index_approximate.clone()))?;
        r.register(Box::new(m.topk_index_bytes.clone()))?;
        r.register(Box::new(m.search_impressions.clone()))?;
        r.register(Box::new(m.search_trainer_steps.clone()))?;
        r.register(Box::new(m.search_g_entropy.clone()))?;
        r.register(Box::new(m.search_snapshot_version.clone()))?;
        r.register(Box::new(m.search_holdout_ndcg.clone()))?;
        r.register(Box::new(m.search_publish_refusals.clone()))?;
        Ok(m)
    }

    /// Registers a metric owned elsewhere (e.g. the query pool's) in this registry.
    pub fn register(
        &self,
        c: Box<dyn prometheus::core::Collector>,
    ) -> Result<(), prometheus::Error> {
        self.registry.register(c)
    }

    /// The Prometheus text exposition of every metric, with the live snapshot's age computed
    /// at scrape time.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        let families = self.registry.gather();
        if TextEncoder::new().encode(&families, &mut out).is_err() {
            return String::new();
        }
        let mut text = String::from_utf8(out).unwrap_or_default();
        let published = self.snapshot_published.get();
        if published > 0.0 {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64());
            text.push_str("# HELP irgan_snapshot_age_seconds Age of the live snapshot\n");
            text.push_str("# TYPE irgan_snapshot_age_seconds gauge\n");
            text.push_str(&format!(
                "irgan_snapshot_age_seconds {:.3}\n",
                (now - published).max(0.0)
            ));
        }
        text
    }
}
