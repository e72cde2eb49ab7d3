//! `POST /v1/feedback`: one event, a JSON array, or NDJSON; durable before acknowledged.

use axum::Json;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::api::ErrorCode;
use crate::api::feedback::{self as api, EventIn};
use crate::http::error::{ApiError, ErrorBody};
use crate::http::json::read_body;
use crate::http::state::AppState;

pub use crate::api::error::Rejected;

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

/// A 400 of `POST /v1/feedback`: an [`ErrorBody`], plus `rejected` when no event was valid.
#[derive(Debug, Serialize, ToSchema)]
pub struct FeedbackError {
    /// Stable code.
    #[schema(value_type = String)]
    pub code: ErrorCode,
    /// Human-readable message.
    pub message: String,
    /// With `invalid_event`: every event's problem, by position.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rejected: Option<Vec<Rejected>>,
}

/// Splits the body into JSON values: an array, one object, or newline-delimited objects.
fn split_body(bytes: &[u8]) -> Result<Vec<Result<Value, String>>, ApiError> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| ApiError::bad_request(ErrorCode::InvalidBody, "the body is not UTF-8"))?;
    let trimmed = text.trim_start();
    if trimmed.is_empty() {
        return Err(ApiError::bad_request(ErrorCode::InvalidBody, "empty body"));
    }
    if trimmed.starts_with('[') {
        let values: Vec<Value> = serde_json::from_str(trimmed).map_err(|e| {
            ApiError::bad_request(ErrorCode::InvalidBody, format!("invalid JSON array: {e}"))
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

/// An id field: a string, or an integer taken as its decimal string.
fn id_field(v: &Value, key: &str) -> Result<Option<String>, String> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) if n.is_u64() || n.is_i64() => Ok(Some(n.to_string())),
        // JSON Schema's integer includes `5.0`: the id is the integer's decimal string.
        Some(Value::Number(n)) if n.as_f64().is_some_and(whole) => {
            Ok(Some(format!("{:.0}", n.as_f64().unwrap_or_default())))
        }
        Some(_) => Err(format!("`{key}` must be a string or an integer")),
    }
}

/// A whole number written as a float, e.g. `5.0`, within ±2^53, where every integer is exact
/// (serde_json also reads an integer literal beyond 64 bits as a float: that one is refused).
fn whole(f: f64) -> bool {
    f.fract() == 0.0 && f.abs() <= 9_007_199_254_740_992.0
}

/// Decodes one JSON event; the shared validation ([`api::validate`]) checks the rest.
fn to_event(v: &Value) -> Result<EventIn, String> {
    let Some(obj) = v.as_object() else {
        return Err("an event must be a JSON object".into());
    };
    const KNOWN: [&str; 6] = ["id", "user", "item", "type", "value", "timestamp"];
    if let Some(k) = obj.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(format!("unknown field `{k}`"));
    }
    let kind = match v.get("type") {
        None | Some(Value::Null) => None,
        Some(Value::String(t)) => Some(t.clone()),
        Some(_) => return Err("`type` is required (a string)".into()),
    };
    let value = match v.get("value") {
        None | Some(Value::Null) => None,
        // Out-of-range and non-finite values are refused by the shared validation.
        Some(Value::Number(n)) => Some(n.as_f64().unwrap_or(f64::NAN)),
        Some(_) => return Err("`value` must be a number".into()),
    };
    let timestamp_ms = match v.get("timestamp") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) if n.is_i64() => n.as_i64(),
        Some(Value::Number(n)) if n.as_f64().is_some_and(whole) => {
            // In range and whole: the cast is exact.
            n.as_f64().map(|f| f as i64)
        }
        Some(_) => {
            return Err("`timestamp` must be integer milliseconds since the Unix epoch".into());
        }
    };
    Ok(EventIn {
        id: id_field(v, "id")?,
        user: id_field(v, "user")?,
        item: id_field(v, "item")?,
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
        description = "One event, an array of events, or NDJSON: the array's events, one JSON \
            object per line (1 to `feedback.max_events_per_request` events).",
        content(
            (crate::http::openapi::FeedbackBatch = "application/json",
                example = json!([
                    {"id": "e1", "user": "ann", "item": "i3", "type": "like"},
                    {"id": "e2", "user": "ann", "item": "i8", "type": "purchase", "value": 2.0, "timestamp": 1700000000000_i64}
                ])),
            (Vec<crate::http::openapi::FeedbackEvent> = "application/x-ndjson"),
        ),
    ),
    responses(
        (status = 200, description = "The valid events are durable.", body = FeedbackOut),
        (status = 400, description = "Codes: `invalid_body` (empty, not UTF-8, or a malformed \
            JSON array), `too_many_events` (more than `feedback.max_events_per_request`), \
            `invalid_event` (no valid event in the request; nothing was stored; the body lists \
            every event's problem in `rejected`).", body = FeedbackError),
        (status = 413, description = "Codes: `body_too_large` (over `server.body_limit_bytes`).", body = ErrorBody),
        (status = 500, description = "Codes: `internal` (the log could not be written; nothing \
            was acknowledged).", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
pub async fn post(State(state): State<AppState>, req: Request) -> Result<Response, ApiError> {
    let bytes = read_body(req, &state).await?;
    let batch = split_body(&bytes)?
        .into_iter()
        .map(|v| v.and_then(|v| to_event(&v)))
        .collect();
    match api::ingest(&state, batch).await {
        Ok(r) => Ok(Json(FeedbackOut {
            accepted: r.accepted,
            duplicates: r.duplicates,
            rejected: r.rejected,
            last_seq: r.last_seq,
        })
        .into_response()),
        Err(e) if e.code == ErrorCode::InvalidEvent => {
            let body = FeedbackError {
                code: e.code,
                message: e.message,
                rejected: Some(e.rejected),
            };
            Ok((StatusCode::BAD_REQUEST, Json(body)).into_response())
        }
        Err(e) => Err(e.into()),
    }
}
