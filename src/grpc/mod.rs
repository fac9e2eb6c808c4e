//! The gRPC layer: generated types, thin handlers that validate, convert to
//! core types, call the [`Engine`] and convert back.

pub mod convert;
mod status;

use std::pin::Pin;

use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use crate::domain::now;
use crate::engine::Engine;

/// Generated protobuf types and service stubs for `rapport.v1`.
pub mod pb {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("rapport.v1");

    /// The encoded descriptor set of `proto/`, served by reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/rapport_descriptor.bin"));
}

/// The service names health reports on, besides the overall "".
pub const SERVICE_NAMES: [&str; 3] = [
    "rapport.v1.Ingest",
    "rapport.v1.Scoring",
    "rapport.v1.Models",
];

/// Implements every Rapport service over one engine handle.
#[derive(Clone)]
pub struct RapportService {
    engine: Engine,
}

impl RapportService {
    pub fn new(engine: Engine) -> Self {
        RapportService { engine }
    }
}

#[tonic::async_trait]
impl pb::ingest_server::Ingest for RapportService {
    async fn upsert_relationship(
        &self,
        request: Request<pb::UpsertRelationshipRequest>,
    ) -> Result<Response<pb::UpsertRelationshipResponse>, Status> {
        let pb::UpsertRelationshipRequest { relationship } = request.into_inner();
        let relationship = relationship
            .ok_or_else(|| Status::invalid_argument("invalid relationship: is required"))?;
        let relationship = convert::relationship_from(relationship, now())?;
        let created = self.engine.upsert_relationship(relationship).await?;
        Ok(Response::new(pb::UpsertRelationshipResponse { created }))
    }

    async fn record_events(
        &self,
        request: Request<pb::RecordEventsRequest>,
    ) -> Result<Response<pb::RecordEventsResponse>, Status> {
        let accepted = self.record(request.into_inner()).await?;
        Ok(Response::new(pb::RecordEventsResponse { accepted }))
    }

    async fn stream_events(
        &self,
        request: Request<Streaming<pb::RecordEventsRequest>>,
    ) -> Result<Response<pb::RecordEventsResponse>, Status> {
        let mut stream = request.into_inner();
        let mut accepted = 0;
        while let Some(batch) = stream.next().await {
            accepted += self.record(batch?).await.map_err(|s| {
                Status::new(
                    s.code(),
                    format!(
                        "{} ({accepted} events from earlier messages were recorded)",
                        s.message()
                    ),
                )
            })?;
        }
        Ok(Response::new(pb::RecordEventsResponse { accepted }))
    }

    async fn get_relationship(
        &self,
        request: Request<pb::GetRelationshipRequest>,
    ) -> Result<Response<pb::GetRelationshipResponse>, Status> {
        let pb::GetRelationshipRequest { id, as_of } = request.into_inner();
        let as_of = convert::optional_timestamp("as_of", as_of)?;
        let view = self.engine.relationship_view(&id, as_of)?;
        Ok(Response::new(convert::relationship_view_to(view)))
    }
}

impl RapportService {
    async fn record(&self, request: pb::RecordEventsRequest) -> Result<u64, Status> {
        let pb::RecordEventsRequest { events } = request;
        crate::engine::check_batch_size("events", events.len())?;
        let batch = events
            .into_iter()
            .enumerate()
            .map(|(i, e)| convert::event_from(i, e))
            .collect::<crate::error::Result<Vec<_>>>()?;
        Ok(self.engine.record_events(batch).await? as u64)
    }
}

type ScoreStream = Pin<Box<dyn Stream<Item = Result<pb::RelationshipScore, Status>> + Send>>;

#[tonic::async_trait]
impl pb::scoring_server::Scoring for RapportService {
    async fn score(
        &self,
        request: Request<pb::ScoreRequest>,
    ) -> Result<Response<pb::RelationshipScore>, Status> {
        let pb::ScoreRequest {
            relationship_id,
            as_of,
            max_reasons,
        } = request.into_inner();
        let as_of = convert::optional_timestamp("as_of", as_of)?;
        let score = self.engine.score(&relationship_id, as_of, max_reasons)?;
        Ok(Response::new(convert::score_to(score)))
    }

    async fn score_batch(
        &self,
        request: Request<pb::ScoreBatchRequest>,
    ) -> Result<Response<pb::ScoreBatchResponse>, Status> {
        let pb::ScoreBatchRequest {
            relationship_ids,
            as_of,
            max_reasons,
        } = request.into_inner();
        let as_of = convert::optional_timestamp("as_of", as_of)?;
        let engine = self.engine.clone();
        // A 10,000-id batch is milliseconds of CPU: keep it off the async workers.
        let scores = tokio::task::spawn_blocking(move || {
            engine.score_many(&relationship_ids, as_of, max_reasons)
        })
        .await
        .map_err(|e| Status::internal(format!("scoring task failed: {e}")))??;
        Ok(Response::new(pb::ScoreBatchResponse {
            scores: scores.into_iter().map(convert::score_to).collect(),
        }))
    }

