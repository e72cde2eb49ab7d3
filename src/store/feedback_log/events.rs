//! The feedback log's records: an event as received, as stored, and the outcome of appending it.

use serde::{Deserialize, Serialize};

use super::error::LogError;

/// One feedback event as received (external ids).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedbackEvent {
    /// Client-chosen idempotency key; an event whose id is already logged is not stored again.
    pub id: Option<String>,
    /// External user id.
    pub user: String,
    /// External item id.
    pub item: String,
    /// Kind of feedback, e.g. `click`, `purchase`, `rating` (serialised as `type`).
    #[serde(rename = "type")]
    pub kind: String,
    /// Optional strength of the feedback (e.g. a rating); must be finite.
    pub value: Option<f64>,
    /// Optional client-side event time, milliseconds since the Unix epoch.
    pub timestamp_ms: Option<i64>,
}

/// A stored event with its log position and the time it became durable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoggedEvent {
    /// Position in the log: 1, 2, 3, … without gaps.
    pub seq: u64,
    /// When the event's transaction was written, milliseconds since the Unix epoch.
    pub acked_unix_ms: u64,
    /// The event as received.
    #[serde(flatten)]
    pub event: FeedbackEvent,
    /// A repeat of an id stored at a lower seq (possible only in a log whose deduplication
    /// has a time window, like JetStream's): readers advance past it without folding it.
    #[serde(skip)]
    pub repeat: bool,
}

/// Result of appending one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// Log position of the event (of the original if `duplicate`).
    pub seq: u64,
    /// The event's id was already in the log, so it was not stored again.
    pub duplicate: bool,
}

/// Rejects events a log cannot store faithfully (a non-finite value); every backend checks
/// a batch with it before storing anything.
pub(crate) fn validate(events: &[FeedbackEvent]) -> Result<(), LogError> {
    for (index, e) in events.iter().enumerate() {
        if let Some(v) = e.value
            && !v.is_finite()
        {
            return Err(LogError::Invalid {
                index,
                reason: format!("value {v} is not finite"),
            });
        }
    }
    Ok(())
}
