//! The subcommands of the `irgan` binary, grouped by what they act on.

pub mod offline;
pub mod service;
