//! Ranking metrics and evaluation protocols.

pub mod letor;
pub mod metrics;
pub mod protocol;

pub use metrics::Metrics;
pub use protocol::{Protocol, evaluate, evaluate_model};
