//! irgan-rs: IRGAN (SIGIR 2017) as a ranking library, trainer and service.
//!
//! Architecture in brief:
//! - [`data`] loads interaction files, maps external ids to dense indices and carves validation splits.
//! - [`model`] holds the pure maths: the matrix-factorisation scorer, G's softmax policy and D's critic.
//! - [`train`] pretrains (BPR, DNS, iALS) and plays the adversarial game (pointwise IRGAN).
//! - [`eval`] computes ranking metrics under the paper's and the standard protocol.
//! - [`store`] writes and reads versioned, checksummed snapshots atomically.
//! - [`report`] turns a training run into a JSONL log, `report.json` and an SVG training curve.
//! - [`config`] is the typed configuration with file and `--set` overrides.
//! - [`online`] runs the service: the live snapshot, the background trainer, settings, metrics.
//! - [`api`] holds the service's operations (validation, queries, feedback ingestion, admin),
//!   independent of the transport; [`http`] (REST, axum) and [`grpc`] (gRPC, tonic) are thin
//!   adapters over it.
//!
//! `model`, `train` and `eval` know nothing about I/O beyond plain files; they are plain functions
//! over ndarray arrays, unit-tested alone.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod api;
pub mod app;
pub mod config;
pub mod data;
pub mod eval;
pub mod grpc;
pub mod http;
pub mod model;
pub mod online;
pub mod pipeline;
pub mod report;
pub mod rng;
pub mod store;
pub mod train;
