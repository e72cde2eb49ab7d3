//! A game candidate waiting to go live until its caches are filled.
//!
//! A game publish changes every item row, so none of the live snapshot's per-user caches
//! (default lists, normalisers) carry over, and a snapshot swapped in cold would send every
//! user's first request through a full pass over the catalogue. Instead the accepted candidate
//! is staged: its caches are filled on a background thread while the live snapshot keeps
//! serving (and keeps taking fold-in publishes), and the trainer promotes it once the fill is
//! done, with the feedback that arrived meanwhile folded in (see `Trainer::promote`).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use serde_json::Value;

use crate::online::live::Live;

/// A candidate the gate accepted, filling in the background.
#[derive(Debug)]
pub struct Staged {
    /// The candidate, as it will serve (before the fold-ins made while it fills).
    pub live: Arc<Live>,
    /// Its snapshot metadata (validation, training, game).
    pub metadata: Value,
    /// The gate's candidate and live scores, for the history.
    pub scores: (Option<f64>, Option<f64>),
    /// Users whose feedback was published by fold-ins while it filled: they are solved again
    /// against the candidate's items when it goes live.
    pub changed: BTreeSet<u32>,
    /// When it was staged.
    pub since: Instant,
    done: Arc<AtomicBool>,
    cancel: Arc<AtomicBool>,
}

impl Staged {
    /// Stages `live` and starts filling its caches on a thread of its own (if no thread can
    /// be started it counts as filled: the caches then fill on demand once it is live).
    pub fn start(live: Live, metadata: Value, scores: (Option<f64>, Option<f64>)) -> Self {
        let live = Arc::new(live);
        let (done, cancel) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
        );
        let (l, d, c) = (live.clone(), done.clone(), cancel.clone());
        let spawned = std::thread::Builder::new()
            .name("irgan-stage".into())
            .spawn(move || {
                crate::online::background::lower_priority();
                l.fill(|| !c.load(Ordering::Relaxed));
                d.store(true, Ordering::Release);
            });
        if spawned.is_err() {
            done.store(true, Ordering::Release);
        }
        Self {
            live,
            metadata,
            scores,
            changed: BTreeSet::new(),
            since: Instant::now(),
            done,
            cancel,
        }
    }

    /// Whether the fill has finished.
    pub fn ready(&self) -> bool {
        self.done.load(Ordering::Acquire)
    }
}

impl Drop for Staged {
    /// Stops the fill of a candidate that is dropped (promoted ones are filled already).
    fn drop(&mut self) {
        self.cancel.store(true, Ordering::Relaxed);
    }
}
