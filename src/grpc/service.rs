//! The gRPC services: thin adapters from the generated messages to [`crate::api`], with the
//! API key, the concurrency limit, the request timeout and the metrics applied per call.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value as Json;
use tokio::sync::Semaphore;
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Code, Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::api::feedback::EventIn;
use crate::api::queries::RankedItem;
use crate::api::{self, AppState, ErrorKind, ModelChoice};
use crate::grpc::pb;

/// Metadata key of the stable error code of a failed call (e.g. `invalid_parameter`).
pub const ERROR_CODE_KEY: &str = "irgan-error-code";

/// Domain of the `google.rpc.ErrorInfo` detail of a failed call (its reason is the code).
pub const ERROR_DOMAIN: &str = "irgan";

/// The gRPC services (ranking, admin and, in [`crate::grpc::search`], search) over one
/// [`AppState`] (cheap to clone).
#[derive(Clone)]
pub struct GrpcApi {
    pub(super) state: AppState,
    in_flight: Arc<Semaphore>,
    timeout: Duration,
}

impl GrpcApi {
    /// The services over `state`, limited and timed by its `server` settings.
    pub fn new(state: AppState) -> Self {
        let cfg = &state.config.server;
        Self {
            in_flight: Arc::new(Semaphore::new(cfg.concurrency_limit)),
            timeout: Duration::from_millis(cfg.request_timeout_ms),
            state,
        }
    }

    /// Runs one call: sheds it beyond `server.concurrency_limit` calls in flight, bounds it by
    /// `server.request_timeout_ms`, maps its error to a status and counts it by method and
    /// status code.
    pub(super) async fn call<T>(
        &self,
        method: &'static str,
        work: impl Future<Output = Result<T, api::Error>>,
    ) -> Result<Response<T>, Status> {
        let started = Instant::now();
        let result = match self.in_flight.try_acquire() {
            Err(_) => Err(api::Error::overloaded()),
            Ok(_permit) => tokio::time::timeout(self.timeout, work)
                .await
                .unwrap_or_else(|_| Err(api::Error::timeout())),
        };
        let result = result.map(Response::new).map_err(status);
        let code = result.as_ref().map_or_else(Status::code, |_| Code::Ok);
        let m = &self.state.metrics;
        m.grpc_requests
            .with_label_values(&[method, code_name(code)])
            .inc();
        m.grpc_latency
            .with_label_values(&[method])
            .observe(started.elapsed().as_secs_f64());
        result
    }

    /// The API key check of write and admin calls (metadata `x-api-key: KEY` or
    /// `authorization: Bearer KEY`).
    pub(super) fn authorize(&self, metadata: &MetadataMap) -> Result<(), api::Error> {
        let get = |name: &str| metadata.get(name).and_then(|v| v.to_str().ok());
        api::auth::check(
            &self.state.config.server.api_key,
            get("x-api-key"),
            get("authorization"),
        )
    }
}

/// The gRPC status of an operation's error: the kind as the status code, the message, the
/// stable code as `irgan-error-code` metadata and as a `google.rpc.ErrorInfo` reason, and a
/// `google.rpc.BadRequest` violation `events[INDEX]` per rejected feedback event.
pub fn status(e: api::Error) -> Status {
    let code = match e.kind {
        ErrorKind::InvalidArgument => Code::InvalidArgument,
        ErrorKind::Unauthenticated => Code::Unauthenticated,
        ErrorKind::NotFound => Code::NotFound,
        ErrorKind::FailedPrecondition => Code::FailedPrecondition,
        ErrorKind::TooLarge | ErrorKind::Overloaded => Code::ResourceExhausted,
        ErrorKind::Unavailable => Code::Unavailable,
        ErrorKind::Timeout => Code::DeadlineExceeded,
        ErrorKind::Internal => Code::Internal,
    };
    let mut details = ErrorDetails::with_error_info(e.code.as_str(), ERROR_DOMAIN, HashMap::new());
    for r in &e.rejected {
        details.add_bad_request_violation(format!("events[{}]", r.index), r.message.clone());
    }
    let mut metadata = MetadataMap::new();
    metadata.insert(ERROR_CODE_KEY, MetadataValue::from_static(e.code.as_str()));
    Status::with_error_details_and_metadata(code, e.message, details, metadata)
}

/// The canonical name of a status code (`OK`, `INVALID_ARGUMENT`, ...), the metrics label.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// The model a request names; `MODEL_UNSPECIFIED` is the generator, as an absent REST
/// `model` is.
pub(super) fn model_of(value: i32) -> Result<ModelChoice, api::Error> {
    match pb::Model::try_from(value) {
        Ok(pb::Model::Unspecified | pb::Model::Generator) => Ok(ModelChoice::Generator),
        Ok(pb::Model::Discriminator) => Ok(ModelChoice::Discriminator),
        Ok(pb::Model::Blend) => Ok(ModelChoice::Blend),
        Err(_) => Err(api::Error::parameter(format!(
            "model: unknown value {value}: expected MODEL_GENERATOR, MODEL_DISCRIMINATOR or \
             MODEL_BLEND"
        ))),
    }
}

