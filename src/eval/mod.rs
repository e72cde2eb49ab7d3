//! Ranking metrics and evaluation protocols.

pub mod letor;
pub mod metrics;
pub mod protocol;

pub use metrics::Metrics;
pub use protocol::{Protocol, evaluate, evaluate_blend, evaluate_model};
