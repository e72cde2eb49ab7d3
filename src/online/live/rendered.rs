//! Rendered answers: the serialised items of each user's G list, kept per snapshot so a
//! repeated default recommendation costs a lookup and a copy instead of scoring and
//! formatting twenty items again.
//!
//! What is kept is opaque bytes the caller rendered from this snapshot's cached top list
//! (G, seen excluded): nothing version-specific, so the bytes of a user whose caches carry
//! over to the next snapshot ([`super::Live::carry_from`]) carry with them. Each user keeps
//! the first length (`k`) asked for in a snapshot. Memory is bounded by a byte budget
//! (`server.answer_cache_mb`); past it, answers are rendered per request as before.
//!
//! The bytes are the API's to write, so the API registers how ([`set_renderer`]); with that,
//! a snapshot's background fill renders every user's answer ahead of the requests, at the
//! `k` the last uncached default request asked for (carried from snapshot to snapshot), so
//! the first request of each user after a publish costs a lookup too.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;

use crate::online::live::Live;
use crate::online::query::Scored;

/// Writes a user's default answer from a snapshot's cached list: the API's item format.
pub type Renderer = fn(&Live, Vec<Scored>) -> Option<Bytes>;

/// How the API writes answers; set once per process (the format does not vary by service).
static RENDERER: OnceLock<Renderer> = OnceLock::new();

/// Registers how answers are written, so fills can render them ahead of requests. Later
/// calls are ignored (the first one stays: it is the same function in every service).
pub fn set_renderer(render: Renderer) {
    let _ = RENDERER.set(render);
}

/// The registered renderer, if any.
pub(super) fn renderer() -> Option<Renderer> {
    RENDERER.get().copied()
}

/// One user's rendered list: how many items it holds, and the bytes.
type Slot = OnceLock<(usize, Bytes)>;

/// Per-user rendered answers of one snapshot, within a byte budget.
#[derive(Debug, Default)]
pub(super) struct Rendered {
    slots: Vec<Slot>,
    used: AtomicUsize,
    budget: usize,
    /// The `k` of the latest default request that found no kept answer (0: none yet): what a
    /// fill renders ahead.
    asked_k: AtomicUsize,
}

impl Rendered {
    /// Room for `users` users' answers within `budget` bytes (0 keeps none).
    pub(super) fn new(users: usize, budget: usize) -> Self {
        let users = if budget > 0 { users } else { 0 };
        Self {
            slots: (0..users).map(|_| OnceLock::new()).collect(),
            used: AtomicUsize::new(0),
            budget,
            asked_k: AtomicUsize::new(0),
        }
    }

    /// Notes that a default request asked for `k` items and found no kept answer.
    pub(super) fn note_asked(&self, k: usize) {
        // A load first: the line stays shared while every miss asks for the same k.
        if self.asked_k.load(Ordering::Relaxed) != k {
            self.asked_k.store(k, Ordering::Relaxed);
        }
    }

    /// The `k` to render ahead (0: none asked yet, or no budget).
    pub(super) fn asked_k(&self) -> usize {
        if self.slots.is_empty() {
            return 0;
        }
        self.asked_k.load(Ordering::Relaxed)
    }

    /// Whether `user` has an answer kept.
    pub(super) fn has(&self, user: u32) -> bool {
        self.slots
            .get(user as usize)
            .is_some_and(|s| s.get().is_some())
    }

    /// Whether the budget is spent (nothing more can be kept).
    pub(super) fn full(&self) -> bool {
        self.used() >= self.budget
    }

    /// `user`'s answer of `k` items, if kept.
    pub(super) fn get(&self, user: u32, k: usize) -> Option<Bytes> {
        let (kept_k, bytes) = self.slots.get(user as usize)?.get()?;
        (*kept_k == k).then(|| bytes.clone())
    }

    /// Keeps `user`'s answer of `k` items when the budget allows (the first one kept wins).
    pub(super) fn keep(&self, user: u32, k: usize, bytes: Bytes) {
        let Some(slot) = self.slots.get(user as usize) else {
            return;
        };
        if slot.get().is_some() || !self.reserve(bytes.len()) {
            return;
        }
        let len = bytes.len();
        if slot.set((k, bytes)).is_err() {
            // Another request kept one first: give the reservation back.
            self.used.fetch_sub(len, Ordering::Relaxed);
        }
    }

    /// Takes over the `k` `prev`'s requests asked for.
    pub(super) fn carry_asked(&self, prev: &Rendered) {
        self.note_asked(prev.asked_k.load(Ordering::Relaxed));
    }

    /// Takes over `prev`'s answer for `user` (its caches carried unchanged).
    pub(super) fn carry(&self, prev: &Rendered, user: usize) {
        if let Some((k, bytes)) = prev.slots.get(user).and_then(OnceLock::get) {
            self.keep(user as u32, *k, bytes.clone());
        }
    }

    /// Bytes kept so far.
    pub(super) fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    fn reserve(&self, len: usize) -> bool {
        let before = self.used.fetch_add(len, Ordering::Relaxed);
        if before + len > self.budget {
            self.used.fetch_sub(len, Ordering::Relaxed);
            return false;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_first_answer_per_user_and_length() {
        let r = Rendered::new(3, 100);
        r.keep(1, 10, Bytes::from_static(b"[1,2]"));
        r.keep(1, 10, Bytes::from_static(b"[9]"));
        assert_eq!(r.get(1, 10).as_deref(), Some(&b"[1,2]"[..]));
        // Another length is not that answer.
        assert_eq!(r.get(1, 20), None);
        assert_eq!(r.get(0, 10), None);
        // Out of range users are ignored, not a panic.
        r.keep(7, 10, Bytes::from_static(b"[]"));
        assert_eq!(r.get(7, 10), None);
        assert_eq!(r.used(), 5);
    }

    #[test]
    fn the_budget_bounds_what_is_kept() {
        let r = Rendered::new(3, 8);
        r.keep(0, 1, Bytes::from_static(b"12345"));
        r.keep(1, 1, Bytes::from_static(b"12345"));
        assert!(r.get(0, 1).is_some());
        assert_eq!(r.get(1, 1), None, "over budget");
        assert_eq!(r.used(), 5);
        let none = Rendered::new(3, 0);
        none.keep(0, 1, Bytes::from_static(b"1"));
        assert_eq!(none.get(0, 1), None);
    }

    #[test]
    fn carrying_respects_the_new_budget() {
        let prev = Rendered::new(2, 100);
        prev.keep(0, 4, Bytes::from_static(b"abcdef"));
        prev.keep(1, 4, Bytes::from_static(b"ghijkl"));
        let next = Rendered::new(2, 10);
        next.carry(&prev, 0);
        next.carry(&prev, 1);
        assert_eq!(next.get(0, 4).as_deref(), Some(&b"abcdef"[..]));
        assert_eq!(next.get(1, 4), None);
    }
}
