//! `POST /v1/feedback`: one event, a JSON array, or NDJSON; durable before acknowledged.

use std::time::Instant;

use axum::Json;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::http::error::{ApiError, ErrorBody};
use crate::http::json::read_body;
use crate::http::state::AppState;
use crate::store::feedback_log::FeedbackEvent;

/// Largest |value| of an event (keeps summed weights finite).
const MAX_VALUE: f64 = 1e6;

/// Longest accepted id, user or item string.
const MAX_ID_LEN: usize = 256;

/// One rejected event of a batch.
#[derive(Debug, Serialize, ToSchema)]
pub struct Rejected {
    /// Position in the request (0-based).
    pub index: usize,
    /// Stable code.
    pub code: &'static str,
    /// What is wrong.
    pub message: String,
}

/// Response of `POST /v1/feedback`.
#[derive(Debug, Serialize, ToSchema)]
pub struct FeedbackOut {
    /// Events now durable (new ones).
    pub accepted: usize,
    /// Events whose id was already logged (acknowledged, not stored again).
    pub duplicates: usize,
    /// Invalid events, by index; the valid ones were kept.
    pub rejected: Vec<Rejected>,
    /// Log position of the last accepted event.
    pub last_seq: u64,
}

/// Splits the body into JSON values: an array, one object, or newline-delimited objects.
fn split_body(bytes: &[u8]) -> Result<Vec<Result<Value, String>>, ApiError> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| ApiError::bad_request("invalid_body", "the body is not UTF-8"))?;
    let trimmed = text.trim_start();
    if trimmed.is_empty() {
        return Err(ApiError::bad_request("invalid_body", "empty body"));
    }
    if trimmed.starts_with('[') {
        let values: Vec<Value> = serde_json::from_str(trimmed).map_err(|e| {
            ApiError::bad_request("invalid_body", format!("invalid JSON array: {e}"))
        })?;
        return Ok(values.into_iter().map(Ok).collect());
    }
    if let Ok(v) = serde_json::from_str::<Value>(trimmed) {
        return Ok(vec![Ok(v)]);
    }
    Ok(text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str::<Value>(l).map_err(|e| format!("invalid JSON: {e}")))
        .collect())
}

fn id_field(v: &Value, key: &str, required: bool) -> Result<Option<String>, String> {
    let s = match v.get(key) {
        None | Some(Value::Null) if !required => return Ok(None),
        None | Some(Value::Null) => return Err(format!("`{key}` is required")),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) if n.is_u64() || n.is_i64() => n.to_string(),
        Some(_) => return Err(format!("`{key}` must be a string or an integer")),
    };
    if s.is_empty() || s.len() > MAX_ID_LEN || s.chars().any(char::is_control) {
        return Err(format!(
            "`{key}` must be 1 to {MAX_ID_LEN} printable characters"
        ));
    }
    Ok(Some(s))
}

/// Validates one event against the configured types.
fn to_event(v: &Value, state: &AppState) -> Result<FeedbackEvent, String> {
    let Some(obj) = v.as_object() else {
        return Err("an event must be a JSON object".into());
    };
    const KNOWN: [&str; 6] = ["id", "user", "item", "type", "value", "timestamp"];
    if let Some(k) = obj.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(format!("unknown field `{k}`"));
    }
    let kind = match v.get("type") {
        Some(Value::String(t)) => t.clone(),
        _ => return Err("`type` is required (a string)".into()),
    };
    if !state.config.feedback.types.contains_key(&kind) {
        let known: Vec<&str> = state
            .config
            .feedback
            .types
            .keys()
            .map(String::as_str)
            .collect();
        return Err(format!(
            "unknown type {kind:?}; configured types: {}",
            known.join(", ")
        ));
    }
    let value = match v.get("value") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => match n.as_f64().filter(|x| x.abs() <= MAX_VALUE) {
            Some(x) => Some(x),
            None => {
                return Err(format!(
                    "`value` must be a number between -{MAX_VALUE} and {MAX_VALUE}"
                ));
            }
        },
        Some(_) => return Err("`value` must be a number".into()),
    };
    let timestamp_ms = match v.get("timestamp") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) if n.is_i64() => n.as_i64(),
        Some(_) => {
            return Err("`timestamp` must be integer milliseconds since the Unix epoch".into());
        }
    };
    Ok(FeedbackEvent {
        id: id_field(v, "id", false)?,
        user: id_field(v, "user", true)?.unwrap_or_default(),
        item: id_field(v, "item", true)?.unwrap_or_default(),
        kind,
        value,
        timestamp_ms,
    })
}

