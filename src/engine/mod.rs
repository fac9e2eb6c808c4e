//! The serving core: Score, Segment, Recommend and drift from the store and
//! the active models, and the writes that change what they answer. No tonic
//! here: the API layer converts to and from these types.
//!
//! [`Engine`] is a cheap `Clone` handle. The active models sit in a
//! [`ModelRouter`] behind an `ArcSwap`: a promotion replaces the whole router
//! at once, so a request (or a whole batch) sees one set of models, never a mix.
//!
//! - `evaluate`: one relationship against its model, shared by every answer
//! - `score`: churn, its timing, value, value at risk, health and reasons
//! - `segment`: RFM, value tier, cluster and life-cycle stage
//! - `recommend`: next best actions, one file per action family, over `policy`
//! - `drift`: feature drift of the live book against a version's training
//! - `supplier`: a supplier's supply risk, dependency, value and Kraljic class
//! - `account`: an account's payments against terms and credit risk
//! - `partner`: a partner's sourced value, lapse risk and tier
//! - `headline`: Score and Segment of one relationship from one evaluation
//! - `changes`: what was written or activated, for the score index to follow
//! - `memo`: answers as of the current second, per relationship
//! - `promotion`: what a version must pass to become active

pub mod account;
mod changes;
mod drift;
pub(crate) mod evaluate;
mod headline;
mod memo;
pub mod partner;
pub mod policy;
pub mod promotion;
pub mod recommend;
mod score;
mod segment;
pub mod supplier;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::domain::{
    validate_id, validate_not_future, IncomingEvent, ModelSlot, Relationship, RelationshipUpdate,
};
use crate::error::{Error, Result};
use crate::features::{BaseFeature, Snapshot};
use crate::model::{LoadedModel, ModelBundle, ModelRouter, ModelSummary};
use crate::time::{now, Timestamp};
use crate::SharedStore;

pub use account::AccountView;
pub use changes::{Changes, Taken};
pub use drift::{drift_status, DriftOutput};
pub use headline::Headline;
pub use partner::PartnerView;
pub use policy::Policy;
pub use recommend::{Action, ActionType, RecommendOutput, RecommendRequest};
pub use score::{Health, Reason, ScoreOutput};
pub use segment::{KraljicOutput, LifecycleStage, PartnerTierOutput, SegmentOutput};
pub use supplier::{RiskBreakdown, SupplierView};

/// Largest batch accepted by the batch RPCs.
pub const MAX_BATCH: usize = 10_000;
pub const MAX_REASONS: u32 = 20;
pub const MAX_ACTIONS: u32 = 50;

#[derive(Debug, Clone, PartialEq)]
pub struct RelationshipView {
    pub relationship: Relationship,
    pub features: Vec<(String, f64)>,
    pub event_count: u64,
    pub owned_products: Vec<String>,
    pub as_of: Timestamp,
}

/// Cheap-to-clone handle on the store, the active models and the policy.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    store: SharedStore,
    models: ArcSwap<ModelRouter>,
    /// Held while a version is made active, so the store's pointer and the
    /// router in memory change in the same order.
    activation: tokio::sync::Mutex<()>,
    /// Upserts of ids in the same stripe take turns (see `upsert_relationship`).
    upserts: [std::sync::Mutex<()>; UPSERT_STRIPES],
    policy: Policy,
    changes: Changes,
    memo: memo::Memo,
    options: EngineOptions,
    /// Whether the last write reached the store: Ingest's health.
    writes_ok: AtomicBool,
    /// Writes hold it shared; a backup holds it alone, so that its copy is
    /// of one moment.
    write_gate: tokio::sync::RwLock<()>,
}

/// What an operator tunes about the engine (flags of `serve`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineOptions {
    /// Seconds past the server's clock an event or a relationship's
    /// `created_at` may be dated (`--max-clock-skew`).
    pub max_clock_skew: i64,
}

impl EngineOptions {
    /// Five minutes: more than NTP-synchronised clocks drift, less than any
    /// horizon a model looks at.
    pub const DEFAULT_MAX_CLOCK_SKEW: i64 = 300;
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            max_clock_skew: Self::DEFAULT_MAX_CLOCK_SKEW,
        }
    }
}

const UPSERT_STRIPES: usize = 64;

