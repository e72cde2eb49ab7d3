//! Integration tests: run the real `irgan` binary on small files in temporary directories.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod acceptance;
mod adversarial;
mod bad_input;
mod common;
mod config;
mod console;
mod deploy;
mod dockerfile;
mod k8s;
mod layers;
mod nats;
mod openapi;
mod pipeline;
mod reproducibility;
mod schemathesis;
mod search;
mod service;
mod snapshot;
mod tune;
