//! The Models service: versions, training inside the server, promotion,
//! rollback, drift.

use tonic::{Request, Response, Status};

use crate::domain::ModelSlot;
use crate::model::ModelSpec;
use crate::training;

use super::{convert, pb, RapportService};

#[tonic::async_trait]
impl pb::models_server::Models for RapportService {
    async fn list_models(
        &self,
        _request: Request<pb::ListModelsRequest>,
    ) -> Result<Response<pb::ListModelsResponse>, Status> {
        let active = self.engine.active_version(ModelSlot::Default)?;
        let versions = self
            .engine
            .model_summaries()?
            .into_iter()
            .map(|s| convert::model_version_to(s, active))
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
            ModelSpec::demo()
        } else {
            ModelSpec::parse("spec_toml", &spec_toml)?
        };
        let stores_rows = matches!(spec.source, crate::model::spec::DataSource::Table(_));
        let store = self.engine.store().clone();
        // Minutes of CPU: on a blocking thread while the async workers serve.
        let bundle = tokio::task::spawn_blocking(move || training::train_and_save(&store, &spec))
            .await
            .map_err(|e| Status::internal(format!("training task failed: {e}")))??;
        if stores_rows {
            // A table's rows become relationships past the engine's writes.
            self.engine.changes().note_book();
        }
        if activate {
            self.engine.activate(bundle.version).await?;
        }
        self.version_reply(bundle.version)
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
        let summary = self
            .engine
            .model_summaries()?
            .into_iter()
            .find(|s| s.version == version)
            .ok_or_else(|| Status::not_found(format!("model version \"{version}\" not found")))?;
        Ok(Response::new(convert::model_version_to(
            summary,
            self.engine.active_version(ModelSlot::Default)?,
        )))
    }
}
