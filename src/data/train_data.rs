//! The data a recommendation model trains on: id maps, the training file split into fitting and
//! validation positives, and the optional test file.

use crate::data::loader::InteractionSets;
use crate::data::{IdMap, Interactions};

/// Training data after the validation split.
#[derive(Debug, Clone)]
pub struct TrainData {
    /// External user ids.
    pub users: IdMap,
    /// External item ids.
    pub items: IdMap,
    /// The whole training file.
    pub train: InteractionSets,
    /// Training positives minus the validation hold-out: what the models learn from.
    pub fit: Interactions,
    /// Held-out training positives: what model selection looks at.
    pub validation: Interactions,
    /// The test file, read once for the final report.
    pub test: Option<InteractionSets>,
}
