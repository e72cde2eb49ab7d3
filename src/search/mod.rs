//! Search: learning to rank on feature vectors (LETOR), pointwise and pairwise IRGAN.
//!
//! - [`data`] reads LETOR/SVMlight files grouped by query; [`synth`] makes synthetic ones.
//! - [`scorer`] holds the linear and MLP scorers with hand-written backward passes.
//! - [`objective`] turns one query's scores into loss gradients (logistic, RankNet, LambdaRank).
//! - [`train`] runs the baselines' passes and the IRGAN games.
//! - [`metrics`] computes P@k, NDCG@k, MAP and MRR as LETOR's evaluator does.
//! - [`config`] and [`pipeline`] drive `irgan train` for `task = "search"`.

pub mod config;
pub mod data;
pub mod metrics;
pub mod objective;
pub mod pipeline;
pub mod scorer;
pub mod snapshot;
pub mod synth;
pub mod train;
