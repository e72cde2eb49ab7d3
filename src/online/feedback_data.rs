//! The recommendation trainer's training data: feedback folded from the durable log by
//! sequence number into per-pair weights, and the train / hold-out / seen sets built from them.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::data::{IdMap, Interactions};
use crate::online::settings::FeedbackConfig;
use crate::store::feedback_log::{FeedbackLog, LogError, LoggedEvent};

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

/// Everything the trainer knows from feedback.
pub struct FeedbackData {
    cfg: FeedbackConfig,
    log: FeedbackLog,
    /// Highest log position known to hold an event (raised by the handlers, see
    /// [`FeedbackData::latest_seq`]).
    latest_seq: Arc<AtomicU64>,
    /// User ids known to the trainer.
    pub users: IdMap,
    /// Item ids known to the trainer.
    pub items: IdMap,
    /// Summed event weight per (user, item), and whether the pair is held out.
    weights: HashMap<(u32, u32), (f64, bool)>,
    /// Positive pairs to train on.
    pub train: Interactions,
    /// Positive pairs held out to validate candidates.
    pub holdout: Interactions,
    /// Every pair with feedback (excluded from recommendations).
    pub seen: Interactions,
    dirty: bool,
    /// Last log position folded in.
    pub applied_seq: u64,
    /// Acknowledgement times of events folded since the last publish (for the lag metric).
    pub unpublished_acks: Vec<u64>,
}

impl FeedbackData {
    /// Empty data over `log`, continuing the id maps of the loaded snapshot.
    pub fn new(cfg: FeedbackConfig, log: FeedbackLog, users: IdMap, items: IdMap) -> Self {
        Self {
            cfg,
            log,
            latest_seq: Arc::default(),
            users,
            items,
            weights: HashMap::new(),
            train: Interactions::default(),
            holdout: Interactions::default(),
            seen: Interactions::default(),
            dirty: true,
            applied_seq: 0,
            unpublished_acks: Vec::new(),
        }
    }

    /// The position the handlers raise after appending, so an idle trainer skips the log read.
    pub fn latest_seq(&self) -> Arc<AtomicU64> {
        self.latest_seq.clone()
    }

    /// Whether events were folded since the sets were last rebuilt.
    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    /// Reads events newer than `applied_seq` from the log and folds them into the weights.
    pub fn fold_new_events(&mut self) -> Result<(), LogError> {
        if self.latest_seq.load(Ordering::Acquire) <= self.applied_seq && self.applied_seq > 0 {
            return Ok(());
        }
        loop {
            let batch = self.log.read_after(self.applied_seq, BATCH)?;
            let Some(last) = batch.last() else {
                return Ok(());
            };
            self.applied_seq = last.seq;
            for e in &batch {
                self.fold(e);
            }
            self.latest_seq
                .fetch_max(self.applied_seq, Ordering::Release);
        }
    }

    fn fold(&mut self, e: &LoggedEvent) {
        let weight = self.cfg.types.get(&e.event.kind).copied().unwrap_or(0.0);
        let u = self.users.get_or_insert(&e.event.user);
        let i = self.items.get_or_insert(&e.event.item);
        let fraction = self.cfg.holdout_fraction;
        let entry = self
            .weights
            .entry((u, i))
            .or_insert_with(|| (0.0, held_out(&e.event.user, &e.event.item, fraction)));
        // A value scales its type's weight (e.g. a rating); the API layer has checked it is finite.
        entry.0 += weight * e.event.value.unwrap_or(1.0);
        self.unpublished_acks.push(e.acked_unix_ms);
        self.dirty = true;
    }

    /// Rebuilds the train, hold-out and seen sets from the weights (if anything changed).
    pub fn rebuild_sets(&mut self) {
        if !self.dirty {
            return;
        }
        let threshold = self.cfg.positive_threshold;
        let (mut train, mut holdout, mut seen) = (Vec::new(), Vec::new(), Vec::new());
        for (&(u, i), &(w, held)) in &self.weights {
            seen.push((u, i));
            if w >= threshold {
                if held {
                    holdout.push((u, i))
                } else {
                    train.push((u, i))
                }
            }
        }
        let (nu, ni) = (self.users.len(), self.items.len());
        self.train = Interactions::from_pairs(nu, ni, &train);
        self.holdout = Interactions::from_pairs(nu, ni, &holdout);
        self.seen = Interactions::from_pairs(nu, ni, &seen);
        self.dirty = false;
    }
}

#[cfg(test)]
mod tests {
    use super::held_out;

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
}
