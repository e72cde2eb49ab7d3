//! Training: starting points and pretraining (BPR, DNS, iALS), and the adversarial games.

pub mod als;
pub mod bpr;
pub mod init;
pub mod irgan;
pub mod ltr;
pub mod objective;
pub mod optim;
pub mod settings;