/// `POST /v1/feedback`
#[utoipa::path(
    post,
    path = "/v1/feedback",
    tag = "feedback",
    summary = "Log feedback events",
    description = "Appends events to the durable feedback log; the answer comes after they are \
        committed. The body is one event object, a JSON array of events, or NDJSON (one event \
        object per line); the shape is detected from the body, whatever its content type. Events \
        are idempotent on `id`: a logged id is acknowledged as a duplicate and not stored again. \
        Invalid events are listed in `rejected` by position while the valid ones are stored; if \
        none is valid, nothing is stored and the answer is a 400.",
    request_body(
        description = "One event, an array of events, or NDJSON lines of events \
            (at most `feedback.max_events_per_request` events).",
        content(
            (crate::http::openapi::FeedbackBatch = "application/json",
                example = json!([
                    {"id": "e1", "user": "ann", "item": "i3", "type": "like"},
                    {"id": "e2", "user": "ann", "item": "i8", "type": "purchase", "value": 2.0, "timestamp": 1700000000000_i64}
                ])),
            (crate::http::openapi::FeedbackEvent = "application/x-ndjson"),
        ),
    ),
    responses(
        (status = 200, description = "The valid events are durable.", body = FeedbackOut),
        (status = 400, description = "Codes: `invalid_body` (empty, not UTF-8, or a malformed \
            JSON array), `too_many_events` (more than `feedback.max_events_per_request`), \
            `invalid_event` (no valid event in the request; nothing was stored; the body lists \
            every event's problem in `rejected`).", body = crate::http::openapi::FeedbackError),
        (status = 413, description = "Codes: `body_too_large` (over `server.body_limit_bytes`).", body = ErrorBody),
        (status = 500, description = "Codes: `internal` (the log could not be written; nothing \
            was acknowledged).", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
pub async fn post(State(state): State<AppState>, req: Request) -> Result<Response, ApiError> {
    let bytes = read_body(req, &state).await?;
    let values = split_body(&bytes)?;
    let max = state.config.feedback.max_events_per_request;
    if values.len() > max {
        return Err(ApiError::bad_request(
            "too_many_events",
            format!("at most {max} events per request"),
        ));
    }
    let mut events = Vec::with_capacity(values.len());
    let mut rejected = Vec::new();
    for (index, v) in values.iter().enumerate() {
        match v
            .as_ref()
            .map_err(Clone::clone)
            .and_then(|v| to_event(v, &state))
        {
            Ok(e) => events.push(e),
            Err(message) => rejected.push(Rejected {
                index,
                code: "invalid_event",
                message,
            }),
        }
    }
    state
        .metrics
        .feedback_rejected
        .inc_by(rejected.len() as u64);
    if events.is_empty() {
        let body = serde_json::json!({
            "code": "invalid_event",
            "message": "no valid event in the request; nothing was stored",
            "rejected": rejected,
        });
        return Ok((StatusCode::BAD_REQUEST, Json(body)).into_response());
    }
    let started = Instant::now();
    let appended = state
        .log
        .append_async(events)
        .await
        .map_err(ApiError::internal)?;
    state
        .metrics
        .log_append_seconds
        .observe(started.elapsed().as_secs_f64());
    let duplicates = appended.iter().filter(|a| a.duplicate).count();
    let accepted = appended.len() - duplicates;
    let last_seq = appended.iter().map(|a| a.seq).max().unwrap_or(0);
    state.metrics.feedback_accepted.inc_by(accepted as u64);
    state
        .metrics
        .feedback_deduplicated
        .inc_by(duplicates as u64);
    state.trainer.notify(last_seq);
    Ok(Json(FeedbackOut {
        accepted,
        duplicates,
        rejected,
        last_seq,
    })
    .into_response())
}
