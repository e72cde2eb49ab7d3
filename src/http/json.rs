//! A JSON body extractor whose rejections use the API's error shape.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use serde::de::DeserializeOwned;

use crate::api::ErrorCode;
use crate::http::error::ApiError;

/// Like `axum::Json`, but a malformed body is a `400 {"code": "invalid_body", ...}` naming
/// the problem, and an oversized one a `413`.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = read_body(req, state).await?;
        serde_json::from_slice(&bytes).map(JsonBody).map_err(|e| {
            ApiError::bad_request(ErrorCode::InvalidBody, format!("invalid JSON body: {e}"))
        })
    }
}

/// The request body, or the API error for an oversized or unreadable one.
pub async fn read_body<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, state).await.map_err(|e| {
        let status = e.status();
        ApiError {
            status,
            code: if status == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ErrorCode::BodyTooLarge
            } else {
                ErrorCode::InvalidBody
            },
            message: e.body_text(),
        }
    })
}
