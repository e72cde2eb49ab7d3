//! The IRGAN minimax game written once for both tasks. Everything here works on the scores of a
//! context's candidates (a user's items, a query's documents): G's policy, proposal, importance
//! weights, rewards, baselines and policy gradient ([`policy`]), the pointwise and pairwise
//! steps ([`pointwise`], [`pairwise`]) and D's losses ([`critic`]). How scores are computed and
//! back-propagated is the players' business ([`crate::model::scorer::Scorer`]); which
//! candidates a context has is the [`Candidates`]' business: every one ([`Exhaustive`]), or a
//! sample from a [`Proposal`] for catalogues too large to score whole ([`proposal`]).

pub mod critic;
pub mod pairwise;
pub mod pointwise;
pub mod policy;
pub mod proposal;

pub use policy::{Baseline, Mixture, Policy, PolicyBuffers, PolicyStep, Sample, reinforce};
pub use proposal::{Proposal, Resampler, SampledCandidates, SampledSet};

/// A context's candidate set: the candidates G's policy ranges over.
///
/// A set is exhaustive (every item of the catalogue, every document of a query) or sampled
/// ([`SampledCandidates`]); a sampled set reports each candidate's log inclusion so the policy
/// can correct its logits (sampled softmax, [`PolicyBuffers::corrected_softmax`]).
pub trait Candidates {
    /// Number of candidates.
    fn len(&self) -> usize;

    /// True when there is no candidate.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The id (item, document index) of the candidate in position `slot`.
    fn id(&self, slot: usize) -> u32;

    /// The log-correction of the candidate's logit: log(S·q/c) for an item drawn c times in S
    /// draws from a proposal q (its expected over its observed multiplicity), 0 for a candidate
    /// that is in the set for sure (every one when exhaustive), +∞ for a masked one.
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
