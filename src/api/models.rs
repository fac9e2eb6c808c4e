//! The Models service: versions, training inside the server, promotion,
//! rollback, drift, backups. Every call is an admin call and leaves one
//! audit line (target `audit`): who, what, and how it ended.
//!
//! Training runs one at a time: a TrainModel that arrives while one runs
//! waits for it, and past `--max-queued-trainings` waiting calls, one gets
//! `RESOURCE_EXHAUSTED`. Several at once held one training's memory each
//! (six came to 23.8 GB before the kernel stopped the server).

use std::sync::atomic::Ordering;
use std::time::Instant;

use tonic::{Request, Response, Status};

use crate::domain::ModelSlot;
use crate::engine::promotion;
use crate::model::ModelSpec;
use crate::training;

use super::auth::Caller;
use super::gate::caller;
use super::{convert, pb, RapportService};

/// Writes the audit line of one admin call.
fn audit<T>(who: &Caller, what: &str, detail: &str, result: &Result<T, Status>) {
    match result {
        Ok(_) => {
            tracing::info!(target: "audit", who = %who.name, what, detail, result = "OK", "admin call")
        }
        Err(status) => tracing::warn!(
            target: "audit",
            who = %who.name,
            what,
            detail,
            result = ?status.code(),
            message = status.message(),
            "admin call"
        ),
    }
}

#[tonic::async_trait]
impl pb::models_server::Models for RapportService {
    async fn list_models(
        &self,
        request: Request<pb::ListModelsRequest>,
    ) -> Result<Response<pb::ListModelsResponse>, Status> {
        let who = caller(&request);
        let result = self.list();
        audit(&who, "ListModels", "", &result);
        result.map(Response::new)
    }

    async fn train_model(
        &self,
        request: Request<pb::TrainModelRequest>,
    ) -> Result<Response<pb::ModelVersion>, Status> {
        let who = caller(&request);
        let pb::TrainModelRequest {
            spec_toml,
            activate,
            force,
            force_reason,
        } = request.into_inner();
        let result = self
            .train(spec_toml, activate, force.then_some(force_reason), &who)
            .await;
        let detail = match &result {
            Ok(v) => format!("version {} activate={activate} force={force}", v.version),
            Err(_) => format!("activate={activate} force={force}"),
        };
        audit(&who, "TrainModel", &detail, &result);
        result.map(Response::new)
    }

    async fn promote_model(
        &self,
        request: Request<pb::PromoteModelRequest>,
    ) -> Result<Response<pb::ModelVersion>, Status> {
        let who = caller(&request);
        let pb::PromoteModelRequest {
            version,
            force,
            reason,
            slot,
        } = request.into_inner();
        let result = match ModelSlot::parse("slot", &slot) {
            Ok(named) => {
                let slot = (!slot.trim().is_empty()).then_some(named);
                self.promote(version, slot, force.then_some(reason), &who)
                    .await
            }
            Err(e) => Err(e.into()),
        };
        audit(
            &who,
            "PromoteModel",
            &format!("version {version} slot={slot:?} force={force}"),
            &result,
        );
        result.map(Response::new)
    }

    async fn rollback_model(
        &self,
        request: Request<pb::RollbackModelRequest>,
    ) -> Result<Response<pb::ModelVersion>, Status> {
        let who = caller(&request);
        let pb::RollbackModelRequest { slot } = request.into_inner();
        let result = match ModelSlot::parse("slot", &slot) {
            Ok(slot) => match self.engine.rollback(slot).await {
                Ok(version) => self.version_reply(version),
                Err(e) => Err(e.into()),
            },
            Err(e) => Err(e.into()),
        };
        let detail = result
            .as_ref()
            .map(|v| format!("slot {slot:?} to version {}", v.version))
            .unwrap_or_else(|_| format!("slot {slot:?}"));
        audit(&who, "RollbackModel", &detail, &result);
        result.map(Response::new)
    }

    async fn get_drift(
        &self,
        request: Request<pb::GetDriftRequest>,
    ) -> Result<Response<pb::GetDriftResponse>, Status> {
        let who = caller(&request);
        let pb::GetDriftRequest { version, sample } = request.into_inner();
        let engine = self.engine.clone();
        // A full feature pass over a sample of the store: off the async workers.
        let result = self
            .heavy("drift", move || {
                engine.drift((version != 0).then_some(version), sample)
            })
            .await
            .map(convert::drift_to);
        audit(&who, "GetDrift", &format!("version {version}"), &result);
        result.map(Response::new)
    }

    async fn backup_store(
        &self,
        request: Request<pb::BackupStoreRequest>,
    ) -> Result<Response<pb::BackupStoreResponse>, Status> {
        let who = caller(&request);
        let pb::BackupStoreRequest { directory } = request.into_inner();
        let result = self.backup(&directory).await;
        let detail = match &result {
            Ok(r) => format!(
                "{} ({} relationships, {} events, {} versions)",
                r.path, r.relationships, r.events, r.model_versions
            ),
            Err(_) => format!("{directory:?}"),
        };
        audit(&who, "BackupStore", &detail, &result);
        result.map(Response::new)
    }
}

