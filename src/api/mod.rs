//! The service's operations, independent of the transport: what a REST handler
//! ([`crate::http`]) and a gRPC method ([`crate::grpc`]) both call.
//!
//! Each operation takes the shared [`AppState`] and a typed request, validates it (ranges,
//! limits, configured feedback types), reads one live snapshot or writes to the log and the
//! trainer, counts its metrics, and returns a domain result or an [`Error`] carrying a stable
//! code. The adapters only decode their wire format into these requests and encode the
//! results; so REST and gRPC validate alike, rank alike and fail with the same codes.

pub mod admin;
pub mod auth;
pub mod error;
pub mod feedback;
pub mod history;
pub mod integral;
pub mod model;
pub mod queries;
pub mod search;
pub mod state;

pub use error::{Error, ErrorCode, ErrorKind};
pub use model::ModelChoice;
pub use state::{AppState, ServiceConfig};
