//! Serving the gRPC API: both services, server reflection, message size limits, graceful
//! shutdown.

use std::future::Future;

use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;

use crate::api::AppState;
use crate::grpc::pb;
use crate::grpc::service::GrpcApi;

/// Why the gRPC server could not be built or stopped serving.
#[derive(Debug, thiserror::Error)]
pub enum GrpcError {
    /// The reflection service could not read the embedded descriptors.
    #[error("gRPC reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The transport failed while serving.
    #[error("gRPC server: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// The gRPC routes: `irgan.v1.RankingService`, `irgan.v1.AdminService`,
/// `irgan.v1.SearchService` and server reflection
/// (v1 and v1alpha, so `grpcurl` works without the proto file). Messages larger than
/// `server.body_limit_bytes` are refused by tonic with `OUT_OF_RANGE` (before any handler
/// runs, so without an `irgan-error-code` and not counted).
pub fn routes(state: AppState) -> Result<tonic::service::Routes, GrpcError> {
    let limit = state.config.server.body_limit_bytes;
    let api = GrpcApi::new(state);
    let ranking = pb::ranking_service_server::RankingServiceServer::new(api.clone())
        .max_decoding_message_size(limit);
    let search = pb::search_service_server::SearchServiceServer::new(api.clone())
        .max_decoding_message_size(limit);
    let admin =
        pb::admin_service_server::AdminServiceServer::new(api).max_decoding_message_size(limit);
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
    };
    let mut routes = tonic::service::Routes::new(ranking);
    routes = routes
        .add_service(admin)
        .add_service(search)
        .add_service(reflection().build_v1()?)
        .add_service(reflection().build_v1alpha()?);
    Ok(routes)
}

/// Serves the gRPC API on `listener` until `shutdown` resolves, then stops accepting and
/// lets the calls in flight finish.
pub async fn serve(
    state: AppState,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), GrpcError> {
    let routes = routes(state)?;
    tonic::transport::Server::builder()
        .add_routes(routes)
        .serve_with_incoming_shutdown(TcpIncoming::from(listener), shutdown)
        .await?;
    Ok(())
}
