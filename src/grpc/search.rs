//! `irgan.v1.SearchService`: the search task's gRPC adapter over the same transport-free
//! operations as REST's `/v1/search/*` ([`crate::api::search`]), with the API key on the writes
//! (Feedback, PublishSnapshot), the concurrency limit, the timeout, metrics and error statuses
//! of [`GrpcApi::call`].

use tonic::{Request, Response, Status};

use crate::api::search::{self as api, CandidateDocument, Impression, ShownDocument};
use crate::api::{self as ops, ModelChoice};
use crate::grpc::pb;
use crate::grpc::service::{GrpcApi, json_to_pb, model_of, usize_of};

/// Lists longer than this are scored off the async workers, as on REST.
const INLINE_DOCUMENTS: usize = 64;

/// The model a search request names; `MODEL_UNSPECIFIED` is the snapshot's ranker, as an
/// absent REST `model` is.
fn ranker_of(value: i32) -> Result<Option<ModelChoice>, ops::Error> {
    if value == pb::Model::Unspecified as i32 {
        return Ok(None);
    }
    model_of(value).map(Some)
}

/// A wire impression as the API's. A label too large for the log's byte is kept as 255, so
/// the shared check rejects that impression with `invalid_label` (valid labels are 0 to 31).
fn impression(i: pb::Impression) -> Impression {
    Impression {
        id: i.id,
        query: i.query,
        documents: i
            .documents
            .into_iter()
            .map(|d| ShownDocument {
                id: d.id,
                features: d.features,
                label: d.label.map(|l| u8::try_from(l).unwrap_or(u8::MAX)),
                clicked: d.clicked,
            })
            .collect(),
    }
}

/// Runs blocking search work off the async workers.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ops::Error> + Send + 'static,
) -> Result<T, ops::Error> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(ops::Error::internal)?
}

#[tonic::async_trait]
impl pb::search_service_server::SearchService for GrpcApi {
    async fn rank(
        &self,
        request: Request<pb::SearchRankRequest>,
    ) -> Result<Response<pb::SearchRankResponse>, Status> {
        let r = request.into_inner();
        self.call("irgan.v1.SearchService/Rank", async {
            let search = api::service(&self.state)?;
            let req = api::RankRequest {
                query: r.query,
                documents: r
                    .documents
                    .into_iter()
                    .map(|d| CandidateDocument {
                        id: d.id,
                        features: d.features,
                    })
                    .collect(),
                model: ranker_of(r.model)?,
                k: usize_of(r.k),
            };
            // As on REST: small lists are scored inline, large ones off the reactor.
            let out = if req.documents.len() > INLINE_DOCUMENTS {
                blocking(move || api::rank(&search, req)).await
            } else {
                api::rank(&search, req)
            }?;
            Ok(pb::SearchRankResponse {
                query: out.query,
                model: out.model.to_string(),
                version: out.version,
                results: out
                    .results
                    .into_iter()
                    .map(|d| pb::RankedDocument {
                        id: d.id,
                        score: d.score,
                        generator_score: d.generator_score,
                        discriminator_score: d.discriminator_score,
                        generator_probability: d.generator_probability,
                    })
                    .collect(),
            })
        })
        .await
    }

    async fn feedback(
        &self,
        request: Request<pb::SearchFeedbackRequest>,
    ) -> Result<Response<pb::SearchFeedbackResponse>, Status> {
        let (metadata, _, r) = request.into_parts();
        self.call("irgan.v1.SearchService/Feedback", async {
            // The key first, as REST's middleware does before the route runs.
            self.authorize(&metadata)?;
            let search = api::service(&self.state)?;
            let batch: Vec<Impression> = r.impressions.into_iter().map(impression).collect();
            let out = blocking(move || api::ingest(&search, batch)).await?;
            Ok(pb::SearchFeedbackResponse {
                accepted: out.accepted as u64,
                duplicates: out.duplicates as u64,
                rejected: out
                    .rejected
                    .into_iter()
                    .map(|x| pb::RejectedImpression {
                        index: u32::try_from(x.index).unwrap_or(u32::MAX),
                        code: x.code.to_string(),
                        message: x.message,
                    })
                    .collect(),
                last_seq: out.last_seq,
            })
        })
        .await
    }

    async fn get_model(
        &self,
        _request: Request<pb::GetSearchModelRequest>,
    ) -> Result<Response<pb::GetSearchModelResponse>, Status> {
        self.call("irgan.v1.SearchService/GetModel", async {
            let search = api::service(&self.state)?;
            let info = api::info(&search);
            let t = info.trainer;
            Ok(pb::GetSearchModelResponse {
                method: info.method,
                n_features: info.n_features as u64,
                live: info.live.map(|l| pb::LiveSearchModel {
                    version: l.version,
                    created_unix_ms: l.created_unix_ms,
                    ranker: l.ranker.to_string(),
                    n_features: l.n_features as u64,
                    generator: json_to_pb(&l.generator),
                    discriminator: json_to_pb(&l.discriminator),
                    temperature: l.temperature,
                    metadata: json_to_pb(&l.metadata),
                }),
                trainer: Some(pb::SearchTrainerStatus {
                    impressions_seen: t.impressions_seen,
                    train_queries: t.train_queries as u64,
                    holdout_queries: t.holdout_queries as u64,
                    steps: t.steps,
                    published: t.published,
                    refused: t.refused,
                    last_refusal: t.last_refusal,
                    live_holdout: t.live_holdout.as_ref().and_then(json_to_pb),
                    up: t.up,
                    restarts: t.restarts,
                    last_failure: t.last_failure,
                }),
            })
        })
        .await
    }

    async fn publish_snapshot(
        &self,
        request: Request<pb::PublishSearchSnapshotRequest>,
    ) -> Result<Response<pb::PublishSearchSnapshotResponse>, Status> {
        self.call("irgan.v1.SearchService/PublishSnapshot", async {
            self.authorize(request.metadata())?;
            let search = api::service(&self.state)?;
            let version = api::publish(&search).await?;
            Ok(pb::PublishSearchSnapshotResponse { version })
        })
        .await
    }
}
