//! The IRGAN minimax game written once for both tasks. Everything here works on the scores of a
//! context's candidates (a user's items, a query's documents): G's policy, proposal, importance
//! weights, rewards, baselines and policy gradient ([`policy`]), the pointwise and pairwise
//! steps ([`pointwise`], [`pairwise`]) and D's losses ([`critic`]). How scores are computed and
//! back-propagated is the players' business ([`crate::model::scorer::Scorer`]); which
//! candidates a context has is the [`Candidates`]' business.

pub mod critic;
pub mod pairwise;
pub mod pointwise;
pub mod policy;

pub use policy::{Baseline, Mixture, Policy, PolicyBuffers, PolicyStep, Sample, reinforce};

/// A context's candidate set: the candidates G's policy ranges over.
///
/// Today every set is exhaustive (every item of the catalogue, every document of a query); a
/// sampled set for large catalogues will report each candidate's inclusion probability so the
/// policy can correct its logits (sampled softmax).
pub trait Candidates {
    /// Number of candidates.
    fn len(&self) -> usize;

    /// True when there is no candidate.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The id (item, document index) of the candidate in position `slot`.
    fn id(&self, slot: usize) -> u32;

    /// log q(slot), the log-probability that the candidate entered the set (0 when exhaustive).
    fn log_inclusion(&self, slot: usize) -> f64 {
        let _ = slot;
        0.0
    }
}

/// Every candidate `0..n` of a context: all items of a catalogue, all documents of a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exhaustive(pub usize);

impl Candidates for Exhaustive {
    fn len(&self) -> usize {
        self.0
    }

    fn id(&self, slot: usize) -> u32 {
        slot as u32
    }
}
