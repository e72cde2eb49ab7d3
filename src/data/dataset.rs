//! Interaction files as sets: positives and seen pairs, and a train/test pair of files over one
//! pair of id maps.

use std::path::Path;

use crate::data::error::DataError;
use crate::data::format::LoadOptions;
use crate::data::records::{Record, read_records};
use crate::data::{IdMap, Interactions};

/// Positives and all observed interactions of one file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InteractionSets {
    /// Records passing the positive threshold (or without a rating).
    pub positives: Interactions,
    /// Every record, whatever its rating (the items a user has seen).
    pub seen: Interactions,
}

/// Builds the positive and seen sets of `records` over `n_users × n_items`.
///
/// The sizes are raised to cover every index in `records` if needed, so this never panics.
pub fn to_sets(
    records: &[Record],
    n_users: usize,
    n_items: usize,
    threshold: f32,
) -> InteractionSets {
    let mut n_users = n_users;
    let mut n_items = n_items;
    let mut seen = Vec::with_capacity(records.len());
    let mut positives = Vec::with_capacity(records.len());
    for r in records {
        n_users = n_users.max(r.user as usize + 1);
        n_items = n_items.max(r.item as usize + 1);
        seen.push((r.user, r.item));
        if r.is_positive(threshold) {
            positives.push((r.user, r.item));
        }
    }
    InteractionSets {
        positives: Interactions::from_pairs(n_users, n_items, &positives),
        seen: Interactions::from_pairs(n_users, n_items, &seen),
    }
}

/// A training file, an optional test file and the id maps covering both.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// External user ids (index = dense user index).
    pub users: IdMap,
    /// External item ids (index = dense item index).
    pub items: IdMap,
    /// Training interactions.
    pub train: InteractionSets,
    /// Test interactions, when a test file was given.
    pub test: Option<InteractionSets>,
}

impl Dataset {
    /// Number of users (the size of every interaction set).
    pub fn n_users(&self) -> usize {
        self.users.len()
    }

    /// Number of items (the size of every interaction set).
    pub fn n_items(&self) -> usize {
        self.items.len()
    }
}

/// Loads a training file and an optional test file.
///
/// `users`/`items` may be pre-seeded (e.g. with [`IdMap::sequential`] or [`crate::data::factors::read_factor_ids`] when
/// factors are imported) so that indices match an existing model. Ids that appear only in the
/// test file are added as well (they have empty training rows). Every [`Interactions`] is sized to
/// the final `users.len() × items.len()`.
pub fn load_dataset(
    train: &Path,
    test: Option<&Path>,
    opts: &LoadOptions,
    users: IdMap,
    items: IdMap,
) -> Result<Dataset, DataError> {
    let (mut users, mut items) = (users, items);
    let train_records = read_records(train, opts, &mut users, &mut items)?;
    let test_records = match test {
        Some(p) => Some(read_records(p, opts, &mut users, &mut items)?),
        None => None,
    };
    let (nu, ni, th) = (users.len(), items.len(), opts.positive_threshold);
    Ok(Dataset {
        train: to_sets(&train_records, nu, ni, th),
        test: test_records.map(|r| to_sets(&r, nu, ni, th)),
        users,
        items,
    })
}
