//! A synthetic latent-cluster data set, for demos and tests that need no files.
//!
//! Users and items each belong to one of `clusters` tastes; a user's positives come mostly from
//! items of its own cluster (a `noise` fraction are uniform). That structure is what a ranking
//! model must discover, so the data tells a working trainer from a broken one.

use serde::{Deserialize, Serialize};

use crate::data::loader::Record;
use crate::rng;

/// A latent-factor synthetic data set (for demos and tests).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SyntheticConfig {
    /// Users.
    pub users: usize,
    /// Items.
    pub items: usize,
    /// Clusters of users and items.
    pub clusters: usize,
    /// Positives per user.
    pub per_user: usize,
    /// Fraction of each user's positives outside its cluster (noise).
    pub noise: f64,
    /// Fraction of each user's positives put in the test set.
    pub test_fraction: f64,
}

impl Default for SyntheticConfig {
    fn default() -> Self {
        Self {
            users: 300,
            items: 200,
            clusters: 5,
            per_user: 20,
            noise: 0.1,
            test_fraction: 0.2,
        }
    }
}

/// Cluster of user `u` (also used by tests to check recommendations).
pub fn user_cluster(u: usize, clusters: usize) -> usize {
    u % clusters
}

/// Cluster of item `i`.
pub fn item_cluster(i: usize, clusters: usize) -> usize {
    i % clusters
}

/// Generates `(train, test)` records with ids `0..users` and `0..items` (as strings via the
/// caller's id maps: record indices equal external ids). Ratings are 5 (positives) with a few
/// 2s (seen, not liked) so both evaluation protocols have something to exclude.
pub fn generate(cfg: &SyntheticConfig, seed: u64) -> (Vec<Record>, Vec<Record>) {
    let (mut train, mut test) = (Vec::new(), Vec::new());
    let clusters = cfg.clusters.min(cfg.items).max(1);
    for u in 0..cfg.users {
        let mut r = rng::stream(seed, 0x5E7, u as u64);
        let c = user_cluster(u, clusters);
        // The cluster's items are c, c + clusters, c + 2·clusters, … (see `item_cluster`):
        // indexed directly, so generating is O(users × per_user) even for 10⁶ items.
        let own_len = cfg.items.saturating_sub(c).div_ceil(clusters);
        // Popularity within the cluster: lower ranks are likelier (a Zipf-like skew).
        let mut chosen = Vec::with_capacity(cfg.per_user);
        let mut tries = 0;
        while chosen.len() < cfg.per_user.min(cfg.items) && tries < cfg.per_user * 50 {
            tries += 1;
            let i = if rng::unit(&mut r) < cfg.noise || own_len == 0 {
                rng::below(&mut r, cfg.items)
            } else {
                let x = rng::unit(&mut r);
                c + (((x * x) * own_len as f64) as usize % own_len) * clusters
            };
            if !chosen.contains(&i) {
                chosen.push(i);
            }
        }
        for (k, &i) in chosen.iter().enumerate() {
            let rating = if k % 7 == 6 { 2.0 } else { 5.0 };
            let rec = Record {
                user: u as u32,
                item: i as u32,
                rating: Some(rating),
                timestamp: None,
            };
            if rng::unit(&mut r) < cfg.test_fraction {
                test.push(rec)
            } else {
                train.push(rec)
            }
        }
    }
    (train, test)
}

/// Writes records as `user<TAB>item<TAB>rating` lines.
pub fn to_text(records: &[Record]) -> String {
    let mut s = String::with_capacity(records.len() * 12);
    for r in records {
        s.push_str(&format!(
            "{}\t{}\t{}\n",
            r.user,
            r.item,
            r.rating.unwrap_or(1.0)
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mostly_in_cluster_and_reproducible() {
        let cfg = SyntheticConfig::default();
        let (train, test) = generate(&cfg, 1);
        assert_eq!(generate(&cfg, 1).0, train);
        assert!(!test.is_empty());
        let inside = train
            .iter()
            .filter(|r| {
                user_cluster(r.user as usize, cfg.clusters)
                    == item_cluster(r.item as usize, cfg.clusters)
            })
            .count();
        assert!(inside as f64 > 0.8 * train.len() as f64);
    }
}
