//! Interaction data: ids, sparse sets, file loaders and validation splits.

pub mod ids;
pub mod interactions;
pub mod letor;
pub mod letor_synth;
pub mod loader;
pub mod split;
pub mod synth;

pub use ids::IdMap;
pub use interactions::Interactions;
