//! Restart without replay: the recommendation trainer's training data rebuilt from the loaded
//! snapshot's checkpoint plus only the feedback logged after it.
//!
//! A snapshot written before checkpoints existed still loads: the log is replayed from the
//! start, and only the events after the snapshot's `trained_through_seq` (its metadata) count
//! as changes its models have not seen.

use crate::data::IdMap;
use crate::online::feedback_data::FeedbackData;
use crate::online::settings::FeedbackConfig;
use crate::store::Snapshot;
use crate::store::checkpoint::Checkpoint;
use crate::store::feedback_log::{FeedbackLog, LogError};

/// The training data at the log's end: restored from `checkpoint` (taken with `snapshot`) and
/// the events after it, or replayed from the whole log without one. Only events the snapshot's
/// models do not cover are left as changes to fold in; `folded_events` counts the events read.
pub fn restore_data(
    cfg: &FeedbackConfig,
    log: FeedbackLog,
    snapshot: Option<&Snapshot>,
    checkpoint: Option<Checkpoint>,
) -> Result<FeedbackData, LogError> {
    let Some(s) = snapshot else {
        let mut data = FeedbackData::new(cfg.clone(), log, IdMap::new(), IdMap::new());
        data.fold_through(u64::MAX)?;
        return Ok(data);
    };
    let (users, items) = (s.users.clone(), s.items.clone());
    let mut data = match &checkpoint {
        Some(c) => FeedbackData::restore(cfg.clone(), log, users, items, c),
        None => {
            let mut data = FeedbackData::new(cfg.clone(), log, users, items);
            // A snapshot that does not say how far it was trained covers the whole log (what
            // the service assumed before snapshots recorded it).
            let covered = s
                .metadata
                .get("trained_through_seq")
                .and_then(serde_json::Value::as_u64)
                .unwrap_or(u64::MAX);
            data.fold_through(covered)?;
            data
        }
    };
    data.mark_synced();
    data.published();
    let from = data.applied_seq;
    data.fold_through(u64::MAX)?;
    tracing::info!(
        version = s.version,
        checkpoint = checkpoint.is_some(),
        replayed_events = data.folded_events,
        after_seq = from,
        through_seq = data.applied_seq,
        "restored the training data"
    );
    Ok(data)
}
