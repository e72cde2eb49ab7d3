//! Offline orchestration for `irgan train`: load the data, pretrain, play the game, select on
//! validation, read the test set once, and write the log, report, curve and snapshot.
//!
//! This sits above the pure layers (`data`, `model`, `train`, `eval`) and beside the CLI: it is
//! the only offline code that touches files, progress bars and snapshots.

pub mod recommend;
pub mod search;
