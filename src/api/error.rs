//! The operations' error: a kind (what class of failure; each transport maps it to its own
//! status), a stable machine-readable code, and a message for people.

use crate::online::trainer::TrainerError;

/// The class of a failure. REST maps it to an HTTP status, gRPC to a status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The caller's request is invalid (HTTP 400, gRPC `INVALID_ARGUMENT`).
    InvalidArgument,
    /// Missing or wrong API key (HTTP 401, gRPC `UNAUTHENTICATED`).
    Unauthenticated,
    /// The named user, item or snapshot does not exist (HTTP 404, gRPC `NOT_FOUND`).
    NotFound,
    /// The system is not in a state to do it, e.g. the gate refuses the candidate (HTTP 409,
    /// gRPC `FAILED_PRECONDITION`).
    FailedPrecondition,
    /// The request is larger than the configured limit (HTTP 413, gRPC `RESOURCE_EXHAUSTED`).
    TooLarge,
    /// Too many requests in flight; retry shortly (HTTP 503, gRPC `RESOURCE_EXHAUSTED`).
    Overloaded,
    /// A transient condition: the trainer is busy or stopping (HTTP 503, gRPC `UNAVAILABLE`).
    Unavailable,
    /// The request took longer than `server.request_timeout_ms` (HTTP 408, gRPC
    /// `DEADLINE_EXCEEDED`).
    Timeout,
    /// A bug or an I/O failure; details are in the server log only (HTTP 500, gRPC
    /// `INTERNAL`).
    Internal,
}

/// One rejected feedback event of a batch.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct Rejected {
    /// Position in the request (0-based).
    pub index: usize,
    /// Stable code (`invalid_event`).
    pub code: &'static str,
    /// What is wrong.
    pub message: String,
}

/// An operation's failure.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Error {
    /// The class of failure.
    pub kind: ErrorKind,
    /// Stable code, e.g. `invalid_parameter` (the same on every transport).
    pub code: &'static str,
    /// Human-readable message (never internal details).
    pub message: String,
    /// For a feedback batch without a single valid event: why each event was rejected.
    pub rejected: Vec<Rejected>,
}

impl Error {
    /// An error of `kind` with `code`.
    pub fn new(kind: ErrorKind, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            kind,
            code,
            message: message.into(),
            rejected: Vec::new(),
        }
    }

    /// An invalid request with `code`.
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidArgument, code, message)
    }

    /// A request parameter out of range or unparsable (`invalid_parameter`).
    pub fn parameter(message: impl Into<String>) -> Self {
        Self::invalid("invalid_parameter", message)
    }

    /// Something named that does not exist, with `code`.
    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, code, message)
    }

    /// Missing or wrong API key (`unauthorized`).
    pub fn unauthorized() -> Self {
        Self::new(
            ErrorKind::Unauthenticated,
            "unauthorized",
            "missing or wrong API key",
        )
    }

    /// Too many requests in flight (`overloaded`).
    pub fn overloaded() -> Self {
        Self::new(
            ErrorKind::Overloaded,
            "overloaded",
            "too many requests in flight; retry shortly",
        )
    }

    /// The request timed out (`timeout`).
    pub fn timeout() -> Self {
        Self::new(ErrorKind::Timeout, "timeout", "the request took too long")
    }

    /// An internal error; the cause is logged once here and not sent to the client.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(
            ErrorKind::Internal,
            "internal",
            "internal error; see the server log",
        )
    }
}

impl From<TrainerError> for Error {
    fn from(e: TrainerError) -> Self {
        match e {
            TrainerError::Busy => Self::new(ErrorKind::Unavailable, "trainer_busy", e.to_string()),
            TrainerError::Stopped => {
                Self::new(ErrorKind::Unavailable, "shutting_down", e.to_string())
            }
            TrainerError::Refused(m) => {
                Self::new(ErrorKind::FailedPrecondition, "publish_refused", m)
            }
            TrainerError::NotFound(m) => Self::not_found("snapshot_not_found", m),
            TrainerError::Internal(m) => Self::internal(m),
        }
    }
}