impl RapportService {
    fn list(&self) -> Result<pb::ListModelsResponse, Status> {
        let active = self.engine.active_versions()?;
        let versions = self
            .engine
            .model_summaries()?
            .into_iter()
            .map(|s| convert::model_version_to(s, &active))
            .collect();
        Ok(pb::ListModelsResponse {
            versions,
            active_version: active
                .iter()
                .find(|(slot, _)| *slot == ModelSlot::Default)
                .map_or(0, |(_, v)| *v),
        })
    }

    async fn train(
        &self,
        spec_toml: String,
        activate: bool,
        force: Option<String>,
        who: &Caller,
    ) -> Result<pb::ModelVersion, Status> {
        let mut spec = if spec_toml.trim().is_empty() {
            ModelSpec::demo()
        } else {
            ModelSpec::parse("spec_toml", &spec_toml)?
        };
        training::sandbox::confine(&mut spec, self.shared.options.training_data_root.as_deref())?;
        let shared = &self.shared;
        let waiting = shared.trainings.fetch_add(1, Ordering::SeqCst);
        let _count = DecrementOnDrop(&shared.trainings);
        if waiting > shared.max_queued_trainings {
            return Err(Status::resource_exhausted(format!(
                "a training is running and {} more are waiting (--max-queued-trainings); retry when one finishes",
                waiting - 1
            )));
        }
        let queued = Instant::now();
        let _turn = shared.training.lock().await;
        let waited = queued.elapsed().as_secs_f64();
        if waited > 0.01 {
            tracing::info!(seconds = waited, "training waited for the one before it");
        }
        let store = self.engine.store().clone();
        // One process at a time trains on a shared store (a lease in Redis);
        // the mutex above only orders this process's calls.
        let lease = store.training_lease()?;
        metrics::gauge!("rapport_training_running").set(1.0);
        let keep = shared.options.keep_models;
        let started = Instant::now();
        // Minutes of CPU: on a blocking thread while the async workers serve.
        let trained = tokio::task::spawn_blocking(move || {
            let _lease = lease;
            let bundle = training::train_and_save(&store, &spec)?;
            training::prune_versions(&store, keep)?;
            Ok::<_, crate::error::Error>(bundle)
        })
        .await;
        metrics::gauge!("rapport_training_running").set(0.0);
        let outcome = match &trained {
            Ok(Ok(_)) => "ok",
            _ => "failed",
        };
        metrics::histogram!("rapport_training_duration_seconds", "outcome" => outcome)
            .record(started.elapsed().as_secs_f64());
        metrics::counter!("rapport_trainings_total", "outcome" => outcome).increment(1);
        let bundle =
            trained.map_err(|e| Status::internal(format!("training task failed: {e}")))??;
        if activate {
            self.promote(bundle.version, None, force, who)
                .await
                .map_err(|s| {
                    Status::new(
                        s.code(),
                        format!(
                            "trained version {} but did not activate it: {}",
                            bundle.version,
                            s.message()
                        ),
                    )
                })?;
        }
        self.version_reply(bundle.version)
    }

    /// Makes `version` active in `slot` (its own when `None`) if it passes
    /// the promotion checks, or regardless with `force` and a reason (logged).
    async fn promote(
        &self,
        version: u64,
        slot: Option<ModelSlot>,
        force: Option<String>,
        who: &Caller,
    ) -> Result<pb::ModelVersion, Status> {
        if let Some(reason) = &force {
            if reason.trim().is_empty() {
                return Err(Status::invalid_argument(
                    "invalid reason: force needs a reason, which the audit log keeps",
                ));
            }
        }
        let slot = match slot {
            Some(slot) => slot,
            None => self.engine.bundle(version)?.spec.slot(),
        };
        let engine = self.engine.clone();
        let problems = self
            .heavy("promotion check", move || {
                engine.promotion_problems(version, slot)
            })
            .await?;
        if !problems.is_empty() {
            match &force {
                Some(reason) => tracing::warn!(
                    target: "audit",
                    who = %who.name,
                    version,
                    slot = slot.name(),
                    reason = reason.as_str(),
                    overridden = problems.join("; "),
                    "promotion checks overridden"
                ),
                None => return Err(promotion::refused(version, &problems).into()),
            }
        }
        self.engine.activate(version, slot).await?;
        self.version_reply(version)
    }

    async fn backup(&self, directory: &str) -> Result<pb::BackupStoreResponse, Status> {
        let root = self.shared.options.backup_root.clone().ok_or_else(|| {
            Status::failed_precondition("backups need the server to be started with --backup-root")
        })?;
        let target = crate::store::backup::target_under(&root, directory)?;
        let engine = self.engine.clone();
        let summary = self.heavy("backup", move || engine.backup(&target)).await?;
        Ok(pb::BackupStoreResponse {
            path: summary.path.display().to_string(),
            relationships: summary.relationships,
            events: summary.events,
            model_versions: summary.model_versions,
        })
    }

    fn version_reply(&self, version: u64) -> Result<pb::ModelVersion, Status> {
        let summary = self
            .engine
            .model_summaries()?
            .into_iter()
            .find(|s| s.version == version)
            .ok_or_else(|| Status::not_found(format!("model version \"{version}\" not found")))?;
        Ok(convert::model_version_to(
            summary,
            &self.engine.active_versions()?,
        ))
    }
}

struct DecrementOnDrop<'a>(&'a std::sync::atomic::AtomicUsize);

impl Drop for DecrementOnDrop<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}
