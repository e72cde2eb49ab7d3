//! The online service: live snapshots, the background trainer, settings.
//!
//! Only this module, [`crate::api`] and its adapters ([`crate::http`], [`crate::grpc`]) know
//! about the async runtime; the trainer runs on its own thread and talks to handlers through a
//! bounded channel.

pub mod live;
pub mod metrics;
pub mod query;
pub mod search;
pub mod settings;
pub mod trainer;
