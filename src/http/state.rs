//! What every handler can reach: the transport-neutral [`crate::api::AppState`].

pub use crate::api::state::AppState;
