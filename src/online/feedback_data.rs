//! The recommendation trainer's training data: feedback folded from the durable log by
//! sequence number into per-pair weights, and the train / hold-out / seen sets built from them.
//!
//! Work is proportional to change: an event touches one user's weight row, only the rows of
//! touched users are rebuilt in the sets, and the users and items changed since the models
//! last caught up (and since the last publish) are tracked as [`Changes`]. The weights can be
//! saved as a [`Checkpoint`] beside a snapshot and restored from one, so a restart reads only
//! the log's tail.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::data::{IdMap, Interactions};
use crate::online::settings::FeedbackConfig;
use crate::store::backend::SharedLog;
use crate::store::checkpoint::{Checkpoint, PairState};
use crate::store::feedback_log::{LogError, LoggedEvent};

/// Most events read from the log in one batch.
const BATCH: usize = 50_000;

/// Whether a pair of external ids is held out for validation: a fixed hash, so the same pair
/// is held out across restarts.
fn held_out(user: &str, item: &str, fraction: f64) -> bool {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in user.bytes().chain([0xff]).chain(item.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    ((h >> 11) as f64 / (1u64 << 53) as f64) < fraction
}

/// Users and items whose feedback changed (indices into the id maps).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// Users with new feedback.
    pub users: BTreeSet<u32>,
    /// Items with new feedback.
    pub items: BTreeSet<u32>,
}

impl Changes {
    /// Nothing changed.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty() && self.items.is_empty()
    }

    fn add(&mut self, user: u32, item: u32) {
        self.users.insert(user);
        self.items.insert(item);
    }
}

/// One pair in a user's weight row.
#[derive(Debug, Clone, Copy)]
struct Pair {
    item: u32,
    weight: f64,
    held_out: bool,
}

/// Everything the trainer knows from feedback.
pub struct FeedbackData {
    cfg: FeedbackConfig,
    log: SharedLog,
    /// Highest log position known to hold an event (raised by the handlers, see
    /// [`FeedbackData::latest_seq`]).
    latest_seq: Arc<AtomicU64>,
    /// User ids known to the trainer.
    pub users: IdMap,
    /// Item ids known to the trainer.
    pub items: IdMap,
    /// Per user, its pairs sorted by item: summed event weight and whether the pair is held out.
    weights: Vec<Vec<Pair>>,
    /// Positive pairs to train on.
    pub train: Interactions,
    /// Positive pairs held out to validate candidates.
    pub holdout: Interactions,
    /// Every pair with feedback (excluded from recommendations).
    pub seen: Interactions,
    /// Users whose rows of the sets are out of date.
    stale: BTreeSet<u32>,
    /// Changed since the models last caught up (see [`FeedbackData::take_unsynced`]).
    unsynced: Changes,
    /// Changed since the last publish (see [`FeedbackData::published`]).
    unpublished: Changes,
    /// Last log position folded in.
    pub applied_seq: u64,
    /// Acknowledgement times of events folded since the last publish (for the lag metric).
    pub unpublished_acks: Vec<u64>,
    /// Events folded since this data was created or restored.
    pub folded_events: u64,
}

impl FeedbackData {
    /// Empty data over `log`, continuing the id maps of the loaded snapshot.
    pub fn new(cfg: FeedbackConfig, log: impl Into<SharedLog>, users: IdMap, items: IdMap) -> Self {
        Self {
            cfg,
            log: log.into(),
            latest_seq: Arc::default(),
            users,
            items,
            weights: Vec::new(),
            train: Interactions::default(),
            holdout: Interactions::default(),
            seen: Interactions::default(),
            stale: BTreeSet::new(),
            unsynced: Changes::default(),
            unpublished: Changes::default(),
            applied_seq: 0,
            unpublished_acks: Vec::new(),
            folded_events: 0,
        }
    }

    /// The data saved in `checkpoint` (over the id maps of its snapshot): folding continues
    /// after its `trained_through_seq`. Nothing counts as changed: the snapshot's models
    /// already reflect it.
    pub fn restore(
        cfg: FeedbackConfig,
        log: impl Into<SharedLog>,
        users: IdMap,
        items: IdMap,
        checkpoint: &Checkpoint,
    ) -> Self {
        let mut data = Self::new(cfg, log, users, items);
        data.weights = vec![Vec::new(); data.users.len()];
        for p in &checkpoint.pairs {
            let row = &mut data.weights[p.user as usize];
            match row.binary_search_by_key(&p.item, |x| x.item) {
                Ok(k) => row[k].weight += p.weight,
                Err(k) => row.insert(
                    k,
                    Pair {
                        item: p.item,
                        weight: p.weight,
                        held_out: p.held_out,
                    },
                ),
            }
            data.stale.insert(p.user);
        }
        data.applied_seq = checkpoint.trained_through_seq;
        data
    }

