//! The operations' error: a kind (what class of failure; each transport maps it to its own
//! status), a stable machine-readable code, and a message for people.

use crate::online::trainer::TrainerError;

/// Declares [`ErrorCode`] with its wire names (checked against serde's snake_case by a test).
macro_rules! error_codes {
    ($($(#[$doc:meta])* $variant:ident => $name:literal,)*) => {
        /// The stable machine-readable code of a failure, the same on every transport (the
        /// `code` of a REST error body, the `irgan-error-code` metadata of a gRPC status).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
        #[serde(rename_all = "snake_case")]
        pub enum ErrorCode {
            $($(#[$doc])* $variant,)*
        }

        impl ErrorCode {
            /// Every code, in declaration order.
            pub const ALL: &'static [Self] = &[$(Self::$variant,)*];

            /// The code as it goes on the wire, e.g. `invalid_parameter`.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $name,)*
                }
            }
        }
    };
}

error_codes! {
    /// A malformed or unreadable request body.
    InvalidBody => "invalid_body",
    /// The body is larger than `server.body_limit_bytes`.
    BodyTooLarge => "body_too_large",
    /// A path parameter that is not valid UTF-8.
    InvalidPath => "invalid_path",
    /// An undecodable query string, or an invalid search query id.
    InvalidQuery => "invalid_query",
    /// A parameter out of range or unparsable.
    InvalidParameter => "invalid_parameter",
    /// A feedback event that fails validation.
    InvalidEvent => "invalid_event",
    /// More events than `feedback.max_events_per_request`.
    TooManyEvents => "too_many_events",
    /// Missing or wrong API key.
    Unauthorized => "unauthorized",
    /// Too many requests in flight.
    Overloaded => "overloaded",
    /// The request took too long.
    Timeout => "timeout",
    /// A bug or an I/O failure (details in the server log).
    Internal => "internal",
    /// The trainer's command queue is full.
    TrainerBusy => "trainer_busy",
    /// The trainer has stopped.
    ShuttingDown => "shutting_down",
    /// The gate refused the candidate.
    PublishRefused => "publish_refused",
    /// No such snapshot on disk.
    SnapshotNotFound => "snapshot_not_found",
    /// The snapshot's ids do not fit today's catalogue (it was not made from this log).
    SnapshotIncompatible => "snapshot_incompatible",
    /// The item is not in the live catalogue.
    UnknownItem => "unknown_item",
    /// No such route.
    NotFound => "not_found",
    /// The route exists, not with this method.
    MethodNotAllowed => "method_not_allowed",
    /// The search task is off (`search.enabled = false`).
    SearchDisabled => "search_disabled",
    /// Nothing published for search yet.
    NoSearchModel => "no_search_model",
    /// An impression of the wrong shape.
    InvalidImpression => "invalid_impression",
    /// A feedback request without impressions.
    EmptyBatch => "empty_batch",
    /// An invalid impression id.
    InvalidId => "invalid_id",
    /// A list without documents.
    EmptyDocuments => "empty_documents",
    /// More documents than `search.max_documents`.
    TooManyDocuments => "too_many_documents",
    /// An invalid document id.
    InvalidDocumentId => "invalid_document_id",
    /// A document id twice in one list.
    DuplicateDocument => "duplicate_document",
    /// A feature vector of the wrong length.
    FeatureLength => "feature_length",
    /// A feature that is not a finite 32-bit number.
    NonFiniteFeature => "non_finite_feature",
    /// A relevance label out of range.
    InvalidLabel => "invalid_label",
    /// `k = 0`.
    InvalidK => "invalid_k",
    /// The impression log could not be written.
    StorageError => "storage_error",
    /// A training command sent to a serving replica, which has no trainer.
    NoTrainer => "no_trainer",
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

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
    #[schema(value_type = String)]
    pub code: ErrorCode,
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
    pub code: ErrorCode,
    /// Human-readable message (never internal details).
    pub message: String,
    /// For a feedback batch without a single valid event: why each event was rejected.
    pub rejected: Vec<Rejected>,
}

impl Error {
    /// An error of `kind` with `code`.
    pub fn new(kind: ErrorKind, code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            kind,
            code,
            message: message.into(),
            rejected: Vec::new(),
        }
    }

    /// An invalid request with `code`.
    pub fn invalid(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidArgument, code, message)
    }

    /// A request parameter out of range or unparsable (`invalid_parameter`).
    pub fn parameter(message: impl Into<String>) -> Self {
        Self::invalid(ErrorCode::InvalidParameter, message)
    }

    /// Something named that does not exist, with `code`.
    pub fn not_found(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, code, message)
    }

    /// Missing or wrong API key (`unauthorized`).
    pub fn unauthorized() -> Self {
        Self::new(
            ErrorKind::Unauthenticated,
            ErrorCode::Unauthorized,
            "missing or wrong API key",
        )
    }

    /// Too many requests in flight (`overloaded`).
    pub fn overloaded() -> Self {
        Self::new(
            ErrorKind::Overloaded,
            ErrorCode::Overloaded,
            "too many requests in flight; retry shortly",
        )
    }

    /// The request timed out (`timeout`).
    pub fn timeout() -> Self {
        Self::new(
            ErrorKind::Timeout,
            ErrorCode::Timeout,
            "the request took too long",
        )
    }

    /// An internal error; the cause is logged once here and not sent to the client.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(
            ErrorKind::Internal,
            ErrorCode::Internal,
            "internal error; see the server log",
        )
    }
}

impl From<TrainerError> for Error {
    fn from(e: TrainerError) -> Self {
        match e {
            TrainerError::Busy => Self::new(
                ErrorKind::Unavailable,
                ErrorCode::TrainerBusy,
                e.to_string(),
            ),
            TrainerError::Stopped => Self::new(
                ErrorKind::Unavailable,
                ErrorCode::ShuttingDown,
                e.to_string(),
            ),
            TrainerError::Refused(m) => {
                Self::new(ErrorKind::FailedPrecondition, ErrorCode::PublishRefused, m)
            }
            TrainerError::NotFound(m) => Self::not_found(ErrorCode::SnapshotNotFound, m),
            TrainerError::Incompatible(m) => Self::new(
                ErrorKind::FailedPrecondition,
                ErrorCode::SnapshotIncompatible,
                m,
            ),
            TrainerError::Restarting => Self::new(
                ErrorKind::Unavailable,
                ErrorCode::TrainerBusy,
                e.to_string(),
            ),
            TrainerError::NoTrainer => Self::new(
                ErrorKind::FailedPrecondition,
                ErrorCode::NoTrainer,
                e.to_string(),
            ),
            TrainerError::Internal(m) => Self::internal(m),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_are_serde_snake_case() {
        for &c in ErrorCode::ALL {
            assert_eq!(serde_json::to_value(c).unwrap(), c.as_str());
        }
    }
}
