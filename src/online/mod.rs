//! The online service: live snapshots, the two online tasks' trainers (recommendation and
//! search, one trainer loop), and their settings.
//!
//! Only this module, [`crate::api`] and its adapters know about the async runtime; each trainer
//! runs on its own thread and talks to handlers through a bounded channel.

pub mod background;
pub mod batch;
pub mod catalogue;
pub mod feedback_data;
pub mod gate;
pub mod history;
pub mod lease_holder;
pub mod live;
pub mod metrics;
pub mod query;
pub mod query_pool;
pub mod regrow;
pub mod restart;
pub mod roles;
pub mod schedule;
pub mod search;
pub mod search_checks;
pub mod search_settings;
pub mod search_trainer;
pub mod settings;
pub mod staging;
pub mod step_window;
pub mod traffic;
pub mod trainer;
pub mod trainer_handle;
pub mod trainer_loop;
pub mod trainer_status;
