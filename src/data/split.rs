//! Validation splits carved out of the training positives.

use super::Interactions;
use crate::rng;

/// Stream tag of the random streams used by [`holdout`] (`rng::stream(seed, SPLIT_STREAM, user)`).
pub const SPLIT_STREAM: u64 = 0x0053_504c_4954; // "SPLIT"

/// Splits `positives` into `(train, validation)` by holding out a fraction of each user's items.
///
/// For each user with `n` positives, the positives are shuffled with
/// `rng::stream(seed, SPLIT_STREAM, user)` and the first `floor(fraction * n + 0.5)` of them go to
/// validation, capped at `n - 1` so that every user keeps at least one positive in train (a user
/// with a single positive keeps it in train). `fraction` is clamped to `[0, 1]` (NaN counts as 0);
/// `fraction == 0` gives an empty validation set.
///
/// The result depends only on `positives`, `fraction` and `seed` (each user has its own stream, so
/// a user's split does not depend on the other users). The two sets are disjoint, their union is
/// `positives`, and both have the same user and item counts as `positives`.
pub fn holdout(positives: &Interactions, fraction: f64, seed: u64) -> (Interactions, Interactions) {
    let fraction = if fraction.is_nan() {
        0.0
    } else {
        fraction.clamp(0.0, 1.0)
    };
    let (n_users, n_items) = (positives.n_users(), positives.n_items());
    let mut train = Vec::with_capacity(positives.nnz());
    let mut valid = Vec::new();
    let mut row = Vec::new();
    for u in 0..n_users {
        let items = positives.items(u);
        let n = items.len();
        // `as usize` saturates; the cap keeps one positive in train.
        let k = ((fraction * n as f64 + 0.5).floor() as usize).min(n.saturating_sub(1));
        if k == 0 {
            train.extend(items.iter().map(|&i| (u as u32, i)));
            continue;
        }
        row.clear();
        row.extend_from_slice(items);
        let mut r = rng::stream(seed, SPLIT_STREAM, u as u64);
        rng::shuffle(&mut r, &mut row);
        valid.extend(row[..k].iter().map(|&i| (u as u32, i)));
        train.extend(row[k..].iter().map(|&i| (u as u32, i)));
    }
    (
        Interactions::from_pairs(n_users, n_items, &train),
        Interactions::from_pairs(n_users, n_items, &valid),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Users with 0..=30 positives over 100 items.
    fn sample() -> Interactions {
        let mut pairs = Vec::new();
        for u in 0..31u32 {
            for k in 0..u {
                pairs.push((u, (u * 7 + k * 3) % 100));
            }
        }
        Interactions::from_pairs(31, 100, &pairs)
    }

    #[test]
    fn deterministic_for_a_seed() {
        let p = sample();
        assert_eq!(holdout(&p, 0.2, 5), holdout(&p, 0.2, 5));
        assert_ne!(holdout(&p, 0.2, 5).1, holdout(&p, 0.2, 6).1);
    }

    #[test]
    fn disjoint_and_union_is_input() {
        let p = sample();
        let (train, valid) = holdout(&p, 0.3, 1);
        assert_eq!(
            (train.n_users(), train.n_items()),
            (p.n_users(), p.n_items())
        );
        assert_eq!(
            (valid.n_users(), valid.n_items()),
            (p.n_users(), p.n_items())
        );
        for u in 0..p.n_users() {
            assert!(valid.items(u).iter().all(|&i| !train.contains(u, i)));
        }
        assert_eq!(train.nnz() + valid.nnz(), p.nnz());
        assert_eq!(train.union(&valid), p);
    }

    #[test]
    fn keeps_at_least_one_in_train() {
        let p = sample();
        for fraction in [0.5, 0.9, 1.0, 7.0] {
            let (train, valid) = holdout(&p, fraction, 3);
            for u in 0..p.n_users() {
                let n = p.items(u).len();
                assert_eq!(train.items(u).is_empty(), n == 0);
                assert_eq!(
                    valid.items(u).len(),
                    if n == 0 { 0 } else { n - train.items(u).len() }
                );
            }
            // A single positive stays in train.
            assert_eq!(train.items(1).len(), 1);
            assert!(valid.items(1).is_empty());
        }
    }

    #[test]
    fn holds_out_the_requested_fraction() {
        let p = sample();
        let (_, valid) = holdout(&p, 0.2, 9);
        for u in 0..p.n_users() {
            let n = p.items(u).len();
            let want = ((0.2 * n as f64 + 0.5).floor() as usize).min(n.saturating_sub(1));
            assert_eq!(valid.items(u).len(), want, "user {u} with {n} positives");
        }
        let ratio = valid.nnz() as f64 / p.nnz() as f64;
        assert!((ratio - 0.2).abs() < 0.02, "ratio {ratio}");
    }

    #[test]
    fn zero_fraction_gives_empty_validation() {
        let p = sample();
        for fraction in [0.0, -1.0, f64::NAN] {
            let (train, valid) = holdout(&p, fraction, 2);
            assert_eq!(train, p);
            assert_eq!(valid.nnz(), 0);
            assert_eq!(valid.n_users(), p.n_users());
        }
        let empty = Interactions::from_pairs(0, 0, &[]);
        let (t, v) = holdout(&empty, 0.5, 0);
        assert_eq!((t.nnz(), v.nnz()), (0, 0));
    }
}