fn stripe_of(id: &str) -> usize {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    id.hash(&mut h);
    (h.finish() as usize) % UPSERT_STRIPES
}

impl Engine {
    pub fn new(store: SharedStore, policy: Policy) -> Engine {
        Engine::with_options(store, policy, EngineOptions::default())
    }

    pub fn with_options(store: SharedStore, policy: Policy, options: EngineOptions) -> Engine {
        Engine {
            inner: Arc::new(Inner {
                store,
                models: ArcSwap::from_pointee(ModelRouter::default()),
                activation: tokio::sync::Mutex::new(()),
                upserts: std::array::from_fn(|_| std::sync::Mutex::new(())),
                policy,
                changes: Changes::default(),
                memo: memo::Memo::default(),
                options,
                writes_ok: AtomicBool::new(true),
                write_gate: tokio::sync::RwLock::new(()),
            }),
        }
    }

    pub fn options(&self) -> &EngineOptions {
        &self.inner.options
    }

    /// Whether the last write reached the store (Ingest's health). A failed
    /// write turns it false until a write succeeds again.
    pub fn writes_ok(&self) -> bool {
        self.inner.writes_ok.load(Ordering::Relaxed)
    }

    /// Notes a write's outcome for [`Engine::writes_ok`]; a storage failure
    /// is logged here, once per change, with what failed.
    fn note_write<T>(&self, what: &str, result: Result<T>) -> Result<T> {
        match &result {
            Ok(_) => {
                if !self.inner.writes_ok.swap(true, Ordering::Relaxed) {
                    tracing::warn!("{what} succeeded again: writes have resumed");
                }
            }
            Err(e @ (Error::Storage(_) | Error::Io(_) | Error::Unavailable { .. })) => {
                metrics::counter!("rapport_write_failures_total").increment(1);
                if self.inner.writes_ok.swap(false, Ordering::Relaxed) {
                    tracing::error!(error = %e, "{what} failed: writes are failing (Ingest health NOT_SERVING)");
                } else {
                    tracing::debug!(error = %e, "{what} failed");
                }
            }
            Err(_) => {}
        }
        result
    }

    pub fn store(&self) -> &SharedStore {
        &self.inner.store
    }

    pub fn policy(&self) -> &Policy {
        &self.inner.policy
    }

    /// What was written and activated through this engine, once subscribed.
    pub fn changes(&self) -> &Changes {
        &self.inner.changes
    }

    /// Loads every version the store marks active. Returns the default's.
    ///
    /// # Errors
    /// `Corrupt` or `Storage` when a stored model cannot be read.
    pub fn load_active(&self) -> Result<Option<u64>> {
        let mut router = ModelRouter::default();
        for slot in ModelSlot::ALL {
            if let Some(version) = self.inner.store.active_model(slot)? {
                router = router.with(slot, Arc::new(self.loaded(version)?));
            }
        }
        let default = router.in_slot(ModelSlot::Default).map(|m| m.version());
        self.inner.models.store(Arc::new(router));
        self.inner.changes.note_models();
        Ok(default)
    }

    /// A stored version ready to serve, with its own rows if it has them.
    ///
    /// # Errors
    /// `NotFound` for an unknown version, `Corrupt` for one that cannot be decoded.
    fn loaded(&self, version: u64) -> Result<LoadedModel> {
        let mut loaded = LoadedModel::new(self.bundle(version)?)?;
        for (name, bytes) in self.inner.store.model_artifacts(version)? {
            if name == crate::model::bundle::TABLE_ROWS_ARTIFACT {
                loaded =
                    loaded.with_rows(crate::model::bundle::decode_table_rows(version, &bytes)?);
            }
        }
        Ok(loaded)
    }

    /// A stored version's bundle.
    ///
    /// # Errors
    /// `NotFound` for an unknown version, `Corrupt` for one that cannot be decoded.
    pub fn bundle(&self, version: u64) -> Result<ModelBundle> {
        let bytes = self
            .inner
            .store
            .model_bundle(version)?
            .ok_or_else(|| Error::not_found("model version", version.to_string()))?;
        ModelBundle::decode(version, &bytes)
    }

