//! Sparse user → items sets in compressed rows (CSR).

/// For each user, a sorted set of item indices (compressed sparse rows).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Interactions {
    n_items: usize,
    indptr: Vec<usize>,
    indices: Vec<u32>,
}

impl Interactions {
    /// Builds the sets from `(user, item)` pairs; duplicates collapse. `n_users`/`n_items` may exceed
    /// the largest index seen (users and items without interactions).
    pub fn from_pairs(n_users: usize, n_items: usize, pairs: &[(u32, u32)]) -> Self {
        let mut counts = vec![0usize; n_users + 1];
        for &(u, _) in pairs {
            counts[u as usize + 1] += 1;
        }
        for u in 0..n_users {
            counts[u + 1] += counts[u];
        }
        let mut fill = counts.clone();
        let mut indices = vec![0u32; pairs.len()];
        for &(u, i) in pairs {
            indices[fill[u as usize]] = i;
            fill[u as usize] += 1;
        }
        // Sort and deduplicate each row, then compact.
        let mut indptr = Vec::with_capacity(n_users + 1);
        indptr.push(0);
        let mut out = Vec::with_capacity(indices.len());
        for u in 0..n_users {
            let row = &mut indices[counts[u]..counts[u + 1]];
            row.sort_unstable();
            let mut last = None;
            for &i in row.iter() {
                if last != Some(i) {
                    out.push(i);
                    last = Some(i);
                }
            }
            indptr.push(out.len());
        }
        Self {
            n_items,
            indptr,
            indices: out,
        }
    }

    /// The sorted items of `user` (empty for an unknown user).
    pub fn items(&self, user: usize) -> &[u32] {
        match (self.indptr.get(user), self.indptr.get(user + 1)) {
            (Some(&a), Some(&b)) => &self.indices[a..b],
            _ => &[],
        }
    }

    /// Whether `user` has `item`.
    pub fn contains(&self, user: usize, item: u32) -> bool {
        self.items(user).binary_search(&item).is_ok()
    }

    /// Number of users (rows).
    pub fn n_users(&self) -> usize {
        self.indptr.len().saturating_sub(1)
    }

    /// Number of items (columns).
    pub fn n_items(&self) -> usize {
        self.n_items
    }

    /// Total number of `(user, item)` pairs.
    pub fn nnz(&self) -> usize {
        self.indices.len()
    }

    /// All pairs, user-major.
    pub fn pairs(&self) -> Vec<(u32, u32)> {
        (0..self.n_users())
            .flat_map(|u| self.items(u).iter().map(move |&i| (u as u32, i)))
            .collect()
    }

    /// Users with at least one item.
    pub fn active_users(&self) -> Vec<usize> {
        (0..self.n_users())
            .filter(|&u| !self.items(u).is_empty())
            .collect()
    }

    /// The union of two sets over the same users and items.
    pub fn union(&self, other: &Self) -> Self {
        let mut pairs = self.pairs();
        pairs.extend(other.pairs());
        Self::from_pairs(
            self.n_users().max(other.n_users()),
            self.n_items.max(other.n_items),
            &pairs,
        )
    }

    /// The pairs of `self` that are not in `other`.
    pub fn difference(&self, other: &Self) -> Self {
        let pairs: Vec<(u32, u32)> = self
            .pairs()
            .into_iter()
            .filter(|&(u, i)| !other.contains(u as usize, i))
            .collect();
        Self::from_pairs(self.n_users(), self.n_items, &pairs)
    }

    /// The same sets over `n_users` rows and at least `n_items` items: a catalogue that grew, or
    /// an older, smaller model's user space (rows of users it does not know are dropped, so
    /// rolling back to an earlier snapshot cannot index past it).
    pub fn resized(&self, n_users: usize, n_items: usize) -> Self {
        let pairs: Vec<(u32, u32)> = self
            .pairs()
            .into_iter()
            .filter(|&(u, _)| (u as usize) < n_users)
            .collect();
        Self::from_pairs(n_users, n_items.max(self.n_items), &pairs)
    }

    /// The same sets over `n_users` rows and `n_items` items with the rows of `changed`
    /// (user → sorted, unique items) replaced: a copy of the untouched rows, no sorting, so
    /// refreshing a few users costs a memory copy rather than a rebuild.
    pub fn with_rows(
        &self,
        n_users: usize,
        n_items: usize,
        changed: &std::collections::BTreeMap<u32, Vec<u32>>,
    ) -> Self {
        let mut indptr = Vec::with_capacity(n_users + 1);
        indptr.push(0);
        let extra: usize = changed.values().map(Vec::len).sum();
        let mut indices = Vec::with_capacity(self.indices.len() + extra);
        let mut next = changed.iter().peekable();
        for u in 0..n_users {
            match next.peek() {
                Some(&(&c, row)) if c as usize == u => {
                    indices.extend_from_slice(row);
                    next.next();
                }
                _ => indices.extend_from_slice(self.items(u)),
            }
            indptr.push(indices.len());
        }
        Self {
            n_items: n_items.max(self.n_items),
            indptr,
            indices,
        }
    }

    /// Transposed: for each item, its users.
    pub fn transpose(&self) -> Self {
        let pairs: Vec<(u32, u32)> = self.pairs().into_iter().map(|(u, i)| (i, u)).collect();
        Self::from_pairs(self.n_items, self.n_users(), &pairs)
    }

    /// How many users hold each item.
    pub fn item_counts(&self) -> Vec<u32> {
        let mut c = vec![0u32; self.n_items];
        for &i in &self.indices {
            c[i as usize] += 1;
        }
        c
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn resizing_to_fewer_users_drops_their_rows() {
        let s = Interactions::from_pairs(3, 4, &[(0, 1), (2, 3)]);
        let smaller = s.resized(2, 4);
        assert_eq!(smaller.n_users(), 2);
        assert_eq!(smaller.items(0), &[1]);
        assert!(smaller.items(1).is_empty());
        assert_eq!(s.resized(5, 6).items(2), &[3]);
    }

    use super::*;

    #[test]
    fn rows_are_sorted_and_unique() {
        let m = Interactions::from_pairs(3, 5, &[(0, 4), (0, 1), (0, 4), (2, 3)]);
        assert_eq!(m.items(0), &[1, 4]);
        assert!(m.items(1).is_empty());
        assert_eq!(m.items(2), &[3]);
        assert_eq!(m.items(9), &[] as &[u32]);
        assert!(m.contains(0, 4) && !m.contains(0, 3));
        assert_eq!(m.nnz(), 3);
        assert_eq!(m.active_users(), vec![0, 2]);
        assert_eq!(m.transpose().items(4), &[0]);
        assert_eq!(m.item_counts(), vec![0, 1, 0, 1, 1]);
        let other = Interactions::from_pairs(3, 5, &[(0, 4)]);
        assert_eq!(m.difference(&other).pairs(), vec![(0, 1), (2, 3)]);
    }

    #[test]
    fn replacing_rows_keeps_the_others() {
        let m = Interactions::from_pairs(3, 5, &[(0, 4), (0, 1), (2, 3)]);
        let changed = std::collections::BTreeMap::from([(1, vec![0, 2]), (3, vec![5])]);
        let r = m.with_rows(4, 6, &changed);
        let expected =
            Interactions::from_pairs(4, 6, &[(0, 1), (0, 4), (1, 0), (1, 2), (2, 3), (3, 5)]);
        assert_eq!(r, expected);
    }
}
