//! External string ids and the dense indices the models use.

use std::collections::HashMap;

/// The index's hasher: ids are looked up on every request, and foldhash is several times
/// faster than SipHash on short strings while still seeded per process.
type Hasher = foldhash::fast::RandomState;

/// A two-way map between external ids (strings) and dense indices `0..len`.
///
/// Indices are assigned in order of first appearance and never change, so the map can travel
/// with a snapshot and be extended when new users or items arrive.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdMap {
    names: Vec<String>,
    index: HashMap<String, u32, Hasher>,
}

impl IdMap {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// A map whose index `i` is `names[i]`. Fails on a duplicate name (returns it).
    pub fn from_names(names: Vec<String>) -> Result<Self, String> {
        let mut index = HashMap::with_capacity_and_hasher(names.len(), Hasher::default());
        for (i, n) in names.iter().enumerate() {
            if index.insert(n.clone(), i as u32).is_some() {
                return Err(n.clone());
            }
        }
        Ok(Self { names, index })
    }

    /// The map `"0" -> 0, "1" -> 1, …, "n-1" -> n-1`: row numbers of imported factor files.
    pub fn sequential(n: usize) -> Self {
        Self::from_names((0..n).map(|i| i.to_string()).collect()).unwrap_or_default()
    }

    /// The index of `name`, if known.
    pub fn get(&self, name: &str) -> Option<u32> {
        self.index.get(name).copied()
    }

    /// The index of `name`, assigning the next free index if it is new.
    pub fn get_or_insert(&mut self, name: &str) -> u32 {
        if let Some(&i) = self.index.get(name) {
            return i;
        }
        let i = self.names.len() as u32;
        self.names.push(name.to_owned());
        self.index.insert(name.to_owned(), i);
        i
    }

    /// The external id of index `i`.
    pub fn name(&self, i: u32) -> &str {
        &self.names[i as usize]
    }

    /// All external ids, in index order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Number of ids.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// True when no id is known.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assigns_in_order_of_first_appearance() {
        let mut m = IdMap::new();
        assert_eq!(m.get_or_insert("b"), 0);
        assert_eq!(m.get_or_insert("a"), 1);
        assert_eq!(m.get_or_insert("b"), 0);
        assert_eq!(m.name(1), "a");
        assert_eq!(m.get("c"), None);
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn rejects_duplicate_names() {
        assert_eq!(
            IdMap::from_names(vec!["x".into(), "x".into()]),
            Err("x".into())
        );
        assert_eq!(IdMap::sequential(3).get("2"), Some(2));
    }
}
