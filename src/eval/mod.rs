//! Ranking metrics and evaluation protocols.

pub mod letor;
pub mod metrics;
pub mod protocol;

pub use metrics::Metrics;
pub use protocol::{
    Protocol, average, blend_user_metrics, evaluate, evaluate_blend, evaluate_model,
    model_user_metrics,
};