    /// Every stored version's summary, oldest first.
    ///
    /// # Errors
    /// `Storage` or `Corrupt`.
    pub fn model_summaries(&self) -> Result<Vec<ModelSummary>> {
        let store = &self.inner.store;
        store
            .model_versions()?
            .into_iter()
            .map(|version| match store.model_summary(version)? {
                Some(bytes) => ModelSummary::decode(version, &bytes),
                // Stored before summaries were.
                None => match store.model_bundle(version)? {
                    Some(bytes) => ModelSummary::from_bundle(version, &bytes),
                    None => Err(Error::not_found("model version", version.to_string())),
                },
            })
            .collect()
    }

    /// The version active in `slot`.
    ///
    /// # Errors
    /// `Storage` on I/O failure.
    pub fn active_version(&self, slot: ModelSlot) -> Result<Option<u64>> {
        self.inner.store.active_model(slot)
    }

    /// The version active in each slot that has one, default first.
    ///
    /// # Errors
    /// `Storage` on I/O failure.
    pub fn active_versions(&self) -> Result<Vec<(ModelSlot, u64)>> {
        let mut active = Vec::new();
        for slot in ModelSlot::ALL {
            if let Some(version) = self.inner.store.active_model(slot)? {
                active.push((slot, version));
            }
        }
        Ok(active)
    }

    /// Makes `version` active in `slot`: stored first, then swapped in
    /// whole. Every other slot keeps its version.
    ///
    /// # Errors
    /// `NotFound` for an unknown version; `InvalidArgument` for a version
    /// trained for one kind put in another kind's slot.
    pub async fn activate(&self, version: u64, slot: ModelSlot) -> Result<()> {
        let loaded = Arc::new(self.loaded(version)?);
        check_slot(&loaded.bundle, slot)?;
        let _one_at_a_time = self.inner.activation.lock().await;
        let _gate = self.inner.write_gate.read().await;
        self.inner.store.set_active_model(slot, version)?;
        self.inner.store.flush().await?;
        self.inner
            .models
            .rcu(|router| router.with(slot, Arc::clone(&loaded)));
        self.inner.changes.note_models();
        Ok(())
    }

    /// Loads what the store's active pointers name if the models served
    /// differ (another process sharing the store promoted or rolled back).
    /// Returns the default slot's version when it loaded, `None` when nothing
    /// changed or the default slot has no model.
    ///
    /// # Errors
    /// As [`Engine::load_active`].
    pub async fn follow_active(&self) -> Result<Option<u64>> {
        let _one_at_a_time = self.inner.activation.lock().await;
        let engine = self.clone();
        tokio::task::spawn_blocking(move || {
            let served = engine.models();
            for slot in ModelSlot::ALL {
                let stored = engine.inner.store.active_model(slot)?;
                if stored != served.in_slot(slot).map(|m| m.version()) {
                    return engine.load_active();
                }
            }
            Ok(None)
        })
        .await
        .map_err(|e| Error::Io(std::io::Error::other(format!("model loading failed: {e}"))))?
    }

    pub fn has_model(&self) -> bool {
        !self.inner.models.load().is_empty()
    }

    /// Every id the engine answers for, in id order: the rows of the active
    /// table models (their own namespaces) and the book's relationships.
    ///
    /// # Errors
    /// `Storage` when the book cannot be read.
    pub fn every_id(&self) -> Result<Vec<String>> {
        let models = self.models();
        let mut ids: Vec<String> = models
            .active()
            .flat_map(|(_, m)| m.own_rows.keys().cloned())
            .collect();
        for relationship in self.inner.store.relationships() {
            ids.push(relationship?.id);
        }
        ids.sort_unstable();
        ids.dedup();
        Ok(ids)
    }

    /// The active models, as one request should see them.
    pub fn models(&self) -> Arc<ModelRouter> {
        self.inner.models.load_full()
    }

    /// Makes the version that was active in `slot` before the current one
    /// active there again; the other slots keep theirs.
    ///
    /// # Errors
    /// `FailedPrecondition` when `slot` had no earlier active version.
    pub async fn rollback(&self, slot: ModelSlot) -> Result<u64> {
        let previous = self
            .inner
            .store
            .previous_active_model(slot)?
            .ok_or_else(|| {
                Error::precondition(format!(
                    "no earlier active version in the {} slot to roll back to",
                    slot.name()
                ))
            })?;
        self.activate(previous, slot).await?;
        Ok(previous)
    }