    /// The folded feedback as a checkpoint at `applied_seq`.
    pub fn checkpoint(&self) -> Checkpoint {
        let pairs = self
            .weights
            .iter()
            .enumerate()
            .flat_map(|(u, row)| {
                row.iter().map(move |p| PairState {
                    user: u as u32,
                    item: p.item,
                    weight: p.weight,
                    held_out: p.held_out,
                })
            })
            .collect();
        Checkpoint {
            trained_through_seq: self.applied_seq,
            pairs,
        }
    }

    /// The position the handlers raise after appending, so an idle trainer skips the log read.
    pub fn latest_seq(&self) -> Arc<AtomicU64> {
        self.latest_seq.clone()
    }

    /// Whether events were folded since the sets were last rebuilt.
    pub fn is_dirty(&self) -> bool {
        !self.stale.is_empty()
    }

    /// Users and items changed since the last call (what the models have not caught up with).
    pub fn take_unsynced(&mut self) -> Changes {
        std::mem::take(&mut self.unsynced)
    }

    /// Users and items changed since the last publish: what a publish needs to refresh.
    pub fn unpublished_changes(&self) -> &Changes {
        &self.unpublished
    }

    /// Marks everything folded so far as published.
    pub fn published(&mut self) {
        self.unpublished = Changes::default();
        self.unpublished_acks.clear();
    }

    /// Reads events newer than `applied_seq` from the log and folds them into the weights.
    pub fn fold_new_events(&mut self) -> Result<(), LogError> {
        // 0 = not read yet (a restored checkpoint's tail is always read once).
        let latest = self.latest_seq.load(Ordering::Acquire);
        if latest > 0 && latest <= self.applied_seq {
            return Ok(());
        }
        self.fold_through(u64::MAX)
    }

    /// Folds the events with `applied_seq < seq <= through` (used at start to fold what a
    /// snapshot without a checkpoint already covers before the tail it does not).
    pub fn fold_through(&mut self, through: u64) -> Result<(), LogError> {
        while self.applied_seq < through {
            let batch = self.log.read_after(self.applied_seq, BATCH)?;
            if batch.is_empty() {
                break;
            }
            for e in batch.iter().take_while(|e| e.seq <= through) {
                // A repeat of an id past the log's duplicate window counts once: skip it.
                if !e.repeat {
                    self.fold(e);
                }
                self.applied_seq = e.seq;
            }
            self.latest_seq
                .fetch_max(self.applied_seq, Ordering::Release);
        }
        Ok(())
    }

    /// Forgets the changes the models have not caught up with (a new pretraining or the
    /// loaded snapshot covers them).
    pub fn mark_synced(&mut self) {
        self.unsynced = Changes::default();
    }

    /// Whether some users or items changed since the models last caught up.
    pub fn has_unsynced(&self) -> bool {
        !self.unsynced.is_empty()
    }

    fn fold(&mut self, e: &LoggedEvent) {
        let weight = self.cfg.types.get(&e.event.kind).copied().unwrap_or(0.0);
        let u = self.users.get_or_insert(&e.event.user);
        let i = self.items.get_or_insert(&e.event.item);
        if self.weights.len() <= u as usize {
            self.weights.resize_with(u as usize + 1, Vec::new);
        }
        let row = &mut self.weights[u as usize];
        let k = match row.binary_search_by_key(&i, |p| p.item) {
            Ok(k) => k,
            Err(k) => {
                let held = held_out(&e.event.user, &e.event.item, self.cfg.holdout_fraction);
                let pair = Pair {
                    item: i,
                    weight: 0.0,
                    held_out: held,
                };
                row.insert(k, pair);
                k
            }
        };
        // A value scales its type's weight (e.g. a rating); the API layer has checked it is finite.
        row[k].weight += weight * e.event.value.unwrap_or(1.0);
        self.unpublished_acks.push(e.acked_unix_ms);
        self.stale.insert(u);
        self.unsynced.add(u, i);
        self.unpublished.add(u, i);
        self.folded_events += 1;
    }

