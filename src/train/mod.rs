//! Training: starting points and pretraining (BPR, DNS, APR, iALS), the adversarial game written once
//! (`game`) and its wiring for recommendation (`irgan`, `mf_critic`) and search (`ltr`).

pub mod als;
pub mod apr;
pub mod bpr;
pub mod game;
pub mod init;
pub mod irgan;
pub mod ltr;
pub mod mf_critic;
pub mod objective;
pub mod optim;
pub mod settings;
pub mod softmax;
pub mod softmax_fold_in;
