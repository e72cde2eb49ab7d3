//! Pure, synchronous model maths: the scorer trait and its MF and feature-vector implementations,
//! G's softmax policy and D's sigmoid critic.

pub mod features;
pub mod mf;
pub mod policy;
pub mod scorer;

pub use mf::MfModel;