    type ScoreStreamStream = ScoreStream;

    async fn score_stream(
        &self,
        request: Request<Streaming<pb::ScoreRequest>>,
    ) -> Result<Response<Self::ScoreStreamStream>, Status> {
        // Each request is scored as the response stream is polled: no task or
        // channel hop per message, and the encoder packs every reply that is
        // ready into one write. tonic ends the call at the first error.
        let engine = self.engine.clone();
        let replies = request.into_inner().map(move |next| {
            let pb::ScoreRequest {
                relationship_id,
                as_of,
                max_reasons,
            } = next?;
            let as_of = convert::optional_timestamp("as_of", as_of)?;
            Ok(convert::score_to(engine.score(
                &relationship_id,
                as_of,
                max_reasons,
            )?))
        });
        Ok(Response::new(Box::pin(replies)))
    }

    async fn segment(
        &self,
        request: Request<pb::SegmentRequest>,
    ) -> Result<Response<pb::SegmentResponse>, Status> {
        let pb::SegmentRequest {
            relationship_id,
            as_of,
        } = request.into_inner();
        let as_of = convert::optional_timestamp("as_of", as_of)?;
        let segment = self.engine.segment(&relationship_id, as_of)?;
        Ok(Response::new(convert::segment_to(segment)))
    }

    async fn recommend(
        &self,
        request: Request<pb::RecommendRequest>,
    ) -> Result<Response<pb::RecommendResponse>, Status> {
        let req = convert::recommend_from(request.into_inner())?;
        let out = self.engine.recommend(&req)?;
        Ok(Response::new(convert::recommend_to(out)))
    }
}

#[tonic::async_trait]
impl pb::models_server::Models for RapportService {
    async fn list_models(
        &self,
        _request: Request<pb::ListModelsRequest>,
    ) -> Result<Response<pb::ListModelsResponse>, Status> {
        let store = self.engine.store();
        let active = store.active_version()?;
        let versions = store
            .models()?
            .iter()
            .map(|b| convert::model_version_to(b, active))
            .collect();
        Ok(Response::new(pb::ListModelsResponse {
            versions,
            active_version: active.unwrap_or(0),
        }))
    }

    async fn train_model(
        &self,
        request: Request<pb::TrainModelRequest>,
    ) -> Result<Response<pb::ModelVersion>, Status> {
        let pb::TrainModelRequest {
            spec_toml,
            activate,
        } = request.into_inner();
        let spec = if spec_toml.trim().is_empty() {
            crate::model::ModelSpec::demo()
        } else {
            crate::model::ModelSpec::parse("spec_toml", &spec_toml)?
        };
        let bundle = self.engine.train(spec, activate).await?;
        let active = self.engine.store().active_version()?;
        Ok(Response::new(convert::model_version_to(&bundle, active)))
    }

    async fn promote_model(
        &self,
        request: Request<pb::PromoteModelRequest>,
    ) -> Result<Response<pb::ModelVersion>, Status> {
        let pb::PromoteModelRequest { version } = request.into_inner();
        self.engine.activate(version).await?;
        self.version_reply(version)
    }

    async fn rollback_model(
        &self,
        _request: Request<pb::RollbackModelRequest>,
    ) -> Result<Response<pb::ModelVersion>, Status> {
        let version = self.engine.rollback().await?;
        self.version_reply(version)
    }

    async fn get_drift(
        &self,
        request: Request<pb::GetDriftRequest>,
    ) -> Result<Response<pb::GetDriftResponse>, Status> {
        let pb::GetDriftRequest { version, sample } = request.into_inner();
        let engine = self.engine.clone();
        // A full feature pass over a sample of the store: off the async workers.
        let drift = tokio::task::spawn_blocking(move || {
            engine.drift((version != 0).then_some(version), sample)
        })
        .await
        .map_err(|e| Status::internal(format!("drift task failed: {e}")))??;
        Ok(Response::new(convert::drift_to(drift)))
    }
}

impl RapportService {
    fn version_reply(&self, version: u64) -> Result<Response<pb::ModelVersion>, Status> {
        let store = self.engine.store();
        let bundle = store.model(version)?;
        Ok(Response::new(convert::model_version_to(
            &bundle,
            store.active_version()?,
        )))
    }
}

#[tonic::async_trait]
impl pb::echo_server::Echo for RapportService {
    async fn echo(
        &self,
        request: Request<pb::EchoRequest>,
    ) -> Result<Response<pb::EchoResponse>, Status> {
        let pb::EchoRequest {
            relationship_id,
            payload,
        } = request.into_inner();
        Ok(Response::new(pb::EchoResponse {
            relationship_id,
            payload,
        }))
    }
}
