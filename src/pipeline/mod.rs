//! Offline orchestration for `irgan train`: load the data, pretrain, play the game, select on
//! validation, read the test set once, and write the log, report, curve and snapshot.
//!
//! This sits above the pure layers (`data`, `model`, `train`, `eval`) and beside the CLI: it is
//! the only offline code that touches files, progress bars and snapshots. The skeleton shared by
//! both tasks lives here ([`run_dir`], [`select`], [`progress`], [`PipelineError`]); each task
//! ([`recommend`], [`search`]) plugs in its data, models and report.

use std::path::PathBuf;

use crate::data::loader::DataError;
use crate::store::SnapshotError;
use crate::train::init::InitError;

pub mod export;
pub mod gate;
mod pretrain;
pub mod progress;
pub mod recommend;
pub mod run_dir;
pub mod search;
pub mod select;
mod start_split;
pub mod tune;

/// Why an offline run failed.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// Input data (interactions, rankings, factors) could not be read.
    #[error(transparent)]
    Data(#[from] DataError),
    /// A starting point could not be built (factor files, diverged pretraining).
    #[error(transparent)]
    Init(#[from] InitError),
    /// The snapshot could not be written (for example a non-finite parameter).
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    /// An output file could not be written.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The data set cannot be trained on.
    #[error("{0}")]
    Unusable(String),
    /// The caller asked the run to stop before it finished (`irgan tune`'s time budget).
    #[error("stopped before the end")]
    Stopped,
    /// Training produced non-finite parameters.
    #[error("{0} diverged (non-finite parameters); lower its learning rate")]
    Diverged(String),
}

/// The recommendation pipeline's error (the name callers used before the skeleton was shared).
pub type TrainError = PipelineError;
/// The search pipeline's error (the name callers used before the skeleton was shared).
pub type SearchError = PipelineError;
