//! The gRPC API (tonic): the messages and services of `proto/irgan/v1/irgan.proto`, served
//! on `server.grpc_bind` next to the REST API, over the same implementation ([`crate::api`]).
//!
//! - [`pb`]: the generated messages, clients and servers (built by `build.rs` with protox, so
//!   no system `protoc` is needed);
//! - [`service`]: the ranking and admin services, thin adapters over [`crate::api`] that add
//!   the API key, the concurrency limit, the timeout, metrics and error statuses;
//! - [`search`]: the search service (`proto/irgan/v1/search.proto`), the same kind of adapter
//!   over [`crate::api::search`];
//! - [`server`]: the routes (with server reflection) and serving with graceful shutdown.

pub mod search;
pub mod server;
pub mod service;

/// Code generated from `proto/irgan/v1/*.proto` at build time (messages, clients and
/// servers); the proto file documents every field.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod pb {
    tonic::include_proto!("irgan.v1");

    /// The encoded `FileDescriptorSet` of the proto and its imports (served by reflection).
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("irgan_v1_descriptor");
}