    /// Rebuilds the rows of the users whose feedback changed in the train, hold-out and seen
    /// sets (the other rows are copied), and grows the sets to the id maps.
    pub fn rebuild_sets(&mut self) {
        if self.stale.is_empty() {
            return;
        }
        let threshold = self.cfg.positive_threshold;
        let (mut train, mut holdout, mut seen) =
            (BTreeMap::new(), BTreeMap::new(), BTreeMap::new());
        for &u in &self.stale {
            let row = self.weights.get(u as usize).map_or(&[][..], Vec::as_slice);
            let positive = |held: bool| {
                row.iter()
                    .filter(|p| p.weight >= threshold && p.held_out == held)
                    .map(|p| p.item)
                    .collect::<Vec<_>>()
            };
            train.insert(u, positive(false));
            holdout.insert(u, positive(true));
            seen.insert(u, row.iter().map(|p| p.item).collect());
        }
        let (nu, ni) = (self.users.len(), self.items.len());
        self.train = self.train.with_rows(nu, ni, &train);
        self.holdout = self.holdout.with_rows(nu, ni, &holdout);
        self.seen = self.seen.with_rows(nu, ni, &seen);
        self.stale.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::feedback_log::{FeedbackEvent, FeedbackLog, LogOptions};

    #[test]
    fn hold_out_is_a_stable_fraction() {
        assert_eq!(held_out("u1", "i1", 0.3), held_out("u1", "i1", 0.3));
        assert!(!held_out("u1", "i1", 0.0));
        assert!(held_out("u1", "i1", 1.0));
        let n = (0..2000)
            .filter(|k| held_out(&format!("u{k}"), "i", 0.25))
            .count();
        assert!((400..600).contains(&n), "{n}");
    }

    fn event(user: &str, item: &str, kind: &str) -> FeedbackEvent {
        FeedbackEvent {
            id: None,
            user: user.into(),
            item: item.into(),
            kind: kind.into(),
            value: None,
            timestamp_ms: None,
        }
    }

    fn cfg() -> FeedbackConfig {
        let mut c = crate::online::settings::ServiceConfig::default().feedback;
        c.holdout_fraction = 0.0;
        c
    }

    /// The sets built from scratch from the same weights, to compare incremental ones with.
    fn from_scratch(d: &FeedbackData) -> (Interactions, Interactions) {
        let mut fresh = FeedbackData::restore(
            d.cfg.clone(),
            d.log.clone(),
            d.users.clone(),
            d.items.clone(),
            &d.checkpoint(),
        );
        fresh.rebuild_sets();
        (fresh.train, fresh.seen)
    }

    #[test]
    fn incremental_sets_match_a_rebuild_and_changes_are_tracked() {
        let dir = tempfile::tempdir().unwrap();
        let log = FeedbackLog::open(&dir.path().join("log"), LogOptions::default()).unwrap();
        let like = cfg()
            .types
            .iter()
            .find(|(_, w)| **w >= cfg().positive_threshold)
            .map(|(k, _)| k.clone())
            .unwrap();
        let first: Vec<_> = (0..30)
            .map(|k| event(&format!("u{}", k % 5), &format!("i{}", k % 7), &like))
            .collect();
        log.append(first).unwrap();
        let mut d = FeedbackData::new(cfg(), log.clone(), IdMap::new(), IdMap::new());
        d.fold_new_events().unwrap();
        d.rebuild_sets();
        assert_eq!((d.train.clone(), d.seen.clone()), from_scratch(&d));
        assert_eq!(d.take_unsynced().users.len(), 5);
        d.published();

        // An existing user likes a new item; a new user likes an old one.
        log.append(vec![
            event("u2", "new-item", &like),
            event("u-new", "i0", &like),
        ])
        .unwrap();
        d.latest_seq().fetch_max(32, Ordering::Release);
        d.fold_new_events().unwrap();
        assert!(d.is_dirty());
        d.rebuild_sets();
        assert_eq!((d.train.clone(), d.seen.clone()), from_scratch(&d));
        let (u2, new_user) = (d.users.get("u2").unwrap(), d.users.get("u-new").unwrap());
        let (new_item, i0) = (d.items.get("new-item").unwrap(), d.items.get("i0").unwrap());
        let changes = d.take_unsynced();
        assert_eq!(changes.users, BTreeSet::from([u2, new_user]));
        assert_eq!(changes.items, BTreeSet::from([new_item, i0]));
        assert_eq!(d.unpublished_changes(), &changes);
        assert!(d.take_unsynced().is_empty());
        assert!(d.train.contains(u2 as usize, new_item));
        assert_eq!(d.train.n_items(), d.items.len());
    }

    #[test]
    fn restoring_a_checkpoint_reads_only_the_tail() {
        let dir = tempfile::tempdir().unwrap();
        let log = FeedbackLog::open(&dir.path().join("log"), LogOptions::default()).unwrap();
        let first: Vec<_> = (0..20)
            .map(|k| event(&format!("u{}", k % 4), &format!("i{k}"), "like"))
            .collect();
        log.append(first).unwrap();
        let mut d = FeedbackData::new(cfg(), log.clone(), IdMap::new(), IdMap::new());
        d.fold_new_events().unwrap();
        d.rebuild_sets();
        let ckpt = d.checkpoint();
        assert_eq!(ckpt.trained_through_seq, 20);

        log.append(vec![event("u9", "i3", "like"), event("u1", "i0", "like")])
            .unwrap();
        let mut r =
            FeedbackData::restore(cfg(), log.clone(), d.users.clone(), d.items.clone(), &ckpt);
        r.fold_new_events().unwrap();
        r.rebuild_sets();
        assert_eq!(r.folded_events, 2);
        assert_eq!(r.applied_seq, 22);
        let mut full = FeedbackData::new(cfg(), log, IdMap::new(), IdMap::new());
        full.fold_new_events().unwrap();
        full.rebuild_sets();
        assert_eq!((r.train, r.seen), (full.train, full.seen));
    }
}