    /// Writes a consistent copy of the store into the new directory `dir`
    /// (see `store::backup`): writes wait until it is taken. Blocks: call it
    /// on a blocking thread.
    ///
    /// # Errors
    /// `InvalidArgument` when `dir` exists; `Io` or `Storage`.
    pub fn backup(&self, dir: &std::path::Path) -> Result<crate::store::backup::BackupSummary> {
        let _alone = self.inner.write_gate.blocking_write();
        let started = std::time::Instant::now();
        let summary = crate::store::backup::write(self.inner.store.as_ref(), dir)?;
        tracing::info!(
            path = %summary.path.display(),
            relationships = summary.relationships,
            events = summary.events,
            seconds = started.elapsed().as_secs_f64(),
            "backup written (writes waited meanwhile)"
        );
        Ok(summary)
    }

    /// Tries a durable write (see [`crate::store::Store::probe_writes`]) and
    /// notes its outcome for [`Engine::writes_ok`].
    pub fn probe_writes(&self) -> bool {
        self.note_write("a probe write", self.inner.store.probe_writes())
            .is_ok()
    }

    // ------------------------------------------------------------ writes

    /// Creates a relationship or merges an update into the stored one (see
    /// [`RelationshipUpdate::apply`]), validates the result and stores it;
    /// acknowledged only once flushed. Returns whether it was new, and the
    /// relationship as stored.
    ///
    /// # Errors
    /// `InvalidArgument` naming the field, or for a `created_at` past the
    /// clock skew; nothing is written. `Unavailable` when the store cannot
    /// write.
    pub async fn upsert_relationship(
        &self,
        update: RelationshipUpdate,
    ) -> Result<(bool, Relationship)> {
        validate_id("relationship.id", &update.id)?;
        let written = async {
            let _gate = self.inner.write_gate.read().await;
            let (created, relationship) = {
                // Read, merge and write as one step per id, so two concurrent
                // updates of one relationship cannot drop each other's fields.
                let stripe = &self.inner.upserts[stripe_of(&update.id)];
                let _one_writer = stripe
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                // The stripe orders this process's upserts; other processes
                // sharing the store are ordered by `merge_relationship`.
                let id = update.id.clone();
                let max_skew = self.inner.options.max_clock_skew;
                self.inner.store.merge_relationship(&id, &mut |stored| {
                    let t = now();
                    let relationship = update.clone().apply(stored, t)?;
                    relationship.validate(t)?;
                    validate_not_future(
                        "relationship.created_at",
                        relationship.created_at,
                        t,
                        max_skew,
                    )?;
                    Ok(relationship)
                })?
            };
            self.inner.store.flush().await?;
            self.inner.changes.note_ids([relationship.id.as_str()]);
            Ok((created, relationship))
        }
        .await;
        self.note_write("writing a relationship", written)
    }

    /// Validates a whole batch, then stores it atomically and durably.
    ///
    /// # Errors
    /// `InvalidArgument` for an empty or oversized batch or a bad event (naming
    /// its index), `NotFound` for an unknown relationship; nothing is written.
    pub async fn record_events(&self, batch: Vec<IncomingEvent>) -> Result<usize> {
        check_batch_size("events", batch.len())?;
        let t = now();
        let skew = self.inner.options.max_clock_skew;
        for (i, e) in batch.iter().enumerate() {
            validate_id("relationship_id", &e.relationship_id)
                .and_then(|()| e.event.validate(t))
                .and_then(|()| validate_not_future("at", e.event.at, t, skew))
                .map_err(|err| err.within(format_args!("events[{i}]")))?;
        }
        let n = batch.len();
        let changes = &self.inner.changes;
        let ids: Option<HashSet<String>> = changes
            .is_subscribed()
            .then(|| batch.iter().map(|e| e.relationship_id.clone()).collect());
        let written = {
            let _gate = self.inner.write_gate.read().await;
            self.inner.store.record_events(batch).await
        };
        if written.is_ok() {
            metrics::counter!("rapport_ingest_events_total").increment(n as u64);
            if let Some(ids) = ids {
                changes.note_ids(ids.iter().map(String::as_str));
            }
        }
        self.note_write("recording events", written)
    }

