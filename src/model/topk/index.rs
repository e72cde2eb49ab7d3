//! The choice between exact and approximate top-k, and the index that serves a catalogue.

use std::fmt;
use std::str::FromStr;

use ndarray::ArrayView2;

use super::ivf::{IvfIndex, IvfParams};

/// Catalogues with more items than this get the approximate index under [`IndexKind::Auto`].
pub const AUTO_APPROXIMATE_ABOVE: usize = 100_000;

/// Which top-k search a catalogue uses.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum IndexKind {
    /// Approximate past [`AUTO_APPROXIMATE_ABOVE`] items, exact below.
    #[default]
    Auto,
    /// Score every item (blocked GEMM for many users).
    Exact,
    /// The IVF maximum-inner-product index ([`IvfIndex`]).
    Approximate,
}

impl IndexKind {
    /// Every kind, in declaration order.
    pub const ALL: [Self; 3] = [Self::Auto, Self::Exact, Self::Approximate];

    /// The lowercase name used in configs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Exact => "exact",
            Self::Approximate => "approximate",
        }
    }

    /// Whether a catalogue of `n_items` is searched approximately.
    pub fn is_approximate(self, n_items: usize) -> bool {
        match self {
            Self::Auto => n_items > AUTO_APPROXIMATE_ABOVE,
            Self::Exact => false,
            Self::Approximate => true,
        }
    }
}

impl fmt::Display for IndexKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An index kind that is none of `auto`, `exact`, `approximate`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown index {0:?}: expected \"auto\", \"exact\" or \"approximate\"")]
pub struct ParseIndexKindError(pub String);

impl FromStr for IndexKind {
    type Err = ParseIndexKindError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| ParseIndexKindError(s.to_owned()))
    }
}

/// The top-k search of one catalogue: exact, or an approximate index built for it.
#[derive(Debug, Clone, Default)]
pub enum ItemIndex {
    /// Every item is scored.
    #[default]
    Exact,
    /// The IVF index (boxed: it is large, and built once per snapshot).
    Approximate(Box<IvfIndex>),
}

impl ItemIndex {
    /// The index `kind` calls for over `items` (`n × dim`) and `bias`.
    pub fn build(
        kind: IndexKind,
        items: ArrayView2<f32>,
        bias: &[f32],
        params: &IvfParams,
    ) -> Self {
        if kind.is_approximate(items.nrows().min(bias.len())) {
            Self::Approximate(Box::new(IvfIndex::build(items, bias, params)))
        } else {
            Self::Exact
        }
    }

    /// `"exact"` or `"approximate"`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Exact => "exact",
            Self::Approximate(_) => "approximate",
        }
    }

    /// Heap bytes of the index (0 for exact).
    pub fn memory_bytes(&self) -> usize {
        match self {
            Self::Exact => 0,
            Self::Approximate(ix) => ix.memory_bytes(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_parse_and_resolve_by_size() {
        for k in IndexKind::ALL {
            assert_eq!(k.to_string().parse::<IndexKind>().unwrap(), k);
        }
        let err = "hnsw".parse::<IndexKind>().unwrap_err().to_string();
        assert!(err.contains("hnsw") && err.contains("approximate"));
        assert!(!IndexKind::Auto.is_approximate(100_000));
        assert!(IndexKind::Auto.is_approximate(100_001));
        assert!(IndexKind::Approximate.is_approximate(10));
        assert!(!IndexKind::Exact.is_approximate(10_000_000));
    }
}