fn items_pb(items: Vec<RankedItem>) -> Vec<pb::RankedItem> {
    items
        .into_iter()
        .map(|r| pb::RankedItem {
            item: r.item,
            score: r.score,
            generator: r.generator,
            discriminator: r.discriminator,
            propensity: r.propensity,
        })
        .collect()
}

/// A JSON value as a `google.protobuf.Value`; JSON null (a missing metadata field) is unset.
pub fn json_to_pb(v: &Json) -> Option<prost_types::Value> {
    use prost_types::value::Kind;
    let kind = match v {
        Json::Null => return None,
        Json::Bool(b) => Kind::BoolValue(*b),
        Json::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or(f64::NAN)),
        Json::String(s) => Kind::StringValue(s.clone()),
        Json::Array(a) => Kind::ListValue(prost_types::ListValue {
            values: a.iter().map(pb_value).collect(),
        }),
        Json::Object(o) => Kind::StructValue(prost_types::Struct {
            fields: o.iter().map(|(k, v)| (k.clone(), pb_value(v))).collect(),
        }),
    };
    Some(prost_types::Value { kind: Some(kind) })
}

/// A nested JSON value (null stays an explicit null).
fn pb_value(v: &Json) -> prost_types::Value {
    json_to_pb(v).unwrap_or(prost_types::Value {
        kind: Some(prost_types::value::Kind::NullValue(0)),
    })
}

/// An empty proto3 string is an absent field.
fn non_empty(s: String) -> Option<String> {
    Some(s).filter(|s| !s.is_empty())
}

pub(super) fn usize_of(k: Option<u32>) -> Option<usize> {
    k.map(|k| usize::try_from(k).unwrap_or(usize::MAX))
}

#[tonic::async_trait]
impl pb::ranking_service_server::RankingService for GrpcApi {
    async fn recommend(
        &self,
        request: Request<pb::RecommendRequest>,
    ) -> Result<Response<pb::RecommendResponse>, Status> {
        let r = request.into_inner();
        self.call("irgan.v1.RankingService/Recommend", async {
            let req = api::queries::RecommendRequest {
                user: r.user,
                k: usize_of(r.k),
                model: model_of(r.model)?,
                exclude_seen: r.exclude_seen.unwrap_or(true),
                explore: r.explore,
                seed: r.seed,
            };
            let out = api::queries::recommend(&self.state, req).await?;
            Ok(pb::RecommendResponse {
                user: out.user,
                model: out.model.to_string(),
                version: out.version,
                cold_start: out.cold_start,
                items: items_pb(out.items),
            })
        })
        .await
    }

    async fn rank(
        &self,
        request: Request<pb::RankRequest>,
    ) -> Result<Response<pb::RankResponse>, Status> {
        let r = request.into_inner();
        self.call("irgan.v1.RankingService/Rank", async {
            let req = api::queries::RankRequest {
                user: r.user,
                items: r.items,
                model: model_of(r.model)?,
            };
            let out = api::queries::rank(&self.state, req).await?;
            Ok(pb::RankResponse {
                user: out.user,
                model: out.model.to_string(),
                version: out.version,
                cold_start: out.cold_start,
                items: items_pb(out.items),
                unknown_items: out.unknown_items,
            })
        })
        .await
    }

    async fn similar(
        &self,
        request: Request<pb::SimilarRequest>,
    ) -> Result<Response<pb::SimilarResponse>, Status> {
        let r = request.into_inner();
        self.call("irgan.v1.RankingService/Similar", async {
            let req = api::queries::SimilarRequest {
                item: r.item,
                k: usize_of(r.k),
                model: model_of(r.model)?,
            };
            let out = api::queries::similar(&self.state, req).await?;
            Ok(pb::SimilarResponse {
                item: out.item,
                model: out.model.to_string(),
                version: out.version,
                items: items_pb(out.items),
            })
        })
        .await
    }

