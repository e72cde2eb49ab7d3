//! An earlier model pair brought to today's catalogue: the rows of users and items learnt
//! since it was trained are added (new users folded in against its item factors), so it can be
//! served with today's ids, gated against today's hold-out, or trained on again.
//!
//! Indices never change once given (see [`IdMap`]), so an older snapshot's id maps are a prefix
//! of today's; a snapshot whose maps are not (e.g. copied from another data directory) cannot
//! be brought forward and is refused with the reason.

use std::collections::BTreeSet;

use crate::data::{IdMap, Interactions};
use crate::model::MfModel;
use crate::online::catalogue;
use crate::online::settings::ServiceConfig;
use crate::rng;
use crate::store::Snapshot;

/// Whether `old` is a prefix of `new` (every old index names the same id today).
fn is_prefix(old: &IdMap, new: &IdMap) -> bool {
    old.len() <= new.len() && old.names().iter().zip(new.names()).all(|(a, b)| a == b)
}

/// Why a snapshot's ids do not fit today's catalogue, if they do not.
pub fn check_ids(snapshot: &Snapshot, users: &IdMap, items: &IdMap) -> Result<(), String> {
    for (kind, old, new) in [
        ("user", &snapshot.users, users),
        ("item", &snapshot.items, items),
    ] {
        if !is_prefix(old, new) {
            return Err(format!(
                "snapshot {}'s {kind} ids ({}) are not a prefix of today's ({}): it was not made \
                 from this feedback log",
                snapshot.version,
                old.len(),
                new.len()
            ));
        }
    }
    Ok(())
}

/// `snapshot`'s pair grown to `users` × `items` (new rows drawn small, seeded by `stream`),
/// then the new users and the `changed` ones re-solved on `train` against the pair's items and
/// the new items given vectors from their users, each the way the model was pretrained (see
/// [`catalogue::refresh`]): the fold-ins the trainer had made since `snapshot` are made again.
pub fn grown_pair(
    snapshot: &Snapshot,
    n_users: usize,
    n_items: usize,
    train: &Interactions,
    cfg: &ServiceConfig,
    stream: u64,
    changed: &BTreeSet<u32>,
) -> (MfModel, MfModel) {
    let (mut g, mut d) = (snapshot.generator.clone(), snapshot.discriminator.clone());
    let (old_users, old_items) = (g.n_users(), g.n_items());
    let mut r = rng::stream(cfg.training.seed, 0xAC7, stream);
    g.grow(n_users, n_items, cfg.training.generator.init_scale, &mut r);
    d.grow(
        n_users,
        n_items,
        cfg.training.discriminator.init_scale,
        &mut r,
    );
    if train.n_users() >= n_users {
        let mut users: BTreeSet<u32> = (old_users..n_users).map(|u| u as u32).collect();
        users.extend(changed.iter().filter(|&&u| (u as usize) < n_users));
        let t = &cfg.training;
        catalogue::refresh(&mut g, &t.generator, t, train, &users, old_items);
        catalogue::refresh(&mut d, &t.discriminator, t, train, &users, old_items);
    }
    (g, d)
}

