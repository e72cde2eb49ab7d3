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
use crate::store::backend::SharedLog;
use crate::store::checkpoint::Checkpoint;
use crate::store::feedback_log::LogError;

/// The training data at the log's end: restored from `checkpoint` (taken with `snapshot`) and
/// the events after it, or replayed from the whole log without one. Only events the snapshot's
/// models do not cover are left as changes to fold in; `folded_events` counts the events read.
pub fn restore_data(
    cfg: &FeedbackConfig,
    log: impl Into<SharedLog>,
    snapshot: Option<&Snapshot>,
    checkpoint: Option<Checkpoint>,
) -> Result<FeedbackData, LogError> {
    let log: SharedLog = log.into();
    let Some(s) = snapshot else {
        let mut data = FeedbackData::new(cfg.clone(), log, IdMap::new(), IdMap::new());
        data.fold_through(u64::MAX)?;
        return Ok(data);
    };
    let (users, items) = (s.users.clone(), s.items.clone());
    // A checkpoint past the log's end belongs to another log (the file was replaced): new
    // events would reuse its sequence numbers and be skipped, so replay this log instead.
    let log_end = log.last_seq()?;
    let checkpoint = checkpoint.filter(|c| {
        let usable = c.trained_through_seq <= log_end;
        if !usable {
            tracing::warn!(
                checkpoint_seq = c.trained_through_seq,
                log_end,
                "the checkpoint is ahead of the feedback log; replaying the log instead"
            );
        }
        usable
    });
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
                .unwrap_or(u64::MAX)
                .min(log_end);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::MfModel;
    use crate::rng;
    use crate::store::feedback_log::{FeedbackEvent, FeedbackLog, LogOptions};

    fn like(user: &str, item: &str) -> FeedbackEvent {
        FeedbackEvent {
            id: None,
            user: user.into(),
            item: item.into(),
            kind: "like".into(),
            value: None,
            timestamp_ms: None,
        }
    }

    /// A log of 10 events (users u0..u4) and the data folded from its first 6.
    fn setup(dir: &tempfile::TempDir) -> (FeedbackConfig, FeedbackLog, FeedbackData) {
        let cfg = crate::online::settings::ServiceConfig::default().feedback;
        let log = FeedbackLog::open(&dir.path().join("log"), LogOptions::default()).unwrap();
        let first: Vec<_> = (0..6)
            .map(|k| like(&format!("u{}", k % 3), &format!("i{k}")))
            .collect();
        log.append(first).unwrap();
        let mut data = FeedbackData::new(cfg.clone(), log.clone(), IdMap::new(), IdMap::new());
        data.fold_through(u64::MAX).unwrap();
        log.append(vec![
            like("u3", "i0"),
            like("u4", "i1"),
            like("u0", "i9"),
            like("u3", "i2"),
        ])
        .unwrap();
        (cfg, log, data)
    }

    fn snapshot_of(data: &FeedbackData, metadata: serde_json::Value) -> Snapshot {
        let (nu, ni) = (data.users.len(), data.items.len());
        let mut r = rng::stream(0, 0, 0);
        Snapshot {
            version: 3,
            created_unix_ms: 0,
            generator: MfModel::random(nu, ni, 2, 0.1, &mut r),
            generator_temperature: 1.0,
            discriminator: MfModel::random(nu, ni, 2, 0.1, &mut r),
            users: data.users.clone(),
            items: data.items.clone(),
            metadata,
        }
    }

    #[test]
    fn a_checkpoint_replays_only_the_tail() {
        let dir = tempfile::tempdir().unwrap();
        let (cfg, log, data) = setup(&dir);
        let s = snapshot_of(&data, serde_json::json!({}));
        let mut d = restore_data(&cfg, log, Some(&s), Some(data.checkpoint())).unwrap();
        assert_eq!((d.folded_events, d.applied_seq), (4, 10));
        let changed = d.take_unsynced();
        let names: Vec<&str> = changed.users.iter().map(|&u| d.users.name(u)).collect();
        assert_eq!(names, ["u0", "u3", "u4"]);
    }

    #[test]
    fn without_a_checkpoint_only_events_after_the_snapshot_count_as_changes() {
        let dir = tempfile::tempdir().unwrap();
        let (cfg, log, data) = setup(&dir);
        let s = snapshot_of(&data, serde_json::json!({"trained_through_seq": 6}));
        let mut d = restore_data(&cfg, log, Some(&s), None).unwrap();
        assert_eq!((d.folded_events, d.applied_seq), (10, 10));
        assert_eq!(d.take_unsynced().users.len(), 3);
    }

    #[test]
    fn a_checkpoint_ahead_of_the_log_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let (cfg, log, data) = setup(&dir);
        let s = snapshot_of(&data, serde_json::json!({}));
        let mut ahead = data.checkpoint();
        ahead.trained_through_seq = 99;
        let d = restore_data(&cfg, log, Some(&s), Some(ahead)).unwrap();
        assert_eq!((d.folded_events, d.applied_seq), (10, 10));
    }
}
