//! Feedback ingestion: validate each event of a batch, append the valid ones durably, tell
//! the trainer, count.

use std::time::Instant;

use crate::api::error::Rejected;
use crate::api::{AppState, Error, ErrorCode};
use crate::store::feedback_log::FeedbackEvent;

/// Largest |value| of an event (keeps summed weights finite).
pub const MAX_VALUE: f64 = 1e6;

/// Longest accepted id, user or item string, in characters (as JSON Schema's `maxLength`).
pub const MAX_ID_LEN: usize = 256;

/// One event as a transport decoded it, before validation. `None` means the field was absent.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventIn {
    /// Idempotency key.
    pub id: Option<String>,
    /// External user id (required).
    pub user: Option<String>,
    /// External item id (required).
    pub item: Option<String>,
    /// Event type (required; one of `feedback.types`).
    pub kind: Option<String>,
    /// Multiplier of the type's weight.
    pub value: Option<f64>,
    /// Milliseconds since the Unix epoch.
    pub timestamp_ms: Option<i64>,
}

/// What [`ingest`] did with a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Ingested {
    /// Events now durable (new ones).
    pub accepted: usize,
    /// Events whose id was already logged (acknowledged, not stored again).
    pub duplicates: usize,
    /// Invalid events, by index; the valid ones were kept.
    pub rejected: Vec<Rejected>,
    /// Log position of the last accepted event.
    pub last_seq: u64,
}

fn check_id(key: &str, value: Option<String>, required: bool) -> Result<Option<String>, String> {
    let Some(s) = value else {
        return if required {
            Err(format!("`{key}` is required"))
        } else {
            Ok(None)
        };
    };
    if s.is_empty() || s.chars().count() > MAX_ID_LEN || s.chars().any(char::is_control) {
        return Err(format!(
            "`{key}` must be 1 to {MAX_ID_LEN} printable characters"
        ));
    }
    Ok(Some(s))
}

/// Validates one event against the configured types and limits.
pub fn validate(e: EventIn, state: &AppState) -> Result<FeedbackEvent, String> {
    let Some(kind) = e.kind else {
        return Err("`type` is required (a string)".into());
    };
    let types = &state.config.feedback.types;
    if !types.contains_key(&kind) {
        let known: Vec<&str> = types.keys().map(String::as_str).collect();
        return Err(format!(
            "unknown type {kind:?}; configured types: {}",
            known.join(", ")
        ));
    }
    if let Some(x) = e.value
        && (x.is_nan() || x.abs() > MAX_VALUE)
    {
        return Err(format!(
            "`value` must be a number between -{MAX_VALUE} and {MAX_VALUE}"
        ));
    }
    Ok(FeedbackEvent {
        id: check_id("id", e.id, false)?,
        user: check_id("user", e.user, true)?.unwrap_or_default(),
        item: check_id("item", e.item, true)?.unwrap_or_default(),
        kind,
        value: e.value,
        timestamp_ms: e.timestamp_ms,
    })
}

/// Validates a batch (each entry an event, or why the transport could not decode it),
/// appends the valid events to the log in order (durable before this returns), notifies the
/// trainer and counts accepted, rejected and duplicate events.
///
/// Fails with `too_many_events` beyond `feedback.max_events_per_request`, and with
/// `invalid_event` (listing every rejection) when no event is valid; nothing is stored then.
pub async fn ingest(
    state: &AppState,
    batch: Vec<Result<EventIn, String>>,
) -> Result<Ingested, Error> {
    let max = state.config.feedback.max_events_per_request;
    if batch.len() > max {
        return Err(Error::invalid(
            ErrorCode::TooManyEvents,
            format!("at most {max} events per request"),
        ));
    }
    let mut events = Vec::with_capacity(batch.len());
    let mut rejected = Vec::new();
    for (index, e) in batch.into_iter().enumerate() {
        match e.and_then(|e| validate(e, state)) {
            Ok(e) => events.push(e),
            Err(message) => rejected.push(Rejected {
                index,
                code: ErrorCode::InvalidEvent,
                message,
            }),
        }
    }
    let m = &state.metrics;
    m.feedback_rejected.inc_by(rejected.len() as u64);
    if events.is_empty() {
        let mut e = Error::invalid(
            ErrorCode::InvalidEvent,
            "no valid event in the request; nothing was stored",
        );
        e.rejected = rejected;
        return Err(e);
    }
    let started = Instant::now();
    let appended = state
        .log
        .append_async(events)
        .await
        .map_err(Error::internal)?;
    m.log_append_seconds
        .observe(started.elapsed().as_secs_f64());
    let duplicates = appended.iter().filter(|a| a.duplicate).count();
    let accepted = appended.len() - duplicates;
    let last_seq = appended.iter().map(|a| a.seq).max().unwrap_or(0);
    m.feedback_accepted.inc_by(accepted as u64);
    m.feedback_deduplicated.inc_by(duplicates as u64);
    state.trainer.notify(last_seq);
    Ok(Ingested {
        accepted,
        duplicates,
        rejected,
        last_seq,
    })
}
