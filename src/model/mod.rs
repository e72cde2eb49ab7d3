//! Pure, synchronous model maths: the scorer trait and its MF and feature-vector implementations,
//! G's softmax policy and D's sigmoid critic, and the ranking maths shared by evaluation,
//! training and the service (top-k, blend, exploration, similarity).

pub mod blend;
pub mod catalogue;
pub mod explore;
pub mod features;
pub mod mf;
pub mod panel;
pub mod policy;
pub mod scorer;
pub mod similarity;
pub mod topk;

pub use mf::MfModel;