/// `snapshot` with its pair grown to today's catalogue and today's id maps, keeping its
/// version and metadata: what activating an older snapshot serves.
pub fn brought_forward(
    snapshot: Snapshot,
    users: &IdMap,
    items: &IdMap,
    train: &Interactions,
    cfg: &ServiceConfig,
) -> Result<Snapshot, String> {
    check_ids(&snapshot, users, items)?;
    let (g, d) = grown_pair(
        &snapshot,
        users.len(),
        items.len(),
        train,
        cfg,
        snapshot.version,
        &BTreeSet::new(),
    );
    Ok(Snapshot {
        generator: g,
        discriminator: d,
        users: users.clone(),
        items: items.clone(),
        ..snapshot
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(names: &[&str]) -> IdMap {
        IdMap::from_names(names.iter().map(|s| (*s).to_owned()).collect()).unwrap()
    }

    fn snapshot(users: &[&str], items: &[&str]) -> Snapshot {
        let mut r = rng::stream(1, 2, 3);
        Snapshot {
            version: 1,
            created_unix_ms: 0,
            generator: MfModel::random(users.len(), items.len(), 4, 0.1, &mut r),
            generator_temperature: 1.0,
            discriminator: MfModel::random(users.len(), items.len(), 4, 0.1, &mut r),
            users: ids(users),
            items: ids(items),
            metadata: serde_json::json!({}),
        }
    }

    #[test]
    fn an_old_pair_grows_to_todays_catalogue_and_keeps_its_rows() {
        let old = snapshot(&["a", "b"], &["x", "y"]);
        let (users, items) = (ids(&["a", "b", "ann"]), ids(&["x", "y", "z"]));
        let train = Interactions::from_pairs(3, 3, &[(0, 0), (2, 1), (2, 2)]);
        let cfg = ServiceConfig::default();
        let s = brought_forward(old.clone(), &users, &items, &train, &cfg).unwrap();
        assert_eq!((s.generator.n_users(), s.generator.n_items()), (3, 3));
        assert_eq!(
            (s.discriminator.n_users(), s.discriminator.n_items()),
            (3, 3)
        );
        assert_eq!(s.users, users);
        assert_eq!(s.version, 1);
        assert_eq!(s.generator.user.row(1), old.generator.user.row(1));
        assert!(s.generator.is_finite() && s.discriminator.is_finite());
        let other = ids(&["b", "a", "ann"]);
        let e = brought_forward(old, &other, &items, &train, &cfg).unwrap_err();
        assert!(e.contains("not a prefix"), "{e}");
    }

    /// A refused candidate restarts the game from the live pair: the fold-ins of users with
    /// feedback since that pair was published must be made again, or their feedback is lost.
    #[test]
    fn changed_users_are_folded_in_again() {
        let old = snapshot(&["a", "b"], &["x", "y"]);
        let train = Interactions::from_pairs(2, 2, &[(0, 1), (1, 0)]);
        let cfg = ServiceConfig::default();
        let (same, _) = grown_pair(&old, 2, 2, &train, &cfg, 1, &BTreeSet::new());
        assert_eq!(same, old.generator);
        let changed = BTreeSet::from([0]);
        let (g, d) = grown_pair(&old, 2, 2, &train, &cfg, 1, &changed);
        assert_ne!(g.user.row(0), old.generator.user.row(0));
        assert_eq!(g.user.row(1), old.generator.user.row(1));
        assert_eq!(d.user.row(1), old.discriminator.user.row(1));
        let mut want = old.generator.clone();
        let t = &cfg.training;
        catalogue::refresh(&mut want, &t.generator, t, &train, &changed, 2);
        assert_eq!(g, want);
    }

    /// The README tour's crash: rolling back to a snapshot older than today's users and items
    /// (a new user with feedback on a new item) must serve today's catalogue, not panic.
    #[test]
    fn activating_an_old_snapshot_after_the_catalogue_grew_serves_todays_ids() {
        use crate::online::live::Live;
        let old = snapshot(&["a", "b"], &["x", "y"]);
        let (users, items) = (ids(&["a", "b", "ann"]), ids(&["x", "y", "z", "w"]));
        let pairs = [(0, 0), (1, 1), (2, 1), (2, 2), (2, 3)];
        let seen = Interactions::from_pairs(3, 4, &pairs);
        let cfg = ServiceConfig::default();
        let s = brought_forward(old, &users, &items, &seen, &cfg).unwrap();
        let live = Live::new(s, &seen, 10, 0.5);
        assert_eq!(live.seen.items(2), &[1, 2, 3]);
        live.fill(|| true);
        assert!(live.filled());
        // ann's seen items are excluded from her list; only x is left.
        let top: Vec<u32> = live
            .precomputed_top(2, 10)
            .unwrap()
            .iter()
            .map(|s| s.item)
            .collect();
        assert_eq!(top, vec![0], "{top:?}");
    }
}
