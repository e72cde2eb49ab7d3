//! The REST API (axum): one file per resource, the route table in `router.rs`.

pub mod admin;
pub mod chunks;
pub mod error;
pub mod feedback;
pub mod history;
pub mod json;
pub mod openapi;
pub mod openapi_limits;
pub mod queries;
pub mod query_string;
pub mod router;
pub mod search;
pub mod state;
pub mod ui;
