//! Interaction data: ids, sparse sets, file loaders and validation splits.

pub mod dataset;
pub mod error;
pub mod factors;
pub mod format;
pub mod ids;
pub mod interactions;
pub mod letor;
pub mod letor_synth;
pub mod loader;
pub mod records;
pub mod split;
pub mod synth;
pub mod train_data;

pub use ids::IdMap;
pub use interactions::Interactions;
