//! The Ingest service: relationships and their events in, features out.

use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};

use super::{convert, pb, RapportService};

#[tonic::async_trait]
impl pb::ingest_server::Ingest for RapportService {
    async fn upsert_relationship(
        &self,
        request: Request<pb::UpsertRelationshipRequest>,
    ) -> Result<Response<pb::UpsertRelationshipResponse>, Status> {
        let pb::UpsertRelationshipRequest {
            relationship,
            replace_attributes,
        } = request.into_inner();
        let relationship = relationship
            .ok_or_else(|| Status::invalid_argument("invalid relationship: is required"))?;
        let update = convert::relationship_update_from(relationship, replace_attributes)?;
        let (created, stored) = self.engine.upsert_relationship(update).await?;
        Ok(Response::new(pb::UpsertRelationshipResponse {
            created,
            relationship: Some(convert::relationship_to(stored)),
        }))
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
        let view = match as_of {
            None => self.engine.relationship_view(&id, None)?,
            Some(_) => {
                let engine = self.engine.clone();
                self.heavy("relationship", move || engine.relationship_view(&id, as_of))
                    .await?
            }
        };
        Ok(Response::new(convert::relationship_view_to(view)))
    }

    async fn delete_relationship(
        &self,
        request: Request<pb::DeleteRelationshipRequest>,
    ) -> Result<Response<pb::DeleteRelationshipResponse>, Status> {
        let pb::DeleteRelationshipRequest { id } = request.into_inner();
        let book = self.book.clone();
        // The erasure waits for its flush: on a blocking thread.
        let events_removed = tokio::task::spawn_blocking(move || book.delete(&id))
            .await
            .map_err(|e| Status::internal(format!("erasure task failed: {e}")))??;
        Ok(Response::new(pb::DeleteRelationshipResponse {
            events_removed,
        }))
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
