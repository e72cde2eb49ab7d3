//! What one `irgan serve` process does past one machine (`server.role`): a serving replica
//! follows the live pointer and hot-swaps each new snapshot; a trainer holds the lease (see
//! [`crate::online::lease_holder`]) before it trains and learns of events other replicas
//! appended by following the log's tail.
//!
//! The search task's replicas follow their own pointer the same way ([`follow_pointer`]).
//!
//! A serving replica is stateless: it starts from the live snapshot in the store (ready
//! without a trainer), keeps no feedback of its own (it appends to the shared log) and has no
//! trainer thread, so training commands answer `no_trainer`. Its "seen" pairs (excluded from
//! recommendations) are the snapshot's checkpoint: everything the trainer had folded when it
//! published.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use prometheus::IntGauge;
use serde_json::json;

use crate::data::{IdMap, Interactions};
use crate::model::MfModel;
use crate::online::live::{Live, ModelStore};
use crate::online::metrics::Metrics;
use crate::online::settings::ServiceConfig;
use crate::online::trainer::TrainerHandle;
use crate::rng;
use crate::store::Snapshot;
use crate::store::backend::{SharedLog, SharedSnapshots};
use crate::store::snapshot::SnapshotError;
use crate::store::snapshot_dir::Checkpointed;

/// How long the follower waits on the pointer before checking again.
const POINTER_WAIT: Duration = Duration::from_secs(1);

/// The metrics of the parts shared through NATS.
#[derive(Clone)]
pub struct ClusterMetrics {
    /// 1 while this process holds the trainer lease, 0 while it waits as a standby.
    pub lease_held: IntGauge,
    /// Events in the shared log the trainer has not folded yet.
    pub consumer_lag: IntGauge,
}

impl ClusterMetrics {
    /// Creates the gauges and registers them with `metrics`.
    pub fn register(metrics: &Metrics) -> Result<Self, prometheus::Error> {
        let m = Self {
            lease_held: IntGauge::new(
                "irgan_trainer_lease_held",
                "1 while this process holds the trainer lease (the active trainer), else 0",
            )?,
            consumer_lag: IntGauge::new(
                "irgan_feedback_consumer_lag_events",
                "Events in the shared feedback stream the trainer has not folded yet",
            )?,
        };
        metrics.register(Box::new(m.lease_held.clone()))?;
        metrics.register(Box::new(m.consumer_lag.clone()))?;
        Ok(m)
    }
}

/// What a replica serves for a snapshot read from the store.
fn live_of(cfg: &ServiceConfig, (snapshot, checkpoint): Checkpointed) -> Live {
    let (nu, ni) = (snapshot.users.len(), snapshot.items.len());
    let mut rows: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for p in checkpoint.iter().flat_map(|c| &c.pairs) {
        rows.entry(p.user).or_default().push(p.item);
    }
    for row in rows.values_mut() {
        row.sort_unstable();
        row.dedup();
    }
    let seen = Interactions::default().with_rows(nu, ni, &rows);
    let s = &cfg.server;
    Live::new(snapshot, &seen, s.precompute_k, s.blend_weight)
        .with_answer_budget(s.answer_budget())
        .with_index(&cfg.index)
}

/// What a replica serves before anything was published.
fn empty_live(cfg: &ServiceConfig) -> Live {
    let t = &cfg.training;
    let model = |dim| MfModel::random(0, 0, dim, 0.0, &mut rng::stream(0, 0, 0));
    let empty = Snapshot {
        version: 0,
        created_unix_ms: Snapshot::now_unix_ms(),
        generator: model(t.generator.dim),
        generator_temperature: t.generator.temperature as f32,
        discriminator: model(t.discriminator.dim),
        users: IdMap::new(),
        items: IdMap::new(),
        metadata: json!({ "source": "empty" }),
    };
    Live::new(empty, &Interactions::default(), 0, cfg.server.blend_weight)
}

fn count(metrics: &Metrics, live: &Live) {
    metrics.snapshot_version.set(live.version() as i64);
    metrics
        .snapshot_published
        .set(live.published_unix_ms as f64 / 1e3);
    metrics.users.set(live.snapshot.users.len() as i64);
    metrics.items.set(live.snapshot.items.len() as i64);
}

/// A serving replica's live store: the live snapshot loaded now (so the replica is ready
/// without the trainer), then a thread that follows the pointer and swaps in each version.
pub fn follow_live(
    cfg: &ServiceConfig,
    snapshots: SharedSnapshots,
    metrics: Arc<Metrics>,
) -> Result<Arc<ModelStore>, std::io::Error> {
    let (loaded, skipped) = snapshots.newest_valid_checkpointed();
    for (v, e) in skipped {
        tracing::warn!(version = v, error = %e, "skipping unreadable snapshot");
    }
    let live = match loaded {
        Some(c) => live_of(cfg, c),
        None => empty_live(cfg),
    };
    count(&metrics, &live);
    tracing::info!(version = live.version(), "replica loaded the live snapshot");
    let store = Arc::new(ModelStore::new(live));
    let (cfg, follower) = (cfg.clone(), store.clone());
    let current = store.current().version();
    let pointer = snapshots.clone();
    follow_pointer(
        "recommendation",
        current,
        move |seen, timeout| pointer.wait_live_change(seen, timeout),
        move |v| {
            let live = live_of(&cfg, snapshots.read_checkpointed(v)?);
            count(&metrics, &live);
            follower.publish(Arc::new(live));
            Ok(())
        },
    )?;
    Ok(store)
}

/// Follows the live pointer of the `kind` task's snapshots on a thread of its own: waits for
/// it to move from `current` (`wait`, in slices of a second), then has `load` read, verify
/// and swap in the new version. A failed wait or load is logged and retried a second later,
/// while the replica goes on serving what it has.
pub fn follow_pointer(
    kind: &'static str,
    mut current: u64,
    wait: impl Fn(u64, Duration) -> Result<Option<u64>, SnapshotError> + Send + 'static,
    mut load: impl FnMut(u64) -> Result<(), SnapshotError> + Send + 'static,
) -> Result<(), std::io::Error> {
    std::thread::Builder::new()
        .name(format!("{kind}-follower"))
        .spawn(move || {
            loop {
                match wait(current, POINTER_WAIT) {
                    Ok(None) => {}
                    Ok(Some(v)) => match load(v) {
                        Ok(()) => {
                            current = v;
                            tracing::info!(kind, version = v, "replica swapped in the live snapshot");
                        }
                        Err(e) => {
                            tracing::warn!(kind, version = v, error = %e, "cannot load the live snapshot; retrying");
                            std::thread::sleep(POINTER_WAIT);
                        }
                    },
                    Err(e) => {
                        tracing::warn!(kind, error = %e, "cannot watch the live pointer; retrying");
                        std::thread::sleep(POINTER_WAIT);
                    }
                }
            }
        })?;
    Ok(())
}

/// Makes the trainer read events other processes appended to a shared log, and exports how
/// far behind it is.
pub fn follow_tail(log: &SharedLog, trainer: &TrainerHandle, lag: IntGauge) {
    let trainer = trainer.clone();
    log.follow(Arc::new(move |last| {
        trainer.notify(last);
        let applied = trainer.status().applied_seq;
        lag.set(last.saturating_sub(applied) as i64);
    }));
}
