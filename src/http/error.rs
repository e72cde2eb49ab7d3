//! The one error type of the HTTP API: a status and a stable machine-readable code in a JSON
//! body `{ "code": ..., "message": ... }`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::api::{self, ErrorCode, ErrorKind};

/// An API error.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable code, e.g. `invalid_parameter`.
    pub code: ErrorCode,
    /// Human-readable message (never internal details).
    pub message: String,
}

/// The JSON body of every error response. Which codes a route can answer with is listed per
/// response in the OpenAPI document (`GET /openapi.json`).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(examples(json!({"code": "invalid_parameter", "message": "k must be between 1 and 1000"})))]
pub struct ErrorBody {
    /// Stable machine-readable code, e.g. `invalid_parameter`.
    #[schema(value_type = String)]
    pub code: ErrorCode,
    /// Human-readable message (never internal details).
    pub message: String,
}

impl ApiError {
    /// An error with `status` and `code`.
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// A 400 with `code`.
    pub fn bad_request(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// A 404 with `code`.
    pub fn not_found(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }

    /// A 500; the cause is logged once and not sent to the client.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        api::Error::internal(cause).into()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(ErrorBody {
            code: self.code,
            message: self.message,
        });
        let mut r = (self.status, body).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE
            || self.status == StatusCode::TOO_MANY_REQUESTS
        {
            r.headers_mut()
                .insert("retry-after", axum::http::HeaderValue::from_static("1"));
        }
        r
    }
}

impl From<api::Error> for ApiError {
    /// The operation's kind as an HTTP status, with the same code and message. (A feedback
    /// batch's per-event rejections are rendered by its handler.)
    fn from(e: api::Error) -> Self {
        let status = match e.kind {
            ErrorKind::InvalidArgument => StatusCode::BAD_REQUEST,
            ErrorKind::Unauthenticated => StatusCode::UNAUTHORIZED,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::FailedPrecondition => StatusCode::CONFLICT,
            ErrorKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::Overloaded | ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Timeout => StatusCode::REQUEST_TIMEOUT,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self {
            status,
            code: e.code,
            message: e.message,
        }
    }
}