    async fn feedback(
        &self,
        request: Request<pb::FeedbackRequest>,
    ) -> Result<Response<pb::FeedbackResponse>, Status> {
        let (metadata, _, r) = request.into_parts();
        self.call("irgan.v1.RankingService/Feedback", async {
            self.authorize(&metadata)?;
            let batch = r
                .events
                .into_iter()
                .map(|e| {
                    Ok(EventIn {
                        id: e.id,
                        user: non_empty(e.user),
                        item: non_empty(e.item),
                        kind: non_empty(e.r#type),
                        value: e.value,
                        timestamp_ms: e.timestamp_ms,
                    })
                })
                .collect();
            let out = api::feedback::ingest(&self.state, batch).await?;
            Ok(pb::FeedbackResponse {
                accepted: out.accepted as u64,
                duplicates: out.duplicates as u64,
                rejected: out
                    .rejected
                    .into_iter()
                    .map(|r| pb::RejectedEvent {
                        index: u32::try_from(r.index).unwrap_or(u32::MAX),
                        code: r.code.to_string(),
                        message: r.message,
                    })
                    .collect(),
                last_seq: out.last_seq,
            })
        })
        .await
    }

    async fn get_model(
        &self,
        _request: Request<pb::GetModelRequest>,
    ) -> Result<Response<pb::GetModelResponse>, Status> {
        self.call("irgan.v1.RankingService/GetModel", async {
            let m = api::admin::model_info(&self.state);
            let g = &m.game;
            Ok(pb::GetModelResponse {
                version: m.version,
                created_unix_ms: m.created_unix_ms,
                published_unix_ms: m.published_unix_ms,
                users: m.users as u64,
                items: m.items as u64,
                dims: Some(pb::Dims {
                    generator: m.generator_dim as u64,
                    discriminator: m.discriminator_dim as u64,
                }),
                training: json_to_pb(&m.training),
                validation: json_to_pb(&m.validation),
                trained_through_seq: m.trained_through_seq.as_u64(),
                game: Some(pb::GameStatus {
                    paused: g.paused,
                    steps: g.steps,
                    applied_seq: g.applied_seq,
                    users: g.users as u64,
                    items: g.items as u64,
                    positives: g.positives as u64,
                    holdout: g.holdout as u64,
                    d: Some(pb::DiscriminatorStats {
                        loss: g.d.loss,
                        accuracy_real: g.d.accuracy_real,
                        accuracy_generated: g.d.accuracy_generated,
                    }),
                    g: Some(pb::GeneratorStats {
                        loss: g.g.loss,
                        mean_reward: g.g.mean_reward,
                        entropy: g.g.entropy,
                    }),
                    last_refusal: g.last_refusal.clone(),
                }),
            })
        })
        .await
    }
}

#[tonic::async_trait]
impl pb::admin_service_server::AdminService for GrpcApi {
    async fn list_snapshots(
        &self,
        _request: Request<pb::ListSnapshotsRequest>,
    ) -> Result<Response<pb::ListSnapshotsResponse>, Status> {
        self.call("irgan.v1.AdminService/ListSnapshots", async {
            let (live, list) = api::admin::list_snapshots(&self.state);
            let snapshots = list
                .into_iter()
                .map(|s| match s.manifest {
                    Some(m) => pb::SnapshotInfo {
                        version: s.version,
                        live: s.live,
                        complete: true,
                        created_unix_ms: m.created_unix_ms.as_u64(),
                        users: m.users.as_u64(),
                        items: m.items.as_u64(),
                        validation: json_to_pb(&m.validation),
                    },
                    None => pb::SnapshotInfo {
                        version: s.version,
                        live: s.live,
                        ..Default::default()
                    },
                })
                .collect();
            Ok(pb::ListSnapshotsResponse { live, snapshots })
        })
        .await
    }

    async fn publish_snapshot(
        &self,
        request: Request<pb::PublishSnapshotRequest>,
    ) -> Result<Response<pb::PublishSnapshotResponse>, Status> {
        self.call("irgan.v1.AdminService/PublishSnapshot", async {
            self.authorize(request.metadata())?;
            let p = api::admin::publish(&self.state).await?;
            Ok(pb::PublishSnapshotResponse {
                version: p.version,
                validation: json_to_pb(&p.validation),
            })
        })
        .await
    }

    async fn activate_snapshot(
        &self,
        request: Request<pb::ActivateSnapshotRequest>,
    ) -> Result<Response<pb::ActivateSnapshotResponse>, Status> {
        self.call("irgan.v1.AdminService/ActivateSnapshot", async {
            self.authorize(request.metadata())?;
            let version = api::admin::activate(&self.state, request.get_ref().version).await?;
            Ok(pb::ActivateSnapshotResponse {
                version,
                live: true,
            })
        })
        .await
    }

    async fn pause_training(
        &self,
        request: Request<pb::PauseTrainingRequest>,
    ) -> Result<Response<pb::TrainingState>, Status> {
        self.call("irgan.v1.AdminService/PauseTraining", async {
            self.authorize(request.metadata())?;
            api::admin::pause(&self.state)?;
            Ok(pb::TrainingState { paused: true })
        })
        .await
    }

    async fn resume_training(
        &self,
        request: Request<pb::ResumeTrainingRequest>,
    ) -> Result<Response<pb::TrainingState>, Status> {
        self.call("irgan.v1.AdminService/ResumeTraining", async {
            self.authorize(request.metadata())?;
            api::admin::resume(&self.state)?;
            Ok(pb::TrainingState { paused: false })
        })
        .await
    }
}
