//! Ranking order and top-k selection shared by evaluation, training and the service: higher
//! score first, ties to the lower item index, partial selection in O(n + k log k).
//!
//! [`top_k`] ranks one user's scores; [`exact`] scores and ranks many users at once (blocked
//! GEMM); [`ivf`] is the approximate maximum-inner-product index for large catalogues, and
//! [`index`] chooses between them.

use std::cmp::Ordering;

pub mod exact;
pub mod index;
pub mod ivf;

pub use index::{IndexKind, ItemIndex};
pub use ivf::{IvfIndex, IvfParams};

/// Sort key of an f32 `(score, item)`: ascending key order is the ranking order (best first).
///
/// The high 32 bits order the scores descending (NaN mapped last), the low 32 bits are the item
/// index, so keys are distinct and ties fall to the lower index. `-0.0` and `0.0` tie.
#[inline]
pub fn rank_key(score: f32, item: u32) -> u64 {
    let desc = if score.is_nan() {
        u32::MAX
    } else {
        // `+ 0.0` turns -0.0 into +0.0 so both zeros tie.
        let bits = (score + 0.0).to_bits();
        // Monotone map of floats onto u32 (ascending), then flipped to descending.
        let asc = if bits & 0x8000_0000 != 0 {
            !bits
        } else {
            bits | 0x8000_0000
        };
        !asc
    };
    (u64::from(desc) << 32) | u64::from(item)
}

/// The item index stored in a [`rank_key`].
#[inline]
pub fn key_item(key: u64) -> u32 {
    // Truncation keeps exactly the low 32 bits: the item index.
    key as u32
}

/// Ranking order of f64 `(key, item)`: higher key first, ties to the lower item. Keys must be
/// finite with `-0.0` normalised to `0.0` (by `+ 0.0`), so `total_cmp` is the numeric order.
pub fn rank_order(a: &(f64, u32), b: &(f64, u32)) -> Ordering {
    b.0.total_cmp(&a.0).then(a.1.cmp(&b.1))
}

/// Keeps the best `k` of `keys` under `cmp` (smaller = better), sorted best first:
/// O(n + k log k). `cmp` must be a total order for the result to be deterministic.
pub fn select_top_by<T>(keys: &mut Vec<T>, k: usize, cmp: impl Fn(&T, &T) -> Ordering) {
    if k == 0 {
        keys.clear();
        return;
    }
    if k < keys.len() {
        keys.select_nth_unstable_by(k - 1, &cmp);
        keys.truncate(k);
    }
    keys.sort_unstable_by(&cmp);
}

/// Keeps the best `k` of f64 `(key, item)` pairs in [`rank_order`], sorted best first.
pub fn select_top(keys: &mut Vec<(f64, u32)>, k: usize) {
    select_top_by(keys, k, rank_order);
}

/// Calls `f(i, i ∈ excluded)` for every `i < n`, ascending (`excluded` sorted ascending).
#[inline]
pub fn for_each_item(n: usize, excluded: &[u32], mut f: impl FnMut(usize, bool)) {
    let mut e = 0;
    for i in 0..n {
        while e < excluded.len() && (excluded[e] as usize) < i {
            e += 1;
        }
        f(i, e < excluded.len() && excluded[e] as usize == i);
    }
}

/// Calls `f(i)` for every `i < n` not in the sorted `excluded`, ascending.
#[inline]
pub fn for_each_candidate(n: usize, excluded: &[u32], mut f: impl FnMut(usize)) {
    for_each_item(n, excluded, |i, ex| {
        if !ex {
            f(i);
        }
    });
}

/// The best `k` items of `0..scores.len()` not in `excluded` (sorted ascending), best first in
/// the [`rank_key`] order (NaN last, ties to the lower index).
pub fn top_k(scores: &[f32], excluded: &[u32], k: usize) -> Vec<u32> {
    if k == 0 {
        return Vec::new();
    }
    let mut keys = Vec::with_capacity(scores.len());
    for_each_candidate(scores.len(), excluded, |i| {
        keys.push(rank_key(scores[i], i as u32));
    });
    select_top_by(&mut keys, k, u64::cmp);
    keys.into_iter().map(key_item).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f64_selection_matches_a_full_sort() {
        let keys: Vec<(f64, u32)> = [0.5, -1.0, 0.5, 2.0, 0.0, -0.0, 3.0]
            .iter()
            .enumerate()
            .map(|(i, &s)| (s + 0.0, i as u32))
            .collect();
        let mut full = keys.clone();
        full.sort_by(rank_order);
        for k in 0..=keys.len() + 1 {
            let mut top = keys.clone();
            select_top(&mut top, k);
            assert_eq!(top, full[..k.min(full.len())]);
        }
        assert_eq!(
            full.iter().map(|e| e.1).collect::<Vec<_>>(),
            [6, 3, 0, 2, 4, 5, 1]
        );
    }

    #[test]
    fn candidates_skip_the_excluded() {
        let mut seen = Vec::new();
        for_each_item(6, &[1, 4, 9], |i, ex| seen.push((i, ex)));
        assert_eq!(
            seen,
            [
                (0, false),
                (1, true),
                (2, false),
                (3, false),
                (4, true),
                (5, false)
            ]
        );
        let mut c = Vec::new();
        for_each_candidate(6, &[1, 4, 9], |i| c.push(i));
        assert_eq!(c, [0, 2, 3, 5]);
    }
}