    /// Erases a relationship with everything the store keeps about it (see
    /// [`crate::store::Store::delete_relationship`]), durably, and logs the
    /// erasure. Returns how many events it had. Blocks on the flush: call it
    /// from a thread that may block (not an async worker).
    ///
    /// # Errors
    /// `InvalidArgument` for a bad id, `NotFound` for an unknown one.
    pub fn delete_relationship(&self, id: &str) -> Result<u64> {
        validate_id("relationship_id", id)?;
        let erased = {
            let _gate = self.inner.write_gate.blocking_read();
            self.inner.store.delete_relationship(id).and_then(|events| {
                self.inner.store.flush_blocking()?;
                Ok(events)
            })
        };
        let events = self
            .note_write("erasing a relationship", erased)?
            .ok_or_else(|| Error::not_found("relationship", id))?;
        self.inner.changes.note_ids([id]);
        self.inner.memo.forget(id);
        tracing::info!(
            target: "rapport::erasure",
            relationship_id = id,
            events,
            "relationship erased with its events, aggregates and index entry"
        );
        Ok(events)
    }

    // ------------------------------------------------------------ reads

    /// A relationship with its aggregates and features: its kind's model's
    /// columns, or every base feature without a model. Absent features are
    /// left out.
    ///
    /// # Errors
    /// As [`Engine::score`], but no model is needed.
    pub fn relationship_view(
        &self,
        id: &str,
        as_of: Option<Timestamp>,
    ) -> Result<RelationshipView> {
        let (data, as_of) = self.load(id, as_of)?;
        let snapshot = Snapshot::derive(&data.relationship, &data.aggregates, as_of);
        let models = self.models();
        let features = match models.route(data.relationship.kind) {
            Some(routed) => {
                let schema = &routed.model.bundle.schema;
                let mut raw = Vec::with_capacity(schema.width());
                schema.raw_values(&data.relationship, &snapshot, &mut raw);
                routed
                    .model
                    .column_names
                    .iter()
                    .cloned()
                    .zip(raw)
                    .filter(|(_, v)| v.is_finite())
                    .collect()
            }
            None => BaseFeature::ALL
                .iter()
                .filter_map(|f| snapshot.value(*f).map(|v| (f.name().to_string(), v)))
                .collect(),
        };
        Ok(RelationshipView {
            features,
            event_count: data.aggregates.event_count,
            owned_products: data.aggregates.products.keys().cloned().collect(),
            relationship: data.relationship.clone(),
            as_of,
        })
    }
}

/// Runs `one` on each id, keeping the answers and listing, in order, the ids
/// it found unknown; any other error fails the whole call.
///
/// # Errors
/// The first error other than an unknown relationship.
fn known<T>(
    ids: &[String],
    mut one: impl FnMut(&str) -> Result<T>,
) -> Result<(Vec<T>, Vec<String>)> {
    let mut answers = Vec::with_capacity(ids.len());
    let mut unknown = Vec::new();
    for id in ids {
        match one(id) {
            Ok(answer) => answers.push(answer),
            Err(Error::NotFound {
                what: "relationship",
                ..
            }) => unknown.push(id.clone()),
            Err(e) => return Err(e),
        }
    }
    Ok((answers, unknown))
}

/// Whether a version may serve `slot`: one trained for a kind serves that
/// kind's slot only; one trained on every kind serves any slot.
///
/// # Errors
/// `InvalidArgument` naming the version's kind.
fn check_slot(bundle: &ModelBundle, slot: ModelSlot) -> Result<()> {
    match bundle.spec.slot() {
        ModelSlot::Kind(kind) if slot != ModelSlot::Kind(kind) => Err(Error::invalid(
            "slot",
            format!(
                "version {} was trained on {} relationships only (data.kind) and cannot serve the {} slot",
                bundle.version,
                kind.as_str(),
                slot.name()
            ),
        )),
        _ => Ok(()),
    }
}

/// # Errors
/// `InvalidArgument` naming `field` for an empty or oversized batch.
pub fn check_batch_size(field: &str, n: usize) -> Result<()> {
    if n == 0 {
        return Err(Error::invalid(field, "the batch is empty"));
    }
    if n > MAX_BATCH {
        return Err(Error::invalid(
            field,
            format!("{n} items, more than the limit of {MAX_BATCH}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_sizes_are_checked() {
        assert!(check_batch_size("ids", 0)
            .unwrap_err()
            .to_string()
            .contains("empty"));
        assert!(check_batch_size("ids", MAX_BATCH + 1).is_err());
        assert!(check_batch_size("ids", 1).is_ok());
    }
}
